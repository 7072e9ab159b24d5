package ui

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/observable"
)

// The data the pages read and change, through interfaces the console core
// adapts. Every method acts for one organisation, named by org (its id);
// errors are *sightline.Error: NotFound for a missing record, Invalid for a
// value the core refuses (its message is shown beside the form), Conflict
// for a duplicate, Unavailable when a dependency (the exchange) cannot be
// reached. Any other error shows an error page and is logged.

// Roles of console users, the most powerful first (records.Role…).
const (
	RoleAdmin    = "admin"     // everything, including modules, API clients and users
	RoleAnalyst  = "analyst"   // investigate, save snapshots, manage incidents and judgements
	RoleReadOnly = "read-only" // view only
)

// Roles lists the roles a user can be given, the most powerful first.
var Roles = []string{RoleAdmin, RoleAnalyst, RoleReadOnly}

// Account is a console user.
type Account struct {
	Name    string
	Org     string // organisation id
	Role    string // RoleAdmin, RoleAnalyst or RoleReadOnly
	Created time.Time
}

// Accounts manages the console's users. The UI looks the signed-in user up
// on every request, so that a changed role or a deleted user takes effect at
// once; Account of an unknown name is NotFound.
type Accounts interface {
	Account(ctx context.Context, name string) (Account, error)
	// Accounts lists an organisation's users by name.
	Accounts(ctx context.Context, org string) ([]Account, error)
	// CreateAccount adds a user (a.Org set); the core hashes the password
	// and refuses a taken name with Conflict.
	CreateAccount(ctx context.Context, a Account, password string) error
	SetPassword(ctx context.Context, org, name, password string) error
	DeleteAccount(ctx context.Context, org, name string) error
}

// Investigator runs an investigation: it fans the query's observables
// (q.Observables()) out to every enabled module of the organisation and
// returns each module's answer. A module that fails is an entry with Errors,
// never an error of the call: the call fails only when no investigation
// could start (an Invalid error is shown as a syntax banner).
type Investigator interface {
	Investigate(ctx context.Context, org string, q observable.Query) (Investigation, error)
}

// Investigation is the outcome of one Investigate query. It marshals to
// JSON, so that a Snapshot can keep it as it was.
type Investigation struct {
	// Observables are what was investigated; nil means the query's.
	Observables []observable.Observable `json:"observables"`
	// Modules are the answers, one per module instance, in display order.
	Modules []ModuleResult `json:"modules"`
	// Time is when it ran; the zero time means now.
	Time time.Time `json:"time,omitzero"`
}

// ModuleResult is one module instance's answer to observe and deliberate.
type ModuleResult struct {
	Module     string `json:"module"`             // instance name, e.g. "esa03"
	TypeName   string `json:"type_name"`          // e.g. "Email Security Appliance"
	InstanceID string `json:"module_instance_id"` // module_instance_id
	TypeID     string `json:"module_type_id"`     // module_type_id
	// Data holds the CTIM plurals as the module sent them ("sightings",
	// "verdicts", "judgements", "indicators", "relationships", each
	// {"count": n, "docs": […]}). Documents the UI cannot read are counted
	// and skipped, never fatal.
	Data module.Data `json:"data,omitempty"`
	// Errors are what the module (or the console, for a timeout or a
	// transport failure) reported; they are shown beside the other modules'
	// results.
	Errors []module.Error `json:"errors,omitempty"`
}

// Snapshot is a saved investigation (a CTR snapshot).
type Snapshot struct {
	ID            string
	Name          string
	Query         string
	Author        string
	Created       time.Time
	Investigation Investigation // empty in lists
}

// Snapshots stores saved investigations.
type Snapshots interface {
	// SaveSnapshot stores s (ID empty) and returns its id.
	SaveSnapshot(ctx context.Context, org string, s Snapshot) (string, error)
	// Snapshots lists the organisation's snapshots, newest first; their
	// Investigation may be left empty.
	Snapshots(ctx context.Context, org string) ([]Snapshot, error)
	Snapshot(ctx context.Context, org, id string) (Snapshot, error)
	DeleteSnapshot(ctx context.Context, org, id string) error
}

// Incident is an incident as the pages show it.
type Incident struct {
	ID          string // short id, used in URLs
	Title       string
	Description string
	Status      ctim.IncidentStatus
	Severity    ctim.Severity
	Confidence  ctim.Confidence
	Opened      time.Time
	Modified    time.Time
	Author      string
	Query       string                  // the investigation it came from, if any
	Observables []observable.Observable // the observables investigated
	// Sightings are the CTIM sightings it was created from, as JSON.
	Sightings []json.RawMessage
}

