package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/doctor"
	"github.com/sightline/sightline/internal/exchange/exchangeclient"
)

// doctorCheck runs sightline doctor --json against s and returns its
// results by ID and its error.
func doctorCheck(t *testing.T, s served, extra ...string) (map[string]doctor.Result, error) {
	t.Helper()
	args := append([]string{"doctor", "--json", "--gateway", s.gateway, "--exchange", s.americas, "--exchange", s.europe,
		"--console", s.console, "--smtp", s.smtp}, extra...)
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, testEnv, &out, &errOut)
	var rs []doctor.Result
	if jerr := json.Unmarshal(out.Bytes(), &rs); jerr != nil {
		t.Fatalf("doctor --json printed %q (%v): %v", out.String(), err, jerr)
	}
	byID := map[string]doctor.Result{}
	for _, r := range rs {
		if _, dup := byID[r.ID]; dup {
			t.Errorf("doctor reported check %s twice", r.ID)
		}
		byID[r.ID] = r
	}
	return byID, err
}

// wantCheck fails unless check id has status want and its detail and fix
// contain the given texts.
func wantCheck(t *testing.T, rs map[string]doctor.Result, id string, want doctor.Status, detail, fix string) {
	t.Helper()
	r, ok := rs[id]
	switch {
	case !ok:
		t.Errorf("doctor reported no check %s; got %v", id, rs)
	case r.Status != want || !strings.Contains(r.Detail, detail) || !strings.Contains(r.Fix, fix):
		t.Errorf("doctor check %s = %s %q (fix %q), want %s with %q (fix %q)", id, r.Status, r.Detail, r.Fix, want, detail, fix)
	}
}

// wantExact fails unless check id has status want and exactly the
// detail and fix given.
func wantExact(t *testing.T, rs map[string]doctor.Result, id string, want doctor.Status, detail, fix string) {
	t.Helper()
	r, ok := rs[id]
	switch {
	case !ok:
		t.Errorf("doctor reported no check %s; got %v", id, rs)
	case r.Status != want || r.Detail != detail || r.Fix != fix:
		t.Errorf("doctor check %s = %s\n%q\nfix %q\nwant %s\n%q\nfix %q", id, r.Status, r.Detail, r.Fix, want, detail, fix)
	}
}

// newestToken returns the newest token of the exchange at url.
func newestToken(t *testing.T, url string) exchangeclient.Token {
	t.Helper()
	toks, err := exchangeclient.NewAdmin(url, nil, "admin", testPassword).Tokens(context.Background())
	if err != nil || len(toks) == 0 {
		t.Fatalf("Tokens(%s) = %v, %v; want a token", url, toks, err)
	}
	return toks[0]
}

