// Package observable defines the observables of CTIM (an IP, a domain, an email
// address, a file hash…): their types, validation and normal form, the
// Investigate query syntax (type:"value") and free-text extraction (Inspect).
package observable

import (
	"fmt"
	"mime"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/net/idna"

	"github.com/sightline/sightline"
)

// Type is a CTIM observable type identifier, such as "ip" or "sha256".
type Type string

// The types Sightline understands beyond "a non-empty string" (ctim.md §4).
// Every other type of the CTIM list is accepted with generic rules.
const (
	IP             Type = "ip"
	IPv6           Type = "ipv6"
	Domain         Type = "domain"
	Hostname       Type = "hostname"
	URL            Type = "url"
	Email          Type = "email"
	EmailSubject   Type = "email_subject"
	EmailMessageID Type = "email_messageid"
	CiscoMID       Type = "cisco_mid"
	SHA256         Type = "sha256"
	SHA1           Type = "sha1"
	MD5            Type = "md5"
	FileName       Type = "file_name"
)

// allTypes is the closed CTIM list of observable types, sorted.
var allTypes = []Type{
	"acudid", "amp_computer_guid", "certificate_common_name", "certificate_issuer",
	"certificate_serial", "cisco_cm_id", "cisco_mid", "cisco_uc_id", "cortex_agent_id", "crowdstrike_id", "cvm_id",
	"cybereason_id", "darktrace_id", "device", "domain", "email", "email_messageid", "email_subject", "file_name",
	"file_path", "google_chromebook_id", "google_cloud_id", "hostname", "imei", "imsi", "intune_id", "ip", "ipv6",
	"jamf_management_id", "mac_address", "md5", "meraki_network_id", "meraki_node_sn", "meraki_org_id",
	"ms_machine_id", "mutex", "ngfw_id", "ngfw_name", "odns_identity", "odns_identity_label", "orbital_node_id",
	"pki_serial", "process_args", "process_hash", "process_name", "process_path", "process_uid", "process_username",
	"processor_id", "registry_key", "registry_name", "registry_path", "s1_agent_id", "secure_access_id",
	"serial_number", "service_now_id", "sha1", "sha256", "swc_device_id", "trend_micro_id", "url", "user", "user_agent",
}

var knownTypes = func() map[string]Type {
	m := make(map[string]Type, len(allTypes))
	for _, t := range allTypes {
		m[string(t)] = t
	}
	return m
}()

// Types returns every CTIM observable type, sorted. The list is closed: a
// type outside it is invalid in requests.
func Types() []Type { return append([]Type(nil), allTypes...) }

// Valid reports whether t is in the CTIM list of observable types.
func (t Type) Valid() bool { _, ok := knownTypes[string(t)]; return ok }

// MaxValueLength is the longest value accepted, in bytes (ours: CTIM sets no
// limit on observable values; this bounds what one value can cost).
const MaxValueLength = 4096

// Observable is one CTIM observable. Its JSON form is {"type": …, "value": …}.
type Observable struct {
	Type  Type   `json:"type"`
	Value string `json:"value"`
}

// New returns the observable of type t with value v in its normal form
// (ctim.md §4), or an Invalid *sightline.Error naming the type and value.
func New(t Type, v string) (Observable, error) {
	n, err := Normalize(t, v)
	if err != nil {
		return Observable{}, err
	}
	return Observable{Type: t, Value: n}, nil
}

// Validate reports whether o has a known type and a value that is valid and
// already in normal form.
func (o Observable) Validate() error {
	n, err := Normalize(o.Type, o.Value)
	if err != nil {
		return err
	}
	if n != o.Value {
		return sightline.Errorf(sightline.Invalid, "%s value %s is not in normal form %s", o.Type, quote(o.Value), quote(n))
	}
	return nil
}

// Key identifies o for deduplication: observables with equal keys are the
// same. Emails compare case-insensitively; everything else exactly (values
// are expected in normal form).
func (o Observable) Key() string {
	k := dedupKey(o)
	return string(k.Type) + ":" + k.Value
}

