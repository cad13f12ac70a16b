package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sekisho/sekisho/internal/problem"
	"github.com/sekisho/sekisho/internal/store"
)

// maxAdminBody bounds admin request bodies (a JWKS with a few RSA keys fits).
const maxAdminBody = 128 << 10

// clientRequest is the admin API body of POST /clients.
type clientRequest struct {
	ClientID                string          `json:"client_id"`
	Name                    string          `json:"name"`
	Public                  bool            `json:"public"`
	RedirectURIs            []string        `json:"redirect_uris"`
	PostLogoutRedirectURIs  []string        `json:"post_logout_redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	Scopes                  []string        `json:"scopes"`
	Audiences               []string        `json:"audiences"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage `json:"jwks"`
	AccessTokenTTL          string          `json:"access_token_ttl"`  // Go duration, e.g. "15m"
	RefreshTokenTTL         string          `json:"refresh_token_ttl"` // e.g. "720h"
}

// clientResponse is a client as the admin API shows it.
type clientResponse struct {
	*ClientInfo
	AccessTokenTTL  string `json:"access_token_ttl,omitempty"`
	RefreshTokenTTL string `json:"refresh_token_ttl,omitempty"`
	// ClientSecret is present once: in the response that created or rotated it.
	ClientSecret string `json:"client_secret,omitempty"`
}

func respOf(ci *ClientInfo, secret string) clientResponse {
	r := clientResponse{ClientInfo: ci, ClientSecret: secret}
	if ci.AccessTokenTTL > 0 {
		r.AccessTokenTTL = ci.AccessTokenTTL.String()
	}
	if ci.RefreshTokenTTL > 0 {
		r.RefreshTokenTTL = ci.RefreshTokenTTL.String()
	}
	return r
}

// AdminHandler returns the JSON API for client management. It does no
// authentication itself: mount it on the admin listener behind the admin
// authentication, with the prefix stripped, e.g.
//
//	mux.Handle("/api/v1/oauth/", adminAuth(http.StripPrefix("/api/v1/oauth", srv.Clients().AdminHandler())))
//
// Routes (relative to the mount point):
//
//	GET    /clients?after=ID&limit=N     list (ordered by ID)
//	POST   /clients                      create; 201 with client_secret (shown once)
//	GET    /clients/{id}                 show
//	POST   /clients/{id}/rotate-secret   new secret (shown once)
//	POST   /clients/{id}/disable         disable and revoke its tokens
//	POST   /clients/{id}/enable          enable again
//	DELETE /clients/{id}                 revoke its tokens and delete
//
// Errors are RFC 9457 problem documents; responses are never cached.
func (cs *ClientService) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /clients", cs.adminList)
	mux.HandleFunc("POST /clients", cs.adminCreate)
	mux.HandleFunc("GET /clients/{id}", cs.adminGet)
	mux.HandleFunc("POST /clients/{id}/rotate-secret", cs.adminRotate)
	mux.HandleFunc("POST /clients/{id}/disable", cs.adminDisable(true))
	mux.HandleFunc("POST /clients/{id}/enable", cs.adminDisable(false))
	mux.HandleFunc("DELETE /clients/{id}", cs.adminDelete)
	return mux
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		problem.WriteID(w, "", http.StatusInternalServerError, "encoding the response failed")
		return
	}
	noStore(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// adminError maps service errors to problem responses. Validation messages
// are the service's own texts (bounded; the caller is an authenticated
// operator); infrastructure errors are not detailed.
func (cs *ClientService) adminError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrInvalidClientSpec):
		problem.Write(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNotFound):
		problem.Write(w, r, http.StatusNotFound, "client not found")
	case errors.Is(err, store.ErrConflict):
		problem.Write(w, r, http.StatusConflict, "a client with this ID already exists")
	case errors.Is(err, store.ErrInvalid):
		problem.Write(w, r, http.StatusBadRequest, "the request violates a storage bound")
	default:
		cs.log.Error("admin client API failed", "err", err)
		problem.Write(w, r, http.StatusInternalServerError, "the operation failed; see the server log")
	}
}

