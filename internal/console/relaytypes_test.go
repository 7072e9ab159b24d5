package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"golang.org/x/net/html"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/relay"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/console/ui"
	"github.com/sightline/sightline/internal/observable"
)

// lateSigner signs relay configuration tokens with the console's keys once
// the console exists, as cmd/sightline wires it.
type lateSigner struct{ c *Console }

func (s *lateSigner) Sign(claims map[string]any) (string, error) { return s.c.Sign(claims) }

// startRelayConsole runs a console whose relay kind is the real relay
// client; edit changes the options first.
func startRelayConsole(t *testing.T, edit func(*Options)) *testConsole {
	t.Helper()
	sign := &lateSigner{}
	tc := startConsole(t, func(o *Options) {
		o.Modules[module.KindRelay] = func(inst module.Instance) (module.Module, error) {
			return relay.New(inst, relay.Options{Signer: sign})
		}
		if edit != nil {
			edit(o)
		}
	})
	sign.c = tc.Console
	return tc
}

// newOrgAdmin creates another organisation with an administrator.
func (tc *testConsole) newOrgAdmin(t *testing.T, org, user string) records.Organisation {
	t.Helper()
	ctx := context.Background()
	o := records.Organisation{ID: uuid.NewString(), Name: org, CreatedAt: tc.now()}
	if err := tc.store.CreateOrganisation(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.createUser(ctx, o.ID, user, records.RoleAdmin, adminPass); err != nil {
		t.Fatal(err)
	}
	return o
}

// register posts a module type record and returns the registered type.
func (tc *testConsole) register(t *testing.T, record map[string]any) ModuleTypeRecord {
	t.Helper()
	status, body := tc.admin(t, http.MethodPost, "/api/v1/module-types", record)
	if status != http.StatusCreated {
		t.Fatalf("register module type %v = %d %s", record["title"], status, body)
	}
	return decode[ModuleTypeRecord](t, body)
}

// relayType is a record of a relay type at url with the given routes.
func relayType(title, url string, apis ...string) map[string]any {
	m := typeRecord()
	m["title"], m["default_name"] = title, title
	var list []any
	for _, a := range apis {
		list = append(list, a)
	}
	p := props(m)
	p["url"], p["supported-apis"] = url, list
	delete(p, "custom_jwks_host") // the console's own host
	m["capabilities"] = []any{}
	return m
}

func TestModuleTypesAPI(t *testing.T) {
	t.Parallel()
	tc := startRelayConsole(t, nil)
	ctx := context.Background()

	status, body := tc.admin(t, http.MethodGet, "/api/v1/module-types", nil)
	types := decode[[]ModuleTypeRecord](t, body)
	type summary struct {
		ID, Kind, Title string
		Available       bool
		Unavailable     string
	}
	var got []summary
	for _, mt := range types {
		got = append(got, summary{mt.ID, mt.Kind, mt.Title, mt.Available, mt.Unavailable})
	}
	want := []summary{
		{TypeIDESA, module.KindESA, "Email Security Appliance", false, unavailableESA},
		{TypeIDSMA, module.KindSMA, "Security Management Appliance", false, unavailableSMA},
		{TypeIDRelay, module.KindRelay, "Relay Module", true, ""},
		{TypeIDPrivateIntel, "private-intel", PrivateIntelName, false, "Built into every organisation: it answers from the organisation's own judgements and sightings."},
	}
	if diff := cmp.Diff(want, got); status != http.StatusOK || diff != "" {
		t.Errorf("GET /api/v1/module-types = %d, mismatch (-want +got):\n%s", status, diff)
	}
	status, body = tc.admin(t, http.MethodPost, "/api/v1/modules", ModuleRequest{Kind: module.KindSMA, Settings: json.RawMessage(`{"device_id":"d"}`)})
	if want := "Security Management Appliance modules cannot be added: " + unavailableSMA; status != 400 || decode[APIError](t, body).Error != want {
		t.Errorf("add an SMA module = %d %s, want 400 %q", status, body, want)
	}

	rec := typeRecord()
	props(rec)["configuration-token-alg"] = "HS256"
	props(rec)["configuration-token-key"] = strings.Repeat("s", 32)
	mt := tc.register(t, rec)
	if mt.ID == "" || mt.Kind != module.KindRelay || mt.BuiltIn || !mt.Available || mt.Properties.TokenKey != "" ||
		mt.CreatedBy != AdminUser || mt.Properties.URL != "https://relay.example.com" {
		t.Errorf("registered type = %+v, want a relay type without its key", mt)
	}
	stored, err := tc.store.ModuleType(ctx, tc.org.ID, mt.ID)
	if err != nil || strings.Contains(string(stored.Record), strings.Repeat("s", 32)) || !strings.Contains(string(stored.Record), sealedPrefix) {
		t.Errorf("stored type = %s, %v; want its configuration-token-key sealed", stored.Record, err)
	}
	status, body = tc.admin(t, http.MethodGet, "/api/v1/module-types/"+mt.ID, nil)
	if one := decode[ModuleTypeRecord](t, body); status != 200 || one.Title != "Abuse Intel" || one.Properties.TokenKey != "" {
		t.Errorf("GET the type = %d %s", status, body)
	}

	errorTests := []struct {
		name       string
		user       string
		method     string
		path       string
		body       any
		wantStatus int
		want       string
	}{
		{"same title", AdminUser, http.MethodPost, "/api/v1/module-types", typeRecord(), 409, `title: this organisation already has a module type titled "Abuse Intel"`},
		{"built-in title", AdminUser, http.MethodPost, "/api/v1/module-types", func() map[string]any {
			m := typeRecord()
			m["title"] = "Relay Module"
			return m
		}(), 409, `title: "Relay Module" is the title of a built-in module type: choose another`},
		{"invalid record", AdminUser, http.MethodPost, "/api/v1/module-types", map[string]any{"title": "X"}, 400,
			"module type: default_name: is required; properties: is required: url, supported-apis and auth-type at least"},
		{"not JSON", AdminUser, http.MethodPost, "/api/v1/module-types", "text", 400, "module type: the body must be a JSON object"},
		{"analyst", "ana", http.MethodPost, "/api/v1/module-types", typeRecord(), 403, "User ana (analyst) may not do this: it needs the admin role."},
		{"unknown type", AdminUser, http.MethodGet, "/api/v1/module-types/nope", nil, 404, "There is no module type nope in this organisation."},
		{"delete a built-in", AdminUser, http.MethodDelete, "/api/v1/module-types/" + TypeIDESA, nil, 400, "Email Security Appliance is built into the console: it cannot be deleted"},
		{"instance of an unknown type", AdminUser, http.MethodPost, "/api/v1/modules",
			ModuleRequest{Kind: module.KindRelay, TypeID: "3e4f5a6b-0000-4000-8000-000000000000"}, 400,
			"type_id 3e4f5a6b-0000-4000-8000-000000000000 is not a module type of this organisation: see GET /api/v1/module-types"},
		// Another organisation sees none of this one's types.
		{"other org: get", "bob", http.MethodGet, "/api/v1/module-types/" + mt.ID, nil, 404, "There is no module type " + mt.ID + " in this organisation."},
		{"other org: delete", "bob", http.MethodDelete, "/api/v1/module-types/" + mt.ID, nil, 404, "There is no module type " + mt.ID + " in this organisation."},
		{"other org: instance", "bob", http.MethodPost, "/api/v1/modules", ModuleRequest{TypeID: mt.ID, Settings: json.RawMessage(`{"custom_key":"k"}`)}, 400,
			`unknown module kind ""`},
		{"other org: instance of relay kind", "bob", http.MethodPost, "/api/v1/modules",
			ModuleRequest{Kind: module.KindRelay, TypeID: mt.ID, Settings: json.RawMessage(`{"custom_key":"k"}`)}, 400,
			"type_id " + mt.ID + " is not a module type of this organisation"},
	}
	if _, err := tc.createUser(ctx, tc.org.ID, "ana", records.RoleAnalyst, adminPass); err != nil {
		t.Fatal(err)
	}
	other := tc.newOrgAdmin(t, "Second", "bob")
	for _, tt := range errorTests {
		status, body := tc.adminAs(t, tt.user, adminPass, tt.method, tt.path, tt.body)
		if got := decode[APIError](t, body).Error; status != tt.wantStatus || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s %s = %d %q, want %d %q", tt.name, tt.method, tt.path, status, got, tt.wantStatus, tt.want)
		}
	}
	status, body = tc.adminAs(t, "bob", adminPass, http.MethodGet, "/api/v1/module-types", nil)
	for _, x := range decode[[]ModuleTypeRecord](t, body) {
		if x.ID == mt.ID {
			t.Errorf("organisation %s lists the type of another: %+v", other.Name, x)
		}
	}

	// The kind may be left out when the type names it; a type in use stays.
	status, body = tc.admin(t, http.MethodPost, "/api/v1/modules", ModuleRequest{TypeID: mt.ID, Settings: json.RawMessage(`{"custom_key":"k"}`)})
	in := decode[ModuleInstance](t, body)
	if status != 201 || in.Kind != module.KindRelay || in.TypeID != mt.ID || in.Name != "Abuse" {
		t.Fatalf("create an instance of the type = %d %s", status, body)
	}
	status, body = tc.admin(t, http.MethodDelete, "/api/v1/module-types/"+mt.ID, nil)
	if want := "module type " + mt.ID + " is the type of module instances of this organisation: delete them first"; status != 409 || decode[APIError](t, body).Error != want {
		t.Errorf("delete a type in use = %d %s, want 409 %q", status, body, want)
	}
	if status, body := tc.admin(t, http.MethodDelete, "/api/v1/modules/"+in.ID, nil); status != 204 {
		t.Fatalf("delete the instance = %d %s", status, body)
	}
	if status, body := tc.admin(t, http.MethodDelete, "/api/v1/module-types/"+mt.ID, nil); status != 204 {
		t.Errorf("delete the type = %d %s, want 204", status, body)
	}
	if status, _ := tc.admin(t, http.MethodGet, "/api/v1/module-types/"+mt.ID, nil); status != 404 {
		t.Errorf("GET the deleted type = %d, want 404", status)
	}
}