// Incidents stores incidents.
type Incidents interface {
	// Incidents lists the organisation's incidents, newest first, without
	// their Sightings.
	Incidents(ctx context.Context, org string) ([]Incident, error)
	Incident(ctx context.Context, org, id string) (Incident, error)
	// CreateIncident stores in (ID empty) and returns its id.
	CreateIncident(ctx context.Context, org string, in Incident) (string, error)
	SetIncidentStatus(ctx context.Context, org, id string, status ctim.IncidentStatus) error
}

// Judgements stores the organisation's own judgements (Intelligence).
type Judgements interface {
	// Judgements lists the organisation's judgements, newest first.
	Judgements(ctx context.Context, org string) ([]ctim.Judgement, error)
	// CreateJudgement stores j, which the UI has filled and validated but
	// for id, type and schema version, and returns it as stored.
	CreateJudgement(ctx context.Context, org string, j ctim.Judgement) (ctim.Judgement, error)
	// ExpireJudgement ends the judgement's valid time at at. id is the
	// short id.
	ExpireJudgement(ctx context.Context, org, id string, at time.Time) error
	DeleteJudgement(ctx context.Context, org, id string) error
}

// Device is a device registered in the organisation's exchange.
type Device struct {
	ID        string
	Name      string
	Type      string // "ESA", "SMA"
	IP        string
	Version   string
	Status    string // e.g. "Registered"
	Connected bool   // has a live tunnel now
}

// DeviceList is the organisation's devices as the exchange reports them.
type DeviceList struct {
	Organisation string // the organisation's name in the exchange
	// ThreatResponse is false when the organisation has not turned Threat
	// Response on under Cloud Services in the exchange; Devices is then
	// empty.
	ThreatResponse bool
	Devices        []Device
}

// Devices lists the organisation's devices from the exchange. An
// unreachable exchange is an Unavailable error, a missing or refused API key
// an Invalid one; both messages are shown as they are.
type Devices interface {
	Devices(ctx context.Context, org string) (DeviceList, error)
}

// Module kinds the Add New Module page offers (module.Kind…).
const (
	KindESA   = module.KindESA
	KindSMA   = module.KindSMA
	KindRelay = module.KindRelay
)

// Relay authentication styles (the relay package's Style… values).
const (
	AuthStatic      = "static"       // a static bearer token: Secret
	AuthConfigToken = "config_token" // a signed configuration JWT: HS256 with Secret as key, RS256 when Secret is empty
)

// Module is a module instance as the Modules pages show and edit it.
type Module struct {
	ID       string
	Kind     string // KindESA, KindSMA or KindRelay
	TypeID   string
	TypeName string // e.g. "Email Security Appliance"; set by the core
	Name     string
	Enabled  bool

	// ESA and SMA: the registered device and the request timeframe.
	DeviceID      string
	TimeframeDays int

	// Relay: the module's URL, its authentication, the routes it serves
	// (module.Route…) and its timeout.
	URL            string
	AuthStyle      string // AuthStatic or AuthConfigToken
	Secret         string // write-only: the core never returns it; "" on update keeps the stored one
	HasSecret      bool   // set by the core when a secret is stored
	SupportedAPIs  []string
	TimeoutSeconds int

	// A relay module of a registered module type (Typed; TypeID is the
	// type, TypeName its title) is configured by the values of the type's
	// fields, by key, as the form sends them. Secret values are write-only:
	// the core never returns them, an empty one on update keeps the stored
	// value, and SecretsSet names the fields that have one.
	Typed      bool
	Values     map[string]string
	SecretsSet []string
}

// Health is the outcome of a module's health check.
type Health struct {
	OK     bool
	Errors []module.Error
}

// Modules manages module instances.
type Modules interface {
	// Modules lists the organisation's instances by name.
	Modules(ctx context.Context, org string) ([]Module, error)
	Module(ctx context.Context, org, id string) (Module, error)
	// CreateModule checks m (against the exchange for ESA and SMA) and
	// stores it; an Invalid error names the problem.
	CreateModule(ctx context.Context, org string, m Module) (Module, error)
	// UpdateModule replaces name, enabled and settings of m.ID.
	UpdateModule(ctx context.Context, org string, m Module) error
	DeleteModule(ctx context.Context, org, id string) error
	// CheckModule calls the instance's health route; a module that cannot
	// be reached is a Health with errors, not an error.
	CheckModule(ctx context.Context, org, id string) (Health, error)
}

// APIClient is an OAuth2 API client of the organisation.
type APIClient struct {
	ID        string
	Name      string
	Scopes    []string
	Created   time.Time
	CreatedBy string
	Secret    string // only in the answer to CreateClient; never stored
}

