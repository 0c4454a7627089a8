package queue

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/persistence"
)

// Sink receives a consumer's deliveries; the AMQP channel that owns the
// consumer implements it.
type Sink interface {
	// Deliver hands e to consumer c. It runs with the queue's lock held and
	// must not call back into the queue. It returns false, without taking
	// the entry, when the consumer's channel or connection has no room; the
	// sink then calls Queue.Resume(c) once it has.
	Deliver(c *Consumer, e Entry) bool
	// Cancelled tells the sink that the queue dropped c because the queue
	// was deleted. It runs without the queue's lock.
	Cancelled(c *Consumer)
}

// Consumer is one basic.consume on a queue.
type Consumer struct {
	Tag       string
	NoAck     bool
	Exclusive bool
	Priority  int
	// Prefetch is the consumer's own limit on unacknowledged deliveries
	// (basic.qos with global=false); 0 is unlimited.
	Prefetch int
	// Timeout is the delivery acknowledgement timeout for this consumer's
	// deliveries; 0 is none.
	Timeout time.Duration
	Sink    Sink

	queue   *Queue
	unacked int  // guarded by queue.mu
	blocked bool // guarded by queue.mu: the sink refused a delivery
}

// Queue returns the queue the consumer consumes from.
func (c *Consumer) Queue() *Queue { return c.queue }

// hasCreditLocked reports whether the queue may offer c a message.
func (c *Consumer) hasCreditLocked() bool {
	return !c.blocked && (c.NoAck || c.Prefetch == 0 || c.unacked < c.Prefetch)
}

// Config is what a queue is declared with.
type Config struct {
	Name       string
	VHost      string
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       wire.Table
	// Owner is the connection that owns an exclusive queue, 0 for none.
	Owner uint64
	// MaxLength and MaxLengthBytes bound the ready messages (count, body
	// bytes); negative means no limit. Overflow says what happens at the
	// limit.
	MaxLength      int64
	MaxLengthBytes int64
	Overflow       Overflow
	// SingleActiveConsumer is x-single-active-consumer: one consumer at a
	// time gets messages; the next takes over when it goes.
	SingleActiveConsumer bool
	// OnAutoDelete runs (without the queue's lock) when an auto-delete queue
	// loses its last consumer and deletes itself.
	OnAutoDelete func(q *Queue)
	// ID is the queue's id in the store, and Storage the broker's storage:
	// a durable queue writes index entries for its persistent messages, and
	// any queue with Storage pages bodies out past the memory budgets.
	// Storage nil: everything stays in memory.
	ID      uint64
	Storage *Storage
}

// Overflow is a queue's behaviour at its length limit (x-overflow).
type Overflow uint8

const (
	// DropHead drops the oldest ready messages to make room (the default).
	DropHead Overflow = iota
	// RejectPublish refuses new messages; confirm-mode publishers get a nack.
	RejectPublish
	// RejectPublishDLX refuses new messages and dead-letters them.
	RejectPublishDLX
)

// PublishResult is what a queue did with a published message.
type PublishResult uint8

const (
	// Enqueued: the queue holds (or has delivered) the message.
	Enqueued PublishResult = iota + 1
	// Rejected: the queue is at its length limit and refuses new messages.
	Rejected
	// Gone: the queue has been deleted.
	Gone
)

// Queue is a classic queue.
type Queue struct {
	cfg Config

	mu          sync.Mutex
	ready       deque // in publish order
	returned    deque // requeued entries, in Seq order; offered before ready
	nextSeq     uint64
	readyBytes  int64       // body bytes of ready messages
	resident    int64       // body bytes of ready messages held in memory
	consumers   []*Consumer // highest priority first, then in arrival order
	rr          int         // round-robin position within a priority group
	unacked     int
	hadConsumer bool
	deleted     bool
	scratch     []byte // for index entry metadata
	wroteIndex  bool   // some entry of this queue went to the store

	published atomic.Uint64
	delivered atomic.Uint64
}

