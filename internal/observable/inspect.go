package observable

import (
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Inspect extracts the observables in free text, the way the console's
// inspect route does (console-api.md §4):
//
//  1. Typed terms in the query syntax (ip:"4.2.2.2", file_name:'a.pdf',
//     cisco_mid:315) yield exactly their observable; a malformed one is
//     read as ordinary text.
//  2. In the rest: url (http, https, ftp), email, Message-IDs in angle
//     brackets (email_messageid), ipv6, ip, sha256/sha1/md5 (64/40/32 hex
//     digits with at least one letter and one digit), domain (labels plus a
//     known top-level domain) and file_name (a name with a common
//     attachment extension). Defanged forms are read: hxxp://, fxp://, [.],
//     (.), [@], [:]. The host of a URL and the domain of an email are not
//     emitted again, and a bare number is never a cisco_mid.
//  3. Results are in normal form, in order of first appearance, without
//     duplicates; none is an empty list, not nil.
//
// A version such as 1.2.3 or a time such as 12:30:45 is not an address; a
// dotted quad is. <local@domain> is an email, unless the domain has no known
// top-level domain or it sits in a Message-ID, In-Reply-To or References
// header, where it is a Message-ID.
//
// Inspect scans tokens without regular expressions, in linear time.
func Inspect(text string) []Observable {
	// Room for an observable every 256 bytes, as a dense paste has (an
	// incident report: one every 140), so that the list and the set of
	// those seen grow once or twice rather than some fifteen times.
	room := min(len(text)/256, 1<<16)
	x := extractor{text: text, out: make([]Observable, 0, room), seen: make(map[Observable]struct{}, room)}
	n := len(text)
	for i := 0; i < n; {
		c := text[i]
		if charFlags[c]&fTok == 0 {
			switch c {
			case '<':
				if j := x.angle(i); j > i {
					i = j
					continue
				}
			case '\n':
				x.lineStart = i + 1
			}
			i++
			continue
		}
		j, fl := i, uint16(0)
		for j < n && charFlags[text[j]]&fTok != 0 {
			fl |= charFlags[text[j]]
			j++
		}
		if fl&fColon != 0 && termStartAt(text, i) {
			if tm, ok := lexTerm(text, i); ok {
				if t, known := knownTypes[strings.ToLower(tm.name)]; known && !tm.unterminated {
					if o, err := New(t, tm.value); err == nil {
						x.add(o)
						i = tm.end
						continue
					}
				}
			}
		}
		// Only a hash can be made of letters and digits alone.
		if fl&(fDot|fAt|fColon|fBracket) != 0 || (j-i >= 32 && fl&fDigit != 0) {
			x.token(text[i:j], fl)
		}
		i = j
	}
	return x.out
}

// Character classes for the scanner.
const (
	fTok     uint16 = 1 << iota // part of a token: printable ASCII but "<>\`{}|^ and space
	fDot                        // .
	fAt                         // @
	fColon                      // :
	fBracket                    // [ ( for defanged forms
	fDigit                      // 0-9
	fLocal                      // allowed in the local part of an email we extract
	fAtom                       // letters, digits and . _ - : (what addresses, domains and hashes are made of)
	fLabel                      // letters, digits, - (and _) of a domain label
)

var charFlags = func() (t [256]uint16) {
	for c := 0x21; c < 0x7f; c++ {
		if !strings.ContainsRune("\"<>\\`{}|^", rune(c)) {
			t[c] |= fTok
		}
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= fDigit | fLocal | fAtom | fLabel
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= fLocal | fAtom | fLabel
		t[c-'a'+'A'] |= fLocal | fAtom | fLabel
	}
	t['.'] |= fDot | fLocal | fAtom
	t['@'] |= fAt
	t[':'] |= fColon | fAtom
	t['['] |= fBracket
	t['('] |= fBracket
	t['-'] |= fLocal | fAtom | fLabel
	t['_'] |= fLocal | fAtom | fLabel
	t['+'] |= fLocal
	t['\''] |= fLocal
	return t
}()

// extractor holds the state of one Inspect call.
type extractor struct {
	text string
	out  []Observable
	seen map[Observable]struct{} // by dedupKey
	tlds map[string]bool         // cache of tld lookups

	lineStart          int // start of the line being scanned
	hdrLine            int // line whose header context is cached, plus one
	hdrIsMessageIDLine bool
}

// add appends o unless an equal observable was seen: one map write,
// which grows the map only for a new one.
func (x *extractor) add(o Observable) {
	n := len(x.seen)
	if x.seen[dedupKey(o)] = struct{}{}; len(x.seen) > n {
		x.out = append(x.out, o)
	}
}

// addNew normalises v as type t and adds it when valid.
func (x *extractor) addNew(t Type, v string) {
	if o, err := New(t, v); err == nil {
		x.add(o)
	}
}

// token handles a token with something worth a closer look: a URL, then
// emails, then the atoms around them.
func (x *extractor) token(tok string, fl uint16) {
	if fl&fBracket != 0 {
		tok = refang(tok)
	}
	if fl&fColon != 0 {
		if k := strings.Index(tok, "://"); k >= 0 {
			s := k
			for s > 0 && isLetter(tok[s-1]) {
				s--
			}
			if scheme, ok := urlSchemes[strings.ToLower(tok[s:k])]; ok {
				x.plain(tok[:s])
				if u := trimURL(tok[k+3:]); validURLHost(u) {
					x.addNew(URL, scheme+"://"+u)
				}
				return
			}
			// Another scheme (ldap://, file://): read what follows.
			x.plain(tok[:k])
			tok = tok[k+3:]
		}
	}
	x.plain(tok)
}

// urlSchemes maps the schemes Inspect extracts, defanged or not, to their
// real names.
var urlSchemes = map[string]string{
	"http": "http", "https": "https", "ftp": "ftp",
	"hxxp": "http", "hxxps": "https", "hxtp": "http", "hxtps": "https", "fxp": "ftp",
	"h__p": "http", "h__ps": "https", "meow": "http", "meows": "https",
}

// refang undoes the usual defanging of dots, at signs and colons.
func refang(s string) string {
	if !strings.ContainsAny(s, "[(") {
		return s
	}
	return defang.Replace(s)
}

var defang = strings.NewReplacer(
	"[.]", ".", "(.)", ".", "[dot]", ".", "(dot)", ".", "[DOT]", ".",
	"[@]", "@", "(@)", "@", "[at]", "@", "[AT]", "@", "[:]", ":", "[://]", "://",
)

// trimURL drops the punctuation that ends a sentence rather than the URL,
// and a closing bracket whose opening one is not in the URL.
func trimURL(u string) string {
	for u != "" {
		switch c := u[len(u)-1]; c {
		case '.', ',', ';', ':', '!', '?', '\'', '*':
			u = u[:len(u)-1]
			continue
		case ')', ']':
			open := byte('(')
			if c == ']' {
				open = '['
			}
			if strings.Count(u, string(open)) < strings.Count(u, string(c)) {
				u = u[:len(u)-1]
				continue
			}
		}
		return u
	}
	return u
}

// validURLHost reports whether rest (a URL after "scheme://") starts with a
// plausible host: an IP address or DNS labels.
func validURLHost(rest string) bool {
	host := rest
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		a, err := netip.ParseAddr(host[1:end])
		return err == nil && a.Is6()
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host != "" && domainProblem(host) == "" || isIPv4(host)
}

// plain extracts the emails of s and the addresses, hashes, domains and file
// names in the atoms between them.
func (x *extractor) plain(s string) {
	for {
		at := strings.IndexByte(s, '@')
		if at < 0 {
			x.atoms(s)
			return
		}
		ls := at
		for ls > 0 && charFlags[s[ls-1]]&fLocal != 0 {
			ls--
		}
		for ls < at && (s[ls] == '.' || s[ls] == '\'') {
			ls++
		}
		de := at + 1
		for de < len(s) && charFlags[s[de]]&(fLabel|fDot) != 0 {
			de++
		}
		domain := strings.TrimRight(s[at+1:de], ".-_")
		if ls < at && at-ls <= 64 && x.isDomain(domain) {
			x.atoms(s[:ls])
			x.addNew(Email, s[ls:at]+"@"+domain)
			s = s[at+1+len(domain):]
			continue
		}
		x.atoms(s[:at])
		s = s[at+1:]
	}
}

// atoms splits s into runs of letters, digits and . _ - : and classifies each.
func (x *extractor) atoms(s string) {
	for len(s) > 0 {
		i := 0
		for i < len(s) && charFlags[s[i]]&fAtom == 0 {
			i++
		}
		j := i
		for j < len(s) && charFlags[s[j]]&fAtom != 0 {
			j++
		}
		if j > i {
			x.atom(s[i:j])
		}
		s = s[j:]
	}
}

// atom classifies a run of letters, digits and . _ - : as an address, a
// hash, a domain or a file name.
func (x *extractor) atom(a string) {
	for a != "" && (a[0] == '.' || a[0] == '-' || a[0] == '_') {
		a = a[1:]
	}
	for a != "" && (a[len(a)-1] == '.' || a[len(a)-1] == '-' || a[len(a)-1] == '_') {
		a = a[:len(a)-1]
	}
	if strings.IndexByte(a, ':') >= 0 {
		if x.ipv6(a) {
			return
		}
		for p := range strings.SplitSeq(a, ":") {
			x.atom(p)
		}
		return
	}
	if len(a) < 4 {
		return
	}
	dot := strings.LastIndexByte(a, '.')
	if dot < 0 {
		x.hash(a)
		return
	}
	if isIPv4(a) {
		x.add(Observable{Type: IP, Value: a})
		return
	}
	ext := a[dot+1:]
	if len(ext) < 2 || len(ext) > 24 {
		return
	}
	var buf [24]byte
	for i := 0; i < len(ext); i++ {
		buf[i] = lower(ext[i])
	}
	lext := buf[:len(ext)]
	if fileExts[string(lext)] && (strings.IndexByte(a, '.') == dot || !x.isTLD(lext)) {
		x.addNew(FileName, a)
		return
	}
	if x.isTLD(lext) {
		if d := strings.ToLower(a); domainProblem(d) == "" {
			x.add(Observable{Type: Domain, Value: d})
		}
	}
}

// ipv6 adds a if it is an IPv6 address with at least one decimal digit (so
// neither a C++ scope nor a time such as 12:30:45 qualifies).
func (x *extractor) ipv6(a string) bool {
	if strings.Count(a, ":") < 2 || strings.IndexAny(a, "0123456789") < 0 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; !isHex(c) && c != ':' && c != '.' {
			return false
		}
	}
	addr, err := netip.ParseAddr(a)
	if err != nil && strings.HasSuffix(a, ":") && !strings.HasSuffix(a, "::") {
		addr, err = netip.ParseAddr(a[:len(a)-1]) // "… fe80::1:" ends a sentence
	}
	if err != nil || !addr.Is6() || addr.IsUnspecified() {
		return false
	}
	x.add(Observable{Type: IPv6, Value: addr.String()})
	return true
}

