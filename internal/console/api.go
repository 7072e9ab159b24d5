package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/password"
)

// routes is every route of the console: the CTR API at the host root (the
// Python client drops any path prefix), CTIA, the admin API and the web UI.
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()

	// OAuth2 and keys: no bearer.
	mux.HandleFunc("POST /iroh/oauth2/token", c.handleToken)
	mux.HandleFunc("GET /.well-known/jwks", c.handleJWKS)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", c.handleDiscovery)

	// Visibility (console-api.md §4–§6).
	mux.Handle("POST /iroh/iroh-inspect/inspect", c.bearer(need("inspect:read"), c.handleInspect))
	for _, op := range []string{opObserve, opDeliberate, opRefer} {
		scope := need("enrich/observables/" + op + ":read")
		mux.Handle("POST /iroh/iroh-enrich/"+op+"/observables", c.bearer(scope, c.enrichObservables(op)))
		mux.Handle("POST /iroh/iroh-enrich/"+op+"/sighting", c.bearer(scope, c.enrichSighting(op)))
		mux.Handle("POST /iroh/iroh-enrich/"+op+"/sighting_ref", c.bearer(scope, c.enrichSightingRef(op)))
	}
	mux.Handle("POST /iroh/iroh-enrich/health", c.bearer(need("integration/health:read"), c.handleHealthAll))
	mux.Handle("POST /iroh/iroh-enrich/health/{id}", c.bearer(need("integration/health:read"), c.handleHealthOne))
	mux.Handle("GET /iroh/iroh-enrich/settings", c.bearer(need(), c.handleSettings))
	mux.Handle("POST /iroh/iroh-response/respond/observables", c.bearer(need("response/observables:read"), c.handleRespondObservables))
	mux.Handle("POST /iroh/iroh-response/respond/sighting", c.bearer(need("response/sighting:read"), c.handleRespondSighting))
	mux.Handle("POST /iroh/iroh-response/respond/trigger/{instance}/{action}", c.bearer(need("response/trigger:write"), c.handleTrigger))

	c.ctiaRoutes(mux)

	// Admin API: a console user (Basic) or a token with the admin scope.
	mux.Handle("POST /api/v1/investigate", c.api(anyRole, c.apiInvestigate))
	mux.Handle("GET /api/v1/modules", c.api(anyRole, c.apiModules))
	mux.Handle("POST /api/v1/modules", c.api(adminRole, c.apiCreateModule))
	mux.Handle("GET /api/v1/modules/{id}", c.api(anyRole, c.apiModule))
	mux.Handle("PUT /api/v1/modules/{id}", c.api(adminRole, c.apiUpdateModule))
	mux.Handle("DELETE /api/v1/modules/{id}", c.api(adminRole, c.apiDeleteModule))
	mux.Handle("GET /api/v1/modules/{id}/health", c.api(anyRole, c.apiModuleHealth))
	mux.Handle("GET /api/v1/module-types", c.api(anyRole, c.apiModuleTypes))
	mux.Handle("POST /api/v1/module-types", c.api(adminRole, c.apiCreateModuleType))
	mux.Handle("GET /api/v1/module-types/{id}", c.api(anyRole, c.apiModuleType))
	mux.Handle("DELETE /api/v1/module-types/{id}", c.api(adminRole, c.apiDeleteModuleType))
	mux.Handle("GET /api/v1/devices", c.api(anyRole, c.apiDevices))
	mux.Handle("GET /api/v1/exchange", c.api(anyRole, c.apiExchange))
	mux.Handle("PUT /api/v1/exchange", c.api(adminRole, c.apiSetExchange))
	mux.Handle("GET /api/v1/clients", c.api(adminRole, c.apiClients))
	mux.Handle("POST /api/v1/clients", c.api(adminRole, c.apiCreateClient))
	mux.Handle("DELETE /api/v1/clients/{id}", c.api(adminRole, c.apiRevokeClient))
	mux.Handle("GET /api/v1/users", c.api(adminRole, c.apiUsers))
	mux.Handle("POST /api/v1/users", c.api(adminRole, c.apiCreateUser))
	mux.Handle("DELETE /api/v1/users/{name}", c.api(adminRole, c.apiDeleteUser))
	mux.Handle("POST /api/v1/keys/rotate", c.api(adminRole, c.apiRotateKeys))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		c.writeAPIError(w, r, sightline.Errorf(sightline.NotFound, "There is no API route %s %s.", r.Method, r.URL.Path))
	})

	// Unknown paths of the CTR API answer its JSON 404; every other path
	// is the web UI's.
	noRoute := func(w http.ResponseWriter, r *http.Request) {
		c.writeIROHError(w, r, sightline.Errorf(sightline.NotFound, "There is no route %s %s.", r.Method, r.URL.EscapedPath()))
	}
	for _, prefix := range []string{"/iroh/", "/ctia/", "/.well-known/"} {
		mux.HandleFunc(prefix, noRoute)
	}
	mux.Handle("/", c.ui.Routes())
	return mux
}

