package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// sample is one measured round of one system on one workload.
type sample struct {
	System   string  `json:"system"`
	Round    int     `json:"round"` // 1-based
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"` // socket errors + non-2xx/3xx responses
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50us    int64   `json:"p50_us"`
	P90us    int64   `json:"p90_us"`
	P99us    int64   `json:"p99_us"`
	P999us   int64   `json:"p999_us"`
	MaxUS    int64   `json:"max_us"`
	// CPU per request of the server under test (user+system, all threads),
	// and its utilisation of its CPU during the round (1.0 = one full core).
	ServerCPUus   float64 `json:"server_cpu_us_per_req"`
	ServerUtil    float64 `json:"server_cpu_util"`
	UpstreamCPUus float64 `json:"upstream_cpu_us_per_req"`
	WrkCPUus      float64 `json:"wrk_cpu_us_per_req"`
	// Read- and write-class system calls of the server per request
	// (/proc/<pid>/io); -1 when unavailable.
	ReadsPerReq  float64 `json:"server_read_syscalls_per_req"`
	WritesPerReq float64 `json:"server_write_syscalls_per_req"`
	// LoadUtil is wrk + upstream CPU over wall time: how busy the load CPU
	// was. Near 1.0 the load side, not the server, limits throughput.
	LoadUtil float64 `json:"load_cpu_util"`
	// Sekisho only (from its own /metrics and access log): -1 when unknown.
	AllocsPerReq     float64         `json:"allocs_per_req"`
	AllocBytesPerReq float64         `json:"alloc_bytes_per_req"`
	GCs              float64         `json:"gc_cycles"`
	RouteCount       float64         `json:"route_2xx_counted"` // sekisho_requests_total{route,code="2xx"} delta
	LogLines         int64           `json:"access_log_lines"`
	Extra            json.RawMessage `json:"extra,omitempty"`
}

// systemSummary is the median over rounds of one system's samples.
type systemSummary struct {
	System        string    `json:"system"`
	Rounds        int       `json:"rounds"`
	RPS           float64   `json:"rps_median"`
	RPSAll        []float64 `json:"rps_rounds"`
	P50us         float64   `json:"p50_us_median"`
	P99us         float64   `json:"p99_us_median"`
	ServerCPUus   float64   `json:"server_cpu_us_per_req_median"`
	ServerUtil    float64   `json:"server_cpu_util_median"`
	LoadUtil      float64   `json:"load_cpu_util_max"`
	ReadsPerReq   float64   `json:"server_read_syscalls_per_req_median"`
	WritesPerReq  float64   `json:"server_write_syscalls_per_req_median"`
	Errors        int64     `json:"errors_total"`
	AllocsPerReq  float64   `json:"allocs_per_req_median"`
	BytesPerReq   float64   `json:"alloc_bytes_per_req_median"`
	LogLinesShare float64   `json:"access_log_lines_per_req"`
	CountedShare  float64   `json:"route_2xx_counted_per_req"`
	Requests      int64     `json:"requests_total"`
	LogLines      int64     `json:"access_log_lines_total"`
	Counted       int64     `json:"route_2xx_counted_total"`
	OpsPerSec     float64   `json:"ops_per_sec_median,omitempty"` // extra.calls ÷ round time, when the script counts them
	Ops           int64     `json:"ops_total,omitempty"`          // extra.calls over all rounds
}

// ratio compares one system with a base: the floor, or (for -alt-bin
// systems) Sekisho itself.
type ratio struct {
	System          string    `json:"system"`
	Base            string    `json:"base"`
	Throughput      float64   `json:"throughput"`        // median rps ÷ median base rps
	ThroughputPairs []float64 `json:"throughput_paired"` // per round: rps ÷ base rps of the same round
	P99             float64   `json:"p99"`
	CPUPerReq       float64   `json:"cpu_per_req"`        // median ÷ median
	CPUPairs        []float64 `json:"cpu_per_req_paired"` // per round
}

