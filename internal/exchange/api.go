package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
	"github.com/sightline/sightline/internal/password"
	"github.com/sightline/sightline/internal/tunnel"
)

// routes is every route of the exchange: the connector's, the admin and
// console API, the tunnel endpoint and the UI.
func (e *Exchange) routes() http.Handler {
	mux := http.NewServeMux()

	// The device connector: no auth, a device credential for deregister and the tunnel.
	mux.HandleFunc("GET /api/v1/region", e.handleRegion)
	mux.HandleFunc("POST /api/v1/register", e.handleRegister)
	mux.HandleFunc("POST /api/v1/deregister", e.handleDeregister)
	mux.Handle("GET /api/v1/tunnel", e.hub)

	// Administrators (Basic auth as an exchange user).
	mux.Handle("POST /api/v1/tokens", e.api(usersOnly, e.apiCreateToken))
	mux.Handle("GET /api/v1/tokens", e.api(usersOnly, e.apiTokens))
	mux.Handle("DELETE /api/v1/tokens/{id}", e.api(usersOnly, e.apiRevokeToken))
	mux.Handle("POST /api/v1/keys", e.api(usersOnly, e.apiCreateKey))
	mux.Handle("GET /api/v1/keys", e.api(usersOnly, e.apiKeys))
	mux.Handle("DELETE /api/v1/keys/{id}", e.api(usersOnly, e.apiRevokeKey))
	mux.Handle("GET /api/v1/cloud-services", e.api(usersOnly, e.apiCloudServices))
	mux.Handle("PUT /api/v1/cloud-services", e.api(usersOnly, e.apiSetCloudServices))
	mux.Handle("DELETE /api/v1/devices/{id}", e.api(usersOnly, e.apiDeleteDevice))
	mux.Handle("GET /api/v1/audit", e.api(usersOnly, e.apiAudit))

	// The console (an organisation API key) and administrators.
	mux.Handle("GET /api/v1/devices", e.api(keysOrUsers, e.apiDevices))
	mux.Handle("POST /api/v1/devices/{id}/proxy", e.api(keysOrUsers, e.apiProxy))

	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		e.writeError(w, r, sightline.Errorf(sightline.NotFound, "There is no API route %s %s.", r.Method, r.URL.Path))
	})

	e.uiRoutes(mux)
	return mux
}

// Error mapping.

// apiStatus is the one table from an error kind to the HTTP status of an
// API answer.
var apiStatus = map[sightline.Kind]int{
	sightline.Invalid:      http.StatusBadRequest,
	sightline.NotFound:     http.StatusNotFound,
	sightline.Conflict:     http.StatusConflict,
	sightline.Unauthorized: http.StatusUnauthorized,
	sightline.Forbidden:    http.StatusForbidden,
	sightline.Unavailable:  http.StatusServiceUnavailable,
	sightline.Internal:     http.StatusInternalServerError,
}

