// Command harness is Sekisho's load benchmark: it measures Sekisho against
// the floor — a plain httputil.ReverseProxy with a tuned Transport and
// nothing else — on the same machine, with the same sample upstream, in
// interleaved rounds, and reports throughput, latency and CPU per request
// and each ratio to the floor.
//
// Usage:
//
//	go run ./bench/harness [flags]          run the benchmark (see -h)
//	go run ./bench/harness upstream [flags]  run only the sample upstream
//	go run ./bench/harness floor [flags]     run only the floor proxy
//
// The harness installs nothing. It needs wrk (Debian package "wrk") and
// taskset (util-linux) and at least two CPUs: the server under test is
// pinned to one CPU, wrk and the sample upstream to another, so that the
// ratio to the floor is a ratio of CPU cost per request. See bench/README.md
// for how to read the output and docs/decisions/0007-bench-method.md for why
// it is built this way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches the sub-commands and maps errors to exit codes: 0 success,
// 1 a failed run, 2 a usage error or a missing prerequisite.
func run(args []string, out, errOut io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(args) > 0 && args[0] == "upstream":
		err = cmdUpstream(ctx, args[1:], out)
	case len(args) > 0 && args[0] == "floor":
		err = cmdFloor(ctx, args[1:], out)
	case len(args) > 0 && args[0] == "verifycost":
		err = cmdVerifyCost(args[1:], out)
	case len(args) > 0 && args[0] == "run":
		err = cmdRun(ctx, args[1:], out, errOut)
	default:
		err = cmdRun(ctx, args, out, errOut)
	}
	var ue usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(errOut, "harness: %v\n", err)
		return 2
	default:
		fmt.Fprintf(errOut, "harness: %v\n", err)
		return 1
	}
}

// usageError is a mistake in the invocation or a missing prerequisite
// (exit code 2): nothing was measured.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }
