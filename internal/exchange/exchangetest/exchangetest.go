// Package exchangetest is the conformance suite of the exchange's
// registry.Store: every implementation runs TestStore against a fresh store.
package exchangetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/registry"
)

// TestStore runs the conformance suite; open must return an empty store,
// closed by the test's cleanup.
func TestStore(t *testing.T, open func(t *testing.T) registry.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s registry.Store)
	}{
		{"Organisations", testOrganisations},
		{"Users", testUsers},
		{"APIKeys", testAPIKeys},
		{"Tokens", testTokens},
		{"RegisterDevice", testRegisterDevice},
		{"RegisterConcurrently", testRegisterConcurrently},
		{"Devices", testDevices},
		{"Audit", testAudit},
		{"Secret", testSecret},
		{"Generation", testGeneration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// t0 is a fixed instant, whole seconds, as stores keep them.
var t0 = time.Date(2026, 1, 10, 8, 5, 0, 0, time.UTC)

func wantKind(t *testing.T, what string, err error, k sightline.Kind) {
	t.Helper()
	if got := sightline.ErrorKind(err); got != k {
		t.Errorf("%s = %v, want a %s error", what, err, k)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func newOrg(t *testing.T, s registry.Store, name string) registry.Organisation {
	t.Helper()
	o := registry.Organisation{ID: uuid.NewString(), Name: name, CreatedAt: t0}
	must(t, "CreateOrganisation", s.CreateOrganisation(context.Background(), o))
	return o
}

func newToken(t *testing.T, s registry.Store, org registry.Organisation, n int) registry.Token {
	t.Helper()
	tok := registry.Token{ID: uuid.NewString(), OrgID: org.ID, Region: registry.RegionAmericas,
		Hash: registry.Hash(uuid.NewString()), Devices: n, Remaining: n, CreatedAt: t0,
		ExpiresAt: t0.Add(time.Hour), CreatedBy: "admin"}
	must(t, "CreateToken", s.CreateToken(context.Background(), tok))
	return tok
}

func newDevice(org registry.Organisation, name string) registry.Device {
	return registry.Device{ID: uuid.NewString(), OrgID: org.ID, Name: name, Type: registry.TypeESA,
		Version: "15.0.0-104", Serial: "42A1B2", ConnectorVersion: "1.0", Status: registry.StatusRegistered,
		IP: "192.0.2.7", CredentialHash: registry.Hash(uuid.NewString()), CreatedAt: t0}
}

func testOrganisations(t *testing.T, s registry.Store) {
	ctx := context.Background()
	a := newOrg(t, s, "Default")
	b := newOrg(t, s, "Acme")
	wantKind(t, "CreateOrganisation(same name)", s.CreateOrganisation(ctx,
		registry.Organisation{ID: uuid.NewString(), Name: "Default", CreatedAt: t0}), sightline.Conflict)

	got, err := s.Organisation(ctx, a.ID)
	must(t, "Organisation", err)
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("Organisation(%s) mismatch (-want +got):\n%s", a.ID, diff)
	}
	got, err = s.OrganisationByName(ctx, "Acme")
	must(t, "OrganisationByName", err)
	if diff := cmp.Diff(b, got); diff != "" {
		t.Errorf("OrganisationByName(Acme) mismatch (-want +got):\n%s", diff)
	}
	_, err = s.Organisation(ctx, uuid.NewString())
	wantKind(t, "Organisation(unknown)", err, sightline.NotFound)
	_, err = s.OrganisationByName(ctx, "nobody")
	wantKind(t, "OrganisationByName(unknown)", err, sightline.NotFound)

	must(t, "SetThreatResponse", s.SetThreatResponse(ctx, b.ID, true))
	wantKind(t, "SetThreatResponse(unknown)", s.SetThreatResponse(ctx, uuid.NewString(), true), sightline.NotFound)
	all, err := s.Organisations(ctx)
	must(t, "Organisations", err)
	b.ThreatResponse = true
	if diff := cmp.Diff([]registry.Organisation{a, b}, all); diff != "" {
		t.Errorf("Organisations() mismatch (-want +got):\n%s", diff)
	}
}

func testUsers(t *testing.T, s registry.Store) {
	ctx := context.Background()
	org := newOrg(t, s, "Default")
	u := registry.User{Name: "admin", OrgID: org.ID, PasswordHash: "$2a$10$x", CreatedAt: t0}
	must(t, "CreateUser", s.CreateUser(ctx, u))
	wantKind(t, "CreateUser(again)", s.CreateUser(ctx, u), sightline.Conflict)
	got, err := s.User(ctx, "admin")
	must(t, "User", err)
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("User(admin) mismatch (-want +got):\n%s", diff)
	}
	_, err = s.User(ctx, "nobody")
	wantKind(t, "User(nobody)", err, sightline.NotFound)
}

func testAPIKeys(t *testing.T, s registry.Store) {
	ctx := context.Background()
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	ka := registry.APIKey{ID: uuid.NewString(), OrgID: a.ID, Name: "console", Hash: registry.Hash("ka"), CreatedAt: t0, CreatedBy: "admin"}
	kb := registry.APIKey{ID: uuid.NewString(), OrgID: b.ID, Name: "console", Hash: registry.Hash("kb"), CreatedAt: t0, CreatedBy: "admin"}
	must(t, "CreateAPIKey", s.CreateAPIKey(ctx, ka))
	must(t, "CreateAPIKey", s.CreateAPIKey(ctx, kb))
	wantKind(t, "CreateAPIKey(same hash)", s.CreateAPIKey(ctx, registry.APIKey{ID: uuid.NewString(), OrgID: a.ID,
		Hash: ka.Hash, CreatedAt: t0}), sightline.Conflict)

	got, err := s.APIKeyByHash(ctx, kb.Hash)
	must(t, "APIKeyByHash", err)
	if diff := cmp.Diff(kb, got); diff != "" {
		t.Errorf("APIKeyByHash mismatch (-want +got):\n%s", diff)
	}
	keys, err := s.APIKeys(ctx, a.ID)
	must(t, "APIKeys", err)
	if diff := cmp.Diff([]registry.APIKey{ka}, keys); diff != "" {
		t.Errorf("APIKeys(A) mismatch (-want +got):\n%s", diff)
	}
	wantKind(t, "DeleteAPIKey(other organisation)", s.DeleteAPIKey(ctx, a.ID, kb.ID), sightline.NotFound)
	must(t, "DeleteAPIKey", s.DeleteAPIKey(ctx, b.ID, kb.ID))
	_, err = s.APIKeyByHash(ctx, kb.Hash)
	wantKind(t, "APIKeyByHash(deleted)", err, sightline.NotFound)
}

func testTokens(t *testing.T, s registry.Store) {
	ctx := context.Background()
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	t1 := newToken(t, s, a, 3)
	t2 := registry.Token{ID: uuid.NewString(), OrgID: a.ID, Region: registry.RegionEurope, Hash: registry.Hash(uuid.NewString()),
		Devices: 1, Remaining: 1, CreatedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(2 * time.Hour), CreatedBy: "bob"}
	must(t, "CreateToken", s.CreateToken(ctx, t2))
	tb := newToken(t, s, b, 1)

	wantKind(t, "CreateToken(same hash)", s.CreateToken(ctx, registry.Token{ID: uuid.NewString(), OrgID: a.ID,
		Region: t1.Region, Hash: t1.Hash, Devices: 1, Remaining: 1, CreatedAt: t0, ExpiresAt: t0}), sightline.Conflict)

	got, err := s.TokenByHash(ctx, t1.Hash)
	must(t, "TokenByHash", err)
	if diff := cmp.Diff(t1, got); diff != "" {
		t.Errorf("TokenByHash mismatch (-want +got):\n%s", diff)
	}
	_, err = s.TokenByHash(ctx, registry.Hash("nope"))
	wantKind(t, "TokenByHash(unknown)", err, sightline.NotFound)

	wantKind(t, "RevokeToken(other organisation)", s.RevokeToken(ctx, b.ID, t1.ID, t0), sightline.NotFound)
	must(t, "RevokeToken", s.RevokeToken(ctx, a.ID, t1.ID, t0.Add(time.Second)))
	must(t, "RevokeToken(again)", s.RevokeToken(ctx, a.ID, t1.ID, t0.Add(time.Hour)))
	t1.RevokedAt = t0.Add(time.Second)

	list, err := s.Tokens(ctx, a.ID)
	must(t, "Tokens", err)
	if diff := cmp.Diff([]registry.Token{t2, t1}, list); diff != "" {
		t.Errorf("Tokens(A) mismatch, want newest first (-want +got):\n%s", diff)
	}
	listB, err := s.Tokens(ctx, b.ID)
	must(t, "Tokens", err)
	if diff := cmp.Diff([]registry.Token{tb}, listB); diff != "" {
		t.Errorf("Tokens(B) mismatch (-want +got):\n%s", diff)
	}
}

func testRegisterDevice(t *testing.T, s registry.Store) {
	ctx := context.Background()
	org, other := newOrg(t, s, "A"), newOrg(t, s, "B")
	tok := newToken(t, s, org, 2)

	d := newDevice(org, "esa1.example.com")
	must(t, "RegisterDevice", s.RegisterDevice(ctx, tok.ID, t0, d))
	d.TokenID = tok.ID
	got, err := s.Device(ctx, org.ID, d.ID)
	must(t, "Device", err)
	if diff := cmp.Diff(d, got); diff != "" {
		t.Errorf("Device after RegisterDevice mismatch (-want +got):\n%s", diff)
	}
	after, err := s.TokenByHash(ctx, tok.Hash)
	must(t, "TokenByHash", err)
	if after.Remaining != 1 {
		t.Errorf("token Remaining after one registration = %d, want 1", after.Remaining)
	}

	tests := []struct {
		name string
		prep func() (tokenID string, now time.Time, d registry.Device)
	}{
		{"expired", func() (string, time.Time, registry.Device) {
			return tok.ID, tok.ExpiresAt, newDevice(org, "late")
		}},
		{"other organisation", func() (string, time.Time, registry.Device) {
			return tok.ID, t0, newDevice(other, "intruder")
		}},
		{"unknown token", func() (string, time.Time, registry.Device) {
			return uuid.NewString(), t0, newDevice(org, "nobody")
		}},
		{"revoked", func() (string, time.Time, registry.Device) {
			r := newToken(t, s, org, 5)
			must(t, "RevokeToken", s.RevokeToken(ctx, org.ID, r.ID, t0))
			return r.ID, t0, newDevice(org, "revoked")
		}},
		{"used up", func() (string, time.Time, registry.Device) {
			u := newToken(t, s, org, 1)
			must(t, "RegisterDevice", s.RegisterDevice(ctx, u.ID, t0, newDevice(org, "first")))
			return u.ID, t0, newDevice(org, "second")
		}},
		{"duplicate device", func() (string, time.Time, registry.Device) {
			dup := newDevice(org, "dup")
			dup.ID = d.ID
			return tok.ID, t0, dup
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, now, dev := tt.prep()
			before, _ := s.TokenByHash(ctx, tok.Hash)
			wantKind(t, "RegisterDevice", s.RegisterDevice(ctx, id, now, dev), sightline.Conflict)
			if _, err := s.DeviceByCredential(ctx, dev.CredentialHash); sightline.ErrorKind(err) != sightline.NotFound {
				t.Errorf("refused device %s was stored (DeviceByCredential = %v)", dev.Name, err)
			}
			if after, _ := s.TokenByHash(ctx, tok.Hash); after.Remaining != before.Remaining {
				t.Errorf("refused registration changed Remaining from %d to %d", before.Remaining, after.Remaining)
			}
		})
	}
}

func testRegisterConcurrently(t *testing.T, s registry.Store) {
	ctx := context.Background()
	org := newOrg(t, s, "A")
	tok := newToken(t, s, org, 5)
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.RegisterDevice(ctx, tok.ID, t0, newDevice(org, fmt.Sprintf("esa%d", i)))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch sightline.ErrorKind(err) {
		case "":
			ok++
		case sightline.Conflict:
		default:
			t.Errorf("RegisterDevice = %v, want success or Conflict", err)
		}
	}
	devices, err := s.Devices(ctx, org.ID)
	must(t, "Devices", err)
	if ok != 5 || len(devices) != 5 {
		t.Errorf("%d concurrent registrations with a 5-device token: %d succeeded, %d devices stored; want 5 and 5", n, ok, len(devices))
	}
}

func testDevices(t *testing.T, s registry.Store) {
	ctx := context.Background()
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	ta, tb := newToken(t, s, a, 5), newToken(t, s, b, 5)
	d1, d2, db := newDevice(a, "one"), newDevice(a, "two"), newDevice(b, "theirs")
	d2.CreatedAt = t0.Add(time.Second)
	must(t, "RegisterDevice", s.RegisterDevice(ctx, ta.ID, t0, d1))
	must(t, "RegisterDevice", s.RegisterDevice(ctx, ta.ID, t0, d2))
	must(t, "RegisterDevice", s.RegisterDevice(ctx, tb.ID, t0, db))
	d1.TokenID, d2.TokenID, db.TokenID = ta.ID, ta.ID, tb.ID

	list, err := s.Devices(ctx, a.ID)
	must(t, "Devices", err)
	if diff := cmp.Diff([]registry.Device{d1, d2}, list); diff != "" {
		t.Errorf("Devices(A) mismatch (-want +got):\n%s", diff)
	}
	_, err = s.Device(ctx, a.ID, db.ID)
	wantKind(t, "Device(other organisation's)", err, sightline.NotFound)
	got, err := s.DeviceByCredential(ctx, db.CredentialHash)
	must(t, "DeviceByCredential", err)
	if diff := cmp.Diff(db, got); diff != "" {
		t.Errorf("DeviceByCredential mismatch (-want +got):\n%s", diff)
	}

	wantKind(t, "UpdateDevice(other organisation's)", s.UpdateDevice(ctx, a.ID, db.ID, "x", "y"), sightline.NotFound)
	must(t, "UpdateDevice", s.UpdateDevice(ctx, a.ID, d1.ID, "renamed", "lab gateway"))
	must(t, "TouchDevice", s.TouchDevice(ctx, d1.ID, t0.Add(time.Hour)))
	must(t, "TouchDevice(unknown)", s.TouchDevice(ctx, uuid.NewString(), t0))
	d1.Name, d1.Description, d1.LastSeen = "renamed", "lab gateway", t0.Add(time.Hour)
	got, err = s.Device(ctx, a.ID, d1.ID)
	must(t, "Device", err)
	if diff := cmp.Diff(d1, got); diff != "" {
		t.Errorf("Device after update mismatch (-want +got):\n%s", diff)
	}

	wantKind(t, "DeleteDevice(other organisation's)", s.DeleteDevice(ctx, a.ID, db.ID), sightline.NotFound)
	must(t, "DeleteDevice", s.DeleteDevice(ctx, a.ID, d1.ID))
	_, err = s.DeviceByCredential(ctx, d1.CredentialHash)
	wantKind(t, "DeviceByCredential(deleted)", err, sightline.NotFound)
	wantKind(t, "DeleteDevice(again)", s.DeleteDevice(ctx, a.ID, d1.ID), sightline.NotFound)
}

func testAudit(t *testing.T, s registry.Store) {
	ctx := context.Background()
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	tok := newToken(t, s, a, 5)
	fp := tok.Hash[:16]
	dev := uuid.NewString()
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	// The log, oldest first; Target names each entry. Entry 6 is recorded
	// after 5 with an earlier time, as replicas whose clocks differ may.
	log := []registry.AuditEntry{
		{OrgID: a.ID, Time: at(0), Actor: "admin", Source: "192.0.2.1", Action: registry.ActionTokenCreate, Target: "a0",
			Outcome: registry.OutcomeSuccess, Detail: "token for 5 devices", TokenID: tok.ID, TokenFingerprint: fp},
		{OrgID: b.ID, Time: at(1), Actor: "bob", Action: registry.ActionTokenCreate, Target: "b1", Outcome: registry.OutcomeSuccess,
			TokenID: "other-token", TokenFingerprint: "00000000000000ff"},
		{Time: at(2), Actor: "device gw9", Action: registry.ActionRegister, Target: "none2", Outcome: registry.OutcomeFailure,
			Detail: "unknown token", Reason: "token_unknown", TokenFingerprint: "0123456789abcdef", DeviceName: "gw9"},
		{OrgID: a.ID, Time: at(3), Actor: "device GW1", Action: registry.ActionRegister, Target: "a3", Outcome: registry.OutcomeSuccess,
			TokenID: tok.ID, TokenFingerprint: fp, DeviceID: dev, DeviceName: "GW1", DeviceVersion: "15.0.1-104"},
		{OrgID: a.ID, Time: at(4), Actor: "device ÉSA", Action: registry.ActionRegister, Target: "a4", Outcome: registry.OutcomeFailure,
			Reason: "version_below_minimum", TokenID: tok.ID, TokenFingerprint: fp, DeviceName: "ÉSA", DeviceVersion: "13.5", MinVersion: "14.0"},
		{OrgID: a.ID, Time: at(10), Actor: "admin", Action: registry.ActionDeviceEdit, Target: "a5", Outcome: registry.OutcomeSuccess,
			DeviceID: dev, DeviceName: "gw1"},
		{OrgID: a.ID, Time: at(8), Actor: "admin", Action: registry.ActionTokenRevoke, Target: "a6", Outcome: registry.OutcomeSuccess,
			TokenID: tok.ID, TokenFingerprint: fp},
		{Time: at(11), Actor: "anonymous", Action: registry.ActionRegister, Target: "none7", Outcome: registry.OutcomeFailure,
			Reason: "rate_limited"},
		{OrgID: b.ID, Time: at(12), Actor: "device gw1", Action: registry.ActionRegister, Target: "b8", Outcome: registry.OutcomeSuccess,
			DeviceID: uuid.NewString(), DeviceName: "gw1", TokenID: "other-token"},
	}
	for _, e := range log {
		must(t, "AddAudit", s.AddAudit(ctx, e))
	}

	all, err := s.Audit(ctx, registry.AuditQuery{OrgIDs: []string{a.ID, b.ID, ""}, Limit: 100})
	must(t, "Audit", err)
	want := slices.Clone(log)
	slices.Reverse(want)
	ignoreID := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".ID" }, cmp.Ignore())
	if diff := cmp.Diff(want, all, ignoreID); diff != "" {
		t.Fatalf("Audit(every organisation) mismatch, want every field of every entry, newest first (-want +got):\n%s", diff)
	}
	ids := map[string]int64{}
	for i, e := range all {
		if i > 0 && e.ID >= all[i-1].ID {
			t.Errorf("Audit IDs %d then %d: want them decreasing", all[i-1].ID, e.ID)
		}
		ids[e.Target] = e.ID
	}

	operator := []string{a.ID, ""}
	tests := []struct {
		name string
		q    registry.AuditQuery
		want []string
	}{
		{"one organisation", registry.AuditQuery{OrgIDs: []string{a.ID}, Limit: 100}, []string{"a6", "a5", "a4", "a3", "a0"}},
		{"no organisation", registry.AuditQuery{OrgIDs: []string{""}, Limit: 100}, []string{"none7", "none2"}},
		{"an organisation and no organisation", registry.AuditQuery{OrgIDs: operator, Limit: 100},
			[]string{"none7", "a6", "a5", "a4", "a3", "none2", "a0"}},
		{"an organisation given twice", registry.AuditQuery{OrgIDs: []string{b.ID, b.ID}, Limit: 100}, []string{"b8", "b1"}},
		{"limit", registry.AuditQuery{OrgIDs: operator, Limit: 2}, []string{"none7", "a6"}},
		{"before", registry.AuditQuery{OrgIDs: operator, Before: ids["a5"], Limit: 3}, []string{"a4", "a3", "none2"}},
		{"before the oldest", registry.AuditQuery{OrgIDs: operator, Before: ids["a0"], Limit: 3}, nil},
		{"since", registry.AuditQuery{OrgIDs: operator, Since: at(8), Limit: 100}, []string{"none7", "a6", "a5"}},
		{"since, recorded out of time order", registry.AuditQuery{OrgIDs: operator, Since: at(9), Limit: 100}, []string{"none7", "a5"}},
		{"since and before", registry.AuditQuery{OrgIDs: operator, Since: at(3), Before: ids["a5"], Limit: 100}, []string{"a4", "a3"}},
		{"since after the last", registry.AuditQuery{OrgIDs: operator, Since: at(60), Limit: 100}, nil},
		{"action", registry.AuditQuery{OrgIDs: operator, Action: registry.ActionRegister, Limit: 100},
			[]string{"none7", "a4", "a3", "none2"}},
		{"outcome", registry.AuditQuery{OrgIDs: operator, Outcome: registry.OutcomeFailure, Limit: 100}, []string{"none7", "a4", "none2"}},
		{"action and outcome", registry.AuditQuery{OrgIDs: operator, Action: registry.ActionRegister, Outcome: registry.OutcomeSuccess, Limit: 100},
			[]string{"a3"}},
		{"device by ID", registry.AuditQuery{OrgIDs: operator, Device: dev, Limit: 100}, []string{"a5", "a3"}},
		{"device by name in any case", registry.AuditQuery{OrgIDs: operator, Device: "Gw1", Limit: 100}, []string{"a5", "a3"}},
		{"device by a name beyond ASCII", registry.AuditQuery{OrgIDs: operator, Device: "ésa", Limit: 100}, []string{"a4"}},
		{"device of no organisation", registry.AuditQuery{OrgIDs: operator, Device: "gw9", Limit: 100}, []string{"none2"}},
		{"device and action", registry.AuditQuery{OrgIDs: operator, Device: "gw1", Action: registry.ActionRegister, Limit: 1}, []string{"a3"}},
		{"token by ID", registry.AuditQuery{OrgIDs: operator, Token: tok.ID, Limit: 100}, []string{"a6", "a4", "a3", "a0"}},
		{"token by fingerprint", registry.AuditQuery{OrgIDs: operator, Token: fp, Limit: 2}, []string{"a6", "a4"}},
		{"unknown token by fingerprint", registry.AuditQuery{OrgIDs: operator, Token: "0123456789abcdef", Limit: 100}, []string{"none2"}},
		{"another organisation's token", registry.AuditQuery{OrgIDs: operator, Token: "other-token", Limit: 100}, nil},
		{"another organisation's device", registry.AuditQuery{OrgIDs: []string{b.ID}, Device: dev, Limit: 100}, nil},
		{"every filter", registry.AuditQuery{OrgIDs: operator, Since: at(1), Action: registry.ActionRegister, Outcome: registry.OutcomeFailure,
			Device: "ésa", Token: fp, Before: ids["a5"], Limit: 10}, []string{"a4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Audit(ctx, tt.q)
			must(t, "Audit", err)
			var targets []string
			for _, e := range got {
				targets = append(targets, e.Target)
			}
			if diff := cmp.Diff(tt.want, targets); diff != "" {
				t.Errorf("Audit(%+v) mismatch (-want +got):\n%s", tt.q, diff)
			}
		})
	}

	// Walking pages by their last ID reads every entry once.
	var walked []string
	q := registry.AuditQuery{OrgIDs: operator, Limit: 2}
	for range len(log) {
		page, err := s.Audit(ctx, q)
		must(t, "Audit", err)
		for _, e := range page {
			walked = append(walked, e.Target)
		}
		if len(page) < q.Limit {
			break
		}
		q.Before = page[len(page)-1].ID
	}
	if diff := cmp.Diff([]string{"none7", "a6", "a5", "a4", "a3", "none2", "a0"}, walked); diff != "" {
		t.Errorf("walking pages of 2 mismatch (-want +got):\n%s", diff)
	}

	_, err = s.Audit(ctx, registry.AuditQuery{Limit: 10})
	wantKind(t, "Audit(no organisation given)", err, sightline.Invalid)
	_, err = s.Audit(ctx, registry.AuditQuery{OrgIDs: operator})
	wantKind(t, "Audit(no limit)", err, sightline.Invalid)
}

