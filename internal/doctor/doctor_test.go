package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/gateway/connector"
)

// now is the local clock of every test; fakes answer with dates around it.
var now = time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)

// fake is a role: routes answering JSON (or a status with an error body),
// with a Date header at now+skew, behind Basic auth admin/pw.
type fake struct {
	skew   time.Duration
	routes map[string]any // "GET /path" → value to answer, or errAnswer
}

type errAnswer struct {
	status int
	msg    string
}

func (f *fake) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", now.Add(f.skew).Format(http.TimeFormat))
		if u, p, ok := r.BasicAuth(); ok && (u != "admin" || p != "pw") {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "Invalid username or passphrase."})
			return
		}
		v, ok := f.routes[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "no route"})
			return
		}
		if e, ok := v.(errAnswer); ok {
			w.WriteHeader(e.status)
			json.NewEncoder(w).Encode(map[string]string{"error": e.msg})
			return
		}
		json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// installation is a gateway, one AMERICAS exchange and a console.
type installation struct {
	gateway, exchange, console fake
}

// healthy returns an installation where all is well, with the gateway
// registered as device dev-1 in AMERICAS.
func healthy() *installation {
	dev := exchangeclient.Device{ID: "dev-1", Name: "gw1", Type: "ESA", Version: "15.0", Connected: true}
	devs := exchangeclient.Devices{Organisation: "Acme", Region: "AMERICAS", ThreatResponse: true, Devices: []exchangeclient.Device{dev}}
	return &installation{
		gateway: fake{routes: map[string]any{"GET /api/v1/cloud": map[string]any{
			"threat_response": true, "server": "AMERICAS", "regions": []map[string]string{{"label": "AMERICAS", "url": "http://x.example"}},
			"state": connector.Registered, "device_id": "dev-1", "tunnel_connected": true}}},
		exchange: fake{routes: map[string]any{
			"GET /api/v1/region":  exchangeclient.Region{Region: "AMERICAS", MinVersion: "14.0"},
			"GET /api/v1/devices": devs,
			"GET /api/v1/tokens":  []exchangeclient.Token{},
		}},
		console: fake{routes: map[string]any{
			"GET /api/v1/modules": []map[string]any{{"id": "m1", "kind": "esa", "name": "ESA", "enabled": true,
				"settings": map[string]any{"device_id": "dev-1"}}},
			"GET /api/v1/devices":           devs,
			"GET /api/v1/modules/m1/health": map[string]any{"status": "ok", "errors": []any{}},
		}},
	}
}

