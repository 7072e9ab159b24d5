package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

func openSearchStore(t *testing.T) *TrackingStore {
	t.Helper()
	s, err := OpenTracking(context.Background(), filepath.Join(t.TempDir(), "tracking.db"))
	if err != nil {
		t.Fatalf("OpenTracking: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// queryPlan is the detail column of EXPLAIN QUERY PLAN for query, a line
// per step.
func queryPlan(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// fillMessages inserts n bare messages with MIDs 1…n straight into the
// table, faster than Apply.
func fillMessages(t *testing.T, s *TrackingStore, n int) {
	t.Helper()
	cols := strings.Split(strings.NewReplacer("\n", "", "\t", "", " ", "").Replace(messageColumns), ",")
	vals := make([]string, len(cols))
	for i, c := range cols {
		switch c {
		case "mid", "icid":
			vals[i] = "x"
		case "injected_at":
			vals[i] = "x * 1000000000"
		case "size":
			vals[i] = "x"
		case "direction":
			vals[i] = "'incoming'"
		case "sender_ip":
			vals[i] = "'192.0.2.' || (x % 256)"
		case "has_inline":
			vals[i] = "0"
		default:
			vals[i] = "''"
		}
	}
	q := `WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)
		INSERT INTO messages (` + messageColumns + `) SELECT ` + strings.Join(vals, ", ") + ` FROM n`
	if _, err := s.db.W.ExecContext(context.Background(), q, n); err != nil {
		t.Fatalf("fill %d messages: %v", n, err)
	}
}

func TestSearchMessagesTotalCapped(t *testing.T) {
	s := openSearchStore(t)
	fillMessages(t, s, tracking.SearchCountLimit+1)
	tests := []struct {
		q      string
		total  int
		capped bool
	}{
		{"", tracking.SearchCountLimit, true},
		{"larger:1", tracking.SearchCountLimit, false},
		{"smaller:10001", tracking.SearchCountLimit, false},
		{"ip:192.0.2.0/24", tracking.SearchCountLimit, true},
		{"ip:192.0.2.0/25", 39*128 + 17, false}, // x % 256 < 128 for x in 1…10001
	}
	for _, tt := range tests {
		sq, err := tracking.ParseSearch(tt.q, time.UTC)
		if err != nil {
			t.Fatalf("ParseSearch(%q): %v", tt.q, err)
		}
		page, err := s.SearchMessages(context.Background(), tracking.SearchQuery{Search: sq, Limit: 3})
		if err != nil {
			t.Fatalf("SearchMessages(%q): %v", tt.q, err)
		}
		if page.Total != tt.total || page.TotalCapped != tt.capped || len(page.Messages) != 3 || page.Next == nil {
			t.Errorf("SearchMessages(%q) = total %d, capped %v, %d rows, next %v; want %d, %v, 3 rows and a cursor",
				tt.q, page.Total, page.TotalCapped, len(page.Messages), page.Next, tt.total, tt.capped)
		}
	}
}

// TestSearchMessagesPlans checks that selective terms are answered by their
// index rather than by a scan of messages.
func TestSearchMessagesPlans(t *testing.T) {
	s := openSearchStore(t)
	tests := []struct {
		q    string
		want string // in the plan
	}{
		{"ip:203.0.113.0/24", "messages_ip_key"},
		{"ip:203.0.113.7", "messages_sender_ip"},
		{"domain:.corp.example", "recipients_domain_rev"},
		{"domain:corp.example", "recipients_domain"},
		{"sha256:" + strings.Repeat("ab", 32), "attachments_sha256"},
		{"md5:" + strings.Repeat("ab", 16), "attachments_md5"},
		{"url:https://x.example/", "urls_url_folded"},
		{"message-id:a@b", "messages_message_id"},
		// Substring terms: the candidates of the substring index drive.
		{"from:alice", "SEARCH m USING INTEGER PRIMARY KEY"},
		{"host:relay", "SEARCH m USING INTEGER PRIMARY KEY"},
		{"url:tracker", "SEARCH m USING INTEGER PRIMARY KEY"},
		{"mid:7", "INTEGER PRIMARY KEY"},
		{"after:2026-01-01", "messages_time"},
	}
	for _, tt := range tests {
		sq, err := tracking.ParseSearch(tt.q, time.UTC)
		if err != nil {
			t.Fatalf("ParseSearch(%q): %v", tt.q, err)
		}
		tx, err := s.beginRead(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		subs, err := lookupSubstrings(context.Background(), tx, substringNeeds(sq), time.Time{}, time.Time{})
		tx.Rollback()
		if err != nil {
			t.Fatal(err)
		}
		w, _ := searchWhere(sq, subs)
		text := strings.Join(queryPlan(t, s.db.R, `SELECT mid FROM messages m`+w.sql()+
			` ORDER BY m.injected_at DESC, m.mid DESC LIMIT 50`, w.args...), "\n")
		if !strings.Contains(text, tt.want) || strings.Contains(text, "SCAN m\n") || strings.HasSuffix(text, "SCAN m") {
			t.Errorf("plan of %q does not use %s:\n%s", tt.q, tt.want, text)
		}
	}
}

// TestContainsPlans checks that the exact check of a subject or sender
// "contains" reads its candidates from messages_text alone, and that the
// index named in the query leaves SQLite a plan for every other shape of
// search with candidates.
func TestContainsPlans(t *testing.T) {
	ctx := context.Background()
	s := openSearchStore(t)
	covering := "SEARCH m USING COVERING INDEX messages_text (mid=?)"
	for _, c := range []struct {
		q    tracking.Query
		want string
	}{
		{tracking.Query{Subject: has("invoice")}, covering},
		{tracking.Query{Sender: has("alice")}, covering},
		{tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"invoice", "receipt"}}}, covering},
		// Too short to look up: every message is checked.
		{tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"in", "invoice"}}}, "SCAN m USING COVERING INDEX messages_text"},
		{tracking.Query{Subject: has("invoice"), Direction: "incoming", Recipient: has("bob")}, "SEARCH m USING INDEX messages_text (mid=?)"},
	} {
		tx, err := s.beginRead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := planSearch(ctx, tx, c.q)
		tx.Rollback()
		if err != nil {
			t.Fatal(err)
		}
		if text := strings.Join(queryPlan(t, s.db.R, p.matches, append(p.args, 100)...), "\n"); !strings.Contains(text, c.want) {
			t.Errorf("plan of %+v: want %q in\n%s", c.q, c.want, text)
		}
	}
}

