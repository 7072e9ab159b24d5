package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// The gate module kind: a fake module whose observe, deliberate and refer
// calls are counted and wait until the test opens the gate, so that a test
// can have many identical investigations in flight at once.

const gateKind = "gate"

// gateSettings choose a gate module's behaviour.
type gateSettings struct {
	// Mode: "ok" answers its data; "errors" reports a module error;
	// "fail" is a transport failure; "panic" panics; "ignore" ignores its
	// context while it waits (for at most 10 s) and then answers its data.
	Mode string `json:"mode"`
	// Label is written into the data, so that a test can tell which
	// settings answered.
	Label string `json:"label,omitempty"`
}

// gates counts the calls of the gate modules of one console and holds them
// until open.
type gates struct {
	mu      sync.Mutex
	open    chan struct{}
	calls   map[string]int // by callKey
	ctxErrs []error        // the context's error of each call once its gate opened
}

func newGates(t *testing.T) *gates {
	g := &gates{open: make(chan struct{}), calls: map[string]int{}}
	t.Cleanup(g.release) // no module waits past its test
	return g
}

// release opens the gate: the waiting calls answer, and so do later ones.
func (g *gates) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// reset closes the gate again and forgets the calls.
func (g *gates) reset() {
	g.release()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open, g.calls, g.ctxErrs = make(chan struct{}), map[string]int{}, nil
}

func callKey(instanceID, op string, obs []ctim.Observable) string {
	k := instanceID + " " + op
	for _, o := range obs {
		k += " " + o.Key()
	}
	return k
}

// count returns the number of calls of op with obs on the instance.
func (g *gates) count(instanceID, op string, obs ...ctim.Observable) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[callKey(instanceID, op, obs)]
}

