package mailauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sightline/sightline/internal/dnsresolver"
	"github.com/sightline/sightline/internal/dnsresolver/dnstest"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// signingKey returns an RSA key generated once per test binary.
func signingKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// dkimRecord returns the zone line publishing key at selector._domainkey.domain,
// split into TXT strings of at most 255 bytes.
func dkimRecord(t testing.TB, selector, domain string, key *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	v := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	var parts []string
	for len(v) > 0 {
		n := min(len(v), 255)
		parts = append(parts, `"`+v[:n]+`"`)
		v = v[n:]
	}
	return fmt.Sprintf("%s._domainkey.%s. 300 IN TXT %s", selector, domain, strings.Join(parts, " "))
}

func message(from string) []byte {
	return []byte("From: Alice <" + from + ">\r\n" +
		"To: bob@example.net\r\n" +
		"Subject: quarterly report\r\n" +
		"Message-ID: <1@example>\r\n" +
		"\r\n" +
		"Numbers attached.\r\n")
}

func sign(t testing.TB, msg []byte, domain, selector string) []byte {
	var b bytes.Buffer
	err := dkim.Sign(&b, bytes.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: signingKey(t)})
	if err != nil {
		t.Fatalf("dkim.Sign: %v", err)
	}
	return b.Bytes()
}

func zone(t testing.TB) []string {
	key := signingKey(t)
	return []string{
		`example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.example.com. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine"`,
		dkimRecord(t, "s1", "example.com", key),
		`mx.example.com. 300 IN A 192.0.2.7`,
		`mx.example.com. 300 IN TXT "v=spf1 a -all"`,
		`soft.example.net. 300 IN TXT "v=spf1 ~all"`,
		`neutral.example.net. 300 IN TXT "v=spf1 ?all"`,
		`broken.example.net. 300 IN TXT "v=spf1 bogus:x -all"`,
		`other.test. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 -all"`,
		`strict.example. 300 IN TXT "v=spf1 -all"`,
		`mail.strict.example. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.strict.example. 300 IN TXT "v=DMARC1; p=reject; aspf=s; adkim=s"`,
		dkimRecord(t, "s1", "strict.example", key),
		`_dmarc.double.example. 300 IN TXT "v=DMARC1; p=reject"`,
		`_dmarc.double.example. 300 IN TXT "v=DMARC1; p=none"`,
		`_dmarc.bad.example. 300 IN TXT "v=DMARC1; p=sometimes"`,
	}
}

func newChecker(servers ...string) *Checker {
	return &Checker{
		Resolver: &dnsresolver.Resolver{Servers: servers, Timeout: time.Second},
		Timeout:  10 * time.Second,
	}
}

var ignoreText = cmpopts.IgnoreFields(SPF{}, "Explanation")
var ignoreReasons = cmp.Options{ignoreText, cmpopts.IgnoreFields(DKIM{}, "Reason"), cmpopts.IgnoreFields(DMARC{}, "Reason")}

