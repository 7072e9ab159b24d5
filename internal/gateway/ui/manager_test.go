package ui

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// TestSeedJourneyWithManager walks journey steps 1–4 and 6 against a real
// configuration manager on SQLite: nothing applies until the commit.
func TestSeedJourneyWithManager(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.OpenGateway(ctx, filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var applied []*config.Config
	m, err := config.NewManager(ctx, st, config.Default("gw.test"), func(c *config.Config) error {
		applied = append(applied, c)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := &fakeConnector{status: ConnectorStatus{State: ConnectorBusy}}
	e := signIn(t, Config{Settings: m, Connector: conn}, admin)

	// 1. The page shows Threat Response disabled, 2. Edit Settings opens the form.
	if got := text(e.get(t, "/network/cloud-service").doc); !strings.Contains(got, "Threat Response: Disabled") {
		t.Fatalf("step 1:\n%s", got)
	}
	form := e.get(t, "/network/cloud-service/edit")
	if sel := find(form.doc, func(n *htmlNode) bool { return n.Data == "option" && hasAttr(n, "selected") }); len(sel) != 1 || text(sel[0]) != "AMERICAS (127.0.0.1)" {
		t.Errorf("step 2: the default server is not AMERICAS")
	}

	// 3–4. Enable, Submit: staged only.
	p := e.submit(t, "/network/cloud-service", url.Values{"enabled": {"1"}, "server": {"AMERICAS"}})
	page := e.follow(t, p)
	if got := text(page.doc); !strings.Contains(got, pendingText) || !strings.Contains(got, "Threat Response: Enabled") || strings.Contains(got, "Cloud Services Settings") {
		t.Errorf("step 4, after Submit:\n%s", got)
	}
	if m.Running().Cloud.ThreatResponse || len(applied) != 1 {
		t.Fatal("Submit applied the change before the commit")
	}

	// Commit Changes: the success text, then the connector's busy status.
	p = e.submit(t, "/commit", url.Values{"comment": {"enable cloud service"}, "next": {"/network/cloud-service"}})
	got := text(e.follow(t, p).doc)
	for _, want := range []string{"Success — Your changes have been committed.", "Threat Response: Enabled",
		"Status: The Cisco Cloud Service is busy. Navigate back to this page after some time to check the appliance status."} {
		if !strings.Contains(got, want) {
			t.Errorf("after commit: no %q in:\n%s", want, got)
		}
	}
	if !m.Running().Cloud.ThreatResponse || len(applied) != 2 {
		t.Error("the commit did not apply")
	}
	if h, err := m.History(ctx); err != nil || h[0].Comment != "enable cloud service" {
		t.Errorf("History()[0] = %+v, %v", h[0], err)
	}

	// 6. Paste the token and Register.
	conn.status.State = ConnectorEnabled
	p = e.submit(t, "/network/cloud-service/register", url.Values{"token": {"a389f98df0e77c5411148e96e239e05d"}})
	conn.status.State = ConnectorInProgress
	got = text(e.follow(t, p).doc)
	for _, want := range []string{"Success — A request to register your appliance with the Cisco Threat Response portal is initiated.",
		"The appliance registration is in progress."} {
		if !strings.Contains(got, want) {
			t.Errorf("after Register: no %q in:\n%s", want, got)
		}
	}

	// A validation error from the manager is shown and nothing is staged.
	p = e.submit(t, "/network/smtp-routes", url.Values{"domain": {"corp.example"}, "hosts": {"USEDNS\nmx.corp.example"}})
	if !strings.Contains(text(p.doc), `SMTP route "corp.example": USEDNS cannot be mixed with hosts`) {
		t.Errorf("invalid route:\n%s", text(p.doc))
	}
	if pending, _ := m.HasPending(ctx, "admin"); pending {
		t.Error("an invalid route was staged")
	}
}

func hasAttr(n *htmlNode, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}
