package identity

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sekisho/sekisho/internal/store"
)

// Request bounds.
const (
	maxFormBytes   = 64 << 10
	maxRawQuery    = 2 * maxReturnToLen
	maxScopes      = 64
	maxScopeLen    = 256
	maxClientIDLen = 256
	maxListed      = 500 // consents shown on the account page
)

// ---- helpers -------------------------------------------------------------

// parsePost bounds and parses a form POST. It answers the error itself and
// returns false when the body is unusable.
func (s *Service) parsePost(w http.ResponseWriter, r *http.Request, loc string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.renderError(w, r, http.StatusRequestEntityTooLarge, loc, "error_too_large")
			return false
		}
		s.renderError(w, r, http.StatusBadRequest, loc, "error_bad_request")
		return false
	}
	return true
}

// postValue returns the single value of a form field; a field sent twice is
// treated as absent (parameter pollution).
func postValue(r *http.Request, name string) string {
	v := r.PostForm[name]
	if len(v) != 1 {
		return ""
	}
	return v[0]
}

// queryReturnTo reads and validates return_to from the URL query.
func (s *Service) queryReturnTo(r *http.Request) (string, url.Values, returnKind) {
	if len(r.URL.RawQuery) > maxRawQuery {
		return "", nil, returnInvalid
	}
	q := r.URL.Query()
	if len(q["return_to"]) != 1 {
		return "", nil, returnInvalid
	}
	return s.parseReturnTo(q.Get("return_to"))
}

// continueTo answers a successful POST that must continue at target (a
// validated same-origin path) with a page that navigates there by meta
// refresh. A 303 would be simpler, but Chrome and Safari apply the page's
// CSP form-action to every redirect that follows a form submission, and the
// authorize endpoint redirects on to the client's redirect_uri, which
// form-action 'self' would block. A refresh is a new navigation.
func (s *Service) continueTo(w http.ResponseWriter, r *http.Request, loc, target string) {
	d := s.newPage(loc)
	d.Refresh = target
	s.render(w, r, http.StatusOK, pageContinue, d)
}

func displayName(u *store.User) string {
	if u == nil {
		return ""
	}
	return u.Username
}

