package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	sightline "github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/tracking"
)

// Replies of our own; go-smtp words the rest (see the package doc).
var (
	errRequireTLS = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Must issue a STARTTLS command first"}
	errPerConnection = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many messages for this session, try again later"}
	errPerHour = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message: "Too many messages from your IP this hour, try again later"}
	errBadSender = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
		Message: "Bad sender address syntax"}
	errBadRecipient = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message: "Bad recipient address syntax"}
	errNeedsUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
		Message: "Non-ASCII address requires the SMTPUTF8 parameter"}
	errTooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message size exceeds fixed maximum message size"}
	errTooManyRcpts = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3},
		Message: "Too many recipients"}
	errRelayDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relaying denied"}
	errQueue = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Requested action aborted: local error in processing, try again later"}
	errLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Line too long, closing connection"}
	errDataBroken = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "Error receiving message data, closing connection"}
	errAuthUnavailable = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Temporary authentication failure"}
)

// session is one go-smtp session: from EHLO to QUIT, or to STARTTLS, after
// which go-smtp starts a new one on the same conn.
type session struct {
	c      *conn
	authID string
	tx     *transaction // nil outside MAIL … end of DATA
}

// transaction is one MAIL transaction. Its policy is read at MAIL.
type transaction struct {
	mid      int64
	from     string
	utf8     bool
	rcpts    []string
	pol      *compiledPolicy
	flow     *FlowPolicy
	outgoing bool
	hour     int64 // the hour a per-hour reservation was counted in
	reserved bool  // a per-hour reservation to release if not accepted
}

// Reset ends the current transaction, if any, as aborted by the client.
func (s *session) Reset() { s.abort("Receiving aborted by sender", "receiving aborted by sender") }

func (s *session) Logout() error {
	s.Reset()
	return nil
}

// abort ends the current transaction without accepting it.
func (s *session) abort(logReason, summaryReason string) {
	tx := s.tx
	if tx == nil {
		return
	}
	s.tx = nil
	if tx.reserved {
		s.c.srv.hourly.release(s.c.ip, tx.hour)
	}
	s.c.srv.Events.Emit(tracking.Event{
		Time: s.c.srv.now(), Level: tracking.Info, ICID: s.c.icid, MID: tx.mid,
		Summary: fmt.Sprintf("Message %d aborted: %s.", tx.mid, summaryReason),
		Log:     fmt.Sprintf("Message aborted MID %d %s", tx.mid, logReason),
		Status:  tracking.StatusAborted,
	})
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	c, srv := s.c, s.c.srv
	s.Reset()
	pol := srv.currentPolicy()
	flow := pol.flow(c.flow.Name)
	if flow == nil { // renamed or removed since the connection began
		flow = c.flow
	}
	switch {
	case flow.RequireTLS && c.tls == "":
		srv.count(reasonRequireTLS)
		return errRequireTLS
	case flow.MaxMessagesPerConnection > 0 && c.accepted >= flow.MaxMessagesPerConnection:
		srv.count(reasonPerConnection)
		c.emitLog(0, fmt.Sprintf("ICID %d Receiving Failed: too many messages for this session (limit %d)", c.icid, flow.MaxMessagesPerConnection))
		c.hangUpAfterReply()
		return errPerConnection
	}
	if from != "" {
		switch checkAddress(from, opts.UTF8) {
		case addrBad:
			srv.count(reasonSyntax)
			return errBadSender
		case addrNeedsUTF8:
			srv.count(reasonSyntax)
			return errNeedsUTF8
		}
	}
	if flow.MaxMessageSize > 0 && opts.Size > flow.MaxMessageSize {
		srv.count(reasonSize)
		return errTooLarge
	}
	tx := &transaction{from: from, utf8: opts.UTF8, pol: pol, flow: flow,
		outgoing: c.flow.Action == Relay || s.authID != ""}
	if lim := flow.MaxMessagesPerHourPerIP; lim > 0 {
		hour, ok := srv.hourly.reserve(c.ip, lim, srv.now())
		if !ok {
			srv.count(reasonPerHour)
			c.emitLog(0, fmt.Sprintf("ICID %d Receiving Failed: too many messages from %s this hour (limit %d)", c.icid, c.ip, lim))
			return errPerHour
		}
		tx.hour, tx.reserved = hour, true
	}
	tx.mid = srv.IDs.NextMID()
	s.tx = tx

	direction := mailflow.Incoming
	if tx.outgoing {
		direction = mailflow.Outgoing
	}
	c.emit(tx.mid, tracking.Info,
		fmt.Sprintf("Start message %d on incoming connection (ICID %d).", tx.mid, c.icid),
		fmt.Sprintf("Start MID %d ICID %d", tx.mid, c.icid))
	c.emit(tx.mid, tracking.Info,
		fmt.Sprintf("Message %d enqueued on incoming connection (ICID %d) from %s.", tx.mid, c.icid, displayAddr(from)),
		fmt.Sprintf("MID %d ICID %d From: <%s>", tx.mid, c.icid, from))
	c.emit(tx.mid, tracking.Info, fmt.Sprintf("Message %d direction: %s", tx.mid, direction), "")
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	c, srv, tx := s.c, s.c.srv, s.tx
	if tx == nil { // go-smtp checks MAIL first; kept for safety
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Need MAIL before RCPT"}
	}
	switch checkAddress(to, tx.utf8) {
	case addrBad:
		srv.count(reasonSyntax)
		return errBadRecipient
	case addrNeedsUTF8:
		srv.count(reasonSyntax)
		return errNeedsUTF8
	}
	if lim := tx.flow.MaxRecipientsPerMessage; lim > 0 && len(tx.rcpts) >= lim {
		srv.count(reasonRecipients)
		c.emitLog(tx.mid, fmt.Sprintf("MID %d ICID %d To: <%s> Rejected: too many recipients (limit %d)", tx.mid, c.icid, to, lim))
		return errTooManyRcpts
	}
	if !tx.outgoing && !tx.pol.ratAccepts(to) {
		srv.count(reasonRelay)
		c.emitLog(tx.mid, fmt.Sprintf("MID %d ICID %d To: <%s> Rejected by RAT", tx.mid, c.icid, to))
		return errRelayDenied
	}
	rid := len(tx.rcpts)
	tx.rcpts = append(tx.rcpts, to)
	c.emit(tx.mid, tracking.Info,
		fmt.Sprintf("Message %d on incoming connection (ICID %d) added recipient (%s).", tx.mid, c.icid, to),
		fmt.Sprintf("MID %d ICID %d RID %d To: <%s>", tx.mid, c.icid, rid, to))
	return nil
}