func (in *installation) run(t *testing.T) map[string]Result {
	t.Helper()
	rs := Run(context.Background(), Targets{GatewayURL: in.gateway.start(t), Exchanges: []string{in.exchange.start(t)},
		ConsoleURL: in.console.start(t), User: "admin", Password: "pw", Now: func() time.Time { return now }})
	out := map[string]Result{}
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

func TestRunHealthy(t *testing.T) {
	rs := healthy().run(t)
	for id, r := range rs {
		if r.Status != StatusOK {
			t.Errorf("healthy installation: %s = %s %q", id, r.Status, r.Detail)
		}
	}
	if len(rs) != 19 {
		t.Errorf("healthy installation ran %d checks, want 19: %v", len(rs), rs)
	}
}

func TestRunExplains(t *testing.T) {
	tests := []struct {
		name        string
		change      func(*installation)
		id          string
		status      Status
		detail, fix string
	}{
		{"clock slightly off", func(in *installation) { in.gateway.skew = 45 * time.Second },
			"gateway.clock", StatusWarn, "45s ahead of", "NTP"},
		{"clock far behind", func(in *installation) { in.console.skew = -10 * time.Minute },
			"console.clock", StatusFail, "10m0s behind", "NTP"},
		{"clock within a second", func(in *installation) { in.exchange.skew = time.Second },
			"exchange.AMERICAS.clock", StatusOK, "", ""},
		{"wrong password", func(in *installation) {
			in.console.routes["GET /api/v1/modules"] = errAnswer{http.StatusUnauthorized, "Invalid username or passphrase."}
		}, "console.credentials", StatusFail, "Invalid username or passphrase.", "--password"},
		{"wrong region on the gateway", func(in *installation) {
			in.gateway.routes["GET /api/v1/cloud"] = cloud(connector.Busy, "The Threat Response Server AMERICAS at http://x.example is an exchange of region EUROPE, not AMERICAS", "")
		}, "gateway.connector", StatusFail, "is an exchange of region EUROPE", "settrs --server"},
		{"exchange unreachable", func(in *installation) {
			in.gateway.routes["GET /api/v1/cloud"] = cloud(connector.Busy, "", "reach threat response server AMERICAS: connection refused (retrying in 1s)")
		}, "gateway.connector", StatusFail, "cannot reach the exchange AMERICAS at http://x.example: reach", "Start the exchange of region AMERICAS"},
		{"version below the minimum", func(in *installation) {
			in.gateway.routes["GET /api/v1/cloud"] = cloud(connector.Failed, "The device version 13.0 is older than the minimum this exchange accepts, 14.0", "")
		}, "gateway.connector", StatusFail, "older than the minimum", "version 14.0 or later: upgrade the gateway"},
		{"deregistered by the exchange", func(in *installation) {
			in.gateway.routes["GET /api/v1/cloud"] = cloud(connector.Enabled, connector.TextDeregistered, "")
		}, "gateway.connector", StatusFail, "deregistered by the exchange", "token create"},
		{"expired token", func(in *installation) {
			in.gateway.routes["GET /api/v1/cloud"] = cloud(connector.Failed, connector.TextFailed, "")
			in.exchange.routes["GET /api/v1/tokens"] = []exchangeclient.Token{
				{ID: "t2", State: "Expired", Devices: 1, ExpiresAt: now.Add(-2 * time.Hour)},
				{ID: "t1", State: "Revoked", Devices: 1, RevokedAt: now.Add(-3 * time.Hour)}}
		}, "gateway.connector", StatusFail, "token t2 expired 2h0m0s ago (2026-01-10T06:00:00Z); token t1 was revoked 2026-01-10T05:00:00Z. No token is active.", "token create"},
		{"registration in progress", func(in *installation) {
			in.gateway.routes["GET /api/v1/cloud"] = cloud(connector.InProgress, "", "")
		}, "gateway.connector", StatusWarn, "in progress", "run sightline doctor again"},
		{"tunnel down", func(in *installation) {
			st := cloud(connector.Registered, "", "tunnel: dial: connection refused (redialing in 2s)")
			st["device_id"] = "dev-1"
			in.gateway.routes["GET /api/v1/cloud"] = st
		}, "gateway.tunnel", StatusFail, "tunnel is down", "redials by itself"},
		{"device gone from the exchange", func(in *installation) {
			st := cloud(connector.Registered, "", "")
			st["device_id"], st["tunnel_connected"] = "dev-9", true
			in.gateway.routes["GET /api/v1/cloud"] = st
		}, "exchange.AMERICAS.device", StatusFail, "does not list that device", "deregister"},
		{"device not connected at the exchange", func(in *installation) {
			devs := in.exchange.routes["GET /api/v1/devices"].(exchangeclient.Devices)
			devs.Devices = []exchangeclient.Device{{ID: "dev-1", Name: "gw1", LastSeen: now.Add(-time.Hour)}}
			in.exchange.routes["GET /api/v1/devices"] = devs
		}, "exchange.AMERICAS.device", StatusFail, "no tunnel from device gw1 (last seen 2026-01-10 07:00:00 UTC)", "reaches"},
		{"threat response off for the organisation", func(in *installation) {
			devs := in.exchange.routes["GET /api/v1/devices"].(exchangeclient.Devices)
			devs.ThreatResponse = false
			in.exchange.routes["GET /api/v1/devices"] = devs
		}, "exchange.AMERICAS.threat_response", StatusFail, "Acme has not enabled Threat Response", "cloud-services enable --exchange http://127.0.0.1:"},
		{"console without an exchange key", func(in *installation) {
			in.console.routes["GET /api/v1/devices"] = errAnswer{http.StatusBadRequest, "organisation Acme has no exchange API key"}
		}, "console.exchange", StatusFail, "has no exchange API key", "API Keys"},
		{"module health error", func(in *installation) {
			in.console.routes["GET /api/v1/modules/m1/health"] = map[string]any{"status": "error",
				"errors": []map[string]string{{"code": "permission denied", "message": "Threat Response is not enabled"}}}
		}, "console.module.m1", StatusFail, "Threat Response is not enabled (permission denied)", "Cloud Services"},
		{"module for a device of another region", func(in *installation) {
			in.console.routes["GET /api/v1/devices"] = exchangeclient.Devices{Organisation: "Acme", Region: "EUROPE", ThreatResponse: true}
		}, "console.module.m1", StatusFail, "does not list: it is registered in AMERICAS (wrong region)", "Registered Device of region EUROPE"},
		{"module and device in different regions", func(in *installation) {
			in.console.routes["GET /api/v1/devices"] = exchangeclient.Devices{Organisation: "Acme", Region: "EUROPE", ThreatResponse: true}
		}, "console.module_region", StatusFail,
			`Wrong region: module "ESA" points at device dev-1 (gw1), which is registered in AMERICAS; the console uses the exchange of region EUROPE, so Investigate gets no data through that module.`,
			"Run the console with the exchange of region AMERICAS (sightline console --exchange AMERICAS --exchange-api-key KEY"},
		{"module of a deleted device", func(in *installation) {
			in.console.routes["GET /api/v1/modules"] = []map[string]any{{"id": "m1", "kind": "esa", "name": "ESA", "enabled": true,
				"settings": map[string]any{"device_id": "dev-gone"}}}
		}, "console.module_region", StatusOK, "No module points at a device registered in another region than the console's exchange (AMERICAS).", ""},
		{"no device module", func(in *installation) {
			in.console.routes["GET /api/v1/modules"] = []any{}
		}, "console.module_region", StatusSkip, "no gateway or manager module", ""},
		{"no module for the gateway", func(in *installation) {
			in.console.routes["GET /api/v1/modules"] = []any{}
		}, "console.modules", StatusWarn, "No Email Security Appliance module", "module add esa --device dev-1"},
		{"not an exchange", func(in *installation) {
			delete(in.exchange.routes, "GET /api/v1/region")
		}, "exchange.127.0.0.1", StatusFail, "not a Sightline exchange", "--exchange"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := healthy()
			tt.change(in)
			rs := in.run(t)
			r, ok := rs[tt.id]
			if !ok && strings.HasPrefix(tt.id, "exchange.127.0.0.1") {
				for id, x := range rs {
					if strings.HasPrefix(id, tt.id) {
						r, ok = x, true
					}
				}
			}
			if !ok {
				t.Fatalf("Run reported no check %s: %v", tt.id, rs)
			}
			if r.Status != tt.status || !strings.Contains(r.Detail, tt.detail) || !strings.Contains(r.Fix, tt.fix) {
				t.Errorf("Run: %s = %s %q (fix %q), want %s with %q (fix %q)", tt.id, r.Status, r.Detail, r.Fix, tt.status, tt.detail, tt.fix)
			}
		})
	}
}

