package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// esaInvestigation is the seed's verification: the ESA module sighted the
// test message; a relay module timed out beside it.
func esaInvestigation(t testing.TB) Investigation {
	var data module.Data
	if err := json.Unmarshal(readTestdata(t, "esa_data.json"), &data); err != nil {
		t.Fatal(err)
	}
	return Investigation{Modules: []ModuleResult{
		{Module: "esa03", TypeName: "Email Security Appliance", InstanceID: "i-esa", TypeID: "t-esa", Data: data},
		{Module: "Abuse Feed", TypeName: "Relay Module", InstanceID: "i-relay", TypeID: "t-relay",
			Errors: []module.Error{{Code: "service unavailable", Message: "module did not answer within 30 s", Type: "fatal"}}},
	}}
}

func TestInvestigateQueryBox(t *testing.T) {
	srv := newServer(t, newFakes().config())
	c := signIn(t, srv, "rob")
	res := c.get(t, "/investigate")
	if res.status != http.StatusOK {
		t.Fatalf("GET /investigate = %d, want 200", res.status)
	}
	doc := parse(t, res.body)
	boxes := find(doc, byID("q"))
	if len(boxes) != 1 || boxes[0].Data != "textarea" {
		t.Fatalf("query box: found %d elements with id q, want one textarea", len(boxes))
	}
	if got, _ := attr(boxes[0], "placeholder"); got != `email_subject:"test test"` {
		t.Errorf("placeholder = %q, want %q", got, `email_subject:"test test"`)
	}
	if got := texts(find(doc, byTag("button"))); !contains(got, "Investigate") {
		t.Errorf("buttons = %q, want an Investigate button", got)
	}
}

func TestInvestigateResults(t *testing.T) {
	f := newFakes()
	f.inv = esaInvestigation(t)
	srv := newServer(t, f.config())
	c := signIn(t, srv, "ana")
	res := c.get(t, "/investigate?q="+url.QueryEscape(`email_subject:"test test"`))
	if res.status != http.StatusOK {
		t.Fatalf("investigate = %d, want 200:\n%s", res.status, res.body)
	}
	if want := []observable.Observable{{Type: observable.EmailSubject, Value: "test test"}}; !cmp.Equal(f.queries[0].Terms, want) {
		t.Errorf("Investigate got terms %v, want %v", f.queries[0].Terms, want)
	}
	doc := parse(t, res.body)

	counts := map[string]string{}
	for _, li := range find(doc, byTag("li")) {
		if n, l := find(li, hasClass("n")), find(li, hasClass("l")); len(n) == 1 && len(l) == 1 {
			counts[text(l[0])] = text(n[0])
		}
	}
	wantCounts := map[string]string{"Targets": "1", "Observables": "1", "Indicators": "0", "Domains": "0",
		"File Hashes": "0", "IP Addresses": "0", "URLs": "0", "Modules": "1"}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("counts row (-want +got):\n%s", diff)
	}

	tables := find(doc, hasClass("sightings"))
	if len(tables) != 1 {
		t.Fatalf("found %d sightings tables, want 1", len(tables))
	}
	if got, want := texts(find(tables[0], byTag("th"))), []string{"Module", "Observed", "Description", "Confidence", "Severity", "Details"}; !cmp.Equal(got, want) {
		t.Errorf("sightings columns = %q, want %q", got, want)
	}
	row := find(tables[0], byTag("tr"))[1]
	cells := texts(find(row, byTag("td")))
	wantCells := []string{"esa03 — Email Security Appliance", "9 hours ago", "Incoming message (Delivered) testingBren@cisco.com", "High", "Low", "JSON"}
	if !cmp.Equal(cells, wantCells) {
		t.Errorf("sighting row = %q, want %q", cells, wantCells)
	}
	if pre := find(doc, hasClass("json")); len(pre) != 1 || !strings.Contains(text(pre[0]), `"title": "Incoming message (Delivered)"`) {
		t.Errorf("details: want the CTIM document as indented JSON, got %q", texts(pre))
	}

	env := find(doc, hasClass("env"))
	if len(env) != 1 || !strings.HasPrefix(text(env[0]), "My Environment 1 First seen 9 hours ago") {
		t.Errorf("My Environment panel = %q", texts(env))
	}
	if v := texts(find(doc, hasClass("verdict"))); !cmp.Equal(v, []string{"Suspicious"}) {
		t.Errorf("verdicts = %q, want [Suspicious]", v)
	}

	// The relay module's timeout is shown beside the ESA's results.
	mods := find(doc, hasClass("mod"))
	if got := texts(mods); len(got) != 2 || !strings.Contains(got[0], "1 sighting · 1 verdict") ||
		!strings.Contains(got[1], "Abuse Feed") || !strings.Contains(got[1], "module did not answer within 30 s") {
		t.Errorf("modules panel = %q, want esa03 with its sighting and Abuse Feed with its timeout", got)
	}

	// The relations graph draws the message and what it relates; it is the
	// page's only picture (the Settings gear is the top bar's).
	svg := find(find(doc, byTag("main"))[0], byTag("svg"))
	if len(svg) != 1 {
		t.Fatalf("found %d svg, want the relations graph", len(svg))
	}
	labels := texts(find(svg[0], byTag("text")))
	for _, want := range []string{"Sent_By", "Sent_To", "Received_From", "Contains", "mgmt01@cisco.com", "203.0.113.25", "Cisco MID"} {
		if !contains(labels, want) {
			t.Errorf("graph texts %q lack %q", labels, want)
		}
	}
	if nodes := find(svg[0], hasClass("n-queried")); len(nodes) != 1 {
		t.Errorf("graph marks %d nodes as queried, want 1", len(nodes))
	}
	// Analysts get the actions.
	for _, want := range []string{"Save Snapshot", "Create Incident from sightings"} {
		if !contains(texts(find(doc, byTag("button"))), want) {
			t.Errorf("no %q button", want)
		}
	}
}