// Error mapping.

// irohErrors is the one table from an error kind to the HTTP status and
// the "error" code of CTR's normalized error body, used by /iroh and /ctia.
var irohErrors = map[sightline.Kind]struct {
	status int
	code   string
}{
	sightline.Invalid:      {http.StatusBadRequest, "invalid_request"},
	sightline.NotFound:     {http.StatusNotFound, "not_found"},
	sightline.Conflict:     {http.StatusConflict, "conflict"},
	sightline.Unauthorized: {http.StatusUnauthorized, "invalid_token"},
	sightline.Forbidden:    {http.StatusForbidden, "forbidden"},
	sightline.Unavailable:  {http.StatusServiceUnavailable, "service_unavailable"},
	sightline.Internal:     {http.StatusInternalServerError, "unknown-exception"},
}

// unknownException is the description of every 500: details go to the log.
const unknownException = "This exception has been logged for further inspection."

// coded overrides the "error" code of a normalized error body and adds
// fields to it; the kind and message come from the wrapped error.
type coded struct {
	code  string
	extra map[string]any
	err   error
}

func (e *coded) Error() string { return e.err.Error() }
func (e *coded) Unwrap() error { return e.err }

// irohBody returns the status and normalized body of err, with a fresh
// trace id.
func irohBody(err error) (int, map[string]any, string) {
	m, ok := irohErrors[sightline.ErrorKind(err)]
	if !ok {
		m = irohErrors[sightline.Internal]
	}
	trace := uuid.NewString()
	body := map[string]any{"error": m.code, "error_description": sightline.ErrorMessage(err), "trace_id": trace}
	if m.status == http.StatusInternalServerError {
		body["error_description"] = unknownException
	}
	var ce *coded
	if errors.As(err, &ce) {
		body["error"] = ce.code
		for k, v := range ce.extra {
			body[k] = v
		}
	}
	return m.status, body, trace
}