// waitCalls waits until the modules have been called n times in all.
func (g *gates) waitCalls(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.total() < n {
		if time.Now().After(deadline) {
			t.Errorf("the modules were called %d times, want %d", g.total(), n)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// total returns the number of calls of every kind.
func (g *gates) total() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		n += c
	}
	return n
}

func (g *gates) factory(in module.Instance) (module.Module, error) {
	var s gateSettings
	if err := json.Unmarshal(in.Settings, &s); err != nil || s.Mode == "" {
		return nil, fmt.Errorf("gate settings %s: want a mode", in.Settings)
	}
	return &gateModule{g: g, id: in.ID, s: s}, nil
}

// gateModule is one gate module instance: a pointer, as real modules are.
type gateModule struct {
	g  *gates
	id string
	s  gateSettings
}

func (m *gateModule) Supports(string) bool                           { return true }
func (m *gateModule) Health(context.Context) ([]module.Error, error) { return nil, nil }
func (m *gateModule) RespondObservables(context.Context, []ctim.Observable) ([]module.Action, []module.Error, error) {
	return nil, nil, nil
}
func (m *gateModule) RespondTrigger(context.Context, string, map[string]string) ([]module.Error, error) {
	return nil, nil
}

// enter counts the call, waits for the gate, and returns what the call
// answers besides its data: a transport error or module errors.
func (m *gateModule) enter(ctx context.Context, op string, obs []ctim.Observable) ([]module.Error, error) {
	m.g.mu.Lock()
	m.g.calls[callKey(m.id, op, obs)]++
	open := m.g.open
	m.g.mu.Unlock()
	if m.s.Mode == "ignore" {
		select {
		case <-open:
		case <-time.After(10 * time.Second):
		}
	} else {
		select {
		case <-open:
		case <-ctx.Done():
		}
	}
	m.g.mu.Lock()
	m.g.ctxErrs = append(m.g.ctxErrs, ctx.Err())
	m.g.mu.Unlock()
	if m.s.Mode != "ignore" && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	switch m.s.Mode {
	case "fail":
		return nil, errors.New("module returned HTTP 502")
	case "panic":
		panic("gate module panic")
	case "errors":
		return []module.Error{{Code: "authorization error", Message: "Authorization failed: Wrong JWT structure", Type: "fatal"}}, nil
	}
	return nil, nil
}

func (m *gateModule) Observe(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	if errs, err := m.enter(ctx, opObserve, obs); err != nil || errs != nil {
		return nil, errs, err
	}
	b, _ := json.Marshal(map[string]any{"count": 1, "docs": []any{map[string]any{"type": "sighting",
		"description": m.id + " " + m.s.Label, "observables": obs}}})
	return module.Data{"sightings": b}, nil, nil
}

func (m *gateModule) Deliberate(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	if errs, err := m.enter(ctx, opDeliberate, obs); err != nil || errs != nil {
		return nil, errs, err
	}
	// With a verdict the Python client cannot read, which checkData drops.
	return module.Data{"verdicts": verdictDocs(obs, true)}, nil, nil
}

func (m *gateModule) Refer(ctx context.Context, obs []ctim.Observable) ([]module.Reference, []module.Error, error) {
	if errs, err := m.enter(ctx, opRefer, obs); err != nil || errs != nil {
		return nil, errs, err
	}
	var refs []module.Reference
	for _, o := range obs {
		refs = append(refs, module.Reference{ID: "ref-" + m.id + "-" + o.Value, Title: "Search", Description: "Search",
			URL: "https://gw.example/?q=" + o.Value, Categories: []string{"Search"}})
	}
	return refs, nil, nil
}

// arrivals counts the callers that started or joined a shared call, by
// instance and operation (shareHook).
type arrivals struct {
	mu sync.Mutex
	n  map[string]int
}

func watchArrivals(t *testing.T) *arrivals {
	a := &arrivals{n: map[string]int{}}
	h := func(instanceID, op string) {
		a.mu.Lock()
		a.n[instanceID+" "+op]++
		a.mu.Unlock()
	}
	shareHook.Store(&h)
	t.Cleanup(func() { shareHook.Store(nil) })
	return a
}

// wait waits until n callers of op on the instance have arrived (in all).
func (a *arrivals) wait(t *testing.T, instanceID, op string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		got := a.n[instanceID+" "+op]
		a.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d callers of %s on %s arrived, want %d", got, op, instanceID, n)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startGateConsole starts a console with the gate module kind.
func startGateConsole(t *testing.T, edit func(*Options)) (*testConsole, *gates) {
	t.Helper()
	g := newGates(t)
	tc := startConsole(t, func(o *Options) {
		o.Modules[gateKind] = g.factory
		if edit != nil {
			edit(o)
		}
	})
	return tc, g
}

// addGate creates a gate module instance as user (of its organisation).
func (tc *testConsole) addGate(t *testing.T, user, name string, s gateSettings) string {
	t.Helper()
	settings, _ := json.Marshal(s)
	status, body := tc.adminAs(t, user, adminPass, http.MethodPost, "/api/v1/modules",
		ModuleRequest{Kind: gateKind, TypeID: fakeTypeID, Name: name, Settings: settings})
	if status != http.StatusCreated {
		t.Fatalf("create gate module %s: %d %s", name, status, body)
	}
	var mi ModuleInstance
	json.Unmarshal(body, &mi)
	return mi.ID
}

// answer is one HTTP answer.
type answer struct {
	status int
	body   string
}

// concurrently sends each request from its own goroutine and returns a
// function that waits for the answers, in the order of reqs.
func (tc *testConsole) concurrently(t *testing.T, reqs ...enrichCall) func() []answer {
	out := make([]answer, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			status, body, _ := tc.call(t, http.MethodPost, r.path, r.token, r.obs)
			out[i] = answer{status, string(body)}
		})
	}
	return func() []answer { wg.Wait(); return out }
}

// enrichCall is one enrich request.
type enrichCall struct {
	path, token string
	obs         []ctim.Observable
}

func ip(v string) ctim.Observable { return ctim.Observable{Type: observable.IP, Value: v} }

