package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// The CTIA subset (console-api.md §8): sightings, judgements, casebooks and
// incidents of the token's organisation, and verdicts computed from its
// judgements.

// ctiaTypes are the stored entity types and their display names.
var ctiaTypes = map[string]string{
	ctim.TypeSighting:  "Sighting",
	ctim.TypeJudgement: "Judgement",
	ctim.TypeCasebook:  "Casebook",
	ctim.TypeIncident:  "Incident",
}

func (c *Console) ctiaRoutes(mux *http.ServeMux) {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request, principal) error) {
		mux.Handle(pattern, c.bearerWith(c.writeCTIAError, ctiaScopes, fn))
	}
	h("POST /ctia/{type}", c.ctiaCreate)
	h("GET /ctia/{type}/search", c.ctiaSearch)
	h("GET /ctia/{type}/search/count", c.ctiaSearch)
	h("GET /ctia/{type}/{id}", c.ctiaGet)
	h("PUT /ctia/{type}/{id}", c.ctiaPut)
	h("PATCH /ctia/{type}/{id}", c.ctiaPatch)
	h("DELETE /ctia/{type}/{id}", c.ctiaDelete)
	h("POST /ctia/incident/{id}/status", c.ctiaIncidentStatus)
	h("POST /ctia/casebook/{id}/{part}", c.ctiaCasebookPart)
	h("POST /ctia/judgement/{id}/expire", c.ctiaExpire)
	h("GET /ctia/{otype}/{ovalue}/verdict", c.ctiaVerdict)
	h("GET /ctia/{otype}/{ovalue}/judgements", c.ctiaByObservable(ctim.TypeJudgement))
	h("GET /ctia/{otype}/{ovalue}/sightings", c.ctiaByObservable(ctim.TypeSighting))
}

// ctiaScopes: private-intel (":read" for GET); casebook also grants the
// casebook routes.
func ctiaScopes(r *http.Request) []string {
	mode := ""
	if r.Method == http.MethodGet {
		mode = ":read"
	}
	if r.PathValue("type") == ctim.TypeCasebook || strings.HasPrefix(r.URL.Path, "/ctia/casebook/") {
		return []string{"private-intel" + mode, "casebook" + mode}
	}
	return []string{"private-intel" + mode}
}

// writeCTIAError answers CTIA's shapes: {"errors": {field: problem}} for
// invalid entities, {"message": …} for other client errors, and the
// normalized error for authentication and server failures.
func (c *Console) writeCTIAError(w http.ResponseWriter, r *http.Request, err error) {
	var ve *ctim.ValidationError
	if errors.As(err, &ve) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": ve.Map()})
		return
	}
	switch k := sightline.ErrorKind(err); k {
	case sightline.Invalid, sightline.NotFound, sightline.Conflict:
		writeJSON(w, irohErrors[k].status, map[string]string{"message": sightline.ErrorMessage(err)})
		return
	}
	c.writeIROHError(w, r, err)
}

// ctiaType returns the path's entity type, or a NotFound error.
func ctiaType(r *http.Request) (string, error) {
	typ := r.PathValue("type")
	if _, ok := ctiaTypes[typ]; !ok {
		return "", sightline.Errorf(sightline.NotFound, "There is no CTIA entity type %q here: want sighting, judgement, casebook or incident.", typ)
	}
	return typ, nil
}

func errEntityNotFound(typ string) error {
	return sightline.Errorf(sightline.NotFound, "%s not found", ctiaTypes[typ])
}

// shortID returns the short id of the path's {id} (short, or an escaped
// long id) of entity type typ.
func shortID(r *http.Request, typ string) (string, error) {
	id, err := ctim.ParseID(r.PathValue("id"))
	if err != nil || id.Kind == ctim.TransientID || id.Type != typ {
		return "", errEntityNotFound(typ)
	}
	return id.Short, nil
}

// newEntity returns a pointer to a zero entity of type typ.
func newEntity(typ string) any {
	switch typ {
	case ctim.TypeSighting:
		return &ctim.Sighting{}
	case ctim.TypeJudgement:
		return &ctim.Judgement{}
	case ctim.TypeIncident:
		return &ctim.Incident{}
	}
	return &ctim.Casebook{}
}

