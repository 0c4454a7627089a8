package remote

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/queue"
)

// Queue stands in, on this node, for a queue that lives on another.
type Queue struct {
	s   *Service
	cfg queue.Config

	mu       sync.Mutex
	settings queue.Settings
	deleted  bool
	stats    queue.Stats // the last counts the queue's node gave
	statsAt  time.Time
}

// statsFresh is how long counts fetched from the queue's node are used.
const statsFresh = time.Second

// Name implements queue.Queue.
func (q *Queue) Name() string { return q.cfg.Name }

// Config implements queue.Queue.
func (q *Queue) Config() *queue.Config { return &q.cfg }

// Settings implements queue.Queue.
func (q *Queue) Settings() queue.Settings {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.settings
}

// SetSettings implements queue.Queue: the queue's own node applies the
// policies to the queue itself; the stand-in only reports them.
func (q *Queue) SetSettings(st queue.Settings) {
	q.mu.Lock()
	q.settings = st
	q.mu.Unlock()
}

// Unreachable returns RabbitMQ's error for a queue whose node is down, or
// nil.
func (q *Queue) Unreachable() error {
	if q.s.peers.Running(q.cfg.Node) {
		return nil
	}
	return q.inaccessible()
}

// inaccessible is RabbitMQ's error for a queue whose node is down.
func (q *Queue) inaccessible() error {
	return wire.Errorf(wire.NotFound, "home node '"+q.cfg.Node+"' of durable queue '"+q.cfg.Name+"' in vhost '"+
		q.cfg.VHost+"' is down or inaccessible")
}

// Enqueue implements queue.Queue: the message goes to the queue's node at
// once; its promise comes due when that node has it safe.
func (q *Queue) Enqueue(m *queue.Message) queue.Receipt {
	node := q.cfg.Node
	if !q.s.peers.Running(node) {
		// Unroutable to this queue while its node is down, as on RabbitMQ
		// (and without waiting for a call to time out).
		return queue.Receipt{Result: queue.Gone}
	}
	l := q.s.ledger(node)
	pos := l.Take()
	e := new(cluster.Fields)
	queueRef(e.Str(q.s.peers.Name()), &q.cfg).Uint(pos).Bin(m.Data())
	d, err := q.s.call(node, methodPublish, e)
	var we *wire.Error
	if errors.As(err, &we) {
		// The queue's node answered that it does not have the queue.
		l.Report([]uint64{pos}, nil)
		return queue.Receipt{Result: queue.Gone}
	}
	if err != nil {
		// The queue's node may or may not have the message: the publisher
		// gets a nack, never a confirm for what may be lost.
		q.s.log.Warn("forwarding a publish failed", "queue", q.cfg.Name, "node", node, "err", err)
		l.Report([]uint64{pos}, fmt.Errorf("forwarding to node %s: %w", node, err))
		return queue.Receipt{Result: queue.Enqueued, Promise: queue.Promise{Ledger: l, First: pos, Last: pos}}
	}
	result, pending := d.Uint(), d.Bool()
	r := queue.Receipt{Result: queue.Enqueued}
	switch result {
	case resultRejected:
		r.Result = queue.Rejected
	case resultGone:
		r.Result = queue.Gone
	case resultDup:
		r.Result = queue.Duplicate
	}
	if pending {
		r.Promise = queue.Promise{Ledger: l, First: pos, Last: pos}
	} else {
		l.Report([]uint64{pos}, nil)
	}
	return r
}

// Get implements queue.Queue.
func (q *Queue) Get(noAck bool) (queue.Entry, int, bool) {
	if !q.s.peers.Running(q.cfg.Node) {
		return queue.Entry{}, 0, false
	}
	e := new(cluster.Fields)
	queueRef(e.Str(q.s.peers.Name()), &q.cfg).Bool(noAck)
	d, err := q.s.call(q.cfg.Node, methodGet, e)
	if err != nil {
		return queue.Entry{}, 0, false
	}
	ok, left := d.Bool(), int(d.Uint())
	if !ok {
		return queue.Entry{}, left, false
	}
	en, err := decodeEntry(d)
	if err != nil {
		return queue.Entry{}, 0, false
	}
	return en, left, true
}

// Settle implements queue.Queue: consumer deliveries and gets are settled
// on the queue's node.
func (q *Queue) Settle(c *queue.Consumer, entries []queue.Entry, how queue.Settlement) {
	var id uint64
	if c != nil {
		q.s.mu.Lock()
		id = q.s.consumerIDs[c].id
		q.s.mu.Unlock()
	}
	q.s.settle(q, id, entries, how)
}

// Purge implements queue.Queue.
func (q *Queue) Purge() int {
	if !q.s.peers.Running(q.cfg.Node) {
		return 0
	}
	e := new(cluster.Fields)
	d, err := q.s.call(q.cfg.Node, methodPurge, queueRef(e, &q.cfg))
	if err != nil {
		return 0
	}
	return int(d.Uint())
}

