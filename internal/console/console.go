// Package console is the console role (Cisco Threat Response): organisations,
// users and API clients, the OAuth2 token endpoint and its signing keys, module
// instances, the CTR-compatible API at the host root (/iroh/... for inspect,
// enrich and response, /ctia/... for stored intelligence), the admin API
// (/api/v1/...) that manages clients, modules and devices, and the web UI
// (package ui) at every other path.
//
// Every record belongs to one organisation; a token or a user acts for
// exactly one, and never reaches another's modules, devices or intelligence.
// All routes are in routes (api.go).
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/console/ui"
	"github.com/sightline/sightline/internal/password"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// AdminUser is the administrator every console starts with.
const AdminUser = "admin"

// Fixed module type ids of the native kinds, and the ids of the built-in
// Private Intelligence source, the same in every console so that saved
// investigations and scripts keep working.
const (
	TypeIDESA              = "33fd91a2-3409-4b03-9a22-acddf631d031"
	TypeIDSMA              = "b1d0c035-4f61-4355-8258-9bc3c31a1031"
	TypeIDPrivateIntel     = "ab1d0a49-fcc4-4b95-a0c8-d027f456d7bd"
	InstanceIDPrivateIntel = "0c9d1323-281f-400d-bb3b-9ab102a2e41c"
	// PrivateIntelName is the built-in source's name in envelopes.
	PrivateIntelName = "Private Intelligence"
)

// Factory builds a ready-to-call module from its stored instance. It should
// check the instance's settings and fail with an Invalid error naming the
// problem; it must not do network I/O.
type Factory func(module.Instance) (module.Module, error)

// Options configure a console. Only AdminPassword is required (on a first
// start), and DataDir when Store is nil.
type Options struct {
	// Addr is the listen address of the API. "" means 127.0.0.1:8080.
	Addr string
	// DataDir holds console.db when Store is nil.
	DataDir string
	// PublicURL is the console's base URL as clients reach it: the token
	// issuer, the base of CTIA long ids and of the discovery document. ""
	// means http://<listen address>.
	PublicURL string
	// ExchangeURL is the exchange the console is paired with (its region);
	// "" means none: devices cannot be listed and native modules cannot be
	// validated.
	ExchangeURL string
	// ExchangeAPIKey is the exchange organisation API key of the
	// organisation named Organisation; when set it is stored at every start.
	// Every organisation has its own key, which its modules use: the others
	// set theirs with PUT /api/v1/exchange or on Settings > Devices.
	ExchangeAPIKey string
	// AdminPassword returns admin's password; it is called only when the
	// user admin does not exist yet.
	AdminPassword func() (string, error)
	// Organisation is the name of the organisation created on a first
	// start, with the user admin. "" means "Default".
	Organisation string
	// Modules builds module instances by kind (module.KindRelay, …). A kind
	// without a factory cannot be configured.
	Modules map[string]Factory
	// ExchangeModules builds, by kind, the module instances that reach a
	// device through the paired exchange (module.KindESA, module.KindSMA),
	// each with the exchange as its organisation reaches it. A kind here is
	// built by this factory rather than by Modules.
	ExchangeModules map[string]ExchangeFactory
	// ModuleTimeout bounds one call to one module instance. Zero means 30s.
	ModuleTimeout time.Duration
	// ModuleTimeouts overrides ModuleTimeout per module type id.
	ModuleTimeouts map[string]time.Duration
	// SecretKey is the 32-byte key that seals the secrets the store keeps
	// (exchange API keys, module credentials). nil means the key in
	// DataDir/secrets.key, created on the first start; a Store without a
	// DataDir needs it. Every replica sharing a store needs the same key.
	SecretKey []byte
	// KeyRotation is how long a signing key signs before a new one takes
	// over. Zero means 24h. RotateKeys rotates on demand.
	KeyRotation time.Duration
	// HTTPClient calls the exchange; nil means a client with a 30s timeout.
	HTTPClient *http.Client
	// Logger receives the console's logs; nil discards them.
	Logger *slog.Logger
	// Store holds the console's records. nil means SQLite in
	// DataDir/console.db, opened by Open and closed when Run returns.
	Store records.Store
	// Now is the clock; nil means time.Now. Tests set it to move time.
	Now func() time.Time
}

// Console is a running console: Open it, then Run it.
type Console struct {
	opts       Options
	store      records.Store
	closeStore func() error
	log        *slog.Logger
	ln         net.Listener
	srv        *http.Server
	publicURL  string
	keys       *keyring
	verified   verifiedTokens // access tokens already verified (keys.go)
	ui         *ui.UI
	hc         *http.Client
	checked    checkCache
	seal       *sealer
	orgClients orgClients
	calls      singleflight.Group // identical module calls in flight (coalesce.go)

	mu      sync.Mutex
	modules map[string]builtModule // by instance id
}

// builtModule is a module built from an instance; key identifies the
// instance's state it was built from.
type builtModule struct {
	key string
	mod module.Module
}

