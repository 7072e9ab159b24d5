package main

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveSMTP answers SMTP on 127.0.0.1:0 just enough for a session, with
// endReply to the end of each message, and returns its address and the
// messages it received.
func serveSMTP(t *testing.T, endReply string) (string, func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var msgs []string
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				c.Write([]byte("220 fake ESMTP\r\n"))
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
					case "EHLO":
						c.Write([]byte("250-fake\r\n250 PIPELINING\r\n"))
					case "DATA":
						c.Write([]byte("354 go ahead\r\n"))
						var msg strings.Builder
						for {
							l, err := r.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
							msg.WriteString(l)
						}
						mu.Lock()
						msgs = append(msgs, msg.String())
						mu.Unlock()
						c.Write([]byte(endReply + "\r\n"))
					case "QUIT":
						c.Write([]byte("221 bye\r\n"))
						return
					default:
						c.Write([]byte("250 ok\r\n"))
					}
				}
			})
		}
	})
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), msgs...)
	}
}

func TestSessions(t *testing.T) {
	addr, received := serveSMTP(t, "250 queued")
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
	addr, _ := serveSMTP(t, "552 5.3.4 message too big")
	s := sender{addr: addr, from: "a@sender.test", to: "b@corp.test", body: body(100), timeout: 5 * time.Second}
	err := s.session(0, make([][]time.Duration, len(steps)))
	if err == nil || !strings.Contains(err.Error(), "reply to end of message: 552 5.3.4 message too big") {
		t.Errorf("session = %v, want the 552 named", err)
	}
}
