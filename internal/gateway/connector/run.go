package connector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/tunnel"
)

// action is the next piece of background work.
type action int

const (
	actIdle action = iota
	actReach
	actRegister
	actDeregister
	actTunnel
)

// step is an action with what it works on, taken under the lock.
type step struct {
	act     action
	server  Region        // actReach, actRegister
	token   string        // actRegister
	tokenAt time.Time     // actRegister
	reg     *registration // actDeregister, actTunnel
}

// stuckError is a failure that retrying cannot fix (a bad configuration):
// Run waits for the settings to change instead.
type stuckError struct{ error }

func (e stuckError) Unwrap() error { return e.error }

// Run does the background work until ctx ends: reading the stored
// registration, reaching the exchange, registering, keeping the tunnel up
// and deregistering, as Apply, Register and Deregister ask. Failures are
// retried with backoff and shown in Status, not returned. Run returns nil
// when ctx ends, and an error only when it cannot start: Store or Handler
// missing, the stored registration unreadable, or Run already running.
func (c *Connector) Run(ctx context.Context) error {
	c.init()
	if c.Store == nil || c.Handler == nil {
		return sightline.Errorf(sightline.Invalid, "connector: Store and Handler are required")
	}
	if !c.running.CompareAndSwap(false, true) {
		return sightline.Errorf(sightline.Conflict, "connector: Run is already running")
	}
	defer c.running.Store(false)
	if err := c.load(ctx); err != nil {
		return err
	}
	minB, maxB := c.backoffs()
	failures := 0
	for ctx.Err() == nil {
		s := c.next()
		var err error
		switch s.act {
		case actIdle:
			c.wait(ctx, -1)
			continue
		case actReach:
			err = c.reach(ctx, s.server)
		case actRegister:
			err = c.register(ctx, s)
		case actDeregister:
			err = c.deregister(ctx, s.reg)
		case actTunnel:
			err = c.serveTunnel(ctx, s.reg)
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if errors.As(err, new(stuckError)) {
			c.update(func() { c.lastErr = err.Error() })
			c.log.Error("connector stopped until its settings change", "err", err)
			c.wait(ctx, -1)
			continue
		}
		wait := backoff(minB, maxB, failures)
		failures++
		c.update(func() { c.lastErr = fmt.Sprintf("%v (retrying in %s)", err, wait.Round(time.Millisecond)) })
		c.log.Info("exchange call failed", "err", err, "retry_in", wait.Round(time.Millisecond))
		c.wait(ctx, wait)
	}
	c.update(func() { c.tunnelUp = false })
	return nil
}

func (c *Connector) backoffs() (minB, maxB time.Duration) {
	minB, maxB = c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = 500 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 30 * time.Second
	}
	return minB, max(minB, maxB)
}

// backoff returns the wait before retry number n (0-based): full jitter
// over an exponentially growing, capped window.
func backoff(minB, maxB time.Duration, n int) time.Duration {
	window := maxB
	if n < 32 {
		window = min(maxB, minB<<n)
	}
	return rand.N(window + 1)
}

// wait blocks until d has passed (d < 0: no limit), the desired state
// changes, or ctx ends.
func (c *Connector) wait(ctx context.Context, d time.Duration) {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-c.wake:
	case <-timeout:
	}
}

// next decides the next piece of work from the state.
func (c *Connector) next() step {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.reg != nil && (c.deregistering || !c.enabled):
		return step{act: actDeregister, reg: c.reg}
	case c.reg != nil:
		return step{act: actTunnel, reg: c.reg}
	case !c.enabled:
		return step{}
	case c.reached != c.server:
		return step{act: actReach, server: c.server}
	case c.token != "":
		return step{act: actRegister, server: c.server, token: c.token, tokenAt: c.tokenAt}
	}
	return step{}
}

// reach asks the chosen server for its region (BUSY → ENABLED).
func (c *Connector) reach(ctx context.Context, server Region) error {
	if u, err := url.Parse(server.URL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return stuckError{fmt.Errorf("threat response server %s: URL %q is not an http or https URL", server.Label, server.URL)}
	}
	rg, err := c.client(server.URL).Region(ctx)
	if err != nil {
		return fmt.Errorf("reach threat response server %s: %w", server.Label, err)
	}
	if !strings.EqualFold(rg.Region, server.Label) {
		msg := fmt.Sprintf("The Threat Response Server %s at %s is an exchange of region %s, not %s: choose the server of region %s or correct the URL of %s.",
			server.Label, server.URL, rg.Region, server.Label, rg.Region, server.Label)
		c.update(func() {
			if c.server == server {
				c.mismatch = msg
			}
		})
		c.log.Warn("threat response server serves another region", "server", server.Label, "url", server.URL, "region", rg.Region)
		return errors.New(msg)
	}
	c.update(func() {
		if c.server == server {
			c.reached, c.mismatch, c.lastErr = server, "", ""
		}
	})
	c.log.Info("exchange reached", "server", server.Label, "region", rg.Region, "min_version", rg.MinVersion)
	return nil
}

