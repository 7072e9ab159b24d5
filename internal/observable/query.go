package observable

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sightline/sightline"
)

// MaxQueryLength is the longest Investigate query ParseQuery accepts, in bytes.
const MaxQueryLength = 64 << 10

// Query is a parsed Investigate query.
type Query struct {
	// Terms are the typed terms (type:"value"), in normal form, in order of
	// appearance, without duplicates.
	Terms []Observable
	// Text is everything that is not a typed term, the pieces joined by a
	// space: free text to run through Inspect.
	Text string
}

// Observables returns what the query asks about: its terms, then the
// observables Inspect finds in its free text, without duplicates.
func (q Query) Observables() []Observable {
	out := append([]Observable(nil), q.Terms...)
	seen := make(map[string]bool, len(out))
	for _, o := range out {
		seen[o.Key()] = true
	}
	for _, o := range Inspect(q.Text) {
		if !seen[o.Key()] {
			seen[o.Key()] = true
			out = append(out, o)
		}
	}
	return out
}

// ParseQuery parses the Investigate box: typed terms type:"value" (double or
// single quotes, or a bare value up to the next white space), any number of
// them, and free text around them.
//
// Inside quotes a backslash escapes the quote character and itself; before
// any other character it is kept, so file_path:"C:\Windows" means what it
// says. A term starts at the beginning of the input or after white space or
// one of ( , ; and its type name must be followed directly by the colon and
// the value. A name followed by white space ("IP: 1.2.3.4", pasted text) and
// an unknown name with a bare value (http://…, mailto:…) are free text.
//
// The error, an Invalid *sightline.Error, names the offending term and its
// position (1-based, in characters) for: an unknown type with a quoted value
// (with a suggestion), a known type with an empty value, an unterminated
// quote, and a value invalid for its type.
func ParseQuery(s string) (Query, error) {
	if len(s) > MaxQueryLength {
		return Query{}, sightline.Errorf(sightline.Invalid, "query longer than %d bytes", MaxQueryLength)
	}
	if !utf8.ValidString(s) {
		return Query{}, sightline.Errorf(sightline.Invalid, "query is not valid UTF-8")
	}
	var q Query
	var text []string
	seen := map[string]bool{}
	free := 0 // start of the current free-text run
	for i := 0; i < len(s); i++ {
		if !termStartAt(s, i) {
			continue
		}
		tm, ok := lexTerm(s, i)
		if !ok {
			continue
		}
		o, err := tm.observable(s)
		if err != nil {
			return Query{}, err
		}
		if o == (Observable{}) {
			continue // free text after all
		}
		text = append(text, s[free:i])
		free, i = tm.end, tm.end-1
		if k := o.Key(); !seen[k] {
			seen[k] = true
			q.Terms = append(q.Terms, o)
		}
	}
	text = append(text, s[free:])
	q.Text = strings.Join(strings.Fields(strings.Join(text, " ")), " ")
	return q, nil
}

// term is one name:value candidate found by lexTerm.
type term struct {
	start, end   int    // bytes s[start:end] of the whole term
	name         string // as written
	value        string // unquoted and unescaped
	quoted       bool
	unterminated bool
}

// termStartAt reports whether a term may start at s[i].
func termStartAt(s string, i int) bool {
	c := s[i]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	if i == 0 {
		return true
	}
	switch s[i-1] {
	case ' ', '\t', '\n', '\r', '\f', '\v', '(', ',', ';':
		return true
	}
	return false
}

// lexTerm reads name:value at s[i:]. The name is letters, digits and
// underscores; ok is false when no colon follows it. A quoted value runs to
// its closing quote, at most MaxValueLength bytes on; a bare one to white space.
func lexTerm(s string, i int) (tm term, ok bool) {
	j := i
	for j < len(s) && (isLowerAlnum(lower(s[j])) || s[j] == '_') {
		j++
	}
	if j == i || j >= len(s) || s[j] != ':' || j-i > 64 {
		return term{}, false
	}
	tm = term{start: i, name: s[i:j]}
	j++
	if j < len(s) && (s[j] == '"' || s[j] == '\'') {
		q := s[j]
		tm.quoted = true
		var b strings.Builder
		limit := min(len(s), j+1+MaxValueLength+1)
		for k := j + 1; k < limit; k++ {
			c := s[k]
			switch {
			case c == q:
				tm.value, tm.end = b.String(), k+1
				return tm, true
			case c == '\\' && k+1 < len(s) && (s[k+1] == q || s[k+1] == '\\'):
				k++
				b.WriteByte(s[k])
			default:
				b.WriteByte(c)
			}
		}
		tm.unterminated, tm.end = true, limit
		return tm, true
	}
	k := j
	for k < len(s) && !isSpace(s[k]) {
		k++
	}
	tm.value, tm.end = s[j:k], k
	return tm, true
}

// observable checks a term strictly: the zero Observable means the term is
// free text after all; an error means it is a malformed term.
func (tm term) observable(s string) (Observable, error) {
	where := func() string {
		return fmt.Sprintf("%s at position %d", shorten(s[tm.start:tm.end]), utf8.RuneCountInString(s[:tm.start])+1)
	}
	t, known := knownTypes[strings.ToLower(tm.name)]
	if !known {
		// A quoted value, or a bare one after a name one typo away from a
		// type (emial:x@y), is a term with a wrong type; anything else
		// (http://…, mailto:…) is text.
		if tm.quoted || (tm.value != "" && len(tm.name) >= 4 && editDistance(strings.ToLower(tm.name), string(suggest(tm.name))) <= 1) {
			return Observable{}, unknownTypeError(tm.name, where())
		}
		return Observable{}, nil
	}
	if !tm.quoted && tm.value == "" && tm.end < len(s) {
		return Observable{}, nil // "IP: 1.2.3.4", pasted text: the value is not attached
	}
	if tm.unterminated {
		return Observable{}, sightline.Errorf(sightline.Invalid, "unterminated quote in %s; close it with %c", where(), s[tm.start+len(tm.name)+1])
	}
	v, problem := normalize(t, tm.value)
	switch {
	case problem == problemEmpty:
		return Observable{}, sightline.Errorf(sightline.Invalid, "empty value in %s; write %s:\"value\"", where(), t)
	case problem != "":
		return Observable{}, sightline.Errorf(sightline.Invalid, "invalid %s in %s: %s", t, where(), problem)
	}
	return Observable{Type: t, Value: v}, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
