package classic

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
)

// consumer is the queue's record of one of its consumers. It copies what
// dispatch reads of the front end's queue.Consumer, so that offering a
// message touches one small struct.
type consumer struct {
	qc        *queue.Consumer
	sink      queue.Sink
	priority  int
	prefetch  int
	unacked   int // deliveries not settled yet
	noAck     bool
	exclusive bool
	blocked   bool // the sink refused a delivery: wait for Resume
}

func newConsumer(qc *queue.Consumer) *consumer {
	return &consumer{qc: qc, sink: qc.Sink, priority: qc.Priority, prefetch: qc.Prefetch, noAck: qc.NoAck, exclusive: qc.Exclusive}
}

// hasCreditLocked reports whether the queue may offer c a message.
func (c *consumer) hasCreditLocked() bool {
	return !c.blocked && (c.noAck || c.prefetch == 0 || c.unacked < c.prefetch)
}

// Queue is a classic queue. It implements queue.Queue.
type Queue struct {
	cfg  queue.Config
	kind *Kind

	mu          sync.Mutex
	ready       deque // in publish order
	returned    deque // requeued entries, in Seq order; offered before ready
	nextSeq     uint64
	readyBytes  int64       // body bytes of ready messages
	resident    int64       // body bytes of ready messages held in memory
	consumers   []*consumer // highest priority first, then in arrival order
	byConsumer  map[*queue.Consumer]*consumer
	rr          int // round-robin position within a priority group
	unacked     int
	hadConsumer bool
	deleted     bool
	scratch     []byte // for index entry metadata
	wroteIndex  bool   // some entry of this queue went to the store

	published atomic.Uint64
	delivered atomic.Uint64
}

// Name implements queue.Queue.
func (q *Queue) Name() string { return q.cfg.Name }

// Config implements queue.Queue.
func (q *Queue) Config() *queue.Config { return &q.cfg }

func (q *Queue) describe() string {
	return "queue '" + q.cfg.Name + "' in vhost '" + q.cfg.VHost + "'"
}

// store returns the store, or nil when the queue keeps nothing there.
func (q *Queue) store() *persistence.Store { return q.kind.store }

// Enqueue implements queue.Queue. A persistent message on a durable queue
// is kept in the store: its body once per publish, by the first durable
// queue that takes it (which holds a reference for the publish until it
// ends), and an index entry per durable queue. The promise is kept once those writes'
// batches are durable.
func (q *Queue) Enqueue(m *queue.Message) queue.Receipt {
	q.mu.Lock()
	r := q.enqueueLocked(m)
	if r.Result == queue.Enqueued && q.dispatchOrDeferLocked() {
		// A higher-priority consumer is out of credit only for want of an
		// ack that may already be on its way: let it be processed before
		// the message goes to a lower-priority consumer instead.
		q.mu.Unlock()
		runtime.Gosched()
		q.mu.Lock()
		q.dispatchLocked()
	}
	if q.fullLocked(0, 0) {
		// x-max-length 0: nothing is held that no consumer took at once.
		for q.readyLenLocked() > 0 {
			q.settleLocked(q.popLocked())
		}
	}
	q.mu.Unlock()
	return r
}

// enqueueLocked adds m to the queue (see Enqueue) without dispatching it.
func (q *Queue) enqueueLocked(m *queue.Message) queue.Receipt {
	if q.deleted {
		return queue.Receipt{Result: queue.Gone}
	}
	size := int64(m.Size())
	if q.fullLocked(1, size) {
		if q.cfg.Overflow != queue.DropHead {
			return queue.Receipt{Result: queue.Rejected}
		}
		for q.readyLenLocked() > 0 && q.fullLocked(1, size) {
			q.settleLocked(q.popLocked())
		}
	}
	q.nextSeq++
	q.published.Add(1)
	e := queue.Entry{Msg: m, Seq: q.nextSeq, Size: size}
	r := queue.Receipt{Result: queue.Enqueued}
	if st := q.store(); st != nil {
		wrote := false
		if q.cfg.Durable && m.Persistent() {
			var first persistence.Ticket
			if m.Holder() != q.kind {
				// Not stored by a queue of this publish (m.ID, if set, is
				// the id of a copy read back from the store).
				m.ID = st.NextMessageID()
				q.kind.refs.hold(m.ID, 2) // this queue's and the publish's
				m.Hold(q.kind)
				first = st.PutMessage(m.ID, m.Data())
			} else {
				q.kind.refs.add(m.ID)
			}
			e.ID = m.ID
			q.scratch = appendMeta(q.scratch[:0], false, size)
			last := st.PutEntry(q.cfg.ID, e.Seq, e.ID, q.scratch)
			if first == 0 {
				first = last
			}
			r.Promise = q.kind.promise(first, last)
			q.wroteIndex, wrote = true, true
		}
		if q.overBudgetLocked(size) {
			q.pageOutLocked(&e)
			wrote = true
		}
		if wrote {
			r.Backpressure = q.kind.backpressure()
		}
	}
	q.pushLocked(e)
	return r
}