// New returns an empty queue. In cfg, negative length limits mean none.
func New(cfg Config) *Queue {
	return &Queue{cfg: cfg}
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.cfg.Name }

// Config returns what the queue was declared with.
func (q *Queue) Config() *Config { return &q.cfg }

func (q *Queue) describe() string {
	return "queue '" + q.cfg.Name + "' in vhost '" + q.cfg.VHost + "'"
}

// store returns the store, or nil when the queue keeps nothing there.
func (q *Queue) store() *persistence.Store {
	if q.cfg.Storage == nil {
		return nil
	}
	return q.cfg.Storage.Store
}

// Publish enqueues m and delivers it at once when a consumer has credit. A
// persistent message on a durable queue gets an index entry in the store;
// the ticket returned is that write's batch (0 when nothing was written).
// Use PublishTo, which stores the message itself first.
func (q *Queue) Publish(m *Message) (PublishResult, persistence.Ticket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return Gone, 0
	}
	size := int64(m.Size())
	if q.fullLocked(1, size) {
		if q.cfg.Overflow != DropHead {
			return Rejected, 0
		}
		for q.readyLenLocked() > 0 && q.fullLocked(1, size) {
			q.settleLocked(q.popLocked())
		}
	}
	q.nextSeq++
	q.published.Add(1)
	e := Entry{Msg: m, Seq: q.nextSeq, Size: size}
	var t persistence.Ticket
	if st := q.store(); st != nil {
		if m.Persistent && q.cfg.Durable && m.ID != 0 {
			e.ID = m.ID
			q.scratch = appendMeta(q.scratch[:0], false, size)
			t = st.PutEntry(q.cfg.ID, e.Seq, e.ID, q.scratch)
			q.wroteIndex = true
		}
		if q.overBudgetLocked(size) {
			q.pageOutLocked(&e)
		}
	}
	q.pushLocked(e)
	q.dispatchLocked()
	if q.fullLocked(0, 0) {
		// x-max-length 0: nothing is held that no consumer took at once.
		for q.readyLenLocked() > 0 {
			q.settleLocked(q.popLocked())
		}
	}
	return Enqueued, t
}

// overBudgetLocked reports whether a new message of size bytes should be
// paged out rather than kept in memory.
func (q *Queue) overBudgetLocked(size int64) bool {
	st := q.cfg.Storage
	return st.QueueBudget > 0 && q.resident+size > st.QueueBudget ||
		st.GlobalBudget > 0 && st.resident.Load()+size > st.GlobalBudget
}

// pageOutLocked drops e's body from memory, writing it to the store first
// when it is not there (a transient message, or one on a non-durable queue).
func (q *Queue) pageOutLocked(e *Entry) {
	st := q.store()
	if e.ID == 0 {
		e.ID = st.NextMessageID()
		st.PutMessage(e.ID, e.Msg.data)
		q.scratch = appendMeta(q.scratch[:0], true, e.Size)
		st.PutEntry(q.cfg.ID, e.Seq, e.ID, q.scratch)
		q.wroteIndex = true
	}
	e.Msg = nil
}

// pageInLocked reads a paged-out entry's message back from the store. It
// returns false when the store cannot produce it; the entry is then dropped.
func (q *Queue) pageInLocked(e *Entry) bool {
	data, err := q.store().Message(e.ID, nil)
	if err == nil {
		var m *Message
		if m, err = DecodeMessage(data, "", ""); err == nil {
			m.ID = e.ID
			e.Msg = m
			return true
		}
	}
	if l := q.cfg.Storage.Log; l != nil {
		l.Error("reading a paged-out message failed: dropping it", "queue", q.cfg.Name, "vhost", q.cfg.VHost, "id", e.ID, "err", err)
	}
	q.settleLocked(*e)
	return false
}

// fullLocked reports whether adding n messages of size bytes would pass a
// length limit.
func (q *Queue) fullLocked(n int, size int64) bool {
	return q.cfg.MaxLength >= 0 && int64(q.readyLenLocked()+n) > q.cfg.MaxLength ||
		q.cfg.MaxLengthBytes >= 0 && q.readyBytes+size > q.cfg.MaxLengthBytes
}

