package connector

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tunnel"
)

const adminPass = "correct horse battery"

// clock is a settable clock for the exchange.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testExchange is a real exchange on 127.0.0.1 that can be restarted on the
// same address with the same data.
type testExchange struct {
	*exchange.Exchange
	opts  exchange.Options
	url   string
	clock *clock
	admin *exchangeclient.Client
	stop  func()
}

// startExchange runs an exchange (region AMERICAS unless edit says
// otherwise) with SQLite in a temporary directory.
func startExchange(t *testing.T, edit func(*exchange.Options)) *testExchange {
	t.Helper()
	clk := &clock{t: time.Now().UTC()}
	opts := exchange.Options{Region: "AMERICAS", Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		AdminPassword: func() (string, error) { return adminPass, nil }, Now: clk.Now,
		RegisterBurst: 1000, TunnelHeartbeat: time.Second, ProxyTimeout: 5 * time.Second}
	if edit != nil {
		edit(&opts)
	}
	x := &testExchange{opts: opts, clock: clk}
	x.start(t)
	t.Cleanup(func() { x.stop() })
	return x
}

func (x *testExchange) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := exchange.Open(ctx, x.opts)
	if err != nil {
		cancel()
		t.Fatalf("exchange.Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	x.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("exchange Run: %v", err)
			}
		})
	}
	x.Exchange = e
	x.opts.Addr = e.Addr() // a restart listens on the same address
	x.url = "http://" + e.Addr()
	x.admin = exchangeclient.NewAdmin(x.url, nil, exchange.AdminUser, adminPass)
}

// restart stops the exchange and starts it again on the same address and data.
func (x *testExchange) restart(t *testing.T) {
	t.Helper()
	x.stop()
	x.start(t)
}

func (x *testExchange) region() Region { return Region{Label: x.opts.Region, URL: x.url} }

func (x *testExchange) token(t *testing.T, devices int) string {
	t.Helper()
	tok, err := x.admin.TokenCreate(context.Background(), devices, "1h")
	if err != nil {
		t.Fatalf("TokenCreate(%d, 1h): %v", devices, err)
	}
	return tok.Token
}

// device returns the exchange's device id, and whether it exists.
func (x *testExchange) device(t *testing.T, id string) (exchangeclient.Device, bool) {
	t.Helper()
	list, err := x.admin.Devices(context.Background())
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	for _, d := range list.Devices {
		if d.ID == id {
			return d, true
		}
	}
	return exchangeclient.Device{}, false
}

// waitTunnel waits (bounded) until the exchange holds device id's tunnel.
func (x *testExchange) waitTunnel(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, ok := x.device(t, id); ok && d.Connected {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s has no tunnel to the exchange after 10s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// console returns a client with an organisation API key, Threat Response on.
func (x *testExchange) console(t *testing.T) *exchangeclient.Client {
	t.Helper()
	ctx := context.Background()
	if err := x.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		t.Fatalf("SetCloudServices: %v", err)
	}
	key, err := x.CreateAPIKey(ctx, "Default", "console")
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	return exchangeclient.NewKey(x.url, nil, key)
}

// gatewayAPI stands for the gateway's own API: it names the request and
// whether it came through the tunnel.
var gatewayAPI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "gateway %s %s via_tunnel=%t", r.Method, r.URL.Path, tunnel.ViaTunnel(r))
})

// proxy sends GET path to the device through the exchange and returns the body.
func proxy(t *testing.T, console *exchangeclient.Client, id, path string) string {
	t.Helper()
	resp, err := console.Proxy(context.Background(), id, exchangeclient.ProxyRequest{Path: path})
	if err != nil {
		t.Fatalf("Proxy(%s, %s): %v", id, path, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("Proxy(%s, %s) = %d %q, want 200", id, path, resp.Status, resp.Body)
	}
	return string(resp.Body)
}

func openStore(t *testing.T, path string) *sqlite.GatewayStore {
	t.Helper()
	st, err := sqlite.OpenGateway(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenGateway: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func tempStore(t *testing.T) *sqlite.GatewayStore {
	return openStore(t, filepath.Join(t.TempDir(), "gateway.db"))
}

// gate holds the requests to one path of the exchange until opened, and
// passes the others to next.
type gate struct {
	path string
	next http.RoundTripper
	open chan struct{}
	hit  chan struct{} // receives when a held request arrives
}

func newGate(path string, next http.RoundTripper) *gate {
	return &gate{path: path, next: next, open: make(chan struct{}), hit: make(chan struct{}, 16)}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == g.path {
		select {
		case g.hit <- struct{}{}:
		default:
		}
		select {
		case <-g.open:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.next.RoundTrip(r)
}

// waitHit waits until a request reached the gate.
func (g *gate) waitHit(t *testing.T) {
	t.Helper()
	select {
	case <-g.hit:
	case <-time.After(10 * time.Second):
		t.Fatalf("no request to %s within 10s", g.path)
	}
}

// newConnector returns a connector with short backoffs over st.
func newConnector(st Store, log *slog.Logger) *Connector {
	return &Connector{
		Store:   st,
		Handler: gatewayAPI,
		Device: DeviceInfo{HostName: "esa1.example.com", Version: "15.0.1-104", SerialNumber: "4C4C-1234",
			ConnectorVersion: "1.0.0"},
		Logger:     log,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
		Heartbeat:  time.Second,
	}
}

// run runs c until the returned stop is called or the test ends.
func run(t *testing.T, c *Connector) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run still running 10s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor waits (bounded) until c's status satisfies ok, and returns it.
func waitFor(t *testing.T, c *Connector, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		ch := c.Changed()
		st := c.Status(context.Background())
		if ok(st) {
			return st
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("connector not %s after 10s: status %+v", what, st)
		}
	}
}

func waitState(t *testing.T, c *Connector, state string) Status {
	t.Helper()
	return waitFor(t, c, state, func(s Status) bool { return s.State == state })
}

// logBuffer collects log output safely from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var _ io.Writer = (*logBuffer)(nil)
