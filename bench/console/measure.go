package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sightline/sightline/internal/observable"
)

// probe is one enrich request and the sightings count its answer must hold.
type probe struct {
	name, body string
	want       int
}

var probes = []probe{
	{"email_subject", `[{"type":"email_subject","value":"` + benchSubject + `"}]`, subjectHits},
	{"ip", `[{"type":"ip","value":"` + benchIP + `"}]`, ipHits},
}

// workload is what the concurrent clients of one measurement ask: client i
// sends probes[i % len(probes)].
type workload struct {
	name   string
	probes []probe
}

// workloads returns the measured workloads: by default each probe, asked
// by every client; with distinct, the subjects of the -distinct plant, one
// per client, so that no two concurrent investigations are identical.
func workloads(distinct bool) []workload {
	if !distinct {
		var ws []workload
		for _, p := range probes {
			ws = append(ws, workload{p.name, []probe{p}})
		}
		return ws
	}
	w := workload{name: "email_subject (distinct)"}
	for k := 1; k <= distinctSubjects; k++ {
		w.probes = append(w.probes, probe{distinctSubject(k), `[{"type":"email_subject","value":"` + distinctSubject(k) + `"}]`, subjectHits})
	}
	return []workload{w}
}

// result is one measured run.
type result struct {
	durations []time.Duration // sorted, successful calls only
	errors    int
	firstErr  error
	elapsed   time.Duration
	cpu       time.Duration // CPU time of the whole process (all roles and the client) during the run
}

// cpuPerCall is the process's CPU time per call of r: what one
// investigation costs across the three roles, whatever else loads the
// machine.
func (r result) cpuPerCall() time.Duration {
	return r.cpu / time.Duration(max(1, len(r.durations)+r.errors))
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func measureEnrich(ctx context.Context, s *system, o options, out io.Writer) error {
	top := slices.Max(o.levels)
	var prof *os.File
	defer func() {
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
	}()
	fmt.Fprintf(out, "\nPOST /iroh/iroh-enrich/observe/observables, ESA module timeframe 30 days; %s measured after %s warm-up\n",
		o.duration, o.warmup)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "observable\tconcurrency\tcount\treq/s\tp50\tp95\tp99\tmax\terrors\tsightings\tCPU/call\tcores used\t")
	failed := false
	for _, c := range o.levels {
		for _, w := range workloads(o.distinct) {
			tok, err := s.accessToken(ctx)
			if err != nil {
				return err
			}
			if o.warmup > 0 {
				if _, err := s.load(ctx, tok, w, c, o.warmup); err != nil {
					return err
				}
			}
			if c == top && o.cpuprofile != "" && prof == nil {
				if prof, err = os.Create(o.cpuprofile); err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(prof); err != nil {
					return err
				}
			}
			r, err := s.load(ctx, tok, w, c, o.duration)
			if err != nil {
				return err
			}
			d := r.durations
			row := fmt.Sprintf("%s\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%.2f\t\n", w.name, c, len(d),
				float64(len(d))/r.elapsed.Seconds(), ms(pct(d, 50)), ms(pct(d, 95)), ms(pct(d, 99)), ms(pct(d, 100)), r.errors, w.probes[0].want,
				ms(r.cpuPerCall()), r.cpu.Seconds()/r.elapsed.Seconds())
			fmt.Fprint(tw, row)
			fmt.Fprint(os.Stderr, strings.ReplaceAll(row, "\t", " "))
			if r.errors > 0 {
				failed = true
				fmt.Fprintf(os.Stderr, "  first error: %v\n", r.firstErr)
			}
		}
	}
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
		prof = nil
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed {
		return fmt.Errorf("some enrich answers were wrong or failed: the run is invalid")
	}
	return nil
}

// load runs c workers calling w for d and returns their latencies: worker
// i sends w.probes[i % len(w.probes)]. Any answer that is not 200 with
// exactly the probe's sightings is an error.
func (s *system) load(ctx context.Context, tok string, w workload, c int, d time.Duration) (result, error) {
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	began, cpu := time.Now(), processCPU()
	stop := began.Add(d)
	for i := range c {
		p := w.probes[i%len(w.probes)]
		wg.Go(func() {
			var mine []time.Duration
			var errs int
			var first error
			var buf bytes.Buffer
			for time.Now().Before(stop) {
				t0 := time.Now()
				err := s.enrich(ctx, tok, p, &buf)
				el := time.Since(t0)
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				mine = append(mine, el)
			}
			mu.Lock()
			defer mu.Unlock()
			res.durations = append(res.durations, mine...)
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = first
			}
		})
	}
	wg.Wait()
	res.elapsed, res.cpu = time.Since(began), processCPU()-cpu
	slices.Sort(res.durations)
	if len(res.durations) == 0 {
		return res, fmt.Errorf("%s at concurrency %d: no successful call: %v", w.name, c, res.firstErr)
	}
	return res, nil
}

// transientMark starts a CTIM transient id.
var transientMark = []byte(`"transient:`)

// withoutTransientIDs returns b with what follows each "transient: up to
// the closing quote removed.
func withoutTransientIDs(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for {
		i := bytes.Index(b, transientMark)
		if i < 0 {
			return append(out, b...)
		}
		out = append(out, b[:i+len(transientMark)]...)
		b = b[i+len(transientMark):]
		if j := bytes.IndexByte(b, '"'); j >= 0 {
			b = b[j:]
		}
	}
}

// sameWithoutTransientIDs reports whether withoutTransientIDs(b) is want,
// without making it.
func sameWithoutTransientIDs(b, want []byte) bool {
	for {
		i := bytes.Index(b, transientMark)
		if i < 0 {
			return bytes.Equal(b, want)
		}
		n := i + len(transientMark)
		if len(want) < n || !bytes.Equal(b[:n], want[:n]) {
			return false
		}
		b, want = b[n:], want[n:]
		if j := bytes.IndexByte(b, '"'); j >= 0 {
			b = b[j:]
		}
	}
}

