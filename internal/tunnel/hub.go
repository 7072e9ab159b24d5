package tunnel

import (
	"context"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/sightline/sightline"
)

// Limits of the exchange side.
const (
	defaultMaxStreams      = 128
	maxStreams             = 256 // yamux's default AcceptBacklog, which both ends use
	defaultResponseTimeout = 60 * time.Second
	// hubIdleTimeout closes a kept-alive stream nobody reused.
	hubIdleTimeout = 30 * time.Second
	maxIdleStreams = 64
	// deviceHost is the Host of a request sent down a tunnel when the caller
	// did not set one.
	deviceHost = "device.tunnel"
)

// Hub is the exchange end of the tunnel: the WebSocket upgrade endpoint
// devices dial, and the way to send them requests. Set its fields before the
// first ServeHTTP and leave them unchanged; the zero Hub is not usable
// without Authenticate. A Hub holds at most one tunnel per device: a newer
// connection of the same device replaces the older one.
type Hub struct {
	// Authenticate maps the upgrade request's credential (see BearerToken) to
	// the device ID it belongs to. It is the only source of a tunnel's device
	// ID. Its error refuses the upgrade through one table: Unauthorized or
	// Invalid → 401, Forbidden → 403, NotFound (the device was deleted) →
	// 410, and on these the device stops dialing; Unavailable → 503, Conflict
	// → 409, anything else → 500, after which the device retries. The body of
	// the refusal is sightline.ErrorMessage(err). Required.
	Authenticate func(ctx context.Context, r *http.Request) (deviceID string, err error)
	// OnConnect is called when a tunnel becomes the device's current one,
	// including when it replaces an older tunnel; OnDisconnect when the device
	// no longer has a tunnel (not when its tunnel is replaced). For one device
	// the calls never overlap and arrive in order; they must not block long.
	// remoteAddr is the TCP peer of the upgrade request. Either may be nil.
	OnConnect, OnDisconnect func(deviceID, remoteAddr string)
	// Heartbeat is the yamux keepalive interval toward devices; a device
	// that misses a ping for another Heartbeat is dropped. Zero means 15s.
	Heartbeat time.Duration
	// MaxStreams bounds the requests in flight to one device; more wait
	// for a free stream. Zero means 128; at most 256 (the yamux backlog).
	MaxStreams int
	// ResponseTimeout bounds the wait for a device's response headers,
	// on top of the caller's context. Zero means 60s.
	ResponseTimeout time.Duration
	// Logger receives tunnel events; nil discards them. Credentials are
	// never logged.
	Logger *slog.Logger

	mu      sync.Mutex
	tunnels map[string]*hubTunnel
	closed  bool
	wg      sync.WaitGroup

	// order serialises OnConnect/OnDisconnect per device (striped by ID).
	order [64]sync.Mutex
	seed  maphash.Seed
	once  sync.Once
}

// hubTunnel is one device's live session on the Hub.
type hubTunnel struct {
	remote string
	since  time.Time
	sess   *yamux.Session
	tr     *http.Transport

	stopOnce sync.Once
	stop     chan struct{} // closed by end
	code     websocket.StatusCode
	reason   string
}

// end asks the tunnel's goroutine to close it with code and reason; the first
// call wins.
func (t *hubTunnel) end(code websocket.StatusCode, reason string) {
	t.stopOnce.Do(func() {
		t.code, t.reason = code, sanitizeReason(reason)
		close(t.stop)
	})
}

func (t *hubTunnel) ending() bool {
	select {
	case <-t.stop:
		return true
	default:
		return false
	}
}

// BearerToken returns the credential of an "Authorization: Bearer <token>"
// header, for use in Authenticate.
func BearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// ServeHTTP is the tunnel endpoint: it authenticates the device, upgrades
// to a WebSocket and holds the tunnel until it ends.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := orDiscard(h.Logger).With("component", "tunnel_hub")
	if h.Authenticate == nil {
		log.Error("tunnel hub has no Authenticate function")
		http.Error(w, "tunnel endpoint not configured", http.StatusInternalServerError)
		return
	}
	if h.isClosed() {
		http.Error(w, "exchange shutting down", http.StatusServiceUnavailable)
		return
	}
	id, err := h.Authenticate(r.Context(), r)
	if err == nil && id == "" {
		err = sightline.Errorf(sightline.Internal, "no device for this credential")
	}
	if err != nil {
		status := upgradeStatus(err)
		log.Info("tunnel refused", "remote_addr", r.RemoteAddr, "status", status, "err", err)
		http.Error(w, sanitizeReason(sightline.ErrorMessage(err)), status)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		log.Info("tunnel upgrade failed", "device_id", id, "remote_addr", r.RemoteAddr, "err", err)
		return // Accept has answered the request
	}
	if ws.Subprotocol() != Subprotocol {
		ws.Close(websocket.StatusPolicyViolation, "subprotocol "+Subprotocol+" required")
		return
	}
	h.serve(log.With("device_id", id, "remote_addr", r.RemoteAddr), id, r.RemoteAddr, ws)
}

