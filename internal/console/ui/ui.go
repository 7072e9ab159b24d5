// Package ui serves the console's web pages (the Cisco Threat Response
// portal): Investigate with its sightings, verdicts and relations graph,
// Snapshots, Incidents, Intelligence, Modules and the Settings pages, inside
// the shared shell of internal/web.
//
// The pages read and change their data through the small interfaces of
// data.go (Investigator, Snapshots, Incidents, Judgements, Modules, Devices,
// APIClients, Accounts); the console core adapts its stores to them.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/web"
)

//go:embed templates
var templates embed.FS

//go:embed static/console.css
var consoleCSS []byte

// cssPath is where the console's own stylesheet is served, next to the
// shell's; pages link it with the cssURL template function.
const cssPath = "/ui/console.css"

// Nav is the console's navigation, with the CTR portal's labels: a link
// per page and, beside the user, the Settings gear.
var Nav = web.Nav{
	{Title: "Dashboard", Path: "/dashboard"},
	{Title: "Investigate", Path: "/investigate"},
	{Title: "Snapshots", Path: "/snapshots"},
	{Title: "Incidents", Path: "/incidents"},
	{Title: "Intelligence", Path: "/intelligence"},
	{Title: "Modules", Path: "/settings/modules"},
	{Title: "Settings", Icon: web.IconGear, Items: settingsItems},
}

// settingsItems is the Settings gear's menu and the Settings pages' sidebar.
var settingsItems = []web.Item{
	{Label: "Your Account", Path: "/settings/account"},
	{Label: "Devices", Path: "/settings/devices"},
	{Label: "API Clients", Path: "/settings/api-clients"},
	{Label: "Modules", Path: "/settings/modules"},
	{Label: "Users", Path: "/settings/users"},
}

// DefaultScopes are the API client scope names offered when Config.Scopes
// is nil.
var DefaultScopes = []string{"inspect", "enrich", "response", "casebook", "private-intel", "admin"}

// Config is what New needs. Sessions, Authenticate and Accounts are
// required; a nil data source makes its pages answer 503 with a message
// naming what is missing.
type Config struct {
	Sessions     *web.Sessions
	Authenticate web.Authenticate
	Accounts     Accounts

	Investigator Investigator
	Snapshots    Snapshots
	Incidents    Incidents
	Judgements   Judgements
	Modules      Modules
	Devices      Devices
	APIClients   APIClients
	ModuleTypes  ModuleTypes  // nil: Available Modules offers the built-in kinds
	ExchangeKeys ExchangeKeys // nil: Devices does not offer to set the key
	Dashboards   Dashboards

	// ExchangeURL is the exchange's web UI, the target of Manage Devices
	// and of the Threat Response off message; "" hides those links.
	ExchangeURL string
	// Scopes are the API client scope names offered; nil means
	// DefaultScopes.
	Scopes []string
	// Location is the time zone times are shown in; nil means UTC.
	Location *time.Location
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives errors; nil discards them.
	Logger *slog.Logger
}

// UI is the console's web interface.
type UI struct {
	cfg    Config
	rd     *web.Renderer
	log    *slog.Logger
	cssTag string // content hash of console.css, for cache busting
	parts  *template.Template
}