// parts returns the common parts of an entity.
func parts(v any) (*ctim.Base, *ctim.Stored) {
	switch e := v.(type) {
	case *ctim.Sighting:
		return &e.Base, &e.Stored
	case *ctim.Judgement:
		return &e.Base, &e.Stored
	case *ctim.Incident:
		return &e.Base, &e.Stored
	case *ctim.Casebook:
		return &e.Base, &e.Stored
	}
	panic(fmt.Sprintf("console: not a CTIA entity: %T", v))
}

func validate(v any) error {
	return v.(interface{ Validate() error }).Validate()
}

// indexed returns the observables an entity is found by.
func indexed(v any) []ctim.Observable {
	switch e := v.(type) {
	case *ctim.Judgement:
		return []ctim.Observable{e.Observable}
	case *ctim.Sighting:
		all, _ := sightingObservables(*e)
		return all
	case *ctim.Casebook:
		return dedup(append([]ctim.Observable(nil), e.Observables...))
	}
	return nil
}

// defaults fills what CTIA fills on a write: sighting count and confidence,
// judgement disposition and validity, incident opening time.
func defaults(v any, now ctim.Time) error {
	switch e := v.(type) {
	case *ctim.Sighting:
		if e.Count == 0 {
			e.Count = 1
		}
		if e.Confidence == "" {
			e.Confidence = ctim.ConfidenceUnknown
		}
	case *ctim.Judgement:
		d, name, err := ctim.ResolveDisposition(e.Disposition, e.DispositionName)
		if err != nil {
			return err
		}
		e.Disposition, e.DispositionName = d, name
		if e.ValidTime.StartTime.IsZero() {
			e.ValidTime.StartTime = now
		}
		if e.ValidTime.EndTime.IsZero() {
			e.ValidTime.EndTime = ctim.NewTime(ctim.MaxTime)
		}
		if o, err := checkObservable(e.Observable); err == nil {
			e.Observable = o
		}
	case *ctim.Incident:
		if e.IncidentTime.Opened.IsZero() {
			e.IncidentTime.Opened = now
		}
	case *ctim.Casebook:
		if b := e.Bundle; b != nil {
			if b.Type == "" {
				b.Type = ctim.TypeBundle
			}
			if b.SchemaVersion == "" {
				b.SchemaVersion = ctim.SchemaVersion
			}
			if b.ID == "" {
				b.ID = ctim.NewTransientID(ctim.TypeBundle)
			}
		}
	}
	return nil
}

// stampStatus stamps incident_time for a status change from prev
// (console-api.md §8): moving within a family keeps the first stamps.
func stampStatus(in *ctim.Incident, prev ctim.IncidentStatus, now ctim.Time) {
	if in.Status == prev {
		return
	}
	same := prev != "" && in.Status.Family() == prev.Family()
	set := func(t *ctim.Time) {
		if !same || t.IsZero() {
			*t = now
		}
	}
	t := &in.IncidentTime
	switch s := string(in.Status); {
	case s == "Open: Contained":
		set(&t.Opened)
		set(&t.Contained)
	case strings.HasPrefix(s, "Open"):
		set(&t.Opened)
	case strings.HasPrefix(s, "Closed"):
		set(&t.Closed)
	case s == "Rejected":
		set(&t.Rejected)
	case s == "Incident Reported":
		set(&t.Reported)
	case s == "Containment Achieved", s == "Restoration Achieved":
		set(&t.Remediated)
	}
}

// save validates v and stores it: created when version is 0, else updated
// at that version.
func (c *Console) save(ctx context.Context, orgID, typ, short string, v any, version int) ([]byte, error) {
	if err := validate(v); err != nil {
		return nil, err
	}
	doc, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	e := records.Entity{OrgID: orgID, Type: typ, ID: short, Doc: doc, Observables: indexed(v), Version: version}
	if version == 0 {
		err = c.store.CreateEntity(ctx, e)
	} else {
		err = c.store.UpdateEntity(ctx, e)
	}
	if sightline.ErrorKind(err) == sightline.NotFound {
		return nil, errEntityNotFound(typ)
	}
	return doc, err
}

func (c *Console) ctiaCreate(w http.ResponseWriter, r *http.Request, p principal) error {
	typ, err := ctiaType(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxEntity)
	if err != nil {
		return err
	}
	v := newEntity(typ)
	if err := ctim.Decode(body, v); err != nil {
		return err
	}
	short, doc, err := c.createEntity(r.Context(), p.orgID, p.name, p.name, typ, v)
	if err != nil {
		return err
	}
	long, _ := ctim.NewLongID(c.publicURL, short)
	w.Header().Set("Location", long)
	writeRaw(w, http.StatusCreated, doc)
	return nil
}