// register sends one registration attempt (INPROGRESS → REGISTERED or
// FAILED). An unreachable exchange is retried until c.opTimeout has passed
// since the request.
func (c *Connector) register(ctx context.Context, s step) error {
	cl := c.client(s.server.URL)
	typ := c.Device.Type
	if typ == "" {
		typ = "ESA"
	}
	out, err := cl.Register(ctx, exchangeclient.Registration{Token: s.token, Hostname: c.Device.HostName, Type: typ,
		Version: c.Device.Version, Serial: c.Device.SerialNumber, ConnectorVersion: c.Device.ConnectorVersion})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if sightline.ErrorKind(err) == sightline.Unavailable && time.Since(s.tokenAt) < c.opTimeout {
			return fmt.Errorf("register with %s: %w", s.server.Label, err)
		}
		c.fail(s.token, sightline.ErrorMessage(err), fmt.Errorf("register with %s: %w", s.server.Label, err))
		return nil
	}
	reg := &registration{DeviceID: out.DeviceID, Credential: out.Credential, TunnelURL: out.TunnelURL,
		Region: out.Region, Server: s.server, At: time.Now().UTC()}
	if reg.DeviceID == "" || reg.Credential == "" || reg.TunnelURL == "" {
		c.fail(s.token, "The exchange's answer to the registration lacks the device ID, credential or tunnel URL.",
			fmt.Errorf("register with %s: incomplete answer", s.server.Label))
		return nil
	}
	if err := c.save(ctx, reg); err != nil {
		// Without the credential the device cannot be used: undo it.
		undo := cl.Deregister(context.WithoutCancel(ctx), reg.Credential)
		if undo != nil {
			err = fmt.Errorf("%w; device %s is left on the exchange: %v", err, reg.DeviceID, undo)
		}
		c.fail(s.token, "The appliance could not store its registration; register again.", err)
		return nil
	}
	c.update(func() {
		c.reg, c.token, c.failed, c.lastErr = reg, "", "", ""
	})
	c.log.Info("registered", "registration", reg)
	return nil
}

// fail ends the registration requested with token as FAILED.
func (c *Connector) fail(token, msg string, err error) {
	c.update(func() {
		if c.token == token {
			c.token, c.failed = "", msg
		}
		c.lastErr = err.Error()
	})
	c.log.Warn("registration failed", "err", err)
}

// deregister tells the exchange and forgets the registration (INPROGRESS →
// ENABLED or DISABLED). An exchange that no longer knows the credential
// counts as done; after c.opTimeout of failures the registration is forgotten
// anyway, and LastError names the device left on the exchange.
func (c *Connector) deregister(ctx context.Context, reg *registration) error {
	c.mu.Lock()
	if c.deregAt.IsZero() {
		c.deregAt = time.Now()
	}
	since := c.deregAt
	c.mu.Unlock()
	err := c.client(reg.Server.URL).Deregister(ctx, reg.Credential)
	var left string
	switch k := sightline.ErrorKind(err); {
	case err == nil, k == sightline.Unauthorized, k == sightline.NotFound:
	case ctx.Err() != nil:
		return ctx.Err()
	case time.Since(since) < c.opTimeout:
		return fmt.Errorf("deregister device %s from %s: %w", reg.DeviceID, reg.Server.Label, err)
	default:
		left = fmt.Sprintf("deregistered locally; the exchange %s (%s) could not be told, delete device %s there: %v",
			reg.Server.Label, reg.Server.URL, reg.DeviceID, err)
	}
	if err := c.save(ctx, nil); err != nil {
		return err
	}
	c.update(func() {
		c.reg, c.deregistering, c.deregAt, c.tunnelUp = nil, false, time.Time{}, false
		c.reached, c.notice, c.lastErr = reg.Server, "", left
	})
	if left != "" {
		c.log.Error("deregistration incomplete", "device_id", reg.DeviceID, "err", err)
	} else {
		c.log.Info("deregistered", "device_id", reg.DeviceID, "server", reg.Server.Label)
	}
	return nil
}

// serveTunnel keeps the tunnel of reg up until the work to do changes, ctx
// ends, or the exchange rejects the device for good (→ ENABLED with
// TextDeregistered).
func (c *Connector) serveTunnel(ctx context.Context, reg *registration) error {
	minB, maxB := c.backoffs()
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &tunnel.Dialer{
		URL:        reg.TunnelURL,
		Credential: func() string { return reg.Credential },
		Handler:    c.Handler,
		MinBackoff: minB,
		MaxBackoff: maxB,
		Heartbeat:  c.Heartbeat,
		Logger:     c.Logger, // the tunnel names its own component
		OnState: func(s tunnel.State) {
			c.update(func() {
				c.tunnelUp = s.Status == tunnel.Connected
				switch {
				case s.Status == tunnel.Connected:
					c.lastErr = ""
				case s.Err != nil:
					c.lastErr = fmt.Sprintf("tunnel: %v", s.Err)
					if s.Retry > 0 {
						c.lastErr += fmt.Sprintf(" (redialing in %s)", s.Retry.Round(time.Millisecond))
					}
				}
			})
		},
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(tctx) }()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-c.wake:
			if s := c.next(); s.act == actTunnel && s.reg == reg {
				continue // nothing that concerns the tunnel changed
			}
			cancel()
			<-done
			err = nil
			break wait
		}
	}
	c.update(func() { c.tunnelUp = false })
	var rej *tunnel.RejectedError
	switch {
	case ctx.Err() != nil || err == nil:
		return nil
	case errors.As(err, &rej):
		if err := c.save(ctx, nil); err != nil {
			return err
		}
		c.update(func() {
			if c.reg == reg {
				c.reg, c.deregistering, c.deregAt = nil, false, time.Time{}
				c.reached, c.notice, c.lastErr = reg.Server, TextDeregistered, err.Error()
			}
		})
		c.log.Warn("deregistered by the exchange", "device_id", reg.DeviceID, "err", err)
		return nil
	case sightline.ErrorKind(err) == sightline.Invalid:
		return stuckError{fmt.Errorf("tunnel of device %s: %w", reg.DeviceID, err)}
	}
	return fmt.Errorf("tunnel of device %s: %w", reg.DeviceID, err)
}
