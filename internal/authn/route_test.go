package authn

import (
	"errors"
	"net/url"
	"testing"
)

func TestBearerSchemeCaseInsensitive(t *testing.T) {
	e := newEnv(t, nil, nil)
	tok := e.good()
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		id, err := e.auth.Authenticate(req("/", scheme+" "+tok))
		if err != nil || id.Subject != "alice" {
			t.Fatalf("%s: %v", scheme, err)
		}
	}
	// Extra spaces after the scheme are tolerated (1*SP).
	if _, err := e.auth.Authenticate(req("/", "Bearer   "+tok)); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialExtraction(t *testing.T) {
	e := newEnv(t, nil, nil)
	tok := e.good()
	// No credential of this kind: ErrNoCredentials, so any-of can go on.
	for _, r := range []string{"", "Basic dXNlcjpwYXNz", "ApiKey abc", "Bearerx abc"} {
		var hdr []string
		if r != "" {
			hdr = []string{r}
		}
		if _, err := e.auth.Authenticate(req("/", hdr...)); !errors.Is(err, ErrNoCredentials) {
			t.Fatalf("%q: %v, want ErrNoCredentials", r, err)
		}
	}
	_, err := e.auth.Authenticate(req("/", "Bearer"))
	assertRefusal(t, nil, err, ReasonMalformed)
	_, err = e.auth.Authenticate(req("/", "Bearer "))
	assertRefusal(t, nil, err, ReasonMalformed)
	// Two Authorization headers.
	_, err = e.auth.Authenticate(req("/", "Bearer "+tok, "Bearer "+tok))
	assertRefusal(t, nil, err, ReasonMultipleTokens)
	_, err = e.auth.Authenticate(req("/", "Basic x", "Bearer "+tok))
	assertRefusal(t, nil, err, ReasonMultipleTokens)
	// Two tokens in one header value.
	_, err = e.auth.Authenticate(req("/", "Bearer "+tok+", Bearer "+tok))
	assertRefusal(t, nil, err, ReasonMalformed)
}

func TestQueryTokenRefusedByDefault(t *testing.T) {
	e := newEnv(t, nil, nil)
	tok := e.good()
	_, err := e.auth.Authenticate(req("/?access_token=" + tok))
	assertRefusal(t, nil, err, ReasonQueryToken)
	// Percent-encoded parameter name is the same parameter.
	_, err = e.auth.Authenticate(req("/?access%5Ftoken=" + tok))
	assertRefusal(t, nil, err, ReasonQueryToken)
	// Header plus query: multiple tokens, even with the same token.
	_, err = e.auth.Authenticate(req("/?access_token="+tok, "Bearer "+tok))
	assertRefusal(t, nil, err, ReasonMultipleTokens)
	if e.refusals(ReasonQueryToken) != 2 || e.refusals(ReasonMultipleTokens) != 1 {
		t.Fatalf("metrics: query %v multiple %v", e.refusals(ReasonQueryToken), e.refusals(ReasonMultipleTokens))
	}
	// An unrelated parameter is fine.
	if _, err := e.auth.Authenticate(req("/?q=access&x=%20", "Bearer "+tok)); err != nil {
		t.Fatal(err)
	}
}

func TestQueryTokenAllowedWhenOptedIn(t *testing.T) {
	e := newEnv(t, nil, func(o *RouteJWTOptions) { o.AllowQueryToken = true })
	tok := e.good()
	id, err := e.auth.Authenticate(req("/?a=1&access_token=" + tok))
	if err != nil || id.Subject != "alice" {
		t.Fatalf("query token: %v", err)
	}
	_, err = e.auth.Authenticate(req("/?access_token=" + tok + "&access_token=" + tok))
	assertRefusal(t, nil, err, ReasonMultipleTokens)
	_, err = e.auth.Authenticate(req("/?access_token="+tok, "bearer "+tok))
	assertRefusal(t, nil, err, ReasonMultipleTokens)
	_, err = e.auth.Authenticate(req("/?access_token="))
	assertRefusal(t, nil, err, ReasonMalformed)

	u, _ := url.Parse("/p?z=%2F1&access_token=" + tok + "&b=2&access%5Ftoken=x")
	RemoveQueryToken(u, "")
	if u.RawQuery != "z=%2F1&b=2" {
		t.Fatalf("RemoveQueryToken left %q", u.RawQuery)
	}
}

func TestScopesAndClientID(t *testing.T) {
	e := newEnv(t, nil, nil)
	id := e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"scope": nil, "scp": []string{"a", "b"}, "client_id": nil, "azp": "spa"}))
	if len(id.Scopes) != 2 || id.Scopes[0] != "a" || id.ClientID != "spa" {
		t.Fatalf("scp/azp: %+v", id)
	}
	id = e.mustAccept(e.tok("ES256", "k1", nil, map[string]any{"scope": "  x   y ", "jti": "j-1"}))
	if len(id.Scopes) != 2 || id.Scopes[1] != "y" || id.JTI != "j-1" || !id.HasScope("x") {
		t.Fatalf("scope: %+v", id)
	}
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"scope": []string{"a"}}), ReasonMalformed)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"sub": 7}), ReasonMalformed)
	e.mustRefuse(e.tok("ES256", "k1", nil, map[string]any{"client_id": true}), ReasonMalformed)
	if id.Claims["client_id"] != "web" {
		t.Fatalf("claims not exposed: %v", id.Claims)
	}
}
