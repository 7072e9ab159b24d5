package sqlite

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// TestEraEncoding checks that an era row reads back as packed, that
// sightline_era_or is the union of two rows chunk by chunk, and that a
// malformed row is an error.
func TestEraEncoding(t *testing.T) {
	rows := map[string]map[int][]uint16{
		"empty":  {},
		"first":  {0: {1, 2}},
		"last":   {eraChunks - 1: {chunkMIDs - 1}},
		"dense":  {3: seq(0, chunkMIDs, 2), 4: seq(1, 300, 1)},
		"sparse": {0: {7}, 3: {9, 4000}, 9: {0}},
	}
	pack := func(chunks map[int][]uint16) []byte {
		var ecs []eraChunk
		for i := range eraChunks {
			if offs, ok := chunks[i]; ok {
				ecs = append(ecs, eraChunk{i, encodeChunk(offs)})
			}
		}
		return packEra(ecs)
	}
	unpack := func(p []byte) (map[int][]uint16, error) {
		out := map[int][]uint16{}
		err := eachEraChunk(p, func(i int, bits []byte) error {
			var b chunkBits
			err := b.or(bits)
			out[i] = offsetsOf(&b)
			return err
		})
		return out, err
	}
	s := openSearchStore(t)
	for an, a := range rows {
		if got, err := unpack(pack(a)); err != nil || !equalEra(got, a) {
			t.Errorf("%s: read back %v, %v; want %v", an, got, err, a)
		}
		for bn, b := range rows {
			want := map[int][]uint16{}
			for _, r := range []map[int][]uint16{a, b} {
				for i, offs := range r {
					want[i] = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(want[i]), offs...))))
				}
			}
			var p []byte
			if err := s.db.R.QueryRow(`SELECT sightline_era_or(?, ?)`, pack(a), pack(b)).Scan(&p); err != nil {
				t.Fatalf("sightline_era_or(%s, %s): %v", an, bn, err)
			}
			if got, err := unpack(p); err != nil || !equalEra(got, want) || !slices.Equal(p, pack(want)) {
				t.Errorf("sightline_era_or(%s, %s) = %v, %v; want %v in its canonical encoding", an, bn, got, err, want)
			}
		}
	}
	for _, bad := range [][]byte{{0, 4}, {eraChunks, 2, 0, 1, 0}, {0, 9, 0, 1}, {0, 3, 0, 1, 2, 3}} {
		if _, err := unpack(bad); err == nil {
			t.Errorf("eachEraChunk(%x): no error", bad)
		}
	}
}

func seq(from, to, step int) []uint16 {
	var out []uint16
	for i := from; i < to; i += step {
		out = append(out, uint16(i))
	}
	return out
}

func equalEra(a, b map[int][]uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i, offs := range a {
		if !slices.Equal(offs, b[i]) {
			return false
		}
	}
	return true
}

