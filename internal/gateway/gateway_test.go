package gateway_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/gateway"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/gateway/pipeline/contentfilter"
	"github.com/sightline/sightline/internal/gateway/queue"
)

const adminPassword = "correct horse"

// startGateway runs a gateway on loopback ports for the test's lifetime.
func startGateway(t *testing.T, opts ...func(*gateway.Options)) *gateway.Gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o := gateway.Options{
		DataDir:       t.TempDir(),
		SMTPAddr:      "127.0.0.1:0",
		HTTPAddr:      "127.0.0.1:0",
		Hostname:      "gw.test",
		DNSServers:    []string{"127.0.0.1:1"}, // nothing answers: lookups fail fast
		Version:       "test",
		AdminPassword: func() (string, error) { return adminPassword, nil },
	}
	for _, f := range opts {
		f(&o)
	}
	g, err := gateway.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return g
}

// sendMail sends one message in plain SMTP (the gateway's certificate is
// self-signed) and fails the test unless it is accepted.
func sendMail(t *testing.T, addr, from, to, subject string) {
	t.Helper()
	sendRaw(t, addr, from, to, fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d@test>\r\n\r\nhello\r\n", from, to, subject, time.Now().UnixNano()))
}

func sendRaw(t *testing.T, addr, from, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatalf("RCPT TO: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	c.Quit()
}

// apiGet calls the AsyncOS API with the given auth header and decodes JSON.
func apiGet(t *testing.T, g *gateway.Gateway, path string, q url.Values, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+g.HTTPAddr()+path+"?"+q.Encode(), nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("GET %s: body is not JSON: %q", path, b)
	}
	return resp.StatusCode, body, resp.Header
}

func basic(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

func wholeYear() url.Values {
	now := time.Now().UTC().Truncate(time.Minute)
	return url.Values{
		"startDate": {now.Add(-24 * time.Hour).Format("2006-01-02T15:04:00.000Z")},
		"endDate":   {now.Add(2 * time.Minute).Format("2006-01-02T15:04:00.000Z")},
	}
}

// TestFirstMessageDelivered is the README's promise: mail sent from the same
// machine to any address ends "Delivered" and is found by subject.
func TestFirstMessageDelivered(t *testing.T) {
	g := startGateway(t)
	sendMail(t, g.SMTPAddr(), "alice@example.com", "bob@example.org", "test test")

	q := wholeYear()
	q.Set("subjectfilterOperator", "begins_with")
	q.Set("subjectfilterValue", "test")
	var row map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := apiGet(t, g, "/esa/api/v2.0/message-tracking/messages", q, basic("admin", adminPassword))
		if code != http.StatusOK {
			t.Fatalf("search = %d %v, want 200", code, body)
		}
		if data, _ := body["data"].([]any); len(data) == 1 {
			row = data[0].(map[string]any)["attributes"].(map[string]any)
			if st := row["messageStatus"].(map[string]any); st[fmt.Sprint(row["mid"].([]any)[0])] == "Delivered" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message not Delivered in tracking within 10s; last answer %v", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if row["subject"] != "test test" || row["sender"] != "alice@example.com" {
		t.Errorf("row = %v, want subject \"test test\" from alice@example.com", row)
	}

	mid := fmt.Sprint(row["mid"].([]any)[0])
	code, body, _ := apiGet(t, g, "/esa/api/v2.0/message-tracking/details",
		url.Values{"mid": {mid}, "serialNumber": {fmt.Sprint(row["serialNumber"])}}, basic("admin", adminPassword))
	if code != http.StatusOK {
		t.Fatalf("details = %d %v", code, body)
	}
	summary := body["data"].(map[string]any)["messages"].(map[string]any)["summary"].([]any)
	last := summary[len(summary)-1].(map[string]any)
	if last["lastEvent"] != true || !strings.Contains(fmt.Sprint(last["description"]), "to bob@example.org received remote SMTP response") {
		t.Errorf("last event = %v, want the delivery response as LAST STATE", last)
	}
	var sawConnection bool
	for _, e := range summary {
		if strings.HasPrefix(fmt.Sprint(e.(map[string]any)["description"]), "Incoming connection (ICID") {
			sawConnection = true
		}
	}
	if !sawConnection {
		t.Errorf("details summary lacks the incoming connection event: %v", summary)
	}
}

func TestAPIAuthentication(t *testing.T) {
	g := startGateway(t)
	path := "/esa/api/v2.0/message-tracking/messages"

	code, body, _ := apiGet(t, g, path, wholeYear(), nil)
	if code != http.StatusUnauthorized || errMessage(body) != "Unauthorized." {
		t.Errorf("no credentials = %d %v, want 401 Unauthorized.", code, body)
	}
	code, body, _ = apiGet(t, g, path, wholeYear(), basic("admin", "wrong"))
	if code != http.StatusUnauthorized || errMessage(body) != "Invalid username or passphrase." {
		t.Errorf("bad password = %d %v, want 401 Invalid username or passphrase.", code, body)
	}
	code, body, _ = apiGet(t, g, path, wholeYear(), http.Header{"Jwttoken": {"not.a.token"}})
	if code != http.StatusUnauthorized || errMessage(body) != "InvalidTokenError." {
		t.Errorf("forged token = %d %v, want 401 InvalidTokenError.", code, body)
	}

	// Log in with Base64 credentials and use the token.
	login := fmt.Sprintf(`{"data":{"userName":%q,"passphrase":%q}}`,
		base64.StdEncoding.EncodeToString([]byte("admin")), base64.StdEncoding.EncodeToString([]byte(adminPassword)))
	resp, err := http.Post("http://"+g.HTTPAddr()+"/esa/api/v2.0/login", "application/json", strings.NewReader(login))
	if err != nil {
		t.Fatal(err)
	}
	var lr struct {
		Data map[string]string `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&lr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || lr.Data["jwtToken"] == "" || lr.Data["userName"] != "admin" ||
		lr.Data["role"] != "Administrator" || lr.Data["is2FactorRedirectRequired"] != "false" {
		t.Fatalf("login = %d %v", resp.StatusCode, lr.Data)
	}
	code, body, _ = apiGet(t, g, path, wholeYear(), http.Header{"Jwttoken": {lr.Data["jwtToken"]}})
	if code != http.StatusOK {
		t.Errorf("search with jwtToken = %d %v, want 200", code, body)
	}
	code, body, _ = apiGet(t, g, "/esa/api/v2.0/login/privileges", nil, http.Header{"Jwttoken": {lr.Data["jwtToken"]}})
	if privs, _ := body["data"].([]any); code != http.StatusOK || len(privs) == 0 || privs[0] != "e_message_tracking_messages" {
		t.Errorf("privileges = %d %v", code, body)
	}

	// Bad login bodies.
	for _, tt := range []struct{ body, want string }{
		{`{"data":{"userName":"YWRtaW4=","passphrase":"d3Jvbmc="}}`, "Invalid username or passphrase."},
		{`{"data":{"userName":"admin","passphrase":"!!"}}`, "Invalid username or passphrase."},
	} {
		resp, err := http.Post("http://"+g.HTTPAddr()+"/esa/api/v2.0/login", "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]any
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || errMessage(e) != tt.want {
			t.Errorf("login %s = %d %v, want 401 %q", tt.body, resp.StatusCode, e, tt.want)
		}
	}
}

func errMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func TestMailLogsAgreeWithTracking(t *testing.T) {
	g := startGateway(t)
	sendMail(t, g.SMTPAddr(), "carol@example.com", "dave@example.net", "log check")
	logFile := filepath.Join(g.DataDir(), "logs", "mail.current")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), "Message finished MID") {
			for _, want := range []string{"New SMTP ICID", "Start MID", "From: <carol@example.com>", "To: <dave@example.net>", "queued for delivery"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("mail_logs lacks %q:\n%s", want, b)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail_logs has no finished message after 10s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStatus polls tracking until the message with subject reaches status.
func waitStatus(t *testing.T, g *gateway.Gateway, subject, status string) (mid string) {
	t.Helper()
	q := wholeYear()
	q.Set("subjectfilterOperator", "is")
	q.Set("subjectfilterValue", subject)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body, _ := apiGet(t, g, "/esa/api/v2.0/message-tracking/messages", q, basic("admin", adminPassword))
		if data, _ := body["data"].([]any); len(data) == 1 {
			row := data[0].(map[string]any)["attributes"].(map[string]any)
			mid = fmt.Sprint(row["mid"].([]any)[0])
			if got := row["messageStatus"].(map[string]any)[mid]; got == status {
				return mid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %q did not reach status %q in 15s; last answer %v", subject, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestContentFilterQuarantineThenRelease(t *testing.T) {
	g := startGateway(t)
	ctx := context.Background()
	err := g.Config().Edit(ctx, "admin", func(c *config.Config) error {
		c.Screening.ContentFilters = append(c.Screening.ContentFilters, contentfilter.Filter{
			Name: "hold_invoices", Enabled: true, Direction: "both",
			Conditions: []contentfilter.Condition{{Type: contentfilter.Subject, Op: contentfilter.Contains, Value: "invoice"}},
			Actions:    []contentfilter.Action{{Type: contentfilter.Quarantine}},
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sendMail(t, g.SMTPAddr(), "a@example.com", "b@example.org", "Invoice before commit")
	waitStatus(t, g, "Invoice before commit", "Delivered") // staged, not committed: nothing applies

	if _, err := g.Config().Commit(ctx, "admin", "hold invoices"); err != nil {
		t.Fatal(err)
	}
	sendMail(t, g.SMTPAddr(), "a@example.com", "b@example.org", "Invoice Due")
	mid := waitStatus(t, g, "Invoice Due", "Quarantined by Content Filter")

	// Tracking may show the verdict a moment before the spool commits it.
	var held []queue.QuarantinedMessage
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		held, err = g.Queue().Quarantined(ctx, "Policy", 0, 10)
		if err == nil && len(held) == 1 && fmt.Sprint(held[0].MID) == mid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Policy quarantine = %v, %v; want MID %s", held, err, mid)
		}
	}
	if err := g.Queue().Release(ctx, held[0].MID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, g, "Invoice Due", "Delivered")
}

func TestEICARDroppedByClamd(t *testing.T) {
	addr := os.Getenv("SIGHTLINE_TEST_CLAMD")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SIGHTLINE_TEST_CLAMD is not set: start clamd with scripts/clamd-test.sh")
		}
		t.Skip("SIGHTLINE_TEST_CLAMD is not set")
	}
	g := startGateway(t, func(o *gateway.Options) { o.Clamd = addr })
	eicar := `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`
	msg := "From: <a@example.com>\r\nTo: <b@example.org>\r\nSubject: eicar inside\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=eicar.com\r\n\r\n" +
		eicar + "\r\n--b1--\r\n"
	sendRaw(t, g.SMTPAddr(), "a@example.com", "b@example.org", msg)
	waitStatus(t, g, "eicar inside", "Dropped By Anti-Virus")
	sendMail(t, g.SMTPAddr(), "a@example.com", "b@example.org", "clean after eicar")
	waitStatus(t, g, "clean after eicar", "Delivered")
}

// TestListsThroughTheAPI manages a reputation list through /api/v1/lists,
// which stages it like the UI; after the commit it holds the sender's mail.
func TestListsThroughTheAPI(t *testing.T) {
	g := startGateway(t)
	call := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, "http://"+g.HTTPAddr()+path, strings.NewReader(body))
		req.SetBasicAuth("admin", adminPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code, out := call(http.MethodPut, "/api/v1/lists/bad_senders",
		`{"kind":"sender_domain","mode":"blocklist","entries":["evil.example"],"action":{"type":"quarantine"}}`)
	if code != http.StatusOK || out["pending"] != true {
		t.Fatalf("PUT list = %d %v, want 200 and pending", code, out)
	}
	if code, out := call(http.MethodPut, "/api/v1/lists/typo", `{"kind":"sender_domain","mode":"blocklist","entriez":[]}`); code != http.StatusBadRequest {
		t.Errorf("PUT list with an unknown field = %d %v, want 400", code, out)
	}
	if code, out := call(http.MethodPut, "/api/v1/lists/bad", `{"kind":"colour","mode":"blocklist","entries":["x"]}`); code != http.StatusBadRequest {
		t.Errorf("PUT list with a bad kind = %d %v, want 400", code, out)
	}
	if code, _ := call(http.MethodDelete, "/api/v1/lists/none", ""); code != http.StatusNotFound {
		t.Errorf("DELETE an unknown list = %d, want 404", code)
	}
	if code, out := call(http.MethodPost, "/api/v1/config/commit", `{"comment":"block evil"}`); code != http.StatusOK {
		t.Fatalf("commit = %d %v", code, out)
	}
	if code, out := call(http.MethodPost, "/api/v1/config/commit", `{"comment":"again"}`); code != http.StatusConflict || errMessage(out) != "There is no data to commit." {
		t.Errorf("second commit = %d %v, want 409 There is no data to commit.", code, out)
	}
	sendMail(t, g.SMTPAddr(), "boss@evil.example", "b@example.org", "from a blocklisted domain")
	waitStatus(t, g, "from a blocklisted domain", "Quarantined by Message Filter")

	code, out = call(http.MethodGet, "/api/v1/config", "")
	if cfg, _ := out["config"].(map[string]any); code != http.StatusOK || cfg["hostname"] != "gw.test" || out["pending"] != false {
		t.Errorf("GET config = %d %v", code, out)
	}
}

func TestMetrics(t *testing.T) {
	g := startGateway(t)
	sendMail(t, g.SMTPAddr(), "a@example.com", "b@example.org", "metrics")
	req, _ := http.NewRequest(http.MethodGet, "http://"+g.HTTPAddr()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /metrics without credentials = %d, want 401", resp.StatusCode)
	}
	req.SetBasicAuth("admin", adminPassword)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"sightline_smtp_accept_seconds_count 1", "sightline_smtp_messages_accepted_total 1", `sightline_queue_messages{state="depth"}`, "sightline_tracking_unindexed_messages "} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}
	// The accepted message was spooled durably before its 250.
	for _, want := range []string{`(?m)^sightline_spool_commits_total [1-9]`, `(?m)^sightline_spool_operations_total [1-9]`} {
		if !regexp.MustCompile(want).Match(b) {
			t.Errorf("/metrics lacks a match for %s:\n%s", want, b)
		}
	}
}
