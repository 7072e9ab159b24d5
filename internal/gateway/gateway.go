// Package gateway is the gateway role, Sightline's Email Security Appliance:
// it wires the SMTP edge, the screening pipeline, the durable queue, Message
// Tracking, mail_logs and the configuration with its commits, and serves the
// admin UI and the AsyncOS-compatible API on one HTTP port.
package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/clamd"
	"github.com/sightline/sightline/internal/dnsresolver"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/connector"
	"github.com/sightline/sightline/internal/gateway/ids"
	"github.com/sightline/sightline/internal/gateway/mailauth"
	"github.com/sightline/sightline/internal/gateway/mailbox"
	"github.com/sightline/sightline/internal/gateway/maillog"
	"github.com/sightline/sightline/internal/gateway/pipeline"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/gateway/smtpd"
	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

// Options configure a gateway at start. What an administrator changes while
// it runs lives in its committed configuration (package config) instead.
type Options struct {
	// DataDir holds the gateway's databases, spool, mailbox, logs and TLS
	// certificate. Required.
	DataDir string
	// SMTPAddr and HTTPAddr are the listen addresses; use "127.0.0.1:0" in
	// tests and read SMTPAddr() and HTTPAddr() after Open.
	SMTPAddr, HTTPAddr string
	// Hostname names the gateway in SMTP and the UI; "" means os.Hostname.
	Hostname string
	// DNSServers are "host:port" resolvers for SPF, DKIM, DMARC, reverse DNS
	// and MX lookups; nil means /etc/resolv.conf.
	DNSServers []string
	// Clamd is the ClamAV daemon ("unix:/path" or "tcp:host:port") written
	// into the first configuration; later changes go through a commit.
	Clamd string
	// Regions are the Threat Response Servers offered in the first
	// configuration; nil means the defaults of a local serve.
	Regions []config.Region
	// Version is the product version shown in logs and the API.
	Version string
	// AdminPassword gives the admin user's password on the first start.
	AdminPassword func() (string, error)
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// RetryMin and RetryMax override the queue's retry backoff (tests).
	RetryMin, RetryMax time.Duration
}

// Gateway is a running gateway role.
type Gateway struct {
	opts   Options
	logger *slog.Logger
	info   tracking.GatewayInfo

	store    *sqlite.GatewayStore
	tracks   *sqlite.TrackingStore
	spool    *sqlite.Spool
	maillog  *maillog.Writer
	recorder *tracking.Recorder
	ids      *ids.Allocator
	smtp     *smtpd.Server
	queue    *queue.Queue
	pipeline *pipeline.Pipeline
	config   *config.Manager
	cloud    *connector.Connector
	av       *switchableScanner
	metrics  *metrics
	apiAuth  *apiAuth
	creds    *credentials

	smtpLn, httpLn net.Listener
	http           *http.Server
	closers        []io.Closer // what Open opened, in order
}

