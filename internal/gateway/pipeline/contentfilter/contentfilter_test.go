package contentfilter

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/mailparse"
)

const sample = "From: Alice <alice@sender.example>\r\n" +
	"Subject: Invoice 4471\r\n" +
	"X-Mailer: Bulk 2.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain\r\n\r\nPay at https://pay.sender.example/x now\r\n" +
	"--b\r\nContent-Type: application/x-msdownload\r\nContent-Disposition: attachment; filename=\"Setup.EXE\"\r\n\r\nMZ\r\n" +
	"--b--\r\n"

func testMessage(t *testing.T) *Message {
	t.Helper()
	parsed, err := mailparse.Parse([]byte(sample), mailparse.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return &Message{Inbound: true, Parsed: parsed, Sender: "alice@sender.example",
		Recipients: []string{"bob@corp.example", "carol@corp.example"}, ClientIP: netip.MustParseAddr("203.0.113.25"),
		SenderGroup: "SUSPECTLIST", SPF: "softfail", DKIM: "none", DMARC: "fail", Size: 4096}
}

func TestConditions(t *testing.T) {
	m := testMessage(t)
	exeHash := m.Parsed.Attachments[0].SHA256
	tests := []struct {
		name string
		c    Condition
		want bool
	}{
		{"header contains", Condition{Type: Header, Header: "x-mailer", Value: "bulk"}, true},
		{"header is", Condition{Type: Header, Header: "X-Mailer", Op: Is, Value: "bulk 2.0"}, true},
		{"header exists", Condition{Type: Header, Header: "X-Mailer", Op: Exists}, true},
		{"header missing", Condition{Type: Header, Header: "X-Other", Op: Exists}, false},
		{"header negated", Condition{Type: Header, Header: "X-Other", Op: Exists, Negate: true}, true},
		{"subject begins", Condition{Type: Subject, Op: BeginsWith, Value: "INVOICE"}, true},
		{"subject ends", Condition{Type: Subject, Op: EndsWith, Value: "4471"}, true},
		{"subject regexp", Condition{Type: Subject, Op: Matches, Value: `^Invoice \d+$`}, true},
		{"subject regexp case", Condition{Type: Subject, Op: Matches, Value: `^invoice`}, false},
		{"body", Condition{Type: Body, Value: "pay at"}, true},
		{"attachment glob", Condition{Type: AttachmentName, Op: Glob, Value: "*.exe"}, true},
		{"attachment contains", Condition{Type: AttachmentName, Value: "setup"}, true},
		{"attachment ext", Condition{Type: AttachmentType, Value: "EXE"}, true},
		{"attachment ext other", Condition{Type: AttachmentType, Value: ".pdf"}, false},
		{"attachment mime", Condition{Type: AttachmentType, Value: "application/x-msdownload"}, true},
		{"attachment family", Condition{Type: AttachmentType, Value: "application/*"}, true},
		{"attachment family other", Condition{Type: AttachmentType, Value: "image/*"}, false},
		{"sha256", Condition{Type: AttachmentSHA256, Value: strings.ToUpper(exeHash)}, true},
		{"sender group", Condition{Type: SenderGroup, Op: Is, Value: "suspectlist"}, true},
		{"envelope sender", Condition{Type: EnvelopeSender, Op: EndsWith, Value: "@sender.example"}, true},
		{"any recipient", Condition{Type: EnvelopeRecipient, Op: Is, Value: "carol@corp.example"}, true},
		{"sender ip cidr", Condition{Type: SenderIP, Value: "203.0.113.0/24"}, true},
		{"sender ip other", Condition{Type: SenderIP, Value: "2001:db8::/32"}, false},
		{"spf", Condition{Type: SPF, Value: "softfail"}, true},
		{"dkim", Condition{Type: DKIM, Value: "pass"}, false},
		{"dmarc", Condition{Type: DMARC, Value: "FAIL"}, true},
		{"url domain exact", Condition{Type: URLDomain, Value: "pay.sender.example"}, true},
		{"url domain parent exact", Condition{Type: URLDomain, Value: "sender.example"}, false},
		{"url domain subdomains", Condition{Type: URLDomain, Value: ".sender.example"}, true},
		{"size greater", Condition{Type: SizeGreater, Value: "3k"}, true},
		{"size not greater", Condition{Type: SizeGreater, Value: "4096"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Compile([]Filter{{Name: "f", Enabled: true, Conditions: []Condition{tt.c}, Actions: []Action{{Type: Drop}}}})
			if err != nil {
				t.Fatalf("Compile(%+v) = %v", tt.c, err)
			}
			got := len(set.Run(m).Matched) == 1
			if got != tt.want {
				t.Errorf("condition %+v matched = %v, want %v", tt.c, got, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	m := testMessage(t)
	match := Condition{Type: Subject, Value: "invoice"}
	miss := Condition{Type: Subject, Value: "nothing"}
	tests := []struct {
		name    string
		filters []Filter
		inbound bool
		want    Outcome
	}{
		{"none", nil, true, Outcome{}},
		{"disabled", []Filter{{Name: "a", Actions: []Action{{Type: Drop}}}}, true, Outcome{}},
		{"wrong direction", []Filter{{Name: "a", Enabled: true, Direction: "outbound", Actions: []Action{{Type: Drop}}}}, true, Outcome{}},
		{"all needs every condition", []Filter{{Name: "a", Enabled: true, Conditions: []Condition{match, miss}, Actions: []Action{{Type: Drop}}}},
			true, Outcome{Ran: true}},
		{"any needs one", []Filter{{Name: "a", Enabled: true, Match: "any", Conditions: []Condition{miss, match}, Actions: []Action{{Type: Drop}}}},
			true, Outcome{Ran: true, Matched: []string{"a"}, Final: Drop, FinalFilter: "a"}},
		{"non-final actions add up, first quarantine wins", []Filter{
			{Name: "a", Enabled: true, Actions: []Action{{Type: Quarantine}, {Type: TagSubject, Prefix: "[A]"}}},
			{Name: "b", Enabled: true, Direction: "both", Actions: []Action{{Type: Quarantine, Quarantine: "Other"}, {Type: AddHeader, Header: "X-B", Value: "1"}}},
		}, true, Outcome{Ran: true, Matched: []string{"a", "b"}, Quarantine: "Policy", QuarantineFilter: "a",
			AddHeaders: []Field{{"X-B", "1"}}, SubjectTags: []string{"[A]"}}},
		{"final stops later filters", []Filter{
			{Name: "a", Enabled: true, Actions: []Action{{Type: Bounce}}},
			{Name: "b", Enabled: true, Actions: []Action{{Type: Drop}}},
		}, true, Outcome{Ran: true, Matched: []string{"a"}, Final: Bounce, FinalFilter: "a", BounceText: DefaultBounceText}},
		{"deliver skips the rest", []Filter{
			{Name: "a", Enabled: true, Actions: []Action{{Type: Deliver}}},
			{Name: "b", Enabled: true, Actions: []Action{{Type: Drop}}},
		}, true, Outcome{Ran: true, Matched: []string{"a"}, Final: Deliver, FinalFilter: "a"}},
		{"outbound", []Filter{{Name: "a", Enabled: true, Direction: "outbound", Actions: []Action{{Type: Drop}}}},
			false, Outcome{Ran: true, Matched: []string{"a"}, Final: Drop, FinalFilter: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Compile(tt.filters)
			if err != nil {
				t.Fatal(err)
			}
			m.Inbound = tt.inbound
			if diff := cmp.Diff(tt.want, set.Run(m), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Run() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	drop := []Action{{Type: Drop}}
	tests := []struct {
		name string
		f    Filter
		want string
	}{
		{"operator", Filter{Name: "block_exe", Conditions: []Condition{{Type: Subject, Value: "x"}, {Type: Subject, Op: "equalz", Value: "x"}}, Actions: drop},
			`content filter "block_exe": condition 2: unknown operator "equalz"`},
		{"no name", Filter{Actions: drop}, `content filter 1: missing name`},
		{"bad name", Filter{Name: "has space", Actions: drop}, `content filter "has space": invalid name: use letters, digits, _ - . (at most 64)`},
		{"direction and match", Filter{Name: "f", Direction: "sideways", Match: "most", Actions: drop},
			`content filter "f": unknown direction "sideways" (want inbound, outbound or both); content filter "f": unknown match "most" (want all or any)`},
		{"regexp", Filter{Name: "f", Conditions: []Condition{{Type: Body, Op: Matches, Value: "("}}, Actions: drop},
			"content filter \"f\": condition 1: invalid regular expression \"(\": error parsing regexp: missing closing ): `(`"},
		{"type", Filter{Name: "f", Conditions: []Condition{{Type: "colour"}, {}}, Actions: drop},
			`content filter "f": condition 1: unknown condition type "colour"; content filter "f": condition 2: missing type`},
		{"op on non-text", Filter{Name: "f", Conditions: []Condition{{Type: SenderIP, Op: Is, Value: "1.2.3.4"}}, Actions: drop},
			`content filter "f": condition 1: operator "is" not allowed for type sender_ip`},
		{"values", Filter{Name: "f", Conditions: []Condition{
			{Type: SenderIP, Value: "1.2.3.4/33"}, {Type: SPF, Value: "maybe"}, {Type: DKIM, Value: "softfail"},
			{Type: AttachmentSHA256, Value: "abc"}, {Type: URLDomain, Value: "bad domain"}, {Type: SizeGreater, Value: "big"},
			{Type: AttachmentType, Value: "/pdf"}, {Type: Header, Header: "Bad:Name", Op: Exists}, {Type: Subject, Op: Exists},
		}, Actions: drop}, strings.Join([]string{
			`content filter "f": condition 1: invalid CIDR "1.2.3.4/33"`,
			`content filter "f": condition 2: unknown spf result "maybe"`,
			`content filter "f": condition 3: unknown dkim result "softfail"`,
			`content filter "f": condition 4: invalid sha256 "abc": want 64 hex digits`,
			`content filter "f": condition 5: invalid domain "bad domain" (want example.com, or .example.com with subdomains)`,
			`content filter "f": condition 6: invalid size "big" (want bytes, or a number with k or m)`,
			`content filter "f": condition 7: invalid MIME type "/pdf"`,
			`content filter "f": condition 8: invalid header name "Bad:Name"`,
			`content filter "f": condition 9: operator exists is for header conditions only`,
		}, "; ")},
		{"actions", Filter{Name: "f", Actions: []Action{{Type: Drop}, {Type: "explode"}, {Type: AddHeader, Header: "X", Value: "a\r\nb"},
			{Type: TagSubject}, {Type: Quarantine, Quarantine: "../etc"}, {}}},
			strings.Join([]string{
				`content filter "f": action 1: drop is final and must be the last action`,
				`content filter "f": action 2: unknown action "explode"`,
				`content filter "f": action 3: header value must be one line of at most 900 bytes`,
				`content filter "f": action 4: prefix must be one non-blank line of at most 100 bytes`,
				`content filter "f": action 5: invalid quarantine name "../etc"`,
				`content filter "f": action 6: missing type`,
			}, "; ")},
		{"no actions", Filter{Name: "f"}, `content filter "f": no actions`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile([]Filter{tt.f})
			if sightline.ErrorKind(err) != sightline.Invalid || sightline.ErrorMessage(err) != tt.want {
				t.Errorf("Compile() = %v,\nwant %s", err, tt.want)
			}
		})
	}
	if _, err := Compile([]Filter{{Name: "a", Actions: drop}, {Name: "a", Actions: drop}}); sightline.ErrorMessage(err) != `content filter "a": duplicate name` {
		t.Errorf("Compile(duplicate) = %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"100", 100, false}, {"1k", 1024, false}, {"1.5m", 1572864, false}, {"2MB", 2 << 20, false}, {"10kb", 10240, false},
		{"", 0, true}, {"-1", 0, true}, {"1e9", 0, true}, {"0x10", 0, true}, {"k", 0, true}, {"9999999999m", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestMatchDomainAndPrefix(t *testing.T) {
	tests := []struct {
		pattern, domain string
		want            bool
	}{
		{"example.com", "example.com", true}, {"example.com", "a.example.com", false},
		{".example.com", "example.com", true}, {".example.com", "a.b.example.com", true}, {".example.com", "badexample.com", false},
	}
	for _, tt := range tests {
		if got := MatchDomain(tt.pattern, tt.domain); got != tt.want {
			t.Errorf("MatchDomain(%q, %q) = %v, want %v", tt.pattern, tt.domain, got, tt.want)
		}
	}
	p, err := ParsePrefix("::ffff:192.0.2.0/120")
	if err != nil || p.String() != "192.0.2.0/24" {
		t.Errorf("ParsePrefix(mapped) = %v, %v; want 192.0.2.0/24", p, err)
	}
}
