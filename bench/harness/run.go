package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// runFlags are the benchmark's knobs; defaults give a run of about two
// minutes (builds + 2 × 3 s warm-up + 5 rounds × 2 systems × 10 s).
type runFlags struct {
	workloads   string
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	connections int
	threads     int
	wrkTimeout  time.Duration
	serverCPU   int
	loadCPU     int
	accessLog   string
	bodyBytes   int
	sekishoBin  string
	altBin      string
	noFloor     bool
	jsonOut     string
	profileDir  string
	keep        bool
	timeout     time.Duration
	goCmd       string
	minUtil     float64
	maxLoad     float64
}

func parseRunFlags(args []string, out io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet("harness", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintln(out, "Usage: go run ./bench/harness [flags]\n\n"+
			"Benchmarks Sekisho against the floor (plain httputil.ReverseProxy) with wrk in\n"+
			"interleaved rounds. Needs wrk and taskset; see bench/README.md.\n\n"+
			"Also: go run ./bench/harness upstream|floor -h  (run a helper server alone)\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.workloads, "workloads", "public", "comma-separated workloads, or all (public, jwt-reuse, jwt-fresh, token-issue, introspect)")
	fs.IntVar(&f.rounds, "rounds", 5, "measured rounds per system (0–50); rounds run in ABBA order")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "wrk duration per round (whole seconds, 1s–5m)")
	fs.DurationVar(&f.warmup, "warmup", 3*time.Second, "unrecorded warm-up per system and workload (0 or 1s–1m)")
	fs.IntVar(&f.connections, "connections", 64, "wrk connections (1–10000)")
	fs.IntVar(&f.threads, "threads", 1, "wrk threads (1–64); wrk shares one CPU with the upstream")
	fs.DurationVar(&f.wrkTimeout, "wrk-timeout", 2*time.Second, "wrk per-request socket timeout (whole seconds)")
	fs.IntVar(&f.serverCPU, "server-cpu", 0, "CPU the server under test is pinned to; -1: not pinned (it may use every CPU and competes with wrk)")
	fs.IntVar(&f.loadCPU, "load-cpu", 1, "CPU wrk and the sample upstream are pinned to")
	fs.StringVar(&f.accessLog, "access-log", accessLogFile, "Sekisho access log: file (realistic), devnull, or off")
	fs.IntVar(&f.bodyBytes, "body-bytes", 100, "sample upstream response body size")
	fs.StringVar(&f.sekishoBin, "sekisho-bin", "", "use this sekisho binary instead of building ./cmd/sekisho")
	fs.StringVar(&f.altBin, "alt-bin", "", "also measure other sekisho binaries with the same config, for A/B experiments: PATH (system sekisho-alt) or NAME=PATH,NAME=PATH,…")
	fs.BoolVar(&f.noFloor, "no-floor", false, "do not run the floor (A/B runs of -alt-bin against sekisho only: shorter cycles, tighter pairs)")
	fs.StringVar(&f.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&f.profileDir, "profile", "", "after the rounds, CPU- and allocation-profile a pprof-enabled sekisho build (built from the source tree, not -sekisho-bin) under the first workload; write profiles to this directory")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory (configs, logs, scripts)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "hard limit for the whole run")
	fs.StringVar(&f.goCmd, "go", "go", "go command used to build")
	fs.Float64Var(&f.minUtil, "min-util", 0.90, "warn when a server used less than this share of its CPU")
	fs.Float64Var(&f.maxLoad, "max-load", 0.85, "warn when wrk + upstream used more than this share of the load CPU")
	if err := fs.Parse(args); err != nil {
		return nil, flagErr(err)
	}
	switch {
	case fs.NArg() > 0:
		return nil, usagef("unexpected argument %q (run with -h)", fs.Arg(0))
	case f.rounds < 0 || f.rounds > 50:
		return nil, usagef("-rounds %d out of range 0–50", f.rounds)
	case f.duration < time.Second || f.duration > 5*time.Minute || f.duration%time.Second != 0:
		return nil, usagef("-duration %v must be whole seconds in 1s–5m", f.duration)
	case f.warmup != 0 && (f.warmup < time.Second || f.warmup > time.Minute || f.warmup%time.Second != 0):
		return nil, usagef("-warmup %v must be 0 or whole seconds in 1s–1m", f.warmup)
	case f.connections < 1 || f.connections > 10000:
		return nil, usagef("-connections %d out of range 1–10000", f.connections)
	case f.threads < 1 || f.threads > 64 || f.threads > f.connections:
		return nil, usagef("-threads %d must be 1–64 and not more than -connections", f.threads)
	case f.wrkTimeout < time.Second || f.wrkTimeout%time.Second != 0:
		return nil, usagef("-wrk-timeout %v must be whole seconds ≥ 1s", f.wrkTimeout)
	case f.accessLog != accessLogFile && f.accessLog != accessLogDevNull && f.accessLog != accessLogOff:
		return nil, usagef("-access-log %q: allowed file, devnull, off", f.accessLog)
	case f.bodyBytes < 16 || f.bodyBytes > 65536:
		return nil, usagef("-body-bytes %d out of range 16–65536", f.bodyBytes)
	case f.timeout < time.Minute:
		return nil, usagef("-timeout %v must be at least 1m", f.timeout)
	case f.rounds == 0 && f.profileDir == "":
		return nil, usagef("-rounds 0 measures nothing; add -profile DIR for a profile-only run")
	}
	return f, nil
}

