// Package esa is the console's Email Security Appliance module: it answers
// the relay routes (health, observe, refer) for one registered gateway by
// sending AsyncOS Message Tracking requests to it through the exchange's
// device tunnel, and turns the messages it finds into CTIM sightings
// (ctim.md §14; gateway-api.md §5, §7 and §14). A Sightline gateway answers
// a search with the complete records of the messages found, so that an
// observable costs one request rather than one per message (records.go).
package esa

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// Proxy sends a request to a registered device's own API through the
// exchange and returns the device's answer, whatever its status.
// *exchangeclient.Client built with NewKey (an organisation API key)
// satisfies it.
type Proxy interface {
	Proxy(ctx context.Context, deviceID string, req exchangeclient.ProxyRequest) (exchangeclient.ProxyResponse, error)
}

// Settings are the instance settings of an ESA module, module.Instance.Settings:
// {"device_id": "…", "timeframe_days": 30}.
type Settings struct {
	// DeviceID is the gateway's device ID in the exchange. Required.
	DeviceID string `json:"device_id"`
	// TimeframeDays is how far back observe searches, 1 to MaxTimeframeDays.
	// Zero means DefaultTimeframeDays.
	TimeframeDays int `json:"timeframe_days"`
}

// Timeframe bounds of Settings.TimeframeDays.
const (
	DefaultTimeframeDays = 30
	MaxTimeframeDays     = 365
)

// DefaultSource is the module type's title: the source and origin of every
// sighting (ctim.md §14).
const DefaultSource = "Sightline Gateway"

// Options configure the module beyond its instance settings.
type Options struct {
	// Source names the module in sightings (source, relations' origin) and
	// references. "" means DefaultSource.
	Source string
	// GatewayURL is the base URL of the gateway's web interface as analysts
	// reach it, e.g. "https://gw1.example.com". It makes source_uri and
	// refer links absolute; "" (unknown) leaves sightings without
	// source_uri and makes refer links paths relative to the gateway.
	GatewayURL string
	// MaxMessages caps the messages fetched per observable, and the
	// sightings of one call; the newest are kept and a warning names the
	// observable. Zero means 1000.
	MaxMessages int
	// Parallel bounds the requests in flight to the gateway. Zero means 4.
	Parallel int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the module's logs; nil discards them.
	Logger *slog.Logger
}

// esaModule implements module.Module for one gateway.
type esaModule struct {
	inst     module.Instance
	settings Settings
	proxy    Proxy
	opts     Options
	logger   *slog.Logger
	// noRecords is when the gateway last said it has no records endpoint,
	// in Unix nanoseconds of opts.Now; 0 if never (see recordsUsable).
	noRecords atomic.Int64
}

// New returns the module of instance inst, which must be of kind
// module.KindESA with Settings as its settings; requests go through proxy.
// Invalid settings are an Invalid *sightline.Error naming the field.
func New(inst module.Instance, proxy Proxy, opts Options) (module.Module, error) {
	if inst.Kind != module.KindESA {
		return nil, sightline.Errorf(sightline.Invalid, "module %s is of kind %q, not %q", inst.ID, inst.Kind, module.KindESA)
	}
	if proxy == nil {
		return nil, sightline.Errorf(sightline.Invalid, "module %s: no exchange to reach the gateway through", inst.ID)
	}
	s, err := parseSettings(inst.Settings)
	if err != nil {
		return nil, err
	}
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = 1000
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &esaModule{inst: inst, settings: s, proxy: proxy, opts: opts,
		logger: logger.With("component", "esa_module", "module_instance_id", inst.ID, "device_id", s.DeviceID)}, nil
}

// parseSettings reads and checks the instance settings.
func parseSettings(raw json.RawMessage) (Settings, error) {
	var s Settings
	if len(bytes.TrimSpace(raw)) == 0 {
		return s, sightline.Errorf(sightline.Invalid, "Email Security Appliance settings: device_id is required")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, sightline.Wrap(sightline.Invalid, err,
			`Email Security Appliance settings: want {"device_id": "…", "timeframe_days": 30}`)
	}
	if s.DeviceID == "" {
		return s, sightline.Errorf(sightline.Invalid, "Email Security Appliance settings: device_id is required")
	}
	switch {
	case s.TimeframeDays == 0:
		s.TimeframeDays = DefaultTimeframeDays
	case s.TimeframeDays < 1 || s.TimeframeDays > MaxTimeframeDays:
		return s, sightline.Errorf(sightline.Invalid,
			"Email Security Appliance settings: timeframe_days %d is out of range 1–%d", s.TimeframeDays, MaxTimeframeDays)
	}
	return s, nil
}

// Supports reports the routes of the module: health, observe, refer and
// respond; deliberate is left to the console's own intel.
func (m *esaModule) Supports(route string) bool {
	switch route {
	case module.RouteHealth, module.RouteObserve, module.RouteRefer,
		module.RouteRespondObservables, module.RouteRespondTrigger:
		return true
	}
	return false
}

// trackingPrivilege is the privilege observe needs (gateway-api.md §2).
const trackingPrivilege = "e_message_tracking_messages"

// Health checks that the gateway answers through the exchange and grants
// message tracking: GET /esa/api/v2.0/login/privileges.
func (m *esaModule) Health(ctx context.Context) ([]module.Error, error) {
	var privs struct {
		Data []string `json:"data"`
	}
	if err := m.get(ctx, pathPrivileges, nil, &privs); err != nil {
		return []module.Error{m.moduleError(ctx, err)}, nil
	}
	for _, p := range privs.Data {
		if p == trackingPrivilege {
			return nil, nil
		}
	}
	return []module.Error{{Code: codePermissionDenied, Type: typeFatal,
		Message: fmt.Sprintf("The gateway does not grant %s to requests from the exchange, so Message Tracking cannot be searched.", trackingPrivilege)}}, nil
}

// WritesCompactJSON implements module.CompactJSON: Observe's data is
// written by json.Marshal.
func (m *esaModule) WritesCompactJSON() {}

// Deliberate is not supported: the console's own intel answers it.
func (m *esaModule) Deliberate(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	return nil, []module.Error{unsupported(module.RouteDeliberate)}, nil
}

// RespondObservables lists the response actions for obs. The gateway offers
// none yet; actions (add the sender to a blocklist, …) are added to
// actionsFor.
func (m *esaModule) RespondObservables(ctx context.Context, obs []ctim.Observable) ([]module.Action, []module.Error, error) {
	actions := []module.Action{}
	for _, o := range obs {
		actions = append(actions, actionsFor(o)...)
	}
	return actions, nil, nil
}

// actionsFor returns the actions the gateway offers for o; none yet.
func actionsFor(o ctim.Observable) []module.Action { return nil }

// RespondTrigger runs an action; since the module offers none, every action
// id is unknown.
func (m *esaModule) RespondTrigger(ctx context.Context, actionID string, params map[string]string) ([]module.Error, error) {
	return []module.Error{{Code: codeInvalidArgument, Type: typeFatal,
		Message: fmt.Sprintf("The Email Security Appliance module has no action %q.", actionID)}}, nil
}

func unsupported(route string) module.Error {
	return module.Error{Code: codeInvalidArgument, Type: typeFatal,
		Message: fmt.Sprintf("The Email Security Appliance module does not support %s.", route)}
}
