// Package config is the gateway's configuration and its commit model: every
// edit is staged in the editing user's pending copy, Commit Changes applies it
// atomically with a comment, Clear Changes drops it, and the last commits are
// kept for rollback (gateway-api.md §11).
package config

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/clamd"
	"github.com/sightline/sightline/internal/gateway/pipeline"
	"github.com/sightline/sightline/internal/gateway/queue"
	"github.com/sightline/sightline/internal/gateway/smtpd"
	"github.com/sightline/sightline/internal/store/sqlite"
)

// Config is the whole gateway configuration: what a commit applies.
type Config struct {
	Hostname  string          `json:"hostname"`
	SMTP      *smtpd.Policy   `json:"smtp"`      // Mail Policies: HAT, mail flow policies, RAT
	Screening *pipeline.Rules `json:"screening"` // Security Services and content filters
	Routes    []queue.Route   `json:"smtp_routes"`
	AntiVirus AntiVirus       `json:"anti_virus"`
	Cloud     Cloud           `json:"cloud"`
}

// AntiVirus says where the ClamAV daemon listens; the scanning rules are in
// Screening.
type AntiVirus struct {
	// Clamd is "unix:/path" or "tcp:host:port"; empty means no anti-virus.
	Clamd string `json:"clamd"`
}

// Cloud is "Network > Cloud Service Settings".
type Cloud struct {
	ThreatResponse bool     `json:"threat_response"` // Threat Response Enabled
	Server         string   `json:"server"`          // the chosen region's label, e.g. "AMERICAS"
	Regions        []Region `json:"regions"`         // the servers offered; the first is the default
}

// Region is one Threat Response Server: an exchange's label and URL.
type Region struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// Default returns the configuration of a new gateway.
func Default(hostname string) *Config {
	return &Config{
		Hostname:  hostname,
		SMTP:      smtpd.DefaultPolicy(),
		Screening: pipeline.DefaultRules(),
		Cloud: Cloud{Regions: []Region{
			{Label: "AMERICAS", URL: "http://127.0.0.1:8090"},
			{Label: "EUROPE", URL: "http://127.0.0.1:8091"},
		}},
	}
}

// Validate reports the first problem with c, naming the setting.
func (c *Config) Validate() error {
	if c.Hostname == "" {
		return sightline.Errorf(sightline.Invalid, "hostname is empty")
	}
	if c.SMTP == nil || c.Screening == nil {
		return sightline.Errorf(sightline.Invalid, "configuration lacks its mail policies or screening rules")
	}
	if err := c.SMTP.Validate(); err != nil {
		return err
	}
	if err := c.Screening.Validate(); err != nil {
		return err
	}
	if err := validateRoutes(c.Routes); err != nil {
		return err
	}
	if c.AntiVirus.Clamd != "" {
		if _, _, err := clamd.ParseAddress(c.AntiVirus.Clamd); err != nil {
			return sightline.Errorf(sightline.Invalid, "anti-virus: clamd address %q: want unix:/path or tcp:host:port", c.AntiVirus.Clamd)
		}
	}
	if c.Cloud.ThreatResponse && c.Cloud.region(c.Cloud.Server) == nil {
		return sightline.Errorf(sightline.Invalid, "Threat Response Server %q is not one of the configured regions", c.Cloud.Server)
	}
	return nil
}

