package ui

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
)

// TestNavigation checks the console's top bar as the CTR portal has it: a
// link per page and a Settings gear, a <details> that opens without
// JavaScript, with the pages of the Settings sidebar; and which of them each
// page marks as current.
func TestNavigation(t *testing.T) {
	srv := newServer(t, newFakes().config())
	c := signIn(t, srv, "admin")

	wantLinks := []string{"Dashboard /dashboard", "Investigate /investigate", "Snapshots /snapshots", "Incidents /incidents",
		"Intelligence /intelligence", "Modules /settings/modules"}
	wantGear := []string{"Your Account /settings/account", "Devices /settings/devices", "API Clients /settings/api-clients",
		"Modules /settings/modules", "Users /settings/users"}

	tests := []struct {
		path    string
		current []string // the links marked aria-current, in the top bar
		gear    bool     // whether the gear is marked as the active section
		crumb   string
	}{
		{"/investigate", []string{"Investigate /investigate"}, false, "Investigate"},
		{"/snapshots", []string{"Snapshots /snapshots"}, false, "Snapshots"},
		{"/incidents", []string{"Incidents /incidents"}, false, "Incidents"},
		{"/intelligence", []string{"Intelligence /intelligence"}, false, "Intelligence"},
		{"/settings/modules", []string{"Modules /settings/modules", "Modules /settings/modules"}, true, "Settings"},
		{"/settings/modules/new/esa", []string{"Modules /settings/modules", "Modules /settings/modules"}, true, "Settings"},
		{"/settings/account", []string{"Your Account /settings/account"}, true, "Settings"},
		{"/settings/devices", []string{"Devices /settings/devices"}, true, "Settings"},
		{"/settings/api-clients", []string{"API Clients /settings/api-clients"}, true, "Settings"},
		{"/settings/users", []string{"Users /settings/users"}, true, "Settings"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := c.get(t, tt.path)
			if res.status != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", tt.path, res.status)
			}
			doc := parse(t, res.body)
			navs := find(doc, func(n *html.Node) bool { id, _ := attr(n, "id"); return n.Data == "nav" && id == "nav" })
			if len(navs) != 1 {
				t.Fatalf("GET %s has %d main navigations, want 1", tt.path, len(navs))
			}
			nav := navs[0]
			link := func(a *html.Node) string { href, _ := attr(a, "href"); return text(a) + " " + href }

			var links []string
			for _, a := range find(nav, func(n *html.Node) bool { return n.Data == "a" && hasClass("nav-title")(n) }) {
				links = append(links, link(a))
			}
			if diff := cmp.Diff(wantLinks, links); diff != "" {
				t.Errorf("top bar links (-want +got):\n%s", diff)
			}
			if n := len(find(nav, func(n *html.Node) bool { return n.Data == "button" && hasClass("nav-title")(n) })); n != 0 {
				t.Errorf("top bar has %d drop-downs, want none: every page is one click away", n)
			}

			gears := find(nav, func(n *html.Node) bool { l, _ := attr(n, "aria-label"); return n.Data == "summary" && l == "Settings" })
			if len(gears) != 1 || gears[0].Parent.Data != "details" || len(find(gears[0], byTag("svg"))) != 1 {
				t.Fatalf("top bar has %d Settings gears, want one <summary aria-label=Settings> with an SVG icon in a <details>", len(gears))
			}
			details := gears[0].Parent
			var items []string
			for _, a := range find(details, byTag("a")) {
				items = append(items, link(a))
			}
			if diff := cmp.Diff(wantGear, items); diff != "" {
				t.Errorf("Settings gear items (-want +got):\n%s", diff)
			}
			if _, open := attr(details, "open"); open {
				t.Errorf("the Settings gear is open when the page loads")
			}
			if got := hasClass("active")(details); got != tt.gear {
				t.Errorf("Settings gear active = %v, want %v", got, tt.gear)
			}

			var current []string
			for _, a := range find(nav, func(n *html.Node) bool { v, _ := attr(n, "aria-current"); return n.Data == "a" && v == "page" }) {
				current = append(current, link(a))
			}
			if diff := cmp.Diff(tt.current, current); diff != "" {
				t.Errorf("links marked current (-want +got):\n%s", diff)
			}
			if got := texts(find(doc, hasClass("crumb"))); len(got) != 1 || !strings.EqualFold(got[0], tt.crumb) {
				t.Errorf("breadcrumb = %q, want %q", got, tt.crumb)
			}
		})
	}
}