// TestSharedCallIdentical sends N identical observe requests at once: the
// module is called once, and every caller gets the answer it gets alone.
func TestSharedCallIdentical(t *testing.T) {
	const n = 8
	tc, g := startGateConsole(t, nil)
	id := tc.addGate(t, AdminUser, "gw", gateSettings{Mode: "ok"})
	tok := tc.token(t, tc.org.ID, "enrich")
	arrived := watchArrivals(t)
	obs := []ctim.Observable{ip("203.0.113.25"), ip("198.51.100.7")}
	path := "/iroh/iroh-enrich/observe/observables"

	reqs := make([]enrichCall, n)
	for i := range reqs {
		reqs[i] = enrichCall{path, tok, obs}
	}
	wait := tc.concurrently(t, reqs...)
	arrived.wait(t, id, opObserve, n)
	g.release()
	answers := wait()
	if got := g.count(id, opObserve, obs...); got != 1 {
		t.Errorf("%d identical concurrent observes made %d module calls, want 1", n, got)
	}
	env := decode[envelopeOf[[]resultItem]](t, []byte(answers[0].body))
	var gate *resultItem
	for i, it := range env.Data {
		if it.InstanceID == id {
			gate = &env.Data[i]
		}
	}
	if answers[0].status != 200 || len(env.Errors) != 0 || gate == nil || gate.Module != "gw" || gate.TypeID != fakeTypeID ||
		gate.Data["sightings"].Count != 1 || !strings.Contains(string(gate.Data["sightings"].Docs[0]), id) {
		t.Fatalf("observe = %d %s, want the gate module's sighting", answers[0].status, answers[0].body)
	}
	for i, a := range answers {
		if a != answers[0] {
			t.Errorf("answer %d = %d %s, want the same as answer 0: %d %s", i, a.status, a.body, answers[0].status, answers[0].body)
		}
	}
	g.mu.Lock()
	if len(g.ctxErrs) != 1 || g.ctxErrs[0] != nil {
		t.Errorf("the module's context ended with %v, want one call whose context was alive", g.ctxErrs)
	}
	g.mu.Unlock()

	// Nothing is kept: the next call calls the module again, and its
	// answer alone is the shared one.
	status, body, _ := tc.call(t, http.MethodPost, path, tok, obs)
	if got := g.count(id, opObserve, obs...); got != 2 {
		t.Errorf("a call after the shared one completed made %d module calls in all, want 2", got)
	}
	if (answer{status, string(body)}) != answers[0] {
		t.Errorf("unshared observe = %d %s, want the shared answer %s", status, body, answers[0].body)
	}
}

// TestSharedCallKeys checks that only identical calls share: another
// observable, another order, another instance, organisation or operation
// each get their own call.
func TestSharedCallKeys(t *testing.T) {
	tc, g := startGateConsole(t, nil)
	other := tc.addOrganisation(t, "Other", "other-admin")
	a := tc.addGate(t, AdminUser, "gw a", gateSettings{Mode: "ok"})
	b := tc.addGate(t, AdminUser, "gw b", gateSettings{Mode: "ok"})
	o := tc.addGate(t, "other-admin", "gw other", gateSettings{Mode: "ok"})
	tok := tc.token(t, tc.org.ID, "enrich")
	otherTok := tc.token(t, other.ID, "enrich")
	x, y := ip("203.0.113.25"), ip("198.51.100.7")
	observe := func(mid string) string { return "/iroh/iroh-enrich/observe/observables?mids=" + mid }
	deliberate := func(mid string) string { return "/iroh/iroh-enrich/deliberate/observables?mids=" + mid }

	type call struct {
		enrichCall
		instance, op string
	}
	tests := []struct {
		name  string
		calls []call
		want  int // module calls
	}{
		{"identical", []call{
			{enrichCall{observe(a), tok, []ctim.Observable{x}}, a, opObserve},
			{enrichCall{observe(a), tok, []ctim.Observable{x}}, a, opObserve}}, 1},
		{"other observable", []call{
			{enrichCall{observe(a), tok, []ctim.Observable{x}}, a, opObserve},
			{enrichCall{observe(a), tok, []ctim.Observable{y}}, a, opObserve}}, 2},
		{"other order", []call{
			{enrichCall{observe(a), tok, []ctim.Observable{x, y}}, a, opObserve},
			{enrichCall{observe(a), tok, []ctim.Observable{y, x}}, a, opObserve}}, 2},
		{"other instance", []call{
			{enrichCall{observe(a), tok, []ctim.Observable{x}}, a, opObserve},
			{enrichCall{observe(b), tok, []ctim.Observable{x}}, b, opObserve}}, 2},
		{"other organisation", []call{
			{enrichCall{observe(a), tok, []ctim.Observable{x}}, a, opObserve},
			{enrichCall{observe(o), otherTok, []ctim.Observable{x}}, o, opObserve}}, 2},
		{"other operation", []call{
			{enrichCall{observe(a), tok, []ctim.Observable{x}}, a, opObserve},
			{enrichCall{deliberate(a), tok, []ctim.Observable{x}}, a, opDeliberate}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g.reset()
			arrived := watchArrivals(t)
			reqs := make([]enrichCall, len(tt.calls))
			for i, c := range tt.calls {
				reqs[i] = c.enrichCall
			}
			wait := tc.concurrently(t, reqs...)
			for _, c := range tt.calls {
				arrived.wait(t, c.instance, c.op, 1)
			}
			if tt.calls[0].instance == tt.calls[1].instance && tt.calls[0].op == tt.calls[1].op {
				arrived.wait(t, tt.calls[0].instance, tt.calls[0].op, 2)
			}
			g.release()
			answers := wait()
			if got := g.total(); got != tt.want {
				t.Errorf("module calls = %d, want %d", got, tt.want)
			}
			for i, c := range tt.calls {
				if got := g.count(c.instance, c.op, c.obs...); got != 1 && tt.want == len(tt.calls) {
					t.Errorf("call %d: %d module calls of %s %v on %s, want 1", i, got, c.op, c.obs, c.instance)
				}
				env := decode[envelopeOf[[]resultItem]](t, []byte(answers[i].body))
				if answers[i].status != 200 || len(env.Data) != 1 || env.Data[0].InstanceID != c.instance {
					t.Errorf("call %d = %d %s, want the answer of %s", i, answers[i].status, answers[i].body, c.instance)
					continue
				}
				if c.op == opObserve {
					var doc struct {
						Description string            `json:"description"`
						Observables []ctim.Observable `json:"observables"`
					}
					json.Unmarshal(env.Data[0].Data["sightings"].Docs[0], &doc)
					if !strings.HasPrefix(doc.Description, c.instance) || !cmp.Equal(doc.Observables, c.obs) {
						t.Errorf("call %d: sighting of %q for %v, want of %s for %v", i, doc.Description, doc.Observables, c.instance, c.obs)
					}
				}
			}
		})
	}
}

