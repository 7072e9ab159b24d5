package tracking_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
)

func newSearchServer(t *testing.T) *httptest.Server {
	t.Helper()
	s := openStore(t)
	var ms []*tracking.Message
	for i := int64(1); i <= 7; i++ {
		m := invoice(i, fmt.Sprintf("rcpt%d@corp.example", i), tracking.StatusDelivered, "Invoice 4471")
		m.InjectedAt = t0.Add(time.Duration(i/2) * time.Minute) // ties
		ms = append(ms, m)
	}
	ms[6].Attachments[0].SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	if err := s.Apply(context.Background(), tracking.Batch{Messages: ms}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	srv := httptest.NewServer(tracking.NewSearchAPI(s, tracking.GatewayInfo{Location: time.UTC}, nil))
	t.Cleanup(srv.Close)
	return srv
}

type searchBody struct {
	Total       int  `json:"total"`
	TotalCapped bool `json:"total_capped"`
	Messages    []struct {
		MID         int64  `json:"mid"`
		InjectedAt  string `json:"injected_at"`
		Sender      string `json:"sender"`
		Status      string `json:"status"`
		Recipients  []struct{ Address, Status string }
		Attachments []struct {
			Name   string `json:"name"`
			SHA256 string `json:"sha256"`
		} `json:"attachments"`
		URLs []string `json:"urls"`
	} `json:"messages"`
	NextCursor string `json:"next_cursor"`
}

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s Content-Type = %q, want application/json", u, ct)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: body %s: %v", u, b, err)
	}
	return resp.StatusCode
}

func TestSearchAPIPages(t *testing.T) {
	srv := newSearchServer(t)
	var got []int64
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 7 {
			t.Fatal("paging does not end")
		}
		var body searchBody
		u := srv.URL + "/api/v1/messages?" + url.Values{"q": {"from:alice has:attachment"}, "limit": {"3"}, "cursor": {cursor}}.Encode()
		if status := getJSON(t, u, &body); status != http.StatusOK {
			t.Fatalf("GET %s = %d, want 200", u, status)
		}
		if body.Total != 7 || body.TotalCapped {
			t.Errorf("GET %s total = %d capped %v, want 7, false", u, body.Total, body.TotalCapped)
		}
		for _, m := range body.Messages {
			got = append(got, m.MID)
			if len(m.Recipients) != 1 || len(m.Attachments) != 1 || len(m.URLs) != 1 || m.Status != tracking.StatusDelivered {
				t.Errorf("GET %s message %+v lacks its lists", u, m)
			}
		}
		if body.NextCursor == "" {
			break
		}
		cursor = body.NextCursor
	}
	if want := []int64{7, 6, 5, 4, 3, 2, 1}; !cmp.Equal(got, want) {
		t.Errorf("pages gave MIDs %v, want %v", got, want)
	}
}

func TestSearchAPIResults(t *testing.T) {
	srv := newSearchServer(t)
	var body searchBody
	u := srv.URL + "/api/v1/messages?" + url.Values{"q": {"sha256:9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}, "tz": {"Asia/Tokyo"}}.Encode()
	if status := getJSON(t, u, &body); status != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", u, status)
	}
	if len(body.Messages) != 1 || body.Messages[0].MID != 7 || body.NextCursor != "" {
		t.Fatalf("GET %s = %+v, want MID 7 alone", u, body)
	}
	if got, want := body.Messages[0].InjectedAt, "2026-01-10T17:03:12+09:00"; got != want {
		t.Errorf("GET %s injected_at = %q, want %q", u, got, want)
	}
}

func TestSearchAPIErrors(t *testing.T) {
	srv := newSearchServer(t)
	tests := []struct {
		name   string
		query  url.Values
		status int
		want   map[string]string
	}{
		{"bad term", url.Values{"q": {"from:x after:31/12/2025"}}, 400,
			map[string]string{"error": "invalid term", "term": "after:31/12/2025", "reason": "ambiguous date; use yyyy-mm-dd"}},
		{"limit too high", url.Values{"limit": {"501"}}, 400, map[string]string{"error": `invalid limit "501"; use 1 to 500`}},
		{"limit zero", url.Values{"limit": {"0"}}, 400, map[string]string{"error": `invalid limit "0"; use 1 to 500`}},
		{"bad cursor", url.Values{"cursor": {"nope"}}, 400, map[string]string{"error": "invalid cursor"}},
		{"bad zone", url.Values{"tz": {"Mars/Olympus"}}, 400,
			map[string]string{"error": `unknown time zone "Mars/Olympus"; use an IANA name such as Europe/Paris`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]string
			u := srv.URL + "/api/v1/messages?" + tt.query.Encode()
			if status := getJSON(t, u, &got); status != tt.status {
				t.Errorf("GET %s = %d, want %d", u, status, tt.status)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GET %s body (-want +got):\n%s", u, diff)
			}
		})
	}
	resp, err := http.Post(srv.URL+"/api/v1/messages", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", resp.StatusCode)
	}
}

func TestSearchErrorStatus(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		body   any
	}{
		{"search error", &tracking.SearchError{Term: "t", Reason: "r"}, 400, &tracking.SearchError{Term: "t", Reason: "r"}},
		{"invalid", sightline.Errorf(sightline.Invalid, "bad"), 400, map[string]string{"error": "bad"}},
		{"not found", sightline.Errorf(sightline.NotFound, "none"), 404, map[string]string{"error": "none"}},
		{"conflict", sightline.Errorf(sightline.Conflict, "c"), 409, map[string]string{"error": "c"}},
		{"unauthorized", sightline.Errorf(sightline.Unauthorized, "u"), 401, map[string]string{"error": "u"}},
		{"forbidden", sightline.Errorf(sightline.Forbidden, "f"), 403, map[string]string{"error": "f"}},
		{"unavailable", sightline.Wrap(sightline.Unavailable, errors.New("disk"), "tracking database unavailable"), 503,
			map[string]string{"error": "tracking database unavailable"}},
		{"internal", sightline.Errorf(sightline.Internal, "secret"), 500, map[string]string{"error": "internal error"}},
		{"plain", errors.New("secret"), 500, map[string]string{"error": "internal error"}},
	}
	for _, tt := range tests {
		status, body := tracking.SearchErrorStatus(tt.err)
		if status != tt.status || !cmp.Equal(body, tt.body) {
			t.Errorf("SearchErrorStatus(%v) = %d, %v; want %d, %v", tt.err, status, body, tt.status, tt.body)
		}
	}
}
