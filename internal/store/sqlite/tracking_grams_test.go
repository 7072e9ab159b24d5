package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// gramRow is one row of grams, as stored.
type gramRow struct {
	Field, Gram, Chunk int64
	MIDs               string
}

// gramRows returns the substring index of s in key order.
func gramRows(t *testing.T, s *TrackingStore) []gramRow {
	t.Helper()
	var out []gramRow
	if err := eachRow(s.db.W.QueryContext(context.Background(), `SELECT field, gram, chunk, mids FROM grams ORDER BY field, gram, chunk`))(
		func(rows *sql.Rows) error {
			var r gramRow
			var p []byte
			err := rows.Scan(&r.Field, &r.Gram, &r.Chunk, &p)
			r.MIDs = fmt.Sprintf("%x", p)
			out = append(out, r)
			return err
		}); err != nil {
		t.Fatal(err)
	}
	return out
}

// offsetsOf returns the offsets set in b.
func offsetsOf(b *chunkBits) []uint16 {
	var out []uint16
	for o := range chunkMIDs {
		if b[o/64]&(1<<(o%64)) != 0 {
			out = append(out, uint16(o))
		}
	}
	return out
}

// TestChunkEncoding checks that a chunk reads back as written, as a list
// below 256 MIDs and as a bitmap from 256, and that sightline_mids_or,
// which merges a batch into a stored chunk, is the union whatever the two
// encodings.
func TestChunkEncoding(t *testing.T) {
	every := func(step, n int) []uint16 {
		var out []uint16
		for o := 0; o < chunkMIDs && len(out) < n; o += step {
			out = append(out, uint16(o))
		}
		return out
	}
	sets := map[string][]uint16{
		"empty": nil, "one": {7}, "last": {chunkMIDs - 1}, "255": every(3, 255), "256": every(5, 256),
		"all": every(1, chunkMIDs), "odd": every(2, chunkMIDs), "even+1": append(every(2, 300), 4095),
	}
	for name, offs := range sets {
		offs = slices.Compact(slices.Sorted(slices.Values(offs)))
		p := encodeChunk(offs)
		if want := len(offs) >= chunkBytes/2; (len(p) == chunkBytes) != want {
			t.Errorf("%s: %d offsets encoded in %d bytes; bitmap %v, want %v", name, len(offs), len(p), len(p) == chunkBytes, want)
		}
		var b chunkBits
		if err := b.or(p); err != nil {
			t.Fatalf("%s: read back: %v", name, err)
		}
		if got := offsetsOf(&b); !slices.Equal(got, offs) {
			t.Errorf("%s: read back %d offsets, want %d", name, len(got), len(offs))
		}
	}
	var b chunkBits
	if err := b.or([]byte{1, 2, 3}); err == nil {
		t.Error("a chunk of an odd length: no error")
	}

	s := openSearchStore(t)
	for an, a := range sets {
		for bn, bo := range sets {
			var p []byte
			if err := s.db.R.QueryRow(`SELECT sightline_mids_or(?, ?)`, encodeChunk(a), encodeChunk(bo)).Scan(&p); err != nil {
				t.Fatalf("sightline_mids_or(%s, %s): %v", an, bn, err)
			}
			want := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(a), bo...))))
			var got chunkBits
			if err := got.or(p); err != nil || !slices.Equal(offsetsOf(&got), want) || !slices.Equal(p, encodeChunk(want)) {
				t.Errorf("sightline_mids_or(%s, %s) = %d offsets (%v), want %d in their canonical encoding", an, bn, len(offsetsOf(&got)), err, len(want))
			}
		}
	}
}

