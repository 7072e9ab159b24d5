package queue_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// BenchmarkEnqueue measures durable acceptance: P sessions each Enqueue
// 4 KiB messages and wait for the fsynced group commit. Run is not started,
// so the figure is the spool's, not delivery's.
func BenchmarkEnqueue(b *testing.B) {
	data := make([]byte, 4096)
	copy(data, "Subject: bench\r\n\r\n")
	for _, par := range []int{1, 20, 100} {
		b.Run(fmt.Sprint("sessions=", par), func(b *testing.B) {
			sp, err := sqlite.OpenSpool(context.Background(), filepath.Join(b.TempDir(), "spool.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer sp.Close()
			q := &queue.Queue{Spool: sp, Screener: deliverAll, Recorder: &recorder{}, Events: newEvents(), IDs: &ids{}}
			var mid atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			start := time.Now()
			for s := range par {
				n := b.N / par
				if s < b.N%par {
					n++
				}
				wg.Go(func() {
					for range n {
						m := mid.Add(1)
						env := &mailflow.Envelope{MID: m, MailFrom: "a@sender.test", Recipients: []string{"b@corp.test"}, Size: 4096}
						if err := q.Enqueue(context.Background(), env, data); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
			st := sp.Stats()
			b.ReportMetric(float64(st.Operations)/float64(max(st.Commits, 1)), "msgs/commit")
		})
	}
}

// TestPostfixNextHop delivers through a real Postfix (scripts/postfix-test.sh)
// and checks that the message came out of Postfix into its smtp-sink dump.
func TestPostfixNextHop(t *testing.T) {
	addr, dir := os.Getenv("SIGHTLINE_TEST_POSTFIX"), os.Getenv("SIGHTLINE_TEST_POSTFIX_SINKDIR")
	if addr == "" || dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SIGHTLINE_TEST_POSTFIX and SIGHTLINE_TEST_POSTFIX_SINKDIR must be set in CI (see scripts/postfix-test.sh)")
		}
		t.Skip("SIGHTLINE_TEST_POSTFIX or SIGHTLINE_TEST_POSTFIX_SINKDIR not set; see scripts/postfix-test.sh")
	}
	h := newHarness(t)
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{addr}}})
	h.run(t)
	mid := time.Now().UnixNano()
	env := &mailflow.Envelope{MID: mid, ReceivedAt: time.Now(), MailFrom: "a@sender.test", Recipients: []string{"x@corp.test"}}
	if err := h.q.Enqueue(context.Background(), env, testMessage(mid)); err != nil {
		t.Fatal(err)
	}
	list := h.events.waitLog(t, fmt.Sprintf("Message finished MID %d done", mid))
	var delivered bool
	for _, ev := range list {
		delivered = delivered || (ev.MID == mid && ev.Status == "Delivered")
	}
	if !delivered {
		t.Fatalf("Postfix did not accept MID %d:\n%s", mid, strings.Join(logLines(list), "\n"))
	}
	// Postfix relays on its own schedule: poll its sink's dump directory.
	want := fmt.Sprintf("Subject: hello %d", mid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil && strings.Contains(string(b), want) {
				if !strings.Contains(string(b), "Received: from") {
					t.Errorf("dump %s has no Received header from Postfix", e.Name())
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message with %q in %s after 30 s: it did not pass through Postfix", want, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
