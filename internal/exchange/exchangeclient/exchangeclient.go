// Package exchangeclient is the Go client of the exchange's API and the
// definition of its JSON shapes: the gateway's connector registers with it,
// the CLI manages tokens as an administrator, and the console lists devices
// and sends them requests with an organisation API key.
//
// Authentication: the connector's Register and Region need none; Deregister
// sends the device credential as a bearer token. An administrator client
// (NewAdmin) sends HTTP Basic credentials of an exchange user on every call;
// a console client (NewKey) sends the organisation API key as a bearer token.
// Errors from the exchange come back as *sightline.Error with the kind of the
// HTTP status and the exchange's message.
package exchangeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
)

// Registration is the body of POST /api/v1/register.
type Registration struct {
	Token            string `json:"token"`             // the 32-hex-character registration token
	Hostname         string `json:"hostname"`          // the device's host name, its initial name
	Type             string `json:"type"`              // "ESA" or "SMA"
	Version          string `json:"version"`           // the device's software version
	Serial           string `json:"serial"`            // serial number
	ConnectorVersion string `json:"connector_version"` // version of the device's connector
}

// Registered is the answer (201) to a registration.
type Registered struct {
	DeviceID   string `json:"device_id"`
	Credential string `json:"credential"` // the tunnel credential, given only once; keep it secret
	TunnelURL  string `json:"tunnel_url"` // ws:// or wss:// tunnel endpoint
	Region     string `json:"region"`
}

// Region is the answer of GET /api/v1/region.
type Region struct {
	Region     string `json:"region"`      // AMERICAS, EUROPE or APJC
	MinVersion string `json:"min_version"` // "" when any version is accepted
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Devices int    `json:"devices"` // 1–100
	Expiry  string `json:"expiry"`  // 1h 2h 4h 6h 8h 12h 1d 2d 3d 4d 5d; "" means 1h
}

// Token is a registration token as listed; Token (the secret) is set only in
// the answer to its creation.
type Token struct {
	ID        string    `json:"id"`
	Token     string    `json:"token,omitempty"`
	Region    string    `json:"region"`
	Devices   int       `json:"devices"`
	Remaining int       `json:"remaining"`
	State     string    `json:"state"` // Active, Expired, Revoked or Used up
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	CreatedBy string    `json:"created_by"`
}

// Device is a registered device as the API shows it.
type Device struct {
	ID               string    `json:"id"`
	Type             string    `json:"type"`
	Name             string    `json:"name"`
	Description      string    `json:"description"`
	Version          string    `json:"version"`
	Serial           string    `json:"serial"`
	ConnectorVersion string    `json:"connector_version"`
	Status           string    `json:"status"` // "Registered"
	IP               string    `json:"ip"`
	Connected        bool      `json:"connected"` // has a live tunnel now
	CreatedAt        time.Time `json:"created_at"`
	LastSeen         time.Time `json:"last_seen,omitzero"`
}

// Devices is the answer of GET /api/v1/devices: the organisation's devices
// and whether its Threat Response switch is on (off: the console cannot
// reach the devices and should say so).
type Devices struct {
	Organisation   string   `json:"organisation"`
	Region         string   `json:"region"`
	ThreatResponse bool     `json:"threat_response"`
	Devices        []Device `json:"devices"`
}

// ProxyRequest is the body of POST /api/v1/devices/{id}/proxy: an HTTP
// request for the device's own API.
type ProxyRequest struct {
	Method  string      `json:"method"`            // "" means GET
	Path    string      `json:"path"`              // must start with "/"
	Query   string      `json:"query,omitempty"`   // raw query string, without "?"
	Headers http.Header `json:"headers,omitempty"` // hop-by-hop headers are dropped
	Body    []byte      `json:"body,omitempty"`    // base64 (standard encoding) in JSON
	// BodyJSON is a JSON body as it is, in place of Body; set one or the
	// other. Exchanges older than it ignore it: Client.Proxy sends Body.
	BodyJSON json.RawMessage `json:"body_json,omitempty"`
	// Raw asks the exchange to relay the device's answer as it is rather
	// than as a ProxyResponse: its body as the body of the answer (served as
	// application/octet-stream), its status in the DeviceStatusHeader and
	// each of its headers prefixed by DeviceHeaderPrefix. Nothing is
	// encoded or decoded on either side. Client.Proxy sets it.
	Raw bool `json:"raw,omitempty"`
}