// createEntity stores v, a new CTIA entity of type typ, as POST /ctia/{type}
// does (see ctiaCreate) with owner as its author, and returns its short id
// and the stored document.
func (c *Console) createEntity(ctx context.Context, orgID, owner, clientID, typ string, v any) (string, []byte, error) {
	now := ctim.NewTime(c.now())
	short := ctim.NewShortID(typ)
	long, err := ctim.NewLongID(c.publicURL, short)
	if err != nil {
		return "", nil, err
	}
	b, st := parts(v)
	b.ID, b.Type, b.SchemaVersion = long, typ, ctim.SchemaVersion
	if b.Timestamp.IsZero() {
		b.Timestamp = now
	}
	if b.TLP == "" {
		b.TLP = ctim.TLPGreen
	}
	*st = ctim.Stored{Owner: owner, Groups: []string{orgID}, ClientID: clientID, Created: now, Modified: now}
	if in, ok := v.(*ctim.Incident); ok {
		stampStatus(in, "", now)
	}
	if err := defaults(v, now); err != nil {
		return "", nil, err
	}
	doc, err := c.save(ctx, orgID, typ, short, v, 0)
	return short, doc, err
}

func writeRaw(w http.ResponseWriter, status int, doc []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(status)
	w.Write(doc)
}

func (c *Console) ctiaGet(w http.ResponseWriter, r *http.Request, p principal) error {
	typ, err := ctiaType(r)
	if err != nil {
		return err
	}
	short, err := shortID(r, typ)
	if err != nil {
		return err
	}
	e, err := c.store.Entity(r.Context(), p.orgID, typ, short)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return errEntityNotFound(typ)
	}
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, e.Doc)
	return nil
}

func (c *Console) ctiaDelete(w http.ResponseWriter, r *http.Request, p principal) error {
	typ, err := ctiaType(r)
	if err != nil {
		return err
	}
	short, err := shortID(r, typ)
	if err != nil {
		return err
	}
	if err := c.store.DeleteEntity(r.Context(), p.orgID, typ, short); sightline.ErrorKind(err) == sightline.NotFound {
		return errEntityNotFound(typ)
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// modify reads a stored entity, lets change edit it, keeps the fields a
// write may not change, and saves it at the version read, retrying when a
// concurrent write got there first.
func (c *Console) modify(ctx context.Context, orgID, typ, short string, change func(v any) error) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		e, err := c.store.Entity(ctx, orgID, typ, short)
		if sightline.ErrorKind(err) == sightline.NotFound {
			return nil, errEntityNotFound(typ)
		}
		if err != nil {
			return nil, err
		}
		v := newEntity(typ)
		if err := json.Unmarshal(e.Doc, v); err != nil {
			return nil, fmt.Errorf("stored %s %s: %w", typ, short, err)
		}
		b0, st0 := parts(v)
		keepBase, keepStored := *b0, *st0
		var prevStatus ctim.IncidentStatus
		if in, ok := v.(*ctim.Incident); ok {
			prevStatus = in.Status
		}
		if err := change(v); err != nil {
			return nil, err
		}
		now := ctim.NewTime(c.now())
		b, st := parts(v)
		b.ID, b.Type = keepBase.ID, typ
		if b.SchemaVersion == "" {
			b.SchemaVersion = ctim.SchemaVersion
		}
		if b.Timestamp.IsZero() {
			b.Timestamp = keepBase.Timestamp
		}
		if b.TLP == "" {
			b.TLP = ctim.TLPGreen
		}
		*st = ctim.Stored{Owner: keepStored.Owner, Groups: keepStored.Groups, ClientID: keepStored.ClientID,
			Created: keepStored.Created, Modified: now}
		if in, ok := v.(*ctim.Incident); ok {
			stampStatus(in, prevStatus, now)
		}
		if err := defaults(v, now); err != nil {
			return nil, err
		}
		doc, err := c.save(ctx, orgID, typ, short, v, e.Version)
		if sightline.ErrorKind(err) == sightline.Conflict && attempt < 5 {
			continue
		}
		return doc, err
	}
}

