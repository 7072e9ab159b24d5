package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/web"
)

// routesPage is the data of routes.html.
type routesPage struct {
	settingsData
	Routes []queue.Route
}

// smtpRoutes serves Network > SMTP Routes.
func (u *UI) smtpRoutes(w http.ResponseWriter, r *http.Request) {
	c := u.view(w, r)
	if c == nil {
		return
	}
	d := routesPage{Routes: c.Routes}
	d.CanEdit = canEdit(sessionUser(r).Role)
	u.rd.Render(w, r, http.StatusOK, "routes.html", web.PageData{Title: "SMTP Routes", Data: d})
}

var tlsModes = []option{
	{queue.TLSOpportunistic, "Opportunistic: STARTTLS when offered, certificate not verified"},
	{queue.TLSRequired, "Required: STARTTLS with a verified certificate, else defer"},
	{queue.TLSNone, "None: never use TLS"},
}

var smtpRoutes = &entity[queue.Route]{
	what: "SMTP route", title: "SMTP Route", list: "/network/smtp-routes", base: "/network/smtp-routes",
	page: "route.html", keyField: "domain", fold: true,
	items: func(c *config.Config) *[]queue.Route { return &c.Routes },
	key:   func(rt queue.Route) string { return rt.Domain },
	blank: func() queue.Route { return queue.Route{TLS: queue.TLSOpportunistic} },
	parse: func(r *http.Request, f *form[queue.Route]) queue.Route {
		rt := queue.Route{Domain: field(r, "domain"), Hosts: readLines(r, f, "hosts", "Destination Hosts"), TLS: field(r, "tls")}
		switch {
		case rt.Domain == "":
			f.fail("domain", "Receiving Domain: enter a domain, .domain for its subdomains, or ALL.")
		case len(rt.Domain) > 255 || strings.ContainsAny(rt.Domain, "/\\"):
			f.fail("domain", "Receiving Domain: %q is not a domain.", clip(rt.Domain))
		case strings.EqualFold(rt.Domain, "all"):
			rt.Domain = "ALL"
		}
		for i, h := range rt.Hosts {
			if strings.EqualFold(h, "usedns") {
				rt.Hosts[i] = "USEDNS"
			}
		}
		if len(rt.Hosts) == 0 {
			f.fail("hosts", "Destination Hosts: enter at least one host, or USEDNS.")
		}
		return rt
	},
}

// Connector is the gateway's link to the exchange (Security Services
// Exchange), as Cloud Service Settings shows and drives it.
type Connector interface {
	// Status returns the registration state now.
	Status(ctx context.Context) ConnectorStatus
	// Register starts registering with a token from the exchange; it
	// returns once the request is on its way (the state goes INPROGRESS).
	Register(ctx context.Context, token string) error
	// Deregister starts removing the registration.
	Deregister(ctx context.Context) error
}

// Connector states (gateway-api.md §10).
const (
	ConnectorDisabled   = "DISABLED"   // Threat Response is off
	ConnectorBusy       = "BUSY"       // the connector is starting or stopping
	ConnectorEnabled    = "ENABLED"    // on, awaiting a registration token
	ConnectorInProgress = "INPROGRESS" // a registration or deregistration is running
	ConnectorRegistered = "REGISTERED"
	ConnectorFailed     = "FAILED" // the last registration failed; a new token is awaited
)

// ConnectorStatus is the connector's state, the device ID the exchange gave
// when REGISTERED, and a detail for FAILED.
type ConnectorStatus struct {
	State    string
	DeviceID string
	Message  string
}

// The sentences of Cloud Service Settings: scripts match them (gateway-api.md §10).
const (
	textBusy        = "The Cisco Cloud Service is busy. Navigate back to this page after some time to check the appliance status."
	textInProgress  = "The appliance registration is in progress. Navigate back to this page after some time to check the appliance status."
	textRegistered  = "Your appliance is successfully registered with Cisco Threat Response."
	textFailed      = "The registration failed because of an invalid or expired token"
	textRegistering = "A request to register your appliance with the Cisco Threat Response portal is initiated. Navigate back to this page after some time to check the appliance status."
	textDeregister  = "A request to deregister your appliance from the Cisco Threat Response portal is initiated. Navigate back to this page after some time to check the appliance status."
)

// region is a Threat Response Server as the page shows it.
type region struct {
	Label, Text string // "AMERICAS", "AMERICAS (api-sse.cisco.com)"
}

func regionsOf(c *config.Config) []region {
	out := make([]region, len(c.Cloud.Regions))
	for i, rg := range c.Cloud.Regions {
		out[i] = region{rg.Label, rg.Label}
		if u, err := url.Parse(rg.URL); err == nil && u.Hostname() != "" {
			out[i].Text += " (" + u.Hostname() + ")"
		}
	}
	return out
}

// cloudPage is the data of cloud.html and cloudedit.html.
type cloudPage struct {
	settingsData
	Enabled bool
	Server  string // the chosen region's label
	Regions []region
	// Running is whether Threat Response is on in the running
	// configuration: only then is the connector box shown.
	Running   bool
	Connector *ConnectorStatus // nil when no connector is available
	Messages  map[string]string
}

