package web

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
)

// iconNav has the three forms of section: links, a drop-down and an icon
// menu, with one path ("/settings/modules") in a link and in the menu.
var iconNav = Nav{
	{Title: "Investigate", Path: "/investigate"},
	{Title: "Modules", Path: "/settings/modules"},
	{Title: "Monitor", Items: []Item{{"Message Tracking", "/monitor/tracking"}}},
	{Title: "Settings", Icon: IconGear, Items: []Item{{"Devices", "/settings/devices"}, {"Modules", "/settings/modules"}}},
}

func itemPaths(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Path
	}
	return out
}

func TestMenu(t *testing.T) {
	tests := []struct {
		path    string
		current []string // "section: label" of every link marked current
		active  []string // titles of the sections marked active
		crumb   string
	}{
		{"/investigate", []string{"Investigate: Investigate"}, []string{"Investigate"}, "Investigate"},
		{"/investigate/saved", []string{"Investigate: Investigate"}, []string{"Investigate"}, "Investigate"},
		{"/investigated", nil, nil, ""},
		{"/monitor/tracking", []string{"Monitor: Message Tracking"}, []string{"Monitor"}, "Monitor"},
		{"/settings/devices", []string{"Settings: Devices"}, []string{"Settings"}, "Settings"},
		{"/settings/modules", []string{"Modules: Modules", "Settings: Modules"}, []string{"Modules", "Settings"}, "Settings"},
		{"/settings/modules/new/esa", []string{"Modules: Modules", "Settings: Modules"}, []string{"Modules", "Settings"}, "Settings"},
		{"/settings", nil, nil, ""},
		{"/", nil, nil, ""},
	}
	for _, tt := range tests {
		m, crumb := menu(iconNav, tt.path)
		var current, active []string
		for _, s := range m {
			if s.Current {
				current = append(current, s.Title+": "+s.Title)
			}
			for _, it := range s.Items {
				if it.Current {
					current = append(current, s.Title+": "+it.Label)
				}
			}
			if s.Active {
				active = append(active, s.Title)
			}
		}
		if diff := cmp.Diff(tt.current, current); diff != "" {
			t.Errorf("menu(%q) current links (-want +got):\n%s", tt.path, diff)
		}
		if diff := cmp.Diff(tt.active, active); diff != "" {
			t.Errorf("menu(%q) active sections (-want +got):\n%s", tt.path, diff)
		}
		if crumb != tt.crumb {
			t.Errorf("menu(%q) breadcrumb = %q, want %q", tt.path, crumb, tt.crumb)
		}
	}
}

