// Package contentfilter holds the gateway's content filters: ordered, named
// rules of conditions and actions that an administrator writes, in the manner
// of AsyncOS content filters, validated and compiled once per configuration.
package contentfilter

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/mailparse"
)

// Filter is one content filter as written in the configuration.
type Filter struct {
	// Name identifies the filter in logs and tracking: letters, digits, "_",
	// "-" and ".", at most 64, unique.
	Name string `json:"name"`
	// Enabled filters run; a filter without "enabled": true is kept but
	// skipped.
	Enabled bool `json:"enabled"`
	// Direction is the mail policy table the filter belongs to: "inbound"
	// (also when empty), "outbound" or "both".
	Direction string `json:"direction,omitempty"`
	// Match is "all" (also when empty): every condition must hold, or "any":
	// one is enough. A filter without conditions matches every message.
	Match      string      `json:"match,omitempty"`
	Conditions []Condition `json:"conditions,omitempty"`
	// Actions run in order when the filter matches; at least one.
	Actions []Action `json:"actions"`
}

// Condition types.
const (
	Header            = "header"             // a header field (Header names it); Op may be Exists
	Subject           = "subject"            // the decoded subject
	Body              = "body"               // the text of the text and HTML parts
	AttachmentName    = "attachment_name"    // any attachment's file name
	AttachmentType    = "attachment_type"    // any attachment's MIME type ("application/pdf", "image/*") or file extension (".exe")
	AttachmentSHA256  = "attachment_sha256"  // any attachment's SHA-256, 64 hex digits
	SenderGroup       = "sender_group"       // the HAT sender group, e.g. "SUSPECTLIST"
	EnvelopeSender    = "envelope_sender"    // MAIL FROM
	EnvelopeRecipient = "envelope_recipient" // any RCPT TO
	SenderIP          = "sender_ip"          // the client IP, an address or a CIDR prefix
	SPF               = "spf"                // SPF result: pass fail softfail neutral none temperror permerror
	DKIM              = "dkim"               // DKIM result: pass fail none temperror permerror
	DMARC             = "dmarc"              // DMARC result: pass fail none temperror permerror
	URLDomain         = "url_domain"         // any URL's host: "example.com" exactly, ".example.com" with its subdomains
	SizeGreater       = "size_greater"       // message size strictly above Value: bytes, or with k/m suffixes (×1024)
)

// Text operators, for the types matched against text (header, subject, body,
// attachment_name, sender_group, envelope_sender, envelope_recipient).
// Comparisons ignore case except Matches, a Go regexp (use (?i) to fold).
const (
	Contains   = "contains" // also when Op is empty
	Is         = "is"
	BeginsWith = "begins_with"
	EndsWith   = "ends_with"
	Matches    = "matches" // regular expression
	Glob       = "glob"    // shell pattern: * ? [a-z]
	Exists     = "exists"  // header only: the field is present; Value unused
)

// Condition is one test on a message. Negate inverts it.
type Condition struct {
	Type   string `json:"type"`
	Header string `json:"header,omitempty"` // field name, for type header
	Op     string `json:"op,omitempty"`     // text operator; not allowed for the other types
	Value  string `json:"value,omitempty"`
	Negate bool   `json:"negate,omitempty"`
}

// Action types. Drop, Bounce and Deliver are final: they stop the remaining
// filters. Quarantine is not: later filters still run, and the message goes
// to the first quarantine named unless a final action drops or bounces it.
const (
	Quarantine = "quarantine"  // Quarantine names it; "Policy" when empty
	Drop       = "drop"        // final
	Bounce     = "bounce"      // final; Text is the reason given to the sender
	Deliver    = "deliver"     // final: skip the remaining filters
	AddHeader  = "add_header"  // Header: Value
	TagSubject = "tag_subject" // Prefix is put before the subject, e.g. "[SUSPICIOUS]"
)

// DefaultQuarantine receives quarantined messages when no name is given.
const DefaultQuarantine = "Policy"

// DefaultBounceText is the bounce reason when none is given.
const DefaultBounceText = "Message rejected by content filter"

// Action is what a matching filter does.
type Action struct {
	Type       string `json:"type"`
	Quarantine string `json:"quarantine,omitempty"` // for quarantine
	Text       string `json:"text,omitempty"`       // for bounce
	Header     string `json:"header,omitempty"`     // for add_header
	Value      string `json:"value,omitempty"`      // for add_header
	Prefix     string `json:"prefix,omitempty"`     // for tag_subject
}