// requestedScopes splits and bounds the scope parameter, dropping
// duplicates; ok=false when over the bounds.
func requestedScopes(v string) ([]string, bool) {
	f := strings.Fields(v)
	if len(f) > maxScopes {
		return nil, false
	}
	out := make([]string, 0, len(f))
	for _, sc := range f {
		if len(sc) > maxScopeLen || !utf8.ValidString(sc) {
			return nil, false
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, true
}

// activeClient returns the enabled client id, or nil.
func (s *Service) activeClient(r *http.Request, id string) (*store.Client, error) {
	if id == "" || len(id) > maxClientIDLen {
		return nil, nil
	}
	c, err := s.st.GetClient(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c.Disabled {
		return nil, nil
	}
	return c, nil
}

func clientName(c *store.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// ---- login ---------------------------------------------------------------

func (s *Service) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	rt, vals, kind := s.queryReturnTo(r)
	loc := s.pickLocale(r, vals)
	d := s.newPage(loc)
	if kind != returnInvalid {
		d.ReturnTo = rt
	}
	if _, u, err := s.session(r); err == nil {
		d.User = displayName(u)
	}
	s.fillLoginContext(r, d, vals)
	d.CSRF = s.csrfToken(w, r, purposeLogin, nil)
	s.render(w, r, http.StatusOK, pageLogin, d)
}

// fillLoginContext shows which client the login is for and prefills
// login_hint from the authorize request.
func (s *Service) fillLoginContext(r *http.Request, d *pageData, authz url.Values) {
	if authz == nil {
		return
	}
	if c, err := s.activeClient(r, authz.Get("client_id")); err == nil && c != nil {
		d.Client = clientName(c)
	}
	if d.Username == "" {
		if h := authz.Get("login_hint"); len(h) <= maxLoginNameLen && utf8.ValidString(h) {
			d.Username = h
		}
	}
}

func (s *Service) handleLoginPost(w http.ResponseWriter, r *http.Request) {
	if !s.parsePost(w, r, s.pickLocale(r, nil)) {
		return
	}
	rt, vals, kind := s.parseReturnTo(postValue(r, "return_to"))
	loc := s.pickLocale(r, vals)
	if !s.checkCSRF(r, purposeLogin, nil) {
		s.renderError(w, r, http.StatusForbidden, loc, "error_forbidden")
		return
	}
	username := strings.TrimSpace(postValue(r, "username"))
	password := postValue(r, "password")

	again := func(status int, msgKey string) {
		d := s.newPage(loc)
		if kind != returnInvalid {
			d.ReturnTo = rt
		}
		if utf8.ValidString(username) && len(username) <= maxLoginNameLen {
			d.Username = username
		}
		s.fillLoginContext(r, d, vals)
		d.Error = d.L[msgKey]
		d.CSRF = s.csrfToken(w, r, purposeLogin, nil)
		s.render(w, r, status, pageLogin, d)
	}
	if username == "" || password == "" {
		again(http.StatusBadRequest, "login_missing")
		return
	}

	ip := s.o.ClientIP(r)
	if ok, retry := s.throttle.Attempt(username, ip); !ok {
		s.metrics.logins.WithLabelValues(resultThrottled).Inc()
		s.log.WarnContext(r.Context(), "identity: login throttled", "client_ip", ip.String())
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		again(http.StatusTooManyRequests, "login_throttled")
		return
	}
	u, err := s.users.authenticate(r.Context(), username, password)
	var le *loginError
	switch {
	case errors.As(err, &le):
		s.metrics.logins.WithLabelValues(resultFailure).Inc()
		s.log.InfoContext(r.Context(), "identity: login failed", "reason", le.reason, "user_id", le.userID)
		again(http.StatusOK, "login_failed")
		return
	case err != nil:
		s.metrics.logins.WithLabelValues(resultError).Inc()
		s.log.ErrorContext(r.Context(), "identity: login", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	s.throttle.Succeeded(username, ip)
	if err := s.startSession(r.Context(), w, r, u.ID); err != nil {
		s.metrics.logins.WithLabelValues(resultError).Inc()
		s.log.ErrorContext(r.Context(), "identity: start session", "user_id", u.ID, "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	s.metrics.logins.WithLabelValues(resultSuccess).Inc()
	s.log.InfoContext(r.Context(), "identity: login succeeded", "user_id", u.ID)
	switch kind {
	case returnAuthorize:
		s.continueTo(w, r, loc, s.withoutPrompt(vals, "login"))
	case returnAccount:
		http.Redirect(w, r, rt, http.StatusSeeOther)
	default:
		// No (valid) destination: a neutral page of our own.
		http.Redirect(w, r, s.accountPath(), http.StatusSeeOther)
	}
}

// ---- consent -------------------------------------------------------------

// consentRequest is the validated authorize request behind a consent page.
type consentRequest struct {
	returnTo string
	vals     url.Values
	client   *store.Client
	scopes   []string
}

// loadConsentRequest validates return_to (which must be an authorize URL)
// and its client and scopes. It renders the error itself and returns nil.
func (s *Service) loadConsentRequest(w http.ResponseWriter, r *http.Request, rt string, vals url.Values, kind returnKind, loc string) *consentRequest {
	if kind != returnAuthorize {
		s.renderError(w, r, http.StatusBadRequest, loc, "error_bad_request")
		return nil
	}
	scopes, ok := requestedScopes(vals.Get("scope"))
	if !ok {
		s.renderError(w, r, http.StatusBadRequest, loc, "error_bad_request")
		return nil
	}
	c, err := s.activeClient(r, vals.Get("client_id"))
	if err != nil {
		s.log.ErrorContext(r.Context(), "identity: get client", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return nil
	}
	if c == nil {
		s.renderError(w, r, http.StatusBadRequest, loc, "error_unknown_client")
		return nil
	}
	return &consentRequest{returnTo: rt, vals: vals, client: c, scopes: scopes}
}

func (s *Service) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	rt, vals, kind := s.queryReturnTo(r)
	loc := s.pickLocale(r, vals)
	sess, u, err := s.session(r)
	if err != nil {
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	if sess == nil && kind == returnAuthorize {
		http.Redirect(w, r, s.LoginURL(rt), http.StatusFound)
		return
	}
	cr := s.loadConsentRequest(w, r, rt, vals, kind, loc)
	if cr == nil {
		return
	}
	d := s.newPage(loc)
	d.User = displayName(u)
	d.ReturnTo = cr.returnTo
	d.Client = clientName(cr.client)
	d.ClientID = cr.client.ID
	d.Scopes = s.describeScopes(loc, cr.scopes)
	d.CSRF = s.csrfToken(w, r, purposeConsent, s.sessionHash(r))
	s.render(w, r, http.StatusOK, pageConsent, d)
}

func (s *Service) handleConsentPost(w http.ResponseWriter, r *http.Request) {
	if !s.parsePost(w, r, s.pickLocale(r, nil)) {
		return
	}
	rt, vals, kind := s.parseReturnTo(postValue(r, "return_to"))
	loc := s.pickLocale(r, vals)
	sess, u, err := s.session(r)
	if err != nil {
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	if sess == nil {
		// Session expired while the page was open: sign in again, then the
		// authorize endpoint brings the consent page back.
		if kind == returnAuthorize {
			http.Redirect(w, r, s.LoginURL(rt), http.StatusSeeOther)
			return
		}
		s.renderError(w, r, http.StatusForbidden, loc, "error_forbidden")
		return
	}
	sessHash := s.sessionHash(r)
	if !s.checkCSRF(r, purposeConsent, sessHash) {
		s.renderError(w, r, http.StatusForbidden, loc, "error_forbidden")
		return
	}
	cr := s.loadConsentRequest(w, r, rt, vals, kind, loc)
	if cr == nil {
		return
	}
	next := s.withoutPrompt(cr.vals, "consent")
	switch postValue(r, "decision") {
	case "allow":
		if err := s.saveConsent(r, u.ID, cr); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				s.renderError(w, r, http.StatusBadRequest, loc, "error_unknown_client")
				return
			}
			s.log.ErrorContext(r.Context(), "identity: save consent", "user_id", u.ID, "client_id", cr.client.ID, "err", err)
			s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
			return
		}
		s.metrics.consents.WithLabelValues("allow").Inc()
		s.log.InfoContext(r.Context(), "identity: consent granted", "user_id", u.ID, "client_id", cr.client.ID)
	case "deny":
		_, q, _ := strings.Cut(next, "?")
		s.setDenial(w, r, sessHash, q)
		s.metrics.consents.WithLabelValues("deny").Inc()
		s.log.InfoContext(r.Context(), "identity: consent denied", "user_id", u.ID, "client_id", cr.client.ID)
	default:
		s.renderError(w, r, http.StatusBadRequest, loc, "error_bad_request")
		return
	}
	s.continueTo(w, r, loc, next)
}

// saveConsent remembers the requested scopes, merged with a still-valid
// earlier consent for the same client.
func (s *Service) saveConsent(r *http.Request, userID string, cr *consentRequest) error {
	ctx := r.Context()
	return s.st.InTx(ctx, func(ctx context.Context) error {
		scopes := slices.Clone(cr.scopes)
		prev, err := s.st.GetConsent(ctx, userID, cr.client.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case prev.ExpiresAt.IsZero() || s.now().Before(prev.ExpiresAt):
			scopes = append(scopes, prev.Scopes...)
		}
		slices.Sort(scopes)
		scopes = slices.Compact(scopes)
		now := s.now().UTC()
		c := &store.Consent{UserID: userID, ClientID: cr.client.ID, Scopes: scopes, CreatedAt: now}
		if s.o.ConsentTTL > 0 {
			c.ExpiresAt = now.Add(s.o.ConsentTTL)
		}
		return s.st.SaveConsent(ctx, c)
	})
}

// ---- logout --------------------------------------------------------------

func (s *Service) handleLogoutPage(w http.ResponseWriter, r *http.Request) {
	loc := s.pickLocale(r, nil)
	sess, u, err := s.session(r)
	if err != nil {
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	d := s.newPage(loc)
	if sess == nil {
		s.render(w, r, http.StatusOK, pageSignedOut, d)
		return
	}
	d.User = displayName(u)
	d.CSRF = s.csrfToken(w, r, purposeLogout, s.sessionHash(r))
	s.render(w, r, http.StatusOK, pageLogout, d)
}

func (s *Service) handleLogoutPost(w http.ResponseWriter, r *http.Request) {
	loc := s.pickLocale(r, nil)
	if !s.parsePost(w, r, loc) {
		return
	}
	sess, _, err := s.session(r)
	if err != nil {
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	if sess != nil {
		if !s.checkCSRF(r, purposeLogout, s.sessionHash(r)) {
			s.renderError(w, r, http.StatusForbidden, loc, "error_forbidden")
			return
		}
		if _, err := s.endSession(w, r); err != nil {
			s.log.ErrorContext(r.Context(), "identity: logout", "err", err)
			s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
			return
		}
	}
	http.Redirect(w, r, s.o.BasePath+"/logout", http.StatusSeeOther)
}

// ---- account: remembered consents ---------------------------------------

func (s *Service) handleConsentsPage(w http.ResponseWriter, r *http.Request) {
	loc := s.pickLocale(r, nil)
	sess, u, err := s.session(r)
	if err != nil {
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	if sess == nil {
		http.Redirect(w, r, s.LoginURL(s.accountPath()), http.StatusFound)
		return
	}
	list, err := s.st.ListConsents(r.Context(), u.ID)
	if err != nil {
		s.log.ErrorContext(r.Context(), "identity: list consents", "user_id", u.ID, "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	d := s.newPage(loc)
	d.User = displayName(u)
	now := s.now()
	for _, c := range list {
		if len(d.Consents) == maxListed {
			break
		}
		if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
			continue
		}
		name := c.ClientID
		if cl, err := s.st.GetClient(r.Context(), c.ClientID); err == nil && cl.Name != "" {
			name = cl.Name
		}
		d.Consents = append(d.Consents, consentView{
			Client:     name,
			ClientID:   c.ClientID,
			Created:    c.CreatedAt.UTC().Format(d.L["date_format"]),
			CreatedISO: c.CreatedAt.UTC().Format(time.RFC3339),
			Scopes:     s.describeScopes(loc, c.Scopes),
		})
	}
	d.CSRF = s.csrfToken(w, r, purposeRevoke, s.sessionHash(r))
	s.render(w, r, http.StatusOK, pageConsents, d)
}

func (s *Service) handleConsentRevoke(w http.ResponseWriter, r *http.Request) {
	loc := s.pickLocale(r, nil)
	if !s.parsePost(w, r, loc) {
		return
	}
	sess, u, err := s.session(r)
	if err != nil {
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	if sess == nil || !s.checkCSRF(r, purposeRevoke, s.sessionHash(r)) {
		s.renderError(w, r, http.StatusForbidden, loc, "error_forbidden")
		return
	}
	clientID := postValue(r, "client_id")
	if clientID == "" || len(clientID) > maxClientIDLen {
		s.renderError(w, r, http.StatusBadRequest, loc, "error_bad_request")
		return
	}
	err = s.st.DeleteConsent(r.Context(), u.ID, clientID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.ErrorContext(r.Context(), "identity: revoke consent", "user_id", u.ID, "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, loc, "error_internal")
		return
	}
	if err == nil {
		s.metrics.consents.WithLabelValues("revoke").Inc()
		s.log.InfoContext(r.Context(), "identity: consent revoked", "user_id", u.ID, "client_id", clientID)
	}
	// Run the hook even when nothing was stored: tokens issued under an
	// earlier consent may still exist.
	if s.o.OnConsentRevoked != nil {
		s.o.OnConsentRevoked(u.ID, clientID)
	}
	http.Redirect(w, r, s.accountPath(), http.StatusSeeOther)
}