func TestNavCheck(t *testing.T) {
	s, err := NewSessions("sl", testKey)
	if err != nil {
		t.Fatal(err)
	}
	pages := fstest.MapFS{"a.html": {Data: []byte(`{{define "content"}}x{{end}}`)}}
	tests := []struct {
		name string
		nav  Nav
		want string // "" for no error
	}{
		{"links, drop-down and icon menu", iconNav, ""},
		{"no title", Nav{{Path: "/a"}}, "without a title"},
		{"link with items", Nav{{Title: "A", Path: "/a", Items: []Item{{"B", "/b"}}}}, `"A" is a link and a menu`},
		{"link with an icon", Nav{{Title: "A", Path: "/a", Icon: IconGear}}, `"A" is a link and a menu`},
		{"empty", Nav{{Title: "A"}}, `"A" has neither a path nor items`},
		{"icon without items", Nav{{Title: "A", Icon: IconGear}}, `"A" has neither a path nor items`},
		{"unknown icon", Nav{{Title: "A", Icon: "cog", Items: []Item{{"B", "/b"}}}}, `unknown icon "cog"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRenderer(Config{Sessions: s, Nav: tt.nav, Pages: pages})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("NewRenderer() error = %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("NewRenderer() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestRenderLinksAndIconMenu checks the HTML of links and of an icon menu:
// the gear is a <details> (it opens without JavaScript) named by its title,
// with an SVG hidden from assistive technology, beside the signed-in user.
func TestRenderLinksAndIconMenu(t *testing.T) {
	sh := newShellNav(t, iconNav)
	c := sh.client(t)
	sh.signIn(t, c)

	tests := []struct {
		path        string
		current     []string
		gearActive  bool
		activeLinks []string
	}{
		{"/investigate", []string{"Investigate /investigate"}, false, []string{"Investigate"}},
		{"/settings/devices", []string{"Devices /settings/devices"}, true, nil},
		{"/settings/modules", []string{"Modules /settings/modules", "Modules /settings/modules"}, true, []string{"Modules"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			page := sh.get(t, c, tt.path)
			if page.status != 200 {
				t.Fatalf("GET %s = %d, want 200", tt.path, page.status)
			}
			var links []string
			for _, a := range find(page.doc, func(n *html.Node) bool { return n.Data == "a" && hasClass(n, "nav-title") }) {
				links = append(links, text(a)+" "+attr(a, "href"))
			}
			if diff := cmp.Diff([]string{"Investigate /investigate", "Modules /settings/modules"}, links); diff != "" {
				t.Errorf("link sections (-want +got):\n%s", diff)
			}
			var buttons []string
			for _, b := range find(page.doc, func(n *html.Node) bool { return n.Data == "button" && hasClass(n, "nav-title") }) {
				buttons = append(buttons, text(b))
			}
			if diff := cmp.Diff([]string{"Monitor"}, buttons); diff != "" {
				t.Errorf("drop-down sections (-want +got):\n%s", diff)
			}
			var activeLinks []string
			for _, li := range find(page.doc, func(n *html.Node) bool { return hasClass(n, "nav-link") && hasClass(n, "active") }) {
				activeLinks = append(activeLinks, text(li))
			}
			if diff := cmp.Diff(tt.activeLinks, activeLinks); diff != "" {
				t.Errorf("active links (-want +got):\n%s", diff)
			}

			users := find(page.doc, func(n *html.Node) bool { return hasClass(n, "user") })
			if len(users) != 1 {
				t.Fatalf("page has %d user areas, want 1", len(users))
			}
			var kids []string
			for k := range users[0].ChildNodes() {
				if k.Type == html.ElementNode {
					kids = append(kids, k.Data+"."+attr(k, "class"))
				}
			}
			wantKids := []string{"details.nav-icon", "span.user-name", "form."}
			if tt.gearActive {
				wantKids[0] = "details.nav-icon active"
			}
			if diff := cmp.Diff(wantKids, kids); diff != "" {
				t.Fatalf("user area (-want +got):\n%s", diff)
			}
			gear := users[0].FirstChild
			for gear.Type != html.ElementNode {
				gear = gear.NextSibling
			}
			summary := find(gear, func(n *html.Node) bool { return n.Data == "summary" })
			if len(summary) != 1 || attr(summary[0], "aria-label") != "Settings" || attr(summary[0], "title") != "Settings" {
				t.Fatalf("gear summary = %v, want one named Settings", summary)
			}
			svg := find(summary[0], func(n *html.Node) bool { return n.Data == "svg" })
			if len(svg) != 1 || attr(svg[0], "aria-hidden") != "true" || attr(svg[0], "focusable") != "false" {
				t.Errorf("gear icon = %v, want one SVG hidden from assistive technology", svg)
			}
			var items []string
			for _, a := range find(gear, func(n *html.Node) bool { return n.Data == "a" }) {
				items = append(items, text(a)+" "+attr(a, "href"))
			}
			if diff := cmp.Diff([]string{"Devices /settings/devices", "Modules /settings/modules"}, items); diff != "" {
				t.Errorf("gear items (-want +got):\n%s", diff)
			}

			var current []string
			for _, a := range find(page.doc, func(n *html.Node) bool { return n.Data == "a" && attr(n, "aria-current") == "page" }) {
				current = append(current, text(a)+" "+attr(a, "href"))
			}
			if diff := cmp.Diff(tt.current, current); diff != "" {
				t.Errorf("links marked current (-want +got):\n%s", diff)
			}
		})
	}
}
