package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	msqlite "modernc.org/sqlite"
)

// The substring index of Message Tracking: for each chunk of chunkMIDs
// consecutive MIDs, each text field and each trigram (three runes of the
// folded text), the set of the chunk's MIDs whose field holds the trigram,
// as a bitmap:
//
//	grams (chunk, field, gram) → mids
//
// A "contains" search ANDs the bitmaps of its value's trigrams (of a long
// value, a subset that holds every rune: lookupGrams) in each chunk of its
// window's MIDs (midRange), ORs the fields it looks in, and
// hands the candidates to SQL, which checks each one exactly (instr on the
// folded text), once for both the count and the page (readMatches). So the
// index need only be a superset: a message saved again with other text
// leaves bits that the exact check discards, and nothing is ever removed.
//
// A bitmap costs a few bytes where a trigram is rare and at most 512 bytes
// per 4,096 MIDs where it is common, and the AND of common trigrams is a
// few word operations per 64 messages. The chunk leads the key so that the
// indexer, which writes the newest MIDs, rewrites the pages of one region
// of the table rather than a page per trigram all over it; a lookup seeks
// each (chunk, field, trigram) of its window instead, until the indexer
// seals complete eras of 16 chunks into one row per trigram
// (tracking_eras.go). (The FTS5 trigram
// tables this replaces decoded a position list per trigram per message:
// tens to hundreds of milliseconds for two common words over a month of a
// large store.)

// gramField is a text field of the substring index.
type gramField uint8

const (
	gramSubject gramField = iota + 1
	gramSender
	gramReplyTo
	gramRecipients // each address
	gramAttachments
	gramDomains // the sender's, then each recipient's
	gramHeaderFrom
	gramBody
	gramHost
	gramHeaderTo
	gramHeaderCc
	gramURL // each URL
)

// A chunk holds the index bits of chunkMIDs consecutive MIDs. Its largest
// encoding, a 512-byte bitmap, fits in a B-tree cell of a 4 KiB page.
const (
	chunkShift = 12
	chunkMIDs  = 1 << chunkShift
	chunkWords = chunkMIDs / 64
	chunkBytes = chunkWords * 8
)

// chunkBits is one chunk's set of MIDs, bit i for the MID chunk<<chunkShift + i.
type chunkBits [chunkWords]uint64

// encodeChunk returns the stored form of the offsets in a chunk.
func encodeChunk(offsets []uint16) []byte {
	var b chunkBits
	for _, o := range offsets {
		b[o/64] |= 1 << (o % 64)
	}
	return b.encode()
}

// encode returns the stored form of b: two little-endian bytes per offset,
// in order, when that is shorter than the bitmap, else the bitmap
// (chunkBytes long, which a list never is).
func (b *chunkBits) encode() []byte {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	if n*2 < chunkBytes {
		out := make([]byte, 0, n*2)
		for i, w := range b {
			for ; w != 0; w &= w - 1 {
				out = binary.LittleEndian.AppendUint16(out, uint16(i*64+bits.TrailingZeros64(w)))
			}
		}
		return out
	}
	out := make([]byte, chunkBytes)
	for i, w := range b {
		binary.LittleEndian.PutUint64(out[i*8:], w)
	}
	return out
}

// or adds the MIDs of the stored chunk p to b.
func (b *chunkBits) or(p []byte) error {
	if len(p) == chunkBytes {
		for i := range b {
			b[i] |= binary.LittleEndian.Uint64(p[i*8:])
		}
		return nil
	}
	if len(p)%2 != 0 || len(p) > chunkBytes {
		return fmt.Errorf("substring index: a chunk of %d bytes", len(p))
	}
	for i := 0; i < len(p); i += 2 {
		o := binary.LittleEndian.Uint16(p[i:])
		b[o/64&(chunkWords-1)] |= 1 << (o % 64)
	}
	return nil
}

// The upsert of IndexPending merges a chunk's new bits into the stored ones
// with sightline_mids_or.
func init() {
	msqlite.MustRegisterDeterministicScalarFunction("sightline_mids_or", 2, func(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		var union chunkBits
		for i, a := range args {
			p, ok := a.([]byte)
			if !ok {
				return nil, fmt.Errorf("sightline_mids_or: argument %d is %T, not a blob", i+1, a)
			}
			if err := union.or(p); err != nil {
				return nil, err
			}
		}
		return union.encode(), nil
	})
}

// gramOf packs three runes into one key: 21 bits each.
func gramOf(a, b, c rune) int64 { return int64(a)<<42 | int64(b)<<21 | int64(c) }

