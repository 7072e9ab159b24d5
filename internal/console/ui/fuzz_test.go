package ui

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/observable"
)

// FuzzBuildResult feeds arbitrary module output and queries to the code
// that lays investigations out: it must never panic, and every sighting it
// reads appears exactly once per observable it names, or among the others.
func FuzzBuildResult(f *testing.F) {
	f.Add(string(readTestdata(f, "esa_data.json")), `email_subject:"test test"`)
	f.Add(`{"sightings": {"docs": [{"observed_time": {"start_time": "x"}}, 1, null]}, "verdicts": []}`, `ip:"1.2.3.4"`)
	f.Add(`{"sightings": {"docs": [{"relations": [{"relation": "Sent_By", "source": {"type": "cisco_mid", "value": "1"}, "related": {"type": "cisco_mid", "value": "1"}}]}]}}`, `cisco_mid:1`)
	f.Fuzz(func(t *testing.T, data, query string) {
		var d module.Data
		if json.Unmarshal([]byte(data), &d) != nil {
			return
		}
		q, err := observable.ParseQuery(query)
		if err != nil {
			return
		}
		obs := q.Observables()
		res := buildResult(Investigation{Modules: []ModuleResult{{Module: "m", Data: d}}}, obs)
		if len(res.Groups) != len(obs) {
			t.Fatalf("buildResult: %d groups for %d observables", len(res.Groups), len(obs))
		}
		placed := len(res.Other)
		for _, g := range res.Groups {
			placed += len(g.Rows)
		}
		if placed < res.Total || (res.Total == 0 && placed != 0) {
			t.Fatalf("buildResult placed %d rows for %d sightings", placed, res.Total)
		}
		if g := res.Graph; g != nil && (len(g.Nodes) > maxGraphNodes || len(g.Edges) == 0) {
			t.Fatalf("graph with %d nodes and %d edges", len(g.Nodes), len(g.Edges))
		}
	})
}

// FuzzParseJudgement checks that the judgement form either fails with a
// message naming a field or builds a judgement CTIM accepts.
func FuzzParseJudgement(f *testing.F) {
	f.Add("email", "phish@bad.example", "Malicious", "finance", "7")
	f.Add("ip", "999.1.1.1", "Clean", "", "0")
	f.Fuzz(func(t *testing.T, typ, value, disp, reason, days string) {
		j, err := parseJudgement(judgementForm{Type: typ, Value: value, Disposition: disp, Reason: reason, Days: days}, testNow)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, ":") {
				t.Fatalf("parseJudgement error %q names no field", msg)
			}
			return
		}
		if err := j.Observable.Validate(); err != nil {
			t.Fatalf("parseJudgement built an invalid observable %v: %v", j.Observable, err)
		}
	})
}
