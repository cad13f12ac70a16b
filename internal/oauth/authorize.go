package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
)

// Bounds of authorization requests. The whole authorize URL must fit the
// identity layer's return_to limit (8 KiB) after we add the marker.
const (
	maxAuthorizeQuery = 6 << 10
	maxRedirectURILen = 2048
	markerParam       = "sekisho_ix"
	markerMaxAge      = 10 * time.Minute
)

// handleAuthorize serves /oauth2/authorize (GET and POST, OIDC Core §3.1.2.1).
//
// Order of checks: bounds and repeated parameters, then client and
// redirect_uri (a failure of either renders an error page and never
// redirects), then full validation by fosite (errors are redirected to the
// validated redirect_uri with state and iss), and only then the browser
// session: login, consent memory, and finally the code.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.duration.WithLabelValues("authorize").Observe(time.Since(start).Seconds()) }()
	ctx := r.Context()

	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "invalid_request", "The authorization endpoint accepts GET and POST only.")
		return
	}
	orig, msg := s.parseAuthorizeForm(w, r)
	if msg != "" {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	c, err := s.clients.get(ctx, orig.Get("client_id"))
	if err != nil {
		if !errors.Is(err, errClientNotFound) {
			s.log.Error("authorize: client lookup failed", "err", err)
			s.errorPage(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The authorization server is temporarily unavailable.")
			return
		}
		s.errorPage(w, http.StatusBadRequest, "invalid_client", "The client is unknown or disabled.")
		return
	}
	redirect, ok := matchRedirectURI(c, orig.Get("redirect_uri"))
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "The redirect_uri is missing or not registered for this client.")
		return
	}
	state := orig.Get("state")
	fail := func(err error) { s.redirectError(w, redirect, state, err) }

	if s.identity == nil {
		fail(fosite.ErrServerError.WithDebug("no identity service configured"))
		return
	}
	if orig.Get("request") != "" {
		fail(errRequestNotSupported)
		return
	}
	if orig.Get("request_uri") != "" {
		fail(errRequestURINotSupported)
		return
	}
	if _, present := orig["audience"]; present {
		fail(fosite.ErrInvalidRequest.WithHint("Use the resource parameter (RFC 8707) instead of audience."))
		return
	}
	resources, err := s.resourceParams(orig)
	if err != nil {
		fail(err)
		return
	}
	aud, err := pickAudience(c.GetAudience(), resources)
	if err != nil {
		fail(err)
		return
	}
	prompt, err := parsePrompt(orig.Get("prompt"))
	if err != nil {
		fail(err)
		return
	}

	// fosite reads r.Form: give it the request without our marker and with
	// the effective audience in fosite's audience parameter.
	ff := cloneValues(orig)
	ff.Del(markerParam)
	ff.Del("resource")
	ff["audience"] = aud
	r.Form = ff
	ar, err := s.main.NewAuthorizeRequest(ctx, r)
	if err != nil {
		fail(err)
		return
	}

	// The request is valid. Who is the user?
	now := s.o.Now()
	mk := s.readMarker(orig.Get(markerParam), c.GetID(), now)
	returnTo := func(m marker) string {
		q := cloneValues(orig)
		q.Del(markerParam)
		q.Set(markerParam, s.writeMarker(m, c.GetID()))
		return s.paths.authorize + "?" + q.Encode()
	}
	user, authTime, signedIn := s.identity.CurrentUser(r)
	requestedAt := now
	needLogin := !signedIn || prompt["login"] || maxAgeExceeded(orig.Get("max_age"), authTime, now)
	if needLogin && signedIn && mk.loginAt != 0 && authTime.Unix() >= mk.loginAt {
		needLogin = false // the user signed in after we sent them to log in
		requestedAt = time.Unix(mk.loginAt, 0)
	}
	if needLogin {
		if prompt["none"] {
			fail(fosite.ErrLoginRequired)
			return
		}
		s.metrics.authorize.WithLabelValues("login").Inc()
		http.Redirect(w, r, s.identity.LoginURL(returnTo(marker{loginAt: now.Unix()})), http.StatusSeeOther)
		return
	}

	if s.identity.ConsentDenied(w, r) {
		fail(fosite.ErrAccessDenied.WithHint("The user denied the request."))
		return
	}
	scopes := ar.GetRequestedScopes()
	has, err := s.identity.HasConsent(ctx, user.ID, c.GetID(), scopes)
	if err != nil {
		fail(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
		return
	}
	// RFC 8252 §8.6 / RFC 6819 §4.2.3: a public client on a loopback
	// redirect cannot prove its identity, so remembered consent is not
	// enough; the user confirms every time (as with prompt=consent).
	fresh := prompt["consent"] || (c.IsPublic() && isLoopbackRedirect(redirect))
	if !has || (fresh && mk.consentAt == 0) {
		if prompt["none"] {
			fail(fosite.ErrConsentRequired)
			return
		}
		s.metrics.authorize.WithLabelValues("consent").Inc()
		http.Redirect(w, r, s.identity.ConsentURL(returnTo(marker{loginAt: mk.loginAt, consentAt: now.Unix()})), http.StatusSeeOther)
		return
	}

	for _, sc := range scopes {
		ar.GrantScope(sc)
	}
	for _, a := range ar.GetRequestedAudience() {
		ar.GrantAudience(a)
	}
	resp, err := s.main.NewAuthorizeResponse(ctx, ar, NewSession(user.ID, authTime, requestedAt))
	if err != nil {
		fail(err)
		return
	}
	resp.AddParameter("iss", s.issuer) // RFC 9207
	s.metrics.authorize.WithLabelValues("code").Inc()
	s.main.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// parseAuthorizeForm parses the query (and for POST the body) with bounds
// and refuses repeated parameters. On failure it returns a fixed message
// for the error page.
func (s *Server) parseAuthorizeForm(w http.ResponseWriter, r *http.Request) (url.Values, string) {
	const tooLarge = "The request is too large."
	if len(r.URL.RawQuery) > maxAuthorizeQuery {
		return nil, tooLarge
	}
	if r.Method == http.MethodPost {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, "The request body must be application/x-www-form-urlencoded."
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxAuthorizeQuery)
	}
	if err := r.ParseForm(); err != nil {
		return nil, "The request could not be parsed."
	}
	if err := checkRepeated(r.Form); err != nil {
		return nil, "A parameter of the request is repeated."
	}
	if len(r.Form.Encode()) > maxAuthorizeQuery {
		return nil, tooLarge
	}
	return cloneValues(r.Form), ""
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// matchRedirectURI implements the redirect_uri policy: exact string match
// against the registered URIs (RFC 9700 §4.1.3), with one exception for
// public (native) clients: a registered http loopback IP literal URI
// (127.0.0.1 or [::1]) matches any port (RFC 8252 §7.3), same host, path
// and query. "localhost" never gets port variance. An omitted redirect_uri
// is accepted only when exactly one URI is registered.
func matchRedirectURI(c *client, raw string) (*url.URL, bool) {
	regs := c.GetRedirectURIs()
	if raw == "" {
		if len(regs) != 1 {
			return nil, false
		}
		u, err := url.Parse(regs[0])
		return u, err == nil
	}
	if len(raw) > maxRedirectURILen {
		return nil, false
	}
	for _, reg := range regs {
		if reg == raw {
			u, err := url.Parse(raw)
			return u, err == nil
		}
	}
	if !c.IsPublic() {
		return nil, false
	}
	req, err := url.Parse(raw)
	if err != nil || req.String() != raw || !isLoopbackRedirect(req) {
		return nil, false
	}
	if p := req.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, false
		}
	}
	for _, reg := range regs {
		ru, err := url.Parse(reg)
		if err != nil || !isLoopbackRedirect(ru) {
			continue
		}
		if ru.Hostname() == req.Hostname() && ru.EscapedPath() == req.EscapedPath() &&
			ru.RawQuery == req.RawQuery && ru.ForceQuery == req.ForceQuery {
			return req, true
		}
	}
	return nil, false
}

