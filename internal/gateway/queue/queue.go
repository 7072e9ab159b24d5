// Package queue is the gateway's durable mail queue: it stores accepted
// messages in a spool before the SMTP edge answers 250, screens them, and
// delivers, retries, bounces or quarantines them, emitting every step as a
// tracking event in the AsyncOS wording (gateway-api.md §6, §9).
//
// A message moves through the spool states new (accepted) → queued (screened,
// recipients pending or deferred) → gone (every recipient delivered or
// bounced), or new → quarantined → queued on release. After a crash, Run
// resumes every message that is not finished; screening is repeated for
// messages that were not yet screened.
package queue

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/tracking"
)

// Screener screens one message into a Verdict. It may be called again for the
// same message after a crash, so it must be idempotent.
type Screener interface {
	Screen(ctx context.Context, env *mailflow.Envelope, data []byte) (*mailflow.Verdict, error)
}

// Recorder stores tracking records (mailflow.Verdict.Record).
type Recorder interface {
	Save(*tracking.Message)
}

// IDs hands out identifiers that are unique per gateway and never reused.
type IDs interface {
	NextDCID() int64
	NextMID() int64
}

// Mailbox delivers to the built-in local mailbox. An error of kind
// sightline.Invalid or sightline.NotFound is permanent (the recipient
// bounces); any other error defers the recipient.
type Mailbox interface {
	Deliver(ctx context.Context, rcpt string, env *mailflow.Envelope, data []byte) (reply string, err error)
}

// MXResolver looks up the mail exchangers of a domain, as *net.Resolver does.
type MXResolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// Route sends the mail of a recipient domain to fixed next hops or to the
// domain's MX hosts (an AsyncOS SMTP route).
type Route struct {
	// Domain is "example.com" (that domain only), ".example.com" (its
	// subdomains) or "ALL" (every domain without a more specific route).
	Domain string
	// Hosts are "host:port" (or "host", port 25) in preference order, or the
	// single word "USEDNS" for an MX lookup of the recipient's domain.
	Hosts []string
	// TLS is "none", "opportunistic" (STARTTLS when offered, certificate not
	// verified) or "required" (STARTTLS with a verified certificate, else the
	// delivery is deferred). "" means "opportunistic".
	TLS string
}

// TLS settings of a Route.
const (
	TLSNone          = "none"
	TLSOpportunistic = "opportunistic"
	TLSRequired      = "required"
)

// Queue is the gateway's queue. Set the fields, then call Run; Enqueue may be
// called before Run starts (messages wait in the spool). Fields must not
// change once Run or Enqueue has been called, except routes via SetRoutes.
type Queue struct {
	Spool    Spool            // required: durable storage
	Screener Screener         // required
	Recorder Recorder         // required: receives Verdict.Record
	Events   tracking.Emitter // required
	IDs      IDs              // required: DCIDs, and MIDs for bounces
	Mailbox  Mailbox          // local delivery when no route matches; nil defers such mail
	Resolver MXResolver       // MX lookups for "USEDNS"; nil means net.DefaultResolver

	// Hostname names the gateway in EHLO and in bounces; "" means os.Hostname.
	Hostname string
	// Workers is the number of concurrent screenings; 0 means 2*GOMAXPROCS.
	Workers int
	// Lifetime is the longest a message stays queued before it bounces as
	// expired; 0 means 5 days.
	Lifetime time.Duration
	// RetryMin and RetryMax bound the jittered exponential backoff between
	// delivery attempts; 0 means 1 minute and 1 hour.
	RetryMin, RetryMax time.Duration
	// PerDestination limits concurrent connections to one next hop; 0 means 10.
	PerDestination int
	// DialTimeout bounds a TCP connect; 0 means 30 seconds.
	DialTimeout time.Duration
	// CommandTimeout bounds each read and write on a delivery connection;
	// 0 means 5 minutes (RFC 5321 §4.5.3.2).
	CommandTimeout time.Duration
	// IdleTimeout is how long an idle delivery connection stays open for
	// the next message to the same next hop; 0 means 5 seconds.
	IdleTimeout time.Duration

	Logger *slog.Logger // nil means discard

	routes     atomic.Pointer[[]Route]
	inDelivery atomic.Int64

	mu       sync.Mutex
	gen      uint64         // incremented by each Run; stale timers check it
	running  bool           // a Run is in progress
	known    map[int64]bool // MIDs held in memory: screening, delivering or deferred
	screenQ  fifo
	deliverQ fifo
}

