package tlsconf

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// Listener returns a listener whose connections speak TLS with f's
// configuration, over connections (tls.Conn.NetConn) that read through a
// buffer and can batch writes (Batcher).
//
// crypto/tls writes each record (at most 16 KiB) with its own write(2)
// and reads record by record: a 64 KiB message cost a dozen system calls,
// which on this kind of machine took more CPU than the encryption.
func (f *Files) Listener(ln net.Listener) net.Listener {
	return tls.NewListener(batchingListener{ln}, f.Config())
}

// Batcher is what a connection under a TLS listener of this package can
// do: once Batch is called (after the TLS handshake, whose own writes must
// not wait), writes are held until Flush.
type Batcher interface {
	Batch()
	Flush() error
}

type batchingListener struct{ net.Listener }

func (l batchingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &batchedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// batchedConn reads through a buffer and, in batching mode, holds writes
// until Flush. crypto/tls may write from the goroutine that reads (an
// alert, a key update) as well as from the one that writes: mu guards w.
type batchedConn struct {
	net.Conn
	r *bufio.Reader // used by the reading goroutine only

	mu sync.Mutex
	w  *bufio.Writer // nil until Batch
}

func (c *batchedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *batchedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return c.Conn.Write(p)
	}
	return c.w.Write(p)
}

// Batch starts holding writes until Flush.
func (c *batchedConn) Batch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		c.w = bufio.NewWriterSize(c.Conn, 256<<10)
	}
}

// Flush writes what is held.
func (c *batchedConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return nil
	}
	return c.w.Flush()
}

// SetWriteDeadline writes what is held, under the deadline set before,
// then sets the new one: crypto/tls sends close_notify and then sets a
// deadline of now, which must not strand the alert (or data before it).
func (c *batchedConn) SetWriteDeadline(t time.Time) error {
	_ = c.Flush()
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline is SetWriteDeadline's flush, then both deadlines.
func (c *batchedConn) SetDeadline(t time.Time) error {
	_ = c.Flush()
	return c.Conn.SetDeadline(t)
}

// Close writes what is held, then closes.
func (c *batchedConn) Close() error {
	_ = c.Flush()
	return c.Conn.Close()
}
