package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/tracking"
)

// screen runs the Screener on a new message and carries out its verdict.
// When screening or the spool fails, the message stays new and is screened
// again after RetryMin.
func (q *Queue) screen(ctx context.Context, r *runner, it *item) {
	env, data := it.env, it.data
	if data == nil {
		var err error
		if data, err = q.Spool.Body(ctx, env.MID); err != nil {
			q.screenFailed(ctx, r, env, err)
			return
		}
	}
	v, err := q.Screener.Screen(ctx, env, data)
	if err == nil && v == nil {
		err = fmt.Errorf("screener returned no verdict")
	}
	if err != nil {
		q.screenFailed(ctx, r, env, err)
		return
	}
	rec := v.Record
	if rec == nil { // the recorder always gets a record to update
		rec = &tracking.Message{MID: env.MID, ICID: env.ICID, Status: tracking.StatusInProgress}
	}
	switch v.Action {
	case mailflow.Deliver:
		err = q.screenedDeliver(ctx, r, env, data, v, rec)
	case mailflow.Quarantine:
		err = q.screenedQuarantine(ctx, env, v, rec)
	case mailflow.Drop:
		err = q.screenedDrop(ctx, env, v, rec)
	case mailflow.Bounce:
		err = q.screenedBounce(ctx, r, env, data, v, rec)
	default:
		err = fmt.Errorf("unknown verdict action %q", v.Action)
	}
	if err != nil {
		q.screenFailed(ctx, r, env, err)
	}
}

// screenFailed logs err and screens the message again after RetryMin,
// unless the Run is ending (the next Run resumes it from the spool) or the
// message is no longer in the spool.
func (q *Queue) screenFailed(ctx context.Context, r *runner, env *mailflow.Envelope, err error) {
	if ctx.Err() != nil {
		return
	}
	if sightline.ErrorKind(err) == sightline.NotFound {
		q.forget(env.MID)
		return
	}
	q.logger().Warn("screening failed, will retry", "mid", env.MID, "retry_in", q.retryMin(), "err", err)
	q.emit(tracking.Event{Level: tracking.Warning, MID: env.MID,
		Log: fmt.Sprintf("MID %d screening failed, retrying in %s: %v", env.MID, q.retryMin(), err)})
	time.AfterFunc(q.retryMin(), func() { q.push(r.gen, &q.screenQ, &item{env: env}) })
}

func (q *Queue) screenedDeliver(ctx context.Context, r *runner, env *mailflow.Envelope, data []byte, v *mailflow.Verdict, rec *tracking.Message) error {
	q.Recorder.Save(rec)
	if err := q.Spool.Screened(ctx, env.MID, Disposition{State: StateQueued, Data: v.Data}); err != nil {
		return err
	}
	if v.Data != nil {
		data = v.Data
	}
	q.emit(tracking.Event{MID: env.MID,
		Summary: fmt.Sprintf("Message %d queued for delivery.", env.MID),
		Log:     fmt.Sprintf("MID %d queued for delivery", env.MID)})
	q.dispatch(ctx, r, &item{env: env, data: data, rcpts: pendingRecipients(env)})
	return nil
}

func (q *Queue) screenedQuarantine(ctx context.Context, env *mailflow.Envelope, v *mailflow.Verdict, rec *tracking.Message) error {
	name := v.Quarantine
	if name == "" {
		name = "Policy"
	}
	rec.Status, rec.Quarantine = v.Status, name
	q.Recorder.Save(rec)
	d := Disposition{State: StateQuarantined, Data: v.Data, Quarantine: name, Status: v.Status, Reason: v.Reason, Subject: rec.Subject}
	if err := q.Spool.Screened(ctx, env.MID, d); err != nil {
		return err
	}
	q.forget(env.MID)
	q.emit(tracking.Event{MID: env.MID, Status: v.Status,
		Summary: fmt.Sprintf("Message %d quarantined in %s quarantine.", env.MID, name),
		Log:     fmt.Sprintf("MID %d quarantined to %q (%s)", env.MID, name, v.Reason)})
	return nil
}

func (q *Queue) screenedDrop(ctx context.Context, env *mailflow.Envelope, v *mailflow.Verdict, rec *tracking.Message) error {
	rec.Status = v.Status
	q.Recorder.Save(rec)
	if err := q.Spool.Remove(ctx, env.MID, StateNew); err != nil {
		return err
	}
	q.forget(env.MID)
	engine := engineOf(v.Status)
	q.emit(tracking.Event{MID: env.MID, Status: v.Status,
		Summary: fmt.Sprintf("Message %d dropped by %s.", env.MID, engine),
		Log:     fmt.Sprintf("MID %d dropped by %s: %s", env.MID, engine, v.Reason)})
	q.emitFinished(env.MID)
	return nil
}

func (q *Queue) screenedBounce(ctx context.Context, r *runner, env *mailflow.Envelope, data []byte, v *mailflow.Verdict, rec *tracking.Message) error {
	status := v.Status
	if status == "" {
		status = tracking.StatusBounced
	}
	rec.Status = status
	q.Recorder.Save(rec)
	reason := v.Reason
	if reason == "" {
		reason = "message refused by policy"
	}
	reply := attemptError{Code: 550, Text: "5.7.1 " + reason, Permanent: true}
	var fails []failure
	for _, rc := range pendingRecipients(env) {
		q.emitBounced(env.MID, 0, rc, reply.String(), status)
		fails = append(fails, failure{Rcpt: rc.Address, Err: reply})
	}
	q.bounce(ctx, r, env, data, fails)
	if err := q.Spool.Remove(ctx, env.MID, StateNew); err != nil {
		return err
	}
	q.forget(env.MID)
	q.emitFinished(env.MID)
	return nil
}

// pendingRecipients lists every recipient of env as pending.
func pendingRecipients(env *mailflow.Envelope) []RecipientState {
	rs := make([]RecipientState, len(env.Recipients))
	for i, a := range env.Recipients {
		rs[i] = RecipientState{RID: i, Address: a, State: RcptPending}
	}
	return rs
}

// engineOf names the engine of a status such as "Dropped by Content
// Filter": the words after "by".
func engineOf(status string) string {
	for _, sep := range []string{" by ", " By "} {
		if _, engine, ok := strings.Cut(status, sep); ok && engine != "" {
			return engine
		}
	}
	return "policy"
}
