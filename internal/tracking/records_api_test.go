package tracking_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

func newRecordsServer(t *testing.T, info tracking.GatewayInfo) *httptest.Server {
	t.Helper()
	_, s := newServer(t, info)
	srv := httptest.NewServer(tracking.NewRecordsAPI(s, info, nil))
	t.Cleanup(srv.Close)
	return srv
}

func TestRecordsAPI(t *testing.T) {
	// The gateway's zone must not change the records, whose times are UTC.
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	info := tracking.GatewayInfo{SerialNumber: serial, HostName: "gw1.example.com", Location: paris}
	srv := newRecordsServer(t, info)
	tests := []struct {
		name, query string
	}{
		{"records", apiDates + "&subjectfilterOperator=is&subjectfilterValue=Invoice+4471"},
		{"records_by_mid", apiDates + "&ciscoMid=316&ciscoMid=999&limit=100"},
		{"records_sighting_view", apiDates + "&subjectfilterOperator=is&subjectfilterValue=Invoice+4471&view=sighting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, "GET", srv.URL+"/api/v1/tracking/records?"+tt.query)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET records?%s = %d %s (%s), want 200 JSON", tt.query, resp.StatusCode, body, resp.Header.Get("Content-Type"))
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create): %v", err)
			}
			if diff := cmp.Diff(string(want), body); diff != "" {
				t.Errorf("GET records?%s body (-want +got):\n%s", tt.query, diff)
			}
		})
	}
}

// TestRecordsSightingView checks that a record in view=sighting is the
// whole record with only the keys a sighting is built from.
func TestRecordsSightingView(t *testing.T) {
	srv := newRecordsServer(t, tracking.GatewayInfo{SerialNumber: serial, HostName: "gw1.example.com"})
	query := srv.URL + "/api/v1/tracking/records?" + apiDates + "&limit=100"
	records := func(query string) (answer map[string]any, records []map[string]any) {
		t.Helper()
		resp, body := get(t, "GET", query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s, want 200", query, resp.StatusCode, body)
		}
		var recs struct {
			Records []map[string]any `json:"records"`
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(body), &recs); err != nil {
			t.Fatal(err)
		}
		delete(answer, "records")
		return answer, recs.Records
	}
	wholeAnswer, whole := records(query)
	viewAnswer, view := records(query + "&view=sighting")
	if len(whole) < 2 {
		t.Fatalf("GET %s = %d records, want several", query, len(whole))
	}
	if diff := cmp.Diff(wholeAnswer, viewAnswer); diff != "" {
		t.Errorf("view=sighting: the answer around the records differs (-whole +view):\n%s", diff)
	}
	keys := []string{"mid", "injected_at", "direction", "sender", "recipients", "subject", "status", "sender_ip",
		"message_id", "attachments", "urls", "verdict_chart", "last_event_at"}
	only := func(list any, keys ...string) []any {
		var out []any
		for _, x := range list.([]any) {
			m := map[string]any{}
			for _, k := range keys {
				m[k] = x.(map[string]any)[k]
			}
			out = append(out, m)
		}
		return out
	}
	var want []map[string]any
	for _, rec := range whole {
		w := map[string]any{}
		for _, k := range keys {
			w[k] = rec[k]
		}
		w["recipients"] = only(rec["recipients"], "address")
		w["attachments"] = only(rec["attachments"], "name", "sha256")
		want = append(want, w)
	}
	if diff := cmp.Diff(want, view); diff != "" {
		t.Errorf("view=sighting records (-whole, restricted +view):\n%s", diff)
	}

	resp, body := get(t, "GET", query+"&view=everything")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Invalid value for view.") {
		t.Errorf("GET records?view=everything = %d %s, want 400 naming view", resp.StatusCode, body)
	}
}

