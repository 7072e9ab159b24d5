package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// marshalled returns v as json.Marshal writes it.
func marshalled(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendEnvelopeMatchesMarshal(t *testing.T) {
	esa := ids{"Email Security Appliance", "0b7d9b5e-4f0e-4a55-9a62-6b0b0d1f2a11", "esa-type"}
	relay := ids{`Relay "<one>" & co`, "inst-2", "type\u2028id"}
	sightings := marshalled(t, map[string]any{"count": 2, "docs": []map[string]any{
		{"title": "Incoming message (Delivered)", "description": "<b>Invoice</b> & more\u2028\u2029", "count": 1},
		{"title": "tab\there \"quoted\" back\\slash …", "observed_time": map[string]string{"start_time": "2026-11-27T12:00:00.000Z"}},
	}})
	errs := []ModuleError{{ids: esa, Code: "unknown", Message: "MID 3 <left out>", Type: "warning"}}
	tests := []struct {
		name    string
		results []ModuleResult
		errs    []ModuleError
	}{
		{"nil data, nil errors", nil, nil},
		{"no module", []ModuleResult{}, []ModuleError{}},
		{"empty data", []ModuleResult{{ids: esa, Data: module.Data{}}}, []ModuleError{}},
		{"nil data map", []ModuleResult{{ids: esa}}, errs},
		{"marshalled sightings", []ModuleResult{{ids: esa, Data: module.Data{"sightings": sightings}}}, errs},
		{"from a CompactJSON module", []ModuleResult{{ids: esa, Data: module.Data{"sightings": sightings, "none": nil}, compact: true}}, errs},
		{"keys sorted and escaped", []ModuleResult{{ids: relay, Data: module.Data{
			"verdicts": json.RawMessage(`{"count":0,"docs":[]}`), "a<b": json.RawMessage(`1`), "é": json.RawMessage(`"x"`),
			"judgements": nil, "sightings": sightings}}}, nil},
		{"relay data as sent", []ModuleResult{
			{ids: esa, Data: module.Data{"sightings": sightings}},
			{ids: relay, Data: module.Data{
				"sightings":  json.RawMessage("{ \"count\" : 1,\n\t\"docs\": [ {\"title\": \"a b\"} ] }\r\n"),
				"judgements": json.RawMessage(`{"docs":[{"reason":"<script>&amp;"}],"count":1}`),
				"verdicts":   json.RawMessage("{\"docs\":[{\"t\":\"line\u2028sep\u2029\"}],\"count\":1}"),
				"indicators": json.RawMessage(`{"docs":[{"t":"\"<\\\\"}],"count":1}`),
			}},
		}, errs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := marshalled(t, Envelope{Data: tt.results, Errors: tt.errs})
			got, err := appendEnvelope(nil, tt.results, tt.errs)
			if err != nil {
				t.Fatalf("appendEnvelope: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("appendEnvelope =\n%s\nwant (json.Marshal)\n%s", got, want)
			}
		})
	}
}

func TestAppendEnvelopeRejectsInvalidData(t *testing.T) {
	results := []ModuleResult{{Data: module.Data{"sightings": json.RawMessage(`{"count": 1, "docs": [`)}}}
	if _, err := json.Marshal(Envelope{Data: results}); err == nil {
		t.Fatal("json.Marshal accepted invalid data")
	}
	if b, err := appendEnvelope(nil, results, nil); err == nil {
		t.Errorf("appendEnvelope(invalid data) = %s, want an error", b)
	}
}

func TestIsCompact(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{``, false},
		{`{}`, true},
		{`{"a":"b c","d":[1,2,{"e":null}]}`, true},
		{`{"a": 1}`, false},
		{"{\"a\":1}\n", false},
		{"[1,\t2]", false},
		{`"a\"b c"`, true},
		{`"a\\" ,1`, false},
		{`"x<y"`, false},
		{`"x\u003cy"`, true},
		{`"a&b"`, false},
		{"\"…\"", true},
		{"\"\u2028\"", false},
		{"\"\u2029\"", false},
		{`"unterminated`, false},
	}
	for _, tt := range tests {
		if got := isCompact([]byte(tt.in)); got != tt.want {
			t.Errorf("isCompact(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// FuzzIsCompact checks isCompact against encoding/json: for valid JSON it
// is true only when json.Marshal would write the value unchanged.
func FuzzIsCompact(f *testing.F) {
	for _, s := range []string{`{"a":"b c"}`, `{ "a":1 }`, `"<&>"`, "\"\u2028\"", `"\\\""`, `[1, "x" ,2]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if !json.Valid(v) || !isCompact(v) {
			return
		}
		if got := marshalled(t, json.RawMessage(v)); !bytes.Equal(got, v) {
			t.Errorf("isCompact(%q) = true, but json.Marshal writes %q", v, got)
		}
	})
}

func TestWriteEnvelope(t *testing.T) {
	results := []ModuleResult{{ids: ids{"m", "i", "t"}, Data: module.Data{"sightings": json.RawMessage(`{"count":0, "docs":[]}`)}}}
	refs := []referenceItem{{Reference: module.Reference{ID: "r", Title: "T", URL: "https://x.example/<a>"}, ids: ids{"m", "i", "t"}}}
	tests := []struct {
		name string
		env  Envelope
	}{
		{"observe", Envelope{Data: results, Errors: []ModuleError{}}},
		{"refer", Envelope{Data: refs, Errors: []ModuleError{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := httptest.NewRecorder()
			writeJSON(want, http.StatusOK, tt.env)
			got := httptest.NewRecorder()
			writeEnvelope(got, http.StatusOK, tt.env)
			if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Errorf("writeEnvelope = %d %s, want %d %s", got.Code, got.Body, want.Code, want.Body)
			}
			for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control", "X-Content-Type-Options"} {
				if g, w := got.Header().Get(h), want.Header().Get(h); g != w {
					t.Errorf("writeEnvelope: %s = %q, want %q", h, g, w)
				}
			}
		})
	}
}

// benchSightings returns n sightings shaped as the ESA module writes them.
func benchSightings(tb testing.TB, n int) json.RawMessage {
	tb.Helper()
	at := ctim.NewTime(time.Date(2026, 11, 20, 8, 0, 12, 0, time.UTC))
	o := func(t observable.Type, v string) ctim.Observable { return ctim.Observable{Type: t, Value: v} }
	docs := make([]*ctim.Sighting, n)
	for i := range docs {
		mid := o(observable.CiscoMID, strconv.Itoa(4000+i))
		rel := func(r string, x ctim.Observable) ctim.ObservedRelation {
			return ctim.ObservedRelation{Origin: "Sightline Gateway", Relation: r, Source: mid, Related: x}
		}
		rcpt := o(observable.Email, "bob"+strconv.Itoa(i)+"@corp.example")
		docs[i] = &ctim.Sighting{
			Base:        ctim.NewBase(ctim.TypeSighting),
			Describable: ctim.Describable{Title: "Incoming message (Delivered)", Description: "Incoming message (Delivered)", ShortDescription: "MID 4000 from alice@sender.example to bob@corp.example: Invoice Due"},
			Sourcable:   ctim.Sourcable{Source: "Sightline Gateway"}, Count: 1, Confidence: ctim.ConfidenceHigh,
			Severity: ctim.SeverityLow, Resolution: ctim.ResolutionAllowed, Internal: true, Sensor: ctim.SensorEmailService,
			ObservedTime: ctim.ObservedTime{StartTime: at, EndTime: at},
			Observables:  []ctim.Observable{o(observable.EmailSubject, "Invoice Due")},
			Targets:      []ctim.IdentitySpecification{{Type: "email", Observables: []ctim.Observable{rcpt}, ObservedTime: ctim.ObservedTime{StartTime: at, EndTime: at}}},
			Relations: []ctim.ObservedRelation{rel("Sent_By", o(observable.Email, "alice@sender.example")), rel("Sent_To", rcpt),
				rel("Received_From", o(observable.IP, "192.0.2.77")), rel("Contains", o(observable.EmailSubject, "Invoice Due")),
				rel("Contains", o(observable.EmailMessageID, "<4000.1@sender.example>")), rel("Contains", o(observable.URL, "https://pay.example/invoice?id=4000&x=1"))},
		}
		docs[i].ExternalIDs = []string{"sightline-mid:4C4C4544-0031:" + strconv.Itoa(4000+i)}
	}
	return marshalled(tb, map[string]any{"count": n, "docs": docs})
}

func BenchmarkAppendEnvelope(b *testing.B) {
	results := []ModuleResult{{ids: ids{"Email Security Appliance", "0b7d9b5e-4f0e-4a55-9a62-6b0b0d1f2a11", "esa-type"},
		Data: module.Data{"sightings": benchSightings(b, 50)}}}
	b.Run("appendEnvelope compact", func(b *testing.B) {
		results := []ModuleResult{{ids: results[0].ids, Data: results[0].Data, compact: true}}
		b.SetBytes(int64(len(results[0].Data["sightings"])))
		for b.Loop() {
			if _, err := appendEnvelope(nil, results, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendEnvelope", func(b *testing.B) {
		b.SetBytes(int64(len(results[0].Data["sightings"])))
		for b.Loop() {
			if _, err := appendEnvelope(nil, results, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.SetBytes(int64(len(results[0].Data["sightings"])))
		for b.Loop() {
			if _, err := json.Marshal(Envelope{Data: results}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
