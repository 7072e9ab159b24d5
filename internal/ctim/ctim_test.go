package ctim

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/observable"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// validator is what every entity type implements.
type validator interface{ Validate() error }

// TestGolden decodes each example of ctim.md (testdata/*.json) with the
// closed schema, validates it, re-encodes it, and checks that nothing was
// lost or added and that the encoding matches testdata/*.golden.
func TestGolden(t *testing.T) {
	tests := []struct {
		name    string
		new     func() validator
		wantErr string // for examples that are POST bodies, not full entities
	}{
		{"gateway_sighting", func() validator { return new(Sighting) }, ""},
		{"stored_sighting", func() validator { return new(Sighting) }, ""},
		{"judgement", func() validator { return new(Judgement) }, ""},
		{"verdict", func() validator { return new(Verdict) }, ""},
		{"indicator", func() validator { return new(Indicator) }, ""},
		{"incident", func() validator { return new(Incident) }, ""},
		{"casebook_post", func() validator { return new(Casebook) }, "invalid casebook: id: missing-required-key; schema_version: missing-required-key"},
		{"casebook_stored", func() validator { return new(Casebook) }, ""},
		{"relationship", func() validator { return new(Relationship) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tt.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			v := tt.new()
			if err := Decode(in, v); err != nil {
				t.Fatalf("Decode(%s) error: %v", tt.name, err)
			}
			err = v.Validate()
			if got := errString(err); got != tt.wantErr {
				t.Errorf("Validate(%s) = %q, want %q", tt.name, got, tt.wantErr)
			}
			out, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(decodeAny(t, in), decodeAny(t, out)); diff != "" {
				t.Errorf("%s does not round-trip (-in +out):\n%s", tt.name, diff)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, append(out, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(out)+"\n"); diff != "" {
				t.Errorf("%s encoding differs from %s (-want +got):\n%s", tt.name, golden, diff)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func mustTime(t *testing.T, s string) Time {
	t.Helper()
	tm, err := ParseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestGatewaySightingFromGo builds ctim.md §14's sighting the way the
// gateway module will, and checks it encodes to the spec's JSON.
func TestGatewaySightingFromGo(t *testing.T) {
	mid := Observable{Type: "cisco_mid", Value: "315"}
	contains := func(typ, v string) ObservedRelation {
		return ObservedRelation{Origin: "Sightline Gateway", Relation: RelationContains, Source: mid, Related: Observable{Type: observable.Type(typ), Value: v}}
	}
	s := Sighting{
		Base: Base{
			ID: "transient:sighting-4c2f6a1e-8b3d-4e5f-9a7c-1d2e3f4a5b6c", Type: TypeSighting, SchemaVersion: SchemaVersion,
			ExternalIDs: []string{"sightline-mid:EC2CD1D95C273722A23A-CA0C47E74D1B:315"},
		},
		Describable: Describable{
			Title:            "Incoming message (Delivered)",
			Description:      "Incoming message (Delivered)",
			ShortDescription: "MID 315 from alice@sender.example to bob@corp.example: Invoice 4471",
		},
		Sourcable:  Sourcable{Source: "Sightline Gateway"},
		Confidence: ConfidenceHigh, Severity: SeverityLow, Resolution: ResolutionAllowed, Count: 1, Internal: true,
		Sensor: SensorEmailService,
		SensorCoordinates: &SensorCoordinates{Type: SensorEmailService,
			Observables: []Observable{{Type: "hostname", Value: "gw1.example.com"}}},
		ObservedTime: ObservedTime{StartTime: mustTime(t, "2026-01-10T08:00:12.000Z"), EndTime: mustTime(t, "2026-01-10T08:00:14.000Z")},
		Observables:  []Observable{{Type: "email", Value: "alice@sender.example"}},
		Targets: []IdentitySpecification{{Type: "email", Observables: []Observable{{Type: "email", Value: "bob@corp.example"}},
			ObservedTime: ObservedTime{StartTime: mustTime(t, "2026-01-10T08:00:14Z"), EndTime: mustTime(t, "2026-01-10T08:00:14Z")}}},
		Relations: []ObservedRelation{
			{Origin: "Sightline Gateway", Relation: RelationSentBy, Source: mid, Related: Observable{Type: "email", Value: "alice@sender.example"}},
			{Origin: "Sightline Gateway", Relation: RelationSentTo, Source: mid, Related: Observable{Type: "email", Value: "bob@corp.example"}},
			{Origin: "Sightline Gateway", Relation: RelationReceivedFrom, Source: mid, Related: Observable{Type: "ip", Value: "203.0.113.25"}},
			contains("email_subject", "Invoice 4471"),
			contains("email_messageid", "20260110080012.4471@sender.example"),
			contains("file_name", "invoice.pdf"),
			contains("sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
		},
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	out, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("testdata/gateway_sighting.json")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(decodeAny(t, spec), decodeAny(t, out)); diff != "" {
		t.Errorf("sighting differs from ctim.md §14 (-spec +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	start := mustTime(t, "2026-01-10T08:00:12.000Z")
	sighting := func() *Sighting {
		return &Sighting{Base: NewBase(TypeSighting), Count: 1, Confidence: ConfidenceHigh, ObservedTime: ObservedTime{StartTime: start}}
	}
	judgement := func() *Judgement {
		return &Judgement{Base: NewBase(TypeJudgement), Observable: Observable{Type: "ip", Value: "203.0.113.25"},
			Source: "Sightline", Disposition: Malicious, DispositionName: "Malicious", Priority: 90,
			Confidence: ConfidenceHigh, Severity: SeverityHigh, ValidTime: ValidTime{StartTime: start, EndTime: Time{MaxTime}}}
	}
	tests := []struct {
		name string
		v    validator
		want string
	}{
		{"sighting ok", sighting(), ""},
		{"sighting empty", &Sighting{}, "invalid sighting: id: missing-required-key; type: missing-required-key; " +
			"schema_version: missing-required-key; confidence: missing-required-key; observed_time.start_time: missing-required-key"},
		{"sighting fields", func() validator {
			s := sighting()
			s.Type, s.SchemaVersion, s.ID = "judgement", "1.3", "sighting-123"
			s.Count, s.Confidence, s.Severity, s.TLP = -1, "high", "Severe", "blue"
			s.Title = strings.Repeat("x", ShortLen+1)
			s.ObservedTime.EndTime = mustTime(t, "2026-01-10T08:00:00.000Z")
			s.Observables = []Observable{{Type: "emial", Value: "a@b"}, {Type: "ip"}}
			s.Relations = []ObservedRelation{{Relation: "Sent_By", Source: Observable{Type: "cisco_mid", Value: "1"}}}
			s.Targets = []IdentitySpecification{{Type: "email"}}
			return s
		}(), "invalid sighting: id: invalid id \"sighting-123\": want <type>-<uuid>, transient:… or a long id; " +
			"type: must be \"sighting\", not \"judgement\"; schema_version: \"1.3\" is not a version N.N.N; " +
			"tlp: \"blue\" is not one of red, amber, green, white; title: longer than 1024 characters (1025); count: must be ≥ 0; " +
			"confidence: \"high\" is not one of Info, Low, Medium, High, None, Unknown; " +
			"observed_time: end_time 2026-01-10T08:00:00.000Z is before start_time 2026-01-10T08:00:12.000Z; " +
			"severity: \"Severe\" is not one of Info, Low, Medium, High, Critical, None, Unknown; " +
			"observables[0].type: unknown observable type \"emial\"; observables[1].value: missing-required-key; " +
			"relations[0].origin: missing-required-key; relations[0].related.type: missing-required-key; " +
			"relations[0].related.value: missing-required-key; targets[0].observables: missing-required-key; " +
			"targets[0].observed_time.start_time: missing-required-key"},
		{"sighting time range", func() validator {
			s := sighting()
			s.ObservedTime.StartTime = NewTime(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC))
			s.Timestamp = NewTime(time.Date(2525, 1, 1, 0, 0, 0, 1e6, time.UTC))
			return s
		}(), "invalid sighting: timestamp: 2525-01-01T00:00:00.001Z is outside 1970-01-01T00:00:00.000Z … 2525-01-01T00:00:00.000Z; " +
			"observed_time.start_time: 1969-12-31T00:00:00.000Z is outside 1970-01-01T00:00:00.000Z … 2525-01-01T00:00:00.000Z"},
		{"judgement ok", judgement(), ""},
		{"judgement disposition mismatch", func() validator {
			j := judgement()
			j.DispositionName = "Clean"
			j.Priority = 101
			return j
		}(), "invalid judgement: disposition_name: \"Clean\" does not match disposition 2 (Malicious); priority: 101 is outside 0-100"},
		{"judgement missing", &Judgement{Base: NewBase(TypeJudgement)}, "invalid judgement: observable.type: missing-required-key; " +
			"observable.value: missing-required-key; source: missing-required-key; disposition: missing-required-key; " +
			"confidence: missing-required-key; severity: missing-required-key"},
		{"verdict", &Verdict{Type: "verdict", Disposition: 7, Observable: Observable{Type: "ip", Value: "1.2.3.4"}},
			"invalid verdict: disposition: 7 is outside 1-5"},
		{"verdict without name is fine", &Verdict{Type: "verdict", Disposition: 1, Observable: Observable{Type: "ip", Value: "1.2.3.4"}}, ""},
		{"indicator", &Indicator{Base: NewBase(TypeIndicator), IndicatorType: []string{"IP Watchlist", "Evil"}},
			"invalid indicator: producer: missing-required-key; indicator_type[1]: \"Evil\" is not one of Malicious E-mail, IP Watchlist, " +
				"File Hash Watchlist, Domain Watchlist, URL Watchlist, Malware Artifacts, C2, Anonymization, Exfiltration, " +
				"Host Characteristics, Compromised PKI Certificate, Login Name, IMEI Watchlist, IMSI Watchlist"},
		{"incident", &Incident{Base: NewBase(TypeIncident), Confidence: ConfidenceHigh, Status: "Open: Pending",
			Scores: map[string]float64{"ttp": -1}, Meta: map[string]any{"k": []any{1}}},
			"invalid incident: status: \"Open: Pending\" is not an incident status; incident_time.opened: missing-required-key; " +
				"scores.ttp: must be ≥ 0; meta.k: must be a string, number or boolean"},
		{"casebook", &Casebook{Base: NewBase(TypeCasebook), Texts: []CasebookText{{Type: "note"}},
			Bundle: &Bundle{Base: NewBase(TypeBundle), Source: "x", SightingRefs: []string{"bad"}, Sightings: []Sighting{{Base: NewBase(TypeSighting)}}}},
			"invalid casebook: texts[0].text: missing-required-key; bundle.sightings[0].confidence: missing-required-key; " +
				"bundle.sightings[0].observed_time.start_time: missing-required-key; " +
				"bundle.sighting_refs[0]: invalid id \"bad\": want <type>-<uuid>, transient:… or a long id"},
		{"relationship", &Relationship{Base: NewBase(TypeRelationship), RelationshipType: "member-of", SourceRef: "transient:x"},
			"invalid relationship: target_ref: missing-required-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Validate()
			if got := errString(err); got != tt.want {
				t.Errorf("Validate() =\n%q\nwant\n%q", got, tt.want)
			}
			if err != nil && sightline.ErrorKind(err) != sightline.Invalid {
				t.Errorf("ErrorKind(Validate()) = %q, want %q", sightline.ErrorKind(err), sightline.Invalid)
			}
		})
	}
}

func TestValidationErrorMap(t *testing.T) {
	err := (&Sighting{Base: NewBase(TypeSighting), Confidence: ConfidenceHigh}).Validate()
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("Validate() = %T, want *ValidationError", err)
	}
	want := map[string]string{"observed_time.start_time": MissingRequiredKey}
	if diff := cmp.Diff(want, ve.Map()); diff != "" {
		t.Errorf("Map() mismatch (-want +got):\n%s", diff)
	}
	if got := sightline.ErrorMessage(err); got != "invalid sighting: observed_time.start_time: missing-required-key" {
		t.Errorf("ErrorMessage(Validate()) = %q", got)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"ok", `{"observed_time":{"start_time":"2026-01-10T08:00:12Z"},"count":1,"relations":[{"relation_info":{"any":"thing"}}]}`, ""},
		{"unknown keys at every depth", `{"foo":1,"observed_time":{"start_time":"2026-01-10T08:00:12Z","when":2},` +
			`"targets":[{"type":"email","observables":[{"type":"email","value":"a@b","note":"x"}]}]}`,
			"invalid sighting: foo: disallowed-key; observed_time.when: disallowed-key; targets[0].observables[0].note: disallowed-key"},
		{"wrong JSON type", `{"count":"one"}`, "invalid sighting: count: must be an integer, not string"},
		{"bad time", `{"observed_time":{"start_time":"yesterday"}}`,
			"invalid sighting: invalid time \"yesterday\": want ISO-8601 such as 2026-01-10T08:00:12.000Z"},
		{"malformed", `{"count":`, "invalid sighting: malformed JSON: unexpected EOF"},
		{"trailing data", `{} {}`, "invalid sighting: data after the JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sighting
			err := Decode([]byte(tt.in), &s)
			if got := errString(err); !strings.HasPrefix(got, tt.want) || (tt.want == "") != (got == "") {
				t.Errorf("Decode(%s) = %q, want %q", tt.in, got, tt.want)
			}
			if err != nil && sightline.ErrorKind(err) != sightline.Invalid {
				t.Errorf("ErrorKind(Decode(%s)) = %q, want %q", tt.in, sightline.ErrorKind(err), sightline.Invalid)
			}
		})
	}
}

func TestTime(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"2016-02-11T00:40:48.212Z", `"2016-02-11T00:40:48.212Z"`},
		{"2016-02-11T00:40:48Z", `"2016-02-11T00:40:48.000Z"`},
		{"2016-02-11T01:40:48.2129+01:00", `"2016-02-11T00:40:48.212Z"`},
	}
	for _, tt := range tests {
		var tm Time
		if err := json.Unmarshal([]byte(`"`+tt.in+`"`), &tm); err != nil {
			t.Fatalf("Unmarshal(%q) error: %v", tt.in, err)
		}
		out, err := json.Marshal(tm)
		if err != nil || string(out) != tt.want {
			t.Errorf("Marshal(Unmarshal(%q)) = %s, %v; want %s", tt.in, out, err, tt.want)
		}
	}
	out, _ := json.Marshal(ValidTime{})
	if string(out) != "{}" {
		t.Errorf("Marshal(ValidTime{}) = %s, want {}", out)
	}
	if out, _ := json.Marshal(ObservedTime{}); string(out) != `{"start_time":null}` {
		t.Errorf(`Marshal(ObservedTime{}) = %s, want {"start_time":null}`, out)
	}
	local := Time{time.Date(2026, 1, 10, 9, 0, 12, 345678901, time.FixedZone("CET", 3600))}
	if out, _ := json.Marshal(local); string(out) != `"2026-01-10T08:00:12.345Z"` {
		t.Errorf(`Marshal(%v) = %s, want "2026-01-10T08:00:12.345Z"`, local, out)
	}
}

func TestParseID(t *testing.T) {
	const u = "0b1c5e8e-6a4f-4f1f-9d0e-3c1f2a7b9d10"
	tests := []struct {
		in      string
		want    ID
		wantErr string
	}{
		{"https://console.example.com:443/ctia/sighting/sighting-" + u, ID{LongID, "https://console.example.com:443", "sighting", "sighting-" + u}, ""},
		{"http://localhost:8080/intel/ctia/attack-pattern/attack-pattern-" + u, ID{LongID, "http://localhost:8080/intel", "attack-pattern", "attack-pattern-" + u}, ""},
		{"sighting-" + u, ID{ShortID, "", "sighting", "sighting-" + u}, ""},
		{"transient:sighting-" + u, ID{TransientID, "", "sighting", "sighting-" + u}, ""},
		{"transient:3c9a", ID{TransientID, "", "", "3c9a"}, ""},
		{"transient:", ID{}, `invalid id "transient:": nothing after transient:`},
		{"sighting-" + strings.ToUpper(u), ID{}, "want <type>-<uuid>"},
		{"s-" + u, ID{}, "want <type>-<uuid>"},
		{"https://console.example.com/ctia/judgement/sighting-" + u, ID{}, "want http(s)://host[:port][/prefix]/ctia/<type>/<type>-<uuid>"},
		{"https://console.example.com/sighting-" + u, ID{}, "a URL without /ctia/"},
		{strings.Repeat("a", 2049), ID{}, "longer than 2048 bytes"},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseID(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseID(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("ParseID(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestNewIDs(t *testing.T) {
	tr := NewTransientID(TypeSighting)
	id, err := ParseID(tr)
	if err != nil || id.Kind != TransientID || id.Type != TypeSighting {
		t.Errorf("ParseID(NewTransientID(sighting)) = %+v, %v", id, err)
	}
	if NewTransientID(TypeSighting) == tr {
		t.Error("NewTransientID returned the same id twice")
	}
	short := "sighting-0b1c5e8e-6a4f-4f1f-9d0e-3c1f2a7b9d10"
	tests := []struct {
		base, want, wantErr string
	}{
		{"https://console.example.com", "https://console.example.com:443/ctia/sighting/" + short, ""},
		{"https://console.example.com/", "https://console.example.com:443/ctia/sighting/" + short, ""},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/ctia/sighting/" + short, ""},
		{"http://[::1]/intel", "http://[::1]:80/intel/ctia/sighting/" + short, ""},
		{"console.example.com", "", `invalid base URL "console.example.com"`},
	}
	for _, tt := range tests {
		got, err := NewLongID(tt.base, short)
		if got != tt.want || !strings.HasPrefix(errString(err), tt.wantErr) || (err == nil) != (tt.wantErr == "") {
			t.Errorf("NewLongID(%q, %q) = %q, %v; want %q, %q", tt.base, short, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := NewLongID("https://x", "nope"); err == nil {
		t.Error(`NewLongID("https://x", "nope") succeeded, want error`)
	}
}

func TestDisposition(t *testing.T) {
	for d := Clean; d <= Unknown; d++ {
		if got, ok := DispositionByName(d.Name()); !ok || got != d {
			t.Errorf("DispositionByName(%q) = %d, %v; want %d", d.Name(), got, ok, d)
		}
	}
	tests := []struct {
		d        Disposition
		name     string
		wantD    Disposition
		wantName string
		wantErr  string
	}{
		{0, "", Unknown, "Unknown", ""},
		{2, "", Malicious, "Malicious", ""},
		{0, "Suspicious", Suspicious, "Suspicious", ""},
		{1, "Clean", Clean, "Clean", ""},
		{1, "Malicious", 0, "", `invalid judgement: disposition_name: "Malicious" does not match disposition 1 (Clean)`},
		{9, "", 0, "", "invalid judgement: disposition: 9 is outside 1-5"},
		{0, "clean", 0, "", `invalid judgement: disposition_name: "clean" is not one of Clean, Malicious, Suspicious, Common, Unknown`},
	}
	for _, tt := range tests {
		d, name, err := ResolveDisposition(tt.d, tt.name)
		if d != tt.wantD || name != tt.wantName || errString(err) != tt.wantErr {
			t.Errorf("ResolveDisposition(%d, %q) = %d, %q, %v; want %d, %q, %q", tt.d, tt.name, d, name, err, tt.wantD, tt.wantName, tt.wantErr)
		}
	}
}

func TestComputeVerdict(t *testing.T) {
	at := func(s string) Time { return mustTime(t, s) }
	ip := Observable{Type: "ip", Value: "10.0.0.1"}
	j := func(id string, prio int, d Disposition, start, end string) Judgement {
		vt := ValidTime{StartTime: at(start)}
		if end != "" {
			vt.EndTime = at(end)
		}
		return Judgement{Base: Base{ID: "transient:" + id}, Observable: ip, Priority: prio, Disposition: d, ValidTime: vt}
	}
	now := at("2026-01-10T12:00:00Z")
	tests := []struct {
		name string
		js   []Judgement
		want string // judgement id, "" for none
	}{
		{"none", nil, ""},
		{"expired and future ignored", []Judgement{
			j("old", 100, Malicious, "2026-01-01T00:00:00Z", "2026-01-10T12:00:00Z"),
			j("future", 100, Malicious, "2026-01-11T00:00:00Z", ""),
		}, ""},
		{"priority wins", []Judgement{j("low", 90, Malicious, "2026-01-01T00:00:00Z", ""), j("human", 100, Clean, "2026-01-02T00:00:00Z", "")}, "human"},
		{"then lower disposition", []Judgement{j("susp", 90, Suspicious, "2026-01-01T00:00:00Z", ""), j("mal", 90, Malicious, "2026-01-02T00:00:00Z", "")}, "mal"},
		{"then earlier start", []Judgement{j("later", 90, Malicious, "2026-01-02T00:00:00Z", ""), j("earlier", 90, Malicious, "2026-01-01T00:00:00Z", "")}, "earlier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := ComputeVerdict(tt.js, now)
			if got := strings.TrimPrefix(v.JudgementID, "transient:"); got != tt.want || ok != (tt.want != "") {
				t.Fatalf("ComputeVerdict() = %q, %v; want %q", got, ok, tt.want)
			}
			if ok {
				if err := v.Validate(); err != nil {
					t.Errorf("ComputeVerdict() = %+v, invalid: %v", v, err)
				}
			}
		})
	}
}

func TestVocabularies(t *testing.T) {
	if n := len(IncidentStatuses()); n != 25 {
		t.Errorf("len(IncidentStatuses()) = %d, want 25", n)
	}
	if f := IncidentStatus("Open: Contained").Family(); f != "Open" {
		t.Errorf("Family() = %q, want Open", f)
	}
	for _, s := range []Sensor{"process.email-service", "network.security_manager", "endpoint"} {
		if !s.Known() {
			t.Errorf("Sensor(%q).Known() = false", s)
		}
	}
	if Sensor("email").Known() || !RelationshipType("sighting-of").Known() || RelationshipType("Sent_By").Known() {
		t.Error("Known() disagrees with ctim.md §3")
	}
	if !ResolutionAllowed.Known() || Resolution("quarantined").Known() || !TLPAmber.Valid() || TLP("Amber").Valid() {
		t.Error("vocabulary check disagrees with ctim.md §3")
	}
}

// FuzzDecode checks that Decode never panics on untrusted JSON and that a
// decoded, valid sighting survives a re-encoding unchanged.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"gateway_sighting", "stored_sighting"} {
		b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"count":1,"targets":[{"observables":[{"note":1}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Sighting
		if Decode(b, &s) != nil || s.Validate() != nil {
			return
		}
		out, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("Marshal(decoded %s) error: %v", b, err)
		}
		var again Sighting
		if err := Decode(out, &again); err != nil {
			t.Fatalf("Decode(Marshal(%s)) error: %v", b, err)
		}
		out2, _ := json.Marshal(&again)
		if !bytes.Equal(out, out2) {
			t.Errorf("re-encoding changed:\n%s\n%s", out, out2)
		}
	})
}
