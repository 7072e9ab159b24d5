// Package web is the user-interface shell every Sightline role shares: one
// embedded layout, stylesheet and script, signed cookie sessions, CSRF
// protection, flash messages and the sign-in page.
//
// A role builds one Renderer with its navigation and its page templates,
// wraps its UI routes in Renderer.CSRF and Sessions.RequireUser, and calls
// Render from its handlers. Machine APIs (such as /esa/api/v2.0/) must be
// mounted outside the CSRF middleware: they carry no form token.
package web

import (
	"errors"
	"fmt"
	"strings"
)

// Item is one entry of a navigation section: a label and the path it opens.
type Item struct {
	Label string
	Path  string
}

// IconGear is the Section.Icon of a settings menu: a gear.
const IconGear = "gear"

// icons are the names Section.Icon may take.
var icons = map[string]bool{IconGear: true}

// Section is one entry of the top navigation. It takes one of three forms:
//
//   - a drop-down titled Title that lists Items, e.g. "Monitor";
//   - a plain link to Path when Path is set (Items must then be empty),
//     e.g. the console's "Investigate";
//   - an icon button when Icon is set (IconGear), shown beside the signed-in
//     user with Title as its accessible name, that opens Items, e.g. the
//     console's Settings gear.
type Section struct {
	Title string
	Path  string
	Icon  string
	Items []Item
}

// Nav is a role's whole navigation, in display order.
type Nav []Section

// check reports a section that mixes forms or names an unknown icon.
func (n Nav) check() error {
	for _, s := range n {
		switch {
		case s.Title == "":
			return errors.New("web: a navigation section without a title")
		case s.Path != "" && (len(s.Items) > 0 || s.Icon != ""):
			return fmt.Errorf("web: navigation section %q is a link and a menu", s.Title)
		case s.Path == "" && len(s.Items) == 0:
			return fmt.Errorf("web: navigation section %q has neither a path nor items", s.Title)
		case s.Icon != "" && !icons[s.Icon]:
			return fmt.Errorf("web: navigation section %q has an unknown icon %q", s.Title, s.Icon)
		}
	}
	return nil
}

// current returns the path, among the sections' and items' paths, that
// names the page at path: the longest that equals path or is a prefix of it
// at a "/" boundary. It returns "" when none does.
func (n Nav) current(path string) string {
	best := ""
	match := func(p string) {
		if p != "" && len(p) > len(best) && (path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/")) {
			best = p
		}
	}
	for _, s := range n {
		match(s.Path)
		for _, it := range s.Items {
			match(it.Path)
		}
	}
	return best
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
