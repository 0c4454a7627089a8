package classic

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
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

// deadEntry is an entry the queue dropped, and why.
type deadEntry struct {
	e      queue.Entry
	reason queue.Reason
	unread bool // the store could not produce its message
}

// Queue is a classic queue. It implements queue.Queue.
type Queue struct {
	cfg  queue.Config
	kind *Kind
	idx  index

	mu          sync.Mutex
	settings    queue.Settings // effective: cfg.Settings, then what SetSettings gave
	ready       ready
	nextSeq     uint64
	readyBytes  int64 // body bytes of ready messages
	resident    int64 // body bytes of ready messages held in memory
	inMemory    int64 // ready messages held in memory
	expiring    int   // ready messages with an expiry
	consumers   []*consumer
	byConsumer  map[*queue.Consumer]*consumer
	rr          int // round-robin position within a priority group
	unacked     int
	hadConsumer bool
	deleted     bool
	lastUsed    int64 // unix ms of the last consumer change or basic.get
	// dead are entries dropped under the lock, to dead-letter and forget
	// once it is released (see unlock).
	dead []deadEntry
	// dedup holds the keys of the messages in a deduplicating queue.
	dedup *dedupIndex
	// expiry fires when the earliest expiring head is due: one timer per
	// queue, none per message.
	expiry dueTimer

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

// unlock releases the queue's lock, then deals with the entries dropped
// under it: their messages are dead-lettered when the queue dead-letters,
// and only then are the entries forgotten in the store, so that a crash
// between the two leaves a duplicate, never a loss (the store writes its
// batches in order, each whole or not at all).
func (q *Queue) unlock() {
	if q.expiring > 0 {
		q.armExpiryLocked()
	}
	dead := q.dead
	q.dead = nil
	deadLettering := q.settings.DeadLetter
	q.mu.Unlock()
	if len(dead) > 0 {
		q.deadLetter(dead, deadLettering)
	}
}

// dropLocked removes e from the queue's books for reason; unlock
// dead-letters it.
func (q *Queue) dropLocked(e queue.Entry, reason queue.Reason) {
	if q.dedup != nil {
		q.dedup.remove(e.Seq)
	}
	q.dead = append(q.dead, deadEntry{e: e, reason: reason})
}

// forgetLocked removes e for good: from the deduplication keys and from
// the store.
func (q *Queue) forgetLocked(e queue.Entry) {
	if q.dedup != nil {
		q.dedup.remove(e.Seq)
	}
	q.idx.settle(e)
}

// deadLetter hands dropped messages to the dead-letter sink, grouped by
// reason, and then forgets their entries. An entry whose message the store
// could not produce is not forgotten: it stays in the store, to come back
// at the next start rather than be lost.
func (q *Queue) deadLetter(dead []deadEntry, deadLettering bool) {
	sink := q.cfg.DeadLetterSink
	if !deadLettering {
		sink = nil
	}
	var msgs []*queue.Message
	for i := 0; i < len(dead); {
		msgs = msgs[:0]
		j := i
		for ; j < len(dead) && dead[j].reason == dead[i].reason; j++ {
			if sink == nil {
				continue
			}
			if m := q.idx.message(&dead[j].e); m != nil {
				msgs = append(msgs, m)
			} else {
				dead[j].unread = true
			}
		}
		if len(msgs) > 0 {
			sink.DeadLetter(q, dead[i].reason, msgs)
		}
		i = j
	}
	for _, d := range dead {
		if !d.unread {
			q.idx.settle(d.e)
		}
	}
}

// Enqueue implements queue.Queue. A persistent message on a durable queue
// is kept in the store: its body once per publish, by the first durable
// queue that takes it (which holds a reference for the publish until it
// ends), and an index entry per durable queue. The promise is kept once
// those writes' batches are durable.
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
		for q.ready.len() > 0 {
			q.dropLocked(q.popLocked(), queue.ReasonMaxLen)
		}
	}
	if q.expiring > 0 {
		// What is due now goes now: x-message-ttl 0 (or an expiration of
		// 0) means deliver at once or expire. Past one batch, the timer
		// (armed for the past by unlock) does the rest.
		q.expireLocked(q.kind.now()+1, expireBatch)
	}
	q.unlock()
	return r
}

