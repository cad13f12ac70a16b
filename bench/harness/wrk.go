package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkResult is what report.lua prints at the end of a wrk run (latencies in
// microseconds as recorded by wrk) plus wrk's own CPU time.
type wrkResult struct {
	DurationUS  int64           `json:"duration_us"`
	Requests    int64           `json:"requests"`
	Bytes       int64           `json:"bytes"`
	ErrConnect  int64           `json:"err_connect"`
	ErrRead     int64           `json:"err_read"`
	ErrWrite    int64           `json:"err_write"`
	ErrStatus   int64           `json:"err_status"` // responses outside 2xx/3xx
	ErrTimeout  int64           `json:"err_timeout"`
	LatMeanUS   float64         `json:"lat_mean_us"`
	LatStdevUS  float64         `json:"lat_stdev_us"`
	LatMaxUS    int64           `json:"lat_max_us"`
	P50US       int64           `json:"p50_us"`
	P90US       int64           `json:"p90_us"`
	P99US       int64           `json:"p99_us"`
	P999US      int64           `json:"p999_us"`
	Extra       json.RawMessage `json:"extra,omitempty"`
	WrkCPU      time.Duration   `json:"-"`
	ReqPerSec   float64         `json:"-"`
	WallSeconds float64         `json:"-"`
}

// errors returns the total of failed requests and socket errors.
func (r *wrkResult) errors() int64 {
	return r.ErrConnect + r.ErrRead + r.ErrWrite + r.ErrStatus + r.ErrTimeout
}

const wrkMarker = "SEKISHO_WRK "

// parseWrkOutput finds report.lua's line in wrk's stdout.
func parseWrkOutput(out []byte) (*wrkResult, error) {
	for _, line := range bytes.Split(out, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte(wrkMarker)); ok {
			var r wrkResult
			if err := json.Unmarshal(rest, &r); err != nil {
				return nil, fmt.Errorf("wrk report line: %w", err)
			}
			if r.DurationUS <= 0 {
				return nil, errors.New("wrk report line: zero duration")
			}
			r.WallSeconds = float64(r.DurationUS) / 1e6
			r.ReqPerSec = float64(r.Requests) / r.WallSeconds
			return &r, nil
		}
	}
	return nil, errors.New("wrk printed no report line (was report.lua appended to the script?)")
}

// wrkRun is one invocation of wrk.
type wrkRun struct {
	cpu         int // CPU to pin wrk to
	threads     int
	connections int
	duration    time.Duration
	timeout     time.Duration // wrk's per-request socket timeout
	script      string        // path of the composed Lua script
	scriptArgs  []string
	url         string
}

// argv is the full command line (taskset + wrk), recorded in the JSON.
func (w wrkRun) argv() []string {
	a := []string{"taskset", "-c", strconv.Itoa(w.cpu), "wrk",
		"-t" + strconv.Itoa(w.threads), "-c" + strconv.Itoa(w.connections),
		"-d" + strconv.Itoa(int(w.duration/time.Second)) + "s",
		"--timeout", strconv.Itoa(int(w.timeout/time.Second)) + "s",
		"--latency", "-s", w.script, w.url}
	if len(w.scriptArgs) > 0 {
		a = append(append(a, "--"), w.scriptArgs...)
	}
	return a
}

// run executes wrk, bounded by its duration plus a margin, and returns the
// parsed result with wrk's CPU time.
func (w wrkRun) run(ctx context.Context) (*wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, w.duration+w.timeout+20*time.Second)
	defer cancel()
	argv := w.argv()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("wrk did not finish in time: %w", ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("wrk: %v: %s", err, strings.TrimSpace(stderr.String()+" "+stdout.String()))
	}
	r, err := parseWrkOutput(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w; wrk said: %s", err, strings.TrimSpace(stderr.String()+" "+stdout.String()))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.WrkCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r, nil
}

// composeScript writes workload Lua followed by report.lua into dir and
// returns the path.
func composeScript(dir, name, workloadLua, reportLua string) (string, error) {
	path := dir + "/" + name + ".lua"
	src := workloadLua + "\n\n-- appended by the harness --\n" + reportLua
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		return "", fmt.Errorf("write wrk script: %w", err)
	}
	return path, nil
}
