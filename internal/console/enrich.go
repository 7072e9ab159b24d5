package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// The enrich operations.
const (
	opObserve    = "observe"
	opDeliberate = "deliberate"
	opRefer      = "refer"
)

var opRoutes = map[string]string{
	opObserve:    module.RouteObserve,
	opDeliberate: module.RouteDeliberate,
	opRefer:      module.RouteRefer,
}

// MaxObservables is the most observables one enrich or response request
// may carry.
const MaxObservables = 100

// Inspect (console-api.md §4).

func (c *Console) handleInspect(w http.ResponseWriter, r *http.Request, _ principal) error {
	b, err := readBody(w, r, maxJSON)
	if err != nil {
		return err
	}
	var body map[string]json.RawMessage
	if err := unmarshal(b, &body); err != nil {
		return err
	}
	raw, ok := body["content"]
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"content": ctim.MissingRequiredKey})
		return nil
	}
	var content string
	if err := json.Unmarshal(raw, &content); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"content": "not-a-string"})
		return nil
	}
	writeJSON(w, http.StatusOK, observable.Inspect(content))
	return nil
}

// Observables in requests.

// parseObservables reads an enrich or response body: a JSON array of at
// most MaxObservables {"type","value"}, each with a CTIM type and a
// non-empty value. Values are put in normal form where their type has one,
// and duplicates are removed.
func parseObservables(b []byte) ([]ctim.Observable, error) {
	var items []json.RawMessage
	if err := unmarshal(b, &items); err != nil {
		return nil, sightline.Errorf(sightline.Invalid, `the body must be a JSON array of observables {"type": …, "value": …}`)
	}
	if len(items) > MaxObservables {
		return nil, sightline.Errorf(sightline.Invalid, "%d observables: at most %d are accepted per request", len(items), MaxObservables)
	}
	obs := make([]ctim.Observable, 0, len(items))
	for i, raw := range items {
		var item map[string]json.RawMessage
		if json.Unmarshal(raw, &item) != nil || item == nil {
			return nil, sightline.Errorf(sightline.Invalid, "observable %d: not an object", i)
		}
		var typ, val string
		for _, f := range []struct {
			key string
			dst *string
		}{{"type", &typ}, {"value", &val}} {
			v, ok := item[f.key]
			if !ok {
				return nil, sightline.Errorf(sightline.Invalid, "observable %d: missing %s", i, f.key)
			}
			if json.Unmarshal(v, f.dst) != nil {
				return nil, sightline.Errorf(sightline.Invalid, "observable %d: %s must be a string", i, f.key)
			}
			if *f.dst == "" {
				return nil, sightline.Errorf(sightline.Invalid, "observable %d: empty %s", i, f.key)
			}
		}
		o, err := checkObservable(ctim.Observable{Type: observable.Type(typ), Value: val})
		if err != nil {
			return nil, sightline.Errorf(sightline.Invalid, "observable %d: %s", i, sightline.ErrorMessage(err))
		}
		obs = append(obs, o)
	}
	return dedup(obs), nil
}

// checkObservable requires a CTIM type and a value, and returns the value
// in normal form when it has one (a value the type's rules reject is passed
// on as sent: modules judge it).
func checkObservable(o ctim.Observable) (ctim.Observable, error) {
	if !o.Type.Valid() {
		return o, sightline.Errorf(sightline.Invalid, "unknown type %q", o.Type)
	}
	if o.Value == "" {
		return o, sightline.Errorf(sightline.Invalid, "empty value")
	}
	if len(o.Value) > observable.MaxValueLength {
		return o, sightline.Errorf(sightline.Invalid, "value longer than %d bytes", observable.MaxValueLength)
	}
	if n, err := observable.Normalize(o.Type, o.Value); err == nil {
		o.Value = n
	}
	return o, nil
}

func dedup(obs []ctim.Observable) []ctim.Observable {
	seen := make(map[string]bool, len(obs))
	out := obs[:0]
	for _, o := range obs {
		if k := o.Key(); !seen[k] {
			seen[k] = true
			out = append(out, o)
		}
	}
	return out
}

