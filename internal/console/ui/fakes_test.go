package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
	"github.com/sightline/sightline/internal/web"
)

var testNow = time.Date(2026, 1, 10, 17, 0, 12, 0, time.UTC)

const testOrg = "org-1"

// fakes implements every data interface in memory.
type fakes struct {
	mu         sync.Mutex
	accounts   map[string]Account
	passwords  map[string]string
	inv        Investigation
	invErr     error
	queries    []observable.Query
	snapshots  []Snapshot
	incidents  []Incident
	judgements []ctim.Judgement
	modules    []Module
	moduleErr  error // returned by CreateModule and UpdateModule
	devices    DeviceList
	devicesErr error
	clients    []APIClient
	n          int
}

func newFakes() *fakes {
	f := &fakes{accounts: map[string]Account{}, passwords: map[string]string{}}
	for _, a := range []Account{{Name: "admin", Role: RoleAdmin}, {Name: "ana", Role: RoleAnalyst}, {Name: "rob", Role: RoleReadOnly}} {
		a.Org, a.Created = testOrg, testNow.Add(-48*time.Hour)
		f.accounts[a.Name] = a
		f.passwords[a.Name] = "password-" + a.Name
	}
	return f
}

func (f *fakes) id(prefix string) string {
	f.n++
	return fmt.Sprintf("%s-%d", prefix, f.n)
}

func (f *fakes) authenticate(ctx context.Context, user, pass string) (web.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.accounts[user]; ok && f.passwords[user] == pass {
		return web.User{Name: a.Name, Role: a.Role}, nil
	}
	return web.User{}, sightline.Errorf(sightline.Unauthorized, "bad credentials")
}

func (f *fakes) Account(ctx context.Context, name string) (Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.accounts[name]; ok {
		return a, nil
	}
	return Account{}, sightline.Errorf(sightline.NotFound, "no user %s", name)
}

func (f *fakes) Accounts(ctx context.Context, org string) ([]Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Account
	for _, a := range f.accounts {
		if a.Org == org {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakes) CreateAccount(ctx context.Context, a Account, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.accounts[a.Name]; ok {
		return sightline.Errorf(sightline.Conflict, "taken")
	}
	f.accounts[a.Name], f.passwords[a.Name] = a, password
	return nil
}

func (f *fakes) SetPassword(ctx context.Context, org, name, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords[name] = password
	return nil
}

func (f *fakes) DeleteAccount(ctx context.Context, org, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.accounts[name]; !ok {
		return sightline.Errorf(sightline.NotFound, "There is no user %s.", name)
	}
	delete(f.accounts, name)
	return nil
}

func (f *fakes) Investigate(ctx context.Context, org string, q observable.Query) (Investigation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	return f.inv, f.invErr
}

func (f *fakes) SaveSnapshot(ctx context.Context, org string, s Snapshot) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Keep it as a store would: through JSON.
	b, err := json.Marshal(s.Investigation)
	if err != nil {
		return "", err
	}
	s.Investigation = Investigation{}
	if err := json.Unmarshal(b, &s.Investigation); err != nil {
		return "", err
	}
	s.ID = f.id("casebook")
	f.snapshots = append(f.snapshots, s)
	return s.ID, nil
}

func (f *fakes) Snapshots(ctx context.Context, org string) ([]Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.snapshots), nil
}

func (f *fakes) Snapshot(ctx context.Context, org, id string) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.snapshots {
		if s.ID == id {
			return s, nil
		}
	}
	return Snapshot{}, sightline.Errorf(sightline.NotFound, "There is no snapshot %s.", id)
}

func (f *fakes) DeleteSnapshot(ctx context.Context, org, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.snapshots)
	f.snapshots = slices.DeleteFunc(f.snapshots, func(s Snapshot) bool { return s.ID == id })
	if len(f.snapshots) == n {
		return sightline.Errorf(sightline.NotFound, "There is no snapshot %s.", id)
	}
	return nil
}

func (f *fakes) Incidents(ctx context.Context, org string) ([]Incident, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.incidents), nil
}

func (f *fakes) Incident(ctx context.Context, org, id string) (Incident, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.incidents {
		if in.ID == id {
			return in, nil
		}
	}
	return Incident{}, sightline.Errorf(sightline.NotFound, "There is no incident %s.", id)
}

func (f *fakes) CreateIncident(ctx context.Context, org string, in Incident) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in.ID = f.id("incident")
	f.incidents = append(f.incidents, in)
	return in.ID, nil
}

func (f *fakes) SetIncidentStatus(ctx context.Context, org, id string, status ctim.IncidentStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.incidents {
		if f.incidents[i].ID == id {
			f.incidents[i].Status = status
			return nil
		}
	}
	return sightline.Errorf(sightline.NotFound, "There is no incident %s.", id)
}

func (f *fakes) Judgements(ctx context.Context, org string) ([]ctim.Judgement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.judgements), nil
}

func (f *fakes) CreateJudgement(ctx context.Context, org string, j ctim.Judgement) (ctim.Judgement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j.Base = ctim.NewBase(ctim.TypeJudgement)
	j.ID = "https://console.example.com/ctia/judgement/" + ctim.NewShortID(ctim.TypeJudgement)
	if err := j.Validate(); err != nil {
		return j, err
	}
	f.judgements = append(f.judgements, j)
	return j, nil
}

func (f *fakes) ExpireJudgement(ctx context.Context, org, id string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.judgements {
		if shortID(f.judgements[i].ID) == id {
			f.judgements[i].ValidTime.EndTime = ctim.NewTime(at)
			return nil
		}
	}
	return sightline.Errorf(sightline.NotFound, "There is no judgement %s.", id)
}

