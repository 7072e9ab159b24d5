package ui

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/web"
)

// Modules.

// moduleKind describes a kind of module on Available Modules.
type moduleKind struct {
	Kind, Name, Description string
}

var moduleKinds = []moduleKind{
	{KindESA, "Email Security Appliance", "Sightings of the messages one Email Security Appliance (a Sightline gateway) tracked, and response actions on them, reached through the exchange."},
	{KindSMA, "Security Management Appliance", "Centralised message tracking of every gateway that reports to a Security Management Appliance (a Sightline manager), reached through the exchange."},
	{KindRelay, "Relay Module", "Any third-party module that speaks the Threat Response relay API over HTTPS: enrichment, verdicts, pivots and response actions."},
}

func kindOf(kind string) (moduleKind, bool) {
	for _, k := range moduleKinds {
		if k.Kind == kind {
			return k, true
		}
	}
	return moduleKind{}, false
}

// relayRoutes are the routes a relay module can be set to serve.
var relayRoutes = []struct{ Route, Label string }{
	{module.RouteHealth, "Health"},
	{module.RouteObserve, "Observe (sightings)"},
	{module.RouteDeliberate, "Deliberate (verdicts)"},
	{module.RouteRefer, "Refer (pivots)"},
	{module.RouteRespondObservables, "Respond: list actions"},
	{module.RouteRespondTrigger, "Respond: trigger actions"},
	{module.RouteTiles, "Tiles: list (Dashboard)"},
	{module.RouteTile, "Tiles: one tile"},
	{module.RouteTileData, "Tiles: tile data"},
}

// Limits of the module form.
const (
	defaultTimeframe = 30
	maxTimeframe     = 365
	defaultTimeout   = 30
	maxTimeout       = 300
	maxURLLen        = 2048
	maxSecretLen     = 4096
)

type moduleRow struct {
	Module
	Where   string // the device or URL it reaches
	Checked bool
	Health  Health
}

type modulesPage struct {
	settingsBase
	Modules []moduleRow
}

// modules serves the list; ?check=<id> or ?check=all runs health checks.
func (u *UI) modules(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Modules == nil {
		u.unavailable(w, r, "Module management")
		return
	}
	list, err := u.cfg.Modules.Modules(r.Context(), me.Org)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	names := map[string]Device{}
	if u.cfg.Devices != nil {
		if devs, err := u.cfg.Devices.Devices(r.Context(), me.Org); err == nil {
			for _, d := range devs.Devices {
				names[d.ID] = d
			}
		}
	}
	d := modulesPage{settingsBase: newSettings(me, "/settings/modules")}
	check := r.URL.Query().Get("check")
	var wg sync.WaitGroup
	d.Modules = make([]moduleRow, len(list))
	for i, m := range list {
		row := moduleRow{Module: m, Where: m.URL}
		if m.Kind != KindRelay {
			row.Where = "Device " + m.DeviceID
			if dev, ok := names[m.DeviceID]; ok {
				row.Where = dev.Name + " (" + dev.Type + ", " + dev.IP + ")"
			}
		}
		d.Modules[i] = row
		if check == "all" || check == m.ID {
			d.Modules[i].Checked = true
			wg.Go(func() {
				h, err := u.cfg.Modules.CheckModule(r.Context(), me.Org, m.ID)
				if err != nil {
					h = Health{Errors: []module.Error{{Code: "unknown", Message: sightline.ErrorMessage(err), Type: "fatal"}}}
				}
				d.Modules[i].Health = h
			})
		}
	}
	wg.Wait()
	u.render(w, r, http.StatusOK, "modules.html", "Modules", d)
}

// moduleForm is the data of moduleform.html.
type moduleForm struct {
	settingsBase
	New         bool
	Kind        moduleKind
	M           Module
	Timeframe   string
	Timeout     string
	Devices     []Device // the registered devices of the module's type
	DeviceError string   // why the device list could not be read
	TROff       bool     // Threat Response is off in the exchange
	Org         string   // the organisation's name in the exchange
	ExchangeURL string
	Routes      []routeOption
	Problem     string
	// A module of a registered type: the type and its fields.
	Type   *ModuleType
	Fields []typedField
}

type routeOption struct {
	Route, Label string
	Checked      bool
}

