package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/tracking"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpd: server closed")

// Enqueuer stores an accepted message. Enqueue returns nil only once the
// message and its envelope are durable: the client is told 250 after that and
// never before.
type Enqueuer interface {
	Enqueue(ctx context.Context, env *mailflow.Envelope, data []byte) error
}

// IDs hands out connection and message IDs, unique per gateway and never
// reused.
type IDs interface {
	NextICID() int64
	NextMID() int64
}

// Authenticator checks SMTP AUTH credentials. An error of kind
// sightline.Unavailable answers 454 (try later); any other error answers 535.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) error
}

// Resolver looks up DNS names; *net.Resolver satisfies it.
type Resolver interface {
	LookupAddr(ctx context.Context, ip string) ([]string, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Defaults for the zero values of Server's fields.
const (
	DefaultListener     = "Data1"
	DefaultReadTimeout  = 5 * time.Minute  // RFC 5321 §4.5.3.2: 5 minutes per command
	DefaultWriteTimeout = 1 * time.Minute  // a reply is a few bytes
	DefaultDataTimeout  = 10 * time.Minute // RFC 5321 §4.5.3.2 allows 10 for the final dot
)

const (
	maxLineLength   = 4096             // longest command or message line accepted
	dnsTimeout      = 2 * time.Second  // bound of the reverse DNS check
	authTimeout     = 30 * time.Second // bound of one Authenticate call
	enqueueTimeout  = 2 * time.Minute  // bound of one Enqueue call
	maxPTRNames     = 3                // PTR names tried for forward confirmation
	maxRejectCmds   = 20               // commands answered on a refused session
	maxAuthFailures = 3                // failed AUTH attempts before hanging up
)

// Server is the SMTP listener of the gateway. Set its fields, then call Serve;
// fields must not change after that, except the policy through SetPolicy.
type Server struct {
	// Hostname is the name in the greeting and the Received header; ""
	// means os.Hostname().
	Hostname string
	// TLSConfig enables STARTTLS; nil disables STARTTLS and therefore AUTH,
	// which is offered only over TLS.
	TLSConfig *tls.Config
	// Listener names the interface in logs and envelopes; "" means "Data1".
	Listener string
	// Queue receives accepted messages. Required.
	Queue Enqueuer
	// IDs numbers connections and messages. Required.
	IDs IDs
	// Events receives the tracking and mail_logs events. Required.
	Events tracking.Emitter
	// Auth checks AUTH PLAIN and LOGIN credentials; nil: AUTH is not offered.
	Auth Authenticator
	// Resolver checks the client's reverse DNS, bounded to 2 s; nil: no
	// lookups, and the reverse DNS is unknown.
	Resolver Resolver

	// ReadTimeout bounds the wait for each command (DefaultReadTimeout when
	// zero), WriteTimeout each reply (DefaultWriteTimeout) and DataTimeout
	// the whole transfer of one message, from 354 to the final dot
	// (DefaultDataTimeout).
	ReadTimeout, WriteTimeout time.Duration
	DataTimeout               time.Duration

	// Logger receives operational logs (not mail_logs), used as given (the
	// caller scopes it); nil discards them.
	Logger *slog.Logger

	now func() time.Time // the clock; tests replace it

	initOnce sync.Once
	initErr  error
	host     string
	log      *slog.Logger
	policy   atomic.Pointer[compiledPolicy]

	closed    atomic.Bool // Shutdown has begun; set under mu
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perIP     map[netip.Addr]int
	engines   map[int64]*smtp.Server // one go-smtp server per SIZE limit
	drained   chan struct{}          // closed when closing and conns is empty
	engineWG  sync.WaitGroup

	hourly hourlyCounter
	stats  [numReasons + 2]atomic.Int64
}

// SetPolicy replaces the receiving policy; nil means DefaultPolicy(). A new
// connection uses the policy current when it arrives; an open session keeps
// the action its sender group decided (ACCEPT, RELAY, …) but picks up the new
// RAT and the limits of its flow policy (found by name) at its next MAIL. An
// invalid policy (see Policy.Validate) is logged and ignored, and the
// previous one stays in force.
func (s *Server) SetPolicy(p *Policy) {
	if p == nil {
		p = DefaultPolicy()
	}
	cp, err := compile(p)
	if err != nil {
		s.logger().Error("policy not applied", "err", err)
		return
	}
	s.policy.Store(cp)
}

func (s *Server) currentPolicy() *compiledPolicy {
	if cp := s.policy.Load(); cp != nil {
		return cp
	}
	cp, _ := compile(DefaultPolicy())
	s.policy.CompareAndSwap(nil, cp)
	return s.policy.Load()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) init() error {
	s.initOnce.Do(func() {
		switch {
		case s.Queue == nil:
			s.initErr = errors.New("smtpd: Server.Queue is nil")
			return
		case s.IDs == nil:
			s.initErr = errors.New("smtpd: Server.IDs is nil")
			return
		case s.Events == nil:
			s.initErr = errors.New("smtpd: Server.Events is nil")
			return
		}
		s.log = s.logger()
		s.host = s.Hostname
		if s.host == "" {
			h, err := os.Hostname()
			if err != nil {
				h = "localhost"
			}
			s.host = h
		}
		if s.now == nil {
			s.now = time.Now
		}
		s.currentPolicy()
		s.mu.Lock()
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.perIP = make(map[netip.Addr]int)
		s.engines = make(map[int64]*smtp.Server)
		s.drained = make(chan struct{})
		s.mu.Unlock()
	})
	return s.initErr
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (s *Server) listenerName() string {
	if s.Listener == "" {
		return DefaultListener
	}
	return s.Listener
}

// Serve accepts connections on ln and serves each in its own goroutine. It
// always returns a non-nil error: ErrServerClosed after Shutdown, or the
// listener's error.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closed.Load() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("smtpd: accept: %w", err)
		}
		delay = 0
		go s.handle(nc)
	}
}