// runEnv is the state of one harness run.
type runEnv struct {
	f         *runFlags
	root      string
	tmp       string
	reportLua string
	upstream  *proc
	systems   []*system
	progress  io.Writer
	// Shared state of workloads prepared in this run (see jwt.go,
	// authserver.go); nil until a workload needs it.
	jwt *benchIssuer
	as  *benchAS
}

// Names of the two reference systems.
const (
	floorName       = "floor"
	floorVerifyName = "floor+verify" // the floor plus one raw ES256 verify per request (cryptobound.go)
)

// boundJWKS returns the key set of the first crypto-bound plan, or "".
func boundJWKS(plans []*plan) string {
	for _, p := range plans {
		if p.boundJWKS != "" {
			return p.boundJWKS
		}
	}
	return ""
}

// system is a server under test.
type system struct {
	name       string // floor | floor+verify (crypto-bound workloads only) | sekisho | sekisho-alt | sekisho-pprof
	sekisho    bool
	proc       *proc
	baseURL    string
	adminURL   string
	accessPath string
}

// runResult is the JSON document.
type runResult struct {
	Command   string            `json:"command"`
	Argv      []string          `json:"argv"`
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Machine   machineInfo       `json:"machine"`
	Setup     map[string]any    `json:"setup"`
	Workloads []*workloadResult `json:"workloads"`
	Profile   *profileResult    `json:"profile,omitempty"`
}

