package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/queue"
)

func openTestSpool(t *testing.T) *Spool {
	t.Helper()
	s, err := OpenSpool(context.Background(), filepath.Join(t.TempDir(), "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addTestMessage(ctx context.Context, s *Spool, mid int64) error {
	env := &mailflow.Envelope{MID: mid, ICID: 1, ReceivedAt: time.Unix(1700000000, 0).UTC(),
		MailFrom: "a@sender.test", Recipients: []string{"b@corp.test"}, Size: 5}
	return s.Add(ctx, env, []byte("hello"), queue.StateNew)
}

// A writer alone is never held for others, however long the hold: one SMTP
// session at a time must not wait for company.
func TestSpoolLoneWriterNotHeld(t *testing.T) {
	s := openTestSpool(t)
	s.gatherDelay = time.Hour
	for mid := range int64(10) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := addTestMessage(ctx, s, mid+1)
		cancel()
		if err != nil {
			t.Fatalf("Add of message %d alone: %v (held for others?)", mid+1, err)
		}
	}
	if st := s.Stats(); st.Commits != 10 {
		t.Errorf("Stats().Commits = %d after 10 Adds one after another, want 10", st.Commits)
	}
}

// A held batch takes the operations that arrive while it is held: twenty
// Adds submitted a couple of milliseconds apart share one commit.
func TestSpoolHeldBatchGathers(t *testing.T) {
	s := openTestSpool(t)
	s.gatherMin, s.gatherDelay = 1, 2*time.Second
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { errs[i] = addTestMessage(ctx, s, int64(i+1)) })
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Add of message %d: %v", i+1, err)
		}
	}
	if st := s.Stats(); st.Commits != 1 || st.Operations != 20 {
		t.Errorf("Stats() = %+v, want the 20 Adds in 1 commit", st)
	}
}

// A pipeline step waits for an operation with a client behind it and
// commits with it; with no company it commits once spoolStepDelay is over.
func TestSpoolStepWaitsForCompany(t *testing.T) {
	ctx := context.Background()
	s := openTestSpool(t)
	s.stepDelay = time.Hour
	if err := addTestMessage(ctx, s, 1); err != nil {
		t.Fatal(err)
	}
	screened := make(chan error, 1)
	go func() { screened <- s.Screened(ctx, 1, queue.Disposition{State: queue.StateQueued}) }()
	time.Sleep(50 * time.Millisecond) // time enough to commit alone, were it not held
	if err := addTestMessage(ctx, s, 2); err != nil {
		t.Fatal(err)
	}
	if err := <-screened; err != nil {
		t.Fatalf("Screened: %v", err)
	}
	if st := s.Stats(); st.Commits != 2 || st.Operations != 3 {
		t.Errorf("Stats() = %+v, want 2 commits: the first Add, then the second with the step", st)
	}

	s.stepDelay = 10 * time.Millisecond
	done, err := s.Update(ctx, 1, []queue.RecipientState{{RID: 0, State: queue.RcptDelivered, LastReply: "250 ok"}})
	if err != nil || !done {
		t.Fatalf("Update alone = %v, %v; want true, nil", done, err)
	}
	if st := s.Stats(); st.Commits != 3 {
		t.Errorf("Stats().Commits = %d, want 3: the step alone commits after its delay", st.Commits)
	}
}

// The writer's connection is renewed (spoolConnLifetime); the operations'
// prepared statements follow it and nothing written is lost.
func TestSpoolWriterRenewed(t *testing.T) {
	ctx := context.Background()
	s := openTestSpool(t)
	s.db.W.SetConnMaxLifetime(time.Millisecond)
	for mid := range int64(5) {
		if err := addTestMessage(ctx, s, mid+1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
		if err := s.Screened(ctx, mid+1, queue.Disposition{State: queue.StateQueued}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	if n := s.db.W.Stats().MaxLifetimeClosed; n == 0 {
		t.Fatalf("writer connection never renewed")
	}
	c, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Queued != 5 {
		t.Errorf("Counts().Queued = %d, want 5", c.Queued)
	}
}
