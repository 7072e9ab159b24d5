package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/exchange/exchangetest"
	"github.com/sightline/sightline/internal/exchange/registry"
)

func TestExchangeStore(t *testing.T) {
	exchangetest.TestStore(t, func(t *testing.T) registry.Store {
		s, err := OpenExchange(context.Background(), filepath.Join(t.TempDir(), "exchange.db"))
		if err != nil {
			t.Fatalf("OpenExchange: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// auditFieldsVersion is the migration that gave audit entries their fields.
const auditFieldsVersion = 3

func TestExchangeAuditBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "exchange.db")
	var before []Migration
	for _, m := range exchangeMigrations {
		if m.Version < auditFieldsVersion {
			before = append(before, m)
		}
	}
	var old *ExchangeStore
	exchangetest.TestAuditBackfill(t, func(t *testing.T) (registry.Store, func(registry.AuditEntry) error) {
		db, err := Open(ctx, path, Options{Durable: true}, before)
		if err != nil {
			t.Fatalf("Open at version %d: %v", auditFieldsVersion-1, err)
		}
		old = &ExchangeStore{db: db, r: newStmtCache(db.R)}
		return old, func(e registry.AuditEntry) error {
			_, err := db.W.ExecContext(ctx, `INSERT INTO audit (org_id, time, actor, source, action, target, outcome, detail)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.OrgID, exUnix(e.Time), e.Actor, e.Source, e.Action, e.Target, e.Outcome, e.Detail)
			return err
		}
	}, func(t *testing.T) registry.Store {
		if err := old.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		s, err := OpenExchange(ctx, path)
		if err != nil {
			t.Fatalf("OpenExchange after version %d: %v", auditFieldsVersion-1, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
