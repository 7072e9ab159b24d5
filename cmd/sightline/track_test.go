package main

import (
	"fmt"
	"testing"
)

// TestTrackNamesTheFlag checks that a value the gateway refuses is named
// by the flag that gave it, beside the API's own words.
func TestTrackNamesTheFlag(t *testing.T) {
	s := startServe(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sender-ip", "999.1.1.1"}, "--sender-ip 999.1.1.1: Invalid value for senderIp."},
		{[]string{"--limit", "5000"}, "--limit 5000: Invalid value for limit."},
		{[]string{"--offset", "-1"}, "--offset -1: Invalid value for offset."},
		{[]string{"--direction", "sideways"}, "--direction sideways: Invalid value for messageDirection."},
		{[]string{"--sha256", "xyz"}, "--sha256 xyz: Invalid value for fileSha256."},
		{[]string{"--status", "nonsense"}, "--status nonsense: Invalid value for deliveryStatus."},
	} {
		_, err := cli(t, append([]string{"track", "--gateway", s.gateway}, c.args...)...)
		if err == nil || err.Error() != c.want {
			t.Errorf("track %v = %v, want %q", c.args, err, c.want)
		}
	}
	if out := mustCLI(t, "track", "--gateway", s.gateway, "--subject-contains", "nothing like it"); out != "TIME  MID  SENDER  RECIPIENT  SUBJECT  LAST STATE\n0 of 0 messages\n" {
		t.Errorf("track with no match printed %q", out)
	}
}

// TestRoleURLRefused checks that a role's URL without a scheme or host is
// refused before anything is sent, naming what is wanted.
func TestRoleURLRefused(t *testing.T) {
	for _, args := range [][]string{
		{"track", "--gateway", "127.0.0.1:6080"},
		{"gateway", "commit", "-m", "x", "--gateway", "localhost"},
		{"investigate", `ip:"192.0.2.1"`, "--console", "console.example"},
	} {
		_, err := cli(t, args...)
		want := fmt.Sprintf("%q is not the URL of a role: want http://host:port or https://host", args[len(args)-1])
		if err == nil || err.Error() != want {
			t.Errorf("sightline %v = %v, want %q", args, err, want)
		}
	}
}