// eachGram calls f with every trigram of s, repeats included.
func eachGram(s string, f func(int64)) {
	var r0, r1 rune
	n := 0
	for _, r := range s {
		if n >= 2 {
			f(gramOf(r0, r1, r))
		}
		r0, r1 = r1, r
		n++
	}
}

// gramsOf returns the distinct trigrams of s.
func gramsOf(s string) []int64 {
	var gs []int64
	eachGram(s, func(g int64) {
		if !slices.Contains(gs, g) {
			gs = append(gs, g)
		}
	})
	return gs
}

// coverFrom is how many trigrams a value has before a lookup reads only
// some of them (lookupGrams).
const coverFrom = 7

// lookupGrams returns the trigrams a lookup of v reads: all of them, or
// for a longer value those that start at its runes 0, 3, 6, … and at its
// third last, which together hold every rune of it. Each trigram read
// costs a seek per chunk of the window; the few more candidates that
// fewer trigrams let through cost less to check (measured on 1M and 10M
// messages, docs/benchmarks.md).
func lookupGrams(v string) []int64 {
	all := gramsOf(v)
	if len(all) < coverFrom {
		return all
	}
	var gs []int64
	i, n := 0, utf8.RuneCountInString(v)
	eachGram(v, func(g int64) {
		if (i%3 == 0 || i == n-3) && !slices.Contains(gs, g) {
			gs = append(gs, g)
		}
		i++
	})
	return gs
}

// gramKey is one row of grams.
type gramKey struct {
	field gramField
	gram  int64
	chunk int64
}

// gramBatch collects the trigrams of the messages one IndexPending indexes,
// which come in increasing MID order: each key's offsets stay sorted.
type gramBatch map[gramKey][]uint16

// add records the trigrams of the folded text s of field in message mid.
func (b gramBatch) add(field gramField, mid int64, s string) {
	chunk, off := mid>>chunkShift, uint16(mid&(chunkMIDs-1))
	eachGram(s, func(g int64) {
		k := gramKey{field, g, chunk}
		if offs := b[k]; len(offs) == 0 || offs[len(offs)-1] != off {
			b[k] = append(offs, off)
		}
	})
}

// write merges the batch into grams with upsert, in key order.
func (b gramBatch) write(ctx context.Context, upsert *sql.Stmt) error {
	keys := make([]gramKey, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y gramKey) int {
		return cmp.Or(cmp.Compare(x.chunk, y.chunk), cmp.Compare(x.field, y.field), cmp.Compare(x.gram, y.gram))
	})
	for _, k := range keys {
		if _, err := upsert.ExecContext(ctx, k.field, k.gram, k.chunk, encodeChunk(b[k])); err != nil {
			return err
		}
	}
	return nil
}

