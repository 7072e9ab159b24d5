package ui

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/sightline/sightline"
)

// typeFakes adds module types, the exchange key and dashboards to fakes.
type typeFakes struct {
	*fakes
	tmu         sync.Mutex
	types       []ModuleType
	records     []string
	registerErr error
	exchange    ExchangeStatus
	keys        []string
	dash        Dashboard
	tile        DashboardModule
	asked       []string // the periods and tiles asked for
}

func newTypeFakes() *typeFakes {
	return &typeFakes{fakes: newFakes(), types: []ModuleType{
		{ID: "esa-type", Kind: KindESA, Title: "Email Security Appliance", ShortDescription: "Gateway sightings", BuiltIn: true, Available: true},
		{ID: "sma-type", Kind: KindSMA, Title: "Security Management Appliance", BuiltIn: true, Unavailable: "Not available yet: no manager role."},
		{ID: "relay-type", Kind: KindRelay, Title: "Relay Module", BuiltIn: true, Available: true},
		{ID: "t1", Kind: KindRelay, Title: "Abuse Intel", DefaultName: "Abuse", Available: true, URL: "https://relay.example.com",
			AuthType: "configuration-token", SupportedAPIs: []string{"health", "observe/observables"}, Capabilities: []string{"observe"}, CreatedBy: "admin",
			Fields: []TypeField{
				{Key: "custom_host", Type: "string", Label: "Host", Required: true, Tooltip: "The upstream host"},
				{Key: "custom_key", Type: "api_key", Label: "API Key", Required: true},
				{Key: "custom_limit", Type: "integer", Label: "Entities Limit", Default: "100"},
				{Key: "custom_mode", Type: "options", Label: "Mode", Options: []FieldOption{{"fast", "Fast"}, {"deep", "Deep"}}},
				{Key: "custom_verbose", Type: "boolean", Label: "Verbose"},
				{Key: "custom_gateway", Type: "device", Label: "Gateway"},
			}},
	}}
}

func (f *typeFakes) config() Config {
	cfg := f.fakes.config()
	cfg.ModuleTypes, cfg.ExchangeKeys, cfg.Dashboards = f, f, f
	return cfg
}

func (f *typeFakes) ModuleTypes(ctx context.Context, org string) ([]ModuleType, error) {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	return slices.Clone(f.types), nil
}

func (f *typeFakes) ModuleType(ctx context.Context, org, id string) (ModuleType, error) {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	for _, t := range f.types {
		if t.ID == id {
			return t, nil
		}
	}
	return ModuleType{}, sightline.Errorf(sightline.NotFound, "There is no module type %s.", id)
}

func (f *typeFakes) RegisterModuleType(ctx context.Context, org, by string, record []byte) (ModuleType, error) {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	f.records = append(f.records, string(record))
	if f.registerErr != nil {
		return ModuleType{}, f.registerErr
	}
	t := ModuleType{ID: "t2", Kind: KindRelay, Title: "New Intel", Available: true, CreatedBy: by}
	f.types = append(f.types, t)
	return t, nil
}

func (f *typeFakes) DeleteModuleType(ctx context.Context, org, id string) error {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	if id == "t1" {
		return sightline.Errorf(sightline.Conflict, "module type t1 is the type of module instances of this organisation: delete them first")
	}
	f.types = slices.DeleteFunc(f.types, func(t ModuleType) bool { return t.ID == id })
	return nil
}

func (f *typeFakes) ExchangeStatus(ctx context.Context, org string) (ExchangeStatus, error) {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	return f.exchange, nil
}

func (f *typeFakes) SetExchangeKey(ctx context.Context, org, key string) error {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	f.keys = append(f.keys, key)
	f.exchange.KeySet = true
	return nil
}

func (f *typeFakes) Dashboard(ctx context.Context, org, period string) (Dashboard, error) {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	f.asked = append(f.asked, period)
	d := f.dash
	d.Period = period
	return d, nil
}