func TestInvestigateErrors(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		invErr error
		status int
		banner string
	}{
		{"unterminated quote", `email_subject:"test test`, nil, http.StatusBadRequest, `Query error — unterminated quote in email_subject:"test test at position 1`},
		{"unknown type", `emial_subject:"x"`, nil, http.StatusBadRequest, `Query error — unknown observable type`},
		{"nothing to investigate", `hello world`, nil, http.StatusBadRequest, `Query error — no observables found in "hello world"`},
		{"invalid from the core", `ip:"4.2.2.2"`, sightline.Errorf(sightline.Invalid, "too many observables"), http.StatusBadRequest, "Query error — too many observables"},
		{"core failure", `ip:"4.2.2.2"`, sightline.Errorf(sightline.Unavailable, "the module store is down"), http.StatusServiceUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakes()
			f.invErr = tt.invErr
			c := signIn(t, newServer(t, f.config()), "rob")
			res := c.get(t, "/investigate?q="+url.QueryEscape(tt.query))
			if res.status != tt.status {
				t.Fatalf("investigate %q = %d, want %d:\n%s", tt.query, res.status, tt.status, res.body)
			}
			if tt.banner == "" {
				return
			}
			banners := texts(find(parse(t, res.body), hasClass("banner-error")))
			if len(banners) != 1 || !strings.HasPrefix(banners[0], tt.banner) {
				t.Errorf("investigate %q banners = %q, want one starting %q", tt.query, banners, tt.banner)
			}
		})
	}
}

func TestSnapshotSaveOpenDelete(t *testing.T) {
	f := newFakes()
	f.inv = esaInvestigation(t)
	c := signIn(t, newServer(t, f.config()), "ana")
	res := c.follow(t, c.post(t, "/snapshots", url.Values{"q": {`email_subject:"test test"`}, "name": {"Seed check"}}))
	if res.status != http.StatusOK {
		t.Fatalf("open snapshot = %d:\n%s", res.status, res.body)
	}
	if len(f.snapshots) != 1 || f.snapshots[0].Author != "ana" || f.snapshots[0].Query != `email_subject:"test test"` {
		t.Fatalf("snapshots = %+v, want one by ana", f.snapshots)
	}
	doc := parse(t, res.body)
	if h := texts(find(doc, byTag("h1"))); !cmp.Equal(h, []string{"Snapshot: Seed check"}) {
		t.Errorf("title = %q", h)
	}
	if !strings.Contains(res.body, "Incoming message (Delivered)") || !strings.Contains(res.body, "module did not answer within 30 s") {
		t.Error("the snapshot does not show the saved sighting and module error")
	}
	list := c.get(t, "/snapshots")
	if !strings.Contains(list.body, "Seed check") {
		t.Errorf("snapshot list lacks the snapshot:\n%s", list.body)
	}
	c.follow(t, c.post(t, "/snapshots/"+f.snapshots[0].ID+"/delete", url.Values{}))
	if len(f.snapshots) != 0 {
		t.Errorf("after delete, %d snapshots remain", len(f.snapshots))
	}
}

