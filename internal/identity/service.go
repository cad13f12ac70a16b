// Package identity is the user-facing half of Sekisho's authorization server:
// local users with argon2id passwords, login throttling, browser login
// sessions, remembered consent, and the server-rendered login, consent,
// logout and account pages (English and Japanese, strict CSP, no JavaScript).
//
// The OAuth protocol layer (internal/oauth) asks this package who is signed
// in (CurrentUser), whether consent is remembered (HasConsent), whether the
// user just refused consent (ConsentDenied), and where to send the browser
// (LoginURL, ConsentURL). It ends sessions through EndSession. Users are
// managed through UserService (the `sekisho users` CLI).
//
// See doc.go for the security design (cookies, CSRF, throttling, return_to
// validation, the consent-denial handshake).
package identity

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/store"
)

// Options configures a Service. The lead maps the YAML config onto it; zero
// values take the documented defaults. New validates it.
type Options struct {
	// Issuer is the public base URL of the authorization server, e.g.
	// "https://auth.example.com" (scheme and host; a path is allowed). Its
	// origin is the expected Origin of form posts, and an https Issuer makes
	// every cookie Secure with the __Host- prefix. Required.
	Issuer string

	// BasePath is the path prefix the pages are mounted under ("" by default,
	// e.g. "/auth"). It must start with "/" and not end with "/".
	BasePath string

	// AuthorizePath is the path of the OAuth authorize endpoint that return_to
	// values must point at. Default BasePath+"/oauth2/authorize".
	AuthorizePath string

	// Secret keys the HMACs of CSRF tokens and consent decisions (separate
	// keys are derived with HKDF-SHA256). At least 32 bytes of high-entropy
	// secret, the same on every node; passing the server master key is fine
	// because the derivation is domain-separated. Required.
	Secret []byte

	// CookieName is the base name of the login session cookie
	// (default "sekisho_session"). When the cookie is Secure it is sent as
	// "__Host-" + CookieName.
	CookieName string

	// CookieSecure forces Secure cookies even on requests that arrived over
	// plain HTTP (e.g. behind a TLS-terminating proxy). Cookies are always
	// Secure when the request used TLS or Issuer is https.
	CookieSecure bool

	// SessionTTL is the absolute lifetime of a login session (default 8h,
	// maximum 30 days). There is no idle timeout: see doc.go.
	SessionTTL time.Duration

	// ConsentTTL bounds how long a remembered consent lasts (0 = until revoked).
	ConsentTTL time.Duration

	// Password holds the argon2id parameters and password policy.
	Password PasswordOptions

	// Throttle holds the login throttling limits.
	Throttle ThrottleOptions

	// ScopeDescriptions adds or overrides the human descriptions shown on the
	// consent page: scope -> locale ("en", "ja") -> text. Scopes without a
	// description are shown by name.
	ScopeDescriptions map[string]map[string]string

	// ClientIP returns the client address used for per-IP throttling. Default:
	// the host part of r.RemoteAddr. Behind trusted proxies pass the gateway's
	// resolved client address.
	ClientIP func(r *http.Request) netip.Addr

	// OnUserDisabled is called after a user was disabled so the caller can
	// revoke that user's tokens. It must not block for long.
	OnUserDisabled func(userID string)

	// OnConsentRevoked is called after a user revoked the consent of a client
	// on the account page, so the caller can revoke the tokens that client
	// holds for the user.
	OnConsentRevoked func(userID, clientID string)

	// Logger receives structured logs (user IDs, never usernames, e-mail
	// addresses or passwords). Default: discard.
	Logger *slog.Logger

	// Registerer receives the package metrics. Default: metrics are not exported.
	Registerer prometheus.Registerer

	// Now is the clock (default time.Now); tests inject a fake one.
	Now func() time.Time
}

// Defaults and bounds.
const (
	DefaultCookieName = "sekisho_session"
	DefaultSessionTTL = 8 * time.Hour
	MaxSessionTTL     = 30 * 24 * time.Hour
	// maxReturnToLen bounds return_to (an authorize URL with its query).
	maxReturnToLen = 8192
	// consentDenialTTL is how long the signed "consent denied" decision
	// waits for the authorize endpoint to pick it up.
	consentDenialTTL = 2 * time.Minute
	minSecretLen     = 32
)

