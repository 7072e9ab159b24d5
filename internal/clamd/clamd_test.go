package clamd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sightline/sightline"
)

// eicar returns the EICAR anti-virus test string, built in pieces so that
// scanners do not flag this source file.
func eicar() []byte {
	return []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + "EICAR-STANDARD-" + "ANTIVIRUS-TEST-FILE!$H+H*")
}

// fakeClamd speaks enough of clamd's protocol for the client's tests.
type fakeClamd struct {
	limit  int    // StreamMaxLength; 0 means none
	reply  string // when set, the answer to every zINSTREAM
	silent bool   // accept, read, never answer

	mu     sync.Mutex
	data   []byte // the last stream received
	chunks []int  // its chunk sizes
}

func startFake(t *testing.T, network string, f *fakeClamd) *Client {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "clamd.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				f.serve(conn)
			})
		}
	})
	return &Client{Network: network, Address: ln.Addr().String(), Timeout: 5 * time.Second}
}

func (f *fakeClamd) serve(conn net.Conn) {
	br := bufio.NewReader(conn)
	cmd, err := br.ReadString(0)
	if err != nil {
		return
	}
	if f.silent {
		io.Copy(io.Discard, br)
		return
	}
	switch strings.TrimSuffix(cmd, "\x00") {
	case "zPING":
		io.WriteString(conn, "PONG\x00")
	case "zVERSION":
		io.WriteString(conn, "ClamAV 1.4.6/27000/Thu Jan  1 00:00:00 2026\x00")
	case "zINSTREAM":
		var data []byte
		var chunks []int
		for {
			var n uint32
			if err := binary.Read(br, binary.BigEndian, &n); err != nil {
				return
			}
			if n == 0 {
				break
			}
			if f.limit > 0 && len(data)+int(n) > f.limit {
				io.WriteString(conn, "INSTREAM size limit exceeded. ERROR\x00")
				return
			}
			chunk := make([]byte, n)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return
			}
			data = append(data, chunk...)
			chunks = append(chunks, int(n))
		}
		f.mu.Lock()
		f.data, f.chunks = data, chunks
		f.mu.Unlock()
		switch {
		case f.reply != "":
			io.WriteString(conn, f.reply+"\x00")
		case bytes.Contains(data, eicar()):
			io.WriteString(conn, "stream: Eicar-Test-Signature FOUND\x00")
		default:
			io.WriteString(conn, "stream: OK\x00")
		}
	default:
		io.WriteString(conn, "UNKNOWN COMMAND\x00")
	}
}

