// Command sekisho is the Sekisho gateway and authorization server.
//
// Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// usageError is a mistake in how the command was called: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// configError wraps config problems: exit code 2, printed line by line.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

type command struct {
	name, args, summary string
	run                 func(args []string, out, errOut io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "--config FILE", "run the gateway (and the authorization server if enabled)", cmdServe},
		{"demo", "[--data-dir DIR] [--port N]", "start a self-contained demo on loopback: gateway, sample API, authorization server", cmdDemo},
		{"config", "validate FILE", "check a config file and report every problem with file:line", cmdConfig},
		{"clients", "create|list|show|rotate-secret|disable|enable|delete", "manage OAuth clients", cmdClients},
		{"users", "create|list|disable|enable|set-password", "manage users (passwords from stdin)", cmdUsers},
		{"keys", "list|rotate", "inspect and rotate signing keys", cmdKeys},
		{"apikeys", "create|list|revoke", "manage gateway API keys", cmdAPIKeys},
		{"version", "", "print the version", cmdVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, out, errOut io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(out)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(args[1:], out, errOut)
			return exitCode(err, errOut)
		}
	}
	fmt.Fprintf(errOut, "sekisho: unknown command %q (run 'sekisho --help' for the list)\n", args[0])
	return 2
}

func exitCode(err error, errOut io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	var ce configError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(errOut, "sekisho: %s\n", ue.msg)
		return 2
	case errors.As(err, &ce):
		for _, line := range strings.Split(ce.Error(), "\n") {
			fmt.Fprintf(errOut, "sekisho: config: %s\n", line)
		}
		return 2
	default:
		fmt.Fprintf(errOut, "sekisho: %v\n", err)
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Sekisho — secure API gateway and OAuth 2.0 / OpenID Connect authorization server")
	fmt.Fprintln(w, "\nUsage: sekisho <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %-52s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'sekisho <command> --help' for a command's flags. Docs: docs/configuration.md")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(name, args, summary string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: sekisho %s %s\n\n%s\n", name, args, summary)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintln(out, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses and turns flag errors into usage errors (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if err != nil {
		return usagef("%s: %v (run 'sekisho %s --help')", fs.Name(), err, fs.Name())
	}
	return nil
}

func cmdVersion(args []string, out, errOut io.Writer) error {
	fs := newFlags("version", "", "Print the version.", out)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version takes no arguments")
	}
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	fmt.Fprintf(out, "sekisho %s\n", v)
	return nil
}