// serve runs one device's tunnel until it ends, from the goroutine of the
// upgrade request.
func (h *Hub) serve(log *slog.Logger, id, remote string, ws *websocket.Conn) {
	heartbeat := orDefault(h.Heartbeat, defaultHeartbeat)
	nc := &wsConn{Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary), ws: ws}
	sess, err := yamux.Server(nc, yamuxConfig(heartbeat, log))
	if err != nil {
		log.Error("start yamux session", "err", err)
		ws.CloseNow()
		return
	}
	streams := h.MaxStreams
	if streams <= 0 {
		streams = defaultMaxStreams
	}
	streams = min(streams, maxStreams)
	t := &hubTunnel{
		remote: remote, since: time.Now(), sess: sess,
		stop: make(chan struct{}),
		tr: &http.Transport{
			DialContext: func(context.Context, string, string) (net.Conn, error) {
				return sess.Open()
			},
			MaxConnsPerHost:        streams,
			MaxIdleConnsPerHost:    min(streams, maxIdleStreams),
			IdleConnTimeout:        hubIdleTimeout,
			ResponseHeaderTimeout:  orDefault(h.ResponseTimeout, defaultResponseTimeout),
			MaxResponseHeaderBytes: maxHeaderBytes,
			DisableCompression:     true,
		},
	}

	order := h.orderLock(id)
	order.Lock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		order.Unlock()
		ws.Close(websocket.StatusGoingAway, "exchange shutting down")
		sess.Close()
		return
	}
	if h.tunnels == nil {
		h.tunnels = make(map[string]*hubTunnel)
	}
	old := h.tunnels[id]
	h.tunnels[id] = t
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	if old != nil {
		old.end(closeReplaced, "replaced by a newer connection of this device")
	}
	if h.OnConnect != nil {
		h.OnConnect(id, remote)
	}
	order.Unlock()
	log.Info("tunnel up", "replaced", old != nil)

	select {
	case <-sess.CloseChan():
	case <-t.stop:
		ws.Close(t.code, t.reason) // the close handshake, bounded by the library
	}
	sess.Close()
	t.tr.CloseIdleConnections()

	order.Lock()
	h.mu.Lock()
	current := h.tunnels[id] == t
	if current {
		delete(h.tunnels, id)
	}
	h.mu.Unlock()
	if current && h.OnDisconnect != nil {
		h.OnDisconnect(id, remote)
	}
	order.Unlock()
	log.Info("tunnel down", "up_for", time.Since(t.since).Round(time.Millisecond), "reason", endReason(t, nc.readErr()))
}

func endReason(t *hubTunnel, readErr error) string {
	if t.ending() {
		return t.reason
	}
	if readErr != nil {
		return readErr.Error()
	}
	return "heartbeat missed or write stalled"
}

func (h *Hub) orderLock(id string) *sync.Mutex {
	h.once.Do(func() { h.seed = maphash.MakeSeed() })
	return &h.order[maphash.String(h.seed, id)%uint64(len(h.order))]
}

func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// current returns the device's live tunnel, or nil.
func (h *Hub) current(deviceID string) *hubTunnel {
	h.mu.Lock()
	t := h.tunnels[deviceID]
	h.mu.Unlock()
	if t == nil || t.ending() || t.sess.IsClosed() {
		return nil
	}
	return t
}

// RoundTrip sends req to the device's own API through its tunnel and returns
// the device's response; the caller must close its Body. Only the path, query,
// method, headers and body of req matter: the scheme and host are the
// tunnel's (Host defaults to "device.tunnel"). ctx bounds the whole exchange,
// including reading the body. It fails with an Unavailable *sightline.Error
// when the device has no tunnel on this Hub or does not answer.
func (h *Hub) RoundTrip(ctx context.Context, deviceID string, req *http.Request) (*http.Response, error) {
	t := h.current(deviceID)
	if t == nil {
		return nil, sightline.Errorf(sightline.Unavailable, "device %s is not connected", deviceID)
	}
	out := req.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", deviceHost
	if out.Host == "" {
		out.Host = deviceHost
	}
	resp, err := t.tr.RoundTrip(out)
	if err != nil {
		return nil, sightline.Wrap(sightline.Unavailable, err, "device "+deviceID+" did not answer through its tunnel")
	}
	return resp, nil
}

// Transport returns an http.RoundTripper that sends each request to the
// device through whatever tunnel it has at that moment (see RoundTrip), for
// use with httputil.ReverseProxy or an http.Client.
func (h *Hub) Transport(deviceID string) http.RoundTripper {
	return deviceTransport{h: h, id: deviceID}
}

type deviceTransport struct {
	h  *Hub
	id string
}

func (t deviceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.h.RoundTrip(r.Context(), t.id, r)
}

// Connected reports whether the device has a live tunnel, since when and
// from which address.
func (h *Hub) Connected(deviceID string) (since time.Time, remote string, ok bool) {
	t := h.current(deviceID)
	if t == nil {
		return time.Time{}, "", false
	}
	return t.since, t.remote, true
}

// Disconnect ends the device's tunnel, if any, as deregistered: the device's
// Dialer.Run returns a permanent rejection carrying reason (at most 123
// bytes are sent; keep it free of secrets). Requests to the device fail at
// once. Use it when the device is deleted or its credential revoked, and make
// Authenticate refuse the credential from then on.
func (h *Hub) Disconnect(deviceID, reason string) {
	h.mu.Lock()
	t := h.tunnels[deviceID]
	h.mu.Unlock()
	if t != nil {
		t.end(closeDeregistered, reason)
	}
}

// Close ends every tunnel with a "going away" close, which devices answer by
// redialing with backoff, waits until all are closed (the close handshake
// with an unresponsive device gives up after about 10 s), and makes
// ServeHTTP answer 503 from then on. It does not close the HTTP server
// serving the Hub, and tunnels are hijacked connections that closing that
// server leaves open: call both.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	ts := make([]*hubTunnel, 0, len(h.tunnels))
	for _, t := range h.tunnels {
		ts = append(ts, t)
	}
	h.mu.Unlock()
	for _, t := range ts {
		t.end(websocket.StatusGoingAway, "exchange shutting down")
	}
	h.wg.Wait()
	return nil
}
