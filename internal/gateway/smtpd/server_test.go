package smtpd

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/tracking"
)

func TestGreetingAndEHLO(t *testing.T) {
	serverTLS, _ := testTLS(t)
	tests := []struct {
		name    string
		tls     bool
		want    []string
		wantNot []string
	}{
		{"plain", false,
			[]string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "SIZE 1048576"},
			[]string{"STARTTLS", "AUTH PLAIN LOGIN"}},
		{"tls", true,
			[]string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "SIZE 1048576", "STARTTLS"},
			[]string{"AUTH PLAIN LOGIN"}}, // AUTH only after STARTTLS
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, testPolicy(Accept, nil), func(s *Server) {
				s.Auth = authenticator{}
				if tt.tls {
					s.TLSConfig = serverTLS
				}
			})
			c := dial(t, ts.addr)
			if got, want := c.reply(), "220 mx.test ESMTP Sightline"; got != want {
				t.Errorf("greeting = %q, want %q", got, want)
			}
			ehlo := c.ok("EHLO client.test", "250")
			var exts []string
			for _, line := range strings.Split(ehlo, "\n") {
				exts = append(exts, line[4:])
			}
			for _, w := range tt.want {
				if !slices.Contains(exts, w) {
					t.Errorf("EHLO = %q, want %q in it", exts, w)
				}
			}
			for _, w := range tt.wantNot {
				if slices.Contains(exts, w) {
					t.Errorf("EHLO = %q, want no %q", exts, w)
				}
			}
		})
	}
}

// writeLog is a listener whose connections log what the server writes,
// one entry per Write.
type writeLog struct {
	net.Listener
	mu     sync.Mutex
	writes []string
}

func (l *writeLog) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &loggedConn{Conn: c, log: l}, nil
}

func (l *writeLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.writes)
}

type loggedConn struct {
	net.Conn
	log *writeLog
}

func (c *loggedConn) Write(b []byte) (int, error) {
	c.log.mu.Lock()
	c.log.writes = append(c.log.writes, string(b))
	c.log.mu.Unlock()
	return c.Conn.Write(b)
}

func TestMultiLineReplyInOneWrite(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := &writeLog{Listener: ln}
	ts := serveOn(t, log, testPolicy(Accept, nil), func(s *Server) { s.TLSConfig = serverTLS })
	c := dial(t, ts.addr)
	c.reply()
	ehlo := c.ok("EHLO client.test", "250")
	if n := strings.Count(ehlo, "\n") + 1; n < 5 {
		t.Fatalf("EHLO reply has %d lines, want a multi-line reply: %q", n, ehlo)
	}
	c.ok("NOOP", "250")
	writes := log.all()
	want := []string{"220 mx.test ESMTP Sightline\r\n", strings.ReplaceAll(ehlo, "\n", "\r\n") + "\r\n", "250 2.0.0 I have successfully done nothing\r\n"}
	if !slices.Equal(writes, want) {
		t.Errorf("writes = %q, want %q", writes, want)
	}

	// Under TLS the reply is sent in records, and still whole.
	tc := c.startTLS(clientTLS)
	got := tc.ok("EHLO client.test", "250")
	if !strings.Contains(got, "250-PIPELINING\n") || !strings.HasSuffix(got, "\n250 SIZE 1048576") {
		t.Errorf("EHLO under TLS = %q, want PIPELINING and SIZE last", got)
	}
	tc.ok("NOOP", "250")
}