// hash adds a if it is 32, 40 or 64 hex digits with a letter and a digit.
func (x *extractor) hash(a string) {
	var t Type
	switch len(a) {
	case 32:
		t = MD5
	case 40:
		t = SHA1
	case 64:
		t = SHA256
	default:
		return
	}
	digit, letter, upper := false, false, false
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'f':
			letter = true
		case c >= 'A' && c <= 'F':
			letter, upper = true, true
		default:
			return
		}
	}
	if digit && letter {
		if upper {
			a = strings.ToLower(a)
		}
		x.add(Observable{Type: t, Value: a})
	}
}

// isIPv4 reports whether s is a dotted quad without leading zeros, the
// strict form Inspect accepts in free text.
func isIPv4(s string) bool {
	parts := 0
	for s != "" {
		i := strings.IndexByte(s, '.')
		p := s
		if i >= 0 {
			p, s = s[:i], s[i+1:]
			if s == "" {
				return false
			}
		} else {
			s = ""
		}
		parts++
		if parts > 4 || p == "" || len(p) > 3 || len(p) > 1 && p[0] == '0' {
			return false
		}
		n := 0
		for k := 0; k < len(p); k++ {
			if p[k] < '0' || p[k] > '9' {
				return false
			}
			n = n*10 + int(p[k]-'0')
		}
		if n > 255 {
			return false
		}
	}
	return parts == 4
}