// TestRegisteredTypeInstance adds an instance of a registered type whose
// relay takes RS256 configuration tokens, checks every settings error,
// and investigates through it: the relay gets the instance's values as
// claims, and only the routes the type lists.
func TestRegisteredTypeInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rl := startTestRelay(t)
	tc := startRelayConsole(t, nil)
	rec := relayType("Abuse Intel", rl.URL(), "health", "observe/observables")
	rec["capabilities"] = []any{map[string]any{"id": "observe", "description": "Sightings"}}
	addField(rec, map[string]any{"key": "custom_mode", "type": "options", "label": "Mode",
		"options": []any{map[string]any{"value": "fast", "label": "Fast"}, map[string]any{"value": "deep", "label": "Deep"}}})
	addField(rec, map[string]any{"key": "custom_verbose", "type": "boolean", "label": "Verbose"})
	mt := tc.register(t, rec)

	create := func(settings string) (int, []byte) {
		return tc.admin(t, http.MethodPost, "/api/v1/modules", ModuleRequest{Kind: module.KindRelay, TypeID: mt.ID, Settings: json.RawMessage(settings)})
	}
	errorTests := []struct {
		name, settings, want string
	}{
		{"no key", `{}`, "module settings: settings.custom_key (API Key): is required"},
		{"empty key", `{"custom_key": ""}`, "settings.custom_key (API Key): is required"},
		{"key not a string", `{"custom_key": 5}`, "settings.custom_key (API Key): want a string"},
		{"long key", fmt.Sprintf(`{"custom_key": %q}`, strings.Repeat("k", 4097)), "settings.custom_key (API Key): is 4097 characters long, at most 4096 are allowed"},
		{"limit not a number", `{"custom_key": "k", "custom_CTR_ENTITIES_LIMIT": "many"}`, "settings.custom_CTR_ENTITIES_LIMIT (Entities Limit): want a whole number"},
		{"not an option", `{"custom_key": "k", "custom_mode": "slow"}`, `settings.custom_mode (Mode): "slow" is not one of its options: want one of fast, deep`},
		{"not a boolean", `{"custom_key": "k", "custom_verbose": "perhaps"}`, "settings.custom_verbose (Verbose): want true or false"},
		{"unknown field", `{"custom_key": "k", "url": "https://elsewhere.example"}`, "settings.url: the module type Abuse Intel has no such field"},
		{"not an object", `[1]`, "settings must be a JSON object"},
	}
	for _, tt := range errorTests {
		status, body := create(tt.settings)
		if got := decode[APIError](t, body).Error; status != 400 || !strings.Contains(got, tt.want) {
			t.Errorf("create with %s = %d %q, want 400 %q", tt.name, status, got, tt.want)
		}
	}

	status, body := create(`{"custom_key": "3f6c-upstream", "custom_mode": "deep", "custom_verbose": "true"}`)
	in := decode[ModuleInstance](t, body)
	if status != 201 || in.Name != "Abuse Intel" || in.TypeID != mt.ID ||
		string(in.Settings) != `{"custom_CTR_ENTITIES_LIMIT":100,"custom_mode":"deep","custom_verbose":true}` ||
		!slices.Equal(in.SecretsSet, []string{"custom_key"}) {
		t.Fatalf("create = %d %s, want the settings with the default, without the key", status, body)
	}
	raw, err := tc.store.Instance(ctx, tc.org.ID, in.ID)
	if err != nil || strings.Contains(string(raw.Settings), "3f6c-upstream") || !strings.Contains(string(raw.Settings), `"custom_key":"`+sealedPrefix) {
		t.Errorf("stored settings = %s, %v; want the key sealed", raw.Settings, err)
	}

	tok := tc.token(t, tc.org.ID, "enrich")
	obs := []map[string]string{{"type": "ip", "value": "203.0.113.25"}}
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/observe/observables", tok, obs)
	env := decode[struct {
		Data   []ModuleResult `json:"data"`
		Errors []ModuleError  `json:"errors"`
	}](t, body)
	i := slices.IndexFunc(env.Data, func(r ModuleResult) bool { return r.InstanceID == in.ID })
	if status != 200 || len(env.Errors) != 0 || i < 0 || env.Data[i].TypeID != mt.ID || env.Data[i].Module != "Abuse Intel" ||
		!strings.Contains(string(env.Data[i].Data["sightings"]), "203.0.113.25") {
		t.Fatalf("observe = %d %s, want the relay's sighting with the instance's ids", status, body)
	}
	calls := rl.callsTo("observe/observables")
	if len(calls) != 1 {
		t.Fatalf("relay observe calls = %d, want 1", len(calls))
	}
	c := calls[0].Claims
	wantClaims := map[string]any{"key": "3f6c-upstream", "CTR_ENTITIES_LIMIT": "100", "mode": "deep", "verbose": "true",
		"jwks_host": strings.TrimPrefix(tc.url, "http://"), "aud": rl.URL()}
	for k, v := range wantClaims {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v (claims %v)", k, c[k], v, c)
		}
	}

	// deliberate is not in the type's supported-apis: the relay is not called.
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/deliberate/observables", tok, obs)
	if status != 200 || strings.Contains(string(body), in.ID) || len(rl.callsTo("deliberate/observables")) != 0 {
		t.Errorf("deliberate = %d %s, relay calls %v; want the instance left out", status, body, rl.paths())
	}
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/health/"+in.ID, tok, nil)
	if status != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("health = %d %s", status, body)
	}

	// An update without the key keeps it; a value left out is gone.
	status, body = tc.admin(t, http.MethodPut, "/api/v1/modules/"+in.ID, ModuleRequest{Settings: json.RawMessage(`{"custom_mode": "fast"}`)})
	if up := decode[ModuleInstance](t, body); status != 200 || string(up.Settings) != `{"custom_CTR_ENTITIES_LIMIT":100,"custom_mode":"fast"}` {
		t.Fatalf("update = %d %s", status, body)
	}
	tc.call(t, http.MethodPost, "/iroh/iroh-enrich/observe/observables", tok, obs)
	calls = rl.callsTo("observe/observables")
	if c := calls[len(calls)-1].Claims; c["key"] != "3f6c-upstream" || c["mode"] != "fast" || c["verbose"] != nil {
		t.Errorf("claims after update = %v, want the stored key, mode fast and no verbose", c)
	}
	if n := len(rl.callsTo("tiles")); n != 0 {
		t.Errorf("the relay got %d tiles calls; its type does not list tiles", n)
	}

	// Investigate names the module's type.
	q, err := observable.ParseQuery(`ip:"203.0.113.25"`)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := uiData{tc.Console}.Investigate(ctx, tc.org.ID, q)
	if err != nil {
		t.Fatal(err)
	}
	j := slices.IndexFunc(inv.Modules, func(m ui.ModuleResult) bool { return m.InstanceID == in.ID })
	if j < 0 || inv.Modules[j].TypeName != "Abuse Intel" || len(inv.Modules[j].Errors) != 0 {
		t.Errorf("Investigate modules = %+v, want Abuse Intel's result named by its type", inv.Modules)
	}
}