func TestAcceptMessage(t *testing.T) {
	ts := startServer(t, testPolicy(Accept, nil), func(s *Server) {
		s.Resolver = resolver{
			ptr:  map[string][]string{"127.0.0.1": {"client.test."}},
			host: map[string][]string{"client.test": {"127.0.0.1"}},
		}
	})
	c := greet(t, ts.addr)
	if got, want := c.mail("alice@sender.test", []string{"bob@example.com"}, testBody), "250 2.0.0 Ok: Message 1 accepted"; got != want {
		t.Fatalf("end of DATA: reply %q, want %q", got, want)
	}
	envs, data := ts.queue.messages()
	if len(envs) != 1 {
		t.Fatalf("Enqueue called %d times, want 1", len(envs))
	}
	want := &mailflow.Envelope{
		ICID: 1, MID: 1, ReceivedAt: testTime, Direction: mailflow.Incoming,
		Listener: "Data1", ClientIP: "127.0.0.1", ClientPort: c.conn.LocalAddr().(*net.TCPAddr).Port,
		HELO: "client.test", ReverseDNS: "client.test", ReverseDNSOK: true,
		SenderGroup: UnknownList, MailFlowPolicy: "TEST",
		MailFrom: "alice@sender.test", Recipients: []string{"bob@example.com"}, Size: int64(len(testBody)),
	}
	if diff := cmp.Diff(want, envs[0]); diff != "" {
		t.Errorf("Envelope mismatch (-want +got):\n%s", diff)
	}
	wantData := "Received: from client.test (client.test [127.0.0.1])\r\n" +
		"\tby mx.test (Sightline) with ESMTP id 1\r\n" +
		"\tfor <bob@example.com>;\r\n" +
		"\tSat, 10 Jan 2026 08:00:12 +0000\r\n" + testBody
	if diff := cmp.Diff(wantData, string(data[0])); diff != "" {
		t.Errorf("enqueued data mismatch (-want +got):\n%s", diff)
	}
	if st := ts.Stats(); st.Accepted != 1 || st.Connections != 1 {
		t.Errorf("Stats() = %+v, want 1 connection, 1 accepted", st)
	}
}

func TestRelayControl(t *testing.T) {
	tests := []struct {
		name      string
		policy    *Policy
		rcpt      string
		want      string
		direction string
	}{
		{"RAT domain accepted", testPolicy(Accept, nil), "bob@example.com", "250 2.0.0 I'll make sure <bob@example.com> gets this", mailflow.Incoming},
		{"RAT domain ignores case", testPolicy(Accept, nil), "Bob@EXAMPLE.com", "250 2.0.0 I'll make sure <Bob@EXAMPLE.com> gets this", mailflow.Incoming},
		{"outside RAT is not relayed", testPolicy(Accept, nil), "victim@elsewhere.test", "550 5.7.1 Relaying denied", ""},
		{"subdomain of a RAT domain is not that domain", testPolicy(Accept, nil), "bob@sub.example.com", "550 5.7.1 Relaying denied", ""},
		{"RELAY policy relays anywhere", testPolicy(Relay, nil), "victim@elsewhere.test", "250 2.0.0 I'll make sure <victim@elsewhere.test> gets this", mailflow.Outgoing},
		{"default policy relays from loopback", nil, "victim@elsewhere.test", "250 2.0.0 I'll make sure <victim@elsewhere.test> gets this", mailflow.Outgoing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.policy, nil)
			c := greet(t, ts.addr)
			c.ok("MAIL FROM:<alice@sender.test>", "250")
			c.expect("RCPT TO:<"+tt.rcpt+">", tt.want)
			if tt.direction == "" {
				c.expect("DATA", "502 5.5.1 Missing RCPT TO command.")
				if st := ts.Stats(); st.Rejected["relay_denied"] != 1 {
					t.Errorf("Stats().Rejected[relay_denied] = %d, want 1", st.Rejected["relay_denied"])
				}
				return
			}
			c.ok("DATA", "354")
			c.ok(testBody+".", "250")
			envs, _ := ts.queue.messages()
			if len(envs) != 1 || envs[0].Direction != tt.direction {
				t.Fatalf("enqueued %+v, want one message with direction %q", envs, tt.direction)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))
	badPlain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00wrong"))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	tests := []struct {
		name  string
		login func(c *client)
	}{
		{"PLAIN", func(c *client) {
			c.expect("AUTH PLAIN "+badPlain, "535 5.7.8 Authentication failed")
			c.expect("AUTH PLAIN "+plain, "235 2.0.0 Authentication succeeded")
		}},
		{"PLAIN without initial response", func(c *client) {
			c.expect("AUTH PLAIN", "334 ")
			c.expect(plain, "235 2.0.0 Authentication succeeded")
		}},
		{"LOGIN", func(c *client) {
			c.expect("AUTH LOGIN", "334 "+b64("Username:"))
			c.expect(b64("alice"), "334 "+b64("Password:"))
			c.expect(b64("secret"), "235 2.0.0 Authentication succeeded")
		}},
		{"LOGIN with initial response", func(c *client) {
			c.expect("AUTH LOGIN "+b64("alice"), "334 "+b64("Password:"))
			c.expect(b64("secret"), "235 2.0.0 Authentication succeeded")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, testPolicy(Accept, nil), func(s *Server) {
				s.TLSConfig = serverTLS
				s.Auth = authenticator{}
			})
			c := greet(t, ts.addr)
			c.expect("AUTH PLAIN "+plain, "523 5.7.10 TLS is required")

			c = c.startTLS(clientTLS)
			// Before AUTH the session is not trusted: no relaying.
			c.ok("MAIL FROM:<alice@sender.test>", "250")
			c.expect("RCPT TO:<carol@elsewhere.test>", "550 5.7.1 Relaying denied")
			c.ok("RSET", "250")

			tt.login(c)
			if got := c.mail("alice@sender.test", []string{"carol@elsewhere.test"}, testBody); !strings.HasPrefix(got, "250 ") {
				t.Fatalf("authenticated relay: reply %q, want 250", got)
			}
			envs, _ := ts.queue.messages()
			if len(envs) != 1 {
				t.Fatalf("Enqueue called %d times, want 1", len(envs))
			}
			env := envs[0]
			if env.AuthID != "alice" || env.Direction != mailflow.Outgoing || !strings.HasPrefix(env.TLS, "TLSv1.3 TLS_") {
				t.Errorf("Envelope AuthID, Direction, TLS = %q, %q, %q; want alice, outgoing, TLSv1.3 TLS_…", env.AuthID, env.Direction, env.TLS)
			}
			if !slices.Contains(ts.events.logs(), "ICID 1 TLS success protocol "+strings.Replace(env.TLS, " ", " cipher ", 1)) {
				t.Errorf("logs = %q, want a TLS success line", ts.events.logs())
			}
		})
	}
}

