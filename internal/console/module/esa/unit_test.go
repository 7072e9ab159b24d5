package esa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// handlerProxy is a Proxy that serves requests with a handler in process:
// a stand-in for gateway answers the real gateway cannot be made to give
// (an incoming message at a fixed time, failures).
type handlerProxy struct{ h http.Handler }

func (p handlerProxy) Proxy(ctx context.Context, deviceID string, req exchangeclient.ProxyRequest) (exchangeclient.ProxyResponse, error) {
	r := httptest.NewRequestWithContext(ctx, req.Method, req.Path+"?"+req.Query, nil)
	w := httptest.NewRecorder()
	p.h.ServeHTTP(w, r)
	return exchangeclient.ProxyResponse{Status: w.Code, Headers: w.Header(), Body: w.Body.Bytes()}, nil
}

// now is the fixed clock of these tests: 2026-01-10 09:30:41 UTC.
var now = time.Date(2026, 1, 10, 9, 30, 41, 500, time.UTC)

// seedGateway answers as gateway gw1.example.com does for ctim.md §14:
// MID 315 from 203.0.113.25, delivered to bob@corp.example.
func seedGateway(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /esa/api/v2.0/message-tracking/messages", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		// Dates are the timeframe in whole minutes (gateway-api.md §14).
		if q.Get("startDate") != "2026-01-03T09:30:00.000Z" || q.Get("endDate") != "2026-01-10T09:30:00.000Z" ||
			q.Get("searchOption") != "messages" || q.Get("ciscoHost") != "All_Hosts" || q.Get("limit") != "100" {
			t.Errorf("search query %s: want the 7-day timeframe to the minute, searchOption, ciscoHost and limit 100", r.URL.RawQuery)
		}
		if q.Get("envelopeSenderfilterValue") != "alice@sender.example" && q.Get("ciscoMid") != "315" {
			fmt.Fprint(w, `{"meta": {"num_bad_records": 0, "totalCount": 0}, "data": []}`)
			return
		}
		fmt.Fprint(w, `{"meta": {"num_bad_records": 0, "totalCount": 1}, "data": [{"attributes": {
			"hostName": "", "serialNumber": "EC2CD1D95C273722A23A-CA0C47E74D1B", "direction": "incoming",
			"icid": 10767, "allIcid": [10767], "mid": [315], "timestamp": "10 Jan 2026 08:00:12 (GMT +00:00)",
			"sender": "alice@sender.example", "senderIp": "203.0.113.25", "recipient": ["bob@corp.example"],
			"recipientMap": {"315": ["bob@corp.example"]}, "subject": "Invoice 4471",
			"messageID": {"315": "<20260110080012.4471@sender.example>"}, "messageStatus": {"315": "Delivered"},
			"verdictChart": {"315": "11100000"}}}]}`)
	})
	mux.HandleFunc("GET /esa/api/v2.0/message-tracking/details", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("mid") != "315" || r.URL.Query().Get("serialNumber") != "EC2CD1D95C273722A23A-CA0C47E74D1B" {
			t.Errorf("details query %s, want MID 315 of the seed gateway", r.URL.RawQuery)
		}
		fmt.Fprint(w, `{"data": {"messages": {"mid": [315], "hostName": "gw1.example.com (SN:EC2CD1D95C273722A23A-CA0C47E74D1B)",
			"attachments": ["invoice.pdf"], "showURL": false, "summary": [
			{"timestamp": "10 Jan 2026 08:00:12 (GMT +00:00)", "description": "Incoming connection", "lastEvent": false},
			{"timestamp": "10 Jan 2026 08:00:14 (GMT +00:00)", "description": "Message 315 to bob@corp.example received remote SMTP response 'ok'.", "lastEvent": true}]}}}`)
	})
	mux.HandleFunc("GET /api/v1/messages", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		if q != "mid:315" && q != "sha1:a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 after:2026-01-03T09:30" {
			t.Errorf("native search q=%q", q)
		}
		fmt.Fprint(w, `{"total": 1, "messages": [{"mid": 315, "attachments": [{"name": "invoice.pdf",
			"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}], "urls": []}], "next_cursor": ""}`)
	})
	return mux
}