// TestRegisteredTypeBearer adds an instance of a type with auth-type
// bearer: its one secret field is sent as the static bearer.
func TestRegisteredTypeBearer(t *testing.T) {
	t.Parallel()
	rl := startTestRelay(t)
	rl.static = "tok-7c1e"
	tc := startRelayConsole(t, nil)
	rec := relayType("Static Intel", rl.URL(), "health")
	rec["configuration_spec"] = []any{map[string]any{"key": "custom_token", "type": "password", "label": "Token", "required": true}}
	p := props(rec)
	p["auth-type"] = "bearer"
	delete(p, "configuration-token-alg")
	mt := tc.register(t, rec)
	status, body := tc.admin(t, http.MethodPost, "/api/v1/modules", ModuleRequest{TypeID: mt.ID, Settings: json.RawMessage(`{"custom_token":"tok-7c1e"}`)})
	in := decode[ModuleInstance](t, body)
	if status != 201 || string(in.Settings) != `{}` || !slices.Equal(in.SecretsSet, []string{"custom_token"}) {
		t.Fatalf("create = %d %s", status, body)
	}
	status, body = tc.admin(t, http.MethodGet, "/api/v1/modules/"+in.ID+"/health", nil)
	if h := decode[ModuleHealth](t, body); status != 200 || h.Status != "ok" {
		t.Errorf("health = %d %s, want ok", status, body)
	}
	if calls := rl.callsTo("health"); len(calls) != 1 || calls[0].Bearer != "tok-7c1e" || calls[0].Length != "0" || calls[0].Body != "" {
		t.Errorf("health calls = %+v, want one with the static bearer and no body", calls)
	}
}