// statusOf returns the HTTP status for err's kind, 500 for an unknown kind.
func statusOf(err error) int {
	if s, ok := apiStatus[sightline.ErrorKind(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// writeError answers err as JSON {"error": message}. Server-side failures
// are logged with their cause; their message stays generic.
func (e *Exchange) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status >= 500 {
		e.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusUnauthorized && strings.HasPrefix(r.URL.Path, "/api/v1/") && r.URL.Path != "/api/v1/register" {
		w.Header().Set("WWW-Authenticate", `Basic realm="Sightline exchange", Bearer`)
	}
	writeJSON(w, status, exchangeclient.ErrorBody{Error: sightline.ErrorMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// maxJSON bounds an API request body, maxProxyJSON a proxy request's.
const (
	maxJSON      = 64 << 10
	maxProxyJSON = 12 << 20 // 8 MiB of body, base64-encoded, plus headers
)

// decodeJSON reads one JSON value of at most limit bytes into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return sightline.Errorf(sightline.Invalid, "request body is larger than %d bytes", limit)
		}
		return sightline.Wrap(sightline.Invalid, err, "request body is not the expected JSON: "+err.Error())
	}
	return nil
}

// Authentication.

// Who may call an API route.
const (
	usersOnly   = false
	keysOrUsers = true
)

// api authenticates the caller as an actor of an organisation (Basic auth
// as a user; with keys also Bearer as an API key), then runs h and answers
// its error.
func (e *Exchange) api(keys bool, h func(http.ResponseWriter, *http.Request, actor) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := e.apiActor(r, keys)
		if err == nil {
			err = h(w, r, who)
		}
		if err != nil {
			e.writeError(w, r, err)
		}
	})
}

func (e *Exchange) apiActor(r *http.Request, keys bool) (actor, error) {
	ctx := r.Context()
	if user, pass, ok := r.BasicAuth(); ok {
		return e.signIn(ctx, sourceIP(r), user, pass)
	}
	if key, ok := tunnel.BearerToken(r); ok && keys {
		return e.keyActor(ctx, sourceIP(r), key)
	}
	if keys {
		return actor{}, sightline.Errorf(sightline.Unauthorized, "Sign in with an organisation API key (Authorization: Bearer) or as a user (Basic).")
	}
	return actor{}, sightline.Errorf(sightline.Unauthorized, "Sign in as an exchange user (Basic authentication).")
}

// keyActor returns the actor of an organisation API key. What it reads is
// kept in e.lookups until the store's generation moves, and the actor
// carries that generation for the reads of the rest of the request.
func (e *Exchange) keyActor(ctx context.Context, source, key string) (actor, error) {
	gen, err := e.store.Generation(ctx)
	if err != nil {
		return actor{}, sightline.Wrap(sightline.Unavailable, err, "the exchange cannot check API keys right now")
	}
	hash := registry.Hash(key)
	if k, ok := e.lookups.key(gen, hash); ok {
		return actor{org: k.org, name: k.name, source: source, gen: gen, genRead: true}, nil
	}
	k, err := e.store.APIKeyByHash(ctx, hash)
	if sightline.ErrorKind(err) == sightline.NotFound {
		return actor{}, sightline.Errorf(sightline.Unauthorized, "Unknown or revoked API key.")
	}
	if err != nil {
		return actor{}, sightline.Wrap(sightline.Unavailable, err, "the exchange cannot check API keys right now")
	}
	org, err := e.store.Organisation(ctx, k.OrgID)
	if err != nil {
		return actor{}, fmt.Errorf("organisation of api key %s: %w", k.ID, err)
	}
	e.lookups.putKey(gen, hash, keyLookup{org: org, name: "api key " + k.Name})
	return actor{org: org, name: "api key " + k.Name, source: source, gen: gen, genRead: true}, nil
}

var errBadCredentials = sightline.Errorf(sightline.Unauthorized, "Invalid username or passphrase.")

// dummyHash is checked against when the user does not exist, so that
// timing does not reveal user names.
var dummyHash = func() string {
	h, _ := password.Hash(password.Generate())
	return h
}()

// signIn checks a user's passphrase and returns the user as an actor.
func (e *Exchange) signIn(ctx context.Context, source, name, pass string) (actor, error) {
	if name == "" || len(name) > 256 || len(pass) > password.MaxLen {
		return actor{}, errBadCredentials
	}
	u, err := e.store.User(ctx, name)
	if sightline.ErrorKind(err) == sightline.NotFound {
		password.Check(dummyHash, pass)
		return actor{}, errBadCredentials
	}
	if err != nil {
		return actor{}, sightline.Wrap(sightline.Unavailable, err, "the exchange cannot check passphrases right now")
	}
	if !e.checked.Check(u.PasswordHash, pass) {
		return actor{}, errBadCredentials
	}
	return e.userActor(ctx, source, u)
}

func (e *Exchange) userActor(ctx context.Context, source string, u registry.User) (actor, error) {
	org, err := e.store.Organisation(ctx, u.OrgID)
	if err != nil {
		return actor{}, fmt.Errorf("organisation of user %s: %w", u.Name, err)
	}
	return actor{org: org, name: u.Name, source: source}, nil
}

// The connector's routes.

func (e *Exchange) handleRegion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, exchangeclient.Region{Region: e.opts.Region, MinVersion: e.opts.MinVersion})
}