// Message is what filters look at.
type Message struct {
	Inbound     bool // Envelope.Direction is incoming
	Parsed      *mailparse.Message
	Sender      string // envelope sender
	Recipients  []string
	ClientIP    netip.Addr
	SenderGroup string
	SPF, DKIM   string // results as in mailauth; "" when not checked
	DMARC       string
	Size        int64
}

// Field is a header field to add.
type Field struct{ Name, Value string }

// Outcome is the result of running a Set on a message.
type Outcome struct {
	Ran     bool     // at least one enabled filter of the message's direction was evaluated
	Matched []string // names of the filters that matched, in order

	Final       string // Drop, Bounce or Deliver when a final action stopped the filters, else ""
	FinalFilter string // the filter that took Final
	BounceText  string // for Bounce

	Quarantine       string // the quarantine to use, "" when none
	QuarantineFilter string // the filter that asked for it

	AddHeaders  []Field
	SubjectTags []string // prefixes, in the order applied
}

// Set is a compiled, ordered list of filters. It is immutable and safe for
// concurrent use.
type Set struct {
	filters []compiled
}

type compiled struct {
	Filter
	inbound, outbound bool
	any               bool
	conds             []func(*Message) bool
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// Compile validates filters and compiles their conditions. The error, of kind
// Invalid, names every problem with its filter, condition or action (1-based)
// and field, e.g. `content filter "block_exe": condition 2: unknown operator
// "equalz"`.
func Compile(filters []Filter) (*Set, error) {
	s := &Set{}
	var problems []string
	seen := map[string]bool{}
	for i, f := range filters {
		label := fmt.Sprintf("content filter %q", f.Name)
		bad := func(format string, args ...any) {
			problems = append(problems, label+": "+fmt.Sprintf(format, args...))
		}
		switch {
		case f.Name == "":
			label = fmt.Sprintf("content filter %d", i+1)
			bad("missing name")
		case !nameRE.MatchString(f.Name):
			bad("invalid name: use letters, digits, _ - . (at most 64)")
		case seen[f.Name]:
			bad("duplicate name")
		}
		seen[f.Name] = true
		c := compiled{Filter: f}
		switch f.Direction {
		case "", "inbound":
			c.inbound = true
		case "outbound":
			c.outbound = true
		case "both":
			c.inbound, c.outbound = true, true
		default:
			bad("unknown direction %q (want inbound, outbound or both)", f.Direction)
		}
		switch f.Match {
		case "", "all":
		case "any":
			c.any = true
		default:
			bad("unknown match %q (want all or any)", f.Match)
		}
		for j, cond := range f.Conditions {
			m, err := compileCondition(cond)
			if err != nil {
				bad("condition %d: %v", j+1, err)
				continue
			}
			if cond.Negate {
				inner := m
				m = func(msg *Message) bool { return !inner(msg) }
			}
			c.conds = append(c.conds, m)
		}
		if len(f.Actions) == 0 {
			bad("no actions")
		}
		for j, a := range f.Actions {
			if err := checkAction(a); err != nil {
				bad("action %d: %v", j+1, err)
			}
			if final(a.Type) && j != len(f.Actions)-1 {
				bad("action %d: %s is final and must be the last action", j+1, a.Type)
			}
		}
		s.filters = append(s.filters, c)
	}
	if len(problems) > 0 {
		return nil, sightline.Errorf(sightline.Invalid, "%s", strings.Join(problems, "; "))
	}
	return s, nil
}

func final(action string) bool { return action == Drop || action == Bounce || action == Deliver }

// Run evaluates the enabled filters of m's direction in order and gathers
// what the matching ones ask for.
func (s *Set) Run(m *Message) Outcome {
	var o Outcome
	if s == nil {
		return o
	}
	for _, f := range s.filters {
		if !f.Enabled || (m.Inbound && !f.inbound) || (!m.Inbound && !f.outbound) {
			continue
		}
		o.Ran = true
		if !f.matches(m) {
			continue
		}
		o.Matched = append(o.Matched, f.Name)
		for _, a := range f.Actions {
			switch a.Type {
			case Quarantine:
				if o.Quarantine == "" {
					o.Quarantine, o.QuarantineFilter = a.Quarantine, f.Name
					if o.Quarantine == "" {
						o.Quarantine = DefaultQuarantine
					}
				}
			case AddHeader:
				o.AddHeaders = append(o.AddHeaders, Field{a.Header, a.Value})
			case TagSubject:
				o.SubjectTags = append(o.SubjectTags, a.Prefix)
			case Bounce:
				o.BounceText = a.Text
				if o.BounceText == "" {
					o.BounceText = DefaultBounceText
				}
				fallthrough
			case Drop, Deliver:
				o.Final, o.FinalFilter = a.Type, f.Name
				return o
			}
		}
	}
	return o
}

func (f *compiled) matches(m *Message) bool {
	if len(f.conds) == 0 {
		return true
	}
	for _, c := range f.conds {
		if c(m) == f.any {
			return f.any
		}
	}
	return !f.any
}

func checkAction(a Action) error {
	switch a.Type {
	case Quarantine:
		if a.Quarantine != "" && !quarantineRE.MatchString(a.Quarantine) {
			return fmt.Errorf("invalid quarantine name %q", a.Quarantine)
		}
	case Drop, Deliver:
	case Bounce:
		if strings.ContainsAny(a.Text, "\r\n\x00") || len(a.Text) > 256 {
			return fmt.Errorf("bounce text must be one line of at most 256 bytes")
		}
	case AddHeader:
		if !validFieldName(a.Header) {
			return fmt.Errorf("invalid header name %q", a.Header)
		}
		if strings.ContainsAny(a.Value, "\r\n\x00") || len(a.Value) > 900 {
			return fmt.Errorf("header value must be one line of at most 900 bytes")
		}
	case TagSubject:
		if strings.TrimSpace(a.Prefix) == "" || strings.ContainsAny(a.Prefix, "\r\n\x00") || len(a.Prefix) > 100 {
			return fmt.Errorf("prefix must be one non-blank line of at most 100 bytes")
		}
	case "":
		return fmt.Errorf("missing type")
	default:
		return fmt.Errorf("unknown action %q", a.Type)
	}
	return nil
}

var quarantineRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,63}$`)

// validFieldName reports whether s is an RFC 5322 field name of at most 76
// bytes.
func validFieldName(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}

// compileCondition returns the test for c without its negation.
func compileCondition(c Condition) (func(*Message) bool, error) {
	text := func(values func(*Message) []string) (func(*Message) bool, error) {
		match, err := textMatcher(c.Op, c.Value)
		if err != nil {
			return nil, err
		}
		return func(m *Message) bool {
			for _, v := range values(m) {
				if match(v) {
					return true
				}
			}
			return false
		}, nil
	}
	if c.Type != Header && c.Header != "" {
		return nil, fmt.Errorf("header %q given for type %s", c.Header, c.Type)
	}
	switch c.Type {
	case Header:
		if !validFieldName(c.Header) {
			return nil, fmt.Errorf("invalid header name %q", c.Header)
		}
		if c.Op == Exists {
			return func(m *Message) bool { return m.Parsed.HasHeader(c.Header) }, nil
		}
		return text(func(m *Message) []string { return m.Parsed.HeaderValues(c.Header) })
	case Subject:
		return text(func(m *Message) []string { return []string{m.Parsed.Subject} })
	case Body:
		return text(func(m *Message) []string { return []string{m.Parsed.Text} })
	case AttachmentName:
		return text(func(m *Message) []string {
			var names []string
			for _, a := range m.Parsed.Attachments {
				names = append(names, a.Name)
			}
			return names
		})
	case SenderGroup:
		return text(func(m *Message) []string { return []string{m.SenderGroup} })
	case EnvelopeSender:
		return text(func(m *Message) []string { return []string{m.Sender} })
	case EnvelopeRecipient:
		return text(func(m *Message) []string { return m.Recipients })
	}

	if c.Op != "" {
		return nil, fmt.Errorf("operator %q not allowed for type %s", c.Op, c.Type)
	}
	v := strings.ToLower(strings.TrimSpace(c.Value))
	switch c.Type {
	case AttachmentType:
		return attachmentType(v)
	case AttachmentSHA256:
		if len(v) != 64 || strings.Trim(v, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("invalid sha256 %q: want 64 hex digits", c.Value)
		}
		return func(m *Message) bool {
			for _, a := range m.Parsed.Attachments {
				if a.SHA256 == v {
					return true
				}
			}
			return false
		}, nil
	case SenderIP:
		p, err := ParsePrefix(v)
		if err != nil {
			return nil, err
		}
		return func(m *Message) bool { return m.ClientIP.IsValid() && p.Contains(m.ClientIP.Unmap()) }, nil
	case SPF, DKIM, DMARC:
		valid := map[string]bool{"pass": true, "fail": true, "none": true, "temperror": true, "permerror": true}
		if c.Type == SPF {
			valid["softfail"], valid["neutral"] = true, true
		}
		if !valid[v] {
			return nil, fmt.Errorf("unknown %s result %q", c.Type, c.Value)
		}
		get := map[string]func(*Message) string{
			SPF:   func(m *Message) string { return m.SPF },
			DKIM:  func(m *Message) string { return m.DKIM },
			DMARC: func(m *Message) string { return m.DMARC },
		}[c.Type]
		return func(m *Message) bool { return get(m) == v }, nil
	case URLDomain:
		if err := CheckDomainPattern(v); err != nil {
			return nil, err
		}
		return func(m *Message) bool {
			for _, d := range m.Parsed.URLDomains {
				if MatchDomain(v, d) {
					return true
				}
			}
			return false
		}, nil
	case SizeGreater:
		n, err := ParseSize(v)
		if err != nil {
			return nil, err
		}
		return func(m *Message) bool { return m.Size > n }, nil
	case "":
		return nil, fmt.Errorf("missing type")
	}
	return nil, fmt.Errorf("unknown condition type %q", c.Type)
}

// textMatcher compiles a text operator and its value.
func textMatcher(op, value string) (func(string) bool, error) {
	lv := strings.ToLower(value)
	if op != Exists && value == "" {
		return nil, fmt.Errorf("missing value")
	}
	switch op {
	case "", Contains:
		return func(s string) bool { return strings.Contains(strings.ToLower(s), lv) }, nil
	case Is:
		return func(s string) bool { return strings.EqualFold(s, value) }, nil
	case BeginsWith:
		return func(s string) bool { return strings.HasPrefix(strings.ToLower(s), lv) }, nil
	case EndsWith:
		return func(s string) bool { return strings.HasSuffix(strings.ToLower(s), lv) }, nil
	case Matches:
		re, err := regexp.Compile(value)
		if err != nil {
			return nil, fmt.Errorf("invalid regular expression %q: %v", value, err)
		}
		return re.MatchString, nil
	case Glob:
		if _, err := path.Match(lv, ""); err != nil {
			return nil, fmt.Errorf("invalid glob %q", value)
		}
		return func(s string) bool { ok, _ := path.Match(lv, strings.ToLower(s)); return ok }, nil
	case Exists:
		return nil, fmt.Errorf("operator exists is for header conditions only")
	}
	return nil, fmt.Errorf("unknown operator %q", op)
}

// attachmentType matches a MIME type ("application/pdf"), a type family
// ("image/*") or a file extension (".exe" or "exe") of any attachment.
func attachmentType(v string) (func(*Message) bool, error) {
	if v == "" {
		return nil, fmt.Errorf("missing value")
	}
	if typ, sub, ok := strings.Cut(v, "/"); ok {
		if typ == "" || sub == "" || strings.ContainsAny(v, " ;") {
			return nil, fmt.Errorf("invalid MIME type %q", v)
		}
		return func(m *Message) bool {
			for _, a := range m.Parsed.Attachments {
				if a.Type == v || (sub == "*" && strings.HasPrefix(a.Type, typ+"/")) {
					return true
				}
			}
			return false
		}, nil
	}
	ext := "." + strings.TrimPrefix(v, ".")
	if strings.ContainsAny(ext[1:], "./\\ *?") || len(ext) == 1 {
		return nil, fmt.Errorf("invalid file extension %q", v)
	}
	return func(m *Message) bool {
		for _, a := range m.Parsed.Attachments {
			if strings.HasSuffix(strings.ToLower(a.Name), ext) {
				return true
			}
		}
		return false
	}, nil
}

// MatchDomain reports whether domain matches pattern, both lowercase:
// "example.com" matches only itself, ".example.com" matches example.com and
// every subdomain. Reputation lists use the same rule.
func MatchDomain(pattern, domain string) bool {
	if rest, ok := strings.CutPrefix(pattern, "."); ok {
		return domain == rest || strings.HasSuffix(domain, pattern)
	}
	return domain == pattern
}

// CheckDomainPattern validates a pattern for MatchDomain.
func CheckDomainPattern(p string) error {
	d := strings.TrimPrefix(p, ".")
	if d == "" || len(d) > 253 || strings.Trim(d, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "" ||
		strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return fmt.Errorf("invalid domain %q (want example.com, or .example.com with subdomains)", p)
	}
	return nil
}

// ParsePrefix parses an IP address or a CIDR prefix; an address is a prefix
// of its full length. IPv4-mapped IPv6 forms are read as IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid IP address %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseSize reads a size in bytes: a number with an optional decimal part
// and an optional unit k/kb (×1024) or m/mb (×1024²), e.g. "1.5m".
func ParseSize(s string) (int64, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"k", 1 << 10}, {"m", 1 << 20}} {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = rest, u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f*mult > 1<<50 || v == "" || strings.ContainsAny(v, "eExXpP+-") {
		return 0, fmt.Errorf("invalid size %q (want bytes, or a number with k or m)", s)
	}
	return int64(f * mult), nil
}
