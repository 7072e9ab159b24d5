package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/store/sqlite"
)

func mustOpenSpool(tb testing.TB, path string) *sqlite.Spool {
	tb.Helper()
	s, err := sqlite.OpenSpool(context.Background(), path)
	if err != nil {
		tb.Fatalf("OpenSpool(%q): %v", path, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func testEnvelope(mid int64, rcpts ...string) *mailflow.Envelope {
	return &mailflow.Envelope{MID: mid, ICID: 7, ReceivedAt: time.Unix(1700000000, 0).UTC(),
		MailFrom: "a@sender.test", Recipients: rcpts, Size: 5}
}

func TestSpoolGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := mustOpenSpool(t, filepath.Join(t.TempDir(), "spool.db"))
	const n = 200
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			errs <- s.Add(ctx, testEnvelope(int64(i+1), "b@corp.test"), []byte("hello"), queue.StateNew)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	st := s.Stats()
	if st.Operations != n {
		t.Errorf("Stats().Operations = %d, want %d", st.Operations, n)
	}
	if st.Commits >= n {
		t.Errorf("Stats().Commits = %d for %d concurrent Adds, want fewer commits than Adds (group commit)", st.Commits, n)
	}
	c, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.New != n {
		t.Errorf("Counts().New = %d, want %d", c.New, n)
	}
}

// A failing operation in a batch must not take the others down.
func TestSpoolFailedOpIsolated(t *testing.T) {
	ctx := context.Background()
	s := mustOpenSpool(t, filepath.Join(t.TempDir(), "spool.db"))
	if err := s.Add(ctx, testEnvelope(1, "b@corp.test"), []byte("x"), queue.StateNew); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Go(func() {
			mid := int64(i + 2)
			if i%2 == 0 {
				mid = 1 // duplicate
			}
			results[i] = s.Add(ctx, testEnvelope(mid, "b@corp.test"), []byte("x"), queue.StateNew)
		})
	}
	wg.Wait()
	for i, err := range results {
		if i%2 == 0 && sightline.ErrorKind(err) != sightline.Conflict {
			t.Errorf("Add(duplicate MID 1) = %v, want a Conflict error", err)
		}
		if i%2 == 1 && err != nil {
			t.Errorf("Add(MID %d) = %v, want nil", i+2, err)
		}
	}
	c, _ := s.Counts(ctx)
	if c.New != 11 {
		t.Errorf("Counts().New = %d, want 11", c.New)
	}
}

func TestSpoolLifecycle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s := mustOpenSpool(t, path)
	env := testEnvelope(10, "x@corp.test", "y@corp.test")
	if err := s.Add(ctx, env, []byte("original"), queue.StateNew); err != nil {
		t.Fatal(err)
	}
	if err := s.Screened(ctx, 10, queue.Disposition{State: queue.StateQueued, Data: []byte("rewritten")}); err != nil {
		t.Fatalf("Screened: %v", err)
	}
	if err := s.Screened(ctx, 10, queue.Disposition{State: queue.StateQueued}); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("Screened twice = %v, want NotFound", err)
	}
	body, err := s.Body(ctx, 10)
	if err != nil || string(body) != "rewritten" {
		t.Errorf("Body(10) = %q, %v, want %q", body, err, "rewritten")
	}
	next := time.Unix(1700000600, 0)
	done, err := s.Update(ctx, 10, []queue.RecipientState{
		{RID: 0, Address: "x@corp.test", State: queue.RcptDelivered, Attempts: 1, LastReply: "2.0.0 Ok"},
		{RID: 1, Address: "y@corp.test", State: queue.RcptDeferred, Attempts: 1, NextAttempt: next, LastReply: "451 4.3.0 later"},
	})
	if err != nil || done {
		t.Fatalf("Update = %v, %v, want false, nil", done, err)
	}
	s.Close()

	// What a restart sees.
	s = mustOpenSpool(t, path)
	var got []*queue.SpooledMessage
	if err := s.Unfinished(ctx, func(m *queue.SpooledMessage) error { got = append(got, m); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []*queue.SpooledMessage{{
		Envelope: *env,
		State:    queue.StateQueued,
		Recipients: []queue.RecipientState{
			{RID: 0, Address: "x@corp.test", State: queue.RcptDelivered, Attempts: 1, LastReply: "2.0.0 Ok"},
			{RID: 1, Address: "y@corp.test", State: queue.RcptDeferred, Attempts: 1, NextAttempt: next, LastReply: "451 4.3.0 later"},
		},
	}}
	if diff := cmp.Diff(want, got, cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("Unfinished() mismatch (-want +got):\n%s", diff)
	}
	c, _ := s.Counts(ctx)
	if diff := cmp.Diff(queue.SpoolCounts{Queued: 1, Deferred: 1}, c); diff != "" {
		t.Errorf("Counts() mismatch (-want +got):\n%s", diff)
	}
	done, err = s.Update(ctx, 10, []queue.RecipientState{{RID: 1, State: queue.RcptBounced, Attempts: 2, LastReply: "550 no"}})
	if err != nil || !done {
		t.Fatalf("last Update = %v, %v, want true, nil", done, err)
	}
	if _, err := s.Body(ctx, 10); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("Body of a finished message = %v, want NotFound", err)
	}
	if _, err := s.Update(ctx, 10, []queue.RecipientState{{RID: 1, State: queue.RcptBounced}}); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("Update of a finished message = %v, want NotFound", err)
	}
}

