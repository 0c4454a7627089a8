package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// consumer receives on its own connection, with one goroutine that reads
// deliveries and writes acks. Acks are encoded into the write buffer as
// messages are handled and flushed when the read buffer runs dry, so a burst
// of deliveries costs one write for all its acks.
type consumer struct {
	id        int
	c         *client
	queue     string
	autoAck   bool
	multiAck  uint64
	limit     uint64 // messages to receive; 0 is no limit
	polling   bool
	pollEvery time.Duration

	track *receiveTrack
	lat   atomicHistogram
	clock *clock

	now        int64 // cached clock reading (consumer goroutine only)
	stale      bool  // now must be read again
	sinceClock int   // messages handled since now was read

	tag        string        // guarded by c.wmu
	cancelSent bool          // guarded by c.wmu
	start      chan struct{} // closed when the consumer may start
	startOnce  sync.Once
	stopping   atomic.Bool
	done       chan struct{}
	err        error
	lastRecv   atomic.Int64 // unix nanos of the last delivery
	limitHit   bool
}

func newConsumer(id int, c *client, queue string, o *Options, clk *clock, track *receiveTrack) *consumer {
	return &consumer{
		id:        id,
		c:         c,
		queue:     queue,
		autoAck:   o.AutoAck,
		multiAck:  uint64(o.MultiAckEvery),
		limit:     uint64(o.CMessages),
		polling:   o.Polling,
		pollEvery: time.Duration(o.PollingInterval) * time.Millisecond,
		track:     track,
		clock:     clk,
		start:     make(chan struct{}),
		done:      make(chan struct{}),
		stale:     true,
	}
}

// run waits for the start signal, then consumes until stopped.
func (cs *consumer) run() {
	defer close(cs.done)
	<-cs.start
	if cs.stopping.Load() {
		cs.err = cs.c.close()
		return
	}
	var err error
	if cs.polling {
		err = cs.poll()
	} else {
		err = cs.consume()
	}
	if err != nil {
		cs.err = fmt.Errorf("consumer %d on %q: %w", cs.id, cs.queue, err)
		cs.c.nc.Close()
		return
	}
	cs.err = cs.c.close()
}

// begin lets the consumer start receiving.
func (cs *consumer) begin() { cs.startOnce.Do(func() { close(cs.start) }) }

// stop asks the consumer to finish: basic.cancel for a consumer (the
// goroutine ends when cancel-ok arrives, after every delivery sent before
// it), a flag for a poller.
func (cs *consumer) stop() {
	if cs.stopping.Swap(true) {
		return
	}
	cs.begin()
	if cs.polling {
		return
	}
	cs.c.wmu.Lock()
	cs.cancelLocked()
	cs.c.wmu.Unlock()
}

// cancelLocked sends basic.cancel once the consumer tag is known.
func (cs *consumer) cancelLocked() {
	if cs.tag == "" || cs.cancelSent {
		return
	}
	cs.cancelSent = true
	c := cs.c
	a := appendShortstr(nil, cs.tag)
	a = append(a, 0)
	if err := c.writeMethod(1, basicCancel, a); err == nil {
		_ = c.w.Flush()
	}
}

// delivery state for the message being assembled.
type inbound struct {
	tag         uint64
	redelivered bool
	size, got   uint64
	head        [headerSize]byte
}

func (cs *consumer) consume() error {
	tag, err := cs.c.consume(cs.queue, cs.autoAck)
	if err != nil {
		return err
	}
	cs.c.wmu.Lock()
	cs.tag = tag
	if cs.stopping.Load() {
		cs.cancelLocked() // stop() came before the tag was known
	}
	cs.c.wmu.Unlock()
	c := cs.c
	var m inbound
	var inMsg bool
	var pendingAcks uint64
	for {
		if c.r.Buffered() == 0 {
			if err := cs.flushAcks(); err != nil {
				return err
			}
		}
		buffered := c.r.Buffered()
		typ, _, p, err := c.readFrame()
		if err != nil {
			return err
		}
		if buffered < len(p)+8 {
			cs.stale = true // the frame needed a read, which may have waited
		}
		switch typ {
		case frameMethod:
			if len(p) < 4 {
				return fmt.Errorf("%w: short method frame", errProtocol)
			}
			id := binary.BigEndian.Uint32(p)
			switch id {
			case basicDeliver:
				args := skipShortstr(p[4:]) // consumer tag
				if len(args) < 9 {
					return fmt.Errorf("%w: short basic.deliver", errProtocol)
				}
				m = inbound{tag: binary.BigEndian.Uint64(args), redelivered: args[8]&1 != 0}
				inMsg = true
			case basicCancelOk:
				return cs.finalAck(&pendingAcks, m.tag)
			case basicCancel:
				return errors.New("consumer cancelled by the broker")
			default:
				if err := c.closeError(1, id, p[4:]); err != nil {
					return err
				}
			}
		case frameHeader:
			if !inMsg || len(p) < 12 {
				return fmt.Errorf("%w: unexpected content header", errProtocol)
			}
			m.size = binary.BigEndian.Uint64(p[4:])
			if m.size == 0 {
				inMsg = false
				if done, err := cs.handle(&m, &pendingAcks); done || err != nil {
					return err
				}
			}
		case frameBody:
			if !inMsg {
				return fmt.Errorf("%w: unexpected body frame", errProtocol)
			}
			if m.got < headerSize {
				copy(m.head[m.got:], p)
			}
			m.got += uint64(len(p))
			if m.got >= m.size {
				inMsg = false
				if done, err := cs.handle(&m, &pendingAcks); done || err != nil {
					return err
				}
			}
		}
	}
}

