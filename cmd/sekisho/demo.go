package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sekisho/sekisho/internal/authn/apikey"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/identity"
	"github.com/sekisho/sekisho/internal/oauth"
	"github.com/sekisho/sekisho/internal/sampleapi"
)

func cmdDemo(args []string, out, errOut io.Writer) error {
	fs := newFlags("demo", "[--data-dir DIR] [--port N] [--admin-port N]",
		"Start a self-contained demo on loopback: the gateway, a sample upstream API and the authorization server,\nwith state in DIR. Prints the URLs and curl commands to try. Ctrl-C stops it.", out)
	dataDir := fs.String("data-dir", "./sekisho-data", "directory for the demo's config and state")
	port := fs.Int("port", 8080, "gateway port on 127.0.0.1 (0 picks a free one)")
	adminPort := fs.Int("admin-port", 9090, "admin port on 127.0.0.1 (0 picks a free one)")
	level := fs.String("log-level", "warn", "operational log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("demo: unexpected argument %q", fs.Arg(0))
	}
	for name, p := range map[string]int{"--port": *port, "--admin-port": *adminPort} {
		if p < 0 || p > 65535 {
			return usagef("demo: %s %d is not a port (0-65535)", name, p)
		}
	}
	log, err := newLogger(*level, errOut)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("demo: data directory: %w", err)
	}
	abs, _ := filepath.Abs(*dataDir)

	// The sample upstream API, on its own loopback port.
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: sample API: %w", err)
	}
	upSrv := &http.Server{Handler: sampleapi.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go upSrv.Serve(upLn)
	defer upSrv.Close()

	// Concrete ports: the issuer URL and the demo client's redirect URI
	// must name them.
	if *port == 0 {
		if *port, err = freePort(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if *adminPort == 0 {
		if *adminPort, err = freePort(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	cfgPath := filepath.Join(abs, "demo.yaml")
	gwAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(*port))
	masterKey, err := demoSecret(filepath.Join(abs, "master.key"))
	if err != nil {
		return fmt.Errorf("demo: master key: %w", err)
	}
	if err := writeDemoConfig(cfgPath, abs, gwAddr, net.JoinHostPort("127.0.0.1", strconv.Itoa(*adminPort)), upLn.Addr().String(), masterKey); err != nil {
		return err
	}
	creds, err := seedDemo(cfgPath, "http://"+gwAddr)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfgPath, log, out, func(urls []string, adminAddr string) {
		printDemo(out, urls[0], adminAddr, cfgPath, creds)
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// demoSecret returns the 32-byte key in path (base64), creating it once.
func demoSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	enc := base64.StdEncoding.EncodeToString(k)
	return enc, os.WriteFile(path, []byte(enc+"\n"), 0o600)
}

// demoCredentials are created on the first run and kept (mode 0600) in the
// data directory so a restarted demo prints the same ones.
type demoCredentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RedirectURI  string `json:"redirect_uri"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	APIKey       string `json:"api_key"`
}

const demoClientID = "demo-client"

// seedDemo creates the demo client, user and API key in the demo's store.
func seedDemo(cfgPath, base string) (*demoCredentials, error) {
	credPath := filepath.Join(filepath.Dir(cfgPath), "demo-credentials.json")
	var creds demoCredentials
	if b, err := os.ReadFile(credPath); err == nil && json.Unmarshal(b, &creds) == nil && creds.ClientSecret != "" && creds.RedirectURI == base+"/public/callback" {
		return &creds, nil
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, configError{err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	cs, err := clientService(cfg, st)
	if err != nil {
		return nil, err
	}
	_ = cs.Delete(ctx, demoClientID) // a previous run with another port
	creds.RedirectURI = base + "/public/callback"
	_, secret, err := cs.Create(ctx, oauth.ClientSpec{
		ID: demoClientID, Name: "Sekisho demo app",
		RedirectURIs: []string{creds.RedirectURI},
		GrantTypes:   []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes:       []string{"openid", "profile", "email", "offline_access", "read", "write"},
		Audiences:    []string{"sample-api"},
	})
	if err != nil {
		return nil, fmt.Errorf("demo client: %w", err)
	}
	creds.ClientID, creds.ClientSecret = demoClientID, secret
	creds.Username = "demo"
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	creds.Password = base64.RawURLEncoding.EncodeToString(pw)
	us, err := userService(st)
	if err != nil {
		return nil, err
	}
	if _, err := us.Create(ctx, creds.Username, creds.Password, "demo@example.com", "Demo User"); err != nil {
		if !errors.Is(err, identity.ErrUserExists) {
			return nil, fmt.Errorf("demo user: %w", err)
		}
		if _, err := us.SetPassword(ctx, creds.Username, creds.Password); err != nil {
			return nil, fmt.Errorf("demo user: %w", err)
		}
	}
	key, _, err := apikey.Create(ctx, apiKeyStore{st}, rand.Reader, "demo-partner", []string{"read"}, nil, time.Now())
	if err != nil {
		return nil, fmt.Errorf("demo API key: %w", err)
	}
	creds.APIKey = key
	b, _ := json.MarshalIndent(creds, "", "  ")
	return &creds, os.WriteFile(credPath, b, 0o600)
}

func writeDemoConfig(path, dataDir, gwAddr, adminAddr, upstreamAddr, masterKey string) error {
	cfg := fmt.Sprintf(`# Generated by 'sekisho demo'. Edit and reload: kill -HUP <pid>.
version: 1
data_dir: %q
server:
  listeners:
    - name: public
      address: %q
admin:
  address: %q
access_log:
  output: %q
authorization_server:
  enabled: true
  issuer: "http://%s"
  master_key: %q
issuers:
  sekisho:
    builtin: true
    audiences: [sample-api]
upstreams:
  sample:
    targets:
      - url: http://%s
    active_health:
      path: /healthz
routes:
  - name: hello
    match: {path: /hello, path_type: exact, methods: [GET]}
    upstream: sample
    auth: public
  - name: public-echo
    match: {path: /public}
    upstream: sample
    rewrite_prefix: /echo
    auth: public
  - name: items
    match: {path: /api/items, methods: [GET, POST]}
    upstream: sample
    rewrite_prefix: /items
    max_body_bytes: 64KiB
    auth: public
  - name: secure
    match: {path: /secure}
    upstream: sample
    rewrite_prefix: /echo
    auth:
      jwt: {issuers: [sekisho]}
    authorize:
      scopes: {all_of: [read]}
      methods: {POST: {all_of: [write]}}
    forward:
      headers: {X-User-Id: sub, X-Client-Id: client_id, X-Scopes: scope}
  - name: partner
    match: {path: /partner}
    upstream: sample
    rewrite_prefix: /echo
    auth:
      apikey: {}
    forward:
      headers: {X-Consumer: sub}
`, dataDir, gwAddr, adminAddr, filepath.Join(dataDir, "access.log"), gwAddr, masterKey, upstreamAddr)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func printDemo(w io.Writer, base, adminAddr, cfgPath string, c *demoCredentials) {
	verifier, challenge := demoPKCE()
	authURL := base + "/oauth2/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {c.ClientID}, "redirect_uri": {c.RedirectURI},
		"scope": {"openid profile read offline_access"}, "state": {"demo-state"}, "nonce": {"demo-nonce"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}.Encode()
	fmt.Fprintf(w, `
Sekisho demo is running.
  gateway:  %[1]s   (routes, and the authorization server under /oauth2)
  admin:    http://%[2]s  (metrics, health)
  config:   %[3]s
  logs:     %[4]s  (JSON access log)

Gateway basics:
  curl -i %[1]s/hello
  curl -i %[1]s/public/anything?x=1
  curl -i -X POST -H 'Content-Type: application/json' -d '{"name":"miso"}' %[1]s/api/items
  curl -i --path-as-is %[1]s/public/../api/items  # normalized before routing: reaches /api/items with its checks
  curl -i %[1]s/api%%2Fitems                # expect 400: encoded slash refused
  curl -i %[1]s/nowhere                     # expect 404: application/problem+json

Tokens (client credentials) and a protected route:
  curl -i %[1]s/secure/me                   # expect 401: no token
  TOKEN=$(curl -s -u %[5]s:%[6]s -d grant_type=client_credentials -d scope=read %[1]s/oauth2/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -i -H "Authorization: Bearer $TOKEN" %[1]s/secure/me
  curl -i -X POST -H "Authorization: Bearer $TOKEN" %[1]s/secure/me      # expect 403: scope write not granted
  curl -s %[1]s/.well-known/openid-configuration

API key:
  curl -i -H 'X-API-Key: %[7]s' %[1]s/partner/orders

Browser (authorization code + PKCE), user %[8]s / password %[9]s:
  open %[10]s
  then exchange the code shown on the callback page:
  curl -s -u %[5]s:%[6]s -d grant_type=authorization_code -d redirect_uri=%[11]s -d code_verifier=%[12]s -d code=PASTE_CODE %[1]s/oauth2/token

  curl -s http://%[2]s/metrics | grep sekisho_requests_total

Press Ctrl-C to stop.
`, base, adminAddr, cfgPath, filepath.Join(filepath.Dir(cfgPath), "access.log"), c.ClientID, c.ClientSecret, c.APIKey,
		c.Username, c.Password, authURL, url.QueryEscape(c.RedirectURI), verifier)
}

// demoPKCE returns a fresh S256 verifier and its challenge.
func demoPKCE() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}
