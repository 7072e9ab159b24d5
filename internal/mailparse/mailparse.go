// Package mailparse reads an RFC 5322 message with bounded effort and extracts
// what screening and Message Tracking need: addresses, decoded subject, text,
// URLs and attachments with their hashes.
//
// Parse never panics and never gives up on malformed MIME: it keeps what it
// could read and lists what was wrong in Message.Problems.
package mailparse

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 charsets
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/sightline/sightline"
)

// Limits bound the work Parse does on one message. A zero field takes its
// default.
type Limits struct {
	// MaxDepth is how deeply multiparts (and attached messages) may nest.
	// Zero means 20.
	MaxDepth int
	// MaxParts is how many MIME parts are read, counting containers. Zero
	// means 500.
	MaxParts int
	// MaxHeaderBytes bounds the top-level header. Zero means 1 MiB.
	MaxHeaderBytes int64
	// MaxBodyBytes bounds the decoded text read from each text part for
	// snippets, body text and URLs; the rest of the part is skipped (and
	// noted in Problems). Attachments are always hashed whole. Zero means
	// 2 MiB.
	MaxBodyBytes int64
	// MaxURLs bounds the distinct URLs kept; extra ones are noted in
	// Problems. Zero means 200.
	MaxURLs int
}

// Defaults of Limits.
const (
	DefaultMaxDepth       = 20
	DefaultMaxParts       = 500
	DefaultMaxHeaderBytes = 1 << 20
	DefaultMaxBodyBytes   = 2 << 20
	DefaultMaxURLs        = 200

	// SnippetLen is the length, in characters, of Message.Snippet.
	SnippetLen = 500
)

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxURLs <= 0 {
		l.MaxURLs = DefaultMaxURLs
	}
	return l
}

// ErrLimit is in the chain of the error Parse returns when a message exceeds
// its Limits (depth, parts or header size).
var ErrLimit = errors.New("mailparse: limit exceeded")

// Message is what Parse extracts from a message.
type Message struct {
	From         string   // address of the first From mailbox, "" when none
	FriendlyFrom string   // "Name <addr>", or the bare address without a name
	To, Cc       []string // addresses
	ReplyTo      []string // addresses
	Subject      string   // RFC 2047-decoded
	MessageID    string   // with its angle brackets, "" when absent
	Date         time.Time

	// Snippet is the first SnippetLen characters of the text, whitespace
	// collapsed; text/plain is preferred to HTML.
	Snippet string
	// Text is the decoded text of the text/plain parts and of the HTML
	// parts with their markup removed, each part bounded by MaxBodyBytes.
	Text string

	URLs       []string // http, https and ftp URLs in text and HTML, de-duplicated, in order of appearance
	URLDomains []string // lowercase host names of URLs, de-duplicated

	Attachments []Attachment
	HasInline   bool // a part is meant to be shown inline (Content-Disposition inline or a Content-ID) other than body text

	// Problems lists what was malformed or cut, in reading order, e.g.
	// `part 1.2: multipart: NextPart: EOF`.
	Problems []string

	header message.Header
}

// Attachment is a non-body leaf part: a named part, an attachment, an inline
// image, an attached message.
type Attachment struct {
	Name   string // RFC 2231/2047-decoded file name, "" when none
	Type   string // lowercase MIME type, e.g. "application/pdf"
	Inline bool   // meant to be shown inline rather than as an attachment
	Size   int64  // decoded bytes
	SHA256 string // lowercase hex of the decoded content
	SHA1   string
	MD5    string
}

// HeaderValues returns the RFC 2047-decoded values of the top-level header
// field name, in order; nil when absent.
func (m *Message) HeaderValues(name string) []string {
	fields := m.header.FieldsByKey(name)
	var vs []string
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		vs = append(vs, v)
	}
	return vs
}

// HasHeader reports whether the top-level header has a field name.
func (m *Message) HasHeader(name string) bool { return m.header.Has(name) }

