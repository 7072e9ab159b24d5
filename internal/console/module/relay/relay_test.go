package relay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/module/relay"
	"github.com/sightline/sightline/internal/ctim"
)

const (
	secretKey = "0123456789abcdef0123456789abcdef" // the relay's SECRET_KEY (style A) or HS256 key
	kid       = "console-key-1"
	jwksHost  = "console.test:8443"
)

var rsaKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

// signer is the console's RS256 signer of configuration tokens.
type signer struct{}

func (signer) Sign(claims map[string]any) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claims))
	tok.Header["kid"] = kid
	return tok.SignedString(rsaKey)
}

// fakeRelay is a relay module in the manner of tr-05-serverless-relay: it
// verifies the bearer as relay-api.md §5 says, then answers every route.
type fakeRelay struct {
	t      *testing.T
	style  string // relay.StyleStatic or relay.StyleConfigToken
	alg    string
	url    string // its own URL root, the expected aud
	calls  atomic.Int32
	routes map[string]http.HandlerFunc // overrides by path
}

// authorize checks the bearer and returns the upstream key it carries, or
// the relay's authorization message.
func (f *fakeRelay) authorize(r *http.Request) (string, string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "Authorization header is missing"
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return "", "Wrong authorization type"
	}
	claims := jwt.MapClaims{}
	var opts []jwt.ParserOption
	keyFunc := func(*jwt.Token) (any, error) { return []byte(secretKey), nil }
	switch {
	case f.style == relay.StyleStatic || f.alg == "HS256":
		opts = append(opts, jwt.WithValidMethods([]string{"HS256"}))
	default:
		opts = append(opts, jwt.WithValidMethods([]string{"RS256"}))
		keyFunc = func(tok *jwt.Token) (any, error) {
			if tok.Header["kid"] != kid {
				return nil, errors.New("kid from JWT header not found in API response")
			}
			return &rsaKey.PublicKey, nil
		}
	}
	if f.style == relay.StyleConfigToken {
		opts = append(opts, jwt.WithAudience(f.url), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	}
	if _, err := jwt.ParseWithClaims(tok, claims, keyFunc, opts...); err != nil {
		return "", "Failed to decode JWT with provided key"
	}
	if f.style == relay.StyleConfigToken {
		if claims["jwks_host"] != jwksHost {
			return "", "jwks_host is missing in JWT payload. Make sure custom_jwks_host field is present in module_type"
		}
		if _, ok := claims["jti"].(string); !ok {
			return "", "Wrong JWT payload structure"
		}
		exp, _ := claims.GetExpirationTime()
		iat, _ := claims.GetIssuedAt()
		if exp == nil || iat == nil || exp.Sub(iat.Time) != 300*time.Second {
			return "", "Wrong JWT payload structure"
		}
	}
	key, ok := claims["key"].(string)
	if !ok {
		return "", "Wrong JWT payload structure"
	}
	return key, ""
}

func writeJSON(w http.ResponseWriter, v string) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, v)
}

