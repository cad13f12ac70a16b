package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const valid = `version: 1
server:
  listeners:
    - name: public
      address: 127.0.0.1:8080
upstreams:
  users:
    targets:
      - url: http://127.0.0.1:9000
routes:
  - name: health
    match: {path: /healthz, path_type: exact}
    upstream: users
    auth: public
  - name: users
    match:
      path: /api
      methods: [GET, POST]
    upstream: users
    strip_prefix: true
    auth: public
`

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestValidConfigAndDefaults(t *testing.T) {
	c, err := Parse("s.yaml", []byte(valid), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.ReadHeaderTimeout.D() != 5*time.Second || c.Server.MaxHeaderBytes != 32<<10 {
		t.Fatalf("defaults not applied: %+v", c.Server)
	}
	if u := c.Upstreams["users"]; u.Balancing != "round_robin" || *u.Retries != 1 || u.Targets[0].Weight != 1 {
		t.Fatalf("upstream defaults: %+v", u)
	}
	if r := c.Routes[1]; r.Match.PathType != "prefix" || !r.Auth.Public || r.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Fatalf("route defaults: %+v", r)
	}
	if c.Admin.Address != "127.0.0.1:9090" || c.Store.Path != filepath.Join(DefaultDataDir, "sekisho.db") {
		t.Fatalf("admin/store defaults: %+v %+v", c.Admin, c.Store)
	}
}

