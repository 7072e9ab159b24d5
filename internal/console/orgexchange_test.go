package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/esa"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
	"github.com/sightline/sightline/internal/password"
	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tunnel"
)

// twoOrgExchange is a real exchange with two organisations, Default and
// Second, each with an administrator, an API key for the console, Threat
// Response on, and one registered gateway whose tunnel is up and whose
// device end counts the requests it answers.
type twoOrgExchange struct {
	url        string
	keys       [2]string
	devices    [2]string
	hits       [2]*atomic.Int32
	deviceName [2]string
}

func startTwoOrgExchange(t *testing.T) *twoOrgExchange {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.OpenExchange(ctx, filepath.Join(dir, "exchange.db"))
	if err != nil {
		t.Fatal(err)
	}
	second := registry.Organisation{ID: uuid.NewString(), Name: "Second", CreatedAt: time.Now()}
	hash, _ := password.Hash(adminPass)
	if err := st.CreateOrganisation(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, registry.User{Name: "admin2", OrgID: second.ID, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	x, err := exchange.Open(runCtx, exchange.Options{Addr: "127.0.0.1:0", Store: st, RegisterBurst: 1000,
		AdminPassword: func() (string, error) { return adminPass, nil }})
	if err != nil {
		t.Fatalf("exchange.Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- x.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	e := &twoOrgExchange{url: "http://" + x.Addr()}
	for i, user := range []string{exchange.AdminUser, "admin2"} {
		admin := exchangeclient.NewAdmin(e.url, nil, user, adminPass)
		key, err := admin.APIKeyCreate(ctx, "console")
		if err != nil {
			t.Fatalf("APIKeyCreate(%s): %v", user, err)
		}
		e.keys[i] = key.Key
		if err := admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
			t.Fatal(err)
		}
		tok, err := admin.TokenCreate(ctx, 1, "1h")
		if err != nil {
			t.Fatal(err)
		}
		e.deviceName[i] = fmt.Sprintf("gw%d", i+1)
		reg, err := exchangeclient.New(e.url, nil).Register(ctx, exchangeclient.Registration{Token: tok.Token, Hostname: e.deviceName[i],
			Type: "ESA", Version: "15.0.1-104", Serial: fmt.Sprintf("4C4C-%d", i), ConnectorVersion: "1.0.0"})
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		e.devices[i] = reg.DeviceID
		hits := &atomic.Int32{}
		e.hits[i] = hits
		// The device end answers the one request the ESA module's health
		// check makes.
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"data": []string{"e_message_tracking_messages"}})
		})
		d := &tunnel.Dialer{URL: reg.TunnelURL, Credential: func() string { return reg.Credential }, Handler: h,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Heartbeat: time.Second}
		dctx, dcancel := context.WithCancel(ctx)
		ddone := make(chan struct{})
		go func() { d.Run(dctx); close(ddone) }()
		t.Cleanup(func() { dcancel(); <-ddone })
		keyed := exchangeclient.NewKey(e.url, nil, key.Key)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			list, err := keyed.Devices(ctx)
			if err == nil && len(list.Devices) == 1 && list.Devices[0].Connected {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the tunnel of %s did not connect within 10s: %+v, %v", e.deviceName[i], list, err)
			}
		}
	}
	return e
}

