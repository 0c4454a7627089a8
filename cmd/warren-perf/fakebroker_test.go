package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// fakeBroker is a small in-memory AMQP 0-9-1 server for tests: enough of
// RabbitMQ's behaviour to run warren-perf end to end (declares, bindings,
// publish with confirms and mandatory returns, consume, get, cancel, close),
// fast enough to show warren-perf's own cost, and able to misbehave on
// purpose (drop, duplicate or reorder a message) so tests can check that
// warren-perf notices.
type fakeBroker struct {
	ln net.Listener

	// fault, if set, is asked about every routed message (n counts from 0)
	// and may drop it, deliver it twice or hold it back behind the next one.
	fault func(n int) faultAction

	// confirmGate, if set, holds back publisher confirms until it is closed.
	confirmGate chan struct{}

	mu       sync.Mutex
	queues   map[string]*fakeQueue
	bindings map[string][]fakeBinding // by exchange
	types    map[string]string        // exchange types
	routed   int
	held     *fakeMsg
	nextName int
	conns    sync.WaitGroup
}

type faultAction int

const (
	faultNone faultAction = iota
	faultDrop
	faultDuplicate
	faultHold // deliver after the next message
)

type fakeBinding struct{ queue, key string }

type fakeMsg struct {
	exchange, key string
	props         []byte
	body          []byte
	redelivered   bool
}

type fakeQueue struct {
	name      string
	backlog   []*fakeMsg
	consumers []*fakeConsumer
	next      int
}

type fakeConsumer struct {
	conn *fakeConn
	tag  string
}

type fakeConn struct {
	b     *fakeBroker
	c     *client // reused for framing: readFrame, writeMethod
	wmu   sync.Mutex
	dirty map[*fakeConn]bool // connections written to during the current read batch
	tag   uint64             // next delivery tag on channel 1
	// publish state
	confirm             bool
	pubTag              uint64
	pubExchange, pubKey string
	pubMandatory        bool
	pubSize             uint64
	pubProps            []byte
	pubBody             []byte
	ackPending          bool
	heldTag             uint64 // confirms held back by confirmGate; guarded by wmu
	consumerSeq         int
}

func startFakeBroker(t testing.TB) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{ln: ln, queues: map[string]*fakeQueue{}, bindings: map[string][]fakeBinding{}, types: map[string]string{}}
	go b.accept()
	t.Cleanup(func() {
		ln.Close()
		b.conns.Wait()
	})
	return b
}

func (b *fakeBroker) gateOpen() bool {
	if b.confirmGate == nil {
		return true
	}
	select {
	case <-b.confirmGate:
		return true
	default:
		return false
	}
}

func (b *fakeBroker) uri() string { return "amqp://guest:guest@" + b.ln.Addr().String() + "/" }

func (b *fakeBroker) accept() {
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.conns.Add(1)
		go func() {
			defer b.conns.Done()
			fc := &fakeConn{b: b, dirty: map[*fakeConn]bool{}, c: &client{
				nc: nc, r: bufio.NewReaderSize(nc, ioBufSize), w: bufio.NewWriterSize(nc, ioBufSize),
				frameMax: clientFrameMax, buf: make([]byte, clientFrameMax+1),
			}}
			_ = fc.serve()
			nc.Close()
			b.dropConsumers(fc)
		}()
	}
}

func (b *fakeBroker) dropConsumers(fc *fakeConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		kept := q.consumers[:0]
		for _, cs := range q.consumers {
			if cs.conn != fc {
				kept = append(kept, cs)
			}
		}
		q.consumers = kept
	}
}

// send writes a method frame to fc and flushes it (setup replies).
func (fc *fakeConn) send(ch uint16, id uint32, args []byte) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if err := fc.c.writeMethod(ch, id, args); err != nil {
		return err
	}
	return fc.c.w.Flush()
}

