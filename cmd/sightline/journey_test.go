package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/smtp"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const testPassword = "journey-pass"

func testEnv(k string) string {
	if k == "SIGHTLINE_ADMIN_PASSWORD" {
		return testPassword
	}
	return ""
}

// served are the addresses serve printed, and all it wrote.
type served struct {
	smtp, gateway, americas, europe, console string
	out                                      *syncBuffer
}

// startServe runs `sightline serve` on loopback ports, with extra flags,
// and returns the addresses it printed.
func startServe(t *testing.T, extra ...string) served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--data", t.TempDir(), "--smtp-addr", "127.0.0.1:0",
			"--gateway-addr", "127.0.0.1:0", "--exchange-americas-addr", "127.0.0.1:0",
			"--exchange-europe-addr", "127.0.0.1:0", "--console-addr", "127.0.0.1:0", "--log-level", "error"}, extra...), testEnv, out, out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not stop within 20s")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if s, ok := printedAddresses(out); ok {
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no addresses in 20s:\n%s", out.String())
		}
	}
}

// printedAddresses reads the addresses serve printed to out, and reports
// whether it printed all five.
func printedAddresses(out *syncBuffer) (served, bool) {
	urls := map[string]string{}
	for _, m := range addressLine.FindAllStringSubmatch(out.String(), -1) {
		urls[m[1]] = m[2]
	}
	return served{urls["gateway SMTP"], urls["gateway UI and API"], urls["exchange AMERICAS"], urls["exchange EUROPE"], urls["console"], out}, len(urls) == 5
}

var addressLine = regexp.MustCompile(`(?m)^\s+(gateway SMTP|gateway UI and API|exchange AMERICAS|exchange EUROPE|console)\s+(\S+?)/?$`)

