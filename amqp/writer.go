package amqp

import (
	"net"
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

// largeBody is the body size from which deliveries reference the body for
// the writer's writev instead of copying it into the buffer.
const largeBody = 16 << 10

// outbound is a connection's pending output. Any goroutine appends encoded
// frames under mu and kicks the writer; only the writer touches the socket.
//
// Small frames are encoded into buf. A large body is not copied: the part of
// buf before it becomes a segment, the body itself (immutable, shared with
// the queues) another, and buf goes on from there; the writer writes the
// segments and the rest of buf with one writev.
type outbound struct {
	mu      sync.Mutex
	buf     []byte
	cut     int               // where in buf the part not yet in segs starts
	segs    net.Buffers       // pieces queued before buf[cut:], in order
	segLen  int               // bytes in segs
	waiters []*queue.Consumer // refused a delivery while the output was full
	// failures are channels to close from the writer (see failLater).
	failures []channelFailure
	wake     chan struct{}
	drained  chan struct{} // one slot: the writer finished a write
}

// pendingLocked is the number of bytes waiting for the writer.
func (o *outbound) pendingLocked() int { return o.segLen + len(o.buf) - o.cut }

// appendBodyLocked queues a body as body frames of at most frameMax bytes,
// by reference when it is large.
func (o *outbound) appendBodyLocked(ch uint16, body []byte, frameMax uint32) {
	if len(body) < largeBody {
		o.buf = wire.AppendBodyFrames(o.buf, ch, body, frameMax)
		return
	}
	chunk := int(frameMax) - wire.FrameOverhead
	for len(body) > 0 {
		n := min(len(body), chunk)
		o.buf = wire.AppendBodyFrameHeader(o.buf, ch, n)
		o.segs = append(o.segs, o.buf[o.cut:len(o.buf):len(o.buf)], body[:n])
		o.segLen += len(o.buf) - o.cut + n
		o.buf = append(o.buf, wire.FrameEnd)
		o.cut = len(o.buf) - 1
		body = body[n:]
	}
}

// kick wakes the writer without blocking.
func (o *outbound) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// channelFailure is a channel exception to raise from the writer.
type channelFailure struct {
	ch  *channel
	err *wire.Error
}

// failLater closes ch with e from the writer goroutine, for callers that
// must not close it themselves: closing a channel may delete queues, which
// may wait on the very goroutine that found the failure (a ledger's).
func (c *conn) failLater(ch *channel, e *wire.Error) {
	c.out.mu.Lock()
	c.out.failures = append(c.out.failures, channelFailure{ch, e})
	c.out.mu.Unlock()
	c.out.kick()
}

// sendMethod queues a method frame on channel ch.
func (c *conn) sendMethod(ch uint16, m wire.Method) {
	c.out.mu.Lock()
	c.appendMethodLocked(ch, m)
	c.out.mu.Unlock()
	c.out.kick()
}

// appendMethodLocked encodes a method frame into the output, under
// c.out.mu; the caller kicks the writer.
func (c *conn) appendMethodLocked(ch uint16, m wire.Method) {
	b, err := wire.AppendMethodFrame(c.out.buf, ch, m)
	if err != nil {
		c.log.Error("encoding a method the server built", "method", m.Key().String(), "err", err)
		return
	}
	c.out.buf = b
}

// writeLoop drains the outbound buffer to the socket, one write per batch of
// whatever accumulated while the previous write ran, until c.done closes
// (after one last drain), and sends heartbeats
// when the connection is otherwise idle. It also checks that the peer is
// still sending: two heartbeat intervals of silence close the connection.
func (c *conn) writeLoop() {
	defer c.wg.Done()
	defer close(c.writerDone)
	var tick <-chan time.Time
	if c.heartbeat > 0 {
		t := time.NewTicker(c.heartbeat / 2)
		defer t.Stop()
		tick = t.C
	}
	var spare []byte
	var spareSegs net.Buffers
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
		o := &c.out
		o.mu.Lock()
		buf, segs, n := o.buf, o.segs, o.pendingLocked()
		if len(buf) > o.cut {
			segs = append(segs, buf[o.cut:])
		}
		o.buf, o.cut, o.segs, o.segLen = spare[:0], 0, spareSegs[:0], 0
		waiters, failures := o.waiters, o.failures
		o.waiters, o.failures = nil, nil
		o.mu.Unlock()
		if n > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout()))
			if c.batch != nil {
				c.batch.Batch()
			}
			var err error
			if len(segs) == 1 {
				_, err = c.nc.Write(segs[0])
			} else {
				w := segs // WriteTo consumes its receiver
				_, err = w.WriteTo(c.nc)
			}
			if err == nil {
				err = c.flush()
			}
			if err != nil {
				c.log.Debug("write failed", "err", err)
				c.nc.Close()
				return
			}
			wrote = true
			c.bytesOut.Add(uint64(n))
		}
		if cap(buf) <= maxSpareBuffer {
			spare = buf
		} else {
			spare = nil
		}
		clear(segs) // drop references to bodies
		spareSegs = segs[:0]
		// The buffer is drained: queues that found it full may deliver
		// again, and a reader waiting for room may read again.
		resumeAll(waiters)
		for _, f := range failures {
			f.ch.fail(f.err)
		}
		select {
		case o.drained <- struct{}{}:
		default:
		}
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

// maxReaderOutput is how much output the reader's own replies (returned
// messages, basic.get-ok, confirms) may leave waiting for a client that does
// not read, before the reader stops reading that client.
const maxReaderOutput = 4 * maxPendingOutput

// awaitOutputRoom blocks the reader while the connection's pending output is
// over maxReaderOutput, until the writer drains it or stops.
func (c *conn) awaitOutputRoom() {
	for {
		c.out.mu.Lock()
		n := c.out.pendingLocked()
		c.out.mu.Unlock()
		if n <= maxReaderOutput {
			return
		}
		c.paused.Store(true)
		select {
		case <-c.out.drained:
		case <-c.writerDone:
			c.paused.Store(false)
			return
		}
		c.paused.Store(false)
	}
}