// cloud is a gateway cloud status with Threat Response on, server AMERICAS.
func cloud(state, msg, lastErr string) map[string]any {
	return map[string]any{"threat_response": true, "server": "AMERICAS",
		"regions": []map[string]string{{"label": "AMERICAS", "url": "http://x.example"}},
		"state":   state, "message": msg, "last_error": lastErr}
}

func TestRunStoppedRoles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rs := Run(context.Background(), Targets{GatewayURL: "http://" + addr, ConsoleURL: "http://" + addr, SMTPAddr: addr,
		User: "admin", Password: "pw"})
	var got []string
	for _, r := range rs {
		got = append(got, r.ID+" "+string(r.Status))
	}
	want := []string{"smtp.reachable fail", "gateway.reachable fail", "console.reachable fail",
		"gateway.threat_response skip", "gateway.changes skip", "gateway.connector skip", "gateway.tunnel skip",
		"console.exchange skip", "console.region skip", "console.module_region skip", "console.modules skip"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Run with every role stopped (-want +got):\n%s", diff)
	}
}

func TestSMTPGreeting(t *testing.T) {
	tests := []struct {
		name, greeting string
		want           Status
	}{
		{"ready", "220 gw1.example.com ESMTP\r\n", StatusOK},
		{"refusing", "554 no service\r\n", StatusFail},
		{"silent", "", StatusFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte(tt.greeting))
				c.Close()
			}()
			rs := Run(context.Background(), Targets{SMTPAddr: ln.Addr().String()})
			if len(rs) != 1 || rs[0].Status != tt.want {
				t.Errorf("Run(SMTP greeting %q) = %v, want one check with status %s", tt.greeting, rs, tt.want)
			}
		})
	}
}

