package config_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/store/sqlite"
)

func openManager(t *testing.T, path string, applied *[]*config.Config, failApply *bool) *config.Manager {
	t.Helper()
	st, err := sqlite.OpenGateway(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := config.NewManager(context.Background(), st, config.Default("gw.test"), func(c *config.Config) error {
		if failApply != nil && *failApply {
			return errors.New("apply refused")
		}
		*applied = append(*applied, c)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCommitModel(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	var applied []*config.Config
	fail := false
	m := openManager(t, path, &applied, &fail)
	if len(applied) != 1 {
		t.Fatalf("NewManager applied %d configurations, want 1", len(applied))
	}

	if _, err := m.Commit(ctx, "admin", "nothing"); !errors.Is(err, config.ErrNothingToCommit) {
		t.Errorf("Commit without changes = %v, want %v", err, config.ErrNothingToCommit)
	}
	enable := func(c *config.Config) error { c.Cloud.ThreatResponse, c.Cloud.Server = true, "EUROPE"; return nil }
	if err := m.Edit(ctx, "admin", enable); err != nil {
		t.Fatal(err)
	}
	if m.Running().Cloud.ThreatResponse {
		t.Errorf("a staged change is running before the commit")
	}
	if ok, _ := m.HasPending(ctx, "admin"); !ok {
		t.Errorf("HasPending(admin) = false after Edit, want true")
	}
	if ok, _ := m.HasPending(ctx, "operator"); ok {
		t.Errorf("HasPending(operator) = true, want pending copies per user")
	}
	if _, err := m.Commit(ctx, "admin", "enable cloud service"); err != nil {
		t.Fatal(err)
	}
	if got := m.Running().Cloud; !got.ThreatResponse || got.Server != "EUROPE" {
		t.Errorf("running cloud = %+v after commit, want enabled on EUROPE", got)
	}
	if last := applied[len(applied)-1]; !last.Cloud.ThreatResponse {
		t.Errorf("commit did not apply the new configuration")
	}

	// A bad value is refused when staged, naming the setting.
	err := m.Edit(ctx, "admin", func(c *config.Config) error { c.Cloud.Server = "MARS"; return nil })
	if sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("Edit(server MARS) = %v, want an Invalid error", err)
	}

	// Clear drops staged changes.
	m.Edit(ctx, "admin", func(c *config.Config) error { c.Hostname = "other"; return nil })
	if ok, _ := m.Clear(ctx, "admin"); !ok {
		t.Errorf("Clear = false, want true with staged changes")
	}
	if ok, _ := m.Clear(ctx, "admin"); ok {
		t.Errorf("second Clear = true, want false")
	}

	// An apply failure leaves the running configuration and the pending copy.
	m.Edit(ctx, "admin", func(c *config.Config) error { c.Hostname = "broken"; return nil })
	fail = true
	if _, err := m.Commit(ctx, "admin", "will fail"); err == nil {
		t.Errorf("Commit with a failing apply = nil, want the error")
	}
	fail = false
	if m.Running().Hostname != "gw.test" {
		t.Errorf("running hostname = %q after a failed commit, want gw.test", m.Running().Hostname)
	}

	// Rollback to the initial configuration.
	hist, err := m.History(ctx)
	if err != nil || len(hist) != 2 {
		t.Fatalf("History = %v, %v; want 2 commits", hist, err)
	}
	if _, err := m.Rollback(ctx, "admin", hist[1].ID); err != nil {
		t.Fatal(err)
	}
	if m.Running().Cloud.ThreatResponse {
		t.Errorf("after rollback to the initial configuration Threat Response is still enabled")
	}

	// The running configuration survives a restart.
	m.Edit(ctx, "admin", enable)
	m.Commit(ctx, "admin", "again")
	var applied2 []*config.Config
	m2 := openManager(t, path, &applied2, nil)
	if !m2.Running().Cloud.ThreatResponse || len(applied2) != 1 || !applied2[0].Cloud.ThreatResponse {
		t.Errorf("after restart running = %+v, want the last commit applied", m2.Running().Cloud)
	}
}
