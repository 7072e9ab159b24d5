package pipeline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
)

func TestEditHeader(t *testing.T) {
	long := strings.Repeat("word ", 30)
	tests := []struct {
		name       string
		in         string
		setSubject bool
		subject    string
		add        []contentfilter.Field
		want       string
	}{
		{"replace folded subject", "From: a@x\r\nSubject: old\r\n continued\r\nTo: b@y\r\n\r\nbody\r\n", true, "[TAG] old continued", nil,
			"From: a@x\r\nSubject: [TAG] old continued\r\nTo: b@y\r\n\r\nbody\r\n"},
		{"duplicate subjects become one", "Subject: one\r\nSubject: two\r\n\r\nb", true, "new", nil, "Subject: new\r\n\r\nb"},
		{"add subject when missing", "From: a@x\r\n\r\nb", true, "new", nil, "From: a@x\r\nSubject: new\r\n\r\nb"},
		{"add headers", "From: a@x\r\n\r\n\r\nbody\r\n", false, "", []contentfilter.Field{{Name: "X-A", Value: "1"}, {Name: "X-B", Value: "é"}},
			"From: a@x\r\nX-A: 1\r\nX-B: =?utf-8?q?=C3=A9?=\r\n\r\n\r\nbody\r\n"},
		{"header only without line end", "From: a@x", false, "", []contentfilter.Field{{Name: "X-A", Value: "1"}}, "From: a@x\r\nX-A: 1\r\n"},
		{"LF message keeps LF", "From: a@x\nSubject: s\n\nbody\n", true, "t", nil, "From: a@x\nSubject: t\n\nbody\n"},
		{"long subject folded", "Subject: x\r\n\r\nb", true, strings.TrimSpace(long), nil,
			"Subject:" + strings.Repeat(" word", 14) + "\r\n" + strings.Repeat(" word", 15) + "\r\n" + strings.Repeat(" word", 1) + "\r\n\r\nb"},
		{"non-ASCII subject encoded", "Subject: x\r\n\r\nb", true, "[SUSPICIOUS] café", nil, "Subject: =?utf-8?q?[SUSPICIOUS]_caf=C3=A9?=\r\n\r\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(editHeader([]byte(tt.in), tt.setSubject, tt.subject, tt.add))
			if got != tt.want {
				t.Errorf("editHeader(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTagSubject(t *testing.T) {
	tests := []struct {
		subject  string
		prefixes []string
		want     string
	}{
		{"Invoice", []string{"[SUSPICIOUS]"}, "[SUSPICIOUS] Invoice"},
		{"[SUSPICIOUS] Invoice", []string{"[SUSPICIOUS]"}, "[SUSPICIOUS] Invoice"},
		{"", []string{"[X]"}, "[X]"},
		{"s", []string{"[A]", "[B] "}, "[B] [A] s"},
	}
	for _, tt := range tests {
		if got := tagSubject(tt.subject, tt.prefixes); got != tt.want {
			t.Errorf("tagSubject(%q, %q) = %q, want %q", tt.subject, tt.prefixes, got, tt.want)
		}
	}
}

// FuzzEditHeader checks that rewriting never touches the body: whatever
// follows the first empty line is kept byte for byte.
func FuzzEditHeader(f *testing.F) {
	f.Add([]byte("From: a@x\r\nSubject: s\r\n\r\nbody\r\n"), "new")
	f.Add([]byte("Subject: a\n b\n\nx"), "é")
	f.Add([]byte(" leading\r\n\r\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, subject string) {
		out := editHeader(data, true, subject, []contentfilter.Field{{Name: "X-A", Value: "1"}})
		if body := bodyOf(data); body != nil && !bytes.HasSuffix(out, body) {
			t.Errorf("editHeader(%q) = %q: body changed", data, out)
		}
		if !bytes.Contains(out, []byte("X-A: 1")) {
			t.Errorf("editHeader(%q) = %q: header not added", data, out)
		}
	})
}

// bodyOf returns what follows the first empty line, nil when there is none.
func bodyOf(data []byte) []byte {
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			return nil
		}
		line := data[i : i+j+1]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return data[i:]
		}
		i += j + 1
	}
	return nil
}
