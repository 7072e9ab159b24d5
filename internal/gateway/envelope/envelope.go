// Package envelope defines what the gateway knows about a message from its SMTP
// transaction: the connection it came on, its envelope and its identifiers.
//
// The SMTP edge fills an Envelope, the queue stores it beside the raw message,
// and the screening pipeline and delivery read it.
package envelope

import "time"

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
	MailFlowPolicy string // e.g. "ACCEPT", "RELAY"
	TLS            string // "TLSv1.3 TLS_AES_128_GCM_SHA256", "" when plain
	AuthID         string // SMTP AUTH identity, "" when none

	// The envelope.
	MailFrom   string   // reverse path, "" for the null sender
	Recipients []string // forward paths in RCPT order; index = RID
	Size       int64    // bytes of the message as received
}
