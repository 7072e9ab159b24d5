// Package recordstest is the conformance suite of the console's
// records.Store: every implementation runs TestStore against a fresh store.
package recordstest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/ctim"
)

// TestStore runs the conformance suite; open must return an empty store,
// closed by the test's cleanup.
func TestStore(t *testing.T, open func(t *testing.T) records.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s records.Store)
	}{
		{"Organisations", testOrganisations},
		{"Users", testUsers},
		{"Clients", testClients},
		{"SigningKeys", testSigningKeys},
		{"Instances", testInstances},
		{"ModuleTypes", testModuleTypes},
		{"Entities", testEntities},
		{"Secrets", testSecrets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// t0 is a fixed instant, whole seconds, as stores keep them.
var t0 = time.Date(2026, 1, 10, 8, 5, 0, 0, time.UTC)

var ctx = context.Background()

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

func newOrg(t *testing.T, s records.Store, name string) records.Organisation {
	t.Helper()
	o := records.Organisation{ID: uuid.NewString(), Name: name, CreatedAt: t0}
	must(t, "CreateOrganisation", s.CreateOrganisation(ctx, o))
	return o
}

func testOrganisations(t *testing.T, s records.Store) {
	a := newOrg(t, s, "Acme")
	wantKind(t, "CreateOrganisation(duplicate name)",
		s.CreateOrganisation(ctx, records.Organisation{ID: uuid.NewString(), Name: "Acme", CreatedAt: t0}), sightline.Conflict)
	must(t, "SetExchangeKey", s.SetExchangeKey(ctx, a.ID, "k1"))
	a.ExchangeKey = "k1"
	got, err := s.Organisation(ctx, a.ID)
	must(t, "Organisation", err)
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("Organisation(%s) mismatch (-want +got):\n%s", a.ID, diff)
	}
	got, err = s.OrganisationByName(ctx, "Acme")
	if err != nil || got.ID != a.ID {
		t.Errorf("OrganisationByName(Acme) = %+v, %v; want %s", got, err, a.ID)
	}
	b := newOrg(t, s, "Bravo")
	all, err := s.Organisations(ctx)
	must(t, "Organisations", err)
	if diff := cmp.Diff([]records.Organisation{a, b}, all); diff != "" {
		t.Errorf("Organisations mismatch (-want +got):\n%s", diff)
	}
	_, err = s.Organisation(ctx, "nope")
	wantKind(t, "Organisation(nope)", err, sightline.NotFound)
	wantKind(t, "SetExchangeKey(nope)", s.SetExchangeKey(ctx, "nope", "k"), sightline.NotFound)
}

func testUsers(t *testing.T, s records.Store) {
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	u := records.User{Name: "ann", OrgID: a.ID, Role: records.RoleAnalyst, PasswordHash: "$2a$x", CreatedAt: t0}
	must(t, "CreateUser", s.CreateUser(ctx, u))
	wantKind(t, "CreateUser(duplicate)", s.CreateUser(ctx, records.User{Name: "ann", OrgID: b.ID, Role: records.RoleAdmin, PasswordHash: "h", CreatedAt: t0}), sightline.Conflict)
	got, err := s.User(ctx, "ann")
	must(t, "User", err)
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("User(ann) mismatch (-want +got):\n%s", diff)
	}
	list, err := s.Users(ctx, b.ID)
	if err != nil || len(list) != 0 {
		t.Errorf("Users(B) = %v, %v; want none", list, err)
	}
	wantKind(t, "SetUserPassword(other org)", s.SetUserPassword(ctx, b.ID, "ann", "$2a$new"), sightline.NotFound)
	must(t, "SetUserPassword", s.SetUserPassword(ctx, a.ID, "ann", "$2a$new"))
	if got, _ := s.User(ctx, "ann"); got.PasswordHash != "$2a$new" || got.Role != u.Role {
		t.Errorf("after SetUserPassword User(ann) = %+v, want the new hash and the same role", got)
	}
	wantKind(t, "DeleteUser(other org)", s.DeleteUser(ctx, b.ID, "ann"), sightline.NotFound)
	must(t, "DeleteUser", s.DeleteUser(ctx, a.ID, "ann"))
	_, err = s.User(ctx, "ann")
	wantKind(t, "User(deleted)", err, sightline.NotFound)
}

