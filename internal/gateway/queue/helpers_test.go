package queue_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

// sink is a real SMTP next hop on loopback that records what it accepts.
type sink struct {
	addr string
	srv  *smtp.Server

	// rcpt, when set, answers RCPT TO (nil accepts).
	rcpt func(to string) error

	mu      sync.Mutex
	conns   int
	msgs    []sinkMsg
	changed chan struct{}
}

type sinkMsg struct {
	From string
	To   []string
	Data []byte
}

func startSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startSinkOn(t, ln)
}

func startSinkOn(t *testing.T, ln net.Listener) *sink {
	return startSinkIdle(t, ln, 10*time.Second)
}

// startSinkIdle starts a sink that drops a connection idle for idle.
func startSinkIdle(t *testing.T, ln net.Listener, idle time.Duration) *sink {
	s := &sink{addr: ln.Addr().String(), changed: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &sinkSession{s: s}, nil
	}))
	s.srv.Domain = "sink.test"
	s.srv.ErrorLog = log.New(io.Discard, "", 0) // a killed child resets its connections
	s.srv.ReadTimeout = idle
	s.srv.WriteTimeout = 10 * time.Second
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

type sinkSession struct {
	s    *sink
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.rcpt != nil {
		if err := ss.s.rcpt(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, sinkMsg{From: ss.from, To: ss.to, Data: data})
	close(ss.s.changed)
	ss.s.changed = make(chan struct{})
	ss.s.mu.Unlock()
	return nil
}

// waitMsgs waits until the sink holds n messages and returns them.
func (s *sink) waitMsgs(t *testing.T, n int) []sinkMsg {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		msgs, ch := append([]sinkMsg(nil), s.msgs...), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("sink %s got %d messages, want %d", s.addr, len(msgs), n)
		}
	}
}

func (s *sink) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// events collects the event stream.
type events struct {
	mu      sync.Mutex
	list    []tracking.Event
	changed chan struct{}
}

func newEvents() *events { return &events{changed: make(chan struct{})} }

func (e *events) Emit(ev tracking.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

func (e *events) snapshot() ([]tracking.Event, chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]tracking.Event(nil), e.list...), e.changed
}

// waitLog waits for a mail_logs line equal to line, and returns all events.
func (e *events) waitLog(t *testing.T, line string) []tracking.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		list, ch := e.snapshot()
		for _, ev := range list {
			if ev.Log == line {
				return list
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no log line %q in:\n%s", line, strings.Join(logLines(list), "\n"))
		}
	}
}

// logLines returns the Log texts of list, in order, skipping empty ones.
func logLines(list []tracking.Event) []string {
	var out []string
	for _, ev := range list {
		if ev.Log != "" {
			out = append(out, ev.Log)
		}
	}
	return out
}

func summaries(list []tracking.Event, mid int64) []string {
	var out []string
	for _, ev := range list {
		if ev.MID == mid && ev.Summary != "" {
			out = append(out, ev.Summary)
		}
	}
	return out
}

type recorder struct {
	mu   sync.Mutex
	recs map[int64]tracking.Message
}

func (r *recorder) Save(m *tracking.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recs == nil {
		r.recs = make(map[int64]tracking.Message)
	}
	r.recs[m.MID] = *m
}

func (r *recorder) get(mid int64) (tracking.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.recs[mid]
	return m, ok
}

type ids struct{ dcid, mid atomic.Int64 }

func (i *ids) NextDCID() int64 { return i.dcid.Add(1) }
func (i *ids) NextMID() int64  { return 1000 + i.mid.Add(1) }

type screenFunc func(env *mailflow.Envelope, data []byte) (*mailflow.Verdict, error)

func (f screenFunc) Screen(_ context.Context, env *mailflow.Envelope, data []byte) (*mailflow.Verdict, error) {
	return f(env, data)
}

// deliverAll is a Screener that delivers everything unchanged.
var deliverAll = screenFunc(func(env *mailflow.Envelope, _ []byte) (*mailflow.Verdict, error) {
	return &mailflow.Verdict{Action: mailflow.Deliver, Record: &tracking.Message{MID: env.MID, Status: tracking.StatusInProgress}}, nil
})

type harness struct {
	q      *queue.Queue
	spool  *sqlite.Spool
	events *events
	rec    *recorder
	path   string
}

