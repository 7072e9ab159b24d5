package sqlite

import (
	"context"
	"database/sql/driver"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	msqlite "modernc.org/sqlite"

	"github.com/sightline/sightline/internal/tracking"
)

// This file runs the native search (tracking.SearchStore) on the tracking
// database: each term becomes one indexed condition on messages m.

//go:embed tracking_search.sql
var trackingSearchSchema string

// The SQL functions of tracking_search.sql's indexes and triggers. They are
// deterministic and registered for every connection of the driver.
func init() {
	msqlite.MustRegisterDeterministicScalarFunction("sightline_fold", 1, textFunc(tracking.Fold))
	msqlite.MustRegisterDeterministicScalarFunction("sightline_reverse", 1, textFunc(reverse))
	msqlite.MustRegisterDeterministicScalarFunction("sightline_ip_key", 1, textFunc(ipKeyOf))
}

// textFunc makes f an SQL function of one text argument; NULL stays NULL.
func textFunc(f func(string) string) func(*msqlite.FunctionContext, []driver.Value) (driver.Value, error) {
	return func(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case nil:
			return nil, nil
		case string:
			return f(v), nil
		case []byte:
			return f(string(v)), nil
		default:
			return f(fmt.Sprint(v)), nil
		}
	}
}

// reverse returns s with its runes in reverse order.
func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// ipKey is the sortable key of an address: the hex of its 16-byte form,
// IPv4 as IPv4-mapped IPv6.
func ipKey(a netip.Addr) string {
	b := a.As16()
	return hex.EncodeToString(b[:])
}

// ipKeyOf is ipKey of the address s, "" when s is none.
func ipKeyOf(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	return ipKey(a.Unmap().WithZone(""))
}

// prefixRange returns the first and last keys of p.
func prefixRange(p netip.Prefix) (lo, hi string) {
	a, bits := p.Addr(), p.Bits()
	if a.Is4() {
		bits += 96
	}
	first := a.As16()
	last := first
	for i := bits; i < 128; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	return hex.EncodeToString(first[:]), hex.EncodeToString(last[:])
}

// textCol is a folded text field for substring terms: its column in an FTS5
// trigram table, and the scan that replaces the FTS lookup for values of
// fewer than 3 characters (which trigrams cannot look up).
type textCol struct {
	fts, col string // FTS table and column
	rowMID   string // the MID of an FTS row
	scan     string // condition on m with one ? for the folded value
	rowShift int    // an FTS rowid is MID << rowShift + a part's index
}

var (
	colSubject     = textCol{"messages_fts", "subject", "rowid", "instr(m.subject_lc, ?) > 0", 0}
	colSender      = textCol{"messages_fts", "sender", "rowid", "instr(m.sender_lc, ?) > 0", 0}
	colReplyTo     = textCol{"messages_fts", "reply_to", "rowid", "instr(m.reply_to_lc, ?) > 0", 0}
	colRecipients  = textCol{"messages_fts", "recipients", "rowid", "EXISTS (SELECT 1 FROM recipients x WHERE x.mid = m.mid AND instr(x.address_lc, ?) > 0)", 0}
	colAttachments = textCol{"messages_fts", "attachments", "rowid", "EXISTS (SELECT 1 FROM attachments x WHERE x.mid = m.mid AND instr(x.name_lc, ?) > 0)", 0}
	colHeaderFrom  = textCol{"search_fts", "header_from", "rowid", "instr(sightline_fold(m.header_from || char(10) || m.friendly_from), ?) > 0", 0}
	colBody        = textCol{"search_fts", "body", "rowid", "instr(sightline_fold(m.body_snippet), ?) > 0", 0}
	colHost        = textCol{"search_fts", "host", "rowid", "instr(sightline_fold(m.reverse_dns || char(10) || m.helo), ?) > 0", 0}
	colHeaderTo    = textCol{"search_fts", "header_to", "rowid", "instr(sightline_fold(m.header_to), ?) > 0", 0}
	colHeaderCc    = textCol{"search_fts", "header_cc", "rowid", "instr(sightline_fold(m.header_cc), ?) > 0", 0}
	colURL         = textCol{"urls_fts", "url", "rowid >> 16", "EXISTS (SELECT 1 FROM urls x WHERE x.mid = m.mid AND instr(sightline_fold(x.url), ?) > 0)", 16}
)