func testClients(t *testing.T, s records.Store) {
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	c1 := records.Client{ID: "client-" + uuid.NewString(), OrgID: a.ID, Name: "soar", SecretHash: records.Hash("s1"),
		Scopes: []string{"enrich:read", "inspect:read"}, CreatedAt: t0, CreatedBy: "admin"}
	c2 := c1
	c2.ID, c2.Name, c2.Scopes, c2.CreatedAt = "client-"+uuid.NewString(), "two", []string{"admin"}, t0.Add(time.Second)
	must(t, "CreateClient", s.CreateClient(ctx, c1))
	must(t, "CreateClient", s.CreateClient(ctx, c2))
	wantKind(t, "CreateClient(duplicate)", s.CreateClient(ctx, c1), sightline.Conflict)
	got, err := s.Client(ctx, c1.ID)
	must(t, "Client", err)
	if diff := cmp.Diff(c1, got); diff != "" {
		t.Errorf("Client mismatch (-want +got):\n%s", diff)
	}
	list, err := s.Clients(ctx, a.ID)
	must(t, "Clients", err)
	if diff := cmp.Diff([]records.Client{c1, c2}, list); diff != "" {
		t.Errorf("Clients(A) mismatch (-want +got):\n%s", diff)
	}
	wantKind(t, "DeleteClient(other org)", s.DeleteClient(ctx, b.ID, c1.ID), sightline.NotFound)
	must(t, "DeleteClient", s.DeleteClient(ctx, a.ID, c1.ID))
	_, err = s.Client(ctx, c1.ID)
	wantKind(t, "Client(deleted)", err, sightline.NotFound)
}

func testSigningKeys(t *testing.T, s records.Store) {
	k1 := records.SigningKey{ID: "k1", Private: []byte{1, 2, 3}, CreatedAt: t0}
	k2 := records.SigningKey{ID: "k2", Private: []byte{4}, CreatedAt: t0.Add(time.Hour)}
	must(t, "AddSigningKey", s.AddSigningKey(ctx, k1))
	must(t, "AddSigningKey", s.AddSigningKey(ctx, k2))
	wantKind(t, "AddSigningKey(duplicate)", s.AddSigningKey(ctx, k1), sightline.Conflict)
	got, err := s.SigningKeys(ctx, time.Time{})
	must(t, "SigningKeys", err)
	if diff := cmp.Diff([]records.SigningKey{k2, k1}, got); diff != "" {
		t.Errorf("SigningKeys mismatch (-want +got):\n%s", diff)
	}
	got, _ = s.SigningKeys(ctx, t0.Add(time.Minute))
	if len(got) != 1 || got[0].ID != "k2" {
		t.Errorf("SigningKeys(since k1) = %v, want k2 only", got)
	}
	// The newest key stays even when it is older than the cut.
	must(t, "DeleteSigningKeys", s.DeleteSigningKeys(ctx, t0.Add(2*time.Hour)))
	got, _ = s.SigningKeys(ctx, time.Time{})
	if len(got) != 1 || got[0].ID != "k2" {
		t.Errorf("SigningKeys after DeleteSigningKeys = %v, want k2 only", got)
	}
}

func testInstances(t *testing.T, s records.Store) {
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	in := records.Instance{Instance: module.Instance{ID: uuid.NewString(), TypeID: uuid.NewString(), Kind: module.KindESA,
		Name: "gw1", OrgID: a.ID, Enabled: true, Settings: json.RawMessage(`{"device_id":"d1","timeframe_days":30}`)},
		CreatedAt: t0, UpdatedAt: t0}
	must(t, "CreateInstance", s.CreateInstance(ctx, in))
	wantKind(t, "CreateInstance(duplicate)", s.CreateInstance(ctx, in), sightline.Conflict)
	got, err := s.Instance(ctx, a.ID, in.ID)
	must(t, "Instance", err)
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("Instance mismatch (-want +got):\n%s", diff)
	}
	_, err = s.Instance(ctx, b.ID, in.ID)
	wantKind(t, "Instance(other org)", err, sightline.NotFound)
	in.Name, in.Enabled, in.Settings, in.UpdatedAt = "gw2", false, json.RawMessage(`{"device_id":"d2"}`), t0.Add(time.Hour)
	must(t, "UpdateInstance", s.UpdateInstance(ctx, in))
	list, err := s.Instances(ctx, a.ID)
	must(t, "Instances", err)
	if diff := cmp.Diff([]records.Instance{in}, list); diff != "" {
		t.Errorf("Instances after update mismatch (-want +got):\n%s", diff)
	}
	other := in
	other.OrgID = b.ID
	wantKind(t, "UpdateInstance(other org)", s.UpdateInstance(ctx, other), sightline.NotFound)
	wantKind(t, "DeleteInstance(other org)", s.DeleteInstance(ctx, b.ID, in.ID), sightline.NotFound)
	must(t, "DeleteInstance", s.DeleteInstance(ctx, a.ID, in.ID))
	list, _ = s.Instances(ctx, a.ID)
	if len(list) != 0 {
		t.Errorf("Instances after delete = %v, want none", list)
	}
}

