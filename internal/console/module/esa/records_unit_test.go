package esa

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/ctim"
)

// seedRecords answers as gateway gw1.example.com with the records endpoint
// does for ctim.md §14, times with fractions that AsyncOS would not print;
// it counts the requests it serves.
func seedRecords(t *testing.T, calls *atomic.Int32) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/tracking/records", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		q := r.URL.Query()
		if q.Get("startDate") != "2026-01-03T09:30:00.000Z" || q.Get("endDate") != "2026-01-10T09:30:00.000Z" ||
			q.Get("limit") != "100" || q.Get("view") != "sighting" {
			t.Errorf("records query %s: want the 7-day timeframe to the minute, limit 100 and view=sighting", r.URL.RawQuery)
		}
		if q.Get("envelopeSenderfilterValue") != "alice@sender.example" && q.Get("ciscoMid") != "315" {
			fmt.Fprint(w, `{"total": 0, "serial_number": "EC2CD1D95C273722A23A-CA0C47E74D1B", "host_name": "gw1.example.com", "records": []}`)
			return
		}
		fmt.Fprint(w, `{"total": 1, "total_capped": false, "serial_number": "EC2CD1D95C273722A23A-CA0C47E74D1B",
			"host_name": "gw1.example.com", "records": [{"mid": 315, "icid": 10767, "injected_at": "2026-01-10T08:00:12.875Z",
			"direction": "incoming", "sender": "alice@sender.example", "recipients": [{"address": "bob@corp.example", "status": "Delivered"}],
			"subject": "Invoice 4471", "status": "Delivered", "sender_ip": "203.0.113.25",
			"message_id": "<20260110080012.4471@sender.example>", "verdict_chart": "11100000",
			"attachments": [{"name": "invoice.pdf", "type": "application/pdf", "size": 4,
				"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
			"urls": [], "last_event_at": "2026-01-10T08:00:14.5Z"}]}`)
	})
	mux.HandleFunc("GET /api/v1/messages", func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("q"); q != "sha1:a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 after:2026-01-03T09:30" {
			t.Errorf("native search q=%q", q)
		}
		fmt.Fprint(w, `{"total": 1, "messages": [{"mid": 315}], "next_cursor": ""}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("%s %s: the records give all a sighting needs", r.Method, r.URL)
		http.NotFound(w, r)
	})
	return mux
}

// TestSeedSightingFromRecords checks the sighting built from a record
// against ctim.md §14 exactly, as TestSeedSighting does for AsyncOS answers.
func TestSeedSightingFromRecords(t *testing.T) {
	var calls atomic.Int32
	m := newTestModule(t, handlerProxy{seedRecords(t, &calls)}, `{"device_id": "d1", "timeframe_days": 7}`, Options{})
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
			Docs []map[string]any `json:"docs"`
		}
		if err := json.Unmarshal(data["sightings"], &got); err != nil || len(got.Docs) != 1 {
			t.Fatalf("Observe(%v) sightings = %s, want one", o, data["sightings"])
		}
		var wantDoc map[string]any
		json.Unmarshal(want, &wantDoc)
		wantDoc["observables"] = []any{map[string]any{"type": string(o.Type), "value": o.Value}}
		got.Docs[0]["id"] = wantDoc["id"]
		if diff := cmp.Diff(wantDoc, got.Docs[0]); diff != "" {
			t.Errorf("Observe(%v) sighting mismatch (-ctim.md §14 +got):\n%s", o, diff)
		}
	}
	// The sender and the recipient searches, then the native search and the
	// record of the MID it found.
	if n := calls.Load(); n != 3 {
		t.Errorf("%d records requests, want 3", n)
	}
}

func TestRecordsFailures(t *testing.T) {
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter)
		code   string
		msg    string
	}{
		{"gateway error", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error": "the tracking store is busy"}`)
		}, codeUnavailable, "the tracking store is busy"},
		{"bad last event", func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"total": 1, "records": [{"mid": 1, "injected_at": "2026-01-10T08:00:12Z", "last_event_at": "yesterday"}]}`)
		}, codeUnknown, `last_event_at "yesterday"`},
		{"not JSON", func(w http.ResponseWriter) { fmt.Fprint(w, `<html>`) }, codeUnknown, "not the JSON expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != pathRecords {
					t.Errorf("%s: a failing records endpoint is no reason to ask otherwise", r.URL)
				}
				tt.answer(w)
			})
			m := newTestModule(t, handlerProxy{h}, `{"device_id": "d1", "timeframe_days": 7}`, Options{})
			data, errs, err := m.Observe(context.Background(), []ctim.Observable{{Type: "ip", Value: "192.0.2.1"}})
			if err != nil || len(data) != 0 || len(errs) != 1 || errs[0].Code != tt.code || !strings.Contains(errs[0].Message, tt.msg) {
				t.Errorf("Observe() = %v, %v, %v; want one %q error containing %q", data, errs, err, tt.code, tt.msg)
			}
		})
	}
}

// TestRecordsRetried checks that the module asks a gateway that had no
// records endpoint again once recordsRetry has passed (it may have been
// upgraded), and not before.
func TestRecordsRetried(t *testing.T) {
	var records atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case pathRecords:
			records.Add(1)
			http.NotFound(w, r)
		case pathMessages:
			fmt.Fprint(w, `{"meta": {"totalCount": 0}, "data": []}`)
		default:
			t.Errorf("unexpected request %s", r.URL)
		}
	})
	clock := now
	m := newTestModule(t, handlerProxy{h}, `{"device_id": "d1", "timeframe_days": 7}`, Options{})
	m.opts.Now = func() time.Time { return clock }
	obs := []ctim.Observable{{Type: "cisco_mid", Value: "315"}}
	for _, tt := range []struct {
		after time.Duration
		want  int32
	}{{0, 1}, {time.Minute, 1}, {recordsRetry - time.Minute, 1}, {time.Second, 2}, {time.Second, 2}} {
		clock = clock.Add(tt.after)
		if _, errs, err := m.Observe(context.Background(), obs); err != nil || len(errs) > 0 {
			t.Fatalf("Observe() = %v, %v", errs, err)
		}
		if n := records.Load(); n != tt.want {
			t.Errorf("after %s more: %d records requests, want %d", tt.after, n, tt.want)
		}
	}
}

func TestNewestFirst(t *testing.T) {
	at := func(mid int64, ts string) *message {
		return &message{mid: mid, row: &searchRow{Timestamp: ts}}
	}
	msgs := []*message{
		at(1, "10 Jan 2026 08:00:12 (GMT +00:00)"),
		at(2, "garbled"), // a zero time sorts last
		at(3, "10 Jan 2026 09:00:12 (GMT +01:00)"), // the same instant as MID 1
		at(4, "11 Jan 2026 08:00:12 (GMT +00:00)"),
		at(5, "10 Jan 2026 07:59:59 (GMT +00:00)"),
	}
	newestFirst(msgs)
	var got []int64
	for _, m := range msgs {
		got = append(got, m.mid)
	}
	if want := []int64{4, 3, 1, 5, 2}; !slices.Equal(got, want) {
		t.Errorf("newestFirst order = %v, want %v", got, want)
	}
}