// Open checks opts, opens the store, creates the first organisation and the
// user admin on a first start, loads or creates the signing keys and the web
// UI's session key, and listens on opts.Addr. Call Run to serve.
func Open(ctx context.Context, opts Options) (*Console, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:8080"
	}
	if opts.Organisation == "" {
		opts.Organisation = "Default"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ModuleTimeout <= 0 {
		opts.ModuleTimeout = 30 * time.Second
	}
	if opts.KeyRotation <= 0 {
		opts.KeyRotation = 24 * time.Hour
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Console{opts: opts, store: opts.Store, closeStore: func() error { return nil },
		log: log.With("component", "console"), hc: opts.HTTPClient, modules: map[string]builtModule{}}
	if c.store == nil {
		if opts.DataDir == "" {
			return nil, sightline.Errorf(sightline.Invalid, "console: no data directory and no store")
		}
		if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("console data directory: %w", err)
		}
		st, err := sqlite.OpenConsole(ctx, filepath.Join(opts.DataDir, "console.db"))
		if err != nil {
			return nil, fmt.Errorf("open console store: %w", err)
		}
		c.store, c.closeStore = st, st.Close
	}
	key, err := loadSecretKey(opts)
	if err == nil {
		c.seal, err = newSealer(key)
	}
	if err == nil {
		err = c.sealLegacy(ctx)
	}
	if err == nil {
		err = c.ensureAdmin(ctx)
	}
	if err != nil {
		c.closeStore()
		return nil, err
	}
	c.keys = &keyring{store: c.store, now: c.now, rotation: opts.KeyRotation, log: c.log}
	if err := c.keys.load(ctx); err != nil {
		c.closeStore()
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		c.closeStore()
		return nil, fmt.Errorf("console listen: %w", err)
	}
	c.ln = ln
	c.publicURL = strings.TrimSuffix(opts.PublicURL, "/")
	if c.publicURL == "" {
		c.publicURL = "http://" + ln.Addr().String()
	}
	if c.ui, err = c.newUI(ctx); err != nil {
		ln.Close()
		c.closeStore()
		return nil, err
	}
	c.srv = &http.Server{
		Handler:           c.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      c.maxModuleTimeout() + time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
	}
	return c, nil
}

// maxModuleTimeout is the longest any module call may take.
func (c *Console) maxModuleTimeout() time.Duration {
	d := c.opts.ModuleTimeout
	for _, t := range c.opts.ModuleTimeouts {
		d = max(d, t)
	}
	return d
}

// ensureAdmin creates, when the user admin does not exist, the first
// organisation (if there is none by that name) and admin in it, and stores
// the first organisation's exchange key.
func (c *Console) ensureAdmin(ctx context.Context) error {
	if _, err := c.store.User(ctx, AdminUser); sightline.ErrorKind(err) == sightline.NotFound {
		if err := c.createAdmin(ctx); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("console admin: %w", err)
	}
	if c.opts.ExchangeAPIKey == "" {
		return nil
	}
	org, err := c.store.OrganisationByName(ctx, c.opts.Organisation)
	if err != nil {
		return fmt.Errorf("console organisation %q: %w", c.opts.Organisation, err)
	}
	if stored, err := c.seal.open(org.ExchangeKey, adExchangeKey(org.ID)); err != nil || stored != c.opts.ExchangeAPIKey {
		if err := c.setExchangeKey(ctx, org.ID, c.opts.ExchangeAPIKey); err != nil {
			return fmt.Errorf("console exchange key: %w", err)
		}
	}
	return nil
}

func (c *Console) createAdmin(ctx context.Context) error {
	if c.opts.AdminPassword == nil {
		return sightline.Errorf(sightline.Invalid, "console: no administrator password for the first start")
	}
	pw, err := c.opts.AdminPassword()
	if err != nil {
		return fmt.Errorf("console admin password: %w", err)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return sightline.Wrap(sightline.Invalid, err, "admin password: "+err.Error())
	}
	org, err := c.store.OrganisationByName(ctx, c.opts.Organisation)
	if sightline.ErrorKind(err) == sightline.NotFound {
		org = records.Organisation{ID: uuid.NewString(), Name: c.opts.Organisation, CreatedAt: c.now()}
		err = c.store.CreateOrganisation(ctx, org)
	}
	if err != nil {
		return fmt.Errorf("console first organisation: %w", err)
	}
	err = c.store.CreateUser(ctx, records.User{Name: AdminUser, OrgID: org.ID, Role: records.RoleAdmin,
		PasswordHash: hash, CreatedAt: c.now()})
	if err != nil {
		return fmt.Errorf("console admin: %w", err)
	}
	c.log.Info("created organisation and administrator", "organisation", org.Name, "user", AdminUser)
	return nil
}

// Addr returns the address the console listens on.
func (c *Console) Addr() string { return c.ln.Addr().String() }

// PublicURL returns the console's base URL as clients reach it.
func (c *Console) PublicURL() string { return c.publicURL }

// Run serves until ctx ends, rotating signing keys on schedule, then shuts
// the HTTP server down gracefully (at most 10s) and closes the store it
// opened. It returns nil after a shutdown caused by ctx.
func (c *Console) Run(ctx context.Context) error {
	c.log.Info("console listening", "addr", c.Addr(), "public_url", c.publicURL)
	errc := make(chan error, 1)
	go func() { errc <- c.srv.Serve(c.ln) }()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			err = fmt.Errorf("console serve: %w", err)
			break loop
		case <-tick.C:
			if rerr := c.keys.maybeRotate(ctx); rerr != nil {
				c.log.Error("signing key rotation failed", "err", rerr)
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := c.srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("console shutdown: %w", serr)
	}
	if cerr := c.closeStore(); cerr != nil && err == nil {
		err = fmt.Errorf("close console store: %w", cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// RotateKeys makes a new signing key the one that signs; the previous keys
// stay published until the tokens they signed have expired.
func (c *Console) RotateKeys(ctx context.Context) error { return c.keys.rotate(ctx) }

func (c *Console) now() time.Time { return c.opts.Now().UTC() }