// sightingObservables returns the observables of a sighting: its
// observables, its relations' sources and relateds, and its targets'.
func sightingObservables(s ctim.Sighting) ([]ctim.Observable, error) {
	all := append([]ctim.Observable(nil), s.Observables...)
	for _, rel := range s.Relations {
		all = append(all, rel.Source, rel.Related)
	}
	for _, t := range s.Targets {
		all = append(all, t.Observables...)
	}
	for i, o := range all {
		var err error
		if all[i], err = checkObservable(o); err != nil {
			return nil, sightline.Errorf(sightline.Invalid, "sighting observable %d: %s", i, sightline.ErrorMessage(err))
		}
	}
	all = dedup(all)
	if len(all) > MaxObservables {
		return nil, sightline.Errorf(sightline.Invalid, "the sighting has %d observables: at most %d are accepted per request", len(all), MaxObservables)
	}
	return all, nil
}

func parseSighting(b []byte) ([]ctim.Observable, error) {
	var s ctim.Sighting
	if err := unmarshal(b, &s); err != nil {
		return nil, sightline.Errorf(sightline.Invalid, "the body must be one CTIM sighting: %s", sightline.ErrorMessage(err))
	}
	return sightingObservables(s)
}

// Module targets and fan-out.

// ids are the three module ids on every envelope item.
type ids struct {
	Module     string `json:"module"`
	InstanceID string `json:"module_instance_id"`
	TypeID     string `json:"module_type_id"`
}

// target is one module instance a request fans out to.
type target struct {
	ids
	mod      module.Module
	buildErr error
	timeout  time.Duration
}

// ModuleError is one item of an envelope's errors.
type ModuleError struct {
	ids
	Code    string `json:"code"`
	Message string `json:"message"`
	Type    string `json:"type"`
}

// Envelope is the answer of the enrich and response routes: Data is
// []ModuleResult for observe and deliberate.
type Envelope struct {
	Data   any           `json:"data"`
	Errors []ModuleError `json:"errors"`
}

func (t target) errorOf(e module.Error) ModuleError {
	if e.Type == "" {
		e.Type = "error"
	}
	return ModuleError{ids: t.ids, Code: e.Code, Message: e.Message, Type: e.Type}
}

