package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/yamux"

	"github.com/sightline/sightline"
)

func TestRoundTrip(t *testing.T) {
	x := startExchange(t, "127.0.0.1:0", nil)
	dev := startDevice(t, x.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
	dev.waitState(t, Connected)
	x.waitEvent(t, "connect dev-a")

	big := make([]byte, 3<<20) // many yamux frames and window updates
	for i := range big {
		big[i] = byte(rand.N(256))
	}
	tests := []struct {
		name       string
		method     string
		target     string
		host       string
		header     http.Header
		body       []byte
		wantStatus int
		want       echo
	}{
		{
			name: "get with query and header", method: http.MethodGet, target: "/esa/api/v2.0/message-tracking/messages?startDate=2026-01-01&x=%2F",
			header:     http.Header{"X-Test": {"hello"}},
			wantStatus: http.StatusOK,
			want: echo{Device: "dev-a", Method: "GET", Path: "/esa/api/v2.0/message-tracking/messages", Query: "startDate=2026-01-01&x=%2F",
				Test: "hello", Host: deviceHost, Tunnel: true, BodySHA: sha(nil)},
		},
		{
			name: "post with body and caller's host", method: http.MethodPost, target: "/api/v1/senders", host: "gateway.example",
			body:       []byte(`{"block":"evil@example.com"}`),
			wantStatus: http.StatusOK,
			want: echo{Device: "dev-a", Method: "POST", Path: "/api/v1/senders", Host: "gateway.example", Tunnel: true,
				BodyLen: 28, BodySHA: sha([]byte(`{"block":"evil@example.com"}`))},
		},
		{
			name: "put with 3 MiB body", method: http.MethodPut, target: "/upload", body: big,
			wantStatus: http.StatusOK,
			want:       echo{Device: "dev-a", Method: "PUT", Path: "/upload", Host: deviceHost, Tunnel: true, BodyLen: len(big), BodySHA: sha(big)},
		},
		{
			name: "oversize header refused by the device", method: http.MethodGet, target: "/",
			header:     http.Header{"X-Big": {strings.Repeat("a", 2*maxHeaderBytes)}},
			wantStatus: http.StatusRequestHeaderFieldsTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			req, err := http.NewRequest(tt.method, tt.target, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := x.hub.RoundTrip(ctx, "dev-a", req)
			if err != nil {
				t.Fatalf("RoundTrip(%s %s) error: %v", tt.method, tt.target, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("RoundTrip(%s %s) status = %d, want %d", tt.method, tt.target, resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			if got := resp.Header.Get("X-Device"); got != "dev-a" {
				t.Errorf("response header X-Device = %q, want %q", got, "dev-a")
			}
			var got echo
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request seen by the device (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreamingResponse(t *testing.T) {
	release := make(chan struct{})
	x := startExchange(t, "127.0.0.1:0", nil)
	startDevice(t, x.url(), "cred-org-a", echoHandler("dev-a", nil, release), nil)
	x.waitEvent(t, "connect dev-a")

	// Through Transport, as an httputil.ReverseProxy in the exchange would.
	client := &http.Client{Transport: x.hub.Transport("dev-a"), Timeout: waitLimit}
	resp, err := client.Get("http://ignored.example/stream")
	if err != nil {
		t.Fatalf("GET /stream through Transport(dev-a): %v", err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	// The device holds "second" until we release it: reading "first" proves
	// the response is streamed, not buffered whole.
	if line, err := r.ReadString('\n'); line != "first\n" || err != nil {
		t.Fatalf("first chunk = %q, %v; want %q", line, err, "first\n")
	}
	close(release)
	rest, err := io.ReadAll(r)
	if string(rest) != "second\n" || err != nil {
		t.Fatalf("rest of the stream = %q, %v; want %q", rest, err, "second\n")
	}
}

func TestRejected(t *testing.T) {
	tests := []struct {
		name       string
		authErr    error
		wantStatus int
		wantKind   sightline.Kind
	}{
		{"bad credential", sightline.Errorf(sightline.Unauthorized, "unknown device credential"), http.StatusUnauthorized, sightline.Unauthorized},
		{"organisation disabled", sightline.Errorf(sightline.Forbidden, "organisation suspended"), http.StatusForbidden, sightline.Forbidden},
		{"device deleted", sightline.Errorf(sightline.NotFound, "device deleted"), http.StatusGone, sightline.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			x := startExchange(t, "127.0.0.1:0", func(h *Hub) {
				h.Authenticate = func(context.Context, *http.Request) (string, error) {
					calls.Add(1)
					return "", tt.authErr
				}
			})
			dev := startDevice(t, x.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
			err := dev.waitRun(t)
			var rej *RejectedError
			if !errors.As(err, &rej) {
				t.Fatalf("Run() = %v, want a *RejectedError", err)
			}
			want := &RejectedError{StatusCode: tt.wantStatus, Reason: sightline.ErrorMessage(tt.authErr)}
			if diff := cmp.Diff(want, rej); diff != "" {
				t.Errorf("Run() rejection (-want +got):\n%s", diff)
			}
			if got := sightline.ErrorKind(err); got != tt.wantKind {
				t.Errorf("ErrorKind(Run()) = %q, want %q", got, tt.wantKind)
			}
			if got := dev.waitState(t, Rejected); got.Err != err {
				t.Errorf("Rejected state Err = %v, want %v", got.Err, err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("Authenticate called %d times, want 1: a rejected device must not redial", n)
			}
		})
	}
}

func TestTransientRefusalRetried(t *testing.T) {
	var calls atomic.Int64
	x := startExchange(t, "127.0.0.1:0", func(h *Hub) {
		h.Authenticate = func(ctx context.Context, r *http.Request) (string, error) {
			if calls.Add(1) <= 3 {
				return "", sightline.Errorf(sightline.Unavailable, "device store unavailable")
			}
			return authenticate(ctx, r)
		}
	})
	dev := startDevice(t, x.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
	down := dev.waitState(t, Disconnected)
	if down.Err == nil || !strings.Contains(down.Err.Error(), "503") {
		t.Errorf("Disconnected state Err = %v, want it to name the 503", down.Err)
	}
	x.waitEvent(t, "connect dev-a")
	if got, err := get(t, x.hub, "dev-a", "/after-retry"); err != nil || got.Path != "/after-retry" {
		t.Fatalf("request after retries = %+v, %v", got, err)
	}
}

func TestExchangeRestart(t *testing.T) {
	x1 := startExchange(t, "127.0.0.1:0", nil)
	dev := startDevice(t, x1.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
	x1.waitEvent(t, "connect dev-a")
	if _, err := get(t, x1.hub, "dev-a", "/before"); err != nil {
		t.Fatalf("request before restart: %v", err)
	}

	x1.stop()
	down := dev.waitState(t, Disconnected)
	t.Logf("device saw: %v", down.Err)
	x2 := startExchange(t, x1.addr, nil) // the same port, as a restarted process
	x2.waitEvent(t, "connect dev-a")
	if got, err := get(t, x2.hub, "dev-a", "/after"); err != nil || got.Path != "/after" {
		t.Fatalf("request after restart = %+v, %v", got, err)
	}
}

func TestCutConnection(t *testing.T) {
	x := startExchange(t, "127.0.0.1:0", nil)
	p := startProxy(t, x.addr)
	dev := startDevice(t, p.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
	dev.waitState(t, Connected)
	x.waitEvent(t, "connect dev-a")

	p.cut()
	dev.waitState(t, Disconnected)
	x.waitEvent(t, "disconnect dev-a")
	dev.waitState(t, Connected)
	x.waitEvent(t, "connect dev-a")
	if got, err := get(t, x.hub, "dev-a", "/after-cut"); err != nil || got.Path != "/after-cut" {
		t.Fatalf("request after cut = %+v, %v", got, err)
	}
}

func TestHeartbeatDetectsStalledPeer(t *testing.T) {
	const heartbeat = 150 * time.Millisecond
	x := startExchange(t, "127.0.0.1:0", func(h *Hub) { h.Heartbeat = heartbeat })
	p := startProxy(t, x.addr)
	dev := startDevice(t, p.url(), "cred-org-a", echoHandler("dev-a", nil, nil), func(d *Dialer) { d.Heartbeat = heartbeat })
	dev.waitState(t, Connected)
	x.waitEvent(t, "connect dev-a")

	p.stall() // the TCP connections stay open but nothing gets through
	down := dev.waitState(t, Disconnected)
	if down.Err == nil || !strings.Contains(down.Err.Error(), "heartbeat") {
		t.Errorf("Disconnected state Err = %v, want a missed heartbeat", down.Err)
	}
	dev.waitState(t, Connected)
	x.waitEvent(t, "connect dev-a")
	if n := p.conns.Load(); n < 2 {
		t.Errorf("proxy carried %d connections, want a redial", n)
	}
	if got, err := get(t, x.hub, "dev-a", "/after-stall"); err != nil || got.Path != "/after-stall" {
		t.Fatalf("request after stall = %+v, %v", got, err)
	}
}

func TestDisconnectDeregisters(t *testing.T) {
	x := startExchange(t, "127.0.0.1:0", nil)
	dev := startDevice(t, x.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
	dev.waitState(t, Connected)
	x.waitEvent(t, "connect dev-a")

	x.hub.Disconnect("dev-a", "device deleted by admin@example.com")
	if _, err := get(t, x.hub, "dev-a", "/"); sightline.ErrorKind(err) != sightline.Unavailable {
		t.Errorf("request after Disconnect: error kind %q (%v), want %q", sightline.ErrorKind(err), err, sightline.Unavailable)
	}
	err := dev.waitRun(t)
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.StatusCode != http.StatusGone || rej.Reason != "device deleted by admin@example.com" {
		t.Fatalf("Run() = %v, want a 410 rejection with the reason", err)
	}
	if got := sightline.ErrorKind(err); got != sightline.NotFound {
		t.Errorf("ErrorKind(Run()) = %q, want %q", got, sightline.NotFound)
	}
	x.waitEvent(t, "disconnect dev-a")
	if _, _, ok := x.hub.Connected("dev-a"); ok {
		t.Error("Connected(dev-a) = true after Disconnect")
	}
}

func TestConcurrentRequests(t *testing.T) {
	x := startExchange(t, "127.0.0.1:0", nil)
	startDevice(t, x.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
	x.waitEvent(t, "connect dev-a")

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/req/%d", i)
			got, err := get(t, x.hub, "dev-a", path)
			if err == nil && got.Path != path {
				err = fmt.Errorf("answer for %s came for %s", path, got.Path)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestNewerConnectionReplacesOlder(t *testing.T) {
	x := startExchange(t, "127.0.0.1:0", nil)
	first := startDevice(t, x.url(), "cred-org-a", echoHandler("first", nil, nil), func(d *Dialer) {
		d.MinBackoff, d.MaxBackoff = 5*time.Second, 5*time.Second // stays off once replaced
	})
	first.waitState(t, Connected)
	x.waitEvent(t, "connect dev-a")
	second := startDevice(t, x.url(), "cred-org-a", echoHandler("second", nil, nil), nil)
	second.waitState(t, Connected)
	x.waitEvent(t, "connect dev-a")

	down := first.waitState(t, Disconnected)
	if down.Err == nil || !strings.Contains(down.Err.Error(), "replaced") {
		t.Errorf("older tunnel's Disconnected Err = %v, want it replaced", down.Err)
	}
	if got, err := get(t, x.hub, "dev-a", "/"); err != nil || got.Device != "second" {
		t.Errorf("request to dev-a answered by %+v, %v; want the newer connection", got, err)
	}
	if n := x.count("disconnect dev-a"); n != 0 {
		t.Errorf("%d disconnect events for dev-a: a replaced tunnel is not a disconnection", n)
	}
}

func TestOrganisationsIsolated(t *testing.T) {
	x := startExchange(t, "127.0.0.1:0", nil)
	var hitsA, hitsB atomic.Int64
	devA := startDevice(t, x.url(), "cred-org-a", echoHandler("dev-a", &hitsA, nil), nil)
	// Org B's device tries to pass for org A's: only its credential counts.
	startDevice(t, x.url()+"?device=dev-a", "cred-org-b", echoHandler("dev-b", &hitsB, nil), nil)
	x.waitEvent(t, "connect dev-a")
	x.waitEvent(t, "connect dev-b")

	for i := range 10 {
		for _, id := range []string{"dev-a", "dev-b"} {
			got, err := get(t, x.hub, id, fmt.Sprintf("/%d", i))
			if err != nil || got.Device != id {
				t.Fatalf("request to %s answered by %q (%v)", id, got.Device, err)
			}
		}
	}
	if a, b := hitsA.Load(), hitsB.Load(); a != 10 || b != 10 {
		t.Errorf("requests seen: dev-a %d, dev-b %d; want 10 each", a, b)
	}

	// A device cannot open a stream toward the exchange or another device:
	// the hub never accepts streams, so nothing answers and nobody sees it.
	// (A second device of org B, so as not to replace dev-b's tunnel.)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, x.url(), &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {"Bearer cred-org-b-2"}},
		Subprotocols: []string{Subprotocol},
	})
	if err != nil {
		t.Fatalf("dial as dev-b2: %v", err)
	}
	defer ws.CloseNow()
	sess, err := yamux.Client(websocket.NetConn(ctx, ws, websocket.MessageBinary), yamuxConfig(time.Second, orDiscard(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(st, "GET /steal HTTP/1.1\r\nHost: dev-a\r\n\r\n")
	st.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := st.Read(make([]byte, 1)); n != 0 || !errors.Is(err, yamux.ErrTimeout) {
		t.Errorf("stream opened by a device: Read = %d, %v; want no answer", n, err)
	}
	if a, b := hitsA.Load(), hitsB.Load(); a != 10 || b != 10 {
		t.Errorf("after a device-opened stream, requests seen: dev-a %d, dev-b %d; want 10 each", a, b)
	}

	// Ending one organisation's device leaves the other's alone.
	x.hub.Disconnect("dev-a", "device deleted")
	devA.waitRun(t)
	if got, err := get(t, x.hub, "dev-b", "/still-here"); err != nil || got.Device != "dev-b" {
		t.Errorf("dev-b after dev-a's removal: %+v, %v", got, err)
	}
}

func TestRoundTripNotConnected(t *testing.T) {
	hub := &Hub{Authenticate: authenticate}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	_, err := hub.RoundTrip(context.Background(), "dev-x", req)
	if got := sightline.ErrorKind(err); got != sightline.Unavailable {
		t.Errorf("RoundTrip(dev-x) error kind = %q (%v), want %q", got, err, sightline.Unavailable)
	}
	resp, err := (&http.Client{Transport: hub.Transport("dev-x")}).Get("http://ignored/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("Transport(dev-x) request succeeded for a device without a tunnel")
	}
}

func TestHubClosedRefusesUpgrade(t *testing.T) {
	x := startExchange(t, "127.0.0.1:0", nil)
	x.hub.Close()
	dev := startDevice(t, x.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
	down := dev.waitState(t, Disconnected)
	if down.Err == nil || !strings.Contains(down.Err.Error(), "503") {
		t.Errorf("Disconnected Err = %v, want the 503 of a closed hub", down.Err)
	}
}

func TestDialerInvalidConfig(t *testing.T) {
	h := http.NotFoundHandler()
	cred := func() string { return "x" }
	tests := []struct {
		name string
		d    Dialer
	}{
		{"no handler", Dialer{URL: "ws://127.0.0.1:1/", Credential: cred}},
		{"no credential", Dialer{URL: "ws://127.0.0.1:1/", Handler: h}},
		{"relative URL", Dialer{URL: "/api/v1/tunnel", Credential: cred, Handler: h}},
		{"ftp scheme", Dialer{URL: "ftp://127.0.0.1/", Credential: cred, Handler: h}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.Run(context.Background())
			if got := sightline.ErrorKind(err); got != sightline.Invalid {
				t.Errorf("Run() = %v (kind %q), want kind %q", err, got, sightline.Invalid)
			}
		})
	}
}

func TestUpgradeStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{sightline.Errorf(sightline.Invalid, "x"), http.StatusUnauthorized},
		{sightline.Errorf(sightline.Unauthorized, "x"), http.StatusUnauthorized},
		{sightline.Errorf(sightline.Forbidden, "x"), http.StatusForbidden},
		{sightline.Errorf(sightline.NotFound, "x"), http.StatusGone},
		{sightline.Errorf(sightline.Conflict, "x"), http.StatusConflict},
		{sightline.Errorf(sightline.Unavailable, "x"), http.StatusServiceUnavailable},
		{sightline.Errorf(sightline.Internal, "x"), http.StatusInternalServerError},
		{errors.New("plain"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		if got := upgradeStatus(tt.err); got != tt.want {
			t.Errorf("upgradeStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	const minB, maxB = 100 * time.Millisecond, 1 * time.Second
	tests := []struct {
		n          int
		wantWindow time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{4, time.Second},
		{40, time.Second},
	}
	for _, tt := range tests {
		var hi time.Duration
		for range 1000 {
			d := backoff(minB, maxB, tt.n)
			if d < 0 || d > tt.wantWindow {
				t.Fatalf("backoff(%v, %v, %d) = %v, want within [0, %v]", minB, maxB, tt.n, d, tt.wantWindow)
			}
			hi = max(hi, d)
		}
		// 1000 uniform draws all in the lower half has probability 2⁻¹⁰⁰⁰.
		if hi < tt.wantWindow/2 {
			t.Errorf("backoff(%v, %v, %d): largest of 1000 draws %v, want jitter over [0, %v]", minB, maxB, tt.n, hi, tt.wantWindow)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header string
		want   string
		wantOK bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		r := &http.Request{Header: http.Header{"Authorization": {tt.header}}}
		got, ok := BearerToken(r)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestSanitizeReason(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"device deleted", "device deleted"},
		{"  two\nlines\t", "two lines"},
		{"bad \xff byte", "bad   byte"},
		{strings.Repeat("é", 100), strings.Repeat("é", 61)}, // 122 bytes: no half rune
		{"\x00\x1b[31mred", "[31mred"},
	}
	for _, tt := range tests {
		if got := sanitizeReason(tt.in); got != tt.want {
			t.Errorf("sanitizeReason(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSanitizeReason(f *testing.F) {
	f.Add("device deleted")
	f.Add("\xff\xfe\x00")
	f.Add(strings.Repeat("日本", 50))
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitizeReason(s)
		if len(got) > maxReasonLen {
			t.Fatalf("sanitizeReason(%q) is %d bytes, want at most %d", s, len(got), maxReasonLen)
		}
		for _, r := range got {
			if r == '\uFFFD' || r < ' ' || r == 0x7f {
				t.Fatalf("sanitizeReason(%q) = %q keeps %q", s, got, r)
			}
		}
	})
}

func TestViaTunnelDirect(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "http://gateway.example/", nil)
	if ViaTunnel(r) {
		t.Error("ViaTunnel(a request not from the tunnel) = true, want false")
	}
}
