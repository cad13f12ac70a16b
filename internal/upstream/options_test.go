package upstream

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateErrors(t *testing.T) {
	good := []Target{{URL: "http://127.0.0.1:8080"}}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    Options
		want []string // substrings that must all appear
	}{
		{"scheme", Options{Name: "api", Targets: []Target{{URL: "http://a:1"}, {URL: "ftp://b:2"}}},
			[]string{`upstream "api"`, `targets[1].url: scheme "ftp" not allowed (http, https)`}},
		{"no targets", Options{Name: "api"}, []string{"targets: at least one target is required"}},
		{"credentials", Options{Name: "api", Targets: []Target{{URL: "http://user:s3cret@a:1"}}},
			[]string{"targets[0].url: credentials in the URL are not allowed"}},
		{"missing scheme", Options{Name: "api", Targets: []Target{{URL: "a:1"}}}, []string{"targets[0].url:"}},
		{"query", Options{Name: "api", Targets: []Target{{URL: "http://a:1/x?y=1"}}}, []string{"targets[0].url: query not allowed"}},
		{"fragment", Options{Name: "api", Targets: []Target{{URL: "http://a:1/x#f"}}}, []string{"targets[0].url: fragment not allowed"}},
		{"port", Options{Name: "api", Targets: []Target{{URL: "http://a:99999"}}}, []string{`port "99999" out of range`}},
		{"dot segment", Options{Name: "api", Targets: []Target{{URL: "http://a:1/x/../y"}}}, []string{"dot segments"}},
		{"empty segment", Options{Name: "api", Targets: []Target{{URL: "http://a:1//y"}}}, []string{"empty segments"}},
		{"duplicate", Options{Name: "api", Targets: []Target{{URL: "http://A:80"}, {URL: "http://a"}}},
			[]string{"targets[1].url: duplicates targets[0] (http://a:80)"}},
		{"weight", Options{Name: "api", Targets: []Target{{URL: "http://a:1", Weight: -2}}},
			[]string{"targets[0].weight: -2 out of range (1..10000)"}},
		{"balancing", Options{Name: "api", Targets: good, Balancing: "random"},
			[]string{`balancing: "random" not allowed (round_robin, least_outstanding)`}},
		{"retries", Options{Name: "api", Targets: good, Retries: 6}, []string{"retries: 6 exceeds the maximum of 5"}},
		{"negative connect", Options{Name: "api", Targets: good, ConnectTimeout: -time.Second},
			[]string{"connect_timeout: must not be negative"}},
		{"name", Options{Name: "a b", Targets: good}, []string{"name:", "only letters"}},
		{"name missing", Options{Targets: good}, []string{"name: required"}},
		{"active path", Options{Name: "api", Targets: good, ActiveHealth: &ActiveHealth{Path: "healthz"}},
			[]string{`active_health.path: "healthz" must start with /`}},
		{"active interval", Options{Name: "api", Targets: good, ActiveHealth: &ActiveHealth{Path: "/h", Interval: time.Millisecond}},
			[]string{"active_health.interval:"}},
		{"active status", Options{Name: "api", Targets: good, ActiveHealth: &ActiveHealth{Path: "/h", HealthyStatuses: []int{200, 42}}},
			[]string{"active_health.healthy_statuses[1]: 42 is not an HTTP status"}},
		{"tls without https", Options{Name: "api", Targets: good, TLS: &TLSOptions{ServerName: "x"}},
			[]string{"tls: set but no target is https://"}},
		{"h2c without http", Options{Name: "api", Targets: []Target{{URL: "https://a:1"}}, H2C: true},
			[]string{"h2c: set but no target is http://"}},
		{"cert without key", Options{Name: "api", Targets: []Target{{URL: "https://a:1"}}, TLS: &TLSOptions{CertFile: "c.pem"}},
			[]string{"tls.cert_file: cert_file and key_file must be set together"}},
		{"ca missing", Options{Name: "api", Targets: []Target{{URL: "https://a:1"}}, TLS: &TLSOptions{CAFile: missing}},
			[]string{"tls.ca_file:", "missing.pem"}},
		{"ca not pem", Options{Name: "api", Targets: []Target{{URL: "https://a:1"}}, TLS: &TLSOptions{CAFile: notPEM}},
			[]string{"tls.ca_file:", "contains no PEM certificate"}},
		{"min version", Options{Name: "api", Targets: []Target{{URL: "https://a:1"}}, TLS: &TLSOptions{MinVersion: tls.VersionTLS11}},
			[]string{"tls.min_version: 0x0302 not allowed"}},
		{"server name", Options{Name: "api", Targets: []Target{{URL: "https://a:1"}}, TLS: &TLSOptions{ServerName: "a b"}},
			[]string{"tls.server_name:"}},
		{"several at once", Options{Name: "api", Targets: []Target{{URL: "gopher://x:1"}}, Retries: 9},
			[]string{"targets[0].url", "retries: 9"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if err == nil {
				t.Fatalf("Validate accepted invalid options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the URL password: %q", err)
			}
			if _, err2 := New(tc.o); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("New error %v differs from Validate error %v", err2, err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := compile(&Options{Name: "api", Targets: []Target{{URL: "http://a:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.connectTimeout != 5*time.Second || c.responseHeaderTimeout != 30*time.Second || c.overallTimeout != 60*time.Second {
		t.Errorf("timeouts = %v %v %v", c.connectTimeout, c.responseHeaderTimeout, c.overallTimeout)
	}
	if c.retries != 1 || c.maxFailures != 3 || c.ejectFor != 30*time.Second || c.maxIdle != 256 {
		t.Errorf("retries %d maxFailures %d ejectFor %v maxIdle %d", c.retries, c.maxFailures, c.ejectFor, c.maxIdle)
	}
	if c.targets[0].weight != 1 || c.leastOutstanding {
		t.Errorf("weight %d leastOutstanding %v", c.targets[0].weight, c.leastOutstanding)
	}
	c, err = compile(&Options{Name: "api", Targets: []Target{{URL: "http://a:1"}}, Retries: -1,
		OverallTimeout: -1, PassiveHealth: PassiveHealth{MaxFailures: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if c.retries != 0 || c.overallTimeout >= 0 || c.maxFailures != 0 {
		t.Errorf("negative values must disable: retries %d overall %v maxFailures %d", c.retries, c.overallTimeout, c.maxFailures)
	}
	c, err = compile(&Options{Name: "api", Targets: []Target{{URL: "http://a:1"}}, ActiveHealth: &ActiveHealth{Path: "/h"}})
	if err != nil {
		t.Fatal(err)
	}
	a := c.active
	if a.interval != 10*time.Second || a.timeout != 2*time.Second || a.healthyThreshold != 2 || a.unhealthyThreshold != 3 {
		t.Errorf("active defaults %+v", a)
	}
	for code, want := range map[int]bool{199: false, 200: true, 302: true, 399: true, 400: false, 503: false} {
		if a.healthyStatus(code) != want {
			t.Errorf("healthyStatus(%d) = %v", code, !want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	cases := []struct {
		in                         string
		label, host, base, baseEsc string
		needsRaw                   bool
	}{
		{"http://10.0.0.1:8080", "http://10.0.0.1:8080", "10.0.0.1:8080", "", "", false},
		{"http://Backend.Example", "http://backend.example:80", "backend.example:80", "", "", false},
		{"https://b.example/", "https://b.example:443", "b.example:443", "", "", false},
		{"http://[::1]:9000/base/", "http://[::1]:9000/base", "[::1]:9000", "/base", "/base", false},
		{"http://h:1/a%20b", "http://h:1/a%20b", "h:1", "/a b", "/a%20b", false},
		{"http://h:1/a%3Ab", "http://h:1/a%3Ab", "h:1", "/a:b", "/a%3Ab", true},
	}
	for _, tc := range cases {
		tg, err := parseTarget(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if tg.label != tc.label || tg.host != tc.host || tg.basePath != tc.base || tg.baseEsc != tc.baseEsc || tg.baseNeedsRaw != tc.needsRaw {
			t.Errorf("%s: got label %q host %q base %q esc %q raw %v", tc.in, tg.label, tg.host, tg.basePath, tg.baseEsc, tg.baseNeedsRaw)
		}
	}
}