// handle checks and acks one complete message. done is true when the
// consumer has received its -D count.
func (cs *consumer) handle(m *inbound, pendingAcks *uint64) (done bool, err error) {
	// Deliveries parsed from one read arrived together; reading the clock
	// for each would only add the parse time (and ~30 ns a call on kvm-clock).
	// The clock is read after every frame that needed a socket read and
	// every 64 messages.
	if cs.stale || cs.sinceClock >= 64 {
		cs.now, cs.stale, cs.sinceClock = cs.clock.nowNano(), false, 0
	}
	cs.sinceClock++
	now := cs.now
	bi := decodeBody(m.head[:min(m.size, headerSize)])
	if bi.hasTime {
		cs.lat.record(now - bi.sentNano)
	}
	cs.track.record(bi, m.redelivered)
	cs.lastRecv.Store(now)
	if !cs.autoAck {
		if cs.multiAck > 1 {
			*pendingAcks++
			if *pendingAcks >= cs.multiAck {
				cs.writeAck(m.tag, true)
				*pendingAcks = 0
			}
		} else {
			cs.writeAck(m.tag, false)
		}
	}
	if cs.limit > 0 && cs.track.received.Load() >= cs.limit {
		cs.limitHit = true
		return true, cs.finalAck(pendingAcks, m.tag)
	}
	return false, nil
}

func (cs *consumer) writeAck(tag uint64, multiple bool) {
	c := cs.c
	var b [21]byte
	c.wmu.Lock()
	_, _ = c.w.Write(appendAck(b[:0], tag, multiple))
	c.wmu.Unlock()
}

// finalAck acks what multi-ack left pending and flushes.
func (cs *consumer) finalAck(pending *uint64, lastTag uint64) error {
	if *pending > 0 && !cs.autoAck {
		cs.writeAck(lastTag, true)
		*pending = 0
	}
	return cs.flushAcks()
}

func (cs *consumer) flushAcks() error {
	c := cs.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.Buffered() == 0 {
		return nil
	}
	return c.w.Flush()
}

// poll receives with basic.get until stopped.
func (cs *consumer) poll() error {
	c := cs.c
	req := binary.BigEndian.AppendUint16(nil, 0)
	req = appendShortstr(req, cs.queue)
	req = append(req, bitsOf(cs.autoAck))
	var pendingAcks uint64
	var m inbound
	for !cs.stopping.Load() {
		c.wmu.Lock()
		err := c.writeMethod(1, basicGet, req)
		if err == nil {
			err = c.w.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			return err
		}
		typ, _, p, err := c.readFrame()
		if err != nil {
			return err
		}
		if typ != frameMethod || len(p) < 4 {
			return fmt.Errorf("%w: frame type %d after basic.get", errProtocol, typ)
		}
		id := binary.BigEndian.Uint32(p)
		switch id {
		case basicGetEmpty:
			if cs.pollEvery > 0 {
				time.Sleep(cs.pollEvery)
			}
			continue
		case basicGetOk:
		default:
			if err := c.closeError(1, id, p[4:]); err != nil {
				return err
			}
			return fmt.Errorf("%w: method %d.%d after basic.get", errProtocol, id>>16, id&0xffff)
		}
		args := p[4:]
		if len(args) < 9 {
			return fmt.Errorf("%w: short basic.get-ok", errProtocol)
		}
		m = inbound{tag: binary.BigEndian.Uint64(args), redelivered: args[8]&1 != 0}
		for complete := false; !complete; {
			typ, _, p, err := c.readFrame()
			if err != nil {
				return err
			}
			switch typ {
			case frameHeader:
				if len(p) < 12 {
					return fmt.Errorf("%w: short content header", errProtocol)
				}
				m.size = binary.BigEndian.Uint64(p[4:])
				complete = m.size == 0
			case frameBody:
				if m.got < headerSize {
					copy(m.head[m.got:], p)
				}
				m.got += uint64(len(p))
				complete = m.got >= m.size
			default:
				return fmt.Errorf("%w: frame type %d in a message", errProtocol, typ)
			}
		}
		if done, err := cs.handle(&m, &pendingAcks); done || err != nil {
			return err
		}
	}
	return cs.finalAck(&pendingAcks, m.tag)
}