func (u *UI) newModule(w http.ResponseWriter, r *http.Request, me Account) {
	k, ok := kindOf(r.PathValue("kind"))
	if !ok {
		u.rd.NotFound(w, r)
		return
	}
	m := Module{Kind: k.Kind, Name: u.freeModuleName(r, me, k.Name), Enabled: true, TimeframeDays: defaultTimeframe, TimeoutSeconds: defaultTimeout,
		AuthStyle: AuthConfigToken, SupportedAPIs: []string{module.RouteHealth, module.RouteObserve, module.RouteDeliberate, module.RouteRefer}}
	u.renderModuleForm(w, r, me, http.StatusOK, true, m, "")
}

// freeModuleName is the name the Add New Module form offers: name, or when
// another module has it (names are unique, ignoring case) the first free
// "name 2", "name 3"….
func (u *UI) freeModuleName(r *http.Request, me Account, name string) string {
	if u.cfg.Modules == nil {
		return name
	}
	list, err := u.cfg.Modules.Modules(r.Context(), me.Org)
	if err != nil {
		return name // the form still works; saving reports a clash
	}
	names := make([]string, len(list))
	for i, m := range list {
		names[i] = m.Name
	}
	return module.FreeName(name, names)
}

func (u *UI) editModule(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Modules == nil {
		u.unavailable(w, r, "Module management")
		return
	}
	m, err := u.cfg.Modules.Module(r.Context(), me.Org, r.PathValue("id"))
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	u.renderModuleForm(w, r, me, http.StatusOK, false, m, "")
}

func (u *UI) renderModuleForm(w http.ResponseWriter, r *http.Request, me Account, status int, isNew bool, m Module, problem string) {
	k, _ := kindOf(m.Kind)
	if k.Kind == "" {
		k = moduleKind{Kind: m.Kind, Name: m.TypeName}
	}
	d := moduleForm{settingsBase: newSettings(me, "/settings/modules"), New: isNew, Kind: k, M: m,
		Timeframe: strconv.Itoa(m.TimeframeDays), Timeout: strconv.Itoa(m.TimeoutSeconds), ExchangeURL: u.cfg.ExchangeURL, Problem: problem}
	var typeErr error
	if m.Typed {
		t, err := u.moduleType(r, me, m)
		if err == nil {
			d.Type, d.Fields = &t, typedFields(t, m)
			k.Name, d.Kind.Name = t.Title, t.Title
		}
		typeErr = err
	}
	switch {
	case typeErr != nil:
		u.rd.Error(w, r, typeErr)
		return
	case m.Typed:
		for _, f := range d.Fields {
			if f.Type == "device" && d.Devices == nil && d.DeviceError == "" {
				if devs, err := u.deviceList(r, me); err != nil {
					d.DeviceError = sightline.ErrorMessage(err)
				} else {
					d.Devices = devs.Devices
				}
			}
		}
	case m.Kind == KindRelay:
		for _, rt := range relayRoutes {
			d.Routes = append(d.Routes, routeOption{Route: rt.Route, Label: rt.Label, Checked: contains(m.SupportedAPIs, rt.Route)})
		}
	default:
		switch devs, err := u.deviceList(r, me); {
		case err != nil:
			d.DeviceError = sightline.ErrorMessage(err)
		case !devs.ThreatResponse:
			d.TROff, d.Org = true, devs.Organisation
		default:
			for _, dev := range devs.Devices {
				if strings.EqualFold(dev.Type, m.Kind) {
					d.Devices = append(d.Devices, dev)
				}
			}
		}
	}
	title := "Add New " + k.Name + " Module"
	if !isNew {
		title = "Edit Module: " + m.Name
	}
	if problem != "" {
		u.rd.Render(w, r, status, "moduleform.html", pageWithError(title, problem, d))
		return
	}
	u.render(w, r, status, "moduleform.html", title, d)
}

// deviceList reads the organisation's devices; a console without an
// exchange is an Unavailable error.
func (u *UI) deviceList(r *http.Request, me Account) (DeviceList, error) {
	if u.cfg.Devices == nil {
		return DeviceList{}, sightline.Errorf(sightline.Unavailable, "This console is not paired with an exchange, so it cannot list devices.")
	}
	return u.cfg.Devices.Devices(r.Context(), me.Org)
}

