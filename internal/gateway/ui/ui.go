// Package ui serves the gateway's web pages (the AsyncOS-style admin UI):
// Monitor > Message Tracking, Quarantine and Overview, and the
// configuration pages (Mail Policies, Security Services, Network, System
// Administration) with their Commit Changes model, inside the shared shell
// of internal/web.
//
// The pages read their data through the small interfaces declared here
// (Tracker, Quarantines, OverviewSource, Settings, Connector, Accounts,
// AVPinger); the gateway adapts its stores.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/sightline/sightline/internal/tracking"
	"github.com/sightline/sightline/internal/web"
)

//go:embed templates
var templates embed.FS

// Nav is the gateway's navigation, with the seed's labels.
var Nav = web.Nav{
	{Title: "Monitor", Items: []web.Item{
		{Label: "Message Tracking", Path: "/monitor/tracking"},
		{Label: "Quarantine", Path: "/monitor/quarantine"},
		{Label: "Overview", Path: "/monitor/overview"},
	}},
	{Title: "Mail Policies", Items: []web.Item{
		{Label: "Host Access Table", Path: "/mail-policies/hat"},
		{Label: "Recipient Access Table", Path: "/mail-policies/rat"},
		{Label: "Content Filters", Path: "/mail-policies/content-filters"},
	}},
	{Title: "Security Services", Items: []web.Item{
		{Label: "Anti-Virus", Path: "/security/anti-virus"},
		{Label: "SPF/DKIM/DMARC", Path: "/security/mail-auth"},
		{Label: "Reputation Lists", Path: "/security/reputation"},
	}},
	{Title: "Network", Items: []web.Item{
		{Label: "Cloud Service Settings", Path: "/network/cloud-service"},
		{Label: "SMTP Routes", Path: "/network/smtp-routes"},
	}},
	{Title: "System Administration", Items: []web.Item{
		{Label: "Users", Path: "/system/users"},
		{Label: "Configuration History", Path: "/system/config-history"},
	}},
}

// Tracker is what Message Tracking reads: tracking.Store's search side.
// A Tracker that also implements LastStater gives the results' Last State
// column in one call per page instead of one Details call per row.
type Tracker interface {
	Search(ctx context.Context, q tracking.Query) (tracking.Page, error)
	// Details returns a message and its events in order; an unknown MID is
	// a NotFound *sightline.Error.
	Details(ctx context.Context, mid int64) (*tracking.Message, []tracking.Event, error)
}

// LastStater is optionally implemented by a Tracker.
type LastStater interface {
	// LastStates returns, for each MID that has one, the Summary of its
	// last summary event (the AsyncOS "LAST STATE").
	LastStates(ctx context.Context, mids []int64) (map[int64]string, error)
}

// QuarantinedMessage is one message held in a quarantine.
type QuarantinedMessage struct {
	MID        int64
	Time       time.Time // when it was quarantined
	Sender     string    // envelope sender
	Recipients []string  // envelope recipients
	Subject    string
	Reason     string // why it is held, e.g. "content filter 'block_exe' matched"
	Size       int64
}

// Quarantines is what Monitor > Quarantine reads and acts on.
type Quarantines interface {
	// Quarantined lists the messages held in the named quarantine, newest
	// first; an unknown name is a NotFound *sightline.Error.
	Quarantined(ctx context.Context, name string) ([]QuarantinedMessage, error)
	// Release sends a held message on to delivery (after a new scan);
	// Delete discards it. A MID not held is a NotFound *sightline.Error.
	Release(ctx context.Context, mid int64) error
	Delete(ctx context.Context, mid int64) error
}

// Overview is the data of Monitor > Overview.
type Overview struct {
	// Hours counts messages by final verdict per hour; hours missing from
	// the slice count as zero.
	Hours      []HourCounts
	TopSenders []Ranked // envelope senders with the most messages, most first
	TopThreats []Ranked // threat or content-filter names, most first
	QueueDepth int      // messages waiting for delivery now
}

// HourCounts is the number of messages per verdict injected in the hour
// that begins at Start.
type HourCounts struct {
	Start                                    time.Time
	Delivered, Quarantined, Dropped, Bounced int
}

