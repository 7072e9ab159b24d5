package esa_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/smtp"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/esa"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/gateway"
	"github.com/sightline/sightline/internal/tunnel"
)

const password = "correct horse battery"

// sha256Test is the SHA-256 of "test", the content of the seed's
// attachment, as in ctim.md §14.
const sha256Test = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// env is a gateway registered with an exchange and connected by its
// tunnel, and the console's client of that exchange.
type env struct {
	gw       *gateway.Gateway
	admin    *exchangeclient.Client // the exchange administrator
	console  *exchangeclient.Client // the console, with an organisation API key
	deviceID string
	offline  string // a registered device with no tunnel
	// credentialed counts requests that reached the gateway carrying
	// credentials of their own; the module must send none.
	credentialed atomic.Int32
}

// run starts fn in the background until the test ends.
func run(t *testing.T, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("background run: %v", err)
		}
	})
}

func startEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	x, err := exchange.Open(ctx, exchange.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		AdminPassword: func() (string, error) { return password, nil },
		RegisterBurst: 1000, TunnelHeartbeat: time.Second, ProxyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("exchange.Open: %v", err)
	}
	run(t, x.Run)
	xURL := "http://" + x.Addr()

	gw, err := gateway.Open(ctx, gateway.Options{DataDir: t.TempDir(), SMTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Hostname: "gw.test", DNSServers: []string{"127.0.0.1:1"}, Version: "test",
		AdminPassword: func() (string, error) { return password, nil }})
	if err != nil {
		t.Fatalf("gateway.Open: %v", err)
	}
	run(t, gw.Run)

	e := &env{gw: gw, admin: exchangeclient.NewAdmin(xURL, nil, exchange.AdminUser, password)}
	key, err := x.CreateAPIKey(ctx, "Default", "console")
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	e.console = exchangeclient.NewKey(xURL, nil, key)
	if err := e.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		t.Fatalf("SetCloudServices: %v", err)
	}
	tok, err := e.admin.TokenCreate(ctx, 2, "1h")
	if err != nil {
		t.Fatalf("TokenCreate: %v", err)
	}
	anon := exchangeclient.New(xURL, nil)
	reg := func(host string) exchangeclient.Registered {
		r, err := anon.Register(ctx, exchangeclient.Registration{Token: tok.Token, Hostname: host, Type: "ESA",
			Version: "15.0.1-104", Serial: "4C4C-1234", ConnectorVersion: "1.0"})
		if err != nil {
			t.Fatalf("Register(%s): %v", host, err)
		}
		return r
	}
	r := reg("gw.test")
	e.deviceID = r.DeviceID
	e.offline = reg("offline.test").DeviceID

	// The gateway does not export its handler, so the device end of the
	// tunnel forwards to its HTTP port. Requests arriving there are no
	// longer ViaTunnel, so this stand-in adds the credentials the gateway's
	// tunnel trust would make unnecessary (a JWT: Basic would hash the
	// password on every request); it first counts any request that came
	// with credentials of its own.
	jwt := login(t, gw.HTTPAddr())
	target, _ := url.Parse("http://" + gw.HTTPAddr())
	rp := httputil.NewSingleHostReverseProxy(target)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.Header.Get("jwtToken") != "" {
			e.credentialed.Add(1)
		}
		r.Header.Set("jwtToken", jwt)
		rp.ServeHTTP(w, r)
	})
	d := &tunnel.Dialer{URL: r.TunnelURL, Credential: func() string { return r.Credential }, Handler: h,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Heartbeat: time.Second}
	run(t, func(ctx context.Context) error {
		if err := d.Run(ctx); ctx.Err() == nil {
			return err
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := e.console.Devices(ctx)
		if err == nil && len(list.Devices) > 0 && list.Devices[0].Connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway's tunnel did not connect within 10s: %+v, %v", list, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() {
		if n := e.credentialed.Load(); n > 0 {
			t.Errorf("%d requests reached the gateway with credentials; the module must send none", n)
		}
	})
	return e
}

