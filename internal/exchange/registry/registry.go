// Package registry holds the exchange's records — organisations, their users
// and API keys, registration tokens, devices, the audit log — and the Store
// contract that every storage implementation (SQLite, PostgreSQL) satisfies.
//
// Secrets (tokens, device credentials, API keys) never reach a Store: only
// their SHA-256 hashes do (see Hash). Passwords arrive bcrypt-hashed.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/sightline/sightline"
)

// Regions an exchange can serve; each exchange deployment is exactly one.
const (
	RegionAmericas = "AMERICAS"
	RegionEurope   = "EUROPE"
	RegionAPJC     = "APJC"
)

// Regions lists the valid regions, the default first.
var Regions = []string{RegionAmericas, RegionEurope, RegionAPJC}

// Device types a token may register.
const (
	TypeESA = "ESA" // an email gateway
	TypeSMA = "SMA" // a manager
)

// StatusRegistered is the status of every device the exchange holds; a
// deregistered device is deleted.
const StatusRegistered = "Registered"

// Organisation is a tenant: its users, tokens, devices and switches are its own.
type Organisation struct {
	ID   string // UUID
	Name string // unique
	// ThreatResponse is the Cloud Services switch that lets the console's API
	// keys reach the organisation's devices; off until an administrator turns it on.
	ThreatResponse bool
	CreatedAt      time.Time
}

// User is a person who signs in to one organisation. Names are unique across
// the exchange.
type User struct {
	Name         string
	OrgID        string
	PasswordHash string // bcrypt
	CreatedAt    time.Time
}

// APIKey lets a program (the console) act for an organisation.
type APIKey struct {
	ID        string // UUID, shown and used to revoke
	OrgID     string
	Name      string // what it is for, e.g. "console"
	Hash      string // Hash of the key
	CreatedAt time.Time
	CreatedBy string
}

// Token is a registration token: it may register Remaining more devices of
// its organisation in its region until ExpiresAt, unless revoked.
type Token struct {
	ID        string // UUID, shown and used to revoke; never the token itself
	OrgID     string
	Region    string
	Hash      string // Hash of the 32-hex-character token
	Devices   int    // how many devices it was issued for (1–100)
	Remaining int
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero unless revoked
	CreatedBy string
}

// Device is a registered gateway or manager.
type Device struct {
	ID               string // UUID
	OrgID            string
	Name             string // the host name it registered with, editable
	Description      string
	Type             string // TypeESA or TypeSMA
	Version          string
	Serial           string
	ConnectorVersion string
	Status           string // StatusRegistered
	IP               string // the address its registration came from
	CredentialHash   string // Hash of its tunnel credential
	TokenID          string // the token that registered it
	CreatedAt        time.Time
	LastSeen         time.Time // last tunnel connect or disconnect; zero if never
}

// AuditEntry is one line of an organisation's audit log. An entry with an
// empty OrgID belongs to no organisation (a registration with an unknown token).
//
// Detail says what happened in words, for people; the fields after it say
// it as data, set where the exchange decided it, for programs to filter and
// act on. A field that does not apply to the entry is empty.
type AuditEntry struct {
	ID      int64 // assigned by the store, increasing
	OrgID   string
	Time    time.Time
	Actor   string // "admin", "api key console", "device <id>", "anonymous"
	Source  string // source IP address
	Action  string // one of the Action constants
	Target  string // what was acted on: a token ID, a device ID and name…
	Outcome string // OutcomeSuccess or OutcomeFailure
	Detail  string // the precise reason or the change made

	// Reason codes why a registration was refused: one of the Reason…
	// constants of package exchangeclient.
	Reason string
	// TokenID is the token created, revoked or presented; TokenFingerprint
	// names it by the first 16 hexadecimal characters of its Hash, also
	// for a token this store never held; TokenRegion is the region that
	// issued a token presented in another.
	TokenID, TokenFingerprint, TokenRegion string
	// DeviceID and DeviceName are the device acted on, or the host name a
	// device registers with before it has an ID.
	DeviceID, DeviceName string
	// DeviceVersion is the version a device registered with; MinVersion is
	// the exchange's minimum it was below.
	DeviceVersion, MinVersion string
}

// AuditQuery selects audit entries. The zero value of each filter selects
// every entry.
type AuditQuery struct {
	// OrgIDs are the organisations whose entries to read, "" for the
	// entries of no organisation; at least one.
	OrgIDs []string
	Since  time.Time // entries at or after it
	Action string    // an Action constant
	// Outcome is OutcomeSuccess or OutcomeFailure.
	Outcome string
	// Device selects the entries whose DeviceID is Device or whose
	// DeviceName is Device in any case (compared as strings.ToLower does).
	Device string
	// Token selects the entries whose TokenID or TokenFingerprint is Token.
	Token string
	// Before selects the entries whose ID is below it, for the next page
	// of a query: the ID of the last entry of the previous one. 0 starts
	// from the newest.
	Before int64
	// Limit is how many entries to return at most; it must be positive.
	Limit int
}