func (f *typeFakes) Tile(ctx context.Context, org, instanceID, tileID, period string) (DashboardModule, error) {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	f.asked = append(f.asked, instanceID+"/"+tileID+"/"+period)
	if instanceID != f.tile.InstanceID {
		return DashboardModule{}, sightline.Errorf(sightline.NotFound, "There is no module instance %s.", instanceID)
	}
	return f.tile, nil
}

func TestModuleTypesPage(t *testing.T) {
	f := newTypeFakes()
	c := signIn(t, newServer(t, f.config()), "admin")
	res := c.get(t, "/settings/modules/new")
	if res.status != http.StatusOK {
		t.Fatalf("GET /settings/modules/new = %d", res.status)
	}
	doc := parse(t, res.body)
	type card struct{ Title, Add, Note string }
	var got []card
	for _, s := range find(doc, hasClass("kind")) {
		cd := card{Title: text(find(s, byTag("h2"))[0])}
		for _, a := range find(s, byTag("a")) {
			if text(a) == "Add New Module" {
				cd.Add = attrOf(a, "href")
			}
		}
		if u := find(s, hasClass("unavailable")); len(u) == 1 {
			cd.Note = text(u[0])
		}
		got = append(got, cd)
	}
	want := []card{
		{"Email Security Appliance", "/settings/modules/new/esa", ""},
		{"Security Management Appliance", "", "Not available yet: no manager role."},
		{"Relay Module", "/settings/modules/new/relay", ""},
		{"Abuse Intel", "/settings/modules/new/type/t1", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("type cards (-want +got):\n%s", diff)
	}
	if !strings.Contains(res.body, `action="/settings/module-types/t1/delete"`) || strings.Contains(res.body, `action="/settings/module-types/esa-type/delete"`) {
		t.Errorf("Delete is offered for the registered type only")
	}

	// A refused record is shown again beside its problem.
	f.registerErr = sightline.Errorf(sightline.Invalid, "module type: properties.url: is required")
	res = c.post(t, "/settings/module-types", url.Values{"record": {`{"title": "X"}`}})
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "properties.url: is required") ||
		!strings.Contains(res.body, `{&#34;title&#34;: &#34;X&#34;}</textarea>`) {
		t.Errorf("refused record = %d, want 400 with the problem and the record kept:\n%s", res.status, res.body)
	}
	res = c.post(t, "/settings/module-types", url.Values{"record": {"  "}})
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "Module Type Record: paste the module type&#39;s JSON record.") {
		t.Errorf("empty record = %d:\n%s", res.status, res.body)
	}
	f.registerErr = nil
	res = c.post(t, "/settings/module-types", url.Values{"record": {`{"title": "New Intel"}`}})
	if res.status != http.StatusSeeOther || !strings.Contains(c.follow(t, res).body, "Module type New Intel has been registered.") {
		t.Errorf("register = %d:\n%s", res.status, res.body)
	}
	if len(f.records) != 2 || f.records[1] != `{"title": "New Intel"}` {
		t.Errorf("records posted to the core = %q", f.records)
	}
	res = c.post(t, "/settings/module-types/t1/delete", url.Values{})
	if page := c.follow(t, res); !strings.Contains(page.body, "delete them first") {
		t.Errorf("delete a type in use: want the core's conflict shown:\n%s", page.body)
	}
	if res := c.post(t, "/settings/module-types/t2/delete", url.Values{}); res.status != http.StatusSeeOther || len(f.types) != 4 {
		t.Errorf("delete = %d with %d types left, want 303 and 4", res.status, len(f.types))
	}
	if res := signIn(t, newServer(t, f.config()), "ana").post(t, "/settings/module-types", url.Values{"record": {"{}"}}); res.status != http.StatusForbidden {
		t.Errorf("an analyst registers a type = %d, want 403", res.status)
	}
}