// Parse reads data as a message. It returns a Message whatever the input;
// the error, an *sightline.Error of kind Invalid wrapping ErrLimit, is set
// only when a limit stopped parsing early, and the Message then holds what was
// read before.
func Parse(data []byte, lim Limits) (*Message, error) {
	p := &parser{lim: lim.withDefaults(), msg: &Message{}, seenURL: map[string]bool{}, seenDomain: map[string]bool{}}
	p.parse(data)
	m := p.msg
	if p.plain.Len() > 0 {
		m.Snippet = snippet(p.plain.String())
	} else {
		m.Snippet = snippet(p.html.String())
	}
	m.Text = strings.TrimSpace(p.text.String())
	return m, p.limitErr
}

type parser struct {
	lim      Limits
	msg      *Message
	parts    int
	limitErr error

	plain, html, text strings.Builder // snippet sources and body text
	seenURL           map[string]bool
	seenDomain        map[string]bool
	urlsCapped        bool
}

// exceed records that limit stopped parsing; the first one is returned.
func (p *parser) exceed(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.problem("", "%s", msg)
	if p.limitErr == nil {
		p.limitErr = &sightline.Error{Kind: sightline.Invalid, Message: msg, Err: ErrLimit}
	}
}

func (p *parser) problem(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = "part " + path + ": " + msg
	}
	p.msg.Problems = append(p.msg.Problems, msg)
}

func (p *parser) parse(data []byte) {
	lr := &headerLimitReader{r: bytes.NewReader(data), n: p.lim.MaxHeaderBytes}
	br := bufio.NewReader(lr)
	h, err := textproto.ReadHeader(br)
	hdr := message.Header{Header: h}
	p.msg.header = hdr
	p.envelopeFields(hdr)
	switch {
	case errors.Is(err, errHeaderTooBig):
		p.exceed("message header exceeds %d bytes", p.lim.MaxHeaderBytes)
		return
	case err == io.EOF:
		return // header only
	case err != nil:
		p.problem("", "header: %v", err)
	}
	lr.n = -1
	p.entity(hdr, br, "", 0)
}

// envelopeFields fills the addresses, subject, Message-ID and date.
func (p *parser) envelopeFields(h message.Header) {
	mh := mail.Header{Header: h}
	m := p.msg
	if from := p.addresses(mh, "From"); len(from) > 0 {
		m.From = from[0].Address
		m.FriendlyFrom = friendly(from[0])
	}
	m.To = addrStrings(p.addresses(mh, "To"))
	m.Cc = addrStrings(p.addresses(mh, "Cc"))
	m.ReplyTo = addrStrings(p.addresses(mh, "Reply-To"))

	if h.Has("Subject") {
		s, err := mh.Subject()
		if err != nil {
			p.problem("", "subject: %v", err)
		}
		m.Subject = s
	}
	if raw := strings.TrimSpace(h.Get("Message-Id")); raw != "" {
		id, err := mh.MessageID()
		if err != nil || id == "" {
			p.problem("", "malformed Message-ID %q", raw)
			m.MessageID = raw
		} else {
			m.MessageID = "<" + id + ">"
		}
	}
	if h.Has("Date") {
		d, err := mh.Date()
		if err != nil {
			p.problem("", "malformed Date %q", h.Get("Date"))
		} else {
			m.Date = d
		}
	}
}

// addresses parses the address list of header field key strictly, falling
// back to ParseAddressList's lenient reading when that fails.
func (p *parser) addresses(h mail.Header, key string) []*mail.Address {
	if !h.Has(key) {
		return nil
	}
	list, err := h.AddressList(key)
	if err == nil {
		return list
	}
	raw := h.Get(key)
	p.problem("", "malformed %s %q: %v", key, raw, err)
	return lenientAddressList(raw)
}

func friendly(a *mail.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.Name + " <" + a.Address + ">"
}

