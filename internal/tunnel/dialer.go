package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/sightline/sightline"
)

// Limits of the device side.
const (
	// maxRequestBody bounds the body of one request from the exchange.
	maxRequestBody = 32 << 20
	// streamIdleTimeout closes a kept-alive stream the exchange left idle;
	// twice the exchange's own idle timeout, so the exchange closes first.
	streamIdleTimeout = 2 * hubIdleTimeout
	minDialTimeout    = 10 * time.Second
)

// Dialer is the device end of the tunnel. Configure its fields, then call Run;
// the fields must not change while Run runs, and Run must not be called twice
// at once.
type Dialer struct {
	// URL is the exchange's tunnel endpoint, ws://, wss://, http:// or
	// https://, e.g. "https://exchange.example/api/v1/tunnel". Required.
	URL string
	// Credential returns the device credential, sent on every upgrade as
	// "Authorization: Bearer <credential>". It is called before each dial, so
	// a rotated credential is picked up on the next reconnection. Required.
	Credential func() string
	// Handler is the device's own API, served on every stream the exchange
	// opens; ViaTunnel tells its requests apart. Request bodies over 32 MiB
	// and headers over 64 KiB are refused. Required.
	Handler http.Handler
	// TLSConfig is used for wss:// and https:// URLs; nil means the system
	// roots. HTTPS_PROXY and NO_PROXY from the environment are honoured.
	TLSConfig *tls.Config
	// MinBackoff and MaxBackoff bound the wait before a redial: the n-th
	// consecutive failure waits a uniformly random time in
	// [0, min(MaxBackoff, MinBackoff·2ⁿ)] ("full jitter"). The count restarts
	// after a tunnel that stayed up for MaxBackoff. Zero means 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Heartbeat is the yamux keepalive interval; a ping not answered, or a
	// frame not written, within another Heartbeat tears the tunnel down and
	// the Dialer redials. Zero means 15s. The exchange sends its own pings on
	// the same session, so each end detects a dead peer by itself. There are
	// no separate WebSocket pings: yamux pings cross the same path and keep
	// the idle timers of proxies and NATs on it reset just as well.
	Heartbeat time.Duration
	// OnState, if set, is called synchronously on every transition; it must
	// not block.
	OnState func(State)
	// Logger receives connection events; nil discards them. The credential is
	// never logged.
	Logger *slog.Logger
}

