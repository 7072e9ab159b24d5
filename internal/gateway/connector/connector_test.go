package connector

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// register registers c with a fresh token of x and returns the device ID.
func register(t *testing.T, x *testExchange, c *Connector) string {
	t.Helper()
	if err := c.Register(context.Background(), x.token(t, 1)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	st := waitFor(t, c, "registered and connected", func(s Status) bool { return s.State == Registered && s.TunnelConnected })
	x.waitTunnel(t, st.DeviceID)
	return st.DeviceID
}

// storedCredential returns the credential kept in st, "" for none.
func storedCredential(t *testing.T, st Store) string {
	t.Helper()
	v, _, err := st.Setting(context.Background(), settingName)
	if err != nil {
		t.Fatalf("Setting(%s): %v", settingName, err)
	}
	if v == "" {
		return ""
	}
	var reg registration
	if err := json.Unmarshal([]byte(v), &reg); err != nil {
		t.Fatalf("stored registration %q: %v", v, err)
	}
	return reg.Credential
}

func wantError(t *testing.T, what string, err error, kind sightline.Kind, msg string) {
	t.Helper()
	if sightline.ErrorKind(err) != kind || !strings.Contains(sightline.ErrorMessage(err), msg) {
		t.Errorf("%s = %v, want a %s error saying %q", what, err, kind, msg)
	}
}

// TestLifecycle walks the whole journey: enable, register, serve the
// exchange's requests, restart the gateway and the exchange, deregister.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x := startExchange(t, nil)
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	path := filepath.Join(t.TempDir(), "gateway.db")
	st := openStore(t, path)

	regGate := newGate("/api/v1/register", http.DefaultTransport)
	c := newConnector(st, log)
	c.HTTPClient = &http.Client{Transport: regGate, Timeout: 10 * time.Second}
	if got := c.Status(ctx).State; got != Disabled {
		t.Errorf("Status before Apply = %s, want %s", got, Disabled)
	}
	c.Apply(true, x.region())
	if got := c.Status(ctx).State; got != Busy {
		t.Errorf("Status after Apply(enabled), before Run = %s, want %s", got, Busy)
	}
	stop := run(t, c)
	if got := waitState(t, c, Enabled); got.Server != "AMERICAS" || got.Message != "" || got.LastError != "" {
		t.Errorf("Status once the exchange is reached = %+v, want ENABLED on AMERICAS without message or error", got)
	}

	// Register: INPROGRESS while the exchange has not answered, then REGISTERED.
	if err := c.Register(ctx, " "+strings.ToUpper(x.token(t, 1))+"\n"); err != nil {
		t.Fatalf("Register(upper-case token with spaces): %v", err)
	}
	regGate.waitHit(t)
	if got := c.Status(ctx).State; got != InProgress {
		t.Errorf("Status while registering = %s, want %s", got, InProgress)
	}
	wantError(t, "Register while registering", c.Register(ctx, x.token(t, 1)), sightline.Conflict, TextInProgress)
	close(regGate.open)
	st1 := waitFor(t, c, "registered and connected", func(s Status) bool { return s.State == Registered && s.TunnelConnected })
	id := st1.DeviceID
	if id == "" || st1.Server != "AMERICAS" || st1.Message != "" {
		t.Errorf("Status after registration = %+v, want REGISTERED on AMERICAS with a device ID", st1)
	}
	d, ok := x.device(t, id)
	want := exchangeclient.Device{ID: id, Type: "ESA", Name: "esa1.example.com", Version: "15.0.1-104", Serial: "4C4C-1234",
		ConnectorVersion: "1.0.0", Status: "Registered"}
	ignore := func(p cmp.Path) bool {
		switch p.Last().String() {
		case ".IP", ".Connected", ".CreatedAt", ".LastSeen":
			return true
		}
		return false
	}
	if diff := cmp.Diff(want, d, cmp.FilterPath(ignore, cmp.Ignore())); !ok || diff != "" {
		t.Errorf("device %s on the exchange (found %t) mismatch (-want +got):\n%s", id, ok, diff)
	}
	wantError(t, "Register while registered", c.Register(ctx, x.token(t, 1)), sightline.Conflict, id)

	// The exchange reaches the gateway's API through the tunnel.
	x.waitTunnel(t, id)
	console := x.console(t)
	const wantBody = "gateway GET /esa/api/v2.0/health via_tunnel=true"
	if got := proxy(t, console, id, "/esa/api/v2.0/health"); got != wantBody {
		t.Errorf("proxied request answered %q, want %q", got, wantBody)
	}

	// A gateway restart keeps the registration and reconnects.
	stop()
	cred := storedCredential(t, st)
	if err := st.Close(); err != nil {
		t.Fatalf("close gateway store: %v", err)
	}
	st = openStore(t, path)
	deregGate := newGate("/api/v1/deregister", http.DefaultTransport)
	c = newConnector(st, log)
	c.HTTPClient = &http.Client{Transport: deregGate, Timeout: 10 * time.Second}
	c.Apply(true, x.region())
	run(t, c)
	if got := waitFor(t, c, "connected", func(s Status) bool { return s.TunnelConnected }); got.State != Registered || got.DeviceID != id {
		t.Errorf("Status after a gateway restart = %+v, want REGISTERED as %s", got, id)
	}
	x.waitTunnel(t, id)
	if got := proxy(t, console, id, "/after-gateway-restart"); !strings.Contains(got, "/after-gateway-restart") {
		t.Errorf("proxied request after a gateway restart answered %q", got)
	}

	// An exchange restart on the same address: the tunnel comes back.
	x.restart(t)
	x.waitTunnel(t, id)
	if got := proxy(t, console, id, "/after-exchange-restart"); !strings.Contains(got, "/after-exchange-restart") {
		t.Errorf("proxied request after an exchange restart answered %q", got)
	}
	if got := waitFor(t, c, "connected", func(s Status) bool { return s.TunnelConnected }); got.State != Registered {
		t.Errorf("Status after an exchange restart = %+v, want REGISTERED", got)
	}

	// Deregister: INPROGRESS until the exchange answers, then ENABLED.
	if err := c.Deregister(ctx); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	deregGate.waitHit(t)
	if got := c.Status(ctx); got.State != InProgress || got.DeviceID != id || got.TunnelConnected {
		t.Errorf("Status while deregistering = %+v, want INPROGRESS for %s with the tunnel down", got, id)
	}
	wantError(t, "Deregister while deregistering", c.Deregister(ctx), sightline.Conflict, TextInProgress)
	close(deregGate.open)
	if got := waitState(t, c, Enabled); got.DeviceID != "" || got.Message != "" || got.LastError != "" {
		t.Errorf("Status after deregistration = %+v, want ENABLED with no device, message or error", got)
	}
	if _, ok := x.device(t, id); ok {
		t.Errorf("device %s still on the exchange after Deregister", id)
	}
	if got := storedCredential(t, st); got != "" {
		t.Errorf("credential still stored after Deregister")
	}
	wantError(t, "Deregister when not registered", c.Deregister(ctx), sightline.Conflict, "not registered")

	if strings.Contains(logs.String(), cred) {
		t.Errorf("the device credential appears in the logs:\n%s", logs)
	}
	if !strings.Contains(logs.String(), `"device_id":"`+id+`"`) {
		t.Errorf("logs do not name device %s:\n%s", id, logs)
	}
}

