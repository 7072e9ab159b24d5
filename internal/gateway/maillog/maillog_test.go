package maillog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

func TestWriteEventFormat(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{Version: "1.0.0", Serial: "ABC-DEF"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 10, 8, 0, 12, 0, time.UTC)
	w.WriteEvent(tracking.Event{Time: at, Log: "Start MID 6 ICID 5"})
	w.WriteEvent(tracking.Event{Time: at, Summary: "tracking only"})
	w.WriteEvent(tracking.Event{Time: at, Level: tracking.Warning, Log: "MID 6 Subject 'a\r\nInfo: forged'"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mail.current"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("mail.current has %d lines, want 5 (3 header lines + 2 events):\n%s", len(lines), b)
	}
	for i, want := range []string{"Info: Begin Logfile", "Info: Version: 1.0.0 SN: ABC-DEF", "Info: Time offset from UTC: "} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], want)
		}
	}
	if want := "Sat Jan 10 08:00:12 2026 Info: Start MID 6 ICID 5"; lines[3] != want {
		t.Errorf("line 3 = %q, want %q", lines[3], want)
	}
	if want := "Sat Jan 10 08:00:12 2026 Warning: MID 6 Subject 'a  Info: forged'"; lines[4] != want {
		t.Errorf("line 4 = %q, want %q", lines[4], want)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{MaxSize: 300, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	w.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	for i := 0; i < 40; i++ {
		w.WriteEvent(tracking.Event{Log: "MID 1 queued for delivery"})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rolled, _ := filepath.Glob(filepath.Join(dir, "mail.@*.s"))
	if len(rolled) != 2 {
		t.Errorf("rolled files = %v, want exactly Keep=2", rolled)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "mail.current"))
	if !strings.Contains(string(b), "Begin Logfile") {
		t.Errorf("new mail.current does not start with its header:\n%s", b)
	}
}

func TestLinesReachTheFileWithoutClose(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteEvent(tracking.Event{Log: "MID 9 queued for delivery"})
	deadline := time.Now().Add(10 * FlushDelay)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "mail.current"))
		if strings.Contains(string(b), "MID 9 queued for delivery") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("line not in mail.current %v after WriteEvent:\n%s", 10*FlushDelay, b)
		}
		time.Sleep(FlushDelay / 4)
	}
}
