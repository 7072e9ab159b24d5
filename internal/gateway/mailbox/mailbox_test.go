package mailbox_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailbox"
	"github.com/sightline/sightline/internal/gateway/mailflow"
)

func TestDeliverListRead(t *testing.T) {
	ctx := context.Background()
	mb := &mailbox.Mailbox{Dir: t.TempDir()}
	env := &mailflow.Envelope{MID: 9, MailFrom: "a@sender.test"}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			reply, err := mb.Deliver(ctx, "Bob@Corp.test", env, []byte("Subject: hi\r\n\r\nbody\r\n"))
			if err != nil || reply != mailbox.Reply {
				t.Errorf("Deliver = %q, %v, want %q", reply, err, mailbox.Reply)
			}
		})
	}
	wg.Wait()
	ms, err := mb.List(ctx, "bob@corp.test")
	if err != nil || len(ms) != 5 {
		t.Fatalf("List = %d messages, %v, want 5", len(ms), err)
	}
	data, err := mb.Read(ctx, "bob@corp.test", ms[0].Name)
	want := "Return-Path: <a@sender.test>\r\nDelivered-To: Bob@Corp.test\r\nSubject: hi\r\n\r\nbody\r\n"
	if err != nil || string(data) != want {
		t.Errorf("Read = %q, %v, want %q", data, err, want)
	}
	tmp, _ := os.ReadDir(filepath.Join(mb.Dir, "bob@corp.test", "tmp"))
	if len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files after delivery, want 0", len(tmp))
	}
	if ms, err := mb.List(ctx, "nobody@corp.test"); err != nil || len(ms) != 0 {
		t.Errorf("List(empty mailbox) = %v, %v, want none", ms, err)
	}
	if _, err := mb.Read(ctx, "bob@corp.test", "../../etc/passwd"); sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("Read(path traversal) = %v, want Invalid", err)
	}
	if _, err := mb.Read(ctx, "bob@corp.test", "nope"); sightline.ErrorKind(err) != sightline.NotFound {
		t.Errorf("Read(missing) = %v, want NotFound", err)
	}
}

// TestDeliverRemadeMaildir checks that a maildir removed after a delivery,
// or a mailbox root that does not exist yet, is made again.
func TestDeliverRemadeMaildir(t *testing.T) {
	ctx := context.Background()
	mb := &mailbox.Mailbox{Dir: filepath.Join(t.TempDir(), "not", "yet")}
	deliver := func() {
		t.Helper()
		if _, err := mb.Deliver(ctx, "bob@corp.test", nil, []byte("Subject: hi\r\n\r\nbody\r\n")); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	deliver()
	if err := os.RemoveAll(filepath.Join(mb.Dir, "bob@corp.test")); err != nil {
		t.Fatal(err)
	}
	deliver()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if fi, err := os.Stat(filepath.Join(mb.Dir, "bob@corp.test", sub)); err != nil || !fi.IsDir() {
			t.Errorf("%s/ after the maildir was removed: %v", sub, err)
		}
	}
	if ms, err := mb.List(ctx, "bob@corp.test"); err != nil || len(ms) != 1 {
		t.Errorf("List = %d messages, %v, want 1 (the one delivered after removal)", len(ms), err)
	}
}

func TestDirName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Bob@Corp.test", "bob@corp.test", true},
		{"../../etc@x", "%2E%2E%2F.%2E%2Fetc@x", true},
		{"a..b@x", "a.%2Eb@x", true},
		{".hidden@x", "%2Ehidden@x", true},
		{"a/b@x", "a%2Fb@x", true},
		{"", "", false},
		{"a\x00b", "", false},
		{strings.Repeat("a", 300), "", false},
	}
	for _, tt := range tests {
		got, err := mailbox.DirName(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("DirName(%q) = %q, %v, want %q (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzDirName(f *testing.F) {
	for _, s := range []string{"a@b", "..", "../x", ".", "a/b", "A%2F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		name, err := mailbox.DirName(addr)
		if err != nil {
			return
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") {
			t.Fatalf("DirName(%q) = %q, not a safe single path element", addr, name)
		}
		if filepath.Base(name) != name {
			t.Fatalf("DirName(%q) = %q, not a base name", addr, name)
		}
	})
}
