package tracking_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

const serial = "EC2CD1D95C273722A23A-CA0C47E74D1B"

var t0 = time.Date(2026, 1, 10, 8, 0, 12, 0, time.UTC)

func openStore(tb testing.TB) *sqlite.TrackingStore {
	tb.Helper()
	s, err := sqlite.OpenTracking(context.Background(), filepath.Join(tb.TempDir(), "tracking.db"))
	if err != nil {
		tb.Fatalf("OpenTracking: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// invoice is the message of gateway-api.md §5 and §7, split in two MIDs.
func invoice(mid int64, rcpt, status, finalSubject string) *tracking.Message {
	return &tracking.Message{
		MID: mid, ICID: 10767, Direction: "incoming", InjectedAt: t0,
		SenderIP: "203.0.113.25", ReverseDNS: "mail.sender.example", SBRS: "None", SenderGroup: "UNKNOWNLIST",
		MailPolicy: []string{"DEFAULT"}, Sender: "alice@sender.example", SenderDomain: "sender.example",
		HeaderFrom: "alice@sender.example", FriendlyFrom: "Alice <alice@sender.example>",
		Subject: "Invoice 4471", FinalSubject: finalSubject, MessageID: "<20260110080012.4471@sender.example>",
		Size: 40190, Recipients: []tracking.Recipient{{Address: rcpt}},
		Attachments: []tracking.Attachment{{Name: "invoice.pdf", Type: "application/pdf", Size: 38000}},
		URLs:        []string{"https://sender.example/pay"},
		Status:      status, VerdictChart: "11100000",
	}
}

func newServer(t *testing.T, info tracking.GatewayInfo) (*httptest.Server, *sqlite.TrackingStore) {
	t.Helper()
	s := openStore(t)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	err := s.Apply(context.Background(), tracking.Batch{
		Messages: []*tracking.Message{
			invoice(315, "bob@corp.example", tracking.StatusInProgress, "Invoice 4471"),
			invoice(316, "carol@corp.example", tracking.StatusQuarantinedCF, "[SUSPICIOUS] Invoice 4471"),
		},
		Events: []tracking.Event{
			{Time: at(-2), ICID: 10767, Summary: "Incoming connection (ICID 10767) has sender_group: UNKNOWNLIST, sender_ip: 203.0.113.25 and sbrs: None"},
			{Time: at(0), ICID: 10767, MID: 315, Summary: "Start message 315 on incoming connection (ICID 10767)."},
			{Time: at(1), MID: 315, Log: "MID 315 queued for delivery"},
			{Time: at(2), MID: 315, DCID: 89, Summary: "Message 315 to bob@corp.example received remote SMTP response 'ok:  Message 89 accepted'.",
				Status: tracking.StatusDelivered, Recipient: "bob@corp.example", Reply: "ok:  Message 89 accepted"},
			{Time: at(3), MID: 315, Log: "Message finished MID 315 done"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tracking.NewAPI(s, info, nil))
	t.Cleanup(srv.Close)
	return srv, s
}

func get(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

const apiDates = "startDate=2026-01-10T00:00:00.000Z&endDate=2026-01-10T08:00:00.000Z"

func TestAPIErrors(t *testing.T) {
	srv, _ := newServer(t, tracking.GatewayInfo{SerialNumber: serial})
	notFound := `{"error":{"message":"Not Found.","code":"404","explanation":"404 = Nothing matches the given URI."}}`
	e404 := func(msg string) string {
		return `{"error":{"message":"` + msg + `","code":"404","explanation":"404 = Nothing matches the given URI."}}`
	}
	tests := []struct {
		name, method, path string
		want               string
	}{
		{"bare prefix", "GET", "/esa/api/v2.0/", notFound},
		{"unknown route", "GET", "/esa/api/v2.0/message-tracking/nothing", notFound},
		{"outside the prefixes", "GET", "/message-tracking/messages", notFound},
		{"wrong method", "POST", "/esa/api/v2.0/message-tracking/messages?" + apiDates, notFound},
		{"missing dates", "GET", "/esa/api/v2.0/message-tracking/messages", e404("Missing attribute - startDate or endDate.")},
		{"seconds", "GET", "/sma/api/v2.0/message-tracking/messages?startDate=2026-01-10T00:00:01.000Z&endDate=2026-01-10T08:00:00.000Z",
			e404("startDate and endDate attribute supports only 00 seconds and 000 microseconds.")},
		{"bad date", "GET", "/esa/api/v2.0/message-tracking/messages?startDate=2026-13-10T00:00:00.000Z&endDate=2026-01-10T08:00:00.000Z",
			e404("Invalid attribute - startDate or endDate.")},
		{"half a pair", "GET", "/esa/api/v2.0/message-tracking/messages?" + apiDates + "&subjectfilterOperator=is",
			e404("Missing attribute - subjectfilterValue.")},
		{"details without mid", "GET", "/esa/api/v2.0/message-tracking/details?serialNumber=" + serial, e404("Missing attribute - mid.")},
		{"details bad mid", "GET", "/esa/api/v2.0/message-tracking/details?mid=x", e404("Invalid value for mid.")},
		{"details bad dates", "GET", "/esa/api/v2.0/message-tracking/details?mid=315&startDate=2026-01-10T00:00:00.000Z",
			e404("Missing attribute - startDate or endDate.")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.method, srv.URL+tt.path)
			if resp.StatusCode != 404 || body != tt.want+"\n" {
				t.Errorf("%s %s = %d %s, want 404 %s", tt.method, tt.path, resp.StatusCode, body, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s %s Content-Type = %q, want application/json", tt.method, tt.path, ct)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		status  int
		message string
		want    string
	}{
		{401, "", `{"error":{"message":"Unauthorized.","code":"401","explanation":"401 = No permission -- see authorization schemes."}}`},
		{401, "ExpiredSignatureError.", `{"error":{"message":"ExpiredSignatureError.","code":"401","explanation":"401 = No permission -- see authorization schemes."}}`},
		{403, "", `{"error":{"message":"Forbidden.","code":"403","explanation":"403 = Request forbidden -- authorization will not help."}}`},
		{404, "Wrong Parameter.", `{"error":{"message":"Wrong Parameter.","code":"404","explanation":"404 = Nothing matches the given URI."}}`},
		{500, "", `{"error":{"message":"Internal Server Error.","code":"500","explanation":"500 = Server got itself in trouble."}}`},
		{503, "", `{"error":{"message":"Service Unavailable.","code":"503","explanation":"503 = The server cannot process the request due to a high load."}}`},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		tracking.WriteError(rec, tt.status, tt.message)
		if rec.Code != tt.status || rec.Body.String() != tt.want+"\n" {
			t.Errorf("WriteError(%d, %q) = %d %s, want %d %s", tt.status, tt.message, rec.Code, rec.Body, tt.status, tt.want)
		}
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("WriteError(%d) Access-Control-Allow-Origin = %q, want *", tt.status, got)
		}
	}
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantMsg    string
	}{
		{sightline.Errorf(sightline.Invalid, "Wrong Parameter."), 404, "Wrong Parameter."},
		{sightline.Errorf(sightline.NotFound, "Not Found."), 404, "Not Found."},
		{sightline.Errorf(sightline.Conflict, "Busy."), 409, "Busy."},
		{sightline.Errorf(sightline.Unauthorized, "InvalidTokenError."), 401, "InvalidTokenError."},
		{sightline.Errorf(sightline.Forbidden, "Forbidden."), 403, "Forbidden."},
		{sightline.Wrap(sightline.Unavailable, errors.New("disk I/O error"), "tracking database unavailable"), 503, "tracking database unavailable"},
		{sightline.Wrap(sightline.Internal, errors.New("secret detail"), "oops"), 500, ""},
		{fmt.Errorf("plain: %w", io.EOF), 500, ""},
	}
	for _, tt := range tests {
		status, msg := tracking.ErrorStatus(tt.err)
		if status != tt.wantStatus || msg != tt.wantMsg {
			t.Errorf("ErrorStatus(%v) = %d, %q; want %d, %q", tt.err, status, msg, tt.wantStatus, tt.wantMsg)
		}
	}
}

func TestAPICORS(t *testing.T) {
	srv, _ := newServer(t, tracking.GatewayInfo{SerialNumber: serial})
	resp, _ := get(t, "OPTIONS", srv.URL+"/esa/api/v2.0/message-tracking/messages")
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("OPTIONS status = %d, want 204", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Headers"); !strings.Contains(strings.ToLower(got), "jwttoken") {
		t.Errorf("OPTIONS Access-Control-Allow-Headers = %q, want jwtToken among them", got)
	}
	resp, _ = get(t, "GET", srv.URL+"/esa/api/v2.0/message-tracking/messages?"+apiDates+"&limit=1")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("GET Access-Control-Allow-Origin = %q, want *", got)
	}
}

func TestAPIGolden(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	tests := []struct {
		name, path string
		info       tracking.GatewayInfo
	}{
		{"messages", "/esa/api/v2.0/message-tracking/messages?" + apiDates + "&searchOption=messages&ciscoHost=All_Hosts&offset=0&limit=20",
			tracking.GatewayInfo{SerialNumber: serial, HostName: "gw1.example.com"}},
		{"messages_filtered_tz", "/esa/api/v2.0/message-tracking/messages?" + apiDates + "&envelopeRecipientfilterOperator=begins_with&envelopeRecipientfilterValue=CAROL",
			tracking.GatewayInfo{SerialNumber: serial, Location: paris}},
		{"messages_empty", "/esa/api/v2.0/message-tracking/messages?" + apiDates + "&subjectfilterOperator=is&subjectfilterValue=nothing",
			tracking.GatewayInfo{SerialNumber: serial}},
		{"details", "/esa/api/v2.0/message-tracking/details?serialNumber=" + serial + "&mid=315&icid=10767",
			tracking.GatewayInfo{SerialNumber: serial, HostName: "gw1.example.com"}},
		{"details_unresolved_host", "/sma/api/v2.0/message-tracking/details?mid=316",
			tracking.GatewayInfo{SerialNumber: serial}},
		{"details_unknown_mid", "/esa/api/v2.0/message-tracking/details?serialNumber=" + serial + "&mid=999",
			tracking.GatewayInfo{SerialNumber: serial}},
		{"details_other_gateway", "/esa/api/v2.0/message-tracking/details?serialNumber=0000&mid=315",
			tracking.GatewayInfo{SerialNumber: serial}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, tt.info)
			resp, body := get(t, "GET", srv.URL+tt.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d %s, want 200", tt.path, resp.StatusCode, body)
			}
			var v any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatalf("GET %s: body is not JSON: %v", tt.path, err)
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
				t.Errorf("GET %s body (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}