func (f *fakes) DeleteJudgement(ctx context.Context, org, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.judgements = slices.DeleteFunc(f.judgements, func(j ctim.Judgement) bool { return shortID(j.ID) == id })
	return nil
}

func (f *fakes) Modules(ctx context.Context, org string) ([]Module, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.modules), nil
}

func (f *fakes) Module(ctx context.Context, org, id string) (Module, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.modules {
		if m.ID == id {
			m.Secret = ""
			return m, nil
		}
	}
	return Module{}, sightline.Errorf(sightline.NotFound, "There is no module %s.", id)
}

func (f *fakes) CreateModule(ctx context.Context, org string, m Module) (Module, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.moduleErr != nil {
		return Module{}, f.moduleErr
	}
	m.ID = f.id("module")
	f.modules = append(f.modules, m)
	return m, nil
}

func (f *fakes) UpdateModule(ctx context.Context, org string, m Module) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.moduleErr != nil {
		return f.moduleErr
	}
	for i := range f.modules {
		if f.modules[i].ID == m.ID {
			f.modules[i] = m
			return nil
		}
	}
	return sightline.Errorf(sightline.NotFound, "There is no module %s.", m.ID)
}

func (f *fakes) DeleteModule(ctx context.Context, org, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.modules = slices.DeleteFunc(f.modules, func(m Module) bool { return m.ID == id })
	return nil
}

func (f *fakes) CheckModule(ctx context.Context, org, id string) (Health, error) {
	if strings.Contains(id, "bad") {
		return Health{Errors: []module.Error{{Code: "health check failed", Message: "device gw2 is offline", Type: "fatal"}}}, nil
	}
	return Health{OK: true}, nil
}

func (f *fakes) Devices(ctx context.Context, org string) (DeviceList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devices, f.devicesErr
}

func (f *fakes) Clients(ctx context.Context, org string) ([]APIClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.clients)
	for i := range out {
		out[i].Secret = ""
	}
	return out, nil
}

func (f *fakes) CreateClient(ctx context.Context, org, name, by string, scopes []string) (APIClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := APIClient{ID: "client-" + f.id("c"), Name: name, Scopes: scopes, Created: testNow, CreatedBy: by, Secret: "s3cr3t-" + name}
	f.clients = append(f.clients, c)
	return c, nil
}

func (f *fakes) RevokeClient(ctx context.Context, org, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clients = slices.DeleteFunc(f.clients, func(c APIClient) bool { return c.ID == id })
	return nil
}

// config wires every fake into a Config.
func (f *fakes) config() Config {
	return Config{Accounts: f, Investigator: f, Snapshots: f, Incidents: f, Judgements: f, Modules: f, Devices: f,
		APIClients: f, ExchangeURL: "https://exchange.example.com/", Authenticate: f.authenticate}
}

// client is a browser signed in to a test server.
type client struct {
	srv *httptest.Server
	c   *http.Client
	tok string
}

type response struct {
	status int
	header http.Header
	body   string
}

func newServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	s, err := web.NewSessions("sl_console", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sessions = s
	cfg.Now = func() time.Time { return testNow }
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(u.Routes())
	t.Cleanup(srv.Close)
	return srv
}

// signIn signs user in with their fake password.
func signIn(t *testing.T, srv *httptest.Server, user string) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{srv: srv, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	login := c.get(t, "/login")
	res := c.post(t, "/login", url.Values{"csrf_token": {formToken(t, login)}, "username": {user}, "passphrase": {"password-" + user}, "next": {"/"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("sign in as %s = %d, want 303:\n%s", user, res.status, res.body)
	}
	c.tok = formToken(t, c.get(t, "/settings/account"))
	return c
}

func (c *client) do(t *testing.T, req *http.Request) response {
	t.Helper()
	res, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (c *client) get(t *testing.T, path string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.do(t, req)
}

// post sends a form; it adds the session's token unless the form has one.
func (c *client) post(t *testing.T, path string, form url.Values) response {
	t.Helper()
	if _, ok := form["csrf_token"]; !ok && c.tok != "" {
		form.Set("csrf_token", c.tok)
	}
	req, err := http.NewRequest(http.MethodPost, c.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(t, req)
}

// follow gets the page a 303 points to.
func (c *client) follow(t *testing.T, res response) response {
	t.Helper()
	if res.status != http.StatusSeeOther {
		t.Fatalf("status = %d, want 303:\n%s", res.status, res.body)
	}
	return c.get(t, res.header.Get("Location"))
}

func parse(t *testing.T, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// find returns the elements for which match is true, in document order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

func byTag(tag string) func(*html.Node) bool { return func(n *html.Node) bool { return n.Data == tag } }

func byID(id string) func(*html.Node) bool {
	return func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id }
}

func hasClass(class string) func(*html.Node) bool {
	return func(n *html.Node) bool { v, _ := attr(n, "class"); return slices.Contains(strings.Fields(v), class) }
}

// text returns the text of n with white space collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
			b.WriteByte(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func texts(ns []*html.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = text(n)
	}
	return out
}

func formToken(t *testing.T, res response) string {
	t.Helper()
	for _, in := range find(parse(t, res.body), byTag("input")) {
		if name, _ := attr(in, "name"); name == "csrf_token" {
			v, _ := attr(in, "value")
			return v
		}
	}
	t.Fatalf("no csrf_token in page:\n%s", res.body)
	return ""
}

// readTestdata reads a file of testdata/.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