// enqueueLocked adds m to the queue (see Enqueue) without dispatching it.
func (q *Queue) enqueueLocked(m *queue.Message) queue.Receipt {
	if q.deleted {
		return queue.Receipt{Result: queue.Gone}
	}
	// In RabbitMQ's order: a full queue that rejects publishes rejects a
	// duplicate too; a duplicate is dropped before it can push out the
	// head of a drop-head queue.
	size := int64(m.Size())
	full := q.fullLocked(1, size)
	if full {
		switch q.settings.Overflow {
		case queue.RejectPublishDLX:
			q.dropLocked(queue.Entry{Msg: m}, queue.ReasonMaxLen)
			return queue.Receipt{Result: queue.Rejected}
		case queue.RejectPublish:
			return queue.Receipt{Result: queue.Rejected}
		}
	}
	var dedupKey string
	if q.dedup != nil {
		var ok bool
		if dedupKey, ok = queue.DeduplicationKey(m.Props); ok && q.dedup.holds(dedupKey) {
			return queue.Receipt{Result: queue.Duplicate}
		}
	}
	for full && q.ready.len() > 0 && q.fullLocked(1, size) {
		q.dropLocked(q.popLocked(), queue.ReasonMaxLen)
	}
	q.nextSeq++
	q.published.Add(1)
	e := queue.Entry{Msg: m, Seq: q.nextSeq, Size: size}
	if dedupKey != "" {
		q.dedup.add(dedupKey, e.Seq)
	}
	if q.cfg.MaxPriority > 0 {
		e.Priority, _ = m.Props.Priority()
	}
	if ttl, ok := q.ttl(m); ok {
		e.Expires = q.kind.now() + ttl
	}
	r := queue.Receipt{Result: queue.Enqueued}
	if q.idx.store() != nil {
		var wrote bool
		r.Promise, wrote = q.idx.keep(m, &e)
		if q.overBudgetLocked(size) {
			q.idx.pageOut(&e)
			wrote = true
		}
		if wrote {
			r.Backpressure = q.kind.backpressure()
		}
	}
	q.pushLocked(e)
	return r
}

// ttl is the time m may wait in the queue, in milliseconds: the lower of
// the queue's x-message-ttl and the message's expiration (which the
// channel has validated). ok is false when neither applies.
func (q *Queue) ttl(m *queue.Message) (ttl int64, ok bool) {
	ttl, ok = q.settings.MessageTTL, q.settings.MessageTTL >= 0
	if exp, present, problem := m.Props.ExpirationMillis(); present && problem == "" && (!ok || exp < ttl) {
		ttl, ok = exp, true
	}
	return ttl, ok
}

// overBudgetLocked reports whether a new message of size bytes should be
// paged out rather than kept in memory.
func (q *Queue) overBudgetLocked(size int64) bool {
	k := q.kind
	size += messageOverhead
	return k.queueBudget > 0 && q.chargeLocked()+size > k.queueBudget ||
		k.globalBudget > 0 && k.charged.Load()+size > k.globalBudget
}

// chargeLocked is what the queue's messages in memory count against the
// budgets: their bodies and their bookkeeping.
func (q *Queue) chargeLocked() int64 { return q.resident + q.inMemory*messageOverhead }

// pageInLocked reads a paged-out entry's message back from the store. It
// returns false when the store cannot produce it; the entry is then dropped.
func (q *Queue) pageInLocked(e *queue.Entry) bool {
	if e.Msg = q.idx.message(e); e.Msg != nil {
		return true
	}
	q.forgetLocked(*e)
	return false
}

// fullLocked reports whether adding n messages of size bytes would pass a
// length limit.
func (q *Queue) fullLocked(n int, size int64) bool {
	return q.settings.MaxLength >= 0 && int64(q.ready.len()+n) > q.settings.MaxLength ||
		q.settings.MaxLengthBytes >= 0 && q.readyBytes+size > q.settings.MaxLengthBytes
}

// countLocked adds (or with sign -1 removes) e to the ready counts.
func (q *Queue) countLocked(e *queue.Entry, sign int64) {
	q.readyBytes += sign * e.Size
	if e.Msg != nil {
		q.resident += sign * e.Size
		q.inMemory += sign
		q.kind.charged.Add(sign * (e.Size + messageOverhead))
	}
	if e.Expires != 0 {
		q.expiring += int(sign)
	}
}

func (q *Queue) pushLocked(e queue.Entry) {
	q.countLocked(&e, 1)
	q.ready.push(&e)
}

// popLocked takes the next entry to offer; the queue must not be empty.
func (q *Queue) popLocked() (e queue.Entry) {
	q.ready.pop(&e)
	q.countLocked(&e, -1)
	return e
}

// unpopLocked puts back an entry popLocked returned.
func (q *Queue) unpopLocked(e queue.Entry) {
	q.countLocked(&e, 1)
	q.ready.unpop(e)
}

// requeueLocked returns an entry that was delivered, near its original
// place.
func (q *Queue) requeueLocked(e queue.Entry) {
	q.countLocked(&e, 1)
	q.ready.requeue(e)
}

// expireBatch is the most entries the expiry timer drops under one hold
// of the queue's lock, so that a large backlog expiring at once neither
// holds the lock long nor builds a long list of dead letters.
const expireBatch = 4096

