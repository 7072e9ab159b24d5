package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"math"

	msqlite "modernc.org/sqlite"
)

// Sealed eras of the substring index.
//
// grams keeps the chunk first, so that the indexer, which writes the newest
// MIDs, rewrites one region of the table; a lookup then seeks each chunk of
// its window, per field and trigram: some 800 chunks for a month of ten
// million messages. Once an era of eraChunks chunks is complete (every MID
// of it indexed, and the store eraMargin MIDs past it) the indexer seals
// it, one field per transaction: it moves that field's rows of the era's
// chunks into one row per trigram of gram_eras, whose key leads with the
// era, so that a lookup reads one row per era, field and trigram:
//
//	gram_eras (era, field, gram) → the era's chunks that hold the gram (packEra)
//	gram_seal (field) → eras: the eras below are sealed for that field
//	gram_dirty (era): a sealed era that has rows in grams again
//
// A message saved again after its era was sealed is indexed into grams as
// before, and its era is marked dirty: lookups read the dirty era's chunks
// in grams too, until the indexer seals it again, merging those rows into
// its sealed ones (sightline_era_or).
const trackingV11 = `
CREATE TABLE gram_eras (
	era   INTEGER NOT NULL, -- chunk >> eraShift
	field INTEGER NOT NULL,
	gram  INTEGER NOT NULL,
	mids  BLOB NOT NULL,    -- packEra
	PRIMARY KEY (era, field, gram)
) WITHOUT ROWID;
CREATE TABLE gram_seal (field INTEGER PRIMARY KEY, eras INTEGER NOT NULL);
CREATE TABLE gram_dirty (era INTEGER PRIMARY KEY);
`

// An era is eraChunks chunks. The indexer seals an era once the store
// holds eraMargin MIDs past its end, so that the messages saved again soon
// after their injection (as screening and delivery do) find their era
// still open.
const (
	eraShift  = 4
	eraChunks = 1 << eraShift
	eraMIDs   = eraChunks << chunkShift
	eraMargin = eraMIDs
)

// eraChunk is one chunk of an era row: its index in the era and its
// encoding (chunkBits.encode).
type eraChunk struct {
	index int
	bits  []byte
}

// packEra returns the stored form of an era row: for each chunk, in
// increasing index, one byte of index, two little-endian bytes of length,
// then the chunk's encoding.
func packEra(chunks []eraChunk) []byte {
	n := 0
	for _, c := range chunks {
		n += 3 + len(c.bits)
	}
	out := make([]byte, 0, n)
	for _, c := range chunks {
		out = append(out, byte(c.index))
		out = binary.LittleEndian.AppendUint16(out, uint16(len(c.bits)))
		out = append(out, c.bits...)
	}
	return out
}

// eachEraChunk calls f with each chunk of the era row p.
func eachEraChunk(p []byte, f func(index int, bits []byte) error) error {
	for len(p) > 0 {
		if len(p) < 3 {
			return fmt.Errorf("substring index: an era row ends in %d stray bytes", len(p))
		}
		i, n := int(p[0]), int(binary.LittleEndian.Uint16(p[1:]))
		if i >= eraChunks || n > chunkBytes || 3+n > len(p) {
			return fmt.Errorf("substring index: an era row's chunk %d of %d bytes (%d left)", i, n, len(p)-3)
		}
		if err := f(i, p[3:3+n]); err != nil {
			return err
		}
		p = p[3+n:]
	}
	return nil
}

// The re-sealing of a dirty era merges the era's new rows into its sealed
// ones with sightline_era_or.
func init() {
	msqlite.MustRegisterDeterministicScalarFunction("sightline_era_or", 2, func(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		var era [eraChunks]*chunkBits
		for i, a := range args {
			p, ok := a.([]byte)
			if !ok {
				return nil, fmt.Errorf("sightline_era_or: argument %d is %T, not a blob", i+1, a)
			}
			if err := eachEraChunk(p, func(j int, bits []byte) error {
				if era[j] == nil {
					era[j] = &chunkBits{}
				}
				return era[j].or(bits)
			}); err != nil {
				return nil, err
			}
		}
		var chunks []eraChunk
		for j, b := range era {
			if b != nil {
				chunks = append(chunks, eraChunk{j, b.encode()})
			}
		}
		return packEra(chunks), nil
	})
}

// sealState is what a lookup needs to know of the sealed eras: for each
// field, how many eras are sealed, and which sealed eras are dirty.
type sealState struct {
	eras  map[gramField]int64
	dirty []int64 // ascending
}

func readSealState(ctx context.Context, q queryer) (sealState, error) {
	st := sealState{eras: map[gramField]int64{}}
	err := eachRow(q.QueryContext(ctx, `SELECT field, eras FROM gram_seal UNION ALL SELECT -1, era FROM gram_dirty ORDER BY 1, 2`))(
		func(rows *sql.Rows) error {
			var field, n int64
			if err := rows.Scan(&field, &n); err != nil {
				return err
			}
			if field < 0 {
				st.dirty = append(st.dirty, n)
			} else {
				st.eras[gramField(field)] = n
			}
			return nil
		})
	return st, err
}

// sealed returns the fewest and the most eras sealed for any of fields.
func (st sealState) sealed(fields []gramField) (least, most int64) {
	least = math.MaxInt64
	for _, f := range fields {
		least, most = min(least, st.eras[f]), max(most, st.eras[f])
	}
	return least, most
}

