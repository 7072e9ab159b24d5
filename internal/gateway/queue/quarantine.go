package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
)

// QuarantinedMessage is one message held in a quarantine.
type QuarantinedMessage struct {
	MID           int64
	Quarantine    string
	Status        string // the tracking status screening gave it
	Reason        string
	Subject       string
	From          string   // envelope sender
	To            []string // envelope recipients
	Size          int64
	ReceivedAt    time.Time
	QuarantinedAt time.Time
}

// Quarantined lists the messages of quarantine name ("" for all), newest
// first, skipping offset and returning at most limit (<= 0: all).
func (q *Queue) Quarantined(ctx context.Context, name string, offset, limit int) ([]QuarantinedMessage, error) {
	ms, err := q.Spool.Quarantined(ctx, name, offset, limit)
	if err != nil {
		return nil, fmt.Errorf("queue: list quarantine %q: %w", name, err)
	}
	out := make([]QuarantinedMessage, len(ms))
	for i, m := range ms {
		out[i] = QuarantinedMessage{
			MID:           m.Envelope.MID,
			Quarantine:    m.Quarantine,
			Status:        m.Status,
			Reason:        m.Reason,
			Subject:       m.Subject,
			From:          m.Envelope.MailFrom,
			To:            m.Envelope.Recipients,
			Size:          m.Envelope.Size,
			ReceivedAt:    m.Envelope.ReceivedAt,
			QuarantinedAt: m.QuarantinedAt,
		}
	}
	return out, nil
}

// Release takes message mid out of its quarantine and queues it for
// delivery as it is (it is not screened again, or it would be quarantined
// again). A message that is not quarantined is a NotFound error.
func (q *Queue) Release(ctx context.Context, mid int64) error {
	m, err := q.Spool.Release(ctx, mid)
	if err != nil {
		return fmt.Errorf("queue: release message %d: %w", mid, err)
	}
	q.emit(tracking.Event{MID: mid,
		Summary: fmt.Sprintf("Message %d released from quarantine %s.", mid, m.Quarantine),
		Log:     fmt.Sprintf("MID %d released from quarantine %s", mid, m.Quarantine)})
	q.emit(tracking.Event{MID: mid,
		Summary: fmt.Sprintf("Message %d queued for delivery.", mid),
		Log:     fmt.Sprintf("MID %d queued for delivery", mid)})
	var rcpts []RecipientState
	for _, rc := range m.Recipients {
		if rc.State == RcptPending || rc.State == RcptDeferred {
			rcpts = append(rcpts, rc)
		}
	}
	env := m.Envelope
	q.push(0, &q.deliverQ, &item{env: &env, rcpts: rcpts})
	return nil
}

// Delete removes message mid from its quarantine for good. A message that
// is not quarantined is a NotFound error.
func (q *Queue) Delete(ctx context.Context, mid int64) error {
	m, err := q.Spool.Message(ctx, mid)
	if err == nil && m.State != StateQuarantined {
		err = sightline.Errorf(sightline.NotFound, "message %d is not quarantined", mid)
	}
	if err == nil {
		err = q.Spool.Remove(ctx, mid, StateQuarantined)
	}
	if err != nil {
		return fmt.Errorf("queue: delete message %d: %w", mid, err)
	}
	q.emit(tracking.Event{MID: mid,
		Summary: fmt.Sprintf("Message %d deleted from quarantine %s.", mid, m.Quarantine),
		Log:     fmt.Sprintf("MID %d deleted from quarantine %s", mid, m.Quarantine)})
	q.emitFinished(mid)
	return nil
}

// Stats is the state of the queue for the Monitor page.
type Stats struct {
	Depth       int // messages in the queue: not yet screened or not yet delivered
	Unscreened  int // accepted and waiting for screening
	InDelivery  int // delivery attempts in progress or waiting for a connection
	Deferred    int // messages with a recipient waiting for a retry
	Quarantined int
}

// Stats reports the queue's depth and states.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	c, err := q.Spool.Counts(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	return Stats{
		Depth:       c.New + c.Queued,
		Unscreened:  c.New,
		InDelivery:  int(q.inDelivery.Load()),
		Deferred:    c.Deferred,
		Quarantined: c.Quarantined,
	}, nil
}