// TestExchangeKeysPerOrganisation gives each console organisation its own
// exchange key and checks that one organisation's key and modules never
// reach another's devices.
func TestExchangeKeysPerOrganisation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x := startTwoOrgExchange(t)
	tc := startConsole(t, func(o *Options) {
		o.ExchangeURL, o.ExchangeAPIKey = x.url, x.keys[0]
		o.ExchangeModules = map[string]ExchangeFactory{
			module.KindESA: func(inst module.Instance, ex *OrgExchange) (module.Module, error) {
				return esa.New(inst, ex, esa.Options{})
			},
		}
	})
	second := tc.newOrgAdmin(t, "Second Console Org", "bob")
	asBob := func(method, path string, body any) (int, []byte) {
		return tc.adminAs(t, "bob", adminPass, method, path, body)
	}

	// Second has no key yet: it reaches nothing, and says how to fix it.
	status, body := asBob(http.MethodGet, "/api/v1/exchange", nil)
	if st := decode[ExchangeStatus](t, body); status != 200 || st.KeyIsSet || st.Reachable ||
		!strings.Contains(st.Problem, "organisation Second Console Org has no exchange API key") {
		t.Errorf("GET /api/v1/exchange before the key = %d %s", status, body)
	}
	if status, body := asBob(http.MethodPut, "/api/v1/exchange", ExchangeKey{}); status != 400 {
		t.Errorf("PUT an empty key = %d %s, want 400", status, body)
	}
	if status, body := asBob(http.MethodPut, "/api/v1/exchange", ExchangeKey{APIKey: x.keys[1]}); status != 204 {
		t.Fatalf("PUT the key = %d %s", status, body)
	}
	status, body = asBob(http.MethodGet, "/api/v1/exchange", nil)
	if st := decode[ExchangeStatus](t, body); status != 200 || !st.KeyIsSet || !st.Reachable || !st.ThreatResponse || st.URL != x.url ||
		strings.Contains(string(body), x.keys[1]) {
		t.Errorf("GET /api/v1/exchange after the key = %d %s", status, body)
	}

	// Keys are sealed at rest, each for its own organisation.
	for _, o := range []struct {
		id, key string
	}{{tc.org.ID, x.keys[0]}, {second.ID, x.keys[1]}} {
		org, err := tc.store.Organisation(ctx, o.id)
		if err != nil || !isSealed(org.ExchangeKey) || strings.Contains(org.ExchangeKey, o.key) {
			t.Errorf("stored exchange key of %s = %q, %v; want it sealed", o.id, org.ExchangeKey, err)
		}
	}

	// Each organisation lists only its own device.
	for i, who := range []string{AdminUser, "bob"} {
		status, body := tc.adminAs(t, who, adminPass, http.MethodGet, "/api/v1/devices", nil)
		devs := decode[exchangeclient.Devices](t, body)
		if status != 200 || len(devs.Devices) != 1 || devs.Devices[0].ID != x.devices[i] {
			t.Errorf("devices of %s = %d %s, want only %s", who, status, body, x.devices[i])
		}
	}

	// One organisation cannot add a module on the other's device.
	esaReq := func(device string) ModuleRequest {
		return ModuleRequest{Kind: module.KindESA, Settings: json.RawMessage(fmt.Sprintf(`{"device_id": %q}`, device))}
	}
	status, body = tc.admin(t, http.MethodPost, "/api/v1/modules", esaReq(x.devices[1]))
	if want := "device " + x.devices[1] + " is not registered in this organisation's exchange"; status != 400 || decode[APIError](t, body).Error != want {
		t.Errorf("Default adds Second's device = %d %s, want 400 %q", status, body, want)
	}
	status, body = asBob(http.MethodPost, "/api/v1/modules", esaReq(x.devices[1]))
	modB := decode[ModuleInstance](t, body)
	if status != 201 {
		t.Fatalf("Second adds its device = %d %s", status, body)
	}
	status, body = tc.admin(t, http.MethodPost, "/api/v1/modules", esaReq(x.devices[0]))
	modA := decode[ModuleInstance](t, body)
	if status != 201 {
		t.Fatalf("Default adds its device = %d %s", status, body)
	}

	health := func(who, id string) ModuleHealth {
		t.Helper()
		status, body := tc.adminAs(t, who, adminPass, http.MethodGet, "/api/v1/modules/"+id+"/health", nil)
		if status != 200 {
			t.Fatalf("health of %s = %d %s", id, status, body)
		}
		return decode[ModuleHealth](t, body)
	}
	before := [2]int32{x.hits[0].Load(), x.hits[1].Load()}
	if h := health("bob", modB.ID); h.Status != "ok" {
		t.Errorf("health of Second's module = %+v, want ok", h)
	}
	if h := health(AdminUser, modA.ID); h.Status != "ok" {
		t.Errorf("health of Default's module = %+v, want ok", h)
	}
	if got := [2]int32{x.hits[0].Load() - before[0], x.hits[1].Load() - before[1]}; got != [2]int32{1, 1} {
		t.Errorf("requests reaching gw1, gw2 = %v, want one each, each from its own organisation's module", got)
	}
	status, _ = tc.admin(t, http.MethodGet, "/api/v1/modules/"+modB.ID, nil)
	if status != 404 {
		t.Errorf("Default reads Second's module = %d, want 404", status)
	}

	// A module of Default on Second's device (as if stored by another
	// path) goes out with Default's key, which the exchange refuses: the
	// device never sees it.
	forged := records.Instance{Instance: module.Instance{ID: uuid.NewString(), TypeID: TypeIDESA, Kind: module.KindESA, Name: "forged",
		OrgID: tc.org.ID, Enabled: true, Settings: json.RawMessage(fmt.Sprintf(`{"device_id":%q,"timeframe_days":30}`, x.devices[1]))},
		CreatedAt: tc.now(), UpdatedAt: tc.now()}
	if err := tc.store.CreateInstance(ctx, forged); err != nil {
		t.Fatal(err)
	}
	before[1] = x.hits[1].Load()
	if h := health(AdminUser, forged.ID); h.Status != "error" || len(h.Errors) == 0 {
		t.Errorf("health of the forged module = %+v, want an error", h)
	}
	if n := x.hits[1].Load() - before[1]; n != 0 {
		t.Errorf("Second's device answered %d requests of Default's module", n)
	}

	// A new key takes effect at once, for that organisation alone.
	if status, body := tc.admin(t, http.MethodPut, "/api/v1/exchange", ExchangeKey{APIKey: "not-a-key"}); status != 204 {
		t.Fatalf("PUT a bad key = %d %s", status, body)
	}
	if h := health(AdminUser, modA.ID); h.Status != "error" {
		t.Errorf("health of Default's module with a bad key = %+v, want error", h)
	}
	if h := health("bob", modB.ID); h.Status != "ok" {
		t.Errorf("health of Second's module after Default's key changed = %+v, want ok", h)
	}

	// A sealed key copied into another organisation's record does not open.
	org, _ := tc.store.Organisation(ctx, tc.org.ID)
	if err := tc.store.SetExchangeKey(ctx, second.ID, org.ExchangeKey); err != nil {
		t.Fatal(err)
	}
	tc.orgClients.forget(second.ID)
	_, err := tc.exchangeClient(ctx, second.ID)
	if sightline.ErrorKind(err) != sightline.Internal || !strings.Contains(sightline.ErrorMessage(err), "does not open with the console's secret key") {
		t.Errorf("exchange client with another organisation's sealed key: %v, want it refused", err)
	}
}
