// Package connector is the gateway's cloud connector (Network > Cloud Service
// Settings, gateway-api.md §10): it reaches the exchange chosen as Threat
// Response Server, registers the gateway there with a token, keeps the device
// tunnel up so the exchange can call the gateway's own API, and deregisters.
//
// States (the values of Status.State):
//
//	DISABLED   Threat Response is off.
//	BUSY       on, and the connector is reaching the chosen exchange
//	           (GET /api/v1/region); it retries with backoff while the exchange
//	           is unreachable or serves another region (Status.LastError and,
//	           for a wrong region, Status.Message say so).
//	ENABLED    the exchange answered; a registration token is awaited.
//	INPROGRESS a registration or deregistration is running.
//	REGISTERED registered: Status.DeviceID is set and the tunnel is kept up.
//	FAILED     the last registration failed (Status.Message says why); a new
//	           token is awaited.
//
// Changing the Threat Response Server while registered does not move the
// registration: the connector stays registered (and connected) with the
// exchange it registered with, and Status.Message asks for a deregistration;
// once deregistered it reaches the newly chosen server. Disabling Threat
// Response while registered deregisters first.
//
// The registration (device ID, credential, tunnel URL, server) is kept in the
// Store, so REGISTERED survives restarts; a pending token and the text of a
// failure do not. The credential is never logged.
package connector

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// The states of the connector; the same strings as the gateway UI's.
const (
	Disabled   = "DISABLED"
	Busy       = "BUSY"
	Enabled    = "ENABLED"
	InProgress = "INPROGRESS"
	Registered = "REGISTERED"
	Failed     = "FAILED"
)

// Sentences shown to users; scripts match them (gateway-api.md §10).
const (
	TextBusy       = "The Cisco Cloud Service is busy. Navigate back to this page after some time to check the appliance status."
	TextInProgress = "The appliance registration is in progress. Navigate back to this page after some time to check the appliance status."
	TextFailed     = "The registration failed because of an invalid or expired token"
	// TextDeregistered is Status.Message after the exchange refused the
	// device's tunnel for good (the device was deleted there).
	TextDeregistered = "This appliance was deregistered by the exchange; register again with a new token"
)

// settingName is the Store setting holding the registration as JSON ("" for none).
const settingName = "cloud_connector.registration"

// defaultOpTimeout bounds how long a registration or deregistration keeps
// retrying while the exchange cannot be reached (Cisco's own test waits 2
// minutes).
const defaultOpTimeout = 2 * time.Minute

// Store persists the connector's registration; *sqlite.GatewayStore
// satisfies it.
type Store interface {
	// Setting returns a named value and whether it exists.
	Setting(ctx context.Context, name string) (string, bool, error)
	// SetSetting stores a named value.
	SetSetting(ctx context.Context, name, value string) error
}

// DeviceInfo is what the gateway tells the exchange about itself when it
// registers.
type DeviceInfo struct {
	HostName         string // the gateway's host name, its initial name on the exchange; required
	Type             string // "" means "ESA"
	Version          string // the gateway's software version; required by the exchange
	SerialNumber     string
	ConnectorVersion string
}

// Region is a Threat Response Server: an exchange's region label and base URL.
type Region struct {
	Label string `json:"label"` // AMERICAS, EUROPE, APJC
	URL   string `json:"url"`   // e.g. "https://exchange.example"
}

// Status is the connector's state now.
type Status struct {
	State    string // one of Disabled … Failed
	DeviceID string // the ID the exchange gave, when REGISTERED (or deregistering)
	// Message is the detail to show with the state, "" when none: why the
	// last registration failed (FAILED; exactly TextFailed when the token was
	// refused, else the exchange's reason, e.g. a version below its
	// minimum), TextDeregistered (ENABLED), a wrong region (BUSY), or a
	// server change awaiting deregistration (REGISTERED).
	Message string
	// Server is the label of the Threat Response Server: the one registered
	// with when registered, else the chosen one.
	Server string
	// TunnelConnected reports whether the tunnel to the exchange is up.
	TunnelConnected bool
	// LastError is the last error of the background work, with its cause,
	// "" after a success: what doctor shows.
	LastError string
}

