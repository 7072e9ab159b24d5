package tracking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Sink receives every event the Recorder handles, in stream order, from a
// single goroutine; mail_logs is one. WriteEvent should not block for long.
type Sink interface {
	WriteEvent(Event)
}

// Recorder defaults.
const (
	DefaultMaxBatch = 1000
	DefaultMaxDelay = 50 * time.Millisecond
	queueSize       = 1 << 14
	applyAttempts   = 5
)

// Recorder is the gateway's tracking writer. It takes events (it is an
// Emitter) and saved records through one ordered queue and writes them to a
// Store in batches, one Apply per batch, from a single goroutine, so that
// everything lands in the order submitted: a status event submitted after a
// Save of its MID applies to that record. Each event is also handed to the
// Sink, in the same order.
//
// Run must be running for Emit and Save to make progress: while the queue is
// full they block, which pushes back on the sessions producing events.
type Recorder struct {
	// MaxBatch is the most records and events in one Apply; zero means
	// DefaultMaxBatch. MaxDelay is the longest an item waits for its batch to
	// fill; zero means DefaultMaxDelay. Set them before Run.
	MaxBatch int
	MaxDelay time.Duration

	store  Store
	sink   Sink
	logger *slog.Logger

	queue   chan item
	mu      sync.RWMutex // held for reading while submitting; for writing to close the queue
	closed  bool
	started atomic.Bool
	done    chan struct{} // closed when the writer has stopped
	err     error         // the last batch lost, read after done
}

type item struct {
	msg *Message
	ev  Event
}

// NewRecorder returns a Recorder writing to s and, when sink is not nil,
// passing events to sink. A nil logger discards.
func NewRecorder(s Store, sink Sink, logger *slog.Logger) *Recorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{
		store:  s,
		sink:   sink,
		logger: logger.With("component", "tracking_recorder"),
		queue:  make(chan item, queueSize),
		done:   make(chan struct{}),
	}
}

// Emit queues ev. It implements Emitter.
func (r *Recorder) Emit(ev Event) { r.submit(item{ev: ev}) }

// Save queues the record m, which replaces any earlier record of its MID.
// The Recorder owns m from then on: the caller must not change it.
func (r *Recorder) Save(m *Message) {
	if m != nil {
		r.submit(item{msg: m})
	}
}

func (r *Recorder) submit(it item) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.logger.Warn("tracking item after close dropped", "mid", it.mid())
		return
	}
	r.queue <- it
}

func (it item) mid() int64 {
	if it.msg != nil {
		return it.msg.MID
	}
	return it.ev.MID
}

// Run writes batches until Close is called or ctx is done, and then writes
// what is still queued before returning: nothing submitted before is lost
// unless the store keeps failing. It returns the error of the last batch it
// could not write, if any. Writes are not cancelled with ctx.
func (r *Recorder) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("tracking recorder: Run called twice")
	}
	defer close(r.done)
	stop := context.AfterFunc(ctx, r.closeQueue)
	defer stop()
	r.loop(ctx)
	return r.err
}

// Close stops taking items, waits until everything queued is written and
// returns the error of the last batch that could not be written, if any.
// Items submitted after Close are dropped. When Run was never called, Close
// writes the queue itself.
func (r *Recorder) Close() error {
	r.closeQueue()
	if r.started.CompareAndSwap(false, true) {
		r.loop(context.Background())
		close(r.done)
	}
	<-r.done
	return r.err
}

func (r *Recorder) closeQueue() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
}

// loop is the single writer: it drains the queue into batches.
func (r *Recorder) loop(ctx context.Context) {
	maxBatch, maxDelay := r.MaxBatch, r.MaxDelay
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	if maxDelay <= 0 {
		maxDelay = DefaultMaxDelay
	}
	var b pending
	timer := time.NewTimer(maxDelay)
	timer.Stop()
	defer timer.Stop()
	for {
		var it item
		var ok bool
		if b.n == 0 {
			it, ok = <-r.queue
		} else {
			select {
			case it, ok = <-r.queue:
			case <-timer.C:
				r.flush(ctx, &b)
				continue
			}
		}
		if !ok {
			r.flush(ctx, &b)
			return
		}
		// A record must not be written before a status event of its MID
		// that was submitted earlier: Apply writes records first.
		if it.msg != nil && b.statusMIDs[it.msg.MID] {
			r.flush(ctx, &b)
		}
		if b.n == 0 {
			timer.Reset(maxDelay)
		}
		if it.msg != nil {
			b.batch.Messages = append(b.batch.Messages, it.msg)
		} else {
			b.batch.Events = append(b.batch.Events, it.ev)
			if it.ev.Status != "" {
				if b.statusMIDs == nil {
					b.statusMIDs = make(map[int64]bool)
				}
				b.statusMIDs[it.ev.MID] = true
			}
			if r.sink != nil {
				r.sink.WriteEvent(it.ev)
			}
		}
		b.n++
		if b.n >= maxBatch {
			r.flush(ctx, &b)
		}
	}
}

// pending is the batch being filled.
type pending struct {
	batch      Batch
	n          int
	statusMIDs map[int64]bool // MIDs with a status event in batch
}

// flush writes b, retrying a failing store a few times while ctx lasts, and
// empties it. A batch that cannot be written is logged and counted lost.
func (r *Recorder) flush(ctx context.Context, b *pending) {
	if b.n == 0 {
		return
	}
	wctx := context.WithoutCancel(ctx)
	var err error
	backoff := 10 * time.Millisecond
	for attempt := 1; attempt <= applyAttempts; attempt++ {
		if err = r.store.Apply(wctx, b.batch); err == nil {
			break
		}
		if attempt == applyAttempts || ctx.Err() != nil {
			break
		}
		r.logger.Warn("tracking batch write failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff *= 4
	}
	if err != nil {
		r.err = fmt.Errorf("tracking batch of %d records and %d events lost: %w", len(b.batch.Messages), len(b.batch.Events), err)
		r.logger.Error("tracking batch lost", "records", len(b.batch.Messages), "events", len(b.batch.Events), "err", err)
	}
	*b = pending{}
}