func addrStrings(list []*mail.Address) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// entity reads one MIME entity whose header has been read; body is its raw
// (still transfer-encoded) content; path names it in Problems ("" for the
// root, then "1", "1.2", …); depth counts enclosing containers.
func (p *parser) entity(h message.Header, body io.Reader, path string, depth int) {
	p.parts++
	if p.parts > p.lim.MaxParts {
		if p.parts == p.lim.MaxParts+1 {
			p.exceed("message has more than %d MIME parts", p.lim.MaxParts)
		}
		return
	}
	mediaType, params, err := h.ContentType()
	if err != nil {
		p.problem(path, "malformed Content-Type %q: %v", h.Get("Content-Type"), err)
		mediaType, _, _ = strings.Cut(strings.ToLower(h.Get("Content-Type")), ";")
		mediaType = strings.TrimSpace(mediaType)
		params = nil
	}
	disp, dparams, err := h.ContentDisposition()
	if err != nil && h.Get("Content-Disposition") != "" {
		p.problem(path, "malformed Content-Disposition %q: %v", h.Get("Content-Disposition"), err)
		disp, _, _ = strings.Cut(strings.ToLower(h.Get("Content-Disposition")), ";")
		disp = strings.TrimSpace(disp)
	}

	switch {
	case strings.HasPrefix(mediaType, "multipart/"):
		if params["boundary"] == "" {
			p.problem(path, "%s without a boundary; read as text", mediaType)
			p.bodyText(h, body, "text/plain", path)
			return
		}
		p.multipart(body, params["boundary"], path, depth)
		return
	}

	name := fileName(h, params, dparams)
	isText := mediaType == "text/plain" || mediaType == "text/html" || mediaType == ""
	if isText && disp != "attachment" && name == "" {
		p.bodyText(h, body, mediaType, path)
		return
	}
	inline := disp == "inline" || (disp == "" && h.Has("Content-Id"))
	if inline {
		p.msg.HasInline = true
	}
	content := p.attachment(h, body, path, Attachment{Name: name, Type: mediaType, Inline: inline})
	if mediaType == "message/rfc822" || mediaType == "message/global" {
		p.attachedMessage(content, path, depth)
	}
}

// multipart reads the parts of a multipart body.
func (p *parser) multipart(body io.Reader, boundary, path string, depth int) {
	if depth+1 > p.lim.MaxDepth {
		p.exceed("MIME nesting deeper than %d", p.lim.MaxDepth)
		return
	}
	mr := textproto.NewMultipartReader(body, boundary)
	for i := 1; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			if i == 1 {
				p.problem(path, "multipart without parts")
			}
			return
		}
		if err != nil {
			p.problem(path, "%v", err)
			return
		}
		p.entity(message.Header{Header: part.Header}, part, joinPath(path, i), depth+1)
		if p.limitErr != nil {
			return
		}
	}
}

// attachedMessage reads the header and parts of an attached message for
// URLs and attachments; its addresses and subject are not the message's.
func (p *parser) attachedMessage(data []byte, path string, depth int) {
	if depth+1 > p.lim.MaxDepth {
		p.exceed("MIME nesting deeper than %d", p.lim.MaxDepth)
		return
	}
	br := bufio.NewReader(bytes.NewReader(data))
	h, err := textproto.ReadHeader(br)
	if err != nil && err != io.EOF {
		p.problem(path, "attached message header: %v", err)
	}
	if err == io.EOF {
		return
	}
	p.entity(message.Header{Header: h}, br, joinPath(path, 1), depth+1)
}

func joinPath(path string, i int) string {
	if path == "" {
		return strconv.Itoa(i)
	}
	return path + "." + strconv.Itoa(i)
}

// decoder returns body with its transfer encoding removed and, when charset
// is true, converted to UTF-8.
func (p *parser) decoder(h message.Header, body io.Reader, charset bool, path string) io.Reader {
	if !charset {
		// message.New converts text/* to UTF-8; attachments are hashed as
		// sent, so hide their Content-Type from it.
		h = h.Copy()
		h.Del("Content-Type")
	}
	e, err := message.New(h, body)
	if err != nil {
		p.problem(path, "%v", err)
	}
	return e.Body
}