// Shutdown stops the server gracefully: it closes the listeners, answers
// "421 4.3.2" to every session at its next command (at once when the session
// is waiting for one; a message being received or enqueued is finished first)
// and waits for all connections to end. If ctx ends first, Shutdown closes the
// remaining connections and returns ctx.Err(); a message whose 250 was not
// sent is then not acknowledged, so the client sends it again.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	s.closed.Store(true)
	var err error
	for ln := range s.listeners {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = fmt.Errorf("smtpd: close listener: %w", cerr)
		}
	}
	for c := range s.conns {
		c.kick()
	}
	if len(s.conns) == 0 {
		s.closeDrainedLocked()
	}
	s.mu.Unlock()

	select {
	case <-s.drained:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Conn.Close() // the session's goroutine finishes the cleanup
		}
		s.mu.Unlock()
		err = ctx.Err()
	}
	// Stop the go-smtp accept loops. Closing their listeners, not the
	// go-smtp servers, leaves sessions that outlived ctx to end on their
	// own connection's error.
	s.mu.Lock()
	for _, e := range s.engines {
		e.Backend.(*backend).Close()
	}
	s.mu.Unlock()
	s.engineWG.Wait()
	return err
}

func (s *Server) closeDrainedLocked() {
	select {
	case <-s.drained:
	default:
		close(s.drained)
	}
}

