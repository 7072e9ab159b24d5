package exchange

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
)

func TestNewStatusChart(t *testing.T) {
	up := exchangeclient.Device{Status: registry.StatusRegistered, Connected: true}
	down := exchangeclient.Device{Status: registry.StatusRegistered}
	pending := exchangeclient.Device{Status: "Pending"}
	type group struct {
		Label string
		Count int
		Share string
		Drawn bool
	}
	tests := []struct {
		name    string
		devices []exchangeclient.Device
		want    []group
		desc    string
	}{
		{"none", nil, []group{
			{"Registered and connected", 0, "0.0%", false},
			{"Registered, tunnel down", 0, "0.0%", false},
		}, "0 devices: 0 Registered and connected; 0 Registered, tunnel down."},
		{"all connected", []exchangeclient.Device{up, up}, []group{
			{"Registered and connected", 2, "100.0%", true},
			{"Registered, tunnel down", 0, "0.0%", false},
		}, "2 devices: 2 Registered and connected; 0 Registered, tunnel down."},
		{"mixed, other status last", []exchangeclient.Device{pending, down, up, down}, []group{
			{"Registered and connected", 1, "25.0%", true},
			{"Registered, tunnel down", 2, "50.0%", true},
			{"Pending, tunnel down", 1, "25.0%", true},
		}, "4 devices: 1 Registered and connected; 2 Registered, tunnel down; 1 Pending, tunnel down."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newStatusChart(tt.devices)
			var got []group
			for _, g := range c.Groups {
				got = append(got, group{g.Label, g.Count, g.Share, g.Dash != ""})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("newStatusChart(%s) groups (-want +got):\n%s", tt.name, diff)
			}
			if c.Total != len(tt.devices) || c.Desc != tt.desc {
				t.Errorf("newStatusChart(%s) = total %d, desc %q; want %d, %q", tt.name, c.Total, c.Desc, len(tt.devices), tt.desc)
			}
		})
	}
}

// TestNewStatusChartRing checks that the segments go once round the ring,
// each starting where the one before ends.
func TestNewStatusChartRing(t *testing.T) {
	c := newStatusChart([]exchangeclient.Device{
		{Status: registry.StatusRegistered, Connected: true},
		{Status: registry.StatusRegistered},
		{Status: registry.StatusRegistered},
		{Status: "Pending", Connected: true},
	})
	circ := 2 * math.Pi * c.R
	want := 0.0
	for _, g := range c.Groups {
		var length, gap float64
		if _, err := fmt.Sscan(g.Dash, &length, &gap); err != nil {
			t.Fatalf("group %q: dash %q: %v", g.Label, g.Dash, err)
		}
		if diff := g.Offset + want; diff > 0.01 || diff < -0.01 {
			t.Errorf("group %q starts at %.2f, want %.2f", g.Label, -g.Offset, want)
		}
		want += length
	}
	if diff := want - circ; diff > 0.05 || diff < -0.05 {
		t.Errorf("segments cover %.2f of the ring, want its circumference %.2f", want, circ)
	}
}

func TestDevicesPageChart(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	b := newBrowser(t, x.url)
	b.do("GET", "/login", nil)
	_, page := b.do("POST", "/login", url.Values{"username": {"admin"}, "passphrase": {adminPass}, "next": {"/devices"}})
	if !strings.Contains(page, "No devices yet.") || strings.Contains(page, "Devices by status") {
		t.Errorf("Devices page without devices: want the empty message and no picture")
	}

	tok := x.token(t, 3)
	x.runDevice(t, tok.Token, "esa1.example.com", echo)
	x.register(t, tok.Token, "esa2.example.com")
	x.register(t, tok.Token, "esa3.example.com")

	// The picture counts every device of the organisation, also when a
	// search narrows the table.
	for _, path := range []string{"/devices", "/devices?q=esa1"} {
		_, page := b.do("GET", path, nil)
		chart := between(page, `aria-labelledby="status-svg-title status-svg-desc"`, "</section>")
		if chart == "" {
			t.Fatalf("GET %s: no devices-by-status picture:\n%s", path, page)
		}
		for _, want := range []string{
			`<desc id="status-svg-desc">3 devices: 1 Registered and connected; 2 Registered, tunnel down.</desc>`,
			`<text class="total" y="4" text-anchor="middle" font-size="26" font-weight="700" fill="#1b2430">3</text>`,
		} {
			if !strings.Contains(chart, want) {
				t.Errorf("GET %s: picture lacks %s", path, want)
			}
		}
		if n := strings.Count(chart, `<circle class="segment"`); n != 2 {
			t.Errorf("GET %s: picture has %d ring segments, want 2", path, n)
		}
		rows := regexp.MustCompile(`<tr><td>([^<]+)</td><td class="num">(\d+)</td><td class="num">([^<]+)</td></tr>`).FindAllStringSubmatch(chart, -1)
		var got [][]string
		for _, r := range rows {
			got = append(got, r[1:])
		}
		want := [][]string{{"Registered and connected", "1", "33.3%"}, {"Registered, tunnel down", "2", "66.7%"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET %s: the picture's table (-want +got):\n%s", path, diff)
		}
	}
}

// between returns the text of s from the first from to the next to, "" if
// either is missing.
func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	j := strings.Index(s[i:], to)
	if j < 0 {
		return ""
	}
	return s[i : i+j]
}