// Data receives the message, enqueues it and returns the final reply. On
// success that "error" is a 250 reply: go-smtp sends whatever SMTPError Data
// returns, and its own 250 text would not name the MID.
func (s *session) Data(r io.Reader) error {
	c, srv, tx := s.c, s.c.srv, s.tx
	if tx == nil {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Need MAIL before DATA"}
	}
	c.setInData(true)
	defer c.setInData(false)
	c.Conn.SetReadDeadline(time.Now().Add(srv.dataTimeout()))

	msg, err := readMessage(r, tx.flow.MaxMessageSize)
	switch {
	case errors.Is(err, errTooLarge) || errors.Is(err, smtp.ErrDataTooLarge):
		io.Copy(io.Discard, r) // what is left; go-smtp drains past its own limit
		srv.count(reasonSize)
		s.abort("Receiving Failed: message size exceeds limit", "message size exceeds limit")
		return errTooLarge
	case errors.Is(err, smtp.ErrTooLongLine):
		s.abort("Receiving Failed: line too long", "line too long")
		c.hangUpAfterReply()
		return errLineTooLong
	case errors.Is(err, smtp.ErrDataReset): // BDAT cut short by RSET or a closed connection
		s.abort("Receiving aborted by sender", "receiving aborted by sender")
		return err
	case err != nil:
		s.abort("Receiving Failed: "+printable(err.Error(), 100), "receiving failed")
		c.hangUpAfterReply()
		return errDataBroken
	}

	env := s.envelope(tx, int64(len(msg)))
	data := make([]byte, 0, len(msg)+512)
	data = append(data, srv.receivedHeader(c, s.authID, tx, env)...)
	data = append(data, msg...)

	ctx, cancel := context.WithTimeout(context.Background(), enqueueTimeout)
	err = srv.Queue.Enqueue(ctx, env, data)
	cancel()
	if err != nil {
		srv.log.Error("enqueue failed", "icid", c.icid, "mid", tx.mid, "err", err)
		srv.count(reasonQueue)
		s.abort("Receiving Failed: queue unavailable", "queue unavailable")
		return errQueue
	}

	s.tx = nil // accepted: nothing to abort
	c.accepted++
	srv.stats[statAccepted].Add(1)
	// The "ready" event is the pipeline's: AsyncOS logs it after the
	// Message-ID and Subject lines, which screening reads.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message: fmt.Sprintf("Ok: Message %d accepted", tx.mid)}
}

