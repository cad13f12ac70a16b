package reqid

import (
	"strings"
	"testing"
)

func TestNewIsValidAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || !Valid(id) {
			t.Fatalf("New() = %q: want 32 lower-case hex characters", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestValid(t *testing.T) {
	for _, ok := range []string{"a", "req-1_2.3:4", strings.Repeat("Z", MaxLen)} {
		if !Valid(ok) {
			t.Errorf("Valid(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", MaxLen+1), "a b", "a\nb", "a\"b", "ä", "a/b", "a\x00"} {
		if Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
}
