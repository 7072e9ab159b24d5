package mailparse

import (
	"io"
	"mime"
	"net/mail"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
)

// lenientAddressList reads the addresses in a header value that RFC 5322
// parsing refused, e.g. `Alice alice@example.com` or `"Bob" <bob@x>,,`: a
// mailbox is whatever is inside the last <…> of each comma-separated item,
// else the first word of the item holding an "@". Items without an address
// are skipped.
func lenientAddressList(s string) []*mail.Address {
	var out []*mail.Address
	for _, item := range splitOutsideQuotes(s, ',') {
		item = strings.TrimSpace(item)
		name, addr := "", ""
		if i := strings.LastIndexByte(item, '<'); i >= 0 {
			rest := item[i+1:]
			if j := strings.IndexByte(rest, '>'); j >= 0 {
				rest = rest[:j]
			}
			addr = strings.TrimSpace(rest)
			name = strings.Trim(strings.TrimSpace(item[:i]), `"' `)
		} else {
			for _, f := range strings.Fields(item) {
				if strings.Contains(f, "@") {
					addr = strings.Trim(f, `"'()[];:`)
					break
				}
			}
		}
		if !strings.Contains(addr, "@") || strings.ContainsAny(addr, " \t\r\n") {
			continue
		}
		if dec, err := wordDecoder.DecodeHeader(name); err == nil {
			name = dec
		}
		out = append(out, &mail.Address{Name: name, Address: addr})
	}
	return out
}

var wordDecoder = mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
	if message.CharsetReader == nil {
		return r, nil
	}
	return message.CharsetReader(charset, r)
}}

// splitOutsideQuotes splits s at sep where sep is outside a quoted string,
// a comment or angle brackets.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted, escaped := false, false
	depth := 0 // parentheses and angle brackets
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '<':
			depth++
		case (c == ')' || c == '>') && depth > 0:
			depth--
		case c == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// fileName returns the decoded file name of a part: the filename parameter
// of Content-Disposition, else the name parameter of Content-Type. RFC 2231
// values are decoded here, since the standard library drops those in
// charsets other than UTF-8 and ASCII.
func fileName(h message.Header, ctParams, dispParams map[string]string) string {
	name := rfc2231Param(h.Get("Content-Disposition"), "filename")
	if name == "" {
		name = dispParams["filename"]
	}
	if name == "" {
		name = rfc2231Param(h.Get("Content-Type"), "name")
	}
	if name == "" {
		name = ctParams["name"]
	}
	return strings.TrimSpace(name)
}

// rfc2231Param decodes parameter key of a header value written with RFC 2231
// extended syntax (key*=charset'lang'%xx or continuations key*0*, key*1, …);
// "" when absent or undecodable.
func rfc2231Param(value, key string) string {
	if !strings.Contains(strings.ToLower(value), key+"*") {
		return ""
	}
	type segment struct {
		n       int
		encoded bool
		v       string
	}
	var segs []segment
	for _, p := range splitOutsideQuotes(value, ';')[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		v = unquote(v)
		rest, ok := strings.CutPrefix(k, key+"*")
		if !ok {
			continue
		}
		if rest == "" {
			segs = append(segs, segment{0, true, v})
			continue
		}
		enc := strings.HasSuffix(rest, "*")
		n, err := strconv.Atoi(strings.TrimSuffix(rest, "*"))
		if err != nil || n < 0 || n > 999 {
			continue
		}
		segs = append(segs, segment{n, enc, v})
	}
	if len(segs) == 0 {
		return ""
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].n < segs[j].n })
	charset := ""
	var raw []byte
	for i, s := range segs {
		if s.n != i {
			break // a gap ends the value
		}
		v := s.v
		if !s.encoded {
			raw = append(raw, v...)
			continue
		}
		if i == 0 {
			parts := strings.SplitN(v, "'", 3)
			if len(parts) != 3 {
				return ""
			}
			charset, v = strings.ToLower(parts[0]), parts[2]
		}
		raw = append(raw, percentDecode(v)...)
	}
	switch charset {
	case "", "utf-8", "us-ascii":
		return strings.ToValidUTF8(string(raw), "\uFFFD")
	}
	if message.CharsetReader == nil {
		return ""
	}
	r, err := message.CharsetReader(charset, strings.NewReader(string(raw)))
	if err != nil {
		return ""
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return ""
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// percentDecode decodes %xx escapes, leaving malformed ones as written.
func percentDecode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return b
}

// unquote removes the quotes and backslash escapes of a MIME quoted string;
// anything else is returned as is.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