func TestTypedModuleForm(t *testing.T) {
	f := newTypeFakes()
	f.devices = DeviceList{ThreatResponse: true, Devices: []Device{{ID: "d1", Name: "gw1", Type: "ESA", IP: "192.0.2.1"}}}
	c := signIn(t, newServer(t, f.config()), "admin")
	res := c.get(t, "/settings/modules/new/type/t1")
	if res.status != http.StatusOK {
		t.Fatalf("typed form = %d:\n%s", res.status, res.body)
	}
	doc := parse(t, res.body)
	input := func(name string) *html.Node {
		ns := find(doc, func(n *html.Node) bool { return attrOf(n, "name") == name })
		if len(ns) != 1 {
			t.Fatalf("form field %s: found %d", name, len(ns))
		}
		return ns[0]
	}
	if n := input("name"); val(n) != "Abuse" {
		t.Errorf("Module Name = %q, want the type's default name", val(n))
	}
	checks := []struct{ name, tag, typ string }{
		{"setting_custom_host", "input", ""}, {"setting_custom_key", "input", "password"}, {"setting_custom_limit", "input", ""},
		{"setting_custom_mode", "select", ""}, {"setting_custom_verbose", "input", "checkbox"}, {"setting_custom_gateway", "select", ""},
	}
	for _, ck := range checks {
		if n := input(ck.name); n.Data != ck.tag || attrOf(n, "type") != ck.typ {
			t.Errorf("%s = <%s type=%q>, want <%s type=%q>", ck.name, n.Data, attrOf(n, "type"), ck.tag, ck.typ)
		}
	}
	if val(input("setting_custom_limit")) != "100" || val(input("type_id")) != "t1" {
		t.Errorf("the default value and the type id are not in the form")
	}
	if _, ok := attr(input("setting_custom_key"), "required"); !ok {
		t.Errorf("the API Key of a new module is not required")
	}
	if opts := texts(find(input("setting_custom_gateway"), byTag("option"))); !slices.Contains(opts, "gw1 — Type ESA · ID d1 · IP Address 192.0.2.1") {
		t.Errorf("device options = %q", opts)
	}
	if !strings.Contains(res.body, "The upstream host") {
		t.Errorf("the tooltip is not shown")
	}

	form := url.Values{"kind": {"relay"}, "type_id": {"t1"}, "name": {"Abuse"}, "setting_custom_host": {" upstream.example "},
		"setting_custom_key": {"k3y"}, "setting_custom_limit": {"50"}, "setting_custom_mode": {"deep"}, "setting_custom_verbose": {"on"},
		"setting_custom_gateway": {"d1"}}
	missing := url.Values{}
	for k, v := range form {
		missing[k] = v
	}
	missing.Del("setting_custom_key")
	if res := c.post(t, "/settings/modules", missing); res.status != http.StatusBadRequest || !strings.Contains(res.body, "API Key: required.") {
		t.Errorf("without the key = %d, want 400 naming API Key:\n%s", res.status, res.body)
	}
	missing = url.Values{}
	for k, v := range form {
		missing[k] = v
	}
	missing.Set("setting_custom_host", " ")
	if res := c.post(t, "/settings/modules", missing); res.status != http.StatusBadRequest || !strings.Contains(res.body, "Host: required.") {
		t.Errorf("without the host = %d, want 400 naming Host", res.status)
	}
	if res := c.post(t, "/settings/modules", form); res.status != http.StatusSeeOther {
		t.Fatalf("save = %d:\n%s", res.status, res.body)
	}
	want := Module{ID: "module-1", Kind: KindRelay, TypeID: "t1", TypeName: "Abuse Intel", Name: "Abuse", Enabled: true, Typed: true,
		Values: map[string]string{"custom_host": "upstream.example", "custom_key": "k3y", "custom_limit": "50", "custom_mode": "deep",
			"custom_verbose": "true", "custom_gateway": "d1"}}
	if diff := cmp.Diff(want, f.modules[0]); diff != "" {
		t.Errorf("module sent to the core (-want +got):\n%s", diff)
	}

	// Editing: the stored key is not shown, need not be sent again, and an
	// unchecked box is false.
	f.modules[0] = Module{ID: "module-1", Kind: KindRelay, TypeID: "t1", TypeName: "Abuse Intel", Name: "Abuse", Enabled: true, Typed: true,
		Values: map[string]string{"custom_host": "upstream.example", "custom_verbose": "true"}, SecretsSet: []string{"custom_key"}}
	res = c.get(t, "/settings/modules/module-1")
	doc = parse(t, res.body)
	key := input("setting_custom_key")
	if _, req := attr(key, "required"); req || val(key) != "" || !strings.Contains(res.body, "A value is stored; leave empty to keep it.") {
		t.Errorf("edit form: the stored key must be write-only and optional:\n%s", res.body)
	}
	if _, checked := attr(input("setting_custom_verbose"), "checked"); !checked {
		t.Errorf("edit form: Verbose is not checked")
	}
	edit := url.Values{"name": {"Abuse 2"}, "enabled": {"on"}, "setting_custom_host": {"other.example"}}
	if res := c.post(t, "/settings/modules/module-1", edit); res.status != http.StatusSeeOther {
		t.Fatalf("edit = %d:\n%s", res.status, res.body)
	}
	if got := f.modules[0].Values; !cmp.Equal(got, map[string]string{"custom_host": "other.example", "custom_verbose": "false"}) {
		t.Errorf("edited values = %v, want the host, verbose false and no key", got)
	}
	if res := c.get(t, "/settings/modules/new/type/sma-type"); res.status != http.StatusBadRequest {
		t.Errorf("a form for a built-in type by id = %d, want 400", res.status)
	}
	if res := c.get(t, "/settings/modules/new/type/nope"); res.status != http.StatusNotFound {
		t.Errorf("a form for an unknown type = %d, want 404", res.status)
	}
}

