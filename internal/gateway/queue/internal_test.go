package queue

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/sightline/sightline/internal/gateway/mailflow"
)

func TestRoute(t *testing.T) {
	q := &Queue{}
	q.SetRoutes([]Route{
		{Domain: "ALL", Hosts: []string{"all:25"}},
		{Domain: ".example.com", Hosts: []string{"sub:25"}},
		{Domain: ".deep.example.com", Hosts: []string{"deep:25"}},
		{Domain: "Example.com", Hosts: []string{"exact:25"}},
	})
	tests := []struct {
		name, domain, want string
	}{
		{"exact, case-insensitive", "example.com", "exact:25"},
		{"subdomain", "a.example.com", "sub:25"},
		{"longest suffix wins", "x.deep.example.com", "deep:25"},
		{"suffix is not the domain itself", "deep.example.com", "sub:25"},
		{"no look-alike match", "badexample.com", "all:25"},
		{"default", "other.test", "all:25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := q.route(tt.domain)
			if !ok || got.Hosts[0] != tt.want {
				t.Errorf("route(%q) = %v, %v, want %s", tt.domain, got.Hosts, ok, tt.want)
			}
		})
	}
	q.SetRoutes([]Route{{Domain: "example.com", Hosts: []string{"x:25"}}})
	if r, ok := q.route("other.test"); ok {
		t.Errorf("route(other.test) without ALL = %v, want no route (local mailbox)", r)
	}
}

func TestBackoff(t *testing.T) {
	q := &Queue{RetryMin: time.Minute, RetryMax: 10 * time.Minute}
	tests := []struct {
		attempts int
		lo, hi   time.Duration
	}{
		{1, time.Minute, time.Minute},
		{2, 90 * time.Second, 2 * time.Minute},
		{3, 3 * time.Minute, 4 * time.Minute},
		{10, 7*time.Minute + 30*time.Second, 10 * time.Minute},
	}
	for _, tt := range tests {
		for range 50 {
			if d := q.backoff(tt.attempts); d < tt.lo || d > tt.hi {
				t.Errorf("backoff(%d) = %v, want in [%v, %v]", tt.attempts, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestStripEnhanced(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2.0.0 Ok: queued as 4Xk9", "Ok: queued as 4Xk9"},
		{"ok:  Message 89 accepted", "ok:  Message 89 accepted"},
		{"5.1.10 null MX", "null MX"},
		{"2.0 not a code", "2.0 not a code"},
		{"7.0.0 bad class", "7.0.0 bad class"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := stripEnhanced(tt.in); got != tt.want {
			t.Errorf("stripEnhanced(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEngineOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Dropped by Content Filter", "Content Filter"},
		{"Dropped By Anti-Virus", "Anti-Virus"},
		{"", "policy"},
	}
	for _, tt := range tests {
		if got := engineOf(tt.in); got != tt.want {
			t.Errorf("engineOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzBuildDSN feeds untrusted message bytes to the DSN builder: the
// result must always parse as a three-part multipart/report.
func FuzzBuildDSN(f *testing.F) {
	f.Add([]byte("Subject: hi\r\nFrom: a@b\r\n\r\nbody"))
	f.Add([]byte("no header end"))
	f.Add([]byte("--=_sightline_dsn_1_0\r\n\n\n"))
	f.Add([]byte("X: \xff\xfe\r\n folded\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env := &mailflow.Envelope{MID: 1, MailFrom: "a@sender.test", ReceivedAt: time.Unix(0, 0)}
		fails := []failure{{Rcpt: "x@corp.test", Err: attemptError{Code: 550, Text: "5.1.1 no\r\nsuch user", Permanent: true}}}
		msg := buildDSN("gw.test", 2, env, data, fails, time.Unix(1, 0))
		ent, err := message.Read(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("DSN does not parse: %v\n%q", err, msg)
		}
		mr := ent.MultipartReader()
		if mr == nil {
			t.Fatalf("DSN is not multipart: %q", msg)
		}
		var types []string
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil && !message.IsUnknownCharset(err) {
				t.Fatalf("DSN part: %v\n%q", err, msg)
			}
			typ, _, _ := p.Header.ContentType()
			types = append(types, typ)
			io.Copy(io.Discard, p.Body)
		}
		if got := strings.Join(types, ","); got != "text/plain,message/delivery-status,text/rfc822-headers" {
			t.Fatalf("DSN parts = %s\n%q", got, msg)
		}
	})
}

// writeDotted writes what textproto's DotWriter writes, but for carriage
// returns outside CRLF, which textproto sometimes doubles (TestWriteDottedCR).
func FuzzWriteDotted(f *testing.F) {
	for _, msg := range []string{
		"",
		"a",
		"Subject: x\r\n\r\nbody\r\n",
		"Subject: x\n\nbare line feeds\n",
		".leading dot\r\n..two\r\nmiddle . dot\r\n.\r\n",
		"no final line break",
		"\r\n\r\n.\n",
	} {
		f.Add([]byte(msg))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
			t.Skip("a carriage return outside CRLF")
		}
		var want, got bytes.Buffer
		dw := textproto.NewWriter(bufio.NewWriter(&want)).DotWriter()
		dw.Write(msg)
		dw.Close()
		w := bufio.NewWriter(&got)
		writeDotted(w, msg)
		w.Flush()
		if got.String() != want.String() {
			t.Errorf("writeDotted(%q) = %q, want %q (textproto)", msg, got.String(), want.String())
		}
	})
}

// Content already in CRLF lines goes unchanged but for dot-stuffing, stray
// carriage returns included; a carriage return at the very end ends a line.
func TestWriteDottedCR(t *testing.T) {
	for msg, want := range map[string]string{
		"lone\rcarriage return\r\n": "lone\rcarriage return\r\n.\r\n",
		"two\r\r\n.x\r\n":           "two\r\r\n..x\r\n.\r\n",
		"ends with one\r":           "ends with one\r\n.\r\n",
		"ends with two\r\r":         "ends with two\r\r\n.\r\n",
	} {
		var got bytes.Buffer
		w := bufio.NewWriter(&got)
		writeDotted(w, []byte(msg))
		w.Flush()
		if got.String() != want {
			t.Errorf("writeDotted(%q) = %q, want %q", msg, got.String(), want)
		}
	}
}
