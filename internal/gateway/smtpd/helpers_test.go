package smtpd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sightline "github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/tracking"
)

var testTime = time.Date(2026, 1, 10, 8, 0, 12, 0, time.UTC)

// queue is an Enqueuer that keeps what it is given, or fails with err.
type queue struct {
	mu   sync.Mutex
	err  error
	envs []*mailflow.Envelope
	data [][]byte
}

func (q *queue) Enqueue(_ context.Context, env *mailflow.Envelope, data []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.envs = append(q.envs, env)
	q.data = append(q.data, data)
	return nil
}

func (q *queue) setErr(err error) {
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
}

func (q *queue) messages() ([]*mailflow.Envelope, [][]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*mailflow.Envelope(nil), q.envs...), append([][]byte(nil), q.data...)
}

type counters struct{ icid, mid atomic.Int64 }

func (c *counters) NextICID() int64 { return c.icid.Add(1) }
func (c *counters) NextMID() int64  { return c.mid.Add(1) }

type recorder struct {
	mu     sync.Mutex
	events []tracking.Event
}

func (r *recorder) Emit(ev tracking.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) all() []tracking.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tracking.Event(nil), r.events...)
}

// logs returns the mail_logs lines emitted so far.
func (r *recorder) logs() []string {
	var out []string
	for _, ev := range r.all() {
		if ev.Log != "" {
			out = append(out, ev.Log)
		}
	}
	return out
}

// resolver answers from fixed tables.
type resolver struct {
	ptr  map[string][]string
	host map[string][]string
}

func (r resolver) LookupAddr(_ context.Context, ip string) ([]string, error) {
	if names, ok := r.ptr[ip]; ok {
		return names, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: ip, IsNotFound: true}
}

func (r resolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if addrs, ok := r.host[host]; ok {
		return addrs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type authenticator struct{ down bool }

func (a authenticator) Authenticate(_ context.Context, user, pass string) error {
	if a.down {
		return sightline.Errorf(sightline.Unavailable, "directory unavailable")
	}
	if user == "alice" && pass == "secret" {
		return nil
	}
	return sightline.Errorf(sightline.Unauthorized, "bad credentials")
}

type testServer struct {
	*Server
	addr   string
	queue  *queue
	events *recorder
	errc   chan error
}

// startServer serves p (nil: the default policy) on 127.0.0.1:0 with a
// fixed clock; edit, when set, adjusts the server before it starts.
func startServer(t *testing.T, p *Policy, edit func(*Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, p, edit)
}

// serveOn is startServer on the listener ln.
func serveOn(t *testing.T, ln net.Listener, p *Policy, edit func(*Server)) *testServer {
	t.Helper()
	ts := &testServer{
		Server: &Server{
			Hostname:     "mx.test",
			ReadTimeout:  10 * time.Second,
			WriteTimeout: 10 * time.Second,
			DataTimeout:  10 * time.Second,
			now:          func() time.Time { return testTime },
		},
		addr:   ln.Addr().String(),
		queue:  &queue{},
		events: &recorder{},
		errc:   make(chan error, 1),
	}
	ts.Queue, ts.IDs, ts.Events = ts.queue, &counters{}, ts.events
	if edit != nil {
		edit(ts.Server)
	}
	ts.SetPolicy(p)
	go func() { ts.errc <- ts.Serve(ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and checks how Serve ended; it may be called
// more than once.
func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown() = %v, want nil", err)
	}
	if ts.errc == nil {
		return
	}
	if err := <-ts.errc; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve() = %v, want ErrServerClosed", err)
	}
	ts.errc = nil
}

// client speaks raw SMTP so tests see replies exactly.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// greet dials, checks the greeting is 220 and says EHLO.
func greet(t *testing.T, addr string) *client {
	t.Helper()
	c := dial(t, addr)
	if got := c.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting = %q, want 220", got)
	}
	c.ok("EHLO client.test", "250")
	return c
}

// reply reads one reply; lines of a multi-line reply are joined by "\n".
func (c *client) reply() string {
	c.t.Helper()
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read reply: %v (so far %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("write %q: %v", line, err)
	}
}

func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.reply()
}

// ok sends line and fails unless the reply starts with want.
func (c *client) ok(line, want string) string {
	c.t.Helper()
	got := c.cmd(line)
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("%s: reply %q, want %s…", line, got, want)
	}
	return got
}

// expect sends line and fails unless the reply is exactly want.
func (c *client) expect(line, want string) {
	c.t.Helper()
	if got := c.cmd(line); got != want {
		c.t.Fatalf("%s: reply %q, want %q", line, got, want)
	}
}

// mail runs one transaction and returns the final reply.
func (c *client) mail(from string, to []string, body string) string {
	c.t.Helper()
	c.ok("MAIL FROM:<"+from+">", "250")
	for _, rcpt := range to {
		c.ok("RCPT TO:<"+rcpt+">", "250")
	}
	c.ok("DATA", "354")
	return c.cmd(body + ".")
}

// closed fails unless the server closes the connection without more replies.
func (c *client) closed() {
	c.t.Helper()
	if line, err := c.r.ReadString('\n'); err != io.EOF {
		c.t.Fatalf("read after the last reply = %q, %v; want EOF", line, err)
	}
}

// startTLS upgrades the session and says EHLO again.
func (c *client) startTLS(cfg *tls.Config) *client {
	c.t.Helper()
	c.expect("STARTTLS", "220 2.0.0 Ready to start TLS")
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	tc2 := &client{t: c.t, conn: tc, r: bufio.NewReader(tc)}
	tc2.ok("EHLO client.test", "250")
	return tc2
}

// testTLS returns a server config with a fresh self-signed certificate for
// mx.test and a client config that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.test"},
		DNSNames:     []string{"mx.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "mx.test"}
}

// testPolicy puts 127.0.0.1 in UNKNOWNLIST under one flow policy "TEST"
// with action and a 1 MiB size limit, edited by edit; the RAT accepts
// example.com.
func testPolicy(action Action, edit func(*FlowPolicy)) *Policy {
	f := FlowPolicy{Name: "TEST", Action: action, MaxMessageSize: mib}
	if edit != nil {
		edit(&f)
	}
	return &Policy{
		SenderGroups: []SenderGroup{{Name: UnknownList, Sources: []string{"127.0.0.1"}, FlowPolicy: "TEST"}},
		FlowPolicies: []FlowPolicy{f},
		RAT:          []RATEntry{{Pattern: "example.com", Action: Accept}, {Pattern: "ALL", Action: Reject}},
	}
}

const testBody = "From: alice@sender.test\r\nTo: bob@example.com\r\nSubject: hello\r\n\r\nHi Bob.\r\n"