func TestScan(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			f := &fakeClamd{}
			c := startFake(t, network, f)
			c.ChunkSize = 10
			tests := []struct {
				name       string
				data       []byte
				wantVirus  string
				wantChunks []int
			}{
				{"clean", []byte("hello, world"), "", []int{10, 2}},
				{"empty", nil, "", nil},
				{"exact chunks", bytes.Repeat([]byte("a"), 20), "", []int{10, 10}},
				{"eicar", append([]byte("prefix "), eicar()...), "Eicar-Test-Signature", []int{10, 10, 10, 10, 10, 10, 10, 5}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					virus, err := c.Scan(t.Context(), bytes.NewReader(tt.data))
					if err != nil || virus != tt.wantVirus {
						t.Fatalf("Scan(%q) = %q, %v; want %q, nil", tt.data, virus, err, tt.wantVirus)
					}
					f.mu.Lock()
					defer f.mu.Unlock()
					if !bytes.Equal(f.data, tt.data) {
						t.Errorf("clamd received %q, want %q", f.data, tt.data)
					}
					if diff := cmp.Diff(tt.wantChunks, f.chunks); diff != "" {
						t.Errorf("chunk sizes mismatch (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

func TestScanSizeLimit(t *testing.T) {
	c := startFake(t, "tcp", &fakeClamd{limit: 1000})
	c.ChunkSize = 100
	_, err := c.Scan(t.Context(), bytes.NewReader(make([]byte, 5000)))
	if !errors.Is(err, ErrSizeLimit) {
		t.Fatalf("Scan(5000 bytes, limit 1000) error = %v, want ErrSizeLimit", err)
	}
	if sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("ErrorKind = %v, want %v", sightline.ErrorKind(err), sightline.Invalid)
	}
}

func TestParseScanReply(t *testing.T) {
	tests := []struct {
		reply     string
		wantVirus string
		wantKind  sightline.Kind
	}{
		{"stream: OK", "", ""},
		{"stream: Eicar-Test-Signature FOUND", "Eicar-Test-Signature", ""},
		{"stream: Win.Test.EICAR_HDB-1 FOUND", "Win.Test.EICAR_HDB-1", ""},
		{"stream:  FOUND", "", sightline.Internal},
		{"INSTREAM size limit exceeded. ERROR", "", sightline.Invalid},
		{"stream: Can't allocate memory ERROR", "", sightline.Internal},
		{"UNKNOWN COMMAND", "", sightline.Internal},
		{"", "", sightline.Internal},
	}
	for _, tt := range tests {
		virus, err := parseScanReply(tt.reply)
		if virus != tt.wantVirus || sightline.ErrorKind(err) != tt.wantKind {
			t.Errorf("parseScanReply(%q) = %q, %v; want %q, kind %q", tt.reply, virus, err, tt.wantVirus, tt.wantKind)
		}
	}
}

func TestScanReplies(t *testing.T) {
	// Replies from clamd end to end, with the connection in between.
	tests := []struct {
		reply    string
		wantKind sightline.Kind
		wantText string
	}{
		{"stream: Can't allocate memory ERROR", sightline.Internal, "Can't allocate memory"},
		{"garbage", sightline.Internal, "unexpected reply"},
	}
	for _, tt := range tests {
		c := startFake(t, "tcp", &fakeClamd{reply: tt.reply})
		_, err := c.Scan(t.Context(), strings.NewReader("data"))
		if sightline.ErrorKind(err) != tt.wantKind || !strings.Contains(sightline.ErrorMessage(err), tt.wantText) {
			t.Errorf("Scan with reply %q: err = %v, want kind %v mentioning %q", tt.reply, err, tt.wantKind, tt.wantText)
		}
	}
}

func FuzzParseScanReply(f *testing.F) {
	for _, s := range []string{"stream: OK", "stream: X FOUND", "INSTREAM size limit exceeded. ERROR", " ERROR", "FOUND"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		virus, err := parseScanReply(reply)
		if (virus == "") == (err == nil) && reply != "stream: OK" {
			t.Errorf("parseScanReply(%q) = %q, %v: want a virus or an error", reply, virus, err)
		}
	})
}

func TestPingVersion(t *testing.T) {
	c := startFake(t, "unix", &fakeClamd{})
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	v, err := c.Version(t.Context())
	if err != nil || !strings.HasPrefix(v, "ClamAV 1.4.6/") {
		t.Errorf("Version() = %q, %v; want ClamAV 1.4.6/…", v, err)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sock := filepath.Join(t.TempDir(), "missing.sock")
	for _, c := range []*Client{
		{Network: "tcp", Address: addr, Timeout: time.Second},
		{Network: "unix", Address: sock, Timeout: time.Second},
	} {
		_, scanErr := c.Scan(t.Context(), strings.NewReader("x"))
		for name, err := range map[string]error{"Scan": scanErr, "Ping": c.Ping(t.Context())} {
			if sightline.ErrorKind(err) != sightline.Unavailable || !strings.Contains(sightline.ErrorMessage(err), c.Address) {
				t.Errorf("%s on %s:%s: err = %v, want Unavailable naming the address", name, c.Network, c.Address, err)
			}
		}
	}
}

func TestTimeouts(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		ctxWait time.Duration
	}{
		{"client timeout", 100 * time.Millisecond, time.Minute},
		{"context deadline", time.Minute, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startFake(t, "tcp", &fakeClamd{silent: true})
			c.Timeout = tt.timeout
			ctx, cancel := context.WithTimeout(t.Context(), tt.ctxWait)
			defer cancel()
			_, err := c.Scan(ctx, strings.NewReader("data"))
			if sightline.ErrorKind(err) != sightline.Unavailable {
				t.Errorf("Scan against a silent clamd: err = %v, want Unavailable", err)
			}
			if err := c.Ping(ctx); sightline.ErrorKind(err) != sightline.Unavailable {
				t.Errorf("Ping against a silent clamd: err = %v, want Unavailable", err)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestScanReaderError(t *testing.T) {
	c := startFake(t, "tcp", &fakeClamd{})
	_, err := c.Scan(t.Context(), failingReader{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || sightline.ErrorKind(err) == sightline.Unavailable {
		t.Errorf("Scan(failing reader) error = %v, want the reader's error, not Unavailable", err)
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in, network, address string
		wantErr              bool
	}{
		{"unix:/run/clamav/clamd.ctl", "unix", "/run/clamav/clamd.ctl", false},
		{"tcp:127.0.0.1:3310", "tcp", "127.0.0.1:3310", false},
		{"udp:1.2.3.4:5", "", "", true},
		{"unix:", "", "", true},
		{"/run/clamd.sock", "", "", true},
	}
	for _, tt := range tests {
		network, address, err := ParseAddress(tt.in)
		if network != tt.network || address != tt.address || (err != nil) != tt.wantErr {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, network, address, err, tt.network, tt.address, tt.wantErr)
		}
	}
}

// TestRealClamd runs against the clamd named by SIGHTLINE_TEST_CLAMD, such as
// the one scripts/clamd-test.sh starts; when SIGHTLINE_TEST_CLAMD_MAX names
// its StreamMaxLength (the script's 1M), larger data must be refused.
func TestRealClamd(t *testing.T) {
	const env = "SIGHTLINE_TEST_CLAMD"
	addr := os.Getenv(env)
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; run scripts/clamd-test.sh and export what it prints", env)
		}
		t.Skipf("%s not set (e.g. unix:/tmp/clamd.sock); skipping the real clamd test", env)
	}
	network, address, err := ParseAddress(addr)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	c := &Client{Network: network, Address: address, Timeout: 30 * time.Second, ChunkSize: 16}
	ctx := t.Context()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if v, err := c.Version(ctx); err != nil {
		t.Errorf("Version: %v", err)
	} else {
		t.Logf("clamd version: %s", v)
	}
	if virus, err := c.Scan(ctx, bytes.NewReader(eicar())); err != nil || virus == "" {
		t.Errorf("Scan(EICAR) = %q, %v; want a virus name", virus, err)
	}
	clean := bytes.Repeat([]byte("Just a clean message body.\r\n"), 1000)
	if virus, err := c.Scan(ctx, bytes.NewReader(clean)); err != nil || virus != "" {
		t.Errorf("Scan(clean) = %q, %v; want \"\", nil", virus, err)
	}
	// scripts/clamd-test.sh sets StreamMaxLength 1M.
	if max := os.Getenv(env + "_MAX"); max != "" {
		c.ChunkSize = 64 << 10
		big := bytes.Repeat([]byte("x"), 4<<20)
		if _, err := c.Scan(ctx, bytes.NewReader(big)); !errors.Is(err, ErrSizeLimit) {
			t.Errorf("Scan(4 MiB) with StreamMaxLength %s: err = %v, want ErrSizeLimit", max, err)
		}
	}
}