// New parses the templates and returns the UI.
func New(cfg Config) (*UI, error) {
	if cfg.Sessions == nil || cfg.Authenticate == nil || cfg.Accounts == nil {
		return nil, errors.New("console/ui: Sessions, Authenticate and Accounts are required")
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Scopes == nil {
		cfg.Scopes = DefaultScopes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sum := sha256.Sum256(consoleCSS)
	u := &UI{cfg: cfg, log: log.With("component", "console_ui"), cssTag: hex.EncodeToString(sum[:6])}
	parts, err := template.New("partials").Funcs(u.funcs()).ParseFS(templates, "templates/partials/*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("console/ui: parse partials: %w", err)
	}
	u.parts = parts
	pages, err := fs.Sub(templates, "templates")
	if err != nil {
		return nil, err
	}
	u.rd, err = web.NewRenderer(web.Config{
		Role:     "Threat Response",
		Nav:      Nav,
		Pages:    pages,
		Funcs:    u.funcs(),
		Sessions: cfg.Sessions,
		Location: cfg.Location,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Routes returns the whole UI: sign-in, static files and every page. All
// form posts are CSRF-checked; every page but sign-in needs a session, and
// each action the role its handler names. Mount the console's APIs apart
// from it.
func (u *UI) Routes() http.Handler {
	mux := http.NewServeMux()
	view := func(h handler) http.Handler { return u.page(rankReadOnly, h) }
	act := func(h handler) http.Handler { return u.page(rankAnalyst, h) }
	admin := func(h handler) http.Handler { return u.page(rankAdmin, h) }

	mux.Handle("GET /static/", u.rd.Static())
	mux.HandleFunc("GET "+cssPath, u.css)
	mux.Handle("GET /login", web.LoginHandler(u.cfg.Authenticate, u.rd))
	mux.Handle("POST /login", web.LoginHandler(u.cfg.Authenticate, u.rd))
	mux.Handle("POST /logout", web.LogoutHandler(u.rd))
	mux.Handle("GET /{$}", view(func(w http.ResponseWriter, r *http.Request, _ Account) {
		http.Redirect(w, r, "/investigate", http.StatusSeeOther)
	}))

	mux.Handle("GET /investigate", view(u.investigate))
	mux.Handle("GET /snapshots", view(u.snapshots))
	mux.Handle("POST /snapshots", act(u.saveSnapshot))
	mux.Handle("GET /snapshots/{id}", view(u.snapshot))
	mux.Handle("POST /snapshots/{id}/delete", act(u.deleteSnapshot))

	mux.Handle("GET /incidents", view(u.incidents))
	mux.Handle("POST /incidents", act(u.createIncident))
	mux.Handle("GET /incidents/{id}", view(u.incident))
	mux.Handle("POST /incidents/{id}/status", act(u.setIncidentStatus))

	mux.Handle("GET /intelligence", view(u.intelligence))
	mux.Handle("POST /intelligence", act(u.createJudgement))
	mux.Handle("POST /intelligence/{id}/expire", act(u.expireJudgement))
	mux.Handle("POST /intelligence/{id}/delete", act(u.deleteJudgement))

	mux.Handle("GET /settings/modules", view(u.modules))
	mux.Handle("GET /settings/modules/new", admin(u.moduleTypes))
	mux.Handle("GET /settings/modules/new/{kind}", admin(u.newModule))
	mux.Handle("POST /settings/modules", admin(u.createModule))
	mux.Handle("GET /settings/modules/{id}", admin(u.editModule))
	mux.Handle("POST /settings/modules/{id}", admin(u.updateModule))
	mux.Handle("POST /settings/modules/{id}/delete", admin(u.deleteModule))

	u.typeRoutes(mux, admin)
	u.dashboardRoutes(mux, view)

	mux.Handle("GET /settings", view(func(w http.ResponseWriter, r *http.Request, _ Account) {
		http.Redirect(w, r, "/settings/account", http.StatusSeeOther)
	}))
	mux.Handle("GET /settings/account", view(u.account))
	mux.Handle("POST /settings/account/password", view(u.changePassword))
	mux.Handle("GET /settings/devices", view(u.devices))
	mux.Handle("GET /settings/api-clients", view(u.clients))
	mux.Handle("POST /settings/api-clients", admin(u.createClient))
	mux.Handle("POST /settings/api-clients/{id}/revoke", admin(u.revokeClient))
	mux.Handle("GET /settings/users", view(u.users))
	mux.Handle("POST /settings/users", admin(u.createUser))
	mux.Handle("POST /settings/users/{name}/delete", admin(u.deleteUser))

	mux.Handle("/", u.cfg.Sessions.RequireUser(http.HandlerFunc(u.rd.NotFound)))
	return u.rd.CSRF(mux)
}

// css serves the console's stylesheet; a request with the current version
// may be cached for a year.
func (u *UI) css(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("v") == u.cssTag {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	w.Write(consoleCSS)
}

// Role ranks: an action needs at least its rank.
const (
	rankReadOnly = iota
	rankAnalyst
	rankAdmin
)

func rank(role string) int {
	switch role {
	case RoleAdmin:
		return rankAdmin
	case RoleAnalyst:
		return rankAnalyst
	}
	return rankReadOnly
}

// handler is a page handler that knows the signed-in account.
type handler func(w http.ResponseWriter, r *http.Request, me Account)

// page wraps h: it needs a session, looks the account up (a deleted user is
// signed out at once) and refuses, with a 403 page naming the role, an
// account whose role ranks below min.
func (u *UI) page(min int, h handler) http.Handler {
	return u.cfg.Sessions.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, _ := web.SessionFrom(r.Context())
		me, err := u.cfg.Accounts.Account(r.Context(), sess.User.Name)
		if sightline.ErrorKind(err) == sightline.NotFound {
			s := u.rd.Sessions()
			s.Logout(w, r)
			s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: "Your account no longer exists. Ask an administrator."})
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if err != nil {
			u.rd.Error(w, r, err)
			return
		}
		if rank(me.Role) < min {
			u.log.Info("action refused", "user", me.Name, "role", me.Role, "method", r.Method, "path", r.URL.Path)
			what := "This needs the analyst or administrator role."
			if min == rankAdmin {
				what = "Only administrators manage modules, API clients and users."
			}
			u.rd.Error(w, r, sightline.Errorf(sightline.Forbidden, "Your role (%s) cannot do this. %s", me.Role, what))
			return
		}
		h(w, r, me)
	}))
}

// render renders a page with its title.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	u.rd.Render(w, r, status, page, web.PageData{Title: title, Data: data})
}

// unavailable answers 503 for a page whose data source is not configured.
func (u *UI) unavailable(w http.ResponseWriter, r *http.Request, what string) {
	u.rd.Error(w, r, sightline.Errorf(sightline.Unavailable, "%s is not available on this console.", what))
}

// flash queues a banner for the next page.
func (u *UI) flash(w http.ResponseWriter, r *http.Request, kind, msg string) {
	u.rd.Sessions().AddFlash(w, r, web.Flash{Kind: kind, Message: msg})
}

// done flashes a success and redirects (303) to to.
func (u *UI) done(w http.ResponseWriter, r *http.Request, to, msg string) {
	u.flash(w, r, web.FlashSuccess, msg)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// failed shows err: a user's mistake (Invalid, NotFound, Conflict,
// Forbidden) as a flash on the page at to, anything else as an error page.
func (u *UI) failed(w http.ResponseWriter, r *http.Request, to string, err error) {
	switch sightline.ErrorKind(err) {
	case sightline.Invalid, sightline.NotFound, sightline.Conflict, sightline.Forbidden:
		u.flash(w, r, web.FlashError, sightline.ErrorMessage(err))
		http.Redirect(w, r, to, http.StatusSeeOther)
	default:
		u.rd.Error(w, r, err)
	}
}

// base is embedded in page data: what every console page needs.
type base struct {
	Me     Account
	CanAct bool // analyst or admin
	Admin  bool
}

func newBase(me Account) base {
	return base{Me: me, CanAct: rank(me.Role) >= rankAnalyst, Admin: rank(me.Role) >= rankAdmin}
}

// settingsBase is embedded in the Settings pages' data: the sidebar.
type settingsBase struct {
	base
	Side []sideItem
}

type sideItem struct {
	Label, Path string
	Active      bool
}

func newSettings(me Account, active string) settingsBase {
	s := settingsBase{base: newBase(me)}
	for _, it := range settingsItems {
		s.Side = append(s.Side, sideItem{Label: it.Label, Path: it.Path, Active: it.Path == active})
	}
	return s
}

// pageWithError is the data of a page shown again with a problem banner.
func pageWithError(title, problem string, data any) web.PageData {
	return web.PageData{Title: title, Flash: []web.Flash{{Kind: web.FlashError, Message: problem}}, Data: data}
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
