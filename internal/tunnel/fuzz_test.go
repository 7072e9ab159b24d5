package tunnel

import (
	"context"
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// frame encodes a yamux frame header (version 0) followed by body.
func frame(typ uint8, flags uint16, stream, length uint32, body string) []byte {
	b := make([]byte, yamuxHeaderSize, yamuxHeaderSize+len(body))
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], stream)
	binary.BigEndian.PutUint32(b[8:], length)
	return append(b, body...)
}

// FuzzHubTraffic sends arbitrary bytes as an authenticated device's tunnel
// traffic. The hub must not crash, must notice when that device hangs up, and
// must keep serving the other devices.
func FuzzHubTraffic(f *testing.F) {
	const req = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
	f.Add([]byte{})
	f.Add([]byte("not yamux at all"))
	f.Add(frame(2, 1, 0, 7, ""))                                                   // ping
	f.Add(append(frame(1, 1, 1, 0, ""), frame(0, 0, 1, uint32(len(req)), req)...)) // a stream opened by the device
	f.Add(frame(0, 0, 9, 1<<31, "abc"))                                            // data for an unknown stream, huge length
	f.Add(frame(1, 1, 2, 0, ""))                                                   // a stream ID of the hub's parity
	f.Add(frame(3, 0, 0, 1, ""))                                                   // go away, protocol error
	f.Add(frame(0, 8, 1, 3, "xyz"))                                                // RST on a stream never opened
	f.Add(append(frame(1, 1, 1, 0, ""), frame(1, 1, 1, 0, "")...))                 // duplicate SYN

	x := startExchange(f, "127.0.0.1:0", nil)
	startDevice(f, x.url(), "cred-org-a", echoHandler("dev-a", nil, nil), nil)
	x.waitEvent(f, "connect dev-a")

	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, x.url(), &websocket.DialOptions{
			HTTPHeader:   http.Header{"Authorization": {"Bearer cred-org-b-2"}},
			Subprotocols: []string{Subprotocol},
		})
		if err != nil {
			t.Fatalf("dial as dev-b2: %v", err)
		}
		x.waitEvent(t, "connect dev-b2")
		if len(data) > 0 {
			ws.Write(ctx, websocket.MessageBinary, data) // the hub may already have dropped us
		}
		ws.CloseNow()
		x.waitEvent(t, "disconnect dev-b2")
		// dev-a must still be served. On a loaded machine its 1 s heartbeat
		// may lapse and it redials by itself, so allow for that gap.
		deadline := time.Now().Add(waitLimit)
		for {
			got, err := get(t, x.hub, "dev-a", "/after-fuzz")
			if err == nil && got.Device == "dev-a" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("dev-a after fuzzed traffic from dev-b2: %+v, %v", got, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