// isDomain reports whether s is a syntactically valid domain whose last
// label is a known top-level domain.
func (x *extractor) isDomain(s string) bool {
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 || len(s)-dot-1 > 24 {
		return false
	}
	var buf [24]byte
	ext := s[dot+1:]
	for i := 0; i < len(ext); i++ {
		buf[i] = lower(ext[i])
	}
	return x.isTLD(buf[:len(ext)]) && domainProblem(strings.ToLower(s)) == ""
}

// isTLD reports whether the lowercase label is an ICANN top-level domain.
func (x *extractor) isTLD(label []byte) bool {
	if ok, hit := x.tlds[string(label)]; hit {
		return ok
	}
	if x.tlds == nil {
		x.tlds = make(map[string]bool)
	}
	l := string(label)
	ok := isTLD(l)
	x.tlds[l] = ok
	return ok
}

// isTLD reports whether label is an ICANN top-level domain of two or more
// letters (or an IDN A-label), from the public suffix list.
func isTLD(label string) bool {
	if len(label) < 2 || !allLetters(label) && !strings.HasPrefix(label, "xn--") {
		return false
	}
	suffix, icann := publicsuffix.PublicSuffix(label)
	return icann && suffix == label
}

// angle handles a '<' at text[i]: <x@y> is a Message-ID or an email. It
// returns where scanning resumes, or i when this is no such thing.
func (x *extractor) angle(i int) int {
	const maxID = 998 // RFC 5322 line length
	at, end := -1, -1
	for j := i + 1; j < len(x.text) && j-i <= maxID; j++ {
		c := x.text[j]
		if c == '>' {
			end = j
			break
		}
		if c <= ' ' || c >= 0x7f || c == '<' || c == ':' || c == '"' {
			return i
		}
		if c == '@' {
			at = j
		}
	}
	if end < 0 || at < 0 || at == i+1 || at == end-1 {
		return i
	}
	inner := x.text[i+1 : end]
	if !x.inMessageIDHeader() {
		if e, err := New(Email, inner); err == nil && x.isDomain(e.Value[strings.LastIndexByte(e.Value, '@')+1:]) {
			x.add(e)
			return end + 1
		}
	}
	x.addNew(EmailMessageID, inner)
	return end + 1
}