// workloadResult is the outcome of one workload.
type workloadResult struct {
	Name    string `json:"name"`
	Summary string `json:"summary"`
	Status  string `json:"status"` // measured | not_available | skipped | failed
	Reason  string `json:"reason,omitempty"`
	Target  string `json:"target"`
	Verdict string `json:"verdict,omitempty"` // MET | NOT MET | n/a
	// VerdictBasis says what a ratio target was judged on: throughput when
	// both servers were CPU-bound, else CPU per request.
	VerdictBasis string          `json:"verdict_basis,omitempty"`
	Path         string          `json:"path,omitempty"`
	WrkArgv      []string        `json:"wrk_argv,omitempty"`
	Samples      []sample        `json:"samples,omitempty"`
	Systems      []systemSummary `json:"systems,omitempty"`
	Ratios       []ratio         `json:"ratios,omitempty"`
	Warnings     []string        `json:"warnings,omitempty"`
	// OpsLabel names what the script's extra "calls" counts (e.g. token+call
	// pairs); each system's OpsPerSec is then that count's rate.
	OpsLabel string `json:"ops_label,omitempty"`
	// CryptoBound is set for workloads whose every request pays one ES256
	// verification (jwt-fresh).
	CryptoBound *cryptoBound `json:"crypto_bound,omitempty"`
	target      target
}

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summarize computes per-system medians, ratios to the floor, the verdict
// and warnings from res.Samples.
//
// Access-log lines and metric counts are checked against wrk's request
// count: wrk counts only responses that completed within the duration, so
// up to one request per connection per round more (cancelled when wrk
// closes its connections, logged as 499) is expected.
func summarize(res *workloadResult, systems []string, connections int, minUtil, maxLoad float64) {
	by := map[string][]sample{}
	for _, s := range res.Samples {
		by[s.System] = append(by[s.System], s)
	}
	sums := map[string]systemSummary{}
	for _, name := range systems {
		ss := by[name]
		if len(ss) == 0 {
			continue
		}
		var rps, p50, p99, cpu, util, allocs, bytes, rd, wr []float64
		sum := systemSummary{System: name, Rounds: len(ss), AllocsPerReq: -1, BytesPerReq: -1, LogLinesShare: -1, CountedShare: -1}
		var reqs, lines, counted float64
		haveSek := false
		for _, s := range ss {
			rps = append(rps, s.RPS)
			p50 = append(p50, float64(s.P50us))
			p99 = append(p99, float64(s.P99us))
			cpu = append(cpu, s.ServerCPUus)
			util = append(util, s.ServerUtil)
			rd = append(rd, s.ReadsPerReq)
			wr = append(wr, s.WritesPerReq)
			sum.LoadUtil = math.Max(sum.LoadUtil, s.LoadUtil)
			sum.Errors += s.Errors
			if s.AllocsPerReq >= 0 {
				haveSek = true
				allocs = append(allocs, s.AllocsPerReq)
				bytes = append(bytes, s.AllocBytesPerReq)
				lines += float64(s.LogLines)
				counted += s.RouteCount
				reqs += float64(s.Requests)
			}
		}
		var ops []float64
		for _, s := range ss {
			var e struct{ Calls *int64 }
			if len(s.Extra) > 0 && json.Unmarshal(s.Extra, &e) == nil && e.Calls != nil && s.Seconds > 0 {
				ops = append(ops, float64(*e.Calls)/s.Seconds)
				sum.Ops += *e.Calls
			}
		}
		sum.OpsPerSec = median(ops)
		sum.RPSAll = rps
		sum.RPS, sum.P50us, sum.P99us = median(rps), median(p50), median(p99)
		sum.ServerCPUus, sum.ServerUtil = median(cpu), median(util)
		sum.ReadsPerReq, sum.WritesPerReq = median(rd), median(wr)
		if haveSek && reqs > 0 {
			sum.AllocsPerReq, sum.BytesPerReq = median(allocs), median(bytes)
			sum.LogLinesShare, sum.CountedShare = lines/reqs, counted/reqs
			sum.Requests, sum.LogLines, sum.Counted = int64(reqs), int64(lines), int64(counted)
		}
		sums[name] = sum
		res.Systems = append(res.Systems, sum)
	}
	floor, haveFloor := sums["floor"]
	for _, name := range systems {
		for _, base := range []string{"floor", "sekisho"} {
			s, ok := sums[name]
			b, okb := sums[base]
			if !ok || !okb || name == base || name == floorName || (base == "sekisho" && (name == "sekisho" || name == floorVerifyName)) || b.RPS == 0 || b.ServerCPUus == 0 {
				continue
			}
			r := ratio{System: name, Base: base, Throughput: s.RPS / b.RPS, P99: s.P99us / b.P99us, CPUPerReq: s.ServerCPUus / b.ServerCPUus}
			// Pair rounds: the same round number ran back to back (ABBA order).
			br := map[int]sample{}
			for _, x := range by[base] {
				br[x.Round] = x
			}
			for _, x := range by[name] {
				if y, ok := br[x.Round]; ok && y.RPS > 0 && y.ServerCPUus > 0 {
					r.ThroughputPairs = append(r.ThroughputPairs, x.RPS/y.RPS)
					r.CPUPairs = append(r.CPUPairs, x.ServerCPUus/y.ServerCPUus)
				}
			}
			res.Ratios = append(res.Ratios, r)
		}
	}
	// Verdict for Sekisho (the system named "sekisho").
	res.Verdict = "n/a"
	if s, ok := sums["sekisho"]; ok {
		met, judged := true, false
		if t := res.target; t.minThroughputRatio > 0 && haveFloor && floor.RPS > 0 {
			judged = true
			// The ratio of throughputs equals the inverse ratio of CPU per
			// request only when both servers were CPU-bound. On a busy
			// machine their CPU shares differ from round to round, and
			// req/s then measures the scheduler, not the code; the CPU
			// cost per request is still comparable.
			if s.ServerUtil >= minUtil && floor.ServerUtil >= minUtil {
				res.VerdictBasis = "throughput (both servers CPU-bound)"
				met = met && s.RPS/floor.RPS >= t.minThroughputRatio
			} else if s.ServerCPUus > 0 {
				res.VerdictBasis = fmt.Sprintf("CPU per request (floor ÷ sekisho = %.2f×): the servers were not CPU-bound, so req/s is not comparable", floor.ServerCPUus/s.ServerCPUus)
				met = met && floor.ServerCPUus/s.ServerCPUus >= t.minThroughputRatio
			}
		}
		if t := res.target; t.minRPS > 0 {
			judged = true
			met = met && s.RPS >= t.minRPS
		}
		if t := res.target; t.maxP99 > 0 {
			judged = true
			met = met && time.Duration(s.P99us)*time.Microsecond < t.maxP99
		}
		if judged {
			res.Verdict = map[bool]string{true: "MET", false: "NOT MET"}[met]
		}
	}
	for _, name := range systems {
		s, ok := sums[name]
		if !ok {
			continue
		}
		if s.Errors > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d failed requests (socket errors or non-2xx/3xx): its numbers include failures", name, s.Errors))
		}
		if s.ServerUtil < minUtil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s used only %.0f%% of its CPU: it was not CPU-bound (busy machine or saturated load side), so req/s understates it; compare CPU µs/req", name, 100*s.ServerUtil))
		}
		if s.LoadUtil > maxLoad {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: the load CPU (wrk + upstream) reached %.0f%%: the load side may be the limit", name, 100*s.LoadUtil))
		}
		if s.Requests > 0 {
			// Requests wrk gave up on (timeouts) still reach the server.
			slack := int64(s.Rounds*(connections+8)) + s.Errors
			if s.LogLines > 0 && (s.LogLines < s.Requests || s.LogLines > s.Requests+slack) {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d access-log lines for %d requests (expected one per request, plus at most %d cut off at round ends)", name, s.LogLines, s.Requests, slack))
			}
			if res.OpsLabel != "" {
				// Only the script's counted calls go to the route.
				if s.Counted < s.Ops || s.Counted > s.Ops+slack {
					res.Warnings = append(res.Warnings, fmt.Sprintf("%s: its metrics counted %d 2xx requests on the route for %d calls the script counted", name, s.Counted, s.Ops))
				}
			} else if s.Counted < s.Requests-s.Errors || s.Counted > s.Requests+slack {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s: its metrics counted %d 2xx requests on the route for %d successful wrk requests", name, s.Counted, s.Requests-s.Errors))
			}
		}
	}
}