// expireLocked drops the entries at the heads of the queue (of each
// priority level) that expire before the time given (unix ms), up to limit
// of them (0: no limit), and reports whether it stopped at the limit. A
// message expires when it reaches the head, as in RabbitMQ's classic
// queues, so expiry costs nothing per message until then.
func (q *Queue) expireLocked(before int64, limit int) (more bool) {
	for n := 0; q.expiring > 0; n++ {
		if limit > 0 && n == limit {
			return true
		}
		level := -1
		q.ready.heads(func(p int, e *queue.Entry) bool {
			if e.Expires != 0 && e.Expires < before {
				level = p
				return false
			}
			return true
		})
		if level < 0 {
			return false
		}
		var e queue.Entry
		q.ready.popAt(level, &e)
		q.countLocked(&e, -1)
		q.dropLocked(e, queue.ReasonExpired)
	}
	return false
}

// armExpiryLocked sets the queue's timer for the earliest expiry among the
// heads, unless it is set for that time or earlier already (a timer that
// fires early finds nothing due and is set again).
func (q *Queue) armExpiryLocked() {
	next := int64(0)
	q.ready.heads(func(_ int, e *queue.Entry) bool {
		if e.Expires != 0 && (next == 0 || e.Expires < next) {
			next = e.Expires
		}
		return true
	})
	if next != 0 {
		q.expiry.armLocked(next, q.kind.now())
	}
}

// expire runs when the expiry timer fires: it drops what is due in
// batches, releasing the lock (and dead-lettering) between them.
func (q *Queue) expire() {
	for more := true; more; {
		q.mu.Lock()
		q.expiry.firedLocked()
		more = !q.deleted && q.expireLocked(q.kind.now()+1, expireBatch)
		if !more && !q.deleted {
			q.dispatchLocked() // what nextLocked held back while the backlog expired
		}
		q.unlock()
	}
}

// expireDueLocked drops a batch of the entries due now and reports
// whether more are due.
func (q *Queue) expireDueLocked() (more bool) {
	return q.expiring > 0 && q.expireLocked(q.kind.now(), expireBatch)
}

