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

// textCol is a folded text field for substring terms: its field in the
// substring index, and its exact condition on m with one ? for the folded
// value (which also answers values of fewer than 3 characters, which
// trigrams cannot look up).
type textCol struct {
	field gramField
	scan  string
}

var (
	colSubject     = textCol{gramSubject, "instr(m.subject_lc, ?) > 0"}
	colSender      = textCol{gramSender, "instr(m.sender_lc, ?) > 0"}
	colReplyTo     = textCol{gramReplyTo, "instr(m.reply_to_lc, ?) > 0"}
	colRecipients  = textCol{gramRecipients, "EXISTS (SELECT 1 FROM recipients x WHERE x.mid = m.mid AND instr(x.address_lc, ?) > 0)"}
	colAttachments = textCol{gramAttachments, "EXISTS (SELECT 1 FROM attachments x WHERE x.mid = m.mid AND instr(x.name_lc, ?) > 0)"}
	colHeaderFrom  = textCol{gramHeaderFrom, "instr(sightline_fold(m.header_from || char(10) || m.friendly_from), ?) > 0"}
	colBody        = textCol{gramBody, "instr(sightline_fold(m.body_snippet), ?) > 0"}
	colHost        = textCol{gramHost, "instr(sightline_fold(m.reverse_dns || char(10) || m.helo), ?) > 0"}
	colHeaderTo    = textCol{gramHeaderTo, "instr(sightline_fold(m.header_to), ?) > 0"}
	colHeaderCc    = textCol{gramHeaderCc, "instr(sightline_fold(m.header_cc), ?) > 0"}
	colURL         = textCol{gramURL, "EXISTS (SELECT 1 FROM urls x WHERE x.mid = m.mid AND instr(sightline_fold(x.url), ?) > 0)"}
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

// fieldsOf returns the index fields of cols.
func fieldsOf(cols []textCol) []gramField {
	fs := make([]gramField, len(cols))
	for i, c := range cols {
		fs[i] = c.field
	}
	return fs
}

// contains is the condition that any of cols holds the substring v: the
// exact check of each col. A search whose candidates drive it (see
// where.drive) checks only those.
func contains(v string, cols []textCol) (string, []any) {
	v = tracking.Fold(v)
	scans := make([]string, len(cols))
	args := make([]any, 0, len(cols))
	for i, c := range cols {
		scans[i] = c.scan
		args = append(args, v)
	}
	return "(" + strings.Join(scans, " OR ") + ")", args
}

// scanPageMatches is how many matches make a search's page quicker to
// find by reading the newest rows of the window and checking each than by
// sorting the matches: one in 1,000 rows of ten million. readMatches keeps
// no more.
const scanPageMatches = 10_000

// drivenMatches returns the query, from sel on, that reads w's candidates
// (a JSON array, the first of args), highest MID first, and checks each,
// up to a limit the caller appends. Each is read from the index
// messages_text, which holds the subject and sender that most checks read,
// many to a page; the planner cannot tell that it is narrower than the
// table without statistics on it, so it is named.
func (w where) drivenMatches(sel string) (query string, args []any) {
	from, args := w.fromCandidates(` INDEXED BY messages_text`)
	return sel + from, args
}

// batchMatches returns the query, from sel on, that reads the matches
// among w's candidates, highest MID first, up to a limit the caller
// appends. Candidates dense in their range of MIDs are not sought one by
// one: every message of the range is read in order and checked, which
// costs less per message than a seek costs per candidate.
func (w where) batchMatches(sel string) (query string, args []any) {
	if len(w.driver) == 0 || float64(len(w.driver)) < denseCandidates*float64(w.driver[0]-w.driver[len(w.driver)-1]+1) {
		return w.drivenMatches(sel)
	}
	w.add("m.mid BETWEEN ? AND ?", w.driver[len(w.driver)-1], w.driver[0])
	return sel + ` FROM messages m INDEXED BY messages_text` + w.sql() + ` ORDER BY m.mid DESC`, w.args
}

// denseCandidates is the share of a range's MIDs above which batchMatches
// reads the whole range (a variable, so that tests can take both ways).
// At 10M, a value matching 15 % of a day's messages took 30 % less time.
var denseCandidates = 0.08

// drivenPage returns the query of the MIDs of a page of w's messages that
// its candidates drive, ending with tail, and its arguments but tail's.
func (w where) drivenPage(tail string) (query string, args []any) {
	from, args := w.fromCandidates("")
	return `SELECT m.mid` + from + ` ` + tail, args
}

// fromCandidates returns the FROM and WHERE clauses that join w's
// candidates (a JSON array, the first of args), highest MID first, to
// messages m, read through index, and their arguments.
func (w where) fromCandidates(index string) (string, []any) {
	return ` FROM json_each(?) c JOIN messages m` + index + ` ON m.mid = c.value` + w.sql(), append([]any{jsonInts(w.driver)}, w.args...)
}

// substringNeeds returns the lookups of the substring terms of s that can
// drive it: a negated term's candidates cannot.
func substringNeeds(s tracking.Search) []substringKey {
	var needs []substringKey
	for _, t := range s.Terms {
		cols, ok := substringCols[t.Key]
		if v := tracking.Fold(t.Value); ok && indexable(v) && !exactTerm(t) && !t.Negated {
			needs = append(needs, keyOf(fieldsOf(cols), v))
		}
	}
	return needs
}

// exactTerm reports whether t, of a substring key, is answered otherwise
// (a whole URL, by its index).
func exactTerm(t tracking.Term) bool {
	return t.Key == tracking.KeyURL && strings.Contains(t.Value, "://")
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
func termCond(t tracking.Term, timeCol string) (cond string, args []any, selective bool) {
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
	cond, args, selective = positiveCond(t)
	if t.Negated {
		return "NOT " + cond, args, false
	}
	return cond, args, selective
}

// positiveCond is the condition of t without its negation. For list
// fields it holds when any element matches, so that its negation holds
// when none does.
func positiveCond(t tracking.Term) (string, []any, bool) {
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
		if exactTerm(t) {
			return "(m.mid IN (SELECT mid FROM urls WHERE sightline_fold(url) = ?))", []any{tracking.Fold(t.Value)}, true
		}
	case tracking.KeyStatus:
		return "(instr(sightline_fold(m.status), ?) > 0)", []any{tracking.Fold(t.Value)}, false
	}
	c, a := contains(t.Value, substringCols[t.Key])
	return c, a, indexable(tracking.Fold(t.Value))
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
func searchWhere(s tracking.Search, subs substrings) (w where, timeCol string) {
	timeCol = "m.injected_at"
	for _, t := range s.Terms {
		if _, _, sel := termCond(t, timeCol); sel {
			timeCol = "+m.injected_at"
			break
		}
	}
	return searchWhereWith(s, subs, timeCol), timeCol
}

// searchWhereWith is the WHERE clause of s over messages m that names the
// injection time timeCol.
func searchWhereWith(s tracking.Search, subs substrings, timeCol string) (w where) {
	for _, t := range s.Terms {
		c, a, _ := termCond(t, timeCol)
		w.add(c, a...)
		if cands, ok := subs.candidates(fieldsOf(substringCols[t.Key]), tracking.Fold(t.Value)); ok && !t.Negated {
			w.drive(cands)
		}
	}
	return w
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
	start, end := searchWindow(q.Search)
	subs, err := lookupSubstrings(ctx, tx, substringNeeds(q.Search), start, end)
	if err != nil {
		return tracking.SearchPage{}, wrapDB("search messages", err)
	}
	w, timeCol := searchWhere(q.Search, subs)

	var page tracking.SearchPage
	var msgs []*tracking.Message
	limit, readPage := q.PageLimit(), true
	if w.driven {
		// Counted up to scanPageMatches: a search whose matches are not
		// all kept has at least that many, and reads its page below.
		ms, total, all, err := readMatches(ctx, tx, w, tracking.SearchCountLimit)
		if err != nil {
			return tracking.SearchPage{}, wrapDB("search messages", err)
		}
		if page.Total = total; all {
			if q.After != nil {
				ms = ms.before(q.After.InjectedAt.UnixNano(), q.After.MID)
			}
			if msgs, err = messagesByMID(ctx, tx, ms.newest(limit+1)); err != nil {
				return tracking.SearchPage{}, wrapDB("search messages", err)
			}
			readPage = false
		}
	} else {
		countArgs := append(w.args[:len(w.args):len(w.args)], tracking.SearchCountLimit+1)
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages m`+w.sql()+` LIMIT ?)`, countArgs...).Scan(&page.Total); err != nil {
			return tracking.SearchPage{}, wrapDB("count messages", err)
		}
	}
	if page.Total > tracking.SearchCountLimit {
		page.Total, page.TotalCapped = tracking.SearchCountLimit, true
	}
	if readPage {
		from := ` FROM messages m`
		if page.Total >= scanPageMatches {
			// So many matches: walking the window's time index from its
			// newest end finds a page of them sooner than sorting them all,
			// which an index lookup of a common value (a popular domain)
			// would.
			from, timeCol = ` FROM messages m INDEXED BY messages_time`, "m.injected_at"
			w = searchWhereWith(q.Search, nil, timeCol)
		}
		if q.After != nil {
			w.add("("+timeCol+", m.mid) < (?, ?)", q.After.InjectedAt.UnixNano(), q.After.MID)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+messageColumns+from+w.sql()+` ORDER BY m.injected_at DESC, m.mid DESC LIMIT ?`,
			append(w.args, limit+1)...)
		if err != nil {
			return tracking.SearchPage{}, wrapDB("search messages", err)
		}
		if msgs, err = scanMessages(rows); err != nil {
			return tracking.SearchPage{}, wrapDB("search messages", err)
		}
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