func TestDescribeTokens(t *testing.T) {
	tests := []struct {
		name   string
		tokens []exchangeclient.Token
		want   string
	}{
		{"none", nil, "The exchange of region AMERICAS has issued no token: the token entered was mistyped or issued by another region's exchange."},
		{"used up", []exchangeclient.Token{{ID: "t1", State: "Used up", Devices: 2}},
			"Tokens of exchange AMERICAS: token t1 is used up (all 2 of its devices registered). No token is active."},
		{"active", []exchangeclient.Token{{ID: "t1", State: "Active"}},
			"Tokens of exchange AMERICAS: 1 token(s) are active: if the token entered was one of them it was mistyped; a token of another region's exchange is refused too."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describeTokens("AMERICAS", tt.tokens, now); got != tt.want {
				t.Errorf("describeTokens(%v) = %q, want %q", tt.tokens, got, tt.want)
			}
		})
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	err := WriteText(&b, []Result{
		{ID: "a", Title: "A works", Status: StatusOK},
		{ID: "b", Title: "B works", Status: StatusFail, Detail: "B is down.", Fix: "Start B."},
		{ID: "c", Title: "C works", Status: StatusSkip, Detail: "B is down."},
	})
	want := "✓ A works\n✗ B works\n    B is down.\n    Fix: Start B.\n- C works\n    B is down.\n\n3 checks: 1 ok, 0 warnings, 1 failed, 1 skipped\n"
	if err != nil || b.String() != want {
		t.Errorf("WriteText = %q, %v, want %q", b.String(), err, want)
	}
}

func TestAnswerMessage(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"error": {"message": "Unauthorized.", "code": "401"}}`, "Unauthorized."},
		{`{"error": "Invalid username or passphrase."}`, "Invalid username or passphrase."},
		{`<html>`, "HTTP 502 Bad Gateway"},
	}
	for _, tt := range tests {
		if got := (answer{status: 502, body: []byte(tt.body)}).message(); got != tt.want {
			t.Errorf("answer{%q}.message() = %q, want %q", tt.body, got, tt.want)
		}
	}
}

func FuzzAnswerMessage(f *testing.F) {
	f.Add([]byte(`{"error": {"message": "x"}}`))
	f.Add([]byte(`{"error": "x"}`))
	f.Add([]byte(`{"error": 3}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if (answer{status: 500, body: body}).message() == "" {
			t.Errorf("message of %q is empty", body)
		}
	})
}