func cmdRun(ctx context.Context, args []string, out, errOut io.Writer) error {
	f, err := parseRunFlags(args, out)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		return err
	}
	if err := checkTools(f.serverCPU, f.loadCPU); err != nil {
		return err
	}
	sel, err := selectWorkloads(f.workloads)
	if err != nil {
		return err
	}
	alts, err := parseAlts(f.altBin)
	if err != nil {
		return err
	}
	reportLua, err := os.ReadFile(filepath.Join(root, "bench", "wrk", "report.lua"))
	if err != nil {
		return fmt.Errorf("read bench/wrk/report.lua: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	tmp, err := os.MkdirTemp("", "sekisho-bench-")
	if err != nil {
		return err
	}
	if f.keep {
		fmt.Fprintf(errOut, "harness: keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	env := &runEnv{f: f, root: root, tmp: tmp, reportLua: string(reportLua), progress: errOut}
	defer env.stopAll()

	res := &runResult{Command: "go run ./bench/harness " + shellJoin(args), Argv: os.Args, Started: time.Now().UTC()}
	res.Machine = collectMachineInfo(ctx, f.goCmd, root)
	res.Setup = map[string]any{
		"rounds": f.rounds, "duration_s": f.duration.Seconds(), "warmup_s": f.warmup.Seconds(),
		"connections": f.connections, "threads": f.threads, "server_cpu": f.serverCPU, "load_cpu": f.loadCPU,
		"upstream_cpu": f.loadCPU, "access_log": f.accessLog, "metrics": "on (admin /metrics)",
		"upstream_body_bytes": f.bodyBytes, "order": "ABBA (every even-numbered round runs the systems in reverse order)",
	}

	// Plans for the available workloads; the others are reported as such.
	var plans []*plan
	var active []*workloadResult
	for _, w := range sel {
		r := &workloadResult{Name: w.name, Summary: w.summary, Target: w.target.String(), target: w.target}
		res.Workloads = append(res.Workloads, r)
		if w.needs != "" || w.prepare == nil {
			r.Status, r.Reason = "not_available", "needs "+w.needs
			continue
		}
		p, err := w.prepare(env)
		if err != nil {
			return fmt.Errorf("workload %s: %w", w.name, err)
		}
		r.OpsLabel = p.perOp
		plans = append(plans, p)
		active = append(active, r)
	}
	activePlans := plans
	if len(activePlans) == 0 && f.profileDir == "" {
		for _, r := range res.Workloads {
			printWorkload(out, r, "")
		}
		return writeJSON(f.jsonOut, res)
	}

	// Binaries.
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the harness binary: %w", err)
	}
	sekishoBin := f.sekishoBin
	if sekishoBin == "" && (f.rounds > 0) {
		sekishoBin = filepath.Join(tmp, "bin", "sekisho")
		fmt.Fprintf(errOut, "harness: building ./cmd/sekisho …\n")
		if err := goBuild(ctx, f.goCmd, root, sekishoBin, "./cmd/sekisho"); err != nil {
			return fmt.Errorf("build sekisho: %w", err)
		}
	}

	// Processes: the upstream on the load CPU, every server on the server CPU.
	env.upstream, err = startProc(ctx, procSpec{name: "upstream", cpu: f.loadCPU, bin: self,
		args: []string{"upstream", "-addr", "127.0.0.1:0", "-body-bytes", fmt.Sprint(f.bodyBytes)}, announce: true, logDir: tmp})
	if err != nil {
		return err
	}
	upstreamURL := "http://" + env.upstream.addr
	if f.rounds > 0 {
		if !f.noFloor {
			fl, err := startProc(ctx, procSpec{name: "floor", cpu: f.serverCPU, bin: self,
				args: []string{"floor", "-addr", "127.0.0.1:0", "-target", upstreamURL}, announce: true, logDir: tmp})
			if err != nil {
				return err
			}
			env.systems = append(env.systems, &system{name: floorName, proc: fl, baseURL: "http://" + fl.addr})
			if jwks := boundJWKS(activePlans); jwks != "" {
				fv, err := startProc(ctx, procSpec{name: "floor-verify", cpu: f.serverCPU, bin: self,
					args: []string{"floor", "-addr", "127.0.0.1:0", "-target", upstreamURL, "-verify-jwks", jwks}, announce: true, logDir: tmp})
				if err != nil {
					return err
				}
				env.systems = append(env.systems, &system{name: floorVerifyName, proc: fv, baseURL: "http://" + fv.addr})
			}
		}
		s, err := env.startSekisho(ctx, "sekisho", sekishoBin, upstreamURL, plans, nil)
		if err != nil {
			return err
		}
		env.systems = append(env.systems, s)
		for _, a := range alts {
			s, err := env.startSekisho(ctx, a.name, a.path, upstreamURL, plans, nil)
			if err != nil {
				return err
			}
			env.systems = append(env.systems, s)
		}
	}

	serverCPU := fmt.Sprintf("server CPU %d", f.serverCPU)
	if f.serverCPU < 0 {
		serverCPU = "server unpinned (every CPU)"
	}
	setup := fmt.Sprintf("%d rounds × %v (ABBA), warm-up %v; wrk -t%d -c%d; %s, wrk + upstream CPU %d; access log %s, metrics on",
		f.rounds, f.duration, f.warmup, f.threads, f.connections, serverCPU, f.loadCPU, f.accessLog)
	for i, p := range activePlans {
		r := active[i]
		if f.rounds == 0 {
			r.Status, r.Reason = "skipped", "-rounds 0 (profile only)"
			continue
		}
		if err := env.runWorkload(ctx, r, p); err != nil {
			r.Status, r.Reason = "failed", err.Error()
			fmt.Fprintf(errOut, "harness: workload %s failed: %v\n", r.Name, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		summarize(r, env.systemNames(), f.connections, f.minUtil, f.maxLoad)
		if p.boundJWKS != "" {
			if us, err := measureVerifyCost(ctx, self, f.serverCPU); err != nil {
				r.Warnings = append(r.Warnings, "crypto bound not measured: "+err.Error())
			} else {
				r.CryptoBound = newCryptoBound(us, r.Systems)
			}
		}
	}
	res.Machine.LoadAvgEnd = loadAvg()
	fmt.Fprintf(out, "\nSekisho benchmark — %s\n", res.Command)
	fmt.Fprintf(out, "machine: %d CPUs (%s), kernel %s, %s, %s; load average %s → %s\n",
		res.Machine.NProc, res.Machine.CPUModel, res.Machine.Kernel, res.Machine.GoVersion, res.Machine.WrkVersion,
		res.Machine.LoadAvgStart, res.Machine.LoadAvgEnd)
	for _, r := range res.Workloads {
		printWorkload(out, r, setup)
	}

	if f.profileDir != "" && len(activePlans) > 0 {
		// The timed systems are stopped first so the profiled one has the
		// server CPU to itself.
		for _, s := range env.systems {
			s.proc.stop()
		}
		env.systems = nil
		pr, err := env.profile(ctx, out, upstreamURL, activePlans[0], active[0].Name)
		if err != nil {
			fmt.Fprintf(errOut, "harness: profile: %v\n", err)
		}
		res.Profile = pr
	}
	res.Finished = time.Now().UTC()
	if err := writeJSON(f.jsonOut, res); err != nil {
		return err
	}
	for _, r := range res.Workloads {
		if r.Status == "failed" {
			return fmt.Errorf("workload %s failed: %s", r.Name, r.Reason)
		}
	}
	return nil
}

// altSystem is an extra Sekisho binary measured alongside (-alt-bin).
type altSystem struct{ name, path string }

// parseAlts parses -alt-bin: "PATH" or "NAME=PATH,NAME=PATH".
func parseAlts(spec string) ([]altSystem, error) {
	if spec == "" {
		return nil, nil
	}
	if !strings.Contains(spec, "=") && !strings.Contains(spec, ",") {
		if _, err := os.Stat(spec); err != nil {
			return nil, usagef("-alt-bin: %v", err)
		}
		return []altSystem{{"sekisho-alt", spec}}, nil
	}
	seen := map[string]bool{floorName: true, floorVerifyName: true, "sekisho": true, "sekisho-pprof": true}
	var out []altSystem
	for _, item := range strings.Split(spec, ",") {
		name, path, ok := strings.Cut(item, "=")
		if !ok || name == "" || path == "" || len(name) > 12 || strings.ContainsAny(name, " /\t") || seen[name] {
			return nil, usagef("-alt-bin: %q must be NAME=PATH with a unique NAME of 1–12 characters (not floor or sekisho)", item)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, usagef("-alt-bin %s: %v", name, err)
		}
		seen[name] = true
		out = append(out, altSystem{name, path})
	}
	return out, nil
}

func (env *runEnv) systemNames() []string {
	var n []string
	for _, s := range env.systems {
		n = append(n, s.name)
	}
	return n
}

func (env *runEnv) stopAll() {
	for _, s := range env.systems {
		s.proc.stop()
	}
	env.upstream.stop()
}

// startSekisho writes the config for name and starts the binary pinned to
// the server CPU, then waits until it is ready.
func (env *runEnv) startSekisho(ctx context.Context, name, bin, upstreamURL string, plans []*plan, extraEnv []string) (*system, error) {
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(env.tmp, name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	c := sekishoConfig{
		listen: listen, admin: admin, dataDir: filepath.Join(dir, "data"), accessLog: env.f.accessLog,
		accessPath: filepath.Join(dir, "access.log"), upstreamURL: upstreamURL, connections: env.f.connections, plans: plans,
	}
	cfgPath := filepath.Join(dir, "sekisho.yaml")
	if err := os.WriteFile(cfgPath, []byte(c.yaml()), 0o600); err != nil {
		return nil, err
	}
	si := sekishoInstance{name: name, bin: bin, cfgPath: cfgPath, baseURL: "http://" + listen}
	for _, pl := range plans {
		if pl.beforeStart != nil {
			if err := pl.beforeStart(ctx, si); err != nil {
				return nil, fmt.Errorf("%s: prepare before start: %w", name, err)
			}
		}
	}
	p, err := startProc(ctx, procSpec{name: name, cpu: env.f.serverCPU, bin: bin, args: []string{"serve", "--config", cfgPath},
		env: extraEnv, logDir: dir})
	if err != nil {
		return nil, err
	}
	s := &system{name: name, sekisho: true, proc: p, baseURL: "http://" + listen, adminURL: "http://" + admin}
	if c.accessLog == accessLogFile {
		s.accessPath = c.accessPath
	}
	if err := waitHTTP(ctx, s.adminURL+"/readyz", 30*time.Second, p.alive); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s did not become ready: %v; stderr: %s", name, err, tailFile(p.errPath, 1500))
	}
	for _, pl := range plans {
		if pl.afterStart != nil {
			if err := pl.afterStart(ctx, si); err != nil {
				p.stop()
				return nil, fmt.Errorf("%s: prepare after start: %w", name, err)
			}
		}
	}
	return s, nil
}

// runWorkload probes every system, warms each up, then runs the rounds.
func (env *runEnv) runWorkload(ctx context.Context, r *workloadResult, p *plan) error {
	f := env.f
	r.Status, r.Path = "measured", p.path
	luaSrc, err := os.ReadFile(filepath.Join(env.root, "bench", "wrk", p.luaFile))
	if err != nil {
		return fmt.Errorf("read bench/wrk/%s: %w", p.luaFile, err)
	}
	script, err := composeScript(env.tmp, r.Name, string(luaSrc), env.reportLua)
	if err != nil {
		return err
	}
	var systems []*system
	for _, s := range env.systems {
		switch {
		case s.name == floorVerifyName && p.boundJWKS == "":
		case len(p.systems) == 0 || slices.Contains(p.systems, s.name) || (s.sekisho && slices.Contains(p.systems, "sekisho")):
			systems = append(systems, s)
		}
	}
	for _, s := range systems {
		if err := probe(s, p, upstreamBody(f.bodyBytes)); err != nil {
			return fmt.Errorf("%s does not answer the workload correctly: %w", s.name, err)
		}
	}
	mk := func(s *system, round int, d time.Duration) wrkRun {
		return wrkRun{cpu: f.loadCPU, threads: f.threads, connections: f.connections, duration: d,
			timeout: f.wrkTimeout, script: script, scriptArgs: p.scriptArgs(s.name, round), url: s.baseURL + p.path}
	}
	if f.warmup > 0 {
		for _, s := range systems {
			fmt.Fprintf(env.progress, "harness: %s warm-up %s (%v)\n", r.Name, s.name, f.warmup)
			if _, err := mk(s, -1, f.warmup).run(ctx); err != nil {
				return fmt.Errorf("warm-up %s: %w", s.name, err)
			}
			// The warm-up's last requests must be logged before the log is
			// emptied, or round 1 would count them.
			if err := settle(ctx); err != nil {
				return err
			}
			env.truncateLog(s)
		}
	}
	for round := 1; round <= f.rounds; round++ {
		order := slices.Clone(systems)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, s := range order {
			w := mk(s, round, f.duration)
			if r.WrkArgv == nil {
				r.WrkArgv = w.argv()
			}
			smp, err := env.measure(ctx, s, p, w)
			if err != nil {
				return fmt.Errorf("round %d %s: %w", round, s.name, err)
			}
			smp.Round = round
			r.Samples = append(r.Samples, *smp)
			fmt.Fprintf(env.progress, "harness: %s round %d/%d %-12s %8.0f req/s  p50 %-8s p99 %-8s %6.1f µs CPU/req  srv %3.0f%%  load %3.0f%%  errors %d\n",
				r.Name, round, f.rounds, s.name, smp.RPS, fmtUS(float64(smp.P50us)), fmtUS(float64(smp.P99us)),
				smp.ServerCPUus, 100*smp.ServerUtil, 100*smp.LoadUtil, smp.Errors)
		}
	}
	return nil
}

// probe sends the workload's request once and checks the answer.
func probe(s *system, p *plan, body []byte) error {
	ps := p.probe
	if p.probeFor != nil {
		ps = p.probeFor(s.name)
	}
	if ps == nil {
		ps = &probeSpec{method: http.MethodGet, wantBody: true}
	}
	req, err := http.NewRequest(ps.method, s.baseURL+p.path, strings.NewReader(ps.body))
	if err != nil {
		return err
	}
	for k, v := range ps.header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: status %d: %.200s", ps.method, p.path, resp.StatusCode, got)
	}
	if ps.wantBody && !bytes.Equal(got, body) {
		return fmt.Errorf("%s %s: body is not the sample upstream's: %.200q", ps.method, p.path, got)
	}
	if ps.check != nil {
		if err := ps.check(got); err != nil {
			return fmt.Errorf("%s %s: %w", ps.method, p.path, err)
		}
	}
	if ps.refusedWithout != "" && s.sekisho {
		req, err := http.NewRequest(ps.method, s.baseURL+p.path, strings.NewReader(ps.body))
		if err != nil {
			return err
		}
		for k, v := range ps.header {
			if !strings.EqualFold(k, ps.refusedWithout) {
				req.Header.Set(k, v)
			}
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("%s %s without %s: status %d, want 401 (the route does not authenticate)", ps.method, p.path, ps.refusedWithout, resp.StatusCode)
		}
	}
	return nil
}

// measure runs one round against s and computes the sample. Metric scrapes
// happen outside the CPU-time window so they are not charged to requests.
func (env *runEnv) measure(ctx context.Context, s *system, p *plan, w wrkRun) (*sample, error) {
	var m0, m1 map[string]float64
	var err error
	if s.sekisho {
		if m0, err = scrape(s.adminURL + "/metrics"); err != nil {
			return nil, fmt.Errorf("scrape metrics: %w", err)
		}
	}
	s0, err1 := cpuTime(s.proc.pid)
	u0, err2 := cpuTime(env.upstream.pid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("read CPU time: %w", err)
	}
	io0, ioErr0 := ioSyscalls(s.proc.pid)
	wr, err := w.run(ctx)
	if err != nil {
		return nil, err
	}
	io1, ioErr1 := ioSyscalls(s.proc.pid)
	if p.checkExtra != nil {
		if err := p.checkExtra(s.name, wr.Extra); err != nil {
			return nil, fmt.Errorf("workload check: %w", err)
		}
	}
	s1, err1 := cpuTime(s.proc.pid)
	u1, err2 := cpuTime(env.upstream.pid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("read CPU time (did the process die?): %w", err)
	}
	if !s.proc.alive() || !env.upstream.alive() {
		return nil, errors.New("a server process exited during the round")
	}
	smp := &sample{System: s.name, Requests: wr.Requests, Errors: wr.errors(), Seconds: wr.WallSeconds, RPS: wr.ReqPerSec,
		P50us: wr.P50US, P90us: wr.P90US, P99us: wr.P99US, P999us: wr.P999US, MaxUS: wr.LatMaxUS,
		AllocsPerReq: -1, AllocBytesPerReq: -1, GCs: -1, ReadsPerReq: -1, WritesPerReq: -1, RouteCount: -1, LogLines: -1, Extra: wr.Extra}
	if wr.Requests > 0 {
		n := float64(wr.Requests)
		smp.ServerCPUus = float64((s1 - s0).Microseconds()) / n
		smp.UpstreamCPUus = float64((u1 - u0).Microseconds()) / n
		smp.WrkCPUus = float64(wr.WrkCPU.Microseconds()) / n
		if ioErr0 == nil && ioErr1 == nil {
			smp.ReadsPerReq = float64(io1.reads-io0.reads) / n
			smp.WritesPerReq = float64(io1.writes-io0.writes) / n
		}
	}
	smp.ServerUtil = (s1 - s0).Seconds() / wr.WallSeconds
	smp.LoadUtil = ((u1 - u0) + wr.WrkCPU).Seconds() / wr.WallSeconds
	if err := settle(ctx); err != nil {
		return nil, err
	}
	if s.sekisho {
		if m1, err = scrape(s.adminURL + "/metrics"); err != nil {
			return nil, fmt.Errorf("scrape metrics: %w", err)
		}
		delta := func(name string, labels map[string]string) float64 {
			a, ok1 := seriesValue(m0, name, labels)
			b, ok2 := seriesValue(m1, name, labels)
			if !ok2 {
				return -1
			}
			if !ok1 {
				a = 0 // series created during the round
			}
			return b - a
		}
		n := float64(max(wr.Requests, 1))
		if d := delta("go_memstats_mallocs_total", nil); d >= 0 {
			smp.AllocsPerReq = d / n
		}
		if d := delta("go_memstats_alloc_bytes_total", nil); d >= 0 {
			smp.AllocBytesPerReq = d / n
		}
		smp.GCs = delta("go_gc_duration_seconds_count", nil)
		smp.RouteCount = delta("sekisho_requests_total", map[string]string{"route": p.routeName, "code": "2xx"})
		smp.LogLines = env.truncateLog(s)
	}
	return smp, nil
}

// settle waits for in-flight requests to finish, closing connections to
// settle and a buffered access log to flush, before anything is counted.
// The CPU window is already closed when it runs.
func settle(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(500 * time.Millisecond):
		return nil
	}
}

// truncateLog counts and empties a system's access-log file (Sekisho opens
// it with O_APPEND, so writing continues at the new end). Returns -1 when the
// access log does not go to a file.
func (env *runEnv) truncateLog(s *system) int64 {
	if s.accessPath == "" {
		return -1
	}
	n, err := countLines(s.accessPath)
	if err != nil {
		return -1
	}
	_ = os.Truncate(s.accessPath, 0)
	return n
}

func writeJSON(path string, res *runResult) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write -json: %w", err)
	}
	return nil
}

// shellJoin quotes args for a copy-pasteable command line.
func shellJoin(args []string) string {
	var out []string
	for _, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
		}) < 0 {
			out = append(out, a)
			continue
		}
		out = append(out, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return strings.Join(out, " ")
}