// markDirty marks dirty the sealed eras whose chunks the batch wrote to
// grams again (tracking_eras.go).
func (b gramBatch) markDirty(ctx context.Context, tx *sql.Tx) error {
	seal, err := readSealState(ctx, tx)
	if err != nil {
		return err
	}
	_, most := seal.sealed(allFields)
	done := map[int64]bool{}
	for k := range b {
		if era := k.chunk >> eraShift; era < most && !done[era] {
			done[era] = true
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO gram_dirty (era) VALUES (?)`, era); err != nil {
				return err
			}
		}
	}
	return nil
}

const upsertGramSQL = `INSERT INTO grams (field, gram, chunk, mids) VALUES (?, ?, ?, ?)
	ON CONFLICT (chunk, field, gram) DO UPDATE SET mids = sightline_mids_or(mids, excluded.mids)`

// substringKey names one lookup: the fields, as bytes, and the folded value.
type substringKey struct{ fields, value string }

func keyOf(fields []gramField, v string) substringKey {
	b := make([]byte, len(fields))
	for i, f := range fields {
		b[i] = byte(f)
	}
	return substringKey{string(b), v}
}

// substrings holds, for each substring a search looks up, the candidate
// MIDs of its window: those the substring index finds, and those not
// indexed yet.
type substrings map[substringKey]midSet

// candidates returns the MIDs that may hold v in one of fields, and false
// when v was not looked up (the caller then scans).
func (s substrings) candidates(fields []gramField, v string) (midSet, bool) {
	c, ok := s[keyOf(fields, v)]
	return c, ok
}

// lookupSubstrings looks up each substring need (a folded value of at
// least 3 runes, with its fields) among the MIDs of the window [start,
// end), a zero bound being open.
func lookupSubstrings(ctx context.Context, tx cachedTx, needs []substringKey, start, end time.Time) (substrings, error) {
	if len(needs) == 0 {
		return nil, nil
	}
	mids, err := midRange(ctx, tx, start, end)
	if err != nil {
		return nil, err
	}
	seal, err := readSealState(ctx, tx)
	if err != nil {
		return nil, err
	}
	// The messages still queued for the indexer are candidates of every
	// lookup: the index cannot tell yet.
	queued, err := int64s(tx.QueryContext(ctx, `SELECT mid FROM search_queue WHERE mid BETWEEN ? AND ? ORDER BY mid DESC`, mids[0], mids[1]))
	if err != nil {
		return nil, err
	}
	l := &gramLookup{tx: tx, lo: mids[0], hi: mids[1], seal: seal}
	out := make(substrings, len(needs))
	for _, k := range needs {
		if _, done := out[k]; done {
			continue
		}
		found, err := l.candidates(ctx, k)
		if err != nil {
			return nil, err
		}
		out[k] = found.union(queued)
	}
	return out, nil
}

// gramLookup reads the index over the MIDs lo to hi.
type gramLookup struct {
	tx     cachedTx
	lo, hi int64
	seal   sealState
}

// lookupGramSQL reads the rows of the fields (?3) and trigrams (?4, JSON
// arrays) in the chunks ?1 to ?2: one seek each in the primary key.
const lookupGramSQL = `WITH RECURSIVE c (chunk) AS (SELECT ?1 UNION ALL SELECT chunk + 1 FROM c WHERE chunk < ?2)
	SELECT g.field, g.gram, g.chunk, g.mids FROM c JOIN grams g ON g.chunk = c.chunk
	WHERE g.field IN (SELECT value FROM json_each(?3)) AND g.gram IN (SELECT value FROM json_each(?4))`

// lookupEraSQL reads the sealed rows of the fields (?3) and trigrams (?4)
// in the eras ?1 to ?2, as lookupGramSQL reads chunks.
const lookupEraSQL = `WITH RECURSIVE e (era) AS (SELECT ?1 UNION ALL SELECT era + 1 FROM e WHERE era < ?2)
	SELECT g.field, g.gram, g.era, g.mids FROM e JOIN gram_eras g ON g.era = e.era
	WHERE g.field IN (SELECT value FROM json_each(?3)) AND g.gram IN (SELECT value FROM json_each(?4))`

// candidates returns the MIDs, highest first, whose fields
// k.fields may hold the value k.value: every trigram of it in one field.
// It reads the sealed eras of the window, then the chunks that are not
// sealed for one of the fields or are in a dirty era.
func (l *gramLookup) candidates(ctx context.Context, k substringKey) (midSet, error) {
	if l.hi < l.lo {
		return nil, nil
	}
	c0, c1 := l.lo>>chunkShift, l.hi>>chunkShift
	fields := make([]gramField, len(k.fields))
	for i, f := range []byte(k.fields) {
		fields[i] = gramField(f)
	}
	m := newGramMatrix(fields, lookupGrams(k.value), c0, c1)
	args := []any{jsonInts(m.fieldKeys()), jsonInts(m.grams)}
	least, most := l.seal.sealed(fields)
	if e0, e1 := c0>>eraShift, min(c1>>eraShift, most-1); e0 <= e1 {
		err := l.eachRow(ctx, lookupEraSQL, e0, e1, args, func(field, gram, era int64, p []byte) error {
			return eachEraChunk(p, func(i int, bits []byte) error {
				return m.or(field, gram, era<<eraShift+int64(i), bits)
			})
		})
		if err != nil {
			return nil, err
		}
	}
	var spans [][2]int64 // chunks to read in grams, ascending
	for _, d := range l.seal.dirty {
		if d < least {
			spans = append(spans, [2]int64{max(d<<eraShift, c0), min(d<<eraShift+eraChunks-1, c1)})
		}
	}
	spans = append(spans, [2]int64{max(least<<eraShift, c0), c1})
	for _, sp := range spans {
		if sp[0] > sp[1] {
			continue
		}
		if err := l.eachRow(ctx, lookupGramSQL, sp[0], sp[1], args, m.or); err != nil {
			return nil, err
		}
	}
	return candidateMIDs(m.candidates(), c0, l.lo, l.hi), nil
}

// eachRow runs query, lookupGramSQL or lookupEraSQL, over the chunks or
// eras from to to with args, and calls f with each row: field, trigram,
// chunk or era, and the stored bits.
func (l *gramLookup) eachRow(ctx context.Context, query string, from, to int64, args []any, f func(field, gram, key int64, p []byte) error) error {
	return eachRow(l.tx.QueryContext(ctx, query, append([]any{from, to}, args...)...))(func(rows *sql.Rows) error {
		var field, gram, key int64
		var p sql.RawBytes
		if err := rows.Scan(&field, &gram, &key, &p); err != nil {
			return err
		}
		return f(field, gram, key, p)
	})
}

// gramMatrix collects what a lookup reads: for each field, trigram and
// chunk of the window, the OR of the rows that hold it (a sealed era's and
// grams' when the era is dirty).
type gramMatrix struct {
	fields []gramField
	grams  []int64
	c0, n  int64
	// cells[(field*len(grams) + gram)*n + chunk-c0] is nil when nothing was
	// read. Each is allocated alone: a slice of them, grown by append,
	// copied its bitmaps over and over.
	cells []*chunkBits
}

func newGramMatrix(fields []gramField, grams []int64, c0, c1 int64) *gramMatrix {
	n := c1 - c0 + 1
	return &gramMatrix{fields: fields, grams: grams, c0: c0, n: n, cells: make([]*chunkBits, int64(len(fields)*len(grams))*n)}
}

func (m *gramMatrix) fieldKeys() []int64 {
	out := make([]int64, len(m.fields))
	for i, f := range m.fields {
		out[i] = int64(f)
	}
	return out
}

// or adds the stored chunk p of field, gram and chunk, ignoring a chunk
// outside the window.
func (m *gramMatrix) or(field, gram, chunk int64, p []byte) error {
	if chunk < m.c0 || chunk >= m.c0+m.n {
		return nil
	}
	fi, gi := slices.Index(m.fields, gramField(field)), slices.Index(m.grams, gram)
	if fi < 0 || gi < 0 {
		return fmt.Errorf("substring index: a row of field %d and trigram %#x that was not asked for", field, gram)
	}
	cell := &m.cells[int64(fi*len(m.grams)+gi)*m.n+chunk-m.c0]
	if *cell == nil {
		*cell = new(chunkBits)
	}
	return (*cell).or(p)
}

// candidates returns, for each chunk of the window, the MIDs that have
// every trigram in one field.
func (m *gramMatrix) candidates() []chunkBits {
	union := make([]chunkBits, m.n)
	g := int64(len(m.grams))
	for fi := range m.fields {
		for j := range m.n {
			var and chunkBits
			for gi := range g {
				cell := m.cells[(int64(fi)*g+gi)*m.n+j]
				if cell == nil {
					and = chunkBits{}
					break
				}
				if gi == 0 {
					and = *cell
				} else {
					for w := range and {
						and[w] &= cell[w]
					}
				}
			}
			for w := range and {
				union[j][w] |= and[w]
			}
		}
	}
	return union
}

// jsonInts returns a JSON array of xs.
func jsonInts(xs []int64) string {
	b := make([]byte, 0, 2+len(xs)*9) // room for 8-digit numbers
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return string(append(b, ']'))
}

// midSet is a set of MIDs, highest first, as a search reads its
// candidates: the newest first.
type midSet []int64

// candidateMIDs returns the MIDs of chunks (the first being chunk c0) between
// lo and hi.
func candidateMIDs(chunks []chunkBits, c0, lo, hi int64) midSet {
	n := 0
	for i := range chunks {
		for _, word := range chunks[i] {
			n += bits.OnesCount64(word)
		}
	}
	out := make(midSet, 0, n)
	for i := len(chunks) - 1; i >= 0; i-- {
		base := (c0 + int64(i)) << chunkShift
		for w := chunkWords - 1; w >= 0; w-- {
			for word := chunks[i][w]; word != 0; {
				top := 63 - bits.LeadingZeros64(word)
				word &^= 1 << top
				if mid := base + int64(w*64+top); mid >= lo && mid <= hi {
					out = append(out, mid)
				}
			}
		}
	}
	return out
}

// union returns the MIDs in s or t.
func (s midSet) union(t midSet) midSet {
	if len(t) == 0 {
		return s
	}
	out := make(midSet, 0, len(s)+len(t))
	i, j := 0, 0
	for i < len(s) || j < len(t) {
		switch {
		case j == len(t) || i < len(s) && s[i] > t[j]:
			out = append(out, s[i])
			i++
		case i == len(s) || t[j] > s[i]:
			out = append(out, t[j])
			j++
		default:
			out = append(out, s[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// intersect returns the MIDs in both s and t.
func (s midSet) intersect(t midSet) midSet {
	var out midSet
	for i, j := 0, 0; i < len(s) && j < len(t); {
		switch {
		case s[i] > t[j]:
			i++
		case t[j] > s[i]:
			j++
		default:
			out = append(out, s[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// indexable reports whether the folded value v can be looked up: a trigram
// needs 3 runes.
func indexable(v string) bool { return utf8.RuneCountInString(v) >= 3 }
