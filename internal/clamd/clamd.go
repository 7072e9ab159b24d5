// Package clamd is a client for the ClamAV daemon: it streams a message to
// clamd with zINSTREAM and reports the virus found, if any.
package clamd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/sightline/sightline"
)

// Defaults for the zero values of Client's fields.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultChunkSize = 64 << 10
)

// maxReply bounds a reply read from clamd.
const maxReply = 4 << 10

// ErrSizeLimit is returned by Scan when the stream is larger than clamd's
// StreamMaxLength; the data was not scanned.
var ErrSizeLimit = sightline.Errorf(sightline.Invalid, "clamd: data exceeds the daemon's StreamMaxLength, not scanned")

// Client talks to one clamd. Its zero value is not usable: Network and
// Address are required. A Client is safe for concurrent use; each call opens
// its own connection.
type Client struct {
	// Network is "unix" (Address is a socket path) or "tcp" (Address is
	// "host:port").
	Network, Address string

	// Timeout bounds the dial and each read and write on the connection;
	// clamd's scan of a large stream happens within the final read. Zero
	// means DefaultTimeout. The context of a call can end it sooner.
	Timeout time.Duration

	// ChunkSize is the size of the chunks Scan sends. Zero means
	// DefaultChunkSize.
	ChunkSize int
}

// ParseAddress splits "unix:/path/clamd.sock" or "tcp:host:port" (the form
// of configuration and of SIGHTLINE_TEST_CLAMD) into network and address.
func ParseAddress(s string) (network, address string, err error) {
	network, address, ok := strings.Cut(s, ":")
	if !ok || address == "" || (network != "unix" && network != "tcp") {
		return "", "", sightline.Errorf(sightline.Invalid, "clamd address %q: want unix:/path or tcp:host:port", s)
	}
	return network, address, nil
}

// Scan sends r to clamd and returns the name of the virus found, or "" when
// the data is clean. It reads r to its end (unless clamd stops the stream).
// Errors: kind Unavailable when clamd cannot be reached or does not answer
// in time, ErrSizeLimit when the data is too large for clamd, kind Internal
// for any other error reported by clamd.
func (c *Client) Scan(ctx context.Context, r io.Reader) (virus string, err error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()

	werr := c.stream(conn, r)
	var readErr *readError
	if errors.As(werr, &readErr) {
		return "", werr
	}
	// clamd answers and hangs up when it refuses the stream (size limit), so
	// a failed write still leaves a reply to read.
	reply, err := c.reply(conn)
	if err != nil {
		if werr != nil {
			err = werr
		}
		return "", c.ioError(ctx, "scan", err)
	}
	return parseScanReply(reply)
}

// readError is a failure to read the caller's data, not clamd's fault.
type readError struct{ err error }

func (e *readError) Error() string { return "clamd: read data to scan: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// stream writes the zINSTREAM command, the chunks of r and the end marker.
func (c *Client) stream(conn net.Conn, r io.Reader) error {
	size := c.ChunkSize
	if size <= 0 {
		size = DefaultChunkSize
	}
	buf := make([]byte, 4+size)
	if err := c.write(conn, []byte("zINSTREAM\x00")); err != nil {
		return err
	}
	for {
		n, err := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			if werr := c.write(conn, buf[:4+n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return &readError{err}
		}
	}
	return c.write(conn, []byte{0, 0, 0, 0})
}

// parseScanReply interprets the answer to zINSTREAM.
func parseScanReply(reply string) (string, error) {
	switch {
	case reply == "stream: OK":
		return "", nil
	case strings.HasPrefix(reply, "stream: ") && strings.HasSuffix(reply, " FOUND"):
		virus := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(reply, "stream: "), " FOUND"))
		if virus == "" {
			return "", sightline.Errorf(sightline.Internal, "clamd: malformed reply %q", reply)
		}
		return virus, nil
	case strings.HasPrefix(reply, "INSTREAM size limit exceeded"):
		return "", ErrSizeLimit
	case strings.HasSuffix(reply, " ERROR"):
		return "", sightline.Errorf(sightline.Internal, "clamd: %s", strings.TrimSuffix(reply, " ERROR"))
	default:
		return "", sightline.Errorf(sightline.Internal, "clamd: unexpected reply %q", reply)
	}
}

// Ping checks that clamd answers.
func (c *Client) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return sightline.Errorf(sightline.Internal, "clamd: PING answered %q, want PONG", reply)
	}
	return nil
}

// Version returns clamd's version line, such as
// "ClamAV 1.4.6/27000/Mon Jan 5 09:00:00 2026".
func (c *Client) Version(ctx context.Context) (string, error) {
	reply, err := c.command(ctx, "VERSION")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(reply, "ClamAV ") {
		return "", sightline.Errorf(sightline.Internal, "clamd: unexpected VERSION reply %q", reply)
	}
	return reply, nil
}

func (c *Client) command(ctx context.Context, cmd string) (string, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := c.write(conn, []byte("z"+cmd+"\x00")); err != nil {
		return "", c.ioError(ctx, strings.ToLower(cmd), err)
	}
	reply, err := c.reply(conn)
	if err != nil {
		return "", c.ioError(ctx, strings.ToLower(cmd), err)
	}
	return reply, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// dial connects to clamd; the connection is cut when ctx ends.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	if c.Network != "unix" && c.Network != "tcp" {
		return nil, sightline.Errorf(sightline.Invalid, "clamd: network %q: want unix or tcp", c.Network)
	}
	d := net.Dialer{Timeout: c.timeout()}
	conn, err := d.DialContext(ctx, c.Network, c.Address)
	if err != nil {
		return nil, sightline.Wrap(sightline.Unavailable, err, fmt.Sprintf("clamd at %s:%s unreachable", c.Network, c.Address))
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return &ctxConn{Conn: conn, stop: stop}, nil
}

type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

func (c *Client) write(conn net.Conn, b []byte) error {
	conn.SetWriteDeadline(time.Now().Add(c.timeout()))
	_, err := conn.Write(b)
	return err
}

// reply reads one NUL-terminated reply (or one ended by the connection's
// close), of at most maxReply bytes.
func (c *Client) reply(conn net.Conn) (string, error) {
	conn.SetReadDeadline(time.Now().Add(c.timeout()))
	br := bufio.NewReader(io.LimitReader(conn, maxReply))
	b, err := br.ReadBytes(0)
	if err == io.EOF && len(b) > 0 {
		err = nil // some builds end with a newline and close instead
	}
	if err != nil {
		if err == io.EOF && len(b) == 0 {
			return "", errors.New("connection closed without a reply")
		}
		return "", err
	}
	return string(bytes.TrimSpace(bytes.TrimRight(b, "\x00"))), nil
}

// ioError classifies a failure during a conversation with clamd.
func (c *Client) ioError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return sightline.Wrap(sightline.Unavailable, ctx.Err(), fmt.Sprintf("clamd %s at %s:%s: %v", op, c.Network, c.Address, ctx.Err()))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return sightline.Wrap(sightline.Unavailable, err, fmt.Sprintf("clamd %s at %s:%s timed out", op, c.Network, c.Address))
	}
	return sightline.Wrap(sightline.Unavailable, err, fmt.Sprintf("clamd %s at %s:%s failed", op, c.Network, c.Address))
}
