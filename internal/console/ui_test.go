package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/relay"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/console/ui"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// sightingKind is a module kind whose instances observe one sighting per
// observable, with a title, confidence and severity, and deliberate a
// Malicious verdict for each.
const sightingKind = "sightings"

type sightingModule struct{ fakeModule }

func newSightingModule(module.Instance) (module.Module, error) {
	return sightingModule{fakeModule{"ok"}}, nil
}

func (sightingModule) Observe(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	var docs []any
	for _, o := range obs {
		docs = append(docs, map[string]any{"type": "sighting", "id": ctim.NewTransientID(ctim.TypeSighting),
			"schema_version": ctim.SchemaVersion, "title": "Message delivered to " + o.Value, "confidence": "High",
			"severity": "Medium", "count": 1, "internal": true, "source": "Email Security Appliance",
			"observables": []ctim.Observable{o}, "observed_time": map[string]string{"start_time": "2026-01-10T07:00:00.000Z"}})
	}
	b, _ := json.Marshal(map[string]any{"count": len(docs), "docs": docs})
	return module.Data{"sightings": b}, nil, nil
}

// browser is a web browser signed in to a console's UI.
type browser struct {
	base string
	c    *http.Client
	tok  string // the session's form token
}

type page struct {
	status int
	header http.Header
	body   string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// signIn signs in through the login form and keeps the form token.
func (b *browser) signIn(t *testing.T, user, pass string) {
	t.Helper()
	login := b.get(t, "/login")
	res := b.post(t, "/login", url.Values{"csrf_token": {formToken(t, login)}, "username": {user}, "passphrase": {pass}, "next": {"/"}})
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/" {
		t.Fatalf("sign in as %s = %d to %q, want 303 to /:\n%s", user, res.status, res.header.Get("Location"), res.body)
	}
	b.tok = formToken(t, b.get(t, "/settings/account"))
}

func (b *browser) do(t *testing.T, req *http.Request) page {
	t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: res.StatusCode, header: res.Header, body: string(body)}
}

func (b *browser) get(t *testing.T, path string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

// post sends a form with the session's token unless it has one.
func (b *browser) post(t *testing.T, path string, form url.Values) page {
	t.Helper()
	if _, ok := form["csrf_token"]; !ok {
		form.Set("csrf_token", b.tok)
	}
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(t, req)
}

// follow gets the page a 303 answer points to.
func (b *browser) follow(t *testing.T, res page) page {
	t.Helper()
	if res.status != http.StatusSeeOther {
		t.Fatalf("status = %d, want 303:\n%s", res.status, res.body)
	}
	return b.get(t, res.header.Get("Location"))
}

// elements returns the elements of body for which match is true.
func elements(t *testing.T, body string, match func(*html.Node) bool) []*html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []*html.Node
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
	}
	return out
}

func attrOf(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// textOf returns the text of n with white space collapsed.
func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data + " ")
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func formToken(t *testing.T, p page) string {
	t.Helper()
	ins := elements(t, p.body, func(n *html.Node) bool { return n.Data == "input" && attrOf(n, "name") == "csrf_token" })
	if len(ins) == 0 {
		t.Fatalf("no csrf_token in page (%d):\n%s", p.status, p.body)
	}
	return attrOf(ins[0], "value")
}

// sightingRows returns the cells of the first sightings table's rows:
// module, description, confidence, severity.
func sightingRows(t *testing.T, body string) [][]string {
	t.Helper()
	tables := elements(t, body, func(n *html.Node) bool { return n.Data == "table" && strings.Contains(attrOf(n, "class"), "sightings") })
	if len(tables) == 0 {
		t.Fatalf("no sightings table in page:\n%s", body)
	}
	var rows [][]string
	for n := range tables[0].Descendants() {
		if n.Type != html.ElementNode || n.Data != "tr" || attrOf(n, "class") == "json-row" {
			continue
		}
		var cells []string
		for c := range n.ChildNodes() {
			if c.Type == html.ElementNode && c.Data == "td" {
				cells = append(cells, textOf(c))
			}
		}
		if len(cells) == 6 {
			rows = append(rows, []string{cells[0], cells[2], cells[3], cells[4]})
		}
	}
	return rows
}