// Check returns q with its organisations sorted and each once, or the
// Invalid error a Store answers a query without organisations or a
// positive limit with.
func (q AuditQuery) Check() (AuditQuery, error) {
	if len(q.OrgIDs) == 0 {
		return q, sightline.Errorf(sightline.Invalid, "audit query: no organisation")
	}
	if q.Limit < 1 {
		return q, sightline.Errorf(sightline.Invalid, "audit query: limit %d: want 1 or more", q.Limit)
	}
	q.OrgIDs = slices.Compact(slices.Sorted(slices.Values(q.OrgIDs)))
	return q, nil
}

// DeviceKey is how stores compare device names for AuditQuery.Device: in
// lower case.
func DeviceKey(name string) string { return strings.ToLower(name) }

// Audit actions.
const (
	ActionTokenCreate     = "token.create"
	ActionTokenRevoke     = "token.revoke"
	ActionRegister        = "device.register"
	ActionDeregister      = "device.deregister"
	ActionDeviceEdit      = "device.edit"
	ActionDeviceDelete    = "device.delete"
	ActionCloudServices   = "cloud_services.change"
	ActionAPIKeyCreate    = "api_key.create"
	ActionAPIKeyRevoke    = "api_key.revoke"
	ActionOrganisationAdd = "organisation.create"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Store is the exchange's storage contract. Methods return a NotFound
// *sightline.Error for a missing record and a Conflict one for a duplicate
// name or ID; everything organisation-scoped takes the organisation ID and
// never touches another organisation's records (a record of another
// organisation is NotFound). Times are stored to the second at least.
type Store interface {
	// CreateOrganisation adds org (ID and Name unique).
	CreateOrganisation(ctx context.Context, org Organisation) error
	Organisation(ctx context.Context, id string) (Organisation, error)
	OrganisationByName(ctx context.Context, name string) (Organisation, error)
	// Organisations lists all organisations, oldest first.
	Organisations(ctx context.Context) ([]Organisation, error)
	SetThreatResponse(ctx context.Context, orgID string, on bool) error

	// CreateUser adds u (Name unique); its organisation must exist.
	CreateUser(ctx context.Context, u User) error
	User(ctx context.Context, name string) (User, error)

	CreateAPIKey(ctx context.Context, k APIKey) error
	APIKeyByHash(ctx context.Context, hash string) (APIKey, error)
	// APIKeys lists an organisation's keys, oldest first.
	APIKeys(ctx context.Context, orgID string) ([]APIKey, error)
	DeleteAPIKey(ctx context.Context, orgID, id string) error

	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// Tokens lists an organisation's tokens, newest first.
	Tokens(ctx context.Context, orgID string) ([]Token, error)
	// RevokeToken marks the token revoked at at; revoking twice is no error.
	RevokeToken(ctx context.Context, orgID, id string, at time.Time) error

	// RegisterDevice atomically takes one use of token tokenID and adds d
	// (with d.TokenID set to it): it decrements the token's Remaining only if
	// it is above zero, the token is not revoked and now is before its
	// expiry, so concurrent registrations never exceed the token's count. It
	// returns a Conflict error and adds nothing when the token cannot be used.
	RegisterDevice(ctx context.Context, tokenID string, now time.Time, d Device) error
	// Device returns a device of the organisation.
	Device(ctx context.Context, orgID, id string) (Device, error)
	DeviceByCredential(ctx context.Context, hash string) (Device, error)
	// Devices lists an organisation's devices, oldest first.
	Devices(ctx context.Context, orgID string) ([]Device, error)
	// UpdateDevice sets the name and description of a device.
	UpdateDevice(ctx context.Context, orgID, id, name, description string) error
	// TouchDevice sets the device's LastSeen; a missing device is no error
	// (it may have been deleted while its tunnel closed).
	TouchDevice(ctx context.Context, id string, at time.Time) error
	DeleteDevice(ctx context.Context, orgID, id string) error

	// AddAudit appends e (its ID is assigned).
	AddAudit(ctx context.Context, e AuditEntry) error
	// Audit returns the entries q selects, newest (largest ID) first, at
	// most q.Limit of them. A query without organisations or a limit is an
	// Invalid error.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)

	// Secret returns the stored value named name, storing candidate first if
	// there is none, so replicas sharing a store agree on one value.
	Secret(ctx context.Context, name string, candidate []byte) ([]byte, error)

	// Generation returns a number that changes, in the same transaction,
	// whenever a record that lets a request through changes or goes: an
	// API key is deleted, an organisation is changed (its Threat Response
	// switch) or deleted, a device is changed (TouchDevice aside) or
	// deleted. An exchange may keep what it read about keys, organisations
	// and devices for as long as the number stays the same; replicas
	// sharing the store see it move at once.
	Generation(ctx context.Context) (int64, error)
}

// Hash returns the hex SHA-256 of a secret (token, credential, API key), the
// only form in which a Store sees it. The secrets are 128-bit random values,
// so an unsalted fast hash is enough.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
