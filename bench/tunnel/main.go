// Command tunnel measures the device tunnel: the round trip of a request
// through it against calling the device's API directly, and the memory one
// exchange needs to hold many idle tunnels.
//
//	go run ./bench/tunnel -mode latency [-n 20000]
//	go run ./bench/tunnel -mode idle [-devices 10000]
//
// In idle mode this process is the exchange; it starts a child process (the
// same binary) that runs the simulated devices, so the figures are the hub's
// alone. See README.md for the figures measured.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/internal/tunnel"
)

func main() {
	mode := flag.String("mode", "latency", "latency, idle, or devices (the child of idle)")
	n := flag.Int("n", 20000, "latency: requests per run")
	devices := flag.Int("devices", 10000, "idle: simulated devices")
	url := flag.String("url", "", "devices: the exchange tunnel URL")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/tunnel:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	var err error
	switch *mode {
	case "latency":
		err = latency(*n)
	case "idle":
		err = idle(*devices)
	case "devices":
		err = runDevices(*url, *devices)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench/tunnel:", err)
		os.Exit(1)
	}
}

// answer is what the simulated device API returns.
const answer = `{"data":{"totalCount":1,"messages":[{"mid":[315],"subject":"invoice 4471"}]}}`

// deviceAPI stands for a gateway's API: a small JSON answer.
var deviceAPI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, answer)
})

// listen serves h on a loopback port and returns its address.
func listen(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

func latency(n int) error {
	direct, stopDirect, err := listen(deviceAPI)
	if err != nil {
		return err
	}
	defer stopDirect()

	connected := make(chan struct{}, 1)
	hub := &tunnel.Hub{
		Authenticate: func(context.Context, *http.Request) (string, error) { return "dev", nil },
		OnConnect:    func(string, string) { connected <- struct{}{} },
	}
	defer hub.Close()
	addr, stopHub, err := listen(hub)
	if err != nil {
		return err
	}
	defer stopHub()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &tunnel.Dialer{URL: "ws://" + addr + "/", Credential: func() string { return "secret" }, Handler: deviceAPI}
	go d.Run(ctx)
	<-connected

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	viaDirect := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+direct+"/esa/api/v2.0/message-tracking/messages", nil)
		return drain(client.Do(req))
	}
	viaTunnel := func(ctx context.Context) error {
		req, _ := http.NewRequest(http.MethodGet, "/esa/api/v2.0/message-tracking/messages", nil)
		return drain(hub.RoundTrip(ctx, "dev", req))
	}

	fmt.Printf("round trip of a GET with a %d-byte JSON answer, %d requests per run, GOMAXPROCS=%d\n\n", len(answer), n, runtime.GOMAXPROCS(0))
	fmt.Printf("| concurrency | direct p50 | direct p99 | tunnel p50 | tunnel p99 | added p50 | tunnel req/s |\n")
	fmt.Printf("|---|---|---|---|---|---|---|\n")
	for _, c := range []int{1, 50} {
		run(viaDirect, c, n/10) // warm-up: connections, streams, code paths
		run(viaTunnel, c, n/10)
		dp, _, err := run(viaDirect, c, n)
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		tp, rate, err := run(viaTunnel, c, n)
		if err != nil {
			return fmt.Errorf("tunnel: %w", err)
		}
		fmt.Printf("| %d | %v | %v | %v | %v | %v | %.0f |\n", c,
			pct(dp, 50), pct(dp, 99), pct(tp, 50), pct(tp, 99), pct(tp, 50)-pct(dp, 50), rate)
	}
	return nil
}

func drain(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return err
}

// run sends n requests with c workers and returns the sorted latencies and
// the throughput.
func run(do func(context.Context) error, c, n int) ([]time.Duration, float64, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := do(ctx)
				lat[i] = time.Since(t0)
				cancel()
				if err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	slices.Sort(lat)
	return lat, rate, firstErr
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100].Round(time.Microsecond)
}

// idle runs a Hub in this process and n devices in a child, waits until all
// are connected, and reports this process's memory.
func idle(n int) error {
	var connected atomic.Int64
	all := make(chan struct{})
	hub := &tunnel.Hub{
		Authenticate: func(_ context.Context, r *http.Request) (string, error) {
			tok, _ := tunnel.BearerToken(r)
			return tok, nil // each simulated device's credential is its ID
		},
		OnConnect: func(string, string) {
			if connected.Add(1) == int64(n) {
				close(all)
			}
		},
	}
	defer hub.Close()
	addr, stop, err := listen(hub)
	if err != nil {
		return err
	}
	defer stop()
	before := memory()

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(exe, "-mode", "devices", "-devices", strconv.Itoa(n), "-url", "ws://"+addr+"/")
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	defer func() {
		child.Process.Signal(os.Interrupt)
		child.Wait()
	}()

	start := time.Now()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("only %d of %d devices connected in 5 minutes", connected.Load(), n)
	}
	took := time.Since(start)
	time.Sleep(20 * time.Second) // let at least one heartbeat pass on every tunnel
	runtime.GC()
	debug.FreeOSMemory()
	after := memory()
	if _, _, ok := hub.Connected("dev-0"); !ok || connected.Load() != int64(n) {
		return fmt.Errorf("tunnels dropped while idle: %d connect events", connected.Load())
	}

	childRSS := "?"
	if line, err := bufio.NewReader(out).ReadString('\n'); err == nil {
		childRSS = strings.TrimSpace(line)
	}
	fmt.Printf("%d idle tunnels on one hub (connected in %v), GOMAXPROCS=%d, heartbeat 15s\n\n", n, took.Round(time.Millisecond), runtime.GOMAXPROCS(0))
	fmt.Printf("| hub process | before | with %d tunnels | per tunnel |\n|---|---|---|---|\n", n)
	fmt.Printf("| RSS (VmRSS) | %s | %s | %s |\n", mib(before.rss), mib(after.rss), kib((after.rss-before.rss)/uint64(n)))
	fmt.Printf("| Go heap in use | %s | %s | %s |\n", mib(before.heap), mib(after.heap), kib((after.heap-before.heap)/uint64(n)))
	fmt.Printf("| goroutine stacks | %s | %s | %s |\n", mib(before.stacks), mib(after.stacks), kib((after.stacks-before.stacks)/uint64(n)))
	fmt.Printf("| goroutines | %d | %d | %.1f |\n", before.goroutines, after.goroutines, float64(after.goroutines-before.goroutines)/float64(n))
	fmt.Printf("\ndevice process (all %d simulated devices): %s\n", n, childRSS)
	return nil
}

type mem struct {
	rss, heap, stacks uint64
	goroutines        int
}

func memory() mem {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	return mem{rss: rss(), heap: s[0].Value.Uint64(), stacks: s[1].Value.Uint64(), goroutines: runtime.NumGoroutine()}
}

// rss reads this process's resident set size from /proc.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b uint64) string { return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10)) }

// runDevices runs n Dialers against url, each with its own ID as its
// credential, ramping up so as not to overflow the listen backlog; once all
// are started it prints its RSS and waits for an interrupt.
func runDevices(url string, n int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	for i := range n {
		cred := "dev-" + strconv.Itoa(i)
		d := &tunnel.Dialer{URL: url, Credential: func() string { return cred }, Handler: deviceAPI}
		go d.Run(ctx)
		if i%200 == 199 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(25 * time.Second) // until the parent has measured
	runtime.GC()
	fmt.Printf("RSS %s\n", mib(rss()))
	<-ctx.Done()
	return nil
}
