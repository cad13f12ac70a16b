package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sekisho/sekisho/internal/store"
)

func TestClientSpecValidation(t *testing.T) {
	e := newEnv(t)
	key := must[*ecdsa.PrivateKey](t)(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	pubJWKS := must[[]byte](t)(json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k"}}}))
	privJWKS := must[[]byte](t)(json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k"}}}))
	bad := map[string]ClientSpec{
		"no name":                 {Name: " "},
		"bad id":                  {Name: "x", ID: "a b"},
		"id with slash":           {Name: "x", ID: "a/b"},
		"wildcard redirect":       {Name: "x", RedirectURIs: []string{"https://*.example.test/cb"}},
		"fragment redirect":       {Name: "x", RedirectURIs: []string{"https://a.test/cb#x"}},
		"http non-loopback":       {Name: "x", RedirectURIs: []string{"http://a.test/cb"}},
		"relative redirect":       {Name: "x", RedirectURIs: []string{"/cb"}},
		"custom scheme":           {Name: "x", RedirectURIs: []string{"com.example.app:/cb"}},
		"userinfo redirect":       {Name: "x", RedirectURIs: []string{"https://u@a.test/cb"}},
		"non-canonical redirect":  {Name: "x", RedirectURIs: []string{"https://a.test/c%62"}},
		"code without redirect":   {Name: "x", GrantTypes: []string{GrantAuthorizationCode}},
		"refresh without code":    {Name: "x", GrantTypes: []string{GrantClientCredentials, GrantRefreshToken}},
		"unknown grant":           {Name: "x", GrantTypes: []string{"password"}},
		"implicit grant":          {Name: "x", GrantTypes: []string{"implicit"}},
		"public with cc":          {Name: "x", Public: true, GrantTypes: []string{GrantClientCredentials}},
		"public with secret auth": {Name: "x", Public: true, TokenEndpointAuthMethod: AuthSecretBasic, RedirectURIs: []string{"https://a.test/cb"}},
		"confidential none":       {Name: "x", TokenEndpointAuthMethod: AuthNone},
		"pkjwt without jwks":      {Name: "x", TokenEndpointAuthMethod: AuthPrivateKeyJWT},
		"pkjwt private key":       {Name: "x", TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: privJWKS},
		"jwks without pkjwt":      {Name: "x", JWKS: pubJWKS},
		"bad scope":               {Name: "x", Scopes: []string{"a b"}},
		"duplicate scope":         {Name: "x", Scopes: []string{"a", "a"}},
		"audience with space":     {Name: "x", Audiences: []string{"a b"}},
		"ttl above bound":         {Name: "x", AccessTokenTTL: 2 * time.Hour},
		"ttl too short":           {Name: "x", AccessTokenTTL: time.Second},
		"refresh ttl above bound": {Name: "x", RefreshTokenTTL: 400 * 24 * time.Hour},
	}
	for name, spec := range bad {
		if _, _, err := e.srv.Clients().Create(context.Background(), spec); !errors.Is(err, ErrInvalidClientSpec) {
			t.Errorf("%s: got %v, want ErrInvalidClientSpec", name, err)
		}
	}

	// A good confidential client: secret shown once, stored as SHA-256.
	ci, secret, err := e.srv.Clients().Create(context.Background(), ClientSpec{Name: "svc", Scopes: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b64.DecodeString(secret)
	if err != nil || len(raw) < 32 {
		t.Fatalf("secret %q is not >= 256 bits of base64url", secret)
	}
	sc := must[*store.Client](t)(e.st.GetClient(context.Background(), ci.ID))
	sum := sha256.Sum256([]byte(secret))
	if string(sc.SecretHash) != string(sum[:]) || strings.Contains(string(sc.SecretHash), secret) {
		t.Error("secret not stored as its SHA-256")
	}
	if !slices.Equal(sc.GrantTypes, []string{GrantClientCredentials}) || sc.TokenEndpointAuthMethod != AuthSecretBasic {
		t.Errorf("defaults: %v %s", sc.GrantTypes, sc.TokenEndpointAuthMethod)
	}
	// Rotation: new secret works, old one does not.
	newSecret, err := e.srv.Clients().RotateSecret(context.Background(), ci.ID)
	if err != nil || newSecret == secret {
		t.Fatal(err)
	}
	if resp, _ := e.postForm("/oauth2/token", map[string][]string{"grant_type": {"client_credentials"}}, ci.ID, secret); resp.StatusCode != 401 {
		t.Errorf("old secret after rotation: %d", resp.StatusCode)
	}
	if resp, _ := e.postForm("/oauth2/token", map[string][]string{"grant_type": {"client_credentials"}}, ci.ID, newSecret); resp.StatusCode != 200 {
		t.Errorf("new secret after rotation: %d", resp.StatusCode)
	}
	// Duplicate ID.
	if _, _, err := e.srv.Clients().Create(context.Background(), ClientSpec{ID: ci.ID, Name: "dup"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate id: %v", err)
	}
	// Public clients cannot rotate a secret they do not have.
	pub, _, _ := e.srv.Clients().Create(context.Background(), ClientSpec{Name: "app", Public: true, RedirectURIs: []string{"http://127.0.0.1/cb"}})
	if _, err := e.srv.Clients().RotateSecret(context.Background(), pub.ID); !errors.Is(err, ErrInvalidClientSpec) {
		t.Errorf("rotate public: %v", err)
	}
}

func TestSecretHasher(t *testing.T) {
	h := secretHasher{}
	hash, _ := h.Hash(context.Background(), []byte("s3cret"))
	if h.Compare(context.Background(), hash, []byte("s3cret")) != nil {
		t.Error("matching secret refused")
	}
	for _, tc := range []struct {
		hash []byte
		data string
	}{{hash, "s3cre"}, {hash, ""}, {nil, ""}, {nil, "s3cret"}, {hash[:16], "s3cret"}} {
		if h.Compare(context.Background(), tc.hash, []byte(tc.data)) == nil {
			t.Errorf("accepted %q against %x", tc.data, tc.hash)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	e := newEnv(t)
	h := e.srv.Clients().AdminHandler()
	do := func(method, path, body string) (*http.Response, map[string]any) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		resp := rec.Result()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp, m
	}
	resp, m := do("POST", "/clients", `{"name":"svc","grant_types":["client_credentials"],"scopes":["a"],"access_token_ttl":"5m"}`)
	if resp.StatusCode != 201 || m["client_secret"] == nil || m["client_id"] == nil || m["access_token_ttl"] != "5m0s" {
		t.Fatalf("create: %d %v", resp.StatusCode, m)
	}
	assertNoStore(t, resp)
	id := m["client_id"].(string)
	if _, ok := m["secret_hash"]; ok {
		t.Error("secret hash exposed")
	}
	resp, m = do("GET", "/clients/"+id, "")
	if resp.StatusCode != 200 || m["client_secret"] != nil || m["name"] != "svc" {
		t.Errorf("get: %d %v", resp.StatusCode, m)
	}
	resp, m = do("GET", "/clients?limit=10", "")
	if resp.StatusCode != 200 || len(m["clients"].([]any)) != 1 {
		t.Errorf("list: %d %v", resp.StatusCode, m)
	}
	resp, m = do("POST", "/clients/"+id+"/rotate-secret", "")
	if resp.StatusCode != 200 || m["client_secret"] == nil {
		t.Errorf("rotate: %d %v", resp.StatusCode, m)
	}
	resp, m = do("POST", "/clients/"+id+"/disable", "")
	if resp.StatusCode != 200 || m["disabled"] != true {
		t.Errorf("disable: %d %v", resp.StatusCode, m)
	}
	for name, body := range map[string]string{
		"duplicate key": `{"name":"a","name":"b"}`,
		"nested dup":    `{"name":"a","jwks":{"keys":[],"keys":[]}}`,
		"unknown field": `{"name":"a","secret":"x"}`,
		"trailing":      `{"name":"a"} {}`,
		"invalid":       `{"name":"a","redirect_uris":["https://*.x/cb"]}`,
		"bad ttl":       `{"name":"a","access_token_ttl":"forever"}`,
		"not an object": `[]`,
	} {
		if resp, m := do("POST", "/clients", body); resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %v", name, resp.StatusCode, m)
		}
	}
	if resp, _ := do("GET", "/clients/nope", ""); resp.StatusCode != 404 {
		t.Errorf("unknown: %d", resp.StatusCode)
	}
	if resp, _ := do("DELETE", "/clients/"+id, ""); resp.StatusCode != 204 {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	if resp, _ := do("GET", "/clients/"+id, ""); resp.StatusCode != 404 {
		t.Errorf("after delete: %d", resp.StatusCode)
	}
}
