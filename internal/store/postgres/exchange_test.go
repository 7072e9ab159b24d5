package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangetest"
	"github.com/sightline/sightline/internal/exchange/registry"
)

func openExchange(t *testing.T, dsn string) *ExchangeStore {
	t.Helper()
	s, err := OpenExchange(context.Background(), dsn)
	if err != nil {
		t.Fatalf("OpenExchange: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestExchangeStoreConformance(t *testing.T) {
	exchangetest.TestStore(t, func(t *testing.T) registry.Store {
		return openExchange(t, freshSchema(t))
	})
}

var t0 = time.Date(2026, 1, 10, 8, 5, 0, 0, time.UTC)

// TestRegisterAcrossReplicas runs 100 registrations at once on a 5-device
// token through two stores sharing one database, as two exchange replicas do.
func TestRegisterAcrossReplicas(t *testing.T) {
	dsn := freshSchema(t)
	replicas := []*ExchangeStore{openExchange(t, dsn), openExchange(t, dsn)}
	ctx := context.Background()
	org := registry.Organisation{ID: uuid.NewString(), Name: "Default", CreatedAt: t0}
	if err := replicas[0].CreateOrganisation(ctx, org); err != nil {
		t.Fatalf("CreateOrganisation: %v", err)
	}
	tok := registry.Token{ID: uuid.NewString(), OrgID: org.ID, Region: registry.RegionAmericas, Hash: registry.Hash("tok"),
		Devices: 5, Remaining: 5, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), CreatedBy: "admin"}
	if err := replicas[1].CreateToken(ctx, tok); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}

	const n = 100
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d := registry.Device{ID: uuid.NewString(), OrgID: org.ID, Name: fmt.Sprintf("esa%d", i), Type: registry.TypeESA,
				Status: registry.StatusRegistered, CredentialHash: registry.Hash(uuid.NewString()), CreatedAt: t0}
			errs[i] = replicas[i%2].RegisterDevice(ctx, tok.ID, t0, d)
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch sightline.ErrorKind(err) {
		case "":
			ok++
		case sightline.Conflict:
		default:
			t.Errorf("registration %d: RegisterDevice = %v, want success or Conflict", i, err)
		}
	}
	devices, err := replicas[0].Devices(ctx, org.ID)
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	after, err := replicas[1].TokenByHash(ctx, tok.Hash)
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	if ok != 5 || len(devices) != 5 || after.Remaining != 0 {
		t.Errorf("%d concurrent registrations on a 5-device token: %d succeeded, %d devices stored, %d remaining; want 5, 5, 0",
			n, ok, len(devices), after.Remaining)
	}
}

// TestExchangeStoreBeyondContract covers what PostgreSQL enforces beyond the
// conformance suite: references to missing organisations, zero and
// sub-second times, in records and in audit queries.
func TestExchangeStoreBeyondContract(t *testing.T) {
	s := openExchange(t, freshSchema(t))
	ctx := context.Background()

	err := s.CreateUser(ctx, registry.User{Name: "orphan", OrgID: uuid.NewString(), PasswordHash: "x", CreatedAt: t0})
	if got := sightline.ErrorKind(err); got != sightline.NotFound {
		t.Errorf("CreateUser(unknown organisation) = %v, want a NotFound error", err)
	}

	// A zero creation time reads back as zero, as with SQLite; sub-second
	// times keep at least their seconds.
	zero := registry.Organisation{ID: uuid.NewString(), Name: "zero"}
	fine := registry.Organisation{ID: uuid.NewString(), Name: "fine", CreatedAt: t0.Add(1500 * time.Millisecond)}
	for _, o := range []registry.Organisation{zero, fine} {
		if err := s.CreateOrganisation(ctx, o); err != nil {
			t.Fatalf("CreateOrganisation(%s): %v", o.Name, err)
		}
		got, err := s.Organisation(ctx, o.ID)
		if err != nil {
			t.Fatalf("Organisation(%s): %v", o.Name, err)
		}
		if diff := cmp.Diff(o, got); diff != "" {
			t.Errorf("Organisation(%s) mismatch (-want +got):\n%s", o.Name, diff)
		}
	}

	// Entries at sub-second times are found by a Since between them.
	for i := range 3 {
		at := t0.Add(time.Duration(i) * 400 * time.Millisecond)
		if err := s.AddAudit(ctx, registry.AuditEntry{OrgID: zero.ID, Time: at, Target: fmt.Sprint(i)}); err != nil {
			t.Fatalf("AddAudit: %v", err)
		}
	}
	tests := []struct {
		since time.Time
		limit int
		want  []string
	}{
		{time.Time{}, 10, []string{"2", "1", "0"}},
		{time.Time{}, 2, []string{"2", "1"}},
		{t0.Add(300 * time.Millisecond), 10, []string{"2", "1"}},
		{t0.Add(900 * time.Millisecond), 10, nil},
	}
	for _, tt := range tests {
		got, err := s.Audit(ctx, registry.AuditQuery{OrgIDs: []string{zero.ID}, Since: tt.since, Limit: tt.limit})
		var targets []string
		for _, e := range got {
			targets = append(targets, e.Target)
		}
		if err != nil || !cmp.Equal(targets, tt.want) {
			t.Errorf("Audit(since %v, limit %d) = %q, %v; want %q", tt.since, tt.limit, targets, err, tt.want)
		}
	}
}

// auditFieldsVersion is the migration that gave audit entries their fields.
const auditFieldsVersion = 3

func TestExchangeAuditBackfill(t *testing.T) {
	ctx := context.Background()
	dsn := freshSchema(t)
	var before []Migration
	for _, m := range exchangeMigrations {
		if m.Version < auditFieldsVersion {
			before = append(before, m)
		}
	}
	var old *ExchangeStore
	exchangetest.TestAuditBackfill(t, func(t *testing.T) (registry.Store, func(registry.AuditEntry) error) {
		db, err := Open(ctx, dsn, "exchange", before)
		if err != nil {
			t.Fatalf("Open at version %d: %v", auditFieldsVersion-1, err)
		}
		old = &ExchangeStore{db: db}
		return old, func(e registry.AuditEntry) error {
			_, err := db.Pool.Exec(ctx, `INSERT INTO audit (org_id, time, actor, source, action, target, outcome, detail)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.OrgID, e.Time, e.Actor, e.Source, e.Action, e.Target, e.Outcome, e.Detail)
			return err
		}
	}, func(t *testing.T) registry.Store {
		old.Close()
		return openExchange(t, dsn)
	})
}

// TestGenerationAcrossReplicas checks that a change through one replica's
// store moves the generation another replica reads, so that neither keeps
// a revoked key.
func TestGenerationAcrossReplicas(t *testing.T) {
	dsn := freshSchema(t)
	a, b := openExchange(t, dsn), openExchange(t, dsn)
	ctx := context.Background()
	org := registry.Organisation{ID: uuid.NewString(), Name: "Default", CreatedAt: t0}
	k := registry.APIKey{ID: uuid.NewString(), OrgID: org.ID, Name: "console", Hash: registry.Hash("k"), CreatedAt: t0, CreatedBy: "admin"}
	if err := a.CreateOrganisation(ctx, org); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	before, err := b.Generation(ctx)
	if err != nil {
		t.Fatalf("Generation: %v", err)
	}
	if err := a.DeleteAPIKey(ctx, org.ID, k.ID); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	if after, err := b.Generation(ctx); err != nil || after == before {
		t.Errorf("Generation() on the other replica = %d, %v after a key was revoked; want it moved from %d", after, err, before)
	}
}
