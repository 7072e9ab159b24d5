package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
	"github.com/sightline/sightline/internal/password"
	"github.com/sightline/sightline/internal/tunnel"
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

type testExchange struct {
	*Exchange
	url   string
	clock *clock
	admin *exchangeclient.Client
	anon  *exchangeclient.Client
}

// startExchange runs an exchange on 127.0.0.1:0 with SQLite in a temporary
// directory and a test clock; edit changes the options first.
func startExchange(t *testing.T, edit func(*Options)) *testExchange {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)}
	opts := Options{Region: "americas", Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		AdminPassword: func() (string, error) { return adminPass, nil }, Now: clk.Now,
		RegisterBurst: 1000, TunnelHeartbeat: time.Second, ProxyTimeout: 5 * time.Second}
	if edit != nil {
		edit(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e, err := Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	url := "http://" + e.Addr()
	return &testExchange{Exchange: e, url: url, clock: clk,
		admin: exchangeclient.NewAdmin(url, nil, AdminUser, adminPass), anon: exchangeclient.New(url, nil)}
}

func (x *testExchange) token(t *testing.T, devices int) exchangeclient.Token {
	t.Helper()
	tok, err := x.admin.TokenCreate(context.Background(), devices, "1h")
	if err != nil {
		t.Fatalf("TokenCreate(%d, 1h): %v", devices, err)
	}
	return tok
}

func registration(token, host string) exchangeclient.Registration {
	return exchangeclient.Registration{Token: token, Hostname: host, Type: "ESA", Version: "15.0.1-104",
		Serial: "4C4C-1234", ConnectorVersion: "1.2.0"}
}

func (x *testExchange) register(t *testing.T, token, host string) exchangeclient.Registered {
	t.Helper()
	out, err := x.anon.Register(context.Background(), registration(token, host))
	if err != nil {
		t.Fatalf("Register(%s): %v", host, err)
	}
	return out
}

// lastAudit returns the newest audit entry of the organisation ("" for none).
func (x *testExchange) lastAudit(t *testing.T, orgID string) registry.AuditEntry {
	t.Helper()
	es, err := x.store.Audit(context.Background(), registry.AuditQuery{OrgIDs: []string{orgID}, Limit: 1})
	if err != nil || len(es) == 0 {
		t.Fatalf("Audit(%q) = %v, %v; want an entry", orgID, es, err)
	}
	return es[0]
}

func (x *testExchange) org(t *testing.T, name string) registry.Organisation {
	t.Helper()
	o, err := x.store.OrganisationByName(context.Background(), name)
	if err != nil {
		t.Fatalf("OrganisationByName(%s): %v", name, err)
	}
	return o
}

// addOrganisation creates an organisation with a user and returns an admin
// client for that user and an API key client.
func (x *testExchange) addOrganisation(t *testing.T, name, user string) (admin, key *exchangeclient.Client) {
	t.Helper()
	ctx := context.Background()
	org := registry.Organisation{ID: uuid.NewString(), Name: name, CreatedAt: x.clock.Now()}
	if err := x.store.CreateOrganisation(ctx, org); err != nil {
		t.Fatal(err)
	}
	hash, _ := password.Hash(adminPass)
	if err := x.store.CreateUser(ctx, registry.User{Name: user, OrgID: org.ID, PasswordHash: hash, CreatedAt: org.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	admin = exchangeclient.NewAdmin(x.url, nil, user, adminPass)
	k, err := admin.APIKeyCreate(ctx, "console")
	if err != nil {
		t.Fatalf("APIKeyCreate: %v", err)
	}
	return admin, exchangeclient.NewKey(x.url, nil, k.Key)
}

func (x *testExchange) adminKey(t *testing.T) *exchangeclient.Client {
	t.Helper()
	key, err := x.CreateAPIKey(context.Background(), "Default", "console")
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	return exchangeclient.NewKey(x.url, nil, key)
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{sightline.Errorf(sightline.Invalid, "x"), http.StatusBadRequest},
		{sightline.Errorf(sightline.NotFound, "x"), http.StatusNotFound},
		{sightline.Errorf(sightline.Conflict, "x"), http.StatusConflict},
		{sightline.Errorf(sightline.Unauthorized, "x"), http.StatusUnauthorized},
		{sightline.Errorf(sightline.Forbidden, "x"), http.StatusForbidden},
		{sightline.Errorf(sightline.Unavailable, "x"), http.StatusServiceUnavailable},
		{sightline.Errorf(sightline.Internal, "x"), http.StatusInternalServerError},
		{fmt.Errorf("wrapped: %w", sightline.Errorf(sightline.NotFound, "x")), http.StatusNotFound},
		{errors.New("plain"), http.StatusInternalServerError},
		{&sightline.Error{Kind: "odd"}, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		if got := statusOf(tt.err); got != tt.want {
			t.Errorf("statusOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	// Every kind has a row.
	for _, k := range []sightline.Kind{sightline.Invalid, sightline.NotFound, sightline.Conflict, sightline.Unauthorized,
		sightline.Forbidden, sightline.Unavailable, sightline.Internal} {
		if _, ok := apiStatus[k]; !ok {
			t.Errorf("apiStatus has no row for kind %s", k)
		}
	}
}

func TestOpenChecksOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"bad region", Options{Region: "MARS", DataDir: t.TempDir()}, `region "MARS"`},
		{"bad minimum version", Options{MinVersion: "latest", DataDir: t.TempDir()}, `minimum version "latest"`},
		{"no store", Options{}, "no data directory"},
		{"no admin password", Options{DataDir: t.TempDir(), Addr: "127.0.0.1:0"}, "no administrator password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%+v) = %v, want an error containing %q", tt.opts, err, tt.want)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()

	tok, err := x.admin.TokenCreate(ctx, 3, "2d")
	if err != nil {
		t.Fatalf("TokenCreate: %v", err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(tok.Token) {
		t.Errorf("TokenCreate token = %q, want 32 hexadecimal characters", tok.Token)
	}
	now := x.clock.Now()
	want := exchangeclient.Token{ID: tok.ID, Region: "AMERICAS", Devices: 3, Remaining: 3, State: "Active",
		CreatedAt: now, ExpiresAt: now.Add(48 * time.Hour), CreatedBy: "admin"}
	list, err := x.admin.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	if diff := cmp.Diff([]exchangeclient.Token{want}, list); diff != "" {
		t.Errorf("Tokens() mismatch (-want +got):\n%s", diff)
	}
	stored, err := x.store.TokenByHash(ctx, registry.Hash(tok.Token))
	if err != nil || stored.Hash == tok.Token {
		t.Errorf("stored token = %+v, %v; want it found by its hash and not kept in clear", stored, err)
	}
	if e := x.lastAudit(t, x.org(t, "Default").ID); e.Action != registry.ActionTokenCreate || e.Target != tok.ID {
		t.Errorf("audit after TokenCreate = %+v, want %s of %s", e, registry.ActionTokenCreate, tok.ID)
	}

	if err := x.admin.TokenRevoke(ctx, tok.ID); err != nil {
		t.Fatalf("TokenRevoke: %v", err)
	}
	list, _ = x.admin.Tokens(ctx)
	if len(list) != 1 || list[0].State != "Revoked" || !list[0].RevokedAt.Equal(now) {
		t.Errorf("Tokens() after revoke = %+v, want the token Revoked at %v", list, now)
	}
	if err := x.admin.TokenRevoke(ctx, uuid.NewString()); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("TokenRevoke(unknown) = %v, want NotFound", err)
	}

	bad := []struct {
		name    string
		devices int
		expiry  string
		want    string
	}{
		{"no devices", 0, "1h", "choose from 1 to 100"},
		{"too many devices", 101, "1h", "choose from 1 to 100"},
		{"odd expiry", 1, "3h", `token expiry "3h"`},
		{"six days", 1, "6d", `token expiry "6d"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := x.admin.TokenCreate(ctx, tt.devices, tt.expiry)
			if sightline.ErrorKind(err) != sightline.Invalid || !strings.Contains(sightline.ErrorMessage(err), tt.want) {
				t.Errorf("TokenCreate(%d, %q) = %v, want Invalid containing %q", tt.devices, tt.expiry, err, tt.want)
			}
		})
	}

	wrong := exchangeclient.NewAdmin(x.url, nil, "admin", "wrong")
	if _, err := wrong.TokenCreate(ctx, 1, ""); sightline.ErrorKind(err) != sightline.Unauthorized {
		t.Errorf("TokenCreate with a wrong passphrase = %v, want Unauthorized", err)
	}
	if _, err := x.adminKey(t).TokenCreate(ctx, 1, ""); sightline.ErrorKind(err) != sightline.Unauthorized {
		t.Errorf("TokenCreate with an API key = %v, want Unauthorized (users only)", err)
	}
}

func TestParseExpiry(t *testing.T) {
	var values []string
	for _, x := range Expiries {
		values = append(values, x.Value)
	}
	want := []string{"1h", "2h", "4h", "6h", "8h", "12h", "1d", "2d", "3d", "4d", "5d"}
	if diff := cmp.Diff(want, values); diff != "" {
		t.Errorf("Expiries mismatch (-want +got):\n%s", diff)
	}
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", time.Hour}, {"1h", time.Hour}, {"12H", 12 * time.Hour}, {" 5d ", 120 * time.Hour},
	}
	for _, tt := range tests {
		if got, err := ParseExpiry(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseExpiry(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	tok := x.token(t, 2)
	region, err := x.anon.Region(ctx)
	if err != nil || region.Region != "AMERICAS" {
		t.Fatalf("Region() = %+v, %v, want AMERICAS", region, err)
	}

	out := x.register(t, tok.Token, "esa1.example.com")
	if _, err := uuid.Parse(out.DeviceID); err != nil {
		t.Errorf("Register device_id = %q, want a UUID", out.DeviceID)
	}
	if out.Credential == "" || out.Region != "AMERICAS" || out.TunnelURL != "ws://"+x.Addr()+"/api/v1/tunnel" {
		t.Errorf("Register() = %+v, want a credential, region AMERICAS and tunnel URL ws://%s/api/v1/tunnel", out, x.Addr())
	}
	list, err := x.admin.Devices(ctx)
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	want := exchangeclient.Devices{Organisation: "Default", Region: "AMERICAS", Devices: []exchangeclient.Device{{
		ID: out.DeviceID, Type: "ESA", Name: "esa1.example.com", Version: "15.0.1-104", Serial: "4C4C-1234",
		ConnectorVersion: "1.2.0", Status: "Registered", IP: "127.0.0.1", CreatedAt: x.clock.Now()}}}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("Devices() mismatch (-want +got):\n%s", diff)
	}
	d, err := x.store.DeviceByCredential(ctx, registry.Hash(out.Credential))
	if err != nil || d.ID != out.DeviceID || d.CredentialHash == out.Credential {
		t.Errorf("DeviceByCredential = %+v, %v; want device %s stored with the credential's hash", d, err, out.DeviceID)
	}
	e := x.lastAudit(t, x.org(t, "Default").ID)
	if e.Action != registry.ActionRegister || e.Outcome != registry.OutcomeSuccess || e.Source != "127.0.0.1" {
		t.Errorf("audit after Register = %+v, want a successful registration from 127.0.0.1", e)
	}
	toks, _ := x.admin.Tokens(ctx)
	if toks[0].Remaining != 1 {
		t.Errorf("token Remaining after one registration = %d, want 1", toks[0].Remaining)
	}

	// The device deregisters itself.
	if err := x.anon.Deregister(ctx, out.Credential); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if list, _ := x.admin.Devices(ctx); len(list.Devices) != 0 {
		t.Errorf("Devices() after Deregister = %+v, want none", list.Devices)
	}
	if err := x.anon.Deregister(ctx, out.Credential); sightline.ErrorKind(err) != sightline.Unauthorized {
		t.Errorf("Deregister(again) = %v, want Unauthorized", err)
	}
}

func TestRegisterRefusals(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	orgID := x.org(t, "Default").ID

	expired := x.token(t, 5)
	x.clock.Add(time.Hour) // expired's hour is over
	usedUp := x.token(t, 1)
	x.register(t, usedUp.Token, "first.example.com")
	revoked := x.token(t, 5)
	if err := x.admin.TokenRevoke(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	fresh := x.token(t, 5)

	tests := []struct {
		name   string
		token  string
		orgID  string // where the audit entry goes
		reason string
	}{
		{"unknown", strings.Repeat("ab", 16), "", "unknown token"},
		{"mistyped", "not-a-token", "", "malformed token"},
		{"expired", expired.Token, orgID, "expired token " + expired.ID},
		{"used up", usedUp.Token, orgID, "token " + usedUp.ID + " used up"},
		{"revoked", revoked.Token, orgID, "revoked token " + revoked.ID},
		{"upper case unknown", strings.ToUpper(strings.Repeat("cd", 16)), "", "unknown token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := x.anon.Register(ctx, registration(tt.token, "esa-"+tt.name))
			if sightline.ErrorKind(err) != sightline.Unauthorized || sightline.ErrorMessage(err) != MsgInvalidToken {
				t.Errorf("Register(%s token) = %v, want Unauthorized %q", tt.name, err, MsgInvalidToken)
			}
			e := x.lastAudit(t, tt.orgID)
			if e.Action != registry.ActionRegister || e.Outcome != registry.OutcomeFailure || !strings.HasPrefix(e.Detail, tt.reason) {
				t.Errorf("audit of a %s token = %+v, want a failed registration with detail starting %q", tt.name, e, tt.reason)
			}
		})
	}
	if list, _ := x.admin.Devices(ctx); len(list.Devices) != 1 {
		t.Errorf("Devices() = %d devices, want only the first registration", len(list.Devices))
	}

	bad := []struct {
		name string
		edit func(*exchangeclient.Registration)
		want string
	}{
		{"no hostname", func(r *exchangeclient.Registration) { r.Hostname = " " }, "hostname"},
		{"bad type", func(r *exchangeclient.Registration) { r.Type = "WSA" }, `type "WSA"`},
		{"no version", func(r *exchangeclient.Registration) { r.Version = "" }, "version"},
		{"control character", func(r *exchangeclient.Registration) { r.Serial = "a\nb" }, "serial"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			reg := registration(fresh.Token, "esa.example.com")
			tt.edit(&reg)
			_, err := x.anon.Register(ctx, reg)
			if sightline.ErrorKind(err) != sightline.Invalid || !strings.Contains(sightline.ErrorMessage(err), tt.want) {
				t.Errorf("Register(%s) = %v, want Invalid naming %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestRegisterOtherRegion(t *testing.T) {
	t.Parallel()
	// Two regions sharing one store (as replicas of a misconfigured
	// deployment might): a EUROPE token is refused by AMERICAS.
	eu := startExchange(t, func(o *Options) { o.Region = "EUROPE" })
	tok := eu.token(t, 1)
	us := startExchange(t, func(o *Options) { o.Store = eu.store; o.DataDir = "" })
	_, err := us.anon.Register(context.Background(), registration(tok.Token, "esa1"))
	if sightline.ErrorMessage(err) != MsgInvalidToken {
		t.Errorf("Register(EUROPE token at AMERICAS) = %v, want %q", err, MsgInvalidToken)
	}
	e := us.lastAudit(t, us.org(t, "Default").ID)
	if !strings.Contains(e.Detail, "another region: issued by EUROPE, presented to AMERICAS") {
		t.Errorf("audit detail = %q, want the regions named", e.Detail)
	}
}

func TestRegisterMinVersion(t *testing.T) {
	t.Parallel()
	x := startExchange(t, func(o *Options) { o.MinVersion = "14.0" })
	tok := x.token(t, 5)
	ctx := context.Background()
	if r, err := x.anon.Region(ctx); err != nil || r.MinVersion != "14.0" {
		t.Errorf("Region() = %+v, %v, want min_version 14.0", r, err)
	}
	tests := []struct {
		version string
		ok      bool
	}{
		{"13.5.1-277", false},
		{"13", false},
		{"dev", false},
		{"14.0", true},
		{"14.0.0-692", true},
		{"15.0.1", true},
	}
	for _, tt := range tests {
		reg := registration(tok.Token, "esa-"+tt.version)
		reg.Version = tt.version
		_, err := x.anon.Register(ctx, reg)
		if tt.ok && err != nil {
			t.Errorf("Register(version %s) = %v, want success", tt.version, err)
		}
		if !tt.ok && (sightline.ErrorKind(err) != sightline.Forbidden || !strings.Contains(sightline.ErrorMessage(err), "minimum this exchange accepts, 14.0")) {
			t.Errorf("Register(version %s) = %v, want Forbidden naming the minimum 14.0", tt.version, err)
		}
	}
	if toks, _ := x.admin.Tokens(ctx); toks[0].Remaining != 2 {
		t.Errorf("token Remaining = %d, want 2: refused versions must not use the token", toks[0].Remaining)
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v, min string
		want   bool
	}{
		{"15.0.0-104", "15.0", true},
		{"14.9.9", "15.0", false},
		{"15", "15.0.0", true},
		{"0.1.0-dev", "0.1.0", true},
		{"v1.2.3", "1.2.4", false},
		{"1.10", "1.9", true},
		{"", "1", false},
		{"abc", "1", false},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.v, tt.min); got != tt.want {
			t.Errorf("versionAtLeast(%q, %q) = %v, want %v", tt.v, tt.min, got, tt.want)
		}
	}
}

func TestRegisterRateLimit(t *testing.T) {
	t.Parallel()
	x := startExchange(t, func(o *Options) { o.RegisterBurst = 3; o.RegisterInterval = 10 * time.Second })
	reg := registration(strings.Repeat("0", 32), "esa1")
	for i := range 3 {
		if _, err := x.anon.Register(context.Background(), reg); sightline.ErrorMessage(err) != MsgInvalidToken {
			t.Fatalf("attempt %d: Register = %v, want %q", i+1, err, MsgInvalidToken)
		}
	}
	resp, err := http.Post(x.url+"/api/v1/register", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "10" {
		t.Errorf("4th attempt: %s Retry-After %q, want 429 with Retry-After 10", resp.Status, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(body), "Too many registration attempts") {
		t.Errorf("4th attempt body = %s, want it to say too many attempts", body)
	}
	x.clock.Add(10 * time.Second)
	if _, err := x.anon.Register(context.Background(), reg); sightline.ErrorMessage(err) != MsgInvalidToken {
		t.Errorf("after refill: Register = %v, want the token checked again", err)
	}
}

func TestRegisterConcurrently(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	tok := x.token(t, 5)
	const n = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := range n {
		wg.Go(func() {
			_, err := x.anon.Register(context.Background(), registration(tok.Token, fmt.Sprintf("esa%d", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case sightline.ErrorMessage(err) == MsgInvalidToken:
				refused++
			default:
				t.Errorf("Register = %v, want success or %q", err, MsgInvalidToken)
			}
		})
	}
	wg.Wait()
	list, err := x.admin.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ok != 5 || refused != n-5 || len(list.Devices) != 5 {
		t.Errorf("%d parallel registrations with a 5-device token: %d registered, %d refused, %d devices; want 5, %d, 5",
			n, ok, refused, len(list.Devices), n-5)
	}
	// Every refusal is audited as the token used up, whether the store or
	// the check before it found it so.
	a, err := x.admin.Audit(context.Background(), exchangeclient.AuditQuery{Action: registry.ActionRegister,
		Outcome: registry.OutcomeFailure, Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range a.Entries {
		if e.Reason != exchangeclient.ReasonTokenUsedUp || e.TokenID != tok.ID {
			t.Errorf("audit of a refused registration = reason %q, token %q (%s); want %s, %s", e.Reason, e.TokenID, e.Detail,
				exchangeclient.ReasonTokenUsedUp, tok.ID)
		}
	}
	if len(a.Entries) != refused {
		t.Errorf("audit holds %d refused registrations, want %d", len(a.Entries), refused)
	}
}

// device is a registered device running a tunnel Dialer with its own API.
type device struct {
	reg  exchangeclient.Registered
	done chan error
	stop context.CancelFunc
}

// runDevice registers a device with token and runs its tunnel, serving h,
// until the test ends or the exchange rejects it.
func (x *testExchange) runDevice(t *testing.T, token, host string, h http.Handler) *device {
	t.Helper()
	reg := x.register(t, token, host)
	ctx, cancel := context.WithCancel(context.Background())
	d := &device{reg: reg, done: make(chan error, 1), stop: cancel}
	dl := &tunnel.Dialer{URL: reg.TunnelURL, Credential: func() string { return reg.Credential }, Handler: h,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Heartbeat: time.Second}
	go func() { d.done <- dl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-d.done })
	x.waitConnected(t, reg.DeviceID)
	return d
}

// waitConnected waits (bounded) until the hub holds the device's tunnel.
func (x *testExchange) waitConnected(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, ok := x.hub.Connected(id); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s did not connect its tunnel within 10s", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echo is a device API that describes the request it received.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Device", "yes")
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "%s %s?%s auth=%s body=%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), body)
})

func TestProxy(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	console := x.adminKey(t)
	tok := x.token(t, 2)
	dev := x.runDevice(t, tok.Token, "esa1.example.com", echo)
	offline := x.register(t, tok.Token, "esa2.example.com")

	req := exchangeclient.ProxyRequest{Method: "POST", Path: "/esa/api/v2.0/message-tracking/messages",
		Query: "subject=test+test", Headers: http.Header{"Authorization": {"Basic YWRtaW46eA=="}, "Connection": {"close"}},
		Body: []byte("hello \x00 device")}

	// Threat Response is off until an administrator turns it on.
	list, err := console.Devices(ctx)
	if err != nil || list.ThreatResponse {
		t.Errorf("Devices() = %+v, %v; want threat_response false", list, err)
	}
	_, err = console.Proxy(ctx, dev.reg.DeviceID, req)
	wantMsg := "Threat Response is not enabled for organisation Default: enable it under Cloud Services"
	if sightline.ErrorKind(err) != sightline.Forbidden || sightline.ErrorMessage(err) != wantMsg {
		t.Errorf("Proxy with Threat Response off = %v, want Forbidden %q", err, wantMsg)
	}
	if err := x.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		t.Fatalf("SetCloudServices: %v", err)
	}
	if e := x.lastAudit(t, x.org(t, "Default").ID); e.Action != registry.ActionCloudServices || e.Detail != "Threat Response enabled" {
		t.Errorf("audit after enabling = %+v, want the cloud-services change", e)
	}

	got, err := console.Proxy(ctx, dev.reg.DeviceID, req)
	if err != nil {
		t.Fatalf("Proxy: %v", err)
	}
	wantBody := "POST /esa/api/v2.0/message-tracking/messages?subject=test+test auth=Basic YWRtaW46eA== body=hello \x00 device"
	if got.Status != http.StatusAccepted || string(got.Body) != wantBody || got.Headers.Get("X-Device") != "yes" {
		t.Errorf("Proxy() = %d %v %q, want 202 with X-Device and body %q", got.Status, got.Headers, got.Body, wantBody)
	}

	list, err = console.Devices(ctx)
	if err != nil || !list.ThreatResponse || len(list.Devices) != 2 || !list.Devices[0].Connected || list.Devices[1].Connected {
		t.Errorf("Devices() = %+v, %v; want two devices, the first connected", list, err)
	}

	_, err = console.Proxy(ctx, offline.DeviceID, req)
	if sightline.ErrorKind(err) != sightline.Unavailable || !strings.Contains(sightline.ErrorMessage(err), "esa2.example.com") ||
		!strings.Contains(sightline.ErrorMessage(err), "not connected") {
		t.Errorf("Proxy(offline device) = %v, want Unavailable naming esa2.example.com as not connected", err)
	}
	_, err = console.Proxy(ctx, uuid.NewString(), req)
	if sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("Proxy(unknown device) = %v, want NotFound", err)
	}

	bad := []struct {
		name string
		req  exchangeclient.ProxyRequest
	}{
		{"relative path", exchangeclient.ProxyRequest{Path: "esa/api"}},
		{"scheme-relative path", exchangeclient.ProxyRequest{Path: "//evil.example/"}},
		{"query in path", exchangeclient.ProxyRequest{Path: "/a?b=c"}},
		{"bad method", exchangeclient.ProxyRequest{Method: "GET /x", Path: "/"}},
		{"bad query", exchangeclient.ProxyRequest{Path: "/", Query: "a=%zz"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := console.Proxy(ctx, dev.reg.DeviceID, tt.req); sightline.ErrorKind(err) != sightline.Invalid {
				t.Errorf("Proxy(%+v) = %v, want Invalid", tt.req, err)
			}
		})
	}

	if _, err := exchangeclient.NewKey(x.url, nil, "sle_wrong").Devices(ctx); sightline.ErrorKind(err) != sightline.Unauthorized {
		t.Errorf("Devices with a wrong API key = %v, want Unauthorized", err)
	}
}

func TestOrganisationsIsolated(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	adminA, keyA := x.admin, x.adminKey(t)
	adminB, keyB := x.addOrganisation(t, "Acme", "bob")
	for _, c := range []*exchangeclient.Client{adminA, adminB} {
		if err := c.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
			t.Fatal(err)
		}
	}
	tokA, err := adminA.TokenCreate(ctx, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	tokB, err := adminB.TokenCreate(ctx, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	devA := x.runDevice(t, tokA.Token, "a.example.com", echo)
	devB := x.runDevice(t, tokB.Token, "b.example.com", echo)

	tests := []struct {
		name       string
		key, admin *exchangeclient.Client
		own, other string
	}{
		{"A", keyA, adminA, devA.reg.DeviceID, devB.reg.DeviceID},
		{"B", keyB, adminB, devB.reg.DeviceID, devA.reg.DeviceID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := tt.key.Devices(ctx)
			if err != nil || len(list.Devices) != 1 || list.Devices[0].ID != tt.own {
				t.Errorf("Devices() = %+v, %v; want only device %s", list.Devices, err, tt.own)
			}
			if _, err := tt.key.Proxy(ctx, tt.own, exchangeclient.ProxyRequest{Path: "/"}); err != nil {
				t.Errorf("Proxy(own device) = %v", err)
			}
			_, err = tt.key.Proxy(ctx, tt.other, exchangeclient.ProxyRequest{Path: "/"})
			if sightline.ErrorKind(err) != sightline.NotFound || strings.Contains(sightline.ErrorMessage(err), ".example.com") {
				t.Errorf("Proxy(other organisation's device) = %v, want a NotFound that reveals nothing", err)
			}
			if err := tt.admin.DeviceDelete(ctx, tt.other); sightline.ErrorKind(err) != sightline.NotFound {
				t.Errorf("DeviceDelete(other organisation's device) = %v, want NotFound", err)
			}
			if toks, _ := tt.admin.Tokens(ctx); len(toks) != 1 {
				t.Errorf("Tokens() = %d tokens, want only the organisation's one", len(toks))
			}
		})
	}
}

func TestDeleteDeviceTellsDevice(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	tok := x.token(t, 1)
	dev := x.runDevice(t, tok.Token, "esa1.example.com", echo)

	if err := x.admin.DeviceDelete(ctx, dev.reg.DeviceID); err != nil {
		t.Fatalf("DeviceDelete: %v", err)
	}
	select {
	case err := <-dev.done:
		dev.done <- err // for the cleanup
		var rej *tunnel.RejectedError
		if !errors.As(err, &rej) || rej.StatusCode != http.StatusGone || rej.Reason != "deregistered" {
			t.Errorf("Dialer.Run after delete = %v, want a permanent rejection 410 \"deregistered\"", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Dialer.Run still running 10s after its device was deleted")
	}
	if list, _ := x.admin.Devices(ctx); len(list.Devices) != 0 {
		t.Errorf("Devices() after delete = %+v, want none", list.Devices)
	}
	e := x.lastAudit(t, x.org(t, "Default").ID)
	if e.Action != registry.ActionDeviceDelete || e.Actor != "admin" || !strings.Contains(e.Target, "esa1.example.com") {
		t.Errorf("audit after delete = %+v, want admin's deletion of esa1.example.com", e)
	}
	// The credential no longer opens a tunnel.
	dl := &tunnel.Dialer{URL: dev.reg.TunnelURL, Credential: func() string { return dev.reg.Credential }, Handler: echo}
	if err := dl.Run(ctx); sightline.ErrorKind(err) != sightline.Unauthorized {
		t.Errorf("Dialer.Run with a deleted device's credential = %v, want Unauthorized", err)
	}
}

func TestFirstStartOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	calls := 0
	opts := Options{Addr: "127.0.0.1:0", DataDir: dir, Organisation: "Lab",
		AdminPassword: func() (string, error) { calls++; return adminPass, nil }}
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		e, err := Open(ctx, opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		cancel()
		if err := e.Run(ctx); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	if calls != 1 {
		t.Errorf("AdminPassword called %d times over two starts, want once", calls)
	}
}
