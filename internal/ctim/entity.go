package ctim

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Entity types (the "type" field).
const (
	TypeSighting     = "sighting"
	TypeJudgement    = "judgement"
	TypeVerdict      = "verdict"
	TypeIndicator    = "indicator"
	TypeIncident     = "incident"
	TypeCasebook     = "casebook"
	TypeRelationship = "relationship"
	TypeBundle       = "bundle"
)

// Base holds the fields of every entity but Verdict. ID, Type and
// SchemaVersion are required (Validate says so) but omitted from JSON when
// empty, so that POST bodies, which lack them, round-trip.
type Base struct {
	ID                 string              `json:"id,omitempty"`
	Type               string              `json:"type,omitempty"`
	SchemaVersion      string              `json:"schema_version,omitempty"`
	Revision           int                 `json:"revision,omitempty"`
	ExternalIDs        []string            `json:"external_ids,omitempty"`
	ExternalReferences []ExternalReference `json:"external_references,omitempty"`
	Timestamp          Time                `json:"timestamp,omitzero"`
	Language           string              `json:"language,omitempty"`
	TLP                TLP                 `json:"tlp,omitempty"`
}

// NewBase returns a Base with a fresh transient id of entity type typ and
// our schema version, as modules emit them.
func NewBase(typ string) Base {
	return Base{ID: NewTransientID(typ), Type: typ, SchemaVersion: SchemaVersion}
}