// TestGenericRelaySecrets checks that a Relay Module's token is sealed at
// rest, never shown, and kept by an update that leaves it out.
func TestGenericRelaySecrets(t *testing.T) {
	t.Parallel()
	rl := startTestRelay(t)
	rl.static = "tok-generic"
	tc := startRelayConsole(t, nil)
	settings := fmt.Sprintf(`{"url": %q, "auth": {"style": "static", "token": "tok-generic"}, "supported_apis": ["health"]}`, rl.URL())
	status, body := tc.admin(t, http.MethodPost, "/api/v1/modules", ModuleRequest{Kind: module.KindRelay, Name: "Generic", Settings: json.RawMessage(settings)})
	in := decode[ModuleInstance](t, body)
	if status != 201 || strings.Contains(string(body), "tok-generic") || !slices.Equal(in.SecretsSet, []string{"auth.token"}) || in.TypeID == TypeIDRelay {
		t.Fatalf("create = %d %s, want the token write-only and a type id of its own", status, body)
	}
	raw, _ := tc.store.Instance(context.Background(), tc.org.ID, in.ID)
	if strings.Contains(string(raw.Settings), "tok-generic") {
		t.Errorf("stored settings hold the token in clear: %s", raw.Settings)
	}
	update := fmt.Sprintf(`{"url": %q, "auth": {"style": "static"}, "supported_apis": ["health"], "timeout_seconds": 10}`, rl.URL())
	if status, body := tc.admin(t, http.MethodPut, "/api/v1/modules/"+in.ID, ModuleRequest{Settings: json.RawMessage(update)}); status != 200 {
		t.Fatalf("update without the token = %d %s", status, body)
	}
	status, body = tc.admin(t, http.MethodGet, "/api/v1/modules/"+in.ID+"/health", nil)
	if h := decode[ModuleHealth](t, body); status != 200 || h.Status != "ok" {
		t.Errorf("health after the update = %d %s, want ok with the kept token", status, body)
	}
}

