// Package maillog writes the gateway's mail_logs: the AsyncOS text log that
// findevent, grep and log shippers read (gateway-api.md §9). It is fed by the
// same event stream as Message Tracking, so the two always agree.
//
// The current file is mail.current in the log directory; when it reaches
// MaxSize it is renamed mail.@<UTC time>.s and a new one begins, and only the
// newest Keep rolled files are kept.
package maillog

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// Writer appends events to mail_logs. It is safe for concurrent use.
type Writer struct {
	dir     string
	version string
	serial  string
	maxSize int64
	keep    int
	now     func() time.Time

	mu    sync.Mutex
	timer *time.Timer // pending flush of buffered lines, nil when none
	f     *os.File
	w     *bufio.Writer
	size  int64
	err   error // the first write error, reported by Flush and Close
}

// Options configure a Writer; zero values take the defaults noted.
type Options struct {
	Version string // product version for the file header
	Serial  string // gateway serial number for the file header
	MaxSize int64  // bytes before rotation; 0 means 100 MiB
	Keep    int    // rolled files kept; 0 means 10
}

// Open opens (creating) dir/mail.current for appending.
func Open(dir string, o Options) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open mail_logs: %w", err)
	}
	w := &Writer{dir: dir, version: o.Version, serial: o.Serial, maxSize: o.MaxSize, keep: o.Keep, now: time.Now}
	if w.maxSize <= 0 {
		w.maxSize = 100 << 20
	}
	if w.keep <= 0 {
		w.keep = 10
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) current() string { return filepath.Join(w.dir, "mail.current") }

func (w *Writer) open() error {
	f, err := os.OpenFile(w.current(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open mail_logs: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open mail_logs: %w", err)
	}
	w.f, w.w, w.size = f, bufio.NewWriterSize(f, 64<<10), st.Size()
	if w.size == 0 {
		now := w.now()
		_, off := now.Zone()
		w.line(now, tracking.Info, "Begin Logfile")
		w.line(now, tracking.Info, fmt.Sprintf("Version: %s SN: %s", w.version, w.serial))
		w.line(now, tracking.Info, fmt.Sprintf("Time offset from UTC: %d seconds", off))
	}
	return nil
}

// WriteEvent appends the event's Log text, if it has one.
func (w *Writer) WriteEvent(ev tracking.Event) {
	if ev.Log == "" {
		return
	}
	level := ev.Level
	if level == "" {
		level = tracking.Info
	}
	t := ev.Time
	if t.IsZero() {
		t = w.now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	w.line(t, level, ev.Log)
	if w.size >= w.maxSize {
		w.rotate()
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(FlushDelay, w.timedFlush)
	}
}

// FlushDelay is the longest a line stays in memory before it reaches the file.
const FlushDelay = 200 * time.Millisecond

func (w *Writer) timedFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if w.w != nil {
		if err := w.w.Flush(); err != nil && w.err == nil {
			w.err = err
		}
	}
}

// lineBreaks makes one event one line: a CR or LF inside it would forge a
// new entry.
var lineBreaks = strings.NewReplacer("\r", " ", "\n", " ")

// line writes one line; the caller holds mu.
func (w *Writer) line(t time.Time, level tracking.Level, text string) {
	text = lineBreaks.Replace(text)
	n, err := fmt.Fprintf(w.w, "%s %s: %s\n", t.Format("Mon Jan _2 15:04:05 2006"), level, text)
	w.size += int64(n)
	if err != nil && w.err == nil {
		w.err = err
	}
}

func (w *Writer) rotate() {
	w.closeFile()
	rolled := filepath.Join(w.dir, "mail.@"+w.now().UTC().Format("20060102T150405.000")+".s")
	if err := os.Rename(w.current(), rolled); err != nil && w.err == nil {
		w.err = fmt.Errorf("rotate mail_logs: %w", err)
	}
	if err := w.open(); err != nil && w.err == nil {
		w.err = err
	}
	w.prune()
}

func (w *Writer) prune() {
	old, _ := filepath.Glob(filepath.Join(w.dir, "mail.@*.s"))
	sort.Strings(old) // the names sort by time
	for len(old) > w.keep {
		os.Remove(old[0])
		old = old[1:]
	}
}

// Flush writes buffered lines to the file and returns the first write error.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w != nil {
		if err := w.w.Flush(); err != nil && w.err == nil {
			w.err = err
		}
	}
	return w.err
}

func (w *Writer) closeFile() {
	if w.f == nil {
		return
	}
	if err := w.w.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = err
	}
	w.f, w.w = nil, nil
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.closeFile()
	return w.err
}