// Run dials the exchange, serves the Handler on the tunnel, and redials when
// the tunnel drops, until ctx ends (it returns ctx.Err()) or the exchange
// rejects the device for good: a 401, 403 or 410 answer to the upgrade, or a
// "deregistered" close of a live tunnel. That rejection is returned as a
// *sightline.Error (Unauthorized, Forbidden or NotFound) wrapping a
// *RejectedError. An invalid configuration is returned at once as an Invalid
// error. Everything else (refused connection, 5xx, missed heartbeat, cut
// connection, exchange restart) is retried.
func (d *Dialer) Run(ctx context.Context) error {
	u, err := d.check()
	if err != nil {
		return err
	}
	log := orDiscard(d.Logger).With("component", "tunnel", "exchange", u.Redacted())
	heartbeat := orDefault(d.Heartbeat, defaultHeartbeat)
	minB := orDefault(d.MinBackoff, 500*time.Millisecond)
	maxB := max(orDefault(d.MaxBackoff, 30*time.Second), minB)

	dialTimeout := max(2*heartbeat, minDialTimeout)
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: heartbeat}).DialContext,
		TLSClientConfig:        d.TLSConfig.Clone(),
		TLSHandshakeTimeout:    dialTimeout,
		ResponseHeaderTimeout:  dialTimeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	defer tr.CloseIdleConnections()
	c := &conn{
		d:         d,
		url:       u.String(),
		log:       log,
		heartbeat: heartbeat,
		timeout:   dialTimeout,
		client: &http.Client{
			Transport: tr,
			// A redirect would carry the credential elsewhere: refuse it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}

	failures := 0
	for {
		d.report(State{Status: Connecting})
		up, err := c.session(ctx)
		tr.CloseIdleConnections()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.As(err, new(*RejectedError)) {
			d.report(State{Status: Rejected, Err: err})
			return err
		}
		if up >= maxB {
			failures = 0
		}
		wait := backoff(minB, maxB, failures)
		failures++
		log.Info("tunnel down", "err", err, "up_for", up.Round(time.Millisecond), "retry_in", wait.Round(time.Millisecond))
		d.report(State{Status: Disconnected, Err: err, Retry: wait})
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (d *Dialer) check() (*url.URL, error) {
	if d.Handler == nil || d.Credential == nil {
		return nil, sightline.Errorf(sightline.Invalid, "tunnel: the device handler and credential are required")
	}
	u, err := url.Parse(d.URL)
	if err != nil || u.Host == "" {
		return nil, sightline.Errorf(sightline.Invalid, "tunnel: exchange URL %q is not an absolute URL", d.URL)
	}
	switch u.Scheme {
	case "ws", "http":
		u.Scheme = "http"
	case "wss", "https":
		u.Scheme = "https"
	default:
		return nil, sightline.Errorf(sightline.Invalid, "tunnel: exchange URL %q must use ws, wss, http or https", d.URL)
	}
	return u, nil
}

func (d *Dialer) report(s State) {
	if d.OnState != nil {
		d.OnState(s)
	}
}

type viaTunnelKey struct{}

// ViaTunnel reports whether r reached the device's Handler through the
// tunnel, that is from the exchange, rather than through the device's own
// listener. Its RemoteAddr is then not an IP address.
func ViaTunnel(r *http.Request) bool {
	v, _ := r.Context().Value(viaTunnelKey{}).(bool)
	return v
}

// backoff returns the wait before redial number n (0-based): full jitter
// over an exponentially growing, capped window.
func backoff(minB, maxB time.Duration, n int) time.Duration {
	window := maxB
	if n < 32 { // beyond that the shift overflows; the cap applies anyway
		window = min(maxB, minB<<n)
	}
	return rand.N(window + 1)
}

// conn is what one Run needs for each dial.
type conn struct {
	d         *Dialer
	url       string
	log       *slog.Logger
	client    *http.Client
	heartbeat time.Duration
	timeout   time.Duration
}

// session dials once and serves the tunnel until it ends. It returns how long
// the tunnel was up (zero if it never came up) and why it ended.
func (c *conn) session(ctx context.Context) (time.Duration, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+c.d.Credential())
	h.Set("User-Agent", "sightline-connector")
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	ws, resp, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{
		HTTPClient:   c.client,
		HTTPHeader:   h,
		Subprotocols: []string{Subprotocol},
	})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			reason := drain(resp.Body, maxReasonLen)
			if permanentStatus(resp.StatusCode) {
				return 0, rejection(resp.StatusCode, reason)
			}
			return 0, fmt.Errorf("exchange answered the upgrade with %s", resp.Status)
		}
		return 0, fmt.Errorf("dial exchange: %w", err)
	}
	if ws.Subprotocol() != Subprotocol {
		ws.CloseNow()
		return 0, fmt.Errorf("exchange does not speak %s", Subprotocol)
	}

	nc := &wsConn{Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary), ws: ws}
	sess, err := yamux.Client(nc, yamuxConfig(c.heartbeat, c.log))
	if err != nil {
		ws.CloseNow()
		return 0, fmt.Errorf("start yamux session: %w", err)
	}
	start := time.Now()
	c.log.Info("tunnel up")
	c.d.report(State{Status: Connected})

	srv := &http.Server{
		Handler:           http.MaxBytesHandler(c.d.Handler, maxRequestBody),
		ReadHeaderTimeout: c.timeout,
		IdleTimeout:       streamIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, viaTunnelKey{}, true)
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sess) }() // returns the session's end cause

	var sessErr error
	select {
	case <-ctx.Done():
		ws.Close(websocket.StatusGoingAway, "device shutting down")
		sessErr = <-served
	case sessErr = <-served:
	}
	srv.Close()
	sess.Close()
	up := time.Since(start)
	if ctx.Err() != nil {
		return up, ctx.Err()
	}
	return up, endCause(nc.readErr(), sessErr)
}

// endCause explains why a live tunnel ended, from the first read error of
// the WebSocket (which carries the exchange's close code) and the error that
// ended the yamux session.
func endCause(readErr, sessErr error) error {
	var ce websocket.CloseError
	switch {
	case errors.As(readErr, &ce) && ce.Code == closeDeregistered:
		return rejection(http.StatusGone, ce.Reason)
	case errors.As(readErr, &ce) && ce.Code == closeReplaced:
		return errors.New("tunnel replaced by a newer connection of this device; is its credential used by another gateway?")
	case errors.As(readErr, &ce):
		return fmt.Errorf("exchange closed the tunnel: %d %s", ce.Code, sanitizeReason(ce.Reason))
	case errors.Is(sessErr, yamux.ErrKeepAliveTimeout):
		return errors.New("exchange missed a heartbeat")
	case errors.Is(sessErr, yamux.ErrConnectionWriteTimeout):
		return errors.New("tunnel write stalled")
	case errors.Is(readErr, io.EOF):
		return errors.New("exchange closed the tunnel")
	case readErr != nil:
		return fmt.Errorf("tunnel connection lost: %w", readErr)
	}
	return fmt.Errorf("tunnel session ended: %w", sessErr)
}
