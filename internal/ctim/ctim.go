// Package ctim holds the subset of the Cisco Threat Intelligence Model that
// Sightline stores, serves and produces (specs/ctim.md): sightings,
// judgements, verdicts, indicators, incidents, casebooks, relationships and
// bundles, with their vocabularies, identifiers and validation.
//
// The JSON of every type is CTIM's: snake_case keys, optional fields omitted
// when absent, times as ISO-8601 UTC with milliseconds. Validate reports
// every field that breaks the schema as a *ValidationError; Decode also
// rejects unknown keys, since CTIM schemas are closed.
package ctim

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/observable"
)

// SchemaVersion is the CTIM version Sightline emits (ours). Any N.N.N is
// accepted on input.
const SchemaVersion = "1.3.29"

// String limits of CTIM, in characters.
const (
	ShortLen = 1024 // titles, names, reasons
	MedLen   = 2048 // short_description, source, URIs, ids
	LongLen  = 5000 // description (Markdown)
)

// Observable is a CTIM observable, {"type": …, "value": …}.
type Observable = observable.Observable

// TimeLayout is how CTIM times are written: UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// The valid range of CTIM times; MaxTime is also the conventional "forever".
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2525, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Time is a CTIM timestamp. It marshals as TimeLayout in UTC, truncated to
// the millisecond, and unmarshals any RFC 3339 time. The zero Time is
// "absent": fields of this type are tagged omitzero.
type Time struct{ time.Time }

// NewTime returns t as a CTIM Time, in UTC and truncated to the millisecond.
func NewTime(t time.Time) Time { return Time{t.UTC().Truncate(time.Millisecond)} }

// ParseTime parses an RFC 3339 time (with or without fraction or offset).
func ParseTime(s string) (Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Time{}, sightline.Errorf(sightline.Invalid, "invalid time %q: want ISO-8601 such as 2026-01-10T08:00:12.000Z", s)
	}
	return NewTime(t), nil
}

// String returns t in TimeLayout, or "" for the zero Time.
func (t Time) String() string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

// MarshalJSON writes t as a JSON string in TimeLayout, null for the zero
// Time. The layout has nothing JSON escapes, so it is written directly.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return sightline.Errorf(sightline.Invalid, "invalid time %s: want a string", b)
	}
	p, err := ParseTime(s)
	if err != nil {
		return err
	}
	*t = p
	return nil
}

// ObservedTime is when something was seen; StartTime is required.
type ObservedTime struct {
	StartTime Time `json:"start_time"`
	EndTime   Time `json:"end_time,omitzero"`
}

// ValidTime is when something holds; both ends are optional.
type ValidTime struct {
	StartTime Time `json:"start_time,omitzero"`
	EndTime   Time `json:"end_time,omitzero"`
}

// ValidationError lists the fields of an entity that break the CTIM schema.
// errors.As finds a *sightline.Error of kind Invalid in it, whose message is
// Error's text.
type ValidationError struct {
	Entity string // entity type, e.g. "sighting"
	Fields []FieldError
}

// FieldError is one invalid field. Field is a path such as
// "observed_time.start_time" or "relations[2].source.type"; Problem is
// "missing-required-key", "disallowed-key" or a short description.
type FieldError struct {
	Field   string
	Problem string
}

// Problems CTIA reports in its error bodies.
const (
	MissingRequiredKey = "missing-required-key"
	DisallowedKey      = "disallowed-key"
)

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	b.WriteString(e.Entity)
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Problem)
	}
	return b.String()
}

// As lets errors.As and sightline.ErrorKind see e as an Invalid error.
func (e *ValidationError) As(target any) bool {
	if p, ok := target.(**sightline.Error); ok {
		*p = &sightline.Error{Kind: sightline.Invalid, Message: e.Error()}
		return true
	}
	return false
}

// Map returns the problems by field, the shape of CTIA's 400 body
// {"errors": {"<field>": "<problem>"}}.
func (e *ValidationError) Map() map[string]string {
	m := make(map[string]string, len(e.Fields))
	for _, f := range e.Fields {
		if _, dup := m[f.Field]; !dup {
			m[f.Field] = f.Problem
		}
	}
	return m
}