// writeIROHError answers err as CTR's normalized error, with its trace id
// also in X-Trace-Id. Server-side failures are logged with their cause.
func (c *Console) writeIROHError(w http.ResponseWriter, r *http.Request, err error) {
	status, body, trace := irohBody(err)
	if status >= 500 {
		c.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "trace_id", trace, "err", err)
	}
	w.Header().Set("X-Trace-Id", trace)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="Sightline console"`)
	}
	writeJSON(w, status, body)
}

// apiStatus is the one table from an error kind to the HTTP status of an
// admin API answer ({"error": message}).
var apiStatus = map[sightline.Kind]int{
	sightline.Invalid:      http.StatusBadRequest,
	sightline.NotFound:     http.StatusNotFound,
	sightline.Conflict:     http.StatusConflict,
	sightline.Unauthorized: http.StatusUnauthorized,
	sightline.Forbidden:    http.StatusForbidden,
	sightline.Unavailable:  http.StatusServiceUnavailable,
	sightline.Internal:     http.StatusInternalServerError,
}

// APIError is the body of every admin API error.
type APIError struct {
	Error string `json:"error"`
}

func (c *Console) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	status, ok := apiStatus[sightline.ErrorKind(err)]
	if !ok {
		status = http.StatusInternalServerError
	}
	msg := sightline.ErrorMessage(err)
	if status >= 500 {
		c.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		if sightline.ErrorKind(err) == sightline.Internal {
			msg = "internal error: see the console's log"
		}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Sightline console", Bearer`)
	}
	writeJSON(w, status, APIError{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"unknown-exception","error_description":"`+unknownException+`"}`)
	}
	writeBody(w, status, b)
}

// writeBody writes b, one JSON value, and a newline as an API answer.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Request size limits.
const (
	maxJSON     = 1 << 20  // an API or enrich request body
	maxEntity   = 4 << 20  // a CTIA entity (casebooks carry bundles)
	maxTokenReq = 16 << 10 // the token endpoint's form
)

// readBody reads a request body of at most limit bytes; an empty body is
// allowed (nil).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, sightline.Errorf(sightline.Invalid, "request body is larger than %d bytes", limit)
	}
	if err != nil {
		return nil, sightline.Wrap(sightline.Invalid, err, "the request body could not be read")
	}
	return b, nil
}

// decodeJSON reads one JSON value of at most limit bytes into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	b, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	return unmarshal(b, v)
}

func unmarshal(b []byte, v any) error {
	if len(strings.TrimSpace(string(b))) == 0 {
		return sightline.Errorf(sightline.Invalid, "the request body is empty: want JSON")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return sightline.Wrap(sightline.Invalid, err, "request body is not the expected JSON: "+err.Error())
	}
	return nil
}

// Bearer authentication.

// principal is who a request acts for.
type principal struct {
	orgID  string
	name   string   // user name or client id
	role   string   // a user's role; "" for a client
	scopes []string // a client's token scopes
	client bool
}

// need returns a fixed list of alternative required scopes; none means any
// valid token.
func need(scopes ...string) func(*http.Request) []string {
	return func(*http.Request) []string { return scopes }
}

var errNoJWT = &coded{code: "invalid_request",
	err: sightline.Errorf(sightline.Unauthorized, "No JWT found in HTTP Authorization header")}

// bearer authenticates an access token, checks that it grants one of the
// scopes the route requires, runs h and answers its error in CTR's shape.
func (c *Console) bearer(scopes func(*http.Request) []string, h func(http.ResponseWriter, *http.Request, principal) error) http.Handler {
	return c.bearerWith(c.writeIROHError, scopes, h)
}

// authorize authenticates the request's access token and checks that it
// grants one of required (none: any valid token will do).
func (c *Console) authorize(r *http.Request, required []string) (principal, error) {
	p, err := c.authenticateBearer(r)
	if err != nil {
		return p, err
	}
	if len(required) > 0 && !hasScope(p.scopes, required...) {
		return p, &coded{code: "missing_scope", extra: map[string]any{
			"missing-scopes": required[:1], "required-scopes": required, "scopes": nonNil(p.scopes),
			"user-id": p.name, "org-id": p.orgID},
			err: sightline.Errorf(sightline.Forbidden, "You do not have the required credentials to access this route.")}
	}
	return p, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > 16<<10 {
		return "", false
	}
	return tok, true
}

// authenticateBearer checks the request's access token and that its client
// still exists in the token's organisation (a revoked client's tokens stop
// working at once).
func (c *Console) authenticateBearer(r *http.Request) (principal, error) {
	raw, ok := bearerToken(r)
	if !ok {
		return principal{}, errNoJWT
	}
	cl, err := c.verifyToken(r.Context(), raw)
	if err != nil {
		return principal{}, err
	}
	client, err := c.store.Client(r.Context(), cl.Subject)
	if sightline.ErrorKind(err) == sightline.NotFound || err == nil && client.OrgID != cl.OrgID {
		return principal{}, errInvalidToken("the API client of this JWT has been revoked")
	}
	if err != nil {
		return principal{}, sightline.Wrap(sightline.Unavailable, err, "the console cannot check API clients right now")
	}
	return principal{orgID: cl.OrgID, name: cl.Subject, scopes: cl.Scopes, client: true}, nil
}

// The token endpoint (console-api.md §2).

// oauthError is an RFC 6749 §5.2 error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// TokenResponse is the token endpoint's answer.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

func (c *Console) handleToken(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, desc string) {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="Sightline console"`)
		}
		writeJSON(w, status, oauthError{Error: code, Description: desc})
	}
	body, err := readBody(w, r, maxTokenReq)
	if err != nil {
		fail(http.StatusBadRequest, "invalid_request", sightline.ErrorMessage(err))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		fail(http.StatusBadRequest, "invalid_request", "the body is not application/x-www-form-urlencoded")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		fail(http.StatusUnauthorized, "invalid_client", "Invalid client credentials")
		return
	}
	client, err := c.checkClient(r.Context(), id, secret)
	if err != nil {
		if sightline.ErrorKind(err) == sightline.Unauthorized {
			fail(http.StatusUnauthorized, "invalid_client", "Invalid client credentials")
			return
		}
		c.writeIROHError(w, r, err)
		return
	}
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		fail(http.StatusBadRequest, "invalid_request", "grant_type is missing: want client_credentials")
		return
	default:
		fail(http.StatusBadRequest, "unsupported_grant_type", "")
		return
	}
	tok, err := c.issueToken(client)
	if err != nil {
		c.writeIROHError(w, r, err)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, TokenResponse{AccessToken: tok, TokenType: "bearer",
		ExpiresIn: int(TokenLifetime / time.Second), Scope: strings.Join(client.Scopes, " ")})
}

var errBadClient = sightline.Errorf(sightline.Unauthorized, "Invalid client credentials")

// checkClient returns the client whose id and secret these are.
func (c *Console) checkClient(ctx context.Context, id, secret string) (records.Client, error) {
	if len(id) > 256 || len(secret) > 256 {
		return records.Client{}, errBadClient
	}
	client, err := c.store.Client(ctx, id)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return records.Client{}, errBadClient
	}
	if err != nil {
		return records.Client{}, sightline.Wrap(sightline.Unavailable, err, "the console cannot check API clients right now")
	}
	if subtle.ConstantTimeCompare([]byte(records.Hash(secret)), []byte(client.SecretHash)) != 1 {
		return records.Client{}, errBadClient
	}
	return client, nil
}

