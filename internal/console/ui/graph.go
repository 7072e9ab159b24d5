package ui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sightline/sightline/internal/observable"
)

// The relations graph: observables as nodes, the sightings' observed
// relations (Sent_By, Sent_To, Contains, Received_From…) as edges, laid out
// in layers by distance from the investigated observables and drawn as SVG
// on the server.

// Graph geometry, in SVG user units.
const (
	maxGraphNodes = 40
	nodeW, nodeH  = 184.0, 42.0
	colGap        = 128.0 // horizontal room between columns, for edge labels
	rowGap        = 16.0
	graphPad      = 16.0
)

type graph struct {
	W, H   float64
	Nodes  []graphNode
	Edges  []graphEdge
	Hidden int // nodes left out past maxGraphNodes
}

type graphNode struct {
	X, Y       float64 // top left
	Class      string
	Type       string // readable type
	Value      string // shortened
	Full       string // type:"value", for the tooltip and the pivot link
	Href       string
	Queried    bool
	key        string
	layer, row int
}

type graphEdge struct {
	Path       string
	LX, LY, LW float64 // label centre and width
	RX, RY     float64 // top left of the label's background
	Label      string
}

// typeClass groups observable types by colour.
func typeClass(t observable.Type) string {
	switch t {
	case observable.Email:
		return "n-email"
	case observable.IP, observable.IPv6:
		return "n-ip"
	case observable.Domain, observable.Hostname, observable.URL:
		return "n-domain"
	case observable.SHA256, observable.SHA1, observable.MD5:
		return "n-hash"
	case observable.FileName:
		return "n-file"
	case observable.CiscoMID, observable.EmailMessageID:
		return "n-message"
	case observable.EmailSubject:
		return "n-subject"
	}
	return "n-other"
}

