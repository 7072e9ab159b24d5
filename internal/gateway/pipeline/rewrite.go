package pipeline

import (
	"bytes"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
)

// editHeader returns a copy of data whose top-level header has every Subject
// field replaced by one holding subject (when setSubject) and the fields add
// appended. The body bytes are kept exactly; new lines use the line ending
// of the message's first line (CRLF as received over SMTP).
func editHeader(data []byte, setSubject bool, subject string, add []contentfilter.Field) []byte {
	eol := "\r\n"
	if i := bytes.IndexByte(data, '\n'); i >= 0 && (i == 0 || data[i-1] != '\r') {
		eol = "\n"
	}
	// Split the header into fields (a field keeps its continuation lines)
	// and find where the body begins.
	var fields [][]byte
	rest := data
	bodyStart := len(data)
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			bodyStart = len(data) - len(rest)
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
		} else {
			fields = append(fields, append([]byte(nil), line...))
		}
		rest = rest[len(line):]
	}

	var out bytes.Buffer
	out.Grow(len(data) + 256)
	wroteSubject := false
	for _, f := range fields {
		if setSubject && isField(f, "subject") {
			if !wroteSubject {
				out.WriteString(foldField("Subject", subject, eol))
				wroteSubject = true
			}
			continue
		}
		out.Write(f)
		if !bytes.HasSuffix(f, []byte("\n")) {
			out.WriteString(eol) // a header-only message without a final line end
		}
	}
	if setSubject && !wroteSubject {
		out.WriteString(foldField("Subject", subject, eol))
	}
	for _, f := range add {
		out.WriteString(foldField(f.Name, f.Value, eol))
	}
	out.Write(data[bodyStart:])
	return out.Bytes()
}

// isField reports whether the header field f is named name (lowercase).
func isField(f []byte, name string) bool {
	i := bytes.IndexByte(f, ':')
	return i >= 0 && strings.EqualFold(strings.TrimRight(string(f[:i]), " \t"), name)
}

// foldField formats "Name: value" followed by eol, RFC 2047-encoding a
// non-ASCII value and folding at spaces to keep lines near 78 characters.
func foldField(name, value, eol string) string {
	if !isASCII(value) {
		value = mime.QEncoding.Encode("utf-8", value)
	}
	var b strings.Builder
	b.WriteString(name + ":")
	n := b.Len()
	for i, w := range strings.Split(value, " ") {
		if i > 0 && n+1+len(w) > 78 {
			b.WriteString(eol)
			n = 0
		}
		b.WriteByte(' ')
		b.WriteString(w)
		n += 1 + len(w)
	}
	b.WriteString(eol)
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] < ' ' && s[i] != '\t' {
			return false
		}
	}
	return true
}

// tagSubject puts each prefix before subject, separated by a space, unless
// the subject already begins with it (a released message is screened again).
func tagSubject(subject string, prefixes []string) string {
	for _, p := range prefixes {
		if strings.HasPrefix(subject, p) {
			continue
		}
		if subject == "" || strings.HasSuffix(p, " ") {
			subject = p + subject
		} else {
			subject = p + " " + subject
		}
	}
	return subject
}