// startUIConsole runs a console with the sightings module kind and one
// instance of it, and a browser signed in as admin.
func startUIConsole(t *testing.T, edit func(*Options)) (*testConsole, *browser) {
	t.Helper()
	tc := startConsole(t, func(o *Options) {
		o.Modules[sightingKind] = newSightingModule
		if edit != nil {
			edit(o)
		}
	})
	status, body := tc.admin(t, http.MethodPost, "/api/v1/modules",
		ModuleRequest{Kind: sightingKind, TypeID: fakeTypeID, Name: "esa03", Settings: json.RawMessage(`{}`)})
	if status != http.StatusCreated {
		t.Fatalf("create sightings module: %d %s", status, body)
	}
	b := newBrowser(t, tc.url)
	b.signIn(t, AdminUser, adminPass)
	return tc, b
}

// TestUI drives the web UI of one console, signed in as admin, with the
// sightings module: each subtest leaves the records it made.
func TestUI(t *testing.T) {
	t.Parallel()
	tc, b := startUIConsole(t, nil)
	tests := []struct {
		name string
		run  func(*testing.T, *testConsole, *browser)
	}{
		{"routes", uiRoutes},
		{"session key", uiSessionKeyKept},
		{"casebooks are not snapshots", uiCasebooksAreNotSnapshots},
		{"investigate and snapshot", uiInvestigateAndSnapshot},
		{"incidents and judgements", uiIncidentsAndJudgements},
		{"api client secret shown once", uiAPIClientSecretShownOnce},
		{"accounts", uiAccounts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, tc, b) })
	}
}

const testQuery = `email_subject:"test test"`

func uiInvestigateAndSnapshot(t *testing.T, tc *testConsole, b *browser) {
	res := b.get(t, "/investigate?q="+url.QueryEscape(testQuery))
	if res.status != http.StatusOK {
		t.Fatalf("GET /investigate = %d:\n%s", res.status, res.body)
	}
	want := [][]string{{"esa03", "Message delivered to test test", "High", "Medium"}}
	if diff := cmp.Diff(want, sightingRows(t, res.body)); diff != "" {
		t.Errorf("Investigate %s sightings (-want +got):\n%s", testQuery, diff)
	}

	res = b.post(t, "/snapshots", url.Values{"q": {testQuery}, "name": {"Phishing wave"}})
	loc := res.header.Get("Location")
	if res.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/snapshots/casebook-") {
		t.Fatalf("save snapshot = %d to %q, want 303 to /snapshots/casebook-…:\n%s", res.status, loc, res.body)
	}
	snap := b.follow(t, res)
	if snap.status != http.StatusOK || !strings.Contains(snap.body, "Phishing wave") {
		t.Fatalf("GET %s = %d, want 200 naming the snapshot:\n%s", loc, snap.status, snap.body)
	}
	if diff := cmp.Diff(want, sightingRows(t, snap.body)); diff != "" {
		t.Errorf("snapshot sightings (-want +got):\n%s", diff)
	}
	list := b.get(t, "/snapshots")
	if list.status != http.StatusOK || !strings.Contains(list.body, `href="`+loc+`"`) {
		t.Errorf("GET /snapshots = %d, want a link to %s:\n%s", list.status, loc, list.body)
	}

	// The snapshot is a casebook of the CTIA API, with the observables.
	id := strings.TrimPrefix(loc, "/snapshots/")
	status, body, _ := tc.call(t, http.MethodGet, "/ctia/casebook/"+id, tc.token(t, tc.org.ID, "casebook"), nil)
	cb := decode[ctim.Casebook](t, body)
	wantObs := []ctim.Observable{{Type: "email_subject", Value: "test test"}}
	if status != http.StatusOK || cb.Title != "Phishing wave" || cb.Owner != AdminUser || !cmp.Equal(cb.Observables, wantObs) {
		t.Errorf("GET /ctia/casebook/%s = %d %s, want the snapshot's casebook by admin with %v", id, status, body, wantObs)
	}

	if res := b.post(t, loc+"/delete", url.Values{}); res.status != http.StatusSeeOther {
		t.Fatalf("delete snapshot = %d:\n%s", res.status, res.body)
	}
	if res := b.get(t, loc); res.status != http.StatusNotFound {
		t.Errorf("GET deleted snapshot = %d, want 404", res.status)
	}
}

