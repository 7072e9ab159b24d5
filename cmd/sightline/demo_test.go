package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/demo"
)

// startDemo runs `sightline serve --demo` on dir, listening on the
// addresses of at (zero fields take "127.0.0.1:0"), waits for the demo to
// say it is ready and returns the addresses printed, with the output; stop
// ends serve and waits for it.
func startDemo(t *testing.T, dir string, at served) (s served, stop func()) {
	t.Helper()
	or0 := func(addr string) string {
		if addr == "" {
			return "127.0.0.1:0"
		}
		return strings.TrimPrefix(addr, "http://")
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--demo", "--data", dir, "--smtp-addr", or0(at.smtp),
			"--gateway-addr", or0(at.gateway), "--exchange-americas-addr", or0(at.americas),
			"--exchange-europe-addr", or0(at.europe), "--console-addr", or0(at.console), "--log-level", "error"}, testEnv, out, out)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve --demo: %v\n%s", err, out)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve --demo did not stop within 20s")
		}
	}
	t.Cleanup(stop)

	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "Demo ready.") {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("serve --demo stopped before the demo was ready: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("serve --demo not ready within 60s:\n%s", out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	s, _ = printedAddresses(out)
	return s, stop
}

// eventually runs the CLI command until its output matches want, for at
// most 20 seconds, and returns the last output.
func eventually(t *testing.T, want *regexp.Regexp, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := cli(t, args...)
		if err == nil && want.MatchString(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("sightline %s never printed %s; last: %v\n%s", strings.Join(args, " "), want, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consoleModules lists the console's modules through its admin API.
func consoleModules(t *testing.T, console string) []map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, console+"/api/v1/modules", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("GET /api/v1/modules: %v", err)
	}
	return list
}

// TestServeDemo starts serve --demo and checks that the journey is done and
// the first mail is there to investigate; then starts it again on the same
// data and checks that nothing was done twice.
func TestServeDemo(t *testing.T) {
	dir := t.TempDir()
	s, stop := startDemo(t, dir, served{})
	out := s.out

	status := mustCLI(t, "gateway", "cloudserviceconfig", "status", "--gateway", s.gateway)
	m := regexp.MustCompile(`successfully registered.*Device ID: (\S+)`).FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("cloudserviceconfig status after the demo = %q, want the gateway registered", status)
	}
	deviceID := m[1]
	if mods := consoleModules(t, s.console); len(mods) != 1 || mods[0]["kind"] != "esa" ||
		mods[0]["settings"].(map[string]any)["device_id"] != deviceID {
		t.Errorf("console modules = %v, want one esa module for device %s", mods, deviceID)
	}

	direction := "Incoming" // demo mail comes from 127.0.0.2, unless this system has no such loopback address
	if strings.Contains(out.String(), "is not usable here") {
		direction = "Outgoing"
	}
	eventually(t, regexp.MustCompile(`Email Security Appliance\s+just now\s+`+direction+` message \(Delivered\)\s+High\s+Low`),
		"investigate", `email_subject:"test test"`, "--console", s.console)
	eventually(t, regexp.MustCompile(`(?m)`+regexp.QuoteMeta(demo.PhishingSubject)+`.*Quarantined by Message Filter$`),
		"track", "--subject-is", demo.PhishingSubject, "--gateway", s.gateway)
	eventually(t, regexp.MustCompile(`(?m)Your parcel could not be delivered.*Quarantined by Content Filter$`),
		"track", "--subject-is", "Your parcel could not be delivered", "--gateway", s.gateway)
	eventually(t, regexp.MustCompile(`(?m)`+regexp.QuoteMeta(demo.BouncingRecipient)+`.*Bounced`),
		"track", "--status", "BOUNCED", "--gateway", s.gateway)
	eventually(t, regexp.MustCompile(`(?m)Invoice Due.*Delivered$`),
		"track", "--subject-is", demo.InvoiceSubject, "--gateway", s.gateway)
	if !strings.Contains(out.String(), "Demo: sent ") {
		t.Errorf("the first start did not tell what it sent:\n%s", out)
	}

	// Again, on the same data and ports: no new commit, token, device,
	// module or burst.
	stop()
	again, _ := startDemo(t, dir, s)
	out = again.out
	if strings.Contains(out.String(), "Demo: sent ") {
		t.Errorf("the second start sent the first burst again:\n%s", out)
	}
	devices := mustCLI(t, "exchange", "devices", "--exchange", s.americas)
	if n := len(regexp.MustCompile(`(?m)^\S+\s+\S+\s+ESA\s`).FindAllString(devices, -1)); n != 1 {
		t.Errorf("exchange devices after a second start list %d gateways, want 1:\n%s", n, devices)
	}
	if mods := consoleModules(t, s.console); len(mods) != 1 {
		t.Errorf("console modules after a second start = %v, want the one", mods)
	}
	eventually(t, regexp.MustCompile(`successfully registered.*Device ID: `+deviceID),
		"gateway", "cloudserviceconfig", "status", "--gateway", s.gateway)
}
