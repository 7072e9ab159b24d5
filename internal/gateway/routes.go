package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/clamd"
	"github.com/sightline/sightline/internal/password"
	"github.com/sightline/sightline/internal/store/sqlite"

	"github.com/sightline/sightline/internal/gateway/connector"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/gateway/ui"
	"github.com/sightline/sightline/internal/tracking"
	"github.com/sightline/sightline/internal/web"
)

// routes is the gateway's whole HTTP surface: the AsyncOS-compatible API
// under /esa/api/v2.0/ and the admin UI everywhere else.
func (g *Gateway) routes(ctx context.Context) (http.Handler, error) {
	key, err := g.setting(ctx, "ui_session_key", randomHex)
	if err != nil {
		return nil, err
	}
	sessions, err := web.NewSessions("sightline_gateway", []byte(key))
	if err != nil {
		return nil, err
	}
	pages, err := ui.New(ui.Config{
		Sessions:     sessions,
		Authenticate: g.uiAuthenticate,
		Tracking:     g.tracks,
		Quarantine:   quarantines{g.queue},
		Overview:     overview{g.tracks, g.queue},
		Settings:     g.config,
		Connector:    cloudConnector{g.cloud},
		Accounts:     accounts{g.store},
		AV:           avPinger{},
		Location:     g.info.Location,
		Logger:       g.logger,
	})
	if err != nil {
		return nil, err
	}
	api := tracking.NewAPI(g.tracks, g.info, g.logger)
	search := tracking.NewSearchAPI(g.tracks, g.info, g.logger)
	records := tracking.NewRecordsAPI(g.tracks, g.info, g.logger)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /esa/api/v2.0/login", g.apiAuth.login)
	mux.Handle("GET /esa/api/v2.0/login/privileges", g.apiAuth.require(http.HandlerFunc(g.apiAuth.privileges)))
	mux.Handle("OPTIONS /esa/api/v2.0/", api)
	mux.Handle("/esa/api/v2.0/", g.apiAuth.require(api))
	mux.Handle("GET /api/v1/messages", g.apiAuth.require(search))
	mux.Handle("GET /api/v1/tracking/records", g.apiAuth.require(records))
	admin := func(h http.HandlerFunc) http.Handler { return g.apiAuth.require(h) }
	mux.Handle("GET /api/v1/config", admin(g.writeConfig))
	mux.Handle("PUT /api/v1/config", admin(g.putConfig))
	mux.Handle("GET /api/v1/lists", admin(g.getLists))
	mux.Handle("PUT /api/v1/lists/{name}", admin(g.putList))
	mux.Handle("DELETE /api/v1/lists/{name}", admin(g.deleteList))
	mux.Handle("POST /api/v1/config/commit", admin(g.commit))
	mux.Handle("POST /api/v1/config/clear", admin(g.clear))
	mux.Handle("GET /api/v1/cloud", admin(g.cloudStatus))
	mux.Handle("PUT /api/v1/cloud", admin(g.cloudSettings))
	mux.Handle("POST /api/v1/cloud/register", admin(g.cloudRegister))
	mux.Handle("POST /api/v1/cloud/deregister", admin(g.cloudDeregister))
	mux.Handle("GET /metrics", g.apiAuth.require(promhttp.HandlerFor(g.metrics.registry, promhttp.HandlerOpts{})))
	mux.Handle("/", pages.Routes())
	return mux, nil
}

// overview adapts tracking and the queue to Monitor > Overview.
type overview struct {
	tracks *sqlite.TrackingStore
	queue  *queue.Queue
}

func (o overview) Overview(ctx context.Context, since time.Time) (ui.Overview, error) {
	ov, err := o.tracks.Overview(ctx, since)
	if err != nil {
		return ui.Overview{}, err
	}
	st, err := o.queue.Stats(ctx)
	if err != nil {
		return ui.Overview{}, err
	}
	out := ui.Overview{QueueDepth: st.Depth}
	for _, h := range ov.Hours {
		out.Hours = append(out.Hours, ui.HourCounts{Start: h.Start, Delivered: h.Delivered,
			Quarantined: h.Quarantined, Dropped: h.Dropped, Bounced: h.Bounced})
	}
	for _, c := range ov.TopSenders {
		out.TopSenders = append(out.TopSenders, ui.Ranked{Name: c.Name, Count: c.Count})
	}
	for _, c := range ov.TopThreats {
		out.TopThreats = append(out.TopThreats, ui.Ranked{Name: c.Name, Count: c.Count})
	}
	return out, nil
}

