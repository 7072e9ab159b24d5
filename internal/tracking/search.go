package tracking

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline"
)

// This file is the native search language (search-and-bench.md Part A): a
// Mailpit-style query of AND-ed terms, parsed into a Search that a
// SearchStore executes with keyset paging.

// Key is the key of a search term. Keys are matched case-insensitively.
type Key string

// Search keys (search-and-bench.md §A.2). KeyWord is a bare word or phrase.
const (
	KeyWord      Key = ""
	KeyFrom      Key = "from"       // envelope sender, header From address or display name: substring
	KeyTo        Key = "to"         // any envelope recipient: substring
	KeyCc        Key = "cc"         // as KeyTo: the gateway keeps no Cc header, its addresses are envelope recipients
	KeyReplyTo   Key = "reply-to"   // Reply-To address: substring
	KeyAddressed Key = "addressed"  // any of from, to, reply-to: substring
	KeySubject   Key = "subject"    // decoded subject: substring
	KeyMessageID Key = "message-id" // Message-ID without angle brackets: exact
	KeyIs        Key = "is"         // a flag of IsFlags
	KeyHas       Key = "has"        // a flag of HasFlags
	KeyBefore    Key = "before"     // injected at or before Term.Time
	KeyAfter     Key = "after"      // injected at or after Term.Time
	KeyLarger    Key = "larger"     // size > Term.Size
	KeySmaller   Key = "smaller"    // size < Term.Size
	KeyIP        Key = "ip"         // client IP within Term.Prefix
	KeyHost      Key = "host"       // client reverse-DNS name or HELO: substring
	KeyDomain    Key = "domain"     // sender or any recipient domain: exact, or ".suffix" for it and its subdomains
	KeySHA256    Key = "sha256"     // any attachment's SHA-256: exact
	KeySHA1      Key = "sha1"       // any attachment's SHA-1: exact
	KeyMD5       Key = "md5"        // any attachment's MD5: exact
	KeyFilename  Key = "filename"   // any attachment name: substring
	KeyURL       Key = "url"        // any URL: substring, exact when the value contains "://"
	KeyMID       Key = "mid"        // MID: exact
	KeyStatus    Key = "status"     // message status: substring
)

// searchKeys are the keys ParseSearch recognises.
var searchKeys = map[Key]bool{
	KeyFrom: true, KeyTo: true, KeyCc: true, KeyReplyTo: true, KeyAddressed: true, KeySubject: true,
	KeyMessageID: true, KeyIs: true, KeyHas: true, KeyBefore: true, KeyAfter: true, KeyLarger: true,
	KeySmaller: true, KeyIP: true, KeyHost: true, KeyDomain: true, KeySHA256: true, KeySHA1: true,
	KeyMD5: true, KeyFilename: true, KeyURL: true, KeyMID: true, KeyStatus: true,
}

// IsFlags are the names is: accepts.
var IsFlags = []string{"incoming", "outgoing", "delivered", "quarantined", "dropped", "bounced", "aborted",
	"inprogress", "spam", "virus"}

// HasFlags are the names has: accepts; "attachments" is normalised to
// "attachment".
var HasFlags = []string{"attachment", "inline", "url"}

// Bounds of a query.
const (
	MaxSearchLen   = 4096 // bytes of a query
	MaxSearchTerms = 32
)

// Search is a parsed query: every term must match. The zero Search
// matches every message.
type Search struct {
	Terms []Term
}

// Term is one term of a Search. Its Value is checked and normalised for its
// Key; the typed fields hold the parsed forms some keys need.
type Term struct {
	Key     Key
	Negated bool
	// Value is the unquoted value. Text values keep their case (stores fold
	// them); flags are lower-case names of IsFlags or HasFlags; hashes are
	// lower-case hex; for KeyDomain it is folded, without a leading "@",
	// and begins with "." for a suffix; for KeyMessageID it is
	// MessageIDKey of the value.
	Value string
	// Text is the term as typed, quotes and prefix included, for messages.
	Text string

	Time   time.Time    // KeyBefore, KeyAfter
	Size   int64        // KeyLarger, KeySmaller, in bytes
	Prefix netip.Prefix // KeyIP: an address is a full-length prefix; IPv4 is never mapped
	MID    int64        // KeyMID
}

