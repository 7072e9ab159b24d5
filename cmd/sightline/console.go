package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/esa"
	"github.com/sightline/sightline/internal/console/module/relay"
)

// consoleFlags are the settings of the console role.
type consoleFlags struct {
	addr, publicURL string
}

func (c *consoleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "console-addr", "127.0.0.1:8080", "console UI and CTR API listen `address`")
	fs.StringVar(&c.publicURL, "console-url", "", "the console's public base `URL` (default: http://<console-addr>)")
}

// consoleOptions wires a console to the exchange of its region: apiKey is
// the default organisation's API key there (every organisation keeps its
// own in the console), and the module kinds are the gateway module (through
// that exchange, with the key of the module's organisation) and relay
// modules.
func (c *consoleFlags) options(dataDir, exchangeURL, apiKey, gatewayURL string, logger *slog.Logger,
	adminPassword func() (string, error)) (console.Options, *signer) {
	// Investigations fan out many calls to the exchange at once: keep
	// enough connections open to reuse them rather than dial for each.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	hc := &http.Client{Timeout: 60 * time.Second, Transport: transport}
	sign := &signer{}
	logger = logger.With("role", "console")
	return console.Options{
		Addr:           c.addr,
		DataDir:        filepath.Join(dataDir, "console"),
		PublicURL:      c.publicURL,
		ExchangeURL:    exchangeURL,
		ExchangeAPIKey: apiKey,
		AdminPassword:  adminPassword,
		Logger:         logger,
		HTTPClient:     hc,
		ExchangeModules: map[string]console.ExchangeFactory{
			module.KindESA: func(inst module.Instance, exchange *console.OrgExchange) (module.Module, error) {
				return esa.New(inst, exchange, esa.Options{GatewayURL: gatewayURL, Logger: logger.With("module", inst.Name)})
			},
		},
		Modules: map[string]console.Factory{
			module.KindRelay: func(inst module.Instance) (module.Module, error) {
				return relay.New(inst, relay.Options{Signer: sign, Logger: logger.With("module", inst.Name)})
			},
		},
	}, sign
}

// signer signs relay configuration tokens with the console's keys, once the
// console exists (the module factories are made before it).
type signer struct{ c *console.Console }

func (s *signer) Sign(claims map[string]any) (string, error) {
	if s.c == nil {
		return "", errors.New("console not started")
	}
	return s.c.Sign(claims)
}

// exchangeAPIKey returns the console's API key for the exchange, kept in
// the data directory; create makes one on the first start.
func exchangeAPIKey(dir string, create func() (string, error)) (string, error) {
	file := filepath.Join(dir, "exchange-api-key")
	if b, err := os.ReadFile(file); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	key, err := create()
	if err != nil {
		return "", fmt.Errorf("create the console's exchange API key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	return key, os.WriteFile(file, []byte(key+"\n"), 0o600)
}

func runConsole(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "api-client":
			return runConsoleAPIClient(ctx, args[1:], getenv, stdout, stderr)
		case "module":
			return runConsoleModule(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	fs := newFlagSet("console", stderr)
	var common commonFlags
	var cf consoleFlags
	common.register(fs)
	cf.register(fs)
	exURL := fs.String("exchange", "AMERICAS", "the exchange of this console's region: `URL` or region name")
	apiKey := fs.String("exchange-api-key", "", "the organisation's exchange API `key` (env SIGHTLINE_EXCHANGE_API_KEY)")
	gatewayURL := fs.String("gateway-url", "", "the gateway UI's base `URL`, for links in sightings")
	setUsage(fs, "console [flags]             run the console",
		"console api-client create --name N --scopes inspect,enrich,…",
		"console module add esa --name N --device ID --timeframe 30")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *apiKey == "" {
		return usageError("--exchange-api-key is required: create one in the exchange under API Keys")
	}
	exchange, err := exchangeURL(*exURL)
	if err != nil {
		return err
	}
	logger, err := common.logger(stderr)
	if err != nil {
		return err
	}
	opts, sign := cf.options(common.data, exchange, *apiKey, *gatewayURL, logger, adminPassword(getenv, stdout))
	c, err := console.Open(ctx, opts)
	if err != nil {
		return err
	}
	sign.c = c
	fmt.Fprintf(stdout, "Sightline console %s: %s\n", version, c.PublicURL())
	return c.Run(ctx)
}

func consoleClient(fs *flag.FlagSet) (*clientFlags, *string) {
	var c clientFlags
	c.register(fs)
	return &c, fs.String("console", "http://127.0.0.1:8080", "console `URL`")
}

func runConsoleAPIClient(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError("usage: sightline console api-client create --name N --scopes inspect,enrich,…")
	}
	fs := newFlagSet("console api-client create", stderr)
	client, base := consoleClient(fs)
	name := fs.String("name", "", "client `name`")
	scopes := fs.String("scopes", "inspect,enrich", "comma-separated `scopes`: inspect, enrich, response, casebook, private-intel, admin")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	if *name == "" {
		return usageError("--name is required")
	}
	if err := client.resolve(getenv); err != nil {
		return err
	}
	body, err := callAPI(ctx, http.MethodPost, *base, "/api/v1/clients",
		map[string]any{"name": *name, "scopes": strings.Split(*scopes, ",")}, *client)
	if err != nil {
		return err
	}
	var out struct {
		ClientID     string   `json:"client_id"`
		ClientSecret string   `json:"client_secret"`
		Scopes       []string `json:"scopes"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "client_id:     %s\nclient_secret: %s\nscopes:        %s\n", out.ClientID, out.ClientSecret, strings.Join(out.Scopes, " "))
	fmt.Fprintln(stderr, "The secret is shown only this once.")
	return nil
}

func runConsoleModule(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "add" || args[1] != "esa" {
		return usageError("usage: sightline console module add esa --name N --device ID --timeframe 30")
	}
	fs := newFlagSet("console module add esa", stderr)
	client, base := consoleClient(fs)
	name := fs.String("name", "Email Security Appliance", "module `name`")
	device := fs.String("device", "", "registered device `ID` (see 'sightline exchange devices')")
	timeframe := fs.Int("timeframe", 30, "request timeframe in `days`")
	if err := parseFlags(fs, args[2:], getenv); err != nil {
		return err
	}
	if *device == "" {
		return usageError("--device is required: the ID of a registered gateway")
	}
	if err := client.resolve(getenv); err != nil {
		return err
	}
	body, err := callAPI(ctx, http.MethodPost, *base, "/api/v1/modules", map[string]any{
		"kind": module.KindESA, "name": *name, "enabled": true,
		"settings": map[string]any{"device_id": *device, "timeframe_days": *timeframe},
	}, *client)
	if err != nil {
		return err
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Module %q added: %s\n", *name, out.ID)
	return nil
}
