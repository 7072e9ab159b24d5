package tracking

import "time"

// Overview summarises the mail a gateway handled since a moment, for
// Monitor > Overview.
type Overview struct {
	Hours      []HourCount // per hour with mail, oldest first
	TopSenders []Count     // envelope senders with the most messages, most first
	TopThreats []Count     // virus and content-filter names, most first
}

// HourCount counts messages injected in the hour starting at Start, by
// outcome. Messages still in progress count in none.
type HourCount struct {
	Start                                    time.Time
	Delivered, Quarantined, Dropped, Bounced int
}

// Count is a name with how many messages it concerns.
type Count struct {
	Name  string
	Count int
}
