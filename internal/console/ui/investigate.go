package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// Bounds on what one investigation shows: module output is untrusted.
const (
	maxDocsPerSet = 500     // documents read per module and plural
	maxDocBytes   = 1 << 20 // a larger document is skipped
	maxNameLen    = 256     // snapshot and incident names
)

// investigatePage is the data of investigate.html, for a query and for a
// saved snapshot.
type investigatePage struct {
	base
	Query    string
	Error    string    // the syntax or investigation error, shown as a banner
	Snapshot *Snapshot // set when showing a saved snapshot
	Result   *result   // nil before a query is run
	Examples []string
}

var examples = []string{
	`email_subject:"test test"`, `ip:"4.2.2.2"`, `domain:"cisco.com"`, `email:"noreply@cisco.com"`,
	`email_messageid:"123-abc-456@cisco.com"`, `cisco_mid:"12345"`, `file_name:"invoice.pdf"`,
}

// result is an Investigation laid out for the page.
type result struct {
	Counts  []count
	Env     sightSummary // "My Environment": internal sightings
	Global  sightSummary
	Groups  []obsGroup // one per investigated observable
	Other   []sightRow // sightings that name none of the investigated observables
	Modules []moduleView
	Graph   *graph
	Total   int // sightings
	Errors  int // modules that reported an error or a warning
	Time    time.Time
}

type count struct {
	Label string
	N     int
}

type sightSummary struct {
	Count       int
	First, Last time.Time
}

func (s *sightSummary) add(first, last time.Time, n int) {
	s.Count += n
	if s.First.IsZero() || first.Before(s.First) {
		s.First = first
	}
	if last.After(s.Last) {
		s.Last = last
	}
}

// obsGroup is one investigated observable: its verdicts and sightings.
type obsGroup struct {
	Anchor     string
	Obs        observable.Observable
	Verdicts   []verdictView
	Judgements int
	Rows       []sightRow
}

type verdictView struct {
	Module      string
	Disposition string
	Expires     time.Time
}

// sightRow is one sighting in a sightings table.
type sightRow struct {
	RowID       string
	Module      string // "esa03 — Email Security Appliance"
	Observed    time.Time
	Description string
	Confidence  string
	Severity    string
	Resolution  string
	Internal    bool
	Count       int
	Targets     []string
	JSON        string // the CTIM document, indented
	sighting    ctim.Sighting
	raw         json.RawMessage
}

// moduleView is one module's status beside the results.
type moduleView struct {
	Name, TypeName string
	Sightings      int
	Verdicts       int
	Judgements     int
	Skipped        int // documents that could not be read
	Errors         []module.Error
}

// OK reports whether the module answered without errors.
func (m moduleView) OK() bool { return len(m.Errors) == 0 }

// decodedModule is one module's documents, decoded.
type decodedModule struct {
	view          moduleView
	label         string
	sightings     []sightRow
	verdicts      []ctim.Verdict
	judgements    []ctim.Judgement
	indicators    []ctim.Indicator
	relationships []ctim.Relationship
}

// docs returns the documents of one CTIM plural of d, at most
// maxDocsPerSet; ok is false when the set is not {"docs": […]}.
func docs(d module.Data, key string) (out []json.RawMessage, ok bool) {
	raw, present := d[key]
	if !present {
		return nil, true
	}
	var set struct {
		Docs []json.RawMessage `json:"docs"`
	}
	if json.Unmarshal(raw, &set) != nil {
		return nil, false
	}
	if len(set.Docs) > maxDocsPerSet {
		set.Docs = set.Docs[:maxDocsPerSet]
	}
	return set.Docs, true
}

// decodeAll reads each document of a plural into a T; it returns the
// documents read, their raw forms, and how many it skipped.
func decodeAll[T any](d module.Data, key string) (out []T, raws []json.RawMessage, skipped int) {
	ds, ok := docs(d, key)
	if !ok {
		return nil, nil, 1
	}
	for _, raw := range ds {
		var v T
		if len(raw) > maxDocBytes || json.Unmarshal(raw, &v) != nil {
			skipped++
			continue
		}
		out = append(out, v)
		raws = append(raws, raw)
	}
	return out, raws, skipped
}