// item is one unit of work: a message to screen, or recipients to deliver.
type item struct {
	env   *mailflow.Envelope
	data  []byte           // nil means read it from the spool
	rcpts []RecipientState // for delivery: the recipients to attempt
}

// SetRoutes replaces the SMTP routes; deliveries that start afterwards use
// the new ones. It is safe to call at any time.
func (q *Queue) SetRoutes(routes []Route) {
	r := make([]Route, len(routes))
	copy(r, routes)
	q.routes.Store(&r)
}

// Enqueue stores an accepted message and returns once it is durable; the SMTP
// edge answers 250 only after a nil return. Concurrent calls share commits. If
// ctx ends first the message may still have been stored; the edge then
// answers 4xx and the sender may send it again.
func (q *Queue) Enqueue(ctx context.Context, env *mailflow.Envelope, data []byte) error {
	if env == nil || env.MID <= 0 {
		return sightline.Errorf(sightline.Invalid, "queue: message without a MID")
	}
	if len(env.Recipients) == 0 {
		return sightline.Errorf(sightline.Invalid, "queue: message %d has no recipients", env.MID)
	}
	if err := q.Spool.Add(ctx, env, data, StateNew); err != nil {
		return fmt.Errorf("queue: enqueue message %d: %w", env.MID, err)
	}
	q.push(0, &q.screenQ, &item{env: env, data: data})
	return nil
}

// push hands it to f unless its message is already held in memory. gen,
// when not 0, is the Run generation the caller belongs to: a stale one
// (a timer of an earlier Run) drops the item.
func (q *Queue) push(gen uint64, f *fifo, it *item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if gen != 0 {
		if gen != q.gen || !q.running {
			return
		}
	} else if !q.claimLocked(it.env.MID) {
		return
	}
	f.push(it)
}

// claimLocked marks mid as held in memory; false when it already was.
func (q *Queue) claimLocked(mid int64) bool {
	if q.known == nil {
		q.known = make(map[int64]bool)
	}
	if q.known[mid] {
		return false
	}
	q.known[mid] = true
	return true
}

// forget drops mid from memory once it needs no more work.
func (q *Queue) forget(mid int64) {
	q.mu.Lock()
	delete(q.known, mid)
	q.mu.Unlock()
}

// Run resumes the unfinished messages of the spool, then screens and
// delivers until ctx is done. It returns nil after ctx ends and every
// delivery in progress has stopped, or an error if the spool cannot be read.
// Only one Run may be in progress at a time.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	if q.running {
		q.mu.Unlock()
		return sightline.Errorf(sightline.Conflict, "queue: already running")
	}
	q.running = true
	q.gen++
	r := &runner{gen: q.gen, dests: make(map[string]*destination)}
	// Start from the spool: what was pushed before is in it too.
	q.known = make(map[int64]bool)
	q.screenQ.reset()
	q.deliverQ.reset()
	q.inDelivery.Store(0)
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.running = false
		q.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range q.workers() {
		r.wg.Go(func() {
			for {
				it, ok := q.screenQ.pop(ctx)
				if !ok {
					return
				}
				q.screen(ctx, r, it)
			}
		})
	}
	r.wg.Go(func() {
		for {
			it, ok := q.deliverQ.pop(ctx)
			if !ok {
				return
			}
			q.dispatch(ctx, r, it)
		}
	})

	err := q.Spool.Unfinished(ctx, func(m *SpooledMessage) error {
		env := m.Envelope
		if m.State == StateNew {
			q.push(0, &q.screenQ, &item{env: &env})
			return nil
		}
		var now, later []RecipientState
		for _, rc := range m.Recipients {
			switch {
			case rc.State == RcptPending:
				now = append(now, rc)
			case rc.State == RcptDeferred && time.Until(rc.NextAttempt) <= 0:
				now = append(now, rc)
			case rc.State == RcptDeferred:
				later = append(later, rc)
			}
		}
		q.mu.Lock()
		claimed := q.claimLocked(env.MID)
		q.mu.Unlock()
		if !claimed {
			return nil
		}
		if len(now) > 0 {
			q.deliverQ.push(&item{env: &env, rcpts: now})
		}
		q.retryLater(r, &env, later)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		cancel()
		r.wg.Wait()
		return fmt.Errorf("queue: resume from spool: %w", err)
	}
	<-ctx.Done()
	r.wg.Wait()
	return nil
}