// TestSealedEras checks "contains" before, during and after the sealing of
// complete eras, step by step: across era and chunk boundaries, with a
// window that cuts an era, for every field a step has sealed or not, with
// a message saved again into a sealed era (dirty, then sealed again), and
// that sealing moves every row of a sealed era out of grams.
func TestSealedEras(t *testing.T) {
	ctx := context.Background()
	s := openSearchStore(t)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	at := func(mid int64) time.Time { return base.Add(time.Duration(mid) * time.Second) }
	msg := func(mid int64, subject, rcpt string) *tracking.Message {
		return &tracking.Message{MID: mid, InjectedAt: at(mid), Sender: fmt.Sprintf("sender%d@b.example", mid%3), Subject: subject,
			Recipients: []tracking.Recipient{{Address: rcpt}}, BodySnippet: fmt.Sprintf("Body of message %d.", mid%4)}
	}
	saved := map[int64]*tracking.Message{}
	apply := func(ms ...*tracking.Message) {
		t.Helper()
		if err := s.Apply(ctx, tracking.Batch{Messages: ms}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.IndexPending(ctx, 100); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			saved[m.MID] = m
		}
	}
	const newest = 4*eraMIDs + 10 // eras 0, 1 and 2 are complete
	apply(
		msg(5, "Quarterly invoice", "alice@corp.example"),
		msg(6, "in voice mail", "bob@corp.example"), // every trigram of "invoice" but "nvo"
		msg(7, "Quarterly report", "bob@corp.example"),
		msg(eraMIDs-1, "invoice due", "carol@corp.example"),
		msg(eraMIDs, "INVOICE paid", "dave@other.example"),
		msg(eraMIDs+chunkMIDs, "no match", "erin@corp.example"),
		msg(2*eraMIDs+chunkMIDs-1, "invoices", "frank@other.example"),
		msg(3*eraMIDs+1, "invoice in era 3", "grace@corp.example"),
		msg(newest, "invoice, newest", "heidi@other.example"),
	)
	in := func(s, v string) bool { return strings.Contains(strings.ToLower(s), v) }
	searches := []struct {
		name       string
		q          tracking.Query
		start, end int64 // MIDs bounding the window, 0 for none
		match      func(m *tracking.Message) bool
		grammar    string // the same search in the search grammar, looking in several fields
	}{
		{"subject", tracking.Query{Subject: has("invoice")}, 0, 0, func(m *tracking.Message) bool { return in(m.Subject, "invoice") }, "invoice"},
		{"subject, a window cutting eras 0 and 2", tracking.Query{Subject: has("invoice")}, 6, 2 * eraMIDs,
			func(m *tracking.Message) bool { return in(m.Subject, "invoice") }, ""},
		// Once MID 5 is saved again into sealed era 0, its chunk's trigrams
		// are in both grams and gram_eras: the lookup ORs them.
		{"subject in both", tracking.Query{Subject: has("quarterly")}, 0, 0, func(m *tracking.Message) bool { return in(m.Subject, "quarterly") }, "quarterly"},
		{"subject saved again", tracking.Query{Subject: has("receipt")}, 0, 0, func(m *tracking.Message) bool { return in(m.Subject, "receipt") }, "receipt"},
		{"recipient", tracking.Query{Recipient: has("other.ex")}, 0, 0,
			func(m *tracking.Message) bool { return in(m.Recipients[0].Address, "other.ex") }, "to:other.ex"},
		{"sender", tracking.Query{Sender: has("sender2@")}, 0, 0, func(m *tracking.Message) bool { return in(m.Sender, "sender2@") }, "from:sender2@"},
		{"sender and subject", tracking.Query{Sender: has("sender1@"), Subject: has("voice")}, 0, 0,
			func(m *tracking.Message) bool { return in(m.Sender, "sender1@") && in(m.Subject, "voice") }, "from:sender1@ subject:voice"},
		// Subject and body are sealed in turn: the lookup reads the body
		// from grams where only the subject is sealed.
		{"word in the body", tracking.Query{}, 0, 0, func(m *tracking.Message) bool { return in(m.BodySnippet, "message 2") }, `"message 2"`},
	}
	check := func(state string) {
		t.Helper()
		for _, tt := range searches {
			q := tt.q
			q.Limit = 20
			var want []int64
			for mid, m := range saved {
				if tt.match(m) && (tt.start == 0 || mid >= tt.start && mid <= tt.end) {
					want = append(want, mid)
				}
			}
			slices.SortFunc(want, func(a, b int64) int { return int(b - a) })
			if tt.start != 0 {
				q.Start, q.End = at(tt.start), at(tt.end).Add(time.Nanosecond)
			}
			if !reflect.DeepEqual(q, tracking.Query{Limit: 20}) {
				page, err := s.Search(ctx, q)
				if err != nil {
					t.Fatalf("%s: %s: %v", state, tt.name, err)
				}
				if got := mids(page.Messages); !slices.Equal(got, want) || page.Total != len(want) {
					t.Errorf("%s: %s: Search = %v (total %d), want %v", state, tt.name, got, page.Total, want)
				}
			}
			if tt.grammar == "" {
				continue
			}
			sq, err := tracking.ParseSearch(tt.grammar, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			sp, err := s.SearchMessages(ctx, tracking.SearchQuery{Search: sq, Limit: 20})
			if got := mids(sp.Messages); err != nil || !slices.Equal(got, want) {
				t.Errorf("%s: SearchMessages(%q) = %v, %v; want %v", state, tt.grammar, got, err, want)
			}
		}
	}
	check("open")
	for step := 1; ; step++ {
		sealed, err := s.sealStep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !sealed {
			if want := 3 * len(allFields); step != want+1 {
				t.Fatalf("%d steps sealed, want %d", step-1, want)
			}
			break
		}
		check(fmt.Sprintf("after step %d", step))
	}
	if n := countRows(t, s, `SELECT count(*) FROM grams WHERE chunk < ?`, 3*eraChunks); n != 0 {
		t.Errorf("grams holds %d rows of sealed eras", n)
	}
	if n := countRows(t, s, `SELECT count(*) FROM gram_eras WHERE era >= 3`); n != 0 {
		t.Errorf("gram_eras holds %d rows of open eras", n)
	}
	// The exact check still keeps out MID 6, a candidate.
	tx, err := s.beginRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	subs, err := lookupSubstrings(ctx, tx, []substringKey{keyOf([]gramField{gramSubject}, "in voice")}, time.Time{}, at(eraMIDs-1))
	tx.Rollback()
	if got, _ := subs.candidates([]gramField{gramSubject}, "in voice"); err != nil || jsonInts(got) != "[6]" {
		t.Errorf("sealed candidates of %q = %v, %v; want [6]", "in voice", got, err)
	}

	// Saved again into sealed era 0: found by its new subject from grams,
	// and no more by its old one, until and after the era is sealed again.
	apply(msg(5, "Quarterly receipt", "alice@corp.example"))
	if n := countRows(t, s, `SELECT count(*) FROM gram_dirty WHERE era = 0`); n != 1 {
		t.Fatalf("era 0 not dirty after a message of it was indexed again")
	}
	check("dirty")
	if n, err := s.SealEras(ctx); n != 1 || err != nil {
		t.Fatalf("SealEras = %d, %v; want 1 (the dirty era)", n, err)
	}
	check("sealed again")
	if n := countRows(t, s, `SELECT count(*) FROM grams WHERE chunk < ?`, 3*eraChunks) + countRows(t, s, `SELECT count(*) FROM gram_dirty`); n != 0 {
		t.Errorf("sealing again left %d rows in grams or gram_dirty", n)
	}
}

func countRows(t *testing.T, s *TrackingStore, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.R.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSealPlans checks that the lookup of sealed eras and the moves of the
// sealing seek the primary keys rather than scan.
func TestSealPlans(t *testing.T) {
	s := openSearchStore(t)
	for _, c := range []struct {
		name, query string
		args        []any
	}{
		{"lookup", lookupEraSQL, []any{0, 3, "[1]", "[7]"}},
		{"lookup of grams", lookupGramSQL, []any{0, 3, "[1]", "[7]"}},
		{"move", moveSelectSQL, []any{0, 15, 1}},
		{"delete", moveDeleteSQL, []any{0, 1}},
	} {
		plan := strings.Join(queryPlan(t, s.db.W, c.query, c.args...), "\n")
		if !strings.Contains(plan, "USING PRIMARY KEY") || strings.Contains(plan, "SCAN g") {
			t.Errorf("%s: plan\n%s\nwants a search of the primary key", c.name, plan)
		}
	}
}

// TestIndexerSeals checks that the background indexer seals the complete
// eras by itself once it has indexed the queue.
func TestIndexerSeals(t *testing.T) {
	ctx := context.Background()
	s := openSearchStore(t)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var ms []*tracking.Message
	for _, mid := range []int64{5, eraMIDs + 5, 3*eraMIDs + 10} { // eras 0 and 1 are complete
		ms = append(ms, &tracking.Message{MID: mid, InjectedAt: base.Add(time.Duration(mid) * time.Second), Subject: "quarterly invoice"})
	}
	if err := s.Apply(ctx, tracking.Batch{Messages: ms}); err != nil {
		t.Fatal(err)
	}
	s.StartIndexer(nil)
	deadline := time.Now().Add(20 * time.Second)
	for countRows(t, s, `SELECT count(*) FROM gram_seal WHERE eras = 2`) != len(allFields) {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s, gram_seal holds %d fields sealed to era 2, want %d", countRows(t, s, `SELECT count(*) FROM gram_seal WHERE eras = 2`), len(allFields))
		}
		time.Sleep(20 * time.Millisecond)
	}
	page, err := s.Search(ctx, tracking.Query{Subject: has("invoice"), Limit: 20})
	if want := []int64{3*eraMIDs + 10, eraMIDs + 5, 5}; err != nil || !slices.Equal(mids(page.Messages), want) {
		t.Errorf("Search after sealing = %v, %v; want %v", mids(page.Messages), err, want)
	}
}
