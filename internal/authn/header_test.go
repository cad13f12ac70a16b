package authn

import (
	"strings"
	"testing"
)

func TestValidHeaderName(t *testing.T) {
	for _, ok := range []string{"X-Api-Key", "x_api.key~1", strings.Repeat("a", 128)} {
		if !ValidHeaderName(ok) {
			t.Errorf("ValidHeaderName(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 129), "X Api", "X:Api", "X-Äpi", "X\r\nY", "(x)"} {
		if ValidHeaderName(bad) {
			t.Errorf("ValidHeaderName(%q) = true", bad)
		}
	}
}