// TestRecordsAgreeWithDetails checks that a record's last event is the one
// message-tracking/details marks as the last, and its attachments and URLs
// those of the native search.
func TestRecordsAgreeWithDetails(t *testing.T) {
	info := tracking.GatewayInfo{SerialNumber: serial, HostName: "gw1.example.com"}
	asyncOS, s := newServer(t, info)
	records := httptest.NewServer(tracking.NewRecordsAPI(s, info, nil))
	t.Cleanup(records.Close)
	native := httptest.NewServer(tracking.NewSearchAPI(s, info, nil))
	t.Cleanup(native.Close)

	var recs struct {
		SerialNumber string `json:"serial_number"`
		HostName     string `json:"host_name"`
		Records      []struct {
			MID         int64           `json:"mid"`
			Attachments json.RawMessage `json:"attachments"`
			URLs        json.RawMessage `json:"urls"`
			LastEventAt string          `json:"last_event_at"`
		} `json:"records"`
	}
	if code := getJSON(t, records.URL+"/api/v1/tracking/records?"+apiDates, &recs); code != http.StatusOK {
		t.Fatalf("records = %d", code)
	}
	if len(recs.Records) != 2 || recs.SerialNumber != serial || recs.HostName != "gw1.example.com" {
		t.Fatalf("records = %+v, want two records of %s, gw1.example.com", recs, serial)
	}
	for _, r := range recs.Records {
		var d struct {
			Data struct {
				Messages struct {
					Summary []struct {
						Timestamp string `json:"timestamp"`
						LastEvent bool   `json:"lastEvent"`
					} `json:"summary"`
				} `json:"messages"`
			} `json:"data"`
		}
		getJSON(t, asyncOS.URL+"/esa/api/v2.0/message-tracking/details?mid="+itoa(r.MID), &d)
		want := ""
		for _, ev := range d.Data.Messages.Summary {
			if ev.LastEvent {
				want = ev.Timestamp
			}
		}
		got := ""
		if r.LastEventAt != "" {
			at, err := time.Parse(time.RFC3339Nano, r.LastEventAt)
			if err != nil {
				t.Fatalf("MID %d last_event_at %q: %v", r.MID, r.LastEventAt, err)
			}
			got = at.Format(tracking.DateLayout)
		}
		if got != want {
			t.Errorf("MID %d: last_event_at %q (%s), details' last event %q", r.MID, r.LastEventAt, got, want)
		}

		var n struct {
			Messages []struct {
				Attachments json.RawMessage `json:"attachments"`
				URLs        json.RawMessage `json:"urls"`
			} `json:"messages"`
		}
		getJSON(t, native.URL+"/api/v1/messages?q=mid:"+itoa(r.MID), &n)
		if len(n.Messages) != 1 || string(n.Messages[0].Attachments) != string(r.Attachments) || string(n.Messages[0].URLs) != string(r.URLs) {
			t.Errorf("MID %d: record attachments %s, URLs %s; native search %+v", r.MID, r.Attachments, r.URLs, n.Messages)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestRecordsAPIErrors(t *testing.T) {
	srv := newRecordsServer(t, tracking.GatewayInfo{SerialNumber: serial})
	tests := []struct {
		name, method, query string
		status              int
		want                string
	}{
		{"missing dates", "GET", "", 400, `{"error":"Missing attribute - startDate or endDate."}`},
		{"bad mid", "GET", apiDates + "&ciscoMid=x", 400, `{"error":"Invalid value for ciscoMid."}`},
		{"limit too large", "GET", apiDates + "&limit=1001", 400, `{"error":"Invalid value for limit."}`},
		{"wrong method", "POST", apiDates, 405, `{"error":"method not allowed"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.method, srv.URL+"/api/v1/tracking/records?"+tt.query)
			if resp.StatusCode != tt.status || body != tt.want+"\n" {
				t.Errorf("%s records?%s = %d %s, want %d %s", tt.method, tt.query, resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
}

// lastEventsStore is the SQLite store with a LastEvents of its own, which
// reads each message's events; it counts the Details read by others.
type lastEventsStore struct {
	*sqlite.TrackingStore
	details atomic.Int32
}

func (s *lastEventsStore) Details(ctx context.Context, mid int64) (*tracking.Message, []tracking.Event, error) {
	s.details.Add(1)
	return s.TrackingStore.Details(ctx, mid)
}

func (s *lastEventsStore) LastEvents(ctx context.Context, ms []*tracking.Message) (map[int64]time.Time, error) {
	last := map[int64]time.Time{}
	for _, m := range ms {
		_, evs, err := s.TrackingStore.Details(ctx, m.MID)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			if ev.Summary != "" {
				last[m.MID] = ev.Time
			}
		}
	}
	return last, nil
}

func TestRecordsAPIUsesLastEvents(t *testing.T) {
	info := tracking.GatewayInfo{SerialNumber: serial, HostName: "gw1.example.com"}
	_, s := newServer(t, info)
	ls := &lastEventsStore{TrackingStore: s}
	srv := httptest.NewServer(tracking.NewRecordsAPI(ls, info, nil))
	t.Cleanup(srv.Close)
	resp, body := get(t, "GET", srv.URL+"/api/v1/tracking/records?"+apiDates+"&subjectfilterOperator=is&subjectfilterValue=Invoice+4471")
	want, err := os.ReadFile(filepath.Join("testdata", "records.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), body); resp.StatusCode != http.StatusOK || diff != "" {
		t.Errorf("records with LastEvents = %d, body (-want +got):\n%s", resp.StatusCode, diff)
	}
	if n := ls.details.Load(); n != 0 {
		t.Errorf("the records endpoint read Details %d times, want none: the store has LastEvents", n)
	}
}