func TestCheck(t *testing.T) {
	srv := dnstest.Start(t, zone(t)...)
	c := newChecker(srv.Addr())
	inside, outside, other := net.ParseIP("192.0.2.1"), net.ParseIP("203.0.113.5"), net.ParseIP("198.51.100.9")
	noDKIM := []DKIM{{Result: None}}
	spf := func(result, identity, domain string) SPF {
		return SPF{Result: result, Identity: identity, Domain: domain}
	}
	signedCom := sign(t, message("alice@example.com"), "example.com", "s1")
	signedSub := sign(t, message("alice@news.example.com"), "example.com", "s1")

	tests := []struct {
		name     string
		ip       net.IP
		helo     string
		mailFrom string
		msg      []byte
		want     Result
	}{
		{
			name: "SPF pass aligned gives DMARC pass", ip: inside, helo: "mx.example.com",
			mailFrom: "bounce@example.com", msg: message("alice@example.com"),
			want: Result{spf(Pass, "mailfrom", "example.com"), noDKIM,
				DMARC{Result: Pass, Policy: "reject", Domain: "example.com", Aligned: true}},
		},
		{
			name: "SPF fail gives DMARC fail with p=reject", ip: outside, helo: "evil.test",
			mailFrom: "<bounce@Example.COM>", msg: message("alice@example.com"),
			want: Result{spf(Fail, "mailfrom", "example.com"), noDKIM,
				DMARC{Result: Fail, Policy: "reject", Domain: "example.com"}},
		},
		{
			name: "SPF softfail", ip: outside, helo: "x.test", mailFrom: "a@soft.example.net", msg: message("a@soft.example.net"),
			want: Result{spf(SoftFail, "mailfrom", "soft.example.net"), noDKIM,
				DMARC{Result: None, Domain: "soft.example.net"}},
		},
		{
			name: "SPF neutral", ip: outside, helo: "x.test", mailFrom: "a@neutral.example.net", msg: message("a@neutral.example.net"),
			want: Result{spf(Neutral, "mailfrom", "neutral.example.net"), noDKIM,
				DMARC{Result: None, Domain: "neutral.example.net"}},
		},
		{
			name: "SPF none and DMARC none without records", ip: outside, helo: "x.test",
			mailFrom: "a@norecords.example", msg: message("a@norecords.example"),
			want: Result{spf(None, "mailfrom", "norecords.example"), noDKIM,
				DMARC{Result: None, Domain: "norecords.example"}},
		},
		{
			name: "SPF permerror on a broken record", ip: outside, helo: "x.test",
			mailFrom: "a@broken.example.net", msg: message("a@broken.example.net"),
			want: Result{spf(PermError, "mailfrom", "broken.example.net"), noDKIM,
				DMARC{Result: None, Domain: "broken.example.net"}},
		},
		{
			name: "null sender checks HELO", ip: net.ParseIP("192.0.2.7"), helo: "MX.example.com",
			mailFrom: "<>", msg: message("alice@example.com"),
			want: Result{spf(Pass, "helo", "mx.example.com"), noDKIM,
				DMARC{Result: Pass, Policy: "reject", Domain: "example.com", Aligned: true}},
		},
		{
			name: "null sender with an address literal HELO", ip: outside, helo: "[203.0.113.5]",
			mailFrom: "", msg: message("a@norecords.example"),
			want: Result{spf(None, "helo", ""), noDKIM, DMARC{Result: None, Domain: "norecords.example"}},
		},
		{
			name: "DKIM pass aligned gives DMARC pass despite unaligned SPF", ip: other, helo: "mx.other.test",
			mailFrom: "bounce@other.test", msg: signedCom,
			want: Result{spf(Pass, "mailfrom", "other.test"), []DKIM{{Result: Pass, Domain: "example.com", Selector: "s1", Identifier: "@example.com"}},
				DMARC{Result: Pass, Policy: "reject", Domain: "example.com", Aligned: true}},
		},
		{
			name: "relaxed DKIM alignment for a subdomain uses sp", ip: other, helo: "mx.other.test",
			mailFrom: "bounce@other.test", msg: signedSub,
			want: Result{spf(Pass, "mailfrom", "other.test"), []DKIM{{Result: Pass, Domain: "example.com", Selector: "s1", Identifier: "@example.com"}},
				DMARC{Result: Pass, Policy: "quarantine", Domain: "news.example.com", Aligned: true}},
		},
		{
			name: "DKIM fail on an altered body", ip: other, helo: "mx.other.test",
			mailFrom: "bounce@other.test", msg: bytes.Replace(signedCom, []byte("Numbers"), []byte("Invoice"), 1),
			want: Result{spf(Pass, "mailfrom", "other.test"), []DKIM{{Result: Fail, Domain: "example.com", Selector: "s1", Identifier: "@example.com"}},
				DMARC{Result: Fail, Policy: "reject", Domain: "example.com"}},
		},
		{
			name: "DKIM permerror without a published key", ip: other, helo: "mx.other.test",
			mailFrom: "bounce@other.test", msg: sign(t, message("a@other.test"), "other.test", "nokey"),
			want: Result{spf(Pass, "mailfrom", "other.test"), []DKIM{{Result: PermError, Domain: "other.test", Selector: "nokey", Identifier: "@other.test"}},
				DMARC{Result: None, Domain: "other.test", Aligned: true}},
		},
		{
			name: "strict SPF alignment refuses a subdomain", ip: inside, helo: "mx.example.com",
			mailFrom: "bounce@mail.strict.example", msg: message("a@strict.example"),
			want: Result{spf(Pass, "mailfrom", "mail.strict.example"), noDKIM,
				DMARC{Result: Fail, Policy: "reject", Domain: "strict.example"}},
		},
		{
			name: "strict DKIM alignment refuses the parent domain", ip: outside, helo: "x.test",
			mailFrom: "a@strict.example", msg: sign(t, message("a@sub.strict.example"), "strict.example", "s1"),
			want: Result{spf(Fail, "mailfrom", "strict.example"), []DKIM{{Result: Pass, Domain: "strict.example", Selector: "s1", Identifier: "@strict.example"}},
				DMARC{Result: Fail, Policy: "reject", Domain: "sub.strict.example"}},
		},
		{
			name: "two DMARC records are a permerror", ip: outside, helo: "x.test",
			mailFrom: "a@double.example", msg: message("a@double.example"),
			want: Result{spf(None, "mailfrom", "double.example"), noDKIM,
				DMARC{Result: PermError, Domain: "double.example"}},
		},
		{
			name: "invalid DMARC record is a permerror", ip: outside, helo: "x.test",
			mailFrom: "a@bad.example", msg: message("a@bad.example"),
			want: Result{spf(None, "mailfrom", "bad.example"), noDKIM,
				DMARC{Result: PermError, Domain: "bad.example"}},
		},
		{
			name: "no From field", ip: inside, helo: "mx.example.com", mailFrom: "bounce@example.com",
			msg:  []byte("Subject: hi\r\n\r\nbody\r\n"),
			want: Result{spf(Pass, "mailfrom", "example.com"), noDKIM, DMARC{Result: PermError}},
		},
		{
			name: "two From fields", ip: inside, helo: "mx.example.com", mailFrom: "bounce@example.com",
			msg:  []byte("From: a@example.com\r\nFrom: b@evil.test\r\n\r\nbody\r\n"),
			want: Result{spf(Pass, "mailfrom", "example.com"), noDKIM, DMARC{Result: PermError}},
		},
		{
			name: "From with two domains", ip: inside, helo: "mx.example.com", mailFrom: "bounce@example.com",
			msg:  []byte("From: a@example.com, b@evil.test\r\n\r\nbody\r\n"),
			want: Result{spf(Pass, "mailfrom", "example.com"), noDKIM, DMARC{Result: PermError}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Check(t.Context(), tt.ip, tt.helo, tt.mailFrom, tt.msg)
			if diff := cmp.Diff(tt.want, got, ignoreReasons); diff != "" {
				t.Errorf("Check(%s, %q, %q) mismatch (-want +got):\n%s", tt.ip, tt.helo, tt.mailFrom, diff)
			}
			if got.SPF.Explanation == "" || got.DMARC.Reason == "" {
				t.Errorf("Check(%s, %q, %q) = %+v, want an SPF explanation and a DMARC reason", tt.ip, tt.helo, tt.mailFrom, got)
			}
			for _, d := range got.DKIM {
				if (d.Result == Pass) != (d.Reason == "") {
					t.Errorf("DKIM %+v: want a reason exactly when it does not pass", d)
				}
			}
		})
	}
}