// handle runs the connection phase of the HAT, then hands the connection to
// go-smtp.
func (s *Server) handle(nc net.Conn) {
	s.stats[statConnections].Add(1)
	c := &conn{Conn: nc, srv: s, icid: s.IDs.NextICID()}
	c.ip, c.port = addrPort(nc.RemoteAddr())
	c.localIP, _ = addrPort(nc.LocalAddr())

	if s.Resolver != nil {
		ctx, cancel := context.WithTimeout(context.Background(), dnsTimeout)
		c.rdns, c.rdnsOK = reverseDNS(ctx, s.Resolver, c.ip)
		cancel()
	}
	pol := s.currentPolicy()
	verified := ""
	if c.rdnsOK {
		verified = c.rdns
	}
	c.group, c.match, c.flow = pol.hat(c.ip, verified)

	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		c.writeLine("421 4.3.2 " + c.srv.host + " Service shutting down, closing transmission channel")
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.perIP[c.ip]++
	concurrent := s.perIP[c.ip]
	s.mu.Unlock()

	c.emitConnect()
	switch c.flow.Action {
	case TCPRefuse:
		s.count(reasonRefused)
		c.Close()
		return
	case Reject:
		s.count(reasonRejected)
		c.refuseSession()
		return
	}
	if lim := c.flow.MaxConcurrentConnectionsPerIP; lim > 0 && concurrent > lim {
		s.count(reasonConcurrency)
		c.emitLog(0, fmt.Sprintf("ICID %d Receiving Failed: too many concurrent connections from %s (limit %d)", c.icid, c.ip, lim))
		c.writeLine("421 4.7.0 Too many concurrent connections from your IP, try again later")
		c.Close()
		return
	}
	if err := s.engineFor(c.flow.MaxMessageSize).hand(c); err != nil {
		c.writeLine("421 4.3.2 " + c.srv.host + " Service shutting down, closing transmission channel")
		c.Close()
	}
}

// engineFor returns the backend of the go-smtp server that advertises the
// SIZE limit size, starting it on first use; after Shutdown the backend it
// returns is closed.
func (s *Server) engineFor(size int64) *backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.engines[size]; e != nil {
		return e.Backend.(*backend)
	}
	be := &backend{srv: s, conns: make(chan net.Conn), done: make(chan struct{})}
	if s.closed.Load() {
		be.Close()
		return be
	}
	e := smtp.NewServer(be)
	e.Domain = s.host
	e.MaxMessageBytes = size
	e.MaxLineLength = maxLineLength
	e.ReadTimeout = durationOr(s.ReadTimeout, DefaultReadTimeout)
	e.WriteTimeout = durationOr(s.WriteTimeout, DefaultWriteTimeout)
	e.TLSConfig = s.TLSConfig
	e.EnableSMTPUTF8 = true
	e.AllowInsecureAuth = false
	e.ErrorLog = errorLog{s.log}
	s.engines[size] = e
	s.engineWG.Add(1)
	go func() {
		defer s.engineWG.Done()
		e.Serve(be) // returns when Shutdown closes it
	}()
	return be
}

// release forgets a closed connection.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
		delete(s.perIP, c.ip)
	}
	if s.closed.Load() && len(s.conns) == 0 {
		s.closeDrainedLocked()
	}
	s.mu.Unlock()
}

// backend is both the go-smtp Backend and the net.Listener that feeds it the
// connections the HAT let through.
type backend struct {
	srv   *Server
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

// hand passes c to go-smtp; it fails once the engine is closed.
func (b *backend) hand(c *conn) error {
	select {
	case b.conns <- c:
		return nil
	case <-b.done:
		return net.ErrClosed
	}
}

func (b *backend) Accept() (net.Conn, error) {
	select {
	case c := <-b.conns:
		return c, nil
	case <-b.done:
		return nil, net.ErrClosed
	}
}

func (b *backend) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}

func (b *backend) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

func (b *backend) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	c := connOf(sc.Conn())
	if c == nil {
		return nil, errors.New("smtpd: connection of unknown type") // not reached
	}
	c.sc = sc
	if tc, ok := sc.Conn().(*tls.Conn); ok && c.tls == "" {
		st := tc.ConnectionState()
		c.tls = tlsVersion(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
		c.emit(0, tracking.Info,
			fmt.Sprintf("Incoming connection (ICID %d) successfully accepted TLS protocol %s cipher %s.", c.icid, tlsVersion(st.Version), tls.CipherSuiteName(st.CipherSuite)),
			fmt.Sprintf("ICID %d TLS success protocol %s cipher %s", c.icid, tlsVersion(st.Version), tls.CipherSuiteName(st.CipherSuite)))
	}
	return &session{c: c}, nil
}

