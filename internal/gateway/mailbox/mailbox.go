// Package mailbox is the gateway's built-in local mailbox: the next hop of
// mail that no SMTP route claims, so that a lone `sightline serve` delivers
// somewhere. Each recipient gets a maildir (tmp/, new/, cur/).
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailflow"
)

// Reply is the text Deliver returns for a stored message.
const Reply = "2.0.0 Ok: delivered to local mailbox"

// MaxAddress bounds the length of a recipient address (RFC 5321 §4.5.3.1.3).
const MaxAddress = 256

// Mailbox stores messages under Dir, one maildir per recipient address.
// The zero value is not usable: Dir is required.
type Mailbox struct {
	Dir string

	seq  atomic.Uint64
	made sync.Map // maildirs known to exist: directory → struct{}
	// pid and host are parts of every file name, found once by names.
	names     sync.Once
	pid, host string
}

// Message is one stored message of a mailbox.
type Message struct {
	Name string // the maildir file name, unique within the mailbox
	Size int64
	Time time.Time // when it was delivered
}

// Deliver stores data for rcpt with Return-Path and Delivered-To headers
// prepended, and returns once it is on stable storage: written to tmp/,
// fsynced, renamed into new/ and the directory fsynced. An address that
// cannot name a mailbox is an Invalid error.
func (m *Mailbox) Deliver(ctx context.Context, rcpt string, env *mailflow.Envelope, data []byte) (string, error) {
	dir, err := m.dir(rcpt)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var mid int64
	from := ""
	if env != nil {
		mid, from = env.MID, env.MailFrom
	}
	m.names.Do(func() {
		host, _ := os.Hostname()
		m.pid, m.host = strconv.Itoa(os.Getpid()), strings.NewReplacer("/", "\\057", ":", "\\072").Replace(host)
	})
	name := fmt.Sprintf("%d.M%dP%sQ%d.%s", time.Now().Unix(), mid, m.pid, m.seq.Add(1), m.host)
	tmp := filepath.Join(dir, "tmp", name)
	f, err := m.create(dir, tmp)
	if err != nil {
		return "", fmt.Errorf("mailbox: %w", err)
	}
	msg := make([]byte, 0, len(from)+len(rcpt)+32+len(data))
	msg = fmt.Appendf(msg, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", from, rcpt)
	_, err = f.Write(append(msg, data...))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "new", name))
	}
	if err == nil {
		err = syncDir(filepath.Join(dir, "new"))
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("mailbox: deliver to %s: %w", rcpt, err)
	}
	return Reply, nil
}

// List returns the messages of rcpt's mailbox (new/ and cur/), oldest
// first. A mailbox that never received mail is empty, not an error.
func (m *Mailbox) List(ctx context.Context, rcpt string) ([]Message, error) {
	dir, err := m.dir(rcpt)
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("mailbox: list %s: %w", rcpt, err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			out = append(out, Message{Name: e.Name(), Size: info.Size(), Time: info.ModTime()})
		}
	}
	slices.SortFunc(out, func(a, b Message) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, ctx.Err()
}

// Read returns the stored bytes of message name in rcpt's mailbox.
func (m *Mailbox) Read(ctx context.Context, rcpt, name string) ([]byte, error) {
	dir, err := m.dir(rcpt)
	if err != nil {
		return nil, err
	}
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return nil, sightline.Errorf(sightline.Invalid, "bad message name %q", name)
	}
	for _, sub := range []string{"new", "cur"} {
		data, err := os.ReadFile(filepath.Join(dir, sub, name))
		if err == nil {
			return data, ctx.Err()
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("mailbox: read %s: %w", rcpt, err)
		}
	}
	return nil, sightline.Errorf(sightline.NotFound, "no message %q in the mailbox of %s", name, rcpt)
}

// dir returns the maildir of rcpt.
func (m *Mailbox) dir(rcpt string) (string, error) {
	if m.Dir == "" {
		return "", sightline.Errorf(sightline.Internal, "mailbox: no directory configured")
	}
	name, err := DirName(rcpt)
	if err != nil {
		return "", err
	}
	return filepath.Join(m.Dir, name), nil
}

// DirName maps an address to the name of its mailbox directory: the address
// lowercased, with every byte outside [a-z0-9@+_=-] and a dot that is not
// between two other bytes written as %XX, so that no address can name a
// path outside the mailbox root. Empty, over-long or NUL-containing
// addresses are Invalid.
func DirName(rcpt string) (string, error) {
	if rcpt == "" || len(rcpt) > MaxAddress || strings.ContainsRune(rcpt, 0) {
		return "", sightline.Errorf(sightline.Invalid, "%q is not a mailbox address", rcpt)
	}
	s := strings.ToLower(rcpt)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '@', c == '+', c == '_', c == '=', c == '-':
			b.WriteByte(c)
		case c == '.' && i > 0 && i < len(s)-1 && s[i-1] != '.':
			b.WriteByte(c)
		default:
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
		}
	}
	return b.String(), nil
}

// create creates the file tmp in the maildir dir, making the maildir first
// unless it is known to exist (and again if it was removed since).
func (m *Mailbox) create(dir, tmp string) (*os.File, error) {
	for {
		_, known := m.made.Load(dir)
		if !known {
			if err := makeMaildir(dir); err != nil {
				return nil, err
			}
			m.made.Store(dir, struct{}{})
		}
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if known && errors.Is(err, fs.ErrNotExist) {
			m.made.Delete(dir)
			continue
		}
		return f, err
	}
}

// makeMaildir creates dir and its tmp/, new/ and cur/, those missing.
func makeMaildir(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), filepath.Join(dir, "cur")} {
		err := os.Mkdir(d, 0o700)
		if errors.Is(err, fs.ErrNotExist) && d == dir {
			err = os.MkdirAll(d, 0o700) // the mailbox root is missing too
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