// cloudConnector adapts the connector to Network > Cloud Service Settings.
type cloudConnector struct{ c *connector.Connector }

func (a cloudConnector) Status(ctx context.Context) ui.ConnectorStatus {
	s := a.c.Status(ctx)
	return ui.ConnectorStatus{State: s.State, DeviceID: s.DeviceID, Message: s.Message}
}

func (a cloudConnector) Register(ctx context.Context, token string) error {
	return a.c.Register(ctx, token)
}
func (a cloudConnector) Deregister(ctx context.Context) error { return a.c.Deregister(ctx) }

// accounts adapts the gateway's users to System Administration > Users.
type accounts struct{ store *sqlite.GatewayStore }

func (a accounts) Accounts(ctx context.Context) ([]ui.Account, error) {
	us, err := a.store.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ui.Account, len(us))
	for i, u := range us {
		out[i] = ui.Account{Name: u.Name, Role: u.Role, Created: u.CreatedAt}
	}
	return out, nil
}

func (a accounts) CreateAccount(ctx context.Context, acc ui.Account, pw string) error {
	hash, err := password.Hash(pw)
	if err != nil {
		return sightline.Errorf(sightline.Invalid, "password: %v", err)
	}
	return a.store.CreateUser(ctx, sqlite.User{Name: acc.Name, Role: acc.Role, PasswordHash: hash, CreatedAt: time.Now()})
}

func (a accounts) SetPassword(ctx context.Context, name, pw string) error {
	hash, err := password.Hash(pw)
	if err != nil {
		return sightline.Errorf(sightline.Invalid, "password: %v", err)
	}
	return a.store.SetPassword(ctx, name, hash)
}

func (a accounts) DeleteAccount(ctx context.Context, name string) error {
	if name == AdminUser {
		return sightline.Errorf(sightline.Forbidden, "the built-in admin user cannot be deleted")
	}
	return a.store.DeleteUser(ctx, name)
}

// avPinger checks a clamd address from Security Services > Anti-Virus.
type avPinger struct{}

func (avPinger) PingAV(ctx context.Context, addr string) error {
	network, address, err := clamd.ParseAddress(addr)
	if err != nil {
		return sightline.Errorf(sightline.Invalid, "clamd address %q: want unix:/path or tcp:host:port", addr)
	}
	c := &clamd.Client{Network: network, Address: address, Timeout: 5 * time.Second}
	return c.Ping(ctx)
}

func (g *Gateway) uiAuthenticate(ctx context.Context, name, pass string) (web.User, error) {
	u, err := g.creds.authenticate(ctx, name, pass)
	if err != nil {
		return web.User{}, err
	}
	return web.User{Name: u.Name, Role: u.Role}, nil
}

// quarantines adapts the queue to the Quarantine pages.
type quarantines struct{ q *queue.Queue }

func (a quarantines) Quarantined(ctx context.Context, name string) ([]ui.QuarantinedMessage, error) {
	ms, err := a.q.Quarantined(ctx, name, 0, 1000)
	if err != nil {
		return nil, err
	}
	out := make([]ui.QuarantinedMessage, len(ms))
	for i, m := range ms {
		out[i] = ui.QuarantinedMessage{MID: m.MID, Time: m.QuarantinedAt, Sender: m.From, Recipients: m.To,
			Subject: m.Subject, Reason: m.Reason, Size: m.Size}
	}
	return out, nil
}

func (a quarantines) Release(ctx context.Context, mid int64) error { return a.q.Release(ctx, mid) }
func (a quarantines) Delete(ctx context.Context, mid int64) error  { return a.q.Delete(ctx, mid) }
