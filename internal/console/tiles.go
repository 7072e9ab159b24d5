package console

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/ui"
)

// Dashboards (relay-api.md §4.5): the tiles of the organisation's enabled
// module instances whose type lists the tiles route. For each, the console
// lists the tiles (POST /tiles), then reads every tile's data (POST
// /tiles/tile-data) in parallel, each call bounded by the instance's
// timeout; a single tile is read with POST /tiles/tile. A module or a tile
// that fails carries its errors, beside the others.

// Limits of a dashboard.
const (
	maxTilesPerModule = 24
	tileCallsInFlight = 6 // per module
)

// tileCall runs f on t's module, bounded by t's timeout; a transport
// failure or a timeout becomes the module error envelopes carry.
func tileCall[T any](ctx context.Context, c *Console, t target, f func(context.Context, module.Tiler) (T, []module.Error, error)) (T, []module.Error) {
	var zero T
	if t.buildErr != nil {
		return zero, []module.Error{errorOf(t.transportError(t.buildErr))}
	}
	o := c.fanOut(ctx, []target{t}, func(ctx context.Context, m module.Module) outcome {
		tl, ok := m.(module.Tiler)
		if !ok {
			return outcome{err: sightline.Errorf(sightline.Invalid, "module %s does not serve tiles", t.Module)}
		}
		v, errs, err := f(ctx, tl)
		return outcome{value: v, errs: errs, err: err}
	})[0]
	if o.err != nil {
		return zero, []module.Error{errorOf(t.transportError(o.err))}
	}
	v, _ := o.value.(T)
	return v, o.errs
}

func errorOf(e ModuleError) module.Error {
	return module.Error{Code: e.Code, Message: e.Message, Type: e.Type}
}

// tilePeriod is the period to ask a tile's data for: period when the tile
// offers it (or lists no periods), else the tile's first.
func tilePeriod(t module.Tile, period string) string {
	if len(t.Periods) == 0 || slices.Contains(t.Periods, period) {
		return period
	}
	return t.Periods[0]
}

// dashboard reads the tiles of every module of the organisation that
// serves them, with their data for period.
func (c *Console) dashboard(ctx context.Context, orgID, period string) (ui.Dashboard, error) {
	ts, err := c.targets(ctx, orgID, module.RouteTiles, nil)
	if err != nil {
		return ui.Dashboard{}, err
	}
	ts = slices.DeleteFunc(ts, func(t target) bool {
		_, tiler := t.mod.(module.Tiler)
		return t.buildErr == nil && !tiler
	})
	out := ui.Dashboard{Period: period, Modules: make([]ui.DashboardModule, len(ts))}
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() { out.Modules[i] = c.moduleTiles(ctx, orgID, t, period) })
	}
	wg.Wait()
	return out, nil
}

// moduleTiles lists one module's tiles and reads their data.
func (c *Console) moduleTiles(ctx context.Context, orgID string, t target, period string) ui.DashboardModule {
	m := ui.DashboardModule{Module: t.Module, TypeName: c.typeTitle(ctx, orgID, t.TypeID), InstanceID: t.InstanceID}
	tiles, errs := tileCall(ctx, c, t, func(ctx context.Context, tl module.Tiler) ([]module.Tile, []module.Error, error) {
		return tl.Tiles(ctx)
	})
	m.Errors = errs
	if len(tiles) > maxTilesPerModule {
		m.Errors = append(m.Errors, module.Error{Code: "too many tiles", Type: "warning",
			Message: "the module lists more tiles than the dashboard shows: the first 24 are shown"})
		tiles = tiles[:maxTilesPerModule]
	}
	m.Tiles = make([]ui.TileResult, len(tiles))
	sem := make(chan struct{}, tileCallsInFlight)
	var wg sync.WaitGroup
	for i, tile := range tiles {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			m.Tiles[i] = c.tileData(ctx, t, tile, period)
		})
	}
	wg.Wait()
	return m
}

// tileData reads one tile's data.
func (c *Console) tileData(ctx context.Context, t target, tile module.Tile, period string) ui.TileResult {
	r := ui.TileResult{Tile: tile, Period: tilePeriod(tile, period)}
	if t.buildErr == nil && !t.mod.Supports(module.RouteTileData) {
		r.Errors = []module.Error{{Code: "unsupported", Type: "warning",
			Message: "the module type does not list tiles/tile-data, so the console does not read the tile's data"}}
		return r
	}
	data, errs := tileCall(ctx, c, t, func(ctx context.Context, tl module.Tiler) (json.RawMessage, []module.Error, error) {
		return tl.TileData(ctx, tile.ID, r.Period)
	})
	r.Data, r.Errors = data, errs
	return r
}

// tile reads one tile of one of the organisation's instances: its
// definition (POST /tiles/tile when the type lists it, else from the list
// of POST /tiles), then its data.
func (c *Console) tile(ctx context.Context, orgID, instanceID, tileID, period string) (ui.DashboardModule, error) {
	t, err := c.target(ctx, orgID, instanceID)
	if err != nil {
		return ui.DashboardModule{}, err
	}
	m := ui.DashboardModule{Module: t.Module, TypeName: c.typeTitle(ctx, orgID, t.TypeID), InstanceID: t.InstanceID}
	if t.buildErr == nil && !t.mod.Supports(module.RouteTiles) {
		return m, sightline.Errorf(sightline.NotFound, "Module %s does not serve tiles.", t.Module)
	}
	var def module.Tile
	var errs []module.Error
	if t.buildErr == nil && t.mod.Supports(module.RouteTile) {
		def, errs = tileCall(ctx, c, t, func(ctx context.Context, tl module.Tiler) (module.Tile, []module.Error, error) {
			return tl.Tile(ctx, tileID)
		})
	} else {
		var list []module.Tile
		list, errs = tileCall(ctx, c, t, func(ctx context.Context, tl module.Tiler) ([]module.Tile, []module.Error, error) {
			return tl.Tiles(ctx)
		})
		if i := slices.IndexFunc(list, func(x module.Tile) bool { return x.ID == tileID }); i >= 0 {
			def = list[i]
		} else if len(errs) == 0 {
			errs = []module.Error{{Code: "not found", Type: "fatal", Message: "the module lists no tile " + tileID}}
		}
	}
	if def.ID == "" {
		m.Errors = errs
		return m, nil
	}
	r := c.tileData(ctx, t, def, period)
	r.Errors = append(errs, r.Errors...)
	m.Tiles = []ui.TileResult{r}
	return m, nil
}

// typeTitle is the title of a module type: a built-in one's, a
// registered one's, or "" for a Relay Module configured by hand.
func (c *Console) typeTitle(ctx context.Context, orgID, typeID string) string {
	if bt, ok := c.builtinType(typeID); ok {
		return bt.Title
	}
	rt, err := c.store.ModuleType(ctx, orgID, typeID)
	if err != nil {
		return ""
	}
	return rt.Title
}
