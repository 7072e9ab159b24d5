package observable

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestInspect(t *testing.T) {
	sha := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tests := []struct {
		name string
		in   string
		want []Observable
	}{
		{"console-api example", "1.2.3.4 foo bar xyz.com www.xyz.com",
			[]Observable{{IP, "1.2.3.4"}, {Domain, "xyz.com"}, {Domain, "www.xyz.com"}}},
		{"nothing", "hello world, nothing to see here. 42 and 3.14", nil},
		{"typed terms first", `ip:"4.2.2.2" email_subject:"Invoice from a@b.com" cisco_mid:315 file_name:'a.pdf'`,
			[]Observable{{IP, "4.2.2.2"}, {EmailSubject, "Invoice from a@b.com"}, {CiscoMID, "315"}, {FileName, "a.pdf"}}},
		{"malformed typed term is text", `ip:"1.2.3" url:"evil.com/x" email_subject:"open`,
			[]Observable{{Domain, "evil.com"}}},
		{"bare numbers are not mids", "MID 315 and 12345", nil},
		{"url with host not repeated", "see https://www.example.com/a?b=1&c=2#frag.",
			[]Observable{{URL, "https://www.example.com/a?b=1&c=2#frag"}}},
		{"url in parentheses", "(http://example.org/wiki/Foo_(bar)) and [ftp://files.example.net/a.txt]",
			[]Observable{{URL, "http://example.org/wiki/Foo_(bar)"}, {URL, "ftp://files.example.net/a.txt"}}},
		{"url in angle brackets", "<https://example.org/x>",
			[]Observable{{URL, "https://example.org/x"}}},
		{"defanged", "hxxps://evil[.]com/login hxxp[:]//bad(.)org/x fxp://files[.]evil.net/a 1.2.3[.]4 bob[@]evil[.]com",
			[]Observable{{URL, "https://evil.com/login"}, {URL, "http://bad.org/x"}, {URL, "ftp://files.evil.net/a"},
				{IP, "1.2.3.4"}, {Email, "bob@evil.com"}}},
		{"other schemes read as text", "ldap://dir.example.com/x mailto:bob@example.org?subject=hi",
			[]Observable{{Domain, "dir.example.com"}, {Email, "bob@example.org"}}},
		{"ipv6 url", "http://[2001:db8::1]:8080/x", []Observable{{URL, "http://[2001:db8::1]:8080/x"}}},
		{"email not domain", "Write to Alice.Smith+tag@Sender.COM, or 'bob@corp.org'.",
			[]Observable{{Email, "Alice.Smith+tag@sender.com"}, {Email, "bob@corp.org"}}},
		{"emails deduplicated case-insensitively", "alice@x.com ALICE@X.COM", []Observable{{Email, "alice@x.com"}}},
		{"at without domain", "@handle and user@localhost and a@b", nil},
		{"ipv4", "from 203.0.113.25, via 10.0.0.1:25 (192.168.1.1).",
			[]Observable{{IP, "203.0.113.25"}, {IP, "10.0.0.1"}, {IP, "192.168.1.1"}}},
		{"not addresses", "version 1.2.3, v1.2.3.4, 1.2.3.4.5, 01.02.03.04, 256.1.1.1, 2024-01-15, 15.01.2024, 12:30:45, 00:1a:2b:3c:4d:5e, std::vector", nil},
		{"ipv6", "fe80::1, 2001:DB8:0:0:0:0:0:25. ::ffff:192.0.2.1 and [2001:db8::2]",
			[]Observable{{IPv6, "fe80::1"}, {IPv6, "2001:db8::25"}, {IPv6, "::ffff:192.0.2.1"}, {IPv6, "2001:db8::2"}}},
		{"hashes", "sha256 " + strings.ToUpper(sha) + " sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 md5 (d41d8cd98f00b204e9800998ecf8427e)",
			[]Observable{{SHA256, sha}, {SHA1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"}, {MD5, "d41d8cd98f00b204e9800998ecf8427e"}}},
		{"not hashes", strings.Repeat("1", 32) + " " + strings.Repeat("ab", 16) + " " + sha[:63] + " " + sha + "0", nil},
		{"file names", `invoice.pdf, "Q1 report.xlsx" C:\Users\bob\evil.docm /tmp/archive.tar.gz setup.exe payload.7z`,
			[]Observable{{FileName, "invoice.pdf"}, {FileName, "report.xlsx"}, {FileName, "evil.docm"},
				{FileName, "archive.tar.gz"}, {FileName, "setup.exe"}, {FileName, "payload.7z"}}},
		{"extension that is also a tld", "invoice.zip www.evil.zip movie.mov",
			[]Observable{{FileName, "invoice.zip"}, {Domain, "www.evil.zip"}, {FileName, "movie.mov"}}},
		{"unknown tld", "host.internal e.g. i.e. sender.example", nil},
		{"domain and path", "visit evil.com/login or Sub.Evil.CO.UK.", []Observable{{Domain, "evil.com"}, {Domain, "sub.evil.co.uk"}}},
		{"idn a-label", "xn--bcher-kva.xn--p1ai", []Observable{{Domain, "xn--bcher-kva.xn--p1ai"}}},
		{"headers", "From: Alice <alice@sender.com>\r\nTo: <bob@corp.org>\r\nMessage-ID: <20260110080012.4471@sender.com>\r\n" +
			"References: <a1@mail.example.com>\r\n <b2@mail.example.com>\r\nSubject: hi <c3@sender.com>",
			[]Observable{{Email, "alice@sender.com"}, {Email, "bob@corp.org"}, {EmailMessageID, "20260110080012.4471@sender.com"},
				{EmailMessageID, "a1@mail.example.com"}, {EmailMessageID, "b2@mail.example.com"}, {Email, "c3@sender.com"}}},
		{"message id outside headers", "the message <20260110080012.4471@sender.example> and <CAF=x+y@mail.local>",
			[]Observable{{EmailMessageID, "20260110080012.4471@sender.example"}, {EmailMessageID, "CAF=x+y@mail.local"}}},
		{"broken angle brackets", "<a@b.com <c@d.com> <> <@> <x@> <a b@c.com>",
			[]Observable{{Email, "a@b.com"}, {Email, "c@d.com"}, {Email, "b@c.com"}}},
		{"deduplicated across forms", "evil.com EVIL.COM evil.com. domain:\"evil.com\"", []Observable{{Domain, "evil.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Inspect(tt.in)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Inspect(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			checkObservables(t, tt.in, got)
		})
	}
}

// checkObservables fails unless every observable is valid, in normal form,
// and unique.
func checkObservables(t *testing.T, in string, got []Observable) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range got {
		if err := o.Validate(); err != nil {
			t.Errorf("Inspect(%q) returned invalid %v: %v", in, o, err)
		}
		if seen[o.Key()] {
			t.Errorf("Inspect(%q) returned %v twice", in, o)
		}
		seen[o.Key()] = true
	}
}

func FuzzInspect(f *testing.F) {
	for _, s := range []string{
		"1.2.3.4 foo bar xyz.com www.xyz.com",
		`ip:"4.2.2.2" email_subject:"x" hxxps://evil[.]com/a bob[@]evil[.]com`,
		"Message-ID: <a@b.com>\n <c@d.com>\nFrom: <e@f.org>",
		"fe80::1 2001:db8::25: 10.0.0.1:25 d41d8cd98f00b204e9800998ecf8427e invoice.pdf",
		"http://[::1]/ (http://x.com/a_(b)) <x@y> <<<@@@>>>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkObservables(t, s, Inspect(s))
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		`email_subject:"test test"`,
		`ip:'1.2.3.4' cisco_mid:315 free text evil.com`,
		`emial:"x@y"`, `ip:"`, `file_path:"C:\\x\" y"`, `sha256:abc`, `(domain:"a.com"),url:http://x/`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, o := range q.Terms {
			if _, err := Normalize(o.Type, o.Value); err != nil {
				t.Errorf("ParseQuery(%q) returned invalid %v: %v", s, o, err)
			}
			if seen[o.Key()] {
				t.Errorf("ParseQuery(%q) returned %v twice", s, o)
			}
			seen[o.Key()] = true
			// A term written back in the query syntax reads the same.
			back, err := ParseQuery(o.String())
			if err != nil || len(back.Terms) != 1 || back.Terms[0].Key() != o.Key() && o.Type != EmailSubject && o.Type != FileName {
				t.Errorf("ParseQuery(%q) = %v, %v; want [%v]", o.String(), back.Terms, err, o)
			}
		}
		checkObservables(t, q.Text, Inspect(q.Text))
	})
}

// mixedCorpus returns about size bytes of prose mixed with the observables
// an analyst pastes: addresses, URLs, emails, hashes, headers, file names,
// and look-alikes that must not match (versions, dates, times).
func mixedCorpus(size int) string {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields(`the quick brown fox jumps over lazy dog message delivered quarantined invoice payment
		please find attached report urgent account verify password security team meeting tomorrow version release
		server connection refused timeout retry policy sender recipient subject attachment`)
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[r.IntN(16)]
		}
		return string(b)
	}
	gens := []func() string{
		func() string { return fmt.Sprintf("%d.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256)) },
		func() string { return fmt.Sprintf("2001:db8:%x::%x", r.IntN(65536), r.IntN(65536)) },
		func() string { return fmt.Sprintf("host%d.example.com", r.IntN(1000)) },
		func() string {
			return fmt.Sprintf("https://site%d.example.org/path/%d?q=%d", r.IntN(500), r.IntN(100), r.IntN(100))
		},
		func() string { return fmt.Sprintf("hxxp://bad%d[.]net/x", r.IntN(100)) },
		func() string { return fmt.Sprintf("user%d@corp%d.com", r.IntN(1000), r.IntN(50)) },
		func() string { return fmt.Sprintf("Message-ID: <%d.%d@mail.example.com>\n", r.IntN(1e9), r.IntN(1e4)) },
		func() string { return hex(32) },
		func() string { return hex(40) },
		func() string { return hex(64) },
		func() string { return fmt.Sprintf("invoice_%d.pdf", r.IntN(10000)) },
		func() string { return fmt.Sprintf("v%d.%d.%d", r.IntN(10), r.IntN(10), r.IntN(10)) },
		func() string { return fmt.Sprintf("2026-01-%02d 12:%02d:%02d", 1+r.IntN(28), r.IntN(60), r.IntN(60)) },
		func() string { return fmt.Sprintf("MID %d", r.IntN(100000)) },
		func() string { return "End of sentence. Another one, with commas; and (parentheses)." },
	}
	var b strings.Builder
	b.Grow(size + 256)
	for b.Len() < size {
		if r.IntN(8) == 0 {
			b.WriteString(gens[r.IntN(len(gens))]())
		} else {
			b.WriteString(words[r.IntN(len(words))])
		}
		if r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func TestInspectCorpus(t *testing.T) {
	s := mixedCorpus(64 << 10)
	got := Inspect(s)
	counts := map[Type]int{}
	for _, o := range got {
		counts[o.Type]++
	}
	for _, typ := range []Type{IP, IPv6, Domain, URL, Email, EmailMessageID, MD5, SHA1, SHA256, FileName} {
		if counts[typ] == 0 {
			t.Errorf("Inspect(corpus) found no %s; counts %v", typ, counts)
		}
	}
	checkObservables(t, "corpus", got)
}

// BenchmarkInspect measures extraction throughput on 10 MB of mixed text;
// the goal is at least 100 MB/s per core.
func BenchmarkInspect(b *testing.B) {
	s := mixedCorpus(10 << 20)
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		Inspect(s)
	}
}
