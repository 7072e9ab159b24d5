// Package records holds the console's records — organisations, their users
// and API clients, the keys that sign tokens, module instances and the stored
// intelligence of CTIA — and the Store contract that every storage
// implementation (SQLite, PostgreSQL) satisfies.
//
// Client secrets never reach a Store: only their SHA-256 hashes do (see
// Hash). Passwords arrive bcrypt-hashed. Other secrets (exchange API keys,
// module credentials) arrive sealed by the console, which alone holds the
// key that opens them. Everything but signing keys belongs
// to one organisation, and every method that reads or changes it takes the
// organisation's id, so one organisation never sees another's records.
package records

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
)

// Roles of console users.
const (
	RoleAdmin    = "admin"     // everything, including users, clients and modules
	RoleAnalyst  = "analyst"   // investigate and respond; read settings
	RoleReadOnly = "read-only" // investigate; read settings
)

// Roles lists the valid roles, the most powerful first.
var Roles = []string{RoleAdmin, RoleAnalyst, RoleReadOnly}

// Organisation is a tenant of the console.
type Organisation struct {
	ID   string // UUID
	Name string // unique
	// ExchangeKey is the organisation API key the console uses with the
	// exchange to list the organisation's devices and reach them, sealed by
	// the console (a Store keeps it as given); "" when none is configured.
	ExchangeKey string
	CreatedAt   time.Time
}

// User is a person who signs in to one organisation. Names are unique across
// the console.
type User struct {
	Name         string
	OrgID        string
	Role         string // RoleAdmin, RoleAnalyst or RoleReadOnly
	PasswordHash string // bcrypt
	CreatedAt    time.Time
}

// Client is an API client of an organisation: OAuth2 client credentials.
type Client struct {
	ID         string // "client-<uuid>"
	OrgID      string
	Name       string
	SecretHash string   // Hash of the secret
	Scopes     []string // CTR scope strings, e.g. "enrich:read"
	CreatedAt  time.Time
	CreatedBy  string
}

// SigningKey is an RSA key that signs access tokens and module JWTs. The
// newest key signs; older ones stay published until the tokens they signed
// have expired.
type SigningKey struct {
	ID        string // the JWT kid
	Private   []byte // PKCS #8 DER
	CreatedAt time.Time
}

// Instance is a module instance with its bookkeeping times.
type Instance struct {
	module.Instance
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ModuleType is a third-party module type an organisation registered: the
// relay-api.md §6 record, as JSON the console validated, with its secrets
// (configuration-token-key) sealed.
type ModuleType struct {
	ID        string // UUID, the module_type_id of its instances
	OrgID     string
	Title     string // unique in the organisation
	Record    json.RawMessage
	CreatedAt time.Time
	CreatedBy string
}

// Entity is one stored CTIM entity (sighting, judgement, casebook, incident).
type Entity struct {
	OrgID string
	Type  string // CTIM entity type
	ID    string // the short id, <type>-<uuid>
	// Doc is the entity's JSON as served.
	Doc json.RawMessage
	// Observables index the entity for observable lookups (verdicts, the
	// observable routes): a judgement's observable, a sighting's or a
	// casebook's observables.
	Observables []ctim.Observable
	// Version counts the entity's writes, from 1; UpdateEntity changes the
	// entity only at the version the caller read.
	Version int
}

// Store is the console's storage contract. Lookups of a missing record
// return a NotFound *sightline.Error; creating a duplicate returns a
// Conflict one.
type Store interface {
	// CreateOrganisation adds org (ID and Name unique).
	CreateOrganisation(ctx context.Context, org Organisation) error
	Organisation(ctx context.Context, id string) (Organisation, error)
	OrganisationByName(ctx context.Context, name string) (Organisation, error)
	// Organisations lists every organisation by name.
	Organisations(ctx context.Context) ([]Organisation, error)
	// SetExchangeKey sets the organisation's exchange API key.
	SetExchangeKey(ctx context.Context, orgID, key string) error

	// CreateUser adds u (Name unique); its organisation must exist.
	CreateUser(ctx context.Context, u User) error
	User(ctx context.Context, name string) (User, error)
	// Users lists an organisation's users by name.
	Users(ctx context.Context, orgID string) ([]User, error)
	DeleteUser(ctx context.Context, orgID, name string) error
	// SetUserPassword replaces the password hash of a user of orgID.
	SetUserPassword(ctx context.Context, orgID, name, hash string) error

	// Secret returns the console-wide secret called name, storing candidate
	// first when there is none: every replica sharing the store reads the
	// same value.
	Secret(ctx context.Context, name string, candidate []byte) ([]byte, error)

	CreateClient(ctx context.Context, c Client) error
	// Client returns a client by its id, whatever its organisation: the
	// token endpoint knows only the id.
	Client(ctx context.Context, id string) (Client, error)
	// Clients lists an organisation's clients, oldest first.
	Clients(ctx context.Context, orgID string) ([]Client, error)
	DeleteClient(ctx context.Context, orgID, id string) error

	// AddSigningKey stores k (ID unique).
	AddSigningKey(ctx context.Context, k SigningKey) error
	// SigningKeys lists the keys created at or after since, newest first.
	SigningKeys(ctx context.Context, since time.Time) ([]SigningKey, error)
	// DeleteSigningKeys removes the keys created before before, except the
	// newest key of all, which always stays.
	DeleteSigningKeys(ctx context.Context, before time.Time) error

	// CreateInstance adds a module instance (ID unique).
	CreateInstance(ctx context.Context, in Instance) error
	Instance(ctx context.Context, orgID, id string) (Instance, error)
	// Instances lists an organisation's instances by name, then id.
	Instances(ctx context.Context, orgID string) ([]Instance, error)
	// UpdateInstance replaces name, enabled, settings and UpdatedAt.
	UpdateInstance(ctx context.Context, in Instance) error
	DeleteInstance(ctx context.Context, orgID, id string) error

	// CreateModuleType adds a module type (ID unique, Title unique in its
	// organisation).
	CreateModuleType(ctx context.Context, t ModuleType) error
	ModuleType(ctx context.Context, orgID, id string) (ModuleType, error)
	// ModuleTypes lists an organisation's module types by title.
	ModuleTypes(ctx context.Context, orgID string) ([]ModuleType, error)
	// DeleteModuleType removes a module type; while an instance of the
	// organisation has it as its type, the type stays and the error is a
	// Conflict.
	DeleteModuleType(ctx context.Context, orgID, id string) error

	// CreateEntity stores e at Version 1 (e.Version is ignored).
	CreateEntity(ctx context.Context, e Entity) error
	Entity(ctx context.Context, orgID, typ, id string) (Entity, error)
	// UpdateEntity replaces the document and observables of the entity if
	// its stored version is still e.Version, and increments the version. A
	// changed version is a Conflict error, a missing entity NotFound.
	UpdateEntity(ctx context.Context, e Entity) error
	DeleteEntity(ctx context.Context, orgID, typ, id string) error
	// Entities lists an organisation's entities of one type, oldest first;
	// with obs not nil, only those indexed under that observable.
	Entities(ctx context.Context, orgID, typ string, obs *ctim.Observable) ([]Entity, error)
}

// Hash returns the hex SHA-256 of a client secret, the only form in which a
// Store sees it. Secrets are 256-bit random values, so an unsalted fast hash
// is enough.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