// login logs in to the gateway's API as admin and returns the jwtToken.
func login(t *testing.T, addr string) string {
	t.Helper()
	body := fmt.Sprintf(`{"data":{"userName":%q,"passphrase":%q}}`,
		base64.StdEncoding.EncodeToString([]byte("admin")), base64.StdEncoding.EncodeToString([]byte(password)))
	resp, err := http.Post("http://"+addr+"/esa/api/v2.0/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lr struct {
		Data struct {
			JWT string `json:"jwtToken"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil || lr.Data.JWT == "" {
		t.Fatalf("gateway login = %d, %v: no jwtToken", resp.StatusCode, err)
	}
	return lr.Data.JWT
}

func (e *env) module(t *testing.T, deviceID string) module.Module {
	t.Helper()
	inst := module.Instance{ID: uuid.NewString(), Kind: module.KindESA, Name: "Gateway gw1",
		Settings: json.RawMessage(fmt.Sprintf(`{"device_id": %q, "timeframe_days": 7}`, deviceID))}
	m, err := esa.New(inst, e.console, esa.Options{GatewayURL: "https://gw.test"})
	if err != nil {
		t.Fatalf("esa.New: %v", err)
	}
	return m
}

// sendInvoice sends the seed message of ctim.md §14 with an attachment
// invoice.pdf whose content is "test".
func sendInvoice(t *testing.T, addr string) {
	t.Helper()
	msg := strings.Join([]string{
		"From: Alice <alice@sender.example>",
		"To: <bob@corp.example>",
		"Subject: Invoice 4471",
		"Message-ID: <20260110080012.4471@sender.example>",
		"MIME-Version: 1.0",
		`Content-Type: multipart/mixed; boundary="b1"`,
		"",
		"--b1",
		"Content-Type: text/plain",
		"",
		"Please find the invoice attached, or download it from https://sender.example/i?x=1 today.",
		"--b1",
		`Content-Type: application/pdf; name="invoice.pdf"`,
		`Content-Disposition: attachment; filename="invoice.pdf"`,
		"Content-Transfer-Encoding: base64",
		"",
		base64.StdEncoding.EncodeToString([]byte("test")),
		"--b1--",
		"",
	}, "\r\n")
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("alice@sender.example"); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	if err := c.Rcpt("bob@corp.example"); err != nil {
		t.Fatalf("RCPT TO: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	c.Quit()
}

// observe calls Observe and decodes the sightings.
func observe(t *testing.T, m module.Module, obs ...ctim.Observable) ([]map[string]any, []module.Error) {
	t.Helper()
	data, errs, err := m.Observe(context.Background(), obs)
	if err != nil {
		t.Fatalf("Observe(%v) transport error: %v", obs, err)
	}
	if _, ok := m.(module.CompactJSON); !ok {
		t.Errorf("the module is not a module.CompactJSON")
	}
	for k, v := range data {
		// module.CompactJSON: the console copies the data as it is.
		if b, err := json.Marshal(v); err != nil || !bytes.Equal(b, v) {
			t.Errorf("Observe(%v) data %q is not as json.Marshal writes it: %s", obs, k, v)
		}
	}
	raw, ok := data["sightings"]
	if !ok {
		return nil, errs
	}
	var s struct {
		Count int              `json:"count"`
		Docs  []map[string]any `json:"docs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("Observe(%v) sightings: %v", obs, err)
	}
	if s.Count != len(s.Docs) {
		t.Errorf("Observe(%v) count = %d for %d docs", obs, s.Count, len(s.Docs))
	}
	for _, d := range s.Docs {
		b, _ := json.Marshal(d)
		var sg ctim.Sighting
		if err := json.Unmarshal(b, &sg); err != nil {
			t.Fatalf("sighting does not decode as CTIM: %v", err)
		}
		if err := sg.Validate(); err != nil {
			t.Errorf("sighting is not valid CTIM: %v\n%s", err, b)
		}
	}
	return s.Docs, errs
}

// wantSighting is ctim.md §14 for MID mid of gateway serial, as observe
// finds it by o; ids and times are checked apart and replaced by "<id>" and
// "<time>". The test gateway puts loopback clients in its RELAYLIST, so
// the message is outgoing and its target (the internal party) the sender.
func wantSighting(t *testing.T, mid, serial string, o ctim.Observable) map[string]any {
	t.Helper()
	rel := func(relation, typ, value string) string {
		return fmt.Sprintf(`{"origin": "Sightline Gateway", "relation": %q, "source": {"type": "cisco_mid", "value": %q},
			"related": {"type": %q, "value": %q}}`, relation, mid, typ, value)
	}
	doc := fmt.Sprintf(`{
	  "id": "<id>", "type": "sighting", "schema_version": "1.3.29",
	  "source": "Sightline Gateway", "source_uri": "https://gw.test/monitor/tracking/%[1]s",
	  "title": "Outgoing message (Delivered)", "description": "Outgoing message (Delivered)",
	  "short_description": "MID %[1]s from alice@sender.example to bob@corp.example: Invoice 4471",
	  "confidence": "High", "severity": "Low", "resolution": "allowed", "count": 1, "internal": true,
	  "sensor": "process.email-service",
	  "sensor_coordinates": {"type": "process.email-service", "observables": [{"type": "hostname", "value": "gw.test"}]},
	  "external_ids": ["sightline-mid:%[2]s:%[1]s"],
	  "observed_time": {"start_time": "<time>", "end_time": "<time>"},
	  "observables": [{"type": %[3]q, "value": %[4]q}],
	  "targets": [{"type": "email", "observables": [{"type": "email", "value": "alice@sender.example"}],
	               "observed_time": {"start_time": "<time>", "end_time": "<time>"}}],
	  "relations": [%[5]s]}`, mid, serial, o.Type, o.Value, strings.Join([]string{
		rel("Sent_By", "email", "alice@sender.example"),
		rel("Sent_To", "email", "bob@corp.example"),
		rel("Received_From", "ip", "127.0.0.1"),
		rel("Contains", "email_subject", "Invoice 4471"),
		rel("Contains", "email_messageid", "20260110080012.4471@sender.example"),
		rel("Contains", "file_name", "invoice.pdf"),
		rel("Contains", "sha256", sha256Test),
		rel("Contains", "url", "https://sender.example/i?x=1"),
	}, ","))
	var want map[string]any
	if err := json.Unmarshal([]byte(doc), &want); err != nil {
		t.Fatalf("expected sighting: %v\n%s", err, doc)
	}
	return want
}

// stripVolatile checks the sighting's id and times and replaces them by
// "<id>" and "<time>".
func stripVolatile(t *testing.T, doc map[string]any) {
	t.Helper()
	if id, _ := doc["id"].(string); !strings.HasPrefix(id, "transient:sighting-") {
		t.Errorf("id = %q, want transient:sighting-<uuid>", id)
	}
	doc["id"] = "<id>"
	times := func(v any) {
		m, _ := v.(map[string]any)
		for _, k := range []string{"start_time", "end_time"} {
			s, _ := m[k].(string)
			if _, err := time.Parse(ctim.TimeLayout, s); err != nil {
				t.Errorf("%s = %q, want a CTIM time", k, s)
			}
			m[k] = "<time>"
		}
	}
	times(doc["observed_time"])
	if ts, _ := doc["targets"].([]any); len(ts) > 0 {
		times(ts[0].(map[string]any)["observed_time"])
	}
}

func TestObserveRealGateway(t *testing.T) {
	e := startEnv(t)
	m := e.module(t, e.deviceID)
	if errs, err := m.Health(context.Background()); err != nil || len(errs) > 0 {
		t.Fatalf("Health() = %v, %v; want ok", errs, err)
	}
	sendInvoice(t, e.gw.SMTPAddr())

	subject := ctim.Observable{Type: "email_subject", Value: "Invoice 4471"}
	var docs []map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for {
		var errs []module.Error
		docs, errs = observe(t, m, subject)
		if len(errs) > 0 {
			t.Fatalf("Observe(subject) errors: %v", errs)
		}
		if len(docs) == 1 && docs[0]["title"] == "Outgoing message (Delivered)" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivered sighting within 15s; last answer %v", docs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ext := docs[0]["external_ids"].([]any)[0].(string)
	parts := strings.Split(ext, ":") // sightline-mid:<serial>:<mid>
	serial, mid := parts[1], parts[2]

	tests := []struct {
		name string
		obs  ctim.Observable
	}{
		{"sender", ctim.Observable{Type: "email", Value: "alice@sender.example"}},
		{"recipient", ctim.Observable{Type: "email", Value: "bob@corp.example"}},
		{"subject", subject},
		{"message id", ctim.Observable{Type: "email_messageid", Value: "20260110080012.4471@sender.example"}},
		{"mid", ctim.Observable{Type: "cisco_mid", Value: mid}},
		{"ip", ctim.Observable{Type: "ip", Value: "127.0.0.1"}},
		{"domain", ctim.Observable{Type: "domain", Value: "sender.example"}},
		{"sha256", ctim.Observable{Type: "sha256", Value: sha256Test}},
		{"file name", ctim.Observable{Type: "file_name", Value: "invoice.pdf"}},
		// The native search (search-and-bench.md §A.2).
		{"url", ctim.Observable{Type: "url", Value: "https://sender.example/i?x=1"}},
		{"sha1", ctim.Observable{Type: "sha1", Value: "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"}},
		{"md5", ctim.Observable{Type: "md5", Value: "098f6bcd4621d373cade4e832627b4f6"}},
		{"hostname", ctim.Observable{Type: "hostname", Value: "localhost"}}, // net/smtp's HELO
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, errs := observe(t, m, tt.obs)
			if len(errs) > 0 {
				t.Errorf("Observe(%v) errors: %v", tt.obs, errs)
			}
			if len(docs) != 1 {
				t.Fatalf("Observe(%v) = %d sightings, want 1: %v", tt.obs, len(docs), docs)
			}
			stripVolatile(t, docs[0])
			if diff := cmp.Diff(wantSighting(t, mid, serial, tt.obs), docs[0]); diff != "" {
				t.Errorf("Observe(%v) sighting mismatch (-want +got):\n%s", tt.obs, diff)
			}
		})
	}

	// Two observables finding the same MID give one sighting listing both.
	sender := ctim.Observable{Type: "email", Value: "alice@sender.example"}
	docs, errs := observe(t, m, sender, subject, ctim.Observable{Type: "ip", Value: "192.0.2.1"})
	if len(errs) > 0 || len(docs) != 1 {
		t.Fatalf("Observe(sender, subject, other ip) = %d sightings, %v; want 1", len(docs), errs)
	}
	if got, want := docs[0]["observables"], []any{
		map[string]any{"type": "email", "value": "alice@sender.example"},
		map[string]any{"type": "email_subject", "value": "Invoice 4471"},
	}; !cmp.Equal(got, want) && !cmp.Equal(got, []any{want[1], want[0]}) {
		t.Errorf("observables of the deduplicated sighting = %v, want %v", got, want)
	}

	// Nothing found, and a type the gateway cannot search.
	docs, errs = observe(t, m, ctim.Observable{Type: "email", Value: "nobody@nowhere.example"},
		ctim.Observable{Type: "user", Value: "bob"})
	if len(docs) != 0 || len(errs) != 0 {
		t.Errorf("Observe(unknown sender, user) = %v, %v; want nothing", docs, errs)
	}
}

func TestHealthFailures(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		deviceID string
		prep     func(t *testing.T)
		code     string
		contains string
	}{
		{"offline device", e.offline, nil, "service unavailable", "not connected"},
		{"unknown device", uuid.NewString(), nil, "not found", "is not registered with this exchange"},
		{"threat response off", e.deviceID, func(t *testing.T) {
			if err := e.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: false}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}) })
		}, "permission denied", "Threat Response is not enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prep != nil {
				tt.prep(t)
			}
			errs, err := e.module(t, tt.deviceID).Health(ctx)
			if err != nil || len(errs) != 1 || errs[0].Code != tt.code || errs[0].Type != "fatal" ||
				!strings.Contains(errs[0].Message, tt.contains) {
				t.Errorf("Health() = %v, %v; want one fatal %q error containing %q", errs, err, tt.code, tt.contains)
			}
		})
	}
}
