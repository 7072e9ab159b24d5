package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlagsPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sightline.conf")
	os.WriteFile(file, []byte("# comment\nsmtp-addr = 127.0.0.1:3000\ngateway-addr = \"127.0.0.1:3001\"\nhostname = from-file\n"), 0o600)
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantSMTP string
		wantHTTP string
		wantHost string
	}{
		{"defaults", nil, nil, "127.0.0.1:2525", "127.0.0.1:6080", ""},
		{"file", []string{"--config", file}, nil, "127.0.0.1:3000", "127.0.0.1:3001", "from-file"},
		{"env over file", []string{"--config", file}, map[string]string{"SIGHTLINE_SMTP_ADDR": "127.0.0.1:4000"}, "127.0.0.1:4000", "127.0.0.1:3001", "from-file"},
		{"flag over env", []string{"--smtp-addr", "127.0.0.1:5000", "--config", file}, map[string]string{"SIGHTLINE_SMTP_ADDR": "127.0.0.1:4000"}, "127.0.0.1:5000", "127.0.0.1:3001", "from-file"},
		{"config from env", nil, map[string]string{"SIGHTLINE_CONFIG": file}, "127.0.0.1:3000", "127.0.0.1:3001", "from-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("test", &strings.Builder{})
			var g gatewayFlags
			g.register(fs)
			if err := parseFlags(fs, tt.args, func(k string) string { return tt.env[k] }); err != nil {
				t.Fatal(err)
			}
			if g.smtpAddr != tt.wantSMTP || g.httpAddr != tt.wantHTTP || g.hostname != tt.wantHost {
				t.Errorf("got smtp %q http %q host %q, want %q %q %q", g.smtpAddr, g.httpAddr, g.hostname, tt.wantSMTP, tt.wantHTTP, tt.wantHost)
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("smtp-adr = x\n"), 0o600)
	noEq := filepath.Join(dir, "noeq.conf")
	os.WriteFile(noEq, []byte("smtp-addr\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown setting", []string{"--config", bad}, `unknown setting "smtp-adr"`},
		{"no equals", []string{"--config", noEq}, "want name = value"},
		{"missing file", []string{"--config", filepath.Join(dir, "none")}, "no such file"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("test", &strings.Builder{})
			var g gatewayFlags
			g.register(fs)
			err := parseFlags(fs, tt.args, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseFlags(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestUsage checks that the list of commands names each one, its summary
// beginning in one column.
func TestUsage(t *testing.T) {
	var b strings.Builder
	usage(&b)
	col := -1
	for _, c := range commands() {
		i := strings.Index(b.String(), "\n  "+c.name+" ")
		if i < 0 {
			t.Fatalf("usage does not list %q:\n%s", c.name, b.String())
		}
		line := b.String()[i+1:]
		line = line[:strings.IndexByte(line, '\n')]
		at := strings.Index(line, c.summary)
		if at < 0 || (col >= 0 && at != col) || strings.TrimSpace(line[:at]) != c.name {
			t.Errorf("usage line %q: want %q then its summary at column %d", line, c.name, col)
		}
		col = at
	}
}

// TestRoleUsage checks that -h of each role's command also lists how to
// manage a running role.
func TestRoleUsage(t *testing.T) {
	for cmd, want := range map[string][]string{
		"gateway":  {"sightline gateway commit", "sightline gateway clear", "sightline gateway cloudserviceconfig enable|"},
		"exchange": {"sightline exchange token create", "sightline exchange devices", "sightline exchange cloud-services", "sightline exchange audit"},
		"console":  {"sightline console api-client create", "sightline console module add esa"},
	} {
		var out, errOut strings.Builder
		run(context.Background(), []string{cmd, "-h"}, testEnv, &out, &errOut)
		for _, w := range append(want, "Usage: sightline "+cmd+" [flags]", "-data directory") {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("sightline %s -h does not say %q:\n%s", cmd, w, errOut.String())
			}
		}
	}
}

func TestExchangeURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"AMERICAS", "http://127.0.0.1:8090"},
		{"europe", "http://127.0.0.1:8091"},
		{"https://exchange.example/", "https://exchange.example"},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"EUROPA", ""},
		{"ftp://x", ""},
		{"http://", ""},
		{"127.0.0.1:8090", ""},
		{"", ""},
	} {
		got, err := exchangeURL(c.in)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("exchangeURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "want a region (AMERICAS, EUROPE) or a URL") {
			t.Errorf("exchangeURL(%q) error %q does not say what it wants", c.in, err)
		}
	}
}