func testModuleTypes(t *testing.T, s records.Store) {
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	mt := records.ModuleType{ID: uuid.NewString(), OrgID: a.ID, Title: "Intel", Record: json.RawMessage(`{"title":"Intel"}`),
		CreatedAt: t0, CreatedBy: "admin"}
	must(t, "CreateModuleType", s.CreateModuleType(ctx, mt))
	wantKind(t, "CreateModuleType(duplicate id)", s.CreateModuleType(ctx, mt), sightline.Conflict)
	same := mt
	same.ID = uuid.NewString()
	wantKind(t, "CreateModuleType(duplicate title)", s.CreateModuleType(ctx, same), sightline.Conflict)
	// Another organisation may use the same title.
	inB := same
	inB.OrgID = b.ID
	must(t, "CreateModuleType(other org, same title)", s.CreateModuleType(ctx, inB))
	first := mt
	first.ID, first.Title = uuid.NewString(), "Abuse"
	must(t, "CreateModuleType", s.CreateModuleType(ctx, first))

	got, err := s.ModuleType(ctx, a.ID, mt.ID)
	must(t, "ModuleType", err)
	if diff := cmp.Diff(mt, got); diff != "" {
		t.Errorf("ModuleType mismatch (-want +got):\n%s", diff)
	}
	_, err = s.ModuleType(ctx, b.ID, mt.ID)
	wantKind(t, "ModuleType(other org)", err, sightline.NotFound)
	list, err := s.ModuleTypes(ctx, a.ID)
	must(t, "ModuleTypes", err)
	if diff := cmp.Diff([]records.ModuleType{first, mt}, list); diff != "" {
		t.Errorf("ModuleTypes(A) mismatch (-want +got):\n%s", diff)
	}

	// A type in use stays; the instance of another organisation does not count.
	in := records.Instance{Instance: module.Instance{ID: uuid.NewString(), TypeID: mt.ID, Kind: module.KindRelay,
		Name: "intel", OrgID: a.ID, Enabled: true, Settings: json.RawMessage(`{}`)}, CreatedAt: t0, UpdatedAt: t0}
	must(t, "CreateInstance", s.CreateInstance(ctx, in))
	wantKind(t, "DeleteModuleType(in use)", s.DeleteModuleType(ctx, a.ID, mt.ID), sightline.Conflict)
	wantKind(t, "DeleteModuleType(other org)", s.DeleteModuleType(ctx, b.ID, mt.ID), sightline.NotFound)
	must(t, "DeleteInstance", s.DeleteInstance(ctx, a.ID, in.ID))
	must(t, "DeleteModuleType", s.DeleteModuleType(ctx, a.ID, mt.ID))
	_, err = s.ModuleType(ctx, a.ID, mt.ID)
	wantKind(t, "ModuleType(deleted)", err, sightline.NotFound)
	wantKind(t, "DeleteModuleType(deleted)", s.DeleteModuleType(ctx, a.ID, mt.ID), sightline.NotFound)
	if _, err := s.ModuleType(ctx, b.ID, inB.ID); err != nil {
		t.Errorf("ModuleType(B) after A's delete: %v", err)
	}
}

