package observable

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline"
)

func TestParseQuery(t *testing.T) {
	sha := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tests := []struct {
		name string
		in   string
		want Query
	}{
		{"empty", "", Query{}},
		{"seed", `email_subject:"test test"`, Query{Terms: []Observable{{EmailSubject, "test test"}}}},
		{"product examples",
			`ip:"4.2.2.2" domain:"cisco.com" email:"noreply@cisco.com" email_messageid:"123-abc-456@cisco.com" ` +
				`email_subject:"Invoice Due" cisco_mid:"12345" sha256:"` + sha + `" file_name:"invoice.pdf"`,
			Query{Terms: []Observable{
				{IP, "4.2.2.2"}, {Domain, "cisco.com"}, {Email, "noreply@cisco.com"},
				{EmailMessageID, "123-abc-456@cisco.com"}, {EmailSubject, "Invoice Due"}, {CiscoMID, "12345"},
				{SHA256, sha}, {FileName, "invoice.pdf"},
			}}},
		{"single quotes and bare", `file_name:'a.pdf' cisco_mid:315`, Query{Terms: []Observable{{FileName, "a.pdf"}, {CiscoMID, "315"}}}},
		{"escapes", `email_subject:"say \"hi\" \\o/" email_subject:'it\'s'`,
			Query{Terms: []Observable{{EmailSubject, `say "hi" \o/`}, {EmailSubject, "it's"}}}},
		{"backslash kept before other characters", `file_path:"C:\Windows\x.exe"`,
			Query{Terms: []Observable{{"file_path", `C:\Windows\x.exe`}}}},
		{"normalised", `domain:"Cisco.COM." sha256:"` + "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08" + `"`,
			Query{Terms: []Observable{{Domain, "cisco.com"}, {SHA256, sha}}}},
		{"duplicates", `ip:"1.2.3.4" ip:1.2.3.4 ip:'01.2.3.4'`, Query{Terms: []Observable{{IP, "1.2.3.4"}}}},
		{"type in capitals", `IP:"1.2.3.4"`, Query{Terms: []Observable{{IP, "1.2.3.4"}}}},
		{"free text around terms", `look at ip:"1.2.3.4" and evil.example please`,
			Query{Terms: []Observable{{IP, "1.2.3.4"}}, Text: "look at and evil.example please"}},
		{"pasted label is text", "IP: 1.2.3.4\nSubject: hello", Query{Text: "IP: 1.2.3.4 Subject: hello"}},
		{"urls are text", "http://a.example/x mailto:b@c.example note:this", Query{Text: "http://a.example/x mailto:b@c.example note:this"}},
		{"term after bracket", `(ip:"1.2.3.4")`, Query{Terms: []Observable{{IP, "1.2.3.4"}}, Text: "( )"}},
		{"not a term inside a word", `see.ip:"1.2.3.4"`, Query{Text: `see.ip:"1.2.3.4"`}},
		{"quoted value with spaces and colons", `email_subject:"Re: Invoice: due"`, Query{Terms: []Observable{{EmailSubject, "Re: Invoice: due"}}}},
		{"message id with brackets", `email_messageid:"<a.b@c.example>"`, Query{Terms: []Observable{{EmailMessageID, "a.b@c.example"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseQuery(tt.in)
			if err != nil {
				t.Fatalf("ParseQuery(%q) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseQuery(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"unknown type", `emial:"x@y"`, `unknown observable type "emial" in emial:"x@y" at position 1; did you mean "email"?`},
		{"unknown type single quotes", `foo 'bar' subject:'Invoice'`, `unknown observable type "subject" in subject:'Invoice' at position 11; did you mean "email_subject"?`},
		{"unknown type without suggestion", `xyzzy:"1"`, `unknown observable type "xyzzy" in xyzzy:"1" at position 1`},
		{"bare typo", `emial:x@y.example`, `unknown observable type "emial" in emial:x@y.example at position 1; did you mean "email"?`},
		{"unterminated", `ip:"1.2.3.4" email_subject:"Invoice`, `unterminated quote in email_subject:"Invoice at position 14; close it with "`},
		{"unterminated single", `file_name:'a.pdf`, `unterminated quote in file_name:'a.pdf at position 1; close it with '`},
		{"empty quoted", `ip:""`, `empty value in ip:"" at position 1; write ip:"value"`},
		{"empty blank", `domain:"  "`, `empty value in domain:"  " at position 1; write domain:"value"`},
		{"empty at end", `free text ip:`, `empty value in ip: at position 11; write ip:"value"`},
		{"invalid value", `ip:"1.2.3"`, `invalid ip in ip:"1.2.3" at position 1: not an IPv4 address (want four dot-separated numbers 0-255)`},
		{"invalid hash", `é sha256:abc`, `invalid sha256 in sha256:abc at position 3: want 64 hexadecimal characters, got 3 characters`},
		{"invalid mid", `cisco_mid:"12a"`, `invalid cisco_mid in cisco_mid:"12a" at position 1: not a decimal number`},
		{"invalid utf-8", "ip:\"\xff\"", `query is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseQuery(tt.in)
			if err == nil {
				t.Fatalf("ParseQuery(%q) = %+v, want error %q", tt.in, q, tt.want)
			}
			if got := sightline.ErrorMessage(err); got != tt.want {
				t.Errorf("ParseQuery(%q) error = %q, want %q", tt.in, got, tt.want)
			}
			if k := sightline.ErrorKind(err); k != sightline.Invalid {
				t.Errorf("ParseQuery(%q) error kind = %q, want %q", tt.in, k, sightline.Invalid)
			}
		})
	}
}

func TestParseQueryTooLong(t *testing.T) {
	in := make([]byte, MaxQueryLength+1)
	for i := range in {
		in[i] = 'a'
	}
	if _, err := ParseQuery(string(in)); sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("ParseQuery(%d bytes) error = %v, want Invalid", len(in), err)
	}
}

func TestQueryObservables(t *testing.T) {
	q, err := ParseQuery(`email:"Alice@Sender.example" seen from 203.0.113.25, alice@sender.example and ip:"203.0.113.25" evil.com`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Observable{{Email, "Alice@sender.example"}, {IP, "203.0.113.25"}, {Domain, "evil.com"}}
	if got := q.Observables(); !cmp.Equal(got, want) {
		t.Errorf("Observables() = %v, want %v", got, want)
	}
}
