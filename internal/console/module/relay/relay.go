// Package relay is the console's client of third-party relay modules: it
// calls a module's HTTP routes (relay-api.md §1–§4) with the bearer of its
// authentication style (§5) and turns the answers, or the transport
// failures, into module.Module results.
//
// TLS: a module URL must be https, except http to a loopback address
// (127.0.0.0/8, ::1, localhost), which serves tests and relays on the
// console's own machine. Redirects are refused: a 3xx answer is a module
// error, so the bearer is never sent to another host.
package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
)

// Authentication styles of Settings.Auth.Style (relay-api.md §5).
const (
	// StyleStatic sends a token pasted into the module form verbatim
	// (auth-type "bearer", §5.1); the console never decodes it.
	StyleStatic = "static"
	// StyleConfigToken mints a configuration token for every call
	// (auth-type "configuration-token", §5.2), signed RS256 by the
	// console's Signer or HS256 with Auth.Key.
	StyleConfigToken = "config_token"
)

// Settings are a relay instance's settings, module.Instance.Settings.
type Settings struct {
	// URL is the module's base URL; routes are joined to it with one "/".
	// Required; https, or http to a loopback address.
	URL string `json:"url"`
	// Auth says how the console authenticates to the module. Required.
	Auth Auth `json:"auth"`
	// SupportedAPIs are the routes the module serves (module.Route…);
	// the console calls no other. Required.
	SupportedAPIs []string `json:"supported_apis"`
	// TimeoutSeconds bounds each call, 1–300; zero means 30.
	TimeoutSeconds int `json:"timeout_seconds"`
	// CAPEM, if set, holds PEM certificates trusted for the module's TLS
	// in addition to the system roots.
	CAPEM string `json:"ca_pem,omitempty"`
}

// Auth is the authentication of a relay instance.
type Auth struct {
	Style string `json:"style"` // StyleStatic or StyleConfigToken
	// Token is the static bearer (StyleStatic).
	Token string `json:"token,omitempty"`
	// Alg is "RS256" (default) or "HS256" (StyleConfigToken).
	Alg string `json:"alg,omitempty"`
	// Key is the HS256 secret, configuration-token-key (StyleConfigToken, HS256).
	Key string `json:"key,omitempty"`
	// Audience overrides the aud claim, configuration-token-audience; ""
	// means URL without its trailing slash.
	Audience string `json:"audience,omitempty"`
	// JWKSHost overrides the jwks_host claim, custom_jwks_host; "" means
	// Options.JWKSHost.
	JWKSHost string `json:"jwks_host,omitempty"`
	// Claims are the instance's configuration values, keyed by their
	// configuration_spec key: "custom_key" is sent as the claim "key".
	Claims map[string]string `json:"claims,omitempty"`
}

// Signer signs configuration tokens with the console's published key: it
// returns a compact RS256 JWT of claims whose header names the kid of that
// key in the console's JWKS.
type Signer interface {
	Sign(claims map[string]any) (string, error)
}

// Options configure relay modules beyond their settings.
type Options struct {
	// Signer signs RS256 configuration tokens; required for that style.
	Signer Signer
	// JWKSHost is the console's public host[:port], the default jwks_host
	// claim of configuration tokens.
	JWKSHost string
	// Now is the clock of token times; nil means time.Now.
	Now func() time.Time
	// Logger receives the module's logs; nil discards them. Tokens are
	// never logged.
	Logger *slog.Logger
}

// Limits of a call (relay-api.md §1).
const (
	DefaultTimeout = 30 * time.Second
	MaxTimeout     = 300 * time.Second
	MaxResponse    = 16 << 20 // bytes of an answer
	tokenLifetime  = 300 * time.Second
)

var (
	_ module.Module = (*relayModule)(nil)
	_ module.Tiler  = (*relayModule)(nil)
)

// relayModule implements module.Module and module.Tiler over HTTP.
type relayModule struct {
	inst     module.Instance
	s        Settings
	base     string // URL without trailing slashes
	timeout  time.Duration
	supports map[string]bool
	client   *http.Client
	opts     Options
	logger   *slog.Logger
}