func uiCasebooksAreNotSnapshots(t *testing.T, tc *testConsole, _ *browser) {
	d := uiData{tc.Console}
	ctx := context.Background()
	// A casebook made through CTIA is not a snapshot.
	tok := tc.token(t, tc.org.ID, "casebook")
	status, body, _ := tc.call(t, http.MethodPost, "/ctia/casebook", tok, map[string]any{"title": "notes",
		"texts": []map[string]string{{"type": "investigate_query", "text": "x"}}})
	if status != http.StatusCreated {
		t.Fatalf("create casebook: %d %s", status, body)
	}
	pid, err := ctim.ParseID(decode[ctim.Casebook](t, body).ID)
	if err != nil {
		t.Fatal(err)
	}
	short := pid.Short
	if list, err := d.Snapshots(ctx, tc.org.ID); err != nil || len(list) != 0 {
		t.Errorf("Snapshots = %v, %v, want none", list, err)
	}
	if _, err := d.Snapshot(ctx, tc.org.ID, short); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("Snapshot(%s) error = %v, want NotFound", short, err)
	}
	if err := d.DeleteSnapshot(ctx, tc.org.ID, short); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("DeleteSnapshot(%s) error = %v, want NotFound", short, err)
	}
	if status, _, _ := tc.call(t, http.MethodGet, "/ctia/casebook/"+short, tok, nil); status != http.StatusOK {
		t.Errorf("the casebook after DeleteSnapshot = %d, want 200", status)
	}
}

