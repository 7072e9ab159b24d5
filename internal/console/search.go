package console

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// Search limits (console-api.md §8).
const (
	defaultLimit = 100
	maxLimit     = 10000
)

// searchFields are the field filters each type accepts as query parameters.
var searchFields = map[string][]string{
	ctim.TypeSighting:  {"source", "tlp", "confidence", "severity", "observables.type", "observables.value"},
	ctim.TypeCasebook:  {"source", "tlp", "confidence", "severity", "observables.type", "observables.value"},
	ctim.TypeJudgement: {"source", "tlp", "confidence", "severity", "observable.type", "observable.value", "disposition", "disposition_name"},
	ctim.TypeIncident:  {"source", "tlp", "confidence", "severity", "status"},
}

// searchParams is a parsed search request.
type searchParams struct {
	filters  map[string]string
	terms    []queryTerm
	from, to string // TimeLayout, "" for open
	sorts    []sortKey
	limit    int
	offset   int
}

type queryTerm struct {
	field string // "" for a bare word
	value string
}

type sortKey struct {
	field string
	desc  bool
}

func badParam(field, format string, args ...any) error {
	return &ctim.ValidationError{Entity: "search", Fields: []ctim.FieldError{{Field: field, Problem: fmt.Sprintf(format, args...)}}}
}

func parseSearch(typ string, q url.Values) (searchParams, error) {
	sp := searchParams{filters: map[string]string{}, limit: defaultLimit}
	for _, f := range searchFields[typ] {
		if v := q.Get(f); v != "" {
			sp.filters[f] = v
		}
	}
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"limit", &sp.limit, maxLimit}, {"offset", &sp.offset, 1 << 30}} {
		if s := q.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > p.max {
				return sp, badParam(p.name, "%q is not an integer 0-%d", s, p.max)
			}
			*p.dst = n
		}
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"from", &sp.from}, {"to", &sp.to}} {
		if s := q.Get(p.name); s != "" {
			t, err := ctim.ParseTime(s)
			if err != nil {
				return sp, badParam(p.name, "%s", sightline.ErrorMessage(err))
			}
			*p.dst = t.String()
		}
	}
	order := q.Get("sort_order")
	if order != "" && order != "asc" && order != "desc" {
		return sp, badParam("sort_order", "%q is not asc or desc", order)
	}
	if s := q.Get("sort_by"); s != "" {
		for _, part := range strings.Split(s, ",") {
			field, dir, _ := strings.Cut(strings.TrimSpace(part), ":")
			if dir == "" {
				dir = cmp.Or(order, "asc")
			}
			if field == "" || dir != "asc" && dir != "desc" {
				return sp, badParam("sort_by", "%q: want field or field:asc,field:desc", s)
			}
			sp.sorts = append(sp.sorts, sortKey{field, dir == "desc"})
		}
	}
	var err error
	sp.terms, err = parseLucene(q.Get("query"))
	return sp, err
}

