package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemo starts `sekisho demo` on free ports, reads the instructions it
// prints, and runs every printed curl command with the real curl: each must
// exit 0 and answer the status its comment announces (else 2xx).
func TestDemo(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed: the demo test runs the printed curl commands with the real curl")
	}
	dir := t.TempDir()
	dataDir := dir + "/data"
	g := spawn(t, dir, "demo", "--port", "0", "--admin-port", "0", "--data-dir", dataDir)

	// The instructions end with "Press Ctrl-C to stop.".
	if _, _, err := g.stdout.Wait(0, startTimeout, func(s string) bool { return strings.Contains(s, "Ctrl-C") }); err != nil {
		t.Fatalf("demo printed no instructions: %v\nstdout:\n%s\nstderr:\n%s", err, tail(g.stdout.Lines(), 30), tail(g.stderr.Lines(), 30))
	}
	var gatewayURL, adminURL string
	var commands []string // shell lines, in print order
	assignRE := regexp.MustCompile(`^(export +)?[A-Za-z_][A-Za-z0-9_]*=`)
	lines := g.stdout.Lines()
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if strings.HasPrefix(line, "{") { // access log lines share stdout
			continue
		}
		// Shell continuation lines form one command.
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
		}
		if v, ok := strings.CutPrefix(line, "gateway:"); ok && gatewayURL == "" {
			gatewayURL = strings.Fields(v)[0]
		}
		if v, ok := strings.CutPrefix(line, "admin:"); ok && adminURL == "" {
			adminURL = strings.Fields(v)[0]
		}
		if strings.HasPrefix(line, "curl ") || assignRE.MatchString(line) && strings.Contains(line, "curl ") {
			commands = append(commands, line)
		}
	}
	urlRE := regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*$`)
	if !urlRE.MatchString(gatewayURL) || !urlRE.MatchString(adminURL) {
		t.Fatalf("demo printed gateway %q and admin %q; want http://127.0.0.1:PORT URLs (port 0 must be resolved)", gatewayURL, adminURL)
	}
	if len(commands) < 3 {
		t.Fatalf("demo printed %d curl commands, want several:\n%s", len(commands), g.stdout.String())
	}
	for _, cmdLine := range commands {
		if !strings.Contains(cmdLine, gatewayURL) && !strings.Contains(cmdLine, adminURL) {
			t.Errorf("curl command does not use the printed URLs: %s", cmdLine)
		}
	}
	if _, err := os.Stat(dataDir + "/demo.yaml"); err != nil {
		t.Errorf("demo did not keep its config in the data directory: %v", err)
	}

	// Run the commands as a user pasting them one after the other: one
	// shell, so a printed TOKEN=$(curl ...) is visible to later lines.
	// Markers delimit each command's output and exit status; --max-time
	// bounds every curl.
	var script strings.Builder
	for i, c := range commands {
		fmt.Fprintf(&script, "echo '@@@BEGIN %d@@@'\n%s\necho \"@@@END %d $?@@@\"\n", i, strings.ReplaceAll(c, "curl ", curl+" --max-time 10 "), i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sh := exec.CommandContext(ctx, "sh", "-c", script.String())
	sh.Dir = dir
	sh.Env = cleanEnv()
	outB, err := sh.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the printed commands did not finish within 60s:\n%s", outB)
	}
	out := string(outB)

	statusRE := regexp.MustCompile(`(?m)^HTTP/[0-9.]+ ([0-9]{3})`)
	announcedRE := regexp.MustCompile(`\b([1-5][0-9]{2})\b`)
	for i, cmdLine := range commands {
		begin := strings.Index(out, fmt.Sprintf("@@@BEGIN %d@@@\n", i))
		endRE := regexp.MustCompile(fmt.Sprintf(`@@@END %d (\d+)@@@`, i))
		loc := endRE.FindStringSubmatchIndex(out)
		if begin < 0 || loc == nil {
			t.Errorf("command %d did not run: %s\noutput:\n%s", i+1, cmdLine, out)
			continue
		}
		got := out[begin+len(fmt.Sprintf("@@@BEGIN %d@@@\n", i)) : loc[0]]
		if code := out[loc[2]:loc[3]]; code != "0" {
			t.Errorf("%s\n  exit status %s; output:\n%s", cmdLine, code, got)
			continue
		}
		if !strings.HasPrefix(cmdLine, "curl ") || !strings.Contains(cmdLine, " -i") {
			continue
		}
		want := 0 // 2xx
		if _, comment, ok := strings.Cut(cmdLine, " #"); ok {
			if m := announcedRE.FindStringSubmatch(comment); m != nil {
				want, _ = strconv.Atoi(m[1])
			}
		}
		final := 0
		for _, m := range statusRE.FindAllStringSubmatch(got, -1) {
			if code, _ := strconv.Atoi(m[1]); code >= 200 {
				final = code
				break
			}
		}
		switch {
		case final == 0:
			t.Errorf("%s\n  no HTTP status line in curl's output:\n%s", cmdLine, got)
		case want != 0 && final != want:
			t.Errorf("%s\n  status %d, the demo's comment announces %d\n%s", cmdLine, final, want, got)
		case want == 0 && (final < 200 || final > 299):
			t.Errorf("%s\n  status %d, want 2xx\n%s", cmdLine, final, got)
		default:
			t.Logf("ok %d: %s", final, cmdLine)
		}
	}
	if err != nil && !t.Failed() {
		t.Errorf("the command script failed: %v\n%s", err, out)
	}
	g.alive()
}