func (e *Exchange) handleRegister(w http.ResponseWriter, r *http.Request) {
	source := sourceIP(r)
	if ok, wait := e.limiter.allow(source); !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		e.audit(r.Context(), registry.AuditEntry{Actor: "anonymous", Source: source, Action: registry.ActionRegister,
			Outcome: registry.OutcomeFailure, Reason: exchangeclient.ReasonRateLimited,
			Detail: "rate limited: too many registration attempts from this address"})
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, exchangeclient.ErrorBody{
			Error: fmt.Sprintf("Too many registration attempts from %s: try again in %d seconds.", source, secs)})
		return
	}
	var reg exchangeclient.Registration
	if err := decodeJSON(w, r, maxJSON, &reg); err != nil {
		e.writeError(w, r, err)
		return
	}
	out, err := e.register(r.Context(), source, reg)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (e *Exchange) handleDeregister(w http.ResponseWriter, r *http.Request) {
	cred, ok := tunnel.BearerToken(r)
	if !ok {
		e.writeError(w, r, sightline.Errorf(sightline.Unauthorized, "Send the device credential as Authorization: Bearer."))
		return
	}
	if err := e.deregister(r.Context(), sourceIP(r), cred); err != nil {
		e.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Administrator routes.

func (e *Exchange) apiCreateToken(w http.ResponseWriter, r *http.Request, who actor) error {
	var req exchangeclient.TokenRequest
	if err := decodeJSON(w, r, maxJSON, &req); err != nil {
		return err
	}
	expiry, err := ParseExpiry(req.Expiry)
	if err != nil {
		return err
	}
	t, err := e.createToken(r.Context(), who, req.Devices, expiry)
	if err != nil {
		return err
	}
	out := e.tokenView(t.Token)
	out.Token = t.Secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (e *Exchange) apiTokens(w http.ResponseWriter, r *http.Request, who actor) error {
	list, err := e.store.Tokens(r.Context(), who.org.ID)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	out := []exchangeclient.Token{}
	for _, t := range list {
		out = append(out, e.tokenView(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (e *Exchange) apiRevokeToken(w http.ResponseWriter, r *http.Request, who actor) error {
	if err := e.revokeToken(r.Context(), who, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Exchange) apiCreateKey(w http.ResponseWriter, r *http.Request, who actor) error {
	var req exchangeclient.APIKey
	if err := decodeJSON(w, r, maxJSON, &req); err != nil {
		return err
	}
	k, err := e.createAPIKey(r.Context(), who, req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, k)
	return nil
}

func (e *Exchange) apiKeys(w http.ResponseWriter, r *http.Request, who actor) error {
	list, err := e.store.APIKeys(r.Context(), who.org.ID)
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	out := []exchangeclient.APIKey{}
	for _, k := range list {
		out = append(out, exchangeclient.APIKey{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (e *Exchange) apiRevokeKey(w http.ResponseWriter, r *http.Request, who actor) error {
	if err := e.revokeAPIKey(r.Context(), who, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Exchange) apiCloudServices(w http.ResponseWriter, r *http.Request, who actor) error {
	writeJSON(w, http.StatusOK, exchangeclient.CloudServices{ThreatResponse: who.org.ThreatResponse})
	return nil
}

func (e *Exchange) apiSetCloudServices(w http.ResponseWriter, r *http.Request, who actor) error {
	var cs exchangeclient.CloudServices
	if err := decodeJSON(w, r, maxJSON, &cs); err != nil {
		return err
	}
	if err := e.setThreatResponse(r.Context(), who, cs.ThreatResponse); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cs)
	return nil
}

func (e *Exchange) apiDeleteDevice(w http.ResponseWriter, r *http.Request, who actor) error {
	if err := e.deleteDevice(r.Context(), who, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Console routes.

func (e *Exchange) apiDevices(w http.ResponseWriter, r *http.Request, who actor) error {
	list, err := e.devices(r.Context(), who.org, r.URL.Query().Get("q"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, exchangeclient.Devices{Organisation: who.org.Name, Region: e.opts.Region,
		ThreatResponse: who.org.ThreatResponse, Devices: list})
	return nil
}

// maxProxyBody bounds the body of a proxied request and of the device's answer.
const maxProxyBody = 8 << 20

// hopHeaders are the headers that belong to one connection and are never
// relayed (RFC 9110 §7.6.1), with Host and Content-Length, which the relay sets.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length"}

func dropHop(h http.Header) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	return h
}

// errThreatResponseOff is the refusal to proxy for an
// organisation whose Threat Response switch is off.
func errThreatResponseOff(org string) error {
	return sightline.Errorf(sightline.Forbidden, "Threat Response is not enabled for organisation %s: enable it under Cloud Services", org)
}

func (e *Exchange) apiProxy(w http.ResponseWriter, r *http.Request, who actor) error {
	if !who.org.ThreatResponse {
		return errThreatResponseOff(who.org.Name)
	}
	d, err := e.proxyDevice(r.Context(), who, r.PathValue("id"))
	if err != nil {
		return err
	}
	var pr exchangeclient.ProxyRequest
	if err := decodeJSON(w, r, maxProxyJSON, &pr); err != nil {
		return err
	}
	if len(pr.BodyJSON) > 0 {
		if len(pr.Body) > 0 {
			return sightline.Errorf(sightline.Invalid, "give the body in body (base64) or in body_json, not both")
		}
		pr.Body, pr.BodyJSON = pr.BodyJSON, nil
	}
	out, err := e.proxy(r.Context(), d, pr)
	if err != nil {
		return err
	}
	if pr.Raw {
		writeDeviceAnswer(w, out)
		return nil
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// writeDeviceAnswer relays the device's answer as it is
// (ProxyRequest.Raw): its body as the body, its status and headers in
// headers. The body is served as application/octet-stream whatever the
// device says it is, so that no browser renders it as the exchange's.
func writeDeviceAnswer(w http.ResponseWriter, out exchangeclient.ProxyResponse) {
	h := w.Header()
	for name, vs := range out.Headers {
		for _, v := range vs {
			h.Add(exchangeclient.DeviceHeaderPrefix+name, v)
		}
	}
	h.Set(exchangeclient.DeviceStatusHeader, strconv.Itoa(out.Status))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(out.Body)))
	w.WriteHeader(http.StatusOK)
	w.Write(out.Body)
}

// proxy sends pr to the device through its tunnel and returns its answer.
func (e *Exchange) proxy(ctx context.Context, d registry.Device, pr exchangeclient.ProxyRequest) (exchangeclient.ProxyResponse, error) {
	if pr.Method == "" {
		pr.Method = http.MethodGet
	}
	if !validMethod(pr.Method) {
		return exchangeclient.ProxyResponse{}, sightline.Errorf(sightline.Invalid, "method %q is not an HTTP method", pr.Method)
	}
	if !strings.HasPrefix(pr.Path, "/") || strings.HasPrefix(pr.Path, "//") || strings.ContainsAny(pr.Path, "?#\r\n") {
		return exchangeclient.ProxyResponse{}, sightline.Errorf(sightline.Invalid, "path %q: want an absolute path such as /esa/api/v2.0/login/privileges, the query apart", pr.Path)
	}
	if _, err := url.ParseQuery(pr.Query); err != nil || strings.ContainsAny(pr.Query, "#\r\n ") {
		return exchangeclient.ProxyResponse{}, sightline.Errorf(sightline.Invalid, "query %q is not a URL query string", pr.Query)
	}
	if len(pr.Body) > maxProxyBody {
		return exchangeclient.ProxyResponse{}, sightline.Errorf(sightline.Invalid, "body is larger than %d bytes", maxProxyBody)
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.ProxyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, pr.Method, "http://device"+pr.Path, bytes.NewReader(pr.Body))
	if err != nil {
		return exchangeclient.ProxyResponse{}, sightline.Wrap(sightline.Invalid, err, "the request cannot be sent: "+err.Error())
	}
	req.URL.RawQuery = pr.Query
	req.Header = dropHop(pr.Headers)
	req.ContentLength = int64(len(pr.Body))
	resp, err := e.hub.RoundTrip(ctx, d.ID, req)
	if err != nil {
		if ctx.Err() != nil {
			return exchangeclient.ProxyResponse{}, sightline.Wrap(sightline.Unavailable, err,
				fmt.Sprintf("Device %s (%s) did not answer within %s.", d.Name, d.ID, e.opts.ProxyTimeout))
		}
		return exchangeclient.ProxyResponse{}, sightline.Wrap(sightline.Unavailable, err,
			fmt.Sprintf("Device %s (%s) is not connected to the exchange: check that it is running and that its Cloud Service Settings show it registered.", d.Name, d.ID))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProxyBody+1))
	if err != nil {
		return exchangeclient.ProxyResponse{}, sightline.Wrap(sightline.Unavailable, err,
			fmt.Sprintf("Device %s (%s) broke off its answer.", d.Name, d.ID))
	}
	if len(body) > maxProxyBody {
		return exchangeclient.ProxyResponse{}, sightline.Errorf(sightline.Unavailable,
			"Device %s (%s) answered with more than %d bytes; ask for less (a smaller page or time range).", d.Name, d.ID, maxProxyBody)
	}
	return exchangeclient.ProxyResponse{Status: resp.StatusCode, Headers: dropHop(resp.Header), Body: body}, nil
}

// validMethod reports whether m is an HTTP method token.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for _, c := range m {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}