// Open opens the gateway's stores, applies its running configuration and
// starts listening, so that its addresses are known when Open returns.
// Run serves; if Run is never called, Close releases what Open took.
func Open(ctx context.Context, o Options) (_ *Gateway, err error) {
	if o.DataDir == "" {
		return nil, errors.New("gateway: no data directory")
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("gateway data directory: %w", err)
	}
	g := &Gateway{opts: o, logger: logger}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()

	if g.store, err = sqlite.OpenGateway(ctx, filepath.Join(o.DataDir, "gateway.db")); err != nil {
		return nil, err
	}
	g.closers = append(g.closers, g.store)
	serial, err := g.setting(ctx, "serial_number", newSerialNumber)
	if err != nil {
		return nil, err
	}
	g.info = tracking.GatewayInfo{SerialNumber: serial, HostName: o.Hostname, Location: time.Local}
	if err := ensureAdmin(ctx, g.store, o.AdminPassword); err != nil {
		return nil, err
	}
	secret, err := g.setting(ctx, "api_jwt_secret", randomHex)
	if err != nil {
		return nil, err
	}
	g.creds = &credentials{store: g.store}
	g.apiAuth = &apiAuth{store: g.store, creds: g.creds, secret: []byte(secret), lifetime: 30 * time.Minute, now: time.Now}
	g.ids = ids.New(g.store, 0, logger)

	if g.tracks, err = sqlite.OpenTracking(ctx, filepath.Join(o.DataDir, "tracking.db")); err != nil {
		return nil, err
	}
	g.tracks.StartIndexer(logger)
	g.closers = append(g.closers, g.tracks)
	if g.spool, err = sqlite.OpenSpool(ctx, filepath.Join(o.DataDir, "spool.db")); err != nil {
		return nil, err
	}
	g.closers = append(g.closers, g.spool)
	if g.maillog, err = maillog.Open(filepath.Join(o.DataDir, "logs"), maillog.Options{Version: o.Version, Serial: serial}); err != nil {
		return nil, err
	}
	g.closers = append(g.closers, g.maillog)
	g.recorder = tracking.NewRecorder(g.tracks, g.maillog, logger)

	resolver := &dnsresolver.Resolver{Servers: o.DNSServers, Logger: logger}
	g.av = &switchableScanner{}
	g.pipeline = &pipeline.Pipeline{
		Auth:   &mailauth.Checker{Resolver: resolver, Logger: logger},
		AV:     g.av,
		Events: g.recorder,
		Logger: logger,
	}
	g.queue = &queue.Queue{
		Spool:    g.spool,
		Screener: g.pipeline,
		Recorder: g.recorder,
		Events:   g.recorder,
		IDs:      g.ids,
		Mailbox:  &mailbox.Mailbox{Dir: filepath.Join(o.DataDir, "mailbox")},
		Resolver: resolver,
		Hostname: o.Hostname,
		RetryMin: o.RetryMin,
		RetryMax: o.RetryMax,
		Logger:   logger,
	}
	cert, err := loadOrCreateCertificate(filepath.Join(o.DataDir, "tls"), o.Hostname)
	if err != nil {
		return nil, err
	}
	g.smtp = &smtpd.Server{
		Hostname:  o.Hostname,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		IDs:       g.ids,
		Events:    g.recorder,
		Auth:      smtpAuth{g.creds},
		Resolver:  resolver,
		Logger:    logger.With("component", "smtpd"),
	}
	g.metrics = newMetrics(g.smtp, g.queue, g.spool, g.tracks)
	g.smtp.Queue = timedQueue{g.queue, g.metrics}

	g.cloud = &connector.Connector{
		Store: g.store,
		Device: connector.DeviceInfo{HostName: o.Hostname, Type: "ESA", Version: o.Version,
			SerialNumber: serial, ConnectorVersion: o.Version},
		Logger: logger,
	}
	initial := config.Default(o.Hostname)
	initial.AntiVirus.Clamd = o.Clamd
	if o.Regions != nil {
		initial.Cloud.Regions = o.Regions
	}
	if g.config, err = config.NewManager(ctx, g.store, initial, g.apply, logger.With("component", "config")); err != nil {
		return nil, err
	}

	handler, err := g.routes(ctx)
	if err != nil {
		return nil, err
	}
	g.cloud.Handler = handler // the exchange reaches the same API through the tunnel
	g.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	var lc net.ListenConfig
	if g.smtpLn, err = lc.Listen(ctx, "tcp", o.SMTPAddr); err != nil {
		return nil, fmt.Errorf("gateway SMTP: %w", err)
	}
	g.closers = append(g.closers, g.smtpLn)
	if g.httpLn, err = lc.Listen(ctx, "tcp", o.HTTPAddr); err != nil {
		return nil, fmt.Errorf("gateway HTTP: %w", err)
	}
	g.closers = append(g.closers, g.httpLn)
	return g, nil
}