// Service serves the login, consent, logout and account pages and answers the
// OAuth layer's questions about the browser session. It is safe for
// concurrent use.
type Service struct {
	st       store.Store
	users    *UserService
	o        Options
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	throttle *Throttler
	csrfKey  []byte
	denyKey  []byte
	issuer   *url.URL
	origin   string // scheme://host[:port] of Issuer
	pages    map[string]*template.Template
	locales  *locales
	static   map[string]staticFile
	cssPath  string // versioned URL of the stylesheet
}

// New builds a Service on st. It validates o and returns a descriptive error
// for the first problem found.
func New(st store.Store, o Options) (*Service, error) {
	if st == nil {
		return nil, errors.New("identity: nil store")
	}
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	users, err := newUserService(st, UserOptions{
		Password:       o.Password,
		OnUserDisabled: o.OnUserDisabled,
		Logger:         log,
		Now:            o.Now,
	})
	if err != nil {
		return nil, err
	}
	th, err := NewThrottler(o.Throttle, o.Now)
	if err != nil {
		return nil, err
	}
	iss, _ := url.Parse(o.Issuer) // validated in setDefaults
	s := &Service{
		st:       st,
		users:    users,
		o:        o,
		log:      log,
		now:      o.Now,
		metrics:  m,
		throttle: th,
		csrfKey:  deriveKey(o.Secret, "sekisho identity csrf v1"),
		denyKey:  deriveKey(o.Secret, "sekisho identity consent-denial v1"),
		issuer:   iss,
		origin:   iss.Scheme + "://" + iss.Host,
	}
	if err := s.loadUI(); err != nil {
		return nil, err
	}
	return s, nil
}

