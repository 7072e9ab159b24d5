package exchange

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
)

// lastRegistration returns the newest registration attempt of host as the
// audit API shows it.
func (x *testExchange) lastRegistration(t *testing.T, c *exchangeclient.Client, host string) exchangeclient.AuditEntry {
	t.Helper()
	a, err := c.Audit(context.Background(), exchangeclient.AuditQuery{Action: registry.ActionRegister, Device: host, Limit: 1})
	if err != nil || len(a.Entries) != 1 {
		t.Fatalf("Audit(register by %s) = %+v, %v; want one entry", host, a, err)
	}
	return a.Entries[0]
}

// facts are the fields of an entry that say what it is about.
type facts struct {
	Outcome, Reason                        string
	TokenID, TokenFingerprint, TokenRegion string
	DeviceName, DeviceVersion, MinVersion  string
	Source                                 string
	HasDeviceID                            bool
}

func factsOf(e exchangeclient.AuditEntry) facts {
	return facts{Outcome: e.Outcome, Reason: e.Reason, TokenID: e.TokenID, TokenFingerprint: e.TokenFingerprint,
		TokenRegion: e.TokenRegion, DeviceName: e.DeviceName, DeviceVersion: e.DeviceVersion, MinVersion: e.MinVersion,
		Source: e.Source, HasDeviceID: e.DeviceID != ""}
}

func fingerprintOf(secret string) string { return registry.Hash(secret)[:16] }