// newHarness returns a queue on a fresh spool with short retry timers.
// Adjust h.q, then call h.run.
func newHarness(t *testing.T) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spool.db")
	sp, err := sqlite.OpenSpool(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	h := &harness{spool: sp, events: newEvents(), rec: &recorder{}, path: path}
	h.q = &queue.Queue{
		Spool:          sp,
		Screener:       deliverAll,
		Recorder:       h.rec,
		Events:         h.events,
		IDs:            &ids{},
		Hostname:       "gw.test",
		RetryMin:       50 * time.Millisecond,
		RetryMax:       200 * time.Millisecond,
		DialTimeout:    2 * time.Second,
		CommandTimeout: 10 * time.Second,
		IdleTimeout:    time.Second,
	}
	return h
}

// run starts Run and stops it when the test ends.
func (h *harness) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	})
}

var nextMID atomic.Int64

// enqueue queues a small message and returns its MID.
func (h *harness) enqueue(t *testing.T, from string, rcpts ...string) int64 {
	t.Helper()
	mid := nextMID.Add(1)
	env := &mailflow.Envelope{MID: mid, ICID: 1, ReceivedAt: time.Now(), MailFrom: from, Recipients: rcpts}
	if err := h.q.Enqueue(context.Background(), env, testMessage(mid)); err != nil {
		t.Fatalf("Enqueue(MID %d): %v", mid, err)
	}
	return mid
}

func testMessage(mid int64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <a@sender.test>\r\nTo: <x@corp.test>\r\nSubject: hello %d\r\nMessage-ID: <%d@sender.test>\r\n\r\nbody of message %d\r\n", mid, mid, mid)
	return b.Bytes()
}

// rawHop is a hand-written next hop for the pipelining tests. Offering
// PIPELINING, it answers MAIL, RCPT and DATA only once it has read DATA, so
// that a client waiting for each reply gets nowhere. Not offering it, it
// refuses with 503 any command sent before the previous reply. Like Postfix,
// it refuses a MAIL inside a transaction (which RSET or a delivered message
// ends), and DATA without a recipient.
type rawHop struct {
	addr       string
	pipelining bool
	refuse     string // RCPT TO addresses starting with it get 550

	mu   sync.Mutex
	msgs int
}

func startRawHop(t *testing.T, pipelining bool, refuse string) *rawHop {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &rawHop{addr: ln.Addr().String(), pipelining: pipelining, refuse: refuse}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return h
}

func (h *rawHop) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) { io.WriteString(c, s) }
	say("220 raw.test\r\n")
	var held []string // replies held until DATA
	reply := func(r string) {
		if h.pipelining {
			held = append(held, r)
		} else {
			say(r)
		}
	}
	inMail, rcpts := false, 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		if !h.pipelining && r.Buffered() > 0 {
			say("503 5.5.0 command sent before the last reply: PIPELINING is not offered\r\n")
			return
		}
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			if h.pipelining {
				say("250-raw.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
			} else {
				say("250-raw.test\r\n250 8BITMIME\r\n")
			}
		case strings.HasPrefix(cmd, "MAIL") && inMail:
			reply("503 5.5.1 nested MAIL command\r\n")
		case strings.HasPrefix(cmd, "MAIL"):
			inMail, rcpts = true, 0
			reply("250 2.1.0 ok\r\n")
		case strings.HasPrefix(cmd, "RCPT") && h.refuse != "" && strings.HasPrefix(cmd, "RCPT TO:<"+strings.ToUpper(h.refuse)):
			reply("550 5.1.1 no such user\r\n")
		case strings.HasPrefix(cmd, "RCPT"):
			rcpts++
			reply("250 2.1.5 ok\r\n")
		case cmd == "RSET":
			inMail = false
			reply("250 2.0.0 ok\r\n")
		case cmd == "DATA" && rcpts == 0:
			say(strings.Join(held, "") + "554 5.5.1 no valid recipients\r\n")
			held = nil
		case cmd == "DATA":
			say(strings.Join(held, "") + "354 go ahead\r\n")
			held, inMail = nil, false
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			h.mu.Lock()
			h.msgs++
			h.mu.Unlock()
			say("250 2.0.0 queued as raw\r\n")
		case cmd == "QUIT":
			say("221 bye\r\n")
			return
		default:
			say("502 5.5.2 not here\r\n")
		}
	}
}

func (h *rawHop) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs
}
