package exchange

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
	"github.com/sightline/sightline/internal/web"
)

//go:embed pages/*.html pages/exchange.js
var pagesFS embed.FS

// nav is the exchange's navigation.
var nav = web.Nav{
	{Title: "Devices", Items: []web.Item{
		{Label: "Devices", Path: "/devices"},
		{Label: "Add Devices and Generate Tokens", Path: "/devices/add"},
		{Label: "Tokens", Path: "/tokens"},
	}},
	{Title: "Cloud Services", Items: []web.Item{{Label: "Cloud Services", Path: "/cloud-services"}}},
	{Title: "Administration", Items: []web.Item{
		{Label: "Audit Log", Path: "/audit"},
		{Label: "API Keys", Path: "/api-keys"},
	}},
}

// newUI builds the exchange's renderer; its session cookie is named after
// the region, since the exchanges of serve share a host.
func newUI(key []byte, region string, log *slog.Logger) (*web.Renderer, error) {
	sessions, err := web.NewSessions("sightline_exchange_"+strings.ToLower(region), key)
	if err != nil {
		return nil, err
	}
	pages, err := fs.Sub(pagesFS, "pages")
	if err != nil {
		return nil, err
	}
	rd, err := web.NewRenderer(web.Config{Role: "Exchange · " + region, Nav: nav, Pages: pages, Sessions: sessions, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("exchange ui: %w", err)
	}
	return rd, nil
}

// uiHandler is a page handler of a signed-in user.
type uiHandler func(w http.ResponseWriter, r *http.Request, who actor) error

// uiRoutes adds the web UI to mux.
func (e *Exchange) uiRoutes(mux *http.ServeMux) {
	page := func(h uiHandler) http.Handler {
		return e.ui.CSRF(e.ui.Sessions().RequireUser(e.uiPage(h)))
	}
	mux.Handle("GET /static/", e.ui.Static())
	mux.HandleFunc("GET /exchange.js", e.uiScript)
	login := e.ui.CSRF(web.LoginHandler(e.uiAuthenticate, e.ui))
	mux.Handle("GET /login", login)
	mux.Handle("POST /login", login)
	mux.Handle("POST /logout", e.ui.CSRF(web.LogoutHandler(e.ui)))
	mux.Handle("GET /{$}", http.RedirectHandler("/devices", http.StatusSeeOther))

	mux.Handle("GET /devices", page(e.uiDevices))
	mux.Handle("POST /devices/delete", page(e.uiDeleteDevices))
	mux.Handle("GET /devices/{id}/edit", page(e.uiEditDevice))
	mux.Handle("POST /devices/{id}/edit", page(e.uiSaveDevice))
	mux.Handle("GET /devices/add", page(e.uiAddDevices))
	mux.Handle("POST /devices/add", page(e.uiCreateToken))
	mux.Handle("GET /tokens", page(e.uiTokens))
	mux.Handle("POST /tokens/{id}/revoke", page(e.uiRevokeToken))
	mux.Handle("GET /cloud-services", page(e.uiCloudServices))
	mux.Handle("POST /cloud-services", page(e.uiSetCloudServices))
	mux.Handle("GET /audit", page(e.uiAudit))
	mux.Handle("GET /api-keys", page(e.uiAPIKeys))
	mux.Handle("POST /api-keys", page(e.uiCreateAPIKey))
	mux.Handle("POST /api-keys/{id}/revoke", page(e.uiRevokeAPIKey))

	mux.HandleFunc("/", e.ui.NotFound)
}

// uiPage resolves the session's user to an actor and runs h, showing its
// error as an error page.
func (e *Exchange) uiPage(h uiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, _ := web.SessionFrom(r.Context())
		u, err := e.store.User(r.Context(), sess.User.Name)
		if err == nil {
			var who actor
			if who, err = e.userActor(r.Context(), sourceIP(r), u); err == nil {
				err = h(w, r, who)
			}
		} else if sightline.ErrorKind(err) == sightline.NotFound {
			err = sightline.Errorf(sightline.Unauthorized, "Your user no longer exists. Sign out and sign in again.")
		}
		if err != nil {
			e.ui.Error(w, r, err)
		}
	})
}

// uiAuthenticate checks the sign-in form; the top bar shows the user's organisation.
func (e *Exchange) uiAuthenticate(ctx context.Context, name, pass string) (web.User, error) {
	who, err := e.signIn(ctx, "", name, pass)
	if err != nil {
		return web.User{}, err
	}
	return web.User{Name: who.name, Role: who.org.Name}, nil
}

