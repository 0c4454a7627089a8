package amqp

import (
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// maxSpareBuffer is the largest outbound buffer kept for reuse after a
// flush; bigger ones are dropped so one burst does not pin memory.
const maxSpareBuffer = 1 << 20

// maxPendingOutput is how much encoded output a connection may hold before
// queues stop delivering to its consumers; they resume when the writer has
// drained it. This is what bounds memory for consumers without prefetch.
const maxPendingOutput = 1 << 20

// outbound is a connection's pending output. Any goroutine appends encoded
// frames under mu and kicks the writer; only the writer touches the socket.
type outbound struct {
	mu      sync.Mutex
	buf     []byte
	waiters []*queue.Consumer // refused a delivery while buf was full
	wake    chan struct{}
}

// kick wakes the writer without blocking.
func (o *outbound) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// sendMethod queues a method frame on channel ch.
func (c *conn) sendMethod(ch uint16, m wire.Method) {
	c.out.mu.Lock()
	b, err := wire.AppendMethodFrame(c.out.buf, ch, m)
	if err == nil {
		c.out.buf = b
	}
	c.out.mu.Unlock()
	if err != nil {
		c.log.Error("encoding a method the server built", "method", m.Key().String(), "err", err)
		return
	}
	c.out.kick()
}

// writeLoop drains the outbound buffer to the socket, one write per batch of
// whatever accumulated while the previous write ran, until c.done closes
// (after one last drain), and sends heartbeats
// when the connection is otherwise idle. It also checks that the peer is
// still sending: two heartbeat intervals of silence close the connection.
func (c *conn) writeLoop() {
	defer c.wg.Done()
	var tick <-chan time.Time
	if c.heartbeat > 0 {
		t := time.NewTicker(c.heartbeat / 2)
		defer t.Stop()
		tick = t.C
	}
	var spare []byte
	wrote := false
	silentTicks := 0
	lastReads := c.framesRead.Load()
	for {
		stop := false
		select {
		case <-c.out.wake:
		case <-c.done:
			stop = true
		case <-tick:
			if !wrote {
				c.out.mu.Lock()
				c.out.buf = wire.AppendHeartbeat(c.out.buf)
				c.out.mu.Unlock()
			}
			wrote = false
			if n := c.framesRead.Load(); n != lastReads || c.paused.Load() {
				lastReads, silentTicks = n, 0
			} else if silentTicks++; silentTicks >= 4 {
				c.log.Warn("closing connection: missed heartbeats from client", "timeout", c.heartbeat)
				c.nc.Close()
				return
			}
		}
		c.out.mu.Lock()
		buf := c.out.buf
		c.out.buf = spare[:0]
		waiters := c.out.waiters
		c.out.waiters = nil
		c.out.mu.Unlock()
		if len(buf) > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout()))
			if _, err := c.nc.Write(buf); err != nil {
				c.log.Debug("write failed", "err", err)
				c.nc.Close()
				return
			}
			wrote = true
			c.bytesOut.Add(uint64(len(buf)))
		}
		if cap(buf) <= maxSpareBuffer {
			spare = buf
		} else {
			spare = nil
		}
		// The buffer is drained: queues that found it full may deliver again.
		resumeAll(waiters)
		if stop {
			return
		}
	}
}

// writeTimeout bounds one socket write: a peer that reads nothing for this
// long is dropped.
func (c *conn) writeTimeout() time.Duration {
	if c.heartbeat > 0 {
		return 2 * c.heartbeat
	}
	return time.Minute
}
