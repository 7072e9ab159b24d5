package ctim

import (
	"slices"
	"strings"
)

// Confidence is CTIM's HighMedLow vocabulary.
type Confidence string

const (
	ConfidenceInfo    Confidence = "Info"
	ConfidenceLow     Confidence = "Low"
	ConfidenceMedium  Confidence = "Medium"
	ConfidenceHigh    Confidence = "High"
	ConfidenceNone    Confidence = "None"
	ConfidenceUnknown Confidence = "Unknown"
)

var confidences = []Confidence{ConfidenceInfo, ConfidenceLow, ConfidenceMedium, ConfidenceHigh, ConfidenceNone, ConfidenceUnknown}

// Valid reports whether c is in the closed vocabulary.
func (c Confidence) Valid() bool { return slices.Contains(confidences, c) }

// Severity is CTIM's severity vocabulary.
type Severity string

const (
	SeverityInfo     Severity = "Info"
	SeverityLow      Severity = "Low"
	SeverityMedium   Severity = "Medium"
	SeverityHigh     Severity = "High"
	SeverityCritical Severity = "Critical"
	SeverityNone     Severity = "None"
	SeverityUnknown  Severity = "Unknown"
)

var severities = []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical, SeverityNone, SeverityUnknown}

// Valid reports whether s is in the closed vocabulary.
func (s Severity) Valid() bool { return slices.Contains(severities, s) }

// Resolution says what became of a sighting. The vocabulary is open; these
// are the known values, and an absent one means ResolutionDetected.
type Resolution string

const (
	ResolutionDetected  Resolution = "detected"
	ResolutionBlocked   Resolution = "blocked"
	ResolutionAllowed   Resolution = "allowed"
	ResolutionContained Resolution = "contained"
)

// Known reports whether r is one of the values CTIM lists.
func (r Resolution) Known() bool {
	return slices.Contains([]Resolution{ResolutionDetected, ResolutionBlocked, ResolutionAllowed, ResolutionContained}, r)
}

// TLP is the Traffic Light Protocol marking; absent means TLPGreen.
type TLP string

const (
	TLPRed   TLP = "red"
	TLPAmber TLP = "amber"
	TLPGreen TLP = "green"
	TLPWhite TLP = "white"
)

var tlps = []TLP{TLPRed, TLPAmber, TLPGreen, TLPWhite}

// Valid reports whether t is in the closed vocabulary.
func (t TLP) Valid() bool { return slices.Contains(tlps, t) }

// Disposition is a judgement's verdict as a number 1-5; the number and
// its name must agree.
type Disposition int

const (
	Clean      Disposition = 1
	Malicious  Disposition = 2
	Suspicious Disposition = 3
	Common     Disposition = 4
	Unknown    Disposition = 5
)

var dispositionNames = [...]string{Clean: "Clean", Malicious: "Malicious", Suspicious: "Suspicious", Common: "Common", Unknown: "Unknown"}

// Valid reports whether d is 1-5.
func (d Disposition) Valid() bool { return d >= Clean && d <= Unknown }

// Name returns the disposition_name of d, or "" when d is not valid.
func (d Disposition) Name() string {
	if !d.Valid() {
		return ""
	}
	return dispositionNames[d]
}

// DispositionByName returns the disposition named name (exact case).
func DispositionByName(name string) (Disposition, bool) {
	for d := Clean; d <= Unknown; d++ {
		if dispositionNames[d] == name {
			return d, true
		}
	}
	return 0, false
}

// Sensor says what kind of device saw something. The vocabulary is open.
type Sensor string

// SensorEmailService is the sensor of our gateway's sightings.
const SensorEmailService Sensor = "process.email-service"

var sensors = func() map[Sensor]bool {
	m := map[Sensor]bool{}
	for family, kinds := range map[string]string{
		"endpoint": "digital-telephone-handset laptop pos-terminal printer sensor server smart-meter smart-phone tablet workstation",
		"network":  "bridge firewall gateway guard hips hub ids ips modem nic proxy router security_manager sense_making sensor switch vpn wap",
		"process": "aaa-server anti-virus-scanner connection-scanner directory-service dns-server email-service file-scanner " +
			"location-service network-scanner remediation-service reputation-service sandbox virtualization-service vulnerability-scanner",
	} {
		m[Sensor(family)] = true
		for k := range strings.FieldsSeq(kinds) {
			m[Sensor(family+"."+k)] = true
		}
	}
	return m
}()

// Known reports whether s is one of the values CTIM lists.
func (s Sensor) Known() bool { return sensors[s] }

// RelationshipType names a Relationship. The vocabulary is open.
type RelationshipType string

var relationshipTypes = strings.Fields(`attributed-to based-on derived-from detects duplicate-of element-of exploits
	indicates member-of mitigates related-to sighting-of subtechnique-of targets technique-of uses variant-of phase-of task-of`)

// Known reports whether r is one of the values CTIM lists.
func (r RelationshipType) Known() bool { return slices.Contains(relationshipTypes, string(r)) }

// Relations of ObservedRelation that our modules emit (ctim.md §5); the
// vocabulary is open.
const (
	RelationSentBy       = "Sent_By"
	RelationSentTo       = "Sent_To"
	RelationReceivedFrom = "Received_From"
	RelationContains     = "Contains"
	RelationResolvedTo   = "Resolved_To"
	RelationRelatedTo    = "Related_To"
)

// IncidentStatus is the closed status vocabulary of incidents.
type IncidentStatus string

var incidentStatuses = []IncidentStatus{
	"New", "New: Processing", "New: Presented", "Open", "Open: Investigating", "Open: Reported",
	"Open: Contained", "Open: Recovered", "Stalled", "Hold", "Hold: Internal", "Hold: External", "Hold: Legal",
	"Containment Achieved", "Restoration Achieved", "Incident Reported", "Closed", "Closed: Under Review",
	"Closed: Confirmed Threat", "Closed: Suspected", "Closed: False Positive", "Closed: Near-Miss", "Closed: Merged",
	"Closed: Other", "Rejected",
}

// IncidentStatuses returns every incident status, in CTIM's order.
func IncidentStatuses() []IncidentStatus { return slices.Clone(incidentStatuses) }

// Valid reports whether s is in the closed vocabulary.
func (s IncidentStatus) Valid() bool { return slices.Contains(incidentStatuses, s) }

// Family returns the part before the colon: "Open" for "Open: Contained".
func (s IncidentStatus) Family() string {
	f, _, _ := strings.Cut(string(s), ":")
	return f
}

// Indicator types of CTIM (the STIX 1 indicator type vocabulary).
var indicatorTypes = []string{
	"Malicious E-mail", "IP Watchlist", "File Hash Watchlist", "Domain Watchlist", "URL Watchlist",
	"Malware Artifacts", "C2", "Anonymization", "Exfiltration", "Host Characteristics",
	"Compromised PKI Certificate", "Login Name", "IMEI Watchlist", "IMSI Watchlist",
}
