package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/exchange/exchangeclient"
	"github.com/sightline/sightline/internal/exchange/registry"
)

// startExchangeRole runs `sightline exchange` (AMERICAS) on a loopback
// port and returns its URL.
func startExchangeRole(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"exchange", "--data", t.TempDir(), "--exchange-americas-addr", "127.0.0.1:0",
			"--log-level", "error"}, testEnv, &out, &out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("exchange: %v", err)
		}
	})
	re := regexp.MustCompile(`Sightline exchange \S+ AMERICAS: (http://\S+?)/\n`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("exchange stopped: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("exchange printed no address in 20s:\n%s", out.String())
		}
	}
}

// auditLine is one row of `sightline exchange audit`: tabwriter pads
// each column but the last with at least two spaces.
var auditLine = regexp.MustCompile(`^(\S+)  +(\S.*?)  +(\S+)  +(\S+)  +(\S+)  +(\S.*)$`)

// auditTable reads the rows of `sightline exchange audit` after its header,
// as "ACTOR ACTION OUTCOME REASON" and their texts, and the line after the
// table, if any. Each row's time must be an RFC 3339 time within the test.
func auditTable(t *testing.T, out string, start time.Time) (rows, texts []string, after string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !regexp.MustCompile(`^TIME  +ACTOR  +ACTION  +OUTCOME  +REASON  +TEXT$`).MatchString(lines[0]) {
		t.Fatalf("exchange audit header = %q, want TIME ACTOR ACTION OUTCOME REASON TEXT", lines[0])
	}
	for _, l := range lines[1:] {
		m := auditLine.FindStringSubmatch(l)
		if m == nil {
			after = l
			continue
		}
		if at, err := time.Parse(time.RFC3339, m[1]); err != nil || at.Before(start.Truncate(time.Second)) || at.After(time.Now()) {
			t.Errorf("exchange audit time %q: want an RFC 3339 time of this test", m[1])
		}
		rows = append(rows, strings.Join(m[2:6], " "))
		texts = append(texts, m[6])
	}
	return rows, texts, after
}

// TestExchangeAudit reads a running exchange's audit log with
// `sightline exchange audit` and its filters.
func TestExchangeAudit(t *testing.T) {
	start := time.Now()
	url := startExchangeRole(t)
	ctx := context.Background()
	token := strings.TrimSpace(mustCLI(t, "exchange", "token", "create", "--devices", "1", "--exchange", url))
	anon := exchangeclient.New(url, nil)
	reg := func(token, host string) error {
		_, err := anon.Register(ctx, exchangeclient.Registration{Token: token, Hostname: host, Type: "ESA", Version: "15.0.1-104",
			Serial: "4C4C-1234", ConnectorVersion: "1.2.0"})
		return err
	}
	unknown := strings.Repeat("0", 32)
	if reg(unknown, "gw-unknown") == nil || reg("not-a-token", "gw-typo") == nil {
		t.Fatal("a bad token registered")
	}
	if err := reg(token, "gw1"); err != nil {
		t.Fatalf("Register: %v", err)
	}

	all := []string{
		"device gw1 device.register success -",
		"device gw-typo device.register failure token_malformed",
		"device gw-unknown device.register failure token_unknown",
		"admin token.create success -",
	}
	fingerprint := registry.Hash(unknown)[:16]
	rows, texts, after := auditTable(t, mustCLI(t, "exchange", "audit", "--exchange", url), start)
	if diff := cmp.Diff(all, rows); diff != "" || after != "" {
		t.Fatalf("exchange audit rows mismatch (-want +got):\n%s\nthen %q", diff, after)
	}
	for i, prefix := range []string{"registered ESA gw1 version 15.0.1-104", "malformed token (not 32 hexadecimal characters)",
		"unknown token " + fingerprint + " (not issued by this exchange, region AMERICAS", "token for 1 device, expires "} {
		if !strings.HasPrefix(texts[i], prefix) {
			t.Errorf("exchange audit text of %q = %q, want it to start %q", rows[i], texts[i], prefix)
		}
	}

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"outcome", []string{"--outcome", "failure"}, all[1:3]},
		{"action", []string{"--action", "token.create"}, all[3:]},
		{"device", []string{"--device", "GW1"}, all[:1]},
		{"token fingerprint", []string{"--token", fingerprint}, all[2:3]},
		{"since a duration ago", []string{"--since", "1h"}, all},
		{"since a date", []string{"--since", "2000-01-01"}, all},
		{"since a future time", []string{"--since", "2100-01-01T00:00"}, nil},
		{"several filters", []string{"--action", "device.register", "--outcome", "success", "--since", "10m"}, all[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, _, after := auditTable(t, mustCLI(t, append([]string{"exchange", "audit", "--exchange", url}, tt.args...)...), start)
			if diff := cmp.Diff(tt.want, rows); diff != "" || after != "" {
				t.Errorf("exchange audit %s mismatch (-want +got):\n%s\nthen %q", strings.Join(tt.args, " "), diff, after)
			}
		})
	}

	// Pages: the table ends with how to read the next one.
	var walked []string
	args := []string{"exchange", "audit", "--exchange", url, "--limit", "3"}
	for range 3 {
		rows, _, after := auditTable(t, mustCLI(t, args...), start)
		walked = append(walked, rows...)
		cursor, ok := strings.CutPrefix(after, "Older entries: add --before ")
		if !ok {
			if after != "" {
				t.Errorf("exchange audit ended with %q, want nothing or the next page's cursor", after)
			}
			break
		}
		args = []string{"exchange", "audit", "--exchange", url, "--limit", "3", "--before", cursor}
	}
	if diff := cmp.Diff(all, walked); diff != "" {
		t.Errorf("exchange audit by pages of 3 mismatch (-want +got):\n%s", diff)
	}

	// --json prints the API's answer, with each entry's fields.
	var a exchangeclient.Audit
	if err := json.Unmarshal([]byte(mustCLI(t, "exchange", "audit", "--exchange", url, "--outcome", "failure", "--json")), &a); err != nil {
		t.Fatalf("exchange audit --json: %v", err)
	}
	var got []string
	for _, e := range a.Entries {
		got = append(got, e.DeviceName+" "+e.Reason+" "+e.TokenFingerprint)
	}
	if diff := cmp.Diff([]string{"gw-typo token_malformed ", "gw-unknown token_unknown " + fingerprint}, got); diff != "" || a.Region != "AMERICAS" {
		t.Errorf("exchange audit --json = region %q, mismatch (-want +got):\n%s", a.Region, diff)
	}

	bad := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--outcome", "maybe"}, `outcome "maybe": want success or failure`, 1},
		{[]string{"--action", "register"}, `action "register": want one of`, 1},
		{[]string{"--token", token}, "never the token itself", 1},
		{[]string{"--limit", "0"}, "--limit 0: want a number from 1 to 1000", 2},
		{[]string{"--since", "yesterday"}, `--since: "yesterday": want 2006-01-02`, 2},
		{[]string{"--since", "-1h"}, "give a positive duration", 2},
		{[]string{"gw1"}, `unexpected argument "gw1"`, 2},
	}
	for _, tt := range bad {
		_, err := cli(t, append([]string{"exchange", "audit", "--exchange", url}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != tt.code {
			t.Errorf("exchange audit %s = %v (exit %d), want an error containing %q, exit %d",
				strings.Join(tt.args, " "), err, exitCode(err), tt.want, tt.code)
		}
	}
}
