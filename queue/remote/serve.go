package remote

import (
	"errors"
	"sync"
	"time"

	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/queue"
)

// This node's side of other nodes' calls, for its own queues.

type servedKey struct {
	node string
	id   uint64
}

type getKey struct {
	node string
	q    uint64
	seq  uint64
}

type gotEntry struct {
	q queue.Queue
	e queue.Entry
}

// served is a consumer on another node of a queue here: the queue
// delivers to it as to any consumer, and the deliveries go to that node
// in order, at most window of them ahead of what its channel took.
type served struct {
	s   *Service
	key servedKey
	q   queue.Queue
	c   *queue.Consumer
	mu  sync.Mutex
	out *outbox
	// unpassed are the sequences of deliveries sent that the consumer's
	// node has not passed on to its channel yet, in send order; passed
	// counts those it has.
	unpassed []uint64
	passed   uint64
	held     map[uint64]queue.Entry // unacknowledged, by sequence
	gone     bool                   // the consumer was cancelled
	park     bool                   // the queue was refused a delivery for want of credit
}

// Deliver implements queue.Sink (under the queue's lock).
func (sv *served) Deliver(c *queue.Consumer, e queue.Entry) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if len(sv.unpassed) >= window {
		sv.park = true
		return false
	}
	sv.unpassed = append(sv.unpassed, e.Seq)
	if !c.NoAck {
		sv.held[e.Seq] = e
	}
	enc := new(cluster.Fields)
	sv.out.push(methodDeliver, encodeEntry(enc.Str(sv.s.peers.Name()).Uint(sv.key.id), e).Bytes())
	return true
}

// Cancelled implements queue.Sink: the queue was deleted.
func (sv *served) Cancelled(*queue.Consumer) {
	sv.s.mu.Lock()
	delete(sv.s.served, sv.key)
	sv.s.mu.Unlock()
	enc := new(cluster.Fields)
	sv.out.push(methodCancelled, enc.Uint(sv.key.id).Bytes())
}

// passOn notes n more deliveries passed on to the consumer's channel
// (sv.mu held).
func (sv *served) passOn(n uint64) {
	n = min(n, uint64(len(sv.unpassed)))
	sv.unpassed = sv.unpassed[n:]
	sv.passed += n
	if len(sv.unpassed) == 0 {
		sv.unpassed = nil
	}
}

// requeueAll ends the consumer and returns what it held to the queue
// (its node is gone).
func (sv *served) requeueAll() {
	sv.q.RemoveConsumer(sv.c)
	sv.mu.Lock()
	entries := make([]queue.Entry, 0, len(sv.held))
	for _, e := range sv.held {
		entries = append(entries, e)
	}
	clear(sv.held)
	sv.mu.Unlock()
	if len(entries) > 0 {
		sv.q.Settle(sv.c, entries, queue.Requeue)
	}
}

// outbox sends casts to one node in order, from one goroutine, so that a
// queue's lock is never held across the network.
type outbox struct {
	s    *Service
	node string
	mu   sync.Mutex
	msgs []outMsg
	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

type outMsg struct {
	m       cluster.Method
	payload []byte
}

func (s *Service) outbox(node string) *outbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.outboxes[node]
	if o == nil {
		o = &outbox{s: s, node: node, kick: make(chan struct{}, 1), done: make(chan struct{})}
		if s.closed {
			close(o.done) // sends nothing
			return o
		}
		o.wg.Add(1)
		go o.run()
		s.outboxes[node] = o
	}
	return o
}

