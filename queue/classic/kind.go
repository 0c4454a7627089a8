// Package classic is the classic queue kind: messages in order, consumers
// with prefetch credit, deliveries and their settlement, length limits, and
// the queue's side of persistence (index entries in the store, paging
// bodies out past a memory budget, recovery).
//
// A queue is a struct under its own lock, not a goroutine: whoever holds the
// work does it. A publisher's goroutine enqueues and, when a consumer has
// credit, delivers at once; an acknowledgement's goroutine frees credit and
// delivers the next message. Consumers are reached through queue.Sink,
// which the AMQP front end implements.
//
// One Kind serves a whole node: it holds the store, the reference counts of
// messages that several queues share, and the memory budgets past which
// queues page bodies out.
package classic

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
)

// Name is the kind's name in x-queue-type: the kind of a queue declared
// without one.
const Name = queue.DefaultKind

// Options configure a Kind.
type Options struct {
	// Store keeps durable queues' persistent messages and paged-out
	// bodies; nil keeps everything in memory.
	Store *persistence.Store
	Log   *slog.Logger
	// QueueBudget is the memory one queue's ready messages may take before
	// it pages new messages out: their bodies plus messageOverhead each;
	// GlobalBudget the same for all queues together. Zero or negative: no
	// paging.
	QueueBudget  int64
	GlobalBudget int64
	// Now is the clock message expiry reads; nil is time.Now.
	Now func() time.Time
}

// Kind is the classic kind of one node. It implements queue.Kind and, for
// the messages whose bodies it stores, queue.Holder.
type Kind struct {
	store  *persistence.Store
	log    *slog.Logger
	ledger *storeLedger
	clock  func() time.Time
	// Budgets: see Options.
	queueBudget, globalBudget int64

	charged atomic.Int64 // what ready messages in memory count against GlobalBudget, all queues
	refs    refs
	timers  timerGate

	// What recovery found, until FinishRecovery.
	recoverMu sync.Mutex
	recovered map[uint64]bool  // queue ids
	entries   map[uint64]int32 // message id: index entries naming it
}

// NewKind returns the classic kind for a node.
func NewKind(o Options) *Kind {
	k := &Kind{store: o.Store, log: o.Log, queueBudget: o.QueueBudget, globalBudget: o.GlobalBudget, clock: o.Now}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	if k.clock == nil {
		k.clock = time.Now
	}
	if k.store != nil {
		k.ledger = &storeLedger{st: k.store}
		k.timers.state = gateHolding // until FinishRecovery
	}
	return k
}

// New implements queue.Kind.
func (k *Kind) New(cfg queue.Config) (queue.Queue, error) {
	if cfg.ID == 0 && k.store != nil {
		cfg.ID = k.store.NextQueueID()
	}
	q := &Queue{cfg: cfg, kind: k, idx: newIndex(k, &cfg), byConsumer: map[*queue.Consumer]*consumer{}, ready: newReady(cfg.MaxPriority)}
	q.expiry = newDueTimer(&k.timers, q.expire)
	q.settings = cfg.Settings
	if cfg.Deduplicate {
		q.dedup = newDedupIndex()
	}
	if cfg.Recover && k.store != nil {
		if err := q.recover(); err != nil {
			return nil, fmt.Errorf("recovering queue %q: %w", cfg.Name, err)
		}
	}
	return q, nil
}

// now is the kind's clock in unix milliseconds.
func (k *Kind) now() int64 { return k.clock().UnixMilli() }

// Routed implements queue.Holder: the publish that stored m's body is done
// with it.
func (k *Kind) Routed(m *queue.Message) { k.release(m.ID) }

// release drops one reference to a stored message, deleting it from the
// store with the last.
func (k *Kind) release(id uint64) {
	if k.refs.release(id) {
		k.store.DeleteMessage(id)
	}
}

// noteRecovered records a recovered queue and the messages its entries
// name, for FinishRecovery.
func (k *Kind) noteRecovered(id uint64, msgIDs []uint64) {
	k.recoverMu.Lock()
	defer k.recoverMu.Unlock()
	if k.recovered == nil {
		k.recovered, k.entries = map[uint64]bool{}, map[uint64]int32{}
	}
	k.recovered[id] = true
	for _, m := range msgIDs {
		k.entries[m]++
	}
}

// FinishRecovery runs once every durable queue has been recovered (and
// every definition a message moved by a timer may need): it sets the
// reference counts of messages that several queues share, drops what no
// queue holds any more (index entries of queues that are gone, bodies no
// entry names), and then lets timers' work run: expiry and delayed
// messages that fell due while the node was down happen now.
func (k *Kind) FinishRecovery() error {
	if k.store == nil {
		return nil
	}
	if err := k.collect(); err != nil {
		return err
	}
	k.timers.open()
	return nil
}

// Stop ends the work of the kind's timers and waits for what runs: call
// it before the store closes. What is due afterwards stays in the store,
// to be dealt with after the next start.
func (k *Kind) Stop() { k.timers.close() }