// readyLenLocked is the number of messages waiting for a consumer.
func (q *Queue) readyLenLocked() int { return q.ready.len() + q.returned.len() }

// countLocked adds (or with sign -1 removes) e to the ready byte counts.
func (q *Queue) countLocked(e *Entry, sign int64) {
	q.readyBytes += sign * e.Size
	if e.Msg != nil {
		q.resident += sign * e.Size
		if st := q.cfg.Storage; st != nil {
			st.resident.Add(sign * e.Size)
		}
	}
}

func (q *Queue) pushLocked(e Entry) {
	q.countLocked(&e, 1)
	q.ready.pushBack(e)
}

// popLocked takes the next entry to offer; the queue must not be empty.
func (q *Queue) popLocked() Entry {
	var e Entry
	if q.returned.len() > 0 {
		e = q.returned.popFront()
	} else {
		e = q.ready.popFront()
	}
	q.countLocked(&e, -1)
	return e
}

// unpopLocked puts back an entry popLocked returned.
func (q *Queue) unpopLocked(e Entry) {
	q.countLocked(&e, 1)
	if e.Redelivered {
		q.returned.pushFront(e)
		return
	}
	q.ready.pushFront(e)
}

// nextLocked pops the next entry with its message in memory, reading paged
// bodies back. ok is false when nothing is ready.
func (q *Queue) nextLocked() (Entry, bool) {
	for q.readyLenLocked() > 0 {
		e := q.popLocked()
		if e.Msg != nil || q.pageInLocked(&e) {
			return e, true
		}
	}
	return Entry{}, false
}

// dispatchLocked offers ready messages to consumers while they have credit.
func (q *Queue) dispatchLocked() {
	for q.readyLenLocked() > 0 {
		c := q.pickLocked()
		if c == nil {
			return
		}
		e, ok := q.nextLocked()
		if !ok {
			return
		}
		if !c.Sink.Deliver(c, e) {
			c.blocked = true
			q.unpopLocked(e)
			continue
		}
		q.delivered.Add(1)
		if c.NoAck {
			q.settleLocked(e)
		} else {
			c.unacked++
			q.unacked++
		}
	}
}

// pickLocked chooses the consumer for the next message: the highest
// priority group with credit, round robin within it; with a single active
// consumer or an exclusive consumer, only that one.
func (q *Queue) pickLocked() *Consumer {
	n := len(q.consumers)
	if n == 0 {
		return nil
	}
	if q.cfg.SingleActiveConsumer || q.consumers[0].Exclusive {
		if c := q.consumers[0]; c.hasCreditLocked() {
			return c
		}
		return nil
	}
	for start := 0; start < n; {
		p := q.consumers[start].Priority
		end := start + 1
		for end < n && q.consumers[end].Priority == p {
			end++
		}
		size := end - start
		for k := 0; k < size; k++ {
			i := (q.rr + k) % size
			if c := q.consumers[start+i]; c.hasCreditLocked() {
				q.rr = i + 1
				return c
			}
		}
		start = end
	}
	return nil
}

// AddConsumer registers c and starts delivering to it. started, when not
// nil, runs under the queue's lock once c is accepted and before the first
// delivery (so basic.consume-ok precedes the messages).
func (q *Queue) AddConsumer(c *Consumer, started func()) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return wire.Errorf(wire.NotFound, "no "+q.describe())
	}
	if len(q.consumers) > 0 && (c.Exclusive || q.consumers[0].Exclusive) {
		return wire.Errorf(wire.AccessRefused, q.describe()+" in exclusive use")
	}
	c.queue = q
	// Keep highest priority first; equal priorities in arrival order. A
	// single-active-consumer queue keeps arrival order only.
	i := len(q.consumers)
	if !q.cfg.SingleActiveConsumer {
		i = slices.IndexFunc(q.consumers, func(o *Consumer) bool { return o.Priority < c.Priority })
		if i < 0 {
			i = len(q.consumers)
		}
	}
	q.consumers = slices.Insert(q.consumers, i, c)
	q.hadConsumer = true
	if started != nil {
		started()
	}
	q.dispatchLocked()
	return nil
}

