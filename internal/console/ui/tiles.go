package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/console/module"
)

// Tiles as the Dashboard draws them (relay-api.md §4.5): metric_group as
// figures, markdown as HTML, the two bar charts as SVG drawn on the
// server, anything else (and data a known type cannot be drawn from) as
// the raw JSON.

// Tile types the dashboard draws.
const (
	tileMetricGroup = "metric_group"
	tileMarkdown    = "markdown"
	tileHBar        = "horizontal_bar_chart"
	tileVBar        = "vertical_bar_chart"
)

// periodLabels are the periods as people read them.
var periodLabels = map[string]string{
	"last_hour":     "Last hour",
	"last_24_hours": "Last 24 hours",
	"last_7_days":   "Last 7 days",
	"last_30_days":  "Last 30 days",
	"last_60_days":  "Last 60 days",
	"last_90_days":  "Last 90 days",
}

func periodLabel(p string) string {
	if l, ok := periodLabels[p]; ok {
		return l
	}
	return p
}

// tileView is one tile as the template draws it.
type tileView struct {
	ID, Type, Title, ShortDescription, Description string
	Tags                                           []string
	Period                                         string // label of the data's period
	Asked                                          string // label of the period asked for, when the tile does not offer it
	Href                                           string // the tile's own page
	Valid                                          string // the data's valid time, as the module gave it

	Metrics  []metric
	Markdown template.HTML
	Chart    *barChart
	// Raw is the data as JSON, for the types not drawn and for data that
	// could not be; Problem says why it was not drawn.
	Raw     string
	Problem string
	Errors  []module.Error
}

type metric struct {
	Label, Value, Unit string
	Link               string // an http(s) link, or ""
}

// tileData is the object of POST /tiles/tile-data.
type tileData struct {
	ValidTime *struct {
		Start string `json:"start_time"`
		End   string `json:"end_time"`
	} `json:"valid_time"`
	Period string          `json:"period"`
	Data   json.RawMessage `json:"data"`
	Keys   []struct {
		Key   string `json:"key"`
		Label string `json:"label"`
	} `json:"keys"`
}

// newTileView prepares a tile and its data for drawing.
func newTileView(instanceID string, t TileResult, asked string) tileView {
	v := tileView{ID: t.Tile.ID, Type: t.Tile.Type, Title: t.Tile.Title, ShortDescription: t.Tile.ShortDescription,
		Description: t.Tile.Description, Tags: t.Tile.Tags, Period: periodLabel(t.Period), Errors: t.Errors,
		Href: "/dashboard/tile?" + url.Values{"module": {instanceID}, "tile": {t.Tile.ID}, "period": {asked}}.Encode()}
	if v.Title == "" {
		v.Title = t.Tile.ID
	}
	if t.Period != asked {
		v.Asked = periodLabel(asked)
	}
	if len(t.Data) == 0 {
		return v
	}
	var d tileData
	if err := json.Unmarshal(t.Data, &d); err != nil {
		v.Problem, v.Raw = "The tile data is not an object.", indent(t.Data)
		return v
	}
	if vt := d.ValidTime; vt != nil && vt.Start != "" {
		v.Valid = validTime(vt.Start) + " – " + validTime(vt.End)
	}
	var err error
	switch t.Tile.Type {
	case tileMetricGroup:
		v.Metrics, err = metrics(d.Data)
	case tileMarkdown:
		var lines []string
		if err = json.Unmarshal(d.Data, &lines); err == nil {
			v.Markdown = markdown(lines)
		} else {
			err = fmt.Errorf("want a list of markdown lines")
		}
	case tileHBar, tileVBar:
		v.Chart, err = newBarChart(d, t.Tile.Type == tileHBar, t.Tile.Title)
	default:
		v.Raw = indent(t.Data)
		return v
	}
	if err != nil {
		v.Problem = fmt.Sprintf("The data of this %s tile cannot be drawn (%s): it is shown as the module sent it.", t.Tile.Type, err)
		v.Raw = indent(t.Data)
	}
	return v
}

