package identity

// Security design
//
// # Passwords
//
// argon2id (golang.org/x/crypto/argon2) in PHC format
// "$argon2id$v=19$m=<KiB>,t=<iter>,p=<lanes>$<salt>$<hash>" (unpadded
// standard base64, as the reference implementation writes it; the tests
// verify vectors produced by libargon2). Defaults m=19 MiB, t=2, p=1 (OWASP),
// 16-byte salt, 32-byte key. Passwords are NFKC-normalized (NIST SP 800-63B),
// 12..1024 bytes/characters by default. A successful login whose hash has
// other parameters is re-hashed (compare-and-swap on the stored hash, so a
// concurrent set-password wins). Hash comparison is constant-time. The
// parser bounds every parameter so a tampered row cannot make one login
// allocate gigabytes, and MaxConcurrent bounds simultaneous computations.
//
// No user enumeration: an unknown username, a wrong password, a disabled
// user and an unusable stored hash all run exactly one argon2id computation
// (against a dummy hash when there is no user) and render the same page.
//
// # Throttling
//
// In memory, per node: a sliding-window log per account (SHA-256 of the
// case-folded username; unknown names are counted too, so a lock reveals
// nothing) and per client address (IPv4, IPv6 /64). Defaults: 5 failures per
// 15 minutes per account, 20 per minute per address. The attempt is counted
// before the password is checked (no parallel bypass) and released on
// success. A blocked attempt costs no hash and does not extend the lock.
// Tables are bounded (LRU eviction). Trade-off: a per-account lock lets an
// attacker keep one account locked (5 guesses per 15 minutes); the per-IP
// limit makes that cost many addresses.
//
// # Browser sessions
//
// Cookie value: 256 random bits, base64url. The store keeps only its
// SHA-256 (store.LoginSession.IDHash). Attributes: HttpOnly, SameSite=Lax
// (the session must ride the top-level redirect from a client to
// /oauth2/authorize), Path=/, host-only; Secure and the __Host- prefix when
// the request came over TLS, the Issuer is https, or CookieSecure is set.
// Every login issues a new value and deletes the previous session (no
// fixation). Lifetime: SessionTTL (default 8h) absolute, also the cookie's
// Max-Age. There is no idle timeout: store.LoginSessionStore has no way to
// record activity, and touching a row on every authorize request would put
// a write on that path; short absolute lifetimes are the control. A session
// is refused when its user is disabled or the password changed after it
// started; Disable and SetPassword also delete the user's sessions.
//
// # CSRF
//
// Every POST (login, consent, logout, consent revoke) needs
// csrf_token = HMAC-SHA256(K_csrf, "v1" | form | binding | sessionHash), where
// binding is a random per-browser cookie (sekisho_csrf, same attributes as
// the session cookie) and sessionHash binds the session-only forms to the
// login session. K_csrf is derived from Options.Secret with HKDF. In
// addition, a present Sec-Fetch-Site must be same-origin (or none) and a
// present, non-"null" Origin must be the issuer's or the request's own
// origin ("null" is what browsers send under our Referrer-Policy
// no-referrer, so it is left to the token). Failure is 403.
//
// # return_to
//
// Only two shapes are accepted, by exact prefix on the raw string:
// AuthorizePath + "?" + query (printable ASCII, no '\', '#', ';', duplicate
// or malformed parameters; re-encoded canonically), and
// BasePath + "/account/consents". Anything else is ignored and the user
// lands on our own account page after login: never an open redirect.
//
// # After a POST: continuation page, not a redirect
//
// Chrome and Safari apply the page's CSP form-action to every redirect that
// follows a form submission. A 303 from POST /login to /oauth2/authorize,
// which then redirects to the client's redirect_uri, would be blocked by
// form-action 'self'. Successful login and consent POSTs therefore answer
// 200 with a page that navigates on by <meta http-equiv="refresh"> (no
// script; a visible link for the rest). The new navigation is not a form
// submission, so the authorize endpoint can redirect anywhere fosite allows.
// prompt=login (after login) and prompt=consent (after a decision) are
// removed from the continued authorize URL so the user is not asked again.
//
// # Consent
//
// Remembered per (user, client) as the union of the scopes allowed so far
// (store.Consent), optionally expiring after ConsentTTL; HasConsent is true
// when the remembered set covers the requested scopes. The page shows the
// client's name and ID and each scope with its description (configured,
// built-in, or the scope name). It does not filter scopes against the
// client's allowed scopes: the OAuth layer grants requested ∩ allowed ∩
// consented. /account/consents lists and revokes consents (POST + CSRF);
// OnConsentRevoked lets the caller revoke the client's tokens for the user.
//
// Deny: the consent POST sets a cookie (sekisho_consent_denied, 2 minutes)
// holding exp | HMAC(K_deny, exp | sessionHash | SHA-256(authorize query)) and
// continues to the authorize URL. ConsentDenied verifies it against the
// current session and that exact query, clears it, and returns true once;
// the authorize endpoint then answers access_denied. It cannot be forged
// (HMAC), replayed by another browser (session-bound) or applied to another
// authorization request (query-bound: state, nonce, PKCE challenge).
//
// # Pages
//
// html/template, embedded (package web), base layout plus login, consent,
// logout confirmation, signed-out, error, account consents and continuation
// pages, in English and Japanese (ui_locales of the page URL, then of the
// authorize request, then Accept-Language, then English; <html lang>
// follows). Headers on every page: CSP "default-src 'none'; style-src
// 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none';
// base-uri 'none'", X-Frame-Options DENY, Referrer-Policy no-referrer,
// X-Content-Type-Options nosniff, Cache-Control no-store, COOP/CORP
// same-origin. No script, no inline style; one stylesheet under /static/
// with a content-hash version and a one-year immutable cache.
//
// # Logs and metrics
//
// Logs carry user IDs and client IDs, never usernames, e-mail addresses,
// passwords, cookie values or tokens. Metrics:
// sekisho_identity_login_attempts_total{result=success|failure|throttled|error}
// and sekisho_identity_consent_decisions_total{decision=allow|deny|revoke}.