// New returns the module of instance inst, of kind module.KindRelay with
// Settings as its settings. Invalid settings are an Invalid
// *sightline.Error naming the field.
func New(inst module.Instance, opts Options) (module.Module, error) {
	if inst.Kind != module.KindRelay {
		return nil, sightline.Errorf(sightline.Invalid, "module %s is of kind %q, not %q", inst.ID, inst.Kind, module.KindRelay)
	}
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(inst.Settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, sightline.Wrap(sightline.Invalid, err, "relay module settings are not valid JSON: "+err.Error())
	}
	m := &relayModule{inst: inst, s: s, base: strings.TrimRight(s.URL, "/"), supports: map[string]bool{}, opts: opts}
	if err := m.check(); err != nil {
		return nil, err
	}
	if m.opts.Now == nil {
		m.opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m.logger = logger.With("component", "relay_module", "module_instance_id", inst.ID)
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAPEM != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(s.CAPEM)) {
			return nil, sightline.Errorf(sightline.Invalid, "relay module settings: ca_pem holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	m.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: m.timeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return m, nil
}

// check validates the settings and fills the derived fields.
func (m *relayModule) check() error {
	bad := func(format string, args ...any) error {
		return sightline.Errorf(sightline.Invalid, "relay module settings: "+format, args...)
	}
	if m.s.URL == "" {
		return bad("url is required")
	}
	if err := CheckURL(m.s.URL); err != nil {
		return bad("url %s", err)
	}
	switch {
	case m.s.TimeoutSeconds == 0:
		m.timeout = DefaultTimeout
	case m.s.TimeoutSeconds < 0 || time.Duration(m.s.TimeoutSeconds)*time.Second > MaxTimeout:
		return bad("timeout_seconds %d is out of range 1–%d", m.s.TimeoutSeconds, int(MaxTimeout/time.Second))
	default:
		m.timeout = time.Duration(m.s.TimeoutSeconds) * time.Second
	}
	if len(m.s.SupportedAPIs) == 0 {
		return bad("supported_apis is empty: list the routes the module serves")
	}
	for _, r := range m.s.SupportedAPIs {
		if !slices.Contains(module.Routes, r) {
			return bad("supported_apis: unknown route %q; want some of %s", r, strings.Join(module.Routes, ", "))
		}
		m.supports[r] = true
	}
	a := m.s.Auth
	switch a.Style {
	case StyleStatic:
		if a.Token == "" {
			return bad("auth.token is required with the static style")
		}
	case StyleConfigToken:
		switch a.Alg {
		case "", "RS256":
			if m.opts.Signer == nil {
				return bad("RS256 configuration tokens need the console's signing key, which is not configured")
			}
			if a.JWKSHost == "" && m.opts.JWKSHost == "" {
				return bad("auth.jwks_host is required: the console's public host is not configured")
			}
		case "HS256":
			if len(a.Key) < 32 {
				return bad("auth.key must be an HS256 secret of at least 32 bytes")
			}
		default:
			return bad("auth.alg %q: want RS256 or HS256", a.Alg)
		}
	default:
		return bad("auth.style %q: want %q or %q", a.Style, StyleStatic, StyleConfigToken)
	}
	return nil
}

// CheckURL checks a module's base URL: https://host[:port][/path], or http
// to a loopback address; no user, query or fragment. The error explains
// what is wrong, quoting the URL.
func CheckURL(raw string) error {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	switch {
	case err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: want https://host[:port][/path]", raw)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return fmt.Errorf("%q: http is allowed only to a loopback address; use https", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q: want https://host[:port][/path]", raw)
	}
	return nil
}

// loopback reports whether host names the local machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Supports reports whether the module lists route in supported_apis.
func (m *relayModule) Supports(route string) bool { return m.supports[route] }

// bearer returns the Authorization token of one call.
func (m *relayModule) bearer() (string, error) {
	a := m.s.Auth
	if a.Style == StyleStatic {
		return a.Token, nil
	}
	now := m.opts.Now()
	claims := map[string]any{}
	for k, v := range a.Claims {
		claims[strings.TrimPrefix(k, "custom_")] = v
	}
	claims["jwks_host"] = cmpOr(a.JWKSHost, m.opts.JWKSHost)
	claims["aud"] = cmpOr(a.Audience, m.base)
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(tokenLifetime).Unix()
	claims["jti"] = uuid.NewString()
	if a.Alg == "HS256" {
		return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(a.Key))
	}
	return m.opts.Signer.Sign(claims)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// envelope is a module's answer (relay-api.md §3).
type envelope struct {
	Data   json.RawMessage `json:"data"`
	Errors []module.Error  `json:"errors"`
}

// call posts body (nil: none) to route and returns the envelope. A non-nil
// error is a transport failure, a *sightline.Error whose message is the
// console-api.md §5.3 text (ErrorFor turns it into the module error).
func (m *relayModule) call(ctx context.Context, route string, body any) (envelope, error) {
	var env envelope
	if !m.supports[route] {
		return env, sightline.Errorf(sightline.Invalid, "module does not list %s in its supported APIs, so the console does not call it", route)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return env, fmt.Errorf("encode %s request: %w", route, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.base+"/"+route, rd)
	if err != nil {
		return env, fmt.Errorf("relay %s: %w", route, err)
	}
	tok, err := m.bearer()
	if err != nil {
		return env, sightline.Wrap(sightline.Internal, err, "the console cannot sign the module's configuration token")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return env, m.transportError(ctx, route, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return env, badAnswer(route, resp.StatusCode, "status "+resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return env, m.transportError(ctx, route, err)
	}
	return decode(route, b)
}

// decode reads the body of a 200 answer: a JSON object of at most
// MaxResponse bytes, {"data": …, "errors": […]}, whose errors are completed
// by normalizeError.
func decode(route string, b []byte) (envelope, error) {
	var env envelope
	if len(b) > MaxResponse {
		return env, badAnswer(route, http.StatusOK, fmt.Sprintf("answer larger than %d bytes", MaxResponse))
	}
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) || json.Unmarshal(b, &env) != nil {
		return envelope{}, badAnswer(route, http.StatusOK, "the body is not a JSON object")
	}
	for i := range env.Errors {
		env.Errors[i] = normalizeError(env.Errors[i])
	}
	return env, nil
}

// transportError explains a call that got no answer.
func (m *relayModule) transportError(ctx context.Context, route string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return sightline.Wrap(sightline.Unavailable, err,
			fmt.Sprintf("module did not answer within %d s", int(m.timeout/time.Second)))
	}
	return sightline.Wrap(sightline.Unavailable, err, "module cannot be reached: "+shortCause(err))
}

// shortCause is the innermost text of a network error, without the URL.
func shortCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// badAnswer is an answer that is not a 200 JSON object.
func badAnswer(route string, status int, why string) error {
	return sightline.Wrap(sightline.Internal, fmt.Errorf("relay %s: %s", route, why),
		fmt.Sprintf("module returned HTTP %d", status))
}

// normalizeError fills what a module left out of an error: type fatal,
// code unknown, message "Something went wrong.".
func normalizeError(e module.Error) module.Error {
	if e.Type != "fatal" && e.Type != "error" && e.Type != "warning" {
		e.Type = "fatal"
	}
	e.Code = cmpOr(e.Code, "unknown")
	e.Message = cmpOr(e.Message, "Something went wrong.")
	return e
}

// ErrorFor turns a transport failure of any module into the error the
// console reports (console-api.md §5.3): code "service unavailable" when
// the module did not answer (timeout, unreachable), "unknown" when it
// answered something other than a 200 JSON object; type fatal.
func ErrorFor(err error) module.Error {
	code := "unknown"
	if sightline.ErrorKind(err) == sightline.Unavailable {
		code = "service unavailable"
	}
	return module.Error{Code: code, Message: sightline.ErrorMessage(err), Type: "fatal"}
}

// Health calls POST /health; an answer without errors whose status is not
// "ok" is reported as an error.
func (m *relayModule) Health(ctx context.Context) ([]module.Error, error) {
	env, err := m.call(ctx, module.RouteHealth, nil)
	if err != nil {
		return nil, err
	}
	var d struct {
		Status string `json:"status"`
	}
	if len(env.Errors) == 0 && (json.Unmarshal(env.Data, &d) != nil || d.Status != "ok") {
		return []module.Error{{Code: "unknown", Type: "fatal",
			Message: fmt.Sprintf("module health status is %q, not \"ok\"", d.Status)}}, nil
	}
	return env.Errors, nil
}

// Observe calls POST /observe/observables.
func (m *relayModule) Observe(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	return m.data(ctx, module.RouteObserve, obs)
}

// Deliberate calls POST /deliberate/observables.
func (m *relayModule) Deliberate(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	return m.data(ctx, module.RouteDeliberate, obs)
}

// data calls an enrich route whose data is an object of CTIM plurals. An
// absent or null data is empty; any other non-object is an error of the
// module.
func (m *relayModule) data(ctx context.Context, route string, obs []ctim.Observable) (module.Data, []module.Error, error) {
	env, err := m.call(ctx, route, nonNil(obs))
	if err != nil {
		return nil, nil, err
	}
	d := module.Data{}
	if isAbsent(env.Data) {
		return d, env.Errors, nil
	}
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return nil, append(env.Errors, malformed(route, "data is not an object of CTIM collections")), nil
	}
	return d, env.Errors, nil
}

// Refer calls POST /refer/observables.
func (m *relayModule) Refer(ctx context.Context, obs []ctim.Observable) ([]module.Reference, []module.Error, error) {
	env, err := m.call(ctx, module.RouteRefer, nonNil(obs))
	if err != nil {
		return nil, nil, err
	}
	refs := []module.Reference{}
	if !isAbsent(env.Data) && json.Unmarshal(env.Data, &refs) != nil {
		return nil, append(env.Errors, malformed(module.RouteRefer, "data is not a list of references")), nil
	}
	return refs, env.Errors, nil
}

// RespondObservables calls POST /respond/observables.
func (m *relayModule) RespondObservables(ctx context.Context, obs []ctim.Observable) ([]module.Action, []module.Error, error) {
	env, err := m.call(ctx, module.RouteRespondObservables, nonNil(obs))
	if err != nil {
		return nil, nil, err
	}
	actions := []module.Action{}
	if !isAbsent(env.Data) && json.Unmarshal(env.Data, &actions) != nil {
		return nil, append(env.Errors, malformed(module.RouteRespondObservables, "data is not a list of actions")), nil
	}
	return actions, env.Errors, nil
}

// RespondTrigger calls POST /respond/trigger with {"action-id": actionID}
// and params flattened beside it. A "failure" status without errors is
// reported as one.
func (m *relayModule) RespondTrigger(ctx context.Context, actionID string, params map[string]string) ([]module.Error, error) {
	body := map[string]string{}
	for k, v := range params {
		body[k] = v
	}
	body["action-id"] = actionID
	env, err := m.call(ctx, module.RouteRespondTrigger, body)
	if err != nil {
		return nil, err
	}
	var d struct {
		Status string `json:"status"`
	}
	json.Unmarshal(env.Data, &d)
	if d.Status != "success" && len(env.Errors) == 0 {
		return []module.Error{{Code: "unknown", Type: "fatal",
			Message: fmt.Sprintf("action %s did not succeed (status %q)", actionID, d.Status)}}, nil
	}
	return env.Errors, nil
}

// Tiles calls POST /tiles, which lists the module's tile definitions.
// Tiles without an id are left out with a warning.
func (m *relayModule) Tiles(ctx context.Context) ([]module.Tile, []module.Error, error) {
	env, err := m.call(ctx, module.RouteTiles, nil)
	if err != nil {
		return nil, nil, err
	}
	var raw []json.RawMessage
	if !isAbsent(env.Data) && json.Unmarshal(env.Data, &raw) != nil {
		return nil, append(env.Errors, malformed(module.RouteTiles, "data is not a list of tiles")), nil
	}
	tiles := []module.Tile{}
	for i, b := range raw {
		t, problem := decodeTile(b)
		if problem != "" {
			env.Errors = append(env.Errors, module.Error{Code: "unknown", Type: "warning",
				Message: fmt.Sprintf("module's tile %d is left out: %s", i, problem)})
			continue
		}
		tiles = append(tiles, t)
	}
	return tiles, env.Errors, nil
}

// Tile calls POST /tiles/tile with {"tile_id": tileID}.
func (m *relayModule) Tile(ctx context.Context, tileID string) (module.Tile, []module.Error, error) {
	env, err := m.call(ctx, module.RouteTile, map[string]string{"tile_id": tileID})
	if err != nil {
		return module.Tile{}, nil, err
	}
	if isAbsent(env.Data) && len(env.Errors) > 0 {
		return module.Tile{}, env.Errors, nil
	}
	t, problem := decodeTile(env.Data)
	if problem != "" {
		return module.Tile{}, append(env.Errors, malformed(module.RouteTile, problem)), nil
	}
	return t, env.Errors, nil
}

// TileData calls POST /tiles/tile-data with {"tile_id": tileID, "period":
// period} and returns its data object as sent.
func (m *relayModule) TileData(ctx context.Context, tileID, period string) (json.RawMessage, []module.Error, error) {
	env, err := m.call(ctx, module.RouteTileData, map[string]string{"tile_id": tileID, "period": period})
	if err != nil {
		return nil, nil, err
	}
	if isAbsent(env.Data) {
		return nil, env.Errors, nil
	}
	if !bytes.HasPrefix(bytes.TrimSpace(env.Data), []byte("{")) {
		return nil, append(env.Errors, malformed(module.RouteTileData, "data is not an object")), nil
	}
	return env.Data, env.Errors, nil
}

// decodeTile reads a tile definition; the problem is "" when it is one.
func decodeTile(b json.RawMessage) (module.Tile, string) {
	var t module.Tile
	if err := json.Unmarshal(b, &t); err != nil {
		return t, "not a tile definition: " + err.Error()
	}
	if t.ID == "" {
		return t, "the tile has no id"
	}
	return t, ""
}

func isAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func malformed(route, why string) module.Error {
	return module.Error{Code: "unknown", Type: "fatal", Message: fmt.Sprintf("module's answer to %s is malformed: %s", route, why)}
}

// nonNil makes a nil list encode as [] rather than null.
func nonNil(obs []ctim.Observable) []ctim.Observable {
	if obs == nil {
		return []ctim.Observable{}
	}
	return obs
}