// Stored holds what a store adds to the entities it keeps (console-api.md §8).
type Stored struct {
	Owner    string   `json:"owner,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
	Created  Time     `json:"created,omitzero"`
	Modified Time     `json:"modified,omitzero"`
}

// Describable holds the optional texts of describable entities.
type Describable struct {
	Title            string `json:"title,omitempty"`
	Description      string `json:"description,omitempty"`
	ShortDescription string `json:"short_description,omitempty"`
}

// Sourcable holds the optional origin of sourcable entities.
type Sourcable struct {
	Source    string `json:"source,omitempty"`
	SourceURI string `json:"source_uri,omitempty"`
}

// ExternalReference points to a description elsewhere; SourceName is required.
type ExternalReference struct {
	SourceName  string   `json:"source_name"`
	Description string   `json:"description,omitempty"`
	URL         string   `json:"url,omitempty"`
	Hashes      []string `json:"hashes,omitempty"`
	ExternalID  string   `json:"external_id,omitempty"`
}

// ObservedRelation reads "Source Relation Related", e.g. a message
// (cisco_mid) Sent_By an email address. Origin, Relation, Source and
// Related are required; the relation vocabulary is open.
type ObservedRelation struct {
	Origin       string          `json:"origin"`
	OriginURI    string          `json:"origin_uri,omitempty"`
	Relation     string          `json:"relation"`
	RelationInfo json.RawMessage `json:"relation_info,omitempty"`
	Source       Observable      `json:"source"`
	Related      Observable      `json:"related"`
}

// IdentitySpecification is a sighting target: what was affected.
type IdentitySpecification struct {
	Type         Sensor       `json:"type"`
	Observables  []Observable `json:"observables"`
	ObservedTime ObservedTime `json:"observed_time"`
	OS           string       `json:"os,omitempty"`
}

// SensorCoordinates identifies the sensor that made a sighting.
type SensorCoordinates struct {
	Type        Sensor       `json:"type"`
	Observables []Observable `json:"observables"`
	OS          string       `json:"os,omitempty"`
}

// SightingDataTable is tabular data attached to a sighting.
type SightingDataTable struct {
	Columns  []ColumnDefinition  `json:"columns"`
	Rows     [][]json.RawMessage `json:"rows"`
	RowCount int                 `json:"row_count,omitempty"`
}

// ColumnDefinition describes one column of a SightingDataTable; Type is one
// of url, string, observable, number, integer, markdown.
type ColumnDefinition struct {
	Name             string `json:"name"`
	Type             string `json:"type"`
	Description      string `json:"description,omitempty"`
	ShortDescription string `json:"short_description,omitempty"`
	Required         bool   `json:"required,omitempty"`
}

var columnTypes = []string{"url", "string", "observable", "number", "integer", "markdown"}

// Sighting records that something was observed (ctim.md §6).
type Sighting struct {
	Base
	Describable
	Sourcable
	Stored
	Count             int                     `json:"count"`
	Confidence        Confidence              `json:"confidence"`
	ObservedTime      ObservedTime            `json:"observed_time"`
	Severity          Severity                `json:"severity,omitempty"`
	Resolution        Resolution              `json:"resolution,omitempty"`
	Internal          bool                    `json:"internal,omitempty"`
	Sensor            Sensor                  `json:"sensor,omitempty"`
	SensorCoordinates *SensorCoordinates      `json:"sensor_coordinates,omitempty"`
	Observables       []Observable            `json:"observables,omitempty"`
	Relations         []ObservedRelation      `json:"relations,omitempty"`
	Targets           []IdentitySpecification `json:"targets,omitempty"`
	Data              *SightingDataTable      `json:"data,omitempty"`
	// Newer CTIM fields, kept as received and never produced.
	Context              json.RawMessage `json:"context,omitempty"`
	ActivityInterval     json.RawMessage `json:"activity_interval,omitempty"`
	DetectionInterval    json.RawMessage `json:"detection_interval,omitempty"`
	ModificationInterval json.RawMessage `json:"modification_interval,omitempty"`
}

// Validate reports every field of s that breaks the schema.
func (s *Sighting) Validate() error {
	c := &checker{entity: TypeSighting}
	c.base(&s.Base, TypeSighting)
	c.describable(&s.Describable)
	c.sourcable(&s.Sourcable)
	if s.Count < 0 {
		c.add("count", "must be ≥ 0")
	}
	c.confidence("confidence", s.Confidence, true)
	c.observedTime("observed_time", s.ObservedTime)
	c.severity("severity", s.Severity)
	c.length("resolution", string(s.Resolution), ShortLen)
	c.length("sensor", string(s.Sensor), ShortLen)
	if sc := s.SensorCoordinates; sc != nil {
		c.required("sensor_coordinates.type", string(sc.Type))
		c.observables("sensor_coordinates.observables", sc.Observables)
	}
	c.observables("observables", s.Observables)
	for i, r := range s.Relations {
		f := fmt.Sprintf("relations[%d]", i)
		c.required(f+".origin", r.Origin)
		c.required(f+".relation", r.Relation)
		c.observable(f+".source", r.Source)
		c.observable(f+".related", r.Related)
	}
	for i, t := range s.Targets {
		f := fmt.Sprintf("targets[%d]", i)
		c.required(f+".type", string(t.Type))
		if len(t.Observables) == 0 {
			c.add(f+".observables", MissingRequiredKey)
		}
		c.observables(f+".observables", t.Observables)
		c.observedTime(f+".observed_time", t.ObservedTime)
	}
	if d := s.Data; d != nil {
		for i, col := range d.Columns {
			f := fmt.Sprintf("data.columns[%d]", i)
			c.required(f+".name", col.Name)
			if !slices.Contains(columnTypes, col.Type) {
				c.add(f+".type", "%q is not one of %s", col.Type, join(columnTypes))
			}
		}
		for i, row := range d.Rows {
			if len(row) != len(d.Columns) {
				c.add(fmt.Sprintf("data.rows[%d]", i), "has %d cells for %d columns", len(row), len(d.Columns))
			}
		}
	}
	return c.err()
}

// Judgement is a source's opinion on one observable over a time window
// (ctim.md §7).
type Judgement struct {
	Base
	Stored
	Observable      Observable  `json:"observable"`
	Source          string      `json:"source"`
	SourceURI       string      `json:"source_uri,omitempty"`
	Disposition     Disposition `json:"disposition"`
	DispositionName string      `json:"disposition_name"`
	Priority        int         `json:"priority"`
	Confidence      Confidence  `json:"confidence"`
	Severity        Severity    `json:"severity"`
	ValidTime       ValidTime   `json:"valid_time"`
	Reason          string      `json:"reason,omitempty"`
	ReasonURI       string      `json:"reason_uri,omitempty"`
}

// Validate reports every field of j that breaks the schema.
func (j *Judgement) Validate() error {
	c := &checker{entity: TypeJudgement}
	c.base(&j.Base, TypeJudgement)
	c.observable("observable", j.Observable)
	c.required("source", j.Source)
	c.length("source", j.Source, MedLen)
	c.length("source_uri", j.SourceURI, MedLen)
	c.disposition(j.Disposition, j.DispositionName, true)
	if j.Priority < 0 || j.Priority > 100 {
		c.add("priority", "%d is outside 0-100", j.Priority)
	}
	c.confidence("confidence", j.Confidence, true)
	if j.Severity == "" {
		c.add("severity", MissingRequiredKey)
	}
	c.severity("severity", j.Severity)
	c.interval("valid_time", j.ValidTime.StartTime, j.ValidTime.EndTime)
	c.length("reason", j.Reason, ShortLen)
	c.length("reason_uri", j.ReasonURI, MedLen)
	return c.err()
}

// ResolveDisposition applies CTIA's rules for a posted judgement: given
// one of the two disposition fields, it derives the other; given neither,
// the disposition is Unknown; given both in conflict, it fails.
func ResolveDisposition(d Disposition, name string) (Disposition, string, error) {
	switch {
	case d == 0 && name == "":
		return Unknown, Unknown.Name(), nil
	case d == 0:
		byName, ok := DispositionByName(name)
		if !ok {
			return 0, "", fieldError(TypeJudgement, "disposition_name", fmt.Sprintf("%q is not one of Clean, Malicious, Suspicious, Common, Unknown", name))
		}
		return byName, name, nil
	case !d.Valid():
		return 0, "", fieldError(TypeJudgement, "disposition", fmt.Sprintf("%d is outside 1-5", d))
	case name == "":
		return d, d.Name(), nil
	case d.Name() != name:
		return 0, "", fieldError(TypeJudgement, "disposition_name", fmt.Sprintf("%q does not match disposition %d (%s)", name, d, d.Name()))
	}
	return d, name, nil
}

func fieldError(entity, field, problem string) error {
	return &ValidationError{Entity: entity, Fields: []FieldError{{field, problem}}}
}

// Verdict is the current disposition of an observable, computed from
// judgements (ctim.md §8). It has no id and no schema version.
type Verdict struct {
	Type            string      `json:"type"`
	Disposition     Disposition `json:"disposition"`
	DispositionName string      `json:"disposition_name,omitempty"`
	Observable      Observable  `json:"observable"`
	JudgementID     string      `json:"judgement_id,omitempty"`
	ValidTime       ValidTime   `json:"valid_time"`
}

// Validate reports every field of v that breaks the schema.
func (v *Verdict) Validate() error {
	c := &checker{entity: TypeVerdict}
	if v.Type != TypeVerdict {
		c.add("type", "must be %q, not %q", TypeVerdict, v.Type)
	}
	c.disposition(v.Disposition, v.DispositionName, false)
	c.observable("observable", v.Observable)
	if v.JudgementID != "" {
		c.id("judgement_id", v.JudgementID)
	}
	c.interval("valid_time", v.ValidTime.StartTime, v.ValidTime.EndTime)
	return c.err()
}

// ComputeVerdict returns the verdict for the judgements active at now
// (start ≤ now < end, a missing end meaning MaxTime), taking the first in
// the order priority descending, disposition ascending, start ascending.
// It reports false when none is active. The judgements are assumed to be
// about one observable.
func ComputeVerdict(js []Judgement, now Time) (Verdict, bool) {
	var best *Judgement
	for i := range js {
		j := &js[i]
		end := j.ValidTime.EndTime
		if end.IsZero() {
			end = Time{MaxTime}
		}
		if j.ValidTime.StartTime.After(now.Time) || !now.Before(end.Time) {
			continue
		}
		if best == nil || j.Priority > best.Priority ||
			j.Priority == best.Priority && (j.Disposition < best.Disposition ||
				j.Disposition == best.Disposition && j.ValidTime.StartTime.Before(best.ValidTime.StartTime.Time)) {
			best = j
		}
	}
	if best == nil {
		return Verdict{}, false
	}
	return Verdict{
		Type:            TypeVerdict,
		Disposition:     best.Disposition,
		DispositionName: best.Disposition.Name(),
		Observable:      best.Observable,
		JudgementID:     best.ID,
		ValidTime:       best.ValidTime,
	}, true
}

// KillChainPhase places an indicator in a kill chain.
type KillChainPhase struct {
	KillChainName string `json:"kill_chain_name"`
	PhaseName     string `json:"phase_name"`
}

// Indicator describes a pattern to look for (ctim.md §9).
type Indicator struct {
	Base
	Describable
	Sourcable
	Producer                     string           `json:"producer"`
	ValidTime                    ValidTime        `json:"valid_time"`
	Confidence                   Confidence       `json:"confidence,omitempty"`
	Severity                     Severity         `json:"severity,omitempty"`
	IndicatorType                []string         `json:"indicator_type,omitempty"`
	Tags                         []string         `json:"tags,omitempty"`
	KillChainPhases              []KillChainPhase `json:"kill_chain_phases,omitempty"`
	Negate                       bool             `json:"negate,omitempty"`
	LikelyImpact                 string           `json:"likely_impact,omitempty"`
	Specification                json.RawMessage  `json:"specification,omitempty"`
	CompositeIndicatorExpression json.RawMessage  `json:"composite_indicator_expression,omitempty"`
	TestMechanisms               []string         `json:"test_mechanisms,omitempty"`
}

// Validate reports every field of in that breaks the schema.
func (in *Indicator) Validate() error {
	c := &checker{entity: TypeIndicator}
	c.base(&in.Base, TypeIndicator)
	c.describable(&in.Describable)
	c.sourcable(&in.Sourcable)
	c.required("producer", in.Producer)
	c.length("producer", in.Producer, ShortLen)
	c.interval("valid_time", in.ValidTime.StartTime, in.ValidTime.EndTime)
	c.confidence("confidence", in.Confidence, false)
	c.severity("severity", in.Severity)
	for i, t := range in.IndicatorType {
		if !slices.Contains(indicatorTypes, t) {
			c.add(fmt.Sprintf("indicator_type[%d]", i), "%q is not one of %s", t, join(indicatorTypes))
		}
	}
	for i, t := range in.Tags {
		c.length(fmt.Sprintf("tags[%d]", i), t, ShortLen)
	}
	c.length("likely_impact", in.LikelyImpact, LongLen)
	return c.err()
}

// IncidentTime stamps an incident's life; Opened is required.
type IncidentTime struct {
	Opened     Time `json:"opened"`
	Discovered Time `json:"discovered,omitzero"`
	Reported   Time `json:"reported,omitzero"`
	Remediated Time `json:"remediated,omitzero"`
	Closed     Time `json:"closed,omitzero"`
	Rejected   Time `json:"rejected,omitzero"`
	Contained  Time `json:"contained,omitzero"`
}

// Incident groups what an analyst is working on (ctim.md §10).
type Incident struct {
	Base
	Describable
	Sourcable
	Stored
	Confidence       Confidence         `json:"confidence"`
	Status           IncidentStatus     `json:"status"`
	IncidentTime     IncidentTime       `json:"incident_time"`
	Severity         Severity           `json:"severity,omitempty"`
	Categories       []string           `json:"categories,omitempty"`
	DiscoveryMethod  string             `json:"discovery_method,omitempty"`
	IntendedEffect   string             `json:"intended_effect,omitempty"`
	Assignees        []string           `json:"assignees,omitempty"`
	DetectionSources []string           `json:"detection_sources,omitempty"`
	PromotionMethod  string             `json:"promotion_method,omitempty"`
	Scores           map[string]float64 `json:"scores,omitempty"`
	Meta             map[string]any     `json:"meta,omitempty"`
	Tactics          []string           `json:"tactics,omitempty"`
	Techniques       []string           `json:"techniques,omitempty"`
}

// Validate reports every field of in that breaks the schema.
func (in *Incident) Validate() error {
	c := &checker{entity: TypeIncident}
	c.base(&in.Base, TypeIncident)
	c.describable(&in.Describable)
	c.sourcable(&in.Sourcable)
	c.confidence("confidence", in.Confidence, true)
	switch {
	case in.Status == "":
		c.add("status", MissingRequiredKey)
	case !in.Status.Valid():
		c.add("status", "%q is not an incident status", in.Status)
	}
	t := in.IncidentTime
	if t.Opened.IsZero() {
		c.add("incident_time.opened", MissingRequiredKey)
	}
	for _, f := range []struct {
		name string
		t    Time
	}{{"opened", t.Opened}, {"discovered", t.Discovered}, {"reported", t.Reported}, {"remediated", t.Remediated},
		{"closed", t.Closed}, {"rejected", t.Rejected}, {"contained", t.Contained}} {
		c.time("incident_time."+f.name, f.t)
	}
	c.severity("severity", in.Severity)
	for name, score := range in.Scores {
		if score < 0 {
			c.add("scores."+name, "must be ≥ 0")
		}
	}
	for k, v := range in.Meta {
		switch v.(type) {
		case nil, string, float64, bool, int, int64:
		default:
			c.add("meta."+k, "must be a string, number or boolean")
		}
	}
	return c.err()
}

// CasebookText is a note in a casebook; both fields are required.
type CasebookText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Casebook is an analyst's working set of observables and notes (ctim.md §11).
type Casebook struct {
	Base
	Describable
	Sourcable
	Stored
	Observables []Observable   `json:"observables,omitempty"`
	Texts       []CasebookText `json:"texts,omitempty"`
	Bundle      *Bundle        `json:"bundle,omitempty"`
}

// Validate reports every field of cb that breaks the schema.
func (cb *Casebook) Validate() error {
	c := &checker{entity: TypeCasebook}
	c.base(&cb.Base, TypeCasebook)
	c.describable(&cb.Describable)
	c.sourcable(&cb.Sourcable)
	c.observables("observables", cb.Observables)
	for i, t := range cb.Texts {
		f := fmt.Sprintf("texts[%d]", i)
		c.required(f+".type", t.Type)
		c.required(f+".text", t.Text)
	}
	if cb.Bundle != nil {
		if err := cb.Bundle.Validate(); err != nil {
			for _, fe := range err.(*ValidationError).Fields {
				c.add("bundle."+fe.Field, "%s", fe.Problem)
			}
		}
	}
	return c.err()
}

// Relationship links two entities by id (ctim.md §12).
type Relationship struct {
	Base
	Describable
	Sourcable
	RelationshipType RelationshipType `json:"relationship_type"`
	SourceRef        string           `json:"source_ref"`
	TargetRef        string           `json:"target_ref"`
}

// Validate reports every field of r that breaks the schema.
func (r *Relationship) Validate() error {
	c := &checker{entity: TypeRelationship}
	c.base(&r.Base, TypeRelationship)
	c.describable(&r.Describable)
	c.sourcable(&r.Sourcable)
	c.required("relationship_type", string(r.RelationshipType))
	c.length("relationship_type", string(r.RelationshipType), ShortLen)
	c.id("source_ref", r.SourceRef)
	c.id("target_ref", r.TargetRef)
	return c.err()
}

// Bundle carries a set of entities (ctim.md §13). Entity kinds Sightline
// does not model are kept as raw JSON.
type Bundle struct {
	Base
	Describable
	Source                string            `json:"source"`
	SourceURI             string            `json:"source_uri,omitempty"`
	ValidTime             ValidTime         `json:"valid_time"`
	Actors                []json.RawMessage `json:"actors,omitempty"`
	ActorRefs             []string          `json:"actor_refs,omitempty"`
	AttackPatterns        []json.RawMessage `json:"attack_patterns,omitempty"`
	AttackPatternRefs     []string          `json:"attack_pattern_refs,omitempty"`
	Campaigns             []json.RawMessage `json:"campaigns,omitempty"`
	CampaignRefs          []string          `json:"campaign_refs,omitempty"`
	COAs                  []json.RawMessage `json:"coas,omitempty"`
	COARefs               []string          `json:"coa_refs,omitempty"`
	DataTables            []json.RawMessage `json:"data_tables,omitempty"`
	DataTableRefs         []string          `json:"data_table_refs,omitempty"`
	Feedbacks             []json.RawMessage `json:"feedbacks,omitempty"`
	FeedbackRefs          []string          `json:"feedback_refs,omitempty"`
	IdentityAssertions    []json.RawMessage `json:"identity_assertions,omitempty"`
	IdentityAssertionRefs []string          `json:"identity_assertion_refs,omitempty"`
	Incidents             []Incident        `json:"incidents,omitempty"`
	IncidentRefs          []string          `json:"incident_refs,omitempty"`
	Indicators            []Indicator       `json:"indicators,omitempty"`
	IndicatorRefs         []string          `json:"indicator_refs,omitempty"`
	Judgements            []Judgement       `json:"judgements,omitempty"`
	JudgementRefs         []string          `json:"judgement_refs,omitempty"`
	Malwares              []json.RawMessage `json:"malwares,omitempty"`
	MalwareRefs           []string          `json:"malware_refs,omitempty"`
	Relationships         []Relationship    `json:"relationships,omitempty"`
	RelationshipRefs      []string          `json:"relationship_refs,omitempty"`
	Sightings             []Sighting        `json:"sightings,omitempty"`
	SightingRefs          []string          `json:"sighting_refs,omitempty"`
	Tools                 []json.RawMessage `json:"tools,omitempty"`
	ToolRefs              []string          `json:"tool_refs,omitempty"`
	Verdicts              []Verdict         `json:"verdicts,omitempty"`
	VerdictRefs           []string          `json:"verdict_refs,omitempty"`
	Vulnerabilities       []json.RawMessage `json:"vulnerabilities,omitempty"`
	VulnerabilityRefs     []string          `json:"vulnerability_refs,omitempty"`
	Weaknesses            []json.RawMessage `json:"weaknesses,omitempty"`
	WeaknessRefs          []string          `json:"weakness_refs,omitempty"`
}

// Validate reports every field of b, and of the entities it carries, that
// breaks the schema.
func (b *Bundle) Validate() error {
	c := &checker{entity: TypeBundle}
	c.base(&b.Base, TypeBundle)
	c.describable(&b.Describable)
	c.required("source", b.Source)
	c.length("source", b.Source, MedLen)
	c.length("source_uri", b.SourceURI, MedLen)
	c.interval("valid_time", b.ValidTime.StartTime, b.ValidTime.EndTime)
	nested := func(set string, i int, err error) {
		if err != nil {
			for _, fe := range err.(*ValidationError).Fields {
				c.add(fmt.Sprintf("%s[%d].%s", set, i, fe.Field), "%s", fe.Problem)
			}
		}
	}
	for i := range b.Incidents {
		nested("incidents", i, b.Incidents[i].Validate())
	}
	for i := range b.Indicators {
		nested("indicators", i, b.Indicators[i].Validate())
	}
	for i := range b.Judgements {
		nested("judgements", i, b.Judgements[i].Validate())
	}
	for i := range b.Relationships {
		nested("relationships", i, b.Relationships[i].Validate())
	}
	for i := range b.Sightings {
		nested("sightings", i, b.Sightings[i].Validate())
	}
	for i := range b.Verdicts {
		nested("verdicts", i, b.Verdicts[i].Validate())
	}
	for _, set := range []struct {
		name string
		refs []string
	}{
		{"actor_refs", b.ActorRefs}, {"attack_pattern_refs", b.AttackPatternRefs}, {"campaign_refs", b.CampaignRefs},
		{"coa_refs", b.COARefs}, {"data_table_refs", b.DataTableRefs}, {"feedback_refs", b.FeedbackRefs},
		{"identity_assertion_refs", b.IdentityAssertionRefs}, {"incident_refs", b.IncidentRefs},
		{"indicator_refs", b.IndicatorRefs}, {"judgement_refs", b.JudgementRefs}, {"malware_refs", b.MalwareRefs},
		{"relationship_refs", b.RelationshipRefs}, {"sighting_refs", b.SightingRefs}, {"tool_refs", b.ToolRefs},
		{"verdict_refs", b.VerdictRefs}, {"vulnerability_refs", b.VulnerabilityRefs}, {"weakness_refs", b.WeaknessRefs},
	} {
		for i, r := range set.refs {
			c.id(fmt.Sprintf("%s[%d]", set.name, i), r)
		}
	}
	return c.err()
}

func (c *checker) confidence(field string, v Confidence, required bool) {
	switch {
	case v == "" && required:
		c.add(field, MissingRequiredKey)
	case v != "" && !v.Valid():
		c.add(field, "%q is not one of %s", v, join(confidences))
	}
}

func (c *checker) severity(field string, v Severity) {
	if v != "" && !v.Valid() {
		c.add(field, "%q is not one of %s", v, join(severities))
	}
}

// disposition checks the number and, when given or required, its name.
func (c *checker) disposition(d Disposition, name string, nameRequired bool) {
	switch {
	case d == 0:
		c.add("disposition", MissingRequiredKey)
	case !d.Valid():
		c.add("disposition", "%d is outside 1-5", d)
	case name == "" && nameRequired:
		c.add("disposition_name", MissingRequiredKey)
	case name != "" && name != d.Name():
		c.add("disposition_name", "%q does not match disposition %d (%s)", name, d, d.Name())
	}
}
