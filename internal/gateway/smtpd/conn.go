package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sightline/sightline/internal/tracking"
)

// hangState is how far a connection is from hanging up on its client.
type hangState int

const (
	talking        hangState = iota
	hangAfterWrite           // the next reply is the last
	hungUp                   // reads see EOF, writes are dropped
)

// aLongTimeAgo is a deadline in the past, to wake a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection. It wraps the TCP connection that go-smtp
// reads and writes (below TLS, when the session starts it) so the server can
// rewrite the greeting, hang up after a final reply, and answer 421 to an
// idle session on Shutdown.
type conn struct {
	net.Conn
	srv *Server

	// Set before go-smtp sees the connection, then read-only.
	icid    int64
	ip      netip.Addr
	port    int
	localIP netip.Addr
	rdns    string // PTR name, "" when none
	rdnsOK  bool   // forward-confirmed
	group   string // HAT sender group
	match   string // HAT source that matched, as logged
	flow    *FlowPolicy

	// Owned by the goroutine go-smtp runs the session in.
	sc        *smtp.Conn
	tls       string // "TLSv1.3 TLS_AES_128_GCM_SHA256" once STARTTLS is done
	accepted  int    // messages acknowledged on this connection
	authFails int    // failed AUTH attempts

	mu          sync.Mutex
	reading     bool // blocked in Read for a command (not message data)
	inData      bool // the session is receiving a message
	hang        hangState
	greeted     bool   // go-smtp wrote its first line
	tlsStarting bool   // go-smtp answered STARTTLS: plaintext is over
	held        []byte // the lines of a multi-line reply so far (Write)

	closeOnce sync.Once
}

// Read reads for go-smtp. During Shutdown, a read for a command ends the
// session: the client gets 421 and go-smtp sees EOF.
func (c *conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.hang == hungUp {
		c.mu.Unlock()
		return 0, io.EOF
	}
	if !c.inData && c.srv.closed.Load() {
		c.mu.Unlock()
		c.sayShutdown()
		return 0, io.EOF
	}
	c.reading = !c.inData
	c.mu.Unlock()

	n, err := c.Conn.Read(b)

	c.mu.Lock()
	c.reading = false
	hung := c.hang == hungUp
	kicked := err != nil && !c.inData && c.srv.closed.Load()
	c.mu.Unlock()
	var ne net.Error
	switch {
	case hung:
		return 0, io.EOF
	case kicked && errors.As(err, &ne) && ne.Timeout():
		c.sayShutdown()
		return 0, io.EOF
	}
	return n, err
}

// Write writes for go-smtp: it replaces go-smtp's greeting with ours, notes
// the start of TLS, sends each multi-line reply in one write, and drops
// anything after the last reply.
func (c *conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	state := c.hang
	first := !c.greeted
	c.greeted = true
	if bytes.HasPrefix(b, []byte("220 2.0.0 Ready to start TLS")) {
		c.tlsStarting = true
	}
	c.mu.Unlock()
	if state == hungUp {
		return len(b), nil
	}
	if first && string(b) == "220 "+c.srv.host+" ESMTP Service Ready\r\n" {
		if _, err := c.Conn.Write([]byte("220 " + c.srv.host + " ESMTP Sightline\r\n")); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	// go-smtp flushes each line of a reply: EHLO's would be nine writes,
	// each waking the client. A continuation line ("250-PIPELINING") waits
	// for the reply's last line, which go-smtp writes right after it.
	// (Under TLS, Write sees whole records, which begin with a record type
	// byte, never a digit.)
	if continuationLine(b) {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	out := b
	if len(c.held) > 0 {
		out = append(c.held, b...)
		c.held = c.held[:0]
	}
	n, err := c.Conn.Write(out)
	if state == hangAfterWrite {
		c.mu.Lock()
		c.hang = hungUp
		c.mu.Unlock()
	}
	return max(0, n-(len(out)-len(b))), err
}

// continuationLine reports whether b is one line of a multi-line reply
// other than its last: three digits, a hyphen, text and CRLF.
func continuationLine(b []byte) bool {
	return len(b) >= 6 && b[3] == '-' && '2' <= b[0] && b[0] <= '5' &&
		'0' <= b[1] && b[1] <= '9' && '0' <= b[2] && b[2] <= '9' &&
		bytes.IndexByte(b, '\n') == len(b)-1
}

// SetReadDeadline keeps a past deadline once Shutdown started, so a session
// cannot go back to sleep waiting for a command.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv.closed.Load() && !c.inData {
		t = aLongTimeAgo
	}
	return c.Conn.SetReadDeadline(t)
}