func (e *Exchange) uiScript(w http.ResponseWriter, r *http.Request) {
	b, _ := pagesFS.ReadFile("pages/exchange.js")
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// back redirects to path with a flash: the error's message for an Invalid,
// NotFound or Conflict error, or msg on success. Other errors are returned.
func (e *Exchange) back(w http.ResponseWriter, r *http.Request, path string, err error, msg string) error {
	s := e.ui.Sessions()
	switch sightline.ErrorKind(err) {
	case "":
		s.AddFlash(w, r, web.Flash{Kind: web.FlashSuccess, Message: msg})
	case sightline.Invalid, sightline.NotFound, sightline.Conflict:
		s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: sightline.ErrorMessage(err)})
	default:
		return err
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
	return nil
}

// Devices.

type devicesPage struct {
	Query          string
	Devices        []exchangeclient.Device // those matching Query
	Total          int
	Chart          statusChart // of all the organisation's devices
	ThreatResponse bool
	Organisation   string
}

func (e *Exchange) uiDevices(w http.ResponseWriter, r *http.Request, who actor) error {
	q := r.URL.Query().Get("q")
	if len(q) > 200 {
		q = q[:200]
	}
	all, err := e.devices(r.Context(), who.org, "")
	if err != nil {
		return err
	}
	list := all
	if q != "" {
		if list, err = e.devices(r.Context(), who.org, q); err != nil {
			return err
		}
	}
	e.ui.Render(w, r, http.StatusOK, "devices.html", web.PageData{Title: "Devices", Data: devicesPage{
		Query: q, Devices: list, Total: len(all), Chart: newStatusChart(all), ThreatResponse: who.org.ThreatResponse,
		Organisation: who.org.Name}})
	return nil
}

// statusChart is the picture above the Devices table: a ring of the
// organisation's devices by status and tunnel state, and its legend, laid
// out here so that the template only draws it.
type statusChart struct {
	Total  int
	H, CY  float64 // height of the picture and vertical centre of the ring
	R      float64 // radius of the ring, in SVG user units
	Groups []statusGroup
	Desc   string // the picture in words, for assistive technology
}

// statusGroup is one status and tunnel state: a segment of the ring and a
// row of the legend.
type statusGroup struct {
	Label  string // "Registered and connected"
	Color  string
	Count  int
	Share  string  // of all devices, "66.7%"
	Dash   string  // stroke-dasharray of its segment; "" when Count is 0
	Offset float64 // stroke-dashoffset of its segment
	Y      float64 // vertical centre of its legend row
}

// Colours of the status groups, those of the gateway's Overview chart.
const (
	colorConnected  = "#2f9e5b"
	colorTunnelDown = "#e0a100"
	colorOther      = "#8a97a8"
)

// newStatusChart groups devices by status and tunnel state: registered
// devices whose tunnel is up, then those whose tunnel is down (both always
// listed, so that a 0 shows all is well), then any other status.
func newStatusChart(devices []exchangeclient.Device) statusChart {
	const r, rowH = 52.0, 28.0
	c := statusChart{Total: len(devices), R: r}
	type key struct {
		status    string
		connected bool
	}
	counts := map[key]int{}
	keys := []key{{registry.StatusRegistered, true}, {registry.StatusRegistered, false}}
	for _, d := range devices {
		k := key{d.Status, d.Connected}
		if counts[k] == 0 && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
		counts[k]++
	}
	slices.SortFunc(keys[2:], func(a, b key) int {
		if a.status != b.status {
			return strings.Compare(a.status, b.status)
		}
		if a.connected {
			return -1
		}
		return 1
	})
	c.H = max(140, rowH*float64(len(keys)+1))
	c.CY = c.H / 2
	circ := 2 * math.Pi * r
	done := 0
	words := make([]string, 0, len(keys))
	for i, k := range keys {
		g := statusGroup{Label: k.status + ", tunnel down", Color: colorTunnelDown, Count: counts[k], Share: "0.0%",
			Y: c.CY + rowH*(float64(i)-float64(len(keys)-1)/2)}
		if k.connected {
			g.Label, g.Color = k.status+" and connected", colorConnected
		}
		if k.status != registry.StatusRegistered {
			g.Color = colorOther
		}
		if g.Count > 0 {
			g.Share = fmt.Sprintf("%.1f%%", 100*float64(g.Count)/float64(c.Total))
			g.Dash = fmt.Sprintf("%.2f %.2f", circ*float64(g.Count)/float64(c.Total), circ)
			g.Offset = -math.Round(100*circ*float64(done)/float64(c.Total)) / 100
			done += g.Count
		}
		words = append(words, fmt.Sprintf("%d %s", g.Count, g.Label))
		c.Groups = append(c.Groups, g)
	}
	c.Desc = plural(c.Total, "device") + ": " + strings.Join(words, "; ") + "."
	return c
}