func TestCheckReasons(t *testing.T) {
	srv := dnstest.Start(t, zone(t)...)
	c := newChecker(srv.Addr())
	signed := sign(t, message("alice@example.com"), "example.com", "s1")
	altered := bytes.Replace(signed, []byte("Numbers"), []byte("Invoice"), 1)
	got := c.Check(t.Context(), net.ParseIP("203.0.113.5"), "x.test", "bounce@example.com", altered)
	for _, want := range []struct{ what, text, sub string }{
		{"DKIM reason", got.DKIM[0].Reason, "body hash"},
		{"DMARC reason", got.DMARC.Reason, "SPF fail for example.com"},
		{"SPF explanation", got.SPF.Explanation, "does not permit 203.0.113.5"},
	} {
		if !strings.Contains(want.text, want.sub) {
			t.Errorf("%s = %q, want it to contain %q", want.what, want.text, want.sub)
		}
	}
}

func TestCheckDeadDNS(t *testing.T) {
	c := &Checker{
		Resolver: &dnsresolver.Resolver{Servers: []string{dnstest.Blackhole(t)}, Timeout: 100 * time.Millisecond},
		Timeout:  500 * time.Millisecond,
	}
	msg := sign(t, message("alice@example.com"), "example.com", "s1")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // safety net only
	defer cancel()
	got := c.Check(ctx, net.ParseIP("192.0.2.1"), "mx.example.com", "bounce@example.com", msg)
	if ctx.Err() != nil {
		t.Fatalf("Check returned only when the test's safety deadline passed")
	}
	want := Result{
		SPF:   SPF{Result: TempError, Identity: "mailfrom", Domain: "example.com"},
		DKIM:  []DKIM{{Result: TempError, Domain: "example.com", Selector: "s1", Identifier: "@example.com"}},
		DMARC: DMARC{Result: TempError, Domain: "example.com"},
	}
	if diff := cmp.Diff(want, got, ignoreReasons); diff != "" {
		t.Errorf("Check with dead DNS mismatch (-want +got):\n%s", diff)
	}
}