// targets returns the organisation's enabled instances that support route,
// with the built-in Private Intelligence first, restricted to mids when
// given. An unknown mid is ignored, as CTR does.
func (c *Console) targets(ctx context.Context, orgID, route string, mids []string) ([]target, error) {
	list, err := c.store.Instances(ctx, orgID)
	if err != nil {
		return nil, sightline.Wrap(sightline.Unavailable, err, "the console cannot read its module instances right now")
	}
	want := func(id string) bool { return len(mids) == 0 || contains(mids, id) }
	var out []target
	if pi := c.privateIntel(orgID); pi.Supports(route) && want(InstanceIDPrivateIntel) {
		out = append(out, target{ids: ids{PrivateIntelName, InstanceIDPrivateIntel, TypeIDPrivateIntel}, mod: pi,
			timeout: c.timeoutOf(TypeIDPrivateIntel)})
	}
	for _, in := range list {
		if !in.Enabled || !want(in.ID) {
			continue
		}
		t := target{ids: ids{in.Name, in.ID, in.TypeID}, timeout: c.timeoutOf(in.TypeID)}
		t.mod, t.buildErr = c.build(ctx, in)
		if t.buildErr == nil && !t.mod.Supports(route) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

func (c *Console) timeoutOf(typeID string) time.Duration {
	if d, ok := c.opts.ModuleTimeouts[typeID]; ok && d > 0 {
		return d
	}
	return c.opts.ModuleTimeout
}

// build returns the module of an instance, built by its kind's factory and
// cached until the instance changes.
func (c *Console) build(ctx context.Context, in records.Instance) (module.Module, error) {
	key := in.TypeID + "\x00" + in.Name + "\x00" + string(in.Settings) + "\x00" + in.UpdatedAt.String()
	c.mu.Lock()
	b, ok := c.modules[in.ID]
	c.mu.Unlock()
	if ok && b.key == key {
		return b.mod, nil
	}
	m, err := c.newModule(ctx, in)
	if err != nil {
		return nil, sightline.Wrap(sightline.Invalid, err, fmt.Sprintf("module %s is misconfigured: %s", in.Name, sightline.ErrorMessage(err)))
	}
	c.mu.Lock()
	c.modules[in.ID] = builtModule{key: key, mod: m}
	c.mu.Unlock()
	return m, nil
}

// forget drops a cached module.
func (c *Console) forget(id string) {
	c.mu.Lock()
	delete(c.modules, id)
	c.mu.Unlock()
}

// outcome is one module's answer to one call.
type outcome struct {
	value any // module.Data, []module.Reference or []module.Action
	errs  []module.Error
	err   error // a transport failure
}

// fanOut calls every target in parallel, each bounded by its own timeout,
// and returns their outcomes in target order. A module that ignores its
// context cannot hold the answer past its timeout: its late answer is
// dropped. A panicking module is a failure of that module alone.
func (c *Console) fanOut(ctx context.Context, ts []target, call func(context.Context, module.Module) outcome) []outcome {
	out := make([]outcome, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() { out[i] = c.callOne(ctx, t, call) })
	}
	wg.Wait()
	return out
}

// callOne calls t's module within t's timeout: a late answer is dropped, a
// panic is a failure of this call alone, and a target whose module could
// not be built fails at once.
func (c *Console) callOne(ctx context.Context, t target, call func(context.Context, module.Module) outcome) outcome {
	if t.buildErr != nil {
		return outcome{err: t.buildErr}
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("module panicked", "module_instance_id", t.InstanceID, "panic", fmt.Sprint(p))
				done <- outcome{err: sightline.Errorf(sightline.Internal, "module failed unexpectedly")}
			}
		}()
		done <- call(cctx, t.mod)
	}()
	select {
	case o := <-done:
		if o.err != nil && cctx.Err() != nil {
			o.err = errTimeout(t.timeout)
		}
		return o
	case <-cctx.Done():
		if ctx.Err() != nil {
			return outcome{err: sightline.Wrap(sightline.Unavailable, ctx.Err(), "the request was cancelled")}
		}
		return outcome{err: errTimeout(t.timeout)}
	}
}

// timeoutError marks a module call that ran out of time.
type timeoutError struct{ d time.Duration }

func (e timeoutError) Error() string { return "module did not answer within " + seconds(e.d) }

func errTimeout(d time.Duration) error { return timeoutError{d} }

// seconds writes a duration as "30 s" or "0.5 s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// transportError is the envelope error of a call that failed in transit
// (console-api.md §5.3).
func (t target) transportError(err error) ModuleError {
	var te timeoutError
	if errors.As(err, &te) {
		return t.errorOf(module.Error{Code: "service unavailable", Message: te.Error(), Type: "fatal"})
	}
	msg := err.Error()
	var se *sightline.Error
	if errors.As(err, &se) {
		msg = se.Message
	}
	return t.errorOf(module.Error{Code: "unknown", Message: msg, Type: "fatal"})
}

// hasFatal reports whether the module reported a fatal error.
func hasFatal(errs []module.Error) bool {
	for _, e := range errs {
		if e.Type == "fatal" {
			return true
		}
	}
	return false
}

// Enrich (console-api.md §5).

func (c *Console) enrichObservables(op string) func(http.ResponseWriter, *http.Request, principal) error {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		b, err := readBody(w, r, maxJSON)
		if err != nil {
			return err
		}
		obs, err := parseObservables(b)
		if err != nil {
			return err
		}
		return c.enrich(w, r, p, op, obs)
	}
}

func (c *Console) enrichSighting(op string) func(http.ResponseWriter, *http.Request, principal) error {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		b, err := readBody(w, r, maxEntity)
		if err != nil {
			return err
		}
		obs, err := parseSighting(b)
		if err != nil {
			return err
		}
		return c.enrich(w, r, p, op, obs)
	}
}

func (c *Console) enrichSightingRef(op string) func(http.ResponseWriter, *http.Request, principal) error {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		var id string
		if err := decodeJSON(w, r, maxJSON, &id); err != nil {
			return sightline.Errorf(sightline.Invalid, "the body must be a JSON string: the id of a stored sighting")
		}
		s, err := c.storedSighting(r.Context(), p.orgID, id)
		if err != nil {
			return err
		}
		obs, err := sightingObservables(s)
		if err != nil {
			return err
		}
		return c.enrich(w, r, p, op, obs)
	}
}

