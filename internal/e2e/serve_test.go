package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// adminPassword is the SIGHTLINE_ADMIN_PASSWORD serve gives the admin user of
// every role.
const adminPassword = "browser-journey-pass"

// serveTimeout bounds serve's start and its stop.
const serveTimeout = 30 * time.Second

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

// buildSightline builds ./cmd/sightline of this module into a temporary
// directory and returns its path. It builds without -race even when the test
// runs with it: serve starts several times faster so, and cmd/sightline's
// own journey test runs serve in-process under the race detector.
func buildSightline(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q, want this module's go.mod", gomod)
	}
	bin := filepath.Join(t.TempDir(), "sightline")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sightline")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	return bin
}

// served are the addresses serve printed: host:port for SMTP, base URLs
// without a trailing slash for the web UIs.
type served struct {
	smtp, gateway, americas, europe, console string
}

// addrLine matches the address lines serve prints once every role listens.
var addrLine = regexp.MustCompile(`(?m)^\s+(gateway SMTP|gateway UI and API|exchange AMERICAS|exchange EUROPE|console)\s+(\S+?)/?$`)

// onHost returns the web UIs' URLs with host in place of 127.0.0.1, e.g.
// "localhost": the browser keeps apart the cookies of two serves only when
// their host names differ, whatever their ports.
func (s served) onHost(host string) served {
	for _, u := range []*string{&s.gateway, &s.americas, &s.europe, &s.console} {
		*u = strings.Replace(*u, "//127.0.0.1:", "//"+host+":", 1)
	}
	return s
}

// startServe runs `sightline serve` with a fresh data directory on loopback
// ports, and the extra flags given, and returns the addresses it printed.
// Cleanup interrupts it, as Ctrl-C does, and checks that it exits cleanly.
func startServe(t *testing.T, bin string, extra ...string) served {
	t.Helper()
	args := []string{"serve", "--data", t.TempDir(), "--smtp-addr", "127.0.0.1:0",
		"--gateway-addr", "127.0.0.1:0", "--exchange-americas-addr", "127.0.0.1:0",
		"--exchange-europe-addr", "127.0.0.1:0", "--console-addr", "127.0.0.1:0", "--log-level", "warn"}
	cmd := exec.Command(bin, append(args, extra...)...)
	// Only our settings: a SIGHTLINE_* of the caller's shell must not change the run.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIGHTLINE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "SIGHTLINE_ADMIN_PASSWORD="+adminPassword)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start serve: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("interrupt serve: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve exited with %v after an interrupt; output:\n%s", err, out.String())
			}
		case <-time.After(serveTimeout):
			cmd.Process.Kill()
			<-done
			t.Errorf("serve did not stop within %v of an interrupt; output:\n%s", serveTimeout, out.String())
		}
	})

	deadline := time.After(serveTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		urls := map[string]string{}
		for _, m := range addrLine.FindAllStringSubmatch(out.String(), -1) {
			urls[m[1]] = m[2]
		}
		if len(urls) == 5 {
			return served{urls["gateway SMTP"], urls["gateway UI and API"], urls["exchange AMERICAS"],
				urls["exchange EUROPE"], urls["console"]}
		}
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("serve stopped before listening: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("serve printed no addresses within %v:\n%s", serveTimeout, out.String())
		case <-tick.C:
		}
	}
}

// sendTestMessage sends the seed's test message through the gateway by SMTP.
func sendTestMessage(t *testing.T, addr, subject string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial the gateway's SMTP: %v", err)
	}
	defer c.Close()
	if err := c.Mail("noreply@cisco.com"); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	if err := c.Rcpt("analyst@example.org"); err != nil {
		t.Fatalf("RCPT TO: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	fmt.Fprintf(w, "From: <noreply@cisco.com>\r\nTo: <analyst@example.org>\r\nSubject: %s\r\n"+
		"Message-ID: <browser-journey@cisco.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"+
		"A test message for the browser journey.\r\n", subject)
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}
