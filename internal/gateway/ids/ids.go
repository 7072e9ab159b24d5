// Package ids allocates the gateway's AsyncOS identifiers: ICID (incoming
// connection), MID (message), DCID (delivery connection) and RCID (transfer to
// a quarantine). Each counter starts at 1, only grows, and is never reused,
// even across restarts or crashes.
//
// Values are reserved from durable storage in blocks, so the hot path is a
// mutex and an increment; a restart skips what was left of the last block.
package ids

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Counter names.
const (
	ICID = "icid"
	MID  = "mid"
	DCID = "dcid"
	RCID = "rcid"
)

// Reserver durably reserves the next n values of a named counter and returns
// the first of them; the counter then resumes after first+n-1.
type Reserver interface {
	Reserve(ctx context.Context, name string, n int64) (first int64, err error)
}

// Allocator hands out identifiers. It is safe for concurrent use.
type Allocator struct {
	store  Reserver
	block  int64
	logger *slog.Logger

	mu       sync.Mutex
	counters map[string]*span
}

type span struct{ next, end int64 } // next value, and one past the last reserved

// New returns an Allocator reserving block values at a time (0 means 1000).
func New(store Reserver, block int64, logger *slog.Logger) *Allocator {
	if block <= 0 {
		block = 1000
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Allocator{store: store, block: block, logger: logger, counters: make(map[string]*span)}
}

// Next returns the next value of the named counter.
func (a *Allocator) Next(ctx context.Context, name string) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.counters[name]
	if s == nil {
		s = &span{}
		a.counters[name] = s
	}
	if s.next == s.end {
		first, err := a.store.Reserve(ctx, name, a.block)
		if err != nil {
			return 0, fmt.Errorf("reserve %s ids: %w", name, err)
		}
		s.next, s.end = first, first+a.block
	}
	v := s.next
	s.next++
	return v, nil
}

// must returns the next value, retrying a failing store until it answers:
// an identifier must never be reused, so there is no fallback value.
func (a *Allocator) must(name string) int64 {
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		v, err := a.Next(context.Background(), name)
		if err == nil {
			return v
		}
		a.logger.Error("cannot allocate identifier", "counter", name, "err", err)
		time.Sleep(delay)
	}
}

// NextICID returns a new incoming connection ID.
func (a *Allocator) NextICID() int64 { return a.must(ICID) }

// NextMID returns a new message ID.
func (a *Allocator) NextMID() int64 { return a.must(MID) }

// NextDCID returns a new delivery connection ID.
func (a *Allocator) NextDCID() int64 { return a.must(DCID) }

// NextRCID returns a new quarantine transfer ID.
func (a *Allocator) NextRCID() int64 { return a.must(RCID) }
