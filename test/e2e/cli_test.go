package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const goodConfig = `
version: 1
data_dir: "@DATA@"
server:
  listeners:
    - name: public
      address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - url: http://127.0.0.1:9001
routes:
  - name: hello
    match: {path: /hello}
    upstream: app
    auth: public
`

func TestCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(configText(body, dir)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", goodConfig)

	t.Run("version", func(t *testing.T) {
		code, out, _ := runCLI(t, dir, "version")
		if code != 0 || !strings.HasPrefix(out, "sekisho ") {
			t.Fatalf("version: exit %d, stdout %q; want 0 and 'sekisho <version>'", code, out)
		}
	})
	t.Run("no command", func(t *testing.T) {
		code, out, _ := runCLI(t, dir)
		if code != 2 || !strings.Contains(out, "Usage") {
			t.Fatalf("no args: exit %d, stdout %q; want 2 with usage", code, out)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		code, _, errOut := runCLI(t, dir, "frobnicate")
		if code != 2 || !strings.Contains(errOut, "frobnicate") {
			t.Fatalf("unknown command: exit %d, stderr %q; want 2 naming the command", code, errOut)
		}
	})
	t.Run("unknown flag", func(t *testing.T) {
		code, _, errOut := runCLI(t, dir, "serve", "--confgi", good)
		if code != 2 || oneLine(errOut) == "" {
			t.Fatalf("unknown flag: exit %d, stderr %q; want 2 with a one-line reason", code, errOut)
		}
	})
	t.Run("serve without config", func(t *testing.T) {
		code, _, errOut := runCLI(t, dir, "serve")
		if code != 2 || !strings.Contains(oneLine(errOut), "--config") {
			t.Fatalf("serve without --config: exit %d, stderr %q; want 2 and one line naming --config", code, errOut)
		}
	})
	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{
			{"--help"}, {"-h"}, {"help"},
			{"serve", "--help"}, {"demo", "--help"}, {"version", "--help"},
			{"config", "--help"}, {"config", "validate", "--help"},
		} {
			code, out, errOut := runCLI(t, dir, args...)
			if code != 0 {
				t.Errorf("sekisho %s: exit %d, want 0 (stderr %q)", strings.Join(args, " "), code, errOut)
			}
			if !strings.Contains(out, "Usage") {
				t.Errorf("sekisho %s: stdout has no usage: %q", strings.Join(args, " "), out)
			}
		}
	})
	t.Run("validate good", func(t *testing.T) {
		code, out, errOut := runCLI(t, dir, "config", "validate", good)
		if code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("validate good: exit %d, stdout %q, stderr %q; want 0 and OK", code, out, errOut)
		}
	})
	t.Run("validate example", func(t *testing.T) {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, dir, "config", "validate", filepath.Join(root, "examples", "sekisho.yaml"))
		if code != 0 {
			t.Fatalf("examples/sekisho.yaml does not validate: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	// Each broken file: the exit code is 2 and stderr names file:line: path
	// for every problem. Line numbers below are those of the YAML text.
	broken := []struct {
		name string
		yaml string
		want []string // "LINE: path" fragments, each must appear on a FILE:LINE: line
	}{
		{"unknown field", `version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: 127.0.0.1:0}]
upstreams:
  app: {targets: [{url: "http://127.0.0.1:9001"}]}
routes:
  - name: hello
    macth: {path: /hello}
    upstream: app
    auth: public
`, []string{"9: routes[0]"}},
		{"missing auth and unknown upstream", `version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: 127.0.0.1:0}]
upstreams:
  app: {targets: [{url: "http://127.0.0.1:9001"}]}
routes:
  - name: noauth
    match: {path: /a}
    upstream: app
  - name: badup
    match: {path: /b}
    upstream: nosuch
    auth: public
`, []string{"8: routes[0].auth", "13: routes[1].upstream"}},
		{"bad auth kind", `version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: 127.0.0.1:0}]
upstreams:
  app: {targets: [{url: "http://127.0.0.1:9001"}]}
routes:
  - name: r
    match: {path: /a}
    upstream: app
    auth: publik
`, []string{"11: routes[0].auth"}},
		// docs/configuration.md: "All problems are reported at once".
		{"all problems at once", `version: 1
data_dir: "@DATA@"
server:
  listeners: [{address: 127.0.0.1:0}]
upstreams:
  app: {targets: [{url: "http://127.0.0.1:9001"}]}
routes:
  - name: typo
    macth: {path: /t}
    upstream: app
    auth: public
  - name: noauth
    match: {path: /a}
    upstream: app
  - name: badup
    match: {path: /b}
    upstream: nosuch
    auth: public
`, []string{"9: routes[0]", "12: routes[1].auth", "17: routes[2].upstream"}},
	}
	lineRE := regexp.MustCompile(`^sekisho: config: (.+?):(\d+): (\S+): .+`)
	for _, b := range broken {
		t.Run("validate "+b.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(b.name, " ", "_")+".yaml", b.yaml)
			code, out, errOut := runCLI(t, dir, "config", "validate", p)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stdout %q stderr %q", code, out, errOut)
			}
			var located []string
			for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
				m := lineRE.FindStringSubmatch(l)
				if m == nil {
					t.Errorf("stderr line is not 'sekisho: config: FILE:LINE: path: message': %q", l)
					continue
				}
				if m[1] != p {
					t.Errorf("error names file %q, want %q", m[1], p)
				}
				located = append(located, m[2]+": "+m[3])
			}
			if b.name == "unknown field" && !strings.Contains(errOut, "macth") {
				t.Errorf("unknown-field error does not name the field: %q", errOut)
			}
			for _, w := range b.want {
				found := false
				for _, l := range located {
					if strings.HasPrefix(l, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error located at %q; got %q (stderr %q)", w, located, errOut)
				}
			}
		})
	}

	t.Run("serve invalid config", func(t *testing.T) {
		p := write("serve_bad.yaml", broken[0].yaml)
		code, _, errOut := runCLI(t, dir, "serve", "--config", p)
		if code != 2 {
			t.Fatalf("serve with invalid config: exit %d, want 2 (stderr %q)", code, errOut)
		}
		if l := oneLine(errOut); !strings.Contains(l, p+":9:") || !strings.Contains(l, "macth") {
			t.Fatalf("serve with invalid config: stderr %q; want exactly one line naming %s:9 and the field", errOut, p)
		}
	})
	t.Run("serve missing file", func(t *testing.T) {
		code, _, errOut := runCLI(t, dir, "serve", "--config", filepath.Join(dir, "nope.yaml"))
		if code != 2 || oneLine(errOut) == "" {
			t.Fatalf("serve with missing file: exit %d, stderr %q; want 2 and one line", code, errOut)
		}
	})
}

// oneLine returns s trimmed when it is exactly one line, else "".
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "\n") {
		return ""
	}
	return s
}