func validateRoutes(routes []queue.Route) error {
	seen := map[string]bool{}
	for i, r := range routes {
		d := strings.ToLower(r.Domain)
		switch {
		case d == "":
			return sightline.Errorf(sightline.Invalid, "SMTP route %d: domain is empty", i+1)
		case d != "all" && strings.ContainsAny(d, " @/:"):
			return sightline.Errorf(sightline.Invalid, "SMTP route %q: want a domain, .domain for its subdomains, or ALL", r.Domain)
		case seen[d]:
			return sightline.Errorf(sightline.Invalid, "SMTP route %q is listed twice", r.Domain)
		case len(r.Hosts) == 0:
			return sightline.Errorf(sightline.Invalid, "SMTP route %q has no destination host", r.Domain)
		}
		seen[d] = true
		for _, h := range r.Hosts {
			if h == "USEDNS" {
				if len(r.Hosts) > 1 {
					return sightline.Errorf(sightline.Invalid, "SMTP route %q: USEDNS cannot be mixed with hosts", r.Domain)
				}
				continue
			}
			host, port, err := net.SplitHostPort(h)
			if err != nil {
				host, port = h, "25"
			}
			if n, err := strconv.Atoi(port); host == "" || strings.ContainsAny(host, " /") || err != nil || n < 1 || n > 65535 {
				return sightline.Errorf(sightline.Invalid, "SMTP route %q: destination %q: want host or host:port", r.Domain, h)
			}
		}
		switch r.TLS {
		case "", queue.TLSNone, queue.TLSOpportunistic, queue.TLSRequired:
		default:
			return sightline.Errorf(sightline.Invalid, "SMTP route %q: TLS %q: want none, opportunistic or required", r.Domain, r.TLS)
		}
	}
	return nil
}

// Chosen returns the chosen Threat Response Server: the region whose label
// is Server, or the first region when none is chosen.
func (cl *Cloud) Chosen() Region {
	if r := cl.region(cl.Server); r != nil {
		return *r
	}
	if len(cl.Regions) > 0 {
		return cl.Regions[0]
	}
	return Region{}
}

func (cl *Cloud) region(label string) *Region {
	for i := range cl.Regions {
		if cl.Regions[i].Label == label {
			return &cl.Regions[i]
		}
	}
	return nil
}

// clone returns a deep copy, by a JSON round trip: configurations are small.
func (c *Config) clone() *Config {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("config: marshal: %v", err))
	}
	var d Config
	if err := json.Unmarshal(b, &d); err != nil {
		panic(fmt.Sprintf("config: unmarshal: %v", err))
	}
	return &d
}

// Keep is how many commits are kept for rollback.
const Keep = 10

// Store is the persistence the Manager needs.
type Store interface {
	Running(ctx context.Context) (*sqlite.Commit, error)
	CommitByID(ctx context.Context, id int64) (*sqlite.Commit, error)
	History(ctx context.Context, limit int) ([]sqlite.Commit, error)
	Pending(ctx context.Context, user string) ([]byte, bool, error)
	SetPending(ctx context.Context, user string, config []byte) error
	ClearPending(ctx context.Context, user string) (bool, error)
	AppendCommit(ctx context.Context, c sqlite.Commit, keep int) (int64, error)
}

// Manager owns the running configuration and the pending copies.
type Manager struct {
	store  Store
	apply  func(*Config) error
	logger *slog.Logger

	mu      sync.Mutex // serialises commits
	running *Config
	id      int64
}

// Commit describes one applied configuration.
type Commit struct {
	ID          int64
	CommittedAt time.Time
	User        string
	Comment     string
}

// NewManager loads the running configuration, committing initial as the
// first one on a new gateway, and applies it with apply. Later commits call
// apply too; an apply error aborts the commit.
func NewManager(ctx context.Context, store Store, initial *Config, apply func(*Config) error, logger *slog.Logger) (*Manager, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{store: store, apply: apply, logger: logger}
	c, err := store.Running(ctx)
	switch {
	case sightline.ErrorKind(err) == sightline.NotFound:
		if err := initial.Validate(); err != nil {
			return nil, fmt.Errorf("initial configuration: %w", err)
		}
		b, _ := json.Marshal(initial)
		id, err := store.AppendCommit(ctx, sqlite.Commit{CommittedAt: time.Now(), User: "system", Comment: "initial configuration", Config: b}, Keep)
		if err != nil {
			return nil, err
		}
		m.running, m.id = initial.clone(), id
	case err != nil:
		return nil, err
	default:
		var cfg Config
		if err := json.Unmarshal(c.Config, &cfg); err != nil {
			return nil, fmt.Errorf("running configuration %d: %w", c.ID, err)
		}
		m.running, m.id = &cfg, c.ID
	}
	if err := apply(m.running.clone()); err != nil {
		return nil, fmt.Errorf("apply running configuration: %w", err)
	}
	return m, nil
}