func TestIncidentFromSightings(t *testing.T) {
	f := newFakes()
	f.inv = esaInvestigation(t)
	c := signIn(t, newServer(t, f.config()), "ana")
	res := c.follow(t, c.post(t, "/incidents", url.Values{"q": {`email_subject:"test test"`}, "title": {"Phish wave"}}))
	if len(f.incidents) != 1 {
		t.Fatalf("incidents = %d, want 1", len(f.incidents))
	}
	in := f.incidents[0]
	if in.Title != "Phish wave" || in.Status != "New" || in.Severity != ctim.SeverityLow || len(in.Sightings) != 1 || in.Author != "ana" {
		t.Errorf("incident = %+v, want New, Low, one sighting, by ana", in)
	}
	if !strings.Contains(res.body, "Incoming message (Delivered)") {
		t.Errorf("incident page lacks its sighting:\n%s", res.body)
	}
	res = c.follow(t, c.post(t, "/incidents/"+in.ID+"/status", url.Values{"status": {"Open: Investigating"}}))
	if f.incidents[0].Status != "Open: Investigating" || !strings.Contains(res.body, "The incident&#39;s status is now Open: Investigating.") {
		t.Errorf("status = %q, want Open: Investigating with a success banner", f.incidents[0].Status)
	}
	res = c.follow(t, c.post(t, "/incidents/"+in.ID+"/status", url.Values{"status": {"Done"}}))
	if !strings.Contains(res.body, "Status: choose one of the statuses listed.") {
		t.Errorf("an invalid status gives no error banner:\n%s", res.body)
	}

	f.inv = Investigation{}
	res = c.follow(t, c.post(t, "/incidents", url.Values{"q": {`ip:"4.2.2.2"`}}))
	if !strings.Contains(res.body, "found no sightings") || len(f.incidents) != 1 {
		t.Errorf("an incident without sightings: want a banner and no incident, got %d incidents", len(f.incidents))
	}
}

func TestIntelligence(t *testing.T) {
	f := newFakes()
	c := signIn(t, newServer(t, f.config()), "ana")
	res := c.follow(t, c.post(t, "/intelligence", url.Values{"type": {"email"}, "value": {"Phish@Bad.example"},
		"disposition": {"Malicious"}, "reason": {"finance reported it"}, "days": {"7"}}))
	if len(f.judgements) != 1 {
		t.Fatalf("judgements = %d, want 1:\n%s", len(f.judgements), res.body)
	}
	j := f.judgements[0]
	if j.Observable.Value != "Phish@bad.example" || j.Disposition != ctim.Malicious || !j.ValidTime.EndTime.Equal(testNow.AddDate(0, 0, 7)) {
		t.Errorf("judgement = %+v", j)
	}
	row := find(parse(t, res.body), hasClass("judgements"))
	if got := text(row[0]); !strings.Contains(got, "Malicious finance reported it") || !strings.Contains(got, "Active") {
		t.Errorf("judgements table = %q", got)
	}
	res = c.follow(t, c.post(t, "/intelligence/"+shortID(j.ID)+"/expire", url.Values{}))
	if got := text(find(parse(t, res.body), hasClass("judgements"))[0]); !strings.Contains(got, "Expired") {
		t.Errorf("after expiry the table says %q, want Expired", got)
	}
	res = c.post(t, "/intelligence", url.Values{"type": {"ip"}, "value": {"not-an-ip"}, "disposition": {"Clean"}, "days": {"7"}})
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "Observable Value:") || !strings.Contains(res.body, `value="not-an-ip"`) {
		t.Errorf("invalid value = %d, want 400 naming the field and keeping the input:\n%s", res.status, res.body)
	}
}

func TestParseJudgement(t *testing.T) {
	ok := judgementForm{Type: "domain", Value: "Bad.Example", Disposition: "Suspicious", Days: "30"}
	tests := []struct {
		name    string
		edit    func(*judgementForm)
		wantErr string
	}{
		{"valid", func(*judgementForm) {}, ""},
		{"unknown type", func(f *judgementForm) { f.Type = "planet" }, "Observable Type:"},
		{"empty value", func(f *judgementForm) { f.Value = "" }, "Observable Value:"},
		{"bad disposition", func(f *judgementForm) { f.Disposition = "malicious" }, "Disposition:"},
		{"zero days", func(f *judgementForm) { f.Days = "0" }, "Valid For:"},
		{"too many days", func(f *judgementForm) { f.Days = "3651" }, "Valid For:"},
		{"long reason", func(f *judgementForm) { f.Reason = strings.Repeat("x", 1025) }, "Reason:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok
			tt.edit(&f)
			j, err := parseJudgement(f, testNow)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseJudgement(%+v) = %v, want no error", f, err)
				}
				j.Base = ctim.NewBase(ctim.TypeJudgement)
				if err := j.Validate(); err != nil {
					t.Errorf("parseJudgement(%+v) builds an invalid judgement: %v", f, err)
				}
				return
			}
			if sightline.ErrorKind(err) != sightline.Invalid || !strings.HasPrefix(sightline.ErrorMessage(err), tt.wantErr) {
				t.Errorf("parseJudgement(%+v) = %v, want Invalid starting %q", f, err, tt.wantErr)
			}
		})
	}
}