// buildGraph lays out the observables investigated and those the sightings
// relate; it returns nil when there are no relations to draw.
func buildGraph(queried []observable.Observable, rows []sightRow, groups []obsGroup) *graph {
	type edge struct{ from, rel, to string }
	nodes := map[string]observable.Observable{}
	adj := map[string][]string{}
	var edges []edge
	seenEdge := map[edge]bool{}
	for _, row := range rows {
		for _, r := range row.sighting.Relations {
			if r.Source.Value == "" || r.Related.Value == "" {
				continue
			}
			e := edge{r.Source.Key(), strings.TrimSpace(r.Relation), r.Related.Key()}
			if e.from == e.to || seenEdge[e] {
				continue
			}
			seenEdge[e] = true
			edges = append(edges, e)
			nodes[e.from], nodes[e.to] = r.Source, r.Related
			adj[e.from] = append(adj[e.from], e.to)
			adj[e.to] = append(adj[e.to], e.from)
		}
	}
	if len(edges) == 0 {
		return nil
	}
	// Layers by breadth-first distance from the investigated observables;
	// components they do not reach start at layer 1.
	layer := map[string]int{}
	var order []string
	bfs := func(start []string, at int) {
		queue := []string{}
		for _, k := range start {
			if _, done := layer[k]; !done {
				layer[k] = at
				queue = append(queue, k)
				order = append(order, k)
			}
		}
		for len(queue) > 0 {
			k := queue[0]
			queue = queue[1:]
			for _, n := range adj[k] {
				if _, done := layer[n]; !done {
					layer[n] = layer[k] + 1
					queue = append(queue, n)
					order = append(order, n)
				}
			}
		}
	}
	var roots []string
	queriedKeys := map[string]bool{}
	for _, o := range queried {
		queriedKeys[o.Key()] = true
		if _, ok := nodes[o.Key()]; !ok {
			nodes[o.Key()] = o
		}
		roots = append(roots, o.Key())
	}
	bfs(roots, 0)
	for _, e := range edges {
		bfs([]string{e.from}, 1)
	}
	g := &graph{}
	if len(order) > maxGraphNodes {
		g.Hidden = len(order) - maxGraphNodes
		order = order[:maxGraphNodes]
	}
	malicious := map[string]bool{}
	for _, gr := range groups {
		for _, v := range gr.Verdicts {
			if v.Disposition == "Malicious" {
				malicious[gr.Obs.Key()] = true
			}
		}
	}
	// Columns, each ordered by the mean row of its neighbours in the column
	// before, to limit crossings.
	cols := map[int][]string{}
	maxLayer := 0
	for _, k := range order {
		cols[layer[k]] = append(cols[layer[k]], k)
		maxLayer = max(maxLayer, layer[k])
	}
	rowOf := map[string]int{}
	tallest := 0
	for l := 0; l <= maxLayer; l++ {
		col := cols[l]
		if l > 0 {
			bary := map[string]float64{}
			for _, k := range col {
				sum, n := 0.0, 0
				for _, nb := range adj[k] {
					if r, ok := rowOf[nb]; ok && layer[nb] == l-1 {
						sum += float64(r)
						n++
					}
				}
				bary[k] = float64(len(col)) // no neighbour before: last
				if n > 0 {
					bary[k] = sum / float64(n)
				}
			}
			slices.SortStableFunc(col, func(a, b string) int { return cmp.Compare(bary[a], bary[b]) })
		}
		for i, k := range col {
			rowOf[k] = i
		}
		tallest = max(tallest, len(col))
	}
	g.W = 2*graphPad + float64(maxLayer+1)*nodeW + float64(maxLayer)*colGap
	g.H = 2*graphPad + float64(tallest)*nodeH + float64(max(tallest-1, 0))*rowGap
	pos := map[string]*graphNode{}
	for l := 0; l <= maxLayer; l++ {
		col := cols[l]
		colH := float64(len(col))*nodeH + float64(max(len(col)-1, 0))*rowGap
		top := (g.H - colH) / 2
		for i, k := range col {
			o := nodes[k]
			n := graphNode{X: graphPad + float64(l)*(nodeW+colGap), Y: top + float64(i)*(nodeH+rowGap),
				Class: typeClass(o.Type), Type: typeLabel(o.Type), Value: shorten(o.Value, 22), Full: o.String(),
				Href: investigateURL(o.String()), Queried: queriedKeys[k], key: k, layer: l, row: i}
			if n.Queried {
				n.Class += " n-queried"
			}
			if malicious[k] {
				n.Class += " n-malicious"
			}
			g.Nodes = append(g.Nodes, n)
		}
	}
	for i := range g.Nodes {
		pos[g.Nodes[i].key] = &g.Nodes[i]
	}
	for _, e := range edges {
		a, b := pos[e.from], pos[e.to]
		if a == nil || b == nil {
			continue
		}
		g.Edges = append(g.Edges, edgeBetween(a, b, e.rel))
	}
	return g
}

// edgeBetween draws a curve from a to b with its label at the middle.
func edgeBetween(a, b *graphNode, label string) graphEdge {
	ay, by := a.Y+nodeH/2, b.Y+nodeH/2
	var x1, x2, c1, c2 float64
	switch {
	case a.layer < b.layer:
		x1, x2 = a.X+nodeW, b.X
		c1, c2 = x1+colGap/2, x2-colGap/2
	case a.layer > b.layer:
		x1, x2 = a.X, b.X+nodeW
		c1, c2 = x1-colGap/2, x2+colGap/2
	default: // same column: a loop out to the right
		x1, x2 = a.X+nodeW, b.X+nodeW
		c1, c2 = x1+colGap/2, x2+colGap/2
	}
	label = shorten(label, 18)
	e := graphEdge{
		Path:  fmt.Sprintf("M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f", x1, ay, c1, ay, c2, by, x2, by),
		Label: label,
		LW:    float64(len([]rune(label)))*6.2 + 10,
	}
	// The label sits at 70% of the curve, near its target, so that the
	// labels of edges fanning out of one node do not pile up.
	const t = 0.7
	bez := func(p0, p1, p2, p3 float64) float64 {
		s := 1 - t
		return s*s*s*p0 + 3*s*s*t*p1 + 3*s*t*t*p2 + t*t*t*p3
	}
	e.LX, e.LY = bez(x1, c1, c2, x2), bez(ay, ay, by, by)
	e.RX, e.RY = e.LX-e.LW/2, e.LY-8
	return e
}