// apply pushes a configuration into the running components.
func (g *Gateway) apply(c *config.Config) error {
	rules := *c.Screening
	if c.AntiVirus.Clamd == "" {
		rules.AntiVirus.Enabled = false // nothing to scan with
		g.av.set(nil)
	} else {
		network, address, err := clamd.ParseAddress(c.AntiVirus.Clamd)
		if err != nil {
			return err
		}
		g.av.set(&clamd.Client{Network: network, Address: address})
	}
	if err := g.pipeline.SetRules(&rules); err != nil {
		return err
	}
	g.smtp.SetPolicy(c.SMTP)
	g.queue.SetRoutes(c.Routes)
	g.cloud.Apply(c.Cloud.ThreatResponse, connector.Region(c.Cloud.Chosen()))
	return nil
}

// SMTPAddr is the SMTP listener's address.
func (g *Gateway) SMTPAddr() string { return g.smtpLn.Addr().String() }

// HTTPAddr is the UI and API listener's address.
func (g *Gateway) HTTPAddr() string { return g.httpLn.Addr().String() }

// Config is the gateway's configuration manager.
func (g *Gateway) Config() *config.Manager { return g.config }

// Run serves SMTP and HTTP and runs the queue until ctx ends, then shuts
// down gracefully: SMTP sessions get 421, the queue stops, tracking and
// mail_logs are flushed, and the stores are closed.
func (g *Gateway) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.recorder.Run(context.WithoutCancel(ctx)) })
	queueCtx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	queueDone := make(chan struct{})
	eg.Go(func() error { defer close(queueDone); return g.queue.Run(queueCtx) })
	eg.Go(func() error { return g.cloud.Run(ctx) })
	eg.Go(func() error {
		if err := g.smtp.Serve(g.smtpLn); !errors.Is(err, smtpd.ErrServerClosed) {
			return fmt.Errorf("gateway SMTP: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		if err := g.http.Serve(g.httpLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gateway HTTP: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		smtpErr := g.smtp.Shutdown(shutCtx)
		httpErr := g.http.Shutdown(shutCtx)
		stopQueue()
		<-queueDone // its last events must reach tracking before the recorder closes
		g.recorder.Close()
		return errors.Join(smtpErr, httpErr)
	})
	err := eg.Wait()
	if cerr := g.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close releases the stores and listeners, the last opened first. Run calls
// it on its way out.
func (g *Gateway) Close() error {
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		if err := g.closers[i].Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	g.closers = nil
	return errors.Join(errs...)
}

// setting returns a stored value, creating it with make on first use.
func (g *Gateway) setting(ctx context.Context, name string, make func() string) (string, error) {
	v, ok, err := g.store.Setting(ctx, name)
	if err != nil || ok {
		return v, err
	}
	v = make()
	return v, g.store.SetSetting(ctx, name, v)
}

// newSerialNumber returns an AsyncOS-style serial: 20 and 12 uppercase hex
// digits joined by a dash.
func newSerialNumber() string {
	h := strings.ToUpper(randomHex())
	return h[:20] + "-" + h[20:32]
}

func randomHex() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// smtpAuth checks SMTP AUTH credentials against the gateway's users.
type smtpAuth struct{ creds *credentials }

func (a smtpAuth) Authenticate(ctx context.Context, user, pass string) error {
	_, err := a.creds.authenticate(ctx, user, pass)
	return err
}

// switchableScanner is the pipeline's anti-virus: a clamd client replaced on
// commit.
type switchableScanner struct{ c atomic.Pointer[clamd.Client] }

func (s *switchableScanner) set(c *clamd.Client) { s.c.Store(c) }

func (s *switchableScanner) Scan(ctx context.Context, r io.Reader) (string, error) {
	c := s.c.Load()
	if c == nil {
		return "", errors.New("anti-virus is not configured")
	}
	return c.Scan(ctx, r)
}

// DataDir is the gateway's data directory.
func (g *Gateway) DataDir() string { return g.opts.DataDir }

// Queue is the gateway's queue, with its quarantines.
func (g *Gateway) Queue() *queue.Queue { return g.queue }
