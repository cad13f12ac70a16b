package identity

import (
	"net/url"
	"slices"
	"strings"
)

// maxQueryParams bounds the parameters of an authorize request in return_to.
const maxQueryParams = 64

// returnKind says what a validated return_to points at.
type returnKind int

const (
	returnInvalid   returnKind = iota
	returnAuthorize            // AuthorizePath + "?" + query
	returnAccount              // BasePath + "/account/consents"
)

// parseReturnTo validates rt and returns its canonical form. It accepts only
//
//   - AuthorizePath + "?" + query, where the query is well-formed (no ';',
//     valid escapes), has at most maxQueryParams parameters and no parameter
//     twice; the canonical form re-encodes it (url.Values.Encode), or
//   - exactly BasePath + "/account/consents".
//
// Everything else — absolute URLs, scheme-relative "//host", backslashes,
// control characters, spaces, non-ASCII, fragments, dot segments, percent-
// encoded path bytes, other paths — is refused, so a return_to can never
// leave this origin or reach another endpoint. The check is on the exact
// string (a fixed-prefix match), not on a parse that could be lenient.
func (s *Service) parseReturnTo(rt string) (canonical string, query url.Values, kind returnKind) {
	if rt == "" || len(rt) > maxReturnToLen {
		return "", nil, returnInvalid
	}
	for i := 0; i < len(rt); i++ {
		c := rt[i]
		// Printable ASCII only; no backslash (browsers treat it as '/'), no '#'.
		if c <= 0x20 || c >= 0x7f || c == '\\' || c == '#' {
			return "", nil, returnInvalid
		}
	}
	if rt == s.accountPath() {
		return rt, nil, returnAccount
	}
	q, ok := strings.CutPrefix(rt, s.o.AuthorizePath+"?")
	if !ok || q == "" {
		return "", nil, returnInvalid
	}
	vals, err := url.ParseQuery(q)
	if err != nil || len(vals) == 0 || len(vals) > maxQueryParams {
		return "", nil, returnInvalid
	}
	for k, v := range vals {
		if k == "" || len(v) != 1 {
			return "", nil, returnInvalid
		}
	}
	return s.o.AuthorizePath + "?" + vals.Encode(), vals, returnAuthorize
}

func (s *Service) accountPath() string { return s.o.BasePath + "/account/consents" }

// withoutPrompt returns the authorize URL for vals with value removed from
// the space-separated prompt parameter (dropping prompt when it becomes
// empty). After a fresh login (or a consent decision) the authorize endpoint
// must not be asked to prompt again, or the browser would loop.
func (s *Service) withoutPrompt(vals url.Values, value string) string {
	v := cloneValues(vals)
	if p, ok := v["prompt"]; ok && len(p) == 1 {
		fields := slices.DeleteFunc(strings.Fields(p[0]), func(f string) bool { return f == value })
		if len(fields) == 0 {
			v.Del("prompt")
		} else {
			v.Set("prompt", strings.Join(fields, " "))
		}
	}
	return s.o.AuthorizePath + "?" + v.Encode()
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