func TestAuthUnavailable(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	ts := startServer(t, testPolicy(Accept, nil), func(s *Server) {
		s.TLSConfig = serverTLS
		s.Auth = authenticator{down: true}
	})
	c := greet(t, ts.addr).startTLS(clientTLS)
	c.expect("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")), "454 4.7.0 Temporary authentication failure")
}

func TestAuthFailuresHangUp(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	ts := startServer(t, testPolicy(Accept, nil), func(s *Server) {
		s.TLSConfig = serverTLS
		s.Auth = authenticator{}
	})
	c := greet(t, ts.addr).startTLS(clientTLS)
	bad := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00guess"))
	for range maxAuthFailures {
		c.expect(bad, "535 5.7.8 Authentication failed")
	}
	c.closed()
	if got := ts.Stats().Rejected["auth_failed"]; got != maxAuthFailures {
		t.Errorf("Stats().Rejected[auth_failed] = %d, want %d", got, maxAuthFailures)
	}
}

func TestLimits(t *testing.T) {
	big := strings.Repeat("x", 200) + "\r\n"
	tests := []struct {
		name   string
		edit   func(*FlowPolicy)
		script func(t *testing.T, c *client)
	}{
		{"SIZE parameter over the limit", func(f *FlowPolicy) { f.MaxMessageSize = 100 }, func(t *testing.T, c *client) {
			c.expect("MAIL FROM:<alice@sender.test> SIZE=101", "552 5.3.4 Max message size exceeded")
			c.ok("MAIL FROM:<alice@sender.test> SIZE=100", "250")
		}},
		{"DATA over the limit", func(f *FlowPolicy) { f.MaxMessageSize = 100 }, func(t *testing.T, c *client) {
			c.ok("MAIL FROM:<alice@sender.test>", "250")
			c.ok("RCPT TO:<bob@example.com>", "250")
			c.ok("DATA", "354")
			c.expect(big+".", "552 5.3.4 Message size exceeds fixed maximum message size")
			// The rest was read and discarded: the session goes on.
			if got := c.mail("alice@sender.test", []string{"bob@example.com"}, "Subject: s\r\n\r\nsmall\r\n"); !strings.HasPrefix(got, "250 ") {
				t.Errorf("small message after an oversize one: reply %q, want 250", got)
			}
		}},
		{"recipients", func(f *FlowPolicy) { f.MaxRecipientsPerMessage = 2 }, func(t *testing.T, c *client) {
			c.ok("MAIL FROM:<alice@sender.test>", "250")
			c.ok("RCPT TO:<a@example.com>", "250")
			c.ok("RCPT TO:<b@example.com>", "250")
			c.expect("RCPT TO:<c@example.com>", "452 4.5.3 Too many recipients")
		}},
		{"messages per connection", func(f *FlowPolicy) { f.MaxMessagesPerConnection = 1 }, func(t *testing.T, c *client) {
			if got := c.mail("alice@sender.test", []string{"bob@example.com"}, testBody); !strings.HasPrefix(got, "250 ") {
				t.Fatalf("first message: reply %q, want 250", got)
			}
			// Pipelined commands after the limit get no reply: 421 is the last word.
			c.send("MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.com>")
			if got, want := c.reply(), "421 4.7.0 Too many messages for this session, try again later"; got != want {
				t.Fatalf("MAIL after the limit: reply %q, want %q", got, want)
			}
			c.closed()
		}},
		{"messages per hour", func(f *FlowPolicy) { f.MaxMessagesPerHourPerIP = 2 }, func(t *testing.T, c *client) {
			// An aborted transaction does not count.
			c.ok("MAIL FROM:<alice@sender.test>", "250")
			c.ok("RSET", "250")
			for range 2 {
				if got := c.mail("alice@sender.test", []string{"bob@example.com"}, testBody); !strings.HasPrefix(got, "250 ") {
					t.Fatalf("message within the hourly limit: reply %q, want 250", got)
				}
			}
			c.expect("MAIL FROM:<alice@sender.test>", "452 4.3.2 Too many messages from your IP this hour, try again later")
		}},
		{"TLS required", func(f *FlowPolicy) { f.RequireTLS = true }, func(t *testing.T, c *client) {
			c.expect("MAIL FROM:<alice@sender.test>", "530 5.7.0 Must issue a STARTTLS command first")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, testPolicy(Accept, tt.edit), nil)
			tt.script(t, greet(t, ts.addr))
		})
	}
}

