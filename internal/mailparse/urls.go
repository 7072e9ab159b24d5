package mailparse

import (
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/html"
)

// bareURL finds URLs written out in text. It stops at white space and at the
// characters that cannot appear unescaped in a URL and commonly delimit one.
var bareURL = regexp.MustCompile(`(?i)\b(?:https?|ftp)://[^\s<>"'\x60{}|\\^]+`)

// textURLs returns the URLs written in plain text, in order. Every URL holds
// "://", so the regular expression only runs on the few bytes around each
// one (from the longest scheme before it, plus one byte for \b, to the next
// white space) instead of on the whole text: a body without URLs costs one
// fast substring search.
func textURLs(s string) []string {
	var out []string
	for pos := 0; ; {
		i := strings.Index(s[pos:], "://")
		if i < 0 {
			return out
		}
		i += pos
		from := max(pos, i-len("https")-1)
		end := i + 3
		if n := strings.IndexAny(s[end:], " \t\n\f\r"); n >= 0 {
			end += n
		} else {
			end = len(s)
		}
		loc := bareURL.FindStringIndex(s[from:end])
		if loc == nil {
			pos = i + 3
			continue
		}
		if u := trimURL(s[from+loc[0] : from+loc[1]]); u != "" {
			out = append(out, u)
		}
		pos = from + loc[1]
	}
}

// trimURL removes the punctuation that ends a sentence rather than the URL:
// trailing dots, commas and the like, and a closing bracket without its
// opening one.
func trimURL(u string) string {
	pairs := map[byte]byte{')': '(', ']': '[', '>': '<'}
	closers := map[byte]int{}
	opens := map[byte]int{}
	for i := 0; i < len(u); i++ {
		switch c := u[i]; c {
		case ')', ']', '>':
			closers[c]++
		case '(', '[', '<':
			opens[c]++
		}
	}
	for u != "" {
		c := u[len(u)-1]
		switch c {
		case '.', ',', ';', ':', '!', '?', '\'', '"', '*':
			u = u[:len(u)-1]
			continue
		case ')', ']', '>':
			if opens[pairs[c]] < closers[c] {
				closers[c]--
				u = u[:len(u)-1]
				continue
			}
		}
		break
	}
	return u
}

// urlAttrs are the attributes whose values are links.
var urlAttrs = map[string]bool{"href": true, "src": true, "action": true, "background": true, "cite": true, "formaction": true, "poster": true}

// scanHTML returns the visible text of an HTML document and the URLs in its
// link attributes and its text, in order.
func scanHTML(s string) (text string, urls []string) {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip := 0 // inside <script> or <style>
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return b.String(), urls
		case html.TextToken:
			if skip > 0 {
				continue
			}
			t := string(z.Text())
			urls = append(urls, textURLs(t)...)
			b.WriteString(t)
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if tag == "script" || tag == "style" {
				switch tt {
				case html.StartTagToken:
					skip++
				case html.EndTagToken:
					if skip > 0 {
						skip--
					}
				}
			}
			if blockTags[tag] {
				b.WriteByte('\n')
			}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if urlAttrs[string(k)] {
					if u := strings.TrimSpace(string(v)); isWebURL(u) {
						urls = append(urls, u)
					}
				}
			}
		}
	}
}

// blockTags break lines in the text of an HTML part.
var blockTags = map[string]bool{"br": true, "p": true, "div": true, "tr": true, "li": true, "h1": true, "h2": true, "h3": true, "table": true, "blockquote": true}

// isWebURL reports whether u is an absolute http, https or ftp URL.
func isWebURL(u string) bool {
	scheme, _, ok := strings.Cut(u, "://")
	if !ok {
		return false
	}
	switch strings.ToLower(scheme) {
	case "http", "https", "ftp":
		return true
	}
	return false
}

// urlHost returns the lowercase host name of u without a trailing dot, or ""
// when u has none.
func urlHost(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(pu.Hostname()), ".")
}
