package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const modulePath = "github.com/sekisho/sekisho"

// findModuleRoot walks up from dir to the Sekisho module's go.mod.
func findModuleRoot(dir string) (string, error) {
	for d := dir; ; {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(strings.TrimPrefix(first, "module")) == modulePath {
				return d, nil
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", usagef("run the harness inside the Sekisho module (no go.mod for %s above %s)", modulePath, dir)
		}
		d = parent
	}
}

// checkTools verifies the prerequisites, with an actionable message.
func checkTools(serverCPU, loadCPU int) error {
	var missing []string
	if _, err := exec.LookPath("wrk"); err != nil {
		missing = append(missing, "wrk (Debian/Ubuntu: apt-get install -y wrk)")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		missing = append(missing, "taskset (Debian/Ubuntu: apt-get install -y util-linux)")
	}
	if len(missing) > 0 {
		return usagef("missing prerequisites; the harness installs nothing itself:\n  %s", strings.Join(missing, "\n  "))
	}
	n := runtime.NumCPU() // CPUs this process may run on (affinity)
	if n < 2 {
		return usagef("need at least 2 CPUs to pin the server and the load generator apart; this process may use %d", n)
	}
	if serverCPU == loadCPU || serverCPU < -1 || loadCPU < 0 {
		return usagef("-server-cpu and -load-cpu must be two different CPUs, or -server-cpu -1 for an unpinned server (got %d and %d)", serverCPU, loadCPU)
	}
	pinned := []int{loadCPU}
	if serverCPU >= 0 {
		pinned = append(pinned, serverCPU)
	}
	for _, c := range pinned {
		if err := exec.Command("taskset", "-c", strconv.Itoa(c), "true").Run(); err != nil {
			return usagef("cannot pin to CPU %d with taskset (%v); choose CPUs this process may use", c, err)
		}
	}
	return nil
}

// goBuild builds a package of the module into out, bounded in time.
func goBuild(ctx context.Context, goCmd, root, out, pkg string, extra ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	args := append([]string{"build"}, extra...)
	args = append(args, "-o", out, pkg)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = root
	cmd.Env = childEnv(nil)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

// freePort reserves a loopback port by binding and releasing it. Used only
// for Sekisho, whose addresses come from its config file; the helpers bind
// port 0 themselves.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// machineInfo is recorded with every result.
type machineInfo struct {
	NProc        int    `json:"nproc"`
	CPUModel     string `json:"cpu_model"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	WrkVersion   string `json:"wrk_version"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
	GitRevision  string `json:"git_revision,omitempty"`
	GitDirty     bool   `json:"git_dirty,omitempty"`
}

func collectMachineInfo(ctx context.Context, goCmd, root string) machineInfo {
	m := machineInfo{NProc: runtime.NumCPU(), LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.GoVersion = cmdLine(ctx, root, goCmd, "env", "GOVERSION")
	// wrk -v prints its version and exits non-zero; take the first line.
	v := cmdLineAny(ctx, root, "wrk", "-v")
	m.WrkVersion, _, _ = strings.Cut(v, " Copyright")
	m.GitRevision = cmdLine(ctx, root, "git", "rev-parse", "--short", "HEAD")
	if m.GitRevision != "" {
		m.GitDirty = cmdLine(ctx, root, "git", "status", "--porcelain", "--untracked-files=no") != ""
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cmdLine returns the first line of a successful command's output.
func cmdLine(ctx context.Context, dir, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return first
}

// cmdLineAny is cmdLine that accepts a non-zero exit status.
func cmdLineAny(ctx context.Context, dir, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	b, _ := cmd.CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return first
}

// httpClient is used for probes and metric scrapes only (never for load).
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}

// waitHTTP polls url until it answers 200 or the deadline passes.
func waitHTTP(ctx context.Context, url string, within time.Duration, alive func() bool) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		if !alive() {
			return errors.New("process exited")
		}
		resp, err := httpClient.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %v: %v", url, within, last)
}

// scrape fetches a Prometheus text exposition and returns selected samples:
// unlabelled series by name, labelled ones as name{k="v",...} with labels in
// the order they appear.
func scrape(url string) (map[string]float64, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return parseExposition(io.LimitReader(resp.Body, 32<<20))
}

// parseExposition parses the Prometheus text format (no timestamps, which
// client_golang does not write) into series → value.
func parseExposition(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// seriesValue finds a series by name whose labels include all of want
// (label order independent).
func seriesValue(m map[string]float64, name string, want map[string]string) (float64, bool) {
	for k, v := range m {
		n, labels, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for lk, lv := range want {
			if !strings.Contains(labels, lk+`="`+lv+`"`) {
				ok = false
				break
			}
		}
		if ok {
			return v, true
		}
	}
	return 0, false
}

// countLines counts newlines in a file (access-log lines).
func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
