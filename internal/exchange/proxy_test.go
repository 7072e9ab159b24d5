package exchange

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
)

// countingStore counts the reads the proxy path makes.
type countingStore struct {
	registry.Store
	keys, orgs, devices atomic.Int32
}

func (s *countingStore) APIKeyByHash(ctx context.Context, hash string) (registry.APIKey, error) {
	s.keys.Add(1)
	return s.Store.APIKeyByHash(ctx, hash)
}

func (s *countingStore) Organisation(ctx context.Context, id string) (registry.Organisation, error) {
	s.orgs.Add(1)
	return s.Store.Organisation(ctx, id)
}

func (s *countingStore) Device(ctx context.Context, orgID, id string) (registry.Device, error) {
	s.devices.Add(1)
	return s.Store.Device(ctx, orgID, id)
}

// newKey creates an API key of the Default organisation and returns its ID
// and the key.
func (x *testExchange) newKey(t *testing.T) (id, key string) {
	t.Helper()
	k, err := x.admin.APIKeyCreate(context.Background(), "console")
	if err != nil {
		t.Fatalf("APIKeyCreate: %v", err)
	}
	return k.ID, k.Key
}

func TestProxyLookupsCached(t *testing.T) {
	t.Parallel()
	first := startExchange(t, nil)
	counted := &countingStore{Store: first.store}
	x := startExchange(t, func(o *Options) { o.Store = counted; o.DataDir = "" })
	ctx := context.Background()
	if err := x.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		t.Fatal(err)
	}
	_, secret := x.newKey(t)
	key := exchangeclient.NewKey(x.url, nil, secret)
	dev := x.runDevice(t, x.token(t, 1).Token, "esa1.example.com", echo)
	counted.keys.Store(0)
	counted.orgs.Store(0)
	counted.devices.Store(0)
	for range 5 {
		if _, err := key.Proxy(ctx, dev.reg.DeviceID, exchangeclient.ProxyRequest{Path: "/"}); err != nil {
			t.Fatalf("Proxy: %v", err)
		}
	}
	if k, o, d := counted.keys.Load(), counted.orgs.Load(), counted.devices.Load(); k != 1 || o != 1 || d != 1 {
		t.Errorf("5 proxied calls read the key %d, the organisation %d and the device %d times; want each once", k, o, d)
	}
}

// TestProxyLookupsFollowChanges checks that what the proxy path keeps never
// outlives a change: a revoked key, Threat Response turned off and a deleted
// device stop working at the next call, on the exchange that made the
// change and on a replica sharing its store.
func TestProxyLookupsFollowChanges(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	replica := startExchange(t, func(o *Options) { o.Store = x.store; o.DataDir = "" })
	ctx := context.Background()
	if err := x.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		t.Fatal(err)
	}
	dev := x.runDevice(t, x.token(t, 1).Token, "esa1.example.com", echo)
	keyID, secret := x.newKey(t)

	// call proxies through the exchange that holds the tunnel, and through
	// the replica, which finds the device but not its tunnel; ok is the
	// kind of a call that gets through (none, or the replica's Unavailable).
	call := func(t *testing.T, want sightline.Kind) {
		t.Helper()
		for range 2 { // the second call may be answered from what the first kept
			for _, ex := range []*testExchange{x, replica} {
				_, err := exchangeclient.NewKey(ex.url, nil, secret).Proxy(ctx, dev.reg.DeviceID, exchangeclient.ProxyRequest{Path: "/"})
				w := want
				if w == "" && ex == replica {
					w = sightline.Unavailable
				}
				if got := sightline.ErrorKind(err); err != nil && got != w || err == nil && w != "" {
					t.Errorf("Proxy() through %s = %v, want kind %q", ex.url, err, w)
				}
			}
		}
	}
	call(t, "")
	steps := []struct {
		name   string
		change func() error
		want   sightline.Kind // "" when the call gets through
	}{
		{"key revoked", func() error { return x.admin.APIKeyRevoke(ctx, keyID) }, sightline.Unauthorized},
		{"new key", func() error { keyID, secret = x.newKey(t); return nil }, ""},
		{"threat response off on the replica", func() error {
			return replica.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: false})
		}, sightline.Forbidden},
		{"threat response on", func() error {
			return x.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true})
		}, ""},
		{"key revoked on the replica", func() error { return replica.admin.APIKeyRevoke(ctx, keyID) }, sightline.Unauthorized},
		{"another key", func() error { keyID, secret = x.newKey(t); return nil }, ""},
		{"device deleted on the replica", func() error { return replica.admin.DeviceDelete(ctx, dev.reg.DeviceID) }, sightline.NotFound},
	}
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		t.Run(st.name, func(t *testing.T) { call(t, st.want) })
	}
}

// jsonDevice answers /json with a JSON document (a trailing newline, HTML
// characters and spacing included), /text with text, and echoes a POST
// body.
var jsonDevice = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header()["Date"] = nil // no Date header: the answers are the same every time
	switch r.URL.Path {
	case "/json":
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Add("X-Multi", "one")
		w.Header().Add("X-Multi", "two")
		io.WriteString(w, deviceJSON)
	case "/text":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "<p>short and stout</p>")
	case "/echo":
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, r.Body)
	}
})

const deviceJSON = "{\"data\": [1, 2.50, \"<a&b>\"],  \"x\": null}\n"