// TestSharedCallInstanceChanged: a call that starts after its instance's
// settings changed does not join a call made with the old settings.
func TestSharedCallInstanceChanged(t *testing.T) {
	tc, g := startGateConsole(t, nil)
	id := tc.addGate(t, AdminUser, "gw", gateSettings{Mode: "ok", Label: "v1"})
	tok := tc.token(t, tc.org.ID, "enrich")
	arrived := watchArrivals(t)
	obs := []ctim.Observable{ip("203.0.113.25")}
	path := "/iroh/iroh-enrich/observe/observables?mids=" + id

	first := tc.concurrently(t, enrichCall{path, tok, obs})
	arrived.wait(t, id, opObserve, 1)
	settings, _ := json.Marshal(gateSettings{Mode: "ok", Label: "v2"})
	if status, body := tc.admin(t, http.MethodPut, "/api/v1/modules/"+id, ModuleRequest{Settings: settings}); status != 200 {
		t.Fatalf("update module: %d %s", status, body)
	}
	second := tc.concurrently(t, enrichCall{path, tok, obs})
	arrived.wait(t, id, opObserve, 2)
	g.release()
	for i, w := range []func() []answer{first, second} {
		a := w()[0]
		want := []string{" v1", " v2"}[i]
		if a.status != 200 || !strings.Contains(a.body, want) {
			t.Errorf("call %d = %d %s, want the sighting of the settings %s", i, a.status, a.body, want)
		}
	}
	if got := g.count(id, opObserve, obs...); got != 2 {
		t.Errorf("module calls = %d, want 2: one per version of the instance", got)
	}
}

