// Package demo starts Sightline ready to investigate: it does the seed's
// journey through the roles' own APIs, configures the gateway for a demo
// organisation and sends it a realistic stream of mail over SMTP
// (`sightline serve --demo`).
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway"
	"github.com/sightline/sightline/internal/gateway/config"
)

// Setup is what Run needs: the running roles and how to reach them.
type Setup struct {
	// Gateway is the running gateway; the demo stages and commits its
	// configuration in process. Required.
	Gateway *gateway.Gateway
	// GatewayURL is the gateway's UI and API base URL. Required.
	GatewayURL string
	// SMTPAddr is the gateway's SMTP listener, host:port. Required.
	SMTPAddr string
	// Region is the label of the Threat Response Server the gateway
	// registers with; "" means the gateway's default (its first region).
	Region string
	// ExchangeURL is the base URL of that region's exchange. Required.
	ExchangeURL string
	// ConsoleURL is the console's base URL. Required.
	ConsoleURL string
	// User and Password sign in as an administrator of the gateway, the
	// exchange and the console. Required.
	User, Password string
	// StateDir keeps what the demo remembers between starts. Required.
	StateDir string
	// MinPause and MaxPause bound the random pause between two messages of
	// the trickle; zero means 1s and 3s.
	MinPause, MaxPause time.Duration
	// Messages is how many messages the trickle sends before it stops; zero
	// means 2000, a negative number none.
	Messages int
	// Out receives what the demo did and what to try; nil discards it.
	Out io.Writer
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// HTTPClient calls the roles' APIs; nil means a client with a
	// 30-second timeout.
	HTTPClient *http.Client
}

// Defaults of Setup.
const (
	defaultMinPause = time.Second
	defaultMaxPause = 3 * time.Second
	defaultMessages = 2000
	// stepTimeout bounds each wait of the journey: registration, tunnel.
	stepTimeout = 2 * time.Minute
	// commitUser is the gateway user name the demo stages its changes as,
	// apart from every real user's pending changes.
	commitUser = "demo"
	stateFile  = "state.json"
)

// Run does the journey (Threat Response enabled and committed on the
// gateway, the gateway registered with the exchange of Setup.Region, Threat
// Response enabled for the organisation, an Email Security Appliance module
// in the console), commits the demo's configuration (see configure), serves
// the demo organisation's mail server and sends mail to the gateway: on the
// first start a burst of every kind at once, then a trickle until ctx ends or
// Setup.Messages are sent. Each step checks the state first, so a second
// start on the same data changes and duplicates nothing. Run returns when ctx
// ends, nil unless a step of the set-up failed.
func Run(ctx context.Context, s Setup) error {
	d, err := newDemo(s)
	if err != nil {
		return err
	}
	deviceID, moduleName, err := d.journey(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	ln, err := d.listenSink(ctx)
	if err != nil {
		return fmt.Errorf("demo: organisation mail server: %w", err)
	}
	sk := newSink(BouncingRecipient, d.log)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := sk.serve(ln); err != nil {
			d.log.Error("demo mail server stopped", "err", err)
		}
	})
	defer func() {
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		sk.shutdown(shut)
		wg.Wait()
	}()
	if err := d.commit(ctx, "demo: mail flow, reputation lists, content filters and route for "+OrgDomain,
		func(c *config.Config) { configure(c, ln.Addr().String()) }); err != nil {
		return fmt.Errorf("demo: configure the gateway: %w", err)
	}

	gen := newGenerator(rand.Uint64(), time.Now)
	st, err := d.loadState()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var sent []*Message
	if st.BurstSentAt.IsZero() {
		for _, m := range gen.burst() {
			if err := d.send(ctx, m); err != nil {
				return fmt.Errorf("demo: send %s message %q: %w", m.Kind, m.Subject, err)
			}
			sent = append(sent, m)
		}
		st.BurstSentAt = time.Now().UTC()
		if err := d.saveState(st); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	d.summary(deviceID, moduleName, ln.Addr().String(), sent, st)
	d.trickle(ctx, gen)
	<-ctx.Done()
	return nil
}

// demo is one Run.
type demo struct {
	Setup
	log    *slog.Logger
	out    io.Writer
	source *net.TCPAddr // the SMTP client's local address; nil once SourceIP failed
}