// checker accumulates field errors while an entity is validated.
type checker struct {
	entity string
	fields []FieldError
}

func (c *checker) add(field, format string, args ...any) {
	c.fields = append(c.fields, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (c *checker) err() error {
	if len(c.fields) == 0 {
		return nil
	}
	return &ValidationError{Entity: c.entity, Fields: c.fields}
}

// required reports a missing string.
func (c *checker) required(field, v string) bool {
	if v == "" {
		c.add(field, MissingRequiredKey)
		return false
	}
	return true
}

// length checks an optional string against a limit in characters.
func (c *checker) length(field, v string, max int) {
	if n := utf8.RuneCountInString(v); n > max {
		c.add(field, "longer than %d characters (%d)", max, n)
	}
}

// time checks that an optional time is in CTIM's range.
func (c *checker) time(field string, t Time) {
	if !t.IsZero() && (t.Before(MinTime) || t.After(MaxTime)) {
		c.add(field, "%s is outside %s … %s", t, NewTime(MinTime), NewTime(MaxTime))
	}
}

// interval checks both ends and that start ≤ end.
func (c *checker) interval(field string, start, end Time) {
	c.time(field+".start_time", start)
	c.time(field+".end_time", end)
	if !start.IsZero() && !end.IsZero() && end.Before(start.Time) {
		c.add(field, "end_time %s is before start_time %s", end, start)
	}
}

func (c *checker) observedTime(field string, t ObservedTime) {
	if t.StartTime.IsZero() {
		c.add(field+".start_time", MissingRequiredKey)
	}
	c.interval(field, t.StartTime, t.EndTime)
}

// observable checks an observable leniently: a type from the closed CTIM
// list and a non-empty value. Values are not normalised here, since module
// output passes through unchanged; use observable.New for strict checks.
func (c *checker) observable(field string, o Observable) {
	switch {
	case o.Type == "":
		c.add(field+".type", MissingRequiredKey)
	case !o.Type.Valid():
		c.add(field+".type", "unknown observable type %q", o.Type)
	}
	if o.Value == "" {
		c.add(field+".value", MissingRequiredKey)
	}
}

func (c *checker) observables(field string, os []Observable) {
	for i, o := range os {
		c.observable(fmt.Sprintf("%s[%d]", field, i), o)
	}
}

var schemaVersionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// base checks the fields every entity but Verdict carries.
func (c *checker) base(b *Base, typ string) {
	c.id("id", b.ID)
	if b.Type == "" {
		c.add("type", MissingRequiredKey)
	} else if b.Type != typ {
		c.add("type", "must be %q, not %q", typ, b.Type)
	}
	if c.required("schema_version", b.SchemaVersion) && !schemaVersionRE.MatchString(b.SchemaVersion) {
		c.add("schema_version", "%q is not a version N.N.N", b.SchemaVersion)
	}
	if b.Revision < 0 {
		c.add("revision", "must be ≥ 0")
	}
	for i, r := range b.ExternalReferences {
		f := fmt.Sprintf("external_references[%d]", i)
		c.required(f+".source_name", r.SourceName)
		c.length(f+".source_name", r.SourceName, ShortLen)
		c.length(f+".description", r.Description, LongLen)
		c.length(f+".url", r.URL, MedLen)
	}
	c.time("timestamp", b.Timestamp)
	c.length("language", b.Language, ShortLen)
	if b.TLP != "" && !b.TLP.Valid() {
		c.add("tlp", "%q is not one of %s", b.TLP, join(tlps))
	}
}

// id checks a required entity id.
func (c *checker) id(field, id string) {
	if c.required(field, id) {
		if _, err := ParseID(id); err != nil {
			c.add(field, "%s", sightline.ErrorMessage(err))
		}
	}
}

func (c *checker) describable(d *Describable) {
	c.length("title", d.Title, ShortLen)
	c.length("short_description", d.ShortDescription, MedLen)
	c.length("description", d.Description, LongLen)
}

func (c *checker) sourcable(s *Sourcable) {
	c.length("source", s.Source, MedLen)
	c.length("source_uri", s.SourceURI, MedLen)
}

func join[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