// TestSharedCallCancelled: the caller that started a shared call goes
// away; it gets its error at once, and the call goes on for the others.
func TestSharedCallCancelled(t *testing.T) {
	tc, g := startGateConsole(t, nil)
	id := tc.addGate(t, AdminUser, "gw", gateSettings{Mode: "ok"})
	tok := tc.token(t, tc.org.ID, "enrich")
	arrived := watchArrivals(t)
	obs := []ctim.Observable{ip("203.0.113.25")}

	ctx, cancel := context.WithCancel(context.Background())
	firstDone := make(chan Envelope, 1)
	go func() {
		env, err := tc.runEnrich(ctx, tc.org.ID, opObserve, obs, []string{id})
		if err != nil {
			t.Errorf("runEnrich: %v", err)
		}
		firstDone <- env
	}()
	arrived.wait(t, id, opObserve, 1)
	rest := tc.concurrently(t, enrichCall{"/iroh/iroh-enrich/observe/observables?mids=" + id, tok, obs},
		enrichCall{"/iroh/iroh-enrich/observe/observables?mids=" + id, tok, obs})
	arrived.wait(t, id, opObserve, 3)
	cancel()
	select {
	case env := <-firstDone:
		results, _ := env.Data.([]ModuleResult)
		if len(results) != 0 || len(env.Errors) != 1 || env.Errors[0].InstanceID != id || env.Errors[0].Type != "fatal" {
			t.Errorf("cancelled caller got %+v, want one fatal error of %s and no data", env, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled caller is still waiting for the shared call")
	}
	g.release()
	for i, a := range rest() {
		env := decode[envelopeOf[[]resultItem]](t, []byte(a.body))
		if a.status != 200 || len(env.Errors) != 0 || len(env.Data) != 1 || env.Data[0].Data["sightings"].Count != 1 {
			t.Errorf("caller %d after the first went away = %d %s, want the sighting", i, a.status, a.body)
		}
	}
	if got := g.count(id, opObserve, obs...); got != 1 {
		t.Errorf("module calls = %d, want 1", got)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.ctxErrs) != 1 || g.ctxErrs[0] != nil {
		t.Errorf("the shared call's context ended with %v, want it alive after its first caller went away", g.ctxErrs)
	}
}

// TestSharedCallErrors: module errors, transport failures and panics are
// shared like answers, each with the module's ids.
func TestSharedCallErrors(t *testing.T) {
	const n = 4
	tests := []struct {
		mode string
		want ModuleError
	}{
		{"errors", ModuleError{Code: "authorization error", Message: "Authorization failed: Wrong JWT structure", Type: "fatal"}},
		{"fail", ModuleError{Code: "unknown", Message: "module returned HTTP 502", Type: "fatal"}},
		{"panic", ModuleError{Code: "unknown", Message: "module failed unexpectedly", Type: "fatal"}},
	}
	tc, g := startGateConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "enrich")
	obs := []ctim.Observable{ip("203.0.113.25")}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			g.reset()
			id := tc.addGate(t, AdminUser, "gw "+tt.mode, gateSettings{Mode: tt.mode})
			arrived := watchArrivals(t)
			reqs := make([]enrichCall, n)
			for i := range reqs {
				reqs[i] = enrichCall{"/iroh/iroh-enrich/deliberate/observables?mids=" + id, tok, obs}
			}
			wait := tc.concurrently(t, reqs...)
			arrived.wait(t, id, opDeliberate, n)
			g.release()
			answers := wait()
			if got := g.count(id, opDeliberate, obs...); got != 1 {
				t.Errorf("module calls = %d, want 1", got)
			}
			want := tt.want
			want.ids = ids{"gw " + tt.mode, id, fakeTypeID}
			for i, a := range answers {
				env := decode[envelopeOf[[]resultItem]](t, []byte(a.body))
				if diff := cmp.Diff([]ModuleError{want}, env.Errors, cmp.AllowUnexported(ModuleError{})); a.status != 200 || len(env.Data) != 0 || diff != "" {
					t.Errorf("caller %d = %d %s, want only the error (-want +got):\n%s", i, a.status, a.body, diff)
				}
				if a != answers[0] {
					t.Errorf("caller %d = %s, want the same as caller 0: %s", i, a.body, answers[0].body)
				}
			}
		})
	}
}