// Connector is the gateway's link to the exchange. Set its fields, call Apply
// with the running Cloud settings (at start and on every commit), and run
// Run; the fields must not change afterwards. Its methods are safe for
// concurrent use, and Status never waits on the network.
type Connector struct {
	// Store keeps the registration. Required.
	Store Store
	// Handler is the gateway's own API, served to the exchange through the
	// tunnel. Required.
	Handler http.Handler
	// Device describes the gateway at registration.
	Device DeviceInfo
	// HTTPClient calls the exchange's API; nil means a client with a 30s
	// timeout.
	HTTPClient *http.Client
	// Logger receives the connector's events; nil discards them.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait before retrying a failed
	// call to the exchange and before redialing the tunnel (full jitter over
	// an exponentially growing window). Zero means 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Heartbeat is the tunnel keepalive interval; zero means the tunnel
	// package's default (15s).
	Heartbeat time.Duration

	opTimeout time.Duration // zero means defaultOpTimeout; tests shorten it

	once    sync.Once
	log     *slog.Logger
	wake    chan struct{} // buffered(1): the desired state changed
	running atomic.Bool

	mu            sync.Mutex
	changed       chan struct{} // closed and replaced on every change
	loaded        bool          // the registration was read from Store
	enabled       bool
	server        Region
	reached       Region        // the server last found answering with its region
	reg           *registration // nil: not registered
	token         string        // a registration requested, not yet attempted to the end
	tokenAt       time.Time
	deregistering bool      // a deregistration was requested
	deregAt       time.Time // first attempt of the running deregistration
	failed        string    // why the last registration failed
	notice        string    // TextDeregistered after the exchange dropped the device
	mismatch      string    // the chosen server serves another region
	tunnelUp      bool
	lastErr       string
}

// registration is what the exchange gave at registration, as stored.
type registration struct {
	DeviceID   string    `json:"device_id"`
	Credential string    `json:"credential"`
	TunnelURL  string    `json:"tunnel_url"`
	Region     string    `json:"region"` // as the exchange names itself
	Server     Region    `json:"server"` // the Threat Response Server registered with
	At         time.Time `json:"registered_at"`
}

// LogValue keeps the credential out of logs.
func (r *registration) LogValue() slog.Value {
	return slog.GroupValue(slog.String("device_id", r.DeviceID), slog.String("server", r.Server.Label),
		slog.String("tunnel_url", r.TunnelURL), slog.String("credential", "REDACTED"))
}

func (c *Connector) init() {
	c.once.Do(func() {
		l := c.Logger
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.log = l.With("component", "connector")
		if c.opTimeout <= 0 {
			c.opTimeout = defaultOpTimeout
		}
		c.wake = make(chan struct{}, 1)
		c.mu.Lock()
		c.changed = make(chan struct{})
		c.mu.Unlock()
	})
}

// Apply sets the running Cloud settings: whether Threat Response is enabled
// and the chosen server. It never blocks; the work happens in Run. Calling it
// again with the same settings does nothing.
func (c *Connector) Apply(enabled bool, server Region) {
	c.init()
	c.mu.Lock()
	if c.enabled == enabled && c.server == server {
		c.mu.Unlock()
		return
	}
	c.enabled, c.server = enabled, server
	c.token, c.failed, c.notice, c.mismatch = "", "", "", ""
	reg := c.reg
	c.changedLocked()
	c.mu.Unlock()
	c.signal()
	c.log.Info("cloud settings applied", "enabled", enabled, "server", server.Label, "url", server.URL)
	if enabled && reg != nil && reg.Server != server {
		c.log.Warn("threat response server changed while registered: deregister to move",
			"registered_with", reg.Server.Label, "chosen", server.Label)
	}
}

// Status returns the state now, without waiting on the network.
func (c *Connector) Status(ctx context.Context) Status {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusLocked()
}

// Changed returns a channel closed at the next change of Status (or of the
// background work behind it): a caller that waits for a state, such as the
// CLI's REGISTER, reads Status again each time it is closed.
func (c *Connector) Changed() <-chan struct{} {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *Connector) statusLocked() Status {
	s := Status{Server: c.server.Label, TunnelConnected: c.tunnelUp, LastError: c.lastErr}
	switch {
	case !c.loaded && c.enabled:
		s.State = Busy
	case c.reg != nil:
		s.DeviceID, s.Server = c.reg.DeviceID, c.reg.Server.Label
		switch {
		case c.deregistering || !c.enabled:
			s.State = InProgress
		default:
			s.State = Registered
			if c.server != c.reg.Server {
				s.Message = fmt.Sprintf("This appliance is registered with %s; deregister it to use %s.", c.reg.Server.Label, c.server.Label)
			}
		}
	case !c.enabled:
		s.State = Disabled
	case c.token != "":
		s.State = InProgress
	case c.reached != c.server:
		s.State, s.Message = Busy, c.mismatch
	case c.failed != "":
		s.State, s.Message = Failed, c.failed
	default:
		s.State, s.Message = Enabled, c.notice
	}
	return s
}