// TestAuditReasons makes every kind of registration attempt for real and
// checks the fields the exchange recorded for each, as the audit API
// answers them.
func TestAuditReasons(t *testing.T) {
	t.Parallel()
	x := startExchange(t, func(o *Options) { o.MinVersion = "14.0" })
	ctx := context.Background()

	expired := x.token(t, 5)
	x.clock.Add(time.Hour)
	usedUp := x.token(t, 1)
	x.register(t, usedUp.Token, "first.example.com")
	revoked := x.token(t, 5)
	if err := x.admin.TokenRevoke(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	fresh := x.token(t, 5)
	unknown := strings.Repeat("ab", 16)

	// A EUROPE exchange sharing the store refuses AMERICAS's tokens by region.
	eu := startExchange(t, func(o *Options) { o.Region = "EUROPE"; o.Store = x.store; o.DataDir = "" })

	attempt := func(c *exchangeclient.Client, token, host string, edit func(*exchangeclient.Registration)) {
		reg := registration(token, host)
		if edit != nil {
			edit(&reg)
		}
		if _, err := c.Register(ctx, reg); err == nil {
			t.Fatalf("Register(%s) succeeded, want a refusal", host)
		}
	}
	oldVersion := func(r *exchangeclient.Registration) { r.Version = "13.5.1" }
	attempt(x.anon, expired.Token, "esa-expired", nil)
	attempt(x.anon, usedUp.Token, "esa-used-up", nil)
	attempt(x.anon, revoked.Token, "esa-revoked", nil)
	attempt(x.anon, unknown, "esa-unknown", nil)
	attempt(x.anon, "not-a-token", "esa-malformed", nil)
	attempt(x.anon, fresh.Token, "esa-old", oldVersion)
	attempt(x.anon, fresh.Token, "esa-bad", func(r *exchangeclient.Registration) { r.Type = "WSA" })
	attempt(eu.anon, fresh.Token, "esa-other-region", nil)
	long := strings.Repeat("é", 3000) // beyond any index entry
	attempt(x.anon, fresh.Token, long, nil)

	tests := []struct {
		host string
		want facts
	}{
		{"first.example.com", facts{Outcome: "success", TokenID: usedUp.ID, TokenFingerprint: fingerprintOf(usedUp.Token),
			DeviceName: "first.example.com", DeviceVersion: "15.0.1-104", HasDeviceID: true}},
		{"esa-expired", facts{Reason: exchangeclient.ReasonTokenExpired, TokenID: expired.ID, TokenFingerprint: fingerprintOf(expired.Token)}},
		{"esa-used-up", facts{Reason: exchangeclient.ReasonTokenUsedUp, TokenID: usedUp.ID, TokenFingerprint: fingerprintOf(usedUp.Token)}},
		{"esa-revoked", facts{Reason: exchangeclient.ReasonTokenRevoked, TokenID: revoked.ID, TokenFingerprint: fingerprintOf(revoked.Token)}},
		{"esa-unknown", facts{Reason: exchangeclient.ReasonTokenUnknown, TokenFingerprint: fingerprintOf(unknown)}},
		{"esa-malformed", facts{Reason: exchangeclient.ReasonTokenMalformed}},
		{"esa-old", facts{Reason: exchangeclient.ReasonVersionTooOld, TokenID: fresh.ID, TokenFingerprint: fingerprintOf(fresh.Token),
			DeviceVersion: "13.5.1", MinVersion: "14.0"}},
		{"esa-bad", facts{Reason: exchangeclient.ReasonBadRequest}},
		{"esa-other-region", facts{Reason: exchangeclient.ReasonTokenOtherRegion, TokenID: fresh.ID, TokenFingerprint: fingerprintOf(fresh.Token),
			TokenRegion: "AMERICAS"}},
		{long[:maxDeviceName-1], facts{Reason: exchangeclient.ReasonBadRequest}},
	}
	for _, tt := range tests {
		t.Run(tt.host[:min(len(tt.host), 32)], func(t *testing.T) {
			want := tt.want
			want.Source, want.DeviceName = "127.0.0.1", tt.host
			if want.Outcome == "" {
				want.Outcome = registry.OutcomeFailure
			}
			c := x.admin
			if tt.host == "esa-other-region" {
				c = eu.admin
			}
			got := x.lastRegistration(t, c, tt.host)
			if diff := cmp.Diff(want, factsOf(got)); diff != "" {
				t.Errorf("audit entry of %s (detail %q) mismatch (-want +got):\n%s", tt.host, got.Detail, diff)
			}
		})
	}

	// Rate limiting has its own reason.
	rl := startExchange(t, func(o *Options) { o.RegisterBurst = 1; o.RegisterInterval = time.Hour })
	attempt(rl.anon, unknown, "esa-rl", nil)
	if _, err := rl.anon.Register(ctx, registration(unknown, "esa-rl")); sightline.ErrorKind(err) != sightline.Unavailable {
		t.Fatalf("second attempt = %v, want rate limited", err)
	}
	a, err := rl.admin.Audit(ctx, exchangeclient.AuditQuery{Action: registry.ActionRegister, Limit: 1})
	if err != nil || len(a.Entries) != 1 || a.Entries[0].Reason != exchangeclient.ReasonRateLimited {
		t.Errorf("Audit after a rate-limited attempt = %+v, %v; want reason %s", a, err, exchangeclient.ReasonRateLimited)
	}

	// The reason is the stored field, whatever the text says: an entry
	// whose detail reads like another reason keeps its own.
	org := x.org(t, "Default")
	if err := x.store.AddAudit(ctx, registry.AuditEntry{OrgID: org.ID, Time: x.clock.Now(), Actor: "device esa-text",
		Action: registry.ActionRegister, Target: "esa-text", Outcome: registry.OutcomeFailure, Reason: exchangeclient.ReasonTokenRevoked,
		Detail: "rate limited: unknown token 0123456789abcdef (", DeviceName: "esa-text"}); err != nil {
		t.Fatal(err)
	}
	if got := x.lastRegistration(t, x.admin, "esa-text"); got.Reason != exchangeclient.ReasonTokenRevoked || got.TokenFingerprint != "" {
		t.Errorf("audit entry stored with reason %s = reason %q, fingerprint %q; want the stored reason and no fingerprint",
			exchangeclient.ReasonTokenRevoked, got.Reason, got.TokenFingerprint)
	}
}

// TestAuditAcrossRegions: a token generated in EUROPE and presented to
// AMERICAS (each with its own store) is unknown there; its fingerprint finds
// it in EUROPE's audit, and neither log holds the token itself.
func TestAuditAcrossRegions(t *testing.T) {
	t.Parallel()
	us := startExchange(t, nil)
	eu := startExchange(t, func(o *Options) { o.Region = "EUROPE" })
	ctx := context.Background()
	tok := eu.token(t, 1)
	if _, err := us.anon.Register(ctx, registration(tok.Token, "esa1")); sightline.ErrorMessage(err) != MsgInvalidToken {
		t.Fatalf("Register(EUROPE token at AMERICAS) = %v, want %q", err, MsgInvalidToken)
	}
	got := us.lastRegistration(t, us.admin, "esa1")
	if got.Reason != exchangeclient.ReasonTokenUnknown || got.TokenFingerprint != fingerprintOf(tok.Token) {
		t.Fatalf("AMERICAS audit = %+v, want %s with the token's fingerprint", got, exchangeclient.ReasonTokenUnknown)
	}
	a, err := eu.admin.Audit(ctx, exchangeclient.AuditQuery{Token: got.TokenFingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Entries) != 1 || a.Entries[0].Action != registry.ActionTokenCreate || a.Entries[0].TokenID != tok.ID || a.Region != "EUROPE" {
		t.Errorf("EUROPE Audit(token=%s) = %+v, want the creation of token %s", got.TokenFingerprint, a, tok.ID)
	}
	for _, x := range []*testExchange{us, eu} {
		if body := x.get(t, "/api/v1/audit", AdminUser); strings.Contains(body, tok.Token) {
			t.Errorf("%s audit holds the token itself: %s", x.opts.Region, body)
		}
	}
}

// get returns the body of a 200 answer to GET path as user.
func (x *testExchange) get(t *testing.T, path, user string) string {
	t.Helper()
	status, body := x.call(t, path, user)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, status, body)
	}
	return body
}

