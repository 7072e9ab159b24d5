package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// The child side of TestCrashLosesNoAcknowledgedMessage: it runs a queue
// delivering to the parent's sink and floods Enqueue from 20 goroutines,
// printing "ack <mid>" after each Enqueue returns, until it is killed.
func TestCrashChild(t *testing.T) {
	spoolPath, sinkAddr := os.Getenv("SIGHTLINE_QUEUE_CRASH_SPOOL"), os.Getenv("SIGHTLINE_QUEUE_CRASH_SINK")
	if spoolPath == "" {
		t.Skip("run by TestCrashLosesNoAcknowledgedMessage only")
	}
	ctx := context.Background()
	sp, err := sqlite.OpenSpool(ctx, spoolPath)
	if err != nil {
		t.Fatal(err)
	}
	q := &queue.Queue{Spool: sp, Screener: deliverAll, Recorder: &recorder{}, Events: newEvents(), IDs: &ids{}, Hostname: "gw.test"}
	q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sinkAddr}, TLS: queue.TLSNone}})
	go q.Run(ctx)
	var mid atomic.Int64
	var out sync.Mutex
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for {
				m := mid.Add(1)
				env := &mailflow.Envelope{MID: m, ReceivedAt: time.Now(), MailFrom: "a@sender.test", Recipients: []string{"x@corp.test"}}
				if err := q.Enqueue(ctx, env, testMessage(m)); err != nil {
					fmt.Fprintf(os.Stderr, "enqueue %d: %v\n", m, err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %d\n", m)
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

var subjectRE = regexp.MustCompile(`Subject: hello (\d+)\r\n`)

func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	sk := startSink(t)
	h := newHarness(t) // only for its spool path; reopened below
	h.spool.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SIGHTLINE_QUEUE_CRASH_SPOOL="+h.path, "SIGHTLINE_QUEUE_CRASH_SINK="+sk.addr)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := make(map[int64]bool)
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		mid, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(mid, 10, 64)
		if err != nil {
			continue // a line cut by the kill
		}
		acked[n] = true
		if len(acked) == 500 && !killed {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed: %v", err)
	}
	t.Logf("child acknowledged %d messages before SIGKILL; the sink had %d", len(acked), len(sk.msgs))
	t0 := time.Now()
	defer func() { t.Logf("recovery took %v", time.Since(t0)) }()

	// Restart on the same spool: every acknowledged message must arrive.
	sp, err := sqlite.OpenSpool(context.Background(), h.path)
	if err != nil {
		t.Fatalf("reopen spool after crash: %v", err)
	}
	t.Cleanup(func() { sp.Close() })
	h.spool = sp
	h.q.Spool = sp
	h.q.SetRoutes([]queue.Route{{Domain: "ALL", Hosts: []string{sk.addr}, TLS: queue.TLSNone}})
	h.run(t)

	deadline := time.After(30 * time.Second)
	for {
		sk.mu.Lock()
		got := make(map[int64]bool)
		for _, m := range sk.msgs {
			if sm := subjectRE.FindSubmatch(m.Data); sm != nil {
				n, _ := strconv.ParseInt(string(sm[1]), 10, 64)
				got[n] = true
			}
		}
		ch := sk.changed
		sk.mu.Unlock()
		var missing []int64
		for mid := range acked {
			if !got[mid] {
				missing = append(missing, mid)
			}
		}
		if len(missing) == 0 {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%d acknowledged messages never delivered after restart, e.g. MID %d", len(missing), missing[0])
		}
	}
	// Messages stored but never acknowledged (the child died between the
	// commit and the reply) are resumed too: the queue must drain them all.
	for {
		st, err := h.q.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Unscreened == 0 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("Stats().Unscreened = %d after recovery, want 0", st.Unscreened)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