// validTime writes a CTIM time as "9 Jan 08:00 UTC"; what does not parse
// is shown as it is.
func validTime(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2 Jan 15:04 UTC")
}

// indent pretty-prints JSON; what is not JSON is shown as it is.
func indent(b json.RawMessage) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// metrics reads metric_group data: [{"id","label","value","value-unit","link_uri"}].
func metrics(raw json.RawMessage) ([]metric, error) {
	var items []struct {
		ID    string          `json:"id"`
		Label string          `json:"label"`
		Value json.RawMessage `json:"value"`
		Unit  string          `json:"value-unit"`
		Link  string          `json:"link_uri"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf(`want a list of {"label", "value", "value-unit"}`)
	}
	out := make([]metric, 0, len(items))
	for _, it := range items {
		m := metric{Label: it.Label, Value: scalar(it.Value)}
		if m.Label == "" {
			m.Label = it.ID
		}
		switch it.Unit {
		case "", "integer", "number", "float":
		case "percentage", "percent":
			m.Unit = "%"
		default:
			m.Unit = it.Unit
		}
		if u, err := url.Parse(it.Link); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			m.Link = it.Link
		}
		out = append(out, m)
	}
	return out, nil
}

// scalar writes a JSON number or string as text; numbers get thousands
// separators.
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return number(f)
	}
	return string(raw)
}

// number writes f with thousands separators and at most two decimals.
func number(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if f != math.Trunc(f) {
		s = strconv.FormatFloat(f, 'f', 2, 64)
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// Bar charts.

// Geometry of bar charts, in SVG user units: a chart is about as wide as a
// tile, so that its text keeps its size.
const (
	maxBars     = 50
	maxSegments = 12
	chartW      = 300.0 // every chart's width
	hLabelW     = 84.0  // horizontal: the labels' column
	hValueW     = 40.0  // horizontal: the totals' column
	hBarW       = chartW - hLabelW - hValueW
	hRowH       = 18.0
	hRowGap     = 6.0
	vMaxBarW    = 40.0
	vChartH     = 150.0
	vLabelH     = 26.0
	vValueH     = 16.0
	chartPad    = 4.0
	palette     = 8 // colour classes seg-0 … seg-7 in console.css
)

type barChart struct {
	Horizontal bool
	W, H       float64
	Title      string
	Bars       []bar
	Legend     []legendItem
	Hidden     int // bars left out past maxBars
}

type bar struct {
	Label, Full, Total string  // shortened label, full label, total as text
	LX, LY             float64 // the label's anchor
	VX, VY             float64 // the total's anchor
	Segments           []segment
}

type segment struct {
	X, Y, W, H float64
	Class      string
	Tip        string
}

type legendItem struct{ Label, Class string }

// newBarChart reads bar chart data ([{"key","label","value","values":
// [{"key","value"}]}] with "keys" [{"key","label"}] beside it) and lays
// out the bars: stacked by key when values are given, else one bar of
// value.
func newBarChart(d tileData, horizontal bool, title string) (*barChart, error) {
	var items []struct {
		Key    string          `json:"key"`
		Label  string          `json:"label"`
		Value  json.RawMessage `json:"value"`
		Values []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"values"`
	}
	if err := json.Unmarshal(d.Data, &items); err != nil {
		return nil, fmt.Errorf(`want a list of {"key", "label", "value", "values"}`)
	}
	c := &barChart{Horizontal: horizontal, Title: title}
	if len(items) > maxBars {
		c.Hidden, items = len(items)-maxBars, items[:maxBars]
	}
	// The keys of the segments: those of "keys" in their order, then any
	// other a bar uses.
	classOf, labelOf := map[string]string{}, map[string]string{}
	addKey := func(key, label string) {
		if _, ok := classOf[key]; ok || len(classOf) >= maxSegments {
			return
		}
		classOf[key] = "seg-" + strconv.Itoa(len(classOf)%palette)
		labelOf[key] = cmpOr(label, key)
		c.Legend = append(c.Legend, legendItem{Label: labelOf[key], Class: classOf[key]})
	}
	for _, k := range d.Keys {
		addKey(k.Key, k.Label)
	}
	type seg struct {
		key string
		v   float64
	}
	bars := make([][]seg, len(items))
	totals := make([]float64, len(items))
	for i, it := range items {
		if len(it.Values) == 0 {
			v, ok := toFloat(it.Value)
			if !ok {
				return nil, fmt.Errorf("bar %d: value %s is not a number", i, shown(it.Value))
			}
			bars[i] = []seg{{"", v}}
		}
		for _, sv := range it.Values {
			v, ok := toFloat(sv.Value)
			if !ok {
				return nil, fmt.Errorf("bar %d, key %q: value %s is not a number", i, sv.Key, shown(sv.Value))
			}
			addKey(sv.Key, "")
			bars[i] = append(bars[i], seg{sv.Key, v})
		}
		for _, s := range bars[i] {
			if s.v < 0 {
				return nil, fmt.Errorf("bar %d: negative value %v", i, s.v)
			}
			totals[i] += s.v
		}
	}
	if len(c.Legend) == 1 {
		c.Legend = nil // one key: the title says it
	}
	scale := 0.0
	for _, t := range totals {
		scale = max(scale, t)
	}
	if scale == 0 {
		scale = 1
	}
	// Vertical bars share the width: a slot each, the bar in its middle.
	slot := (chartW - 2*chartPad) / float64(max(len(items), 1))
	vBarW := min(vMaxBarW, slot*0.7)
	for i, it := range items {
		full := cmpOr(it.Label, it.Key)
		b := bar{Full: full, Label: shorten(full, 14), Total: number(totals[i])}
		if horizontal {
			y := chartPad + float64(i)*(hRowH+hRowGap)
			b.LX, b.LY = hLabelW-8, y+hRowH/2
			x := hLabelW
			for _, s := range bars[i] {
				w := s.v / scale * hBarW
				b.Segments = append(b.Segments, segment{X: round(x), Y: y, W: round(w), H: hRowH,
					Class: segClass(classOf, s.key), Tip: segTip(full, labelOf[s.key], s.v)})
				x += w
			}
			b.VX, b.VY = round(x)+6, y+hRowH/2
		} else {
			x := round(chartPad + float64(i)*slot + (slot-vBarW)/2)
			y := vValueH + vChartH
			for _, s := range bars[i] {
				h := s.v / scale * vChartH
				y -= h
				b.Segments = append(b.Segments, segment{X: x, Y: round(y), W: round(vBarW), H: round(h),
					Class: segClass(classOf, s.key), Tip: segTip(full, labelOf[s.key], s.v)})
			}
			b.VX, b.VY = round(x+vBarW/2), round(y)-4
			b.LX, b.LY = round(x+vBarW/2), vValueH+vChartH+14
			b.Label = shorten(full, max(int(slot/6.5), 3))
		}
		c.Bars = append(c.Bars, b)
	}
	c.W, c.H = chartW, vValueH+vChartH+vLabelH
	if horizontal {
		c.H = chartPad*2 + float64(len(items))*(hRowH+hRowGap)
	}
	return c, nil
}

func segClass(classOf map[string]string, key string) string {
	if c, ok := classOf[key]; ok {
		return c
	}
	return "seg-0"
}

func segTip(bar, key string, v float64) string {
	if key == "" {
		return bar + ": " + number(v)
	}
	return bar + " — " + key + ": " + number(v)
}

// shown writes a JSON value for a message; a missing one is "(none)".
func shown(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "(none)"
	}
	return string(raw)
}

func toFloat(raw json.RawMessage) (float64, bool) {
	if t := strings.TrimSpace(string(raw)); t == "" || t == "null" {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return f, !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	return 0, false
}

func round(f float64) float64 { return math.Round(f*10) / 10 }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