// TestSharedCallTimeout: a shared call is bounded by the module's timeout
// from its start, whether the module heeds its context or not; a caller
// that joined later gets the same timeout error, not the bare context error
// of the shared call; and once the shared call has timed out, the next call
// calls the module again instead of joining a call that never ends.
func TestSharedCallTimeout(t *testing.T) {
	tc, g := startGateConsole(t, func(o *Options) { o.ModuleTimeout = time.Second })
	tok := tc.token(t, tc.org.ID, "enrich")
	obs := []ctim.Observable{ip("203.0.113.25")}
	for _, mode := range []string{"ok", "ignore"} { // the gate stays closed
		t.Run(mode, func(t *testing.T) {
			g.reset()
			id := tc.addGate(t, AdminUser, "gw "+mode, gateSettings{Mode: mode})
			arrived := watchArrivals(t)
			path := "/iroh/iroh-enrich/observe/observables?mids=" + id
			first := tc.concurrently(t, enrichCall{path, tok, obs})
			g.waitCalls(t, 1) // the shared call's time runs from here
			second := tc.concurrently(t, enrichCall{path, tok, obs})
			arrived.wait(t, id, opObserve, 2)
			want := []ModuleError{{ids: ids{"gw " + mode, id, fakeTypeID}, Code: "service unavailable",
				Message: "module did not answer within 1 s", Type: "fatal"}}
			check := func(name string, a answer) {
				t.Helper()
				env := decode[envelopeOf[[]resultItem]](t, []byte(a.body))
				if diff := cmp.Diff(want, env.Errors, cmp.AllowUnexported(ModuleError{})); a.status != 200 || len(env.Data) != 0 || diff != "" {
					t.Errorf("%s = %d %s, want the timeout (-want +got):\n%s", name, a.status, a.body, diff)
				}
			}
			check("first caller", first()[0])
			check("second caller", second()[0])
			if got := g.count(id, opObserve, obs...); got != 1 {
				t.Errorf("module calls of the two callers = %d, want 1", got)
			}
			// The second caller may return by its own deadline a moment
			// before the shared call ends: a later caller may still join
			// it, but not three times in a row, 1 s apart.
			for i := 0; i < 3 && g.count(id, opObserve, obs...) == 1; i++ {
				check("later caller", tc.concurrently(t, enrichCall{path, tok, obs})()[0])
			}
			if got := g.count(id, opObserve, obs...); got != 2 {
				t.Errorf("module calls with later callers = %d, want 2", got)
			}
		})
	}
}

// TestSharedResultsReadOnly shares one observe and one deliberate answer
// between the enrich API, the admin API's investigate and the UI's, which
// read the answer in their own ways at once; run with -race.
func TestSharedResultsReadOnly(t *testing.T) {
	tc, g := startGateConsole(t, nil)
	id := tc.addGate(t, AdminUser, "gw", gateSettings{Mode: "ok"})
	tok := tc.token(t, tc.org.ID, "enrich")
	arrived := watchArrivals(t)
	obs := []ctim.Observable{ip("203.0.113.25")}
	q, err := observable.ParseQuery("203.0.113.25")
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	enrich := make([]answer, 3)
	for i := range enrich {
		wg.Go(func() {
			status, body, _ := tc.call(t, http.MethodPost, "/iroh/iroh-enrich/deliberate/observables", tok, obs)
			enrich[i] = answer{status, string(body)}
		})
	}
	for range 2 {
		wg.Go(func() {
			status, body := tc.admin(t, http.MethodPost, "/api/v1/investigate", map[string]string{"query": "203.0.113.25"})
			inv := decode[struct {
				Deliberate envelopeOf[[]resultItem] `json:"deliberate"`
			}](t, body)
			if status != 200 || len(inv.Deliberate.Errors) != 3 { // the dropped verdicts' warnings
				t.Errorf("investigate = %d %s, want the gate's verdicts with 3 warnings", status, body)
			}
		})
		wg.Go(func() {
			inv, err := uiData{tc.Console}.Investigate(context.Background(), tc.org.ID, q)
			if err != nil {
				t.Errorf("UI investigate: %v", err)
				return
			}
			for _, m := range inv.Modules {
				if m.InstanceID == id && (len(m.Data["sightings"]) == 0 || len(m.Data["verdicts"]) == 0 || len(m.Errors) != 3) {
					t.Errorf("UI investigate of the gate = %+v, want sightings, verdicts and 3 warnings", m)
				}
			}
		})
	}
	arrived.wait(t, id, opDeliberate, 3+2+2)
	arrived.wait(t, id, opObserve, 2+2)
	g.release()
	wg.Wait()
	if d, o := g.count(id, opDeliberate, obs...), g.count(id, opObserve, obs...); d != 1 || o != 1 {
		t.Errorf("module calls: %d deliberate, %d observe, want 1 each", d, o)
	}
	for i, a := range enrich {
		if a.status != 200 || a != enrich[0] || !strings.Contains(a.body, `"invalid verdict"`) {
			t.Errorf("deliberate %d = %d %s, want the same as deliberate 0 with its warning", i, a.status, a.body)
		}
	}
}