// Headers of a raw proxy answer (ProxyRequest.Raw).
const (
	DeviceStatusHeader = "Sightline-Device-Status"
	DeviceHeaderPrefix = "Sightline-Device-Header-"
)

// ProxyResponse is the device's answer, relayed.
type ProxyResponse struct {
	Status  int         `json:"status"`
	Headers http.Header `json:"headers"`
	Body    []byte      `json:"body"` // base64 (standard encoding) in JSON
}

// readAnswer reads the answer to a proxy request: relayed as it is when the
// exchange says so (ProxyRequest.Raw), else a ProxyResponse in JSON, as an
// exchange older than raw answers sends it.
func (p *ProxyResponse) readAnswer(resp *http.Response, body io.Reader) error {
	status := resp.Header.Get(DeviceStatusHeader)
	if status == "" {
		return json.NewDecoder(body).Decode(p)
	}
	n, err := strconv.Atoi(status)
	if err != nil || n < 100 || n > 999 {
		return fmt.Errorf("%s %q is not an HTTP status", DeviceStatusHeader, status)
	}
	p.Status, p.Headers = n, http.Header{}
	for name, vs := range resp.Header {
		if name, ok := strings.CutPrefix(name, DeviceHeaderPrefix); ok && name != "" {
			p.Headers[name] = vs
		}
	}
	p.Body, err = io.ReadAll(body)
	return err
}

// APIKey is an organisation API key; Key (the secret) is set only in the
// answer to its creation.
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Key       string    `json:"key,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// CloudServices is the organisation's switches (GET and PUT /api/v1/cloud-services).
type CloudServices struct {
	ThreatResponse bool `json:"threat_response"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// Client calls one exchange. Its zero value is not usable: build it with
// New, NewAdmin or NewKey.
type Client struct {
	base string
	http *http.Client
	auth func(*http.Request)
}

// maxResponse bounds an answer read from the exchange.
const maxResponse = 64 << 20

// New returns an unauthenticated client of the exchange at baseURL
// (e.g. "http://127.0.0.1:8090"), for the connector. hc nil means a client
// with a 60s timeout.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), http: hc, auth: func(*http.Request) {}}
}

// NewAdmin returns a client that signs in as an exchange user with Basic
// auth: tokens, devices, API keys and Cloud Services of the user's organisation.
func NewAdmin(baseURL string, hc *http.Client, user, pass string) *Client {
	c := New(baseURL, hc)
	c.auth = func(r *http.Request) { r.SetBasicAuth(user, pass) }
	return c
}

// NewKey returns a client that acts with an organisation API key (the console).
func NewKey(baseURL string, hc *http.Client, key string) *Client {
	c := New(baseURL, hc)
	c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
	return c
}

// Region returns the exchange's region and minimum device version.
func (c *Client) Region(ctx context.Context) (Region, error) {
	var out Region
	return out, c.do(ctx, http.MethodGet, "/api/v1/region", nil, nil, &out)
}

// Register registers a device. An unusable token is an Unauthorized error
// whose message is "The registration failed because of an invalid or
// expired token"; too many attempts are an Unavailable one.
func (c *Client) Register(ctx context.Context, reg Registration) (Registered, error) {
	var out Registered
	return out, c.do(ctx, http.MethodPost, "/api/v1/register", nil, reg, &out)
}

// Deregister removes the device whose credential this is.
func (c *Client) Deregister(ctx context.Context, credential string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/deregister", func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+credential)
	}, nil, nil)
}

// TokenCreate mints a registration token for devices devices that expires
// after expiry (see TokenRequest). The answer holds the token itself.
func (c *Client) TokenCreate(ctx context.Context, devices int, expiry string) (Token, error) {
	var out Token
	return out, c.do(ctx, http.MethodPost, "/api/v1/tokens", nil, TokenRequest{Devices: devices, Expiry: expiry}, &out)
}

