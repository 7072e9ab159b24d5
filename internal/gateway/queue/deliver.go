package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/tracking"
)

// runner is the state of one Run: its generation and its destinations.
type runner struct {
	gen uint64
	wg  sync.WaitGroup // every goroutine of the Run

	mu    sync.Mutex
	dests map[string]*destination
}

// job is one delivery attempt: recipients of one message with one next hop.
type job struct {
	env   *mailflow.Envelope
	data  []byte
	rcpts []RecipientState
}

// destination is one next hop: a route's hosts, a domain's MX hosts, or the
// local mailbox. Up to PerDestination workers each hold one connection and
// take jobs from pending; an idle worker closes its connection after
// IdleTimeout.
type destination struct {
	q      *Queue
	r      *runner
	route  Route
	domain string // for USEDNS
	local  bool

	mu      sync.Mutex
	pending []*job
	workers int
	waiting int           // workers blocked in next
	wake    chan struct{} // one token per waiting worker woken by submit
}

// dispatch groups the recipients of it by destination and queues one job
// per destination.
func (q *Queue) dispatch(ctx context.Context, r *runner, it *item) {
	jobs := make(map[*destination]*job)
	var order []*destination
	for _, rc := range it.rcpts {
		d := r.destination(q, domainOf(rc.Address))
		j := jobs[d]
		if j == nil {
			j = &job{env: it.env, data: it.data}
			jobs[d] = j
			order = append(order, d)
		}
		j.rcpts = append(j.rcpts, rc)
	}
	for _, d := range order {
		q.inDelivery.Add(1)
		d.submit(ctx, jobs[d])
	}
}