func (f *fakeRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	path, ok := strings.CutPrefix(r.URL.Path, "/relay/")
	if !ok || r.Method != http.MethodPost {
		http.Error(w, `{"code": 404, "message": "not found", "reason": "werkzeug.exceptions.NotFound"}`, http.StatusNotFound)
		return
	}
	if h := f.routes[path]; h != nil {
		h(w, r)
		return
	}
	key, problem := f.authorize(r)
	if problem != "" {
		writeJSON(w, fmt.Sprintf(`{"errors": [{"type": "fatal", "code": "authorization error", "message": "Authorization failed: %s"}], "data": {}}`, problem))
		return
	}
	if key != "3f6c" {
		writeJSON(w, `{"errors": [{"type": "fatal", "code": "authorization error", "message": "Authorization failed: upstream key rejected"}]}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var obs []ctim.Observable
	switch path {
	case "health":
		if len(body) != 0 {
			f.t.Errorf("health body = %q, want none", body)
		}
		writeJSON(w, `{"data": {"status": "ok"}}`)
	case "observe/observables", "deliberate/observables", "refer/observables", "respond/observables":
		if err := json.Unmarshal(body, &obs); err != nil || len(obs) == 0 || obs[0].Type == "" || obs[0].Value == "" {
			writeJSON(w, `{"errors": [{"type": "fatal", "code": "invalid argument", "message": "{\"0\": {\"value\": [\"Field may not be blank.\"]}}"}]}`)
			return
		}
		o := obs[0]
		switch path {
		case "observe/observables":
			writeJSON(w, fmt.Sprintf(`{"data": {"sightings": {"count": 1, "docs": [{"id": "transient:sighting-1", "type": "sighting",
				"schema_version": "1.3.29", "count": 1, "confidence": "High", "observed_time": {"start_time": "2026-01-10T08:00:12.000Z"},
				"observables": [{"type": %q, "value": %q}]}]}}}`, o.Type, o.Value))
		case "deliberate/observables":
			writeJSON(w, verdicts(o))
		case "refer/observables":
			writeJSON(w, fmt.Sprintf(`{"data": [{"id": "ref-intel-%[1]s", "title": "Search for this %[1]s", "description": "Lookup %[2]s",
				"url": "https://intel.example/?q=%[2]s", "categories": ["Intel", "Search"]}]}`, o.Type, o.Value))
		case "respond/observables":
			writeJSON(w, fmt.Sprintf(`{"data": [{"id": "intel-block", "title": "Block", "description": "Block %[2]s",
				"categories": ["Intel"], "query-params": {"observable_type": %[1]q, "observable_value": %[2]q, "list": "deny"}}]}`, o.Type, o.Value))
		}
	case "respond/trigger":
		var p map[string]string
		if err := json.Unmarshal(body, &p); err != nil || p["action-id"] == "" || p["observable_type"] == "" || p["observable_value"] == "" {
			writeJSON(w, `{"data": {"status": "failure"}, "errors": [{"type": "fatal", "code": "invalid argument", "message": "action-id, observable_type and observable_value are required"}]}`)
			return
		}
		if p["list"] != "deny" {
			writeJSON(w, `{"data": {"status": "failure"}}`)
			return
		}
		writeJSON(w, `{"data": {"status": "success"}}`)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func verdicts(o ctim.Observable) string {
	return fmt.Sprintf(`{"data": {"verdicts": {"count": 1, "docs": [{"type": "verdict", "disposition": 2, "disposition_name": "Malicious",
		"observable": {"type": %q, "value": %q}, "valid_time": {"start_time": "2026-01-10T08:00:00.000Z", "end_time": "2026-01-17T08:00:00.000Z"}}]}}}`,
		o.Type, o.Value)
}

// start runs a fake relay and returns it with its base URL ("…/relay").
func start(t *testing.T, style, alg string) (*fakeRelay, string) {
	t.Helper()
	f := &fakeRelay{t: t, style: style, alg: alg, routes: map[string]http.HandlerFunc{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/relay"
	return f, f.url + "/"
}

// staticToken is a style A token: {"key": key} signed HS256 with secret.
func staticToken(key, secret string) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"key": key}).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}

var allRoutes = []string{"health", "observe/observables", "deliberate/observables", "refer/observables",
	"respond/observables", "respond/trigger"}

func newModule(t *testing.T, url string, auth relay.Auth, timeout int) module.Module {
	t.Helper()
	s, _ := json.Marshal(relay.Settings{URL: url, Auth: auth, SupportedAPIs: allRoutes, TimeoutSeconds: timeout})
	m, err := relay.New(module.Instance{ID: uuid.NewString(), Kind: module.KindRelay, Name: "Intel", Settings: s},
		relay.Options{Signer: signer{}, JWKSHost: jwksHost})
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	return m
}

func TestRoutes(t *testing.T) {
	styles := []struct {
		name, style, alg string
		auth             relay.Auth
	}{
		{"static bearer", relay.StyleStatic, "", relay.Auth{Style: relay.StyleStatic, Token: staticToken("3f6c", secretKey)}},
		{"configuration token RS256", relay.StyleConfigToken, "RS256",
			relay.Auth{Style: relay.StyleConfigToken, Claims: map[string]string{"custom_key": "3f6c", "custom_CTR_ENTITIES_LIMIT": "100"}}},
		{"configuration token HS256", relay.StyleConfigToken, "HS256",
			relay.Auth{Style: relay.StyleConfigToken, Alg: "HS256", Key: secretKey, Claims: map[string]string{"key": "3f6c"}}},
	}
	ctx := context.Background()
	ip := ctim.Observable{Type: "ip", Value: "203.0.113.25"}
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			_, url := start(t, st.style, st.alg)
			m := newModule(t, url, st.auth, 0)
			for _, r := range allRoutes {
				if !m.Supports(r) {
					t.Errorf("Supports(%q) = false, want true", r)
				}
			}
			if m.Supports("tiles") {
				t.Errorf("Supports(tiles) = true for a module that does not list it")
			}
			if errs, err := m.Health(ctx); err != nil || len(errs) != 0 {
				t.Errorf("Health() = %v, %v; want ok", errs, err)
			}
			data, errs, err := m.Observe(ctx, []ctim.Observable{ip})
			if err != nil || len(errs) != 0 || !strings.Contains(string(data["sightings"]), `"value":"203.0.113.25"`) &&
				!strings.Contains(string(data["sightings"]), `"value": "203.0.113.25"`) {
				t.Errorf("Observe() = %s, %v, %v; want the relay's sighting", data["sightings"], errs, err)
			}
			data, errs, err = m.Deliberate(ctx, []ctim.Observable{ip})
			var v struct{ Count int }
			if err != nil || len(errs) != 0 || json.Unmarshal(data["verdicts"], &v) != nil || v.Count != 1 {
				t.Errorf("Deliberate() = %s, %v, %v; want one verdict", data["verdicts"], errs, err)
			}
			refs, errs, err := m.Refer(ctx, []ctim.Observable{ip})
			wantRefs := []module.Reference{{ID: "ref-intel-ip", Title: "Search for this ip", Description: "Lookup 203.0.113.25",
				URL: "https://intel.example/?q=203.0.113.25", Categories: []string{"Intel", "Search"}}}
			if err != nil || len(errs) != 0 || !cmp.Equal(refs, wantRefs) {
				t.Errorf("Refer() = %+v, %v, %v; want %+v", refs, errs, err, wantRefs)
			}
			actions, errs, err := m.RespondObservables(ctx, []ctim.Observable{ip})
			wantActions := []module.Action{{ID: "intel-block", Title: "Block", Description: "Block 203.0.113.25", Categories: []string{"Intel"},
				QueryParams: map[string]string{"observable_type": "ip", "observable_value": "203.0.113.25", "list": "deny"}}}
			if err != nil || len(errs) != 0 || !cmp.Equal(actions, wantActions) {
				t.Errorf("RespondObservables() = %+v, %v, %v; want %+v", actions, errs, err, wantActions)
			}
			if errs, err := m.RespondTrigger(ctx, "intel-block", actions[0].QueryParams); err != nil || len(errs) != 0 {
				t.Errorf("RespondTrigger() = %v, %v; want success", errs, err)
			}
			errs, err = m.RespondTrigger(ctx, "intel-block", map[string]string{"observable_type": "ip", "observable_value": "203.0.113.25"})
			if err != nil || len(errs) != 1 || !strings.Contains(errs[0].Message, `did not succeed (status "failure")`) {
				t.Errorf("RespondTrigger(failing) = %v, %v; want one error for the failure status", errs, err)
			}
		})
	}
}

func TestAuthorizationRefused(t *testing.T) {
	tests := []struct {
		name, style, alg string
		auth             relay.Auth
		want             string
	}{
		{"static token signed with another key", relay.StyleStatic, "",
			relay.Auth{Style: relay.StyleStatic, Token: staticToken("3f6c", "another secret of thirty-two bytes!")},
			"Authorization failed: Failed to decode JWT with provided key"},
		{"static token that is no JWT", relay.StyleStatic, "", relay.Auth{Style: relay.StyleStatic, Token: "not-a-jwt"},
			"Authorization failed: Failed to decode JWT with provided key"},
		{"configuration token without the key claim", relay.StyleConfigToken, "RS256",
			relay.Auth{Style: relay.StyleConfigToken, Claims: map[string]string{"custom_other": "x"}},
			"Authorization failed: Wrong JWT payload structure"},
		{"configuration token for another audience", relay.StyleConfigToken, "RS256",
			relay.Auth{Style: relay.StyleConfigToken, Audience: "https://other.example", Claims: map[string]string{"key": "3f6c"}},
			"Authorization failed: Failed to decode JWT with provided key"},
		{"HS256 configuration token with the wrong key", relay.StyleConfigToken, "HS256",
			relay.Auth{Style: relay.StyleConfigToken, Alg: "HS256", Key: strings.Repeat("k", 32), Claims: map[string]string{"key": "3f6c"}},
			"Authorization failed: Failed to decode JWT with provided key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, tt.style, tt.alg)
			errs, err := newModule(t, url, tt.auth, 0).Health(context.Background())
			want := []module.Error{{Code: "authorization error", Message: tt.want, Type: "fatal"}}
			if err != nil || !cmp.Equal(errs, want) {
				t.Errorf("Health() = %v, %v; want %v", errs, err, want)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	ctx := context.Background()
	ip := []ctim.Observable{{Type: "ip", Value: "203.0.113.25"}}
	auth := relay.Auth{Style: relay.StyleStatic, Token: staticToken("3f6c", secretKey)}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name    string
		handler http.HandlerFunc
		timeout int
		// the transport failure as the console shows it, or none
		want module.Error
		// or the module's own errors and data
		wantErrs []module.Error
		wantData string
	}{
		{name: "HTTP 500", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) },
			want: module.Error{Code: "unknown", Message: "module returned HTTP 500", Type: "fatal"}},
		{name: "HTTP 401", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 401) },
			want: module.Error{Code: "unknown", Message: "module returned HTTP 401", Type: "fatal"}},
		{name: "not JSON", handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hello</html>") },
			want: module.Error{Code: "unknown", Message: "module returned HTTP 200", Type: "fatal"}},
		{name: "JSON but not an object", handler: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `[1, 2]`) },
			want: module.Error{Code: "unknown", Message: "module returned HTTP 200", Type: "fatal"}},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/relay/elsewhere", http.StatusFound)
		}, want: module.Error{Code: "unknown", Message: "module returned HTTP 302", Type: "fatal"}},
		{name: "too large", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"data": {"sightings": "`+strings.Repeat("x", relay.MaxResponse)+`"}}`)
		}, want: module.Error{Code: "unknown", Message: "module returned HTTP 200", Type: "fatal"}},
		{name: "timeout", timeout: 1, handler: func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then the server notices the client leaving
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, want: module.Error{Code: "service unavailable", Message: "module did not answer within 1 s", Type: "fatal"}},
		{name: "errors with partial data", handler: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"data": {"sightings": {"count": 1, "docs": [{"id": "transient:s1"}]}},
				"errors": [{"type": "fatal", "code": "too many requests", "message": "Rate limit hit after 1 result"}, {"code": ""}]}`)
		}, wantErrs: []module.Error{
			{Code: "too many requests", Message: "Rate limit hit after 1 result", Type: "fatal"},
			{Code: "unknown", Message: "Something went wrong.", Type: "fatal"},
		}, wantData: `{"count": 1, "docs": [{"id": "transient:s1"}]}`},
		{name: "data not an object", handler: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `{"data": [1]}`) },
			wantErrs: []module.Error{{Code: "unknown", Type: "fatal",
				Message: "module's answer to observe/observables is malformed: data is not an object of CTIM collections"}}},
		{name: "nothing found", handler: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `{"data": {}}`) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, url := start(t, relay.StyleStatic, "")
			f.routes["observe/observables"] = tt.handler
			var redirected atomic.Bool
			f.routes["elsewhere"] = func(http.ResponseWriter, *http.Request) { redirected.Store(true) }
			data, errs, err := newModule(t, url, auth, tt.timeout).Observe(ctx, ip)
			if redirected.Load() {
				t.Errorf("the redirect was followed")
			}
			if tt.want != (module.Error{}) {
				if err == nil {
					t.Fatalf("Observe() = %v, %v, nil; want transport failure %v", data, errs, tt.want)
				}
				if got := relay.ErrorFor(err); got != tt.want {
					t.Errorf("ErrorFor(Observe()) = %v, want %v", got, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Observe() transport failure %v", err)
			}
			if !cmp.Equal(errs, tt.wantErrs) {
				t.Errorf("Observe() errors = %v, want %v", errs, tt.wantErrs)
			}
			if got := string(data["sightings"]); got != tt.wantData {
				t.Errorf("Observe() sightings = %s, want %s", got, tt.wantData)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	m := newModule(t, url, relay.Auth{Style: relay.StyleStatic, Token: "t"}, 0)
	_, err = m.Health(context.Background())
	got := relay.ErrorFor(err)
	if got.Code != "service unavailable" || !strings.HasPrefix(got.Message, "module cannot be reached: ") {
		t.Errorf("Health() of a closed port = %v (%v), want service unavailable, module cannot be reached", got, err)
	}
}

func TestNewRejectsSettings(t *testing.T) {
	static := `"auth": {"style": "static", "token": "t"}`
	apis := `"supported_apis": ["health"]`
	tests := []struct {
		name, settings, want string
		opts                 relay.Options
	}{
		{"no url", `{` + static + `, ` + apis + `}`, "url is required", relay.Options{}},
		{"http to a remote host", `{"url": "http://relay.example.com", ` + static + `, ` + apis + `}`, "http is allowed only to a loopback address", relay.Options{}},
		{"ftp", `{"url": "ftp://relay.example.com", ` + static + `, ` + apis + `}`, "want https://", relay.Options{}},
		{"credentials in url", `{"url": "https://u:p@relay.example.com", ` + static + `, ` + apis + `}`, "want https://", relay.Options{}},
		{"no routes", `{"url": "https://relay.example.com", ` + static + `}`, "supported_apis is empty", relay.Options{}},
		{"unknown route", `{"url": "https://relay.example.com", ` + static + `, "supported_apis": ["tiles/foo"]}`, `unknown route "tiles/foo"`, relay.Options{}},
		{"timeout too long", `{"url": "https://relay.example.com", ` + static + `, ` + apis + `, "timeout_seconds": 301}`, "timeout_seconds 301 is out of range", relay.Options{}},
		{"no static token", `{"url": "https://relay.example.com", "auth": {"style": "static"}, ` + apis + `}`, "auth.token is required", relay.Options{}},
		{"unknown style", `{"url": "https://relay.example.com", "auth": {"style": "basic"}, ` + apis + `}`, `auth.style "basic"`, relay.Options{}},
		{"RS256 without signer", `{"url": "https://relay.example.com", "auth": {"style": "config_token"}, ` + apis + `}`, "signing key, which is not configured", relay.Options{JWKSHost: "c"}},
		{"RS256 without jwks host", `{"url": "https://relay.example.com", "auth": {"style": "config_token"}, ` + apis + `}`, "auth.jwks_host is required", relay.Options{Signer: signer{}}},
		{"short HS256 key", `{"url": "https://relay.example.com", "auth": {"style": "config_token", "alg": "HS256", "key": "short"}, ` + apis + `}`, "at least 32 bytes", relay.Options{}},
		{"unknown field", `{"url": "https://relay.example.com", ` + static + `, ` + apis + `, "retries": 3}`, "not valid JSON", relay.Options{}},
		{"bad CA", `{"url": "https://relay.example.com", ` + static + `, ` + apis + `, "ca_pem": "nope"}`, "ca_pem holds no PEM certificate", relay.Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := relay.New(module.Instance{ID: "m1", Kind: module.KindRelay, Settings: json.RawMessage(tt.settings)}, tt.opts)
			if sightline.ErrorKind(err) != sightline.Invalid || !strings.Contains(sightline.ErrorMessage(err), tt.want) {
				t.Errorf("New(%s) = %v, want an Invalid error containing %q", tt.settings, err, tt.want)
			}
		})
	}
	if _, err := relay.New(module.Instance{ID: "m1", Kind: module.KindESA}, relay.Options{}); sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("New(kind esa) = %v, want Invalid", err)
	}
	ok := `{"url": "http://[::1]:9/relay/", "auth": {"style": "static", "token": "t"}, "supported_apis": ["health"]}`
	if _, err := relay.New(module.Instance{ID: "m1", Kind: module.KindRelay, Settings: json.RawMessage(ok)}, relay.Options{}); err != nil {
		t.Errorf("New(http to ::1) = %v, want accepted", err)
	}
}

func TestErrorFor(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want module.Error
	}{
		{"unavailable", sightline.Errorf(sightline.Unavailable, "module did not answer within 30 s"),
			module.Error{Code: "service unavailable", Message: "module did not answer within 30 s", Type: "fatal"}},
		{"internal", sightline.Errorf(sightline.Internal, "module returned HTTP 502"),
			module.Error{Code: "unknown", Message: "module returned HTTP 502", Type: "fatal"}},
		{"plain error", errors.New("secret detail"), module.Error{Code: "unknown", Message: "internal error", Type: "fatal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := relay.ErrorFor(tt.err); got != tt.want {
				t.Errorf("ErrorFor(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestTiles calls the tile routes (relay-api.md §4.5): POST /tiles without
// a body, /tiles/tile with tile_id, /tiles/tile-data with tile_id and
// period; and no route the module does not list.
func TestTiles(t *testing.T) {
	ctx := context.Background()
	f, base := start(t, relay.StyleConfigToken, "HS256")
	var bodies sync.Map
	record := func(path, answer string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if k, problem := f.authorize(r); problem != "" || k != "3f6c" {
				writeJSON(w, `{"errors": [{"type": "fatal", "code": "authorization error", "message": "Authorization failed"}]}`)
				return
			}
			b, _ := io.ReadAll(r.Body)
			bodies.Store(path, string(b)+"|"+r.Header.Get("Content-Length"))
			writeJSON(w, answer)
		}
	}
	f.routes["tiles"] = record("tiles", `{"data": [{"id": "t1", "type": "metric_group", "title": "Messages", "periods": ["last_hour"]},
		{"type": "markdown", "title": "no id"}, {"id": "t2", "type": "markdown", "title": "Notes", "tags": ["Gateway"]}]}`)
	f.routes["tiles/tile"] = record("tiles/tile", `{"data": {"id": "t1", "type": "metric_group", "title": "Messages"}}`)
	f.routes["tiles/tile-data"] = record("tiles/tile-data", `{"data": {"period": "last_hour", "data": [{"id": "n", "label": "N", "value": 1}]}}`)
	auth := relay.Auth{Style: relay.StyleConfigToken, Alg: "HS256", Key: secretKey, Claims: map[string]string{"key": "3f6c"}}
	newTiler := func(apis ...string) module.Tiler {
		s, _ := json.Marshal(relay.Settings{URL: base, Auth: auth, SupportedAPIs: apis})
		m, err := relay.New(module.Instance{ID: "m1", Kind: module.KindRelay, Name: "Tiles", Settings: s}, relay.Options{JWKSHost: jwksHost})
		if err != nil {
			t.Fatal(err)
		}
		return m.(module.Tiler)
	}
	m := newTiler("tiles", "tiles/tile", "tiles/tile-data")
	tiles, errs, err := m.Tiles(ctx)
	want := []module.Tile{{ID: "t1", Type: "metric_group", Title: "Messages", Periods: []string{"last_hour"}},
		{ID: "t2", Type: "markdown", Title: "Notes", Tags: []string{"Gateway"}}}
	if err != nil || !cmp.Equal(tiles, want) || len(errs) != 1 || errs[0].Type != "warning" || !strings.Contains(errs[0].Message, "tile 1 is left out: the tile has no id") {
		t.Errorf("Tiles() = %+v, %v, %v; want two tiles and a warning for the one without id", tiles, errs, err)
	}
	tile, errs, err := m.Tile(ctx, "t1")
	if err != nil || len(errs) != 0 || tile.ID != "t1" || tile.Title != "Messages" {
		t.Errorf("Tile(t1) = %+v, %v, %v", tile, errs, err)
	}
	data, errs, err := m.TileData(ctx, "t1", "last_hour")
	if err != nil || len(errs) != 0 || !strings.Contains(string(data), `"label": "N"`) {
		t.Errorf("TileData(t1) = %s, %v, %v", data, errs, err)
	}
	wantBodies := map[string]string{"tiles": "|0", "tiles/tile": `{"tile_id":"t1"}|16`, "tiles/tile-data": `{"period":"last_hour","tile_id":"t1"}|37`}
	for path, want := range wantBodies {
		if got, _ := bodies.Load(path); got != want {
			t.Errorf("%s request body|Content-Length = %v, want %q", path, got, want)
		}
	}

	// A route the module does not list is never called.
	calls := f.calls.Load()
	m = newTiler("tiles")
	if _, _, err := m.TileData(ctx, "t1", "last_hour"); sightline.ErrorKind(err) != sightline.Invalid ||
		!strings.Contains(sightline.ErrorMessage(err), "does not list tiles/tile-data") {
		t.Errorf("TileData on a module without tiles/tile-data = %v, want an Invalid error without a call", err)
	}
	if _, _, err := m.Tile(ctx, "t1"); err == nil {
		t.Errorf("Tile on a module without tiles/tile: no error")
	}
	if n := f.calls.Load() - calls; n != 0 {
		t.Errorf("the relay got %d calls for routes the module does not list", n)
	}

	malformed := []struct{ route, answer, want string }{
		{"tiles", `{"data": {"id": "t1"}}`, "data is not a list of tiles"},
		{"tiles/tile", `{"data": {"title": "no id"}}`, "the tile has no id"},
		{"tiles/tile-data", `{"data": [1, 2]}`, "data is not an object"},
	}
	m = newTiler("tiles", "tiles/tile", "tiles/tile-data")
	for _, mf := range malformed {
		f.routes[mf.route] = func(w http.ResponseWriter, r *http.Request) { writeJSON(w, mf.answer) }
		var errs []module.Error
		var err error
		switch mf.route {
		case "tiles":
			_, errs, err = m.Tiles(ctx)
		case "tiles/tile":
			_, errs, err = m.Tile(ctx, "t1")
		default:
			_, errs, err = m.TileData(ctx, "t1", "last_hour")
		}
		if err != nil || len(errs) != 1 || !strings.Contains(errs[0].Message, mf.want) {
			t.Errorf("%s answering %s = %v, %v; want one error %q", mf.route, mf.answer, errs, err, mf.want)
		}
	}
}