func (x *testExchange) call(t *testing.T, path, user string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, x.url+path, nil)
	if user != "" {
		req.SetBasicAuth(user, adminPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuditFilters(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	t0 := x.clock.Now()
	step := func() { x.clock.Add(time.Minute) }

	a := x.token(t, 5) // t0
	step()
	b := x.token(t, 5) // t0+1m
	step()
	dev := x.register(t, a.Token, "gw1") // t0+2m
	step()
	if _, err := x.anon.Register(ctx, registration(strings.Repeat("0", 32), "gw2")); err == nil { // t0+3m
		t.Fatal("unknown token accepted")
	}
	step()
	if err := x.admin.TokenRevoke(ctx, b.ID); err != nil { // t0+4m
		t.Fatal(err)
	}
	step()
	if _, err := x.anon.Register(ctx, registration(b.Token, "GW2")); err == nil { // t0+5m
		t.Fatal("revoked token accepted")
	}
	step()
	if err := x.admin.DeviceDelete(ctx, dev.DeviceID); err != nil { // t0+6m
		t.Fatal(err)
	}
	step()
	if err := x.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil { // t0+7m
		t.Fatal(err)
	}

	// label names an entry by its action and what it is about.
	names := strings.NewReplacer(a.ID, "A", b.ID, "B", dev.DeviceID, "D")
	label := func(e exchangeclient.AuditEntry) string {
		about := e.DeviceName
		if about == "" {
			about = e.TokenID
		}
		if about == "" {
			about = e.Target
		}
		return names.Replace(fmt.Sprintf("%s %s %s", e.Action, e.Outcome, about))
	}
	all := []string{
		"cloud_services.change success Threat Response",
		"device.delete success gw1",
		"device.register failure GW2",
		"token.revoke success B",
		"device.register failure gw2",
		"device.register success gw1",
		"token.create success B",
		"token.create success A",
	}
	tests := []struct {
		name  string
		query exchangeclient.AuditQuery
		want  []string
	}{
		{"all", exchangeclient.AuditQuery{}, all},
		{"action", exchangeclient.AuditQuery{Action: "device.register"}, []string{all[2], all[4], all[5]}},
		{"outcome", exchangeclient.AuditQuery{Outcome: "failure"}, []string{all[2], all[4]}},
		{"device by name", exchangeclient.AuditQuery{Device: "gw1"}, []string{all[1], all[5]}},
		{"device by ID", exchangeclient.AuditQuery{Device: dev.DeviceID}, []string{all[1], all[5]}},
		{"device name in any case", exchangeclient.AuditQuery{Device: "gw2"}, []string{all[2], all[4]}},
		{"token by ID", exchangeclient.AuditQuery{Token: a.ID}, []string{all[5], all[7]}},
		{"token by fingerprint", exchangeclient.AuditQuery{Token: fingerprintOf(b.Token)}, []string{all[2], all[3], all[6]}},
		{"unknown token by fingerprint", exchangeclient.AuditQuery{Token: fingerprintOf(strings.Repeat("0", 32))}, []string{all[4]}},
		{"since", exchangeclient.AuditQuery{Since: t0.Add(4 * time.Minute)}, all[:4]},
		{"since and action", exchangeclient.AuditQuery{Since: t0.Add(3 * time.Minute), Action: "device.register"}, []string{all[2], all[4]}},
		{"limit", exchangeclient.AuditQuery{Limit: 3}, all[:3]},
		{"nothing", exchangeclient.AuditQuery{Device: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := x.admin.Audit(ctx, tt.query)
			if err != nil {
				t.Fatalf("Audit(%+v): %v", tt.query, err)
			}
			var got []string
			for _, e := range page.Entries {
				got = append(got, label(e))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Audit(%v) mismatch (-want +got):\n%s", tt.query.Values(), diff)
			}
		})
	}

	// The raw event name is accepted for action, and an empty page is [].
	if body := x.get(t, "/api/v1/audit?event=token.revoke", AdminUser); !strings.Contains(body, `"action":"token.revoke"`) {
		t.Errorf("GET ?event=token.revoke = %s, want the revocation", body)
	}
	if body := x.get(t, "/api/v1/audit?device=nobody", AdminUser); !strings.Contains(body, `"entries":[]`) {
		t.Errorf("GET ?device=nobody = %s, want \"entries\":[]", body)
	}
}

// TestAuditPaging walks a long log page by page, where the operator's
// entries and those of no organisation interleave.
func TestAuditPaging(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	org := x.org(t, "Default")
	const n = 700
	for i := range n {
		e := registry.AuditEntry{OrgID: org.ID, Time: x.clock.Now().Add(time.Duration(i) * time.Second), Actor: "admin",
			Source: "192.0.2.1", Action: registry.ActionTokenCreate, Target: fmt.Sprintf("tok-%d", i), Outcome: registry.OutcomeSuccess}
		if i%3 == 0 {
			e.OrgID, e.Actor, e.Action, e.Target, e.Outcome = "", "device gw", registry.ActionRegister, fmt.Sprintf("gw-%d", i), registry.OutcomeFailure
			e.Detail = "unknown token 0123456789abcdef (not issued by this exchange, region AMERICAS: mistyped, or from another region)"
			e.Reason, e.TokenFingerprint, e.DeviceName = exchangeclient.ReasonTokenUnknown, "0123456789abcdef", e.Target
		}
		if err := x.store.AddAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Every entry, newest first, as the store holds them.
	var want []string
	for i := n - 1; i >= 0; i-- {
		if i%3 == 0 {
			want = append(want, fmt.Sprintf("gw-%d", i))
		} else {
			want = append(want, fmt.Sprintf("tok-%d", i))
		}
	}

	walk := func(q exchangeclient.AuditQuery) (got []string, pages int) {
		for {
			page, err := x.admin.Audit(ctx, q)
			if err != nil {
				t.Fatalf("Audit(%v): %v", q.Values(), err)
			}
			pages++
			if len(page.Entries) > max(q.Limit, 0) || (page.Next != "" && len(page.Entries) != q.Limit) {
				t.Fatalf("Audit(%v) = %d entries, next %q; want at most %d, and exactly that many when there is a next page",
					q.Values(), len(page.Entries), page.Next, q.Limit)
			}
			for _, e := range page.Entries {
				got = append(got, e.Target)
			}
			if page.Next == "" {
				return got, pages
			}
			q.Before = page.Next
		}
	}
	got, pages := walk(exchangeclient.AuditQuery{Limit: 37})
	if diff := cmp.Diff(want, got); diff != "" || pages != (n+36)/37 {
		t.Errorf("walking pages of 37: %d pages (want %d), mismatch (-want +got):\n%s", pages, (n+36)/37, diff)
	}
	// A sparse filter: the pages still hold their limit, across windows.
	var wantGW []string
	for _, w := range want {
		if strings.HasPrefix(w, "gw-") {
			wantGW = append(wantGW, w)
		}
	}
	got, _ = walk(exchangeclient.AuditQuery{Action: registry.ActionRegister, Limit: 100})
	if diff := cmp.Diff(wantGW, got); diff != "" {
		t.Errorf("walking registrations mismatch (-want +got):\n%s", diff)
	}
	got, _ = walk(exchangeclient.AuditQuery{Device: "gw-0", Limit: 5})
	if diff := cmp.Diff([]string{"gw-0"}, got); diff != "" {
		t.Errorf("the oldest entry by device mismatch (-want +got):\n%s", diff)
	}
	got, _ = walk(exchangeclient.AuditQuery{Since: x.clock.Now().Add((n - 3) * time.Second), Limit: 1000})
	if diff := cmp.Diff(want[:3], got); diff != "" {
		t.Errorf("since the last 3 seconds mismatch (-want +got):\n%s", diff)
	}
	page, err := x.admin.Audit(ctx, exchangeclient.AuditQuery{})
	if err != nil || len(page.Entries) != 100 || page.Next == "" {
		t.Errorf("Audit() = %d entries, next %q, %v; want the default 100 and a next page", len(page.Entries), page.Next, err)
	}
}

// TestAuditOrganisations: each organisation sees its own entries only;
// the first (the operator's) also sees the attempts of no organisation.
func TestAuditOrganisations(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	acme, acmeKey := x.addOrganisation(t, "Acme", "ana")
	acmeTok, err := acme.TokenCreate(ctx, 1, "1h")
	if err != nil {
		t.Fatal(err)
	}
	x.register(t, acmeTok.Token, "acme-gw")
	ours := x.token(t, 1)
	x.register(t, ours.Token, "our-gw")
	if _, err := x.anon.Register(ctx, registration(strings.Repeat("1", 32), "stranger")); err == nil {
		t.Fatal("unknown token accepted")
	}

	targets := func(c *exchangeclient.Client, q exchangeclient.AuditQuery) []string {
		t.Helper()
		page, err := c.Audit(ctx, q)
		if err != nil {
			t.Fatalf("Audit: %v", err)
		}
		var out []string
		for _, e := range page.Entries {
			out = append(out, e.Action+" "+e.DeviceName+e.TokenID)
		}
		return out
	}
	tests := []struct {
		name   string
		client *exchangeclient.Client
		query  exchangeclient.AuditQuery
		want   []string
	}{
		{"Acme sees its own", acme, exchangeclient.AuditQuery{}, []string{"device.register acme-gw" + acmeTok.ID, "token.create " + acmeTok.ID, "api_key.create "}},
		{"Acme cannot find the operator's token", acme, exchangeclient.AuditQuery{Token: ours.ID}, nil},
		{"Acme cannot find the operator's device", acme, exchangeclient.AuditQuery{Device: "our-gw"}, nil},
		{"Acme does not see unknown tokens", acme, exchangeclient.AuditQuery{Device: "stranger"}, nil},
		{"the operator sees its own and unknown tokens", x.admin, exchangeclient.AuditQuery{Action: registry.ActionRegister},
			[]string{"device.register stranger", "device.register our-gw" + ours.ID}},
		{"the operator cannot find Acme's token", x.admin, exchangeclient.AuditQuery{Token: acmeTok.ID}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, targets(tt.client, tt.query)); diff != "" {
				t.Errorf("Audit(%v) mismatch (-want +got):\n%s", tt.query.Values(), diff)
			}
		})
	}
	// Only users read the audit log: not an API key, not anonymous callers.
	if _, err := acmeKey.Audit(ctx, exchangeclient.AuditQuery{}); sightline.ErrorKind(err) != sightline.Unauthorized {
		t.Errorf("Audit with an API key = %v, want Unauthorized", err)
	}
	if _, err := x.anon.Audit(ctx, exchangeclient.AuditQuery{}); sightline.ErrorKind(err) != sightline.Unauthorized {
		t.Errorf("Audit without credentials = %v, want Unauthorized", err)
	}
}

func TestAuditBadParameters(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	tests := []struct {
		query string
		want  string
	}{
		{"since=yesterday", `since "yesterday": want an RFC 3339 time`},
		{"since=2026-01-10", `since "2026-01-10": want an RFC 3339 time`},
		{"limit=0", `limit "0": want a number from 1 to 1000`},
		{"limit=1001", `limit "1001": want a number from 1 to 1000`},
		{"limit=ten", `limit "ten"`},
		{"limit=5&limit=6", "limit: give it once"},
		{"action=register", `action "register": want one of token.create, token.revoke, device.register`},
		{"action=token.create&event=token.revoke", `action "token.create" and event "token.revoke"`},
		{"outcome=maybe", `outcome "maybe": want success or failure`},
		{"before=0", `before "0": want the next cursor of a previous page`},
		{"before=abc", `before "abc"`},
		{"token=" + strings.Repeat("ab", 16), "token: give the token's ID or fingerprint, never the token itself"},
		{"device=" + strings.Repeat("d", 257), "device: give a device ID or host name of at most 256 characters"},
		{"sort=asc", `unknown parameter "sort": the audit log takes since, action (or event), outcome, device, token, limit and before`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, body := x.call(t, "/api/v1/audit?"+tt.query, AdminUser)
			var eb exchangeclient.ErrorBody
			json.Unmarshal([]byte(body), &eb)
			if status != http.StatusBadRequest || !strings.HasPrefix(eb.Error, tt.want) {
				t.Errorf("GET /api/v1/audit?%s = %d %s, want 400 with an error starting %q", tt.query, status, body, tt.want)
			}
		})
	}
}

func FuzzParseAuditQuery(f *testing.F) {
	f.Add("since=2026-01-10T08:00:00Z&action=device.register&limit=5&before=9")
	f.Add("token=" + strings.Repeat("ab", 16))
	f.Add("limit=-1&event=x")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseAuditQuery(v)
		if err != nil {
			if sightline.ErrorKind(err) != sightline.Invalid {
				t.Errorf("parseAuditQuery(%q) = %v, want an Invalid error", raw, err)
			}
			return
		}
		if q.limit < 1 || q.limit > auditMaxLimit || q.before < 0 {
			t.Errorf("parseAuditQuery(%q) accepted limit %d, before %d", raw, q.limit, q.before)
		}
	})
}