func TestEvaluateTemporary(t *testing.T) {
	// The record is there, but the aligned SPF check failed temporarily:
	// temperror, so the pipeline defers instead of rejecting.
	srv := dnstest.Start(t, zone(t)...)
	srv.SetRcode("example.com", 2) // SERVFAIL for the SPF record only
	c := newChecker(srv.Addr())
	got := c.Check(t.Context(), net.ParseIP("192.0.2.1"), "mx.example.com", "bounce@example.com", message("a@example.com"))
	want := DMARC{Result: TempError, Policy: "reject", Domain: "example.com"}
	if diff := cmp.Diff(want, got.DMARC, ignoreReasons); diff != "" || got.SPF.Result != TempError {
		t.Errorf("Check with SPF SERVFAIL: SPF %q, DMARC mismatch (-want +got):\n%s", got.SPF.Result, diff)
	}
}

func TestOrgDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"a.b.example.com", "example.com"},
		{"news.example.co.uk", "example.co.uk"},
		{"co.uk", "co.uk"},
		{"com", "com"},
		{"host.unknowntld", "host.unknowntld"},
	}
	for _, tt := range tests {
		if got := orgDomain(tt.in); got != tt.want {
			t.Errorf("orgDomain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFromDomain(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		want    string
		wantErr bool
	}{
		{"plain", "From: a@Example.COM\r\n", "example.com", false},
		{"display name", "From: \"Bank <support@bank.example>\" <x@evil.test>\r\n", "evil.test", false},
		{"folded", "From: Alice\r\n <alice@example.org>\r\n", "example.org", false},
		{"encoded word in unknown charset", "From: =?x-unknown?Q?Al=E9?= <a@example.org>\r\n", "example.org", false},
		{"trailing dot", "From: a@example.org.\r\n", "", true},
		{"LF line ends", "Subject: x\nfrom: a@example.org\n\nbody", "example.org", false},
		{"group of one domain", "From: team: a@x.example, b@x.example;\r\n", "x.example", false},
		{"no from", "Subject: x\r\n", "", true},
		{"two from", "From: a@x.example\r\nFrom: a@x.example\r\n", "", true},
		{"no domain", "From: undisclosed\r\n", "", true},
		{"address literal", "From: a@[192.0.2.1]\r\n", "", true},
		{"unicode domain", "From: a@exämple.org\r\n", "", true},
		{"bad label", "From: a@exa..mple.org\r\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, err := parseHeader([]byte(tt.header))
			if err != nil {
				t.Fatalf("parseHeader(%q): %v", tt.header, err)
			}
			got, err := fromDomain(fields)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("fromDomain(%q) = %q, %v; want %q, error %v", tt.header, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseHeaderBound(t *testing.T) {
	long := "X-Pad: " + strings.Repeat("a", MaxHeaderBytes) + "\r\nFrom: a@example.org\r\n\r\n"
	if _, err := parseHeader([]byte(long)); err != errHeaderTooLong {
		t.Errorf("parseHeader(header of %d bytes) error = %v, want %v", len(long), err, errHeaderTooLong)
	}
	// A short header followed by a long body is fine.
	ok := "From: a@example.org\r\n\r\n" + strings.Repeat("b", 2*MaxHeaderBytes)
	if fields, err := parseHeader([]byte(ok)); err != nil || len(fields) != 1 {
		t.Errorf("parseHeader(short header, long body) = %v, %v; want 1 field", fields, err)
	}
}

func TestSignatureTags(t *testing.T) {
	d, s := signatureTags(" v=1; a=rsa-sha256; d=Example.COM;\r\n s = sel\r\n 2024 ; b=abc")
	if d != "example.com" || s != "sel2024" {
		t.Errorf("signatureTags = %q, %q; want %q, %q", d, s, "example.com", "sel2024")
	}
}

var validResults = map[string][]string{
	"spf":   {Pass, Fail, SoftFail, Neutral, None, TempError, PermError},
	"other": {Pass, Fail, None, TempError, PermError},
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("From: a@example.com\r\nDKIM-Signature: d=example.com; s=x\r\n\r\nbody"))
	f.Add([]byte("From: \"x\" <a@b.c>, y@b.c\n\n"))
	f.Add([]byte(" continued\r\nFrom:\r\n\t=?utf-8?q?x?= <a@[1.2.3.4]>\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, err := parseHeader(msg)
		if err != nil {
			return
		}
		d, err := fromDomain(fields)
		if err == nil {
			if again, err := normalizeDomain(d); err != nil || again != d {
				t.Errorf("fromDomain gave %q, which normalizes to %q, %v", d, again, err)
			}
		}
		for _, v := range values(fields, "DKIM-Signature") {
			signatureTags(v)
		}
	})
}

func FuzzCheck(f *testing.F) {
	srv := dnstest.Start(f, zone(f)...)
	c := newChecker(srv.Addr())
	f.Add("bounce@example.com", sign(f, message("alice@example.com"), "example.com", "s1"))
	f.Add("", []byte("From: a@example.com\r\nDKIM-Signature: v=1; d=example.com; s=s1; b=; bh=; h=from; a=rsa-sha256\r\n\r\n"))
	f.Add("x@[1.2.3.4]", []byte("DKIM-Signature: d=\r\n\r\n"))
	f.Fuzz(func(t *testing.T, mailFrom string, msg []byte) {
		got := c.Check(t.Context(), net.ParseIP("192.0.2.1"), "mx.example.com", mailFrom, msg)
		if !slices.Contains(validResults["spf"], got.SPF.Result) {
			t.Errorf("SPF result %q", got.SPF.Result)
		}
		if len(got.DKIM) == 0 {
			t.Errorf("no DKIM entry")
		}
		for _, d := range got.DKIM {
			if !slices.Contains(validResults["other"], d.Result) {
				t.Errorf("DKIM result %q", d.Result)
			}
		}
		if !slices.Contains(validResults["other"], got.DMARC.Result) {
			t.Errorf("DMARC result %q", got.DMARC.Result)
		}
	})
}