// parseModule reads the module form into m (whose Kind is set), checking
// every field; the error is an Invalid *sightline.Error naming the field.
func parseModule(r *http.Request, m *Module, isNew bool) error {
	bad := func(format string, args ...any) error { return sightline.Errorf(sightline.Invalid, format, args...) }
	m.Name = strings.TrimSpace(r.PostFormValue("name"))
	if m.Name == "" || len([]rune(m.Name)) > maxNameLen {
		return bad("Module Name: 1 to %d characters.", maxNameLen)
	}
	m.Enabled = isNew || r.PostFormValue("enabled") == "on"
	number := func(field, label string, def, hi int) (int, error) {
		s := strings.TrimSpace(r.PostFormValue(field))
		if s == "" {
			return def, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > hi {
			return 0, bad("%s: a whole number from 1 to %d.", label, hi)
		}
		return n, nil
	}
	var err error
	if m.Typed {
		return nil // the type's fields: parseTyped
	}
	if m.Kind != KindRelay {
		m.DeviceID = strings.TrimSpace(r.PostFormValue("device_id"))
		if m.DeviceID == "" {
			return bad("Registered Device: choose a device.")
		}
		m.TimeframeDays, err = number("timeframe_days", "Request Timeframe (days)", defaultTimeframe, maxTimeframe)
		return err
	}
	m.URL = strings.TrimSpace(r.PostFormValue("url"))
	if pu, err := url.Parse(m.URL); err != nil || len(m.URL) > maxURLLen || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		return bad("URL: the module's base URL, such as https://module.example.com/ (at most %d characters).", maxURLLen)
	}
	m.AuthStyle = r.PostFormValue("auth_style")
	if m.AuthStyle != AuthStatic && m.AuthStyle != AuthConfigToken {
		return bad("Authentication: choose a static token or a configuration token.")
	}
	m.Secret = r.PostFormValue("secret")
	if len(m.Secret) > maxSecretLen {
		return bad("Key or Token: at most %d characters.", maxSecretLen)
	}
	if m.AuthStyle == AuthStatic && m.Secret == "" && (isNew || !m.HasSecret) {
		return bad("Key or Token: a static token is required.")
	}
	m.SupportedAPIs = nil
	for _, rt := range relayRoutes {
		if contains(r.PostForm["supported_apis"], rt.Route) {
			m.SupportedAPIs = append(m.SupportedAPIs, rt.Route)
		}
	}
	if len(m.SupportedAPIs) == 0 {
		return bad("Supported APIs: choose at least one.")
	}
	m.TimeoutSeconds, err = number("timeout_seconds", "Timeout (seconds)", defaultTimeout, maxTimeout)
	return err
}

func (u *UI) createModule(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Modules == nil {
		u.unavailable(w, r, "Module management")
		return
	}
	k, ok := kindOf(r.PostFormValue("kind"))
	if !ok {
		u.failed(w, r, "/settings/modules/new", sightline.Errorf(sightline.Invalid, "Choose a kind of module."))
		return
	}
	m := Module{Kind: k.Kind}
	var err error
	if typeID := r.PostFormValue("type_id"); k.Kind == KindRelay && typeID != "" {
		var t ModuleType
		m.TypeID, m.Typed = typeID, true
		if t, err = u.moduleType(r, me, m); err != nil {
			u.failed(w, r, "/settings/modules/new", err)
			return
		}
		m.TypeName = t.Title
		if err = parseModule(r, &m, true); err == nil {
			err = parseTyped(r, t, &m, true)
		}
	} else {
		err = parseModule(r, &m, true)
	}
	if err == nil {
		var created Module
		if created, err = u.cfg.Modules.CreateModule(r.Context(), me.Org, m); err == nil {
			m = created
		}
	}
	u.moduleSaved(w, r, me, true, m, err)
}

func (u *UI) updateModule(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Modules == nil {
		u.unavailable(w, r, "Module management")
		return
	}
	m, err := u.cfg.Modules.Module(r.Context(), me.Org, r.PathValue("id"))
	if err != nil {
		u.failed(w, r, "/settings/modules", err)
		return
	}
	err = parseModule(r, &m, false)
	if err == nil && m.Typed {
		var t ModuleType
		if t, err = u.moduleType(r, me, m); err == nil {
			err = parseTyped(r, t, &m, false)
		}
	}
	if err == nil {
		err = u.cfg.Modules.UpdateModule(r.Context(), me.Org, m)
	}
	u.moduleSaved(w, r, me, false, m, err)
}