// gatedStore holds the reads of judgements until its gate opens, so that
// Private Intelligence calls of several organisations are in flight at once.
type gatedStore struct {
	records.Store
	// counting counts judgement reads from when it is set; armed holds
	// them at the gate until it opens. A read that comes after the gate
	// opened is counted too.
	counting, armed atomic.Bool
	open            chan struct{}
	mu              sync.Mutex
	reads           map[string]int // judgement reads by organisation
}

func (s *gatedStore) Entities(ctx context.Context, orgID, typ string, obs *ctim.Observable) ([]records.Entity, error) {
	if typ == ctim.TypeJudgement && s.counting.Load() {
		s.mu.Lock()
		s.reads[orgID]++
		s.mu.Unlock()
	}
	if typ == ctim.TypeJudgement && s.armed.Load() {
		select {
		case <-s.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Store.Entities(ctx, orgID, typ, obs)
}

// TestSharedCallOrganisations: Private Intelligence has the same instance
// id in every organisation, yet two organisations' identical calls never
// share: each gets its own judgements.
func TestSharedCallOrganisations(t *testing.T) {
	st, err := sqlite.OpenConsole(context.Background(), filepath.Join(t.TempDir(), "console.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gs := &gatedStore{Store: st, open: make(chan struct{}), reads: map[string]int{}}
	tc := startConsole(t, func(o *Options) { o.Store = gs })
	var once sync.Once
	openGate := func() { once.Do(func() { gs.armed.Store(false); close(gs.open) }) }
	t.Cleanup(openGate) // before the console stops
	other := tc.addOrganisation(t, "Other", "other-admin")
	obs := []map[string]string{{"type": "domain", "value": "evil.example"}}
	toks := map[string]string{}
	for org, disposition := range map[string]int{tc.org.ID: 2, other.ID: 1} {
		toks[org] = tc.token(t, org, "enrich", "private-intel")
		j := map[string]any{"observable": obs[0], "source": "analyst", "disposition": disposition,
			"priority": 90, "confidence": "High", "severity": "High"}
		if status, body, _ := tc.call(t, http.MethodPost, "/ctia/judgement", toks[org], j); status != 201 {
			t.Fatalf("POST /ctia/judgement = %d %s", status, body)
		}
	}
	arrived := watchArrivals(t)
	gs.counting.Store(true)
	gs.armed.Store(true)
	type result struct {
		status int
		env    envelopeOf[[]resultItem]
	}
	results := map[string]chan result{tc.org.ID: make(chan result, 1), other.ID: make(chan result, 1)}
	for org, ch := range results {
		go func() {
			status, body, _ := tc.call(t, http.MethodPost, "/iroh/iroh-enrich/deliberate/observables", toks[org], obs)
			ch <- result{status, decode[envelopeOf[[]resultItem]](t, body)}
		}()
	}
	arrived.wait(t, InstanceIDPrivateIntel, opDeliberate, 2)
	openGate()
	for org, want := range map[string]ctim.Disposition{tc.org.ID: ctim.Malicious, other.ID: ctim.Clean} {
		r := <-results[org]
		if r.status != 200 || len(r.env.Data) != 1 || len(r.env.Data[0].Data["verdicts"].Docs) != 1 {
			t.Errorf("deliberate of organisation %s = %d %+v, want its verdict", org, r.status, r.env)
			continue
		}
		var v ctim.Verdict
		json.Unmarshal(r.env.Data[0].Data["verdicts"].Docs[0], &v)
		if v.Disposition != want {
			t.Errorf("verdict of organisation %s = %v, want %v: its own judgement", org, v.Disposition, want)
		}
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.reads[tc.org.ID] != 1 || gs.reads[other.ID] != 1 {
		t.Errorf("judgement reads by organisation = %v, want one each", gs.reads)
	}
}
