package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// The token-issue and introspect workloads share one authorization-server
// setup: the built-in server enabled with the instance's own listener URL as
// issuer, and per Sekisho system a confidential client (client_credentials,
// scope read, audience bench) created with the binary's CLI before the
// server starts. introspect also obtains one access token per system once
// the server is ready.
type benchAS struct {
	masterKey string // base64 of 32 random bytes

	mu     sync.Mutex
	creds  map[string]clientCreds // system → client
	tokens map[string]string      // system → an access token (introspect)
}

type clientCreds struct{ id, secret string }

// basic is the RFC 6749 §2.3.1 client_secret_basic header value.
func (c clientCreds) basic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.id)+":"+url.QueryEscape(c.secret)))
}

func (env *runEnv) authServer() (*benchAS, error) {
	if env.as != nil {
		return env.as, nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	env.as = &benchAS{masterKey: base64.StdEncoding.EncodeToString(k),
		creds: map[string]clientCreds{}, tokens: map[string]string{}}
	return env.as, nil
}

func (as *benchAS) topYAML() string {
	return "authorization_server:\n  enabled: true\n" +
		"  issuer: " + yamlQuote(listenURLPlaceholder) + "\n" +
		"  master_key: " + yamlQuote(as.masterKey) + "\n"
}

// ensureClient creates the bench client for si once (both workloads share
// it).
func (as *benchAS) ensureClient(ctx context.Context, si sekishoInstance) error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if _, ok := as.creds[si.name]; ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, si.bin, "clients", "create", "--config", si.cfgPath, "--name", "bench",
		"--grant", "client_credentials", "--scope", "read", "--audience", benchAudience)
	cmd.Env = childEnv(nil)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("sekisho clients create: %v: %.500s", err, stderr.String())
	}
	var c clientCreds
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "client_id":
			c.id = strings.TrimSpace(v)
		case "client_secret":
			c.secret = strings.TrimSpace(v)
		}
	}
	if c.id == "" || c.secret == "" {
		// The output holds a secret: never echo it.
		return fmt.Errorf("sekisho clients create: no client_id/client_secret in its output (%d bytes)", len(out))
	}
	as.creds[si.name] = c
	return nil
}

func (as *benchAS) client(system string) clientCreds {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.creds[system]
}

const ccBody = "grant_type=client_credentials&scope=read"

// fetchToken obtains an access token from si with the bench client.
func (as *benchAS) fetchToken(ctx context.Context, si sekishoInstance) error {
	c := as.client(si.name)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, si.baseURL+"/oauth2/token", strings.NewReader(ccBody))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", c.basic())
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	_ = json.Unmarshal(b, &tr)
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return fmt.Errorf("token request: status %d, error %q", resp.StatusCode, tr.Error)
	}
	as.mu.Lock()
	as.tokens[si.name] = tr.AccessToken
	as.mu.Unlock()
	return nil
}

func (as *benchAS) token(system string) string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.tokens[system]
}

// asRouteYAML is a placeholder public route: a config needs one, and the
// token endpoints are not routes.
func asRouteYAML(name, prefix string) string {
	return "  - name: " + name + "\n" +
		"    match: {path: " + prefix + ", path_type: prefix}\n" +
		"    upstream: bench\n" +
		"    auth: public\n"
}

// authServerRoute is the label the gateway's metrics and access log use for
// requests served by the authorization server.
const authServerRoute = "_authserver"

func prepareTokenIssue(env *runEnv) (*plan, error) {
	as, err := env.authServer()
	if err != nil {
		return nil, err
	}
	return &plan{
		routeYAML:   asRouteYAML("bench-token-issue", "/bench-token-issue"),
		topYAML:     as.topYAML(),
		routeName:   authServerRoute,
		path:        "/oauth2/token",
		luaFile:     "form-post.lua",
		systems:     []string{"sekisho"},
		beforeStart: as.ensureClient,
		scriptArgs: func(system string, _ int) []string {
			return []string{ccBody, as.client(system).basic()}
		},
		probeFor: as.tokenProbe,
	}, nil
}