func newDemo(s Setup) (*demo, error) {
	var missing []string
	for name, v := range map[string]bool{"Gateway": s.Gateway != nil, "GatewayURL": s.GatewayURL != "",
		"SMTPAddr": s.SMTPAddr != "", "ExchangeURL": s.ExchangeURL != "", "ConsoleURL": s.ConsoleURL != "",
		"User": s.User != "", "Password": s.Password != "", "StateDir": s.StateDir != ""} {
		if !v {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("demo: setup lacks %s", strings.Join(missing, ", "))
	}
	d := &demo{Setup: s, log: s.Logger, out: s.Out, source: &net.TCPAddr{IP: net.ParseIP(SourceIP)}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("component", "demo")
	if d.out == nil {
		d.out = io.Discard
	}
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if d.MinPause <= 0 {
		d.MinPause = defaultMinPause
	}
	if d.MaxPause < d.MinPause {
		d.MaxPause = max(defaultMaxPause, d.MinPause)
	}
	if d.Messages == 0 {
		d.Messages = defaultMessages
	}
	if d.Region == "" {
		d.Region = d.Gateway.Config().Running().Cloud.Chosen().Label
	}
	return d, nil
}

// commit applies edit to the running configuration and commits the result
// as commitUser, unless it changes nothing.
func (d *demo) commit(ctx context.Context, comment string, edit func(*config.Config)) error {
	m := d.Gateway.Config()
	if _, err := m.Clear(ctx, commitUser); err != nil { // a pending copy left by a stopped run
		return err
	}
	before, _ := json.Marshal(m.Running())
	changed := false
	err := m.Edit(ctx, commitUser, func(c *config.Config) error {
		edit(c)
		after, _ := json.Marshal(c)
		changed = !bytes.Equal(before, after)
		return nil
	})
	if err != nil || !changed {
		m.Clear(ctx, commitUser)
		return err
	}
	_, err = m.Commit(ctx, commitUser, comment)
	return err
}

// listenSink listens for the demo organisation's mail server where the
// running route of OrgDomain points, so that a restart needs no commit, or
// on a new loopback port.
func (d *demo) listenSink(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	if addr := routedSink(d.Gateway.Config().Running()); addr != "" {
		if ln, err := lc.Listen(ctx, "tcp", addr); err == nil {
			return ln, nil
		}
	}
	return lc.Listen(ctx, "tcp", "127.0.0.1:0")
}

// state is what the demo remembers between starts.
type state struct {
	BurstSentAt time.Time `json:"burst_sent_at,omitzero"`
}

func (d *demo) loadState() (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(d.StateDir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state %s: %w", filepath.Join(d.StateDir, stateFile), err)
	}
	return st, nil
}

func (d *demo) saveState(st state) error {
	b, _ := json.Marshal(st)
	if err := os.MkdirAll(d.StateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return writeFileAtomic(filepath.Join(d.StateDir, stateFile), b)
}

// writeFileAtomic replaces name with data, through a temporary file.
func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// trickle sends a message after each random pause until ctx ends or
// Messages are sent. A message the gateway refuses is logged, not fatal.
func (d *demo) trickle(ctx context.Context, gen *generator) {
	for i := 0; i < d.Messages; i++ {
		pause := d.MinPause + rand.N(d.MaxPause-d.MinPause+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		m := gen.next()
		if err := d.send(ctx, m); err != nil && ctx.Err() == nil {
			d.log.Warn("demo message not sent", "kind", m.Kind, "subject", m.Subject, "err", err)
		}
	}
	d.log.Info("demo trickle done", "messages", d.Messages)
}

// AdminPassword returns the administrator password a demo keeps in dir,
// making one on the first call: `serve --demo` uses it when
// SIGHTLINE_ADMIN_PASSWORD is not set, so that the demo can sign in to the
// roles on every start.
func AdminPassword(dir string, generate func() string) (string, error) {
	name := filepath.Join(dir, "admin-password")
	b, err := os.ReadFile(name)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("demo password: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("demo password: %w", err)
	}
	pw := generate()
	return pw, writeFileAtomic(name, []byte(pw+"\n"))
}

// signInHint explains an Unauthorized answer of a role.
func signInHint(err error) error {
	if sightline.ErrorKind(err) != sightline.Unauthorized {
		return err
	}
	return fmt.Errorf("%w (the demo signs in as the administrator: set SIGHTLINE_ADMIN_PASSWORD "+
		"to the administrator password of this data directory)", err)
}