func TestConcurrentConnectionsPerIP(t *testing.T) {
	ts := startServer(t, testPolicy(Accept, func(f *FlowPolicy) { f.MaxConcurrentConnectionsPerIP = 1 }), nil)
	greet(t, ts.addr) // holds the one connection allowed
	c := dial(t, ts.addr)
	if got, want := c.reply(), "421 4.7.0 Too many concurrent connections from your IP, try again later"; got != want {
		t.Fatalf("second connection: greeting %q, want %q", got, want)
	}
	c.closed()
	if got := ts.Stats().Rejected["concurrency_limit"]; got != 1 {
		t.Errorf("Stats().Rejected[concurrency_limit] = %d, want 1", got)
	}
}

func TestConnectionPolicies(t *testing.T) {
	t.Run("REJECT", func(t *testing.T) {
		ts := startServer(t, testPolicy(Reject, nil), nil)
		c := dial(t, ts.addr)
		if got, want := c.reply(), "554 5.7.1 mx.test Access denied"; got != want {
			t.Fatalf("greeting = %q, want %q", got, want)
		}
		c.expect("EHLO client.test", "503 5.5.1 No SMTP service here")
		c.expect("MAIL FROM:<alice@sender.test>", "503 5.5.1 No SMTP service here")
		c.expect("QUIT", "221 2.0.0 Bye")
		c.closed()
		ts.stop(t)
		want := "ICID 1 REJECT SG UNKNOWNLIST match 127.0.0.1 SBRS None country None"
		if logs := ts.events.logs(); !slices.Contains(logs, want) {
			t.Errorf("logs = %q, want %q", logs, want)
		}
	})
	t.Run("TCPREFUSE", func(t *testing.T) {
		ts := startServer(t, testPolicy(TCPRefuse, nil), nil)
		c := dial(t, ts.addr)
		c.closed()
	})
}

