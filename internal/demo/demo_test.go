package demo

import (
	"net/http"
	"testing"

	"github.com/sightline/sightline"
)

func TestAnswerMessage(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
		kind   sightline.Kind
	}{
		{"gateway envelope", 409, `{"error":{"message":"There is no data to commit.","code":"409"}}`, "There is no data to commit.", sightline.Conflict},
		{"console string", 401, `{"error":"Invalid username or passphrase."}`, "Invalid username or passphrase.", sightline.Unauthorized},
		{"not JSON", 503, `<html>busy</html>`, "Service Unavailable", sightline.Unavailable},
		{"empty error", 400, `{"error":""}`, "Bad Request", sightline.Invalid},
		{"unmapped status", 502, ``, "Bad Gateway", sightline.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := answerMessage(tt.status, []byte(tt.body)); got != tt.want {
				t.Errorf("answerMessage(%d, %q) = %q, want %q", tt.status, tt.body, got, tt.want)
			}
			if got := statusKind(tt.status); got != tt.kind {
				t.Errorf("statusKind(%d) = %v, want %v", tt.status, got, tt.kind)
			}
		})
	}
	if got := statusKind(http.StatusForbidden); got != sightline.Forbidden {
		t.Errorf("statusKind(403) = %v, want Forbidden", got)
	}
}

func TestAdminPasswordKept(t *testing.T) {
	dir := t.TempDir()
	n := 0
	gen := func() string { n++; return "generated-once" }
	first, err := AdminPassword(dir, gen)
	if err != nil {
		t.Fatal(err)
	}
	second, err := AdminPassword(dir, gen)
	if err != nil {
		t.Fatal(err)
	}
	if first != "generated-once" || second != first || n != 1 {
		t.Errorf("AdminPassword twice = %q, %q after %d generations, want the same password generated once", first, second, n)
	}
}
