package mailauth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// MaxHeaderBytes bounds the header block read for the From field and the
// DKIM-Signature fields. A message whose header block is longer gets DMARC
// permerror.
const MaxHeaderBytes = 256 << 10

// field is one header field, its continuation lines joined.
type field struct {
	name  string // as written, without surrounding white space
	value string // unfolded: line breaks removed, leading white space kept
}

var errHeaderTooLong = fmt.Errorf("header block longer than %d bytes", MaxHeaderBytes)

// parseHeader splits the header block of msg into fields the way the DKIM
// verifier does: a line starting with a space or tab continues the field
// above, every other line starts a field, the first empty line (or the end
// of msg) ends the block. It never fails on malformed lines; a line without a
// colon becomes a field with an empty value. It returns errHeaderTooLong
// when no end of the header block is found within MaxHeaderBytes.
func parseHeader(msg []byte) ([]field, error) {
	block := msg[:min(len(msg), MaxHeaderBytes)]
	truncated := len(msg) > MaxHeaderBytes
	var fields []field
	for len(block) > 0 {
		i := bytes.IndexByte(block, '\n')
		if i < 0 {
			if truncated {
				return nil, errHeaderTooLong
			}
			i = len(block) // the message ends without a body
		}
		l := strings.TrimSuffix(string(block[:i]), "\r")
		block = block[min(i+1, len(block)):]
		switch {
		case l == "":
			return fields, nil
		case (l[0] == ' ' || l[0] == '\t') && len(fields) > 0:
			fields[len(fields)-1].value += l
		default:
			name, value, _ := strings.Cut(l, ":")
			fields = append(fields, field{name: strings.TrimSpace(name), value: value})
		}
	}
	if truncated {
		return nil, errHeaderTooLong
	}
	return fields, nil
}

// values returns the values of the fields called name, in order.
func values(fields []field, name string) []string {
	var out []string
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// addressParser decodes RFC 2047 display names in any charset leniently: an
// unknown charset must not hide the address that follows it.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// fromDomain returns the RFC5322.From domain (lowercase A-labels) that DMARC
// evaluates. Following RFC 7489 section 6.6.1, a header block without
// exactly one From field, or a From field naming several domains, is an
// error.
func fromDomain(fields []field) (string, error) {
	froms := values(fields, "From")
	switch len(froms) {
	case 0:
		return "", errors.New("no From header field")
	case 1:
	default:
		return "", fmt.Errorf("%d From header fields", len(froms))
	}
	addrs, err := addressParser.ParseList(froms[0])
	if err != nil {
		return "", fmt.Errorf("unparsable From header field: %v", err)
	}
	var domain string
	for _, a := range addrs {
		i := strings.LastIndexByte(a.Address, '@')
		if i < 0 {
			return "", fmt.Errorf("From address %q has no domain", a.Address)
		}
		d, err := normalizeDomain(a.Address[i+1:])
		if err != nil {
			return "", fmt.Errorf("From address %q: %v", a.Address, err)
		}
		if domain != "" && d != domain {
			return "", fmt.Errorf("From header field names several domains (%s, %s)", domain, d)
		}
		domain = d
	}
	if domain == "" {
		return "", errors.New("empty From header field")
	}
	return domain, nil
}

// normalizeDomain lowercases d, drops a trailing dot and checks that the
// result is a plausible ASCII host name (U-labels are refused).
func normalizeDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if d == "" {
		return "", errors.New("empty domain")
	}
	if strings.HasPrefix(d, "[") {
		return "", fmt.Errorf("address literal %s is not a domain", d)
	}
	ascii := d
	if !isASCII(d) {
		return "", fmt.Errorf("internationalized domain %q not supported", d)
	}
	if len(ascii) > 253 {
		return "", fmt.Errorf("domain %.20q… longer than 253 bytes", ascii)
	}
	for label := range strings.SplitSeq(ascii, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("invalid domain %q", ascii)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("invalid domain %q", ascii)
			}
		}
	}
	return ascii, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// signatureTags returns the d= and s= tags of a DKIM-Signature field value,
// white space removed, or "" for a tag that is missing.
func signatureTags(value string) (domain, selector string) {
	for tag := range strings.SplitSeq(value, ";") {
		k, v, ok := strings.Cut(tag, "=")
		if !ok {
			continue
		}
		v = strings.Join(strings.Fields(v), "")
		switch strings.TrimSpace(k) {
		case "d":
			domain = strings.ToLower(v)
		case "s":
			selector = v
		}
	}
	return domain, selector
}