func testSecret(t *testing.T, s registry.Store) {
	ctx := context.Background()
	first, err := s.Secret(ctx, "session", []byte("one"))
	must(t, "Secret", err)
	second, err := s.Secret(ctx, "session", []byte("two"))
	must(t, "Secret", err)
	if string(first) != "one" || string(second) != "one" {
		t.Errorf("Secret(session) = %q then %q, want the first candidate both times", first, second)
	}
}

// testGeneration checks that the generation moves with every change that
// can stop a request being let through, and stays with TouchDevice.
func testGeneration(t *testing.T, s registry.Store) {
	ctx := context.Background()
	a := newOrg(t, s, "A")
	tok := newToken(t, s, a, 2)
	d1, d2 := newDevice(a, "one"), newDevice(a, "two")
	must(t, "RegisterDevice", s.RegisterDevice(ctx, tok.ID, t0, d1))
	must(t, "RegisterDevice", s.RegisterDevice(ctx, tok.ID, t0, d2))
	k := registry.APIKey{ID: uuid.NewString(), OrgID: a.ID, Name: "console", Hash: registry.Hash("k"), CreatedAt: t0, CreatedBy: "admin"}
	must(t, "CreateAPIKey", s.CreateAPIKey(ctx, k))

	gen, err := s.Generation(ctx)
	must(t, "Generation", err)
	tests := []struct {
		name  string
		do    func() error
		moves bool
	}{
		{"TouchDevice", func() error { return s.TouchDevice(ctx, d1.ID, t0.Add(time.Hour)) }, false},
		{"DeleteAPIKey", func() error { return s.DeleteAPIKey(ctx, a.ID, k.ID) }, true},
		{"SetThreatResponse(on)", func() error { return s.SetThreatResponse(ctx, a.ID, true) }, true},
		{"SetThreatResponse(off)", func() error { return s.SetThreatResponse(ctx, a.ID, false) }, true},
		{"UpdateDevice", func() error { return s.UpdateDevice(ctx, a.ID, d1.ID, "renamed", "") }, true},
		{"DeleteDevice", func() error { return s.DeleteDevice(ctx, a.ID, d2.ID) }, true},
	}
	for _, tt := range tests {
		must(t, tt.name, tt.do())
		got, err := s.Generation(ctx)
		must(t, "Generation", err)
		if moved := got != gen; moved != tt.moves {
			t.Errorf("after %s, Generation() = %d, was %d; want moved = %v", tt.name, got, gen, tt.moves)
		}
		gen = got
	}
}

