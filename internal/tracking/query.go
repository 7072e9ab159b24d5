package tracking

import (
	"time"
)

// Op is the operator of a text filter.
type Op string

// Text filter operators (gateway-api.md §5). OpIsEmpty applies to the subject
// only. Matching is case-insensitive; OpIs compares the whole string.
const (
	OpIs         Op = "is"
	OpBeginsWith Op = "begins_with"
	OpContains   Op = "contains"
	OpIsEmpty    Op = "is_empty"
)

// TextFilter matches a text field, or for list fields (recipients,
// attachments) any element of it. The zero TextFilter matches everything.
type TextFilter struct {
	Op Op
	// Values are alternatives: any of them matching is a match. Ignored for
	// OpIsEmpty.
	Values []string
}

// Active reports whether f filters anything.
func (f TextFilter) Active() bool { return f.Op != "" }

// Paging bounds of Query.
const (
	DefaultLimit = 20
	MaxLimit     = 1000
)

// Query is a Message Tracking search: every set field must match (AND).
// Slices list alternatives (OR), as repeated API parameters do.
type Query struct {
	// Start and End bound the injection time: Start <= t < End. A zero bound
	// is open. The API's endDate names a whole minute, so End is one minute
	// after it.
	Start, End time.Time

	Sender         TextFilter // envelope sender
	Recipient      TextFilter // any envelope recipient
	Subject        TextFilter // subject on injection
	AttachmentName TextFilter // any attachment name
	Domain         TextFilter // sender domain or any recipient domain
	ReplyTo        TextFilter // Reply-To header address

	SenderIPs  []string // connecting IP, compared in canonical form
	MessageIDs []string // Message-ID header, with or without <>
	MIDs       []int64
	SHA256s    []string // any attachment's SHA-256, hex
	Direction  string   // "incoming", "outgoing" or "" for both

	// Events are the advanced ("message event") filters.
	Events []EventFilter

	Offset int
	Limit  int // DefaultLimit when 0; at most MaxLimit
}

// PageLimit returns q.Limit bounded to 1…MaxLimit, DefaultLimit when unset.
func (q Query) PageLimit() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

// EventFilter is one advanced filter of the AsyncOS API, named by its API
// parameter, e.g. {Name: "deliveryStatus", Value: "BOUNCED"} or
// {Name: "contentFiltersName", Value: "block_exe", Direction: "incoming"}.
type EventFilter struct {
	Name  string
	Value string // "True" for the booleans; an enum as the API spells it; or a name
	// Direction ("incoming" or "outgoing") is the group's direction
	// parameter, for the filters that have one.
	Direction string
	// Action is contentFiltersAction ("stopped"), for contentFiltersName.
	Action string
}

// Condition is what an EventFilter requires of a message, in the terms a
// store indexes. The zero Condition matches everything.
type Condition struct {
	Tags      []string // all of these are among Message.Tags
	Statuses  []string // the message's or any recipient's status is one of these
	Direction string   // the message's direction
	Never     bool     // matches nothing: a feature Sightline does not have
}

// Conditions returns the conditions of q.Events, in order.
func (q Query) Conditions() []Condition {
	cs := make([]Condition, 0, len(q.Events))
	for _, f := range q.Events {
		cs = append(cs, f.Condition())
	}
	return cs
}

// Condition returns what f requires. A filter Sightline cannot evaluate, or
// an unknown name, matches nothing.
func (f EventFilter) Condition() Condition {
	p, ok := eventParams[f.Name]
	if !ok || p.cond == nil {
		return Condition{Never: true}
	}
	c := p.cond(f.Value)
	if f.Direction != "" {
		c.Direction = f.Direction
	}
	if f.Name == "contentFiltersName" && f.Action != "" {
		c.Statuses = []string{StatusDroppedCF, StatusQuarantinedCF}
	}
	return c
}

// eventParam describes one advanced filter parameter.
type eventParam struct {
	boolean   bool     // only "True" (any case) filters; other values are ignored
	enum      []string // accepted values, compared case-insensitively; nil: any text
	direction string   // name of its direction parameter, "" when none
	action    string   // name of its action parameter, "" when none
	cond      func(v string) Condition
}

func tag(prefix string) func(string) Condition {
	return func(v string) Condition { return Condition{Tags: []string{prefix + Fold(v)}} }
}

func flag(name string) func(string) Condition {
	return func(string) Condition { return Condition{Tags: []string{name}} }
}

func statuses(s ...string) func(string) Condition {
	return func(string) Condition { return Condition{Statuses: s} }
}

func byValue(m map[string]Condition) func(string) Condition {
	return func(v string) Condition {
		if c, ok := m[v]; ok {
			return c
		}
		return Condition{Never: true}
	}
}