// overBudgetLocked reports whether a new message of size bytes should be
// paged out rather than kept in memory.
func (q *Queue) overBudgetLocked(size int64) bool {
	k := q.kind
	return k.queueBudget > 0 && q.resident+size > k.queueBudget ||
		k.globalBudget > 0 && k.resident.Load()+size > k.globalBudget
}

// pageOutLocked drops e's body from memory, writing it to the store first
// when it is not there (a transient message, or one on a non-durable queue).
func (q *Queue) pageOutLocked(e *queue.Entry) {
	st := q.store()
	if e.ID == 0 {
		e.ID = st.NextMessageID()
		st.PutMessage(e.ID, e.Msg.Data())
		q.scratch = appendMeta(q.scratch[:0], true, e.Size)
		st.PutEntry(q.cfg.ID, e.Seq, e.ID, q.scratch)
		q.wroteIndex = true
	}
	e.Msg = nil
}

// pageInLocked reads a paged-out entry's message back from the store. It
// returns false when the store cannot produce it; the entry is then dropped.
func (q *Queue) pageInLocked(e *queue.Entry) bool {
	data, err := q.store().Message(e.ID, nil)
	if err == nil {
		var m *queue.Message
		if m, err = queue.DecodeMessage(data, "", ""); err == nil {
			m.ID = e.ID
			e.Msg = m
			return true
		}
	}
	q.kind.log.Error("reading a paged-out message failed: dropping it", "queue", q.cfg.Name, "vhost", q.cfg.VHost, "id", e.ID, "err", err)
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
func (q *Queue) countLocked(e *queue.Entry, sign int64) {
	q.readyBytes += sign * e.Size
	if e.Msg != nil {
		q.resident += sign * e.Size
		q.kind.resident.Add(sign * e.Size)
	}
}

func (q *Queue) pushLocked(e queue.Entry) {
	q.countLocked(&e, 1)
	q.ready.pushBack(e)
}

// popLocked takes the next entry to offer; the queue must not be empty.
func (q *Queue) popLocked() queue.Entry {
	var e queue.Entry
	if q.returned.len() > 0 {
		e = q.returned.popFront()
	} else {
		e = q.ready.popFront()
	}
	q.countLocked(&e, -1)
	return e
}

// unpopLocked puts back an entry popLocked returned.
func (q *Queue) unpopLocked(e queue.Entry) {
	q.countLocked(&e, 1)
	if e.Redelivered {
		q.returned.pushFront(e)
		return
	}
	q.ready.pushFront(e)
}

// nextLocked pops the next entry with its message in memory, reading paged
// bodies back. ok is false when nothing is ready.
func (q *Queue) nextLocked() (queue.Entry, bool) {
	for q.readyLenLocked() > 0 {
		e := q.popLocked()
		if e.Msg != nil || q.pageInLocked(&e) {
			return e, true
		}
	}
	return queue.Entry{}, false
}

// dispatchLocked offers ready messages to consumers while they have credit.
func (q *Queue) dispatchLocked() { q.dispatch(false) }

// dispatchOrDeferLocked is dispatchLocked for a publisher, which stops, and
// returns true, rather than give a message to a consumer while one of
// higher priority is out of prefetch credit. Its ack may have been sent
// before the publish yet not been read: Go's scheduler tends to run the
// goroutine whose socket became readable last first, so a publish on one
// connection overtakes an ack sent just before it on another. The caller
// yields and dispatches again.
func (q *Queue) dispatchOrDeferLocked() bool { return q.dispatch(true) }

func (q *Queue) dispatch(deferLower bool) (deferred bool) {
	for q.readyLenLocked() > 0 {
		c, rr, overtakes := q.pickLocked()
		if c == nil || overtakes && deferLower {
			return c != nil
		}
		q.rr = rr
		e, ok := q.nextLocked()
		if !ok {
			return
		}
		if !c.sink.Deliver(c.qc, e) {
			c.blocked = true
			q.unpopLocked(e)
			continue
		}
		q.delivered.Add(1)
		if c.noAck {
			q.settleLocked(e)
		} else {
			c.unacked++
			q.unacked++
		}
	}
	return false
}

// pickLocked chooses the consumer for the next message: the highest
// priority group with credit, round robin within it; with a single active
// consumer or an exclusive consumer, only that one. rr is the round-robin
// position to keep once the message goes to c. overtakes reports that a
// consumer of higher priority than c is out of prefetch credit (rather
// than refused by its sink).
func (q *Queue) pickLocked() (c *consumer, rr int, overtakes bool) {
	n := len(q.consumers)
	if n == 0 {
		return nil, q.rr, false
	}
	if q.cfg.SingleActiveConsumer || q.consumers[0].exclusive {
		if c := q.consumers[0]; c.hasCreditLocked() {
			return c, q.rr, false
		}
		return nil, q.rr, false
	}
	for start := 0; start < n; {
		p := q.consumers[start].priority
		end := start + 1
		for end < n && q.consumers[end].priority == p {
			end++
		}
		size := end - start
		for k := 0; k < size; k++ {
			i := (q.rr + k) % size
			if c := q.consumers[start+i]; c.hasCreditLocked() {
				return c, i + 1, overtakes
			}
		}
		for _, o := range q.consumers[start:end] {
			overtakes = overtakes || !o.blocked
		}
		start = end
	}
	return nil, q.rr, false
}

// AddConsumer implements queue.Queue.
func (q *Queue) AddConsumer(qc *queue.Consumer, started func()) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return wire.Errorf(wire.NotFound, "no "+q.describe())
	}
	if len(q.consumers) > 0 && (qc.Exclusive || q.consumers[0].exclusive) {
		return wire.Errorf(wire.AccessRefused, q.describe()+" in exclusive use")
	}
	c := newConsumer(qc)
	// Keep highest priority first; equal priorities in arrival order. A
	// single-active-consumer queue keeps arrival order only.
	i := len(q.consumers)
	if !q.cfg.SingleActiveConsumer {
		i = slices.IndexFunc(q.consumers, func(o *consumer) bool { return o.priority < c.priority })
		if i < 0 {
			i = len(q.consumers)
		}
	}
	q.consumers = slices.Insert(q.consumers, i, c)
	q.byConsumer[qc] = c
	q.hadConsumer = true
	if started != nil {
		started()
	}
	q.dispatchLocked()
	return nil
}