// TestDashboardTiles draws the tiles of a relay on the Dashboard page: one
// of each type, a failing tile and a failing module beside the others.
func TestDashboardTiles(t *testing.T) {
	t.Parallel()
	rl := startTestRelay(t)
	rl.hsKey = strings.Repeat("h", 32)
	all := []any{"last_hour", "last_24_hours", "last_7_days", "last_30_days"}
	rl.tiles = []map[string]any{
		{"id": "msgs", "type": "metric_group", "title": "Messages", "periods": all},
		{"id": "notes", "type": "markdown", "title": "Notes"},
		{"id": "status", "type": "horizontal_bar_chart", "title": "By status", "periods": []any{"last_24_hours", "last_7_days"}},
		{"id": "daily", "type": "vertical_bar_chart", "title": "Daily"},
		{"id": "trend", "type": "line_chart", "title": "Trend"},
		{"id": "hourly", "type": "metric_group", "title": "Hourly", "periods": []any{"last_hour"}},
		{"id": "broken", "type": "metric_group", "title": "Broken"},
		{"id": "odd", "type": "vertical_bar_chart", "title": "Odd"},
	}
	rl.tileData = map[string]string{
		"msgs": `"data": [{"id": "total", "label": "Total", "value": 12345, "value-unit": "integer"},
			{"id": "bad", "label": "Malicious", "value": 4.5, "value-unit": "percentage", "link_uri": "https://relay.example/bad"}]`,
		"notes": `"data": ["# Summary", "**3** threats <script>alert(1)</script>", "- one", "- [two](https://example.com/two)", "[bad](javascript:alert(1))"]`,
		"status": `"keys": [{"key": "delivered", "label": "Delivered"}, {"key": "dropped", "label": "Dropped"}],
			"data": [{"key": "mon", "label": "Monday", "value": 7, "values": [{"key": "delivered", "value": 5}, {"key": "dropped", "value": 2}]}]`,
		"daily":  `"data": [{"key": "d1", "label": "Day 1", "value": 3}, {"key": "d2", "label": "Day 2", "value": 5}]`,
		"trend":  `"data": [{"x": 1, "y": 2}]`,
		"hourly": `"data": [{"id": "n", "label": "This hour", "value": 9}]`,
		"odd":    `"data": {"not": "a list"}`,
	}
	down := startTestRelay(t)
	down.fail = http.StatusInternalServerError
	quiet := startTestRelay(t)

	sign := &lateSigner{}
	tc, b := startUIConsole(t, func(o *Options) {
		o.Modules[module.KindRelay] = func(inst module.Instance) (module.Module, error) {
			return relay.New(inst, relay.Options{Signer: sign})
		}
	})
	sign.c = tc.Console
	tileAPIs := []string{"health", "tiles", "tiles/tile", "tiles/tile-data"}
	rec := relayType("Dashboards", rl.URL(), tileAPIs...)
	p := props(rec)
	p["configuration-token-alg"], p["configuration-token-key"] = "HS256", rl.hsKey
	rec["capabilities"] = []any{map[string]any{"id": "tiles", "description": "Mail flow tiles"}}
	mt := tc.register(t, rec)
	add := func(typeID string, settings string) ModuleInstance {
		status, body := tc.admin(t, http.MethodPost, "/api/v1/modules", ModuleRequest{Kind: module.KindRelay, TypeID: typeID, Settings: json.RawMessage(settings)})
		if status != 201 {
			t.Fatalf("create module = %d %s", status, body)
		}
		return decode[ModuleInstance](t, body)
	}
	good := add(mt.ID, `{"custom_key": "k"}`)
	downType := tc.register(t, relayType("Down", down.URL(), tileAPIs...))
	failing := add(downType.ID, `{"custom_key": "k"}`)
	add(tc.register(t, relayType("Quiet", quiet.URL(), "health", "observe/observables")).ID, `{"custom_key": "k"}`)

	res := b.get(t, "/dashboard?period=last_7_days")
	if res.status != http.StatusOK {
		t.Fatalf("GET /dashboard = %d:\n%s", res.status, res.body)
	}
	periods := map[string]string{}
	for _, c := range rl.callsTo("tiles/tile-data") {
		var q struct{ TileID, Period string }
		json.Unmarshal([]byte(strings.NewReplacer("tile_id", "TileID", "period", "Period").Replace(c.Body)), &q)
		periods[q.TileID] = q.Period
		if c.Claims["key"] != "k" {
			t.Errorf("tile-data claims = %v, want the instance's key", c.Claims)
		}
	}
	wantPeriods := map[string]string{"msgs": "last_7_days", "notes": "last_7_days", "status": "last_7_days", "daily": "last_7_days",
		"trend": "last_7_days", "hourly": "last_hour", "broken": "last_7_days", "odd": "last_7_days"}
	if diff := cmp.Diff(wantPeriods, periods); diff != "" {
		t.Errorf("periods of the tile-data calls (-want +got):\n%s", diff)
	}
	if calls := rl.callsTo("tiles"); len(calls) != 1 || calls[0].Length != "0" || calls[0].Body != "" {
		t.Errorf("tiles calls = %+v, want one without a body", calls)
	}
	if n := len(quiet.callsTo("tiles")); n != 0 {
		t.Errorf("the relay whose type lists no tiles got %d tiles calls", n)
	}

	tile := func(id string) string {
		ns := elements(t, res.body, func(n *html.Node) bool { return n.Data == "article" && attrOf(n, "data-tile") == id })
		if len(ns) != 1 {
			t.Fatalf("tile %s: found %d, want 1:\n%s", id, len(ns), res.body)
		}
		return render(ns[0])
	}
	checks := []struct {
		tile string
		want []string
	}{
		{"msgs", []string{`<span class="metric-value">12,345</span>`, `href="https://relay.example/bad"`, `4.5</a><small>%</small>`, "Last 7 days"}},
		{"notes", []string{"<h3>Summary</h3>", "<strong>3</strong> threats &lt;script&gt;alert(1)&lt;/script&gt;", `<li><a href="https://example.com/two"`, "<p>bad</p>"}},
		{"status", []string{`<svg class="chart"`, "<title>Monday — Delivered: 5</title>", "<title>Monday — Dropped: 2</title>", `class="swatch seg-1"></span>Dropped`}},
		{"daily", []string{`<svg class="chart"`, "<title>Day 2: 5</title>"}},
		{"trend", []string{`<pre class="json tile-raw">`, `&#34;x&#34;: 1`}},
		{"hourly", []string{"Last hour (the tile does not offer Last 7 days)", ">9<"}},
		{"broken", []string{"internal error", "upstream failed for broken"}},
		{"odd", []string{"The data of this vertical_bar_chart tile cannot be drawn", `&#34;not&#34;: &#34;a list&#34;`}},
	}
	for _, c := range checks {
		got := tile(c.tile)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("tile %s does not show %q:\n%s", c.tile, w, got)
			}
		}
	}
	if strings.Contains(res.body, "javascript:") || strings.Contains(res.body, "<script>alert") {
		t.Errorf("the dashboard lets a module's markup through:\n%s", res.body)
	}
	sections := elements(t, res.body, func(n *html.Node) bool { return n.Data == "section" && attrOf(n, "aria-label") == failing.Name })
	if len(sections) != 1 || !strings.Contains(render(sections[0]), "module returned HTTP 500") {
		t.Errorf("the failing module is not shown with its error beside the others:\n%s", res.body)
	}

	// One tile: POST /tiles/tile, then its data.
	res = b.get(t, "/dashboard/tile?"+url.Values{"module": {good.ID}, "tile": {"status"}, "period": {"last_24_hours"}}.Encode())
	calls := rl.callsTo("tiles/tile")
	if res.status != 200 || len(calls) != 1 || calls[0].Body != `{"tile_id":"status"}` || !strings.Contains(res.body, "<title>Monday — Delivered: 5</title>") {
		t.Errorf("GET /dashboard/tile = %d, tiles/tile calls %+v:\n%s", res.status, calls, res.body)
	}
	if res := b.get(t, "/dashboard?period=forever"); res.status != 200 || !strings.Contains(res.body, `Period: &#34;forever&#34; is not a period; showing Last 24 hours.`) {
		t.Errorf("GET /dashboard?period=forever = %d, want the period refused beside the tiles:\n%s", res.status, res.body)
	}
	if res := b.get(t, "/dashboard/tile?module="+uuid.NewString()+"&tile=x"); res.status != 404 {
		t.Errorf("a tile of an unknown module = %d, want 404", res.status)
	}
}