func TestProxyRaw(t *testing.T) {
	t.Parallel()
	x := startExchange(t, nil)
	ctx := context.Background()
	if err := x.admin.SetCloudServices(ctx, exchangeclient.CloudServices{ThreatResponse: true}); err != nil {
		t.Fatal(err)
	}
	_, secret := x.newKey(t)
	dev := x.runDevice(t, x.token(t, 1).Token, "esa1.example.com", jsonDevice)

	// post sends a proxy request as its JSON text and returns the answer.
	post := func(t *testing.T, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, x.url+"/api/v1/devices/"+dev.reg.DeviceID+"/proxy", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	type answer struct {
		Status      int
		ContentType string
		Device      http.Header // the Sightline-Device-* headers
		Body        string
	}
	device := func(status, ctype string, more ...string) http.Header {
		h := http.Header{"Sightline-Device-Status": {status}, "Sightline-Device-Header-Content-Type": {ctype}}
		for i := 0; i < len(more); i += 2 {
			h.Add(more[i], more[i+1])
		}
		return h
	}
	base64Of := func(s string) string { b, _ := json.Marshal([]byte(s)); return string(b) }
	tests := []struct {
		name, req string
		want      answer
	}{
		{"JSON answer", `{"path": "/json", "raw": true}`, answer{200, "application/octet-stream",
			device("200", "application/json; charset=utf-8", "Sightline-Device-Header-X-Multi", "one", "Sightline-Device-Header-X-Multi", "two"),
			deviceJSON}},
		{"HTML answer", `{"path": "/text", "raw": true}`, answer{200, "application/octet-stream",
			device("418", "text/html"), "<p>short and stout</p>"}},
		{"JSON request body", `{"method": "POST", "path": "/echo", "body_json": {"a": [1, "<b>"]}, "raw": true}`,
			answer{200, "application/octet-stream", device("200", "application/json"), `{"a": [1, "<b>"]}`}},
		{"enveloped", `{"path": "/text"}`, answer{200, "application/json", http.Header{},
			`{"status":418,"headers":{"Content-Type":["text/html"]},"body":` + base64Of("<p>short and stout</p>") + "}\n"}},
		{"both bodies", `{"method": "POST", "path": "/echo", "body": "e30=", "body_json": {}}`, answer{400, "application/json",
			http.Header{}, `{"error":"give the body in body (base64) or in body_json, not both"}` + "\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, tt.req)
			got := answer{resp.StatusCode, resp.Header.Get("Content-Type"), http.Header{}, body}
			for name, vs := range resp.Header {
				if strings.HasPrefix(name, "Sightline-Device-") {
					got.Device[name] = vs
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("proxy %s answer mismatch (-want +got):\n%s", tt.req, diff)
			}
		})
	}

	// The client asks for raw answers and returns the device's as they are.
	key := exchangeclient.NewKey(x.url, nil, secret)
	clientTests := []struct {
		req  exchangeclient.ProxyRequest
		want exchangeclient.ProxyResponse
	}{
		{exchangeclient.ProxyRequest{Path: "/json"}, exchangeclient.ProxyResponse{Status: 200,
			Headers: http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Multi": {"one", "two"}}, Body: []byte(deviceJSON)}},
		{exchangeclient.ProxyRequest{Path: "/text"}, exchangeclient.ProxyResponse{Status: 418,
			Headers: http.Header{"Content-Type": {"text/html"}}, Body: []byte("<p>short and stout</p>")}},
		{exchangeclient.ProxyRequest{Method: "POST", Path: "/echo", BodyJSON: json.RawMessage(`{"sent": "as json"}`)},
			exchangeclient.ProxyResponse{Status: 200, Headers: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"sent": "as json"}`)}},
	}
	for _, tt := range clientTests {
		got, err := key.Proxy(ctx, dev.reg.DeviceID, tt.req)
		if err != nil {
			t.Errorf("Proxy(%s) = %v", tt.req.Path, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Proxy(%s) mismatch (-want +got):\n%s", tt.req.Path, diff)
		}
	}
}

// BenchmarkProxyAnswer compares what a device's JSON answer costs the
// exchange and its client, in the JSON envelope (base64) and raw.
func BenchmarkProxyAnswer(b *testing.B) {
	recs := make([]map[string]any, 50)
	for i := range recs {
		recs[i] = map[string]any{"mid": i, "sender": "alice@sender.example", "subject": "Invoice Due <urgent>",
			"recipients":  []map[string]string{{"address": "bob@corp.example", "status": "Delivered"}},
			"attachments": []map[string]any{{"name": "invoice.pdf", "sha256": strings.Repeat("ab", 32)}},
			"urls":        []string{"https://sender.example/pay?x=1&y=2"}, "last_event_at": "2026-01-10T08:00:14Z"}
	}
	body, _ := json.Marshal(map[string]any{"total": 50, "records": recs})
	out := exchangeclient.ProxyResponse{Status: 200, Headers: http.Header{"Content-Type": {"application/json"}}, Body: body}
	for _, raw := range []bool{false, true} {
		b.Run(map[bool]string{false: "envelope", true: "raw"}[raw], func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				w := httptest.NewRecorder()
				if raw {
					writeDeviceAnswer(w, out)
				} else {
					writeJSON(w, http.StatusOK, out)
				}
				var got exchangeclient.ProxyResponse
				if raw {
					got.Status, _ = strconv.Atoi(w.Header().Get(exchangeclient.DeviceStatusHeader))
					got.Body = w.Body.Bytes()
				} else if err := json.NewDecoder(w.Body).Decode(&got); err != nil {
					b.Fatal(err)
				}
				if got.Status != 200 || len(got.Body) != len(body) {
					b.Fatalf("answer %d with %d bytes, want 200 with %d", got.Status, len(got.Body), len(body))
				}
			}
		})
	}
}
