package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/gateway"
	"github.com/sekisho/sekisho/internal/identity"
	"github.com/sekisho/sekisho/internal/keys"
	"github.com/sekisho/sekisho/internal/oauth"
	"github.com/sekisho/sekisho/internal/problem"
	"github.com/sekisho/sekisho/internal/store"
)

// uiBase is where the login, consent and account pages live, under the
// authorization server's reserved /oauth2 prefix.
const uiBase = "/oauth2/ui"

// authServer is the built-in OAuth 2.0 / OIDC authorization server: signing
// keys, users and sessions, and the protocol endpoints.
type authServer struct {
	keys  *keys.Manager
	id    *identity.Service
	oauth *oauth.Server
	mux   *http.ServeMux
	ks    *managerKeySource
	deny  *durableRevoker
	log   *slog.Logger
	// maxTokenTTL bounds how long a deny-list entry must live.
	maxTokenTTL time.Duration
}

func newAuthServer(ctx context.Context, cfg *config.Config, e *extras) (*authServer, error) {
	ac := cfg.AuthServer
	master, err := config.DecodeKey(ac.MasterKey)
	if err != nil {
		return nil, configError{cfg.ErrorAt("authorization_server.master_key", "%v", err)}
	}
	as := &authServer{mux: http.NewServeMux(), deny: e.revoker, log: e.n.log, maxTokenTTL: oauth.HardMaxAccessTokenTTL}
	as.keys, err = keys.NewManager(e.st, keys.Options{
		MasterKey:        master,
		Alg:              ac.SigningAlg,
		RotateEvery:      ac.RotateEvery.D(),
		MaxTokenLifetime: max(ac.AccessTokenTTL.D(), oauth.DefaultIDTokenTTL) + time.Minute,
		Logger:           e.n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	if err := as.keys.Start(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	secure := strings.HasPrefix(ac.Issuer, "https://")
	as.id, err = identity.New(e.st, identity.Options{
		Issuer:        ac.Issuer,
		BasePath:      uiBase,
		AuthorizePath: "/oauth2/authorize",
		Secret:        master,
		CookieSecure:  secure,
		ClientIP:      gateway.ClientIP,
		OnUserDisabled: func(userID string) {
			if err := as.oauth.RevokeUser(context.Background(), userID); err != nil {
				e.n.log.Error("revoking tokens of a disabled user failed", "user_id", userID, "error", err)
			}
		},
		OnConsentRevoked: func(userID, clientID string) {
			if err := as.oauth.RevokeUserClient(context.Background(), userID, clientID); err != nil {
				e.n.log.Error("revoking tokens after consent revocation failed", "user_id", userID, "client_id", clientID, "error", err)
			}
		},
		Logger:     e.n.log,
		Registerer: e.n.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	as.oauth, err = oauth.New(oauth.Options{
		Issuer:           ac.Issuer,
		Store:            e.st,
		Keys:             as.keys,
		Identity:         as.id,
		Revoker:          e.revoker,
		MasterKey:        master,
		AccessTokenTTL:   ac.AccessTokenTTL.D(),
		RefreshTokenTTL:  ac.RefreshTokenTTL.D(),
		CodeTTL:          ac.CodeTTL.D(),
		LogoutConfirmURL: uiBase + "/logout",
		Logger:           e.n.log,
		Registerer:       e.n.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("authorization server: %w", err)
	}
	as.ks = newManagerKeySource(as.keys)
	as.oauth.Routes(as.mux)
	as.id.Routes(as.mux)
	e.n.gw.SetFallback(as.mux, authServerPaths)
	return as, nil
}

// authServerPaths are reserved for the authorization server on the public
// listeners; config validation refuses routes under them.
var authServerPaths = config.AuthServerPaths

// adminAPI is mounted on the admin listener behind the admin token:
// /admin/clients (client management, see oauth.ClientService.AdminHandler)
// and /admin/revocations (deny-list a user's, a client's or one token's
// access tokens at once).
func (as *authServer) adminAPI() map[string]http.Handler {
	return map[string]http.Handler{
		"/admin/clients":     http.StripPrefix("/admin", as.oauth.Clients().AdminHandler()),
		"/admin/revocations": http.HandlerFunc(as.handleRevocation),
	}
}

// revocationRequest names exactly one thing to revoke.
type revocationRequest struct {
	UserID   string    `json:"user_id"`
	ClientID string    `json:"client_id"`
	JTI      string    `json:"jti"`
	Exp      time.Time `json:"exp"` // with jti: the token's expiry (default: now + the longest access token lifetime)
}

func (as *authServer) handleRevocation(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		problem.Write(w, r, http.StatusMethodNotAllowed, "use POST")
		return
	}
	var req revocationRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		problem.Write(w, r, http.StatusBadRequest, "body must be JSON with one of user_id, client_id, jti")
		return
	}
	n := 0
	for _, v := range []string{req.UserID, req.ClientID, req.JTI} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		problem.Write(w, r, http.StatusBadRequest, "give exactly one of user_id, client_id, jti")
		return
	}
	ctx := r.Context()
	now := time.Now()
	until := now.Add(as.maxTokenTTL)
	var err error
	switch {
	case req.UserID != "":
		err = as.oauth.RevokeUser(ctx, req.UserID)
	case req.ClientID != "":
		// Through the client service, so this node's client cache forgets
		// the client at once and the cutoff covers tokens issued meanwhile.
		err = as.oauth.Clients().SetDisabled(ctx, req.ClientID, true)
		if errors.Is(err, store.ErrNotFound) { // deleted: deny-list what it holds
			cutoff := now.Add(11 * time.Second) // other nodes' client caches
			err = as.deny.RevokeClient(ctx, req.ClientID, cutoff, cutoff.Add(as.maxTokenTTL))
		}
	default:
		exp := req.Exp
		if exp.IsZero() || exp.After(until) {
			exp = until
		}
		err = as.deny.RevokeToken(ctx, req.JTI, exp)
	}
	if err != nil {
		as.log.Error("admin revocation failed", "error", err)
		problem.Write(w, r, http.StatusInternalServerError, "revocation failed; see the server log")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"revoked"}` + "\n"))
}

// keySource lets the gateway verify the server's own tokens in-process.
func (as *authServer) keySource() *managerKeySource { return as.ks }

func (as *authServer) close() { as.keys.Close() }

// managerKeySource adapts keys.Manager to authn.KeySource: Keys returns the
// published keys, KeysChanged a channel closed (and replaced) on each change.
type managerKeySource struct {
	m  *keys.Manager
	mu sync.Mutex
	ch chan struct{}
}

func newManagerKeySource(m *keys.Manager) *managerKeySource {
	k := &managerKeySource{m: m, ch: make(chan struct{})}
	m.Subscribe(func() {
		k.mu.Lock()
		close(k.ch)
		k.ch = make(chan struct{})
		k.mu.Unlock()
	})
	return k
}

func (k *managerKeySource) Keys(ctx context.Context) ([]jose.JSONWebKey, error) {
	return k.m.PublicKeys(), nil
}

func (k *managerKeySource) KeysChanged() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ch
}