// moduleSaved answers a module form post: the list on success, the form
// again with the problem when the core refused it.
func (u *UI) moduleSaved(w http.ResponseWriter, r *http.Request, me Account, isNew bool, m Module, err error) {
	switch sightline.ErrorKind(err) {
	case "":
		u.log.Info("module saved", "user", me.Name, "module", m.ID, "kind", m.Kind, "new", isNew)
		u.done(w, r, "/settings/modules", "Module "+m.Name+" has been saved.")
	case sightline.Invalid, sightline.Conflict, sightline.Unavailable:
		m.Secret = ""
		u.renderModuleForm(w, r, me, web.HTTPStatus(err), isNew, m, sightline.ErrorMessage(err))
	default:
		u.rd.Error(w, r, err)
	}
}

func (u *UI) deleteModule(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.Modules == nil {
		u.unavailable(w, r, "Module management")
		return
	}
	id := r.PathValue("id")
	if err := u.cfg.Modules.DeleteModule(r.Context(), me.Org, id); err != nil {
		u.failed(w, r, "/settings/modules", err)
		return
	}
	u.log.Info("module deleted", "user", me.Name, "module", id)
	u.done(w, r, "/settings/modules", "The module has been deleted.")
}

// Devices.

type devicesPage struct {
	settingsBase
	List        DeviceList
	Error       string
	ExchangeURL string
	// The organisation's exchange API key: whether one is set (the key
	// itself is write-only); nil when the console does not manage keys.
	Exchange *ExchangeStatus
}

