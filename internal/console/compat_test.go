package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// startExchange runs a real exchange on 127.0.0.1:0 and returns its URL
// and an administrator client.
func startExchange(t *testing.T) (string, *exchangeclient.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	x, err := exchange.Open(ctx, exchange.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), RegisterBurst: 1000,
		AdminPassword: func() (string, error) { return adminPass, nil }})
	if err != nil {
		t.Fatalf("exchange.Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("exchange Run: %v", err)
		}
	})
	u := "http://" + x.Addr()
	return u, exchangeclient.NewAdmin(u, nil, exchange.AdminUser, adminPass)
}

func esaFake(in module.Instance) (module.Module, error) { return fakeModule{"ok"}, nil }

func TestModulesWithExchange(t *testing.T) {
	ctx := context.Background()
	xurl, xadmin := startExchange(t)
	key, err := xadmin.APIKeyCreate(ctx, "console")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := xadmin.TokenCreate(ctx, 1, "1h")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := exchangeclient.New(xurl, nil).Register(ctx, exchangeclient.Registration{Token: tok.Token, Hostname: "gw1",
		Type: "ESA", Version: "15.0.1-104", Serial: "4C4C-1", ConnectorVersion: "1.0.0"})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	tc := startConsole(t, func(o *Options) {
		o.ExchangeURL, o.ExchangeAPIKey = xurl, key.Key
		o.Modules[module.KindESA] = esaFake
	})
	esa := func(device string) ModuleRequest {
		return ModuleRequest{Kind: module.KindESA, Settings: json.RawMessage(fmt.Sprintf(`{"device_id": %q}`, device))}
	}
	status, body := tc.admin(t, http.MethodPost, "/api/v1/modules", esa(reg.DeviceID))
	if want := "Threat Response is not enabled for organisation Default in the exchange: turn it on under Cloud Services"; status != 400 ||
		decode[APIError](t, body).Error != want {
		t.Errorf("create ESA module with Threat Response off = %d %s, want 400 %q", status, body, want)
	}
	if err := xadmin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		t.Fatal(err)
	}
	status, body = tc.admin(t, http.MethodPost, "/api/v1/modules", esa("nope"))
	if want := "device nope is not registered in this organisation's exchange"; status != 400 || decode[APIError](t, body).Error != want {
		t.Errorf("create ESA module with an unknown device = %d %s, want 400 %q", status, body, want)
	}
	status, body = tc.admin(t, http.MethodPost, "/api/v1/modules", esa(reg.DeviceID))
	mi := decode[ModuleInstance](t, body)
	if status != 201 || mi.TypeID != TypeIDESA || mi.Name != "Email Security Appliance" || !mi.Enabled ||
		string(mi.Settings) != fmt.Sprintf(`{"device_id":%q,"timeframe_days":30}`, reg.DeviceID) {
		t.Fatalf("create ESA module = %d %s", status, body)
	}
	// A second module for the same device gets the default name numbered;
	// a name another module has is refused, on create and on rename.
	status, body = tc.admin(t, http.MethodPost, "/api/v1/modules", esa(reg.DeviceID))
	second := decode[ModuleInstance](t, body)
	if status != 201 || second.Name != "Email Security Appliance 2" {
		t.Errorf("second ESA module with the default name = %d %s, want 201 named \"Email Security Appliance 2\"", status, body)
	}
	named := esa(reg.DeviceID)
	named.Name = "email security appliance"
	status, body = tc.admin(t, http.MethodPost, "/api/v1/modules", named)
	if want := `a module named "email security appliance" already exists in this organisation: choose another name`; status != 409 ||
		decode[APIError](t, body).Error != want {
		t.Errorf("create a module with a taken name = %d %s, want 409 %q", status, body, want)
	}
	status, body = tc.admin(t, http.MethodPut, "/api/v1/modules/"+second.ID, ModuleRequest{Name: "Email Security Appliance"})
	if status != 409 {
		t.Errorf("rename a module to a taken name = %d %s, want 409", status, body)
	}
	if status, _ := tc.admin(t, http.MethodDelete, "/api/v1/modules/"+second.ID, nil); status != 204 {
		t.Errorf("delete the second module = %d, want 204", status)
	}
	status, body = tc.admin(t, http.MethodPut, "/api/v1/modules/"+mi.ID, ModuleRequest{Name: "gw1", Enabled: new(bool)})
	if up := decode[ModuleInstance](t, body); status != 200 || up.Name != "gw1" || up.Enabled {
		t.Errorf("update = %d %s", status, body)
	}
	if status, body := tc.admin(t, http.MethodGet, "/api/v1/modules/"+mi.ID+"/health", nil); status != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("module health = %d %s", status, body)
	}
	status, body = tc.admin(t, http.MethodGet, "/api/v1/devices", nil)
	devs := decode[exchangeclient.Devices](t, body)
	if status != 200 || !devs.ThreatResponse || len(devs.Devices) != 1 || devs.Devices[0].ID != reg.DeviceID {
		t.Errorf("devices = %d %s", status, body)
	}
	if status, _ := tc.admin(t, http.MethodDelete, "/api/v1/modules/"+mi.ID, nil); status != 204 {
		t.Errorf("delete = %d, want 204", status)
	}
	if status, _ := tc.admin(t, http.MethodGet, "/api/v1/modules/"+mi.ID, nil); status != 404 {
		t.Errorf("get deleted = %d, want 404", status)
	}
}

func TestDevicesExchangeUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	tc := startConsole(t, func(o *Options) { o.ExchangeURL, o.ExchangeAPIKey = dead, "k" })
	status, body := tc.admin(t, http.MethodGet, "/api/v1/devices", nil)
	if want := "the exchange at " + dead + " cannot be reached"; status != 503 || decode[APIError](t, body).Error != want {
		t.Errorf("devices with the exchange down = %d %s, want 503 %q", status, body, want)
	}
}

// pyClient mimics the Python client threatresponse 0.15.0 (console-api.md
// §7): it fetches a token at construction, re-authenticates once on a 401,
// joins every path to the host root and escapes path segments with no
// safe characters.
type pyClient struct {
	t                *testing.T
	base, id, secret string
	token            string
}

func newPyClient(t *testing.T, base, id, secret string) *pyClient {
	c := &pyClient{t: t, base: base, id: id, secret: secret}
	if err := c.authenticate(); err != nil {
		t.Fatalf("ThreatResponse(): %v", err)
	}
	return c
}

func (c *pyClient) authenticate() error {
	req, _ := http.NewRequest(http.MethodPost, c.base+"/iroh/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(c.id, c.secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTPError %d", resp.StatusCode)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return err
	}
	c.token = out["access_token"].(string)
	return nil
}

// quote is urllib.parse.quote(s, safe="").
func quote(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// do sends one request; on a 401 it re-authenticates and retries once.
func (c *pyClient) do(method, path string, body any) (int, []byte) {
	send := func() (int, []byte) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, c.base+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		status, b, _ := do(c.t, req)
		return status, b
	}
	status, b := send()
	if status == http.StatusUnauthorized {
		if err := c.authenticate(); err != nil {
			c.t.Fatalf("re-authenticate: %v", err)
		}
		status, b = send()
	}
	return status, b
}

func TestPythonClientBehaviour(t *testing.T) {
	tc := startConsole(t, nil)
	id, secret := tc.client(t, tc.org.ID, "enrich", "private-intel", "response", "inspect")
	py := newPyClient(t, tc.url, id, secret)

	// A judgement on a URL, whose value has slashes and a query.
	evil := "https://evil.example/a/b?c=d"
	if status, body := py.do(http.MethodPost, "/ctia/judgement", map[string]any{"observable": map[string]string{"type": "url", "value": evil},
		"source": "s", "disposition": 2, "priority": 90, "confidence": "High", "severity": "High"}); status != 201 {
		t.Fatalf("create judgement = %d %s", status, body)
	}
	if status, body := py.do(http.MethodGet, "/ctia/url/"+quote(evil)+"/verdict", nil); status != 200 || !strings.Contains(string(body), `"disposition":2`) {
		t.Errorf("verdict of an escaped url = %d %s", status, body)
	}

	// The token expires; the client re-authenticates once and succeeds.
	tc.clock.Add(TokenLifetime + time.Second)
	status, body := py.do(http.MethodPost, "/iroh/iroh-inspect/inspect", map[string]string{"content": "203.0.113.25 " + evil})
	if status != 200 || !strings.Contains(string(body), `"type":"ip"`) {
		t.Fatalf("inspect after expiry = %d %s, want 200 after one re-authentication", status, body)
	}
	status, body = py.do(http.MethodPost, "/iroh/iroh-enrich/deliberate/observables", json.RawMessage(body))
	env := decode[envelopeOf[[]map[string]any]](t, body)
	if status != 200 || len(env.Data) != 1 {
		t.Fatalf("deliberate = %d %s", status, body)
	}
	// commands.verdict reads these keys; a missing one is a KeyError.
	item := env.Data[0]
	for _, k := range []string{"module", "module_instance_id", "module_type_id"} {
		if _, ok := item[k]; !ok {
			t.Errorf("envelope item lacks %s", k)
		}
	}
	var v ctim.Verdict
	docs := item["data"].(map[string]any)["verdicts"].(map[string]any)["docs"].([]any)
	b, _ := json.Marshal(docs[0])
	json.Unmarshal(b, &v)
	if v.Observable.Value != evil || v.ValidTime.EndTime.IsZero() {
		t.Errorf("verdict = %+v", v)
	}
	// Token mode probes settings.
	if status, _ := py.do(http.MethodGet, "/iroh/iroh-enrich/settings", nil); status/100 != 2 {
		t.Errorf("settings = %d, want 2xx", status)
	}
	// Search answers a bare array.
	if status, body := py.do(http.MethodGet, "/ctia/judgement/search", nil); status != 200 || !strings.HasPrefix(string(body), "[") {
		t.Errorf("search = %d %s", status, body)
	}
}