func TestUIModuleWithExchange(t *testing.T) {
	t.Parallel()
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
	if err := xadmin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		t.Fatal(err)
	}
	tc, b := startUIConsole(t, func(o *Options) {
		o.ExchangeURL, o.ExchangeAPIKey = xurl, key.Key
		o.Modules[module.KindESA] = esaFake
	})

	form := b.get(t, "/settings/modules/new/esa")
	opts := elements(t, form.body, func(n *html.Node) bool { return n.Data == "option" && attrOf(n, "value") == reg.DeviceID })
	if form.status != http.StatusOK || len(opts) != 1 {
		t.Fatalf("GET /settings/modules/new/esa = %d, want the device %s offered:\n%s", form.status, reg.DeviceID, form.body)
	}

	// The core's validation refuses an unknown device, beside the form.
	res := b.post(t, "/settings/modules", url.Values{"kind": {"esa"}, "name": {"gw1"}, "device_id": {"nope"}})
	if want := "device nope is not registered in this organisation&#39;s exchange"; res.status != http.StatusBadRequest || !strings.Contains(res.body, want) {
		t.Errorf("add a module with an unknown device = %d, want 400 with %q:\n%s", res.status, want, res.body)
	}

	res = b.post(t, "/settings/modules", url.Values{"kind": {"esa"}, "name": {"gw1"}, "device_id": {reg.DeviceID}, "timeframe_days": {"7"}})
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/settings/modules" {
		t.Fatalf("add module = %d to %q:\n%s", res.status, res.header.Get("Location"), res.body)
	}
	list, err := tc.store.Instances(ctx, tc.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got *ModuleInstance
	for _, in := range list {
		if in.Kind == module.KindESA {
			v := instanceView(in)
			got = &v
		}
	}
	if got == nil || got.Name != "gw1" || got.TypeID != TypeIDESA || !got.Enabled ||
		string(got.Settings) != fmt.Sprintf(`{"device_id":%q,"timeframe_days":7}`, reg.DeviceID) {
		t.Fatalf("instances after the form = %+v, want the ESA module gw1 on %s for 7 days", got, reg.DeviceID)
	}
	page := b.follow(t, res)
	if !strings.Contains(page.body, "gw1 (ESA, ") {
		t.Errorf("Modules page does not name the device gw1 (ESA, …):\n%s", page.body)
	}

	// With gw1 taken, the form offers a free name, and a taken one is
	// refused beside the form.
	renamed := renameInstance(t, tc, got.ID, "Email Security Appliance")
	form = b.get(t, "/settings/modules/new/esa")
	if names := elements(t, form.body, func(n *html.Node) bool {
		return n.Data == "input" && attrOf(n, "name") == "name" && attrOf(n, "value") == "Email Security Appliance 2"
	}); len(names) != 1 {
		t.Errorf("Add New Module with the default name taken does not offer \"Email Security Appliance 2\":\n%s", form.body)
	}
	res = b.post(t, "/settings/modules", url.Values{"kind": {"esa"}, "name": {"EMAIL security appliance"}, "device_id": {reg.DeviceID}})
	if want := "already exists in this organisation"; res.status != http.StatusConflict || !strings.Contains(res.body, want) {
		t.Errorf("add a module with a taken name = %d, want 409 with %q:\n%s", res.status, want, res.body)
	}
	renameInstance(t, tc, got.ID, renamed)

	// Edit: rename and disable.
	res = b.post(t, "/settings/modules/"+got.ID, url.Values{"name": {"gw1-edge"}, "device_id": {reg.DeviceID}, "timeframe_days": {"7"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("edit module = %d:\n%s", res.status, res.body)
	}
	in, err := tc.store.Instance(ctx, tc.org.ID, got.ID)
	if err != nil || in.Name != "gw1-edge" || in.Enabled {
		t.Errorf("instance after edit = %+v, %v, want gw1-edge disabled", in, err)
	}

	if res := b.get(t, "/settings/devices"); res.status != http.StatusOK || !strings.Contains(res.body, reg.DeviceID) {
		t.Errorf("GET /settings/devices = %d, want device %s:\n%s", res.status, reg.DeviceID, res.body)
	}
	if res := b.get(t, "/settings/modules?check="+got.ID); res.status != http.StatusOK {
		t.Errorf("health check = %d:\n%s", res.status, res.body)
	}
	if res := b.post(t, "/settings/modules/"+got.ID+"/delete", url.Values{}); res.status != http.StatusSeeOther {
		t.Errorf("delete module = %d:\n%s", res.status, res.body)
	}
	if _, err := tc.store.Instance(ctx, tc.org.ID, got.ID); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("instance after delete: %v, want NotFound", err)
	}
}

func uiAPIClientSecretShownOnce(t *testing.T, tc *testConsole, b *browser) {
	res := b.post(t, "/settings/api-clients", url.Values{"name": {"SOAR"}, "scopes": {"inspect", "enrich"}})
	secrets := elements(t, res.body, func(n *html.Node) bool { return attrOf(n, "id") == "client-secret" })
	if res.status != http.StatusCreated || len(secrets) != 1 {
		t.Fatalf("create client = %d, want 201 with the secret:\n%s", res.status, res.body)
	}
	secret := attrOf(secrets[0], "value")
	clients, err := tc.store.Clients(context.Background(), tc.org.ID)
	clients = slices.DeleteFunc(clients, func(c records.Client) bool { return c.Name != "SOAR" })
	if err != nil || len(clients) != 1 {
		t.Fatalf("clients named SOAR = %v, %v, want one", clients, err)
	}
	if status, body, _ := tc.tokenRequest(t, clients[0].ID, secret, true, "client_credentials"); status != http.StatusOK {
		t.Errorf("token with the secret shown = %d %s, want 200", status, body)
	}
	list := b.get(t, "/settings/api-clients")
	if list.status != http.StatusOK || !strings.Contains(list.body, clients[0].ID) || strings.Contains(list.body, secret) {
		t.Errorf("GET /settings/api-clients = %d, want the client listed without its secret:\n%s", list.status, list.body)
	}
	if res := b.post(t, "/settings/api-clients/"+clients[0].ID+"/revoke", url.Values{}); res.status != http.StatusSeeOther {
		t.Errorf("revoke = %d:\n%s", res.status, res.body)
	}
	if status, _, _ := tc.tokenRequest(t, clients[0].ID, secret, true, "client_credentials"); status != http.StatusUnauthorized {
		t.Errorf("token of a revoked client = %d, want 401", status)
	}
}

func uiAccounts(t *testing.T, tc *testConsole, b *browser) {
	res := b.post(t, "/settings/users", url.Values{"name": {"ana"}, "role": {"analyst"}, "password": {"first password"}, "confirm": {"first password"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("create user = %d:\n%s", res.status, res.body)
	}
	ana := newBrowser(t, tc.url)
	ana.signIn(t, "ana", "first password")
	res = ana.post(t, "/settings/account/password", url.Values{"current": {"first password"}, "password": {"second password"}, "confirm": {"second password"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("change password = %d:\n%s", res.status, res.body)
	}
	if _, err := tc.signIn(context.Background(), "ana", "first password"); sightline.ErrorKind(err) != sightline.Unauthorized {
		t.Errorf("sign in with the old password: %v, want Unauthorized", err)
	}
	u, err := tc.store.User(context.Background(), "ana")
	if err != nil || u.Role != "analyst" || u.OrgID != tc.org.ID {
		t.Errorf("ana after the change = %+v, %v, want an analyst of %s", u, err, tc.org.ID)
	}
	newBrowser(t, tc.url).signIn(t, "ana", "second password")
	// An analyst may not manage API clients.
	if res := ana.post(t, "/settings/api-clients", url.Values{"name": {"x"}, "scopes": {"inspect"}}); res.status != http.StatusForbidden {
		t.Errorf("analyst creates a client = %d, want 403", res.status)
	}
	if res := b.post(t, "/settings/users/ana/delete", url.Values{}); res.status != http.StatusSeeOther {
		t.Fatalf("delete user = %d:\n%s", res.status, res.body)
	}
	if res := ana.get(t, "/investigate"); res.status != http.StatusSeeOther || res.header.Get("Location") != "/login" {
		t.Errorf("deleted user's page = %d to %q, want 303 to /login", res.status, res.header.Get("Location"))
	}
}

func uiIncidentsAndJudgements(t *testing.T, tc *testConsole, b *browser) {
	ctx := context.Background()
	res := b.post(t, "/incidents", url.Values{"q": {testQuery}, "title": {"Phishing"}})
	loc := res.header.Get("Location")
	if res.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/incidents/incident-") {
		t.Fatalf("create incident = %d to %q:\n%s", res.status, loc, res.body)
	}
	id := strings.TrimPrefix(loc, "/incidents/")
	if res := b.post(t, loc+"/status", url.Values{"status": {"Open: Investigating"}}); res.status != http.StatusSeeOther {
		t.Fatalf("set status = %d:\n%s", res.status, res.body)
	}
	d := uiData{tc.Console}
	in, err := d.Incident(ctx, tc.org.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if in.Title != "Phishing" || in.Status != "Open: Investigating" || in.Severity != "Medium" || in.Author != AdminUser ||
		in.Query != testQuery || len(in.Sightings) != 1 || in.Opened.IsZero() {
		t.Errorf("Incident(%s) = %+v, want Phishing, Open: Investigating, Medium, by admin, with its query and 1 sighting", id, in)
	}
	page := b.get(t, loc)
	if diff := cmp.Diff([][]string{{"Email Security Appliance", "Message delivered to test test", "High", "Medium"}}, sightingRows(t, page.body)); diff != "" {
		t.Errorf("incident page sightings (-want +got):\n%s", diff)
	}

	res = b.post(t, "/intelligence", url.Values{"type": {"domain"}, "value": {"evil.example"}, "disposition": {"Malicious"}, "days": {"30"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("create judgement = %d:\n%s", res.status, res.body)
	}
	js, err := d.Judgements(ctx, tc.org.ID)
	if err != nil || len(js) != 1 || js[0].Owner != AdminUser {
		t.Fatalf("Judgements = %+v, %v, want one by admin", js, err)
	}
	short := js[0].ID[strings.LastIndexByte(js[0].ID, '/')+1:]
	if v, ok, err := tc.verdict(ctx, tc.org.ID, js[0].Observable); err != nil || !ok {
		t.Fatalf("verdict before expiry = %v, %v", ok, err)
	} else if v.DispositionName != "Malicious" {
		t.Errorf("verdict = %s, want Malicious", v.DispositionName)
	}
	if res := b.post(t, "/intelligence/"+short+"/expire", url.Values{}); res.status != http.StatusSeeOther {
		t.Fatalf("expire = %d:\n%s", res.status, res.body)
	}
	if _, ok, err := tc.verdict(ctx, tc.org.ID, js[0].Observable); err != nil || ok {
		t.Errorf("verdict after expiry = %v, %v, want none", ok, err)
	}
	if res := b.post(t, "/intelligence/"+short+"/delete", url.Values{}); res.status != http.StatusSeeOther {
		t.Fatalf("delete = %d:\n%s", res.status, res.body)
	}
	if err := d.DeleteJudgement(ctx, tc.org.ID, short); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("DeleteJudgement of a deleted judgement: %v, want NotFound", err)
	}
}

func uiRoutes(t *testing.T, tc *testConsole, _ *browser) {
	b := newBrowser(t, tc.url)
	tests := []struct {
		name, path   string
		wantStatus   int
		wantJSON     bool
		wantLocation string
	}{
		{"unknown iroh", "/iroh/nope", 404, true, ""},
		{"iroh wrong method", "/iroh/iroh-inspect/inspect", 404, true, ""},
		{"unknown ctia", "/ctia/a/b/c/d", 404, true, ""},
		{"unknown well-known", "/.well-known/nope", 404, true, ""},
		{"unknown api", "/api/v1/nope", 404, true, ""},
		{"jwks", "/.well-known/jwks", 200, true, ""},
		{"root needs sign-in", "/", 303, false, "/login?next=%2F"},
		{"page needs sign-in", "/investigate", 303, false, "/login?next=%2Finvestigate"},
		{"login", "/login", 200, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := b.get(t, tt.path)
			isJSON := strings.HasPrefix(res.header.Get("Content-Type"), "application/json")
			if res.status != tt.wantStatus || isJSON != tt.wantJSON || res.header.Get("Location") != tt.wantLocation {
				t.Errorf("GET %s = %d %s to %q, want %d (JSON %v) to %q", tt.path, res.status, res.header.Get("Content-Type"),
					res.header.Get("Location"), tt.wantStatus, tt.wantJSON, tt.wantLocation)
			}
		})
	}
}

func uiSessionKeyKept(t *testing.T, tc *testConsole, _ *browser) {
	ctx := context.Background()
	k1, err := tc.sessionKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := tc.sessionKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) < sessionKeyLen || string(k1) != string(k2) {
		t.Errorf("sessionKey = %d bytes, then another key; want one key of at least %d bytes", len(k1), sessionKeyLen)
	}
}

func TestMergeEnvelopes(t *testing.T) {
	t.Parallel()
	a := ids{"esa03", "inst-a", TypeIDESA}
	pi := ids{PrivateIntelName, InstanceIDPrivateIntel, TypeIDPrivateIntel}
	r := ids{"relay", "inst-r", "type-r"}
	set := func(docs ...string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"count":%d,"docs":[%s]}`, len(docs), strings.Join(docs, ",")))
	}
	fatal := module.Error{Code: "authorization error", Message: "bad JWT", Type: "fatal"}
	observe := Envelope{
		Data:   []ModuleResult{{ids: pi, Data: module.Data{"judgements": set(`{"j":1}`)}}, {ids: a, Data: module.Data{"sightings": set(`{"s":1}`)}}},
		Errors: []ModuleError{{ids: r, Code: fatal.Code, Message: fatal.Message, Type: fatal.Type}},
	}
	deliberate := Envelope{
		Data: []ModuleResult{{ids: pi, Data: module.Data{"verdicts": set(`{"v":1}`), "judgements": set(`{"j":2}`)}},
			{ids: a, Data: module.Data{"verdicts": set(`{"v":2}`)}}},
		Errors: []ModuleError{{ids: r, Code: fatal.Code, Message: fatal.Message, Type: fatal.Type}},
	}
	got := mergeEnvelopes(observe, deliberate)
	want := []ui.ModuleResult{
		{Module: PrivateIntelName, TypeName: PrivateIntelName, InstanceID: InstanceIDPrivateIntel, TypeID: TypeIDPrivateIntel,
			Data: module.Data{"judgements": json.RawMessage(`{"count":2,"docs":[{"j":1},{"j":2}]}`), "verdicts": set(`{"v":1}`)}},
		{Module: "esa03", TypeName: "Email Security Appliance", InstanceID: "inst-a", TypeID: TypeIDESA,
			Data: module.Data{"sightings": set(`{"s":1}`), "verdicts": set(`{"v":2}`)}},
		{Module: "relay", InstanceID: "inst-r", TypeID: "type-r", Errors: []module.Error{fatal}},
	}
	if diff := cmp.Diff(want, got, cmp.Transformer("json", func(m json.RawMessage) string { return string(m) })); diff != "" {
		t.Errorf("mergeEnvelopes (-want +got):\n%s", diff)
	}
}

func TestModuleRequestRelay(t *testing.T) {
	t.Parallel()
	prev := json.RawMessage(`{"url":"https://old.example","auth":{"style":"config_token","alg":"HS256","key":"k1",
		"audience":"aud","claims":{"key":"v"}},"supported_apis":["health"],"timeout_seconds":10}`)
	base := ui.Module{Kind: module.KindRelay, TypeID: "6d2b1b5e-7f3c-4d8e-9a1b-2c3d4e5f6a7b", Name: "r", Enabled: true,
		URL: "https://new.example", SupportedAPIs: []string{"health", "observe/observables"}, TimeoutSeconds: 20}
	with := func(style, secret string) ui.Module { m := base; m.AuthStyle, m.Secret = style, secret; return m }
	tests := []struct {
		name string
		m    ui.Module
		want relay.Auth
	}{
		{"keeps the stored key", with(relay.StyleConfigToken, ""), relay.Auth{Style: "config_token", Alg: "HS256", Key: "k1", Audience: "aud", Claims: map[string]string{"key": "v"}}},
		{"replaces the key", with(relay.StyleConfigToken, "k2"), relay.Auth{Style: "config_token", Alg: "HS256", Key: "k2", Audience: "aud", Claims: map[string]string{"key": "v"}}},
		{"static token", with(relay.StyleStatic, "tok"), relay.Auth{Style: "static", Token: "tok", Audience: "aud", Claims: map[string]string{"key": "v"}}},
		{"new style without secret", with(relay.StyleStatic, ""), relay.Auth{Style: "static", Audience: "aud", Claims: map[string]string{"key": "v"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := moduleRequest(tt.m, prev)
			if err != nil {
				t.Fatal(err)
			}
			var s relay.Settings
			if err := json.Unmarshal(req.Settings, &s); err != nil {
				t.Fatal(err)
			}
			want := relay.Settings{URL: "https://new.example", Auth: tt.want, SupportedAPIs: base.SupportedAPIs, TimeoutSeconds: 20}
			if diff := cmp.Diff(want, s); diff != "" {
				t.Errorf("moduleRequest(%s) settings (-want +got):\n%s", tt.name, diff)
			}
			if req.TypeID != base.TypeID || req.Kind != module.KindRelay || req.Name != "r" || req.Enabled == nil || !*req.Enabled {
				t.Errorf("moduleRequest(%s) = %+v, want kind, type, name and enabled of the form", tt.name, req)
			}
			back := moduleOf(records.Instance{Instance: module.Instance{Kind: req.Kind, TypeID: req.TypeID, Settings: req.Settings}})
			if back.HasSecret != (relaySecret(s.Auth) != "") || back.Secret != "" || back.URL != s.URL || back.TypeName != relayTypeName {
				t.Errorf("moduleOf(%s) = %+v, want the settings back without the secret", tt.name, back)
			}
		})
	}
	if _, err := moduleRequest(ui.Module{Kind: fakeKind}, nil); sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("moduleRequest(kind %s) error = %v, want Invalid", fakeKind, err)
	}
}

// FuzzMergeData merges module output, which is untrusted: a plural that is
// a set in both answers has its counts summed and its documents joined;
// anything else keeps the first answer's value.
func FuzzMergeData(f *testing.F) {
	for _, s := range [][2]string{
		{`{"count":1,"docs":[{}]}`, `{"count":2,"docs":[1,2]}`},
		{`{"count":1,"docs":[{}]}`, `[]`},
		{`nonsense`, `{"count":0,"docs":[]}`},
		{`{"docs":null}`, `{"count":-3}`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, x, y string) {
		a := module.Data{"sightings": json.RawMessage(x)}
		got := mergeData(a, module.Data{"sightings": json.RawMessage(y), "verdicts": json.RawMessage(y)})
		if string(got["verdicts"]) != y {
			t.Fatalf("mergeData(%q, %q) verdicts = %q, want the second answer's", x, y, got["verdicts"])
		}
		type set struct {
			Count int               `json:"count"`
			Docs  []json.RawMessage `json:"docs"`
		}
		var sx, sy, sm set
		if json.Unmarshal([]byte(x), &sx) != nil || json.Unmarshal([]byte(y), &sy) != nil {
			if string(got["sightings"]) != x {
				t.Fatalf("mergeData(%q, %q) sightings = %q, want the first answer's", x, y, got["sightings"])
			}
			return
		}
		if err := json.Unmarshal(got["sightings"], &sm); err != nil || sm.Count != sx.Count+sy.Count || len(sm.Docs) != len(sx.Docs)+len(sy.Docs) {
			t.Fatalf("mergeData(%q, %q) sightings = %q, want count %d and %d docs", x, y, got["sightings"], sx.Count+sy.Count, len(sx.Docs)+len(sy.Docs))
		}
	})
}

// renameInstance renames a module instance in the store and returns its
// previous name.
func renameInstance(t *testing.T, tc *testConsole, id, name string) string {
	t.Helper()
	ctx := context.Background()
	in, err := tc.store.Instance(ctx, tc.org.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	prev := in.Name
	in.Name = name
	if err := tc.store.UpdateInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	return prev
}