// readMessage reads the whole message, failing with errTooLarge past limit
// bytes (0: no limit).
func readMessage(r io.Reader, limit int64) ([]byte, error) {
	if limit > 0 {
		r = io.LimitReader(r, limit+1)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	if limit > 0 && int64(buf.Len()) > limit {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

func (s *session) envelope(tx *transaction, size int64) *mailflow.Envelope {
	c := s.c
	direction := mailflow.Incoming
	if tx.outgoing {
		direction = mailflow.Outgoing
	}
	helo := ""
	if c.sc != nil {
		helo = printable(c.sc.Hostname(), 255)
	}
	return &mailflow.Envelope{
		ICID:           c.icid,
		MID:            tx.mid,
		ReceivedAt:     c.srv.now(),
		Direction:      direction,
		Listener:       c.srv.listenerName(),
		ClientIP:       c.ip.String(),
		ClientPort:     c.port,
		HELO:           helo,
		ReverseDNS:     c.rdns,
		ReverseDNSOK:   c.rdnsOK,
		SenderGroup:    c.group,
		MailFlowPolicy: tx.flow.Name,
		TLS:            c.tls,
		AuthID:         s.authID,
		MailFrom:       tx.from,
		Recipients:     tx.rcpts,
		Size:           size,
	}
}

// receivedHeader is the trace header of this hop (RFC 5321 §4.4), folded.
func (srv *Server) receivedHeader(c *conn, authID string, tx *transaction, env *mailflow.Envelope) string {
	var b strings.Builder
	literal := "[" + c.ip.String() + "]"
	if c.ip.Is6() {
		literal = "[IPv6:" + c.ip.String() + "]"
	}
	helo := strings.Map(func(r rune) rune {
		if r <= ' ' || r == '(' || r == ')' || r == '\\' || r >= 0x7f {
			return '_'
		}
		return r
	}, env.HELO)
	if helo == "" {
		helo = "unknown"
	}
	fmt.Fprintf(&b, "Received: from %s (", helo)
	if c.rdnsOK {
		b.WriteString(c.rdns + " ")
	}
	b.WriteString(literal + ")\r\n")
	if c.tls != "" {
		fmt.Fprintf(&b, "\t(using %s)\r\n", strings.Replace(c.tls, " ", " with cipher ", 1))
	}
	proto := "ESMTP"
	if c.tls != "" {
		proto += "S"
	}
	if authID != "" {
		proto += "A"
	}
	fmt.Fprintf(&b, "\tby %s (Sightline) with %s id %d", srv.host, proto, tx.mid)
	if len(tx.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", tx.rcpts[0])
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", env.ReceivedAt.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return b.String()
}

func displayAddr(a string) string {
	if a == "" {
		return "<>"
	}
	return a
}

// AuthMechanisms offers PLAIN and LOGIN when the server has an
// Authenticator; go-smtp offers them only over TLS.
func (s *session) AuthMechanisms() []string {
	if s.c.srv.Auth == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.c.srv.Auth == nil {
		return nil, smtp.ErrAuthUnsupported
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.authFailed(mech, username)
			}
			return s.authenticate(mech, username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: func(username, password string) error {
			return s.authenticate(mech, username, password)
		}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) authenticate(mech, username, password string) error {
	c := s.c
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	err := c.srv.Auth.Authenticate(ctx, username, password)
	cancel()
	if err == nil {
		s.authID = username
		c.emitLog(0, fmt.Sprintf("SMTP Auth: (ICID %d) succeeded for user: %s using AUTH mechanism: %s", c.icid, printable(username, 100), mech))
		return nil
	}
	if sightline.ErrorKind(err) == sightline.Unavailable {
		c.srv.log.Warn("authentication unavailable", "icid", c.icid, "err", err)
		return errAuthUnavailable
	}
	return s.authFailed(mech, username)
}

func (s *session) authFailed(mech, username string) error {
	c := s.c
	c.srv.count(reasonAuth)
	if c.authFails++; c.authFails >= maxAuthFailures {
		c.hangUpAfterReply()
	}
	c.emit(0, tracking.Warning, "", fmt.Sprintf("SMTP Auth: (ICID %d) failed for user: %s using AUTH mechanism: %s", c.icid, printable(username, 100), mech))
	return smtp.ErrAuthFailed
}

// loginServer is the server side of the obsolete but common LOGIN SASL
// mechanism (draft-murchison-sasl-login): "Username:", then "Password:".
// go-sasl has only the client side.
type loginServer struct {
	step     int
	username string
	auth     func(username, password string) error
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch {
	case l.step == 0 && response == nil: // no initial response
		l.step = 1
		return []byte("Username:"), false, nil
	case l.step <= 1:
		l.step, l.username = 2, string(response)
		return []byte("Password:"), false, nil
	case l.step == 2:
		l.step = 3
		return nil, true, l.auth(l.username, string(response))
	}
	return nil, true, sasl.ErrUnexpectedClientResponse
}
