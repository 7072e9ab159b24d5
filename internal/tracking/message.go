// Package tracking is Message Tracking: the record of every message a gateway
// handled, the search over it, and the AsyncOS-compatible API shapes that the
// gateway and the manager serve (gateway-api.md §5–§7).
package tracking

import "time"

// Message status strings as AsyncOS prints them (gateway-api.md §6).
const (
	StatusInProgress        = "In Progress"
	StatusDelivered         = "Delivered"
	StatusBounced           = "Bounced"
	StatusHardBounced       = "Hard Bounced"
	StatusSoftBounced       = "Soft Bounced"
	StatusAborted           = "Aborted"
	StatusDroppedAV         = "Dropped By Anti-Virus"
	StatusDroppedAS         = "Dropped By Anti-Spam"
	StatusDroppedCF         = "Dropped by Content Filter"
	StatusDroppedMF         = "Dropped by Message Filter"
	StatusQuarantinedAV     = "Quarantined by Anti-Virus"
	StatusQuarantinedAS     = "Quarantined by Anti-Spam/Graymail"
	StatusQuarantinedCF     = "Quarantined by Content Filter"
	StatusQuarantinedMF     = "Quarantined by Message Filter"
	StatusQuarantinedMulti  = "Quarantined by Multiple Engines"
	StatusQuarantinedPolicy = StatusQuarantinedCF
)

// Message is the searchable record of one message (one MID).
type Message struct {
	MID        int64
	ICID       int64
	Direction  string // "incoming" or "outgoing"
	InjectedAt time.Time

	// Connection.
	SenderIP     string
	ReverseDNS   string
	HELO         string
	SBRS         string // "None" without a reputation source
	SenderGroup  string
	MailPolicy   []string
	SMTPAuthID   string
	TLS          string
	ListenerName string

	// Envelope and headers.
	Sender       string // envelope sender
	SenderDomain string
	HeaderFrom   string   // address of the From header
	FriendlyFrom string   // the From header as written, display name included
	ReplyTo      string   // "" when none
	HeaderTo     []string // addresses of the To header
	HeaderCc     []string // addresses of the Cc header
	Subject      string   // decoded subject on injection
	FinalSubject string   // after any tagging; equals Subject when untouched
	MessageID    string   // Message-ID header with its angle brackets
	Size         int64
	BodySnippet  string // the first text of the body, for free-text search

	Recipients  []Recipient
	Attachments []Attachment
	HasInline   bool // a part other than body text is shown inline (an image, say)
	URLs        []string

	// Verdicts.
	Status         string   // one of the Status constants
	VerdictChart   string   // 8 digits: AS AV AMP GM CF OF DLP MF (0 not run, 1 negative, 2 positive)
	Flags          []string // advanced filter flags that are true, by their API names, e.g. "virusPositive"
	ContentFilters []string // names of content filters that matched
	ThreatName     string   // virus or threat name, "" when none
	SPF, DKIM      string   // "pass", "fail", "none", …
	DMARC          string
	Quarantine     string // quarantine name when quarantined, else ""
}

// Recipient is one envelope recipient of a message.
type Recipient struct {
	RID     int
	Address string
	Status  string // per-recipient status, a Status constant
	Reply   string // the last SMTP reply from the next hop, if any
}

// Attachment is one attachment of a message.
type Attachment struct {
	Name   string
	Type   string // MIME type
	Size   int64
	SHA256 string // lowercase hex
	SHA1   string
	MD5    string
}