// eventParams lists every advanced filter of gateway-api.md §5. A nil cond
// marks a feature Sightline lacks: the filter is accepted and matches nothing.
var eventParams = map[string]eventParam{
	"spamPositive":           {boolean: true, cond: flag("spamPositive")},
	"quarantinedAsSpam":      {boolean: true, cond: flag("quarantinedAsSpam")},
	"suspectSpam":            {boolean: true, cond: flag("suspectSpam")},
	"virusPositive":          {boolean: true, cond: flag("virusPositive")},
	"containedMaliciousUrls": {boolean: true, cond: flag("containedMaliciousUrls")},
	"containedNeutralUrls":   {boolean: true, cond: flag("containedNeutralUrls")},
	"graymail":               {boolean: true, cond: flag("graymail")},
	"inOutbreakQuarantine":   {boolean: true, cond: flag("inOutbreakQuarantine")},
	"daneFailure":            {boolean: true, cond: flag("daneFailure")},
	"safeprintExt":           {boolean: true, cond: flag("safeprintExt")},
	// Bounces and deliveries happen after the record is saved: they are
	// statuses, not flags.
	"hardBounced":       {boolean: true, cond: statuses(StatusHardBounced)},
	"softBounced":       {boolean: true, cond: statuses(StatusSoftBounced)},
	"message_delivered": {boolean: true, cond: statuses(StatusDelivered)},

	"deliveryStatus": {enum: []string{"DELIVERED", "DROPPED", "ABORTED", "BOUNCED"}, cond: byValue(map[string]Condition{
		"DELIVERED": {Statuses: []string{StatusDelivered}},
		"DROPPED":   {Statuses: []string{StatusDroppedAS, StatusDroppedAV, StatusDroppedCF, StatusDroppedMF, statusDroppedOF, statusDroppedAMP}},
		"ABORTED":   {Statuses: []string{StatusAborted}},
		"BOUNCED":   {Statuses: []string{StatusBounced, StatusHardBounced, StatusSoftBounced}},
	})},
	"quarantineStatus": {enum: []string{"POLICY", "AMP", "AV", "UNCLASSIFIED", "DLP", "OUTBREAK"}, cond: byValue(map[string]Condition{
		"POLICY":       {Statuses: []string{StatusQuarantinedCF, StatusQuarantinedMF}},
		"AMP":          {Statuses: []string{statusQuarantinedAM}},
		"AV":           {Statuses: []string{StatusQuarantinedAV}},
		"UNCLASSIFIED": {Tags: []string{tagQuarantine + "unclassified"}},
		"DLP":          {Statuses: []string{statusQuarantinedDL}},
		"OUTBREAK":     {Statuses: []string{statusQuarantinedOF}},
	})},
	"advancedMalwareProtection": {
		enum:      []string{"amp_clean", "amp_malicious", "amp_unknown", "amp_unscannable", "amp_lowrisk"},
		direction: "advancedMalwareProtectionMailflowDirection",
		cond: byValue(map[string]Condition{
			"amp_clean":     {Tags: []string{tagAMP + "clean"}},
			"amp_malicious": {Tags: []string{tagAMP + "malicious"}},
		}),
	},
	"contentFiltersName":      {direction: "contentFiltersDirection", action: "contentFiltersAction", cond: tag(tagContentFilter)},
	"messageFilters":          {},
	"mailPolicyName":          {direction: "mailPolicyDirection", cond: tag(tagPolicy)},
	"dlpViolationsNames":      {},
	"dlpViolationsSeverities": {enum: []string{"critical", "high", "medium", "low"}},
	"dlpAction":               {enum: []string{"delivered", "encrypted", "dropped"}},
	"dmarcFrom":               {},
	"dmarcAction": {enum: []string{"none", "quarantine", "reject", "passed", "failed"}, cond: byValue(map[string]Condition{
		"passed": {Tags: []string{tagDMARC + "pass"}},
		"failed": {Tags: []string{tagDMARC + "fail"}},
	})},
	"etfSources":                       {},
	"etfIocs":                          {enum: []string{"file_hash", "url", "domain"}},
	"forgedEmailDetection":             {},
	"geoLocation":                      {},
	"ipReputation":                     {},
	"sdrCategories":                    {},
	"sdrThreatLevels":                  {},
	"sdrReputation":                    {},
	"macroFileTypesDetected":           {direction: "macroMailflowDirection"},
	"outbreakFiltersUrlRewrittenByOf":  {},
	"outbreakFiltersVofThreatCategory": {},
	"quarantinedTo":                    {cond: tag(tagQuarantine)},
	"threatName":                       {cond: tag(tagThreat)},
	"urlCategories":                    {},
	"urlReputation":                    {},
	"smime":                            {enum: []string{"smime_successful", "smime_failed"}},
	"appForwarding":                    {enum: []string{"app_success", "app_failed"}},
	"webInteractionTrackingUrls":       {direction: "webInteractionTrackingMailflowDirection"},
}