func (o *outbox) push(m cluster.Method, payload []byte) {
	o.mu.Lock()
	o.msgs = append(o.msgs, outMsg{m, payload})
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

func (o *outbox) run() {
	defer o.wg.Done()
	for {
		select {
		case <-o.kick:
		case <-o.done:
			return
		}
		o.mu.Lock()
		msgs := o.msgs
		o.msgs = nil
		o.mu.Unlock()
		for _, m := range msgs {
			if err := o.s.cast(o.node, m.m, m.payload); err != nil {
				o.s.log.Warn("forwarding to a node failed", "node", o.node, "err", err)
				o.s.nodeDown(o.node, err)
				break
			}
		}
	}
}

func (o *outbox) close() {
	close(o.done)
	o.wg.Wait()
}

// durableLink tells a publishing node, in order, which of its forwarded
// publishes are safe here.
type durableLink struct {
	s     *Service
	node  string
	items chan durableItem
	done  chan struct{}
	wg    sync.WaitGroup
}

type durableItem struct {
	pos uint64
	ps  queue.Promises
}

func (s *Service) durable(node string) *durableLink {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.durables[node]
	if d == nil {
		d = &durableLink{s: s, node: node, items: make(chan durableItem, 4096), done: make(chan struct{})}
		if s.closed {
			close(d.done)
			return d
		}
		d.wg.Add(1)
		go d.run()
		s.durables[node] = d
	}
	return d
}

func (d *durableLink) run() {
	defer d.wg.Done()
	for {
		var it durableItem
		select {
		case it = <-d.items:
		case <-d.done:
			return
		}
		var ok []uint64
		for {
			if err := it.ps.Wait(); err != nil {
				e := new(cluster.Fields)
				d.send(e.Str(d.s.peers.Name()).Str(err.Error()).Uint(1).Uint(it.pos).Bytes())
			} else {
				ok = append(ok, it.pos)
			}
			more := false
			select {
			case it = <-d.items:
				more = true
			default:
			}
			if !more {
				break
			}
		}
		if len(ok) > 0 {
			e := new(cluster.Fields).Str(d.s.peers.Name()).Str("").Uint(uint64(len(ok)))
			for _, p := range ok {
				e.Uint(p)
			}
			d.send(e.Bytes())
		}
	}
}

// send casts a report, again while it fails and the node runs: a report
// lost would hold up every later confirm of that node's publishers.
func (d *durableLink) send(payload []byte) {
	for {
		err := d.s.cast(d.node, methodDurable, payload)
		if err == nil || !d.s.peers.Running(d.node) {
			return
		}
		select {
		case <-d.done:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *durableLink) close() {
	close(d.done)
	d.wg.Wait()
}

// onPublish enqueues a message published on another node.
func (s *Service) onPublish(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	from := d.Str()
	q, err := s.findQueue(d)
	pos, data := d.Uint(), d.Bin()
	if err == nil {
		err = d.Err()
	}
	if err != nil {
		return answer(nil, err), nil
	}
	m, err := queue.DecodeMessage(data, "", "")
	if err != nil {
		return answer(nil, err), nil
	}
	var out queue.Outcome
	queue.Publish([]queue.Queue{q}, m, &out)
	result := uint64(resultEnqueued)
	switch {
	case out.Rejected:
		result = resultRejected
	case !out.Routed:
		result = resultGone
	}
	pending := !out.Promises.Kept()
	if pending {
		dl := s.durable(from)
		select {
		case dl.items <- durableItem{pos: pos, ps: out.Promises}:
		case <-dl.done:
			return answer(nil, errors.New("the node is stopping")), nil
		}
	}
	// The publisher goes at the pace this node's store writes.
	if !out.Backpressure.Kept() {
		_ = out.Backpressure.Wait()
	}
	e := new(cluster.Fields)
	return answer(e.Uint(result).Bool(pending), nil), nil
}

// onDurable hears that forwarded publishes are safe on their queue's node.
func (s *Service) onDurable(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	node, text := d.Str(), d.Str()
	n := d.Count()
	ps := make([]uint64, 0, n)
	for range n {
		ps = append(ps, d.Uint())
	}
	if d.Err() != nil {
		return nil, d.Err()
	}
	var err error
	if text != "" {
		err = errors.New(text)
	}
	s.mu.Lock()
	l := s.ledgers[node]
	s.mu.Unlock()
	if l != nil {
		l.Report(ps, err)
	}
	return nil, nil
}

// onGet answers a basic.get made on another node.
func (s *Service) onGet(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	from := d.Str()
	q, err := s.findQueue(d)
	noAck := d.Bool()
	if err == nil {
		err = d.Err()
	}
	if err != nil {
		return answer(nil, err), nil
	}
	en, left, ok := q.Get(noAck)
	e := new(cluster.Fields)
	e.Bool(ok).Uint(uint64(left))
	if !ok {
		return answer(e, nil), nil
	}
	if !noAck {
		s.mu.Lock()
		s.gets[getKey{from, q.Config().ID, en.Seq}] = gotEntry{q, en}
		s.mu.Unlock()
	}
	return answer(encodeEntry(e, en), nil), nil
}

// onSettle settles deliveries made to another node.
func (s *Service) onSettle(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	from, id := d.Str(), d.Uint()
	vh, name, qid := d.Str(), d.Str(), d.Uint()
	how, known := queue.SettlementOf(d.Uint())
	n := d.Count()
	seqs := make([]uint64, 0, n)
	for range n {
		seqs = append(seqs, d.Uint())
	}
	if d.Err() != nil {
		return nil, d.Err()
	}
	if !known {
		return nil, errors.New("remote: unknown settlement")
	}
	var entries []queue.Entry
	if id == 0 {
		var q queue.Queue
		s.mu.Lock()
		for _, seq := range seqs {
			k := getKey{from, qid, seq}
			if g, ok := s.gets[k]; ok {
				entries = append(entries, g.e)
				q = g.q
				delete(s.gets, k)
			}
		}
		s.mu.Unlock()
		if len(entries) > 0 {
			s.settleOff(q, nil, entries, how)
		}
		return nil, nil
	}
	q, err := s.lookup(vh, name, qid)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	sv := s.served[servedKey{from, id}]
	s.mu.Unlock()
	if sv == nil {
		s.unknownConsumer(servedKey{from, id})
		return nil, nil
	}
	sv.mu.Lock()
	for _, seq := range seqs {
		if e, ok := sv.held[seq]; ok {
			entries = append(entries, e)
			delete(sv.held, seq)
		}
	}
	done := sv.gone && len(sv.held) == 0
	sv.mu.Unlock()
	if len(entries) > 0 {
		s.settleOff(q, sv.c, entries, how)
	}
	if done {
		s.mu.Lock()
		delete(s.served, sv.key)
		s.mu.Unlock()
		// The consumer's node may forget the consumer's id now.
		sv.out.push(methodForget, new(cluster.Fields).Uint(sv.key.id).Bytes())
	}
	return nil, nil
}

// settleOff settles acks on the cast reader, and rejections and requeues
// on a goroutine of their own: they may dead-letter (rejected, or past the
// delivery limit), and a dead letter to a queue on another node is a call
// that must not hold up the reader (hellos wait behind it).
func (s *Service) settleOff(q queue.Queue, c *queue.Consumer, entries []queue.Entry, how queue.Settlement) {
	if how != queue.Ack {
		go q.Settle(c, entries, how)
		return
	}
	q.Settle(c, entries, how)
}

func (s *Service) onPurge(payload []byte) ([]byte, error) {
	q, err := s.findQueue(cluster.ReadFields(payload))
	if err != nil {
		return answer(nil, err), nil
	}
	e := new(cluster.Fields)
	return answer(e.Uint(uint64(q.Purge())), nil), nil
}

func (s *Service) onStats(payload []byte) ([]byte, error) {
	q, err := s.findQueue(cluster.ReadFields(payload))
	if err != nil {
		return answer(nil, err), nil
	}
	st := q.Stats()
	var used uint64
	if !st.LastUsed.IsZero() {
		used = uint64(st.LastUsed.UnixMilli())
	}
	e := new(cluster.Fields)
	e.Uint(uint64(st.Ready)).Uint(uint64(st.Unacked)).Uint(uint64(st.Consumers)).Uint(st.Published).Uint(st.Delivered).
		Uint(uint64(st.ReadyBytes)).Uint(uint64(st.Resident)).Uint(used)
	return answer(e, nil), nil
}

// onConsume adds a consumer on another node to a queue here.
func (s *Service) onConsume(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	from, id := d.Str(), d.Uint()
	q, err := s.findQueue(d)
	tag, noAck, exclusive, priority, prefetch := d.Str(), d.Bool(), d.Bool(), int(int64(d.Uint())), int(d.Uint())
	if err == nil {
		err = d.Err()
	}
	if err != nil {
		return answer(nil, err), nil
	}
	key := servedKey{from, id}
	s.mu.Lock()
	_, late := s.cancelled[key]
	s.mu.Unlock()
	if late {
		return answer(nil, errors.New("the consumer was cancelled")), nil
	}
	sv := &served{s: s, key: key, q: q, held: map[uint64]queue.Entry{}, out: s.outbox(from)}
	sv.c = &queue.Consumer{Tag: tag, NoAck: noAck, Exclusive: exclusive, Priority: priority, Prefetch: prefetch, Sink: sv, Queue: q}
	s.mu.Lock()
	s.served[key] = sv
	s.mu.Unlock()
	if err := q.AddConsumer(sv.c, nil); err != nil {
		s.mu.Lock()
		delete(s.served, key)
		s.mu.Unlock()
		return answer(nil, err), nil
	}
	return answer(new(cluster.Fields), nil), nil
}

// onCancel removes a consumer on another node; its unacknowledged
// deliveries stay with its channel, which settles them.
// The consumer's node says how many deliveries it passed on in all: those
// sent after them never reached the channel and go back to the queue; the
// channel settles the rest. A consume that arrives after its cancel (calls
// run side by side) is refused.
func (s *Service) onCancel(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	key := servedKey{d.Str(), d.Uint()}
	passed := d.Uint()
	if d.Err() != nil {
		return nil, d.Err()
	}
	s.mu.Lock()
	sv := s.served[key]
	s.cancelled[key] = time.Now()
	s.mu.Unlock()
	if sv == nil {
		return answer(new(cluster.Fields).Bool(true), nil), nil
	}
	sv.q.RemoveConsumer(sv.c)
	sv.mu.Lock()
	sv.gone = true
	if passed > sv.passed {
		sv.passOn(passed - sv.passed)
	}
	var back []queue.Entry
	for _, seq := range sv.unpassed {
		if e, ok := sv.held[seq]; ok {
			back = append(back, e)
			delete(sv.held, seq)
		}
	}
	sv.unpassed = nil
	done := len(sv.held) == 0
	sv.mu.Unlock()
	if len(back) > 0 {
		sv.q.Settle(sv.c, back, queue.Release)
	}
	if done {
		s.mu.Lock()
		delete(s.served, key)
		s.mu.Unlock()
	}
	return answer(new(cluster.Fields).Bool(done), nil), nil
}

// unknownConsumer answers credit or settlements for a consumer this node
// does not know (it dropped it, taking its node for lost): the consumer's
// node cancels it too.
func (s *Service) unknownConsumer(key servedKey) {
	s.mu.Lock()
	_, recent := s.cancelled[key]
	s.mu.Unlock()
	if !recent {
		s.outbox(key.node).push(methodCancelled, new(cluster.Fields).Uint(key.id).Bytes())
	}
}

// onDrop hears that a consumer's node no longer knows the consumer (it
// took this node for lost): everything sent to it goes back to the queue.
func (s *Service) onDrop(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	key := servedKey{d.Str(), d.Uint()}
	if d.Err() != nil {
		return nil, d.Err()
	}
	s.mu.Lock()
	sv := s.served[key]
	delete(s.served, key)
	s.mu.Unlock()
	if sv != nil {
		go sv.requeueAll() // not on the cast reader: requeueing may dead-letter
	}
	return nil, nil
}

// onCredit hears that a consumer's node passed deliveries on.
func (s *Service) onCredit(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	key := servedKey{d.Str(), d.Uint()}
	n := int(d.Uint())
	s.mu.Lock()
	sv := s.served[key]
	s.mu.Unlock()
	if sv == nil {
		s.unknownConsumer(key)
		return nil, nil
	}
	sv.mu.Lock()
	sv.passOn(uint64(n))
	resume := sv.park && len(sv.unpassed) < window
	if resume {
		sv.park = false
	}
	sv.mu.Unlock()
	if resume {
		sv.q.Resume(sv.c)
	}
	return nil, nil
}