func (u *UI) cloudData(w http.ResponseWriter, r *http.Request) (*cloudPage, bool) {
	c := u.view(w, r)
	if c == nil {
		return nil, false
	}
	d := &cloudPage{Enabled: c.Cloud.ThreatResponse, Server: c.Cloud.Server, Regions: regionsOf(c),
		Running: u.cfg.Settings.Running().Cloud.ThreatResponse}
	if d.Server == "" && len(d.Regions) > 0 {
		d.Server = d.Regions[0].Label // the default
	}
	d.CanEdit = canEdit(sessionUser(r).Role)
	return d, true
}

// serverText returns the label and host of the chosen server.
func (d *cloudPage) ServerText() string {
	for _, rg := range d.Regions {
		if rg.Label == d.Server {
			return rg.Text
		}
	}
	return d.Server
}

// cloud serves Network > Cloud Service Settings: the settings, and once
// Threat Response is committed, the connector's registration state.
func (u *UI) cloud(w http.ResponseWriter, r *http.Request) {
	d, ok := u.cloudData(w, r)
	if !ok {
		return
	}
	if d.Running && u.cfg.Connector != nil {
		st := u.cfg.Connector.Status(r.Context())
		d.Connector = &st
	}
	d.Messages = map[string]string{"busy": textBusy, "inprogress": textInProgress, "registered": textRegistered, "failed": textFailed}
	u.rd.Render(w, r, http.StatusOK, "cloud.html", web.PageData{Title: "Cloud Service Settings", Data: d})
}

// cloudEdit serves Edit Settings.
func (u *UI) cloudEdit(w http.ResponseWriter, r *http.Request) {
	d, ok := u.cloudData(w, r)
	if !ok {
		return
	}
	u.rd.Render(w, r, http.StatusOK, "cloudedit.html", web.PageData{Title: "Edit Cloud Service Settings", Data: d})
}

// cloudSave stages the Threat Response settings.
func (u *UI) cloudSave(w http.ResponseWriter, r *http.Request) {
	if !u.parseForm(w, r) {
		return
	}
	d, ok := u.cloudData(w, r)
	if !ok {
		return
	}
	d.Enabled, d.Server = checked(r, "enabled"), field(r, "server")
	if indexOf(d.Regions, func(rg region) bool { return rg.Label == d.Server }) < 0 {
		d.fail("server", "Threat Response Server: choose one of the servers listed.")
	}
	if !d.Enabled && u.cfg.Connector != nil && u.cfg.Connector.Status(r.Context()).State == ConnectorRegistered {
		d.fail("enabled", "Threat Response: deregister the appliance before disabling Threat Response.")
	}
	if len(d.Errors) == 0 && u.stage(w, r, &d.settingsData, "/network/cloud-service", func(c *config.Config) error {
		c.Cloud.ThreatResponse, c.Cloud.Server = d.Enabled, d.Server
		return nil
	}) {
		return
	}
	u.rd.Render(w, r, http.StatusBadRequest, "cloudedit.html", web.PageData{Title: "Edit Cloud Service Settings", Data: d})
}

// maxToken bounds a registration token (the exchange issues 32 hex digits).
const maxToken = 256

// register passes the token to the connector.
func (u *UI) register(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Connector == nil {
		u.unavailable(w, r, "The Cisco Cloud Service connector")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	s := u.rd.Sessions()
	switch {
	case token == "":
		s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: "Registration Token: paste the token generated on the exchange."})
	case len(token) > maxToken || strings.ContainsFunc(token, func(c rune) bool { return c <= ' ' || c > '~' }):
		s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: textFailed + "."})
	default:
		user := sessionUser(r)
		if err := u.cfg.Connector.Register(r.Context(), token); err != nil {
			if k := sightline.ErrorKind(err); k == sightline.Internal || k == sightline.Unavailable {
				u.log.Error("register with the exchange", "user", user.Name, "err", err)
			}
			s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: sightline.ErrorMessage(err)})
			break
		}
		u.log.Info("registration requested", "user", user.Name)
		s.AddFlash(w, r, web.Flash{Kind: web.FlashSuccess, Message: textRegistering})
	}
	http.Redirect(w, r, "/network/cloud-service", http.StatusSeeOther)
}

// deregister asks the connector to remove the registration.
func (u *UI) deregister(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Connector == nil {
		u.unavailable(w, r, "The Cisco Cloud Service connector")
		return
	}
	s := u.rd.Sessions()
	user := sessionUser(r)
	if err := u.cfg.Connector.Deregister(r.Context()); err != nil {
		if k := sightline.ErrorKind(err); k == sightline.Internal || k == sightline.Unavailable {
			u.log.Error("deregister from the exchange", "user", user.Name, "err", err)
		}
		s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: sightline.ErrorMessage(err)})
	} else {
		u.log.Info("deregistration requested", "user", user.Name)
		s.AddFlash(w, r, web.Flash{Kind: web.FlashSuccess, Message: textDeregister})
	}
	http.Redirect(w, r, "/network/cloud-service", http.StatusSeeOther)
}