// TestSubstringIndexIsExact checks "contains" through the substring index:
// a candidate that has every trigram of the value but not the value is
// not found, trigrams do not span two values of a field, the window's
// chunks bound the lookup on both sides of a chunk boundary, runes beyond
// ASCII are folded, and a message saved again is found by its new text
// only. Each search runs with its messages queued, then indexed.
func TestSubstringIndexIsExact(t *testing.T) {
	ctx := context.Background()
	s := openSearchStore(t)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	at := func(mid int64) time.Time { return base.Add(time.Duration(mid) * time.Second) }
	msg := func(mid int64, subject string, rcpts ...string) *tracking.Message {
		m := &tracking.Message{MID: mid, InjectedAt: at(mid), Sender: "a@b.example", Subject: subject}
		for i, r := range rcpts {
			m.Recipients = append(m.Recipients, tracking.Recipient{RID: i, Address: r})
		}
		return m
	}
	apply := func(ms ...*tracking.Message) {
		t.Helper()
		if err := s.Apply(ctx, tracking.Batch{Messages: ms}); err != nil {
			t.Fatal(err)
		}
	}
	apply(
		msg(1, "Payment order 1", "alice@corp.example"),
		msg(2, "payment report order", "bob@corp.example"), // every trigram of "nt or", not the value
		msg(chunkMIDs-1, "Payment Order 2", "carol@corp.example", "example.dave@other.example"),
		msg(chunkMIDs, "payment order 3"),
		msg(chunkMIDs+1, "Réunion ÉQUIPE"),
	)
	type search struct {
		name       string
		q          tracking.Query
		grammar    string
		start, end int64 // MIDs bounding the window, 0 for none
		want       []int64
	}
	searches := []search{
		{name: "subject", q: tracking.Query{Subject: has("nt or")}, grammar: `subject:"nt or"`, want: []int64{chunkMIDs, chunkMIDs - 1, 1}},
		{name: "subject in the first chunk", q: tracking.Query{Subject: has("nt or")}, grammar: `subject:"nt or"`, start: 1, end: chunkMIDs - 1, want: []int64{chunkMIDs - 1, 1}},
		{name: "subject in the second chunk", q: tracking.Query{Subject: has("nt or")}, grammar: `subject:"nt or"`, start: chunkMIDs, end: chunkMIDs + 1, want: []int64{chunkMIDs}},
		{name: "folded runes", q: tracking.Query{Subject: has("UNION ÉQ")}, grammar: `subject:"union éq"`, want: []int64{chunkMIDs + 1}},
		{name: "recipient", q: tracking.Query{Recipient: has("dave@oth")}, grammar: "to:dave@oth", want: []int64{chunkMIDs - 1}},
		// Every trigram is in one recipient or the other.
		{name: "across two recipients", q: tracking.Query{Recipient: has("corp.example.dave")}, grammar: "to:corp.example.dave", want: nil},
		{name: "domain", q: tracking.Query{Domain: has("other.ex")}, want: []int64{chunkMIDs - 1}},
	}
	check := func(state string) {
		t.Helper()
		for _, tt := range searches {
			q := tt.q
			q.Limit = 20
			if tt.start != 0 {
				q.Start, q.End = at(tt.start), at(tt.end).Add(time.Nanosecond)
			}
			page, err := s.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s: %s: %v", state, tt.name, err)
			}
			if got := mids(page.Messages); !slices.Equal(got, tt.want) || page.Total != len(tt.want) {
				t.Errorf("%s: %s: Search = %v (total %d), want %v", state, tt.name, got, page.Total, tt.want)
			}
			if tt.grammar == "" {
				continue
			}
			text := tt.grammar
			if tt.start != 0 {
				text += " after:" + at(tt.start).Format(time.RFC3339) + " before:" + at(tt.end).Format(time.RFC3339)
			}
			sq, err := tracking.ParseSearch(text, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			sp, err := s.SearchMessages(ctx, tracking.SearchQuery{Search: sq, Limit: 20})
			if err != nil {
				t.Fatalf("%s: SearchMessages(%q): %v", state, text, err)
			}
			if got := mids(sp.Messages); !slices.Equal(got, tt.want) {
				t.Errorf("%s: SearchMessages(%q) = %v, want %v", state, text, got, tt.want)
			}
			if tt.start != 0 {
				continue
			}
			neg, err := tracking.ParseSearch("-"+tt.grammar, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if np, err := s.SearchMessages(ctx, tracking.SearchQuery{Search: neg, Limit: 20}); err != nil || np.Total != 5-len(tt.want) {
				t.Errorf("%s: SearchMessages(%q) = total %d, %v; want %d", state, "-"+tt.grammar, np.Total, err, 5-len(tt.want))
			}
		}
	}
	check("queued")
	if n, err := s.IndexPending(ctx, 100); n != 5 || err != nil {
		t.Fatalf("IndexPending = %d, %v; want 5", n, err)
	}
	check("indexed")
	// The exact check is what keeps out MID 2 and MID 4095: both are
	// candidates.
	tx, err := s.beginRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	subs, err := lookupSubstrings(ctx, tx, []substringKey{keyOf([]gramField{gramSubject}, "nt or"),
		keyOf([]gramField{gramRecipients}, "corp.example.dave")}, time.Time{}, time.Time{})
	tx.Rollback()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field gramField
		v     string
		want  string
	}{{gramSubject, "nt or", fmt.Sprintf("[%d,%d,2,1]", chunkMIDs, chunkMIDs-1)}, {gramRecipients, "corp.example.dave", fmt.Sprintf("[%d]", chunkMIDs-1)}} {
		if got, _ := subs.candidates([]gramField{c.field}, c.v); jsonInts(got) != c.want {
			t.Errorf("candidates of %q = %v, want %s", c.v, got, c.want)
		}
	}

	// Pages of the matches, counted in the same pass, and a count capped
	// below them, which reads its page apart.
	for _, c := range []struct {
		offset, limit, countLimit int
		want                      []int64
		total                     int
		capped                    bool
	}{
		{1, 1, 0, []int64{chunkMIDs - 1}, 3, false},
		{2, 5, 0, []int64{1}, 3, false},
		{3, 5, 0, nil, 3, false},
		{1, 5, 2, []int64{chunkMIDs - 1, 1}, 2, true},
	} {
		s.CountLimit = c.countLimit
		page, err := s.Search(ctx, tracking.Query{Subject: has("nt or"), Offset: c.offset, Limit: c.limit})
		if got := mids(page.Messages); err != nil || !slices.Equal(got, c.want) || page.Total != c.total || page.TotalCapped != c.capped {
			t.Errorf("offset %d, limit %d, count limit %d: Search = %v (total %d, capped %v), %v; want %v (total %d, capped %v)",
				c.offset, c.limit, c.countLimit, got, page.Total, page.TotalCapped, err, c.want, c.total, c.capped)
		}
	}
	s.CountLimit = 0
	// The same matches a page of one at a time through the search grammar.
	sq, err := tracking.ParseSearch(`subject:"nt or"`, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	var paged []int64
	for sp := (tracking.SearchQuery{Search: sq, Limit: 1}); len(paged) < 5; {
		page, err := s.SearchMessages(ctx, sp)
		if err != nil || page.Total != 3 {
			t.Fatalf("SearchMessages after %v = total %d, %v; want 3", paged, page.Total, err)
		}
		paged = append(paged, mids(page.Messages)...)
		if sp.After = page.Next; page.Next == nil {
			break
		}
	}
	if want := []int64{chunkMIDs, chunkMIDs - 1, 1}; !slices.Equal(paged, want) {
		t.Errorf("SearchMessages a page at a time = %v, want %v", paged, want)
	}

	// Saved again with another subject: its old bits stay in the index, and
	// the exact check drops them.
	apply(msg(1, "Receipt 1", "alice@corp.example"))
	searches = append(searches[:1], search{name: "new subject", q: tracking.Query{Subject: has("ceipt")}, grammar: "subject:ceipt", want: []int64{1}})
	searches[0].want = []int64{chunkMIDs, chunkMIDs - 1}
	check("saved again, queued")
	if n, err := s.IndexPending(ctx, 100); n != 1 || err != nil {
		t.Fatalf("IndexPending = %d, %v; want 1", n, err)
	}
	check("saved again, indexed")
}

func has(v string) tracking.TextFilter {
	return tracking.TextFilter{Op: tracking.OpContains, Values: []string{v}}
}

func mids(ms []*tracking.Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.MID)
	}
	return out
}

// TestLookupGrams checks that a lookup reads every trigram of a short
// value, and of a longer one a subset that holds every rune of it.
func TestLookupGrams(t *testing.T) {
	for _, v := range []string{"abc", "abcdefgh", "abcdefghi", "approval invoice", "réunion équipe 2026", "aaaaaaaaaaaaaaaa", "0123456789"} {
		got, all := lookupGrams(v), gramsOf(v)
		if len(all) < coverFrom {
			if !slices.Equal(got, all) {
				t.Errorf("lookupGrams(%q) = %d trigrams, want all %d", v, len(got), len(all))
			}
			continue
		}
		if len(got) >= len(all) {
			t.Errorf("lookupGrams(%q) = %d trigrams of %d, want fewer", v, len(got), len(all))
		}
		r := []rune(v)
		covered := make([]bool, len(r))
		for i := 0; i+3 <= len(r); i++ {
			if slices.Contains(got, gramOf(r[i], r[i+1], r[i+2])) {
				covered[i], covered[i+1], covered[i+2] = true, true, true
			}
		}
		if i := slices.Index(covered, false); i >= 0 {
			t.Errorf("lookupGrams(%q) leaves rune %d (%q) out", v, i, r[i])
		}
	}
}