// tokenProbe checks that system's token endpoint issues the bench client a
// Bearer JWT, and refuses the request without client authentication.
func (as *benchAS) tokenProbe(system string) *probeSpec {
	return &probeSpec{method: http.MethodPost, body: ccBody, header: map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Authorization": as.client(system).basic()},
		check: checkTokenResponse, refusedWithout: "Authorization"}
}

// builtinIssuerName is the issuers entry trusting the built-in
// authorization server in-process (token-call).
const builtinIssuerName = "bench-builtin"

// prepareTokenCall: each iteration obtains a client-credentials token and
// calls a jwt route with it once; the route trusts the built-in issuer
// in-process. wrk's request count covers both halves; extra.calls counts
// the protected calls answered 2xx, reported as a rate of its own.
func prepareTokenCall(env *runEnv) (*plan, error) {
	as, err := env.authServer()
	if err != nil {
		return nil, err
	}
	return &plan{
		routeYAML: jwtRouteYAMLFor("bench-token-call", "/token-call", builtinIssuerName),
		topYAML:   as.topYAML(),
		issuerYAML: "  " + builtinIssuerName + ":\n" +
			"    builtin: true\n" +
			"    audiences: [" + benchAudience + "]\n",
		routeName:   "bench-token-call",
		path:        "/oauth2/token",
		luaFile:     "token-call.lua",
		systems:     []string{"sekisho"},
		perOp:       "token+call pairs",
		beforeStart: as.ensureClient,
		scriptArgs: func(system string, _ int) []string {
			return []string{"/oauth2/token", ccBody, as.client(system).basic(), "/token-call/hello"}
		},
		probeFor:   as.tokenProbe,
		checkExtra: checkTokenCallExtra,
	}, nil
}

// checkTokenCallExtra refuses a round in which calls did not keep up with
// tokens (then the route refused them, or the script lost track).
func checkTokenCallExtra(_ string, extra json.RawMessage) error {
	var e struct{ Tokens, Calls int64 }
	if err := json.Unmarshal(extra, &e); err != nil {
		return fmt.Errorf("token-call extra %s: %w", extra, err)
	}
	if e.Tokens == 0 || e.Calls < e.Tokens*9/10 {
		return fmt.Errorf("token-call: %d tokens but only %d successful calls", e.Tokens, e.Calls)
	}
	return nil
}

func prepareIntrospect(env *runEnv) (*plan, error) {
	as, err := env.authServer()
	if err != nil {
		return nil, err
	}
	body := func(system string) string { return "token=" + url.QueryEscape(as.token(system)) }
	return &plan{
		routeYAML:   asRouteYAML("bench-introspect", "/bench-introspect"),
		topYAML:     as.topYAML(),
		routeName:   authServerRoute,
		path:        "/oauth2/introspect",
		luaFile:     "form-post.lua",
		systems:     []string{"sekisho"},
		beforeStart: as.ensureClient,
		afterStart:  as.fetchToken,
		scriptArgs: func(system string, _ int) []string {
			return []string{body(system), as.client(system).basic()}
		},
		probeFor: func(system string) *probeSpec {
			return &probeSpec{method: http.MethodPost, body: body(system), header: map[string]string{
				"Content-Type": "application/x-www-form-urlencoded", "Authorization": as.client(system).basic()},
				check: checkActive, refusedWithout: "Authorization"}
		},
	}, nil
}

// checkTokenResponse requires an RFC 6749 §5.1 response with a Bearer
// access token (a JWT: three dot-separated parts).
func checkTokenResponse(b []byte) error {
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		return fmt.Errorf("token response is not JSON: %w", err)
	}
	if strings.Count(tr.AccessToken, ".") != 2 || !strings.EqualFold(tr.TokenType, "Bearer") {
		return fmt.Errorf("token response has no Bearer JWT access_token (token_type %q)", tr.TokenType)
	}
	return nil
}

// checkActive requires an RFC 7662 response with "active": true, so the
// workload measures introspection of a valid token, not refusals.
func checkActive(b []byte) error {
	var ir struct {
		Active bool `json:"active"`
	}
	if err := json.Unmarshal(b, &ir); err != nil {
		return fmt.Errorf("introspection response is not JSON: %w", err)
	}
	if !ir.Active {
		return fmt.Errorf("introspection says the token is not active")
	}
	return nil
}
