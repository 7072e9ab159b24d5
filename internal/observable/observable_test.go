package observable

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
)

func TestTypes(t *testing.T) {
	types := Types()
	if len(types) != 63 {
		t.Errorf("len(Types()) = %d, want 63 (ctim.md §4)", len(types))
	}
	if !slices.IsSorted(types) {
		t.Errorf("Types() is not sorted: %v", types)
	}
	for _, typ := range types {
		if !typ.Valid() {
			t.Errorf("Type(%q).Valid() = false, want true", typ)
		}
	}
	for _, typ := range []Type{"", "emial", "IP", "ipv4", "sha512"} {
		if typ.Valid() {
			t.Errorf("Type(%q).Valid() = true, want false", typ)
		}
	}
	types[0] = "changed"
	if Types()[0] == "changed" {
		t.Error("Types() returns the package's own slice")
	}
}

func TestNormalize(t *testing.T) {
	sha := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tests := []struct {
		name    string
		typ     Type
		in      string
		want    string
		wantErr string
	}{
		{"ip", IP, "203.0.113.25", "203.0.113.25", ""},
		{"ip trimmed", IP, " 203.0.113.25\n", "203.0.113.25", ""},
		{"ip leading zeros are decimal", IP, "010.000.001.002", "10.0.1.2", ""},
		{"ip octet too big", IP, "1.2.3.256", "", `invalid ip "1.2.3.256": number 256 is above 255`},
		{"ip three parts", IP, "1.2.3", "", `invalid ip "1.2.3": not an IPv4 address (want four dot-separated numbers 0-255)`},
		{"ip given ipv6", IP, "2001:db8::1", "", `invalid ip "2001:db8::1": an IPv6 address; use type ipv6`},
		{"ipv6 compressed", IPv6, "2001:0DB8:0000:0000:0000:0000:0000:0025", "2001:db8::25", ""},
		{"ipv6 brackets", IPv6, "[fe80::1]", "fe80::1", ""},
		{"ipv6 mapped", IPv6, "::FFFF:1.2.3.4", "::ffff:1.2.3.4", ""},
		{"ipv6 given ipv4", IPv6, "1.2.3.4", "", `invalid ipv6 "1.2.3.4": an IPv4 address; use type ip`},
		{"ipv6 zone", IPv6, "fe80::1%eth0", "", `invalid ipv6 "fe80::1%eth0": an IPv6 address with a zone; remove the %zone`},
		{"ipv6 garbage", IPv6, "fe80:::1", "", `invalid ipv6 "fe80:::1": not an IPv6 address`},
		{"domain", Domain, "Sender.Example.", "sender.example", ""},
		{"domain idna", Domain, "Bücher.example", "xn--bcher-kva.example", ""},
		{"domain underscore", Domain, "_dmarc.example.com", "_dmarc.example.com", ""},
		{"domain empty label", Domain, "a..example", "", `invalid domain "a..example": has an empty label`},
		{"domain hyphen", Domain, "-a.example", "", `invalid domain "-a.example": label "-a" starts or ends with a hyphen`},
		{"domain space", Domain, "a b.example", "", `invalid domain "a b.example": character ' ' is not allowed in a domain name`},
		{"domain is ip", Domain, "1.2.3.4", "", `invalid domain "1.2.3.4": the last label is all digits`},
		{"domain long label", Domain, strings.Repeat("a", 64) + ".com", "", "has a label longer than 63 characters"},
		{"hostname", Hostname, "GW1.example.com", "gw1.example.com", ""},
		{"url as seen", URL, " https://Sender.example/i?x=1 ", "https://Sender.example/i?x=1", ""},
		{"url no scheme", URL, "sender.example/i", "", `invalid url "sender.example/i": not an absolute URL (want scheme://host/…)`},
		{"url space", URL, "http://a.example/a b", "", "contains a space"},
		{"email domain lowercased", Email, "Alice@Sender.Example", "Alice@sender.example", ""},
		{"email brackets and mailto", Email, "<mailto:bob@corp.example>", "bob@corp.example", ""},
		{"email no at", Email, "alice", "", `invalid email "alice": no @ in the address`},
		{"email empty local", Email, "@corp.example", "", "empty local part before @"},
		{"email bad domain", Email, "a@corp..example", "", `invalid email "a@corp..example": domain "corp..example" has an empty label`},
		{"email space", Email, "a b@corp.example", "", `character ' ' is not allowed in the local part`},
		{"subject", EmailSubject, "  Invoice 4471 ", "Invoice 4471", ""},
		{"subject encoded", EmailSubject, "=?UTF-8?Q?Facture_n=C2=B0_4471?=", "Facture n° 4471", ""},
		{"subject latin1", EmailSubject, "=?ISO-8859-1?Q?Caf=E9?=", "Café", ""},
		{"subject folded", EmailSubject, "Invoice\r\n 4471", "Invoice 4471", ""},
		{"subject control", EmailSubject, "a\x00b", "", `contains control character '\x00'`},
		{"message id brackets", EmailMessageID, "<20260110080012.4471@sender.example>", "20260110080012.4471@sender.example", ""},
		{"message id bare", EmailMessageID, "123-abc-456@cisco.com", "123-abc-456@cisco.com", ""},
		{"message id space", EmailMessageID, "<a b@c>", "", "character ' ' is not allowed in a Message-ID"},
		{"mid", CiscoMID, "315", "315", ""},
		{"mid leading zeros", CiscoMID, "00315", "315", ""},
		{"mid not a number", CiscoMID, "315-1", "", `invalid cisco_mid "315-1": not a decimal number`},
		{"mid overflow", CiscoMID, "99999999999999999999", "", "too large for a message id"},
		{"sha256 uppercase", SHA256, strings.ToUpper(sha), sha, ""},
		{"sha256 short", SHA256, "abc", "", `invalid sha256 "abc": want 64 hexadecimal characters, got 3 characters`},
		{"sha256 not hex", SHA256, "g" + sha[1:], "", `character 'g' is not hexadecimal`},
		{"sha1", SHA1, "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", "da39a3ee5e6b4b0d3255bfef95601890afd80709", ""},
		{"md5", MD5, "D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e", ""},
		{"md5 is not sha1", MD5, "da39a3ee5e6b4b0d3255bfef95601890afd80709", "", "want 32 hexadecimal characters, got 40"},
		{"file name", FileName, "invoice.pdf", "invoice.pdf", ""},
		{"file name path", FileName, `C:\Users\bob\invoice.pdf`, "invoice.pdf", ""},
		{"file name unix path", FileName, "/tmp/a/invoice.pdf", "invoice.pdf", ""},
		{"file name 2047", FileName, "=?UTF-8?B?ZmFjdHVyZV/DqXTDqS5wZGY=?=", "facture_été.pdf", ""},
		{"file name 2231", FileName, "UTF-8''facture%20%C3%A9t%C3%A9.pdf", "facture été.pdf", ""},
		{"file name with apostrophes", FileName, "it's bob's.pdf", "it's bob's.pdf", ""},
		{"file name dot dot", FileName, "../..", "", `invalid file_name "../..": not a file name`},
		{"file name directory", FileName, "/tmp/", "", "a path without a file name"},
		{"other type as is", User, " CORP\\Bob ", "CORP\\Bob", ""},
		{"other type control", User, "bob\x1b", "", `invalid user "bob\x1b": contains control character '\x1b'`},
		{"empty", SHA256, "  ", "", `invalid sha256 "  ": empty value`},
		{"too long", User, strings.Repeat("a", MaxValueLength+1), "", "longer than 4096 bytes"},
		{"bad utf-8", User, "a\xffb", "", "not valid UTF-8"},
		{"unknown type", "emial", "x@y", "", `unknown observable type "emial"; did you mean "email"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.typ, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Normalize(%q, %q) = %q, %v; want error containing %q", tt.typ, tt.in, got, err, tt.wantErr)
				}
				if k := sightline.ErrorKind(err); k != sightline.Invalid {
					t.Errorf("Normalize(%q, %q) error kind = %q, want %q", tt.typ, tt.in, k, sightline.Invalid)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q, %q) = %q, %v; want %q", tt.typ, tt.in, got, err, tt.want)
			}
			again, err := Normalize(tt.typ, got)
			if err != nil || again != got {
				t.Errorf("Normalize(%q, %q) = %q, %v; normal form is not stable", tt.typ, got, again, err)
			}
			if err := (Observable{tt.typ, got}).Validate(); err != nil {
				t.Errorf("Observable{%q, %q}.Validate() = %v, want nil", tt.typ, got, err)
			}
		})
	}
}

// User is a type without special rules, for the tests.
const User Type = "user"

func TestValidateNotNormal(t *testing.T) {
	err := Observable{Domain, "Sender.Example"}.Validate()
	want := `domain value "Sender.Example" is not in normal form "sender.example"`
	if sightline.ErrorMessage(err) != want {
		t.Errorf("Validate() = %v, want %q", err, want)
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		a, b Observable
		same bool
	}{
		{Observable{Email, "Alice@x.example"}, Observable{Email, "alice@x.example"}, true},
		{Observable{EmailSubject, "Hello"}, Observable{EmailSubject, "hello"}, false},
		{Observable{Domain, "x.example"}, Observable{Hostname, "x.example"}, false},
	}
	for _, tt := range tests {
		if got := tt.a.Key() == tt.b.Key(); got != tt.same {
			t.Errorf("%v.Key() == %v.Key() is %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

func TestJSON(t *testing.T) {
	in := `{"type":"email","value":"alice@sender.example"}`
	var o Observable
	if err := json.Unmarshal([]byte(in), &o); err != nil {
		t.Fatal(err)
	}
	if want := (Observable{Email, "alice@sender.example"}); o != want {
		t.Errorf("Unmarshal(%s) = %v, want %v", in, o, want)
	}
	out, err := json.Marshal(o)
	if err != nil || string(out) != in {
		t.Errorf("Marshal(%v) = %s, %v; want %s", o, out, err, in)
	}
}

func TestStringRoundTrip(t *testing.T) {
	for _, o := range []Observable{
		{EmailSubject, `say "hi" \o/`},
		{Type("file_path"), `C:\Windows\x.exe`},
		{Type("process_args"), `a\`},
		{EmailSubject, "it's"},
	} {
		q, err := ParseQuery(o.String())
		if err != nil || !cmp.Equal(q.Terms, []Observable{o}) {
			t.Errorf("ParseQuery(%q) = %v, %v; want [%v]", o.String(), q.Terms, err, o)
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		in   string
		want Type
	}{
		{"emial", Email},
		{"EMAIL", Email},
		{"sha265", SHA256},
		{"subject", EmailSubject},
		{"filename", FileName},
		{"messageid", EmailMessageID},
		{"ipv4", IP},
		{"mid", CiscoMID},
		{"domian", Domain},
		{"xyzzy", ""},
		{"http", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
