// Package exchange is the exchange role (Cisco's Security Services Exchange):
// organisations and their users, registration tokens, devices, the Cloud
// Services switches, the audit log and the device tunnels of one region.
//
// Gateways register with a token (POST /api/v1/register) and then hold a
// tunnel (GET /api/v1/tunnel); the console lists an organisation's devices
// and sends requests to them through their tunnels with an organisation API
// key; administrators use the web UI or the admin API with Basic auth. All
// routes are in routes (api.go).
package exchange

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/registry"
	"github.com/sightline/sightline/internal/password"
	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tunnel"
	"github.com/sightline/sightline/internal/web"
)

// AdminUser is the administrator every exchange starts with.
const AdminUser = "admin"

// Options configure an exchange. Only AdminPassword is required (on a first
// start), and DataDir when Store is nil.
type Options struct {
	// Region is the one region this exchange serves: AMERICAS, EUROPE or
	// APJC. "" means AMERICAS.
	Region string
	// Addr is the listen address of the UI, API and tunnel endpoint.
	// "" means 127.0.0.1:8090.
	Addr string
	// DataDir holds exchange.db when Store is nil.
	DataDir string
	// MinVersion is the oldest device version accepted at registration,
	// compared by its numeric parts ("14.0.0-692" < "15.0"). "" accepts any.
	MinVersion string
	// PublicURL is the exchange's base URL as devices reach it, used for the
	// tunnel URL handed out at registration. "" means http://<listen address>.
	PublicURL string
	// Organisation is the name of the organisation created on a first
	// start, with the user admin. "" means "Default".
	Organisation string
	// AdminPassword returns admin's password; it is called only when the
	// user admin does not exist yet.
	AdminPassword func() (string, error)
	// Logger receives the exchange's logs; nil discards them.
	Logger *slog.Logger
	// Store holds the exchange's records. nil means SQLite in
	// DataDir/exchange.db, opened by Open and closed when Run returns.
	Store registry.Store

	// RegisterBurst and RegisterInterval rate-limit registration attempts
	// per source address: a bucket of RegisterBurst attempts refilled by one
	// every RegisterInterval. Zero means 10 and 6s (ten a minute).
	RegisterBurst    int
	RegisterInterval time.Duration
	// ProxyTimeout bounds a request sent to a device through its tunnel.
	// Zero means 30s.
	ProxyTimeout time.Duration
	// TunnelHeartbeat is the tunnel keepalive interval. Zero means the
	// tunnel package's default (15s).
	TunnelHeartbeat time.Duration
	// Now is the clock; nil means time.Now. Tests set it to move time.
	Now func() time.Time
}

// Exchange is a running exchange: Open it, then Run it.
type Exchange struct {
	opts       Options
	store      registry.Store
	closeStore func() error
	log        *slog.Logger
	partsLog   *slog.Logger // log without its component, for the parts that name theirs
	ln         net.Listener
	srv        *http.Server
	hub        *tunnel.Hub
	ui         *web.Renderer
	limiter    *limiter
	checked    password.Checker
	publicURL  string
	lookups    lookups // of the proxy path, see keyActor
}

