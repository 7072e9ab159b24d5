package queue

import (
	"context"
	"time"

	"github.com/sightline/sightline/internal/gateway/mailflow"
)

// Spool is the queue's durable storage. Every method that changes state
// returns only once the change is on stable storage (fsynced). An
// implementation should batch concurrent calls into shared commits (group
// commit): Enqueue's throughput is the spool's commit rate times its batch size.
type Spool interface {
	// Add stores a new message with its raw bytes, in state StateNew (to be
	// screened) or StateQueued (to be delivered as is, all recipients
	// RcptPending). env.MID must be unique; a duplicate is a Conflict error.
	Add(ctx context.Context, env *mailflow.Envelope, data []byte, state string) error
	// Screened records the outcome of screening message mid: its next state,
	// and its new bytes when screening rewrote them.
	Screened(ctx context.Context, mid int64, d Disposition) error
	// Update applies the recipient states of one delivery attempt. When no
	// recipient remains pending or deferred the message and its bytes are
	// removed, and done is true.
	Update(ctx context.Context, mid int64, rcpts []RecipientState) (done bool, err error)
	// Remove deletes message mid and its bytes if it is in state, or in any
	// state when state is "". Otherwise it is a NotFound error.
	Remove(ctx context.Context, mid int64, state string) error
	// Release moves quarantined message mid to StateQueued with every
	// recipient pending. It is a NotFound error when mid is not quarantined.
	Release(ctx context.Context, mid int64) (*SpooledMessage, error)

	// Unfinished calls fn for every message in StateNew or StateQueued,
	// with the recipient states of queued messages, in MID order.
	Unfinished(ctx context.Context, fn func(*SpooledMessage) error) error
	// Message returns message mid without its bytes, NotFound when absent.
	Message(ctx context.Context, mid int64) (*SpooledMessage, error)
	// Body returns the current bytes of message mid, NotFound when absent.
	Body(ctx context.Context, mid int64) ([]byte, error)
	// Quarantined lists quarantined messages, newest first; name "" means
	// every quarantine; limit <= 0 means no limit.
	Quarantined(ctx context.Context, name string, offset, limit int) ([]*SpooledMessage, error)
	// Counts reports how many messages are in each state.
	Counts(ctx context.Context) (SpoolCounts, error)
}

// Message states in the spool.
const (
	StateNew         = "new"         // accepted, not yet screened
	StateQueued      = "queued"      // screened, some recipients pending or deferred
	StateQuarantined = "quarantined" // held in a quarantine until released or deleted
)

// Recipient states in the spool. Delivered and bounced are final.
const (
	RcptPending   = "pending"
	RcptDeferred  = "deferred"
	RcptDelivered = "delivered"
	RcptBounced   = "bounced"
)

// Disposition is what screening decided for a spooled message.
type Disposition struct {
	// State is StateQueued (deliver) or StateQuarantined.
	State string
	// Data replaces the message's bytes when not nil.
	Data []byte
	// Quarantine, Status and Reason describe a quarantined message.
	Quarantine string
	Status     string
	Reason     string
	// Subject is the decoded subject, kept to list quarantined messages.
	Subject string
}

// RecipientState is the delivery state of one recipient (RID) of a message.
type RecipientState struct {
	RID         int
	Address     string
	State       string    // one of the Rcpt constants
	Attempts    int       // delivery attempts so far
	NextAttempt time.Time // for RcptDeferred: not before this time
	LastReply   string    // the last SMTP reply or error text
}

// SpooledMessage is one message as the spool holds it, without its bytes.
type SpooledMessage struct {
	Envelope   mailflow.Envelope
	State      string
	Recipients []RecipientState // for StateQueued; nil for StateNew

	// For StateQuarantined.
	Quarantine    string
	Status        string
	Reason        string
	Subject       string
	QuarantinedAt time.Time
}

// SpoolCounts is the number of messages in each state.
type SpoolCounts struct {
	New         int // not yet screened
	Queued      int // waiting for or in delivery
	Deferred    int // queued messages with at least one deferred recipient
	Quarantined int
}