func (o *Options) setDefaults() error {
	if o.Issuer == "" {
		return errors.New("identity: Issuer is required (public base URL of the authorization server)")
	}
	iss, err := url.Parse(o.Issuer)
	if err != nil || (iss.Scheme != "https" && iss.Scheme != "http") || iss.Host == "" ||
		iss.User != nil || iss.RawQuery != "" || iss.Fragment != "" {
		return fmt.Errorf("identity: Issuer %q must be an absolute http(s) URL without userinfo, query or fragment", o.Issuer)
	}
	if o.BasePath != "" {
		if err := checkPathOption(o.BasePath); err != nil {
			return fmt.Errorf("identity: BasePath: %w", err)
		}
	}
	if o.AuthorizePath == "" {
		o.AuthorizePath = o.BasePath + "/oauth2/authorize"
	}
	if err := checkPathOption(o.AuthorizePath); err != nil {
		return fmt.Errorf("identity: AuthorizePath: %w", err)
	}
	if len(o.Secret) < minSecretLen {
		return fmt.Errorf("identity: Secret must be at least %d bytes (got %d)", minSecretLen, len(o.Secret))
	}
	if o.CookieName == "" {
		o.CookieName = DefaultCookieName
	}
	if !validCookieName(o.CookieName) {
		return fmt.Errorf("identity: CookieName %q: use 1-64 characters from [A-Za-z0-9_-] without the __Host-/__Secure- prefix (added automatically)", o.CookieName)
	}
	switch {
	case o.SessionTTL == 0:
		o.SessionTTL = DefaultSessionTTL
	case o.SessionTTL < time.Minute || o.SessionTTL > MaxSessionTTL:
		return fmt.Errorf("identity: SessionTTL %v outside [1m, %v]", o.SessionTTL, MaxSessionTTL)
	}
	if o.ConsentTTL < 0 {
		return fmt.Errorf("identity: ConsentTTL %v must not be negative", o.ConsentTTL)
	}
	if iss.Scheme == "https" {
		o.CookieSecure = true
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ClientIP == nil {
		o.ClientIP = remoteAddrIP
	}
	for scope, m := range o.ScopeDescriptions {
		if scope == "" || len(scope) > 256 {
			return fmt.Errorf("identity: ScopeDescriptions: invalid scope name %q", scope)
		}
		for loc, text := range m {
			if !isSupportedLocale(loc) {
				return fmt.Errorf("identity: ScopeDescriptions[%q]: unsupported locale %q (supported: en, ja)", scope, loc)
			}
			if len(text) > 512 {
				return fmt.Errorf("identity: ScopeDescriptions[%q][%q]: longer than 512 bytes", scope, loc)
			}
		}
	}
	return nil
}

// checkPathOption accepts "/seg/seg" paths made of unreserved characters.
func checkPathOption(p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || len(p) > 256 {
		return fmt.Errorf("%q must start with '/', not end with '/', contain no '//' and be at most 256 bytes", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%q must not contain dot segments", p)
		}
		for i := 0; i < len(seg); i++ {
			if !isUnreserved(seg[i]) {
				return fmt.Errorf("%q: character %q not allowed (use [A-Za-z0-9._~-])", p, seg[i])
			}
		}
	}
	return nil
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// Users returns the user management API sharing this Service's store and
// password settings.
func (s *Service) Users() *UserService { return s.users }

// CurrentUser returns the user of the request's valid login session and the
// time the user authenticated. It returns ok=false when there is no cookie,
// the session is unknown or expired, the user is disabled, or the password
// was changed after the session began. Store errors also yield ok=false
// (fail closed) and are logged.
func (s *Service) CurrentUser(r *http.Request) (u *store.User, authTime time.Time, ok bool) {
	sess, u, err := s.session(r)
	if err != nil || sess == nil {
		return nil, time.Time{}, false
	}
	return u, sess.AuthTime, true
}

// HasConsent reports whether userID has a remembered, unexpired consent for
// clientID covering every scope in scopes.
func (s *Service) HasConsent(ctx context.Context, userID, clientID string, scopes []string) (bool, error) {
	c, err := s.st.GetConsent(ctx, userID, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("identity: get consent for client %q: %w", clientID, err)
	}
	if !c.ExpiresAt.IsZero() && !s.now().Before(c.ExpiresAt) {
		return false, nil
	}
	return containsAll(c.Scopes, scopes), nil
}

// LoginURL returns the login page URL that comes back to returnTo (normally
// the current authorize request URI: path and query) after a successful
// login. returnTo is validated again when the login page uses it.
func (s *Service) LoginURL(returnTo string) string {
	return s.o.BasePath + "/login?return_to=" + url.QueryEscape(returnTo)
}

// ConsentURL returns the consent page URL for the authorize request returnTo.
// The consent page reads client_id and scope from returnTo's query.
func (s *Service) ConsentURL(returnTo string) string {
	return s.o.BasePath + "/consent?return_to=" + url.QueryEscape(returnTo)
}

// ConsentDenied reports whether the user just refused consent for exactly
// this authorize request (same query string, same login session), as
// recorded by the consent page in a short-lived HMAC-signed cookie. A true
// result consumes the decision (the cookie is cleared), so the authorize
// endpoint must then answer access_denied. See doc.go.
func (s *Service) ConsentDenied(w http.ResponseWriter, r *http.Request) bool {
	return s.consumeDenial(w, r)
}

// EndSession ends the request's login session: it deletes the session from
// the store and expires the cookie. It returns the user ID of the ended
// session ("" when there was none). The OIDC end-session endpoint calls it
// after deciding (confirmation, id_token_hint) that the logout is wanted.
func (s *Service) EndSession(w http.ResponseWriter, r *http.Request) (userID string, err error) {
	return s.endSession(w, r)
}

// Routes registers the pages on mux under BasePath:
//
//	GET  /login, POST /login                  sign in
//	GET  /consent, POST /consent              allow or deny a client
//	GET  /logout, POST /logout                confirm and sign out (GET without a session: signed-out page)
//	GET  /account/consents                    remembered consents
//	POST /account/consents/revoke             revoke one
//	GET  /static/sekisho.css                  stylesheet (long cache)
func (s *Service) Routes(mux *http.ServeMux) {
	b := s.o.BasePath
	page := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// Also on redirects and errors: nothing here may be cached or framed.
			setPageHeaders(w.Header())
			h(w, r)
		}
	}
	mux.HandleFunc("GET "+b+"/login", page(s.handleLoginPage))
	mux.HandleFunc("POST "+b+"/login", page(s.handleLoginPost))
	mux.HandleFunc("GET "+b+"/consent", page(s.handleConsentPage))
	mux.HandleFunc("POST "+b+"/consent", page(s.handleConsentPost))
	mux.HandleFunc("GET "+b+"/logout", page(s.handleLogoutPage))
	mux.HandleFunc("POST "+b+"/logout", page(s.handleLogoutPost))
	mux.HandleFunc("GET "+b+"/account/consents", page(s.handleConsentsPage))
	mux.HandleFunc("POST "+b+"/account/consents/revoke", page(s.handleConsentRevoke))
	mux.HandleFunc("GET "+b+"/static/{file}", s.handleStatic)
}

func containsAll(have, want []string) bool {
	set := make(map[string]struct{}, len(have))
	for _, h := range have {
		set[h] = struct{}{}
	}
	for _, w := range want {
		if _, ok := set[w]; !ok {
			return false
		}
	}
	return true
}