// maxSelected bounds the devices one form deletes.
const maxSelected = 1000

func (e *Exchange) uiDeleteDevices(w http.ResponseWriter, r *http.Request, who actor) error {
	ids := r.PostForm["id"]
	if len(ids) == 0 {
		return e.back(w, r, "/devices", sightline.Errorf(sightline.Invalid, "Select the devices to delete."), "")
	}
	if len(ids) > maxSelected {
		return e.back(w, r, "/devices", sightline.Errorf(sightline.Invalid, "Select at most %d devices at once.", maxSelected), "")
	}
	for _, id := range ids {
		if err := e.deleteDevice(r.Context(), who, id); err != nil {
			return e.back(w, r, "/devices", err, "")
		}
	}
	return e.back(w, r, "/devices", nil, plural(len(ids), "device")+" deleted and deregistered.")
}

type editPage struct {
	Device registry.Device
}

func (e *Exchange) uiEditDevice(w http.ResponseWriter, r *http.Request, who actor) error {
	d, err := e.device(r.Context(), who, r.PathValue("id"))
	if err != nil {
		return err
	}
	e.ui.Render(w, r, http.StatusOK, "device_edit.html", web.PageData{Title: "Edit Device", Data: editPage{Device: d}})
	return nil
}

func (e *Exchange) uiSaveDevice(w http.ResponseWriter, r *http.Request, who actor) error {
	id := r.PathValue("id")
	err := e.editDevice(r.Context(), who, id, r.PostFormValue("name"), r.PostFormValue("description"))
	if sightline.ErrorKind(err) == sightline.Invalid {
		return e.back(w, r, "/devices/"+id+"/edit", err, "")
	}
	return e.back(w, r, "/devices", err, "Device saved.")
}

// Tokens.

type addPage struct {
	Expiries      []Expiry
	Min, Max      int
	Devices       int
	Expiry        string
	Token         *exchangeclient.Token // set once, after Continue
	Region        string
	ExpiresInText string
}

func (e *Exchange) uiAddDevices(w http.ResponseWriter, r *http.Request, who actor) error {
	e.ui.Render(w, r, http.StatusOK, "add_devices.html", web.PageData{Title: "Add Devices and Generate Tokens",
		Data: addPage{Expiries: Expiries, Min: MinTokenDevices, Max: MaxTokenDevices, Devices: 1, Expiry: Expiries[0].Value, Region: e.opts.Region}})
	return nil
}

func (e *Exchange) uiCreateToken(w http.ResponseWriter, r *http.Request, who actor) error {
	page := addPage{Expiries: Expiries, Min: MinTokenDevices, Max: MaxTokenDevices, Expiry: r.PostFormValue("expiry"), Region: e.opts.Region}
	n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("devices")))
	if err != nil {
		err = sightline.Errorf(sightline.Invalid, "Number of devices: enter a whole number from %d to %d.", MinTokenDevices, MaxTokenDevices)
	}
	var expiry = Expiries[0].D
	if err == nil {
		page.Devices = n
		expiry, err = ParseExpiry(page.Expiry)
	}
	var t NewToken
	if err == nil {
		t, err = e.createToken(r.Context(), who, n, expiry)
	}
	if err != nil {
		if sightline.ErrorKind(err) != sightline.Invalid {
			return err
		}
		if page.Devices == 0 {
			page.Devices = 1
		}
		e.ui.Render(w, r, http.StatusBadRequest, "add_devices.html", web.PageData{Title: "Add Devices and Generate Tokens",
			Flash: []web.Flash{{Kind: web.FlashError, Message: sightline.ErrorMessage(err)}}, Data: page})
		return nil
	}
	view := e.tokenView(t.Token)
	view.Token = t.Secret
	page.Token = &view
	for _, x := range Expiries {
		if x.D == expiry {
			page.ExpiresInText = x.Label
		}
	}
	e.ui.Render(w, r, http.StatusCreated, "add_devices.html", web.PageData{Title: "Add Devices and Generate Tokens", Data: page})
	return nil
}

type tokensPage struct {
	Tokens []exchangeclient.Token
}

func (e *Exchange) uiTokens(w http.ResponseWriter, r *http.Request, who actor) error {
	list, err := e.store.Tokens(r.Context(), who.org.ID)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	var page tokensPage
	for _, t := range list {
		page.Tokens = append(page.Tokens, e.tokenView(t))
	}
	e.ui.Render(w, r, http.StatusOK, "tokens.html", web.PageData{Title: "Tokens", Data: page})
	return nil
}