// parseLucene parses the query subset: space-separated terms that all
// must match, field:value, field:"quoted value" or a bare word.
func parseLucene(s string) ([]queryTerm, error) {
	var out []queryTerm
	bad := func(why string) error { return badParam("query", "%s in %q", why, s) }
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != ':' && s[j] != '"' {
			j++
		}
		word := s[i:j]
		if strings.ContainsAny(word, `()[]{}*?~^\!+`) || word == "AND" || word == "OR" || word == "NOT" || strings.HasPrefix(word, "-") {
			return nil, bad("unsupported syntax " + strconv.Quote(word))
		}
		if j < len(s) && s[j] == '"' {
			return nil, bad("a quoted value needs a field")
		}
		if j == len(s) || s[j] == ' ' {
			out = append(out, queryTerm{value: word})
			i = j
			continue
		}
		// field:value
		if word == "" {
			return nil, bad("a colon without a field")
		}
		j++
		if j < len(s) && s[j] == '"' {
			end := strings.IndexByte(s[j+1:], '"')
			if end < 0 {
				return nil, bad("an unterminated quote")
			}
			out = append(out, queryTerm{field: word, value: s[j+1 : j+1+end]})
			i = j + end + 2
			continue
		}
		k := j
		for k < len(s) && s[k] != ' ' {
			k++
		}
		if k == j || strings.ContainsAny(s[j:k], `:"()[]{}*?~^\`) {
			return nil, bad("a missing or unsupported value for " + word)
		}
		out = append(out, queryTerm{field: word, value: s[j:k]})
		i = k
	}
	return out, nil
}

// values returns the leaves at a dotted path of a decoded document, through
// arrays, as strings.
func values(doc any, path string) []string {
	head, rest, more := strings.Cut(path, ".")
	switch d := doc.(type) {
	case []any:
		var out []string
		for _, x := range d {
			out = append(out, values(x, path)...)
		}
		return out
	case map[string]any:
		v, ok := d[head]
		if !ok {
			return nil
		}
		if more {
			return values(v, rest)
		}
		return values(v, "")
	case nil:
		return nil
	}
	if path != "" {
		return nil
	}
	switch d := doc.(type) {
	case string:
		return []string{d}
	case float64:
		return []string{strconv.FormatFloat(d, 'f', -1, 64)}
	case bool:
		return []string{strconv.FormatBool(d)}
	}
	return nil
}

func (sp searchParams) match(typ string, doc map[string]any) bool {
	for f, want := range sp.filters {
		if !slices.ContainsFunc(values(doc, f), func(v string) bool { return strings.EqualFold(v, want) }) {
			return false
		}
	}
	for _, t := range sp.terms {
		if t.field != "" {
			if !slices.ContainsFunc(values(doc, t.field), func(v string) bool { return strings.EqualFold(v, t.value) }) {
				return false
			}
			continue
		}
		word := strings.ToLower(t.value)
		found := false
		for _, f := range []string{"title", "description", "short_description"} {
			for _, v := range values(doc, f) {
				found = found || strings.Contains(strings.ToLower(v), word)
			}
		}
		if !found {
			return false
		}
	}
	if sp.from != "" || sp.to != "" {
		field := "timestamp"
		if typ == ctim.TypeSighting {
			field = "observed_time.start_time"
		}
		ts := values(doc, field)
		if len(ts) == 0 {
			return false
		}
		t, err := ctim.ParseTime(ts[0])
		if err != nil || sp.from != "" && t.String() < sp.from || sp.to != "" && t.String() >= sp.to {
			return false
		}
	}
	return true
}

// compareDocs orders documents by the sort keys.
func (sp searchParams) compare(a, b map[string]any) int {
	for _, k := range sp.sorts {
		av, bv := values(a, k.field), values(b, k.field)
		var c int
		switch {
		case len(av) == 0 && len(bv) == 0:
		case len(av) == 0:
			c = -1
		case len(bv) == 0:
			c = 1
		default:
			af, aerr := strconv.ParseFloat(av[0], 64)
			bf, berr := strconv.ParseFloat(bv[0], 64)
			if aerr == nil && berr == nil {
				c = cmp.Compare(af, bf)
			} else {
				c = strings.Compare(av[0], bv[0])
			}
		}
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func (c *Console) ctiaSearch(w http.ResponseWriter, r *http.Request, p principal) error {
	typ, err := ctiaType(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	sp, err := parseSearch(typ, q)
	if err != nil {
		return err
	}
	// Narrow by the observable index when the filters name one.
	var byObs *ctim.Observable
	prefix := "observables."
	if typ == ctim.TypeJudgement {
		prefix = "observable."
	}
	if t, v := sp.filters[prefix+"type"], sp.filters[prefix+"value"]; t != "" && v != "" {
		o := ctim.Observable{Type: observable.Type(t), Value: v}
		if n, err := checkObservable(o); err == nil {
			byObs = &n
			sp.filters[prefix+"value"] = n.Value
		}
	}
	es, err := c.store.Entities(r.Context(), p.orgID, typ, byObs)
	if err != nil {
		return err
	}
	type hit struct {
		raw json.RawMessage
		doc map[string]any
	}
	var hits []hit
	for _, e := range es {
		var doc map[string]any
		if err := json.Unmarshal(e.Doc, &doc); err != nil {
			return fmt.Errorf("stored %s %s: %w", typ, e.ID, err)
		}
		if sp.match(typ, doc) {
			hits = append(hits, hit{e.Doc, doc})
		}
	}
	if strings.HasSuffix(r.URL.Path, "/count") {
		writeJSON(w, http.StatusOK, len(hits))
		return nil
	}
	if len(sp.sorts) > 0 {
		slices.SortStableFunc(hits, func(a, b hit) int { return sp.compare(a.doc, b.doc) })
	}
	total := len(hits)
	start := min(sp.offset, total)
	end := min(start+sp.limit, total)
	page := make([]json.RawMessage, 0, end-start)
	for _, h := range hits[start:end] {
		page = append(page, h.raw)
	}
	w.Header().Set("X-Total-Hits", strconv.Itoa(total))
	if end < total {
		w.Header().Set("X-Next", url.Values{"limit": {strconv.Itoa(sp.limit)}, "offset": {strconv.Itoa(end)}}.Encode())
	}
	if start > 0 {
		w.Header().Set("X-Previous", url.Values{"limit": {strconv.Itoa(sp.limit)}, "offset": {strconv.Itoa(max(0, start-sp.limit))}}.Encode())
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
