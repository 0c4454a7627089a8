package queue

import (
	"slices"
	"time"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp/wire"
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
	consumers   []*Consumer // highest priority first, then in arrival order
	rr          int         // round-robin position within a priority group
	readyBytes  int64
	unacked     int
	hadConsumer bool
	deleted     bool

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

// Errors for consumers.
var (
	errExclusiveUse = "in exclusive use"
)

func (q *Queue) describe() string {
	return "queue '" + q.cfg.Name + "' in vhost '" + q.cfg.VHost + "'"
}

// Publish enqueues m and delivers it at once when a consumer has credit.
func (q *Queue) Publish(m *Message) PublishResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return Gone
	}
	if q.fullLocked(1, int64(m.Size())) {
		if q.cfg.Overflow != DropHead {
			return Rejected
		}
		for q.readyLenLocked() > 0 && q.fullLocked(1, int64(m.Size())) {
			q.popLocked()
		}
		if q.fullLocked(1, int64(m.Size())) && q.cfg.MaxLength == 0 {
			// x-max-length 0: nothing is ever held; a consumer with credit
			// may still take the message at once.
			q.nextSeq++
			q.published.Add(1)
			q.deliverOrDropLocked(Entry{Msg: m, Seq: q.nextSeq})
			return Enqueued
		}
	}
	q.nextSeq++
	q.pushLocked(Entry{Msg: m, Seq: q.nextSeq})
	q.published.Add(1)
	q.dispatchLocked()
	return Enqueued
}

// fullLocked reports whether adding n messages of size bytes would pass a
// length limit.
func (q *Queue) fullLocked(n int, size int64) bool {
	return q.cfg.MaxLength >= 0 && int64(q.readyLenLocked()+n) > q.cfg.MaxLength ||
		q.cfg.MaxLengthBytes >= 0 && q.readyBytes+size > q.cfg.MaxLengthBytes
}

// deliverOrDropLocked offers e to a consumer with credit, dropping it when
// there is none (a queue with x-max-length 0).
func (q *Queue) deliverOrDropLocked(e Entry) {
	q.pushLocked(e)
	q.dispatchLocked()
	if q.readyLenLocked() > 0 {
		q.popLocked()
	}
}

func (q *Queue) pushLocked(e Entry) {
	q.ready.pushBack(e)
	q.readyBytes += int64(e.Msg.Size())
}

// readyLenLocked is the number of messages waiting for a consumer.
func (q *Queue) readyLenLocked() int { return q.ready.len() + q.returned.len() }

// popLocked takes the next entry to offer.
func (q *Queue) popLocked() Entry {
	var e Entry
	if q.returned.len() > 0 {
		e = q.returned.popFront()
	} else {
		e = q.ready.popFront()
	}
	q.readyBytes -= int64(e.Msg.Size())
	return e
}

// unpopLocked puts back an entry popLocked returned.
func (q *Queue) unpopLocked(e Entry) {
	q.readyBytes += int64(e.Msg.Size())
	if e.Redelivered {
		q.returned.pushFront(e)
		return
	}
	q.ready.pushFront(e)
}

// dispatchLocked offers ready messages to consumers while they have credit.
func (q *Queue) dispatchLocked() {
	for q.readyLenLocked() > 0 {
		c := q.pickLocked()
		if c == nil {
			return
		}
		e := q.popLocked()
		if !c.Sink.Deliver(c, e) {
			c.blocked = true
			q.unpopLocked(e)
			continue
		}
		q.delivered.Add(1)
		if !c.NoAck {
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
		return wire.Errorf(wire.AccessRefused, q.describe()+" "+errExclusiveUse)
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
	if autoDelete {
		q.deleted = true
	} else {
		// A single active consumer's successor takes over.
		q.dispatchLocked()
	}
	q.mu.Unlock()
	if autoDelete && q.cfg.OnAutoDelete != nil {
		q.cfg.OnAutoDelete(q)
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
	if q.readyLenLocked() == 0 {
		return Entry{}, 0, false
	}
	e := q.popLocked()
	q.delivered.Add(1)
	if !noAck {
		q.unacked++
	}
	return e, q.readyLenLocked(), true
}

// Ack settles n deliveries made to c (nil for basic.get) that were
// acknowledged, or rejected without requeue, and offers more messages.
func (q *Queue) Ack(c *Consumer, n int) {
	q.mu.Lock()
	q.settleLocked(c, n)
	q.dispatchLocked()
	q.mu.Unlock()
}

func (q *Queue) settleLocked(c *Consumer, n int) {
	q.unacked -= n
	if c != nil {
		c.unacked -= n
	}
}

// Requeue returns deliveries made to c (nil for basic.get) to the queue,
// near their original position and marked redelivered.
func (q *Queue) Requeue(c *Consumer, entries []Entry) {
	q.mu.Lock()
	q.settleLocked(c, len(entries))
	if !q.deleted {
		for _, e := range entries {
			e.Redelivered = true
			q.returned.insertSorted(e)
			q.readyBytes += int64(e.Msg.Size())
		}
		q.dispatchLocked()
	}
	q.mu.Unlock()
}

// Purge drops the ready messages (unacknowledged ones stay) and returns how
// many it dropped.
func (q *Queue) Purge() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.readyLenLocked()
	q.ready, q.returned, q.readyBytes = deque{}, deque{}, 0
	return n
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
	q.deleted = true
	n := q.readyLenLocked()
	q.ready, q.returned, q.readyBytes = deque{}, deque{}, 0
	consumers := q.consumers
	q.consumers = nil
	q.mu.Unlock()
	for _, c := range consumers {
		c.Sink.Cancelled(c)
	}
	return n, nil
}

// Deleted reports whether the queue has been deleted.
func (q *Queue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// Stats is a snapshot of a queue's counts.
type Stats struct {
	Ready     int
	Unacked   int
	Consumers int
	Published uint64
	Delivered uint64
}

// Stats returns the queue's counts.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Ready: q.readyLenLocked(), Unacked: q.unacked, Consumers: len(q.consumers),
		Published: q.published.Load(), Delivered: q.delivered.Load()}
}