// cli runs one sightline command and returns its output and error.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, testEnv, &out, &errOut)
	return out.String(), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cli(t, args...)
	if err != nil {
		t.Fatalf("sightline %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// waitCloud polls cloudserviceconfig status until it contains want.
func waitCloud(t *testing.T, gw, want string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := mustCLI(t, "gateway", "cloudserviceconfig", "status", "--gateway", gw)
		if strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("cloudserviceconfig status never said %q; last:\n%s", want, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJourney walks the seed's steps 1–8 and its verification with the CLI
// against a real serve, with the troubleshooting cases on the way.
func TestJourney(t *testing.T) {
	s := startServe(t, "--log-level", "debug", "--log-format", "json")
	gw, americas, europe := s.gateway, s.americas, s.europe

	// Step 1: Threat Response is disabled.
	waitCloud(t, gw, "currently disabled")

	// Steps 2–4: enable and pick the server; nothing applies before the commit,
	// so the gateway does not ask for a token yet.
	mustCLI(t, "gateway", "cloudserviceconfig", "enable", "--server", "AMERICAS", "--gateway", gw)
	out := waitCloud(t, gw, "currently disabled")
	if !strings.Contains(out, "uncommitted changes") {
		t.Errorf("status after enable without commit = %q, want it to mention the uncommitted changes", out)
	}
	if out := mustCLI(t, "gateway", "commit", "-m", "enable cloud service", "--gateway", gw); !strings.HasPrefix(out, "Changes committed: ") {
		t.Errorf("commit = %q, want \"Changes committed: …\"", out)
	}
	if out := mustCLI(t, "gateway", "commit", "-m", "again", "--gateway", gw); out != "There is no data to commit.\n" {
		t.Errorf("second commit = %q, want \"There is no data to commit.\"", out)
	}
	if out := mustCLI(t, "gateway", "clear", "--gateway", gw); out != "No changes have been made\n" {
		t.Errorf("clear without changes = %q", out)
	}
	waitCloud(t, gw, "awaits a registration token")

	// Step 5: tokens from the exchanges.
	europeToken := strings.TrimSpace(mustCLI(t, "exchange", "token", "create", "--devices", "1", "--expires", "1h", "--exchange", europe))
	token := strings.TrimSpace(mustCLI(t, "exchange", "token", "create", "--devices", "1", "--expires", "1h", "--exchange", americas))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(token) {
		t.Fatalf("token create printed %q, want 32 hex characters", token)
	}

	// Troubleshooting: a token of another region, and a mistyped one.
	for _, bad := range []string{europeToken, "0123456789abcdef0123456789abcdef"} {
		_, err := cli(t, "gateway", "cloudserviceconfig", "register", bad, "--gateway", gw)
		if err == nil || err.Error() != "The registration failed because of an invalid or expired token key" {
			t.Errorf("register with a bad token = %v, want the AsyncOS failure text", err)
		}
	}

	// Step 6: register.
	out = mustCLI(t, "gateway", "cloudserviceconfig", "register", token, "--gateway", gw)
	if !strings.Contains(out, "appliance is successfully registered") {
		t.Fatalf("register = %q", out)
	}
	deviceID := strings.TrimSpace(out[strings.Index(out, "Device ID: ")+len("Device ID: "):])

	// Step 7: the exchange lists the gateway, registered, with its tunnel up.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out = mustCLI(t, "exchange", "devices", "--exchange", americas)
		if strings.Contains(out, deviceID) && regexp.MustCompile(deviceID+`.*ESA.*Registered.*127\.0\.0\.1\s+up`).MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exchange devices never listed %s as a registered ESA with its tunnel up:\n%s", deviceID, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := mustCLI(t, "exchange", "devices", "--exchange", europe); strings.Contains(out, deviceID) {
		t.Errorf("the EUROPE exchange lists a device registered in AMERICAS:\n%s", out)
	}

	// Step 8: the console's module for the gateway. Troubleshooting first:
	// Threat Response is off for the organisation in the exchange.
	_, err := cli(t, "console", "module", "add", "esa", "--device", deviceID, "--console", s.console)
	if err == nil || !strings.Contains(err.Error(), "Threat Response is not enabled") {
		t.Errorf("module add with Threat Response off = %v, want the message naming Cloud Services", err)
	}
	mustCLI(t, "exchange", "cloud-services", "enable", "--exchange", americas)
	mustCLI(t, "console", "module", "add", "esa", "--name", "Email Security Appliance", "--device", deviceID,
		"--timeframe", "30", "--console", s.console)

	// Verification: a test message, found in Message Tracking and investigated.
	sendTestMessage(t, s.smtp, "test test")
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(mustCLI(t, "track", "--subject-is", "test test", "--gateway", gw), "Delivered") {
		if time.Now().After(deadline) {
			t.Fatalf("the test message never reached Delivered in tracking")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out = mustCLI(t, "investigate", `email_subject:"test test"`, "--console", s.console)
	if !regexp.MustCompile(`Email Security Appliance\s+just now\s+\w+ message \(Delivered\)\s+High\s+Low`).MatchString(out) {
		t.Errorf("investigate printed:\n%s\nwant a sighting row: module, observed, \"… message (Delivered)\", High, Low", out)
	}
	// Each observable type of the seed's table, and a free-text paste.
	mid := regexp.MustCompile(`(?m)^\S.*\)\s+(\d+)\s+noreply@cisco.com`).FindStringSubmatch(
		mustCLI(t, "track", "--subject-is", "test test", "--gateway", gw))
	if mid == nil {
		t.Fatalf("track did not show the test message's MID")
	}
	sum := sha256.Sum256([]byte(testAttachment))
	for _, q := range []string{
		`ip:"127.0.0.1"`,
		`domain:"cisco.com"`,
		`email:"noreply@cisco.com"`,
		`email_messageid:"123-abc-456@cisco.com"`,
		`cisco_mid:"` + mid[1] + `"`,
		`sha256:"` + hex.EncodeToString(sum[:]) + `"`,
		`file_name:"invoice.pdf"`,
		`url:"https://pay.invoices.example/i?x=1"`,
		"Subject: test test\nFrom: noreply@cisco.com\nwith invoice.pdf attached", // free text
	} {
		out := mustCLI(t, "investigate", q, "--console", s.console)
		if !strings.Contains(out, "message (Delivered)") {
			t.Errorf("investigate %s found no sighting:\n%s", q, out)
		}
	}
	if _, err := cli(t, "investigate", `emial:"x@y.example"`, "--console", s.console); err == nil ||
		!strings.Contains(err.Error(), `unknown observable type "emial"`) {
		t.Errorf("investigate with a mistyped type = %v, want an error naming it", err)
	}

	// A used-up token fails too, once the gateway is deregistered.
	mustCLI(t, "gateway", "cloudserviceconfig", "deregister", "--gateway", gw)
	waitCloud(t, gw, "awaits a registration token")
	if _, err := cli(t, "gateway", "cloudserviceconfig", "register", token, "--gateway", gw); err == nil ||
		!strings.Contains(err.Error(), "invalid or expired token") {
		t.Errorf("register with a used-up token = %v, want the failure text", err)
	}

	// Every log line names each attribute once: a part's logger names its
	// component, and a role hands its parts a logger without its own.
	for _, ui := range []string{s.console, americas, gw} {
		resp, err := http.PostForm(ui+"/login", url.Values{"username": {"admin"}, "passphrase": {"wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	logs, components := 0, map[string]bool{}
	for _, line := range strings.Split(s.out.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		logs++
		var rec struct{ Component string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %v\n%s", err, line)
		}
		components[rec.Component] = true
		if k := duplicateKey(line); k != "" {
			t.Errorf("log line names %q twice:\n%s", k, line)
		}
	}
	for _, c := range []string{"exchange", "tunnel_hub", "connector", "tunnel", "console", "web", "mailauth"} {
		if !components[c] {
			t.Errorf("no log line of component %q among %d lines; components seen: %v", c, logs, components)
		}
	}
}

// duplicateKey returns the first key that the JSON object line names twice
// at its top level, or "".
func duplicateKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return ""
		}
		if seen[key] {
			return key
		}
		seen[key] = true
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return ""
		}
	}
	return ""
}

// testAttachment is the content of the test message's invoice.pdf.
const testAttachment = "%PDF-1.4 not really a pdf"

// sendTestMessage sends a message through the gateway by SMTP: from
// noreply@cisco.com, Message-ID <123-abc-456@cisco.com>, with a link and an
// invoice.pdf attachment, as the seed's verification queries expect.
func sendTestMessage(t *testing.T, addr, subject string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("noreply@cisco.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("analyst@example.org"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: <noreply@cisco.com>\r\nTo: <analyst@example.org>\r\nSubject: %s\r\n"+
		"Message-ID: <123-abc-456@cisco.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain\r\n\r\nPlease see https://pay.invoices.example/i?x=1\r\n"+
		"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=invoice.pdf\r\n\r\n"+
		"%s\r\n--b1--\r\n", subject, testAttachment)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
}