func (cs *ClientService) adminList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := store.Page{After: q.Get("after")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			problem.Write(w, r, http.StatusBadRequest, "limit must be an integer between 1 and 5000")
			return
		}
		p.Limit = n
	}
	list, err := cs.List(r.Context(), p)
	if err != nil {
		cs.adminError(w, r, err)
		return
	}
	out := make([]clientResponse, 0, len(list))
	for i := range list {
		out = append(out, respOf(&list[i], ""))
	}
	adminJSON(w, http.StatusOK, map[string]any{"clients": out})
}

func (cs *ClientService) adminCreate(w http.ResponseWriter, r *http.Request) {
	var req clientRequest
	if err := decodeStrictJSON(http.MaxBytesReader(w, r.Body, maxAdminBody), &req); err != nil {
		problem.Write(w, r, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	spec := ClientSpec{
		ID: req.ClientID, Name: req.Name, Public: req.Public,
		RedirectURIs: req.RedirectURIs, PostLogoutRedirectURIs: req.PostLogoutRedirectURIs,
		GrantTypes: req.GrantTypes, Scopes: req.Scopes, Audiences: req.Audiences,
		TokenEndpointAuthMethod: req.TokenEndpointAuthMethod, JWKS: req.JWKS,
	}
	var err error
	if spec.AccessTokenTTL, err = parseTTL(req.AccessTokenTTL); err != nil {
		problem.Write(w, r, http.StatusBadRequest, "access_token_ttl: "+err.Error())
		return
	}
	if spec.RefreshTokenTTL, err = parseTTL(req.RefreshTokenTTL); err != nil {
		problem.Write(w, r, http.StatusBadRequest, "refresh_token_ttl: "+err.Error())
		return
	}
	ci, secret, err := cs.Create(r.Context(), spec)
	if err != nil {
		cs.adminError(w, r, err)
		return
	}
	adminJSON(w, http.StatusCreated, respOf(ci, secret))
}

func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("must be a duration such as 15m or 720h")
	}
	return d, nil
}

func (cs *ClientService) adminGet(w http.ResponseWriter, r *http.Request) {
	ci, err := cs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		cs.adminError(w, r, err)
		return
	}
	adminJSON(w, http.StatusOK, respOf(ci, ""))
}

func (cs *ClientService) adminRotate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	secret, err := cs.RotateSecret(r.Context(), id)
	if err != nil {
		cs.adminError(w, r, err)
		return
	}
	adminJSON(w, http.StatusOK, map[string]string{"client_id": id, "client_secret": secret})
}

func (cs *ClientService) adminDisable(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := cs.SetDisabled(r.Context(), id, disabled); err != nil {
			cs.adminError(w, r, err)
			return
		}
		ci, err := cs.Get(r.Context(), id)
		if err != nil {
			cs.adminError(w, r, err)
			return
		}
		adminJSON(w, http.StatusOK, respOf(ci, ""))
	}
}

func (cs *ClientService) adminDelete(w http.ResponseWriter, r *http.Request) {
	if err := cs.Delete(r.Context(), r.PathValue("id")); err != nil {
		cs.adminError(w, r, err)
		return
	}
	noStore(w)
	w.WriteHeader(http.StatusNoContent)
}

// decodeStrictJSON decodes exactly one JSON object into v, refusing
// duplicate keys (at any depth), unknown fields and trailing data.
func decodeStrictJSON(r io.Reader, v any) error {
	body, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errors.New("body too large")
		}
		return errors.New("read failed")
	}
	if err := checkDuplicateKeys(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("does not match the expected object")
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// checkDuplicateKeys walks the JSON token stream and fails on a key that
// occurs twice in one object (Go's decoder would silently keep the last).
func checkDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]bool
		keyNow bool // next string token in this object is a key
	}
	var stack []*frame
	for depth := 0; ; {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errors.New("malformed JSON")
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if depth++; depth > 32 {
					return errors.New("JSON nested too deeply")
				}
				if top != nil && top.obj {
					top.keyNow = true // the container was a value
				}
				stack = append(stack, &frame{obj: t == '{', keys: map[string]bool{}, keyNow: true})
			case '}', ']':
				depth--
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].keyNow = true
				}
			}
		default:
			if top != nil && top.obj {
				if top.keyNow {
					k, _ := t.(string)
					if top.keys[k] {
						return fmt.Errorf("duplicate key %q", safeParamName(k))
					}
					top.keys[k] = true
					top.keyNow = false
				} else {
					top.keyNow = true
				}
			}
		}
	}
}