// Running returns a copy of the running configuration.
func (m *Manager) Running() *Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running.clone()
}

// View returns the configuration user sees: their pending copy if they have
// one, else the running one; and whether it is pending.
func (m *Manager) View(ctx context.Context, user string) (*Config, bool, error) {
	b, ok, err := m.store.Pending(ctx, user)
	if err != nil || !ok {
		return m.Running(), false, err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, false, fmt.Errorf("pending configuration of %s: %w", user, err)
	}
	return &cfg, true, nil
}

// Edit stages a change: edit receives user's current view to modify; the
// result is validated and saved as their pending copy.
func (m *Manager) Edit(ctx context.Context, user string, edit func(*Config) error) error {
	cfg, _, err := m.View(ctx, user)
	if err != nil {
		return err
	}
	if err := edit(cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	b, _ := json.Marshal(cfg)
	return m.store.SetPending(ctx, user, b)
}

// HasPending reports whether user has uncommitted changes.
func (m *Manager) HasPending(ctx context.Context, user string) (bool, error) {
	_, ok, err := m.store.Pending(ctx, user)
	return ok, err
}

// ErrNothingToCommit is the AsyncOS answer to a commit without changes.
var ErrNothingToCommit = sightline.Errorf(sightline.Conflict, "There is no data to commit.")

// Commit applies user's pending copy with comment and makes it the running
// configuration.
func (m *Manager) Commit(ctx context.Context, user, comment string) (*Commit, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok, err := m.store.Pending(ctx, user)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNothingToCommit
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("pending configuration of %s: %w", user, err)
	}
	return m.commitLocked(ctx, &cfg, user, comment)
}

func (m *Manager) commitLocked(ctx context.Context, cfg *Config, user, comment string) (*Commit, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := m.apply(cfg.clone()); err != nil {
		// Put the running configuration back into every component.
		if rerr := m.apply(m.running.clone()); rerr != nil {
			m.logger.Error("cannot restore running configuration", "err", rerr)
		}
		return nil, err
	}
	b, _ := json.Marshal(cfg)
	c := sqlite.Commit{CommittedAt: time.Now().UTC(), User: user, Comment: comment, Config: b}
	id, err := m.store.AppendCommit(ctx, c, Keep)
	if err != nil {
		if rerr := m.apply(m.running.clone()); rerr != nil {
			m.logger.Error("cannot restore running configuration", "err", rerr)
		}
		return nil, err
	}
	m.running, m.id = cfg, id
	m.logger.Info("configuration committed", "commit", id, "user", user, "comment", comment)
	return &Commit{ID: id, CommittedAt: c.CommittedAt, User: user, Comment: comment}, nil
}

// Clear drops user's pending copy and reports whether there was one.
func (m *Manager) Clear(ctx context.Context, user string) (bool, error) {
	return m.store.ClearPending(ctx, user)
}

// History lists the commits kept for rollback, newest first.
func (m *Manager) History(ctx context.Context) ([]Commit, error) {
	cs, err := m.store.History(ctx, Keep)
	if err != nil {
		return nil, err
	}
	out := make([]Commit, len(cs))
	for i, c := range cs {
		out[i] = Commit{ID: c.ID, CommittedAt: c.CommittedAt, User: c.User, Comment: c.Comment}
	}
	return out, nil
}

// Rollback makes the configuration of commit id running again, as a new
// commit by user.
func (m *Manager) Rollback(ctx context.Context, user string, id int64) (*Commit, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.store.CommitByID(ctx, id)
	if err != nil {
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal(c.Config, &cfg); err != nil {
		return nil, fmt.Errorf("configuration %d: %w", id, err)
	}
	return m.commitLocked(ctx, &cfg, user, fmt.Sprintf("rollback to configuration %d", id))
}