// nextLocked pops the next entry to deliver, with its message in memory:
// expired heads leave first, and paged bodies are read back. ok is false
// when nothing is ready.
func (q *Queue) nextLocked() (queue.Entry, bool) {
	if q.expireDueLocked() {
		// More than a batch expired at once: nothing is offered until the
		// timer has dropped the rest, and it then dispatches.
		return queue.Entry{}, false
	}
	for q.ready.len() > 0 {
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
	for q.ready.len() > 0 {
		c, rr, overtakes := q.pickLocked()
		if c == nil || overtakes && deferLower {
			return c != nil
		}
		q.rr = rr
		e, ok := q.nextLocked()
		if !ok {
			return false
		}
		d := e
		if e.Returns != 0 && q.settings.DeliveryLimit >= 0 {
			d = queue.WithDeliveryCount(e)
		}
		if !c.sink.Deliver(c.qc, d) {
			c.blocked = true
			q.unpopLocked(e)
			continue
		}
		q.delivered.Add(1)
		if c.noAck {
			q.forgetLocked(e)
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
	defer q.unlock()
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
	q.lastUsed = q.kind.now()
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
		q.unlock()
		return
	}
	delete(q.byConsumer, qc)
	q.consumers = slices.DeleteFunc(q.consumers, func(o *consumer) bool { return o == c })
	q.lastUsed = q.kind.now()
	autoDelete := q.cfg.AutoDelete && len(q.consumers) == 0 && !q.deleted
	var dropped []queue.Entry
	if autoDelete {
		dropped = q.deleteLocked()
	} else {
		// A single active consumer's successor takes over.
		q.dispatchLocked()
	}
	q.unlock()
	if autoDelete {
		// Out of the vhost first, so that a redeclare creates a new queue
		// rather than finding this one while its store work runs.
		if q.cfg.OnAutoDelete != nil {
			q.cfg.OnAutoDelete(q)
		}
		q.idx.forget(dropped)
	}
}

// Resume implements queue.Queue.
func (q *Queue) Resume(qc *queue.Consumer) {
	q.mu.Lock()
	if c := q.byConsumer[qc]; c != nil && c.blocked {
		c.blocked = false
		q.dispatchLocked()
	}
	q.unlock()
}

// Get implements queue.Queue.
func (q *Queue) Get(noAck bool) (queue.Entry, int, bool) {
	q.mu.Lock()
	for q.expireDueLocked() {
		q.unlock() // dead-letters the batch
		q.mu.Lock()
	}
	defer q.unlock()
	q.lastUsed = q.kind.now()
	e, ok := q.nextLocked()
	if !ok {
		return queue.Entry{}, 0, false
	}
	q.delivered.Add(1)
	if noAck {
		q.forgetLocked(e)
	} else {
		q.unacked++
	}
	if e.Returns != 0 && q.settings.DeliveryLimit >= 0 {
		e = queue.WithDeliveryCount(e)
	}
	return e, q.ready.len(), true
}

// Settle implements queue.Queue. A requeued message past the delivery
// limit, and a discarded one, are dead-lettered once the queue's lock is
// released.
func (q *Queue) Settle(qc *queue.Consumer, entries []queue.Entry, how queue.Settlement) {
	q.mu.Lock()
	q.unacked -= len(entries)
	if qc != nil {
		if c := q.byConsumer[qc]; c != nil {
			c.unacked -= len(entries)
		}
	}
	switch {
	case q.deleted:
		for _, e := range entries {
			q.forgetLocked(e)
		}
	case how.Returns():
		for _, e := range entries {
			if how == queue.Requeue && e.Returns < ^uint32(0) {
				e.Returns++
			}
			if q.settings.DeliveryLimit >= 0 && int64(e.Returns) > q.settings.DeliveryLimit {
				q.dropLocked(e, queue.ReasonDeliveryLimit)
				continue
			}
			e.Redelivered = true
			q.requeueLocked(e)
		}
		// Requeued messages count against the length limit like any.
		q.trimLocked()
	case how == queue.Discard:
		for _, e := range entries {
			q.dropLocked(e, queue.ReasonRejected)
		}
	default:
		for _, e := range entries {
			q.forgetLocked(e)
		}
	}
	q.dispatchLocked()
	q.unlock()
}

// takeReadyLocked empties the queue of ready messages and returns them.
func (q *Queue) takeReadyLocked() []queue.Entry {
	out := make([]queue.Entry, 0, q.ready.len())
	q.ready.drain(func(e queue.Entry) { out = append(out, e) })
	q.kind.charged.Add(-q.chargeLocked())
	q.readyBytes, q.resident, q.inMemory, q.expiring = 0, 0, 0, 0
	return out
}

// Purge implements queue.Queue.
func (q *Queue) Purge() int {
	q.mu.Lock()
	defer q.unlock()
	dropped := q.takeReadyLocked()
	if q.dedup != nil {
		q.dedup.clear() // as the plugin flushes its cache on purge
	}
	for _, e := range dropped {
		q.forgetLocked(e)
	}
	return len(dropped)
}

// deleteLocked marks the queue deleted and empties it; the caller passes
// the result to forget once the lock is released.
func (q *Queue) deleteLocked() []queue.Entry {
	q.deleted = true
	q.expiry.stopLocked()
	return q.takeReadyLocked()
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
	if ifEmpty && q.ready.len() > 0 {
		q.mu.Unlock()
		return 0, wire.Errorf(wire.PreconditionFailed, q.describe()+" not empty")
	}
	dropped := q.deleteLocked()
	consumers := q.consumers
	q.consumers = nil
	clear(q.byConsumer)
	q.unlock()
	q.idx.forget(dropped)
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

// recover loads the queue's index entries from the store at start (see
// index.recover): the messages come back paged out, read on delivery.
func (q *Queue) recover() error {
	q.mu.Lock()
	defer q.unlock()
	last, err := q.idx.recover(q.pushLocked)
	q.nextSeq = max(q.nextSeq, last)
	return err
}

// Stats implements queue.Queue.
func (q *Queue) Stats() queue.Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := queue.Stats{Ready: q.ready.len(), Unacked: q.unacked, Consumers: len(q.consumers),
		Published: q.published.Load(), Delivered: q.delivered.Load(), ReadyBytes: q.readyBytes, Resident: q.resident}
	if q.lastUsed != 0 {
		s.LastUsed = time.UnixMilli(q.lastUsed)
	}
	return s
}

// Settings implements queue.Queue.
func (q *Queue) Settings() queue.Settings {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.settings
}

// SetSettings implements queue.Queue. A lower length limit drops (and
// dead-letters) the oldest ready messages at once when the queue drops at
// its head, as RabbitMQ does on a policy change.
func (q *Queue) SetSettings(s queue.Settings) {
	q.mu.Lock()
	defer q.unlock()
	s.MaxPriority, s.SingleActiveConsumer, s.Deduplicate = q.settings.MaxPriority, q.settings.SingleActiveConsumer, q.settings.Deduplicate
	q.settings = s
	q.trimLocked()
}

// trimLocked drops the oldest ready messages (dead-lettering them) while a
// drop-head queue is past its length limit.
func (q *Queue) trimLocked() {
	for q.settings.Overflow == queue.DropHead && q.ready.len() > 0 && q.fullLocked(0, 0) {
		q.dropLocked(q.popLocked(), queue.ReasonMaxLen)
	}
}