func (fc *fakeConn) serve() error {
	c := fc.c
	var proto [8]byte
	if _, err := io.ReadFull(c.r, proto[:]); err != nil {
		return err
	}
	start := []byte{0, 9}
	start = appendTable(start, map[string]any{"product": "fake"})
	start = appendLongstr(start, "PLAIN")
	start = appendLongstr(start, "en_US")
	if err := fc.send(0, connectionStart, start); err != nil {
		return err
	}
	if _, err := c.readMethod(0, connectionStartOk); err != nil {
		return err
	}
	tune := binary.BigEndian.AppendUint16(nil, 2047)
	tune = binary.BigEndian.AppendUint32(tune, clientFrameMax)
	tune = binary.BigEndian.AppendUint16(tune, 0)
	if err := fc.send(0, connectionTune, tune); err != nil {
		return err
	}
	if _, err := c.readMethod(0, connectionTuneOk); err != nil {
		return err
	}
	if _, err := c.readMethod(0, connectionOpen); err != nil {
		return err
	}
	if err := fc.send(0, connectionOpenOk, []byte{0}); err != nil {
		return err
	}
	for {
		if c.r.Buffered() == 0 {
			if err := fc.endBatch(); err != nil {
				return err
			}
		}
		typ, _, p, err := c.readFrame()
		if err != nil {
			return err
		}
		switch typ {
		case frameMethod:
			done, err := fc.method(binary.BigEndian.Uint32(p), p[4:])
			if done || err != nil {
				return err
			}
		case frameHeader:
			fc.pubSize = binary.BigEndian.Uint64(p[4:])
			fc.pubProps = append([]byte(nil), p[12:]...)
			fc.pubBody = make([]byte, 0, fc.pubSize)
			if fc.pubSize == 0 {
				fc.published()
			}
		case frameBody:
			fc.pubBody = append(fc.pubBody, p...)
			if uint64(len(fc.pubBody)) >= fc.pubSize {
				fc.published()
			}
		}
	}
}

// endBatch flushes this connection's confirms and every connection that got
// deliveries while the batch was read.
func (fc *fakeConn) endBatch() error {
	if fc.ackPending {
		fc.wmu.Lock()
		if fc.b.gateOpen() {
			fc.ackPending = false
			_, _ = fc.c.w.Write(appendConfirm(nil, fc.pubTag))
			fc.dirty[fc] = true
		} else {
			fc.heldTag = fc.pubTag
		}
		fc.wmu.Unlock()
	}
	for d := range fc.dirty {
		d.wmu.Lock()
		err := d.c.w.Flush()
		d.wmu.Unlock()
		if err != nil && d == fc {
			return err
		}
		delete(fc.dirty, d)
	}
	return nil
}

func appendConfirm(b []byte, tag uint64) []byte {
	b = append(b, frameMethod, 0, 1, 0, 0, 0, 13, 0, 60, 0, 80)
	b = binary.BigEndian.AppendUint64(b, tag)
	return append(b, 1, frameEnd) // multiple=true
}

