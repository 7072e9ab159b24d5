package tracking

import "time"

// Level of an event line in mail_logs.
type Level string

// Levels as AsyncOS prints them.
const (
	Info     Level = "Info"
	Warning  Level = "Warning"
	Critical Level = "Critical"
	Debug    Level = "Debug"
)

// Event is one step in the life of a connection or a message. It is the single
// stream that both Message Tracking and mail_logs are made from, so the API,
// the GUI and a grep of the log always agree.
type Event struct {
	Time  time.Time
	Level Level // Info when empty

	ICID int64 // incoming connection, 0 when none
	MID  int64 // message, 0 for connection-only events
	DCID int64 // delivery connection, 0 when none

	// Summary is the sentence shown in Message Tracking's details, in the
	// AsyncOS wording (gateway-api.md §6); empty for log-only lines.
	Summary string
	// Log is the mail_logs text after "Level: " (gateway-api.md §9); empty for
	// tracking-only events.
	Log string

	// Status, when set, is the message's new tracking status (messageStatus),
	// e.g. StatusDelivered; applied after every earlier event of the stream.
	Status string
	// Recipient, with Status, narrows the status change to one recipient.
	Recipient string
	// Reply is the next hop's SMTP reply that came with a recipient's status.
	Reply string
}

// Emitter receives events. Emit must not block on slow storage for long: the
// implementation batches writes. It is safe for concurrent use.
type Emitter interface {
	Emit(Event)
}

// EmitterFunc adapts a function to the Emitter interface.
type EmitterFunc func(Event)

// Emit calls f(ev).
func (f EmitterFunc) Emit(ev Event) { f(ev) }