// APIClients manages API clients.
type APIClients interface {
	// Clients lists the organisation's clients, oldest first.
	Clients(ctx context.Context, org string) ([]APIClient, error)
	// CreateClient creates a client with scope names (Config.Scopes) and
	// returns it with its secret.
	CreateClient(ctx context.Context, org, name, by string, scopes []string) (APIClient, error)
	RevokeClient(ctx context.Context, org, id string) error
}

// ModuleType is a kind of module an instance can be added of: a built-in
// type or one the organisation registered (relay-api.md §6).
type ModuleType struct {
	ID               string
	Kind             string // KindESA, KindSMA, KindRelay; another kind cannot be added here
	Title            string
	DefaultName      string
	ShortDescription string
	Description      string
	BuiltIn          bool
	// Available is false when instances cannot be added; Unavailable says
	// why.
	Available   bool
	Unavailable string
	// Fields are the type's configuration_spec: the settings of each
	// instance of a registered type.
	Fields        []TypeField
	Capabilities  []string
	URL           string   // the module's URL, when the type fixes it
	SupportedAPIs []string // the routes the console may call
	AuthType      string   // configuration-token or bearer
	Created       time.Time
	CreatedBy     string
}

// TypeField is one field of a module type's configuration_spec.
type TypeField struct {
	Key      string
	Type     string // string, password, api_key, integer, boolean, options, file, remote or device
	Label    string
	Tooltip  string
	Group    string
	Required bool
	Default  string // the default value as the form shows it
	Options  []FieldOption
}

// FieldOption is one choice of an options field.
type FieldOption struct{ Value, Label string }

// ModuleTypes lists and registers module types.
type ModuleTypes interface {
	// ModuleTypes lists the built-in types, then the organisation's.
	ModuleTypes(ctx context.Context, org string) ([]ModuleType, error)
	ModuleType(ctx context.Context, org, id string) (ModuleType, error)
	// RegisterModuleType checks a module type record (JSON, relay-api.md
	// §6) and stores it; an Invalid error names every offending field.
	RegisterModuleType(ctx context.Context, org, by string, record []byte) (ModuleType, error)
	// DeleteModuleType removes a registered type; a type that instances
	// use is a Conflict.
	DeleteModuleType(ctx context.Context, org, id string) error
}

// ExchangeStatus is how the organisation reaches the paired exchange.
type ExchangeStatus struct {
	URL            string // the exchange's API; "" when the console has none
	KeySet         bool   // the organisation has an API key
	Reachable      bool   // the exchange accepted the key just now
	ThreatResponse bool
	Problem        string // why it is not reachable
}

// ExchangeKeys manages the organisation's exchange API key, which the
// modules of the organisation use to reach its devices.
type ExchangeKeys interface {
	ExchangeStatus(ctx context.Context, org string) (ExchangeStatus, error)
	// SetExchangeKey stores the key (write-only).
	SetExchangeKey(ctx context.Context, org, key string) error
}

// TilePeriods are the periods of tile data (relay-api.md §4.5), shortest
// first.
var TilePeriods = []string{"last_hour", "last_24_hours", "last_7_days", "last_30_days", "last_60_days", "last_90_days"}

// DefaultTilePeriod is the period a dashboard shows first.
const DefaultTilePeriod = "last_24_hours"

// Dashboard is the tiles of the organisation's modules.
type Dashboard struct {
	Period  string
	Modules []DashboardModule
}

// DashboardModule is one module instance's tiles, or the errors that kept
// them from being listed.
type DashboardModule struct {
	Module     string // instance name
	TypeName   string
	InstanceID string
	Tiles      []TileResult
	Errors     []module.Error
}

// TileResult is one tile with its data, or the errors that kept the data
// from being read.
type TileResult struct {
	Tile module.Tile
	// Period is the period of Data: the one asked for, or the tile's first
	// when it does not offer that one.
	Period string
	// Data is the object of POST /tiles/tile-data (valid_time, period,
	// data, keys…), as the module sent it; nil when it failed.
	Data   json.RawMessage
	Errors []module.Error
}

// Dashboards reads the tiles of the organisation's modules: those whose
// type lists the tiles route. A module or a tile that fails is an entry
// with Errors beside the others, never an error of the call.
type Dashboards interface {
	// Dashboard lists every tile of every enabled module that serves
	// tiles, each with its data for period.
	Dashboard(ctx context.Context, org, period string) (Dashboard, error)
	// Tile reads one tile of one module instance (its definition, then its
	// data for period); an unknown instance is NotFound.
	Tile(ctx context.Context, org, instanceID, tileID, period string) (DashboardModule, error)
}