func (fc *fakeConn) method(id uint32, args []byte) (done bool, err error) {
	b := fc.b
	switch id {
	case channelOpen:
		return false, fc.send(1, channelOpenOk, []byte{0, 0, 0, 0})
	case exchangeDeclare:
		name, rest := readShortstr(args[2:])
		kind, _ := readShortstr(rest)
		b.mu.Lock()
		b.types[name] = kind
		b.mu.Unlock()
		return false, fc.send(1, exchangeDeclareOk, nil)
	case queueDeclare:
		name, _ := readShortstr(args[2:])
		b.mu.Lock()
		if name == "" {
			b.nextName++
			name = fmt.Sprintf("amq.gen-%d", b.nextName)
		}
		if b.queues[name] == nil {
			b.queues[name] = &fakeQueue{name: name}
		}
		b.mu.Unlock()
		reply := appendShortstr(nil, name)
		reply = append(reply, 0, 0, 0, 0, 0, 0, 0, 0)
		return false, fc.send(1, queueDeclareOk, reply)
	case queueBind:
		queue, rest := readShortstr(args[2:])
		exchange, rest := readShortstr(rest)
		key, _ := readShortstr(rest)
		b.mu.Lock()
		b.bindings[exchange] = append(b.bindings[exchange], fakeBinding{queue: queue, key: key})
		b.mu.Unlock()
		return false, fc.send(1, queueBindOk, nil)
	case basicQos:
		return false, fc.send(1, basicQosOk, nil)
	case confirmSelect:
		fc.confirm = true
		if gate := b.confirmGate; gate != nil {
			go func() {
				<-gate
				fc.wmu.Lock()
				defer fc.wmu.Unlock()
				if fc.heldTag > 0 {
					_, _ = fc.c.w.Write(appendConfirm(nil, fc.heldTag))
					_ = fc.c.w.Flush()
				}
			}()
		}
		return false, fc.send(1, confirmSelectOk, nil)
	case basicPublish:
		exchange, rest := readShortstr(args[2:])
		key, rest := readShortstr(rest)
		fc.pubExchange, fc.pubKey, fc.pubMandatory = exchange, key, rest[0]&1 != 0
	case basicConsume:
		queue, _ := readShortstr(args[2:])
		fc.consumerSeq++
		cs := &fakeConsumer{conn: fc, tag: fmt.Sprintf("ctag-%d", fc.consumerSeq)}
		if err := fc.send(1, basicConsumeOk, appendShortstr(nil, cs.tag)); err != nil {
			return false, err
		}
		b.mu.Lock()
		q := b.queues[queue]
		if q != nil {
			q.consumers = append(q.consumers, cs)
			for _, m := range q.backlog {
				fc.deliverLocked(cs, m, fc)
			}
			q.backlog = nil
		}
		b.mu.Unlock()
	case basicCancel:
		tag, _ := readShortstr(args)
		b.mu.Lock()
		for _, q := range b.queues {
			kept := q.consumers[:0]
			for _, cs := range q.consumers {
				if cs.conn != fc || cs.tag != tag {
					kept = append(kept, cs)
				}
			}
			q.consumers = kept
		}
		b.mu.Unlock()
		return false, fc.send(1, basicCancelOk, appendShortstr(nil, tag))
	case basicGet:
		queue, _ := readShortstr(args[2:])
		b.mu.Lock()
		q := b.queues[queue]
		var m *fakeMsg
		if q != nil && len(q.backlog) > 0 {
			m, q.backlog = q.backlog[0], q.backlog[1:]
		}
		b.mu.Unlock()
		if m == nil {
			return false, fc.send(1, basicGetEmpty, []byte{0})
		}
		fc.tag++
		a := binary.BigEndian.AppendUint64(nil, fc.tag)
		a = append(a, 0)
		a = appendShortstr(a, m.exchange)
		a = appendShortstr(a, m.key)
		a = binary.BigEndian.AppendUint32(a, 0)
		fc.wmu.Lock()
		err := fc.c.writeMethod(1, basicGetOk, a)
		fc.writeContentLocked(m)
		fc.wmu.Unlock()
		fc.dirty[fc] = true
		return false, err
	case basicAck:
	case connectionClose:
		fc.endBatch()
		return true, fc.send(0, connectionCloseOk, nil)
	default:
		return true, fmt.Errorf("fake broker: unexpected method %d.%d", id>>16, id&0xffff)
	}
	return false, nil
}