// SearchError reports a term ParseSearch rejects. Its JSON is the body of
// the API's 400 answer:
// {"error":"invalid term","term":"after:31/12/2025","reason":"ambiguous date; use yyyy-mm-dd"}.
type SearchError struct {
	Term   string // as typed
	Reason string
}

func (e *SearchError) Error() string { return fmt.Sprintf("invalid term %q: %s", e.Term, e.Reason) }

// Unwrap makes a SearchError an Invalid *sightline.Error for ErrorKind and
// ErrorMessage.
func (e *SearchError) Unwrap() error { return sightline.Errorf(sightline.Invalid, "%s", e.Error()) }

// MarshalJSON implements json.Marshaler.
func (e *SearchError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Error  string `json:"error"`
		Term   string `json:"term"`
		Reason string `json:"reason"`
	}{"invalid term", e.Term, e.Reason})
}

// ParseSearch parses q, the native search language of search-and-bench.md
// §A.2: space-separated terms, all of which must match; a term is a
// `key:value`, an `is:`/`has:` flag or a word, optionally negated by a
// leading "-" or "!"; double quotes keep spaces in a value (`to:"john doe"`)
// and `\"` is a quote inside them. A key ParseSearch does not know makes
// the term a plain word ("re:"), as does a colon inside quotes. Dates
// without an offset are read in loc (UTC when nil).
//
// A malformed value (date, size, IP, CIDR, hash, MID, flag), an empty
// value, a query over MaxSearchLen bytes or MaxSearchTerms terms, and
// invalid UTF-8 are a *SearchError.
func ParseSearch(q string, loc *time.Location) (Search, error) {
	if loc == nil {
		loc = time.UTC
	}
	if len(q) > MaxSearchLen {
		return Search{}, &SearchError{Term: clip(q), Reason: fmt.Sprintf("query longer than %d bytes", MaxSearchLen)}
	}
	if !utf8.ValidString(q) {
		return Search{}, &SearchError{Term: clip(strings.ToValidUTF8(q, "\uFFFD")), Reason: "invalid UTF-8"}
	}
	var s Search
	for _, tok := range tokenize(q) {
		t, ok, err := parseTerm(tok, loc)
		if err != nil {
			return Search{}, err
		}
		if !ok {
			continue
		}
		if len(s.Terms) == MaxSearchTerms {
			return Search{}, &SearchError{Term: tok.text, Reason: fmt.Sprintf("more than %d terms", MaxSearchTerms)}
		}
		s.Terms = append(s.Terms, t)
	}
	return s, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// token is one space-separated token of a query.
type token struct {
	text  string // as typed
	plain string // the part before any quote
	value string // with quotes removed and \" unescaped
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// tokenize splits q on spaces outside double quotes. An unterminated quote
// runs to the end of q.
func tokenize(q string) []token {
	var toks []token
	for i := 0; i < len(q); {
		if isSpace(q[i]) {
			i++
			continue
		}
		start, quoted := i, false
		plainEnd := -1
		var val strings.Builder
		for ; i < len(q); i++ {
			c := q[i]
			switch {
			case !quoted && isSpace(c):
			case c == '"':
				if plainEnd < 0 {
					plainEnd = val.Len()
				}
				quoted = !quoted
				continue
			case quoted && c == '\\' && i+1 < len(q) && q[i+1] == '"':
				val.WriteByte('"')
				i++
				continue
			default:
				val.WriteByte(c)
				continue
			}
			break
		}
		v := val.String()
		if plainEnd < 0 {
			plainEnd = len(v)
		}
		toks = append(toks, token{text: q[start:i], plain: v[:plainEnd], value: v})
	}
	return toks
}

// parseTerm parses one token; ok is false for a term that matches
// everything (an empty phrase).
func parseTerm(tok token, loc *time.Location) (t Term, ok bool, err error) {
	t.Text = tok.text
	plain, value := tok.plain, tok.value
	if len(tok.text) > 1 && (tok.text[0] == '-' || tok.text[0] == '!') {
		// The prefix is outside quotes, so plain holds it too.
		t.Negated = true
		plain, value = plain[1:], value[1:]
	}
	if i := strings.IndexByte(plain, ':'); i > 0 {
		if k := Key(strings.ToLower(plain[:i])); searchKeys[k] {
			t.Key, t.Value = k, value[i+1:]
			if t.Value == "" {
				return t, false, &SearchError{Term: tok.text, Reason: "missing value after " + string(k) + ":"}
			}
			if err := t.parseValue(loc); err != nil {
				return t, false, &SearchError{Term: tok.text, Reason: err.Error()}
			}
			return t, true, nil
		}
	}
	if value == "" {
		return t, false, nil
	}
	t.Key, t.Value = KeyWord, value
	return t, true, nil
}

// parseValue checks and normalises t.Value for t.Key; its error is the
// reason shown to the user.
func (t *Term) parseValue(loc *time.Location) error {
	var err error
	switch t.Key {
	case KeyIs:
		t.Value, err = flagName(t.Value, IsFlags, nil)
	case KeyHas:
		t.Value, err = flagName(t.Value, HasFlags, map[string]string{"attachments": "attachment", "urls": "url"})
	case KeyBefore, KeyAfter:
		t.Time, err = parseSearchDate(t.Value, loc)
	case KeyLarger, KeySmaller:
		t.Size, err = parseSize(t.Value)
	case KeyIP:
		t.Prefix, err = parseIPPrefix(t.Value)
	case KeySHA256, KeySHA1, KeyMD5:
		n := map[Key]int{KeySHA256: 64, KeySHA1: 40, KeyMD5: 32}[t.Key]
		t.Value = strings.ToLower(t.Value)
		if !isHex(t.Value, n) {
			err = fmt.Errorf("%s must be %d hexadecimal digits", t.Key, n)
		}
	case KeyMID:
		t.MID, err = strconv.ParseInt(t.Value, 10, 64)
		if err != nil || t.MID <= 0 || !isDigits(t.Value) {
			err = fmt.Errorf("invalid MID; use a positive integer")
		}
	case KeyMessageID:
		t.Value = MessageIDKey(t.Value)
		if t.Value == "" {
			err = fmt.Errorf("empty Message-ID")
		}
	case KeyDomain:
		t.Value = Fold(strings.TrimPrefix(strings.TrimSpace(t.Value), "@"))
		if strings.Trim(t.Value, ".") == "" || strings.ContainsAny(t.Value, "@ ") || strings.Contains(t.Value[1:], "..") {
			err = fmt.Errorf("invalid domain; use example.com, or .example.com for it and its subdomains")
		}
	}
	return err
}

func flagName(v string, names []string, aliases map[string]string) (string, error) {
	v = strings.ToLower(v)
	if a, ok := aliases[v]; ok {
		v = a
	}
	for _, n := range names {
		if v == n {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown flag; use one of %s", strings.Join(names, ", "))
}

var (
	// ambiguousDate is dd/mm/yyyy or mm/dd/yyyy with any separator.
	ambiguousDate = regexp.MustCompile(`^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b`)
	sizeRE        = regexp.MustCompile(`^(\d+(?:\.\d+)?)([kKmM][bB]?)?$`)
)

// searchDateLayouts are the forms of §A.3 after "/" is replaced by "-".
// Seconds may carry a fraction.
var searchDateLayouts = []string{
	"2006-01-02", "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05",
}

// parseSearchDate reads a date of §A.3 in loc, or RFC 3339 with an offset.
func parseSearchDate(s string, loc *time.Location) (time.Time, error) {
	if ambiguousDate.MatchString(s) {
		return time.Time{}, fmt.Errorf("ambiguous date; use yyyy-mm-dd")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if len(s) >= 10 && s[4] == '/' && s[7] == '/' {
		s = s[:4] + "-" + s[5:7] + "-" + s[8:]
	}
	for _, layout := range searchDateLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date; use yyyy-mm-dd, optionally with a time hh:mm[:ss]")
}

// maxSearchSize bounds sizes so that they stay exact in a float64.
const maxSearchSize = 1 << 53

// parseSize reads a size with Mailpit's units: k or kb (×1024), m or mb
// (×1024²), an optional decimal part; the result is truncated to bytes.
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size; use a number with an optional unit k, kb, m or mb")
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size; use a number with an optional unit k, kb, m or mb")
	}
	switch strings.ToLower(m[2]) {
	case "k", "kb":
		f *= 1 << 10
	case "m", "mb":
		f *= 1 << 20
	}
	if f > maxSearchSize {
		return 0, fmt.Errorf("size too large")
	}
	return int64(f), nil
}

// parseIPPrefix reads an IPv4 or IPv6 address or CIDR block, without a
// zone. IPv4-mapped IPv6 is read as IPv4; host bits of a block are cleared.
func parseIPPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR block; use e.g. 203.0.113.0/24 or 2001:db8::/32")
		}
		a, bits := p.Addr(), p.Bits()
		if a.Is4In6() {
			if bits < 96 {
				// A block wider than the mapped range holds IPv6 addresses
				// too: keep it IPv6.
				return p.Masked(), nil
			}
			a, bits = a.Unmap(), bits-96
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid IP address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Paging bounds of the native search API.
const (
	DefaultSearchLimit = 50
	MaxSearchLimit     = 500
	// SearchCountLimit caps SearchPage.Total.
	SearchCountLimit = 10_000
)

// Cursor is a position in the results of a search: the key of the last
// message of a page. Results continue with messages strictly older
// (injection time, then MID, descending).
type Cursor struct {
	InjectedAt time.Time
	MID        int64
}

const cursorVersion = 1

// String encodes c as an opaque URL-safe token.
func (c Cursor) String() string {
	b := make([]byte, 17)
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], uint64(c.InjectedAt.UnixNano()))
	binary.BigEndian.PutUint64(b[9:], uint64(c.MID))
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a token of Cursor.String. A malformed one is an
// Invalid *sightline.Error.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 17 || b[0] != cursorVersion {
		return Cursor{}, sightline.Errorf(sightline.Invalid, "invalid cursor")
	}
	return Cursor{
		InjectedAt: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))).UTC(),
		MID:        int64(binary.BigEndian.Uint64(b[9:])),
	}, nil
}

// SearchQuery is one page request of a native search.
type SearchQuery struct {
	Search Search
	After  *Cursor // nil for the first page
	Limit  int     // DefaultSearchLimit when 0; at most MaxSearchLimit
}

// PageLimit returns q.Limit bounded to 1…MaxSearchLimit, DefaultSearchLimit
// when unset.
func (q SearchQuery) PageLimit() int {
	switch {
	case q.Limit <= 0:
		return DefaultSearchLimit
	case q.Limit > MaxSearchLimit:
		return MaxSearchLimit
	}
	return q.Limit
}

// SearchPage is one page of a native search.
type SearchPage struct {
	Messages []*Message
	// Total counts all matches of the search (not only those after the
	// cursor), up to SearchCountLimit; TotalCapped reports more.
	Total       int
	TotalCapped bool
	// Next is where the next page starts; nil on the last page.
	Next *Cursor
}

// SearchStore runs native searches. Implementations order results by
// (InjectedAt, MID) descending, read only the rows of the page asked for,
// and treat list fields (recipients, attachments, URLs) as in §A.2: a term
// matches when any element does, a negated term when none does.
type SearchStore interface {
	SearchMessages(ctx context.Context, q SearchQuery) (SearchPage, error)
}
