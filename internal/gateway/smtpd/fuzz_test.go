package smtpd

import (
	"strings"
	"testing"
)

// FuzzParseSource checks that a parsed HAT source prints as a source that
// parses back to itself.
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"*", "ALL", "192.0.2.7", "10.0.0.0/8", "::ffff:10.0.0.0/104", "2001:db8::/32",
		"mail.example.com", ".example.com", "fe80::1%eth0", "-x", "a..b", "1.2.3.4/40"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := parseSource(s)
		if err != nil {
			return
		}
		again, err := parseSource(src.String())
		if err != nil {
			t.Fatalf("parseSource(%q) = %q, which does not parse: %v", s, src.String(), err)
		}
		if again != src {
			t.Fatalf("parseSource(%q) = %+v, but its String %q parses as %+v", s, src, src.String(), again)
		}
	})
}

// FuzzCheckAddress checks the address rules against each other: what passes
// is bounded, free of control characters, and passes with SMTPUTF8 too.
func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{"bob@example.com", "bob@[192.0.2.1]", "bob@[IPv6:::1]", "bøb@exämple.com",
		"a@b@c", "@x", "x@", "bob@-x.com", "\x00@x"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, addr string, utf8 bool) {
		switch checkAddress(addr, utf8) {
		case addrOK:
			if len(addr) > maxPath || strings.ContainsAny(addr, "\r\n\x00") {
				t.Fatalf("checkAddress(%q, %v) = ok for an address too long or with control characters", addr, utf8)
			}
			if checkAddress(addr, true) != addrOK {
				t.Fatalf("checkAddress(%q) is ok without SMTPUTF8 but not with it", addr)
			}
			if _, err := parseRATPattern(addr); err != nil && !strings.Contains(addr, "[") {
				t.Fatalf("checkAddress(%q) = ok, but it is not a valid RAT pattern: %v", addr, err)
			}
		case addrNeedsUTF8:
			if utf8 || checkAddress(addr, true) != addrOK {
				t.Fatalf("checkAddress(%q, %v) = needs SMTPUTF8, but SMTPUTF8 does not make it ok", addr, utf8)
			}
		}
	})
}