// Ranked is a name with a count, for top-N lists.
type Ranked struct {
	Name  string
	Count int
}

// OverviewSource computes the overview since a time.
type OverviewSource interface {
	Overview(ctx context.Context, since time.Time) (Overview, error)
}

// Config is what New needs. Sessions and Authenticate are required; a nil
// data source makes its pages answer 503 with a message saying so.
//
// The signed-in user's web.User.Role (a Role constant) decides what they
// may do: Administrators and Operators change the configuration, only
// Administrators manage users, other roles view.
type Config struct {
	Sessions     *web.Sessions
	Authenticate web.Authenticate
	Tracking     Tracker
	Quarantine   Quarantines
	Overview     OverviewSource
	// QuarantineNames are the quarantines shown as tabs, in order; nil
	// means "Policy", "Virus", "Outbreak".
	QuarantineNames []string
	// Settings is the configuration the configuration pages show and
	// stage changes in (the gateway's *config.Manager).
	Settings Settings
	// Connector drives registration on Cloud Service Settings; nil shows
	// that the connector is not available.
	Connector Connector
	// Accounts manages System Administration > Users.
	Accounts Accounts
	// AV tests a clamd address on the Anti-Virus page; nil hides Test
	// Connection.
	AV AVPinger
	// Pending reports staged configuration changes for the banner; nil
	// means Settings.HasPending for the signed-in user, or none without
	// Settings.
	Pending func(*http.Request) bool
	// Location is the gateway's time zone for display and date input; nil
	// means UTC.
	Location *time.Location
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives errors; nil discards them.
	Logger *slog.Logger
}

// UI is the gateway's web interface.
type UI struct {
	cfg Config
	rd  *web.Renderer
	log *slog.Logger
}

