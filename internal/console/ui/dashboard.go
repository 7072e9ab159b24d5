package ui

import (
	"net/http"
	"slices"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
)

// The Dashboard: the tiles of the modules whose type serves them, for a
// period the analyst picks. A module or a tile that fails shows its errors
// in its place, beside the others.

func (u *UI) dashboardRoutes(mux *http.ServeMux, view func(handler) http.Handler) {
	mux.Handle("GET /dashboard", view(u.dashboard))
	mux.Handle("GET /dashboard/tile", view(u.dashboardTile))
}

type periodOption struct {
	Value, Label string
	Selected     bool
}

type dashboardModule struct {
	Module, TypeName, InstanceID string
	Tiles                        []tileView
	Errors                       []module.Error
}

type dashboardPage struct {
	base
	Periods []periodOption
	Period  string
	Modules []dashboardModule
	Single  bool   // one tile's page
	TileOf  string // its module instance
	TileID  string
	Error   string
}

// period reads ?period=, which must be one of TilePeriods.
func period(r *http.Request) (string, error) {
	p := r.URL.Query().Get("period")
	if p == "" {
		return DefaultTilePeriod, nil
	}
	if !slices.Contains(TilePeriods, p) {
		return DefaultTilePeriod, sightline.Errorf(sightline.Invalid, "Period: %q is not a period; showing %s.", p, periodLabel(DefaultTilePeriod))
	}
	return p, nil
}

func newDashboardPage(me Account, p string) dashboardPage {
	d := dashboardPage{base: newBase(me), Period: p}
	for _, v := range TilePeriods {
		d.Periods = append(d.Periods, periodOption{Value: v, Label: periodLabel(v), Selected: v == p})
	}
	return d
}

func dashboardModuleOf(m DashboardModule, asked string) dashboardModule {
	out := dashboardModule{Module: m.Module, TypeName: m.TypeName, InstanceID: m.InstanceID, Errors: m.Errors}
	for _, t := range m.Tiles {
		out.Tiles = append(out.Tiles, newTileView(m.InstanceID, t, asked))
	}
	return out
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Dashboards == nil {
		u.unavailable(w, r, "The dashboard")
		return
	}
	p, perr := period(r)
	d := newDashboardPage(me, p)
	if perr != nil {
		d.Error = sightline.ErrorMessage(perr)
	}
	dash, err := u.cfg.Dashboards.Dashboard(r.Context(), me.Org, p)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	for _, m := range dash.Modules {
		d.Modules = append(d.Modules, dashboardModuleOf(m, p))
	}
	u.render(w, r, http.StatusOK, "dashboard.html", "Dashboard", d)
}

// dashboardTile shows one tile: ?module=<instance id>&tile=<tile id>.
func (u *UI) dashboardTile(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Dashboards == nil {
		u.unavailable(w, r, "The dashboard")
		return
	}
	q := r.URL.Query()
	inst, tile := q.Get("module"), q.Get("tile")
	if inst == "" || tile == "" || len(tile) > 256 {
		u.rd.Error(w, r, sightline.Errorf(sightline.Invalid, "Open a tile from the Dashboard: the link names a module and a tile."))
		return
	}
	p, perr := period(r)
	d := newDashboardPage(me, p)
	d.Single, d.TileOf, d.TileID = true, inst, tile
	if perr != nil {
		d.Error = sightline.ErrorMessage(perr)
	}
	m, err := u.cfg.Dashboards.Tile(r.Context(), me.Org, inst, tile, p)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	dm := dashboardModuleOf(m, p)
	d.Modules = []dashboardModule{dm}
	title := "Tile " + tile
	if len(dm.Tiles) == 1 {
		title = dm.Tiles[0].Title
	}
	u.render(w, r, http.StatusOK, "dashboard.html", title, d)
}
