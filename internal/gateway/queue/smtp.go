package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// smtpConn is an open delivery connection (one DCID).
type smtpConn struct {
	client  *smtp.Client
	raw     net.Conn
	stop    func() bool // stops closing raw when the Run's ctx ends
	dcid    int64
	host    string // the next hop's name, for Remote-MTA
	local   string // local IP ("interface")
	ip      string
	port    int
	reused  bool
	timeout time.Duration

	// pipelining: the next hop offers PIPELINING (RFC 2920); mailParams
	// follow MAIL FROM (what net/smtp adds). open: a transaction may still
	// be open on the next hop, so the next one starts with RSET.
	pipelining bool
	mailParams string
	open       bool
}

// deliverSMTP sends job j over c or a new connection, and returns the
// connection to keep, nil when it broke. A reused connection that the next
// hop closed while idle is replaced by a new one.
func (q *Queue) deliverSMTP(ctx context.Context, d *destination, c *smtpConn, j *job) *smtpConn {
	if c != nil {
		c.reused = true
	}
	for {
		if c == nil {
			var dcid int64
			var err *attemptError
			c, dcid, err = q.connect(ctx, d, j)
			if err != nil {
				q.record(ctx, d.r, j, dcid, failAll(j, *err))
				return nil
			}
		}
		q.emitOpened(c, j)
		outs, broken, stale := c.transact(j)
		if stale {
			q.closeConn(c)
			c = nil
			continue
		}
		var delivered []RecipientState
		for _, o := range outs {
			if o.err == nil {
				delivered = append(delivered, o.rc)
			}
		}
		q.emitDelivered(c.dcid, j, delivered, outs)
		q.record(ctx, d.r, j, c.dcid, outs)
		if broken {
			q.closeConn(c)
			return nil
		}
		return c
	}
}

// emitOpened records that j goes over c.
func (q *Queue) emitOpened(c *smtpConn, j *job) {
	mid := j.env.MID
	opened := fmt.Sprintf("SMTP delivery connection (DCID %d) opened from interface %s to IP address %s on port %d.", c.dcid, c.local, c.ip, c.port)
	if c.reused { // the message's own tracking still shows the connection
		q.emit(tracking.Event{MID: mid, DCID: c.dcid, Summary: opened})
	} else {
		q.emit(tracking.Event{MID: mid, DCID: c.dcid, Summary: opened,
			Log: fmt.Sprintf("New SMTP DCID %d interface %s address %s port %d", c.dcid, c.local, c.ip, c.port)})
	}
	q.emitStart(c.dcid, j)
}

// transact runs one MAIL/RCPT/DATA transaction for j, and then sends the
// message. With a next hop that offers PIPELINING (RFC 2920), RSET (when a
// transaction may be open), MAIL, every RCPT and DATA go in one write and
// their replies are read in order: two round trips per message instead of
// four or five. Otherwise each command waits for the reply before it, and
// a reused connection starts with RSET. broken reports that the connection
// cannot carry another transaction; stale, that it is a reused connection
// the next hop had closed (or that refused RSET), so that the transaction
// can go over a new one.
func (c *smtpConn) transact(j *job) (outs []outcome, broken, stale bool) {
	outs = newOutcomes(j)
	lines := make([]string, 0, len(j.rcpts)+3)
	rset := c.open || c.reused && !c.pipelining
	if rset {
		lines = append(lines, "RSET")
	}
	lines = append(lines, "MAIL FROM:<"+j.env.MailFrom+">"+c.mailParams)
	for _, rc := range j.rcpts {
		lines = append(lines, "RCPT TO:<"+rc.Address+">")
	}
	lines = append(lines, "DATA")
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			ae := &attemptError{Code: 501, Text: fmt.Sprintf("5.1.7 %q holds a line break", l), Permanent: true}
			for i := range outs {
				outs[i].err = ae
			}
			return outs, false, false
		}
	}
	c.open = true
	// await reads the reply to the next line, once it is sent: in a
	// pipeline every line goes with the first.
	sent, read := 0, 0
	await := func(code int) error {
		for ; sent <= read || c.pipelining && sent < len(lines); sent++ {
			c.client.Text.W.WriteString(lines[sent] + "\r\n")
		}
		read++
		if err := c.client.Text.W.Flush(); err != nil {
			return err
		}
		_, _, err := c.client.Text.ReadResponse(code)
		return err
	}
	// lost ends the transaction on a connection that broke: every
	// recipient not yet decided is deferred.
	lost := func(err error) ([]outcome, bool, bool) {
		ae, _ := c.replyError(err)
		for i := range outs {
			if outs[i].err == nil {
				outs[i].err = ae
			}
		}
		return outs, true, false
	}
	// The first reply tells whether a reused connection still stands: the
	// next hop may have closed it while idle, silently or with a 421.
	err := await(250) // RSET's or MAIL's
	if code := replyCode(err); c.reused && err != nil && (rset || code == 0 || code == 421) {
		return nil, true, true
	}
	if rset {
		err = await(250) // MAIL's
	}
	if err != nil && replyCode(err) == 0 {
		return lost(err)
	}
	refused := err // MAIL's refusal is every recipient's
	var accepted []int
	for i := range j.rcpts {
		if refused != nil && !c.pipelining {
			outs[i].err, _ = c.replyError(refused)
			continue
		}
		err := await(25)
		switch {
		case err != nil && replyCode(err) == 0:
			return lost(err)
		case refused != nil:
			outs[i].err, _ = c.replyError(refused)
		case err != nil:
			outs[i].err, _ = c.replyError(err)
		default:
			accepted = append(accepted, i)
		}
	}
	if len(accepted) == 0 && !c.pipelining {
		return outs, false, false // the next use starts with RSET
	}
	if err := await(354); err != nil {
		if replyCode(err) == 0 {
			return lost(err)
		}
		for _, i := range accepted {
			outs[i].err, _ = c.replyError(err)
		}
		return outs, false, false // MAIL may stand: the next use starts with RSET
	}
	msg := j.data
	if len(accepted) == 0 { // DATA accepted without a recipient: end it empty
		msg = nil
	}
	reply, err := c.body(msg)
	if err != nil {
		ae, isReply := c.replyError(err)
		for _, i := range accepted {
			outs[i].err = ae
		}
		c.open = !isReply
		return outs, !isReply, false
	}
	c.open = false
	for _, i := range accepted {
		outs[i].reply = reply
	}
	return outs, false, false
}

