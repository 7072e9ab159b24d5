package main

import (
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// serveSMTP serves SMTP on 127.0.0.1:0, answering the end of each message
// with endErr (nil: 250), and returns its address and the messages it
// received.
func serveSMTP(t *testing.T, endErr error) (string, func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &backend{endErr: endErr}
	srv := smtp.NewServer(be)
	srv.Domain = "sink.test"
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), func() []string {
		be.mu.Lock()
		defer be.mu.Unlock()
		return slices.Clone(be.msgs)
	}
}

type backend struct {
	endErr error
	mu     sync.Mutex
	msgs   []string
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return session{b}, nil }

type session struct{ b *backend }

func (session) Mail(string, *smtp.MailOptions) error { return nil }
func (session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (session) Reset()                               {}
func (session) Logout() error                        { return nil }

func (s session) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, string(msg))
	s.b.mu.Unlock()
	return s.b.endErr
}

func TestSessions(t *testing.T) {
	addr, received := serveSMTP(t, nil)
	s := sender{addr: addr, from: "a@sender.test", to: "b@corp.test", body: body(1000), timeout: 5 * time.Second}
	times := make([][]time.Duration, len(steps))
	for i := range 3 {
		if err := s.session(i, times); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	for step, name := range steps {
		if len(times[step]) != 3 {
			t.Errorf("%s timed %d times, want 3", name, len(times[step]))
		}
	}
	msgs := received()
	if len(msgs) != 3 || !strings.Contains(msgs[2], "To: <3.b@corp.test>") || len(msgs[0]) < 1000 {
		t.Errorf("server received %d messages, want 3 of 1000 bytes or more, the third to 3.b@corp.test: %q", len(msgs), msgs)
	}
	var out strings.Builder
	report(&out, times, time.Second)
	if !strings.Contains(out.String(), "message+reply") || !strings.Contains(out.String(), "3 messages in 1.00 s: 3 msg/s") {
		t.Errorf("report = %q, want every step and the rate", out.String())
	}
}

func TestSessionRefused(t *testing.T) {
	addr, _ := serveSMTP(t, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "message too big"})
	s := sender{addr: addr, from: "a@sender.test", to: "b@corp.test", body: body(100), timeout: 5 * time.Second}
	err := s.session(0, make([][]time.Duration, len(steps)))
	if err == nil || !strings.Contains(err.Error(), "reply to end of message: 552 5.3.4 message too big") {
		t.Errorf("session = %v, want the 552 named", err)
	}
}