// Open checks opts, opens the store, creates the first organisation and the
// user admin on a first start, and listens on opts.Addr. Call Run to serve.
func Open(ctx context.Context, opts Options) (*Exchange, error) {
	if opts.Region == "" {
		opts.Region = registry.RegionAmericas
	}
	opts.Region = strings.ToUpper(opts.Region)
	if !validRegion(opts.Region) {
		return nil, sightline.Errorf(sightline.Invalid, "exchange region %q: want one of %s", opts.Region, strings.Join(registry.Regions, ", "))
	}
	if opts.MinVersion != "" {
		if _, err := parseVersion(opts.MinVersion); err != nil {
			return nil, sightline.Errorf(sightline.Invalid, "exchange minimum version %q is not a version number", opts.MinVersion)
		}
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:8090"
	}
	if opts.Organisation == "" {
		opts.Organisation = "Default"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProxyTimeout <= 0 {
		opts.ProxyTimeout = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Its parts (the UI, the tunnel hub) name their own component.
	regional := log.With("region", opts.Region)
	e := &Exchange{opts: opts, store: opts.Store, closeStore: func() error { return nil },
		log: regional.With("component", "exchange"), partsLog: regional}
	if e.store == nil {
		if opts.DataDir == "" {
			return nil, sightline.Errorf(sightline.Invalid, "exchange: no data directory and no store")
		}
		if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("exchange data directory: %w", err)
		}
		st, err := sqlite.OpenExchange(ctx, filepath.Join(opts.DataDir, "exchange.db"))
		if err != nil {
			return nil, fmt.Errorf("open exchange store: %w", err)
		}
		e.store, e.closeStore = st, st.Close
	}
	if err := e.init(ctx); err != nil {
		e.closeStore()
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		e.closeStore()
		return nil, fmt.Errorf("exchange listen: %w", err)
	}
	e.ln = ln
	e.publicURL = strings.TrimSuffix(opts.PublicURL, "/")
	if e.publicURL == "" {
		e.publicURL = "http://" + ln.Addr().String()
	}
	e.srv = &http.Server{
		Handler:           e.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      opts.ProxyTimeout + 30*time.Second, // a hijacked tunnel has its deadlines cleared
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	return e, nil
}

// init creates the first organisation and admin, and builds the tunnel hub,
// the rate limiter and the UI.
func (e *Exchange) init(ctx context.Context) error {
	if err := e.ensureAdmin(ctx); err != nil {
		return err
	}
	key, err := e.store.Secret(ctx, "session_key", []byte(rand.Text()+rand.Text()))
	if err != nil {
		return fmt.Errorf("exchange session key: %w", err)
	}
	ui, err := newUI(key, e.opts.Region, e.partsLog)
	if err != nil {
		return err
	}
	e.ui = ui
	burst, every := e.opts.RegisterBurst, e.opts.RegisterInterval
	if burst <= 0 {
		burst = 10
	}
	if every <= 0 {
		every = 6 * time.Second
	}
	e.limiter = newLimiter(burst, every, e.opts.Now)
	e.hub = &tunnel.Hub{
		Authenticate: e.authenticateDevice,
		OnConnect:    func(id, _ string) { e.touch(id) },
		OnDisconnect: func(id, _ string) { e.touch(id) },
		Heartbeat:    e.opts.TunnelHeartbeat,
		Logger:       e.partsLog,
	}
	return nil
}

// ensureAdmin creates, when the user admin does not exist, the first
// organisation (if there is none) and admin in it.
func (e *Exchange) ensureAdmin(ctx context.Context) error {
	if _, err := e.store.User(ctx, AdminUser); err == nil {
		return nil
	} else if sightline.ErrorKind(err) != sightline.NotFound {
		return fmt.Errorf("exchange admin: %w", err)
	}
	if e.opts.AdminPassword == nil {
		return sightline.Errorf(sightline.Invalid, "exchange: no administrator password for the first start")
	}
	pw, err := e.opts.AdminPassword()
	if err != nil {
		return fmt.Errorf("exchange admin password: %w", err)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return sightline.Wrap(sightline.Invalid, err, "admin password: "+err.Error())
	}
	org, err := e.store.OrganisationByName(ctx, e.opts.Organisation)
	if sightline.ErrorKind(err) == sightline.NotFound {
		org = registry.Organisation{ID: uuid.NewString(), Name: e.opts.Organisation, CreatedAt: e.now()}
		err = e.store.CreateOrganisation(ctx, org)
		if sightline.ErrorKind(err) == sightline.Conflict {
			// Another replica on the same database created it first.
			org, err = e.store.OrganisationByName(ctx, e.opts.Organisation)
		}
	}
	if err != nil {
		return fmt.Errorf("exchange first organisation: %w", err)
	}
	err = e.store.CreateUser(ctx, registry.User{Name: AdminUser, OrgID: org.ID, PasswordHash: hash, CreatedAt: e.now()})
	if sightline.ErrorKind(err) == sightline.Conflict {
		return nil // another replica created admin first
	}
	if err != nil {
		return fmt.Errorf("exchange admin: %w", err)
	}
	e.log.Info("created organisation and administrator", "organisation", org.Name, "user", AdminUser)
	return nil
}

// Addr returns the address the exchange listens on.
func (e *Exchange) Addr() string { return e.ln.Addr().String() }

// Run serves until ctx ends, then ends every tunnel (devices redial), shuts
// the HTTP server down gracefully (at most 10s) and closes the store it
// opened. It returns nil after a shutdown caused by ctx.
func (e *Exchange) Run(ctx context.Context) error {
	e.log.Info("exchange listening", "addr", e.Addr(), "public_url", e.publicURL)
	errc := make(chan error, 1)
	go func() { errc <- e.srv.Serve(e.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("exchange serve: %w", err)
	}
	e.hub.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := e.srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("exchange shutdown: %w", serr)
	}
	if cerr := e.closeStore(); cerr != nil && err == nil {
		err = fmt.Errorf("close exchange store: %w", cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (e *Exchange) now() time.Time { return e.opts.Now().UTC() }

func validRegion(r string) bool {
	for _, v := range registry.Regions {
		if r == v {
			return true
		}
	}
	return false
}

// authenticateDevice maps a tunnel upgrade's bearer credential to its device.
func (e *Exchange) authenticateDevice(ctx context.Context, r *http.Request) (string, error) {
	cred, ok := tunnel.BearerToken(r)
	if !ok {
		return "", sightline.Errorf(sightline.Unauthorized, "a device credential is required")
	}
	d, err := e.store.DeviceByCredential(ctx, registry.Hash(cred))
	if sightline.ErrorKind(err) == sightline.NotFound {
		return "", sightline.Errorf(sightline.Unauthorized, "unknown device credential: the device is not registered with this exchange (%s)", e.opts.Region)
	}
	if err != nil {
		return "", sightline.Wrap(sightline.Unavailable, err, "the exchange cannot check device credentials right now")
	}
	return d.ID, nil
}

// touch records that a device's tunnel came up or went down.
func (e *Exchange) touch(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.TouchDevice(ctx, id, e.now()); err != nil {
		e.log.Warn("record device last seen", "device_id", id, "err", err)
	}
}

// audit appends an entry, logging (not returning) a failure: an action that
// happened must not be reported as failed because its audit line was lost,
// and the log keeps the line.
func (e *Exchange) audit(ctx context.Context, entry registry.AuditEntry) {
	entry.Time = e.now()
	if err := e.store.AddAudit(ctx, entry); err != nil {
		e.log.Error("audit log write failed", "action", entry.Action, "actor", entry.Actor, "target", entry.Target,
			"outcome", entry.Outcome, "reason", entry.Reason, "detail", entry.Detail, "err", err)
	}
}
