package main

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
)

// producer publishes on its own connection. Its goroutine owns the write
// side: each message is one pre-encoded run of frames (basic.publish,
// content header, body) copied into the bufio.Writer with the body's id and
// timestamp stamped in place. The buffer is flushed when it fills and before
// the producer waits (for a rate token or for confirms), never per message.
// A second goroutine reads confirms, returns and closes.
type producer struct {
	id        uint16
	count     int // producers in the run
	clock     *clock
	c         *client
	frames    []byte // one message: method, header and body frames
	bodyAt    int    // offset of the body's first byte in frames
	bodyLen   int    // bytes of the body that carry the id and timestamp
	limit     uint64 // messages to send; 0 is no limit
	rate      float64
	window    uint64 // max outstanding confirms; 0 is confirms off
	idleLimit time.Duration

	stop atomic.Bool
	kick chan struct{} // the reader settled something

	sent        atomic.Uint64
	settled     atomic.Uint64 // acked + nacked
	confirmed   atomic.Uint64
	nacked      atomic.Uint64
	returned    atomic.Uint64
	blocked     atomic.Bool // connection.blocked in force
	blockedSeen atomic.Bool

	rec        publishRecord // written by the reader goroutine only
	floor      uint64        // lowest unsettled sequence number (reader only)
	readerDone chan struct{}
	readerErr  error
	runDone    chan struct{}
	err        error     // set by run; read after runDone
	lastSend   time.Time // set by run; read after runDone
	closeErr   error     // set by finish
}

func newProducer(id uint16, c *client, o *Options, clk *clock, exchange, key string) *producer {
	p := &producer{
		id:         id,
		count:      o.Producers,
		clock:      clk,
		c:          c,
		limit:      uint64(o.PMessages),
		rate:       o.Rate,
		idleLimit:  time.Duration(o.DrainTimeout * float64(time.Second)),
		kick:       make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		runDone:    make(chan struct{}),
	}
	if o.ConfirmMode() {
		p.window = uint64(o.Confirm)
		p.rec.confirmMode = true
	}
	p.frames, p.bodyAt = encodePublish(exchange, key, o.Mandatory(), o.Persistent(), o.Size, c.frameMax)
	p.bodyLen = min(o.Size, headerSize)
	return p
}

// encodePublish pre-encodes one message on channel 1: basic.publish, the
// content header (delivery-mode 2 when persistent) and the body, split into
// frames of at most frameMax bytes. It returns the frames and the offset of
// the first body byte.
func encodePublish(exchange, key string, mandatory, persistent bool, size, frameMax int) ([]byte, int) {
	var b []byte
	// basic.publish
	args := binary.BigEndian.AppendUint16(nil, 0)
	args = appendShortstr(args, exchange)
	args = appendShortstr(args, key)
	args = append(args, bitsOf(mandatory, false))
	b = append(b, frameMethod, 0, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(args)))
	b = binary.BigEndian.AppendUint32(b, basicPublish)
	b = append(b, args...)
	b = append(b, frameEnd)
	// content header
	props := []byte{0, 0}
	if persistent {
		props = []byte{0x10, 0x00, 2} // delivery-mode present, = 2
	}
	b = append(b, frameHeader, 0, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(12+len(props)))
	b = binary.BigEndian.AppendUint16(b, 60)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = append(b, props...)
	b = append(b, frameEnd)
	// body frames
	bodyAt := -1
	maxChunk := frameMax - 8
	for left := size; left > 0; {
		n := min(left, maxChunk)
		b = append(b, frameBody, 0, 1)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		if bodyAt < 0 {
			bodyAt = len(b)
		}
		b = append(b, make([]byte, n)...)
		b = append(b, frameEnd)
		left -= n
	}
	if bodyAt < 0 {
		bodyAt = len(b)
	}
	return b, bodyAt
}

// run publishes until stopped or the message count is reached, then waits
// for outstanding confirms (giving up after idleLimit without progress).
func (p *producer) run(start int64) {
	defer close(p.runDone)
	w := p.c.w
	stamp := p.frames[p.bodyAt : p.bodyAt+p.bodyLen]
	var interval time.Duration
	if p.rate > 0 {
		interval = time.Duration(float64(time.Second) / p.rate)
	}
	// Send time (clock nanoseconds) of the next message when rate limited.
	// Producers start at evenly spread phases so that many slow producers
	// do not fire together.
	next := start
	if interval > 0 && p.count > 1 {
		next += int64(interval) * int64(p.id) / int64(p.count)
	}
	var seq uint64
	for !p.stop.Load() && (p.limit == 0 || seq < p.limit) {
		if seq > maxSeq {
			p.err = fmt.Errorf("producer %d: sequence numbers exhausted", p.id)
			break
		}
		now := p.clock.nowNano()
		if interval > 0 {
			if d := next - now; d > 0 {
				if p.err = p.flush(); p.err != nil {
					return
				}
				if !p.sleep(time.Duration(d)) {
					break
				}
				now = p.clock.nowNano()
			} else if -d > int64(time.Second) {
				// Fell more than a second behind: drop the missed slots
				// instead of bursting to catch up.
				next = now
			}
			next += int64(interval)
		}
		if p.window > 0 && seq-p.settled.Load() >= p.window {
			if p.err = p.flush(); p.err != nil {
				return
			}
			if !p.waitConfirms(seq-p.window+1, false) {
				break
			}
			now = p.clock.nowNano()
		}
		encodeBody(stamp, p.id, seq, now)
		if _, p.err = w.Write(p.frames); p.err != nil {
			return
		}
		seq++
		p.sent.Store(seq)
	}
	if p.err = p.flush(); p.err != nil {
		return
	}
	p.lastSend = time.Now()
	if p.window > 0 {
		p.waitConfirms(seq, true)
	}
}

