package tracking_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/tracking"
)

// sinkFunc collects what a Recorder passes to its sink.
type sinkFunc func(tracking.Event)

func (f sinkFunc) WriteEvent(ev tracking.Event) { f(ev) }

func details(t *testing.T, s tracking.Store, mid int64) (*tracking.Message, []string) {
	t.Helper()
	m, evs, err := s.Details(context.Background(), mid)
	if err != nil {
		t.Fatalf("Details(%d): %v", mid, err)
	}
	var sums []string
	for _, ev := range evs {
		sums = append(sums, ev.Summary)
	}
	return m, sums
}

func TestRecorderOrdering(t *testing.T) {
	s := openStore(t)
	var sunk []string
	r := tracking.NewRecorder(s, sinkFunc(func(ev tracking.Event) { sunk = append(sunk, ev.Summary) }), nil)
	// One batch for everything unless the Recorder cuts it.
	r.MaxBatch, r.MaxDelay = 1000, time.Hour
	rcpt := []tracking.Recipient{{Address: "x@corp.example"}}

	// Receipt events come before the record.
	r.Emit(tracking.Event{Time: t0, ICID: 1, Summary: "connection 1"})
	r.Emit(tracking.Event{Time: t0, ICID: 1, MID: 1, Summary: "start 1"})
	r.Save(&tracking.Message{MID: 1, ICID: 1, InjectedAt: t0, Recipients: rcpt})
	r.Emit(tracking.Event{Time: t0, MID: 1, Summary: "delivered 1", Status: tracking.StatusDelivered, Recipient: "x@corp.example"})

	// A status event submitted before the record changes nothing: the
	// record submitted after it wins.
	r.Emit(tracking.Event{Time: t0, MID: 2, Summary: "dropped 2", Status: tracking.StatusDroppedAV})
	r.Save(&tracking.Message{MID: 2, ICID: 1, InjectedAt: t0, Recipients: rcpt})

	// A record saved again replaces the first one, and later events apply to it.
	r.Save(&tracking.Message{MID: 3, InjectedAt: t0, Subject: "first", Recipients: rcpt})
	r.Save(&tracking.Message{MID: 3, InjectedAt: t0, Subject: "second", Recipients: rcpt})
	r.Emit(tracking.Event{Time: t0, MID: 3, Summary: "bounced 3", Status: tracking.StatusHardBounced, Recipient: "x@corp.example"})

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	tests := []struct {
		mid         int64
		wantStatus  string
		wantSummary []string
	}{
		{1, tracking.StatusDelivered, []string{"connection 1", "start 1", "delivered 1"}},
		{2, tracking.StatusInProgress, []string{"connection 1", "dropped 2"}},
		{3, tracking.StatusHardBounced, []string{"bounced 3"}},
	}
	for _, tt := range tests {
		m, sums := details(t, s, tt.mid)
		if m.Status != tt.wantStatus || !cmp.Equal(sums, tt.wantSummary) {
			t.Errorf("MID %d: status %q, events %q; want %q, %q", tt.mid, m.Status, sums, tt.wantStatus, tt.wantSummary)
		}
	}
	if m, _ := details(t, s, 3); m.Subject != "second" {
		t.Errorf("MID 3 subject = %q, want the second record's", m.Subject)
	}
	wantSunk := []string{"connection 1", "start 1", "delivered 1", "dropped 2", "bounced 3"}
	if diff := cmp.Diff(wantSunk, sunk); diff != "" {
		t.Errorf("sink events (-want +got):\n%s", diff)
	}
	r.Emit(tracking.Event{MID: 1, Summary: "after close"}) // dropped, must not panic or block
}

func TestRecorderConcurrentRunDrainsOnCancel(t *testing.T) {
	s := openStore(t)
	r := tracking.NewRecorder(s, nil, nil)
	r.MaxBatch = 64
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()

	const writers, perWriter = 8, 150
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mid := int64(w + 1)
			r.Save(&tracking.Message{MID: mid, InjectedAt: t0})
			for i := range perWriter {
				r.Emit(tracking.Event{Time: t0, MID: mid, Summary: fmt.Sprint(i)})
			}
		}()
	}
	wg.Wait()
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for w := range writers {
		_, sums := details(t, s, int64(w+1))
		want := make([]string, perWriter)
		for i := range want {
			want[i] = fmt.Sprint(i)
		}
		if diff := cmp.Diff(want, sums); diff != "" {
			t.Errorf("MID %d events (-want +got):\n%s", w+1, diff)
		}
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after Run: %v", err)
	}
}

// flakyStore fails its first Apply calls.
type flakyStore struct {
	tracking.Store
	mu    sync.Mutex
	fails int
}

func (f *flakyStore) Apply(ctx context.Context, b tracking.Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("database is locked")
	}
	return f.Store.Apply(ctx, b)
}

func TestRecorderRetriesFailingStore(t *testing.T) {
	tests := []struct {
		name    string
		fails   int
		wantErr bool
	}{
		{"recovers", 2, false},
		{"gives up", 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			r := tracking.NewRecorder(&flakyStore{Store: s, fails: tt.fails}, nil, nil)
			r.Save(&tracking.Message{MID: 1, InjectedAt: t0})
			err := r.Close()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Close = %v, want error %v", err, tt.wantErr)
			}
			_, _, derr := s.Details(context.Background(), 1)
			if (derr == nil) == tt.wantErr {
				t.Errorf("Details(1) = %v after Close = %v", derr, err)
			}
		})
	}
}