// TestSearchMigrationBackfills saves records with the first schema only,
// then opens the file with the search migration: old records are found by
// the new indexes.
func TestSearchMigrationBackfills(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tracking.db")
	db, err := Open(ctx, path, Options{}, trackingMigrations[:1])
	if err != nil {
		t.Fatalf("Open version 1: %v", err)
	}
	// Rows as version 1 wrote them: every column of messages, one recipient
	// and one URL.
	values := map[string]any{"mid": 9, "icid": 1, "direction": "incoming", "injected_at": int64(100e9),
		"sender_ip": "203.0.113.9", "helo": "Old.Example", "friendly_from": "Old Timer <o@old.example>",
		"body_snippet": "legacy body", "status": tracking.StatusDelivered, "size": 10}
	v1Columns, _, _ := strings.Cut(messageColumns, ", header_to")
	cols := strings.Split(strings.Join(strings.Fields(v1Columns), ""), ",")
	args := make([]any, len(cols))
	for i, c := range cols {
		if v, ok := values[c]; ok {
			args[i] = v
		} else {
			args[i] = ""
		}
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO messages (` + v1Columns + `) VALUES (?` + strings.Repeat(`, ?`, len(cols)-1) + `)`, args},
		{`INSERT INTO recipients (mid, rid, address, address_lc, domain, status, reply) VALUES (9, 0, 'u@sub.old.example', 'u@sub.old.example', 'sub.old.example', 'Delivered', '')`, nil},
		{`INSERT INTO urls (mid, idx, url) VALUES (9, 0, 'https://old.example/x')`, nil},
	} {
		if _, err := db.W.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("write a version 1 row: %v", err)
		}
	}
	db.Close()

	s, err := OpenTracking(ctx, path)
	if err != nil {
		t.Fatalf("OpenTracking after version 1: %v", err)
	}
	defer s.Close()
	// Found while queued for the indexer, and once indexed.
	for _, state := range []string{"queued", "indexed"} {
		if state == "indexed" {
			if n, err := s.IndexPending(ctx, 10); n != 1 || err != nil {
				t.Fatalf("IndexPending after migration = %d, %v; want 1 message", n, err)
			}
		}
		for _, q := range []string{"host:old.example", "from:timer", "legacy", "url:old.example/", "ip:203.0.113.0/24", "domain:.old.example"} {
			sq, err := tracking.ParseSearch(q, time.UTC)
			if err != nil {
				t.Fatalf("ParseSearch(%q): %v", q, err)
			}
			page, err := s.SearchMessages(ctx, tracking.SearchQuery{Search: sq})
			if err != nil || len(page.Messages) != 1 {
				t.Errorf("%s: SearchMessages(%q) after migration = %d messages, %v; want MID 9", state, q, len(page.Messages), err)
			}
		}
	}
}