func TestModuleFormDevices(t *testing.T) {
	f := newFakes()
	f.devices = DeviceList{Organisation: "Sourcefire Support", ThreatResponse: true, Devices: []Device{
		{ID: "874141f7-903f-4be9-b14e-45a7f34a2032", Name: "esa03.mex-amp.inlab", Type: "ESA", IP: "127.0.0.1", Status: "Registered"},
		{ID: "5c2e0f3a-0000-4000-8000-000000000001", Name: "sma01", Type: "SMA", IP: "10.0.0.9", Status: "Registered"},
	}}
	c := signIn(t, newServer(t, f.config()), "admin")
	res := c.get(t, "/settings/modules/new/esa")
	if res.status != http.StatusOK {
		t.Fatalf("ESA form = %d", res.status)
	}
	doc := parse(t, res.body)
	if name := find(doc, byID("name")); len(name) != 1 || val(name[0]) != "Email Security Appliance" {
		t.Errorf("Module Name default = %q, want Email Security Appliance", texts(name))
	}
	if tf := find(doc, byID("timeframe")); len(tf) != 1 || val(tf[0]) != "30" {
		t.Errorf("Request Timeframe default: want 30")
	}
	opts := texts(find(find(doc, byID("device"))[0], byTag("option")))
	want := []string{"Choose a device", "esa03.mex-amp.inlab — Type ESA · ID 874141f7-903f-4be9-b14e-45a7f34a2032 · IP Address 127.0.0.1"}
	if !cmp.Equal(opts, want) {
		t.Errorf("Registered Device options = %q, want %q (only ESA devices)", opts, want)
	}
	for _, label := range []string{"Module Name*", "Registered Device*", "Request Timeframe (days)"} {
		if !contains(texts(find(doc, byTag("label"))), label) {
			t.Errorf("no label %q", label)
		}
	}
	if got := texts(find(doc, byTag("button"))); !contains(got, "Save") || !strings.Contains(res.body, ">Cancel</a>") {
		t.Errorf("buttons = %q, want Save and Cancel", got)
	}

	res = c.post(t, "/settings/modules", url.Values{"kind": {"esa"}, "name": {"esa03"}, "device_id": {"874141f7-903f-4be9-b14e-45a7f34a2032"}, "timeframe_days": {""}})
	if res.status != http.StatusSeeOther || len(f.modules) != 1 {
		t.Fatalf("save = %d with %d modules, want 303 and one module:\n%s", res.status, len(f.modules), res.body)
	}
	if m := f.modules[0]; m.Kind != KindESA || m.TimeframeDays != 30 || !m.Enabled || m.DeviceID != "874141f7-903f-4be9-b14e-45a7f34a2032" {
		t.Errorf("module = %+v", m)
	}

	f.moduleErr = sightline.Errorf(sightline.Invalid, "device 874141f7 is not registered in this organisation's exchange")
	res = c.post(t, "/settings/modules", url.Values{"kind": {"esa"}, "name": {"esa04"}, "device_id": {"874141f7"}})
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "is not registered in this organisation&#39;s exchange") || !strings.Contains(res.body, `value="esa04"`) {
		t.Errorf("refused module = %d, want 400 with the core's message and the input kept:\n%s", res.status, res.body)
	}
}

func val(n *html.Node) string { v, _ := attr(n, "value"); return v }

