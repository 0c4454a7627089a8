package tlsconf

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
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
// do: between Batch and Flush its writes are held and then sent with one
// write (the connection's writer wraps each batch so); writes outside a
// batch (the handshake's, crypto/tls's own from the reading goroutine)
// go straight out.
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

// batchedConn reads through a buffer and holds writes between Batch and
// Flush. crypto/tls may write from the goroutine that reads as well as
// from the one that writes: mu guards w and holding.
type batchedConn struct {
	net.Conn
	r *bufio.Reader // used by the reading goroutine only

	mu      sync.Mutex
	w       *bufio.Writer
	holding bool
}

func (c *batchedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *batchedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		return c.Conn.Write(p)
	}
	return c.w.Write(p)
}

// Batch holds writes until Flush.
func (c *batchedConn) Batch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		c.w = bufio.NewWriterSize(c.Conn, 256<<10)
	}
	c.holding = true
}

// Flush writes what is held and ends the batch.
func (c *batchedConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if c.w == nil {
		return nil
	}
	return c.w.Flush()
}
