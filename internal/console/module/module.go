// Package module is the console's contract with the modules it fans
// investigations out to: the relay routes of relay-api.md, typed. Each kind
// of module (the gateway's Email Security Appliance module, the manager's,
// third-party relay modules) implements Module; the console's enrich and
// response APIs call every enabled instance in parallel and merge the answers.
package module

import (
	"context"
	"encoding/json"

	"github.com/sightline/sightline/internal/ctim"
)

// Routes a module may support, as relay-api.md names them in supported-apis.
const (
	RouteHealth             = "health"
	RouteObserve            = "observe/observables"
	RouteDeliberate         = "deliberate/observables"
	RouteRefer              = "refer/observables"
	RouteRespondObservables = "respond/observables"
	RouteRespondTrigger     = "respond/trigger"
	RouteTiles              = "tiles"
	RouteTile               = "tiles/tile"
	RouteTileData           = "tiles/tile-data"
)

// Routes lists every route a module type may name in supported-apis, in
// the order of relay-api.md §1.
var Routes = []string{RouteHealth, RouteObserve, RouteDeliberate, RouteRefer, RouteRespondObservables,
	RouteRespondTrigger, RouteTiles, RouteTile, RouteTileData}

// Data is a module's answer to observe or deliberate: CTIM plurals
// ("sightings", "verdicts", "judgements", …) each shaped {"count": n, "docs": […]},
// passed through to the enrich envelope unchanged. Each value must be valid
// JSON.
type Data map[string]json.RawMessage

// CompactJSON is implemented by modules whose Data values are always
// written by json.Marshal: compact, with <, > and & escaped. The console
// copies such a module's data into its answer as it is instead of scanning
// it for white space and HTML characters, which costs a few per cent of an
// investigation with many sightings.
type CompactJSON interface {
	WritesCompactJSON()
}

// Error is one error a module reports (relay-api.md §3): code, message and
// type "fatal", "error" or "warning". The console adds the module's ids.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Type    string `json:"type"`
}

// Reference is one refer result: a pivot link into the module's own UI.
type Reference struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	URL         string   `json:"url"`
	Categories  []string `json:"categories,omitempty"`
}

// Action is one response action a module offers for an observable.
type Action struct {
	ID          string            `json:"id"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Categories  []string          `json:"categories,omitempty"`
	QueryParams map[string]string `json:"query-params,omitempty"`
}

// Module is one configured module instance, ready to call. Every method is
// bounded by ctx, whose deadline is the instance's timeout. A non-nil error
// is a transport failure (the module could not be reached or answered
// nonsense); errors the module itself reports come back in the []Error.
type Module interface {
	// Supports reports whether the module implements a route.
	Supports(route string) bool
	Health(ctx context.Context) ([]Error, error)
	Observe(ctx context.Context, obs []ctim.Observable) (Data, []Error, error)
	Deliberate(ctx context.Context, obs []ctim.Observable) (Data, []Error, error)
	Refer(ctx context.Context, obs []ctim.Observable) ([]Reference, []Error, error)
	RespondObservables(ctx context.Context, obs []ctim.Observable) ([]Action, []Error, error)
	// RespondTrigger runs action actionID; params holds observable_type,
	// observable_value and the action's query parameters.
	RespondTrigger(ctx context.Context, actionID string, params map[string]string) ([]Error, error)
}

// Tile is a dashboard tile a module defines (relay-api.md §4.5).
type Tile struct {
	ID               string   `json:"id"`
	Type             string   `json:"type"` // metric_group, markdown, horizontal_bar_chart, vertical_bar_chart, …
	Title            string   `json:"title"`
	ShortDescription string   `json:"short_description,omitempty"`
	Description      string   `json:"description,omitempty"`
	Periods          []string `json:"periods,omitempty"` // last_hour, last_24_hours, …
	Tags             []string `json:"tags,omitempty"`
}

// Tiler is implemented by modules that serve dashboard tiles: the routes
// tiles, tiles/tile and tiles/tile-data. Like Module's methods, a non-nil
// error is a transport failure, errors the module reports come back in
// the []Error, and a route the module does not support is an error without
// any call.
type Tiler interface {
	// Tiles lists the module's tiles.
	Tiles(ctx context.Context) ([]Tile, []Error, error)
	// Tile returns the definition of one tile.
	Tile(ctx context.Context, tileID string) (Tile, []Error, error)
	// TileData returns a tile's data for a period: the object of
	// relay-api.md §4.5 (valid_time, observed_time, cache_scope, period,
	// data and the type's own keys), as the module sent it.
	TileData(ctx context.Context, tileID, period string) (json.RawMessage, []Error, error)
}

// Kinds of module instance.
const (
	KindESA   = "esa"   // Email Security Appliance: a gateway through the exchange
	KindSMA   = "sma"   // Security Management Appliance: a manager through the exchange
	KindRelay = "relay" // a third-party relay module over HTTPS
)

// Instance is a module instance as the console stores it.
type Instance struct {
	ID       string          `json:"id"`      // module_instance_id, a UUID
	TypeID   string          `json:"type_id"` // module_type_id, fixed per kind (relay: per registered type)
	Kind     string          `json:"kind"`
	Name     string          `json:"name"` // display name, e.g. "Email Security Appliance"
	OrgID    string          `json:"org_id"`
	Enabled  bool            `json:"enabled"`
	Settings json.RawMessage `json:"settings"` // the kind's own settings (device ID and timeframe; relay URL and auth; …)
}
