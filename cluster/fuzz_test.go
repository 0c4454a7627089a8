package cluster

import (
	"bufio"
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// FuzzReadFrame feeds arbitrary bytes to the call frame reader: it must
// return frames or an error, never panic or allocate past its limit.
func FuzzReadFrame(f *testing.F) {
	var good bytes.Buffer
	w := bufio.NewWriter(&good)
	var mu sync.Mutex
	_ = writeFrame(&mu, nil, w, frameRequest, 7, methodHello, []byte("warren@a"))
	f.Add(good.Bytes())
	f.Add([]byte{0, 0, 0, 1, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			_, _, _, payload, err := readFrame(r)
			if err != nil {
				return
			}
			if len(payload) > maxCallFrame {
				t.Fatalf("payload of %d bytes", len(payload))
			}
		}
	})
}

// scriptedConn is a connection whose peer sends a fixed script and reads
// whatever is written.
type scriptedConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *scriptedConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptedConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptedConn) SetDeadline(time.Time) error { return nil }
func (c *scriptedConn) RemoteAddr() net.Addr        { return &net.TCPAddr{} }

// FuzzServerHandshake feeds arbitrary openings to the cluster listener's
// handshake: anything but a proof of the secret is refused.
func FuzzServerHandshake(f *testing.F) {
	f.Add([]byte(magic + "c0123456789abcdef"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &scriptedConn{r: bytes.NewReader(data)}
		if _, err := serverHandshake(c, []byte("secret")); err == nil {
			t.Fatalf("a handshake without the secret passed: %q", data)
		}
	})
}
