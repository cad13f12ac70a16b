package oauth

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/ory/fosite"
)

// errInvalidTarget is RFC 8707's error for an unusable resource parameter.
var errInvalidTarget = &fosite.RFC6749Error{
	ErrorField:       "invalid_target",
	DescriptionField: "The requested resource is invalid, unknown, or not allowed for this client.",
	CodeField:        http.StatusBadRequest,
}

// errRequestNotSupported refuses OIDC request objects (by value).
var errRequestNotSupported = &fosite.RFC6749Error{
	ErrorField:       "request_not_supported",
	DescriptionField: "Request objects are not supported.",
	CodeField:        http.StatusBadRequest,
}

// errRequestURINotSupported refuses OIDC request objects (by reference).
var errRequestURINotSupported = &fosite.RFC6749Error{
	ErrorField:       "request_uri_not_supported",
	DescriptionField: "The request_uri parameter is not supported.",
	CodeField:        http.StatusBadRequest,
}

// repeatable lists parameters that may legitimately occur more than once
// (RFC 8707 resource indicators).
var repeatable = map[string]bool{"resource": true}

// parsePostForm reads an OAuth POST body: method POST, content type
// application/x-www-form-urlencoded, at most MaxBodyBytes, no repeated
// parameter (RFC 6749 §3.1/§3.2). Query parameters are ignored by every
// POST endpoint (credentials must not travel in URLs).
func (s *Server) parsePostForm(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return fosite.ErrInvalidRequest.WithHint("The HTTP method must be POST.")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return fosite.ErrInvalidRequest.WithHint("The request body must be application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fosite.ErrInvalidRequest.WithHint("The request body is too large.")
		}
		return fosite.ErrInvalidRequest.WithHint("The request body could not be parsed.")
	}
	return checkRepeated(r.PostForm)
}

// maxScopes bounds the scope values of one request (scope matching is
// quadratic in fosite).
const maxScopes = 100

// checkRepeated refuses a form where a parameter occurs more than once,
// and bounds the number of scope values.
func checkRepeated(form map[string][]string) error {
	for k, v := range form {
		if len(v) > 1 && !repeatable[k] {
			return fosite.ErrInvalidRequest.WithHintf("The parameter '%s' is repeated.", safeParamName(k))
		}
	}
	if sc := form["scope"]; len(sc) == 1 && strings.Count(sc[0], " ") >= maxScopes {
		if len(strings.Fields(sc[0])) > maxScopes {
			return fosite.ErrInvalidScope.WithHint("Too many scope values.")
		}
	}
	return nil
}

// safeParamName returns k if it looks like a parameter name, else a placeholder,
// so attacker-chosen bytes are not echoed.
func safeParamName(k string) string {
	if len(k) == 0 || len(k) > 40 {
		return "(parameter)"
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "(parameter)"
		}
	}
	return k
}

// noStore sets the cache headers of every token, introspection,
// revocation and error response (RFC 6749 §5.1, RFC 7662 §4, RFC 9700).
func noStore(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
}

// writeJSON writes v with status and no-store headers.
func writeJSON(w http.ResponseWriter, status int, v any) {
	noStore(w)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	b, err := json.Marshal(v)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":"server_error"}`))
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// toRFCError normalizes err into the error code, status and description
// the client may see. Debug details never leave the server.
func toRFCError(err error) (code string, status int, desc string, rfc *fosite.RFC6749Error) {
	rfc = fosite.ErrorToRFC6749Error(err)
	code, status = rfc.ErrorField, rfc.CodeField
	switch code {
	case "jti_known": // client assertion replay is a client authentication failure
		return "invalid_client", http.StatusUnauthorized, "The client assertion was already used.", rfc
	case "request_unauthorized":
		return "invalid_client", http.StatusUnauthorized, "Client authentication failed.", rfc
	case "token_inactive", "token_signature_mismatch", "invalid_token", "token_claim", "not_found", "scope_not_granted":
		return "invalid_grant", http.StatusBadRequest, "The provided grant is invalid, expired or revoked.", rfc
	case "insufficient_entropy", "misconfiguration", "error":
		if status < 500 {
			return "invalid_request", http.StatusBadRequest, sanitizeDescription(rfc.WithExposeDebug(false).GetDescription()), rfc
		}
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		return code, status, "The authorization server encountered an unexpected condition.", rfc
	}
	desc = rfc.WithExposeDebug(false).GetDescription()
	return code, status, sanitizeDescription(desc), rfc
}

// sanitizeDescription keeps error_description within RFC 6749 §5.2's
// character set (%x20-21 / %x23-5B / %x5D-7E) and bounds its length.
func sanitizeDescription(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 400 {
			break
		}
		switch {
		case r == '"':
			b.WriteByte('\'')
		case r == '\\' || r < 0x20 || r > 0x7e || r == utf8.RuneError:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// writeOAuthError writes an RFC 6749 §5.2 JSON error.
func (s *Server) writeOAuthError(w http.ResponseWriter, r *http.Request, endpoint string, err error) {
	code, status, desc, rfc := toRFCError(err)
	if status >= 500 {
		s.log.Error("oauth endpoint failed", "endpoint", endpoint, "error", code, "debug", rfc.Debug(), "cause", errors.Unwrap(err))
	}
	if code == "invalid_client" && status == http.StatusUnauthorized {
		if _, _, ok := r.BasicAuth(); ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth", charset="UTF-8"`)
		}
	}
	s.metrics.errors.WithLabelValues(endpoint, errorLabel(code)).Inc()
	writeJSON(w, status, oauthError{Error: code, Description: desc})
}
