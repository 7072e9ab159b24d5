// Command sightline runs Sightline's roles (gateway, exchange, console,
// manager), alone or all together with serve, and talks to running ones.
//
// Usage:
//
//	sightline serve                 every role in one process, embedded store
//	sightline gateway               the gateway role alone
//	sightline exchange              one exchange region alone
//	sightline exchange token create --devices N --expires 1h
//	sightline exchange devices
//	sightline console               the console alone
//	sightline console api-client create --name N --scopes inspect,enrich
//	sightline console module add esa --name N --device ID --timeframe 30
//	sightline investigate 'email_subject:"test test"'
//	sightline track [filters]       search a gateway's Message Tracking
//	sightline doctor                check a running installation, explain each problem
//	sightline version               print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// gcPercent is the garbage collector's target (GOGC) unless the environment
// sets one: the servers allocate much per request (JSON, MIME, SQL rows) and
// keep little, so a heap allowed to grow to three times what is live halves
// the collections for a few tens of MiB.
const gcPercent = 200

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) { // -h printed the usage: not a failure
		fmt.Fprintln(os.Stderr, "sightline:", err)
		os.Exit(exitCode(err))
	}
}

// env reads the process environment; tests pass their own.
type env func(string) string

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run every role in one process on the embedded store", runServe},
		{"gateway", "run the gateway role, or manage a running gateway", runGateway},
		{"exchange", "run an exchange region, or manage tokens and devices", runExchange},
		{"console", "run the console, or manage its API clients and modules", runConsole},
		{"investigate", "investigate observables in the console, as its Investigate page", runInvestigate},
		{"track", "search a gateway's Message Tracking", runTrack},
		{"doctor", "check a running installation and explain each problem with its fix", runDoctor},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return usageError("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	usage(stderr)
	return usageError(fmt.Sprintf("unknown command %q", args[0]))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sightline <command> [flags]\n\nCommands:")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'sightline <command> -h' for a command's flags.")
}

// usageError is a mistake in the command line; it exits with status 2.
type usageError string

func (e usageError) Error() string { return string(e) }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func runVersion(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fmt.Fprintln(stdout, "sightline", version)
	return nil
}