func connOf(nc net.Conn) *conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*conn)
	return c
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return fmt.Sprintf("TLS(0x%04x)", v)
}

// errorLog adapts slog to go-smtp's logger; what it reports is a client's
// broken connection more often than a fault of ours.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (l errorLog) Println(v ...any) { l.log.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }

func addrPort(a net.Addr) (netip.Addr, int) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return ap.Addr().Unmap().WithZone(""), int(ap.Port())
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.IPv4Unspecified(), 0
	}
	return ap.Addr().Unmap().WithZone(""), int(ap.Port())
}

// reverseDNS returns the client's PTR name and whether it resolves back to
// ip. The first name that does wins; otherwise the first name, unverified.
func reverseDNS(ctx context.Context, r Resolver, ip netip.Addr) (string, bool) {
	names, err := r.LookupAddr(ctx, ip.String())
	if err != nil || len(names) == 0 {
		return "", false
	}
	first := ""
	for i, name := range names {
		if i == maxPTRNames {
			break
		}
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if !validDomain(name, false) {
			continue
		}
		if first == "" {
			first = name
		}
		addrs, err := r.LookupHost(ctx, name)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if fa, err := netip.ParseAddr(a); err == nil && fa.Unmap() == ip {
				return name, true
			}
		}
	}
	return first, false
}

// hourlyCounter counts messages per client IP in the current clock hour.
type hourlyCounter struct {
	mu   sync.Mutex
	hour int64
	n    map[netip.Addr]int
}

// reserve counts one more message for ip unless limit is reached. It returns
// the hour counted in, for release.
func (h *hourlyCounter) reserve(ip netip.Addr, limit int, now time.Time) (hour int64, ok bool) {
	hour = now.Unix() / 3600
	h.mu.Lock()
	defer h.mu.Unlock()
	if hour != h.hour || h.n == nil {
		h.hour, h.n = hour, make(map[netip.Addr]int)
	}
	if h.n[ip] >= limit {
		return hour, false
	}
	h.n[ip]++
	return hour, true
}

// release takes back a reservation of a message that was not accepted.
func (h *hourlyCounter) release(ip netip.Addr, hour int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hour == h.hour && h.n[ip] > 0 {
		h.n[ip]--
	}
}

// reason is why the server refused something, for Stats.
type reason int

// The reasons counted in Stats.Rejected, by their keys.
const (
	reasonRefused       reason = iota // refused by a TCPREFUSE policy
	reasonRejected                    // greeted with 554 by a REJECT policy
	reasonConcurrency                 // concurrent connections per IP
	reasonPerConnection               // messages per connection
	reasonPerHour                     // messages per hour per IP
	reasonRequireTLS                  // MAIL before STARTTLS where TLS is required
	reasonSyntax                      // bad address
	reasonSize                        // message too large
	reasonRecipients                  // too many recipients
	reasonRelay                       // recipient refused by the RAT
	reasonAuth                        // failed AUTH
	reasonQueue                       // Enqueue failed
	numReasons

	statConnections = numReasons
	statAccepted    = numReasons + 1
)

var reasonKeys = [numReasons]string{
	"tcp_refused", "host_rejected", "concurrency_limit", "messages_per_connection_limit",
	"messages_per_hour_limit", "tls_required", "address_syntax", "message_size",
	"recipients_limit", "relay_denied", "auth_failed", "queue_failed",
}

func (s *Server) count(r reason) { s.stats[r].Add(1) }

// Stats are counters since the server started.
type Stats struct {
	Connections int64            // connections accepted from the network
	Accepted    int64            // messages enqueued and acknowledged
	Rejected    map[string]int64 // refusals by reason: "relay_denied", "message_size", …
}

// Stats returns a snapshot of the counters; Rejected holds every reason key,
// zero or not.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections: s.stats[statConnections].Load(),
		Accepted:    s.stats[statAccepted].Load(),
		Rejected:    make(map[string]int64, numReasons),
	}
	for r, key := range reasonKeys {
		st.Rejected[key] = s.stats[r].Load()
	}
	return st
}