// replyCode is the code of an SMTP reply error, 0 for any other error.
func replyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// body sends the message after a 354 and returns the next hop's reply text.
func (c *smtpConn) body(msg []byte) (string, error) {
	writeDotted(c.client.Text.W, msg)
	if err := c.client.Text.W.Flush(); err != nil {
		return "", err
	}
	_, reply, err := c.client.Text.ReadResponse(250)
	return strings.ReplaceAll(reply, "\n", " "), err
}

// writeDotted writes msg as the content of DATA (RFC 5321 §4.5.2), as
// textproto's DotWriter does but a line at a time rather than a byte at a
// time: every line ending (LF or CRLF) as CRLF, a leading dot doubled, then
// the ending dot. Unlike DotWriter it never adds a carriage return before
// one already there.
func writeDotted(w *bufio.Writer, msg []byte) {
	if len(msg) == 0 {
		w.WriteString("\r\n") // an empty message is one empty line
	}
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		w.WriteString("\r\n")
	}
	w.WriteString(".\r\n")
}

// replyError classifies a failed command: an SMTP reply (isReply) keeps
// the connection usable; anything else breaks it and defers.
func (c *smtpConn) replyError(err error) (ae *attemptError, isReply bool) {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &attemptError{Code: te.Code, Text: strings.ReplaceAll(te.Msg, "\n", " "),
			Permanent: te.Code >= 500, RemoteMTA: c.host}, true
	}
	return &attemptError{Text: fmt.Sprintf("4.4.2 connection with %s (%s) lost: %v", c.host, c.ip, err)}, false
}

// connect opens a connection to the first next hop of d that answers,
// greets it and starts TLS as the route asks. On failure it returns the
// DCID of the last attempt and the error to record for every recipient.
func (q *Queue) connect(ctx context.Context, d *destination, j *job) (*smtpConn, int64, *attemptError) {
	hosts, aerr := q.nextHops(ctx, d)
	if aerr != nil {
		return nil, 0, aerr
	}
	var dcid int64
	var last error
	for _, hp := range hosts {
		dcid = q.IDs.NextDCID()
		c, err := q.dial(ctx, d, hp, dcid)
		if err == nil {
			c.learnExtensions()
			return c, dcid, nil
		}
		last = err
		host, port, _ := net.SplitHostPort(hp)
		q.emit(tracking.Event{Level: tracking.Warning, MID: j.env.MID, DCID: dcid,
			Log: fmt.Sprintf("Connection error: DCID %d domain: %s IP: %s port: %s details: %v", dcid, d.domain, host, port, err)})
	}
	var ae *attemptError
	if errors.As(last, &ae) {
		return nil, dcid, ae
	}
	return nil, dcid, &attemptError{Text: fmt.Sprintf("4.4.1 no next hop answered: %v", last)}
}