// Delete implements queue.Queue. The queue's own node deletes the queue
// and its messages; the stand-in only ends its consumers here.
func (q *Queue) Delete(bool, bool) (int, error) {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return 0, nil
	}
	q.deleted = true
	q.mu.Unlock()
	q.s.mu.Lock()
	var gone []*standIn
	for id, si := range q.s.standIns {
		if si.q == q {
			gone = append(gone, si)
			delete(q.s.standIns, id)
			delete(q.s.consumerIDs, si.c)
		}
	}
	q.s.mu.Unlock()
	for _, si := range gone {
		si.c.Sink.Cancelled(si.c)
	}
	return 0, nil
}

// Deleted implements queue.Queue.
func (q *Queue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// Stats implements queue.Queue: the counts the queue's node gives, fetched
// at most once a second; Down is set while the node cannot be reached.
func (q *Queue) Stats() queue.Stats {
	q.mu.Lock()
	if time.Since(q.statsAt) < statsFresh {
		st := q.stats
		q.mu.Unlock()
		return st
	}
	q.mu.Unlock()
	st := queue.Stats{Down: true}
	if q.s.peers.Running(q.cfg.Node) {
		e := new(cluster.Fields)
		if d, err := q.s.call(q.cfg.Node, methodStats, queueRef(e, &q.cfg)); err == nil {
			st = queue.Stats{Ready: int(d.Uint()), Unacked: int(d.Uint()), Consumers: int(d.Uint()), Published: d.Uint(),
				Delivered: d.Uint(), ReadyBytes: int64(d.Uint()), Resident: int64(d.Uint())}
			if ms := int64(d.Uint()); ms > 0 {
				st.LastUsed = time.UnixMilli(ms)
			}
			if d.Err() != nil {
				st = queue.Stats{Down: true}
			}
		}
	}
	q.mu.Lock()
	q.stats, q.statsAt = st, time.Now()
	q.mu.Unlock()
	return st
}

// standIn is a consumer on this node of a queue on another: deliveries
// arrive in order and go to its channel as it has room.
type standIn struct {
	id uint64
	q  *Queue
	c  *queue.Consumer

	mu        sync.Mutex
	started   bool          // basic.consume-ok went out: deliveries may follow
	cancelled bool          // RemoveConsumer: nothing more goes to the channel
	held      []queue.Entry // arrived, not yet taken by the channel
	passed    uint64        // deliveries the channel took, in all
}

// AddConsumer implements queue.Queue.
func (q *Queue) AddConsumer(c *queue.Consumer, started func()) error {
	if err := q.Unreachable(); err != nil {
		return err
	}
	si := &standIn{id: q.s.nextID.Add(1), q: q, c: c}
	q.s.mu.Lock()
	q.s.standIns[si.id] = si
	q.s.consumerIDs[c] = consumerID{id: si.id}
	q.s.mu.Unlock()
	e := new(cluster.Fields)
	queueRef(e.Str(q.s.peers.Name()).Uint(si.id), &q.cfg).Str(c.Tag).Bool(c.NoAck).Bool(c.Exclusive).Uint(uint64(int64(c.Priority))).Uint(uint64(c.Prefetch))
	if _, err := q.s.call(q.cfg.Node, methodConsume, e); err != nil {
		q.s.mu.Lock()
		delete(q.s.standIns, si.id)
		delete(q.s.consumerIDs, c)
		q.s.mu.Unlock()
		var we *wire.Error
		if errors.As(err, &we) {
			return err
		}
		// The queue's node may have added the consumer before the call
		// failed: end it there.
		go func() {
			e := new(cluster.Fields)
			_, _ = q.s.call(q.cfg.Node, methodCancel, e.Str(q.s.peers.Name()).Uint(si.id).Uint(0))
		}()
		return q.inaccessible()
	}
	si.mu.Lock()
	if started != nil {
		started()
	}
	si.started = true
	n := si.passOnLocked()
	si.mu.Unlock()
	q.s.credit(si, n)
	return nil
}

// passOnLocked hands held deliveries to the channel while it takes them,
// and returns how many it took.
func (si *standIn) passOnLocked() int {
	n := 0
	for len(si.held) > 0 && si.started && !si.cancelled {
		if !si.c.Sink.Deliver(si.c, si.held[0]) {
			break
		}
		si.held[0] = queue.Entry{}
		si.held = si.held[1:]
		n++
	}
	si.passed += uint64(n)
	return n
}

// RemoveConsumer implements queue.Queue: what the channel never took goes
// back to the queue.
func (q *Queue) RemoveConsumer(c *queue.Consumer) {
	q.s.mu.Lock()
	si := q.s.standIns[q.s.consumerIDs[c].id]
	if si != nil {
		delete(q.s.standIns, si.id)
		q.s.consumerIDs[c] = consumerID{id: si.id, cancelled: time.Now()}
	}
	q.s.mu.Unlock()
	if si == nil {
		return
	}
	// What the channel did not take goes back to the queue on its node,
	// which learns how many the channel took.
	si.mu.Lock()
	si.cancelled = true
	si.held = nil
	passed := si.passed
	si.mu.Unlock()
	e := new(cluster.Fields)
	d, err := q.s.call(q.cfg.Node, methodCancel, e.Str(q.s.peers.Name()).Uint(si.id).Uint(passed))
	if err == nil && d.Bool() {
		q.s.mu.Lock()
		delete(q.s.consumerIDs, c)
		q.s.mu.Unlock()
	}
}

// Serves reports whether c is a consumer of this node's stand-ins whose
// settlements still go to the queue's node: consuming, or cancelled with
// deliveries its channel may settle.
func (q *Queue) Serves(c *queue.Consumer) bool {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	_, ok := q.s.consumerIDs[c]
	return ok
}

// Resume implements queue.Queue.
func (q *Queue) Resume(c *queue.Consumer) {
	q.s.mu.Lock()
	si := q.s.standIns[q.s.consumerIDs[c].id]
	q.s.mu.Unlock()
	if si == nil {
		return
	}
	si.mu.Lock()
	n := si.passOnLocked()
	si.mu.Unlock()
	q.s.credit(si, n)
}

// credit tells the queue's node that n deliveries were passed on.
func (s *Service) credit(si *standIn, n int) {
	if n == 0 {
		return
	}
	e := new(cluster.Fields)
	_ = s.cast(si.q.cfg.Node, methodCredit, e.Str(s.peers.Name()).Uint(si.id).Uint(uint64(n)).Bytes())
}

// settle sends a settlement to the queue's node (consumer 0: basic.get).
func (s *Service) settle(q *Queue, consumer uint64, entries []queue.Entry, how queue.Settlement) {
	e := new(cluster.Fields)
	queueRef(e.Str(s.peers.Name()).Uint(consumer), &q.cfg).Uint(uint64(how)).Uint(uint64(len(entries)))
	for _, en := range entries {
		e.Uint(en.Seq)
	}
	if err := s.cast(q.cfg.Node, methodSettle, e.Bytes()); err != nil {
		s.log.Warn("forwarding a settlement failed", "queue", q.cfg.Name, "node", q.cfg.Node, "err", err)
	}
}

// onDeliver takes a delivery to a consumer here.
func (s *Service) onDeliver(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	from, id := d.Str(), d.Uint()
	en, err := decodeEntry(d)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	si := s.standIns[id]
	known := s.idKnownLocked(id)
	s.mu.Unlock()
	if si == nil {
		if !known {
			// Not cancelled here but forgotten (its queue's node was taken
			// for lost): the queue's node takes back what it holds for it.
			_ = s.cast(from, methodDrop, new(cluster.Fields).Str(s.peers.Name()).Uint(id).Bytes())
		}
		return nil, nil // cancelled: the queue's node requeues what it sent
	}
	si.mu.Lock()
	if si.cancelled {
		si.mu.Unlock()
		return nil, nil
	}
	si.held = append(si.held, en)
	n := 0
	if len(si.held) == 1 {
		n = si.passOnLocked()
	}
	si.mu.Unlock()
	s.credit(si, n)
	return nil, nil
}

// onCancelled ends a consumer here whose queue dropped it.
func (s *Service) onCancelled(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	id := d.Uint()
	s.mu.Lock()
	si := s.standIns[id]
	delete(s.standIns, id)
	if si != nil {
		delete(s.consumerIDs, si.c)
	}
	s.mu.Unlock()
	if si != nil {
		si.c.Sink.Cancelled(si.c)
	}
	return nil, nil
}

// consumerID is a consumer's id between the nodes. A cancelled consumer
// keeps it for the settlements its channel sends later, until its
// channel's deliveries would have timed out (RabbitMQ's consumer_timeout
// default), when it is forgotten.
type consumerID struct {
	id        uint64
	cancelled time.Time
}

const forgetCancelled = 30 * time.Minute

// pruneConsumerIDs forgets the ids of consumers cancelled long ago, and
// the cancels older than any consume they could overtake.
func (s *Service) pruneConsumerIDs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, id := range s.consumerIDs {
		if !id.cancelled.IsZero() && time.Since(id.cancelled) > forgetCancelled {
			delete(s.consumerIDs, c)
		}
	}
	for k, at := range s.cancelled {
		if time.Since(at) > 2*callTimeout {
			delete(s.cancelled, k)
		}
	}
}

// idKnownLocked reports whether a consumer id is one of this node's
// consumers, active or cancelled.
func (s *Service) idKnownLocked(id uint64) bool {
	for _, cid := range s.consumerIDs {
		if cid.id == id {
			return true
		}
	}
	return false
}

// onForget drops a cancelled consumer's id: the queue's node has every
// delivery it made settled.
func (s *Service) onForget(payload []byte) ([]byte, error) {
	d := cluster.ReadFields(payload)
	id := d.Uint()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, cid := range s.consumerIDs {
		if cid.id == id && !cid.cancelled.IsZero() {
			delete(s.consumerIDs, c)
		}
	}
	return nil, nil
}