// kick wakes a session waiting for a command, for Shutdown.
func (c *conn) kick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading && !c.inData {
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

// setInData marks the transfer of a message, which Shutdown lets finish.
func (c *conn) setInData(v bool) {
	c.mu.Lock()
	c.inData = v
	c.mu.Unlock()
}

// hangUpAfterReply makes the next reply the last one of the session.
func (c *conn) hangUpAfterReply() {
	c.mu.Lock()
	if c.hang == talking {
		c.hang = hangAfterWrite
	}
	c.mu.Unlock()
}

// sayShutdown sends the shutdown reply, through TLS when the session has it,
// and hangs up. It runs in the session's goroutine, inside a Read.
func (c *conn) sayShutdown() {
	c.mu.Lock()
	if c.hang == hungUp {
		c.mu.Unlock()
		return
	}
	starting := c.tlsStarting
	c.mu.Unlock()

	var w io.Writer = c.Conn
	if tc, ok := c.currentConn().(*tls.Conn); ok {
		w = tc
	} else if starting {
		w = nil // in the middle of the handshake: just hang up
	}
	if w != nil {
		c.Conn.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout()))
		io.WriteString(w, "421 4.3.2 "+c.srv.host+" Service shutting down, closing transmission channel\r\n")
	}
	c.mu.Lock()
	c.hang = hungUp
	c.mu.Unlock()
}

// currentConn returns the connection go-smtp talks through: the *tls.Conn
// after STARTTLS, else c.
func (c *conn) currentConn() net.Conn {
	if c.sc == nil {
		return c
	}
	return c.sc.Conn()
}

// writeLine writes one reply line of our own, outside go-smtp.
func (c *conn) writeLine(line string) error {
	c.Conn.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout()))
	_, err := io.WriteString(c.Conn, line+"\r\n")
	return err
}

// Close closes the connection and, once, records its end.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.emit(0, tracking.Info,
			fmt.Sprintf("Incoming connection (ICID %d) lost.", c.icid),
			fmt.Sprintf("ICID %d close", c.icid))
		c.srv.release(c)
	})
	return err
}

// refuseSession serves a client whose flow policy is REJECT: a 554 greeting,
// then 503 to everything but QUIT (RFC 5321 §3.1), for a few commands.
func (c *conn) refuseSession() {
	defer c.Close()
	if c.writeLine("554 5.7.1 "+c.srv.host+" Access denied") != nil {
		return
	}
	r := bufio.NewReaderSize(c, 1024)
	for range maxRejectCmds {
		c.Conn.SetReadDeadline(time.Now().Add(c.srv.readTimeout()))
		line, err := r.ReadSlice('\n')
		if err != nil { // includes a line longer than the buffer
			return
		}
		if strings.EqualFold(strings.TrimSpace(string(line)), "QUIT") {
			c.writeLine("221 2.0.0 Bye")
			return
		}
		if c.writeLine("503 5.5.1 No SMTP service here") != nil {
			return
		}
	}
}

func (s *Server) readTimeout() time.Duration  { return durationOr(s.ReadTimeout, DefaultReadTimeout) }
func (s *Server) writeTimeout() time.Duration { return durationOr(s.WriteTimeout, DefaultWriteTimeout) }
func (s *Server) dataTimeout() time.Duration  { return durationOr(s.DataTimeout, DefaultDataTimeout) }

// emit sends one event of this connection; mid is 0 for connection events.
func (c *conn) emit(mid int64, level tracking.Level, summary, log string) {
	c.srv.Events.Emit(tracking.Event{
		Time: c.srv.now(), Level: level, ICID: c.icid, MID: mid, Summary: summary, Log: log,
	})
}

// emitLog sends a mail_logs-only Info line.
func (c *conn) emitLog(mid int64, log string) { c.emit(mid, tracking.Info, "", log) }

// emitConnect records the connection and its HAT decision.
func (c *conn) emitConnect() {
	host, verified := "unknown", "no"
	if c.rdns != "" {
		host = c.rdns
	}
	if c.rdnsOK {
		verified = "yes"
	}
	c.emit(0, tracking.Info,
		fmt.Sprintf("Incoming connection (ICID %d) has sender_group: %s, sender_ip: %s and sbrs: None", c.icid, c.group, c.ip), "")
	c.emit(0, tracking.Info,
		fmt.Sprintf("Protocol SMTP interface %s  (IP %s) on incoming connection (ICID %d) from sender IP %s. Reverse DNS  host %s verified %s.",
			c.srv.listenerName(), c.localIP, c.icid, c.ip, host, verified),
		fmt.Sprintf("New SMTP ICID %d interface %s (%s) address %s reverse dns host %s verified %s",
			c.icid, c.srv.listenerName(), c.localIP, c.ip, host, verified))
	c.emit(0, tracking.Info,
		fmt.Sprintf("(ICID %d) %s sender group %s match %s SBRS None country None", c.icid, c.flow.Action, c.group, c.match),
		fmt.Sprintf("ICID %d %s SG %s match %s SBRS None country None", c.icid, c.flow.Action, c.group, c.match))
}