// inMessageIDHeader reports whether the current line is part of a
// Message-ID, In-Reply-To or References header (following folded lines).
func (x *extractor) inMessageIDHeader() bool {
	if x.hdrLine == x.lineStart+1 {
		return x.hdrIsMessageIDLine
	}
	ls := x.lineStart
	for k := 0; k < 100 && ls > 0 && (x.text[ls] == ' ' || x.text[ls] == '\t'); k++ {
		ls = strings.LastIndexByte(x.text[:ls-1], '\n') + 1
	}
	line := x.text[ls:]
	ok := false
	for _, h := range messageIDHeaders {
		if len(line) >= len(h) && strings.EqualFold(line[:len(h)], h) {
			ok = true
			break
		}
	}
	x.hdrLine, x.hdrIsMessageIDLine = x.lineStart+1, ok
	return ok
}

var messageIDHeaders = []string{"message-id:", "in-reply-to:", "references:", "resent-message-id:", "original-message-id:"}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// fileExts are the extensions that make name.ext a file_name: documents,
// archives, executables and scripts seen as attachments. An extension that
// is also a top-level domain (zip, mov) makes a file name only in name.ext.
var fileExts = func() map[string]bool {
	m := map[string]bool{}
	for e := range strings.FieldsSeq(`
		pdf doc docx docm dot dotx dotm xls xlsx xlsm xlsb xlt xltx xltm ppt pptx pptm pps ppsx odt ods odp rtf
		txt csv tsv html htm xhtml mht mhtml xml json eml msg ics vcf one
		zip rar 7z gz tgz bz2 xz tar cab arj lzh ace iso img vhd vhdx
		exe dll scr cpl msi msp bat cmd ps1 psm1 vbs vbe js jse wsf wsh hta lnk jar apk dmg pkg reg chm inf url
		svg png jpg jpeg gif bmp tif tiff webp heic mp3 mp4 wav mov avi wmv`) {
		m[e] = true
	}
	return m
}()
