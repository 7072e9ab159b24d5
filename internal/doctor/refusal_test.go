package doctor

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline"
	exchangerole "github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
	"github.com/sightline/sightline/internal/gateway/connector"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// The tests here make the exchanges refuse registrations for real and
// check that doctor names the exact reason; only the gateway, whose state
// after the refusal is all doctor reads of it, is a fake.

// exchangePass is the password of admin in the exchanges, as in the
// fake roles: doctor signs in to every role with one.
const exchangePass = "pw"

// testClock is the clock of the exchanges and of doctor.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// region is a running exchange with its clients.
type region struct {
	url   string
	admin *exchangeclient.Client
	anon  *exchangeclient.Client
}

// startRegion runs an exchange of name on 127.0.0.1:0 with clk; store nil
// means its own SQLite store.
func startRegion(t *testing.T, name string, clk *testClock, store registry.Store, minVersion string) region {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts := exchangerole.Options{Region: name, Addr: "127.0.0.1:0", DataDir: t.TempDir(), Store: store, MinVersion: minVersion,
		AdminPassword: func() (string, error) { return exchangePass, nil }, Now: clk.Now, RegisterBurst: 1000}
	x, err := exchangerole.Open(ctx, opts)
	if err != nil {
		t.Fatalf("exchangerole.Open(%s): %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("exchange %s: %v", name, err)
		}
	})
	url := "http://" + x.Addr()
	return region{url: url, admin: exchangeclient.NewAdmin(url, nil, exchangerole.AdminUser, exchangePass), anon: exchangeclient.New(url, nil)}
}

func (r region) token(t *testing.T, devices int) exchangeclient.Token {
	t.Helper()
	tok, err := r.admin.TokenCreate(context.Background(), devices, "1h")
	if err != nil {
		t.Fatalf("TokenCreate: %v", err)
	}
	return tok
}

// register registers host with token as the gateway's connector does, and
// returns the exchange's error message ("" on success).
func (r region) register(t *testing.T, token, host, version string) string {
	t.Helper()
	_, err := r.anon.Register(context.Background(), exchangeclient.Registration{Token: token, Hostname: host, Type: "ESA",
		Version: version, Serial: "4C4C-1234", ConnectorVersion: "1.0"})
	if err != nil {
		return sightline.ErrorMessage(err)
	}
	return ""
}

const gatewayHost = "gw1.example.com"

// connectorCheck runs doctor against a gateway whose registration with
// AMERICAS at usURL failed with message, and returns its gateway.connector
// check. withHost makes the gateway tell its host name.
func connectorCheck(t *testing.T, clk *testClock, usURL, message string, withHost bool, exchanges ...string) Result {
	t.Helper()
	st := cloud(connector.Failed, message, "")
	st["regions"] = []map[string]string{{"label": "AMERICAS", "url": usURL}}
	gw := fake{routes: map[string]any{"GET /api/v1/cloud": st}}
	if withHost {
		gw.routes["GET /api/v1/config"] = map[string]any{"pending": false, "config": map[string]any{"hostname": gatewayHost}}
	}
	rs := Run(context.Background(), Targets{GatewayURL: gw.start(t), Exchanges: exchanges,
		User: exchangerole.AdminUser, Password: exchangePass, Now: clk.Now})
	for _, r := range rs {
		if r.ID == "gateway.connector" {
			return r
		}
	}
	t.Fatalf("doctor reported no gateway.connector check: %v", rs)
	return Result{}
}