func TestDeletedByExchange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x := startExchange(t, nil)
	path := filepath.Join(t.TempDir(), "gateway.db")
	st := openStore(t, path)
	c := newConnector(st, nil)
	c.Apply(true, x.region())
	stop := run(t, c)
	waitState(t, c, Enabled)
	id := register(t, x, c)

	if err := x.admin.DeviceDelete(ctx, id); err != nil {
		t.Fatalf("DeviceDelete: %v", err)
	}
	got := waitState(t, c, Enabled)
	if got.Message != TextDeregistered || got.DeviceID != "" || got.TunnelConnected || !strings.Contains(got.LastError, "deregistered") {
		t.Errorf("Status after the exchange deleted the device = %+v, want ENABLED with message %q", got, TextDeregistered)
	}
	stop()

	// The credential is forgotten: a restart stays unregistered, and a new
	// token registers again.
	c = newConnector(st, nil)
	c.Apply(true, x.region())
	run(t, c)
	if got := waitState(t, c, Enabled); got.DeviceID != "" {
		t.Errorf("Status after a restart = %+v, want ENABLED without a device", got)
	}
	if newID := register(t, x, c); newID == id {
		t.Errorf("registered again as the deleted device %s, want a new ID", id)
	}
}

func TestRegistrationRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if exchange.MsgInvalidToken != TextFailed {
		t.Fatalf("exchange.MsgInvalidToken = %q, want TextFailed %q", exchange.MsgInvalidToken, TextFailed)
	}
	x := startExchange(t, nil)
	anon := exchangeclient.New(x.url, nil)
	c := newConnector(tempStore(t), nil)
	c.Apply(true, x.region())
	run(t, c)
	waitState(t, c, Enabled)

	tests := []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"unknown", func(t *testing.T) string { return "0123456789abcdef0123456789abcdef" }},
		{"expired", func(t *testing.T) string {
			tok := x.token(t, 1)
			x.clock.Add(61 * time.Minute)
			return tok
		}},
		{"used up", func(t *testing.T) string {
			tok := x.token(t, 1)
			if _, err := anon.Register(ctx, exchangeclient.Registration{Token: tok, Hostname: "other.example.com",
				Type: "ESA", Version: "15.0"}); err != nil {
				t.Fatalf("Register(other device): %v", err)
			}
			return tok
		}},
		{"revoked", func(t *testing.T) string {
			tok, err := x.admin.TokenCreate(ctx, 5, "1d")
			if err != nil {
				t.Fatalf("TokenCreate: %v", err)
			}
			if err := x.admin.TokenRevoke(ctx, tok.ID); err != nil {
				t.Fatalf("TokenRevoke: %v", err)
			}
			return tok.Token
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Register(ctx, tt.token(t)); err != nil {
				t.Fatalf("Register: %v", err)
			}
			got := waitState(t, c, Failed)
			if got.Message != TextFailed || !strings.Contains(got.LastError, TextFailed) || got.DeviceID != "" {
				t.Errorf("Status after registering with a %s token = %+v, want FAILED with message %q", tt.name, got, TextFailed)
			}
		})
	}
}