func decodeModule(m ModuleResult) decodedModule {
	dm := decodedModule{view: moduleView{Name: m.Module, TypeName: m.TypeName, Errors: m.Errors}}
	dm.label = m.Module
	if m.TypeName != "" && m.TypeName != m.Module {
		dm.label = strings.TrimSpace(m.Module + " — " + m.TypeName)
	}
	ss, raws, n1 := decodeAll[ctim.Sighting](m.Data, "sightings")
	var n2, n3, n4, n5 int
	dm.verdicts, _, n2 = decodeAll[ctim.Verdict](m.Data, "verdicts")
	dm.judgements, _, n3 = decodeAll[ctim.Judgement](m.Data, "judgements")
	dm.indicators, _, n4 = decodeAll[ctim.Indicator](m.Data, "indicators")
	dm.relationships, _, n5 = decodeAll[ctim.Relationship](m.Data, "relationships")
	for i, s := range ss {
		dm.sightings = append(dm.sightings, newSightRow(dm.label, s, raws[i]))
	}
	dm.view.Sightings, dm.view.Verdicts, dm.view.Judgements = len(ss), len(dm.verdicts), len(dm.judgements)
	dm.view.Skipped = n1 + n2 + n3 + n4 + n5
	return dm
}

func newSightRow(label string, s ctim.Sighting, raw json.RawMessage) sightRow {
	row := sightRow{Module: label, Observed: s.ObservedTime.StartTime.Time, Confidence: string(s.Confidence),
		Severity: string(s.Severity), Resolution: string(s.Resolution), Internal: s.Internal, Count: max(s.Count, 1),
		sighting: s, raw: raw}
	row.Description = firstNonEmpty(s.Description, s.Title, s.ShortDescription, "Sighting")
	for _, t := range s.Targets {
		for _, o := range t.Observables {
			row.Targets = append(row.Targets, o.Value)
		}
	}
	row.JSON = prettyJSON(raw)
	return row
}

