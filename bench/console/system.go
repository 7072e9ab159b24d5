package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/console"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/esa"
	"github.com/sightline/sightline/internal/exchange"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/gateway"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/connector"
)

const (
	adminPass  = "console-bench-pass"
	moduleName = "Email Security Appliance"
)

// system is the three roles running in this process, wired as
// cmd/sightline/serve.go wires them, and what the journey set up.
type system struct {
	gatewayURL, exchangeURL, consoleURL string
	cancel                              context.CancelFunc
	done                                chan error

	// Set by the journey.
	clientID, clientSecret string

	// hc is the benchmark's own client: enough idle connections for every
	// concurrent investigation, so that the client does not dial per request.
	hc *http.Client
	// checked holds, by probe body, the last answer enrich decoded and
	// found right ([]byte).
	checked sync.Map
}

// start opens the AMERICAS and EUROPE exchanges, the gateway and the console
// on 127.0.0.1:0 with their data in dir, and runs them.
func start(ctx context.Context, dir string, logger *slog.Logger) (*system, error) {
	admin := func() (string, error) { return adminPass, nil }
	var runs []func(context.Context) error
	var exchanges []*exchange.Exchange
	var regions []config.Region
	for _, label := range []string{"AMERICAS", "EUROPE"} {
		x, err := exchange.Open(ctx, exchange.Options{Region: label, Addr: "127.0.0.1:0",
			DataDir: filepath.Join(dir, "exchange-"+strings.ToLower(label)), AdminPassword: admin,
			Logger: logger.With("role", "exchange")})
		if err != nil {
			return nil, fmt.Errorf("exchange %s: %w", label, err)
		}
		exchanges = append(exchanges, x)
		regions = append(regions, config.Region{Label: label, URL: "http://" + x.Addr()})
		runs = append(runs, x.Run)
	}
	g, err := gateway.Open(ctx, gateway.Options{DataDir: filepath.Join(dir, "gateway"), SMTPAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", Hostname: "bench.gateway.test",
		Regions: regions, Version: "bench", AdminPassword: admin, Logger: logger.With("role", "gateway")})
	if err != nil {
		return nil, err
	}
	runs = append(runs, g.Run)

	// As serve does (cmd/sightline/console.go): the console pairs with
	// AMERICAS through an API key, and its gateway module reaches the device
	// through that exchange with a 60 s client that keeps up to 64 idle
	// connections.
	key, err := exchanges[0].CreateAPIKey(ctx, "Default", "console")
	if err != nil {
		return nil, fmt.Errorf("create the console's exchange API key: %w", err)
	}
	exURL := "http://" + exchanges[0].Addr()
	gwURL := "http://" + g.HTTPAddr()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	exc := exchangeclient.NewKey(exURL, &http.Client{Timeout: 60 * time.Second, Transport: transport}, key)
	clog := logger.With("role", "console")
	c, err := console.Open(ctx, console.Options{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "console"),
		ExchangeURL: exURL, ExchangeAPIKey: key, AdminPassword: admin, Logger: clog,
		Modules: map[string]console.Factory{
			module.KindESA: func(inst module.Instance) (module.Module, error) {
				return esa.New(inst, exc, esa.Options{GatewayURL: gwURL, Logger: clog.With("module", inst.Name)})
			},
		}})
	if err != nil {
		return nil, err
	}
	runs = append(runs, c.Run)

	ctx, cancel := context.WithCancel(context.Background())
	eg, ctx := errgroup.WithContext(ctx)
	for _, run := range runs {
		eg.Go(func() error { return run(ctx) })
	}
	s := &system{gatewayURL: gwURL, exchangeURL: exURL, consoleURL: strings.TrimSuffix(c.PublicURL(), "/"),
		cancel: cancel, done: make(chan error, 1),
		hc: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}}
	go func() { s.done <- eg.Wait() }()
	return s, nil
}

func (s *system) stop() {
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
	}
}

// call sends a JSON request with basic auth and decodes a 2xx answer into out.
func (s *system) call(ctx context.Context, method, u, user, pass string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// cloud waits until the gateway's cloud status satisfies ok.
func (s *system) cloud(ctx context.Context, what string, ok func(gateway.CloudStatus) bool) (gateway.CloudStatus, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st gateway.CloudStatus
		if err := s.call(ctx, http.MethodGet, s.gatewayURL+"/api/v1/cloud", "admin", adminPass, nil, &st); err != nil {
			return st, err
		}
		if ok(st) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("the gateway never reached %s: last status %+v", what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// journey enables Threat Response on the gateway, registers it with the
// AMERICAS exchange, turns on Threat Response for the organisation, adds the
// gateway module to the console and creates an API client, all by API.
func (s *system) journey(ctx context.Context, out io.Writer) error {
	began := time.Now()
	gw := s.gatewayURL
	if err := s.call(ctx, http.MethodPut, gw+"/api/v1/cloud", "admin", adminPass,
		map[string]any{"threat_response": true, "server": "AMERICAS"}, nil); err != nil {
		return err
	}
	if err := s.call(ctx, http.MethodPost, gw+"/api/v1/config/commit", "admin", adminPass,
		map[string]string{"comment": "console bench"}, nil); err != nil {
		return err
	}
	if _, err := s.cloud(ctx, "ENABLED", func(st gateway.CloudStatus) bool { return st.State == connector.Enabled }); err != nil {
		return err
	}
	ex := exchangeclient.NewAdmin(s.exchangeURL, s.hc, "admin", adminPass)
	tok, err := ex.TokenCreate(ctx, 1, "1h")
	if err != nil {
		return err
	}
	if err := s.call(ctx, http.MethodPost, gw+"/api/v1/cloud/register", "admin", adminPass,
		map[string]string{"token": tok.Token}, nil); err != nil {
		return err
	}
	st, err := s.cloud(ctx, "REGISTERED with the tunnel up", func(st gateway.CloudStatus) bool {
		return st.State == connector.Registered && st.TunnelConnected
	})
	if err != nil {
		return err
	}
	if err := ex.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		return err
	}
	if err := s.call(ctx, http.MethodPost, s.consoleURL+"/api/v1/modules", "admin", adminPass, map[string]any{
		"kind": module.KindESA, "name": moduleName, "enabled": true,
		"settings": map[string]any{"device_id": st.DeviceID, "timeframe_days": 30},
	}, nil); err != nil {
		return err
	}
	var cl struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := s.call(ctx, http.MethodPost, s.consoleURL+"/api/v1/clients", "admin", adminPass,
		map[string]any{"name": "console bench", "scopes": []string{"inspect", "enrich"}}, &cl); err != nil {
		return err
	}
	s.clientID, s.clientSecret = cl.ClientID, cl.ClientSecret
	fmt.Fprintf(out, "journey done in %s: device %s registered, module added, API client %s\n",
		time.Since(began).Round(time.Millisecond), st.DeviceID, cl.ClientID)
	return nil
}

// accessToken gets a fresh console access token with the client credentials.
func (s *system) accessToken(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.consoleURL+"/iroh/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.clientID, s.clientSecret)
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token: %s %v", resp.Status, err)
	}
	if out.AccessToken == "" {
		return "", errors.New("token: no access_token in the answer")
	}
	return out.AccessToken, nil
}