func TestExchangeKeyCard(t *testing.T) {
	f := newTypeFakes()
	f.devices = DeviceList{Organisation: "Acme", ThreatResponse: true}
	f.exchange = ExchangeStatus{URL: "http://exchange.test", Problem: "organisation Acme has no exchange API key"}
	srv := newServer(t, f.config())
	c := signIn(t, srv, "admin")
	res := c.get(t, "/settings/devices")
	card := find(parse(t, res.body), hasClass("exchange-key"))
	if len(card) != 1 || !strings.Contains(text(card[0]), "No key is stored yet.") || !strings.Contains(text(card[0]), "has no exchange API key") {
		t.Fatalf("exchange key card = %q", texts(card))
	}
	if res := c.post(t, "/settings/devices/exchange-key", url.Values{"api_key": {""}}); !strings.Contains(c.follow(t, res).body, "Exchange API Key: paste") {
		t.Errorf("an empty key is not refused")
	}
	res = c.post(t, "/settings/devices/exchange-key", url.Values{"api_key": {" key-1 "}})
	if res.status != http.StatusSeeOther || !slices.Equal(f.keys, []string{"key-1"}) {
		t.Errorf("set key = %d, keys %q; want 303 and key-1", res.status, f.keys)
	}
	if page := c.follow(t, res); strings.Contains(page.body, "key-1") || !strings.Contains(page.body, "A key is stored") {
		t.Errorf("the page after saving shows the key or not that one is stored:\n%s", page.body)
	}
	ro := signIn(t, srv, "rob")
	if body := ro.get(t, "/settings/devices").body; strings.Contains(body, `action="/settings/devices/exchange-key"`) {
		t.Errorf("a read-only user is offered the key form")
	}
	if res := ro.post(t, "/settings/devices/exchange-key", url.Values{"api_key": {"x"}}); res.status != http.StatusForbidden {
		t.Errorf("a read-only user sets the key = %d, want 403", res.status)
	}
}