func (e *Exchange) uiRevokeToken(w http.ResponseWriter, r *http.Request, who actor) error {
	return e.back(w, r, "/tokens", e.revokeToken(r.Context(), who, r.PathValue("id")), "Token revoked: it can register no more devices.")
}

// Cloud Services.

type cloudPage struct {
	Organisation   string
	ThreatResponse bool
}

func (e *Exchange) uiCloudServices(w http.ResponseWriter, r *http.Request, who actor) error {
	e.ui.Render(w, r, http.StatusOK, "cloud_services.html", web.PageData{Title: "Cloud Services",
		Data: cloudPage{Organisation: who.org.Name, ThreatResponse: who.org.ThreatResponse}})
	return nil
}

func (e *Exchange) uiSetCloudServices(w http.ResponseWriter, r *http.Request, who actor) error {
	on := r.PostFormValue("threat_response") == "on"
	msg := "Threat Response is disabled: the console can no longer reach this organisation's devices."
	if on {
		msg = "Threat Response is enabled: the console can now reach this organisation's devices."
	}
	return e.back(w, r, "/cloud-services", e.setThreatResponse(r.Context(), who, on), msg)
}

// Audit log.

// auditPage is the Audit Log page: a page of entries, filtered as the
// API's are (auditQuery), with links to the older and the newest pages.
type auditPage struct {
	Entries         []exchangeclient.AuditEntry
	Actions         []string // the action filter's choices
	Outcomes        []string // the outcome filter's choices
	Action, Outcome string   // the filters chosen
	// Kept is the filters the form does not show (since, device, token),
	// which it keeps as hidden fields.
	Kept     url.Values
	Filtered bool   // a filter other than the page is set
	Older    string // URL of the next (older) page, "" on the last
	Newest   string // URL of the first page, "" on it
}

func (e *Exchange) uiAudit(w http.ResponseWriter, r *http.Request, who actor) error {
	q, err := parseAuditQuery(r.URL.Query())
	if err != nil {
		return err
	}
	entries, next, err := e.auditPage(r.Context(), who.org, q)
	if err != nil {
		return err
	}
	link := func(before string) string {
		v := exchangeclient.AuditQuery{Since: q.since, Action: q.action, Outcome: q.outcome, Device: q.device,
			Token: q.token, Before: before}.Values()
		if q.limit != auditDefaultLimit {
			v.Set("limit", strconv.Itoa(q.limit))
		}
		if len(v) == 0 {
			return "/audit"
		}
		return "/audit?" + v.Encode()
	}
	p := auditPage{Entries: entries, Actions: auditActions, Outcomes: []string{registry.OutcomeSuccess, registry.OutcomeFailure},
		Action: q.action, Outcome: q.outcome,
		Kept:     exchangeclient.AuditQuery{Since: q.since, Device: q.device, Token: q.token}.Values(),
		Filtered: !q.since.IsZero() || q.action != "" || q.outcome != "" || q.device != "" || q.token != ""}
	if next != "" {
		p.Older = link(next)
	}
	if q.before != 0 {
		p.Newest = link("")
	}
	e.ui.Render(w, r, http.StatusOK, "audit.html", web.PageData{Title: "Audit Log", Data: p})
	return nil
}

// API keys.

type keysPage struct {
	Keys []registry.APIKey
	New  *exchangeclient.APIKey
}

func (e *Exchange) uiAPIKeys(w http.ResponseWriter, r *http.Request, who actor) error {
	return e.renderKeys(w, r, who, http.StatusOK, nil)
}

func (e *Exchange) renderKeys(w http.ResponseWriter, r *http.Request, who actor, status int, created *exchangeclient.APIKey) error {
	keys, err := e.store.APIKeys(r.Context(), who.org.ID)
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	e.ui.Render(w, r, status, "api_keys.html", web.PageData{Title: "API Keys", Data: keysPage{Keys: keys, New: created}})
	return nil
}

func (e *Exchange) uiCreateAPIKey(w http.ResponseWriter, r *http.Request, who actor) error {
	k, err := e.createAPIKey(r.Context(), who, r.PostFormValue("name"))
	if err != nil {
		return e.back(w, r, "/api-keys", err, "")
	}
	return e.renderKeys(w, r, who, http.StatusCreated, &k)
}

func (e *Exchange) uiRevokeAPIKey(w http.ResponseWriter, r *http.Request, who actor) error {
	return e.back(w, r, "/api-keys", e.revokeAPIKey(r.Context(), who, r.PathValue("id")), "API key revoked.")
}