// New parses the templates and returns the UI.
func New(cfg Config) (*UI, error) {
	if cfg.Sessions == nil || cfg.Authenticate == nil {
		return nil, errors.New("gateway/ui: Sessions and Authenticate are required")
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.QuarantineNames == nil {
		cfg.QuarantineNames = []string{"Policy", "Virus", "Outbreak"}
	}
	if cfg.Pending == nil && cfg.Settings != nil {
		settings, sessions := cfg.Settings, cfg.Sessions
		cfg.Pending = func(r *http.Request) bool {
			s, ok := sessions.Get(r)
			if !ok {
				return false
			}
			pending, _ := settings.HasPending(r.Context(), s.User.Name)
			return pending
		}
	}
	all := template.FuncMap{}
	for _, m := range []template.FuncMap{funcs, settingsFuncs} {
		for k, v := range m {
			if _, dup := all[k]; dup {
				return nil, fmt.Errorf("gateway/ui: template function %q defined twice", k)
			}
			all[k] = v
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pages, err := fs.Sub(templates, "templates")
	if err != nil {
		return nil, err
	}
	rd, err := web.NewRenderer(web.Config{
		Role:     "Email Gateway",
		Nav:      Nav,
		Pages:    pages,
		Funcs:    all,
		Sessions: cfg.Sessions,
		Pending:  cfg.Pending,
		Location: cfg.Location,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	return &UI{cfg: cfg, rd: rd, log: log.With("component", "gateway_ui")}, nil
}

// Routes returns the whole UI: sign-in, static files and every page. All
// form posts are CSRF-checked; every page but sign-in needs a session.
// Mount the AsyncOS API apart from it.
func (u *UI) Routes() http.Handler {
	mux := http.NewServeMux()
	auth := u.cfg.Sessions.RequireUser
	page := func(h http.HandlerFunc) http.Handler { return auth(h) }

	mux.Handle("GET /static/", u.rd.Static())
	mux.Handle("GET /login", web.LoginHandler(u.cfg.Authenticate, u.rd))
	mux.Handle("POST /login", web.LoginHandler(u.cfg.Authenticate, u.rd))
	mux.Handle("POST /logout", web.LogoutHandler(u.rd))

	mux.Handle("GET /{$}", page(redirect("/monitor/overview")))
	mux.Handle("GET /monitor/tracking", page(u.tracking))
	mux.Handle("GET /monitor/tracking/export.csv", page(u.exportCSV))
	mux.Handle("GET /monitor/tracking/{mid}", page(u.details))
	mux.Handle("GET /monitor/quarantine", page(u.quarantineIndex))
	mux.Handle("GET /monitor/quarantine/{name}", page(u.quarantine))
	mux.Handle("POST /monitor/quarantine/{name}/release", page(u.quarantineAction(actRelease)))
	mux.Handle("POST /monitor/quarantine/{name}/delete", page(u.quarantineAction(actDelete)))
	mux.Handle("GET /monitor/overview", page(u.overview))

	// Configuration: every change is staged until Commit Changes. Pages
	// are open to every role; edit and admin refuse the roles that may not
	// change the configuration or the users.
	edit := func(h http.HandlerFunc) http.Handler { return auth(u.editor(h)) }
	admin := func(h http.HandlerFunc) http.Handler { return auth(u.administrator(h)) }
	mux.Handle("GET /commit", page(u.commitForm))
	mux.Handle("POST /commit", edit(u.commit))
	mux.Handle("POST /clear", edit(u.clear))
	mux.Handle("GET /system/config-history", page(u.history))
	mux.Handle("POST /system/config-history/{id}/rollback", edit(u.rollback))

	mux.Handle("GET /mail-policies/hat", page(u.hat))
	u.entityRoutes(mux, senderGroups, edit)
	u.entityRoutes(mux, flowPolicies, edit)
	mux.Handle("GET /mail-policies/rat", page(u.rat))
	u.entityRoutes(mux, ratEntries, edit)
	mux.Handle("GET /mail-policies/content-filters", page(u.filters))
	u.entityRoutes(mux, contentFilters, edit)
	mux.Handle("POST /mail-policies/content-filters/{key}/enable", edit(u.enableFilter))

	mux.Handle("GET /security/anti-virus", page(u.antiVirus))
	mux.Handle("POST /security/anti-virus", edit(u.saveAV))
	mux.Handle("POST /security/anti-virus/test", edit(u.testAV))
	mux.Handle("GET /security/mail-auth", page(u.mailAuth))
	mux.Handle("POST /security/mail-auth", edit(u.saveMailAuth))
	mux.Handle("GET /security/reputation", page(u.lists))
	u.entityRoutes(mux, reputationLists, edit)

	mux.Handle("GET /network/smtp-routes", page(u.smtpRoutes))
	u.entityRoutes(mux, smtpRoutes, edit)
	mux.Handle("GET /network/cloud-service", page(u.cloud))
	mux.Handle("GET /network/cloud-service/edit", edit(u.cloudEdit))
	mux.Handle("POST /network/cloud-service", edit(u.cloudSave))
	mux.Handle("POST /network/cloud-service/register", edit(u.register))
	mux.Handle("POST /network/cloud-service/deregister", edit(u.deregister))

	mux.Handle("GET /system/users", page(u.users))
	mux.Handle("GET /system/users/new", admin(u.newUser))
	mux.Handle("POST /system/users", admin(u.createUser))
	mux.Handle("GET /system/users/{name}/password", page(u.passwordForm))
	mux.Handle("POST /system/users/{name}/password", page(u.setPassword))
	mux.Handle("POST /system/users/{name}/delete", admin(u.deleteUser))

	mux.Handle("/", page(u.rd.NotFound))
	return u.rd.CSRF(mux)
}

// entityRoutes mounts an entity's form and actions under its base path:
// GET new and {key}/edit, POST base (add) and {key} (save), POST {key}/delete
// and {key}/move. All need a role that may edit.
func (u *UI) entityRoutes(mux *http.ServeMux, e interface{ handlers(*UI) entityHandlers }, edit func(http.HandlerFunc) http.Handler) {
	h := e.handlers(u)
	base := h.base
	mux.Handle("GET "+base+"/new", edit(h.newForm))
	mux.Handle("POST "+base, edit(h.save))
	mux.Handle("GET "+base+"/{key}/edit", edit(h.editForm))
	mux.Handle("POST "+base+"/{key}", edit(h.save))
	mux.Handle("POST "+base+"/{key}/delete", edit(h.remove))
	mux.Handle("POST "+base+"/{key}/move", edit(h.move))
}

func redirect(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusSeeOther) }
}