// collect is FinishRecovery's bookkeeping: shared references set,
// what no queue holds dropped.
func (k *Kind) collect() error {
	k.recoverMu.Lock()
	recovered, entries := k.recovered, k.entries
	k.recovered, k.entries = nil, nil
	k.recoverMu.Unlock()
	for id, n := range entries {
		if n > 1 {
			k.refs.hold(id, n)
		}
	}
	var stale []uint64
	if err := k.store.Queues(func(id uint64) error {
		if !recovered[id] {
			stale = append(stale, id)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range stale {
		if err := k.store.DeleteQueue(id); err != nil {
			return err
		}
	}
	var orphans []uint64
	if err := k.store.MessageIDs(func(id uint64) error {
		if entries[id] == 0 {
			orphans = append(orphans, id)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range orphans {
		k.store.DeleteMessage(id)
	}
	return nil
}

// messageOverhead is what a message in memory costs a queue besides its
// body, for the budgets: its entry in the queue, its share of the message
// (properties, exchange, routing key) and the allocator's rounding.
// Counting bodies alone let a queue of small messages take several times
// its budget.
const messageOverhead = 256

// maxStoreBacklog is how many bytes may wait for the store's next write
// before publishers are asked to wait: the store holds message bodies until
// they are written, so this bounds that memory.
const maxStoreBacklog = 16 << 20

// backpressure is what a publisher that just wrote to the store must wait
// for: nothing while the store keeps up, the pending batch while it is
// over its budget.
func (k *Kind) backpressure() queue.Promise {
	if k.store.BacklogBytes() < maxStoreBacklog {
		return queue.Promise{}
	}
	if bytes, t := k.store.Backlog(); bytes >= maxStoreBacklog {
		return k.promise(t, t)
	}
	return queue.Promise{}
}

// promise is the promise that store batches first to last keep.
func (k *Kind) promise(first, last persistence.Ticket) queue.Promise {
	if last == 0 {
		return queue.Promise{}
	}
	return queue.Promise{Ledger: k.ledger, First: uint64(first), Last: uint64(last)}
}

// storeLedger is the store's group commit as a queue.Ledger: a position is
// a batch ticket.
type storeLedger struct{ st *persistence.Store }

func (l *storeLedger) Notify(at uint64, w queue.Waiter) {
	l.st.Notify(persistence.Ticket(at), ledgerWaiter{l, w})
}

func (l *storeLedger) Wait(at uint64) error { return l.st.Wait(persistence.Ticket(at)) }

func (l *storeLedger) FirstFailure(after uint64) (uint64, error) {
	t, err := l.st.FirstFailure(persistence.Ticket(after))
	return uint64(t), err
}

// ledgerWaiter passes the store's word on to a queue.Waiter.
type ledgerWaiter struct {
	l *storeLedger
	w queue.Waiter
}

func (lw ledgerWaiter) Synced(upTo persistence.Ticket, err error) { lw.w.Due(lw.l, uint64(upTo), err) }

// refs counts the index entries naming each stored message held by more
// than one queue (or by a queue and a publish under way); a message it does
// not know has exactly one. That keeps the common case out of the map.
type refs struct {
	mu sync.Mutex
	n  map[uint64]int32
}

// hold records that id has n references (n >= 2).
func (r *refs) hold(id uint64, n int32) {
	r.mu.Lock()
	if r.n == nil {
		r.n = map[uint64]int32{}
	}
	r.n[id] = n
	r.mu.Unlock()
}

// add adds one reference to id, which has at least one.
func (r *refs) add(id uint64) {
	r.mu.Lock()
	if r.n == nil {
		r.n = map[uint64]int32{}
	}
	if c, ok := r.n[id]; ok {
		r.n[id] = c + 1
	} else {
		r.n[id] = 2
	}
	r.mu.Unlock()
}

// release drops one reference to id and reports whether it was the last.
func (r *refs) release(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.n[id]
	switch {
	case !ok:
		return true
	case c <= 2:
		delete(r.n, id)
	default:
		r.n[id] = c - 1
	}
	return false
}

// Entry metadata in the store: flags, the body size, then the expiry
// (unix ms) and the priority when the flags say the entry has them.
const (
	metaTransient = 1 << 0 // a transient message paged out: not recovered
	metaExpires   = 1 << 1 // 8 bytes of expiry follow the size
	metaPriority  = 1 << 2 // 1 byte of priority follows
	metaLen       = 5
)

func appendMeta(b []byte, transient bool, e *queue.Entry) []byte {
	var flags byte
	if transient {
		flags |= metaTransient
	}
	if e.Expires != 0 {
		flags |= metaExpires
	}
	if e.Priority != 0 {
		flags |= metaPriority
	}
	b = binary.BigEndian.AppendUint32(append(b, flags), uint32(e.Size))
	if e.Expires != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(e.Expires))
	}
	if e.Priority != 0 {
		b = append(b, e.Priority)
	}
	return b
}

// entryMeta is an index entry's metadata.
type entryMeta struct {
	transient bool
	size      int64
	expires   int64
	priority  uint8
}

func parseMeta(meta []byte) entryMeta {
	if len(meta) < metaLen {
		return entryMeta{}
	}
	m := entryMeta{transient: meta[0]&metaTransient != 0, size: int64(binary.BigEndian.Uint32(meta[1:]))}
	rest := meta[metaLen:]
	if meta[0]&metaExpires != 0 && len(rest) >= 8 {
		m.expires = int64(binary.BigEndian.Uint64(rest))
		rest = rest[8:]
	}
	if meta[0]&metaPriority != 0 && len(rest) >= 1 {
		m.priority = rest[0]
	}
	return m
}