// enrich fans obs out to the modules that support op and answers the envelope.
func (c *Console) enrich(w http.ResponseWriter, r *http.Request, p principal, op string, obs []ctim.Observable) error {
	env, err := c.runEnrich(r.Context(), p.orgID, op, obs, r.URL.Query()["mids"])
	if err != nil {
		return err
	}
	writeEnvelope(w, http.StatusOK, env)
	return nil
}

// runEnrich calls op on every module of the organisation that supports it
// (restricted to mids when given), in parallel, and merges the answers.
func (c *Console) runEnrich(ctx context.Context, orgID, op string, obs []ctim.Observable, mids []string) (Envelope, error) {
	ts, err := c.targets(ctx, orgID, opRoutes[op], mids)
	if err != nil {
		return Envelope{}, err
	}
	// Identical calls in flight share one module call (coalesce.go).
	outs := c.fanOut(ctx, c.shared(orgID, ts), func(ctx context.Context, m module.Module) outcome {
		var o outcome
		switch op {
		case opObserve:
			o.value, o.errs, o.err = m.Observe(ctx, obs)
		case opDeliberate:
			o.value, o.errs, o.err = m.Deliberate(ctx, obs)
		default:
			o.value, o.errs, o.err = m.Refer(ctx, obs)
		}
		return o
	})
	env := Envelope{Errors: []ModuleError{}}
	if op == opRefer {
		refs := []referenceItem{}
		for i, t := range ts {
			o := outs[i]
			env.Errors = appendErrors(env.Errors, t, o)
			if o.err == nil {
				list, _ := o.value.([]module.Reference)
				for _, ref := range list {
					refs = append(refs, referenceItem{Reference: ref, ids: t.ids})
				}
			}
		}
		env.Data = refs
		return env, nil
	}
	results := []ModuleResult{}
	for i, t := range ts {
		o := outs[i]
		env.Errors = appendErrors(env.Errors, t, o)
		if o.err != nil {
			continue
		}
		data, _ := o.value.(module.Data)
		data, warnings := checkData(data)
		for _, wmsg := range warnings {
			env.Errors = append(env.Errors, t.errorOf(module.Error{Code: "invalid verdict", Message: wmsg, Type: "warning"}))
		}
		if len(data) > 0 || !hasFatal(o.errs) {
			if data == nil {
				data = module.Data{}
			}
			_, compact := t.mod.(module.CompactJSON)
			results = append(results, ModuleResult{ids: t.ids, Data: data, compact: compact})
		}
	}
	env.Data = results
	return env, nil
}

func appendErrors(list []ModuleError, t target, o outcome) []ModuleError {
	if o.err != nil {
		return append(list, t.transportError(o.err))
	}
	for _, e := range o.errs {
		list = append(list, t.errorOf(e))
	}
	return list
}

// ModuleResult is one item of an observe or deliberate envelope.
type ModuleResult struct {
	ids
	Data module.Data `json:"data"`
	// compact says that Data comes from a module.CompactJSON module.
	compact bool
}

// referenceItem is one item of a refer envelope: the reference with the
// module ids merged in.
type referenceItem struct {
	module.Reference
	ids
}

// MarshalJSON flattens the reference and the ids into one object.
func (ri referenceItem) MarshalJSON() ([]byte, error) {
	type flat struct {
		ID          string   `json:"id"`
		Title       string   `json:"title"`
		Description string   `json:"description"`
		URL         string   `json:"url"`
		Categories  []string `json:"categories,omitempty"`
		ids
	}
	return json.Marshal(flat{ri.ID, ri.Title, ri.Description, ri.URL, ri.Categories, ri.ids})
}