// ParseToken returns a registration token in canonical form (lower case),
// or an Invalid error whose message is TextFailed. A token is 32 hexadecimal
// digits; surrounding white space is ignored.
func ParseToken(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if len(t) != 32 {
		return "", sightline.Wrap(sightline.Invalid, fmt.Errorf("token has %d characters, want 32 hexadecimal digits", len(t)), TextFailed)
	}
	if _, err := hex.DecodeString(t); err != nil {
		return "", sightline.Wrap(sightline.Invalid, errors.New("token is not 32 hexadecimal digits"), TextFailed)
	}
	return t, nil
}

// Register starts registering with token and returns once the request is
// accepted: the state goes INPROGRESS, then REGISTERED or FAILED. It accepts
// a token only in ENABLED or FAILED; otherwise it returns a *sightline.Error
// saying why (Invalid for a malformed token, with TextFailed as message;
// Unavailable with TextBusy while BUSY; Conflict otherwise).
func (c *Connector) Register(ctx context.Context, token string) error {
	c.init()
	tok, err := ParseToken(token)
	if err != nil {
		return err
	}
	c.mu.Lock()
	st := c.statusLocked()
	if st.State == Enabled || st.State == Failed {
		c.token, c.tokenAt = tok, time.Now()
		c.failed, c.notice, c.lastErr = "", "", ""
		c.changedLocked()
	}
	c.mu.Unlock()
	switch st.State {
	case Enabled, Failed:
		c.log.Info("registration requested", "server", st.Server)
		c.signal()
		return nil
	case Disabled:
		return sightline.Errorf(sightline.Conflict, "Threat Response is disabled: enable it in Cloud Service Settings and commit before registering.")
	case Busy:
		return sightline.Errorf(sightline.Unavailable, "%s", TextBusy)
	case Registered:
		return sightline.Errorf(sightline.Conflict, "This appliance is already registered (device ID %s): deregister it first.", st.DeviceID)
	}
	return sightline.Errorf(sightline.Conflict, "%s", TextInProgress)
}

// Deregister starts removing the registration: the state goes INPROGRESS,
// the tunnel stops, the exchange is told (POST /api/v1/deregister), the
// credential is forgotten and the state goes ENABLED. If the exchange cannot
// be reached for 2 minutes, the registration is forgotten anyway and
// Status.LastError names the device left on the exchange. Deregister
// returns a Conflict error unless the state is REGISTERED.
func (c *Connector) Deregister(ctx context.Context) error {
	c.init()
	c.mu.Lock()
	st := c.statusLocked()
	if st.State == Registered {
		c.deregistering, c.lastErr = true, ""
		c.changedLocked()
	}
	c.mu.Unlock()
	switch st.State {
	case Registered:
		c.log.Info("deregistration requested", "device_id", st.DeviceID)
		c.signal()
		return nil
	case InProgress:
		return sightline.Errorf(sightline.Conflict, "%s", TextInProgress)
	}
	return sightline.Errorf(sightline.Conflict, "This appliance is not registered with Cisco Threat Response.")
}

// signal tells Run that the desired state changed.
func (c *Connector) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// changedLocked wakes the watchers of Changed; c.mu is held.
func (c *Connector) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// update applies f to the state under the lock and wakes the watchers.
func (c *Connector) update(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
	c.changedLocked()
}

func (c *Connector) client(url string) *exchangeclient.Client {
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return exchangeclient.New(url, hc)
}

func (c *Connector) load(ctx context.Context) error {
	v, ok, err := c.Store.Setting(ctx, settingName)
	if err != nil {
		return fmt.Errorf("connector: load registration: %w", err)
	}
	var reg *registration
	if ok && v != "" {
		reg = new(registration)
		if err := json.Unmarshal([]byte(v), reg); err != nil || reg.DeviceID == "" || reg.Credential == "" {
			return sightline.Errorf(sightline.Internal, "connector: the stored registration (setting %s) is unreadable", settingName)
		}
	}
	c.update(func() { c.reg, c.loaded = reg, true })
	if reg != nil {
		c.log.Info("registration loaded", "registration", reg)
	}
	return nil
}

// save stores reg, or forgets the registration when reg is nil.
func (c *Connector) save(ctx context.Context, reg *registration) error {
	v := ""
	if reg != nil {
		b, err := json.Marshal(reg)
		if err != nil {
			return fmt.Errorf("encode registration: %w", err)
		}
		v = string(b)
	}
	if err := c.Store.SetSetting(ctx, settingName, v); err != nil {
		return fmt.Errorf("save registration: %w", err)
	}
	return nil
}
