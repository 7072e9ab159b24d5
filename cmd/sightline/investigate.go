package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/ctim"
)

func runInvestigate(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("investigate", stderr)
	client, base := consoleClient(fs)
	asJSON := fs.Bool("json", false, "print the enrich responses as JSON")
	// The query comes first: sightline investigate 'email_subject:"test test"' [flags].
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError(`usage: sightline investigate 'email_subject:"test test"' [--json]`)
	}
	query := args[0]
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	if err := client.resolve(getenv); err != nil {
		return err
	}
	body, err := callAPI(ctx, http.MethodPost, *base, "/api/v1/investigate", map[string]string{"query": query}, *client)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var inv console.Investigation
	if err := json.Unmarshal(body, &inv); err != nil {
		return fmt.Errorf("console answer: %w", err)
	}
	return printInvestigation(stdout, &inv, time.Now())
}

// printInvestigation prints the sightings table as the Investigate page shows
// it, then the verdicts and the modules' errors.
func printInvestigation(w io.Writer, inv *console.Investigation, now time.Time) error {
	if len(inv.Observables) == 0 {
		fmt.Fprintln(w, "No observables found in the query.")
		return nil
	}
	type row struct {
		module   string
		observed time.Time
		s        ctim.Sighting
	}
	var rows []row
	results, err := moduleResults(inv.Observe)
	if err != nil {
		return err
	}
	for _, r := range results {
		var docs struct {
			Docs []ctim.Sighting `json:"docs"`
		}
		if raw, ok := r.Data["sightings"]; ok {
			if err := json.Unmarshal(raw, &docs); err != nil {
				return fmt.Errorf("sightings of module %s: %w", r.Module, err)
			}
		}
		for _, s := range docs.Docs {
			rows = append(rows, row{r.Module, s.ObservedTime.StartTime.Time, s})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].observed.After(rows[j].observed) })

	fmt.Fprintf(w, "Observables: %s\n\n", observableList(inv.Observables))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tOBSERVED\tDESCRIPTION\tCONFIDENCE\tSEVERITY")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.module, relativeTime(now, r.observed), r.s.Title, r.s.Confidence, r.s.Severity)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d sightings\n", len(rows))

	verdicts, err := moduleResults(inv.Deliberate)
	if err != nil {
		return err
	}
	for _, r := range verdicts {
		var docs struct {
			Docs []ctim.Verdict `json:"docs"`
		}
		if raw, ok := r.Data["verdicts"]; ok && json.Unmarshal(raw, &docs) == nil {
			for _, v := range docs.Docs {
				fmt.Fprintf(w, "Verdict from %s: %s:%q is %s\n", r.Module, v.Observable.Type, v.Observable.Value, v.DispositionName)
			}
		}
	}
	for _, e := range append(inv.Observe.Errors, inv.Deliberate.Errors...) {
		fmt.Fprintf(w, "Module %s: %s (%s): %s\n", e.Module, e.Type, e.Code, e.Message)
	}
	return nil
}

func moduleResults(env console.Envelope) ([]console.ModuleResult, error) {
	b, err := json.Marshal(env.Data)
	if err != nil {
		return nil, err
	}
	var out []console.ModuleResult
	return out, json.Unmarshal(b, &out)
}

func observableList(obs []ctim.Observable) string {
	s := make([]string, len(obs))
	for i, o := range obs {
		s[i] = o.String()
	}
	return strings.Join(s, " ")
}

// relativeTime says how long ago t was, as the console shows it: "9 hours ago".
func relativeTime(now, t time.Time) string {
	d := now.Sub(t)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch {
	case t.IsZero():
		return "unknown"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour")
	default:
		return plural(int(d/(24*time.Hour)), "day")
	}
}