func (c *Console) handleJWKS(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.keys.jwks())
}

// Discovery is the document at /.well-known/oauth-authorization-server.
type Discovery struct {
	Issuer          string   `json:"issuer"`
	TokenEndpoint   string   `json:"token_endpoint"`
	JWKSURI         string   `json:"jwks_uri"`
	GrantTypes      []string `json:"grant_types_supported"`
	AuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
	ScopesSupported []string `json:"scopes_supported"`
}

func (c *Console) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	var scopes []string
	for _, s := range scopeNames {
		scopes = append(scopes, s.scopes...)
	}
	writeJSON(w, http.StatusOK, Discovery{Issuer: c.publicURL, TokenEndpoint: c.publicURL + "/iroh/oauth2/token",
		JWKSURI: c.publicURL + "/.well-known/jwks", GrantTypes: []string{"client_credentials"},
		AuthMethods: []string{"client_secret_basic", "client_secret_post"}, ScopesSupported: scopes})
}

// Admin API authentication.

// Who may call an admin route.
const (
	anyRole   = false
	adminRole = true
)

// api authenticates a console user (Basic) or an access token with the
// admin scope, checks the role, runs h and answers its error as JSON.
func (c *Console) api(admin bool, h func(http.ResponseWriter, *http.Request, principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := c.apiPrincipal(r)
		if err == nil && p.client && !hasScope(p.scopes, "admin") {
			err = sightline.Errorf(sightline.Forbidden, "This API client lacks the admin scope.")
		}
		if err == nil && admin && !p.client && p.role != records.RoleAdmin {
			err = sightline.Errorf(sightline.Forbidden, "User %s (%s) may not do this: it needs the admin role.", p.name, p.role)
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			c.writeAPIError(w, r, err)
		}
	})
}

func (c *Console) apiPrincipal(r *http.Request) (principal, error) {
	if user, pass, ok := r.BasicAuth(); ok {
		return c.signIn(r.Context(), user, pass)
	}
	if _, ok := bearerToken(r); ok {
		return c.authenticateBearer(r)
	}
	return principal{}, sightline.Errorf(sightline.Unauthorized, "Sign in as a console user (Basic) or with an access token that has the admin scope (Bearer).")
}

var errBadCredentials = sightline.Errorf(sightline.Unauthorized, "Invalid username or passphrase.")

// dummyHash is checked against when the user does not exist, so that
// timing does not reveal user names.
var dummyHash = sync.OnceValue(func() string {
	h, _ := password.Hash(password.Generate())
	return h
})

// signIn checks a user's passphrase and returns the user as a principal.
// Successful checks are remembered for a few minutes, so that a script
// sending Basic credentials on every call pays bcrypt once.
func (c *Console) signIn(ctx context.Context, name, pass string) (principal, error) {
	if name == "" || len(name) > 256 || len(pass) > password.MaxLen {
		return principal{}, errBadCredentials
	}
	u, err := c.store.User(ctx, name)
	if sightline.ErrorKind(err) == sightline.NotFound {
		password.Check(dummyHash(), pass)
		return principal{}, errBadCredentials
	}
	if err != nil {
		return principal{}, sightline.Wrap(sightline.Unavailable, err, "the console cannot check passphrases right now")
	}
	if !c.checked.ok(u, pass) {
		if !password.Check(u.PasswordHash, pass) {
			return principal{}, errBadCredentials
		}
		c.checked.add(u, pass)
	}
	return principal{orgID: u.OrgID, name: u.Name, role: u.Role}, nil
}

// checkCache remembers recent successful passphrase checks, keyed by a hash
// of the user, the stored hash and the passphrase (a changed passphrase misses).
type checkCache struct {
	mu sync.Mutex
	m  map[[32]byte]time.Time
}

const (
	checkTTL     = 5 * time.Minute
	maxCheckKeys = 1024
)

func checkKey(u records.User, pass string) [32]byte {
	return sha256.Sum256([]byte(u.Name + "\x00" + u.PasswordHash + "\x00" + pass))
}

func (cc *checkCache) ok(u records.User, pass string) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	exp, ok := cc.m[checkKey(u, pass)]
	return ok && time.Now().Before(exp)
}

func (cc *checkCache) add(u records.User, pass string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil || len(cc.m) >= maxCheckKeys {
		cc.m = map[[32]byte]time.Time{}
	}
	cc.m[checkKey(u, pass)] = time.Now().Add(checkTTL)
}