// last returns when a sighting was last seen: its end time, or its start.
func (r sightRow) last() time.Time {
	if e := r.sighting.ObservedTime.EndTime; !e.IsZero() {
		return e.Time
	}
	return r.Observed
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// buildResult lays an investigation of obs out for the page. It reads only
// what it can of the modules' documents, so any module output renders.
func buildResult(inv Investigation, obs []observable.Observable) *result {
	res := &result{Time: inv.Time}
	groups := make([]obsGroup, len(obs))
	index := map[string]int{}
	for i, o := range obs {
		groups[i] = obsGroup{Anchor: "obs-" + strconv.Itoa(i), Obs: o}
		index[o.Key()] = i
	}
	var all []sightRow
	targets, indicators := map[string]bool{}, map[string]bool{}
	answered := 0
	for _, m := range inv.Modules {
		dm := decodeModule(m)
		res.Modules = append(res.Modules, dm.view)
		if len(dm.view.Errors) > 0 {
			res.Errors++
		}
		if len(m.Data) > 0 {
			answered++
		}
		for _, v := range dm.verdicts {
			if i, ok := index[v.Observable.Key()]; ok {
				groups[i].Verdicts = append(groups[i].Verdicts, verdictView{Module: dm.label,
					Disposition: firstNonEmpty(v.DispositionName, v.Disposition.Name(), "Unknown"), Expires: v.ValidTime.EndTime.Time})
			}
		}
		for _, j := range dm.judgements {
			if i, ok := index[j.Observable.Key()]; ok {
				groups[i].Judgements++
			}
		}
		for _, in := range dm.indicators {
			indicators[firstNonEmpty(in.ID, in.Title, in.Producer)] = true
		}
		for _, row := range dm.sightings {
			for _, t := range row.sighting.Targets {
				keys := make([]string, len(t.Observables))
				for k, o := range t.Observables {
					keys[k] = o.Key()
				}
				slices.Sort(keys)
				targets[string(t.Type)+"|"+strings.Join(keys, ",")] = true
			}
			if row.Internal {
				res.Env.add(row.Observed, row.last(), row.Count)
			} else {
				res.Global.add(row.Observed, row.last(), row.Count)
			}
			all = append(all, row)
		}
	}
	// Newest first; then place each sighting under the observables it names.
	slices.SortStableFunc(all, func(a, b sightRow) int { return b.Observed.Compare(a.Observed) })
	for n, row := range all {
		row.RowID = "sighting-" + strconv.Itoa(n)
		placed := false
		for _, i := range matches(row.sighting, index) {
			groups[i].Rows = append(groups[i].Rows, row)
			placed = true
		}
		if !placed {
			res.Other = append(res.Other, row)
		}
	}
	res.Total = len(all)
	res.Groups = groups
	byType := func(types ...observable.Type) int {
		n := 0
		for _, o := range obs {
			if slices.Contains(types, o.Type) {
				n++
			}
		}
		return n
	}
	res.Counts = []count{
		{"Targets", len(targets)},
		{"Observables", len(obs)},
		{"Indicators", len(indicators)},
		{"Domains", byType(observable.Domain, observable.Hostname)},
		{"File Hashes", byType(observable.SHA256, observable.SHA1, observable.MD5)},
		{"IP Addresses", byType(observable.IP, observable.IPv6)},
		{"URLs", byType(observable.URL)},
		{"Modules", answered},
	}
	res.Graph = buildGraph(obs, all, groups)
	return res
}

// matches returns the indexes of the investigated observables a sighting
// names in its observables, or failing that in its relations or targets.
func matches(s ctim.Sighting, index map[string]int) []int {
	var out []int
	add := func(o observable.Observable) {
		if i, ok := index[o.Key()]; ok && !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	for _, o := range s.Observables {
		add(o)
	}
	if len(out) > 0 {
		return out
	}
	for _, r := range s.Relations {
		add(r.Source)
		add(r.Related)
	}
	for _, t := range s.Targets {
		for _, o := range t.Observables {
			add(o)
		}
	}
	return out
}

// investigate serves Investigate: the query box, and the results of ?q=.
func (u *UI) investigate(w http.ResponseWriter, r *http.Request, me Account) {
	d := investigatePage{base: newBase(me), Query: r.URL.Query().Get("q"), Examples: examples}
	if strings.TrimSpace(d.Query) == "" {
		u.render(w, r, http.StatusOK, "investigate.html", "Investigate", d)
		return
	}
	inv, q, err := u.run(r, me, d.Query)
	if err != nil {
		if sightline.ErrorKind(err) != sightline.Invalid {
			u.rd.Error(w, r, err)
			return
		}
		d.Error = sightline.ErrorMessage(err)
		u.render(w, r, http.StatusBadRequest, "investigate.html", "Investigate", d)
		return
	}
	d.Result = buildResult(inv, investigated(inv, q))
	u.render(w, r, http.StatusOK, "investigate.html", "Investigate", d)
}

// run parses a query and investigates it. A syntax error, or a query with
// nothing to investigate, is an Invalid error naming the problem.
func (u *UI) run(r *http.Request, me Account, query string) (Investigation, observable.Query, error) {
	if u.cfg.Investigator == nil {
		return Investigation{}, observable.Query{}, sightline.Errorf(sightline.Unavailable, "Investigate is not available on this console.")
	}
	q, err := observable.ParseQuery(query)
	if err != nil {
		return Investigation{}, q, err
	}
	if len(q.Observables()) == 0 {
		return Investigation{}, q, sightline.Errorf(sightline.Invalid,
			"no observables found in %q: write type:\"value\", such as email_subject:\"test test\", or paste text that contains addresses, domains, IPs, URLs or hashes", shorten(query, 80))
	}
	inv, err := u.cfg.Investigator.Investigate(r.Context(), me.Org, q)
	if err != nil {
		return inv, q, err
	}
	if inv.Time.IsZero() {
		inv.Time = u.cfg.Now()
	}
	return inv, q, nil
}

// investigated returns the observables an investigation was about.
func investigated(inv Investigation, q observable.Query) []observable.Observable {
	if inv.Observables != nil {
		return inv.Observables
	}
	return q.Observables()
}

// readQuery reads the query and a name from a form; name defaults to the
// query.
func readQuery(r *http.Request, nameField string) (query, name string, err error) {
	query = strings.TrimSpace(r.PostFormValue("q"))
	name = strings.TrimSpace(r.PostFormValue(nameField))
	if query == "" {
		return "", "", sightline.Errorf(sightline.Invalid, "Run an investigation first.")
	}
	if name == "" {
		name = shorten(query, 120)
	}
	if len([]rune(name)) > maxNameLen {
		return "", "", sightline.Errorf(sightline.Invalid, "The name is longer than %d characters.", maxNameLen)
	}
	return query, name, nil
}

func investigateURL(query string) string { return "/investigate?q=" + url.QueryEscape(query) }

// saveSnapshot runs the query again and saves the outcome.
func (u *UI) saveSnapshot(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Snapshots == nil {
		u.unavailable(w, r, "Snapshots")
		return
	}
	query, name, err := readQuery(r, "name")
	if err != nil {
		u.failed(w, r, "/investigate", err)
		return
	}
	inv, q, err := u.run(r, me, query)
	if err != nil {
		u.failed(w, r, investigateURL(query), err)
		return
	}
	inv.Observables = investigated(inv, q)
	id, err := u.cfg.Snapshots.SaveSnapshot(r.Context(), me.Org, Snapshot{Name: name, Query: query, Author: me.Name,
		Created: u.cfg.Now(), Investigation: inv})
	if err != nil {
		u.failed(w, r, investigateURL(query), err)
		return
	}
	u.log.Info("snapshot saved", "user", me.Name, "snapshot", id)
	u.done(w, r, "/snapshots/"+url.PathEscape(id), "Snapshot "+name+" has been saved.")
}

// createIncident runs the query again and opens an incident with its
// sightings.
func (u *UI) createIncident(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Incidents == nil {
		u.unavailable(w, r, "Incidents")
		return
	}
	query, title, err := readQuery(r, "title")
	if err != nil {
		u.failed(w, r, "/investigate", err)
		return
	}
	inv, q, err := u.run(r, me, query)
	if err != nil {
		u.failed(w, r, investigateURL(query), err)
		return
	}
	res := buildResult(inv, investigated(inv, q))
	in := Incident{Title: title, Status: "New", Confidence: ctim.ConfidenceHigh, Opened: u.cfg.Now(), Author: me.Name,
		Query: query, Observables: investigated(inv, q), Severity: ctim.SeverityUnknown}
	in.Description = "Created from the investigation " + query + " by " + me.Name + "."
	sevRank := map[ctim.Severity]int{ctim.SeverityInfo: 1, ctim.SeverityLow: 2, ctim.SeverityMedium: 3, ctim.SeverityHigh: 4, ctim.SeverityCritical: 5}
	seen := map[string]bool{}
	for _, rows := range append([][]sightRow{res.Other}, groupRows(res.Groups)...) {
		for _, row := range rows {
			if seen[row.RowID] {
				continue
			}
			seen[row.RowID] = true
			in.Sightings = append(in.Sightings, row.raw)
			if s := row.sighting.Severity; sevRank[s] > sevRank[in.Severity] {
				in.Severity = s
			}
		}
	}
	if len(in.Sightings) == 0 {
		u.failed(w, r, investigateURL(query), sightline.Errorf(sightline.Invalid,
			"The investigation %s found no sightings to create an incident from.", shorten(query, 80)))
		return
	}
	id, err := u.cfg.Incidents.CreateIncident(r.Context(), me.Org, in)
	if err != nil {
		u.failed(w, r, investigateURL(query), err)
		return
	}
	u.log.Info("incident created", "user", me.Name, "incident", id, "sightings", len(in.Sightings))
	u.done(w, r, "/incidents/"+url.PathEscape(id), "Incident "+title+" has been created with "+
		plural(len(in.Sightings), "sighting")+".")
}

func groupRows(gs []obsGroup) [][]sightRow {
	out := make([][]sightRow, len(gs))
	for i, g := range gs {
		out[i] = g.Rows
	}
	return out
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