// TestAuditBackfill checks the migration that gives the audit entries
// written before entries had their fields (registry.AuditEntry's after
// Detail) those fields, read once from their target and detail as the
// exchange wrote them then. old opens a store at the schema version before
// that migration and returns it with a function that adds an entry as that
// version did (through Detail); upgrade closes it and opens it at the
// current version.
func TestAuditBackfill(t *testing.T, old func(t *testing.T) (registry.Store, func(registry.AuditEntry) error), upgrade func(t *testing.T) registry.Store) {
	ctx := context.Background()
	s, addLegacy := old(t)
	org := newOrg(t, s, "Default")
	tok := newToken(t, s, org, 1)
	fp := tok.Hash[:16]
	dev := uuid.NewString()
	tests := []struct {
		name   string
		legacy registry.AuditEntry // through Detail, as written before
		want   registry.AuditEntry // the fields after Detail
	}{
		{"token created", registry.AuditEntry{Action: registry.ActionTokenCreate, Target: tok.ID, Outcome: registry.OutcomeSuccess,
			Detail: "token for 1 device, expires 2026-01-10T09:05:00Z"},
			registry.AuditEntry{TokenID: tok.ID, TokenFingerprint: fp}},
		{"token revoked", registry.AuditEntry{Action: registry.ActionTokenRevoke, Target: tok.ID, Outcome: registry.OutcomeSuccess,
			Detail: "token revoked"},
			registry.AuditEntry{TokenID: tok.ID, TokenFingerprint: fp}},
		{"registered", registry.AuditEntry{Action: registry.ActionRegister, Target: dev + " gw1.Example.com", Outcome: registry.OutcomeSuccess,
			Detail: `registered ESA gw1.Example.com version 15.0.1-104 serial "4C4C-1234" connector "1.2.0" with token ` + tok.ID},
			registry.AuditEntry{TokenID: tok.ID, TokenFingerprint: fp, DeviceID: dev, DeviceName: "gw1.Example.com", DeviceVersion: "15.0.1-104"}},
		{"version below the minimum", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-old", Outcome: registry.OutcomeFailure,
			Detail: "version 13.5.1 below the minimum 14.0"},
			registry.AuditEntry{Reason: "version_below_minimum", DeviceName: "esa-old", DeviceVersion: "13.5.1", MinVersion: "14.0"}},
		{"malformed token", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-malformed", Outcome: registry.OutcomeFailure,
			Detail: "malformed token (not 32 hexadecimal characters)"},
			registry.AuditEntry{Reason: "token_malformed", DeviceName: "esa-malformed"}},
		{"unknown token", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-unknown", Outcome: registry.OutcomeFailure,
			Detail: "unknown token 0123456789abcdef (not issued by this exchange, region AMERICAS: mistyped, or from another region)"},
			registry.AuditEntry{Reason: "token_unknown", DeviceName: "esa-unknown", TokenFingerprint: "0123456789abcdef"}},
		{"unknown token recorded before fingerprints", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-unknown",
			Outcome: registry.OutcomeFailure, Detail: "unknown token (not issued by this exchange, region AMERICAS: mistyped, or from another region)"},
			registry.AuditEntry{Reason: "token_unknown", DeviceName: "esa-unknown"}},
		{"token from another region", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-eu", Outcome: registry.OutcomeFailure,
			Detail: "token from another region: issued by EUROPE, presented to AMERICAS"},
			registry.AuditEntry{Reason: "token_other_region", DeviceName: "esa-eu", TokenRegion: "EUROPE"}},
		{"revoked token", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-revoked", Outcome: registry.OutcomeFailure,
			Detail: "revoked token " + tok.ID + " (revoked 2026-01-10T08:05:00Z)"},
			registry.AuditEntry{Reason: "token_revoked", DeviceName: "esa-revoked", TokenID: tok.ID, TokenFingerprint: fp}},
		{"expired token", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-expired", Outcome: registry.OutcomeFailure,
			Detail: "expired token " + tok.ID + " (expired 2026-01-10T09:05:00Z)"},
			registry.AuditEntry{Reason: "token_expired", DeviceName: "esa-expired", TokenID: tok.ID, TokenFingerprint: fp}},
		{"token used up", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-used-up", Outcome: registry.OutcomeFailure,
			Detail: "token " + tok.ID + " used up (all 1 device registered)"},
			registry.AuditEntry{Reason: "token_used_up", DeviceName: "esa-used-up", TokenID: tok.ID, TokenFingerprint: fp}},
		{"token used up by a concurrent registration", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-race",
			Outcome: registry.OutcomeFailure, Detail: "token used up (by a concurrent registration)"},
			registry.AuditEntry{Reason: "token_used_up", DeviceName: "esa-race"}},
		{"rate limited", registry.AuditEntry{Action: registry.ActionRegister, Outcome: registry.OutcomeFailure,
			Detail: "rate limited: too many registration attempts from this address"},
			registry.AuditEntry{Reason: "rate_limited"}},
		{"invalid request", registry.AuditEntry{Action: registry.ActionRegister, Target: "esa-bad", Outcome: registry.OutcomeFailure,
			Detail: `type "WSA": want ESA or SMA`},
			registry.AuditEntry{Reason: "invalid_request", DeviceName: "esa-bad"}},
		{"device edited", registry.AuditEntry{Action: registry.ActionDeviceEdit, Target: dev + " mail gateway", Outcome: registry.OutcomeSuccess,
			Detail: `name "gw1" → "mail gateway", description "" → ""`},
			registry.AuditEntry{DeviceID: dev, DeviceName: "mail gateway"}},
		{"device deleted", registry.AuditEntry{Action: registry.ActionDeviceDelete, Target: dev + " mail gateway", Outcome: registry.OutcomeSuccess,
			Detail: "deleted ESA mail gateway (15.0.1-104, registered from 192.0.2.7)"},
			registry.AuditEntry{DeviceID: dev, DeviceName: "mail gateway"}},
		{"device deregistered", registry.AuditEntry{Action: registry.ActionDeregister, Target: dev + " gw2", Outcome: registry.OutcomeSuccess,
			Detail: "the device deregistered itself"},
			registry.AuditEntry{DeviceID: dev, DeviceName: "gw2"}},
		{"cloud services", registry.AuditEntry{Action: registry.ActionCloudServices, Target: "Threat Response", Outcome: registry.OutcomeSuccess,
			Detail: "Threat Response enabled"}, registry.AuditEntry{}},
		{"api key", registry.AuditEntry{Action: registry.ActionAPIKeyCreate, Target: uuid.NewString() + " console", Outcome: registry.OutcomeSuccess,
			Detail: "API key created"}, registry.AuditEntry{}},
	}
	for i, tt := range tests {
		e := tt.legacy
		e.OrgID, e.Time, e.Actor, e.Source = org.ID, t0.Add(time.Duration(i)*time.Second), "admin", "192.0.2.1"
		must(t, "add a legacy entry", addLegacy(e))
	}

	s = upgrade(t)
	got, err := s.Audit(ctx, registry.AuditQuery{OrgIDs: []string{org.ID}, Limit: len(tests) + 1})
	must(t, "Audit", err)
	if len(got) != len(tests) {
		t.Fatalf("Audit after the migration = %d entries, want %d", len(got), len(tests))
	}
	slices.Reverse(got)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			want.ID, want.OrgID, want.Time, want.Actor, want.Source = got[i].ID, org.ID, t0.Add(time.Duration(i)*time.Second), "admin", "192.0.2.1"
			want.Action, want.Target, want.Outcome, want.Detail = tt.legacy.Action, tt.legacy.Target, tt.legacy.Outcome, tt.legacy.Detail
			if diff := cmp.Diff(want, got[i]); diff != "" {
				t.Errorf("entry %q after the migration mismatch (-want +got):\n%s", tt.legacy.Detail, diff)
			}
		})
	}
	// The device filter finds old entries by name in any case.
	found, err := s.Audit(ctx, registry.AuditQuery{OrgIDs: []string{org.ID}, Device: "GW1.EXAMPLE.COM", Limit: 10})
	must(t, "Audit", err)
	if len(found) != 1 || found[0].DeviceID != dev {
		t.Errorf("Audit(device GW1.EXAMPLE.COM) after the migration = %+v, want the registration", found)
	}
}
