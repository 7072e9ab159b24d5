package ui

import (
	"html"
	"html/template"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The markdown of tiles (relay-api.md §4.5) comes from third-party modules:
// markdown renders the small subset such tiles use and escapes everything
// else. Blocks: headings (#), bullet and numbered lists, fenced code,
// horizontal rules and paragraphs. Inline: **strong**, *emphasis* and
// _emphasis_, `code` and [links](https://…). A link to anything but http,
// https or mailto is shown as its text. No raw HTML passes through.

// maxMarkdown bounds the text of one tile.
const maxMarkdown = 64 << 10

var (
	headingRE  = regexp.MustCompile(`^(#{1,6})\s+(.*)$`)
	bulletRE   = regexp.MustCompile(`^\s*[-*+]\s+(.*)$`)
	numberedRE = regexp.MustCompile(`^\s*\d{1,9}[.)]\s+(.*)$`)
	ruleRE     = regexp.MustCompile(`^\s*([-*_])(\s*[-*_]){2,}\s*$`)
)

// markdown renders lines (each may hold several) as HTML.
func markdown(lines []string) template.HTML {
	text := strings.Join(lines, "\n")
	if len(text) > maxMarkdown {
		text = text[:maxMarkdown]
		for !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
	}
	var b strings.Builder
	var para []string
	list := "" // "ul" or "ol" while a list is open
	flush := func() {
		if len(para) > 0 {
			b.WriteString("<p>")
			b.WriteString(inline(strings.Join(para, " "), 0))
			b.WriteString("</p>\n")
			para = nil
		}
		if list != "" {
			b.WriteString("</" + list + ">\n")
			list = ""
		}
	}
	item := func(kind, content string) {
		if len(para) > 0 || list != kind {
			flush()
			b.WriteString("<" + kind + ">\n")
			list = kind
		}
		b.WriteString("<li>" + inline(content, 0) + "</li>\n")
	}
	all := strings.Split(text, "\n")
	for i := 0; i < len(all); i++ {
		line := strings.TrimRight(all[i], " \t\r")
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			flush()
			var code []string
			for i++; i < len(all) && !strings.HasPrefix(strings.TrimSpace(all[i]), "```"); i++ {
				code = append(code, strings.TrimRight(all[i], "\r"))
			}
			b.WriteString("<pre><code>" + html.EscapeString(strings.Join(code, "\n")) + "</code></pre>\n")
		case ruleRE.MatchString(line):
			flush()
			b.WriteString("<hr>\n")
		case headingRE.MatchString(line):
			flush()
			m := headingRE.FindStringSubmatch(line)
			// The page has its own h1 and h2: tile headings start at h3.
			level := string(rune('0' + min(len(m[1])+2, 6)))
			b.WriteString("<h" + level + ">" + inline(strings.TrimRight(m[2], " #"), 0) + "</h" + level + ">\n")
		case bulletRE.MatchString(line):
			item("ul", bulletRE.FindStringSubmatch(line)[1])
		case numberedRE.MatchString(line):
			item("ol", numberedRE.FindStringSubmatch(line)[1])
		default:
			if list != "" {
				flush()
			}
			para = append(para, strings.TrimSpace(line))
		}
	}
	flush()
	return template.HTML(b.String()) // every piece of text is escaped by inline or html.EscapeString
}

// maxInlineDepth bounds the nesting of emphasis and links.
const maxInlineDepth = 4

// inline renders the inline markup of s, escaping all text.
func inline(s string, depth int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && strings.IndexByte("\\`*_[]()#+-.!", s[i+1]) >= 0:
			b.WriteString(html.EscapeString(s[i+1 : i+2]))
			i += 2
			continue
		case c == '`':
			if j := strings.IndexByte(s[i+1:], '`'); j >= 0 {
				b.WriteString("<code>" + html.EscapeString(s[i+1:i+1+j]) + "</code>")
				i += j + 2
				continue
			}
		case depth < maxInlineDepth && strings.HasPrefix(s[i:], "**"):
			if j := strings.Index(s[i+2:], "**"); j > 0 {
				b.WriteString("<strong>" + inline(s[i+2:i+2+j], depth+1) + "</strong>")
				i += j + 4
				continue
			}
		case depth < maxInlineDepth && (c == '*' || c == '_') && boundaryBefore(s, i):
			if j := closing(s, i+1, c); j > i+1 {
				b.WriteString("<em>" + inline(s[i+1:j], depth+1) + "</em>")
				i = j + 1
				continue
			}
		case depth < maxInlineDepth && c == '[':
			if label, target, n, ok := link(s[i:]); ok {
				inner := inline(label, depth+1)
				if safeLink(target) {
					b.WriteString(`<a href="` + html.EscapeString(target) + `" rel="noopener noreferrer nofollow" target="_blank">` + inner + "</a>")
				} else {
					b.WriteString(inner)
				}
				i += n
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		b.WriteString(html.EscapeString(s[i : i+size]))
		i += size
	}
	return b.String()
}

// boundaryBefore reports whether the emphasis mark at i opens: it starts
// the text or follows something that is not a letter or digit, and a
// non-space follows it.
func boundaryBefore(s string, i int) bool {
	if i+1 >= len(s) || s[i+1] == ' ' || s[i+1] == s[i] {
		return false
	}
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

// closing finds the emphasis mark c that closes one opened before from:
// after a non-space, and not followed by a letter or digit.
func closing(s string, from int, c byte) int {
	for j := from; j < len(s); j++ {
		if s[j] != c || s[j-1] == ' ' {
			continue
		}
		if j+1 < len(s) {
			r, _ := utf8.DecodeRuneInString(s[j+1:])
			if unicode.IsLetter(r) || unicode.IsDigit(r) || r == rune(c) {
				continue
			}
		}
		return j
	}
	return -1
}

// link reads [label](target) at the start of s and returns its length.
func link(s string) (label, target string, n int, ok bool) {
	end := strings.Index(s, "](")
	if end < 1 || strings.IndexByte(s[1:end], '[') >= 0 {
		return "", "", 0, false
	}
	// The target ends at the ")" that balances the "(" (URLs may hold
	// parentheses).
	close, depth := -1, 0
	for j := end + 2; j < len(s) && close < 0; j++ {
		switch s[j] {
		case '(':
			depth++
		case ')':
			if depth == 0 {
				close = j - (end + 2)
			}
			depth--
		}
	}
	if close < 0 {
		return "", "", 0, false
	}
	target = strings.TrimSpace(s[end+2 : end+2+close])
	if strings.ContainsAny(target, " \t") {
		return "", "", 0, false
	}
	return s[1:end], target, end + 3 + close, true
}

// safeLink allows http, https and mailto links.
func safeLink(target string) bool {
	u, err := url.Parse(target)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.Host != ""
	case "mailto":
		return u.Opaque != ""
	}
	return false
}