// destination returns the destination of a recipient domain, creating it.
func (r *runner) destination(q *Queue, domain string) *destination {
	route, ok := q.route(domain)
	var key string
	switch {
	case !ok:
		key = "local"
	case len(route.Hosts) == 1 && strings.EqualFold(route.Hosts[0], "USEDNS"):
		key = "mx|" + domain + "|" + route.TLS
	default:
		key = "hosts|" + strings.Join(route.Hosts, ",") + "|" + route.TLS
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dests[key]
	if d == nil {
		d = &destination{q: q, r: r, route: route, domain: domain, local: !ok,
			wake: make(chan struct{}, q.perDestination())}
		r.dests[key] = d
	}
	return d
}

// route finds the route of domain: an exact match, else the longest
// ".suffix" match, else "ALL".
func (q *Queue) route(domain string) (Route, bool) {
	p := q.routes.Load()
	if p == nil {
		return Route{}, false
	}
	var best Route
	bestLen := -1
	for _, rt := range *p {
		d := strings.ToLower(rt.Domain)
		switch {
		case d == domain:
			return rt, true
		case strings.HasPrefix(d, ".") && strings.HasSuffix(domain, d) && len(d) > bestLen:
			best, bestLen = rt, len(d)
		case d == "all" && bestLen < 0:
			best, bestLen = rt, 0
		}
	}
	return best, bestLen >= 0
}

func (d *destination) submit(ctx context.Context, j *job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = append(d.pending, j)
	if d.waiting > 0 {
		d.waiting--
		d.wake <- struct{}{} // never blocks: cap is the most workers there can be
		return
	}
	if d.workers < d.q.perDestination() {
		d.workers++
		d.r.wg.Go(func() { d.work(ctx) })
	}
}

// work delivers jobs one after another, reusing its connection.
func (d *destination) work(ctx context.Context) {
	var c *smtpConn
	defer func() {
		if c != nil {
			d.q.closeConn(c)
		}
	}()
	for {
		j := d.next(ctx)
		if j == nil {
			return
		}
		c = d.q.deliver(ctx, d, c, j)
		d.q.inDelivery.Add(-1)
	}
}

// next returns the next job, or nil when the worker has been idle for
// IdleTimeout or ctx is done; the worker then exits.
func (d *destination) next(ctx context.Context) *job {
	idle := time.NewTimer(d.q.idleTimeout())
	defer idle.Stop()
	d.mu.Lock()
	for {
		if len(d.pending) > 0 {
			j := d.pending[0]
			d.pending[0] = nil
			d.pending = d.pending[1:]
			d.mu.Unlock()
			return j
		}
		d.waiting++
		d.mu.Unlock()
		select {
		case <-d.wake: // submit counted us out of waiting
			d.mu.Lock()
			continue
		case <-idle.C:
		case <-ctx.Done():
		}
		d.mu.Lock()
		select {
		case <-d.wake: // a token sent for a waiting worker: take its job
			continue
		default:
		}
		d.waiting--
		d.workers--
		d.mu.Unlock()
		return nil
	}
}

// deliver attempts job j, on c when it is not nil, and returns the
// connection to keep for the next job (nil when none).
func (q *Queue) deliver(ctx context.Context, d *destination, c *smtpConn, j *job) *smtpConn {
	if j.data == nil {
		data, err := q.Spool.Body(ctx, j.env.MID)
		if err != nil {
			if ctx.Err() == nil && sightline.ErrorKind(err) != sightline.NotFound {
				q.logger().Error("read spooled message", "mid", j.env.MID, "err", err)
				q.record(ctx, d.r, j, 0, failAll(j, attemptError{Text: "4.3.0 spool read error"}))
			}
			return c
		}
		j.data = data
	}
	if d.local {
		q.deliverLocal(ctx, d.r, j)
		return nil
	}
	return q.deliverSMTP(ctx, d, c, j)
}

// deliverLocal hands each recipient of j to the Mailbox.
func (q *Queue) deliverLocal(ctx context.Context, r *runner, j *job) {
	dcid := q.IDs.NextDCID()
	q.emitStart(dcid, j)
	outs := make([]outcome, len(j.rcpts))
	var delivered []RecipientState
	for i, rc := range j.rcpts {
		outs[i].rc = rc
		if q.Mailbox == nil {
			outs[i].err = &attemptError{Text: "4.3.0 no route to " + domainOf(rc.Address) + " and no local mailbox"}
			continue
		}
		reply, err := q.Mailbox.Deliver(ctx, rc.Address, j.env, j.data)
		if err != nil {
			k := sightline.ErrorKind(err)
			outs[i].err = &attemptError{Text: "4.3.0 local delivery failed: " + sightline.ErrorMessage(err)}
			if k == sightline.Invalid || k == sightline.NotFound {
				outs[i].err = &attemptError{Code: 550, Text: "5.1.1 " + sightline.ErrorMessage(err), Permanent: true}
			}
			continue
		}
		outs[i].reply = reply
		delivered = append(delivered, rc)
	}
	q.emitDelivered(dcid, j, delivered, outs)
	q.record(ctx, r, j, dcid, outs)
}

// outcome is the result of one delivery attempt for one recipient.
type outcome struct {
	rc    RecipientState
	reply string        // the accepting reply when delivered
	err   *attemptError // nil when delivered
}

// attemptError is a failed attempt: an SMTP reply from the next hop (Code
// set), or a local or network failure (Code 0).
type attemptError struct {
	Code      int
	Text      string // with its enhanced status code first when there is one
	Permanent bool
	RemoteMTA string // the next hop that answered, when known
}

func (e *attemptError) Error() string { return e.String() }

func (e attemptError) String() string {
	if e.Code != 0 {
		return strconv.Itoa(e.Code) + " " + e.Text
	}
	return e.Text
}

func failAll(j *job, err attemptError) []outcome {
	outs := newOutcomes(j)
	for i := range outs {
		outs[i].err = &err
	}
	return outs
}

// newOutcomes returns one outcome per recipient of j, none decided.
func newOutcomes(j *job) []outcome {
	outs := make([]outcome, len(j.rcpts))
	for i, rc := range j.rcpts {
		outs[i].rc = rc
	}
	return outs
}

// record stores the outcomes of an attempt, emits the deferral and bounce
// events, schedules retries, sends the DSN, and finishes the message when
// every recipient is final.
func (q *Queue) record(ctx context.Context, r *runner, j *job, dcid int64, outs []outcome) {
	if ctx.Err() != nil {
		return // the Run is ending: the spool still says what is left to do
	}
	now := time.Now()
	expiry := j.env.ReceivedAt.Add(q.lifetime())
	updates := make([]RecipientState, len(outs))
	var deferred []RecipientState
	var fails []failure
	for i, o := range outs {
		rc := o.rc
		rc.Attempts++
		switch {
		case o.err == nil:
			rc.State, rc.LastReply = RcptDelivered, o.reply
		case o.err.Permanent:
			rc.State, rc.LastReply = RcptBounced, o.err.String()
			q.emitBounced(j.env.MID, dcid, rc, rc.LastReply, tracking.StatusHardBounced)
			fails = append(fails, failure{Rcpt: rc.Address, Err: *o.err})
		case !now.Before(expiry):
			rc.State, rc.LastReply = RcptBounced, o.err.String()
			expired := attemptError{Text: fmt.Sprintf("5.4.7 message expired after %d attempts, last error: %s", rc.Attempts, o.err)}
			q.emitBounced(j.env.MID, dcid, rc, expired.Text, tracking.StatusHardBounced)
			fails = append(fails, failure{Rcpt: rc.Address, Err: *o.err, Expired: true})
		default:
			rc.State, rc.LastReply = RcptDeferred, o.err.String()
			rc.NextAttempt = now.Add(q.backoff(rc.Attempts))
			if rc.NextAttempt.After(expiry) {
				rc.NextAttempt = expiry
			}
			deferred = append(deferred, rc)
			q.emitDelayed(j.env.MID, dcid, rc)
		}
		updates[i] = rc
	}
	done, err := q.Spool.Update(ctx, j.env.MID, updates)
	if err != nil {
		if ctx.Err() == nil {
			q.logger().Error("record delivery attempt", "mid", j.env.MID, "err", err)
			// The spool still holds the attempt's recipients as they were:
			// try them again later rather than lose track of them.
			var again []RecipientState
			for _, u := range updates {
				if u.State != RcptDelivered {
					u.NextAttempt = now.Add(q.backoff(u.Attempts))
					again = append(again, u)
				}
			}
			q.retryLater(r, j.env, again)
		}
		return
	}
	if len(fails) > 0 {
		q.bounce(ctx, r, j.env, j.data, fails)
	}
	if done {
		q.forget(j.env.MID)
		q.emitFinished(j.env.MID)
		return
	}
	q.retryLater(r, j.env, deferred)
}

// Events, in the wording of gateway-api.md §6 and §9.

func (q *Queue) emitStart(dcid int64, j *job) {
	q.emit(tracking.Event{MID: j.env.MID, DCID: dcid,
		Log: fmt.Sprintf("Delivery start DCID %d MID %d to RID %s", dcid, j.env.MID, ridList(j.rcpts))})
	for _, rc := range j.rcpts {
		q.emit(tracking.Event{MID: j.env.MID, DCID: dcid,
			Summary: fmt.Sprintf("(DCID %d) Delivery started for message %d to %s.", dcid, j.env.MID, rc.Address)})
	}
}

// emitDelivered emits the done line for the delivered recipients and then
// each recipient's response, which sets its status to Delivered.
func (q *Queue) emitDelivered(dcid int64, j *job, delivered []RecipientState, outs []outcome) {
	if len(delivered) == 0 {
		return
	}
	mid := j.env.MID
	pairs := []string{fmt.Sprintf("('from', '%s')", j.env.MailFrom)}
	for _, rc := range delivered {
		pairs = append(pairs, fmt.Sprintf("('to', '%s')", rc.Address))
	}
	list := "[" + strings.Join(pairs, ", ") + "]"
	q.emit(tracking.Event{MID: mid, DCID: dcid,
		Log: fmt.Sprintf("Message done DCID %d MID %d to RID %s %s", dcid, mid, ridList(delivered), list)})
	for _, rc := range delivered {
		q.emit(tracking.Event{MID: mid, DCID: dcid,
			Summary: fmt.Sprintf("(DCID %d) Delivery details: Message %d sent to %s [('from', '%s'), ('to', '%s')]",
				dcid, mid, rc.Address, j.env.MailFrom, rc.Address)})
	}
	for _, o := range outs {
		if o.err != nil {
			continue
		}
		q.emit(tracking.Event{MID: mid, DCID: dcid,
			Status: tracking.StatusDelivered, Recipient: o.rc.Address, Reply: o.reply,
			Summary: fmt.Sprintf("Message %d to %s received remote SMTP response '%s'.", mid, o.rc.Address, stripEnhanced(o.reply)),
			Log:     fmt.Sprintf("MID %d RID [%d] Response '%s'", mid, o.rc.RID, o.reply)})
	}
}

func (q *Queue) emitDelayed(mid, dcid int64, rc RecipientState) {
	q.emit(tracking.Event{MID: mid, DCID: dcid,
		Status: tracking.StatusSoftBounced, Recipient: rc.Address, Reply: rc.LastReply,
		Summary: fmt.Sprintf("Message %d to %s delayed: %s.", mid, rc.Address, rc.LastReply),
		Log:     fmt.Sprintf("Delayed: DCID %d MID %d to RID [%d] - %s", dcid, mid, rc.RID, rc.LastReply)})
}

func (q *Queue) emitBounced(mid, dcid int64, rc RecipientState, reply, status string) {
	q.emit(tracking.Event{MID: mid, DCID: dcid,
		Status: status, Recipient: rc.Address, Reply: reply,
		Summary: fmt.Sprintf("Message %d to %s bounced: %s.", mid, rc.Address, reply),
		Log:     fmt.Sprintf("Bounced: DCID %d MID %d to RID [%d] - %s", dcid, mid, rc.RID, reply)})
}

func (q *Queue) emitFinished(mid int64) {
	q.emit(tracking.Event{MID: mid, Log: fmt.Sprintf("Message finished MID %d done", mid)})
}

// ridList formats RIDs as AsyncOS does: "[0]", "[0, 1]".
func ridList(rcpts []RecipientState) string {
	ids := make([]string, len(rcpts))
	for i, rc := range rcpts {
		ids[i] = strconv.Itoa(rc.RID)
	}
	return "[" + strings.Join(ids, ", ") + "]"
}

// stripEnhanced drops a leading enhanced status code ("2.0.0 ") from reply.
func stripEnhanced(reply string) string {
	code, rest, ok := strings.Cut(reply, " ")
	if ok && enhancedCode(code) {
		return rest
	}
	return reply
}

// enhancedCode reports whether s is an RFC 3463 status code like "5.1.1".
func enhancedCode(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.ContainsAny(parts[0], "245") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}
