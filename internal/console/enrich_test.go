package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/ctim"
)

func TestInspect(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "inspect")
	tests := []struct {
		name       string
		body       any
		wantStatus int
		want       string
	}{
		{"text", map[string]any{"content": "1.2.3.4 foo bar xyz.com www.xyz.com"}, 200,
			`[{"type":"ip","value":"1.2.3.4"},{"type":"domain","value":"xyz.com"},{"type":"domain","value":"www.xyz.com"}]`},
		{"nothing", map[string]any{"content": "nothing here"}, 200, `[]`},
		{"empty", map[string]any{"content": ""}, 200, `[]`},
		{"missing", map[string]any{}, 400, `{"content":"missing-required-key"}`},
		{"not a string", map[string]any{"content": 7}, 400, `{"content":"not-a-string"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := tc.call(t, http.MethodPost, "/iroh/iroh-inspect/inspect", tok, tt.body)
			if status != tt.wantStatus || strings.TrimSpace(string(body)) != tt.want {
				t.Errorf("inspect(%v) = %d %s, want %d %s", tt.body, status, body, tt.wantStatus, tt.want)
			}
		})
	}
}

type envelopeOf[T any] struct {
	Data   T             `json:"data"`
	Errors []ModuleError `json:"errors"`
}

type resultItem struct {
	ids
	Data map[string]struct {
		Count int               `json:"count"`
		Docs  []json.RawMessage `json:"docs"`
	} `json:"data"`
}

func TestEnrichFanOut(t *testing.T) {
	tc := startConsole(t, func(o *Options) { o.ModuleTimeout = 300 * time.Millisecond })
	fast := tc.addModule(t, "A fast", fakeSettings{Mode: "ok"})
	slow := tc.addModule(t, "B slow", fakeSettings{Mode: "slow"})
	stuckID := tc.addModule(t, "C stuck", fakeSettings{Mode: "stuck"})
	failing := tc.addModule(t, "D failing", fakeSettings{Mode: "fail"})
	erroring := tc.addModule(t, "E erroring", fakeSettings{Mode: "errors"})
	bad := tc.addModule(t, "F bad verdicts", fakeSettings{Mode: "badverdicts"})
	panicky := tc.addModule(t, "G panics", fakeSettings{Mode: "panic"})
	tok := tc.token(t, tc.org.ID, "enrich")
	obs := []map[string]string{{"type": "ip", "value": "203.0.113.25"}, {"type": "ip", "value": "203.0.113.25"}}

	status, body, _ := tc.call(t, http.MethodPost, "/iroh/iroh-enrich/deliberate/observables", tok, obs)
	if status != 200 {
		t.Fatalf("deliberate = %d %s", status, body)
	}
	env := decode[envelopeOf[[]resultItem]](t, body)
	got := map[string]resultItem{}
	for _, it := range env.Data {
		if it.Module == "" || it.InstanceID == "" || it.TypeID == "" {
			t.Errorf("data item %+v lacks a module id", it.ids)
		}
		got[it.InstanceID] = it
	}
	if v := got[fast].Data["verdicts"]; v.Count != 1 || len(v.Docs) != 1 {
		t.Errorf("fast module verdicts = %+v, want 1 (duplicates removed)", v)
	}
	if v := got[bad].Data["verdicts"]; v.Count != 1 || len(v.Docs) != 1 {
		t.Errorf("bad-verdict module verdicts = %+v, want the 1 good one of 4", v)
	}
	if _, ok := got[InstanceIDPrivateIntel]; !ok {
		t.Errorf("data lacks Private Intelligence: %s", body)
	}
	for _, id := range []string{slow, stuckID, failing, erroring, panicky} {
		if _, ok := got[id]; ok {
			t.Errorf("module %s is in data, want it only in errors", got[id].Module)
		}
	}
	type errKey struct{ ID, Code, Msg, Type string }
	var errs []errKey
	for _, e := range env.Errors {
		if e.Module == "" || e.TypeID == "" {
			t.Errorf("error %+v lacks module ids", e)
		}
		errs = append(errs, errKey{e.InstanceID, e.Code, e.Message, e.Type})
	}
	want := []errKey{
		{slow, "service unavailable", "module did not answer within 0.3 s", "fatal"},
		{stuckID, "service unavailable", "module did not answer within 0.3 s", "fatal"},
		{failing, "unknown", "module returned HTTP 502", "fatal"},
		{erroring, "authorization error", "Authorization failed: Wrong JWT structure", "fatal"},
		{bad, "invalid verdict", "verdict 1 dropped: no observable.value", "warning"},
		{bad, "invalid verdict", "verdict 2 dropped: disposition is not an integer 1-5", "warning"},
		{bad, "invalid verdict", "verdict 3 dropped: no valid_time object", "warning"},
		{panicky, "unknown", "module failed unexpectedly", "fatal"},
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}

	// mids restricts the fan-out.
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/observe/observables?mids="+fast, tok, obs)
	env = decode[envelopeOf[[]resultItem]](t, body)
	if status != 200 || len(env.Data) != 1 || env.Data[0].InstanceID != fast || len(env.Errors) != 0 {
		t.Errorf("observe?mids=fast = %d %s, want the fast module only", status, body)
	}
	if s := env.Data[0].Data["sightings"]; s.Count != 1 {
		t.Errorf("observe sightings = %+v, want 1", s)
	}

	// refer: a flat list with the ids merged in.
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/refer/observables?mids="+fast, tok, obs)
	refs := decode[envelopeOf[[]map[string]any]](t, body)
	if status != 200 || len(refs.Data) != 1 || refs.Data[0]["module_instance_id"] != fast || refs.Data[0]["url"] == "" ||
		refs.Data[0]["id"] != "ref-203.0.113.25" || refs.Data[0]["module"] != "A fast" {
		t.Errorf("refer = %d %s", status, body)
	}
}

func TestEnrichValidation(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "enrich")
	many := make([]map[string]string, 101)
	for i := range many {
		many[i] = map[string]string{"type": "ip", "value": "192.0.2.1"}
	}
	tests := []struct {
		name string
		body any
		want string
	}{
		{"unknown type", []map[string]string{{"type": "foo", "value": "x"}}, `observable 0: unknown type "foo"`},
		{"empty value", []map[string]string{{"type": "ip", "value": "1.2.3.4"}, {"type": "ip", "value": ""}}, `observable 1: empty value`},
		{"no type", []map[string]any{{"value": "x"}}, `observable 0: missing type`},
		{"number value", []map[string]any{{"type": "ip", "value": 1}}, `observable 0: value must be a string`},
		{"not an array", map[string]string{"type": "ip"}, `the body must be a JSON array of observables {"type": …, "value": …}`},
		{"too many", many, `101 observables: at most 100 are accepted per request`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := tc.call(t, http.MethodPost, "/iroh/iroh-enrich/observe/observables", tok, tt.body)
			m := decode[map[string]any](t, body)
			if status != 400 || m["error"] != "invalid_request" || m["error_description"] != tt.want {
				t.Errorf("observe(%s) = %d %s, want 400 %q", tt.name, status, body, tt.want)
			}
		})
	}
}

func TestHealthAndResponse(t *testing.T) {
	tc := startConsole(t, nil)
	ok := tc.addModule(t, "gw ok", fakeSettings{Mode: "ok"})
	broken := tc.addModule(t, "gw broken", fakeSettings{Mode: "errors"})
	tok := tc.token(t, tc.org.ID, "enrich", "response")

	status, body, _ := tc.call(t, http.MethodPost, "/iroh/iroh-enrich/health", tok, nil)
	health := decode[envelopeOf[[]healthItem]](t, body)
	statuses := map[string]string{}
	for _, h := range health.Data {
		statuses[h.InstanceID] = h.Data.Status
	}
	if status != 200 || statuses[ok] != "ok" || statuses[broken] != "error" || statuses[InstanceIDPrivateIntel] != "ok" || len(health.Errors) != 1 {
		t.Errorf("health = %d %s", status, body)
	}
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/health/"+ok, tok, nil)
	if one := decode[envelopeOf[healthItem]](t, body); status != 200 || one.Data.InstanceID != ok || one.Data.Data.Status != "ok" {
		t.Errorf("health/%s = %d %s", ok, status, body)
	}
	if status, _, _ := tc.call(t, http.MethodPost, "/iroh/iroh-enrich/health/nope", tok, nil); status != 404 {
		t.Errorf("health/nope = %d, want 404", status)
	}

	obs := []map[string]string{{"type": "ip", "value": "203.0.113.25"}}
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-response/respond/observables?mids="+ok, tok, obs)
	actions := decode[envelopeOf[[]actionItem]](t, body)
	if status != 200 || len(actions.Data) != 1 {
		t.Fatalf("respond/observables = %d %s, want one action", status, body)
	}
	a := actions.Data[0]
	wantURL := "/iroh-response/respond/trigger/" + ok + "/block-ip?list=blocklist&observable_type=ip&observable_value=203.0.113.25"
	if a.URL != wantURL || a.InstanceID != ok || a.Module != "gw ok" || a.TypeID != fakeTypeID {
		t.Errorf("action = %+v, want url %s and the module ids", a, wantURL)
	}

	// Trigger as the Python client does: no body, no Content-Type.
	req, _ := http.NewRequest(http.MethodPost, tc.url+"/iroh"+a.URL, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	status, body, _ = do(t, req)
	res := decode[envelopeOf[TriggerResult]](t, body)
	if status != 200 || res.Data.Status != "success" || len(res.Errors) != 0 {
		t.Errorf("trigger = %d %s, want success", status, body)
	}
	triggered.Lock()
	last := triggered.calls[len(triggered.calls)-1]
	triggered.Unlock()
	if diff := cmp.Diff(map[string]string{"action-id": "block-ip", "list": "blocklist", "observable_type": "ip",
		"observable_value": "203.0.113.25"}, last); diff != "" {
		t.Errorf("trigger params mismatch (-want +got):\n%s", diff)
	}
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-response/respond/trigger/"+broken+"/block-ip?observable_type=ip&observable_value=1.2.3.4", tok, nil)
	if res := decode[envelopeOf[TriggerResult]](t, body); status != 200 || res.Data.Status != "failure" || len(res.Errors) != 1 {
		t.Errorf("trigger on a failing module = %d %s, want failure", status, body)
	}
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-response/respond/trigger/"+url.PathEscape("a/b")+"/x", tok, nil)
	if status != 404 || !strings.Contains(string(body), "There is no module instance a/b") {
		t.Errorf("trigger on an unknown instance = %d %s, want 404 naming a/b", status, body)
	}
}

// TestPrivateIntelligence stores judgements and reads them back through
// deliberate, observe and the CTIA verdict.
func TestPrivateIntelligence(t *testing.T) {
	tc := startConsole(t, nil)
	tok := tc.token(t, tc.org.ID, "enrich", "private-intel")
	j := map[string]any{"observable": map[string]string{"type": "domain", "value": "Evil.Example"}, "source": "analyst",
		"disposition": 2, "priority": 90, "confidence": "High", "severity": "High"}
	status, body, hdr := tc.call(t, http.MethodPost, "/ctia/judgement", tok, j)
	if status != 201 {
		t.Fatalf("POST /ctia/judgement = %d %s", status, body)
	}
	stored := decode[ctim.Judgement](t, body)
	if hdr.Get("Location") != stored.ID || stored.Observable.Value != "evil.example" || stored.DispositionName != "Malicious" {
		t.Errorf("stored judgement = %s (Location %s)", body, hdr.Get("Location"))
	}
	obs := []map[string]string{{"type": "domain", "value": "evil.example"}}
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/deliberate/observables", tok, obs)
	env := decode[envelopeOf[[]resultItem]](t, body)
	if status != 200 || len(env.Data) != 1 || env.Data[0].InstanceID != InstanceIDPrivateIntel || env.Data[0].Module != PrivateIntelName {
		t.Fatalf("deliberate = %d %s", status, body)
	}
	var v ctim.Verdict
	json.Unmarshal(env.Data[0].Data["verdicts"].Docs[0], &v)
	if v.Disposition != ctim.Malicious || v.JudgementID != stored.ID {
		t.Errorf("verdict = %+v, want Malicious from %s", v, stored.ID)
	}
	status, body, _ = tc.call(t, http.MethodPost, "/iroh/iroh-enrich/observe/observables", tok, obs)
	if env := decode[envelopeOf[[]resultItem]](t, body); status != 200 || env.Data[0].Data["judgements"].Count != 1 {
		t.Errorf("observe = %d %s, want the judgement", status, body)
	}
}
