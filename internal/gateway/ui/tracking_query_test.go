package ui

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

func TestTrackingQuerySearch(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.OpenTracking(ctx, filepath.Join(t.TempDir(), "tracking.db"))
	if err != nil {
		t.Fatalf("OpenTracking: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	var ms []*tracking.Message
	for i := int64(1); i <= 30; i++ {
		subject := "weekly report"
		if i%5 == 0 {
			subject = "invoice 4471"
		}
		ms = append(ms, &tracking.Message{MID: i, ICID: i, Direction: "incoming", InjectedAt: testNow.Add(-time.Duration(30-i) * time.Minute),
			Sender: fmt.Sprintf("s%d@sender.example", i), Subject: subject, Status: tracking.StatusDelivered,
			Recipients: []tracking.Recipient{{Address: "bob@corp.example"}}})
	}
	if err := st.Apply(ctx, tracking.Batch{Messages: ms}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	e := newEnv(t, Config{Tracking: st})

	p := e.get(t, "/monitor/tracking")
	if len(find(p.doc, func(n *html.Node) bool { return attr(n, "name") == "q" })) != 1 {
		t.Fatalf("Message Tracking lacks the query box:\n%s", p.body)
	}

	p = e.get(t, "/monitor/tracking?q="+`subject%3A%22invoice+4471%22`)
	if p.status != http.StatusOK {
		t.Fatalf("query search = %d, want 200:\n%s", p.status, p.body)
	}
	rows := table(p, "results")
	if len(rows) != 7 || rows[1][1] != "30" || rows[6][1] != "5" {
		t.Errorf("query results = %v, want a header and MIDs 30, 25, 20, 15, 10, 5", rows)
	}

	// Paging follows the cursor.
	p = e.get(t, "/monitor/tracking?q=report&size=20")
	rows = table(p, "results")
	if len(rows) != 21 || !strings.Contains(text(p.doc), "Displaying 1 — 20 of 24 items.") {
		t.Fatalf("first page has %d rows, want a header and 20:\n%s", len(rows), text(p.doc))
	}
	next := find(p.doc, func(n *html.Node) bool { return n.Data == "a" && attr(n, "rel") == "next" })
	if len(next) == 0 {
		t.Fatalf("first page has no Next link")
	}
	p = e.get(t, attr(next[0], "href"))
	rows = table(p, "results")
	if p.status != http.StatusOK || len(rows) != 5 || rows[1][1] != "4" || rows[4][1] != "1" ||
		!strings.Contains(text(p.doc), "Displaying 21 — 24 of 24 items.") {
		t.Fatalf("second page = %d with rows %v, want 200 and MIDs 4 to 1 as 21 — 24", p.status, rows)
	}

	// A bad term is named in the banner.
	p = e.get(t, "/monitor/tracking?q=from%3Ax+after%3A31%2F12%2F2025")
	if p.status != http.StatusBadRequest {
		t.Errorf("bad query = %d, want 400", p.status)
	}
	if want := `invalid term "after:31/12/2025": ambiguous date; use yyyy-mm-dd.`; !strings.Contains(text(p.doc), want) {
		t.Errorf("bad query page lacks %q:\n%s", want, text(p.doc))
	}
	p = e.get(t, "/monitor/tracking?q=x&cursor=nope")
	if p.status != http.StatusBadRequest || !strings.Contains(text(p.doc), "invalid cursor.") {
		t.Errorf("bad cursor = %d, want 400 naming the cursor", p.status)
	}
}

func TestTrackingQueryUnavailable(t *testing.T) {
	e := newEnv(t, Config{Tracking: newTracker(3)})
	if p := e.get(t, "/monitor/tracking?q=x"); p.status != http.StatusServiceUnavailable {
		t.Errorf("query search without a SearchStore = %d, want 503", p.status)
	}
}