func TestModuleFormThreatResponseOff(t *testing.T) {
	f := newFakes()
	f.devices = DeviceList{Organisation: "Sourcefire Support"}
	c := signIn(t, newServer(t, f.config()), "admin")
	for _, path := range []string{"/settings/modules/new/esa", "/settings/devices"} {
		doc := parse(t, c.get(t, path).body)
		off := find(doc, hasClass("tr-off"))
		if len(off) != 1 {
			t.Fatalf("%s: no Threat Response off message", path)
		}
		got := text(off[0])
		if !strings.Contains(got, "Threat Response is not enabled for organisation Sourcefire Support in the exchange") || !strings.Contains(got, "Cloud Services") {
			t.Errorf("%s: message = %q", path, got)
		}
		links := find(off[0], byTag("a"))
		if len(links) != 1 || attrOf(links[0], "href") != "https://exchange.example.com/" {
			t.Errorf("%s: want a link to the exchange", path)
		}
	}
}

func attrOf(n *html.Node, key string) string { v, _ := attr(n, key); return v }

func TestRelayModule(t *testing.T) {
	f := newFakes()
	c := signIn(t, newServer(t, f.config()), "admin")
	form := url.Values{"kind": {"relay"}, "name": {"Abuse Feed"}, "url": {"https://relay.example.com/"}, "auth_style": {"static"},
		"secret": {"tok"}, "supported_apis": {module.RouteObserve, "bogus"}, "timeout_seconds": {"10"}}
	if res := c.post(t, "/settings/modules", form); res.status != http.StatusSeeOther {
		t.Fatalf("save relay = %d:\n%s", res.status, res.body)
	}
	want := Module{ID: "module-1", Kind: KindRelay, Name: "Abuse Feed", Enabled: true, URL: "https://relay.example.com/", AuthStyle: AuthStatic,
		Secret: "tok", SupportedAPIs: []string{module.RouteObserve}, TimeoutSeconds: 10}
	if diff := cmp.Diff(want, f.modules[0]); diff != "" {
		t.Errorf("relay module (-want +got):\n%s", diff)
	}
	// Editing keeps the secret when the field is left empty, and can disable.
	f.modules[0].HasSecret = true
	form.Set("secret", "")
	form.Del("enabled")
	if res := c.post(t, "/settings/modules/module-1", form); res.status != http.StatusSeeOther {
		t.Fatalf("update relay = %d:\n%s", res.status, res.body)
	}
	if m := f.modules[0]; m.Enabled || m.Secret != "" || !m.HasSecret {
		t.Errorf("updated module = %+v, want disabled with its stored secret kept (empty Secret)", m)
	}
	bad := []struct{ field, value, problem string }{
		{"url", "ftp://x", "URL:"}, {"auth_style", "basic", "Authentication:"}, {"supported_apis", "", "Supported APIs:"},
		{"timeout_seconds", "301", "Timeout (seconds):"}, {"name", "", "Module Name:"},
	}
	for _, b := range bad {
		form := url.Values{"kind": {"relay"}, "name": {"X"}, "url": {"https://relay.example.com/"}, "auth_style": {"config_token"},
			"supported_apis": {module.RouteObserve}}
		form.Set(b.field, b.value)
		res := c.post(t, "/settings/modules", form)
		if res.status != http.StatusBadRequest || !strings.Contains(res.body, b.problem) {
			t.Errorf("relay form with %s=%q = %d, want 400 naming %q", b.field, b.value, res.status, b.problem)
		}
	}
}

func TestModulesListAndCheck(t *testing.T) {
	f := newFakes()
	f.devices = DeviceList{ThreatResponse: true, Devices: []Device{{ID: "d1", Name: "esa03", Type: "ESA", IP: "127.0.0.1"}}}
	f.modules = []Module{{ID: "m-good", Kind: KindESA, TypeName: "Email Security Appliance", Name: "esa03", Enabled: true, DeviceID: "d1"},
		{ID: "m-bad", Kind: KindESA, TypeName: "Email Security Appliance", Name: "esa-old", Enabled: true, DeviceID: "d2"}}
	c := signIn(t, newServer(t, f.config()), "rob")
	doc := parse(t, c.get(t, "/settings/modules?check=all").body)
	rows := texts(find(find(doc, hasClass("modules"))[0], byTag("tr")))[1:]
	if len(rows) != 2 || !strings.Contains(rows[0], "esa03 (ESA, 127.0.0.1) Healthy") || !strings.Contains(rows[1], "Unhealthy health check failed — device gw2 is offline") {
		t.Errorf("module rows = %q", rows)
	}
	if strings.Contains(rows[0], "Delete") {
		t.Error("a read-only user is offered Delete")
	}
	doc = parse(t, c.get(t, "/settings/modules?check=m-good").body)
	rows = texts(find(find(doc, hasClass("modules"))[0], byTag("tr")))[1:]
	if !strings.Contains(rows[0], "Healthy") || !strings.Contains(rows[1], "Not checked") {
		t.Errorf("check one: rows = %q", rows)
	}
}

