package smtpd

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Limits of RFC 5321 §4.5.3.1.
const (
	maxLocalPart = 64
	maxDomain    = 255
	maxPath      = 254 // a forward-path of 256 octets less its angle brackets
)

// addrProblem is what is wrong with an address the client gave.
type addrProblem int

const (
	addrOK        addrProblem = iota
	addrBad                   // malformed or too long
	addrNeedsUTF8             // valid only with the SMTPUTF8 parameter
)

// checkAddress checks a mailbox already split out of its path by go-smtp,
// which unquotes the local part but leaves the domain unchecked. utf8OK says
// whether the transaction declared SMTPUTF8.
func checkAddress(addr string, utf8OK bool) addrProblem {
	if len(addr) > maxPath || !utf8.ValidString(addr) {
		return addrBad
	}
	local, domain := splitAddress(addr)
	if local == "" || len(local) > maxLocalPart || !validLocalPart(local) {
		return addrBad
	}
	if !validDomain(domain, true) && !validAddressLiteral(domain) {
		return addrBad
	}
	if !utf8OK && !isASCII(addr) {
		return addrNeedsUTF8
	}
	return addrOK
}

// splitAddress splits at the last "@"; the domain is "" when there is none.
func splitAddress(addr string) (local, domain string) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}

// validLocalPart accepts any printable text: go-smtp has already parsed the
// dot-string or quoted-string, so only control characters remain to refuse.
func validLocalPart(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return s != ""
}

// validDomain reports whether s is a host name: dot-separated labels of
// letters, digits and inner hyphens, at most 63 octets each and 255 in all.
// With intl, labels may also hold non-ASCII letters (RFC 6531 U-labels).
func validDomain(s string, intl bool) bool {
	if s == "" || len(s) > maxDomain {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			case intl && r > 0x7f && r != utf8.RuneError:
			default:
				return false
			}
		}
	}
	return true
}

// validAddressLiteral accepts "[192.0.2.1]" and "[IPv6:2001:db8::1]".
func validAddressLiteral(s string) bool {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	s = s[1 : len(s)-1]
	if v6, ok := strings.CutPrefix(s, "IPv6:"); ok {
		a, err := netip.ParseAddr(v6)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// printable makes client-chosen text safe for one log line or header: it
// replaces control characters and cuts it to max bytes.
func printable(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}