// allFields lists every gramField.
var allFields = []gramField{gramSubject, gramSender, gramReplyTo, gramRecipients, gramAttachments, gramDomains,
	gramHeaderFrom, gramBody, gramHost, gramHeaderTo, gramHeaderCc, gramURL}

// SealEras seals every era of the substring index that is complete, one
// field of one era per transaction, and returns how many it sealed (a
// dirty era sealed again counts once). The indexer does this by itself,
// behind its indexing; BulkLoad and benchmarks call it to finish a store.
func (s *TrackingStore) SealEras(ctx context.Context) (int, error) {
	n := 0
	for {
		did, err := s.sealStep(ctx)
		if err != nil || !did {
			return n, err
		}
		n++
	}
}

// sealStep seals one dirty era again, or else one field of the oldest era
// that is complete but not sealed for it, in one transaction, and reports
// whether there was one.
func (s *TrackingStore) sealStep(ctx context.Context) (bool, error) {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return false, wrapDB("seal the substring index", err)
	}
	defer tx.Rollback()
	sealed, err := sealNext(ctx, tx)
	if err == nil && sealed {
		err = tx.Commit()
	}
	if err != nil {
		return false, wrapDB("seal the substring index", err)
	}
	return sealed, nil
}

// sealNext is sealStep in tx.
func sealNext(ctx context.Context, tx *sql.Tx) (bool, error) {
	st, err := readSealState(ctx, tx)
	if err != nil {
		return false, err
	}
	if len(st.dirty) > 0 {
		era := st.dirty[0]
		for _, f := range allFields {
			if era < st.eras[f] {
				if err := moveToEra(ctx, tx, era, f); err != nil {
					return false, fmt.Errorf("era %d again: %w", era, err)
				}
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM gram_dirty WHERE era = ?`, era)
		return true, err
	}
	complete, err := completeEras(ctx, tx)
	if err != nil {
		return false, err
	}
	field, era := gramField(0), complete
	for _, f := range allFields {
		if st.eras[f] < era {
			field, era = f, st.eras[f]
		}
	}
	if field == 0 {
		return false, nil
	}
	if err := moveToEra(ctx, tx, era, field); err != nil {
		return false, fmt.Errorf("era %d: %w", era, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO gram_seal (field, eras) VALUES (?, ?)
		ON CONFLICT (field) DO UPDATE SET eras = excluded.eras`, field, era+1)
	return true, err
}

// completeEras returns how many eras, from the first, are complete: every
// MID of them below the oldest queued one, and eraMargin MIDs below the
// newest saved one.
func completeEras(ctx context.Context, tx *sql.Tx) (int64, error) {
	var newest, queued sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT max(mid) FROM messages), (SELECT min(mid) FROM search_queue)`).
		Scan(&newest, &queued); err != nil {
		return 0, err
	}
	if !newest.Valid {
		return 0, nil
	}
	bound := newest.Int64 + 1 - eraMargin // the first MID not sealable
	if queued.Valid {
		bound = min(bound, queued.Int64)
	}
	return max(bound/eraMIDs, 0), nil
}

// moveSelectSQL reads the rows of field ?3 in the chunks ?1 to ?2 by
// trigram; moveDeleteSQL deletes those of field ?2 in chunk ?1.
const (
	moveSelectSQL = `WITH RECURSIVE c (chunk) AS (SELECT ?1 UNION ALL SELECT chunk + 1 FROM c WHERE chunk < ?2)
		SELECT g.gram, g.chunk, g.mids FROM c JOIN grams g ON g.chunk = c.chunk AND g.field = ?3
		ORDER BY g.gram, g.chunk`
	moveDeleteSQL = `DELETE FROM grams WHERE chunk = ?1 AND field = ?2`
)

// moveToEra moves the rows of field in the chunks of era from grams into
// gram_eras, merged with what the era holds already.
func moveToEra(ctx context.Context, tx *sql.Tx, era int64, field gramField) error {
	c0 := era << eraShift
	rows, err := tx.QueryContext(ctx, moveSelectSQL, c0, c0+eraChunks-1, field)
	if err != nil {
		return err
	}
	defer rows.Close()
	upsert, err := tx.PrepareContext(ctx, `INSERT INTO gram_eras (era, field, gram, mids) VALUES (?, ?, ?, ?)
		ON CONFLICT (era, field, gram) DO UPDATE SET mids = sightline_era_or(mids, excluded.mids)`)
	if err != nil {
		return err
	}
	defer upsert.Close()
	var chunks []eraChunk
	gram := int64(-1)
	flush := func() error {
		if len(chunks) == 0 {
			return nil
		}
		_, err := upsert.ExecContext(ctx, era, field, gram, packEra(chunks))
		chunks = chunks[:0]
		return err
	}
	for rows.Next() {
		var g, chunk int64
		var p []byte
		if err := rows.Scan(&g, &chunk, &p); err != nil {
			return err
		}
		if g != gram {
			if err := flush(); err != nil {
				return err
			}
			gram = g
		}
		chunks = append(chunks, eraChunk{int(chunk - c0), p})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	for c := c0; c < c0+eraChunks; c++ {
		if _, err := tx.ExecContext(ctx, moveDeleteSQL, c, field); err != nil {
			return err
		}
	}
	return nil
}