func testEntities(t *testing.T, s records.Store) {
	a, b := newOrg(t, s, "A"), newOrg(t, s, "B")
	ip := ctim.Observable{Type: "ip", Value: "203.0.113.25"}
	dom := ctim.Observable{Type: "domain", Value: "evil.example"}
	e := records.Entity{OrgID: a.ID, Type: "judgement", ID: ctim.NewShortID("judgement"),
		Doc: json.RawMessage(`{"n":1}`), Observables: []ctim.Observable{ip}}
	must(t, "CreateEntity", s.CreateEntity(ctx, e))
	wantKind(t, "CreateEntity(duplicate)", s.CreateEntity(ctx, e), sightline.Conflict)
	e2 := records.Entity{OrgID: a.ID, Type: "judgement", ID: ctim.NewShortID("judgement"), Doc: json.RawMessage(`{"n":2}`),
		Observables: []ctim.Observable{dom}}
	must(t, "CreateEntity", s.CreateEntity(ctx, e2))
	// The same observable in another organisation must not show.
	must(t, "CreateEntity", s.CreateEntity(ctx, records.Entity{OrgID: b.ID, Type: "judgement", ID: ctim.NewShortID("judgement"),
		Doc: json.RawMessage(`{}`), Observables: []ctim.Observable{ip}}))

	got, err := s.Entity(ctx, a.ID, "judgement", e.ID)
	must(t, "Entity", err)
	e.Version = 1
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("Entity mismatch (-want +got):\n%s", diff)
	}
	_, err = s.Entity(ctx, b.ID, "judgement", e.ID)
	wantKind(t, "Entity(other org)", err, sightline.NotFound)
	_, err = s.Entity(ctx, a.ID, "sighting", e.ID)
	wantKind(t, "Entity(other type)", err, sightline.NotFound)

	ids := func(es []records.Entity) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	all, err := s.Entities(ctx, a.ID, "judgement", nil)
	must(t, "Entities", err)
	if diff := cmp.Diff([]string{e.ID, e2.ID}, ids(all)); diff != "" {
		t.Errorf("Entities(A) mismatch (-want +got):\n%s", diff)
	}
	byIP, err := s.Entities(ctx, a.ID, "judgement", &ip)
	must(t, "Entities(ip)", err)
	if diff := cmp.Diff([]string{e.ID}, ids(byIP)); diff != "" {
		t.Errorf("Entities(A, ip) mismatch (-want +got):\n%s", diff)
	}

	// Update at the read version; a stale version is a conflict.
	e.Doc, e.Observables = json.RawMessage(`{"n":3}`), []ctim.Observable{dom}
	must(t, "UpdateEntity", s.UpdateEntity(ctx, e))
	wantKind(t, "UpdateEntity(stale)", s.UpdateEntity(ctx, e), sightline.Conflict)
	got, _ = s.Entity(ctx, a.ID, "judgement", e.ID)
	if got.Version != 2 || string(got.Doc) != `{"n":3}` {
		t.Errorf("Entity after update = version %d doc %s, want 2 {\"n\":3}", got.Version, got.Doc)
	}
	byIP, _ = s.Entities(ctx, a.ID, "judgement", &ip)
	if len(byIP) != 0 {
		t.Errorf("Entities(A, ip) after re-index = %v, want none", ids(byIP))
	}
	missing := e
	missing.ID = ctim.NewShortID("judgement")
	wantKind(t, "UpdateEntity(missing)", s.UpdateEntity(ctx, missing), sightline.NotFound)

	wantKind(t, "DeleteEntity(other org)", s.DeleteEntity(ctx, b.ID, "judgement", e.ID), sightline.NotFound)
	must(t, "DeleteEntity", s.DeleteEntity(ctx, a.ID, "judgement", e.ID))
	byDom, _ := s.Entities(ctx, a.ID, "judgement", &dom)
	if diff := cmp.Diff([]string{e2.ID}, ids(byDom)); diff != "" {
		t.Errorf("Entities(A, domain) after delete mismatch (-want +got):\n%s", diff)
	}
}

func testSecrets(t *testing.T, s records.Store) {
	first, err := s.Secret(ctx, "k", []byte("one"))
	must(t, "Secret", err)
	second, err := s.Secret(ctx, "k", []byte("two"))
	must(t, "Secret again", err)
	if string(first) != "one" || string(second) != "one" {
		t.Errorf("Secret(k) = %q then %q, want the first candidate kept: one, one", first, second)
	}
	other, err := s.Secret(ctx, "other", []byte("three"))
	if err != nil || string(other) != "three" {
		t.Errorf("Secret(other) = %q, %v; want three", other, err)
	}
}