// tokenSteps are the commands doctor gives to create a token in the
// exchange at url and register with it.
func tokenSteps(url string) string {
	return "sightline exchange token create --devices 1 --expires 1h --exchange " + url +
		" (or Devices > Manage Devices > + in its UI), then sightline gateway cloudserviceconfig register TOKEN" +
		" (or Network > Cloud Service Settings > Registration Token, Register, in the gateway UI)."
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// wantFailed fails unless err is doctor's exit status 1.
func wantFailed(t *testing.T, err error) {
	t.Helper()
	var df doctorFailed
	if !errors.As(err, &df) || exitCode(err) != 1 {
		t.Errorf("doctor error = %v, want a failure with exit status 1", err)
	}
}

// doctorUntil runs doctor until check id has status want, and returns
// the last results.
func doctorUntil(t *testing.T, s served, id string, want doctor.Status) (map[string]doctor.Result, error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rs, err := doctorCheck(t, s)
		if rs[id].Status == want {
			return rs, err
		}
		if time.Now().After(deadline) {
			t.Fatalf("doctor never reported %s as %s; last: %+v", id, want, rs[id])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDoctor walks the seed's troubleshooting cases against a real serve
// and checks that doctor explains each one, then passes when all is well.
func TestDoctor(t *testing.T) {
	s := startServe(t)
	gw, americas, europe := s.gateway, s.americas, s.europe

	// Fresh: Threat Response is off on the gateway.
	rs, err := doctorCheck(t, s)
	wantFailed(t, err)
	for _, id := range []string{"smtp.reachable", "gateway.reachable", "gateway.credentials", "gateway.clock",
		"exchange.AMERICAS.reachable", "exchange.EUROPE.credentials", "console.credentials", "console.exchange"} {
		wantCheck(t, rs, id, doctor.StatusOK, "", "")
	}
	wantCheck(t, rs, "gateway.threat_response", doctor.StatusFail, "Threat Response is disabled", "cloudserviceconfig enable")
	wantCheck(t, rs, "gateway.connector", doctor.StatusSkip, "Threat Response is off", "")

	// Enabled but not committed.
	mustCLI(t, "gateway", "cloudserviceconfig", "enable", "--server", "AMERICAS", "--gateway", gw)
	rs, err = doctorCheck(t, s)
	wantFailed(t, err)
	wantCheck(t, rs, "gateway.threat_response", doctor.StatusFail, "submitted but not committed", "sightline gateway commit -m")
	wantCheck(t, rs, "gateway.changes", doctor.StatusSkip, "Threat Response settings", "")

	// Committed: the gateway awaits a token.
	mustCLI(t, "gateway", "commit", "-m", "enable cloud service", "--gateway", gw)
	waitCloud(t, gw, "awaits a registration token")
	rs, err = doctorCheck(t, s)
	wantFailed(t, err)
	wantCheck(t, rs, "gateway.threat_response", doctor.StatusOK, "AMERICAS", "")
	wantCheck(t, rs, "gateway.changes", doctor.StatusOK, "", "")
	wantCheck(t, rs, "gateway.connector", doctor.StatusFail, "awaits a registration token", "sightline exchange token create")

	// A token of another region: refused, and doctor says where it came from.
	const failed = "The registration failed because of an invalid or expired token. "
	newToken := "Create a token in the exchange of region AMERICAS: " + tokenSteps(americas)
	europeToken := strings.TrimSpace(mustCLI(t, "exchange", "token", "create", "--devices", "1", "--exchange", europe))
	europeTok := newestToken(t, europe)
	if _, err := cli(t, "gateway", "cloudserviceconfig", "register", europeToken, "--gateway", gw); err == nil {
		t.Fatalf("register with a EUROPE token succeeded in AMERICAS")
	}
	rs, err = doctorCheck(t, s)
	wantFailed(t, err)
	wantExact(t, rs, "gateway.connector", doctor.StatusFail,
		failed+"The token was generated in the exchange of region EUROPE (token "+europeTok.ID+", created "+stamp(europeTok.CreatedAt)+" by admin), "+
			"but the gateway registers with the exchange of region AMERICAS, which did not issue it: a token works only in the region whose exchange generated it.",
		"Generate the token in the device's region, AMERICAS, not in EUROPE: "+tokenSteps(americas))

	// Registered, but Threat Response is off for the organisation.
	token := strings.TrimSpace(mustCLI(t, "exchange", "token", "create", "--devices", "1", "--exchange", americas))
	tokenID := newestToken(t, americas).ID
	out := mustCLI(t, "gateway", "cloudserviceconfig", "register", token, "--gateway", gw)
	deviceID := strings.TrimSpace(out[strings.Index(out, "Device ID: ")+len("Device ID: "):])
	rs, err = doctorUntil(t, s, "exchange.AMERICAS.device", doctor.StatusOK)
	wantFailed(t, err)
	wantCheck(t, rs, "gateway.connector", doctor.StatusOK, deviceID, "")
	wantCheck(t, rs, "exchange.AMERICAS.threat_response", doctor.StatusFail, "has not enabled Threat Response", "cloud-services enable --exchange "+americas)
	wantCheck(t, rs, "exchange.EUROPE.threat_response", doctor.StatusSkip, "Neither the gateway nor the console", "")
	wantCheck(t, rs, "console.modules", doctor.StatusWarn, "No Email Security Appliance module", "module add esa --device "+deviceID)

	// All well: exit status 0, and the text report says so.
	mustCLI(t, "exchange", "cloud-services", "enable", "--exchange", americas)
	mustCLI(t, "console", "module", "add", "esa", "--device", deviceID, "--console", s.console)
	doctorUntil(t, s, "gateway.tunnel", doctor.StatusOK)
	text, err := cli(t, "doctor", "--gateway", gw, "--exchange", americas, "--exchange", europe, "--console", s.console, "--smtp", s.smtp)
	if err != nil {
		t.Fatalf("doctor when all is well = %v\n%s", err, text)
	}
	if !strings.Contains(text, "✓ Gateway is registered with the exchange") || !strings.Contains(text, " 0 failed") || strings.Contains(text, "✗") {
		t.Errorf("doctor's report when all is well:\n%s\nwant ✓ lines and 0 failed", text)
	}

	// A used-up token, once the gateway is deregistered; the console's
	// module now points at a device that is gone.
	mustCLI(t, "gateway", "cloudserviceconfig", "deregister", "--gateway", gw)
	waitCloud(t, gw, "awaits a registration token")
	if _, err := cli(t, "gateway", "cloudserviceconfig", "register", token, "--gateway", gw); err == nil {
		t.Fatalf("register with a used-up token succeeded")
	}
	rs, err = doctorCheck(t, s)
	wantFailed(t, err)
	wantExact(t, rs, "gateway.connector", doctor.StatusFail,
		failed+"Token "+tokenID+" of the exchange of region AMERICAS is already used up: it was generated for 1 device, which has registered with it.",
		newToken)

	// A revoked token.
	revoked := strings.TrimSpace(mustCLI(t, "exchange", "token", "create", "--devices", "1", "--exchange", americas))
	if err := exchangeclient.NewAdmin(americas, nil, "admin", testPassword).TokenRevoke(context.Background(), newestToken(t, americas).ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, "gateway", "cloudserviceconfig", "register", revoked, "--gateway", gw); err == nil {
		t.Fatalf("register with a revoked token succeeded")
	}
	rs, err = doctorCheck(t, s)
	wantFailed(t, err)
	revokedTok := newestToken(t, americas)
	wantExact(t, rs, "gateway.connector", doctor.StatusFail,
		failed+"Token "+revokedTok.ID+" of the exchange of region AMERICAS was revoked at "+stamp(revokedTok.RevokedAt)+" by admin.", newToken)

	// A mistyped token: one character changed.
	good := strings.TrimSpace(mustCLI(t, "exchange", "token", "create", "--devices", "1", "--exchange", americas))
	c := "1"
	if good[5] == '1' {
		c = "2"
	}
	if _, err := cli(t, "gateway", "cloudserviceconfig", "register", good[:5]+c+good[6:], "--gateway", gw); err == nil {
		t.Fatalf("register with a mistyped token succeeded")
	}
	rs, err = doctorCheck(t, s)
	wantFailed(t, err)
	wantExact(t, rs, "gateway.connector", doctor.StatusFail,
		failed+"The token entered is unknown to the exchange of region AMERICAS and to that of EUROPE: it was mistyped.",
		"Copy the token exactly as the exchange showed it when it was created (32 hexadecimal characters); it is shown only once, so if it is lost, make another. "+newToken)

	// Wrong region: the gateway registers in EUROPE, the console uses AMERICAS.
	mustCLI(t, "gateway", "cloudserviceconfig", "settrs", "--server", "EUROPE", "--gateway", gw)
	mustCLI(t, "gateway", "commit", "-m", "europe", "--gateway", gw)
	waitCloud(t, gw, "Threat Response is enabled on EUROPE")
	mustCLI(t, "gateway", "cloudserviceconfig", "register", europeToken, "--gateway", gw)
	rs, err = doctorUntil(t, s, "exchange.EUROPE.device", doctor.StatusOK)
	wantFailed(t, err)
	wantCheck(t, rs, "console.region", doctor.StatusFail, "registered in EUROPE, but the console uses the exchange of AMERICAS", "settrs --server AMERICAS")

	// A stopped role: nothing listens on the console's address any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	rs, err = doctorCheck(t, s, "--console", down)
	wantFailed(t, err)
	wantCheck(t, rs, "console.reachable", doctor.StatusFail, "Nothing answers at "+down, "Start it")
	wantCheck(t, rs, "console.modules", doctor.StatusSkip, "cannot be asked", "")
}

// TestDoctorOldVersion: an exchange whose minimum is above the gateway's
// version refuses it, and doctor names both.
func TestDoctorOldVersion(t *testing.T) {
	s := startServe(t, "--min-version", "99.0")
	mustCLI(t, "gateway", "cloudserviceconfig", "enable", "--server", "AMERICAS", "--gateway", s.gateway)
	mustCLI(t, "gateway", "commit", "-m", "enable cloud service", "--gateway", s.gateway)
	waitCloud(t, s.gateway, "awaits a registration token")
	token := strings.TrimSpace(mustCLI(t, "exchange", "token", "create", "--devices", "1", "--exchange", s.americas))
	if _, err := cli(t, "gateway", "cloudserviceconfig", "register", token, "--gateway", s.gateway); err == nil {
		t.Fatalf("register of version %s succeeded with a minimum of 99.0", version)
	}
	rs, err := doctorCheck(t, s)
	wantFailed(t, err)
	wantExact(t, rs, "gateway.connector", doctor.StatusFail,
		"The exchange of region AMERICAS refused the gateway's version "+version+": it accepts version 99.0 or later.",
		"Upgrade the gateway to version 99.0 or later, then register again with a token (sightline gateway cloudserviceconfig register TOKEN); "+
			"or, if that minimum is wrong, restart the exchange of region AMERICAS with a lower --min-version.")
}