func (u *UI) devices(w http.ResponseWriter, r *http.Request, me Account) {
	d := devicesPage{settingsBase: newSettings(me, "/settings/devices"), ExchangeURL: u.cfg.ExchangeURL}
	if u.cfg.ExchangeKeys != nil {
		st, err := u.cfg.ExchangeKeys.ExchangeStatus(r.Context(), me.Org)
		if err != nil {
			u.rd.Error(w, r, err)
			return
		}
		d.Exchange = &st
	}
	list, err := u.deviceList(r, me)
	switch sightline.ErrorKind(err) {
	case "":
		d.List = list
	case sightline.Unavailable, sightline.Invalid, sightline.Unauthorized, sightline.Forbidden:
		d.Error = sightline.ErrorMessage(err)
	default:
		u.rd.Error(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "devices.html", "Devices", d)
}

// API clients.

type clientsPage struct {
	settingsBase
	Clients []APIClient
	Scopes  []string
	Created *APIClient // the client just created, with its secret
}

func (u *UI) clients(w http.ResponseWriter, r *http.Request, me Account) {
	u.renderClients(w, r, me, http.StatusOK, nil)
}

func (u *UI) renderClients(w http.ResponseWriter, r *http.Request, me Account, status int, created *APIClient) {
	if u.cfg.APIClients == nil {
		u.unavailable(w, r, "API client management")
		return
	}
	list, err := u.cfg.APIClients.Clients(r.Context(), me.Org)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	u.render(w, r, status, "clients.html", "API Clients", clientsPage{settingsBase: newSettings(me, "/settings/api-clients"),
		Clients: list, Scopes: u.cfg.Scopes, Created: created})
}

// createClient creates a client and shows its secret on this one page: the
// secret is never stored, so it cannot be shown again.
func (u *UI) createClient(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.APIClients == nil {
		u.unavailable(w, r, "API client management")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	var scopes []string
	for _, s := range u.cfg.Scopes {
		if contains(r.PostForm["scopes"], s) {
			scopes = append(scopes, s)
		}
	}
	var err error
	switch {
	case name == "" || len([]rune(name)) > maxNameLen:
		err = sightline.Errorf(sightline.Invalid, "Client Name: 1 to %d characters.", maxNameLen)
	case len(scopes) == 0:
		err = sightline.Errorf(sightline.Invalid, "Scopes: choose at least one.")
	}
	var c APIClient
	if err == nil {
		c, err = u.cfg.APIClients.CreateClient(r.Context(), me.Org, name, me.Name, scopes)
	}
	if err != nil {
		u.failed(w, r, "/settings/api-clients", err)
		return
	}
	u.log.Info("api client created", "user", me.Name, "client_id", c.ID, "scopes", strings.Join(scopes, " "))
	u.renderClients(w, r, me, http.StatusCreated, &c)
}

func (u *UI) revokeClient(w http.ResponseWriter, r *http.Request, me Account) {
	if u.cfg.APIClients == nil {
		u.unavailable(w, r, "API client management")
		return
	}
	id := r.PathValue("id")
	if err := u.cfg.APIClients.RevokeClient(r.Context(), me.Org, id); err != nil {
		u.failed(w, r, "/settings/api-clients", err)
		return
	}
	u.log.Info("api client revoked", "user", me.Name, "client_id", id)
	u.done(w, r, "/settings/api-clients", "API client "+id+" has been revoked.")
}

// Users and Your Account.

// Password limits: bcrypt reads at most 72 bytes.
const (
	minPassword = 8
	maxPassword = 72
)

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

type usersPage struct {
	settingsBase
	Accounts []Account
	Roles    []string
}

func (u *UI) users(w http.ResponseWriter, r *http.Request, me Account) {
	list, err := u.cfg.Accounts.Accounts(r.Context(), me.Org)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "users.html", "Users", usersPage{settingsBase: newSettings(me, "/settings/users"), Accounts: list, Roles: Roles})
}

// checkPassword checks a new password and its confirmation.
func checkPassword(r *http.Request) (string, error) {
	pw := r.PostFormValue("password")
	switch {
	case len(pw) < minPassword || len(pw) > maxPassword:
		return "", sightline.Errorf(sightline.Invalid, "Password: %d to %d characters.", minPassword, maxPassword)
	case pw != r.PostFormValue("confirm"):
		return "", sightline.Errorf(sightline.Invalid, "Confirm Password: the two passwords differ.")
	}
	return pw, nil
}

func (u *UI) createUser(w http.ResponseWriter, r *http.Request, me Account) {
	a := Account{Name: strings.TrimSpace(r.PostFormValue("name")), Org: me.Org, Role: r.PostFormValue("role"), Created: u.cfg.Now()}
	var err error
	var pw string
	switch {
	case !userNameRE.MatchString(a.Name):
		err = sightline.Errorf(sightline.Invalid, "User Name: 1 to 64 letters, digits, dots, dashes, underscores or @, starting with a letter or digit.")
	case !contains(Roles, a.Role):
		err = sightline.Errorf(sightline.Invalid, "Role: choose admin, analyst or read-only.")
	default:
		pw, err = checkPassword(r)
	}
	if err == nil {
		err = u.cfg.Accounts.CreateAccount(r.Context(), a, pw)
	}
	if sightline.ErrorKind(err) == sightline.Conflict {
		err = sightline.Errorf(sightline.Conflict, "User Name: a user named %s already exists.", a.Name)
	}
	if err != nil {
		u.failed(w, r, "/settings/users", err)
		return
	}
	u.log.Info("user created", "user", me.Name, "new_user", a.Name, "role", a.Role)
	u.done(w, r, "/settings/users", "User "+a.Name+" ("+a.Role+") has been added.")
}

func (u *UI) deleteUser(w http.ResponseWriter, r *http.Request, me Account) {
	name := r.PathValue("name")
	var err error
	if name == me.Name {
		err = sightline.Errorf(sightline.Forbidden, "You cannot delete yourself.")
	} else {
		err = u.cfg.Accounts.DeleteAccount(r.Context(), me.Org, name)
	}
	if err != nil {
		u.failed(w, r, "/settings/users", err)
		return
	}
	u.log.Info("user deleted", "user", me.Name, "deleted", name)
	u.done(w, r, "/settings/users", "User "+name+" has been deleted.")
}

type accountPage struct {
	settingsBase
}

func (u *UI) account(w http.ResponseWriter, r *http.Request, me Account) {
	u.render(w, r, http.StatusOK, "account.html", "Your Account", accountPage{newSettings(me, "/settings/account")})
}

// changePassword changes the signed-in user's own password, after checking
// the current one.
func (u *UI) changePassword(w http.ResponseWriter, r *http.Request, me Account) {
	const back = "/settings/account"
	cur := r.PostFormValue("current")
	if cur == "" || len(cur) > maxPassword {
		u.failed(w, r, back, sightline.Errorf(sightline.Invalid, "Current Password: enter your current password."))
		return
	}
	if _, err := u.cfg.Authenticate(r.Context(), me.Name, cur); err != nil {
		if k := sightline.ErrorKind(err); k == sightline.Unauthorized || k == sightline.Forbidden {
			err = sightline.Errorf(sightline.Invalid, "Current Password: this is not your current password.")
		}
		u.failed(w, r, back, err)
		return
	}
	pw, err := checkPassword(r)
	if err == nil {
		err = u.cfg.Accounts.SetPassword(r.Context(), me.Org, me.Name, pw)
	}
	if err != nil {
		u.failed(w, r, back, err)
		return
	}
	u.log.Info("password changed", "user", me.Name)
	u.done(w, r, back, "Your password has been changed.")
}
