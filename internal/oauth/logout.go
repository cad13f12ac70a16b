package oauth

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// idHintClaims are the claims of an id_token_hint we look at.
type idHintClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	AZP      string   `json:"azp"`
}

// decodeIDTokenHint verifies an ID token this server issued (any published
// key; expiry is not checked, as RP-Initiated Logout allows expired hints)
// and returns its subject and client.
func (s *Server) decodeIDTokenHint(hint string) (sub, clientID string, err error) {
	p, err := s.keys.verifyJWS(hint)
	if err != nil {
		return "", "", err
	}
	if typ := strings.ToLower(p.header.Typ); typ != "" && typ != "jwt" {
		return "", "", errTokenType
	}
	var c idHintClaims
	if err := json.Unmarshal(p.payload, &c); err != nil {
		return "", "", errTokenMalformed
	}
	if c.Issuer != s.issuer || c.Subject == "" {
		return "", "", errTokenMalformed
	}
	switch {
	case c.AZP != "":
		clientID = c.AZP
	case len(c.Audience) == 1:
		clientID = c.Audience[0]
	default:
		return "", "", errTokenMalformed
	}
	return c.Subject, clientID, nil
}

// handleLogout serves /oauth2/logout (OIDC RP-Initiated Logout 1.0).
//
// The session ends at once only when a valid id_token_hint names the
// signed-in user: anything else goes to the identity layer's confirmation
// page (CSRF-protected), so a third-party page cannot sign users out. The
// browser is sent to post_logout_redirect_uri only if it exactly matches a
// URI registered by the client identified by the hint (or client_id);
// otherwise a local "signed out" page is shown. state is passed back.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "invalid_request", "The logout endpoint accepts GET and POST only.")
		return
	}
	form, msg := s.parseAuthorizeForm(w, r)
	if msg != "" {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	if s.identity == nil {
		s.errorPage(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Sign-out is not available.")
		return
	}
	var hintSub, clientID string
	hintValid := false
	if h := form.Get("id_token_hint"); h != "" {
		if sub, cid, err := s.decodeIDTokenHint(h); err == nil {
			hintSub, clientID, hintValid = sub, cid, true
		}
	}
	if cid := form.Get("client_id"); cid != "" {
		if hintValid && cid != clientID {
			s.errorPage(w, http.StatusBadRequest, "invalid_request", "The client_id does not match the id_token_hint.")
			return
		}
		clientID = cid
	}
	var target *url.URL
	if raw := form.Get("post_logout_redirect_uri"); raw != "" && clientID != "" {
		if c, err := s.clients.get(r.Context(), clientID); err == nil && slices.Contains(c.c.PostLogoutRedirectURIs, raw) {
			if u, err := url.Parse(raw); err == nil {
				target = u
			}
		}
	}

	user, _, signedIn := s.identity.CurrentUser(r)
	if signedIn {
		if !hintValid || hintSub != user.ID {
			// Not provably requested by the user's relying party: confirm.
			http.Redirect(w, r, s.o.LogoutConfirmURL, http.StatusSeeOther)
			return
		}
		if _, err := s.identity.EndSession(w, r); err != nil {
			s.log.Error("logout: end session", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "server_error", "Signing out failed. Please try again.")
			return
		}
	}
	if target != nil {
		q := target.Query()
		if st := form.Get("state"); st != "" {
			q.Set("state", st)
		}
		target.RawQuery = q.Encode()
		noStore(w)
		w.Header().Set("Location", target.String())
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	signedOutPage(w)
}

var signedOutTmpl = template.Must(template.New("out").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signed out</title></head>
<body><main><h1>You are signed out</h1><p>You can close this window.</p>
<p lang="ja">サインアウトしました。このウィンドウを閉じてください。</p></main></body></html>
`))

func signedOutPage(w http.ResponseWriter) {
	noStore(w)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	_ = signedOutTmpl.Execute(w, nil)
}