// enrich makes one observe call, its answer read into buf, and checks the
// ESA module's sightings.
func (s *system) enrich(ctx context.Context, tok string, p probe, buf *bytes.Buffer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.consoleURL+"/iroh/iroh-enrich/observe/observables",
		strings.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, 64<<20)); err != nil {
		return err
	}
	b := buf.Bytes()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, truncate(b))
	}
	// Decoding a 90 KB answer took the client half of the machine at c=50;
	// an answer byte for byte the same as one already checked is right too,
	// but for the fresh transient ids that every answer gives its
	// sightings and relations.
	if last, ok := s.checked.Load(p.body); ok && sameWithoutTransientIDs(b, last.([]byte)) {
		return nil
	}
	b = withoutTransientIDs(b)
	var env struct {
		Data []struct {
			Module string `json:"module"`
			Data   map[string]struct {
				Count int `json:"count"`
			} `json:"data"`
		} `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	for _, d := range env.Data {
		if d.Module == moduleName && len(env.Errors) == 0 && d.Data["sightings"].Count == p.want {
			s.checked.Store(p.body, b)
			return nil
		}
	}
	return fmt.Errorf("want %d sightings from %q and no errors, got %s", p.want, moduleName, truncate(b))
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func measureInspect(ctx context.Context, s *system, o options, out io.Writer) error {
	// In process, on this goroutine: one core.
	corpus := mixedCorpus(o.inspectMB << 20)
	var found int
	best := time.Duration(1 << 62)
	for range 5 {
		t0 := time.Now()
		found = len(observable.Inspect(corpus))
		best = min(best, time.Since(t0))
	}
	fmt.Fprintf(out, "\nobservable.Inspect on %d MiB of mixed text, best of 5, one goroutine: %s, %.1f MB/s, %d observables\n",
		o.inspectMB, ms(best), float64(len(corpus))/best.Seconds()/1e6, found)

	// Over HTTP: a body just under the console's 1 MiB request limit.
	content := mixedCorpus(1 << 20)
	var body []byte
	for {
		var err error
		if body, err = json.Marshal(map[string]string{"content": content}); err != nil {
			return err
		}
		if len(body) <= 1<<20 {
			break
		}
		content = content[:len(content)-(len(body)-(1<<20))-64]
	}
	tok, err := s.accessToken(ctx)
	if err != nil {
		return err
	}
	var ds []time.Duration
	for range 30 {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.consoleURL+"/iroh/iroh-inspect/inspect", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		t0 := time.Now()
		resp, err := s.hc.Do(req)
		if err != nil {
			return err
		}
		var got []json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		ds = append(ds, time.Since(t0))
		if resp.StatusCode != http.StatusOK || err != nil || len(got) == 0 {
			return fmt.Errorf("inspect: %s, %d observables, %v", resp.Status, len(got), err)
		}
		found = len(got)
	}
	slices.Sort(ds)
	fmt.Fprintf(out, "POST /iroh/iroh-inspect/inspect, %d-byte body (%d bytes of text), 30 sequential calls: p50 %s, max %s, %.1f MB/s at p50, %d observables\n",
		len(body), len(content), ms(pct(ds, 50)), ms(pct(ds, 100)), float64(len(content))/pct(ds, 50).Seconds()/1e6, found)
	return nil
}

// mixedCorpus returns size bytes of prose mixed with every kind of
// observable, some defanged, some repeated, as pasted incident notes are.
func mixedCorpus(size int) string {
	r := rand.New(rand.NewPCG(7, 11))
	prose := strings.Fields(`the a message was delivered quarantined from to please find attached invoice report
		urgent account verify password security team meeting server connection refused timeout retry policy sender
		recipient subject attachment see below thanks regards blocked clicked user reported phishing`)
	hexs := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[r.IntN(16)]
		}
		return string(b)
	}
	gens := []func() string{
		func() string { return fmt.Sprintf("%d.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256)) },
		func() string { return fmt.Sprintf("2001:db8:%x::%x", r.IntN(65536), r.IntN(65536)) },
		func() string { return fmt.Sprintf("mail%d.example.com", r.IntN(1000)) },
		func() string {
			return fmt.Sprintf("https://site%d.example.org/p/%d?q=%d", r.IntN(500), r.IntN(100), r.IntN(100))
		},
		func() string { return fmt.Sprintf("hxxps://bad%d[.]example[.]net/login", r.IntN(100)) },
		func() string { return fmt.Sprintf("user%d@corp%d.example", r.IntN(1000), r.IntN(50)) },
		func() string {
			return fmt.Sprintf("\nMessage-ID: <%d.%d@mail.example.com>\n", r.IntN(1e9), r.IntN(1e4))
		},
		func() string { return hexs(32) },
		func() string { return hexs(40) },
		func() string { return hexs(64) },
		func() string { return fmt.Sprintf("invoice_%d.pdf", r.IntN(10000)) },
		func() string { return fmt.Sprintf("MID %d", r.IntN(100000)) },
		func() string { return "(version 2.4.1, 2026-01-10 12:00:01)." },
	}
	var b strings.Builder
	b.Grow(size + 200)
	for b.Len() < size {
		if r.IntN(8) == 0 {
			b.WriteString(gens[r.IntN(len(gens))]())
		} else {
			b.WriteString(prose[r.IntN(len(prose))])
		}
		if r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()[:size]
}

// pct returns the p-th percentile of sorted (100 means the maximum).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)*p/100, len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