// nextHops lists "host:port" in preference order.
func (q *Queue) nextHops(ctx context.Context, d *destination) ([]string, *attemptError) {
	if !(len(d.route.Hosts) == 1 && strings.EqualFold(d.route.Hosts[0], "USEDNS")) {
		hosts := make([]string, len(d.route.Hosts))
		for i, h := range d.route.Hosts {
			if _, _, err := net.SplitHostPort(h); err != nil {
				h = net.JoinHostPort(h, "25")
			}
			hosts[i] = h
		}
		return hosts, nil
	}
	var res MXResolver = net.DefaultResolver
	if q.Resolver != nil {
		res = q.Resolver
	}
	mxs, err := res.LookupMX(ctx, d.domain)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return []string{net.JoinHostPort(d.domain, "25")}, nil // implicit MX (RFC 5321 §5.1)
	case err != nil:
		return nil, &attemptError{Text: fmt.Sprintf("4.4.3 MX lookup of %s failed: %v", d.domain, err)}
	case len(mxs) == 0:
		return []string{net.JoinHostPort(d.domain, "25")}, nil
	case len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == ""):
		return nil, &attemptError{Code: 556, Text: fmt.Sprintf("5.1.10 %s accepts no mail (null MX)", d.domain), Permanent: true}
	}
	hosts := make([]string, len(mxs))
	for i, mx := range mxs { // LookupMX sorts by preference
		hosts[i] = net.JoinHostPort(strings.TrimSuffix(mx.Host, "."), "25")
	}
	return hosts, nil
}

// dial connects to hostport, reads the greeting, says EHLO and starts TLS.
func (q *Queue) dial(ctx context.Context, d *destination, hostport string, dcid int64) (*smtpConn, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, &attemptError{Text: fmt.Sprintf("4.4.1 bad next hop %q: %v", hostport, err)}
	}
	dialer := net.Dialer{Timeout: q.dialTimeout()}
	raw, err := dialer.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, &attemptError{Text: fmt.Sprintf("4.4.1 connection to %s failed: %v", hostport, err)}
	}
	c := &smtpConn{raw: raw, dcid: dcid, host: host, timeout: q.commandTimeout()}
	c.stop = context.AfterFunc(ctx, func() { raw.Close() })
	c.local, _, _ = net.SplitHostPort(raw.LocalAddr().String())
	ip, port, _ := net.SplitHostPort(raw.RemoteAddr().String())
	c.ip = ip
	c.port, _ = strconv.Atoi(port)
	fail := func(err error) (*smtpConn, error) {
		c.stop()
		raw.Close()
		return nil, err
	}
	client, err := smtp.NewClient(deadlineConn{Conn: raw, timeout: c.timeout}, host)
	if err != nil {
		return fail(&attemptError{Text: fmt.Sprintf("4.4.2 %s greeted with: %v", hostport, err)})
	}
	c.client = client
	if err := client.Hello(q.hostname()); err != nil {
		return fail(&attemptError{Text: fmt.Sprintf("4.4.2 %s refused EHLO: %v", hostport, err)})
	}
	mode := d.route.TLS
	if mode == "" {
		mode = TLSOpportunistic
	}
	if mode == TLSNone {
		return c, nil
	}
	if ok, _ := client.Extension("STARTTLS"); ok {
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: mode != TLSRequired}
		if err := client.StartTLS(cfg); err != nil {
			return fail(&attemptError{Text: fmt.Sprintf("4.7.5 STARTTLS with %s failed: %v", hostport, err)})
		}
	} else if mode == TLSRequired {
		return fail(&attemptError{Text: fmt.Sprintf("4.7.4 %s does not offer STARTTLS, which the route requires", hostport)})
	}
	return c, nil
}

// learnExtensions notes what the next hop offers after EHLO, and STARTTLS
// when it was used.
func (c *smtpConn) learnExtensions() {
	c.pipelining, _ = c.client.Extension("PIPELINING")
	c.mailParams = ""
	if ok, _ := c.client.Extension("8BITMIME"); ok {
		c.mailParams += " BODY=8BITMIME"
	}
	if ok, _ := c.client.Extension("SMTPUTF8"); ok {
		c.mailParams += " SMTPUTF8"
	}
}

// closeConn says QUIT (bounded by the command timeout), closes c and emits
// the close line.
func (q *Queue) closeConn(c *smtpConn) {
	c.client.Quit()
	c.client.Close()
	c.stop()
	q.emit(tracking.Event{DCID: c.dcid, Log: fmt.Sprintf("DCID %d close", c.dcid)})
}

// deadlineConn sets a deadline before every read and write, so that no
// exchange with a next hop can hang longer than timeout.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c deadlineConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c deadlineConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}
