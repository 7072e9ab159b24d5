package queue

import (
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
}

// deliverSMTP sends job j over c (after RSET) or a new connection, and
// returns the connection to keep, nil when it broke.
func (q *Queue) deliverSMTP(ctx context.Context, d *destination, c *smtpConn, j *job) *smtpConn {
	if c != nil {
		if err := c.client.Reset(); err != nil {
			q.closeConn(c)
			c = nil
		} else {
			c.reused = true
		}
	}
	if c == nil {
		var dcid int64
		var err *attemptError
		c, dcid, err = q.connect(ctx, d, j)
		if err != nil {
			q.record(ctx, d.r, j, dcid, failAll(j, *err))
			return nil
		}
	}
	mid := j.env.MID
	opened := fmt.Sprintf("SMTP delivery connection (DCID %d) opened from interface %s to IP address %s on port %d.", c.dcid, c.local, c.ip, c.port)
	if c.reused { // the message's own tracking still shows the connection
		q.emit(tracking.Event{MID: mid, DCID: c.dcid, Summary: opened})
	} else {
		q.emit(tracking.Event{MID: mid, DCID: c.dcid, Summary: opened,
			Log: fmt.Sprintf("New SMTP DCID %d interface %s address %s port %d", c.dcid, c.local, c.ip, c.port)})
	}
	q.emitStart(c.dcid, j)
	outs, broken := c.transact(j)
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

// transact runs one MAIL/RCPT/DATA transaction for j. broken reports that
// the connection cannot carry another transaction.
func (c *smtpConn) transact(j *job) (outs []outcome, broken bool) {
	outs = make([]outcome, len(j.rcpts))
	for i, rc := range j.rcpts {
		outs[i].rc = rc
	}
	failRest := func(err error, which []int) {
		ae, isReply := c.replyError(err)
		for _, i := range which {
			outs[i].err = ae
		}
		broken = !isReply
	}
	all := make([]int, len(j.rcpts))
	for i := range all {
		all[i] = i
	}
	if err := c.client.Mail(j.env.MailFrom); err != nil {
		failRest(err, all)
		return outs, broken
	}
	var accepted []int
	for i, rc := range j.rcpts {
		if err := c.client.Rcpt(rc.Address); err != nil {
			ae, isReply := c.replyError(err)
			outs[i].err = ae
			if !isReply {
				failRest(err, all[i:])
				return outs, true
			}
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return outs, false // the next use starts with RSET
	}
	reply, err := c.data(j.data)
	if err != nil {
		failRest(err, accepted)
		return outs, broken
	}
	for _, i := range accepted {
		outs[i].reply = reply
	}
	return outs, false
}

// data sends DATA and the message, and returns the next hop's reply text.
func (c *smtpConn) data(msg []byte) (string, error) {
	id, err := c.client.Text.Cmd("DATA")
	if err != nil {
		return "", err
	}
	c.client.Text.StartResponse(id)
	_, _, err = c.client.Text.ReadResponse(354)
	c.client.Text.EndResponse(id)
	if err != nil {
		return "", err
	}
	w := c.client.Text.DotWriter()
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	_, reply, err := c.client.Text.ReadResponse(250)
	return strings.ReplaceAll(reply, "\n", " "), err
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