// checkData drops the verdict docs the Python client cannot read (no
// observable type or value, a disposition not an integer 1–5, no valid_time
// object), fixing the count, and returns a warning for each dropped one.
func checkData(d module.Data) (module.Data, []string) {
	raw, ok := d["verdicts"]
	if !ok {
		return d, nil
	}
	var warnings []string
	var set struct {
		Docs []json.RawMessage `json:"docs"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		out := module.Data{}
		for k, v := range d {
			if k != "verdicts" {
				out[k] = v
			}
		}
		return out, []string{"verdicts dropped: not {\"count\": n, \"docs\": [...]}"}
	}
	good := make([]json.RawMessage, 0, len(set.Docs))
	for i, doc := range set.Docs {
		if problem := verdictProblem(doc); problem != "" {
			warnings = append(warnings, fmt.Sprintf("verdict %d dropped: %s", i, problem))
			continue
		}
		good = append(good, doc)
	}
	if len(warnings) == 0 {
		return d, nil
	}
	b, _ := json.Marshal(map[string]any{"count": len(good), "docs": good})
	out := module.Data{}
	for k, v := range d {
		out[k] = v
	}
	out["verdicts"] = b
	return out, warnings
}

func verdictProblem(doc json.RawMessage) string {
	var v struct {
		Observable *struct {
			Type  any `json:"type"`
			Value any `json:"value"`
		} `json:"observable"`
		Disposition any `json:"disposition"`
		ValidTime   any `json:"valid_time"`
	}
	if json.Unmarshal(doc, &v) != nil {
		return "not an object"
	}
	if v.Observable == nil {
		return "no observable"
	}
	if s, ok := v.Observable.Type.(string); !ok || s == "" {
		return "no observable.type"
	}
	if s, ok := v.Observable.Value.(string); !ok || s == "" {
		return "no observable.value"
	}
	if f, ok := v.Disposition.(float64); !ok || f != float64(int(f)) || f < 1 || f > 5 {
		return "disposition is not an integer 1-5"
	}
	if _, ok := v.ValidTime.(map[string]any); !ok {
		return "no valid_time object"
	}
	return ""
}

// Health and settings (console-api.md §5.6).

type healthItem struct {
	ids
	Data struct {
		Status string `json:"status"`
	} `json:"data"`
}

func (c *Console) health(ctx context.Context, ts []target) ([]healthItem, []ModuleError) {
	outs := c.fanOut(ctx, ts, func(ctx context.Context, m module.Module) outcome {
		var o outcome
		o.errs, o.err = m.Health(ctx)
		return o
	})
	items, errs := []healthItem{}, []ModuleError{}
	for i, t := range ts {
		item := healthItem{ids: t.ids}
		item.Data.Status = "ok"
		if outs[i].err != nil || len(outs[i].errs) > 0 {
			item.Data.Status = "error"
		}
		errs = appendErrors(errs, t, outs[i])
		items = append(items, item)
	}
	return items, errs
}

func (c *Console) handleHealthAll(w http.ResponseWriter, r *http.Request, p principal) error {
	ts, err := c.targets(r.Context(), p.orgID, module.RouteHealth, nil)
	if err != nil {
		return err
	}
	items, errs := c.health(r.Context(), ts)
	writeJSON(w, http.StatusOK, Envelope{Data: items, Errors: errs})
	return nil
}

func (c *Console) handleHealthOne(w http.ResponseWriter, r *http.Request, p principal) error {
	t, err := c.target(r.Context(), p.orgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	items, errs := c.health(r.Context(), []target{t})
	writeJSON(w, http.StatusOK, Envelope{Data: items[0], Errors: errs})
	return nil
}

// target returns one instance of the organisation (enabled or not) as a
// target, or a NotFound error.
func (c *Console) target(ctx context.Context, orgID, id string) (target, error) {
	if id == InstanceIDPrivateIntel {
		return target{ids: ids{PrivateIntelName, InstanceIDPrivateIntel, TypeIDPrivateIntel}, mod: c.privateIntel(orgID),
			timeout: c.timeoutOf(TypeIDPrivateIntel)}, nil
	}
	in, err := c.store.Instance(ctx, orgID, id)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return target{}, sightline.Errorf(sightline.NotFound, "There is no module instance %s in this organisation.", id)
	}
	if err != nil {
		return target{}, sightline.Wrap(sightline.Unavailable, err, "the console cannot read its module instances right now")
	}
	t := target{ids: ids{in.Name, in.ID, in.TypeID}, timeout: c.timeoutOf(in.TypeID)}
	t.mod, t.buildErr = c.build(ctx, in)
	return t, nil
}

func (c *Console) handleSettings(w http.ResponseWriter, r *http.Request, _ principal) error {
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// Response (console-api.md §6).

// actionItem is one action of a response envelope.
type actionItem struct {
	ids
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Categories  []string `json:"categories,omitempty"`
	URL         string   `json:"url"`
}

func (c *Console) handleRespondObservables(w http.ResponseWriter, r *http.Request, p principal) error {
	b, err := readBody(w, r, maxJSON)
	if err != nil {
		return err
	}
	obs, err := parseObservables(b)
	if err != nil {
		return err
	}
	return c.respond(w, r, p, obs)
}

func (c *Console) handleRespondSighting(w http.ResponseWriter, r *http.Request, p principal) error {
	b, err := readBody(w, r, maxEntity)
	if err != nil {
		return err
	}
	obs, err := parseSighting(b)
	if err != nil {
		return err
	}
	return c.respond(w, r, p, obs)
}

func (c *Console) respond(w http.ResponseWriter, r *http.Request, p principal, obs []ctim.Observable) error {
	ts, err := c.targets(r.Context(), p.orgID, module.RouteRespondObservables, r.URL.Query()["mids"])
	if err != nil {
		return err
	}
	outs := c.fanOut(r.Context(), ts, func(ctx context.Context, m module.Module) outcome {
		var o outcome
		o.value, o.errs, o.err = m.RespondObservables(ctx, obs)
		return o
	})
	env := Envelope{Errors: []ModuleError{}}
	items := []actionItem{}
	for i, t := range ts {
		env.Errors = appendErrors(env.Errors, t, outs[i])
		if outs[i].err != nil {
			continue
		}
		list, _ := outs[i].value.([]module.Action)
		for _, a := range list {
			items = append(items, actionItem{ids: t.ids, ID: a.ID, Title: a.Title, Description: a.Description,
				Categories: a.Categories, URL: triggerURL(t.InstanceID, a, obs)})
		}
	}
	env.Data = items
	writeJSON(w, http.StatusOK, env)
	return nil
}

// triggerURL is an action's url, relative to /iroh/: the trigger route with
// observable_type, observable_value and the action's query parameters. When
// the action does not name its observable and the request had one, that
// one is used.
func triggerURL(instanceID string, a module.Action, obs []ctim.Observable) string {
	q := url.Values{}
	for k, v := range a.QueryParams {
		q.Set(k, v)
	}
	if q.Get("observable_type") == "" && len(obs) == 1 {
		q.Set("observable_type", string(obs[0].Type))
		q.Set("observable_value", obs[0].Value)
	}
	return "/iroh-response/respond/trigger/" + url.PathEscape(instanceID) + "/" + url.PathEscape(a.ID) + "?" + q.Encode()
}

// TriggerResult is the data of a trigger answer.
type TriggerResult struct {
	Status string `json:"status"` // "success" or "failure"
}

func (c *Console) handleTrigger(w http.ResponseWriter, r *http.Request, p principal) error {
	// The Python client sends no body; one that is sent is ignored.
	if _, err := readBody(w, r, maxJSON); err != nil {
		return err
	}
	t, err := c.target(r.Context(), p.orgID, r.PathValue("instance"))
	if err != nil {
		return err
	}
	if t.buildErr == nil && !t.mod.Supports(module.RouteRespondTrigger) {
		return sightline.Errorf(sightline.Invalid, "module %s offers no response actions", t.Module)
	}
	params := map[string]string{}
	for k, vs := range r.URL.Query() {
		params[k] = vs[0]
	}
	action := r.PathValue("action")
	o := c.fanOut(r.Context(), []target{t}, func(ctx context.Context, m module.Module) outcome {
		var o outcome
		o.errs, o.err = m.RespondTrigger(ctx, action, params)
		return o
	})[0]
	res := TriggerResult{Status: "success"}
	errs := appendErrors([]ModuleError{}, t, o)
	for _, e := range errs {
		if e.Type != "warning" {
			res.Status = "failure"
		}
	}
	writeJSON(w, http.StatusOK, Envelope{Data: res, Errors: errs})
	return nil
}

// Private Intelligence: the organisation's own judgements as a module.

// privateIntel answers observe with the stored judgements and sightings of
// the observables, and deliberate with the verdicts computed from the active
// judgements.
type privateIntel struct {
	c     *Console
	orgID string
}

func (c *Console) privateIntel(orgID string) privateIntel { return privateIntel{c: c, orgID: orgID} }

func (pi privateIntel) Supports(route string) bool {
	return route == module.RouteHealth || route == module.RouteObserve || route == module.RouteDeliberate
}

func (pi privateIntel) Health(ctx context.Context) ([]module.Error, error) { return nil, nil }

func (pi privateIntel) Observe(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	var judgements, sightings []json.RawMessage
	for _, o := range obs {
		for _, set := range []struct {
			typ string
			dst *[]json.RawMessage
		}{{ctim.TypeJudgement, &judgements}, {ctim.TypeSighting, &sightings}} {
			es, err := pi.c.store.Entities(ctx, pi.orgID, set.typ, &o)
			if err != nil {
				return nil, nil, fmt.Errorf("private intelligence: %w", err)
			}
			for _, e := range es {
				*set.dst = append(*set.dst, e.Doc)
			}
		}
	}
	d := module.Data{}
	addDocs(d, "judgements", judgements)
	addDocs(d, "sightings", sightings)
	return d, nil, nil
}

func (pi privateIntel) Deliberate(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	var verdicts []json.RawMessage
	for _, o := range obs {
		v, ok, err := pi.c.verdict(ctx, pi.orgID, o)
		if err != nil {
			return nil, nil, fmt.Errorf("private intelligence: %w", err)
		}
		if ok {
			b, _ := json.Marshal(v)
			verdicts = append(verdicts, b)
		}
	}
	d := module.Data{}
	addDocs(d, "verdicts", verdicts)
	return d, nil, nil
}

func addDocs(d module.Data, key string, docs []json.RawMessage) {
	if len(docs) == 0 {
		return
	}
	b, _ := json.Marshal(map[string]any{"count": len(docs), "docs": docs})
	d[key] = b
}

var errNotSupported = errors.New("not supported by Private Intelligence")

func (pi privateIntel) Refer(context.Context, []ctim.Observable) ([]module.Reference, []module.Error, error) {
	return nil, nil, errNotSupported
}

func (pi privateIntel) RespondObservables(context.Context, []ctim.Observable) ([]module.Action, []module.Error, error) {
	return nil, nil, errNotSupported
}

func (pi privateIntel) RespondTrigger(context.Context, string, map[string]string) ([]module.Error, error) {
	return nil, errNotSupported
}

// verdict computes the verdict of an observable from the organisation's
// active judgements.
func (c *Console) verdict(ctx context.Context, orgID string, o ctim.Observable) (ctim.Verdict, bool, error) {
	es, err := c.store.Entities(ctx, orgID, ctim.TypeJudgement, &o)
	if err != nil {
		return ctim.Verdict{}, false, err
	}
	js := make([]ctim.Judgement, 0, len(es))
	for _, e := range es {
		var j ctim.Judgement
		if err := json.Unmarshal(e.Doc, &j); err != nil {
			return ctim.Verdict{}, false, fmt.Errorf("stored judgement %s: %w", e.ID, err)
		}
		js = append(js, j)
	}
	v, ok := ctim.ComputeVerdict(js, ctim.NewTime(c.now()))
	return v, ok, nil
}

// storedSighting returns a stored sighting of the organisation by short or
// long id.
func (c *Console) storedSighting(ctx context.Context, orgID, id string) (ctim.Sighting, error) {
	var s ctim.Sighting
	pid, err := ctim.ParseID(id)
	if err != nil || pid.Type != ctim.TypeSighting || pid.Kind == ctim.TransientID {
		return s, sightline.Errorf(sightline.NotFound, "Sighting not found")
	}
	e, err := c.store.Entity(ctx, orgID, ctim.TypeSighting, pid.Short)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return s, sightline.Errorf(sightline.NotFound, "Sighting not found")
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(e.Doc, &s); err != nil {
		return s, fmt.Errorf("stored sighting %s: %w", e.ID, err)
	}
	return s, nil
}
