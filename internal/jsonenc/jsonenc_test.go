package jsonenc

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendString: the output equals encoding/json's for every input.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\c\x00\n\t\b\f<&>", "\u2028\u2029", "\xff\xfe", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
	})
}
