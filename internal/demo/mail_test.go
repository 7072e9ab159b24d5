package demo

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/mailparse"
)

var testTime = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func testGenerator() *generator {
	return newGenerator(1, func() time.Time { return testTime })
}

// parsed is what the tests compare of a parsed message.
type parsed struct {
	From, Subject, MessageID string
	To                       []string
	Attachments              []string // name type
}

func summarize(p *mailparse.Message) parsed {
	out := parsed{From: p.From, Subject: p.Subject, MessageID: p.MessageID, To: p.To}
	for _, a := range p.Attachments {
		out.Attachments = append(out.Attachments, a.Name+" "+a.Type)
	}
	return out
}

// TestMessagesParse checks that every kind of demo message is valid MIME
// that mailparse reads back as it was made.
func TestMessagesParse(t *testing.T) {
	g := testGenerator()
	ms := append(g.burst(), g.next(), g.next(), g.next(), g.next(), g.next(), g.next(), g.next(), g.next())
	seen := map[string]bool{}
	for _, m := range ms {
		t.Run(m.Kind+"/"+m.Subject, func(t *testing.T) {
			seen[m.Kind] = true
			data := m.Bytes()
			p, err := mailparse.Parse(data, mailparse.Limits{})
			if err != nil {
				t.Fatalf("Parse(%s message) = %v", m.Kind, err)
			}
			if len(p.Problems) > 0 {
				t.Errorf("Parse(%s message) problems: %q\n%s", m.Kind, p.Problems, data)
			}
			want := parsed{From: m.From.Address, Subject: m.Subject, MessageID: m.MessageID, To: m.To}
			for _, a := range m.Attachments {
				want.Attachments = append(want.Attachments, a.Name+" "+a.Type)
			}
			if diff := cmp.Diff(want, summarize(p)); diff != "" {
				t.Errorf("Parse(%s message) mismatch (-want +got):\n%s", m.Kind, diff)
			}
			if strings.TrimSpace(p.Text) == "" {
				t.Errorf("Parse(%s message).Text is empty", m.Kind)
			}
			for i, line := range strings.SplitAfter(string(data), "\n") {
				if len(line) > 998 || (strings.HasSuffix(line, "\n") && !strings.HasSuffix(line, "\r\n")) {
					t.Fatalf("%s message line %d = %q: want at most 998 bytes ending in CRLF", m.Kind, i+1, line)
				}
			}
		})
	}
	for _, kind := range []string{KindSeed, KindNewsletter, KindInvoice, KindSpam, KindPhishing, KindHash, KindExecutable, KindEICAR, KindBounce} {
		if !seen[kind] {
			t.Errorf("burst has no %s message", kind)
		}
	}
}

// TestSeedMessage checks the message the seed's verification queries look for.
func TestSeedMessage(t *testing.T) {
	p, err := mailparse.Parse(testGenerator().seed().Bytes(), mailparse.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := summarize(p)
	want := parsed{From: "noreply@cisco.com", Subject: "test test", MessageID: "<123-abc-456@cisco.com>",
		To: []string{"maria.garcia@" + OrgDomain}, Attachments: []string{"invoice.pdf application/pdf"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seed message mismatch (-want +got):\n%s", diff)
	}
}

// TestThreatContent checks what the gateway's rules match on: the phishing
// link's domain, the malicious attachment's hash, the EICAR file.
func TestThreatContent(t *testing.T) {
	g := testGenerator()
	tests := []struct {
		name  string
		m     *Message
		check func(*mailparse.Message) bool
	}{
		{"phishing links to the blocklisted domain", g.phishing(2), func(p *mailparse.Message) bool {
			for _, d := range p.URLDomains {
				if d == "login."+MaliciousDomain {
					return true
				}
			}
			return false
		}},
		{"hash attachment has the blocklisted SHA-256", g.hashCaught(), func(p *mailparse.Message) bool {
			return len(p.Attachments) == 1 && p.Attachments[0].SHA256 == MaliciousSHA256()
		}},
		{"eicar attachment is the test file", g.eicar(), func(p *mailparse.Message) bool {
			return len(p.Attachments) == 1 && p.Attachments[0].SHA256 == "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
		}},
		{"invoice subject is what the seed searches", g.invoice(), func(p *mailparse.Message) bool {
			return p.Subject == "Invoice Due"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := mailparse.Parse(tt.m.Bytes(), mailparse.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(p) {
				t.Errorf("Parse(%s message) = %+v: check failed", tt.m.Kind, p)
			}
		})
	}
}

// TestPhishingCampaign checks the campaign: one subject, several senders.
func TestPhishingCampaign(t *testing.T) {
	g := testGenerator()
	senders := map[string]bool{}
	for i := range phishers {
		m := g.phishing(i)
		if m.Subject != PhishingSubject {
			t.Errorf("phishing(%d).Subject = %q, want %q", i, m.Subject, PhishingSubject)
		}
		senders[m.From.Address] = true
	}
	if len(senders) < 3 {
		t.Errorf("the phishing campaign comes from %d senders, want at least 3", len(senders))
	}
}

// TestDomains checks that the demo uses only reserved domains, and the
// seed's sender.
func TestDomains(t *testing.T) {
	g := testGenerator()
	ms := g.burst()
	for range 200 {
		ms = append(ms, g.next())
	}
	for _, m := range ms {
		p, err := mailparse.Parse(m.Bytes(), mailparse.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		addrs := append(append([]string{p.From}, p.To...), m.From.Address)
		for _, a := range addrs {
			if a == "noreply@cisco.com" && m.Kind == KindSeed {
				continue
			}
			if !strings.HasSuffix(a, ".example") && !strings.HasSuffix(a, ".test") {
				t.Errorf("%s message address %q is not under .example or .test", m.Kind, a)
			}
		}
		for _, d := range p.URLDomains {
			if !strings.HasSuffix(d, ".example") && !strings.HasSuffix(d, ".test") {
				t.Errorf("%s message links to %q, not under .example or .test", m.Kind, d)
			}
		}
	}
}
