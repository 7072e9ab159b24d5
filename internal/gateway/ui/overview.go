package ui

import (
	"fmt"
	"net/http"
	"time"

	"github.com/sightline/sightline/internal/web"
)

// overviewPage is the data of overview.html.
type overviewPage struct {
	Overview
	Totals     HourCounts // sums over the 24 hours (Start unset)
	All        int
	Chart      chart
	TopSenders []rankedRow
	TopThreats []rankedRow
}

type rankedRow struct {
	Ranked
	Pct float64 // of the list's largest count, 0–100
}

// overview serves Monitor > Overview for the last 24 hours.
func (u *UI) overview(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Overview == nil {
		u.unavailable(w, r, "The overview")
		return
	}
	now := u.cfg.Now().In(u.cfg.Location)
	since := now.Truncate(time.Hour).Add(-23 * time.Hour)
	ov, err := u.cfg.Overview.Overview(r.Context(), since)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	data := overviewPage{Overview: ov, Chart: buildChart(ov.Hours, since, u.cfg.Location),
		TopSenders: rank(ov.TopSenders), TopThreats: rank(ov.TopThreats)}
	for _, b := range data.Chart.Bars {
		data.Totals.Delivered += b.Counts.Delivered
		data.Totals.Quarantined += b.Counts.Quarantined
		data.Totals.Dropped += b.Counts.Dropped
		data.Totals.Bounced += b.Counts.Bounced
	}
	data.All = total(data.Totals)
	u.rd.Render(w, r, http.StatusOK, "overview.html", web.PageData{Title: "Overview", Data: data})
}

func total(h HourCounts) int { return h.Delivered + h.Quarantined + h.Dropped + h.Bounced }

func rank(rs []Ranked) []rankedRow {
	top := 0
	for _, r := range rs {
		top = max(top, r.Count)
	}
	out := make([]rankedRow, len(rs))
	for i, r := range rs {
		out[i] = rankedRow{Ranked: r}
		if top > 0 {
			out[i].Pct = 100 * float64(r.Count) / float64(top)
		}
	}
	return out
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 960.0, 260.0
	padL, padR     = 48.0, 8.0
	padT, padB     = 10.0, 26.0
	chartHours     = 24
)

// chart is a stacked bar chart of messages per hour, laid out in Go so the
// template only draws it.
type chart struct {
	W, H  float64
	Bars  []bar
	Ticks []tick // horizontal grid lines with their labels
	Max   int
}

type bar struct {
	Counts   HourCounts
	Label    string // "14:00", shown under every third bar
	Title    string // tooltip
	X, W     float64
	Segments []segment
}

type segment struct {
	Class string // delivered, quarantined, dropped, bounced
	Y, H  float64
}

type tick struct {
	Y     float64
	Label string
}

// buildChart places hours into 24 hourly slots from since, computes a
// rounded scale and the rectangles of each stacked bar.
func buildChart(hours []HourCounts, since time.Time, loc *time.Location) chart {
	c := chart{W: chartW, H: chartH}
	slots := make([]HourCounts, chartHours)
	for i := range slots {
		slots[i].Start = since.Add(time.Duration(i) * time.Hour)
	}
	for _, h := range hours {
		i := int(h.Start.Sub(since) / time.Hour)
		if h.Start.Before(since) || i >= chartHours {
			continue
		}
		s := &slots[i]
		s.Delivered += h.Delivered
		s.Quarantined += h.Quarantined
		s.Dropped += h.Dropped
		s.Bounced += h.Bounced
	}
	peak := 0
	for _, s := range slots {
		peak = max(peak, total(s))
	}
	c.Max = niceCeil(peak)
	plotH := chartH - padT - padB
	slotW := (chartW - padL - padR) / chartHours
	for i := 0; i <= 4; i++ {
		v := c.Max * i / 4
		c.Ticks = append(c.Ticks, tick{Y: padT + plotH - plotH*float64(v)/float64(c.Max), Label: fmt.Sprint(v)})
	}
	for i, s := range slots {
		start := s.Start.In(loc)
		b := bar{Counts: s, X: padL + float64(i)*slotW + slotW*0.15, W: slotW * 0.7,
			Title: fmt.Sprintf("%s–%s: %d delivered, %d quarantined, %d dropped, %d bounced",
				start.Format("15:04"), start.Add(time.Hour).Format("15:04"), s.Delivered, s.Quarantined, s.Dropped, s.Bounced)}
		if i%3 == 0 {
			b.Label = start.Format("15:04")
		}
		y := padT + plotH
		for _, part := range []struct {
			class string
			n     int
		}{{"delivered", s.Delivered}, {"quarantined", s.Quarantined}, {"dropped", s.Dropped}, {"bounced", s.Bounced}} {
			if part.n == 0 {
				continue
			}
			h := plotH * float64(part.n) / float64(c.Max)
			y -= h
			b.Segments = append(b.Segments, segment{Class: part.class, Y: y, H: h})
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// niceCeil returns the smallest of 4, 8, 20, 40, 80, 200… (1, 2 or 5 times
// a power of ten, times 4 grid lines) at least n, so that tick labels are
// round.
func niceCeil(n int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if v := 4 * m * p; v >= n {
				return v
			}
		}
	}
}
