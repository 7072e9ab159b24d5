// Package web is the user-interface shell every Sightline role shares: one
// embedded layout, stylesheet and script, signed cookie sessions, CSRF
// protection, flash messages and the sign-in page.
//
// A role builds one Renderer with its navigation and its page templates,
// wraps its UI routes in Renderer.CSRF and Sessions.RequireUser, and calls
// Render from its handlers. Machine APIs (such as /esa/api/v2.0/) must be
// mounted outside the CSRF middleware: they carry no form token.
package web

import "strings"

// Item is one entry of a navigation section: a label and the path it opens.
type Item struct {
	Label string
	Path  string
}

// Section is one drop-down of the top navigation, e.g. "Monitor".
type Section struct {
	Title string
	Items []Item
}

// Nav is a role's whole navigation, in display order.
type Nav []Section

// active returns the section and item index whose Path is the longest prefix
// of path (at a "/" boundary), or -1, -1 when none matches.
func (n Nav) active(path string) (section, item int) {
	section, item = -1, -1
	best := 0
	for i, s := range n {
		for j, it := range s.Items {
			p := it.Path
			if p == "" || len(p) <= best {
				continue
			}
			if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
				section, item, best = i, j, len(p)
			}
		}
	}
	return section, item
}

// User is a signed-in person as the shell shows them.
type User struct {
	Name string // login name, e.g. "admin"
	Role string // e.g. "Administrator"; "" shows the name alone
}

// Flash kinds.
const (
	FlashSuccess = "success"
	FlashError   = "error"
)

// Flash is a one-time banner, shown once on the next page rendered.
type Flash struct {
	Kind    string // FlashSuccess or FlashError
	Message string // shown after "Success — " or "Error — "
}

// PageData is what Render passes to the layout and the page template.
//
// The page's own template reads its data from .Data; it reaches the form
// token as .CSRF (or $.CSRF inside a range), and can emit the hidden field
// with {{template "csrf" $}}.
type PageData struct {
	Title string // page heading and document title
	// Nav is the navigation; nil means the Renderer's.
	Nav Nav
	// User is the signed-in user; nil means the request's session user, if any.
	User *User
	// Flash banners; nil means those carried over by the flash cookie.
	Flash []Flash
	// CSRF is the form token; the Renderer always sets it.
	CSRF string
	// Pending shows the uncommitted-changes banner; the Renderer's Pending
	// hook can also turn it on.
	Pending bool
	// Data is the page's own data.
	Data any
}