// replaceWith returns a change that replaces the entity with the one in
// body, decoded with CTIM's closed schema.
func replaceWith(body []byte) func(v any) error {
	return func(v any) error {
		nv := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := ctim.Decode(body, nv); err != nil {
			return err
		}
		reflect.ValueOf(v).Elem().Set(reflect.ValueOf(nv).Elem())
		return nil
	}
}

func (c *Console) ctiaPut(w http.ResponseWriter, r *http.Request, p principal) error {
	typ, err := ctiaType(r)
	if err != nil {
		return err
	}
	short, err := shortID(r, typ)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxEntity)
	if err != nil {
		return err
	}
	doc, err := c.modify(r.Context(), p.orgID, typ, short, replaceWith(body))
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, doc)
	return nil
}

func (c *Console) ctiaPatch(w http.ResponseWriter, r *http.Request, p principal) error {
	typ, err := ctiaType(r)
	if err != nil {
		return err
	}
	if typ != ctim.TypeIncident && typ != ctim.TypeCasebook {
		return sightline.Errorf(sightline.NotFound, "PATCH is for incidents and casebooks; use PUT for a %s", typ)
	}
	short, err := shortID(r, typ)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxEntity)
	if err != nil {
		return err
	}
	var patch map[string]any
	if err := unmarshal(body, &patch); err != nil || patch == nil {
		return sightline.Errorf(sightline.Invalid, "a PATCH body is a JSON object of the fields to change (RFC 7386)")
	}
	doc, err := c.modify(r.Context(), p.orgID, typ, short, func(v any) error {
		cur, _ := json.Marshal(v)
		var m map[string]any
		json.Unmarshal(cur, &m)
		merged, _ := json.Marshal(mergePatch(m, patch))
		return replaceWith(merged)(v)
	})
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, doc)
	return nil
}

// mergePatch applies an RFC 7386 merge patch to target.
func mergePatch(target any, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
		} else {
			tm[k] = mergePatch(tm[k], v)
		}
	}
	return tm
}

func (c *Console) ctiaIncidentStatus(w http.ResponseWriter, r *http.Request, p principal) error {
	short, err := shortID(r, ctim.TypeIncident)
	if err != nil {
		return err
	}
	var req struct {
		Status ctim.IncidentStatus `json:"status"`
	}
	if err := decodeJSON(w, r, maxJSON, &req); err != nil {
		return err
	}
	if !req.Status.Valid() {
		return &ctim.ValidationError{Entity: ctim.TypeIncident, Fields: []ctim.FieldError{{Field: "status",
			Problem: fmt.Sprintf("%q is not an incident status", req.Status)}}}
	}
	doc, err := c.modify(r.Context(), p.orgID, ctim.TypeIncident, short, func(v any) error {
		v.(*ctim.Incident).Status = req.Status
		return nil
	})
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, doc)
	return nil
}

func (c *Console) ctiaExpire(w http.ResponseWriter, r *http.Request, p principal) error {
	short, err := shortID(r, ctim.TypeJudgement)
	if err != nil {
		return err
	}
	doc, err := c.modify(r.Context(), p.orgID, ctim.TypeJudgement, short, func(v any) error {
		j := v.(*ctim.Judgement)
		now := ctim.NewTime(c.now())
		if j.ValidTime.StartTime.After(now.Time) {
			j.ValidTime.StartTime = now
		}
		j.ValidTime.EndTime = now
		return nil
	})
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, doc)
	return nil
}

// casebookOp is the body of the casebook observables, texts and bundle routes.
type casebookOp struct {
	Operation   string              `json:"operation"`
	Observables []ctim.Observable   `json:"observables"`
	Texts       []ctim.CasebookText `json:"texts"`
	Bundle      json.RawMessage     `json:"bundle"`
}

