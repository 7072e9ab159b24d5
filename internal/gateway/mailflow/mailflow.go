// Package mailflow holds the types that pass between the gateway's stages: the
// Envelope the SMTP edge fills, and the Verdict the screening pipeline returns.
//
// The SMTP edge fills an Envelope, the queue stores it beside the raw message,
// the pipeline screens both into a Verdict, and the queue carries it out.
package mailflow

import (
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// Direction of a message relative to the organisation the gateway protects.
const (
	Incoming = "incoming"
	Outgoing = "outgoing"
)

// Envelope is one accepted SMTP transaction.
type Envelope struct {
	ICID int64 // incoming connection ID
	MID  int64 // message ID, unique per gateway

	ReceivedAt time.Time // when the 250 reply was sent
	Direction  string    // Incoming, or Outgoing when the session relayed or authenticated

	// The connection.
	Listener       string // listener (interface) name, e.g. "Data1"
	ClientIP       string // canonical text form
	ClientPort     int
	HELO           string
	ReverseDNS     string // PTR name, "" when none
	ReverseDNSOK   bool   // forward-confirmed
	SenderGroup    string // HAT sender group, e.g. "ACCEPTLIST"
	MailFlowPolicy string // mail flow policy name, e.g. "ACCEPTED", "RELAYED"
	TLS            string // "TLSv1.3 TLS_AES_128_GCM_SHA256", "" when plain
	AuthID         string // SMTP AUTH identity, "" when none

	// The envelope.
	MailFrom   string   // reverse path, "" for the null sender
	Recipients []string // forward paths in RCPT order; index = RID
	Size       int64    // bytes of the message as received
}

// Action is what the gateway does with a screened message.
type Action string

// The final actions (gateway-api.md §8).
const (
	Deliver    Action = "deliver"
	Quarantine Action = "quarantine"
	Drop       Action = "drop"
	Bounce     Action = "bounce"
)

// Verdict is the outcome of screening one message.
type Verdict struct {
	Action Action
	// Data is the message to deliver or quarantine when screening changed it
	// (added headers, tagged subject); nil means unchanged.
	Data []byte
	// Quarantine names the quarantine for Action Quarantine, e.g. "Policy".
	Quarantine string
	// Status is the tracking status for the action, e.g.
	// "Quarantined by Content Filter"; empty for Deliver.
	Status string
	// Reason explains a Drop, Bounce or Quarantine in words, for the bounce
	// text and the logs, e.g. "content filter 'block_exe' matched".
	Reason string
	// Record is the searchable tracking record built while screening:
	// envelope, headers, attachments, URLs and verdicts. Its Status is
	// StatusInProgress until delivery or the final action sets it.
	Record *tracking.Message
}