func TestDevicesPage(t *testing.T) {
	f := newFakes()
	f.devices = DeviceList{Organisation: "Acme", ThreatResponse: true, Devices: []Device{{ID: "d1", Name: "esa03", Type: "ESA", IP: "127.0.0.1", Status: "Registered", Connected: true}}}
	srv := newServer(t, f.config())
	c := signIn(t, srv, "rob")
	doc := parse(t, c.get(t, "/settings/devices").body)
	if got := texts(find(doc, byTag("th"))); !cmp.Equal(got, []string{"Name", "Type", "ID", "IP", "Status"}) {
		t.Errorf("device columns = %q", got)
	}
	if got := texts(find(doc, byTag("td"))); !cmp.Equal(got, []string{"esa03", "ESA", "d1", "127.0.0.1", "Registered Connected"}) {
		t.Errorf("device row = %q", got)
	}
	links := map[string]string{}
	for _, a := range find(doc, byTag("a")) {
		links[text(a)] = attrOf(a, "href")
	}
	if links["Manage Devices"] != "https://exchange.example.com/" || links["Reload Devices"] != "/settings/devices" {
		t.Errorf("Manage Devices → %q, Reload Devices → %q", links["Manage Devices"], links["Reload Devices"])
	}
	f.devicesErr = sightline.Errorf(sightline.Unavailable, "the exchange at https://exchange.example.com failed: connection refused")
	res := c.get(t, "/settings/devices")
	if b := texts(find(parse(t, res.body), hasClass("banner-error"))); len(b) != 1 || !strings.Contains(b[0], "connection refused") {
		t.Errorf("exchange down: banners = %q", b)
	}
}

func TestAPIClientSecretShownOnce(t *testing.T) {
	f := newFakes()
	c := signIn(t, newServer(t, f.config()), "admin")
	res := c.post(t, "/settings/api-clients", url.Values{"name": {"soar"}, "scopes": {"enrich", "inspect", "planets"}})
	if res.status != http.StatusCreated {
		t.Fatalf("create client = %d:\n%s", res.status, res.body)
	}
	if got := f.clients[0].Scopes; !cmp.Equal(got, []string{"inspect", "enrich"}) {
		t.Errorf("scopes = %q, want the known ones in order", got)
	}
	doc := parse(t, res.body)
	secret := find(doc, byID("client-secret"))
	if len(secret) != 1 || val(secret[0]) != "s3cr3t-soar" || val(find(doc, byID("client-id"))[0]) != f.clients[0].ID {
		t.Fatal("the new client's ID and secret are not shown")
	}
	if copyBtns := find(doc, func(n *html.Node) bool { _, ok := attr(n, "data-copy-from"); return ok }); len(copyBtns) != 2 {
		t.Errorf("found %d copy buttons, want 2", len(copyBtns))
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	again := c.get(t, "/settings/api-clients")
	if strings.Contains(again.body, "s3cr3t-soar") || !strings.Contains(again.body, f.clients[0].ID) {
		t.Error("the list shows the secret again, or not the client")
	}
	if res := c.follow(t, c.post(t, "/settings/api-clients", url.Values{"name": {"x"}})); !strings.Contains(res.body, "Scopes: choose at least one.") {
		t.Errorf("no scopes: want an error banner")
	}
	c.follow(t, c.post(t, "/settings/api-clients/"+f.clients[0].ID+"/revoke", url.Values{}))
	if len(f.clients) != 0 {
		t.Errorf("after revoke %d clients, want none", len(f.clients))
	}
}

func TestUsersAndAccount(t *testing.T) {
	f := newFakes()
	srv := newServer(t, f.config())
	admin := signIn(t, srv, "admin")
	res := admin.follow(t, admin.post(t, "/settings/users", url.Values{"name": {"sam"}, "role": {"read-only"}, "password": {"correct horse"}, "confirm": {"correct horse"}}))
	if a, ok := f.accounts["sam"]; !ok || a.Role != RoleReadOnly || a.Org != testOrg {
		t.Fatalf("sam = %+v, want a read-only user of the admin's organisation", a)
	}
	for _, tt := range []struct{ name, role, pw, confirm, problem string }{
		{"sam", "analyst", "correct horse", "correct horse", "a user named sam already exists"},
		{"-x", "analyst", "correct horse", "correct horse", "User Name:"},
		{"tom", "root", "correct horse", "correct horse", "Role:"},
		{"tom", "analyst", "short", "short", "Password:"},
		{"tom", "analyst", "correct horse", "battery staple", "Confirm Password:"},
	} {
		res = admin.follow(t, admin.post(t, "/settings/users", url.Values{"name": {tt.name}, "role": {tt.role}, "password": {tt.pw}, "confirm": {tt.confirm}}))
		if !strings.Contains(res.body, tt.problem) {
			t.Errorf("add user %q/%q: want a banner with %q", tt.name, tt.role, tt.problem)
		}
	}
	if res = admin.follow(t, admin.post(t, "/settings/users/admin/delete", url.Values{})); !strings.Contains(res.body, "You cannot delete yourself.") {
		t.Error("an admin could try to delete themself without an error")
	}

	f.passwords["sam"] = "password-sam" // as signIn knows it
	sam := signIn(t, srv, "sam")
	res = sam.follow(t, sam.post(t, "/settings/account/password", url.Values{"current": {"wrong"}, "password": {"new password"}, "confirm": {"new password"}}))
	if !strings.Contains(res.body, "Current Password: this is not your current password.") {
		t.Error("a wrong current password was not refused")
	}
	res = sam.follow(t, sam.post(t, "/settings/account/password", url.Values{"current": {"password-sam"}, "password": {"new password"}, "confirm": {"new password"}}))
	if f.passwords["sam"] != "new password" || !strings.Contains(res.body, "Your password has been changed.") {
		t.Errorf("password change failed:\n%s", res.body)
	}

	// A deleted user is signed out on their next request.
	admin.follow(t, admin.post(t, "/settings/users/sam/delete", url.Values{}))
	res = sam.get(t, "/investigate")
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/login" {
		t.Errorf("deleted user: GET = %d to %q, want 303 to /login", res.status, res.header.Get("Location"))
	}
}