func newTestModule(t testing.TB, p Proxy, settings string, opts Options) *esaModule {
	t.Helper()
	opts.Now = func() time.Time { return now }
	m, err := New(module.Instance{ID: "6d1a7a52", Kind: module.KindESA, Settings: json.RawMessage(settings)}, p, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m.(*esaModule)
}

// TestSeedSighting checks the sighting against ctim.md §14 exactly: the
// spec's example is testdata/sighting-315.json.
func TestSeedSighting(t *testing.T) {
	m := newTestModule(t, handlerProxy{seedGateway(t)}, `{"device_id": "d1", "timeframe_days": 7}`, Options{})
	want, err := os.ReadFile("testdata/sighting-315.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []ctim.Observable{
		{Type: "email", Value: "alice@sender.example"},
		{Type: "sha1", Value: "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"}, // found by the native search
	} {
		data, errs, err := m.Observe(context.Background(), []ctim.Observable{o})
		if err != nil || len(errs) > 0 {
			t.Fatalf("Observe(%v) = %v, %v", o, errs, err)
		}
		var got struct {
			Count int               `json:"count"`
			Docs  []json.RawMessage `json:"docs"`
		}
		if err := json.Unmarshal(data["sightings"], &got); err != nil || got.Count != 1 || len(got.Docs) != 1 {
			t.Fatalf("Observe(%v) sightings = %s, want one", o, data["sightings"])
		}
		var gotDoc, wantDoc map[string]any
		json.Unmarshal(got.Docs[0], &gotDoc)
		json.Unmarshal(want, &wantDoc)
		wantDoc["observables"] = []any{map[string]any{"type": string(o.Type), "value": o.Value}}
		if id, _ := gotDoc["id"].(string); !strings.HasPrefix(id, "transient:sighting-") {
			t.Errorf("id = %q, want transient:sighting-<uuid>", id)
		}
		gotDoc["id"] = wantDoc["id"]
		if diff := cmp.Diff(wantDoc, gotDoc); diff != "" {
			t.Errorf("Observe(%v) sighting mismatch (-ctim.md §14 +got):\n%s", o, diff)
		}
	}
}

func TestSeverity(t *testing.T) {
	tests := []struct {
		status, chart string
		want          ctim.Severity
		resolution    ctim.Resolution
	}{
		{"Delivered", "11100000", ctim.SeverityLow, ctim.ResolutionAllowed},
		{"Bounced", "", ctim.SeverityLow, ctim.ResolutionDetected},
		{"Hard Bounced", "", ctim.SeverityLow, ctim.ResolutionDetected},
		{"Aborted", "", ctim.SeverityLow, ctim.ResolutionDetected},
		{"In Progress", "", ctim.SeverityLow, ctim.ResolutionDetected},
		{"Quarantined by Anti-Spam/Graymail", "21100000", ctim.SeverityMedium, ctim.ResolutionBlocked},
		{"Dropped By Anti-Spam", "", ctim.SeverityMedium, ctim.ResolutionBlocked},
		{"Dropped by Content Filter", "", ctim.SeverityMedium, ctim.ResolutionBlocked},
		{"Quarantined by Message Filter", "", ctim.SeverityMedium, ctim.ResolutionBlocked},
		{"Quarantined by DLP", "", ctim.SeverityMedium, ctim.ResolutionBlocked},
		{"Dropped By Anti-Virus", "12000000", ctim.SeverityHigh, ctim.ResolutionBlocked},
		{"Quarantined by AMP", "", ctim.SeverityHigh, ctim.ResolutionBlocked},
		{"Dropped by Outbreak Filters", "", ctim.SeverityHigh, ctim.ResolutionBlocked},
		{"Quarantined by Multiple Engines", "21102000", ctim.SeverityMedium, ctim.ResolutionBlocked},
		{"Quarantined by Multiple Engines", "22100000", ctim.SeverityHigh, ctim.ResolutionBlocked},
		{"Rewritten by a future engine", "", ctim.SeverityUnknown, ctim.ResolutionDetected},
	}
	for _, tt := range tests {
		if got := severity(tt.status, tt.chart); got != tt.want {
			t.Errorf("severity(%q, %q) = %s, want %s", tt.status, tt.chart, got, tt.want)
		}
		if got := resolution(tt.status); got != tt.resolution {
			t.Errorf("resolution(%q) = %s, want %s", tt.status, got, tt.resolution)
		}
	}
}

// errProxy fails every call with err.
type errProxy struct{ err error }

func (p errProxy) Proxy(context.Context, string, exchangeclient.ProxyRequest) (exchangeclient.ProxyResponse, error) {
	return exchangeclient.ProxyResponse{}, p.err
}

func TestModuleError(t *testing.T) {
	status := func(code int, body string) Proxy {
		return handlerProxy{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		})}
	}
	tests := []struct {
		name     string
		proxy    Proxy
		code     string
		contains string
	}{
		{"exchange unreachable", errProxy{sightline.Wrap(sightline.Unavailable, &url.Error{Op: "Post", URL: "http://x", Err: errors.New("connection refused")},
			"the exchange at http://x cannot be reached")}, "web server is down", "The exchange cannot be reached"},
		{"device offline", errProxy{sightline.Errorf(sightline.Unavailable, "Device gw1 (d1) is not connected to the exchange")},
			"service unavailable", "is not connected"},
		{"threat response off", errProxy{sightline.Errorf(sightline.Forbidden, "Threat Response is not enabled for organisation Default")},
			"permission denied", "Threat Response is not enabled"},
		{"unknown device", errProxy{sightline.Errorf(sightline.NotFound, "There is no device d1.")}, "not found", "region"},
		{"bad API key", errProxy{sightline.Errorf(sightline.Unauthorized, "invalid API key")}, "authorization error", "Authorization failed: "},
		{"timeout", errProxy{fmt.Errorf("post: %w", context.DeadlineExceeded)}, "service unavailable", "did not answer"},
		{"gateway 401", status(401, `{"error": {"message": "Unauthorized.", "code": "401"}}`), "authorization error", "Authorization failed: The gateway answered"},
		{"gateway 403", status(403, `{"error": {"message": "Forbidden.", "code": "403"}}`), "permission denied", "Forbidden."},
		{"gateway 500", status(500, `oops`), "internal error", "Internal Server Error"},
		{"gateway 418", status(418, `{}`), "unknown", "418"},
		{"gateway non-JSON", status(200, `<html>`), "unknown", "not the JSON expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestModule(t, tt.proxy, `{"device_id": "d1"}`, Options{})
			errs, err := m.Health(context.Background())
			if err != nil || len(errs) != 1 || errs[0].Code != tt.code || errs[0].Type != "fatal" || !strings.Contains(errs[0].Message, tt.contains) {
				t.Errorf("Health() = %v, %v; want one fatal %q error containing %q", errs, err, tt.code, tt.contains)
			}
		})
	}
}