// Tokens lists the organisation's tokens, newest first.
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out []Token
	return out, c.do(ctx, http.MethodGet, "/api/v1/tokens", nil, nil, &out)
}

// TokenRevoke revokes a token by its ID.
func (c *Client) TokenRevoke(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, nil, nil)
}

// Devices lists the organisation's devices.
func (c *Client) Devices(ctx context.Context) (Devices, error) {
	var out Devices
	return out, c.do(ctx, http.MethodGet, "/api/v1/devices", nil, nil, &out)
}

// DeviceDelete deregisters a device of the organisation and ends its tunnel.
func (c *Client) DeviceDelete(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/devices/"+url.PathEscape(id), nil, nil, nil)
}

// Proxy sends req to the device's own API through its tunnel and returns
// the device's answer, whatever its status. It asks for the answer as it
// is (ProxyRequest.Raw), which spares encoding the body in base64 and JSON
// and decoding it. The exchange refuses with Forbidden when the
// organisation has not enabled Threat Response, NotFound for a device not
// of the organisation, Unavailable when it is offline.
func (c *Client) Proxy(ctx context.Context, deviceID string, req ProxyRequest) (ProxyResponse, error) {
	if len(req.BodyJSON) > 0 && len(req.Body) == 0 {
		// An older exchange would drop body_json: send base64.
		req.Body, req.BodyJSON = req.BodyJSON, nil
	}
	req.Raw = true
	var out ProxyResponse
	return out, c.do(ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(deviceID)+"/proxy", nil, req, &out)
}

// APIKeyCreate creates an organisation API key named name; the answer holds the key.
func (c *Client) APIKeyCreate(ctx context.Context, name string) (APIKey, error) {
	var out APIKey
	return out, c.do(ctx, http.MethodPost, "/api/v1/keys", nil, APIKey{Name: name}, &out)
}

// APIKeys lists the organisation's API keys (without the keys).
func (c *Client) APIKeys(ctx context.Context) ([]APIKey, error) {
	var out []APIKey
	return out, c.do(ctx, http.MethodGet, "/api/v1/keys", nil, nil, &out)
}

// APIKeyRevoke deletes an API key by its ID.
func (c *Client) APIKeyRevoke(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/keys/"+url.PathEscape(id), nil, nil, nil)
}

// SetCloudServices sets the organisation's Cloud Services switches.
func (c *Client) SetCloudServices(ctx context.Context, cs CloudServices) error {
	return c.do(ctx, http.MethodPut, "/api/v1/cloud-services", nil, cs, nil)
}

// do sends one call; in is sent as JSON when not nil, a 2xx answer is
// decoded into out when not nil, any other is returned as an error.
func (c *Client) do(ctx context.Context, method, path string, auth func(*http.Request), in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("exchange %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("exchange %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if auth == nil {
		auth = c.auth
	}
	auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return sightline.Wrap(sightline.Unavailable, err, "the exchange at "+c.base+" cannot be reached")
	}
	defer resp.Body.Close()
	r := io.LimitReader(resp.Body, maxResponse)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb ErrorBody
		b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("the exchange answered %s", resp.Status)
		}
		return &sightline.Error{Kind: kindOf(resp.StatusCode), Message: eb.Error,
			Err: fmt.Errorf("%s %s: %s", method, path, resp.Status)}
	}
	if out == nil {
		io.Copy(io.Discard, r)
		return nil
	}
	decode := func() error { return json.NewDecoder(r).Decode(out) }
	if p, ok := out.(*ProxyResponse); ok {
		decode = func() error { return p.readAnswer(resp, r) }
	}
	if err := decode(); err != nil {
		return sightline.Wrap(sightline.Internal, err, fmt.Sprintf("the exchange's answer to %s %s is not valid JSON", method, path))
	}
	return nil
}

// kindOf maps an HTTP status of the exchange back to an error kind.
func kindOf(status int) sightline.Kind {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return sightline.Invalid
	case http.StatusUnauthorized:
		return sightline.Unauthorized
	case http.StatusForbidden:
		return sightline.Forbidden
	case http.StatusNotFound, http.StatusGone:
		return sightline.NotFound
	case http.StatusConflict:
		return sightline.Conflict
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return sightline.Unavailable
	}
	return sightline.Internal
}
