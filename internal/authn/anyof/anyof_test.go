package anyof

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/authn/apikey"
	"github.com/sekisho/sekisho/internal/authn/introspect"
)

type fake struct {
	id    *authn.Identity
	err   error
	calls atomic.Int64
}

func (f *fake) Authenticate(*http.Request) (*authn.Identity, error) {
	f.calls.Add(1)
	return f.id, f.err
}

func req() *http.Request { return httptest.NewRequest("GET", "/", nil) }

func TestNoCredentialsFallsThrough(t *testing.T) {
	a := &fake{err: authn.ErrNoCredentials}
	b := &fake{id: &authn.Identity{Subject: "b"}}
	id, err := AnyOf(a, b).Authenticate(req())
	if err != nil || id.Subject != "b" {
		t.Fatalf("got %v, %v", id, err)
	}
}

func TestBadCredentialStops(t *testing.T) {
	bad := &fake{err: &authn.Error{Reason: authn.ReasonExpired}}
	weaker := &fake{id: &authn.Identity{Subject: "weak"}}
	_, err := AnyOf(bad, weaker).Authenticate(req())
	var ae *authn.Error
	if !errors.As(err, &ae) || ae.Reason != authn.ReasonExpired {
		t.Fatalf("got %v, want the expired refusal", err)
	}
	if n := weaker.calls.Load(); n != 0 {
		t.Fatalf("fell through to the next authenticator (%d calls)", n)
	}
}

func TestAllNoCredentials(t *testing.T) {
	_, err := AnyOf(&fake{err: authn.ErrNoCredentials}, &fake{err: authn.ErrNoCredentials}).Authenticate(req())
	if !errors.Is(err, authn.ErrNoCredentials) {
		t.Fatalf("got %v", err)
	}
}

func TestFailClosedOnOddResults(t *testing.T) {
	cases := []authn.Authenticator{
		AnyOf(),
		AnyOf(&fake{}), // neither identity nor error
		AnyOf(&fake{err: errors.New("boom")}, &fake{id: &authn.Identity{}}),
	}
	for i, a := range cases {
		id, err := a.Authenticate(req())
		var ae *authn.Error
		if id != nil || !errors.As(err, &ae) {
			t.Errorf("case %d: got %v, %v; want an *authn.Error refusal", i, id, err)
		}
	}
}

// With real authenticators: a bearer token and an API key on the same
// request are refused before either is verified.
func TestTwoCredentialKindsRefused(t *testing.T) {
	var asCalls atomic.Int64
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"opaque-user"}`))
	}))
	defer as.Close()
	intro, err := introspect.New(introspect.Options{Endpoint: as.URL})
	if err != nil {
		t.Fatal(err)
	}
	mem := apikey.NewMemStore()
	key, _, err := apikey.Create(context.Background(), mem, rand.Reader, "svc", nil, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ak, err := apikey.NewAuthenticator(mem, apikey.Options{})
	if err != nil {
		t.Fatal(err)
	}
	combo := AnyOf(intro, ak)

	r := req()
	r.Header.Set("X-API-Key", key)
	id, err := combo.Authenticate(r)
	if err != nil || id.Kind != "apikey" {
		t.Fatalf("API key alone: %v, %v", id, err)
	}
	r = req()
	r.Header.Set("Authorization", "Bearer opaque")
	id, err = combo.Authenticate(r)
	if err != nil || id.Kind != "introspection" {
		t.Fatalf("bearer alone: %v, %v", id, err)
	}
	calls := asCalls.Load()
	r = req()
	r.Header.Set("Authorization", "Bearer other-opaque")
	r.Header.Set("X-API-Key", key)
	_, err = combo.Authenticate(r)
	var ae *authn.Error
	if !errors.As(err, &ae) || ae.Reason != authn.ReasonMultipleTokens {
		t.Fatalf("two kinds: got %v, want multiple_tokens", err)
	}
	if asCalls.Load() != calls {
		t.Fatal("introspection endpoint called for a request with two credential kinds")
	}
}