func TestObservePartialFailure(t *testing.T) {
	// The sender search works, the recipient search fails: the sighting
	// found is kept next to the error.
	seed := seedGateway(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("envelopeRecipientfilterValue") != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		seed.ServeHTTP(w, r)
	})
	m := newTestModule(t, handlerProxy{h}, `{"device_id": "d1", "timeframe_days": 7}`, Options{})
	data, errs, err := m.Observe(context.Background(), []ctim.Observable{{Type: "email", Value: "alice@sender.example"}})
	if err != nil || len(errs) != 1 || errs[0].Code != "service unavailable" || !strings.Contains(string(data["sightings"]), `"count":1`) {
		t.Errorf("Observe() = %s, %v, %v; want the sighting and one service unavailable error", data["sightings"], errs, err)
	}
}

func TestRefer(t *testing.T) {
	obs := []ctim.Observable{{Type: "ip", Value: "203.0.113.25"}, {Type: "cisco_mid", Value: "315"}, {Type: "url", Value: "https://x.example/"}}
	m := newTestModule(t, errProxy{}, `{"device_id": "d1", "timeframe_days": 7}`, Options{GatewayURL: "https://gw1.example.com/"})
	refs, errs, err := m.Refer(context.Background(), obs)
	want := []module.Reference{
		{ID: "ref-esa-search-sender_ip-203.0.113.25", Title: "Search messages from this IP",
			Description: `Open Message Tracking on the gateway, searching by sender IP ip:"203.0.113.25"`,
			URL:         "https://gw1.example.com/monitor/tracking?end_date=2026-01-11&end_time=23%3A59&range=custom&search=1&sender_ip=203.0.113.25&start_date=2026-01-02&start_time=00%3A00",
			Categories:  []string{"Sightline Gateway", "Search"}},
		{ID: "ref-esa-details-cisco_mid-315", Title: "Open this message in Message Tracking",
			Description: "Open Message Tracking on the gateway at the details of MID 315",
			URL:         "https://gw1.example.com/monitor/tracking/315", Categories: []string{"Sightline Gateway", "Message Tracking"}},
	}
	if err != nil || len(errs) != 0 {
		t.Fatalf("Refer() = %v, %v", errs, err)
	}
	if diff := cmp.Diff(want, refs); diff != "" {
		t.Errorf("Refer() mismatch (-want +got):\n%s", diff)
	}
	m = newTestModule(t, errProxy{}, `{"device_id": "d1"}`, Options{})
	refs, _, _ = m.Refer(context.Background(), obs[1:2])
	if len(refs) != 1 || refs[0].URL != "/monitor/tracking/315" || !strings.HasPrefix(refs[0].Description, "On the gateway's web interface") {
		t.Errorf("Refer() without GatewayURL = %+v, want a path on the gateway", refs)
	}
}