// dedupKey is Key as a comparable value, without building a string.
func dedupKey(o Observable) Observable {
	if o.Type == Email {
		o.Value = strings.ToLower(o.Value)
	}
	return o
}

// String returns o in the Investigate query syntax, type:"value", with
// backslash escapes for quotes and backslashes; ParseQuery reads it back.
func (o Observable) String() string {
	var b strings.Builder
	b.Grow(len(o.Type) + len(o.Value) + 3)
	b.WriteString(string(o.Type))
	b.WriteString(`:"`)
	for i := 0; i < len(o.Value); i++ {
		if c := o.Value[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(o.Value[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Normalize returns v in the normal form of type t (ctim.md §4): hashes,
// domains and host names lowercased, IPv6 in RFC 5952 text, the brackets of a
// Message-ID and the path of a file name removed, MIME-encoded subjects and
// file names decoded, surrounding white space trimmed. An unknown type, an
// empty value or one invalid for its type is an Invalid *sightline.Error
// naming both.
func Normalize(t Type, v string) (string, error) {
	if !t.Valid() {
		return "", unknownTypeError(string(t), "")
	}
	n, problem := normalize(t, v)
	if problem != "" {
		return "", sightline.Errorf(sightline.Invalid, "invalid %s %s: %s", t, quote(v), problem)
	}
	return n, nil
}

// problemEmpty is the problem normalize reports for an empty value.
const problemEmpty = "empty value"

// normalize returns v in the normal form of the known type t, or a problem.
func normalize(t Type, v string) (n, problem string) {
	if len(v) > MaxValueLength {
		return "", fmt.Sprintf("longer than %d bytes", MaxValueLength)
	}
	if !utf8.ValidString(v) {
		return "", "not valid UTF-8"
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", problemEmpty
	}
	switch t {
	case IP:
		n, problem = normalizeIPv4(v)
	case IPv6:
		n, problem = normalizeIPv6(v)
	case Domain, Hostname:
		n, problem = normalizeDomain(v)
	case URL:
		n, problem = normalizeURL(v)
	case Email:
		n, problem = normalizeEmail(v)
	case EmailSubject:
		n, problem = normalizeSubject(v)
	case EmailMessageID:
		n, problem = normalizeMessageID(v)
	case CiscoMID:
		n, problem = normalizeMID(v)
	case SHA256:
		n, problem = normalizeHex(v, 64)
	case SHA1:
		n, problem = normalizeHex(v, 40)
	case MD5:
		n, problem = normalizeHex(v, 32)
	case FileName:
		n, problem = normalizeFileName(v)
	default:
		n, problem = v, controlProblem(v)
	}
	if problem == "" && n == "" {
		problem = problemEmpty
	}
	return n, problem
}

// quote quotes s for an error message, shortened to 80 characters.
func quote(s string) string {
	if short := shorten(s); short != s {
		return strconv.Quote(short[:len(short)-len("…")]) + "…"
	}
	return strconv.Quote(s)
}

// shorten cuts s to 80 characters for an error message.
func shorten(s string) string {
	const max = 80
	if utf8.RuneCountInString(s) > max {
		return string([]rune(s)[:max]) + "…"
	}
	return s
}

// controlProblem describes the first ASCII control character in v, if any.
func controlProblem(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return fmt.Sprintf("contains control character %q", rune(c))
		}
	}
	return ""
}

// normalizeIPv4 accepts a dotted quad, dropping leading zeros (read as
// decimal, never octal).
func normalizeIPv4(v string) (string, string) {
	if strings.Contains(v, ":") {
		if a, err := netip.ParseAddr(strings.Trim(v, "[]")); err == nil && a.Is6() {
			return "", "an IPv6 address; use type ipv6"
		}
	}
	var b strings.Builder
	parts := strings.Split(v, ".")
	if len(parts) != 4 {
		return "", "not an IPv4 address (want four dot-separated numbers 0-255)"
	}
	for i, p := range parts {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return "", "not an IPv4 address (want four dot-separated numbers 0-255)"
		}
		n, _ := strconv.Atoi(p)
		if n > 255 {
			return "", fmt.Sprintf("number %s is above 255", p)
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String(), ""
}

func normalizeIPv6(v string) (string, string) {
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		v = v[1 : len(v)-1]
	}
	a, err := netip.ParseAddr(v)
	switch {
	case err != nil:
		return "", "not an IPv6 address"
	case a.Is4():
		return "", "an IPv4 address; use type ip"
	case a.Zone() != "":
		return "", "an IPv6 address with a zone; remove the %zone"
	}
	return a.String(), ""
}

// normalizeDomain lowercases a DNS name, drops one trailing dot and converts
// internationalised labels to A-labels.
func normalizeDomain(v string) (string, string) {
	v = strings.TrimSuffix(v, ".")
	if !isASCII(v) {
		a, err := idna.Lookup.ToASCII(v)
		if err != nil {
			return "", "not a valid internationalised domain name"
		}
		v = a
	}
	v = strings.ToLower(v)
	if p := domainProblem(v); p != "" {
		return "", p
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return "", "an IP address; use type ip or ipv6"
	}
	return v, ""
}

// domainProblem checks a lowercase ASCII name: labels of 1-63 letters,
// digits, hyphens or underscores, not starting or ending with a hyphen, at
// most 253 characters, and a last label that is not all digits.
func domainProblem(v string) string {
	if len(v) > 253 {
		return "longer than 253 characters"
	}
	labels := strings.Split(v, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return "has an empty label"
		case len(l) > 63:
			return "has a label longer than 63 characters"
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Sprintf("label %q starts or ends with a hyphen", l)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isLowerAlnum(c) && c != '-' && c != '_' {
				return fmt.Sprintf("character %q is not allowed in a domain name", rune(c))
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "the last label is all digits"
	}
	return ""
}

// normalizeURL keeps the URL as seen but requires a scheme and a host.
func normalizeURL(v string) (string, string) {
	if p := controlProblem(v); p != "" {
		return "", p
	}
	if strings.ContainsAny(v, " \u00a0") {
		return "", "contains a space"
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", "not an absolute URL (want scheme://host/…)"
	}
	return v, ""
}

// normalizeEmail lowercases the domain of local@domain, keeping the local
// part as written; surrounding angle brackets and a mailto: prefix go.
func normalizeEmail(v string) (string, string) {
	if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") {
		v = v[1 : len(v)-1]
	}
	if len(v) > 7 && strings.EqualFold(v[:7], "mailto:") {
		v = v[7:]
	}
	at := strings.LastIndexByte(v, '@')
	if at < 0 {
		return "", "no @ in the address"
	}
	local, domain := v[:at], v[at+1:]
	if local == "" {
		return "", "empty local part before @"
	}
	if len(local) > 64 {
		return "", "local part longer than 64 bytes"
	}
	for _, r := range local {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`"(),:;<>@[\]`, r) {
			return "", fmt.Sprintf("character %q is not allowed in the local part", r)
		}
	}
	d, p := normalizeDomain(domain)
	if p != "" {
		return "", "domain " + strconv.Quote(domain) + " " + p
	}
	return local + "@" + d, ""
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeWords decodes RFC 2047 encoded words, keeping v when they are broken.
func decodeWords(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil || !utf8.ValidString(d) {
		return v
	}
	return d
}

// unfold removes the line breaks of a folded header value.
var unfold = strings.NewReplacer("\r\n", "", "\r", "", "\n", "")

// normalizeSubject unfolds and decodes a Subject header value.
func normalizeSubject(v string) (string, string) {
	v = unfold.Replace(v)
	v = strings.TrimSpace(decodeWords(v))
	for _, r := range v {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return "", fmt.Sprintf("contains control character %q", r)
		}
	}
	return v, ""
}

func normalizeMessageID(v string) (string, string) {
	if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") {
		v = strings.TrimSpace(v[1 : len(v)-1])
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' {
			return "", fmt.Sprintf("character %q is not allowed in a Message-ID", r)
		}
	}
	return v, ""
}

// normalizeMID accepts a decimal message id, dropping leading zeros.
func normalizeMID(v string) (string, string) {
	if strings.Trim(v, "0123456789") != "" {
		return "", "not a decimal number"
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return "", "too large for a message id"
	}
	return strconv.FormatUint(n, 10), ""
}

func normalizeHex(v string, n int) (string, string) {
	if len(v) != n {
		return "", fmt.Sprintf("want %d hexadecimal characters, got %d characters", n, utf8.RuneCountInString(v))
	}
	for i := 0; i < len(v); i++ {
		if !isHex(v[i]) {
			return "", fmt.Sprintf("character %q is not hexadecimal", rune(v[i]))
		}
	}
	return strings.ToLower(v), ""
}

// normalizeFileName decodes an RFC 2231 extended value or RFC 2047 words and
// keeps the last element of a path.
func normalizeFileName(v string) (string, string) {
	v = decodeWords(decode2231(v))
	if i := strings.LastIndexAny(v, `/\`); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	if v == "." || v == ".." {
		return "", "not a file name"
	}
	if v == "" {
		return "", "a path without a file name"
	}
	return v, controlProblem(v)
}

// decode2231 decodes charset'language'percent-encoded (RFC 2231 §4) when v
// has that form with a charset we know; otherwise it returns v.
func decode2231(v string) string {
	cs, rest, ok := strings.Cut(v, "'")
	if !ok || cs == "" || !strings.Contains(rest, "'") {
		return v
	}
	_, enc, _ := strings.Cut(rest, "'")
	for i := 0; i < len(cs); i++ {
		if !isLowerAlnum(lower(cs[i])) && cs[i] != '-' && cs[i] != '_' {
			return v
		}
	}
	raw, err := url.PathUnescape(enc)
	if err != nil {
		return v
	}
	r, err := charset.Reader(cs, strings.NewReader(raw))
	if err != nil {
		return v
	}
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !utf8.ValidString(b.String()) {
		return v
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isHex(c byte) bool        { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// aliases maps names people type for a CTIM type; they are only suggested,
// never accepted (the type list is closed).
var aliases = map[string]Type{
	"ipv4": IP, "ip4": IP, "ip6": IPv6, "address": IP,
	"subject": EmailSubject, "email_subj": EmailSubject,
	"messageid": EmailMessageID, "message_id": EmailMessageID, "msgid": EmailMessageID, "message-id": EmailMessageID,
	"mid": CiscoMID, "filename": FileName, "file": FileName, "attachment": FileName,
	"host": Hostname, "fqdn": Domain, "sender": Email, "from": Email, "recipient": Email, "to": Email, "mail": Email,
	"sha": SHA256, "hash": SHA256, "sha_256": SHA256, "sha_1": SHA1, "link": URL, "uri": URL,
}

// suggest returns the type closest to an unknown name, or "".
func suggest(name string) Type {
	name = strings.ToLower(name)
	if t, ok := knownTypes[name]; ok {
		return t // a known type written in capitals
	}
	if t, ok := aliases[name]; ok {
		return t
	}
	best, bestD := Type(""), 3
	if len(name) <= 3 {
		bestD = 2
	}
	for _, t := range allTypes {
		if d := editDistance(name, string(t)); d < bestD {
			best, bestD = t, d
		}
	}
	return best
}

// unknownTypeError names an unknown type, where it was found and a likely
// intended type.
func unknownTypeError(name, where string) error {
	msg := fmt.Sprintf("unknown observable type %s", quote(name))
	if where != "" {
		msg += " in " + where
	}
	if s := suggest(name); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return sightline.Errorf(sightline.Invalid, "%s", msg)
}

// editDistance is the optimal string alignment distance (Levenshtein plus
// adjacent transpositions) between two short ASCII strings.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	var rows [3][65]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = d
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