// bodyText reads a body text part.
func (p *parser) bodyText(h message.Header, body io.Reader, mediaType, path string) {
	r := p.decoder(h, body, true, path)
	b, err := io.ReadAll(io.LimitReader(r, p.lim.MaxBodyBytes))
	if err != nil {
		p.problem(path, "decode %s: %v", mediaType, err)
	}
	if int64(len(b)) == p.lim.MaxBodyBytes {
		if n, _ := io.Copy(io.Discard, r); n > 0 {
			p.problem(path, "text beyond %d bytes not read", p.lim.MaxBodyBytes)
		}
	}
	s := strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), "\r\n", "\n")
	if mediaType == "text/html" {
		txt, urls := scanHTML(s)
		p.addURLs(urls)
		p.addText(&p.html, txt)
		return
	}
	p.addURLs(textURLs(s))
	p.addText(&p.plain, s)
}

func (p *parser) addText(snip *strings.Builder, s string) {
	if snip.Len() < 4*SnippetLen {
		snip.WriteString(s)
		snip.WriteByte('\n')
	}
	if p.text.Len() > 0 {
		p.text.WriteByte('\n')
	}
	p.text.WriteString(s)
}

// attachment hashes a leaf part and records it. It returns the decoded
// content when the part is an attached message, else nil.
func (p *parser) attachment(h message.Header, body io.Reader, path string, a Attachment) []byte {
	r := p.decoder(h, body, false, path)
	s256, s1, m5 := sha256.New(), sha1.New(), md5.New()
	w := io.MultiWriter(s256, s1, m5)
	var keep bytes.Buffer
	if a.Type == "message/rfc822" || a.Type == "message/global" {
		w = io.MultiWriter(w, &keep)
	}
	n, err := io.Copy(w, r)
	if err != nil {
		p.problem(path, "decode attachment %q: %v", a.Name, err)
	}
	a.Size = n
	a.SHA256 = hex.EncodeToString(s256.Sum(nil))
	a.SHA1 = hex.EncodeToString(s1.Sum(nil))
	a.MD5 = hex.EncodeToString(m5.Sum(nil))
	p.msg.Attachments = append(p.msg.Attachments, a)
	return keep.Bytes()
}

func (p *parser) addURLs(urls []string) {
	for _, u := range urls {
		if p.seenURL[u] {
			continue
		}
		host := urlHost(u)
		if host == "" {
			continue
		}
		if len(p.msg.URLs) >= p.lim.MaxURLs {
			if !p.urlsCapped {
				p.urlsCapped = true
				p.problem("", "more than %d URLs; the rest not kept", p.lim.MaxURLs)
			}
			return
		}
		p.seenURL[u] = true
		p.msg.URLs = append(p.msg.URLs, u)
		if !p.seenDomain[host] {
			p.seenDomain[host] = true
			p.msg.URLDomains = append(p.msg.URLDomains, host)
		}
	}
}

// snippet collapses whitespace in s and cuts it to SnippetLen characters.
func snippet(s string) string {
	var b strings.Builder
	n := 0
	for _, f := range strings.Fields(s) {
		if n >= SnippetLen {
			break
		}
		if n > 0 {
			b.WriteByte(' ')
			n++
		}
		for _, r := range f {
			if n >= SnippetLen {
				break
			}
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}

var errHeaderTooBig = errors.New("header too big")

// headerLimitReader fails with errHeaderTooBig after n bytes; n < 0 lifts
// the limit once the header has been read.
type headerLimitReader struct {
	r io.Reader
	n int64
}

func (l *headerLimitReader) Read(b []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(b)
	}
	if l.n == 0 {
		return 0, errHeaderTooBig
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	return n, err
}