func TestBadSyntax(t *testing.T) {
	tests := []struct {
		cmd, want string
	}{
		{"XYZW", "500 5.5.2 Syntax errors, XYZW command unrecognized"},
		{"MAIL FROM:garbage", "501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>"},
		{"MAIL FROM:<alice@-sender.test>", "501 5.1.7 Bad sender address syntax"},
		{"MAIL FROM:<alice@sender..test>", "501 5.1.7 Bad sender address syntax"},
		{"MAIL FROM:<" + strings.Repeat("a", 65) + "@sender.test>", "501 5.1.7 Bad sender address syntax"},
		{"MAIL FROM:<alice@[300.1.1.1]>", "501 5.1.7 Bad sender address syntax"},
		{"MAIL FROM:<élise@sender.test>", "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter"},
	}
	rcptTests := []struct {
		mail, rcpt, want string
	}{
		{"MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@exa_mple.com>", "501 5.1.3 Bad recipient address syntax"},
		{"MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.com->", "501 5.1.3 Bad recipient address syntax"},
		{"MAIL FROM:<alice@sender.test>", "RCPT TO:<bøb@example.com>", "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter"},
		{"MAIL FROM:<alice@sender.test> SMTPUTF8", "RCPT TO:<bøb@example.com>", "250 2.0.0 I'll make sure <bøb@example.com> gets this"},
		{"MAIL FROM:<>", "RCPT TO:<bob@[IPv6:2001:db8::1]>", "550 5.7.1 Relaying denied"}, // valid syntax, outside the RAT
	}
	ts := startServer(t, testPolicy(Accept, nil), nil)
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			greet(t, ts.addr).expect(tt.cmd, tt.want)
		})
	}
	for _, tt := range rcptTests {
		t.Run(tt.rcpt, func(t *testing.T) {
			c := greet(t, ts.addr)
			c.ok(tt.mail, "250")
			c.expect(tt.rcpt, tt.want)
		})
	}
}

func TestEnqueueFailure(t *testing.T) {
	ts := startServer(t, testPolicy(Accept, nil), nil)
	ts.queue.setErr(errors.New("disk full: /var/spool/sightline"))
	c := greet(t, ts.addr)
	if got, want := c.mail("alice@sender.test", []string{"bob@example.com"}, testBody),
		"451 4.3.0 Requested action aborted: local error in processing, try again later"; got != want {
		t.Fatalf("end of DATA with a failing queue: reply %q, want %q", got, want)
	}
	if st := ts.Stats(); st.Accepted != 0 || st.Rejected["queue_failed"] != 1 {
		t.Errorf("Stats() = %+v, want nothing accepted and one queue_failed", st)
	}
	// The client retries on the same session once the queue is back.
	ts.queue.setErr(nil)
	if got, want := c.mail("alice@sender.test", []string{"bob@example.com"}, testBody), "250 2.0.0 Ok: Message 2 accepted"; got != want {
		t.Fatalf("retry: reply %q, want %q", got, want)
	}
	var aborted []tracking.Event
	for _, ev := range ts.events.all() {
		if ev.Status != "" {
			aborted = append(aborted, ev)
		}
	}
	want := []tracking.Event{{Time: testTime, Level: tracking.Info, ICID: 1, MID: 1,
		Summary: "Message 1 aborted: queue unavailable.", Log: "Message aborted MID 1 Receiving Failed: queue unavailable",
		Status: tracking.StatusAborted}}
	if diff := cmp.Diff(want, aborted); diff != "" {
		t.Errorf("status events mismatch (-want +got):\n%s", diff)
	}
}

func TestShutdown(t *testing.T) {
	t.Run("idle session", func(t *testing.T) {
		ts := startServer(t, testPolicy(Accept, nil), nil)
		c := greet(t, ts.addr)
		done := make(chan struct{})
		go func() { ts.stop(t); close(done) }()
		if got, want := c.reply(), "421 4.3.2 mx.test Service shutting down, closing transmission channel"; got != want {
			t.Fatalf("idle session on Shutdown: %q, want %q", got, want)
		}
		c.closed()
		<-done
	})
	t.Run("message in transfer is finished", func(t *testing.T) {
		ts := startServer(t, testPolicy(Accept, nil), nil)
		c := greet(t, ts.addr)
		c.ok("MAIL FROM:<alice@sender.test>", "250")
		c.ok("RCPT TO:<bob@example.com>", "250")
		c.ok("DATA", "354")
		c.send("Subject: half")
		done := make(chan struct{})
		go func() { ts.stop(t); close(done) }()
		for !ts.closed.Load() {
			time.Sleep(time.Millisecond) // wait for Shutdown to begin
		}
		c.send("\r\nrest of the message\r\n.")
		if got, want := c.reply(), "250 2.0.0 Ok: Message 1 accepted"; got != want {
			t.Fatalf("end of DATA during Shutdown: %q, want %q", got, want)
		}
		if got, want := c.reply(), "421 4.3.2 mx.test Service shutting down, closing transmission channel"; got != want {
			t.Fatalf("after the message: %q, want %q", got, want)
		}
		c.closed()
		<-done
	})
	t.Run("deadline", func(t *testing.T) {
		ts := startServer(t, testPolicy(Accept, nil), nil)
		c := greet(t, ts.addr)
		c.ok("MAIL FROM:<alice@sender.test>", "250")
		c.ok("RCPT TO:<bob@example.com>", "250")
		c.ok("DATA", "354") // and never finishes
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := ts.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown(cancelled ctx) = %v, want context.Canceled", err)
		}
		if envs, _ := ts.queue.messages(); len(envs) != 0 {
			t.Errorf("Enqueue called %d times, want 0", len(envs))
		}
	})
}

