package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/ctim"
)

const adminPass = "correct horse battery"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testConsole struct {
	*Console
	url   string
	clock *clock
	org   records.Organisation // the first organisation
}

// fakeKind is the module kind of fakeModule.
const fakeKind = "fake"

// startConsole runs a console on 127.0.0.1:0 with SQLite in a temporary
// directory, a test clock and the fake module kind; edit changes the
// options first.
func startConsole(t *testing.T, edit func(*Options)) *testConsole {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)}
	opts := Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Now: clk.Now,
		AdminPassword: func() (string, error) { return adminPass, nil },
		Modules:       map[string]Factory{fakeKind: newFake}, ModuleTimeout: 5 * time.Second}
	if edit != nil {
		edit(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	org, err := c.store.OrganisationByName(ctx, "Default")
	if err != nil {
		t.Fatal(err)
	}
	return &testConsole{Console: c, url: "http://" + c.Addr(), clock: clk, org: org}
}

// client creates an API client of org with scope names and returns its id
// and secret.
func (tc *testConsole) client(t *testing.T, orgID string, scopes ...string) (id, secret string) {
	t.Helper()
	cl, err := tc.CreateClient(context.Background(), orgID, "test", "admin", scopes)
	if err != nil {
		t.Fatalf("CreateClient(%v): %v", scopes, err)
	}
	return cl.ID, cl.Secret
}

// token returns an access token of a new client of org with scopes.
func (tc *testConsole) token(t *testing.T, orgID string, scopes ...string) string {
	t.Helper()
	id, secret := tc.client(t, orgID, scopes...)
	status, body, _ := tc.tokenRequest(t, id, secret, true, "client_credentials")
	if status != http.StatusOK {
		t.Fatalf("token: %d %s", status, body)
	}
	var tr TokenResponse
	json.Unmarshal(body, &tr)
	return tr.AccessToken
}

func (tc *testConsole) tokenRequest(t *testing.T, id, secret string, basic bool, grant string) (int, []byte, http.Header) {
	t.Helper()
	form := url.Values{"grant_type": {grant}}
	if !basic {
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	}
	req, _ := http.NewRequest(http.MethodPost, tc.url+"/iroh/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		req.SetBasicAuth(id, secret)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// call sends a request with a bearer token (none when token is "") and a
// JSON body (none when body is nil).
func (tc *testConsole) call(t *testing.T, method, path, token string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, tc.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

// admin sends an admin API request as the user admin.
func (tc *testConsole) admin(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	return tc.adminAs(t, AdminUser, adminPass, method, path, body)
}

func (tc *testConsole) adminAs(t *testing.T, user, pass, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, tc.url+path, rd)
	req.SetBasicAuth(user, pass)
	status, b, _ := do(t, req)
	return status, b
}

// addModule creates a fake module instance with the given behaviour.
func (tc *testConsole) addModule(t *testing.T, name string, f fakeSettings) string {
	t.Helper()
	settings, _ := json.Marshal(f)
	status, body := tc.admin(t, http.MethodPost, "/api/v1/modules",
		ModuleRequest{Kind: fakeKind, TypeID: fakeTypeID, Name: name, Settings: settings})
	if status != http.StatusCreated {
		t.Fatalf("create module %s: %d %s", name, status, body)
	}
	var mi ModuleInstance
	json.Unmarshal(body, &mi)
	return mi.ID
}

// addOrganisation creates another organisation with an admin user.
func (tc *testConsole) addOrganisation(t *testing.T, name, user string) records.Organisation {
	t.Helper()
	ctx := context.Background()
	org := records.Organisation{ID: uuid.NewString(), Name: name, CreatedAt: tc.clock.Now()}
	if err := tc.store.CreateOrganisation(ctx, org); err != nil {
		t.Fatal(err)
	}
	admin, _ := tc.store.User(ctx, AdminUser)
	if err := tc.store.CreateUser(ctx, records.User{Name: user, OrgID: org.ID, Role: records.RoleAdmin,
		PasswordHash: admin.PasswordHash, CreatedAt: org.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	return org
}

// The fake module kind.

const fakeTypeID = "9d3c1c0e-3a43-4e8e-9d6e-1f2b3c4d5e6f"

// fakeSettings choose a fake module's behaviour.
type fakeSettings struct {
	// Mode: "ok" answers at once; "slow" waits for its context; "stuck"
	// ignores its context and never answers in time; "fail" is a
	// transport failure; "errors" reports module errors; "badverdicts"
	// answers verdicts the Python client cannot read; "panic" panics.
	Mode string `json:"mode"`
}

type fakeModule struct{ mode string }

// stuck is closed when the test binary ends; a stuck module waits on it.
var stuck = make(chan struct{})

func newFake(in module.Instance) (module.Module, error) {
	var s fakeSettings
	if err := json.Unmarshal(in.Settings, &s); err != nil {
		return nil, sightline.Errorf(sightline.Invalid, "fake settings: %v", err)
	}
	if s.Mode == "" {
		return nil, sightline.Errorf(sightline.Invalid, "fake settings: mode is required")
	}
	return fakeModule{s.Mode}, nil
}

func (f fakeModule) Supports(route string) bool { return true }

func (f fakeModule) wait(ctx context.Context) (bool, error) {
	switch f.mode {
	case "slow":
		<-ctx.Done()
		return true, ctx.Err()
	case "stuck":
		<-stuck
		return true, nil
	case "fail":
		return true, errors.New("module returned HTTP 502")
	case "panic":
		panic("fake module panic")
	}
	return false, nil
}

func fakeErrs(mode string) []module.Error {
	if mode == "errors" {
		return []module.Error{{Code: "authorization error", Message: "Authorization failed: Wrong JWT structure", Type: "fatal"}}
	}
	return nil
}

func (f fakeModule) Health(ctx context.Context) ([]module.Error, error) {
	if done, err := f.wait(ctx); done {
		return nil, err
	}
	return fakeErrs(f.mode), nil
}

func verdictDocs(obs []ctim.Observable, bad bool) json.RawMessage {
	var docs []any
	for _, o := range obs {
		docs = append(docs, map[string]any{"type": "verdict", "disposition": 2, "disposition_name": "Malicious",
			"observable": o, "valid_time": map[string]any{"start_time": "2026-01-10T08:00:00.000Z"}})
		if bad {
			docs = append(docs, map[string]any{"type": "verdict", "disposition": 2, "observable": map[string]any{"type": o.Type}},
				map[string]any{"type": "verdict", "disposition": 2.5, "observable": o, "valid_time": map[string]any{}},
				map[string]any{"type": "verdict", "disposition": 2, "observable": o})
		}
	}
	b, _ := json.Marshal(map[string]any{"count": len(docs), "docs": docs})
	return b
}

func (f fakeModule) Observe(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	if done, err := f.wait(ctx); done {
		return nil, nil, err
	}
	if f.mode == "errors" {
		return nil, fakeErrs(f.mode), nil
	}
	b, _ := json.Marshal(map[string]any{"count": len(obs), "docs": []any{map[string]any{"type": "sighting", "observables": obs}}})
	return module.Data{"sightings": b}, nil, nil
}

func (f fakeModule) Deliberate(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	if done, err := f.wait(ctx); done {
		return nil, nil, err
	}
	if f.mode == "errors" {
		return nil, fakeErrs(f.mode), nil
	}
	return module.Data{"verdicts": verdictDocs(obs, f.mode == "badverdicts")}, nil, nil
}

func (f fakeModule) Refer(ctx context.Context, obs []ctim.Observable) ([]module.Reference, []module.Error, error) {
	if done, err := f.wait(ctx); done {
		return nil, nil, err
	}
	var refs []module.Reference
	for _, o := range obs {
		refs = append(refs, module.Reference{ID: "ref-" + o.Value, Title: "Search", Description: "Search " + o.Value,
			URL: "https://gw.example/tracking?q=" + url.QueryEscape(o.Value), Categories: []string{"Search"}})
	}
	return refs, fakeErrs(f.mode), nil
}

func (f fakeModule) RespondObservables(ctx context.Context, obs []ctim.Observable) ([]module.Action, []module.Error, error) {
	if done, err := f.wait(ctx); done {
		return nil, nil, err
	}
	var out []module.Action
	for _, o := range obs {
		out = append(out, module.Action{ID: "block-" + string(o.Type), Title: "Block", Description: "Block " + o.Value,
			QueryParams: map[string]string{"observable_type": string(o.Type), "observable_value": o.Value, "list": "blocklist"}})
	}
	return out, fakeErrs(f.mode), nil
}

// triggered records the fake triggers.
var triggered struct {
	sync.Mutex
	calls []map[string]string
}

func (f fakeModule) RespondTrigger(ctx context.Context, actionID string, params map[string]string) ([]module.Error, error) {
	if done, err := f.wait(ctx); done {
		return nil, err
	}
	triggered.Lock()
	p := map[string]string{"action-id": actionID}
	for k, v := range params {
		p[k] = v
	}
	triggered.calls = append(triggered.calls, p)
	triggered.Unlock()
	return fakeErrs(f.mode), nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	close(stuck)
	os.Exit(code)
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func TestIROHErrorTable(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantDesc   string
	}{
		{"invalid", sightline.Errorf(sightline.Invalid, "bad"), 400, "invalid_request", "bad"},
		{"not found", sightline.Errorf(sightline.NotFound, "gone"), 404, "not_found", "gone"},
		{"conflict", sightline.Errorf(sightline.Conflict, "clash"), 409, "conflict", "clash"},
		{"unauthorized", errInvalidToken("JWT expired"), 401, "invalid_token", "JWT expired"},
		{"no jwt", errNoJWT, 401, "invalid_request", "No JWT found in HTTP Authorization header"},
		{"forbidden", sightline.Errorf(sightline.Forbidden, "no"), 403, "forbidden", "no"},
		{"unavailable", sightline.Errorf(sightline.Unavailable, "down"), 503, "service_unavailable", "down"},
		{"internal", errors.New("secret detail"), 500, "unknown-exception", unknownException},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, trace := irohBody(tt.err)
			if status != tt.wantStatus || body["error"] != tt.wantCode || body["error_description"] != tt.wantDesc || body["trace_id"] != trace || trace == "" {
				t.Errorf("irohBody(%v) = %d %v, want %d %s %q with a trace id", tt.err, status, body, tt.wantStatus, tt.wantCode, tt.wantDesc)
			}
		})
	}
}

func TestAPIStatusTable(t *testing.T) {
	tests := []struct {
		kind sightline.Kind
		want int
	}{
		{sightline.Invalid, 400}, {sightline.NotFound, 404}, {sightline.Conflict, 409}, {sightline.Unauthorized, 401},
		{sightline.Forbidden, 403}, {sightline.Unavailable, 503}, {sightline.Internal, 500},
	}
	for _, tt := range tests {
		if got := apiStatus[tt.kind]; got != tt.want {
			t.Errorf("apiStatus[%s] = %d, want %d", tt.kind, got, tt.want)
		}
	}
}

func TestScopeSatisfies(t *testing.T) {
	tests := []struct {
		granted, required string
		want              bool
	}{
		{"enrich:read", "enrich/observables/observe:read", true},
		{"enrich", "enrich/observables/observe:read", true},
		{"enrich:write", "enrich/observables/observe:read", false},
		{"enrichment:read", "enrich/observables/observe:read", false},
		{"inspect:read", "inspect:read", true},
		{"response", "response/trigger:write", true},
		{"private-intel:read", "private-intel", false},
		{"private-intel", "private-intel:read", true},
		{"casebook", "private-intel", false},
		{"", "inspect:read", false},
	}
	for _, tt := range tests {
		if got := scopeSatisfies(tt.granted, tt.required); got != tt.want {
			t.Errorf("scopeSatisfies(%q, %q) = %v, want %v", tt.granted, tt.required, got, tt.want)
		}
	}
}