// retryLater schedules another delivery of the deferred rcpts of env at the
// earliest of their next attempt times. No-op for an empty list.
func (q *Queue) retryLater(r *runner, env *mailflow.Envelope, rcpts []RecipientState) {
	if len(rcpts) == 0 {
		return
	}
	next := rcpts[0].NextAttempt
	for _, rc := range rcpts[1:] {
		if rc.NextAttempt.Before(next) {
			next = rc.NextAttempt
		}
	}
	time.AfterFunc(time.Until(next), func() {
		q.push(r.gen, &q.deliverQ, &item{env: env, rcpts: rcpts})
	})
}

// backoff returns the delay before attempt number attempts+1, jittered in
// [¾d, d] where d doubles from RetryMin up to RetryMax.
func (q *Queue) backoff(attempts int) time.Duration {
	lo, hi := q.retryMin(), q.retryMax()
	d := lo
	for i := 1; i < attempts && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	d -= time.Duration(rand.Int64N(int64(d)/4 + 1))
	return max(d, lo)
}

func (q *Queue) workers() int {
	if q.Workers > 0 {
		return q.Workers
	}
	return 2 * runtime.GOMAXPROCS(0)
}

func (q *Queue) lifetime() time.Duration { return orDefault(q.Lifetime, 120*time.Hour) }
func (q *Queue) retryMin() time.Duration { return orDefault(q.RetryMin, time.Minute) }
func (q *Queue) retryMax() time.Duration {
	return max(orDefault(q.RetryMax, time.Hour), q.retryMin())
}
func (q *Queue) dialTimeout() time.Duration    { return orDefault(q.DialTimeout, 30*time.Second) }
func (q *Queue) commandTimeout() time.Duration { return orDefault(q.CommandTimeout, 5*time.Minute) }
func (q *Queue) idleTimeout() time.Duration    { return orDefault(q.IdleTimeout, 5*time.Second) }

func (q *Queue) perDestination() int {
	if q.PerDestination > 0 {
		return q.PerDestination
	}
	return 10
}

func (q *Queue) hostname() string {
	if q.Hostname != "" {
		return q.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

func (q *Queue) logger() *slog.Logger {
	if q.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return q.Logger.With("component", "queue")
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// emit sends one event stamped now.
func (q *Queue) emit(ev tracking.Event) {
	ev.Time = time.Now()
	if ev.Level == "" {
		ev.Level = tracking.Info
	}
	q.Events.Emit(ev)
}

// domainOf returns the lowercased domain of an address, "" when it has none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// fifo is an unbounded first-in first-out list of items that consumers wait on.
type fifo struct {
	mu    sync.Mutex
	items []*item
	ready chan struct{} // holds a token while items may be waiting
}

func (f *fifo) init() {
	if f.ready == nil {
		f.ready = make(chan struct{}, 1)
	}
}

func (f *fifo) push(it *item) {
	f.mu.Lock()
	f.init()
	f.items = append(f.items, it)
	f.mu.Unlock()
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

func (f *fifo) reset() {
	f.mu.Lock()
	f.items = nil
	f.mu.Unlock()
}

// pop waits for an item; false when ctx ends first.
func (f *fifo) pop(ctx context.Context) (*item, bool) {
	for {
		f.mu.Lock()
		f.init()
		ready := f.ready
		if len(f.items) > 0 {
			it := f.items[0]
			f.items[0] = nil
			f.items = f.items[1:]
			more := len(f.items) > 0
			f.mu.Unlock()
			if more { // pass the wake-up on to the next consumer
				select {
				case ready <- struct{}{}:
				default:
				}
			}
			return it, true
		}
		f.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, false
		}
	}
}
