package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/sightline/sightline/internal/console/module"
)

func TestMarkdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"paragraph", []string{"one", "two"}, "<p>one two</p>\n"},
		{"escapes", []string{`<b onclick="x">&</b>`}, "<p>&lt;b onclick=&#34;x&#34;&gt;&amp;&lt;/b&gt;</p>\n"},
		{"headings", []string{"# Title", "### Small ##"}, "<h3>Title</h3>\n<h5>Small</h5>\n"},
		{"bullets", []string{"- a", "* b", "after"}, "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n<p>after</p>\n"},
		{"numbered", []string{"1. a", "2) b"}, "<ol>\n<li>a</li>\n<li>b</li>\n</ol>\n"},
		{"list after a paragraph", []string{"intro", "- a"}, "<p>intro</p>\n<ul>\n<li>a</li>\n</ul>\n"},
		{"rule", []string{"a", "---", "b"}, "<p>a</p>\n<hr>\n<p>b</p>\n"},
		{"fenced code", []string{"```", "<x> **not bold**", "```"}, "<pre><code>&lt;x&gt; **not bold**</code></pre>\n"},
		{"strong and emphasis", []string{"**bold** and *em* and _em_ but snake_case_name"},
			"<p><strong>bold</strong> and <em>em</em> and <em>em</em> but snake_case_name</p>\n"},
		{"code", []string{"run `a < b`"}, "<p>run <code>a &lt; b</code></p>\n"},
		{"link", []string{"[Talos](https://talosintelligence.com/a?b=1&c=2)"},
			`<p><a href="https://talosintelligence.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow" target="_blank">Talos</a></p>` + "\n"},
		{"link with parentheses", []string{"[w](https://en.wikipedia.org/wiki/A_(b))"},
			`<p><a href="https://en.wikipedia.org/wiki/A_(b)" rel="noopener noreferrer nofollow" target="_blank">w</a></p>` + "\n"},
		{"unsafe link", []string{"[x](javascript:alert(1)) [y](data:text/html,hi)"}, "<p>x y</p>\n"},
		{"mailto", []string{"[m](mailto:soc@example.com)"}, `<p><a href="mailto:soc@example.com" rel="noopener noreferrer nofollow" target="_blank">m</a></p>` + "\n"},
		{"backslash escape", []string{`\*not em\*`}, "<p>*not em*</p>\n"},
		{"unclosed marks", []string{"**open [link( `tick"}, "<p>**open [link( `tick</p>\n"},
		{"lines holding several", []string{"a\n\nb"}, "<p>a</p>\n<p>b</p>\n"},
	}
	for _, tt := range tests {
		if got := string(markdown(tt.lines)); got != tt.want {
			t.Errorf("markdown(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// FuzzMarkdown renders untrusted markdown: whatever the input, the output
// holds only the elements and attributes the renderer writes, and links
// only to http, https or mailto.
func FuzzMarkdown(f *testing.F) {
	for _, s := range []string{"# h\n- a\n**b** *c* `d` [e](https://x.example)", "<script>alert(1)</script>", "[a](javascript:x)",
		"***x***", "[[a](b)](c)", "```\n<x>", "_a_b_", "\\[x](y)", "[x](https://a.example/\"onmouseover=\"x)"} {
		f.Add(s)
	}
	allowed := map[string]bool{"p": true, "h3": true, "h4": true, "h5": true, "h6": true, "ul": true, "ol": true, "li": true,
		"pre": true, "code": true, "hr": true, "strong": true, "em": true, "a": true}
	f.Fuzz(func(t *testing.T, s string) {
		out := string(markdown([]string{s}))
		z := html.NewTokenizer(strings.NewReader(out))
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				return
			}
			if tt != html.StartTagToken && tt != html.EndTagToken && tt != html.SelfClosingTagToken {
				continue
			}
			tok := z.Token()
			if !allowed[tok.Data] {
				t.Fatalf("markdown(%q) = %q: element <%s>", s, out, tok.Data)
			}
			for _, a := range tok.Attr {
				switch {
				case tok.Data == "a" && a.Key == "href":
					if !safeLink(a.Val) {
						t.Fatalf("markdown(%q) = %q: link to %q", s, out, a.Val)
					}
				case tok.Data == "a" && (a.Key == "rel" || a.Key == "target"):
				default:
					t.Fatalf("markdown(%q) = %q: attribute %s on <%s>", s, out, a.Key, tok.Data)
				}
			}
		}
	})
}

func TestNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f    float64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-12345, "-12,345"}, {4.5, "4.5"}, {1234.567, "1,234.57"}, {0.126, "0.13"}}
	for _, tt := range tests {
		if got := number(tt.f); got != tt.want {
			t.Errorf("number(%v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func tileResult(typ, data string) TileResult {
	return TileResult{Tile: module.Tile{ID: "t", Type: typ, Title: "T"}, Period: "last_24_hours", Data: json.RawMessage(data)}
}

func TestTileViews(t *testing.T) {
	t.Parallel()
	v := newTileView("m1", tileResult("metric_group", `{"data": [{"id": "a", "label": "Total", "value": 1500, "value-unit": "integer"},
		{"id": "b", "value": "n/a"}, {"id": "c", "label": "Share", "value": 12.5, "value-unit": "percentage", "link_uri": "javascript:x"},
		{"id": "d", "label": "Time", "value": 3, "value-unit": "seconds", "link_uri": "https://x.example/d"}]}`), "last_24_hours")
	wantMetrics := []metric{{Label: "Total", Value: "1,500"}, {Label: "b", Value: "n/a"}, {Label: "Share", Value: "12.5", Unit: "%"},
		{Label: "Time", Value: "3", Unit: "seconds", Link: "https://x.example/d"}}
	if diff := cmp.Diff(wantMetrics, v.Metrics); diff != "" || v.Problem != "" {
		t.Errorf("metric_group (-want +got):\n%s%s", diff, v.Problem)
	}
	if v.Href != "/dashboard/tile?module=m1&period=last_24_hours&tile=t" || v.Valid != "" || v.Asked != "" {
		t.Errorf("tile view = %+v", v)
	}

	v = newTileView("m1", tileResult("horizontal_bar_chart", `{"keys": [{"key": "ok", "label": "Delivered"}, {"key": "bad", "label": "Dropped"}],
		"data": [{"key": "a", "label": "Monday", "value": 4, "values": [{"key": "ok", "value": 3}, {"key": "bad", "value": 1}]},
		{"key": "b", "label": "Tuesday", "value": 2, "values": [{"key": "ok", "value": 2}]}]}`), "last_24_hours")
	c := v.Chart
	if c == nil || v.Problem != "" {
		t.Fatalf("horizontal chart: %s", v.Problem)
	}
	// Monday is the longest bar: its two segments fill the bar area.
	mon, tue := c.Bars[0], c.Bars[1]
	if len(mon.Segments) != 2 || mon.Segments[0].W != 132 || mon.Segments[1].W != 44 || mon.Segments[1].X != hLabelW+132 ||
		mon.Segments[0].Class != "seg-0" || mon.Segments[1].Class != "seg-1" || mon.Total != "4" {
		t.Errorf("Monday = %+v", mon)
	}
	if len(tue.Segments) != 1 || tue.Segments[0].W != 88 || tue.Segments[0].Y != chartPad+hRowH+hRowGap || tue.Segments[0].Tip != "Tuesday — Delivered: 2" {
		t.Errorf("Tuesday = %+v", tue)
	}
	if !cmp.Equal(c.Legend, []legendItem{{"Delivered", "seg-0"}, {"Dropped", "seg-1"}}) || c.W != chartW {
		t.Errorf("legend = %v, width %v", c.Legend, c.W)
	}

	v = newTileView("m1", tileResult("vertical_bar_chart", `{"data": [{"key": "a", "label": "Day one", "value": 5}, {"key": "b", "label": "Day two", "value": "10"}]}`), "last_7_days")
	if c := v.Chart; c == nil || len(c.Bars) != 2 || c.Bars[1].Segments[0].H != vChartH || c.Bars[0].Segments[0].H != vChartH/2 ||
		c.Bars[0].Segments[0].Y != vValueH+vChartH/2 || c.Bars[0].Segments[0].W != vMaxBarW || c.Bars[0].Segments[0].X != 57 ||
		c.Bars[0].Label != "Day one" || c.Legend != nil {
		t.Errorf("vertical chart = %+v, %s", v.Chart, v.Problem)
	}
	if v.Asked != "Last 7 days" || v.Period != "Last 24 hours" {
		t.Errorf("a tile read for another period: Period %q, Asked %q", v.Period, v.Asked)
	}

	v = newTileView("m1", tileResult("markdown", `{"valid_time": {"start_time": "2026-01-09T08:00:00.000Z", "end_time": "2026-01-10T08:00:00.000Z"}, "data": ["**hi**"]}`), "last_24_hours")
	if v.Markdown != "<p><strong>hi</strong></p>\n" || v.Valid != "9 Jan 08:00 UTC – 10 Jan 08:00 UTC" {
		t.Errorf("markdown tile = %+v", v)
	}

	problems := []struct{ typ, data, want string }{
		{"metric_group", `{"data": {"x": 1}}`, `want a list of {"label", "value", "value-unit"}`},
		{"markdown", `{"data": "one string"}`, "want a list of markdown lines"},
		{"vertical_bar_chart", `{"data": [{"label": "a", "value": "lots"}]}`, `bar 0: value "lots" is not a number`},
		{"horizontal_bar_chart", `{"data": [{"label": "a", "values": [{"key": "k", "value": -1}]}]}`, "bar 0: negative value -1"},
		{"horizontal_bar_chart", `{"data": [{"label": "a", "values": [{"key": "k", "value": null}]}]}`, `bar 0, key "k": value null is not a number`},
	}
	for _, p := range problems {
		v := newTileView("m1", tileResult(p.typ, p.data), "last_24_hours")
		if !strings.Contains(v.Problem, p.want) || v.Raw == "" {
			t.Errorf("%s tile with %s: problem %q, raw %q; want %q and the raw data", p.typ, p.data, v.Problem, v.Raw, p.want)
		}
	}
	if v := newTileView("m1", tileResult("line_chart", `{"data":[1,2]}`), "last_24_hours"); v.Problem != "" || v.Raw != "{\n  \"data\": [\n    1,\n    2\n  ]\n}" {
		t.Errorf("line_chart tile = %+v, want the raw JSON", v)
	}
	if v := newTileView("m1", tileResult("metric_group", `[1]`), "last_24_hours"); v.Problem != "The tile data is not an object." {
		t.Errorf("tile data not an object: problem %q", v.Problem)
	}
	if v := newTileView("m1", TileResult{Tile: module.Tile{ID: "x"}, Errors: []module.Error{{Code: "c", Message: "m", Type: "fatal"}}}, "last_hour"); v.Title != "x" || len(v.Errors) != 1 || v.Raw != "" {
		t.Errorf("failed tile = %+v", v)
	}
	many := `{"data": [` + strings.Repeat(`{"label": "x", "value": 1},`, maxBars) + `{"label": "last", "value": 1}]}`
	if v := newTileView("m1", tileResult("vertical_bar_chart", many), "last_hour"); v.Chart == nil || len(v.Chart.Bars) != maxBars || v.Chart.Hidden != 1 {
		t.Errorf("a chart of %d bars draws %d, hides %d", maxBars+1, len(v.Chart.Bars), v.Chart.Hidden)
	}
}

func TestDashboardPage(t *testing.T) {
	f := newTypeFakes()
	f.dash = Dashboard{Modules: []DashboardModule{
		{Module: "Intel", TypeName: "Abuse Intel", InstanceID: "m1", Tiles: []TileResult{
			tileResult("metric_group", `{"data": [{"id": "a", "label": "Total", "value": 7}]}`),
			{Tile: module.Tile{ID: "bad", Type: "markdown", Title: "Broken"}, Period: "last_24_hours",
				Errors: []module.Error{{Code: "internal error", Message: "upstream failed", Type: "fatal"}}},
		}},
		{Module: "Down", InstanceID: "m2", Errors: []module.Error{{Code: "service unavailable", Message: "module did not answer within 30 s", Type: "fatal"}}},
	}}
	f.tile = DashboardModule{Module: "Intel", InstanceID: "m1", Tiles: []TileResult{tileResult("metric_group", `{"data": [{"id": "a", "label": "Total", "value": 7}]}`)}}
	c := signIn(t, newServer(t, f.config()), "rob")
	res := c.get(t, "/dashboard?period=last_30_days")
	if res.status != http.StatusOK {
		t.Fatalf("GET /dashboard = %d:\n%s", res.status, res.body)
	}
	doc := parse(t, res.body)
	if sel := find(doc, func(n *html.Node) bool { _, ok := attr(n, "selected"); return n.Data == "option" && ok }); len(sel) != 1 || val(sel[0]) != "last_30_days" {
		t.Errorf("the period selector does not show last_30_days")
	}
	sections := find(doc, hasClass("dash-module"))
	if len(sections) != 2 {
		t.Fatalf("found %d modules, want 2", len(sections))
	}
	if got := text(sections[0]); !strings.Contains(got, "Total") || !strings.Contains(got, "7") || !strings.Contains(got, "upstream failed") {
		t.Errorf("first module = %q, want its tile and the failed tile's error", got)
	}
	if got := text(sections[1]); !strings.Contains(got, "module did not answer within 30 s") {
		t.Errorf("second module = %q, want its error", got)
	}
	links := find(sections[0], func(n *html.Node) bool {
		return n.Data == "a" && strings.HasPrefix(attrOf(n, "href"), "/dashboard/tile?")
	})
	if len(links) != 2 || attrOf(links[0], "href") != "/dashboard/tile?module=m1&period=last_30_days&tile=t" {
		t.Errorf("tile links = %v", texts(links))
	}

	res = c.get(t, "/dashboard?period=yesterday")
	if !strings.Contains(res.body, "Period: &#34;yesterday&#34; is not a period; showing Last 24 hours.") {
		t.Errorf("an unknown period is not refused:\n%s", res.body)
	}
	res = c.get(t, "/dashboard/tile?"+url.Values{"module": {"m1"}, "tile": {"t"}, "period": {"last_hour"}}.Encode())
	if res.status != http.StatusOK || !strings.Contains(res.body, `name="module" value="m1"`) || !strings.Contains(res.body, `name="tile" value="t"`) {
		t.Errorf("GET /dashboard/tile = %d, want the tile with its period selector:\n%s", res.status, res.body)
	}
	if res := c.get(t, "/dashboard/tile?module=m1"); res.status != http.StatusBadRequest {
		t.Errorf("GET /dashboard/tile without a tile = %d, want 400", res.status)
	}
	if res := c.get(t, "/dashboard/tile?module=zz&tile=t"); res.status != http.StatusNotFound {
		t.Errorf("GET /dashboard/tile of an unknown module = %d, want 404", res.status)
	}
	want := []string{"last_30_days", "last_24_hours", "m1/t/last_hour", "zz/t/last_24_hours"}
	if !slices.Equal(f.asked, want) {
		t.Errorf("asked the core for %q, want %q", f.asked, want)
	}
	f.dash = Dashboard{}
	if body := c.get(t, "/dashboard").body; !strings.Contains(body, "No module serves tiles.") {
		t.Errorf("an empty dashboard does not say why")
	}
}

// FuzzTileView draws tile data, which comes from third-party modules:
// whatever it holds, a known type is drawn or shown raw with the problem,
// and a chart stays within its size.
func FuzzTileView(f *testing.F) {
	f.Add("metric_group", `{"data": [{"label": "a", "value": 1}]}`)
	f.Add("horizontal_bar_chart", `{"keys": [{"key": "k"}], "data": [{"label": "a", "values": [{"key": "k", "value": 2}]}]}`)
	f.Add("vertical_bar_chart", `{"data": [{"label": "a", "value": 1e308}, {"label": "b", "value": 1e308}]}`)
	f.Add("markdown", `{"data": ["# x"]}`)
	f.Add("line_chart", `{}`)
	f.Fuzz(func(t *testing.T, typ, data string) {
		v := newTileView("m", tileResult(typ, data), "last_hour")
		if v.Problem != "" && v.Raw == "" {
			t.Fatalf("newTileView(%q, %q): problem %q without the raw data", typ, data, v.Problem)
		}
		if c := v.Chart; c != nil {
			for _, b := range c.Bars {
				for _, s := range b.Segments {
					if s.W < 0 || s.H < 0 || s.X+s.W > c.W+1 || s.Y+s.H > c.H+1 || s.X != s.X || s.Y != s.Y {
						t.Fatalf("newTileView(%q, %q): segment %+v outside the %vx%v chart", typ, data, s, c.W, c.H)
					}
				}
			}
		}
	})
}