// RemoveConsumer implements queue.Queue. An auto-delete queue that loses
// its last consumer deletes itself.
func (q *Queue) RemoveConsumer(qc *queue.Consumer) {
	q.mu.Lock()
	c := q.byConsumer[qc]
	if c == nil {
		q.mu.Unlock()
		return
	}
	delete(q.byConsumer, qc)
	q.consumers = slices.DeleteFunc(q.consumers, func(o *consumer) bool { return o == c })
	autoDelete := q.cfg.AutoDelete && len(q.consumers) == 0 && !q.deleted
	var dropped []queue.Entry
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

// Resume implements queue.Queue.
func (q *Queue) Resume(qc *queue.Consumer) {
	q.mu.Lock()
	if c := q.byConsumer[qc]; c != nil && c.blocked {
		c.blocked = false
		q.dispatchLocked()
	}
	q.mu.Unlock()
}

// Get implements queue.Queue.
func (q *Queue) Get(noAck bool) (queue.Entry, int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.nextLocked()
	if !ok {
		return queue.Entry{}, 0, false
	}
	q.delivered.Add(1)
	if noAck {
		q.settleLocked(e)
	} else {
		q.unacked++
	}
	return e, q.readyLenLocked(), true
}

// Settle implements queue.Queue. Discarded messages go to the dead-letter
// sink once the queue's lock is released.
func (q *Queue) Settle(qc *queue.Consumer, entries []queue.Entry, how queue.Settlement) {
	var discarded []*queue.Message
	q.mu.Lock()
	q.unacked -= len(entries)
	if qc != nil {
		if c := q.byConsumer[qc]; c != nil {
			c.unacked -= len(entries)
		}
	}
	switch {
	case how == queue.Requeue && !q.deleted:
		for _, e := range entries {
			e.Redelivered = true
			q.countLocked(&e, 1)
			q.returned.insertSorted(e)
		}
		// Requeued messages count against the length limit like any: past
		// it, a drop-head queue drops its oldest.
		for q.cfg.Overflow == queue.DropHead && q.readyLenLocked() > 0 && q.fullLocked(0, 0) {
			q.settleLocked(q.popLocked())
		}
	default:
		if how == queue.Discard && q.cfg.DeadLetter != nil && !q.deleted {
			discarded = make([]*queue.Message, 0, len(entries))
			for _, e := range entries {
				discarded = append(discarded, e.Msg)
			}
		}
		for _, e := range entries {
			q.settleLocked(e)
		}
	}
	q.dispatchLocked()
	q.mu.Unlock()
	if len(discarded) > 0 {
		q.cfg.DeadLetter.DeadLetter(q, queue.ReasonRejected, discarded)
	}
}

// settleLocked forgets an entry for good: its index entry leaves the store
// and, with the last reference, its message.
func (q *Queue) settleLocked(e queue.Entry) {
	if e.ID == 0 {
		return
	}
	q.store().DeleteEntry(q.cfg.ID, e.Seq)
	q.kind.release(e.ID)
}

// takeReadyLocked empties the queue of ready messages and returns them.
func (q *Queue) takeReadyLocked() []queue.Entry {
	out := make([]queue.Entry, 0, q.readyLenLocked())
	q.returned.drain(func(e queue.Entry) { out = append(out, e) })
	q.ready.drain(func(e queue.Entry) { out = append(out, e) })
	q.kind.resident.Add(-q.resident)
	q.readyBytes, q.resident = 0, 0
	return out
}

// Purge implements queue.Queue.
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
func (q *Queue) deleteLocked() []queue.Entry {
	q.deleted = true
	return q.takeReadyLocked()
}

// forget removes a deleted queue's messages from the store.
func (q *Queue) forget(dropped []queue.Entry) {
	st := q.store()
	if st == nil {
		return
	}
	q.mu.Lock()
	wrote := q.wroteIndex
	q.mu.Unlock()
	if wrote {
		if err := st.DeleteQueue(q.cfg.ID); err != nil {
			q.kind.log.Error("deleting a queue's index from the store", "queue", q.cfg.Name, "err", err)
		}
	}
	for _, e := range dropped {
		if e.ID != 0 {
			q.kind.release(e.ID)
		}
	}
}

// Delete implements queue.Queue.
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
	clear(q.byConsumer)
	q.mu.Unlock()
	q.forget(dropped)
	for _, c := range consumers {
		c.sink.Cancelled(c.qc)
	}
	return len(dropped), nil
}