func TestVersionBelowMinimum(t *testing.T) {
	t.Parallel()
	x := startExchange(t, func(o *exchange.Options) { o.MinVersion = "15.1" })
	c := newConnector(tempStore(t), nil)
	c.Apply(true, x.region())
	run(t, c)
	waitState(t, c, Enabled)
	if err := c.Register(context.Background(), x.token(t, 1)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	got := waitState(t, c, Failed)
	for _, s := range []string{"15.0.1-104", "15.1"} {
		if !strings.Contains(got.Message, s) || !strings.Contains(got.LastError, s) {
			t.Errorf("Status after registering version 15.0.1-104 with minimum 15.1 = %+v, want a message and error naming %s", got, s)
		}
	}
}

func TestWrongRegion(t *testing.T) {
	t.Parallel()
	x := startExchange(t, func(o *exchange.Options) { o.Region = "EUROPE" })
	c := newConnector(tempStore(t), nil)
	c.Apply(true, Region{Label: "AMERICAS", URL: x.url})
	run(t, c)
	got := waitFor(t, c, "told of the wrong region", func(s Status) bool { return s.Message != "" })
	for _, s := range []string{"AMERICAS", "EUROPE", x.url} {
		if got.State != Busy || !strings.Contains(got.Message, s) || !strings.Contains(got.LastError, s) {
			t.Errorf("Status with AMERICAS pointing at a EUROPE exchange = %+v, want BUSY with a message and error naming %s", got, s)
		}
	}
	wantError(t, "Register while the region is wrong", c.Register(context.Background(), x.token(t, 1)), sightline.Unavailable, TextBusy)

	c.Apply(true, x.region())
	if got := waitState(t, c, Enabled); got.Message != "" || got.Server != "EUROPE" {
		t.Errorf("Status after choosing EUROPE = %+v, want ENABLED on EUROPE without message", got)
	}
}

func TestUnreachableExchange(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there until the exchange starts
	c := newConnector(tempStore(t), nil)
	c.Apply(true, Region{Label: "AMERICAS", URL: "http://" + addr})
	run(t, c)
	got := waitFor(t, c, "told why it is busy", func(s Status) bool { return s.LastError != "" })
	if got.State != Busy || !strings.Contains(got.LastError, "cannot be reached") || !strings.Contains(got.LastError, "retrying") {
		t.Errorf("Status with the exchange down = %+v, want BUSY with a LastError saying it cannot be reached and retries", got)
	}
	startExchange(t, func(o *exchange.Options) { o.Addr = addr })
	if got := waitState(t, c, Enabled); got.LastError != "" {
		t.Errorf("Status once the exchange is up = %+v, want ENABLED without error", got)
	}
}

func TestDisableWhileRegistered(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	st := tempStore(t)
	c := newConnector(st, nil)
	c.Apply(true, x.region())
	run(t, c)
	waitState(t, c, Enabled)
	id := register(t, x, c)

	c.Apply(false, x.region())
	if got := waitState(t, c, Disabled); got.DeviceID != "" || got.TunnelConnected {
		t.Errorf("Status after disabling = %+v, want DISABLED without device or tunnel", got)
	}
	if _, ok := x.device(t, id); ok {
		t.Errorf("device %s still on the exchange after disabling Threat Response", id)
	}
	if storedCredential(t, st) != "" {
		t.Errorf("credential still stored after disabling Threat Response")
	}
}

func TestServerChangeWhileRegistered(t *testing.T) {
	t.Parallel()
	am := startExchange(t, nil)
	eu := startExchange(t, func(o *exchange.Options) { o.Region = "EUROPE" })
	c := newConnector(tempStore(t), nil)
	c.Apply(true, am.region())
	run(t, c)
	waitState(t, c, Enabled)
	id := register(t, am, c)

	// The registration stays with AMERICAS until deregistered.
	c.Apply(true, eu.region())
	got := c.Status(context.Background())
	if got.State != Registered || got.Server != "AMERICAS" || got.DeviceID != id ||
		!strings.Contains(got.Message, "AMERICAS") || !strings.Contains(got.Message, "deregister it to use EUROPE") {
		t.Errorf("Status after choosing EUROPE while registered with AMERICAS = %+v, want REGISTERED with AMERICAS asking to deregister", got)
	}
	if got := proxy(t, am.console(t), id, "/still-americas"); !strings.Contains(got, "/still-americas") {
		t.Errorf("proxied request through AMERICAS answered %q", got)
	}

	if err := c.Deregister(context.Background()); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if got := waitState(t, c, Enabled); got.Server != "EUROPE" || got.Message != "" {
		t.Errorf("Status after deregistering = %+v, want ENABLED on EUROPE", got)
	}
	if _, ok := am.device(t, id); ok {
		t.Errorf("device %s still on the AMERICAS exchange after Deregister", id)
	}
	euID := register(t, eu, c)
	if _, ok := eu.device(t, euID); !ok {
		t.Errorf("device %s not on the EUROPE exchange after registering there", euID)
	}
}

func TestRequestRefused(t *testing.T) {
	t.Parallel()
	const token = "a389f98df0e77c5411148e96e239e05d"
	unreachable := Region{Label: "AMERICAS", URL: "http://127.0.0.1:9"}
	tests := []struct {
		name  string
		setup func(c *Connector)
		call  func(c *Connector) error
		kind  sightline.Kind
		msg   string
	}{
		{"register disabled", func(*Connector) {}, func(c *Connector) error { return c.Register(context.Background(), token) },
			sightline.Conflict, "Threat Response is disabled"},
		{"register busy", func(c *Connector) { c.Apply(true, unreachable) },
			func(c *Connector) error { return c.Register(context.Background(), token) }, sightline.Unavailable, TextBusy},
		{"register malformed token", func(*Connector) {}, func(c *Connector) error { return c.Register(context.Background(), "a389f98d") },
			sightline.Invalid, TextFailed},
		{"deregister disabled", func(*Connector) {}, func(c *Connector) error { return c.Deregister(context.Background()) },
			sightline.Conflict, "not registered"},
		{"deregister busy", func(c *Connector) { c.Apply(true, unreachable) },
			func(c *Connector) error { return c.Deregister(context.Background()) }, sightline.Conflict, "not registered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConnector(nil, nil)
			tt.setup(c)
			before := c.Status(context.Background())
			wantError(t, tt.name, tt.call(c), tt.kind, tt.msg)
			if after := c.Status(context.Background()); after != before {
				t.Errorf("Status changed from %+v to %+v by a refused request", before, after)
			}
		})
	}
}

func TestRunRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("missing store", func(t *testing.T) {
		c := &Connector{Handler: gatewayAPI}
		wantError(t, "Run without Store", c.Run(ctx), sightline.Invalid, "Store and Handler are required")
	})
	t.Run("unreadable registration", func(t *testing.T) {
		st := tempStore(t)
		if err := st.SetSetting(ctx, settingName, "{not json"); err != nil {
			t.Fatal(err)
		}
		wantError(t, "Run with a corrupt registration", newConnector(st, nil).Run(ctx), sightline.Internal, settingName)
	})
	t.Run("twice", func(t *testing.T) {
		c := newConnector(tempStore(t), nil)
		loaded := c.Changed()
		run(t, c)
		select {
		case <-loaded:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not load its state within 10s")
		}
		wantError(t, "second Run", c.Run(ctx), sightline.Conflict, "already running")
	})
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a389f98df0e77c5411148e96e239e05d", "a389f98df0e77c5411148e96e239e05d", true},
		{"  A389F98DF0E77C5411148E96E239E05D\r\n", "a389f98df0e77c5411148e96e239e05d", true},
		{"", "", false},
		{"a389f98df0e77c5411148e96e239e05", "", false},   // 31
		{"a389f98df0e77c5411148e96e239e05d0", "", false}, // 33
		{"g389f98df0e77c5411148e96e239e05d", "", false},
		{"a389f98df0e77c54 1148e96e239e05d", "", false},
		{"a389f98df0e77c5411148e96e239e0é", "", false},
	}
	for _, tt := range tests {
		got, err := ParseToken(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseToken(%q) = %q, %v; want %q, ok %t", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && (sightline.ErrorKind(err) != sightline.Invalid || sightline.ErrorMessage(err) != TextFailed) {
			t.Errorf("ParseToken(%q) error = %v, want Invalid with message %q", tt.in, err, TextFailed)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"a389f98df0e77c5411148e96e239e05d", " A389F98DF0E77C5411148E96E239E05D ", "", "xyz", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseToken(s)
		if err != nil {
			return
		}
		if len(got) != 32 || strings.Trim(got, "0123456789abcdef") != "" || !strings.EqualFold(got, strings.TrimSpace(s)) {
			t.Errorf("ParseToken(%q) = %q, want 32 lower-case hex digits equal to the input", s, got)
		}
	})
}

