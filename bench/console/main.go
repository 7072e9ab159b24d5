// Command console benchmarks the console's enrich and inspect paths against a
// gateway holding a large Message Tracking store.
//
// It generates N tracked messages straight into a gateway tracking store,
// opens the exchanges, the gateway and the console in this process wired as
// `sightline serve` wires them (on 127.0.0.1:0), walks the Threat Response
// journey through their APIs, then measures:
//
//   - POST /iroh/iroh-enrich/observe/observables for an email_subject and an
//     ip observable, at each concurrency, for a fixed duration after a
//     warm-up; every answer must hold the expected sightings count. The
//     concurrent clients all ask the same observable, so the console may
//     share their module calls; with -distinct each client asks its own
//     email_subject instead, so that nothing is shared;
//
//   - observable.Inspect on a generated mixed corpus, on one core;
//
//   - POST /iroh/iroh-inspect/inspect with a 1 MB body.
//
//     go run ./bench/console -messages 1000000 -concurrency 1,50 -duration 30s
//
// See bench/console/README.md for the figures and how to read them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

func main() {
	// The collector's target as cmd/sightline sets it (its gcPercent).
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(200)
	}
	var o options
	flag.IntVar(&o.messages, "messages", 1_000_000, "tracked `messages` in the gateway's store")
	flag.StringVar(&o.concurrency, "concurrency", "1,50", "comma-separated concurrent `investigations` to measure")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measured `time` per observable and concurrency")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured warm-up `time` before each measurement")
	flag.StringVar(&o.store, "store", "", "tracking database `file` kept for later runs, generated when absent "+
		"(default: generated in the temporary data directory)")
	flag.IntVar(&o.inspectMB, "inspect-mb", 10, "size of the Inspect corpus in `MB`")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the highest-concurrency enrich runs to `file`")
	flag.BoolVar(&o.distinct, "distinct", false, fmt.Sprintf("give each concurrent client its own email_subject (at most %d "+
		"clients), so that no module call is shared, instead of the same email_subject and ip for all", distinctSubjects))
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "console bench:", err)
		os.Exit(1)
	}
}

type options struct {
	messages          int
	concurrency       string
	levels            []int
	duration, warmup  time.Duration
	store, cpuprofile string
	inspectMB         int
	distinct          bool
}

func (o *options) check() error {
	if o.messages < 1000 {
		return errors.New("-messages must be at least 1000")
	}
	if o.duration <= 0 || o.warmup < 0 || o.inspectMB < 1 {
		return errors.New("-duration must be positive, -warmup not negative, -inspect-mb at least 1")
	}
	for _, s := range strings.Split(o.concurrency, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("-concurrency %q: want numbers from 1 to 1000", o.concurrency)
		}
		if o.distinct && n > distinctSubjects {
			return fmt.Errorf("-distinct: concurrency %d: at most %d, one subject per client", n, distinctSubjects)
		}
		o.levels = append(o.levels, n)
	}
	if least := minDistinctMessages(); o.distinct && o.messages < least {
		return fmt.Errorf("-distinct needs -messages %d at least, for its planted subjects", least)
	}
	return nil
}

func run(ctx context.Context, o options, out io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "console-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	host, _ := os.Hostname()
	fmt.Fprintf(out, "console bench: %s, %s/%s, %d CPUs (GOMAXPROCS %d), host %s, %s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), host,
		time.Now().UTC().Format(time.RFC3339))

	trackingDB := filepath.Join(dir, "gateway", "tracking.db")
	if err := os.MkdirAll(filepath.Dir(trackingDB), 0o750); err != nil {
		return err
	}
	store := o.store
	if store == "" {
		store = trackingDB
	}
	if err := prepareStore(ctx, store, o.messages, o.distinct, out); err != nil {
		return err
	}
	if store != trackingDB {
		// The gateway opens <data>/gateway/tracking.db: link the kept store there.
		if err := os.Link(store, trackingDB); err != nil {
			return fmt.Errorf("link the kept store into the data directory: %w", err)
		}
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	sys, err := start(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer sys.stop()
	if err := sys.journey(ctx, out); err != nil {
		return fmt.Errorf("journey: %w", err)
	}
	if err := measureEnrich(ctx, sys, o, out); err != nil {
		return err
	}
	return measureInspect(ctx, sys, o, out)
}
