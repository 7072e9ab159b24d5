package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
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

// fillMessages inserts n bare messages with MIDs 1…n (x), injected at x
// seconds, straight into the table, faster than Apply. set gives some
// columns an SQL expression of x.
func fillMessages(t *testing.T, s *TrackingStore, n int, set map[string]string) {
	t.Helper()
	cols := strings.Split(strings.NewReplacer("\n", "", "\t", "", " ", "").Replace(messageColumns), ",")
	vals := make([]string, len(cols))
	for i, c := range cols {
		if e, ok := set[c]; ok {
			vals[i] = e
			continue
		}
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
	fillMessages(t, s, tracking.SearchCountLimit+1, nil)
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

// TestSearchMessagesCommonValue checks the page of a search with more
// matches than it counts, found by an index lookup of a common value: it
// is read by walking the time index, and keeps every term and the cursor.
func TestSearchMessagesCommonValue(t *testing.T) {
	s := openSearchStore(t)
	fillMessages(t, s, 12_000, nil)
	// Every message is in 192.0.2.0/24; 12000 % 256 = 224.
	sq, err := tracking.ParseSearch(`ip:192.0.2.0/24 -ip:192.0.2.224`, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	q := tracking.SearchQuery{Search: sq, Limit: 3}
	for _, want := range [][]int64{{11999, 11998, 11997}, {11996, 11995, 11994}} {
		page, err := s.SearchMessages(context.Background(), q)
		if got := mids(page.Messages); err != nil || !slices.Equal(got, want) || page.Total != tracking.SearchCountLimit || !page.TotalCapped || page.Next == nil {
			t.Fatalf("SearchMessages after %v = %v (total %d, capped %v, next %v), %v; want %v, capped at %d, and a cursor",
				q.After, got, page.Total, page.TotalCapped, page.Next, err, want, tracking.SearchCountLimit)
		}
		q.After = page.Next
	}
}

// TestDrivenSearchPastKept checks searches whose candidates drive them
// and have more matches than readMatches keeps: it counts the rest, and
// the page is read from the newest rows of the window, or from the
// candidates when the count stopped early.
func TestDrivenSearchPastKept(t *testing.T) {
	ctx := context.Background()
	s := openSearchStore(t)
	n := 2*scanPageMatches + 1
	// Every odd MID holds "invoice": 10,001 matches. MID 1 is the newest,
	// so that the first candidates (the highest MIDs) are not the newest
	// matches. Every message is still queued for the indexer, so every one
	// is a candidate.
	fillMessages(t, s, n, map[string]string{
		"subject_lc":  "CASE WHEN x % 2 = 1 THEN 'quarterly invoice ' || x ELSE 'receipt ' || x END",
		"injected_at": "CASE WHEN x = 1 THEN x + 30000 ELSE x END * 1000000000",
	})
	for _, q := range []string{
		`INSERT INTO search_queue (mid) SELECT mid FROM messages`,
		`INSERT INTO mid_ranges (hour, min_mid, max_mid) SELECT injected_at / 3600000000000, min(mid), max(mid) FROM messages GROUP BY 1`,
	} {
		if _, err := s.db.W.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	top := []int64{1, int64(n), int64(n - 2)}
	// Every batch of candidates here is dense: with the default threshold
	// the search reads each range whole, with one no batch reaches it
	// seeks each candidate.
	defer func(d float64) { denseCandidates = d }(denseCandidates)
	for _, dense := range []float64{denseCandidates, 2} {
		denseCandidates = dense
		checkDrivenSearch(t, s, n, top)
	}
}

func checkDrivenSearch(t *testing.T, s *TrackingStore, n int, top []int64) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct {
		v                  string
		offset, countLimit int
		want               []int64
		total              int
		capped             bool
	}{
		{"invoice", 0, 0, top, scanPageMatches + 1, false},
		{"invoice", scanPageMatches, 0, []int64{3}, scanPageMatches + 1, false},
		{"invoice", 0, scanPageMatches, top, scanPageMatches, true},
		{"invoice", 0, 5, top, 5, true},
		{"invoice", 2, 5, []int64{int64(n - 2), int64(n - 4), int64(n - 6)}, 5, true},
		{"invoice 1999", 0, 0, []int64{19999, 19997, 19995}, 6, false},
	} {
		s.CountLimit = c.countLimit
		page, err := s.Search(ctx, tracking.Query{Start: time.Unix(0, 0), End: time.Unix(40000, 0), Subject: has(c.v), Offset: c.offset, Limit: 3})
		if got := mids(page.Messages); err != nil || !slices.Equal(got, c.want) || page.Total != c.total || page.TotalCapped != c.capped {
			t.Errorf("dense %v: %q, offset %d, count limit %d: Search = %v (total %d, capped %v), %v; want %v (total %d, capped %v)",
				denseCandidates, c.v, c.offset, c.countLimit, got, page.Total, page.TotalCapped, err, c.want, c.total, c.capped)
		}
	}
	sq, err := tracking.ParseSearch(`subject:invoice`, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.SearchMessages(ctx, tracking.SearchQuery{Search: sq, Limit: 3})
	if got := mids(page.Messages); err != nil || !slices.Equal(got, top) || page.Total != tracking.SearchCountLimit || !page.TotalCapped {
		t.Errorf("dense %v: SearchMessages = %v (total %d, capped %v), %v; want %v (total %d, capped)", denseCandidates, got, page.Total, page.TotalCapped, err, top, tracking.SearchCountLimit)
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
		// Substring terms: the candidates of the substring index drive,
		// each looked up in messages_text.
		{"from:alice", "messages_text (mid=?)"},
		{"host:relay", "messages_text (mid=?)"},
		{"url:tracker", "messages_text (mid=?)"},
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
		query, args := `SELECT mid FROM messages m`+w.sql()+` ORDER BY m.injected_at DESC, m.mid DESC LIMIT 50`, w.args
		if w.driven {
			query, args = w.drivenMatches(`SELECT m.mid`)
			query += ` LIMIT 50`
		}
		text := strings.Join(queryPlan(t, s.db.R, query, args...), "\n")
		if !strings.Contains(text, tt.want) || strings.Contains(text, "SCAN m\n") || strings.HasSuffix(text, "SCAN m") {
			t.Errorf("plan of %q does not use %s:\n%s", tt.q, tt.want, text)
		}
	}
}

// TestContainsPlans checks that the candidates of a "contains" drive its
// search, highest MID first as readMatches counts on, that the exact check
// of a subject or sender reads them from messages_text alone, and that the
// index named in the query leaves SQLite a plan for every other shape of
// search with candidates.
func TestContainsPlans(t *testing.T) {
	ctx := context.Background()
	s := openSearchStore(t)
	covering := "SEARCH m USING COVERING INDEX messages_text (mid=?)"
	for _, c := range []struct {
		q    tracking.Query
		want string // "" when the candidates cannot drive
	}{
		{tracking.Query{Subject: has("invoice")}, covering},
		{tracking.Query{Sender: has("alice")}, covering},
		{tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"invoice", "receipt"}}}, covering},
		// Too short to look up: every message is checked.
		{tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"in", "invoice"}}}, ""},
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
		if p.driven == nil {
			if c.want != "" {
				t.Errorf("%+v: the candidates do not drive", c.q)
			}
			continue
		}
		if c.want == "" {
			t.Errorf("%+v: candidates drive, but one value has none", c.q)
			continue
		}
		query, args := p.driven.drivenMatches(`SELECT m.mid`)
		plan := queryPlan(t, s.db.R, query+` LIMIT ?`, append(args, 100)...)
		if text := strings.Join(plan, "\n"); !strings.HasPrefix(plan[0], "SCAN c VIRTUAL TABLE") || !strings.Contains(text, c.want) {
			t.Errorf("plan of %+v: want the candidates first, then %q, in\n%s", c.q, c.want, text)
		}
		// Dense candidates: their range of messages_text, read backwards.
		dense := *p.driven
		dense.driver = midSet{9, 8, 7}
		query, args = dense.batchMatches(`SELECT m.mid`)
		plan = queryPlan(t, s.db.R, query+` LIMIT ?`, append(args, 100)...)
		if text := strings.Join(plan, "\n"); !strings.HasPrefix(text, "SEARCH m USING ") || !strings.Contains(text, "INDEX messages_text (mid>? AND mid<?)") || strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("plan of %+v with dense candidates: want a range of messages_text in order, got\n%s", c.q, text)
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