func TestRegistrationLogValue(t *testing.T) {
	var b strings.Builder
	reg := &registration{DeviceID: "d1", Credential: "s3cr3t-credential", TunnelURL: "ws://x/api/v1/tunnel", Server: Region{Label: "EUROPE"}}
	slog.New(slog.NewTextHandler(&b, nil)).Info("registered", "registration", reg)
	if strings.Contains(b.String(), "s3cr3t") || !strings.Contains(b.String(), "d1") {
		t.Errorf("logged registration = %q, want the device ID without the credential", b.String())
	}
}

// TestExchangeDown: a registration or deregistration that cannot reach the
// exchange retries, then gives up with the reason.
func TestExchangeDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x := startExchange(t, nil)
	st := tempStore(t)
	c := newConnector(st, nil)
	c.opTimeout = 300 * time.Millisecond
	c.Apply(true, x.region())
	run(t, c)
	waitState(t, c, Enabled)
	id := register(t, x, c)
	token := x.token(t, 1)
	x.stop()

	if err := c.Deregister(ctx); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	got := waitState(t, c, Enabled)
	for _, s := range []string{"deregistered locally", id, "cannot be reached"} {
		if !strings.Contains(got.LastError, s) {
			t.Errorf("Status after deregistering with the exchange down = %+v, want a LastError containing %q", got, s)
		}
	}
	if storedCredential(t, st) != "" {
		t.Errorf("credential still stored after giving up the deregistration")
	}

	if err := c.Register(ctx, token); err != nil {
		t.Fatalf("Register: %v", err)
	}
	got = waitState(t, c, Failed)
	if !strings.Contains(got.Message, "cannot be reached") || !strings.Contains(got.LastError, x.url) {
		t.Errorf("Status after registering with the exchange down = %+v, want FAILED saying %s cannot be reached", got, x.url)
	}
}

// failingStore refuses every write.
type failingStore struct{ Store }

func (failingStore) SetSetting(context.Context, string, string) error {
	return errors.New("disk full")
}

// TestRegistrationNotStored: a registration the gateway cannot keep is
// undone on the exchange, so no device is left that nobody can use.
func TestRegistrationNotStored(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	c := newConnector(failingStore{tempStore(t)}, nil)
	c.Apply(true, x.region())
	run(t, c)
	waitState(t, c, Enabled)
	if err := c.Register(context.Background(), x.token(t, 1)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	got := waitState(t, c, Failed)
	if !strings.Contains(got.Message, "could not store its registration") || !strings.Contains(got.LastError, "disk full") {
		t.Errorf("Status after a registration that could not be stored = %+v, want FAILED naming the store error", got)
	}
	if list, err := x.admin.Devices(context.Background()); err != nil || len(list.Devices) != 0 {
		t.Errorf("Devices() = %+v, %v; want none: the unstored registration must be undone", list.Devices, err)
	}
}

func TestBadServerURL(t *testing.T) {
	t.Parallel()
	c := newConnector(tempStore(t), nil)
	c.Apply(true, Region{Label: "AMERICAS", URL: "exchange.example"})
	run(t, c)
	got := waitFor(t, c, "told of the bad URL", func(s Status) bool { return s.LastError != "" })
	if got.State != Busy || !strings.Contains(got.LastError, `"exchange.example" is not an http or https URL`) {
		t.Errorf("Status with server URL exchange.example = %+v, want BUSY naming the bad URL", got)
	}
}