// Deleted implements queue.Queue.
func (q *Queue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// recover loads the queue's index entries from the store at start: the
// messages come back paged out (read on delivery) and marked redelivered,
// since they may have been delivered before the restart. Entries of
// transient messages that had been paged out are dropped.
func (q *Queue) recover() error {
	st := q.store()
	q.mu.Lock()
	defer q.mu.Unlock()
	var stale []queue.Entry
	var held []uint64
	err := st.Entries(q.cfg.ID, func(seq, msgID uint64, meta []byte) error {
		transient, size := parseMeta(meta)
		q.nextSeq = max(q.nextSeq, seq)
		e := queue.Entry{Seq: seq, ID: msgID, Size: size, Redelivered: true}
		if transient || !q.cfg.Durable {
			stale = append(stale, e) // never shared: its own id
			return nil
		}
		held = append(held, msgID)
		q.wroteIndex = true
		q.pushLocked(e)
		return nil
	})
	for _, e := range stale {
		q.settleLocked(e)
	}
	q.kind.noteRecovered(q.cfg.ID, held)
	return err
}

// Stats implements queue.Queue.
func (q *Queue) Stats() queue.Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queue.Stats{Ready: q.readyLenLocked(), Unacked: q.unacked, Consumers: len(q.consumers),
		Published: q.published.Load(), Delivered: q.delivered.Load(), ReadyBytes: q.readyBytes, Resident: q.resident}
}
