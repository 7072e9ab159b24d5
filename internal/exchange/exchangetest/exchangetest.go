// Package exchangetest is the conformance suite of the exchange's
// registry.Store: every implementation runs TestStore against a fresh store.
package exchangetest

import (
	"context"
	"fmt"
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
	var want []registry.AuditEntry
	for i := range 3 {
		e := registry.AuditEntry{OrgID: a.ID, Time: t0.Add(time.Duration(i) * time.Second), Actor: "admin",
			Source: "192.0.2.1", Action: registry.ActionTokenCreate, Target: fmt.Sprint(i), Outcome: registry.OutcomeSuccess, Detail: "1 device"}
		must(t, "AddAudit", s.AddAudit(ctx, e))
		want = append([]registry.AuditEntry{e}, want...)
	}
	must(t, "AddAudit", s.AddAudit(ctx, registry.AuditEntry{OrgID: b.ID, Time: t0, Action: registry.ActionTokenRevoke}))
	must(t, "AddAudit", s.AddAudit(ctx, registry.AuditEntry{Time: t0, Action: registry.ActionRegister,
		Outcome: registry.OutcomeFailure, Detail: "unknown token"}))

	got, err := s.Audit(ctx, a.ID, 2)
	must(t, "Audit", err)
	ignoreID := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".ID" }, cmp.Ignore())
	if diff := cmp.Diff(want[:2], got, ignoreID); diff != "" {
		t.Errorf("Audit(A, 2) mismatch (-want +got):\n%s", diff)
	}
	if len(got) == 2 && got[0].ID <= got[1].ID {
		t.Errorf("Audit(A) IDs %d, %d: want newest (largest) first", got[0].ID, got[1].ID)
	}
	none, err := s.Audit(ctx, "", 10)
	must(t, "Audit", err)
	if len(none) != 1 || none[0].Detail != "unknown token" {
		t.Errorf("Audit(\"\") = %+v, want the one entry of no organisation", none)
	}
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