// RemoveConsumer drops c (basic.cancel, channel close). Its unacknowledged
// deliveries stay with its channel. An auto-delete queue that loses its last
// consumer deletes itself.
func (q *Queue) RemoveConsumer(c *Consumer) {
	q.mu.Lock()
	i := slices.Index(q.consumers, c)
	if i < 0 {
		q.mu.Unlock()
		return
	}
	q.consumers = slices.Delete(q.consumers, i, i+1)
	autoDelete := q.cfg.AutoDelete && len(q.consumers) == 0 && !q.deleted
	var dropped []Entry
	if autoDelete {
		dropped = q.deleteLocked()
	} else {
		// A single active consumer's successor takes over.
		q.dispatchLocked()
	}
	q.mu.Unlock()
	if autoDelete {
		// Out of the vhost first, so that a redeclare creates a new queue
		// rather than finding this one while its store work runs.
		if q.cfg.OnAutoDelete != nil {
			q.cfg.OnAutoDelete(q)
		}
		q.forget(dropped)
	}
}

// Resume lets the queue offer c messages again after its sink refused one.
func (q *Queue) Resume(c *Consumer) {
	q.mu.Lock()
	if c.blocked {
		c.blocked = false
		q.dispatchLocked()
	}
	q.mu.Unlock()
}

// Get takes the next message for basic.get. It returns the entry, the
// number of messages left ready, and false when the queue is empty.
func (q *Queue) Get(noAck bool) (Entry, int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.nextLocked()
	if !ok {
		return Entry{}, 0, false
	}
	q.delivered.Add(1)
	if noAck {
		q.settleLocked(e)
	} else {
		q.unacked++
	}
	return e, q.readyLenLocked(), true
}

// Ack settles deliveries made to c (nil for basic.get) that were
// acknowledged, or rejected without requeue, and offers more messages.
func (q *Queue) Ack(c *Consumer, entries []Entry) {
	q.mu.Lock()
	q.unsettleCountsLocked(c, len(entries))
	for _, e := range entries {
		q.settleLocked(e)
	}
	q.dispatchLocked()
	q.mu.Unlock()
}

// unsettleCountsLocked takes n deliveries off the unacknowledged counts.
func (q *Queue) unsettleCountsLocked(c *Consumer, n int) {
	q.unacked -= n
	if c != nil {
		c.unacked -= n
	}
}

// settleLocked forgets an entry for good: its index entry leaves the store
// and, with the last reference, its message.
func (q *Queue) settleLocked(e Entry) {
	if e.ID == 0 {
		return
	}
	st := q.cfg.Storage
	st.Store.DeleteEntry(q.cfg.ID, e.Seq)
	st.release(e.ID)
}

// Requeue returns deliveries made to c (nil for basic.get) to the queue,
// near their original position and marked redelivered.
func (q *Queue) Requeue(c *Consumer, entries []Entry) {
	q.mu.Lock()
	q.unsettleCountsLocked(c, len(entries))
	if q.deleted {
		for _, e := range entries {
			q.settleLocked(e)
		}
	} else {
		for _, e := range entries {
			e.Redelivered = true
			q.countLocked(&e, 1)
			q.returned.insertSorted(e)
		}
		// Requeued messages count against the length limit like any: past
		// it, a drop-head queue drops its oldest.
		for q.cfg.Overflow == DropHead && q.readyLenLocked() > 0 && q.fullLocked(0, 0) {
			q.settleLocked(q.popLocked())
		}
		q.dispatchLocked()
	}
	q.mu.Unlock()
}

