// Package tunnel is the device tunnel between a gateway (the device) and the
// exchange: the device dials out over a WebSocket, the exchange sends HTTP
// requests back down it to the device's own API.
//
// The device side is a Dialer: it makes the only connection (so a device behind
// NAT or a firewall can be reached), authenticates with its credential as a
// bearer token on the WebSocket upgrade, multiplexes the connection with yamux,
// serves its http.Handler on every stream the exchange opens, sends heartbeats,
// and redials with exponential backoff and full jitter until it is stopped or
// permanently rejected.
//
// The exchange side is a Hub: an http.Handler for the upgrade endpoint that
// maps each credential to one device ID and keeps that device's newest tunnel,
// and a RoundTrip that sends a request to a device through its tunnel.
//
// Wire protocol (subprotocol "sightline.tunnel.v1"): binary WebSocket messages
// carry a yamux session; the exchange is the yamux server, the device the
// client. Only the exchange opens streams; each stream carries HTTP/1.1
// requests from the exchange to the device. WebSocket close codes in the
// private range tell the device why the exchange ended its tunnel.
package tunnel

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/sightline/sightline"
)

// Subprotocol is the WebSocket subprotocol both ends must agree on.
const Subprotocol = "sightline.tunnel.v1"

// Close codes the exchange sends in the WebSocket close frame.
const (
	// closeReplaced: a newer tunnel of the same device took over. Transient:
	// the device redials (with backoff, so two gateways that share one
	// credential do not fight in a tight loop).
	closeReplaced websocket.StatusCode = 4409
	// closeDeregistered: the exchange no longer wants this device (deleted,
	// credential revoked). Permanent: Dialer.Run returns.
	closeDeregistered websocket.StatusCode = 4410
)

// Defaults shared by both ends.
const (
	defaultHeartbeat = 15 * time.Second
	// maxHeaderBytes bounds the request headers the device accepts and the
	// response headers the exchange accepts on a tunnel stream.
	maxHeaderBytes = 64 << 10
	// maxReasonLen bounds a rejection reason read from the exchange. The
	// WebSocket close frame itself allows at most 123 bytes.
	maxReasonLen = 123
)

// Status is where a Dialer stands in its connect/serve/redial cycle.
type Status int

// The statuses a Dialer reports through OnState.
const (
	Connecting   Status = iota + 1 // dialing the exchange
	Connected                      // the tunnel is up and serving
	Disconnected                   // the tunnel is down; the Dialer redials after State.Retry
	Rejected                       // the exchange refused the device for good; Run returns State.Err
)

func (s Status) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// State is one transition of a Dialer, reported through Dialer.OnState.
type State struct {
	Status Status
	// Err is why the tunnel went down (Disconnected) or was refused
	// (Rejected); nil otherwise. For Rejected it is the error Run returns.
	Err error
	// Retry is how long the Dialer waits before redialing (Disconnected only).
	Retry time.Duration
}

// RejectedError is the cause of a permanent rejection: the exchange answered
// the upgrade with 401, 403 or 410, or closed the tunnel as deregistered.
// Run returns it wrapped in a *sightline.Error (Unauthorized, Forbidden or
// NotFound), so both errors.As and sightline.ErrorKind work on the result.
type RejectedError struct {
	// StatusCode is the HTTP status of the refused upgrade, or 410 when the
	// exchange deregistered a connected device.
	StatusCode int
	// Reason is the exchange's explanation, sanitised and at most 123 bytes;
	// it may be empty.
	Reason string
}

func (e *RejectedError) Error() string {
	msg := fmt.Sprintf("tunnel rejected by the exchange (%d %s)", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// rejection maps a refusal to the error Run returns.
func rejection(status int, reason string) error {
	rej := &RejectedError{StatusCode: status, Reason: sanitizeReason(reason)}
	var kind sightline.Kind
	var msg string
	switch status {
	case http.StatusUnauthorized:
		kind, msg = sightline.Unauthorized, "the exchange refused the device credential"
	case http.StatusForbidden:
		kind, msg = sightline.Forbidden, "the exchange does not allow this device"
	default:
		kind, msg = sightline.NotFound, "the device is no longer registered with the exchange"
	}
	if rej.Reason != "" {
		msg += ": " + rej.Reason
	}
	return sightline.Wrap(kind, rej, msg)
}

// permanentStatus reports whether an upgrade answered with status means the
// device must stop dialing.
func permanentStatus(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusGone:
		return true
	}
	return false
}

// upgradeStatus is the one table from an Authenticate error to the HTTP
// status of the refused upgrade. 401, 403 and 410 stop the device; the
// others make it retry with backoff.
func upgradeStatus(err error) int {
	switch sightline.ErrorKind(err) {
	case sightline.Invalid, sightline.Unauthorized:
		return http.StatusUnauthorized
	case sightline.Forbidden:
		return http.StatusForbidden
	case sightline.NotFound:
		return http.StatusGone
	case sightline.Conflict:
		return http.StatusConflict
	case sightline.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// sanitizeReason makes a reason received from (or sent to) the other end safe
// to log and show: one line of printable characters, at most maxReasonLen
// bytes, never cut inside a UTF-8 sequence.
func sanitizeReason(s string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			r = ' '
		}
		if b.Len()+len(string(r)) > maxReasonLen {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// yamuxConfig is the session configuration of both ends: keepalive pings
// every heartbeat, and a session torn down when a ping or a frame write is not
// through within another heartbeat.
func yamuxConfig(heartbeat time.Duration, log *slog.Logger) *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = true
	cfg.KeepAliveInterval = heartbeat
	cfg.ConnectionWriteTimeout = heartbeat
	cfg.LogOutput = nil
	cfg.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return cfg
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// drain reads at most n bytes of r, for a short error body.
func drain(r io.Reader, n int64) string {
	if r == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(r, n))
	return string(b)
}

// wsConn is the net.Conn of a tunnel over a WebSocket, given to yamux.
//
// It remembers the first read error, which carries the peer's close code even
// when the yamux session noticed another error first, and it closes without
// waiting for a close handshake (a deliberate close does the handshake
// before). It also sends each yamux data frame as one WebSocket message:
// yamux writes a frame's 12-byte header and its body in two calls, which
// would otherwise cost two messages and two syscalls.
type wsConn struct {
	net.Conn
	ws  *websocket.Conn
	mu  sync.Mutex
	err error

	// msg holds a data-frame header until its body is written. Only the
	// session's send loop writes, so it needs no lock.
	msg []byte
}

// yamux frame header layout (spec.md of hashicorp/yamux): version, type,
// flags (2), stream ID (4), length (4). Type 0 is a data frame, whose length
// is that of the body that follows.
const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
	// maxCoalesce bounds the body sent in one message with its header, and
	// so the buffer an idle tunnel keeps.
	maxCoalesce = 16 << 10
)

func (c *wsConn) Write(p []byte) (int, error) {
	if len(c.msg) == 0 {
		if len(p) == yamuxHeaderSize && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
			c.msg = append(c.msg, p...)
			return len(p), nil
		}
		return c.Conn.Write(p)
	}
	if len(p) > maxCoalesce {
		// A large body: a second message costs little, a copy would.
		_, err := c.Conn.Write(c.msg)
		c.msg = c.msg[:0]
		if err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	c.msg = append(c.msg, p...)
	_, err := c.Conn.Write(c.msg)
	c.msg = c.msg[:0]
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *wsConn) Close() error {
	c.ws.CloseNow()
	return c.Conn.Close()
}

func (c *wsConn) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