// expected is how many of the producer's messages should reach each queue
// it routes to: what was sent less returns, and in confirm mode only what
// was confirmed (a returned message is confirmed too).
func (p *producer) expected() uint64 {
	ret := p.returned.Load()
	n := p.sent.Load()
	if p.window > 0 {
		n = p.confirmed.Load()
	}
	return n - min(n, ret)
}

// finish closes the connection once run has returned; afterwards the reader
// has stopped and p.rec is complete. It waits for connection.close-ok, which
// the broker sends only after reading every message before it: closing the
// socket earlier could reset the connection and discard messages the broker
// has not read yet. abort cuts the wait short; the producer then reports an
// error, because some messages may never have reached the broker.
func (p *producer) finish(abort <-chan struct{}) {
	c := p.c
	a := binary.BigEndian.AppendUint16(nil, 200)
	a = appendShortstr(a, "bye")
	a = append(a, 0, 0, 0, 0)
	c.wmu.Lock()
	if c.writeMethod(0, connectionClose, a) == nil {
		_ = c.w.Flush()
	}
	c.wmu.Unlock()
	select {
	case <-p.readerDone:
	case <-abort:
		p.closeErr = fmt.Errorf("producer %d: broker did not answer connection.close; unread messages may be lost", p.id)
	}
	c.nc.Close()
	<-p.readerDone
}

func (p *producer) flush() error {
	if err := p.c.w.Flush(); err != nil {
		return fmt.Errorf("producer %d: %w", p.id, err)
	}
	return nil
}

// sleep waits for d; false means the producer must stop.
func (p *producer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return !p.stop.Load()
		case <-p.readerDone:
			return false
		case <-p.kick:
			if p.stop.Load() {
				return false
			}
		}
	}
}

// waitConfirms waits until at least n messages are settled. It gives up
// (returns false) when the reader stops, when the producer is told to stop
// (unless final), or, when final, once nothing has been settled for
// idleLimit. While the run goes on a producer waits as long as the broker
// takes: a broker paging a backlog to disk may not confirm for many seconds,
// and giving up there would end the producer's run early.
func (p *producer) waitConfirms(n uint64, final bool) bool {
	var idleC <-chan time.Time
	if final {
		idle := time.NewTimer(p.idleLimit)
		defer idle.Stop()
		idleC = idle.C
	}
	last := p.settled.Load()
	for last < n {
		select {
		case <-p.kick:
			if !final && p.stop.Load() {
				return false
			}
		case <-p.readerDone:
			return false
		case <-idleC:
			if p.settled.Load() == last {
				return false
			}
			idleC = time.After(p.idleLimit)
		}
		last = p.settled.Load()
	}
	return true
}

func (p *producer) notify() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// read handles what the broker sends a publisher: confirms, returns,
// connection.blocked and closes.
func (p *producer) read() {
	defer close(p.readerDone)
	c := p.c
	var returning bool
	var retSize, retGot uint64
	var retHead [headerSize]byte
	for {
		typ, _, payload, err := c.readFrame()
		if err != nil {
			p.readerErr = err
			return
		}
		switch typ {
		case frameMethod:
			if len(payload) < 4 {
				p.readerErr = fmt.Errorf("%w: short method frame", errProtocol)
				return
			}
			id := binary.BigEndian.Uint32(payload)
			args := payload[4:]
			switch id {
			case basicAck, basicNack:
				if len(args) < 9 {
					p.readerErr = fmt.Errorf("%w: short basic.ack", errProtocol)
					return
				}
				p.settle(binary.BigEndian.Uint64(args), args[8]&1 != 0, id == basicNack)
				p.notify()
			case basicReturn:
				returning, retSize, retGot = true, 0, 0
			case connectionBlocked:
				p.blocked.Store(true)
				p.blockedSeen.Store(true)
			case connectionUnblocked:
				p.blocked.Store(false)
			case connectionCloseOk:
				return
			default:
				if err := c.closeError(1, id, args); err != nil {
					p.readerErr = err
					return
				}
			}
		case frameHeader:
			if returning && len(payload) >= 12 {
				retSize = binary.BigEndian.Uint64(payload[4:])
				if retSize == 0 {
					p.noteReturn(retHead[:0])
					returning = false
				}
			}
		case frameBody:
			if !returning {
				continue
			}
			if retGot < headerSize {
				copy(retHead[retGot:], payload)
			}
			retGot += uint64(len(payload))
			if retGot >= retSize {
				p.noteReturn(retHead[:min(retSize, headerSize)])
				returning = false
			}
		}
	}
}

func (p *producer) noteReturn(head []byte) {
	if bi := decodeBody(head); bi.hasID && bi.producer == p.id {
		p.rec.returned.set(bi.seq)
	}
	p.returned.Add(1)
}

// settle records an ack or nack for delivery tag (= sequence number + 1).
func (p *producer) settle(tag uint64, multiple, nack bool) {
	if tag == 0 {
		return
	}
	seq := tag - 1
	var added uint64
	if multiple {
		if nack {
			for i := p.floor; i <= seq; i++ {
				if !p.rec.settled.has(i) {
					p.rec.nacked.set(i)
				}
			}
		}
		added = p.rec.settled.setRange(p.floor, seq+1)
	} else if !p.rec.settled.set(seq) {
		added = 1
		if nack {
			p.rec.nacked.set(seq)
		}
	}
	for p.rec.settled.has(p.floor) {
		p.floor++
	}
	if nack {
		p.nacked.Add(added)
	} else {
		p.confirmed.Add(added)
	}
	p.settled.Add(added)
}