func TestExplainRefusals(t *testing.T) {
	t.Parallel()
	clk := &testClock{t: time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)}
	us := startRegion(t, "AMERICAS", clk, nil, "14.0")
	eu := startRegion(t, "EUROPE", clk, nil, "")

	expired := us.token(t, 1)
	clk.Add(3 * time.Hour)
	steps := "sightline exchange token create --devices 1 --expires 1h --exchange " + us.url +
		" (or Devices > Manage Devices > + in its UI), then sightline gateway cloudserviceconfig register TOKEN" +
		" (or Network > Cloud Service Settings > Registration Token, Register, in the gateway UI)."
	newToken := "Create a token in the exchange of region AMERICAS: " + steps
	retype := "Copy the token exactly as the exchange showed it when it was created (32 hexadecimal characters); it is shown only once, so if it is lost, make another. "
	failed := connector.TextFailed + ". "

	tests := []struct {
		name string
		// attempt makes the gateway's registration fail and returns the
		// words doctor should say and the fix.
		attempt func(t *testing.T) (message, detail, fix string)
		// withHost: the gateway tells its host name; all: doctor knows both exchanges.
		withHost, all bool
	}{
		{"token from another region", func(t *testing.T) (string, string, string) {
			tok := eu.token(t, 1)
			return us.register(t, tok.Token, gatewayHost, "15.0"),
				failed + "The token was generated in the exchange of region EUROPE (token " + tok.ID + ", created 2026-01-10T11:00:00Z by admin), " +
					"but the gateway registers with the exchange of region AMERICAS, which did not issue it: a token works only in the region whose exchange generated it.",
				"Generate the token in the device's region, AMERICAS, not in EUROPE: " + steps
		}, true, true},
		{"expired token", func(t *testing.T) (string, string, string) {
			return us.register(t, expired.Token, gatewayHost, "15.0"),
				failed + "Token " + expired.ID + " of the exchange of region AMERICAS expired at 2026-01-10T09:00:00Z (2h0m0s ago), before the gateway registered with it.",
				newToken
		}, true, true},
		{"used-up token", func(t *testing.T) (string, string, string) {
			tok := us.token(t, 1)
			if msg := us.register(t, tok.Token, "gw0.example.com", "15.0"); msg != "" {
				t.Fatalf("first registration: %s", msg)
			}
			return us.register(t, tok.Token, gatewayHost, "15.0"),
				failed + "Token " + tok.ID + " of the exchange of region AMERICAS is already used up: it was generated for 1 device, which has registered with it.",
				newToken
		}, true, true},
		{"used-up token for two", func(t *testing.T) (string, string, string) {
			tok := us.token(t, 2)
			for _, h := range []string{"gw2.example.com", "gw3.example.com"} {
				if msg := us.register(t, tok.Token, h, "15.0"); msg != "" {
					t.Fatalf("registration of %s: %s", h, msg)
				}
			}
			return us.register(t, tok.Token, gatewayHost, "15.0"),
				failed + "Token " + tok.ID + " of the exchange of region AMERICAS is already used up: it was generated for 2 devices, all of which have registered with it.",
				newToken
		}, true, true},
		{"revoked token", func(t *testing.T) (string, string, string) {
			tok := us.token(t, 1)
			clk.Add(time.Minute)
			if err := us.admin.TokenRevoke(context.Background(), tok.ID); err != nil {
				t.Fatal(err)
			}
			return us.register(t, tok.Token, gatewayHost, "15.0"),
				failed + "Token " + tok.ID + " of the exchange of region AMERICAS was revoked at 2026-01-10T11:01:00Z by admin.",
				newToken
		}, true, true},
		{"mistyped token", func(t *testing.T) (string, string, string) {
			return us.register(t, mistype(us.token(t, 1).Token), gatewayHost, "15.0"),
				failed + "The token entered is unknown to the exchange of region AMERICAS and to that of EUROPE: it was mistyped.",
				retype + newToken
		}, true, true},
		{"unknown token, the other region unknown to doctor", func(t *testing.T) (string, string, string) {
			return us.register(t, eu.token(t, 1).Token, gatewayHost, "15.0"),
				failed + "The token entered is unknown to the exchange of region AMERICAS: it was mistyped, or generated in another region " +
					"(pass --exchange with that region's exchange to tell which).",
				retype + newToken
		}, true, false},
		{"gateway version below the minimum", func(t *testing.T) (string, string, string) {
			return us.register(t, us.token(t, 1).Token, gatewayHost, "13.0"),
				"The exchange of region AMERICAS refused the gateway's version 13.0: it accepts version 14.0 or later.",
				"Upgrade the gateway to version 14.0 or later, then register again with a token (sightline gateway cloudserviceconfig register TOKEN); " +
					"or, if that minimum is wrong, restart the exchange of region AMERICAS with a lower --min-version."
		}, true, true},
		{"host name unknown: the newest refusal", func(t *testing.T) (string, string, string) {
			tok := us.token(t, 1)
			if err := us.admin.TokenRevoke(context.Background(), tok.ID); err != nil {
				t.Fatal(err)
			}
			return us.register(t, tok.Token, gatewayHost, "15.0"),
				failed + "The newest refused registration in AMERICAS came from host " + gatewayHost + " (127.0.0.1) at 2026-01-10T11:01:00Z: " +
					"Token " + tok.ID + " of the exchange of region AMERICAS was revoked at 2026-01-10T11:01:00Z by admin.",
				newToken
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			message, detail, fix := tt.attempt(t)
			if message == "" {
				t.Fatal("the registration succeeded, want a refusal")
			}
			exchanges := []string{us.url}
			if tt.all {
				exchanges = append(exchanges, eu.url)
			}
			r := connectorCheck(t, clk, us.url, message, tt.withHost, exchanges...)
			if r.Status != StatusFail || r.Detail != detail || r.Fix != fix {
				t.Errorf("gateway.connector = %s\n%q\nfix %q\nwant fail\n%q\nfix %q", r.Status, r.Detail, r.Fix, detail, fix)
			}
		})
	}
}

// mistype changes one character of a token.
func mistype(token string) string {
	c := "1"
	if token[7] == '1' {
		c = "2"
	}
	return token[:7] + c + token[8:]
}

// TestExplainRefusalSharedStore: exchanges of two regions sharing one
// store know each other's tokens, and refuse them by region.
func TestExplainRefusalSharedStore(t *testing.T) {
	t.Parallel()
	clk := &testClock{t: time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)}
	st, err := sqlite.OpenExchange(context.Background(), filepath.Join(t.TempDir(), "exchange.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	us := startRegion(t, "AMERICAS", clk, st, "")
	eu := startRegion(t, "EUROPE", clk, st, "")
	msg := us.register(t, eu.token(t, 1).Token, gatewayHost, "15.0")
	r := connectorCheck(t, clk, us.url, msg, true, us.url, eu.url)
	want := connector.TextFailed + ". The token was generated in region EUROPE, but the gateway registers with the exchange of region AMERICAS: " +
		"a token works only in the region whose exchange generated it."
	if r.Status != StatusFail || r.Detail != want || !strings.HasPrefix(r.Fix, "Generate the token in the device's region, AMERICAS, not in EUROPE: ") {
		t.Errorf("gateway.connector = %s %q (fix %q), want fail %q", r.Status, r.Detail, r.Fix, want)
	}
}
