package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/demo"
	"github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/gateway"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/password"
)

// gatewayFlags are the settings of the gateway role.
type gatewayFlags struct {
	smtpAddr, httpAddr, hostname, dns, clamd string
}

func (g *gatewayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.smtpAddr, "smtp-addr", "127.0.0.1:2525", "gateway SMTP listen `address`")
	fs.StringVar(&g.httpAddr, "gateway-addr", "127.0.0.1:6080", "gateway UI and AsyncOS API listen `address`")
	fs.StringVar(&g.hostname, "hostname", "", "gateway host `name` for SMTP and the UI (default: this machine's)")
	fs.StringVar(&g.dns, "dns", "", "comma-separated DNS `servers` (host:port) for SPF, DKIM, DMARC and reverse DNS (default: /etc/resolv.conf)")
	fs.StringVar(&g.clamd, "clamd", "", "ClamAV clamd `address` for anti-virus: unix:/path or tcp:host:port (default: anti-virus off)")
}

func (g *gatewayFlags) options(dataDir string, logger *slog.Logger, adminPassword func() (string, error)) gateway.Options {
	var dns []string
	for _, s := range strings.Split(g.dns, ",") {
		if s = strings.TrimSpace(s); s != "" {
			dns = append(dns, s)
		}
	}
	return gateway.Options{
		DataDir:       filepath.Join(dataDir, "gateway"),
		SMTPAddr:      g.smtpAddr,
		HTTPAddr:      g.httpAddr,
		Hostname:      g.hostname,
		DNSServers:    dns,
		Clamd:         g.clamd,
		Version:       version,
		AdminPassword: adminPassword,
		Logger:        logger.With("role", "gateway"),
	}
}

// commonFlags are the settings every running role shares.
type commonFlags struct {
	data, logLevel, logFormat string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", "./sightline-data", "data `directory`")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log `format`: text or json")
}

func (c *commonFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError(fmt.Sprintf("--log-level %q: want debug, info, warn or error", c.logLevel))
	}
	opts := &slog.HandlerOptions{Level: level}
	var l *slog.Logger
	switch c.logFormat {
	case "text":
		l = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		l = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return nil, usageError(fmt.Sprintf("--log-format %q: want text or json", c.logFormat))
	}
	// Also the process's default, for what logs without a logger of its
	// own (a database's slow migration step).
	slog.SetDefault(l)
	return l, nil
}

// adminPassword returns the password every role gives the admin user on its
// first start: SIGHTLINE_ADMIN_PASSWORD, or one generated once per process
// and printed, so that one password opens every role of serve.
func adminPassword(getenv env, stdout io.Writer) func() (string, error) {
	var once sync.Once
	var pw string
	return func() (string, error) {
		once.Do(func() {
			if pw = getenv("SIGHTLINE_ADMIN_PASSWORD"); pw != "" {
				return
			}
			pw = password.Generate()
			fmt.Fprintf(stdout, "\nCreated the administrator: user admin, password %s\n"+
				"It is shown only this once. Set SIGHTLINE_ADMIN_PASSWORD before the first start to choose it.\n\n", pw)
		})
		return pw, nil
	}
}

func runServe(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var common commonFlags
	var gw gatewayFlags
	var ex exchangeFlags
	var cf consoleFlags
	common.register(fs)
	gw.register(fs)
	ex.register(fs)
	cf.register(fs)
	demoMode := fs.Bool("demo", false, "start with the journey done and demo mail flowing through the gateway")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	logger, err := common.logger(stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(common.data, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	admin := adminPassword(getenv, stdout)
	if *demoMode && getenv("SIGHTLINE_ADMIN_PASSWORD") == "" {
		// The demo signs in to every role on every start: it keeps the password.
		pw, err := demo.AdminPassword(filepath.Join(common.data, "demo"), password.Generate)
		if err != nil {
			return err
		}
		admin = func() (string, error) { return pw, nil }
		fmt.Fprintf(stdout, "Demo: sign in as admin with the password %s (kept in %s)\n", pw, filepath.Join(common.data, "demo"))
	}

	// Open everything first, so that a taken port stops the start before
	// anything serves. An error here ends the process, which releases the rest.
	var runs []func(context.Context) error
	var exchanges []*exchange.Exchange
	for _, r := range regions {
		x, err := exchange.Open(ctx, ex.options(r.label, common.data, logger, admin))
		if err != nil {
			return fmt.Errorf("exchange %s: %w", r.label, err)
		}
		exchanges = append(exchanges, x)
		runs = append(runs, x.Run)
	}
	gwOpts := gw.options(common.data, logger, admin)
	for i, x := range exchanges {
		gwOpts.Regions = append(gwOpts.Regions, config.Region{Label: regions[i].label, URL: "http://" + x.Addr()})
	}
	g, err := gateway.Open(ctx, gwOpts)
	if err != nil {
		return err
	}
	runs = append(runs, g.Run)

	// The console pairs with the AMERICAS exchange, as an organisation's
	// Threat Response does with its region, through an API key made once.
	key, err := exchangeAPIKey(filepath.Join(common.data, "console"), func() (string, error) {
		return exchanges[0].CreateAPIKey(ctx, "Default", "console")
	})
	if err != nil {
		return err
	}
	consoleOpts, sign := cf.options(common.data, "http://"+exchanges[0].Addr(), key, "http://"+g.HTTPAddr(), logger, admin)
	c, err := console.Open(ctx, consoleOpts)
	if err != nil {
		return err
	}
	sign.c = c
	runs = append(runs, c.Run)

	fmt.Fprintf(stdout, "Sightline %s is running (data in %s)\n", version, common.data)
	fmt.Fprintf(stdout, "  gateway SMTP              %s\n", g.SMTPAddr())
	fmt.Fprintf(stdout, "  gateway UI and API        http://%s/\n", g.HTTPAddr())
	for i, x := range exchanges {
		fmt.Fprintf(stdout, "  exchange %-16s http://%s/\n", regions[i].label, x.Addr())
	}
	fmt.Fprintf(stdout, "  console                   %s/\n", strings.TrimSuffix(c.PublicURL(), "/"))
	fmt.Fprintln(stdout, "Sign in as admin. Press Ctrl-C to stop.")
	if *demoMode {
		pw, _ := admin()
		runs = append(runs, func(ctx context.Context) error {
			return demo.Run(ctx, demo.Setup{Gateway: g, GatewayURL: "http://" + g.HTTPAddr(), SMTPAddr: g.SMTPAddr(),
				Region: regions[0].label, ExchangeURL: "http://" + exchanges[0].Addr(), ConsoleURL: c.PublicURL(),
				User: "admin", Password: pw, StateDir: filepath.Join(common.data, "demo"), Out: stdout,
				Logger: logger.With("role", "demo")})
		})
	}

	eg, ctx := errgroup.WithContext(ctx)
	for _, run := range runs {
		eg.Go(func() error { return run(ctx) })
	}
	return eg.Wait()
}