// fmtUS formats microseconds like wrk does (µs below 1 ms, then ms, s).
func fmtUS(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1000)
	default:
		return fmt.Sprintf("%.2fs", us/1e6)
	}
}

// fmtThousands formats n with thousands separators.
func fmtThousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// printWorkload writes one workload's table.
func printWorkload(w io.Writer, res *workloadResult, setup string) {
	fmt.Fprintf(w, "\n== workload %s: %s\n", res.Name, res.Summary)
	if res.Status != "measured" {
		status := strings.ReplaceAll(res.Status, "_", " ")
		if res.Status == "not_available" {
			status = "not available yet"
		}
		fmt.Fprintf(w, "   %s — %s (no numbers recorded)\n", status, res.Reason)
		if res.Status == "not_available" {
			fmt.Fprintf(w, "   target when available: %s\n", res.Target)
		}
		return
	}
	fmt.Fprintf(w, "   %s\n", setup)
	fmt.Fprintf(w, "   %-12s %9s %9s %9s %11s %8s %8s %9s %7s\n", "system", "req/s", "p50", "p99", "CPU µs/req", "srv CPU", "load CPU", "rd+wr/req", "errors")
	for _, s := range res.Systems {
		fmt.Fprintf(w, "   %-12s %9s %9s %9s %11.1f %7.0f%% %7.0f%% %4.2f+%4.2f %7d\n", s.System, fmtThousands(s.RPS), fmtUS(s.P50us), fmtUS(s.P99us),
			s.ServerCPUus, 100*s.ServerUtil, 100*s.LoadUtil, s.ReadsPerReq, s.WritesPerReq, s.Errors)
	}
	fmt.Fprintf(w, "   (medians over rounds; CPU µs/req = server user+sys CPU ÷ requests; load CPU = wrk + upstream, max round;\n"+
		"    rd+wr/req = the server's read- and write-class system calls per request, from /proc/<pid>/io)\n")
	for _, s := range res.Systems {
		var parts []string
		for _, r := range s.RPSAll {
			parts = append(parts, fmtThousands(r))
		}
		fmt.Fprintf(w, "   req/s per round  %-12s %s\n", s.System, strings.Join(parts, "  "))
	}
	for _, s := range res.Systems {
		if res.OpsLabel != "" && s.OpsPerSec > 0 {
			fmt.Fprintf(w, "   %s: %s %s/s (median over rounds, counted by the script)\n", s.System, fmtThousands(s.OpsPerSec), res.OpsLabel)
		}
	}
	for _, r := range res.Ratios {
		lo, hi := minMax(r.ThroughputPairs)
		clo, chi := minMax(r.CPUPairs)
		fmt.Fprintf(w, "   %s/%s: throughput %.2f× (paired rounds %.2f–%.2f), p99 %.2f×, CPU per request %.2f× (paired median %.2f, %.2f–%.2f)\n",
			r.System, r.Base, r.Throughput, lo, hi, r.P99, r.CPUPerReq, median(r.CPUPairs), clo, chi)
	}
	for _, s := range res.Systems {
		if s.AllocsPerReq >= 0 {
			fmt.Fprintf(w, "   %s: %.1f allocs/req, %s allocated/req, %.3f access-log lines/req, %.3f metric-counted 2xx/req\n",
				s.System, s.AllocsPerReq, fmtBytes(s.BytesPerReq), s.LogLinesShare, s.CountedShare)
		}
	}
	if b := res.CryptoBound; b != nil {
		fmt.Fprintf(w, "   crypto bound: a raw ES256 verify costs %.1f µs CPU on the server CPU (measured in this run), the floor %.1f µs/req;\n"+
			"     a proxy costing the floor plus one verify per request would reach %.2f× the floor. Sekisho costs %.1f µs/req: %+.1f µs beyond floor + verify\n",
			b.VerifyCPUus, b.FloorCPUus, b.Bound, b.SekishoCPU, b.BeyondUS)
		if b.MeasuredBound > 0 {
			fmt.Fprintf(w, "     measured: %s (the floor + one raw verify per request, no other check) reached %.2f× the floor at %.1f µs/req;\n"+
				"     Sekisho reached %.2f× of floor+verify's throughput (%+.1f µs/req beyond it)\n",
				floorVerifyName, b.MeasuredBound, b.FloorVerifyCPUus, b.SekishoOfBound, b.SekishoCPU-b.FloorVerifyCPUus)
		}
	}
	fmt.Fprintf(w, "   target: %s → %s\n", res.Target, res.Verdict)
	if res.VerdictBasis != "" {
		fmt.Fprintf(w, "   judged on %s\n", res.VerdictBasis)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "   WARNING: %s\n", warn)
	}
}

func fmtBytes(b float64) string {
	switch {
	case b < 0:
		return "?"
	case b < 10*1024:
		return fmt.Sprintf("%.0f B", b)
	default:
		return fmt.Sprintf("%.1f KiB", b/1024)
	}
}

func minMax(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs[1:] {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}