func TestSpoolQuarantine(t *testing.T) {
	ctx := context.Background()
	s := mustOpenSpool(t, filepath.Join(t.TempDir(), "spool.db"))
	for mid := int64(1); mid <= 3; mid++ {
		if err := s.Add(ctx, testEnvelope(mid, "x@corp.test"), []byte("m"), queue.StateNew); err != nil {
			t.Fatal(err)
		}
		name := "Policy"
		if mid == 3 {
			name = "Virus"
		}
		d := queue.Disposition{State: queue.StateQuarantined, Quarantine: name, Status: "Quarantined by Content Filter",
			Reason: "filter matched", Subject: fmt.Sprint("subject ", mid)}
		if err := s.Screened(ctx, mid, d); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name          string
		quarantine    string
		offset, limit int
		want          []int64
	}{
		{"all", "", 0, 0, []int64{3, 2, 1}},
		{"one quarantine", "Policy", 0, 0, []int64{2, 1}},
		{"page", "", 1, 1, []int64{2}},
		{"unknown", "Spam", 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := s.Quarantined(ctx, tt.quarantine, tt.offset, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, m := range ms {
				got = append(got, m.Envelope.MID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Quarantined(%q, %d, %d) mismatch (-want +got):\n%s", tt.quarantine, tt.offset, tt.limit, diff)
			}
		})
	}
	m, err := s.Release(ctx, 1)
	if err != nil {
		t.Fatalf("Release(1): %v", err)
	}
	if m.State != queue.StateQueued || m.Quarantine != "Policy" || len(m.Recipients) != 1 || m.Recipients[0].State != queue.RcptPending {
		t.Errorf("Release(1) = %+v, want queued from Policy with one pending recipient", m)
	}
	if _, err := s.Release(ctx, 1); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("Release(1) twice = %v, want NotFound", err)
	}
	if err := s.Remove(ctx, 1, queue.StateQuarantined); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("Remove(released message, quarantined) = %v, want NotFound", err)
	}
	if err := s.Remove(ctx, 2, queue.StateQuarantined); err != nil {
		t.Errorf("Remove(2, quarantined) = %v", err)
	}
	c, _ := s.Counts(ctx)
	if diff := cmp.Diff(queue.SpoolCounts{Queued: 1, Quarantined: 1}, c); diff != "" {
		t.Errorf("Counts() mismatch (-want +got):\n%s", diff)
	}
}

func BenchmarkSpoolAdd(b *testing.B) {
	for _, par := range []int{1, 20, 100} {
		b.Run(fmt.Sprint("parallel=", par), func(b *testing.B) {
			s := mustOpenSpool(b, filepath.Join(b.TempDir(), "spool.db"))
			data := make([]byte, 4096)
			var next sync.Mutex
			var mid int64
			b.SetParallelism(par)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					next.Lock()
					mid++
					m := mid
					next.Unlock()
					if err := s.Add(context.Background(), testEnvelope(m, "b@corp.test"), data, queue.StateNew); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
			st := s.Stats()
			b.ReportMetric(float64(st.Operations)/float64(max(st.Commits, 1)), "msgs/commit")
		})
	}
}
