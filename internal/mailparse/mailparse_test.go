package mailparse

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline"
)

// attachment returns the Attachment expected for content.
func attachment(name, typ string, inline bool, content string) Attachment {
	s256, s1, m5 := sha256.Sum256([]byte(content)), sha1.Sum([]byte(content)), md5.Sum([]byte(content))
	return Attachment{Name: name, Type: typ, Inline: inline, Size: int64(len(content)),
		SHA256: hex.EncodeToString(s256[:]), SHA1: hex.EncodeToString(s1[:]), MD5: hex.EncodeToString(m5[:])}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var ignoreText = cmpopts.IgnoreFields(Message{}, "Text")

func TestParseTestdata(t *testing.T) {
	pngBytes := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...)
	for i := range 64 {
		pngBytes[8+i] = byte(i)
	}
	tests := []struct {
		file string
		want Message
	}{
		{"alternative.eml", Message{
			From: "alice@sender.example", FriendlyFrom: "Alice Example <alice@sender.example>",
			To: []string{"bob@corp.example", "carol@corp.example"}, Cc: []string{"dave@corp.example"},
			ReplyTo: []string{"billing@sender.example"}, Subject: "Invoice 4471",
			MessageID: "<20260110080012.4471@sender.example>",
			Date:      time.Date(2026, 1, 10, 8, 0, 12, 0, time.FixedZone("", 0)),
			Snippet:   "Hello Bob, Please pay the invoice at https://pay.sender.example/i?x=1&y=2. Mirror: (https://Mirror.Sender.Example/path).",
			URLs: []string{"https://pay.sender.example/i?x=1&y=2", "https://Mirror.Sender.Example/path",
				"http://img.tracker.example/p.gif"},
			URLDomains: []string{"pay.sender.example", "mirror.sender.example", "img.tracker.example"},
		}},
		{"nested.eml", Message{
			From: "alice@sender.example", FriendlyFrom: "alice@sender.example", To: []string{"bob@corp.example"},
			Subject: "Report – Q1", MessageID: "<nested.1@sender.example>",
			Snippet:    "The quarterly report – see the attachment. Details: https://reports.example/q1",
			URLs:       []string{"https://reports.example/q1"},
			URLDomains: []string{"reports.example"},
			Attachments: []Attachment{
				attachment("", "image/png", true, string(pngBytes)),
				attachment("report.pdf", "application/pdf", false, strings.Repeat("%PDF-1.4 fake invoice\n", 10)),
			},
			HasInline: true,
		}},
		{"rfc2231.eml", Message{
			From: "alice@sender.example", FriendlyFrom: "alice@sender.example", To: []string{"bob@corp.example"},
			Subject: "names", Snippet: "see attached",
			Attachments: []Attachment{
				attachment("Résumé final.txt", "text/plain", false, "R\xe9sum\xe9 in Latin-1"),
				attachment("very long name continued.bin", "application/octet-stream", false, "binary"),
				attachment("naïve.zip", "application/octet-stream", false, "zip"),
			},
		}},
		{"latin1.eml", Message{
			From: "andre@sender.example", FriendlyFrom: "André <andre@sender.example>", To: []string{"bob@corp.example"},
			Subject: "Café crème", Snippet: "Un café crème, s'il vous plaît.",
		}},
		{"broken.eml", Message{
			From: "alice@sender.example", FriendlyFrom: "alice@sender.example", To: []string{"bob@corp.example"},
			Subject: "broken", Snippet: "first part http://first.example/a",
			URLs: []string{"http://first.example/a"}, URLDomains: []string{"first.example"},
			// The base64 of the cut attachment decodes to 9 bytes before the end.
			Attachments: []Attachment{attachment("cut.zip", "application/zip", false, "PK\x03\x04\n\x00\x00\x00\x00")},
			Problems:    []string{`part 2: decode attachment "cut.zip": unexpected EOF`, "multipart: NextPart: EOF"},
		}},
		{"header_only.eml", Message{
			From: "alice@sender.example", FriendlyFrom: "alice@sender.example", To: []string{"bob@corp.example"},
			Subject: "nothing else",
		}},
		{"forwarded.eml", Message{
			From: "alice@sender.example", FriendlyFrom: "alice@sender.example", To: []string{"bob@corp.example"},
			Subject: "Fwd: hello", Snippet: "see below click http://evil.example/login",
			URLs: []string{"http://evil.example/login"}, URLDomains: []string{"evil.example"},
			Attachments: []Attachment{
				attachment("", "message/rfc822", false, string(forwardedInner(t))),
				attachment("setup.exe", "application/x-msdownload", false, "MZ-not-really"),
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Parse(readTestdata(t, tt.file), Limits{})
			if err != nil {
				t.Fatalf("Parse(%s) error = %v, want nil", tt.file, err)
			}
			if diff := cmp.Diff(&tt.want, got, cmpopts.IgnoreUnexported(Message{}), ignoreText, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse(%s) mismatch (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

// forwardedInner returns the attached message of forwarded.eml as sent.
func forwardedInner(t *testing.T) []byte {
	s := string(readTestdata(t, "forwarded.eml"))
	start := strings.Index(s, "From: mallory")
	end := strings.Index(s, "\r\n--fw--")
	return []byte(s[start:end])
}

func TestParseText(t *testing.T) {
	m, err := Parse(readTestdata(t, "alternative.eml"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Please pay the invoice at https://pay", "Please pay the invoice.\n"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("Parse(alternative.eml).Text = %q, want it to contain %q", m.Text, want)
		}
	}
	for _, bad := range []string{"\r", "<p>", "script.example", "background"} {
		if strings.Contains(m.Text, bad) {
			t.Errorf("Parse(alternative.eml).Text = %q, want no %q", m.Text, bad)
		}
	}
}

func TestHeaderValues(t *testing.T) {
	data := "X-Tag: one\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nX-Tag: two\r\n\r\nbody\r\n"
	m, _ := Parse([]byte(data), Limits{})
	tests := []struct {
		name string
		want []string
	}{
		{"x-tag", []string{"one", "two"}},
		{"Subject", []string{"café"}},
		{"X-Missing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.HeaderValues(tt.name); !cmp.Equal(got, tt.want) {
				t.Errorf("HeaderValues(%q) = %q, want %q", tt.name, got, tt.want)
			}
			if got, want := m.HasHeader(tt.name), tt.want != nil; got != want {
				t.Errorf("HasHeader(%q) = %v, want %v", tt.name, got, want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name         string
		data         string
		wantFrom     string
		wantID       string
		wantProblems int
	}{
		{"lenient from", "From: Alice alice@x.example\r\nSubject: s\r\n\r\nhi\r\n", "alice@x.example", "", 1},
		{"bad message-id", "From: a@x.example\r\nMessage-ID: not an id\r\n\r\nhi\r\n", "a@x.example", "not an id", 1},
		{"multipart without boundary", "From: a@x.example\r\nContent-Type: multipart/mixed\r\n\r\nhi\r\n", "a@x.example", "", 1},
		{"bad content type", "From: a@x.example\r\nContent-Type: text/plain; charset\r\n\r\nhi\r\n", "a@x.example", "", 1},
		{"empty multipart", "From: a@x.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n", "a@x.example", "", 1},
		{"bad header line", "From: a@x.example\r\nthis is not a header\r\n\r\nhi\r\n", "a@x.example", "", 1},
		{"empty", "", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.data), Limits{})
			if err != nil {
				t.Fatalf("Parse(%q) error = %v, want nil", tt.data, err)
			}
			if m.From != tt.wantFrom || m.MessageID != tt.wantID || len(m.Problems) != tt.wantProblems {
				t.Errorf("Parse(%q) = From %q, MessageID %q, Problems %q; want %q, %q, %d problems",
					tt.data, m.From, m.MessageID, m.Problems, tt.wantFrom, tt.wantID, tt.wantProblems)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	manyParts := "From: a@x.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		strings.Repeat("--b\r\nContent-Type: text/plain\r\n\r\npart\r\n", 10) + "--b--\r\n"
	deep := "From: a@x.example\r\n"
	for i := range 5 {
		deep += fmt.Sprintf("Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	deep += "Content-Type: text/plain\r\n\r\ndeep\r\n"
	bigHeader := "From: a@x.example\r\nX-Pad: " + strings.Repeat("x", 2000) + "\r\n\r\nbody\r\n"

	tests := []struct {
		name    string
		data    string
		lim     Limits
		wantErr string
	}{
		{"parts", manyParts, Limits{MaxParts: 5}, "message has more than 5 MIME parts"},
		{"depth", deep, Limits{MaxDepth: 3}, "MIME nesting deeper than 3"},
		{"header", bigHeader, Limits{MaxHeaderBytes: 1024}, "message header exceeds 1024 bytes"},
		{"within limits", manyParts, Limits{MaxParts: 11}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.data), tt.lim)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse() error = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrLimit) || sightline.ErrorKind(err) != sightline.Invalid || sightline.ErrorMessage(err) != tt.wantErr {
				t.Fatalf("Parse() error = %v, want Invalid %q wrapping ErrLimit", err, tt.wantErr)
			}
			if m == nil || m.From != "a@x.example" {
				t.Errorf("Parse() = %+v, want the message read so far", m)
			}
		})
	}
}

func TestParseBodyAndURLLimits(t *testing.T) {
	var body strings.Builder
	for i := range 20 {
		fmt.Fprintf(&body, "https://u%d.example/ ", i)
	}
	data := "From: a@x.example\r\n\r\n" + body.String() + "\r\n"
	m, err := Parse([]byte(data), Limits{MaxURLs: 5, MaxBodyBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.URLs) != 5 || m.URLs[4] != "https://u4.example/" {
		t.Errorf("URLs = %q, want the first 5", m.URLs)
	}
	want := []string{"text beyond 200 bytes not read", "more than 5 URLs; the rest not kept"}
	if diff := cmp.Diff(want, m.Problems); diff != "" {
		t.Errorf("Problems mismatch (-want +got):\n%s", diff)
	}
	if len(m.Text) > 200 {
		t.Errorf("len(Text) = %d, want at most 200", len(m.Text))
	}
}

func TestSnippetLength(t *testing.T) {
	data := "From: a@x.example\r\n\r\n" + strings.Repeat("é  word\r\n", 400)
	m, _ := Parse([]byte(data), Limits{})
	if n := utf8.RuneCountInString(m.Snippet); n != SnippetLen {
		t.Errorf("snippet has %d characters, want %d", n, SnippetLen)
	}
	if !strings.HasPrefix(m.Snippet, "é word é word") {
		t.Errorf("snippet = %q, want whitespace collapsed", m.Snippet[:40])
	}
}

func TestTextURLs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"see https://a.example/x.", []string{"https://a.example/x"}},
		{"(https://a.example/x)", []string{"https://a.example/x"}},
		{"https://en.wikipedia.org/wiki/Go_(language), ok", []string{"https://en.wikipedia.org/wiki/Go_(language)"}},
		{"<http://a.example/?q=1&r=2>", []string{"http://a.example/?q=1&r=2"}},
		{`"ftp://files.example/a.zip"`, []string{"ftp://files.example/a.zip"}},
		{"HTTPS://UPPER.EXAMPLE and mailto:x@y", []string{"HTTPS://UPPER.EXAMPLE"}},
		{"no url: www.example.com", nil},
	}
	for _, tt := range tests {
		if got := textURLs(tt.in); !cmp.Equal(got, tt.want) {
			t.Errorf("textURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLenientAddressList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Alice alice@x.example", []string{"alice@x.example"}},
		{`"Bob, Jr" <bob@x.example>,, carol@y.example`, []string{"Bob, Jr <bob@x.example>", "carol@y.example"}},
		{"=?utf-8?q?Andr=C3=A9?= <andre@x.example", []string{"André <andre@x.example>"}},
		{"undisclosed-recipients:;", nil},
		{"<not an address>", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range lenientAddressList(tt.in) {
			got = append(got, friendly(a))
		}
		if !cmp.Equal(got, tt.want) {
			t.Errorf("lenientAddressList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRFC2231Param(t *testing.T) {
	tests := []struct {
		in, key, want string
	}{
		{`attachment; filename*=utf-8''na%C3%AFve.txt`, "filename", "naïve.txt"},
		{`attachment; filename*0*=iso-8859-1''R%E9sum%E9; filename*1="  x.txt"`, "filename", "Résumé  x.txt"},
		{`attachment; filename*1=b; filename*0=a`, "filename", "ab"},
		{`attachment; filename*0=a; filename*2=c`, "filename", "a"},
		{`attachment; filename="plain.txt"`, "filename", ""},
		{`attachment; filename*=no-quotes`, "filename", ""},
		{`attachment; filename*=x-unknown''abc`, "filename", ""},
		{`attachment; filename*=''%zz%41`, "filename", "%zzA"},
	}
	for _, tt := range tests {
		if got := rfc2231Param(tt.in, tt.key); got != tt.want {
			t.Errorf("rfc2231Param(%q, %q) = %q, want %q", tt.in, tt.key, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	lim := Limits{MaxDepth: 8, MaxParts: 50, MaxHeaderBytes: 8 << 10, MaxBodyBytes: 4 << 10, MaxURLs: 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, lim)
		if m == nil {
			t.Fatalf("Parse() = nil, %v", err)
		}
		if err != nil && !errors.Is(err, ErrLimit) {
			t.Fatalf("Parse() error = %v, want only limit errors", err)
		}
		if len(m.URLs) > lim.MaxURLs {
			t.Errorf("Parse() kept %d URLs, limit %d", len(m.URLs), lim.MaxURLs)
		}
		seen := map[string]bool{}
		for _, u := range m.URLs {
			if seen[u] {
				t.Errorf("URL %q twice", u)
			}
			seen[u] = true
		}
		if utf8.RuneCountInString(m.Snippet) > SnippetLen || !utf8.ValidString(m.Snippet) || !utf8.ValidString(m.Text) {
			t.Errorf("bad snippet %q", m.Snippet)
		}
		for _, a := range m.Attachments {
			if len(a.SHA256) != 64 || len(a.SHA1) != 40 || len(a.MD5) != 32 {
				t.Errorf("attachment %+v: bad hashes", a)
			}
		}
	})
}

func FuzzAddressList(f *testing.F) {
	for _, s := range []string{"Alice alice@x.example", `"Bob, Jr" <bob@x.example>,, c@y`, "=?utf-8?q?A?= <a@x", "(c) <a@b>", `"\"" <q@x>`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, a := range lenientAddressList(s) {
			if !strings.Contains(a.Address, "@") || strings.ContainsAny(a.Address, " \t\r\n") {
				t.Errorf("lenientAddressList(%q) gave address %q", s, a.Address)
			}
		}
	})
}

func FuzzRFC2231Param(f *testing.F) {
	for _, s := range []string{`a; filename*0*=iso-8859-1''R%E9; filename*1=x`, `a; filename*=utf-8''%C3%AF`, `a; filename*999*=%`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := rfc2231Param(s, "filename"); !utf8.ValidString(got) {
			t.Errorf("rfc2231Param(%q) = %q, not UTF-8", s, got)
		}
	})
}

// TestParseHostileShapes guards against quadratic work on hostile text: a
// quadratic pass over these 1 MiB bodies would run past the test timeout.
func TestParseHostileShapes(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"closing brackets", "https://a.example/" + strings.Repeat(")", 1<<20)},
		{"dots", "https://a.example/" + strings.Repeat(".", 1<<20)},
		{"many urls", strings.Repeat("http://a.example/ ", 1<<16)},
		{"html attributes", "<a " + strings.Repeat(`href="http://x.example/" `, 1<<15) + ">"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := "From: a@x.example\r\nContent-Type: text/html\r\n\r\n" + tt.body
			if _, err := Parse([]byte(data), Limits{}); err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
		})
	}
}

// FuzzTextURLs checks that textURLs, which runs the regular expression only
// around each "://", finds what the regular expression finds on the whole
// text.
func FuzzTextURLs(f *testing.F) {
	for _, s := range []string{
		"see https://a.example/x, and http://b.example/?u=http://c.example/ too",
		"xhttps://no.example ahttp://no.example ftp://yes.example/f HTTPS://Up.Example",
		"(http://paren.example/a) <https://angle.example/> \"http://q.example\"",
		"://://http:// https:// ftp://x\thttp://tab.example\nhttps://nl.example",
		"", "no urls here at all", "é https://ünïcode.example/ü",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want []string
		for _, u := range bareURL.FindAllString(s, -1) {
			if u = trimURL(u); u != "" {
				want = append(want, u)
			}
		}
		if got := textURLs(s); !slices.Equal(got, want) {
			t.Errorf("textURLs(%q) = %q, want %q", s, got, want)
		}
	})
}