func (c *Console) ctiaCasebookPart(w http.ResponseWriter, r *http.Request, p principal) error {
	part := r.PathValue("part")
	if part != "observables" && part != "texts" && part != "bundle" {
		return sightline.Errorf(sightline.NotFound, "There is no casebook route %q: want observables, texts or bundle.", part)
	}
	short, err := shortID(r, ctim.TypeCasebook)
	if err != nil {
		return err
	}
	var op casebookOp
	if err := decodeJSON(w, r, maxEntity, &op); err != nil {
		return err
	}
	if op.Operation != "add" && op.Operation != "remove" && op.Operation != "replace" {
		return &ctim.ValidationError{Entity: ctim.TypeCasebook, Fields: []ctim.FieldError{{Field: "operation",
			Problem: fmt.Sprintf("%q is not one of add, remove, replace", op.Operation)}}}
	}
	doc, err := c.modify(r.Context(), p.orgID, ctim.TypeCasebook, short, func(v any) error {
		cb := v.(*ctim.Casebook)
		switch part {
		case "observables":
			cb.Observables = applyOp(op.Operation, cb.Observables, op.Observables)
		case "texts":
			cb.Texts = applyOp(op.Operation, cb.Texts, op.Texts)
		default:
			return applyBundle(cb, op.Operation, op.Bundle)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, doc)
	return nil
}

// applyOp adds (without duplicates), removes or replaces items.
func applyOp[T comparable](op string, cur, items []T) []T {
	switch op {
	case "replace":
		return items
	case "remove":
		return slices.DeleteFunc(cur, func(x T) bool { return slices.Contains(items, x) })
	}
	for _, x := range items {
		if !slices.Contains(cur, x) {
			cur = append(cur, x)
		}
	}
	return cur
}

// applyBundle replaces the casebook's bundle, or adds or removes the
// elements of each of its lists.
func applyBundle(cb *ctim.Casebook, op string, raw json.RawMessage) error {
	var patch map[string]any
	if json.Unmarshal(raw, &patch) != nil || patch == nil {
		return &ctim.ValidationError{Entity: ctim.TypeCasebook, Fields: []ctim.FieldError{{Field: "bundle", Problem: "must be an object"}}}
	}
	cur := map[string]any{}
	if cb.Bundle != nil && op != "replace" {
		b, _ := json.Marshal(cb.Bundle)
		json.Unmarshal(b, &cur)
	}
	for k, v := range patch {
		list, isList := v.([]any)
		old, _ := cur[k].([]any)
		switch {
		case op == "replace" || !isList:
			if op != "remove" {
				cur[k] = v
			}
		case op == "add":
			for _, x := range list {
				if !containsJSON(old, x) {
					old = append(old, x)
				}
			}
			cur[k] = old
		default:
			cur[k] = slices.DeleteFunc(old, func(x any) bool { return containsJSON(list, x) })
		}
	}
	b, _ := json.Marshal(cur)
	var bundle ctim.Bundle
	if err := ctim.Decode(b, &bundle); err != nil {
		return err
	}
	cb.Bundle = &bundle
	return nil
}

func containsJSON(list []any, x any) bool {
	xb, _ := json.Marshal(x)
	for _, y := range list {
		if yb, _ := json.Marshal(y); bytes.Equal(xb, yb) {
			return true
		}
	}
	return false
}

// Observables routes.

// pathObservable reads {otype}/{ovalue}.
func pathObservable(r *http.Request) (ctim.Observable, error) {
	o := ctim.Observable{Type: observable.Type(r.PathValue("otype")), Value: r.PathValue("ovalue")}
	o, err := checkObservable(o)
	if err != nil {
		return o, sightline.Errorf(sightline.Invalid, "observable %s: %s", o, sightline.ErrorMessage(err))
	}
	return o, nil
}

func (c *Console) ctiaVerdict(w http.ResponseWriter, r *http.Request, p principal) error {
	o, err := pathObservable(r)
	if err != nil {
		return err
	}
	v, ok, err := c.verdict(r.Context(), p.orgID, o)
	if err != nil {
		return err
	}
	if !ok {
		return sightline.Errorf(sightline.NotFound, "no verdict currently available for the supplied observable")
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (c *Console) ctiaByObservable(typ string) func(http.ResponseWriter, *http.Request, principal) error {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		o, err := pathObservable(r)
		if err != nil {
			return err
		}
		es, err := c.store.Entities(r.Context(), p.orgID, typ, &o)
		if err != nil {
			return err
		}
		docs := make([]json.RawMessage, 0, len(es))
		for _, e := range es {
			docs = append(docs, e.Doc)
		}
		writeJSON(w, http.StatusOK, docs)
		return nil
	}
}

// bearerWith is bearer with another error writer.
func (c *Console) bearerWith(write func(http.ResponseWriter, *http.Request, error), scopes func(*http.Request) []string,
	h func(http.ResponseWriter, *http.Request, principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := c.authorize(r, scopes(r))
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			write(w, r, err)
		}
	})
}