// substringCols are the fields of each substring key.
var substringCols = map[tracking.Key][]textCol{
	tracking.KeyWord:      {colSubject, colSender, colHeaderFrom, colReplyTo, colRecipients, colHeaderTo, colHeaderCc, colAttachments, colBody},
	tracking.KeyFrom:      {colSender, colHeaderFrom},
	tracking.KeyTo:        {colRecipients, colHeaderTo, colHeaderCc},
	tracking.KeyCc:        {colHeaderCc},
	tracking.KeyReplyTo:   {colReplyTo},
	tracking.KeyAddressed: {colSender, colHeaderFrom, colRecipients, colHeaderTo, colHeaderCc, colReplyTo},
	tracking.KeySubject:   {colSubject},
	tracking.KeyHost:      {colHost},
	tracking.KeyFilename:  {colAttachments},
	tracking.KeyURL:       {colURL},
}

// contains is the condition that any of cols holds the substring v.
// With mids (the lowest and highest MID of the search's window, see
// midRange), each FTS lookup reads only that range of its posting lists.
func contains(v string, cols []textCol, mids []int64) (string, []any) {
	v = tracking.Fold(v)
	var ors []string
	var args []any
	if utf8.RuneCountInString(v) < 3 {
		for _, c := range cols {
			ors = append(ors, c.scan)
			args = append(args, v)
		}
		return "(" + strings.Join(ors, " OR ") + ")", args
	}
	// One lookup per FTS table, over all its columns at once.
	phrase := `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
	var tables []textCol
	names := map[string][]string{}
	for _, c := range cols {
		if names[c.fts] == nil {
			tables = append(tables, c)
		}
		names[c.fts] = append(names[c.fts], c.col)
	}
	for _, t := range tables {
		lookup, la := ftsLookup(t, "{"+strings.Join(names[t.fts], " ")+"} : "+phrase, mids)
		ors, args = append(ors, "m.mid IN ("+lookup+")"), append(args, la...)
	}
	// Messages not indexed yet are checked by scanning.
	var scans []string
	for _, c := range cols {
		scans = append(scans, c.scan)
		args = append(args, v)
	}
	ors = append(ors, "(m.mid IN (SELECT mid FROM search_queue) AND ("+strings.Join(scans, " OR ")+"))")
	return "(" + strings.Join(ors, " OR ") + ")", args
}

// ftsLookup is the query of the MIDs whose rows of t's FTS table match
// (an FTS5 query), only among mids (lowest and highest, see midRange) when
// it is not nil: FTS5 then seeks into its posting lists instead of reading
// them whole.
func ftsLookup(t textCol, match string, mids []int64) (string, []any) {
	q, args := "SELECT "+t.rowMID+" FROM "+t.fts+" WHERE "+t.fts+" MATCH ?", []any{match}
	if mids == nil {
		return q, args
	}
	return q + " AND rowid BETWEEN ? AND ?", append(args, mids[0]<<t.rowShift, mids[1]<<t.rowShift|(1<<t.rowShift-1))
}

// statusPrefix is the condition that the message status begins with p.
func statusPrefix(p string) (string, []any) {
	return "(m.status >= ? AND m.status < ?)", []any{p, p + "\xff"}
}

// flagConds are the conditions of is: and has: flags.
var flagConds = map[string]func() (string, []any){
	"is:incoming":    func() (string, []any) { return "m.direction = ?", []any{"incoming"} },
	"is:outgoing":    func() (string, []any) { return "m.direction = ?", []any{"outgoing"} },
	"is:delivered":   func() (string, []any) { return "m.status = ?", []any{tracking.StatusDelivered} },
	"is:quarantined": func() (string, []any) { return statusPrefix("Quarantined ") },
	"is:dropped":     func() (string, []any) { return statusPrefix("Dropped ") },
	"is:bounced": func() (string, []any) {
		return "m.status IN (?, ?, ?)", []any{tracking.StatusBounced, tracking.StatusHardBounced, tracking.StatusSoftBounced}
	},
	"is:aborted":    func() (string, []any) { return "m.status = ?", []any{tracking.StatusAborted} },
	"is:inprogress": func() (string, []any) { return "m.status = ?", []any{tracking.StatusInProgress} },
	"is:spam": func() (string, []any) {
		return "m.mid IN (SELECT mid FROM flags WHERE flag = ?)", []any{"spamPositive"}
	},
	"is:virus": func() (string, []any) {
		return "m.mid IN (SELECT mid FROM flags WHERE flag = ?)", []any{"virusPositive"}
	},
	"has:attachment": func() (string, []any) {
		return "EXISTS (SELECT 1 FROM attachments x WHERE x.mid = m.mid)", nil
	},
	"has:url":    func() (string, []any) { return "EXISTS (SELECT 1 FROM urls x WHERE x.mid = m.mid)", nil },
	"has:inline": func() (string, []any) { return "m.has_inline = 1", nil },
}

// termCond returns the condition of t, negation included, and whether it
// is answered by an index lookup of few rows (see searchWhere). timeCol is
// how to name the injection time.
func termCond(t tracking.Term, timeCol string, mids []int64) (cond string, args []any, selective bool) {
	switch t.Key {
	case tracking.KeyAfter, tracking.KeyBefore:
		// Negated, an inclusive bound turns round: -after:d is "at or
		// before d", as in Mailpit.
		op := ">="
		if (t.Key == tracking.KeyBefore) != t.Negated {
			op = "<="
		}
		return timeCol + " " + op + " ?", []any{t.Time.UnixNano()}, false
	case tracking.KeyLarger, tracking.KeySmaller:
		op := ">"
		if (t.Key == tracking.KeySmaller) != t.Negated {
			op = "<"
		}
		return "m.size " + op + " ?", []any{t.Size}, false
	}
	cond, args, selective = positiveCond(t, mids)
	if t.Negated {
		return "NOT " + cond, args, false
	}
	return cond, args, selective
}

// positiveCond is the condition of t without its negation. For list
// fields it holds when any element matches, so that its negation holds
// when none does.
func positiveCond(t tracking.Term, mids []int64) (string, []any, bool) {
	switch t.Key {
	case tracking.KeyIs, tracking.KeyHas:
		c, a := flagConds[string(t.Key)+":"+t.Value]()
		return "(" + c + ")", a, false
	case tracking.KeyMID:
		return "(m.mid = ?)", []any{t.MID}, true
	case tracking.KeyMessageID:
		return "(m.message_id_key = ?)", []any{t.Value}, true
	case tracking.KeyIP:
		if t.Prefix.IsSingleIP() {
			return "(m.sender_ip = ?)", []any{t.Prefix.Addr().String()}, true
		}
		lo, hi := prefixRange(t.Prefix)
		return "(sightline_ip_key(m.sender_ip) BETWEEN ? AND ?)", []any{lo, hi}, true
	case tracking.KeySHA256, tracking.KeySHA1, tracking.KeyMD5:
		return "(m.mid IN (SELECT mid FROM attachments WHERE " + string(t.Key) + " = ?))", []any{t.Value}, true
	case tracking.KeyDomain:
		d := t.Value
		if !strings.HasPrefix(d, ".") {
			return "(m.sender_domain_lc = ? OR m.mid IN (SELECT mid FROM recipients WHERE domain = ?))", []any{d, d}, true
		}
		// ".example.com": example.com and every name ending in it.
		base := strings.Trim(d, ".")
		lo := reverse("." + base)
		return "(m.sender_domain_lc = ? OR (sightline_reverse(m.sender_domain_lc) >= ? AND sightline_reverse(m.sender_domain_lc) < ?)" +
				" OR m.mid IN (SELECT mid FROM recipients WHERE domain = ? OR (sightline_reverse(domain) >= ? AND sightline_reverse(domain) < ?)))",
			[]any{base, lo, lo + "\xff", base, lo, lo + "\xff"}, true
	case tracking.KeyURL:
		if strings.Contains(t.Value, "://") {
			return "(m.mid IN (SELECT mid FROM urls WHERE sightline_fold(url) = ?))", []any{tracking.Fold(t.Value)}, true
		}
	case tracking.KeyStatus:
		return "(instr(sightline_fold(m.status), ?) > 0)", []any{tracking.Fold(t.Value)}, false
	}
	c, a := contains(t.Value, substringCols[t.Key], mids)
	return c, a, utf8.RuneCountInString(t.Value) >= 3
}

// searchWindow is the injection-time window [start, end) that s's after:
// and before: terms (which are inclusive, and turn round when negated)
// bound; a zero bound is open.
func searchWindow(s tracking.Search) (start, end time.Time) {
	for _, t := range s.Terms {
		switch {
		case t.Key != tracking.KeyAfter && t.Key != tracking.KeyBefore:
		case (t.Key == tracking.KeyBefore) != t.Negated: // at or before t.Time
			if e := t.Time.Add(1); end.IsZero() || e.Before(end) {
				end = e
			}
		default: // at or after t.Time
			if start.IsZero() || t.Time.After(start) {
				start = t.Time
			}
		}
	}
	return start, end
}

// searchWhere is the WHERE clause of s over messages m, and how it names
// the injection time: with a positive term answered by an index lookup of
// few rows, a unary + keeps SQLite from walking the time index instead
// (its statistics cannot tell a narrow lookup from a wide one).
func searchWhere(s tracking.Search, mids []int64) (w where, timeCol string) {
	timeCol = "m.injected_at"
	for _, t := range s.Terms {
		if _, _, sel := termCond(t, timeCol, nil); sel {
			timeCol = "+m.injected_at"
			break
		}
	}
	for _, t := range s.Terms {
		c, a, _ := termCond(t, timeCol, mids)
		w.add(c, a...)
	}
	return w, timeCol
}

// SearchMessages implements tracking.SearchStore: the page is read with a
// keyset condition on (injected_at, mid), and Total counts at most
// tracking.SearchCountLimit matches.
func (s *TrackingStore) SearchMessages(ctx context.Context, q tracking.SearchQuery) (tracking.SearchPage, error) {
	tx, err := s.beginRead(ctx)
	if err != nil {
		return tracking.SearchPage{}, wrapDB("search messages", err)
	}
	defer tx.Rollback()
	var mids []int64
	if start, end := searchWindow(q.Search); !start.IsZero() || !end.IsZero() {
		if mids, err = midRange(ctx, tx, start, end); err != nil {
			return tracking.SearchPage{}, wrapDB("search messages", err)
		}
	}
	w, timeCol := searchWhere(q.Search, mids)

	var page tracking.SearchPage
	countArgs := append(w.args[:len(w.args):len(w.args)], tracking.SearchCountLimit+1)
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages m`+w.sql()+` LIMIT ?)`, countArgs...).Scan(&page.Total); err != nil {
		return tracking.SearchPage{}, wrapDB("count messages", err)
	}
	if page.Total > tracking.SearchCountLimit {
		page.Total, page.TotalCapped = tracking.SearchCountLimit, true
	}

	if q.After != nil {
		w.add("("+timeCol+", m.mid) < (?, ?)", q.After.InjectedAt.UnixNano(), q.After.MID)
	}
	limit := q.PageLimit()
	rows, err := tx.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages m`+w.sql()+
		` ORDER BY m.injected_at DESC, m.mid DESC LIMIT ?`, append(w.args, limit+1)...)
	if err != nil {
		return tracking.SearchPage{}, wrapDB("search messages", err)
	}
	msgs, err := scanMessages(rows)
	if err != nil {
		return tracking.SearchPage{}, wrapDB("search messages", err)
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		last := msgs[limit-1]
		page.Next = &tracking.Cursor{InjectedAt: last.InjectedAt, MID: last.MID}
	}
	if err := loadChildren(ctx, tx, msgs); err != nil {
		return tracking.SearchPage{}, wrapDB("search messages", err)
	}
	page.Messages = msgs
	return page, nil
}

var _ tracking.SearchStore = (*TrackingStore)(nil)