// TestErrors checks that each mistake is reported with file, line, field
// path and what is allowed.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, mutate string // mutate: "old=>new" replacement applied to valid
		want         []string
	}{
		{"missing auth", "    strip_prefix: true\n    auth: public\n=>    strip_prefix: true\n", []string{"s.yaml:15: routes[1].auth: missing", "allowed: public"}},
		{"unknown field", "    upstream: users\n    strip_prefix=>    upstream: users\n    strip_prefx: true\n    strip_prefix", []string{"s.yaml:20: routes[1].strip_prefx: unknown field", "did you mean \"strip_prefix\"", "allowed: name, match"}},
		{"unknown auth kind", "    auth: public\n  - name: users=>    auth: oauth\n  - name: users", []string{"s.yaml:14: routes[0].auth: \"oauth\" is not an auth kind", "allowed: public"}},
		{"unknown upstream", "    upstream: users\n    strip=>    upstream: userz\n    strip", []string{"s.yaml:19: routes[1].upstream: unknown upstream \"userz\" (defined: users)"}},
		{"bad method", "[GET, POST]=>[GET, post]", []string{"s.yaml:18: routes[1].match.methods[1]: \"post\" is not an HTTP method"}},
		{"bad duration", "version: 1\n=>version: 1\nserver_x: 1\n", []string{"server_x: unknown field", "(did you mean \"server\"?)"}},
		{"bad target scheme", "http://127.0.0.1:9000=>ftp://127.0.0.1:9000", []string{"s.yaml:9: upstreams.users.targets[0].url: scheme \"ftp\" not allowed (allowed: http, https)"}},
		{"unnormalized route path", "path: /api\n=>path: /api/../x\n", []string{"routes[1].match.path: \"/api/../x\" is not a normalized path"}},
		{"duplicate key", "    upstream: users\n    strip_prefix: true=>    upstream: users\n    upstream: users\n    strip_prefix: true", []string{"s.yaml:20: routes[1].upstream: duplicate key"}},
		{"unset env", "address: 127.0.0.1:8080=>address: ${NOPE_NOT_SET}", []string{"s.yaml:5: environment variable NOPE_NOT_SET is not set"}},
		{"wrong type", "version: 1=>version: [1]", []string{"s.yaml:1:", "cannot unmarshal a list into int"}},
		{"strip with exact", "path_type: exact}=>path_type: exact}\n    strip_prefix: true", []string{"routes[0].strip_prefix: only for path_type prefix"}},
		{"public any_of", "    strip_prefix: true\n    auth: public=>    strip_prefix: true\n    auth:\n      any_of: [public, {apikey: {}}]", []string{"routes[1].auth.any_of[0]", "declare auth: public instead"}},
		{"two kinds", "    strip_prefix: true\n    auth: public=>    strip_prefix: true\n    auth:\n      apikey: {}\n      jwt: {issuers: [x]}", []string{"routes[1].auth: set exactly one of jwt, apikey; to accept several, list them under any_of"}},
		{"empty any_of", "    strip_prefix: true\n    auth: public=>    strip_prefix: true\n    auth: {apikey: {}}\n    authorize:\n      scopes: {all_of: [a], any_of: []}", []string{"routes[1].authorize.scopes.any_of: empty list: it would require nothing"}},
		{"revocation redis", "version: 1\n=>version: 1\nrevocation: {redis: {db: 16, key: \"a b\", poll_interval: 100ms}}\n", []string{"s.yaml:2: revocation.redis.address: required", "revocation.redis.db: 16 is out of range (allowed: 0 to 15)", "revocation.redis.key: \"a b\" is not allowed", "revocation.redis.poll_interval: 100ms is out of range (allowed: 1s to 1h0m0s)"}},
		{"revocation redis address", "version: 1\n=>version: 1\nrevocation: {redis: {address: localhost}}\n", []string{"revocation.redis.address: \"localhost\" is not host:port"}},
		{"revocation issuer", "version: 1\n=>version: 1\nauthorization_server: {enabled: true, issuer: \"http://127.0.0.1:8080\", master_key: \"" + strings.Repeat("ab", 32) + "\"}\nrevocation: {issuer: \"https://other.example\"}\n", []string{"revocation.issuer: \"https://other.example\" differs from authorization_server.issuer"}},
		{"unknown issuer", "    strip_prefix: true\n    auth: public=>    strip_prefix: true\n    auth:\n      jwt: {issuers: [corp]}", []string{"routes[1].auth.jwt.issuers[0]: unknown issuer \"corp\""}},
		{"no listeners", "  listeners:\n    - name: public\n      address: 127.0.0.1:8080\n=>  listeners: []\n", []string{"server.listeners: at least one listener is required"}},
		{"version", "version: 1=>version: 2", []string{"s.yaml:1: version: must be 1 (got 2)"}},
		{"code ttl", "version: 1\n=>version: 1\nauthorization_server: {enabled: true, issuer: \"http://127.0.0.1:8080\", master_key: \"" + strings.Repeat("ab", 32) + "\", code_ttl: 2s}\n", []string{"s.yaml:2: authorization_server.code_ttl:", "5s", "1m0s"}},
		{"admin exposed", "version: 1\n=>version: 1\nadmin: {address: 0.0.0.0:9090}\n", []string{"admin.address: \"0.0.0.0:9090\" is not a loopback address; a non-loopback admin listener requires admin.token"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old, repl, _ := strings.Cut(tc.mutate, "=>")
			if !strings.Contains(valid, old) {
				t.Fatalf("test bug: %q not in valid config", old)
			}
			src := strings.Replace(valid, old, repl, 1)
			_, err := Parse("s.yaml", []byte(src), env(nil))
			if err == nil {
				t.Fatalf("no error for:\n%s", src)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEnvSubstitution(t *testing.T) {
	src := strings.Replace(valid, "address: 127.0.0.1:8080", "address: ${ADDR}\n      name2: $${LITERAL}", 1)
	_, err := Parse("s.yaml", []byte(src), env(map[string]string{"ADDR": "127.0.0.1:8181"}))
	if err == nil || !strings.Contains(err.Error(), "name2: unknown field") {
		t.Fatalf("expected unknown field error, got %v", err)
	}
	src = strings.Replace(valid, "address: 127.0.0.1:8080", "address: ${ADDR}", 1)
	c, err := Parse("s.yaml", []byte(src), env(map[string]string{"ADDR": "127.0.0.1:8181"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listeners[0].Address != "127.0.0.1:8181" {
		t.Fatalf("got %q", c.Server.Listeners[0].Address)
	}
	// A substituted value is never parsed as YAML structure.
	src = strings.Replace(valid, "name: users\n    match:", "name: ${N}\n    match:", 1)
	_, err = Parse("s.yaml", []byte(src), env(map[string]string{"N": "[a, b]"}))
	if err == nil || !strings.Contains(err.Error(), `"[a, b]": use letters`) {
		t.Fatalf("substituted value should stay a string: %v", err)
	}
}

// TestAllProblemsAtOnce: unknown fields, missing auth and an unknown
// upstream in one file are all reported, in line order.
func TestAllProblemsAtOnce(t *testing.T) {
	src := strings.Replace(valid, "    match: {path: /healthz, path_type: exact}\n    upstream: users\n    auth: public", "    macth: {path: /healthz}\n    upstream: nope", 1)
	_, err := Parse("s.yaml", []byte(src), env(nil))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"s.yaml:11: routes[0].auth: missing", "s.yaml:12: routes[0].macth: unknown field", "s.yaml:13: routes[0].upstream: unknown upstream \"nope\""}
	if len(lines) != len(want) {
		t.Fatalf("got %d errors:\n%s", len(lines), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q does not start with %q", i, lines[i], w)
		}
	}
}

func TestErrorAt(t *testing.T) {
	c, err := Parse("s.yaml", []byte(valid), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if e := c.ErrorAt("routes[1].match.path", "x"); e.Line != 17 || e.Error() != "s.yaml:17: routes[1].match.path: x" {
		t.Fatalf("got %v (line %d)", e, e.Line)
	}
}

func TestExampleConfigsAreValid(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) == 0 {
		t.Skip("no examples yet")
	}
	e := map[string]string{"SEKISHO_MASTER_KEY": strings.Repeat("ab", 32), "SEKISHO_ADMIN_TOKEN": strings.Repeat("t", 40), "CORP_INTROSPECTION_SECRET": "s"}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data, env(e)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "64KiB": 64 << 10, "10MiB": 10 << 20, "1GB": 1e9, "2 KiB": 2048} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "1TiB", "x", "99999999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if d, err := ParseDuration("7d"); err != nil || d != 7*24*time.Hour {
		t.Errorf("7d: %v %v", d, err)
	}
	for _, bad := range []string{"-5s", "5", "xd", "1y"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("version: 1\nroutes: [{auth: {any_of: [{jwt: {}}]}}]"))
	f.Add([]byte("a: &x [1]\nb: *x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data, env(map[string]string{}))
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && !strings.HasPrefix(err.Error(), "f.yaml") {
			t.Fatalf("error without file name: %v", err)
		}
	})
}