func TestRoles(t *testing.T) {
	f := newFakes()
	f.inv = esaInvestigation(t)
	srv := newServer(t, f.config())
	users := map[string]*client{"admin": signIn(t, srv, "admin"), "ana": signIn(t, srv, "ana"), "rob": signIn(t, srv, "rob")}
	tests := []struct {
		user, path string
		form       url.Values
		want       int
	}{
		{"rob", "/snapshots", url.Values{"q": {`ip:"4.2.2.2"`}}, http.StatusForbidden},
		{"rob", "/incidents", url.Values{"q": {`ip:"4.2.2.2"`}}, http.StatusForbidden},
		{"rob", "/intelligence", url.Values{}, http.StatusForbidden},
		{"ana", "/snapshots", url.Values{"q": {`ip:"4.2.2.2"`}}, http.StatusSeeOther},
		{"ana", "/intelligence", url.Values{"type": {"ip"}, "value": {"4.2.2.2"}, "disposition": {"Clean"}, "days": {"1"}}, http.StatusSeeOther},
		{"ana", "/settings/modules", url.Values{"kind": {"esa"}}, http.StatusForbidden},
		{"ana", "/settings/api-clients", url.Values{"name": {"x"}, "scopes": {"admin"}}, http.StatusForbidden},
		{"ana", "/settings/users", url.Values{"name": {"eve"}, "role": {"admin"}}, http.StatusForbidden},
		{"rob", "/settings/users/admin/delete", url.Values{}, http.StatusForbidden},
		{"admin", "/settings/api-clients", url.Values{"name": {"x"}, "scopes": {"admin"}}, http.StatusCreated},
	}
	for _, tt := range tests {
		res := users[tt.user].post(t, tt.path, tt.form)
		if res.status != tt.want {
			t.Errorf("%s POST %s = %d, want %d", tt.user, tt.path, res.status, tt.want)
		}
	}
	if _, ok := f.accounts["eve"]; ok || len(f.clients) != 1 {
		t.Error("a refused action took effect")
	}
	for _, path := range []string{"/settings/modules/new", "/settings/modules/new/esa"} {
		if res := users["ana"].get(t, path); res.status != http.StatusForbidden {
			t.Errorf("analyst GET %s = %d, want 403", path, res.status)
		}
	}
	// A read-only user sees the results but not the buttons that act.
	res := users["rob"].get(t, "/investigate?q="+url.QueryEscape(`email_subject:"test test"`))
	if res.status != http.StatusOK || !strings.Contains(res.body, "Incoming message (Delivered)") || strings.Contains(res.body, "Save Snapshot") {
		t.Errorf("read-only investigate = %d, want results without Save Snapshot", res.status)
	}
	if res := users["rob"].get(t, "/settings/api-clients"); strings.Contains(res.body, "Add New Client") {
		t.Error("a read-only user is offered Add New Client")
	}
}