// render writes a node back as HTML.
func render(n *html.Node) string {
	var b strings.Builder
	html.Render(&b, n)
	return b.String()
}

// TestUITypedModule registers a module type on Available Module Types,
// adds an instance with the form drawn from its configuration_spec, and
// edits it: the relay gets the values, the key stays write-only.
func TestUITypedModule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rl := startTestRelay(t)
	rl.hsKey = strings.Repeat("u", 32)
	sign := &lateSigner{}
	tc, b := startUIConsole(t, func(o *Options) {
		o.Modules[module.KindRelay] = func(inst module.Instance) (module.Module, error) {
			return relay.New(inst, relay.Options{Signer: sign})
		}
	})
	sign.c = tc.Console
	rec := relayType("Form Intel", rl.URL(), "health", "observe/observables")
	props(rec)["configuration-token-alg"], props(rec)["configuration-token-key"] = "HS256", rl.hsKey
	record, _ := json.Marshal(rec)

	res := b.post(t, "/settings/module-types", url.Values{"record": {`{"title": "Form Intel"}`}})
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "default_name: is required") {
		t.Errorf("register an invalid record = %d, want 400 naming default_name:\n%s", res.status, res.body)
	}
	res = b.post(t, "/settings/module-types", url.Values{"record": {string(record)}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("register = %d:\n%s", res.status, res.body)
	}
	list, err := tc.store.ModuleTypes(ctx, tc.org.ID)
	if err != nil || len(list) != 1 {
		t.Fatalf("module types = %v, %v", list, err)
	}
	typeID := list[0].ID
	page := b.get(t, "/settings/modules/new")
	if cards := elements(t, page.body, func(n *html.Node) bool {
		return n.Data == "a" && attrOf(n, "href") == "/settings/modules/new/type/"+typeID
	}); len(cards) != 1 {
		t.Errorf("Available Module Types does not offer Form Intel:\n%s", page.body)
	}
	form := b.get(t, "/settings/modules/new/type/"+typeID)
	if form.status != 200 || !strings.Contains(form.body, `name="setting_custom_key"`) || !strings.Contains(form.body, `value="100"`) {
		t.Fatalf("typed form = %d:\n%s", form.status, form.body)
	}
	res = b.post(t, "/settings/modules", url.Values{"kind": {"relay"}, "type_id": {typeID}, "name": {"Form Intel"},
		"setting_custom_key": {"form-key"}, "setting_custom_CTR_ENTITIES_LIMIT": {"25"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("add = %d:\n%s", res.status, res.body)
	}
	insts, _ := tc.store.Instances(ctx, tc.org.ID)
	i := slices.IndexFunc(insts, func(in records.Instance) bool { return in.TypeID == typeID })
	if i < 0 || strings.Contains(string(insts[i].Settings), "form-key") {
		t.Fatalf("instances = %+v, want the Form Intel instance with its key sealed", insts)
	}
	id := insts[i].ID
	if page := b.get(t, "/settings/modules"); !strings.Contains(page.body, "Form Intel") || !strings.Contains(page.body, rl.URL()) {
		t.Errorf("Modules does not list the instance with its type and URL:\n%s", page.body)
	}
	res = b.post(t, "/settings/modules/"+id, url.Values{"name": {"Form Intel 2"}, "enabled": {"on"}, "setting_custom_CTR_ENTITIES_LIMIT": {"40"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("edit = %d:\n%s", res.status, res.body)
	}
	if page := b.get(t, "/settings/modules?check="+id); !strings.Contains(page.body, "Healthy") {
		t.Errorf("health after the edit is not Healthy:\n%s", page.body)
	}
	calls := rl.callsTo("health")
	if len(calls) != 1 || calls[0].Claims["key"] != "form-key" || calls[0].Claims["CTR_ENTITIES_LIMIT"] != "40" {
		t.Errorf("health calls = %+v, want the kept key and the new limit", calls)
	}
	if edit := b.get(t, "/settings/modules/"+id); strings.Contains(edit.body, "form-key") || !strings.Contains(edit.body, "A value is stored") {
		t.Errorf("the edit form shows the key or not that one is stored:\n%s", edit.body)
	}
}
