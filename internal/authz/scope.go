package authz

import (
	"fmt"

	"github.com/sekisho/sekisho/internal/authn"
)

// ScopeRule is a scope requirement: every scope in AllOf must have been
// granted, and, when AnyOf is not empty, at least one scope in AnyOf.
type ScopeRule struct {
	AllOf []string
	AnyOf []string
}

// maxScopesPerRule bounds a rule so a config typo cannot make the per-request
// check quadratic in something large.
const maxScopesPerRule = 64

// maxScopeLen bounds one scope name (RFC 6749 sets no limit; 256 is generous).
const maxScopeLen = 256

func (r ScopeRule) empty() bool { return len(r.AllOf) == 0 && len(r.AnyOf) == 0 }

// validate checks every scope name against the RFC 6749 §3.3 scope-token
// grammar, so names can be echoed in WWW-Authenticate without quoting issues.
func (r ScopeRule) validate() error {
	if len(r.AllOf) > maxScopesPerRule || len(r.AnyOf) > maxScopesPerRule {
		return fmt.Errorf("more than %d scopes in one rule", maxScopesPerRule)
	}
	for _, list := range [2]struct {
		name   string
		scopes []string
	}{{"all_of", r.AllOf}, {"any_of", r.AnyOf}} {
		seen := make(map[string]bool, len(list.scopes))
		for i, s := range list.scopes {
			if err := ValidateScopeToken(s); err != nil {
				return fmt.Errorf("%s[%d]: %w", list.name, i, err)
			}
			if seen[s] {
				return fmt.Errorf("%s[%d]: duplicate scope %q", list.name, i, s)
			}
			seen[s] = true
		}
	}
	return nil
}

// ValidateScopeToken reports whether s is a valid RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ), i.e. printable ASCII without space, '"'
// and '\'. Bounded to 256 bytes.
func ValidateScopeToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty scope name")
	}
	if len(s) > maxScopeLen {
		return fmt.Errorf("scope name longer than %d bytes", maxScopeLen)
	}
	for i := 0; i < len(s); i++ {
		if !isScopeChar(s[i]) {
			return fmt.Errorf("scope name %q: byte %d (0x%02x) not allowed by RFC 6749 scope-token", s, i, s[i])
		}
	}
	return nil
}

func isScopeChar(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
}

// satisfied reports whether granted meets the rule. It does not allocate.
// Rules are small (bounded by maxScopesPerRule) and tokens carry few scopes,
// so a linear scan beats building a set per request.
func (r ScopeRule) satisfied(id *authn.Identity) bool {
	for _, s := range r.AllOf {
		if id == nil || !id.HasScope(s) {
			return false
		}
	}
	if len(r.AnyOf) == 0 {
		return true
	}
	if id == nil {
		return false
	}
	for _, s := range r.AnyOf {
		if id.HasScope(s) {
			return true
		}
	}
	return false
}

// missing appends to dst the scopes that explain a failed rule: every AllOf
// scope not granted, and, when no AnyOf scope was granted, the AnyOf
// alternatives (one of which would suffice). Only configured, validated
// names are ever returned, never anything from the request.
func (r ScopeRule) missing(dst []string, id *authn.Identity) []string {
	for _, s := range r.AllOf {
		if id == nil || !id.HasScope(s) {
			dst = appendUnique(dst, s)
		}
	}
	if len(r.AnyOf) == 0 {
		return dst
	}
	if id != nil {
		for _, s := range r.AnyOf {
			if id.HasScope(s) {
				return dst
			}
		}
	}
	for _, s := range r.AnyOf {
		dst = appendUnique(dst, s)
	}
	return dst
}

func appendUnique(dst []string, s string) []string {
	for _, d := range dst {
		if d == s {
			return dst
		}
	}
	return append(dst, s)
}
