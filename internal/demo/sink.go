package demo

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the demo organisation's own mail server, where the gateway routes
// OrgDomain: it accepts every recipient except refused, which it answers
// with 550, and discards what it receives.
type sink struct {
	refused   string
	delivered atomic.Int64 // recipients delivered
	srv       *smtp.Server
}

const sinkMaxMessage = 32 << 20

func newSink(refused string, logger *slog.Logger) *sink {
	s := &sink{refused: refused}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	s.srv.Domain = "mx." + OrgDomain
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.MaxMessageBytes = sinkMaxMessage
	s.srv.MaxRecipients = 100
	s.srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	return s
}

// serve serves SMTP on ln until shutdown.
func (s *sink) serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *sink) shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

type sinkSession struct {
	s     *sink
	rcpts int
}

func (ss *sinkSession) Reset()        { ss.rcpts = 0 }
func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.EqualFold(to, ss.s.refused) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: "<" + to + ">: Recipient address rejected: User unknown in local recipient table"}
	}
	ss.rcpts++
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	ss.s.delivered.Add(int64(ss.rcpts))
	return nil
}
