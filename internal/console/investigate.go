package console

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// Investigation is what the Investigate box shows: the observables the
// query named or contained, and what every module of the organisation
// observed and concluded about them.
type Investigation struct {
	Query       string            `json:"query"`
	Observables []ctim.Observable `json:"observables"`
	Observe     Envelope          `json:"observe"`
	Deliberate  Envelope          `json:"deliberate"`
}

// maxObservables bounds one investigation, as the enrich API does.
const maxObservables = 100

// Investigate parses query (typed terms such as email_subject:"test test",
// anything else inspected as free text) and investigates its observables.
// A malformed query is an Invalid error naming the offending part.
func (c *Console) Investigate(ctx context.Context, orgID, query string) (*Investigation, error) {
	q, err := observable.ParseQuery(query)
	if err != nil {
		return nil, err
	}
	inv, err := c.investigate(ctx, orgID, q)
	if err != nil {
		return nil, err
	}
	inv.Query = query
	return inv, nil
}

// investigate runs observe and deliberate, in parallel, on the query's
// observables (at most maxObservables) for the organisation's modules.
func (c *Console) investigate(ctx context.Context, orgID string, q observable.Query) (*Investigation, error) {
	obs := dedup(q.Observables())
	if len(obs) > maxObservables {
		obs = obs[:maxObservables]
	}
	inv := &Investigation{Observables: obs}
	if len(obs) == 0 {
		inv.Observe = Envelope{Data: []ModuleResult{}, Errors: []ModuleError{}}
		inv.Deliberate = inv.Observe
		return inv, nil
	}
	var wg sync.WaitGroup
	var obsErr, delErr error
	wg.Go(func() { inv.Observe, obsErr = c.runEnrich(ctx, orgID, opObserve, obs, nil) })
	wg.Go(func() { inv.Deliberate, delErr = c.runEnrich(ctx, orgID, opDeliberate, obs, nil) })
	wg.Wait()
	if err := errors.Join(obsErr, delErr); err != nil {
		return nil, err
	}
	return inv, nil
}

// apiInvestigate answers POST /api/v1/investigate {"query": "…"} for the
// CLI: a console user (Basic) or a token with the admin scope.
func (c *Console) apiInvestigate(w http.ResponseWriter, r *http.Request, p principal) error {
	var in struct {
		Query string `json:"query"`
	}
	if err := decodeJSON(w, r, maxJSON, &in); err != nil {
		return err
	}
	inv, err := c.Investigate(r.Context(), p.orgID, in.Query)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, inv)
	return nil
}