// published routes the message just assembled.
func (fc *fakeConn) published() {
	b := fc.b
	m := &fakeMsg{exchange: fc.pubExchange, key: fc.pubKey, props: fc.pubProps, body: fc.pubBody}
	b.mu.Lock()
	var targets []*fakeQueue
	if m.exchange == "" {
		if q := b.queues[m.key]; q != nil {
			targets = append(targets, q)
		}
	} else {
		seen := map[string]bool{}
		for _, bd := range b.bindings[m.exchange] {
			if seen[bd.queue] || b.types[m.exchange] != "fanout" && bd.key != m.key {
				continue
			}
			seen[bd.queue] = true
			if q := b.queues[bd.queue]; q != nil {
				targets = append(targets, q)
			}
		}
	}
	for _, q := range targets {
		fc.routeLocked(q, m)
	}
	b.mu.Unlock()
	if len(targets) == 0 && fc.pubMandatory {
		a := binary.BigEndian.AppendUint16(nil, 312)
		a = appendShortstr(a, "NO_ROUTE")
		a = appendShortstr(a, m.exchange)
		a = appendShortstr(a, m.key)
		fc.wmu.Lock()
		_ = fc.c.writeMethod(1, basicReturn, a)
		fc.writeContentLocked(m)
		fc.wmu.Unlock()
		fc.dirty[fc] = true
	}
	if fc.confirm {
		fc.pubTag++
		fc.ackPending = true
	}
}

func (fc *fakeConn) routeLocked(q *fakeQueue, m *fakeMsg) {
	b := fc.b
	n := b.routed
	b.routed++
	action := faultNone
	if b.fault != nil {
		action = b.fault(n)
	}
	switch action {
	case faultDrop:
		return
	case faultHold:
		b.held = m
		return
	}
	fc.enqueueLocked(q, m)
	if action == faultDuplicate {
		fc.enqueueLocked(q, m)
	}
	if b.held != nil {
		h := b.held
		b.held = nil
		fc.enqueueLocked(q, h)
	}
}

func (fc *fakeConn) enqueueLocked(q *fakeQueue, m *fakeMsg) {
	if len(q.consumers) == 0 {
		q.backlog = append(q.backlog, m)
		return
	}
	cs := q.consumers[q.next%len(q.consumers)]
	q.next++
	fc.deliverLocked(cs, m, fc)
}

// deliverLocked writes a basic.deliver to the consumer's connection; by is
// the connection whose batch will flush it.
func (fc *fakeConn) deliverLocked(cs *fakeConsumer, m *fakeMsg, by *fakeConn) {
	d := cs.conn
	d.wmu.Lock()
	d.tag++
	a := appendShortstr(nil, cs.tag)
	a = binary.BigEndian.AppendUint64(a, d.tag)
	a = append(a, bitsOf(m.redelivered))
	a = appendShortstr(a, m.exchange)
	a = appendShortstr(a, m.key)
	_ = d.c.writeMethod(1, basicDeliver, a)
	d.writeContentLocked(m)
	d.wmu.Unlock()
	by.dirty[d] = true
}

func (fc *fakeConn) writeContentLocked(m *fakeMsg) {
	w := fc.c.w
	var h [7]byte
	h[0] = frameHeader
	binary.BigEndian.PutUint16(h[1:], 1)
	binary.BigEndian.PutUint32(h[3:], uint32(12+len(m.props)))
	_, _ = w.Write(h[:])
	var ch [12]byte
	binary.BigEndian.PutUint16(ch[0:], 60)
	binary.BigEndian.PutUint64(ch[4:], uint64(len(m.body)))
	_, _ = w.Write(ch[:])
	_, _ = w.Write(m.props)
	_ = w.WriteByte(frameEnd)
	for body := m.body; len(body) > 0; {
		n := min(len(body), clientFrameMax-8)
		h[0] = frameBody
		binary.BigEndian.PutUint32(h[3:], uint32(n))
		_, _ = w.Write(h[:])
		_, _ = w.Write(body[:n])
		_ = w.WriteByte(frameEnd)
		body = body[n:]
	}
}

// runAgainst runs warren-perf with a command line against the fake broker.
func runAgainst(t *testing.T, b *fakeBroker, cmdline string) *summary {
	t.Helper()
	o, err := parseArgs(append(strings.Fields(cmdline), "-h", b.uri()))
	if err != nil {
		t.Fatal(err)
	}
	s, err := run(&o, io.Discard, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return s
}
