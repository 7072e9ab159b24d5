package tracking

import (
	"context"
	"net/netip"
	"strings"
	"time"
)

// Store keeps tracking records and events and searches them. It is
// implemented per storage technology (internal/store/sqlite, …); every
// implementation must give the same answers to the same Query.
type Store interface {
	// Apply writes one batch in one transaction: first the records of
	// b.Messages, in order, each replacing any earlier record of its MID (a
	// message screened again after a crash), then b.Events, appended in
	// order. An event with Status and no Recipient sets the message's status
	// and that of its recipients still pending; with a Recipient it sets that
	// recipient's status and reply, and the message's status is then derived
	// with DeriveStatus. Status events for a MID without a record are kept as
	// history but change nothing.
	Apply(ctx context.Context, b Batch) error
	// Search returns the records matching q, newest first (injection time,
	// then MID, descending), q.Offset rows skipped, at most q.Limit rows.
	Search(ctx context.Context, q Query) (Page, error)
	// Details returns the record of mid and its events in order: those of
	// the MID, and those of its incoming connection that have no MID. An
	// unknown MID is a NotFound *sightline.Error.
	Details(ctx context.Context, mid int64) (*Message, []Event, error)
	// LastEvents returns, for each message of ms, the time of the last
	// event with a Summary among those Details returns for it (its own and
	// those of its connection that have no MID), in their order; a message
	// without such an event is not in the map.
	LastEvents(ctx context.Context, ms []*Message) (map[int64]time.Time, error)
	// Briefs returns the page of q that Search returns, each message in
	// brief with the time LastEvents gives it.
	Briefs(ctx context.Context, q Query) (BriefPage, error)
}

// Brief is a message in brief: what a CTIM sighting is built from (the
// records endpoint's view=sighting), with its last event.
type Brief struct {
	MID          int64
	InjectedAt   time.Time
	Direction    string
	Sender       string
	Subject      string
	Status       string
	SenderIP     string
	MessageID    string
	VerdictChart string
	Recipients   []string          // addresses, by RID
	Attachments  []BriefAttachment // in order
	URLs         []string
	// LastEventAt is the time of the last event with a Summary among
	// those Details returns, zero when there is none (Store.LastEvents).
	LastEventAt time.Time
}

// BriefAttachment is an attachment of a Brief.
type BriefAttachment struct {
	Name   string
	SHA256 string
}

// BriefPage is one page of Briefs, counted as Page is.
type BriefPage struct {
	Briefs      []*Brief
	Total       int
	TotalCapped bool
}

// Batch is one unit of writes for Store.Apply.
type Batch struct {
	Messages []*Message
	Events   []Event
}

// Page is one page of search results.
type Page struct {
	Messages []*Message
	// Total counts all matches, up to the store's count cap; TotalCapped
	// reports that there are more than Total.
	Total       int
	TotalCapped bool
}

// Fold returns s as stored and compared for case-insensitive matching.
func Fold(s string) string { return strings.ToLower(s) }

// MessageIDKey returns the comparable form of a Message-ID header: folded,
// without surrounding spaces and angle brackets.
func MessageIDKey(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	return Fold(strings.TrimSpace(s))
}

// CanonicalIP returns the canonical text form of an IPv4 or IPv6 address
// (IPv4-mapped IPv6 as IPv4, zeros compressed, lowercase), and false when s
// is not an address.
func CanonicalIP(s string) (string, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return "", false
	}
	return a.Unmap().WithZone("").String(), true
}

// Domain returns the folded domain part of an address, "" when it has none.
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return Fold(strings.TrimSuffix(addr[i+1:], "."))
}

// Tags returns the labels a store indexes for the advanced filters: m.Flags
// as they are, and namespaced folded values derived from other fields
// ("policy:default", "cf:block_exe", "amp:malicious", "dmarc:pass",
// "quarantine:policy", "threat:eicar-test-signature"). EventFilter
// conditions are expressed in the same labels.
func (m *Message) Tags() []string {
	tags := make([]string, 0, len(m.Flags)+len(m.MailPolicy)+len(m.ContentFilters)+4)
	seen := make(map[string]bool)
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			tags = append(tags, t)
		}
	}
	for _, f := range m.Flags {
		add(f)
	}
	for _, p := range m.MailPolicy {
		add(tagPolicy + Fold(p))
	}
	for _, cf := range m.ContentFilters {
		add(tagContentFilter + Fold(cf))
	}
	if len(m.VerdictChart) >= 3 {
		switch m.VerdictChart[2] {
		case '1':
			add(tagAMP + "clean")
		case '2':
			add(tagAMP + "malicious")
		}
	}
	if m.DMARC != "" {
		add(tagDMARC + Fold(m.DMARC))
	}
	if m.Quarantine != "" {
		add(tagQuarantine + Fold(m.Quarantine))
	}
	if m.ThreatName != "" {
		add(tagThreat + Fold(m.ThreatName))
	}
	return tags
}

// Tag namespaces of Message.Tags.
const (
	tagPolicy        = "policy:"
	tagContentFilter = "cf:"
	tagAMP           = "amp:"
	tagDMARC         = "dmarc:"
	tagQuarantine    = "quarantine:"
	tagThreat        = "threat:"
)

// Status strings of gateway-api.md §6 that message.go does not name yet.
const (
	statusDroppedOF     = "Dropped by Outbreak Filters"
	statusDroppedAMP    = "Dropped by AMP"
	statusQuarantinedOF = "Quarantined by Outbreak Filters"
	statusQuarantinedAM = "Quarantined by AMP"
	statusQuarantinedDL = "Quarantined by DLP"
)

// DeriveStatus returns a message's status from its recipients' statuses,
// the way AsyncOS reports a message with several recipients: In Progress
// while any recipient is pending; the common status when all agree;
// Delivered when delivered to some and stopped for others; Bounced for a
// mix of bounces; otherwise the last recipient's status.
func DeriveStatus(recipients []string) string {
	if len(recipients) == 0 {
		return StatusInProgress
	}
	same, delivered, bounced := true, false, true
	for _, s := range recipients {
		if s == "" || s == StatusInProgress {
			return StatusInProgress
		}
		same = same && s == recipients[0]
		delivered = delivered || s == StatusDelivered
		bounced = bounced && isBounce(s)
	}
	switch {
	case same:
		return recipients[0]
	case delivered:
		return StatusDelivered
	case bounced:
		return StatusBounced
	}
	return recipients[len(recipients)-1]
}

func isBounce(s string) bool {
	return s == StatusBounced || s == StatusHardBounced || s == StatusSoftBounced
}
