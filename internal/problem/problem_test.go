package problem

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"unicode/utf8"
)

func TestWriteIsValidProblemJSON(t *testing.T) {
	for _, detail := range []string{"", "plain", "quote \" back\\slash", "ctl \x01\n<script>", "日本語"} {
		rec := httptest.NewRecorder()
		WriteID(rec, "req-1", 413, detail)
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("content-type %q", ct)
		}
		var p map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("detail %q: body %q not JSON: %v", detail, rec.Body.String(), err)
		}
		if p["status"].(float64) != 413 || p["title"] != "Request Entity Too Large" || p["request_id"] != "req-1" {
			t.Fatalf("unexpected body %v", p)
		}
		if detail != "" && p["detail"] != detail {
			t.Fatalf("detail round trip: got %q want %q", p["detail"], detail)
		}
		if p["type"] != "https://sekisho.dev/problems/body-too-large" {
			t.Fatalf("type %v", p["type"])
		}
	}
}

func FuzzQuoteJSON(f *testing.F) {
	f.Add("a\"b\\c\x00\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		var out string
		if err := json.Unmarshal([]byte(quoteJSON(s)), &out); err != nil {
			t.Fatalf("quoteJSON(%q) invalid: %v", s, err)
		}
		// Invalid UTF-8 decodes to U+FFFD; otherwise the round trip is exact.
		if utf8.ValidString(s) && out != s {
			t.Fatalf("round trip %q -> %q", s, out)
		}
	})
}