// takeReadyLocked empties the queue of ready messages and returns them.
func (q *Queue) takeReadyLocked() []Entry {
	out := make([]Entry, 0, q.readyLenLocked())
	q.returned.drain(func(e Entry) { out = append(out, e) })
	q.ready.drain(func(e Entry) { out = append(out, e) })
	if st := q.cfg.Storage; st != nil {
		st.resident.Add(-q.resident)
	}
	q.readyBytes, q.resident = 0, 0
	return out
}

// Purge drops the ready messages (unacknowledged ones stay) and returns how
// many it dropped.
func (q *Queue) Purge() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	dropped := q.takeReadyLocked()
	for _, e := range dropped {
		q.settleLocked(e)
	}
	return len(dropped)
}

// deleteLocked marks the queue deleted and empties it; the caller passes
// the result to forget once the lock is released.
func (q *Queue) deleteLocked() []Entry {
	q.deleted = true
	return q.takeReadyLocked()
}

// forget removes a deleted queue's messages from the store.
func (q *Queue) forget(dropped []Entry) {
	st := q.cfg.Storage
	if st == nil || st.Store == nil {
		return
	}
	q.mu.Lock()
	wrote := q.wroteIndex
	q.mu.Unlock()
	if wrote {
		if err := st.Store.DeleteQueue(q.cfg.ID); err != nil && st.Log != nil {
			st.Log.Error("deleting a queue's index from the store", "queue", q.cfg.Name, "err", err)
		}
	}
	for _, e := range dropped {
		if e.ID != 0 {
			st.release(e.ID)
		}
	}
}

// Delete deletes the queue unless ifUnused and it has consumers (406) or
// ifEmpty and it has ready messages (406). Consumers are told through their
// sinks. It returns the number of ready messages dropped.
func (q *Queue) Delete(ifUnused, ifEmpty bool) (int, error) {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return 0, nil
	}
	if ifUnused && len(q.consumers) > 0 {
		q.mu.Unlock()
		return 0, wire.Errorf(wire.PreconditionFailed, q.describe()+" in use")
	}
	if ifEmpty && q.readyLenLocked() > 0 {
		q.mu.Unlock()
		return 0, wire.Errorf(wire.PreconditionFailed, q.describe()+" not empty")
	}
	dropped := q.deleteLocked()
	consumers := q.consumers
	q.consumers = nil
	q.mu.Unlock()
	q.forget(dropped)
	for _, c := range consumers {
		c.Sink.Cancelled(c)
	}
	return len(dropped), nil
}

// Deleted reports whether the queue has been deleted.
func (q *Queue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// Recover loads the queue's index entries from the store at start: the
// messages come back paged out (read on delivery) and marked redelivered,
// since they may have been delivered before the restart. Entries of
// transient messages that had been paged out are dropped. count receives
// each message id recovered, so shared messages get their references.
func (q *Queue) Recover(count func(msgID uint64)) error {
	st := q.cfg.Storage
	q.mu.Lock()
	defer q.mu.Unlock()
	var stale []Entry
	err := st.Store.Entries(q.cfg.ID, func(seq, msgID uint64, meta []byte) error {
		transient, size := parseMeta(meta)
		q.nextSeq = max(q.nextSeq, seq)
		e := Entry{Seq: seq, ID: msgID, Size: size, Redelivered: true}
		if transient || !q.cfg.Durable {
			stale = append(stale, e) // never shared: its own id
			return nil
		}
		count(msgID)
		q.wroteIndex = true
		q.pushLocked(e)
		return nil
	})
	for _, e := range stale {
		q.settleLocked(e)
	}
	return err
}

// Stats is a snapshot of a queue's counts.
type Stats struct {
	Ready     int
	Unacked   int
	Consumers int
	Published uint64
	Delivered uint64
	// ReadyBytes is the body bytes of ready messages, Resident the part of
	// them held in memory (the rest is paged out to the store).
	ReadyBytes int64
	Resident   int64
}

// Stats returns the queue's counts.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Ready: q.readyLenLocked(), Unacked: q.unacked, Consumers: len(q.consumers),
		Published: q.published.Load(), Delivered: q.delivered.Load(), ReadyBytes: q.readyBytes, Resident: q.resident}
}