func TestNewSettings(t *testing.T) {
	tests := []struct {
		settings string
		want     string // "" means accepted
		days     int
	}{
		{`{"device_id": "d1"}`, "", 30},
		{`{"device_id": "d1", "timeframe_days": 90}`, "", 90},
		{`{}`, "device_id is required", 0},
		{``, "device_id is required", 0},
		{`{"device_id": "d1", "timeframe_days": 400}`, "out of range 1–365", 0},
		{`{"device_id": "d1", "timeframe_days": -1}`, "out of range", 0},
		{`{"device_id": "d1", "region": "x"}`, "want {", 0},
	}
	for _, tt := range tests {
		m, err := New(module.Instance{ID: "m", Kind: module.KindESA, Settings: json.RawMessage(tt.settings)}, errProxy{}, Options{})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("New(%s) = %v, want accepted", tt.settings, err)
		case tt.want == "" && m.(*esaModule).settings.TimeframeDays != tt.days:
			t.Errorf("New(%s) timeframe = %d, want %d", tt.settings, m.(*esaModule).settings.TimeframeDays, tt.days)
		case tt.want != "" && (sightline.ErrorKind(err) != sightline.Invalid || !strings.Contains(sightline.ErrorMessage(err), tt.want)):
			t.Errorf("New(%s) = %v, want Invalid containing %q", tt.settings, err, tt.want)
		}
	}
}

// FuzzSighting feeds arbitrary gateway answers to the sighting builder: it
// must not panic, and what it emits must be valid CTIM.
func FuzzSighting(f *testing.F) {
	f.Add(`{"serialNumber": "S", "direction": "incoming", "mid": [315], "timestamp": "10 Jan 2026 08:00:12 (GMT +00:00)",
		"sender": "a@b.example", "senderIp": "::1", "recipientMap": {"315": ["c@d.example"]}, "subject": "x",
		"messageID": {"315": "<m@x>"}, "messageStatus": {"315": "Dropped By Anti-Virus"}}`,
		`{"hostName": "(Name unresolved,  SN:S)", "attachments": ["a/b.pdf", ""], "summary": [{"timestamp": "bad", "lastEvent": true}]}`)
	f.Fuzz(func(t *testing.T, rowJSON, detailsJSON string) {
		var row searchRow
		var d details
		if json.Unmarshal([]byte(rowJSON), &row) != nil || len(row.MID) == 0 {
			return
		}
		msg := &message{mid: row.MID[0], row: &row, matched: []ctim.Observable{{Type: "ip", Value: "192.0.2.1"}}}
		if json.Unmarshal([]byte(detailsJSON), &d) == nil {
			msg.details = &d
		}
		if injected(msg).IsZero() {
			return // Observe leaves such a message out
		}
		m := &esaModule{opts: Options{Source: DefaultSource}}
		s := m.sighting(msg)
		if err := s.Validate(); err != nil {
			t.Errorf("sighting of %s / %s is not valid CTIM: %v", rowJSON, detailsJSON, err)
		}
	})
}