// isLoopbackRedirect: http, loopback IP literal host, no userinfo/fragment.
func isLoopbackRedirect(u *url.URL) bool {
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	h := u.Hostname()
	return h == "127.0.0.1" || h == "::1"
}

// redirectSecure is fosite's RedirectSecureChecker: https, or http to a
// loopback address or localhost (native apps, development).
func redirectSecure(_ context.Context, u *url.URL) bool {
	if u.Scheme == "https" {
		return true
	}
	if u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// parsePrompt validates the OIDC prompt parameter.
func parsePrompt(v string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, p := range strings.Fields(v) {
		switch p {
		case "none", "login", "consent":
			out[p] = true
		default:
			return nil, fosite.ErrInvalidRequest.WithHint("Unsupported prompt value.")
		}
	}
	if out["none"] && len(out) > 1 {
		return nil, fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values.")
	}
	return out, nil
}

// maxAgeExceeded implements OIDC max_age: authentication older than
// max_age seconds requires a new login.
func maxAgeExceeded(v string, authTime, now time.Time) bool {
	if v == "" {
		return false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return false
	}
	return authTime.Add(time.Duration(min(n, 1<<32)) * time.Second).Before(now)
}

// marker records, across the login/consent round trips, when this server
// sent the browser to log in and to consent. It lets prompt=login, max_age,
// prompt=consent and public-client consent be satisfied exactly once
// instead of looping. It is MACed (key derived from the master key) and
// expires after markerMaxAge.
type marker struct {
	loginAt, consentAt int64 // unix seconds; 0 = not sent there
}

func (s *Server) markerMAC(loginAt, consentAt int64, clientID string) []byte {
	m := hmac.New(sha256.New, s.markerKey)
	fmt.Fprintf(m, "v1|%d|%d|%s", loginAt, consentAt, clientID)
	return m.Sum(nil)[:16]
}

func (s *Server) writeMarker(mk marker, clientID string) string {
	return fmt.Sprintf("v1.%d.%d.%s", mk.loginAt, mk.consentAt, b64.EncodeToString(s.markerMAC(mk.loginAt, mk.consentAt, clientID)))
}

// readMarker returns the zero marker for anything missing, forged or stale.
func (s *Server) readMarker(v, clientID string, now time.Time) marker {
	if v == "" || len(v) > 128 {
		return marker{}
	}
	parts := strings.Split(v, ".")
	if len(parts) != 4 || parts[0] != "v1" {
		return marker{}
	}
	la, err1 := strconv.ParseInt(parts[1], 10, 64)
	ca, err2 := strconv.ParseInt(parts[2], 10, 64)
	mac, err3 := b64.DecodeString(parts[3])
	if err1 != nil || err2 != nil || err3 != nil || la < 0 || ca < 0 {
		return marker{}
	}
	if !hmac.Equal(mac, s.markerMAC(la, ca, clientID)) {
		return marker{}
	}
	newest := max(la, ca)
	if newest == 0 || now.Sub(time.Unix(newest, 0)) > markerMaxAge || time.Unix(newest, 0).After(now.Add(time.Minute)) {
		return marker{}
	}
	return marker{loginAt: la, consentAt: ca}
}

// redirectError sends an authorization error to the (validated) redirect
// URI with state and iss (RFC 6749 §4.1.2.1, RFC 9207).
func (s *Server) redirectError(w http.ResponseWriter, redirect *url.URL, state string, err error) {
	code, status, desc, rfc := toRFCError(err)
	switch code {
	case "invalid_client", "invalid_grant", "invalid_state", "not_found", "unsupported_response_mode", "registration_not_supported":
		code = "invalid_request"
	}
	if status >= 500 {
		s.log.Error("authorize failed", "error", code, "debug", rfc.Debug(), "cause", errors.Unwrap(err))
		if code != "temporarily_unavailable" {
			code = "server_error"
		}
	}
	s.metrics.authorize.WithLabelValues("error").Inc()
	s.metrics.errors.WithLabelValues("authorize", errorLabel(code)).Inc()
	u := *redirect
	u.Fragment = ""
	q := u.Query()
	q.Set("error", code)
	if desc != "" {
		q.Set("error_description", desc)
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	noStore(w)
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusSeeOther)
}

var errorPageTmpl = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorization error</title></head>
<body><main><h1>Authorization error</h1><p>{{.Message}}</p><p><code>{{.Code}}</code></p>
<p>You can close this window. If the problem persists, contact the application's operator.</p></main></body></html>
`))

// errorPage renders an error the browser must not be redirected for
// (unknown client, bad redirect_uri, malformed request). Only fixed texts
// are shown; nothing from the request is echoed.
func (s *Server) errorPage(w http.ResponseWriter, status int, code, message string) {
	s.metrics.authorize.WithLabelValues("error_page").Inc()
	s.metrics.errors.WithLabelValues("authorize", errorLabel(code)).Inc()
	h := w.Header()
	noStore(w)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = errorPageTmpl.Execute(w, struct{ Code, Message string }{code, message})
}