func TestEventsForOneMessage(t *testing.T) {
	ts := startServer(t, testPolicy(Accept, nil), func(s *Server) {
		s.Resolver = resolver{
			ptr:  map[string][]string{"127.0.0.1": {"client.test."}},
			host: map[string][]string{"client.test": {"127.0.0.1"}},
		}
	})
	c := greet(t, ts.addr)
	c.mail("alice@sender.test", []string{"bob@example.com"}, testBody)
	c.expect("QUIT", "221 2.0.0 Bye")
	ts.stop(t) // waits for the connection to end

	ev := func(mid int64, summary, log string) tracking.Event {
		return tracking.Event{Time: testTime, Level: tracking.Info, ICID: 1, MID: mid, Summary: summary, Log: log}
	}
	want := []tracking.Event{
		ev(0, "Incoming connection (ICID 1) has sender_group: UNKNOWNLIST, sender_ip: 127.0.0.1 and sbrs: None", ""),
		ev(0, "Protocol SMTP interface Data1  (IP 127.0.0.1) on incoming connection (ICID 1) from sender IP 127.0.0.1. Reverse DNS  host client.test verified yes.",
			"New SMTP ICID 1 interface Data1 (127.0.0.1) address 127.0.0.1 reverse dns host client.test verified yes"),
		ev(0, "(ICID 1) ACCEPT sender group UNKNOWNLIST match 127.0.0.1 SBRS None country None",
			"ICID 1 ACCEPT SG UNKNOWNLIST match 127.0.0.1 SBRS None country None"),
		ev(1, "Start message 1 on incoming connection (ICID 1).", "Start MID 1 ICID 1"),
		ev(1, "Message 1 enqueued on incoming connection (ICID 1) from alice@sender.test.", "MID 1 ICID 1 From: <alice@sender.test>"),
		ev(1, "Message 1 direction: incoming", ""),
		ev(1, "Message 1 on incoming connection (ICID 1) added recipient (bob@example.com).", "MID 1 ICID 1 RID 0 To: <bob@example.com>"),
		ev(0, "Incoming connection (ICID 1) lost.", "ICID 1 close"),
	}
	if diff := cmp.Diff(want, ts.events.all()); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
}

func TestSetPolicyInvalidKeepsPrevious(t *testing.T) {
	ts := startServer(t, testPolicy(Accept, nil), nil)
	bad := testPolicy(Relay, nil)
	bad.SenderGroups[0].FlowPolicy = "MISSING"
	ts.SetPolicy(bad)
	c := greet(t, ts.addr)
	c.ok("MAIL FROM:<alice@sender.test>", "250")
	c.expect("RCPT TO:<victim@elsewhere.test>", "550 5.7.1 Relaying denied")

	// A valid new policy applies from the next transaction.
	ts.SetPolicy(testPolicy(Relay, nil))
	c.ok("RSET", "250")
	c.ok("MAIL FROM:<alice@sender.test>", "250")
	c.expect("RCPT TO:<carol@elsewhere.test>", "550 5.7.1 Relaying denied") // the connection's action stays ACCEPT
	ts.SetPolicy(testPolicy(Accept, func(f *FlowPolicy) { f.MaxRecipientsPerMessage = 1 }))
	c.ok("RSET", "250")
	c.ok("MAIL FROM:<alice@sender.test>", "250")
	c.ok("RCPT TO:<a@example.com>", "250")
	c.expect("RCPT TO:<b@example.com>", "452 4.5.3 Too many recipients")
}
