// Command phases times each step of SMTP sessions sent one after another, a
// message per connection, as smtp-source -s 1 sends them without -d: the
// connection up to the greeting, EHLO, MAIL, RCPT, DATA, the message up to
// its reply, and QUIT up to the server's close. smtp-source reports a rate;
// phases shows where each message's time goes, so that a gateway can be set
// beside smtp-sink step by step.
//
//	go run ./bench/smtp/phases -addr 127.0.0.1:2525 -n 2000
//
// It prints the mean, p50, p90 and p99 of each step in milliseconds, then
// the rate. Every reply must be positive (2xx, or 354 to DATA); any other
// stops the run with the reply named.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// steps names the timed steps of a session, in order.
var steps = []string{"connect+greeting", "EHLO", "MAIL", "RCPT", "DATA", "message+reply", "QUIT", "session"}

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "SMTP server, host:port")
	n := flag.Int("n", 2000, "sessions, one message each")
	size := flag.Int("size", 4096, "message body bytes, not counting headers")
	from := flag.String("f", "a@sender.test", "envelope sender")
	to := flag.String("t", "b@corp.test", "envelope recipient; each session prefixes it with its number")
	flag.Parse()

	s := sender{addr: *addr, from: *from, to: *to, body: body(*size), timeout: 10 * time.Second}
	times := make([][]time.Duration, len(steps))
	start := time.Now()
	for i := range *n {
		if err := s.session(i, times); err != nil {
			fmt.Fprintf(os.Stderr, "phases: session %d: %v\n", i+1, err)
			os.Exit(1)
		}
	}
	report(os.Stdout, times, time.Since(start))
}

// sender sends one message per session to addr.
type sender struct {
	addr, from, to string
	body           string
	timeout        time.Duration // for each whole session
}

// session sends message i and appends each step's time to times, in the
// order of steps.
func (s sender) session(i int, times [][]time.Duration) error {
	began := time.Now()
	c, err := net.DialTimeout("tcp", s.addr, s.timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(began.Add(s.timeout))
	r := bufio.NewReader(c)
	rcpt := fmt.Sprintf("%d.%s", i+1, s.to)
	last := began
	for step, x := range []struct{ send, name, want string }{
		{"", "greeting", "2"},
		{"EHLO phases.test\r\n", "EHLO", "2"},
		{"MAIL FROM:<" + s.from + ">\r\n", "MAIL", "2"},
		{"RCPT TO:<" + rcpt + ">\r\n", "RCPT", "2"},
		{"DATA\r\n", "DATA", "354"},
		{fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: phases %d\r\n\r\n%s.\r\n", s.from, rcpt, i+1, s.body), "end of message", "2"},
		{"QUIT\r\n", "QUIT", "2"},
	} {
		if x.send != "" {
			if _, err := io.WriteString(c, x.send); err != nil {
				return err
			}
		}
		if err := expect(r, x.name, x.want); err != nil {
			return err
		}
		if x.name == "QUIT" {
			if _, err := r.ReadByte(); err != io.EOF { // the server hangs up
				return fmt.Errorf("after QUIT: want the server to close, got %v", err)
			}
		}
		now := time.Now()
		times[step] = append(times[step], now.Sub(last))
		last = now
	}
	times[len(steps)-1] = append(times[len(steps)-1], time.Since(began))
	return nil
}

// expect reads a reply, of one line or several, and checks that its code
// begins with want.
func expect(r *bufio.Reader, after, want string) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reply to %s: %w", after, err)
		}
		if len(line) < 4 {
			return fmt.Errorf("reply to %s: %q is not an SMTP reply", after, line)
		}
		if line[3] == '-' {
			continue
		}
		if !strings.HasPrefix(line, want) {
			return fmt.Errorf("reply to %s: %s", after, strings.TrimSpace(line))
		}
		return nil
	}
}

// body returns about size bytes of 78-character lines.
func body(size int) string {
	line := strings.Repeat("x", 78) + "\r\n"
	return strings.Repeat(line, max(1, size/len(line)))
}

// report prints each step's mean and percentiles, then the rate.
func report(w io.Writer, times [][]time.Duration, elapsed time.Duration) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Fprintf(w, "%-17s %8s %8s %8s %8s\n", "step (ms)", "mean", "p50", "p90", "p99")
	for step, name := range steps {
		d := slices.Sorted(slices.Values(times[step]))
		if len(d) == 0 {
			continue
		}
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
		fmt.Fprintf(w, "%-17s %8.3f %8.3f %8.3f %8.3f\n", name, ms(sum)/float64(len(d)), ms(at(0.5)), ms(at(0.9)), ms(at(0.99)))
	}
	if n := len(times[len(times)-1]); n > 0 {
		fmt.Fprintf(w, "%d messages in %.2f s: %.0f msg/s\n", n, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	}
}
