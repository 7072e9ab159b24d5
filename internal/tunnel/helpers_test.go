package tunnel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline"
)

// waitLimit bounds every wait for an event in these tests.
const waitLimit = 10 * time.Second

// testCreds are the device credentials the test exchange knows: two
// organisations, A with one device, B with two.
var testCreds = map[string]string{
	"cred-org-a":   "dev-a",
	"cred-org-b":   "dev-b",
	"cred-org-b-2": "dev-b2",
}

func authenticate(ctx context.Context, r *http.Request) (string, error) {
	tok, ok := BearerToken(r)
	if !ok {
		return "", sightline.Errorf(sightline.Unauthorized, "missing device credential")
	}
	id, ok := testCreds[tok]
	if !ok {
		return "", sightline.Errorf(sightline.Unauthorized, "unknown device credential")
	}
	return id, nil
}

// exchange is a Hub behind a real HTTP server on loopback, recording its
// connect and disconnect events.
type exchange struct {
	hub  *Hub
	srv  *http.Server
	addr string

	mu      sync.Mutex
	events  []string      // "connect dev-a", "disconnect dev-a", in order
	taken   []bool        // events already returned by waitEvent
	changed chan struct{} // closed and replaced on every new event
}

func (x *exchange) record(ev string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.events = append(x.events, ev)
	x.taken = append(x.taken, false)
	close(x.changed)
	x.changed = make(chan struct{})
}

// startExchange serves a new Hub on addr ("127.0.0.1:0" for any port).
func startExchange(t testing.TB, addr string, configure func(*Hub)) *exchange {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	x := &exchange{addr: ln.Addr().String(), changed: make(chan struct{})}
	x.hub = &Hub{
		Authenticate: authenticate,
		Heartbeat:    time.Second,
		OnConnect:    func(id, _ string) { x.record("connect " + id) },
		OnDisconnect: func(id, _ string) { x.record("disconnect " + id) },
	}
	if configure != nil {
		configure(x.hub)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/tunnel", x.hub)
	x.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go x.srv.Serve(ln)
	t.Cleanup(x.stop)
	return x
}

// stop ends the exchange like a process exit: listener and tunnels closed.
func (x *exchange) stop() {
	x.srv.Close()
	x.hub.Close()
}

func (x *exchange) url() string { return "ws://" + x.addr + "/api/v1/tunnel" }

// waitEvent waits for an occurrence of the event want not returned before.
func (x *exchange) waitEvent(t testing.TB, want string) {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		x.mu.Lock()
		for i, ev := range x.events {
			if ev == want && !x.taken[i] {
				x.taken[i] = true
				x.mu.Unlock()
				return
			}
		}
		changed := x.changed
		x.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("exchange event %q did not happen within %v", want, waitLimit)
		}
	}
}

// count returns how many times ev happened so far.
func (x *exchange) count(ev string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, e := range x.events {
		if e == ev {
			n++
		}
	}
	return n
}

// device is a running Dialer.
type device struct {
	d      *Dialer
	states chan State
	done   chan error
	cancel context.CancelFunc
}

// startDevice runs a Dialer for cred against url until the test ends.
func startDevice(t testing.TB, url, cred string, h http.Handler, configure func(*Dialer)) *device {
	t.Helper()
	dev := &device{states: make(chan State, 1024), done: make(chan error, 1)}
	dev.d = &Dialer{
		URL:        url,
		Credential: func() string { return cred },
		Handler:    h,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
		Heartbeat:  time.Second,
		OnState: func(s State) {
			select {
			case dev.states <- s:
			default: // a test that floods states does not read them all
			}
		},
	}
	if configure != nil {
		configure(dev.d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dev.cancel = cancel
	go func() { dev.done <- dev.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-dev.done:
		case <-time.After(waitLimit):
			t.Errorf("Dialer.Run did not return within %v of cancellation", waitLimit)
		}
	})
	return dev
}

// waitState waits for a State with status want, skipping others, and returns it.
func (dev *device) waitState(t testing.TB, want Status) State {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case s := <-dev.states:
			if s.Status == want {
				return s
			}
		case <-timeout:
			t.Fatalf("device state %v not reached within %v", want, waitLimit)
		}
	}
}

// waitRun waits for Run to return and returns its error.
func (dev *device) waitRun(t *testing.T) error {
	t.Helper()
	select {
	case err := <-dev.done:
		dev.done <- err // for the cleanup
		return err
	case <-time.After(waitLimit):
		t.Fatalf("Dialer.Run did not return within %v", waitLimit)
		return nil
	}
}

// echo is what echoHandler answers.
type echo struct {
	Device  string `json:"device"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Query   string `json:"query"`
	Test    string `json:"test"`
	Host    string `json:"host"`
	Tunnel  bool   `json:"tunnel"`
	BodyLen int    `json:"body_len"`
	BodySHA string `json:"body_sha"`
}

// echoHandler is a device API that describes each request it gets, and
// streams on /stream: it sends "first", then waits for the client's go-ahead
// on release before sending "second".
func echoHandler(name string, hits *atomic.Int64, release <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("X-Device", name)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{
			Device: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Test: r.Header.Get("X-Test"), Host: r.Host, Tunnel: ViaTunnel(r), BodyLen: int(n), BodySHA: hex.EncodeToString(h.Sum(nil)),
		})
	})
	return mux
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// get sends GET path to the device through the hub and decodes the echo.
func get(t testing.TB, hub *Hub, deviceID, path string) (echo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hub.RoundTrip(ctx, deviceID, req)
	if err != nil {
		return echo{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return echo{}, errors.New("status " + resp.Status)
	}
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return echo{}, err
	}
	return e, nil
}

// proxy is a TCP relay between device and exchange that can cut or stall
// the connections it carries, as a broken network would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	pairs  []*pair
	conns  atomic.Int64 // connections accepted so far
}

type pair struct {
	a, b    net.Conn
	stalled atomic.Bool
	done    chan struct{}
	once    sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		close(p.done)
		p.a.Close()
		p.b.Close()
	})
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() + "/api/v1/tunnel" }

func (p *proxy) serve() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		pr := &pair{a: a, b: b, done: make(chan struct{})}
		p.mu.Lock()
		p.pairs = append(p.pairs, pr)
		p.mu.Unlock()
		p.conns.Add(1)
		go pr.relay(a, b)
		go pr.relay(b, a)
	}
}

// relay copies src to dst until either fails; once stalled it swallows
// what it reads and forwards nothing, keeping both connections open.
func (p *pair) relay(src, dst net.Conn) {
	defer p.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.stalled.Load() {
			<-p.done
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every connection carried so far.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.close()
	}
	p.pairs = nil
}

// stall stops forwarding on every connection carried so far, without
// closing them; new connections are forwarded normally.
func (p *proxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.stalled.Store(true)
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
}