func TestCSRF(t *testing.T) {
	f := newFakes()
	srv := newServer(t, f.config())
	c := signIn(t, srv, "admin")
	tests := []struct{ name, token string }{{"missing", ""}, {"wrong", "not-the-token"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.post(t, "/settings/users", url.Values{"csrf_token": {tt.token}, "name": {"eve"}, "role": {"admin"}, "password": {"password1"}, "confirm": {"password1"}})
			if res.status != http.StatusForbidden {
				t.Errorf("POST with %s token = %d, want 403", tt.name, res.status)
			}
			if _, ok := f.accounts["eve"]; ok {
				t.Error("the forged form created a user")
			}
		})
	}
}

func TestAnonymousRedirected(t *testing.T) {
	srv := newServer(t, newFakes().config())
	c := &client{srv: srv, c: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	for _, path := range []string{"/investigate", "/settings/devices", "/nowhere"} {
		res := c.get(t, path)
		if res.status != http.StatusSeeOther || !strings.HasPrefix(res.header.Get("Location"), "/login") {
			t.Errorf("anonymous GET %s = %d to %q, want 303 to /login", path, res.status, res.header.Get("Location"))
		}
	}
	res := c.get(t, cssPath)
	if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "text/css") {
		t.Errorf("GET %s = %d %q, want the stylesheet", cssPath, res.status, res.header.Get("Content-Type"))
	}
}

func TestUnavailableSources(t *testing.T) {
	f := newFakes()
	c := signIn(t, newServer(t, Config{Accounts: f, Authenticate: f.authenticate}), "admin")
	for _, path := range []string{"/snapshots", "/incidents", "/intelligence", "/settings/modules", "/settings/api-clients", "/investigate?q=ip:1.2.3.4"} {
		if res := c.get(t, path); res.status != http.StatusServiceUnavailable || !strings.Contains(res.body, "is not available on this console.") {
			t.Errorf("GET %s without its source = %d, want 503 saying so", path, res.status)
		}
	}
	if res := c.get(t, "/settings/devices"); !strings.Contains(res.body, "not paired with an exchange") {
		t.Errorf("devices without an exchange: want a banner saying so")
	}
}

func TestAgo(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"}, {59 * time.Second, "just now"}, {time.Minute, "1 minute ago"}, {5 * time.Minute, "5 minutes ago"},
		{9*time.Hour + 59*time.Minute, "9 hours ago"}, {24 * time.Hour, "1 day ago"}, {45 * 24 * time.Hour, "1 month ago"},
		{800 * 24 * time.Hour, "2 years ago"}, {-2 * time.Hour, "in 2 hours"},
	}
	for _, tt := range tests {
		if got := ago(testNow.Add(-tt.d), testNow); got != tt.want {
			t.Errorf("ago(now-%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := ago(time.Time{}, testNow); got != "" {
		t.Errorf("ago(zero) = %q, want empty", got)
	}
}

func TestBuildGraphLayers(t *testing.T) {
	inv := esaInvestigation(t)
	obs := []observable.Observable{{Type: observable.EmailSubject, Value: "test test"}}
	g := buildResult(inv, obs).Graph
	if g == nil {
		t.Fatal("no graph")
	}
	layers := map[string]int{}
	for _, n := range g.Nodes {
		layers[n.Full] = n.layer
	}
	want := map[string]int{`email_subject:"test test"`: 0, `cisco_mid:"8"`: 1, `email:"mgmt01@cisco.com"`: 2,
		`email:"testingBren@cisco.com"`: 2, `ip:"203.0.113.25"`: 2, `file_name:"invoice.pdf"`: 2,
		`sha256:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`: 2}
	if diff := cmp.Diff(want, layers); diff != "" {
		t.Errorf("graph layers (-want +got):\n%s", diff)
	}
	if len(g.Edges) != 6 {
		t.Errorf("graph has %d edges, want the 6 relations", len(g.Edges))
	}
	for _, n := range g.Nodes {
		if n.X < 0 || n.Y < 0 || n.X+nodeW > g.W || n.Y+nodeH > g.H {
			t.Errorf("node %s at (%v,%v) lies outside the %vx%v drawing", n.Full, n.X, n.Y, g.W, g.H)
		}
	}
	if g := buildResult(Investigation{}, obs).Graph; g != nil {
		t.Errorf("graph without relations = %+v, want nil", g)
	}
}
