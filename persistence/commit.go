package persistence

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Ticket names one group-commit batch. Batches are numbered 1, 2, 3... in the
// order they are written; every write operation returns the ticket of the
// batch it joined. Ticket 0 precedes every batch and is always complete.
type Ticket uint64

// closedTicket is what write operations return once the store is closing; no
// batch ever has it, and Notify reports ErrClosed for it.
const closedTicket = Ticket(math.MaxUint64)

// A Waiter is told when a batch it was registered for with Store.Notify has
// completed.
//
// Synced(upTo, err) means every batch up to and including upTo has been
// written, and err is the outcome of batch upTo: nil if it is durable (synced
// when Options.Sync), the write or sync error otherwise. A failed batch may
// have been written in part.
//
// Synced is called from the committer goroutine (or, when the batch had
// already completed, from the goroutine calling Notify), and the next batch
// is not written until it returns: it must be quick and must not block. It
// may call the store's non-blocking methods (the Put/Delete operations,
// Notify, Message, Entries) but not those that wait for the committer
// (PutDefinition, DeleteDefinition, DeleteQueue, Close). Calls for the
// batches of one Waiter arrive in ticket order as long as that Waiter is
// registered from one goroutine at a time.
type Waiter interface {
	Synced(upTo Ticket, err error)
}

// opKind is the kind of a queued write.
type opKind uint8

const (
	opPutMessage opKind = iota + 1
	opDeleteMessage
	opPutEntry
	opDeleteEntry
	opPutDefinition
	opDeleteDefinition
	opDropQueue
	opCompactBodies
)

var opNames = [...]string{
	opPutMessage:       "put message",
	opDeleteMessage:    "delete message",
	opPutEntry:         "put entry",
	opDeleteEntry:      "delete entry",
	opPutDefinition:    "put definition",
	opDeleteDefinition: "delete definition",
	opDropQueue:        "drop queue",
	opCompactBodies:    "compact body segments",
}

func (k opKind) String() string {
	if int(k) < len(opNames) && opNames[k] != "" {
		return opNames[k]
	}
	return fmt.Sprintf("opKind(%d)", k)
}

// op is one queued write. Only the fields its kind needs are set.
type op struct {
	kind      opKind
	cancelled bool   // a later delete in the same pending batch undid it
	defKind   Kind   // definitions
	id        uint64 // message id (messages and entries)
	queue     uint64 // entries
	seq       uint64 // entries
	name      string // definitions
	data      []byte // body, entry meta (copied) or definition value
	drop      *dropRequest
}

func (o *op) String() string {
	switch o.kind {
	case opPutMessage, opDeleteMessage:
		return fmt.Sprintf("%v %d", o.kind, o.id)
	case opPutEntry, opDeleteEntry:
		return fmt.Sprintf("%v %d/%d", o.kind, o.queue, o.seq)
	case opPutDefinition, opDeleteDefinition:
		return fmt.Sprintf("%v %c/%q", o.kind, o.defKind, o.name)
	default:
		return o.kind.String()
	}
}

// opKey identifies the record a put writes, for cancellation.
type opKey struct {
	space byte
	a, b  uint64
}

// dropRequest carries DeleteQueue's snapshot from the committer to the
// goroutine that deletes the entries.
type dropRequest struct {
	queue uint64
	snap  *badger.Txn   // read view taken just before the batch was written
	ready chan struct{} // closed once snap is set and the batch written
}

// batch is one group commit: the operations queued while the previous batch
// was being written, and the waiters to tell when it is done.
type batch struct {
	ticket   Ticket
	ops      []op
	puts     map[opKey]int32 // live puts of this batch, by record, for cancellation
	arena    []byte          // copies of entry metadata
	waiters  []Waiter
	drops    int   // opDropQueue ops
	urgent   bool  // holds a put, a definition, a queue drop or a waiter: write it now
	needSync bool  // holds a definition: sync even when !Options.Sync
	bytes    int64 // payload bytes queued
	invalid  error // operations refused at enqueue time
}

func newBatch(t Ticket) *batch {
	return &batch{ticket: t, puts: make(map[opKey]int32)}
}

func (b *batch) empty() bool { return len(b.ops) == 0 && len(b.waiters) == 0 }

// reset empties b for reuse, dropping buffers that a burst made very large.
func (b *batch) reset() {
	if cap(b.ops) > keepOps {
		b.ops = nil
	} else {
		clear(b.ops) // release bodies and requests
		b.ops = b.ops[:0]
	}
	if len(b.puts) > keepOps {
		b.puts = make(map[opKey]int32)
	} else {
		clear(b.puts)
	}
	if cap(b.arena) > keepBytes {
		b.arena = nil
	} else {
		b.arena = b.arena[:0]
	}
	clear(b.waiters)
	b.waiters = b.waiters[:0]
	b.drops, b.urgent, b.needSync, b.bytes, b.invalid = 0, false, false, 0, nil
}

// cancel marks the live put of k in b as undone and reports whether there was
// one.
func (b *batch) cancel(k opKey) bool {
	i, ok := b.puts[k]
	if !ok {
		return false
	}
	delete(b.puts, k)
	o := &b.ops[i]
	b.bytes -= int64(len(o.data))
	if int(i) == len(b.ops)-1 {
		// The usual case of a message acked at once: its puts are the
		// last operations. Drop them so the batch does not grow.
		*o = op{}
		b.ops = b.ops[:i]
		return true
	}
	o.cancelled = true
	o.data = nil // do not keep the body alive until the batch is taken
	return true
}

// lockPending locks s.mu and returns the pending batch, or nil (unlocked) if
// the store no longer accepts writes.
func (s *Store) lockPending() *batch {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil
	}
	return s.pending
}

// Deletes of acknowledged messages have no waiter: nothing is confirmed by
// them, and losing the last few to a crash only redelivers what was acked
// (as on RabbitMQ). A batch holding only deletes is therefore not written at
// once but when it reaches lazyDeleteOps operations, when something urgent
// joins it, or lazyDeleteDelay after its first delete, so that draining a
// backlog costs one write and sync per thousands of acks, not per ack.
const (
	lazyDeleteOps   = 4096
	lazyDeleteDelay = 100 * time.Millisecond
)

// readyLocked reports whether the committer should take b now.
func (s *Store) readyLocked(b *batch) bool {
	return b.urgent || len(b.ops) >= lazyDeleteOps || s.flushDue && len(b.ops) > 0
}

// unlockPending unlocks s.mu after b was changed, marking it urgent unless
// the change was a lazy delete, and wakes the committer when b became
// ready; for a batch of lazy deletes it arms the flush timer.
func (s *Store) unlockPending(b *batch, wasReady, urgent bool) Ticket {
	if urgent {
		b.urgent = true
	}
	s.backlog.Store(b.bytes)
	t := b.ticket
	ready := s.readyLocked(b)
	arm := !ready && len(b.ops) > 0 && !s.flushArmed
	if arm {
		s.flushArmed = true
	}
	s.mu.Unlock()
	if ready && !wasReady {
		s.cond.Signal()
	}
	if arm {
		time.AfterFunc(lazyDeleteDelay, s.flushLazy)
	}
	return t
}

// flushLazy lets the committer take a batch of lazy deletes.
func (s *Store) flushLazy() {
	s.mu.Lock()
	s.flushArmed = false
	s.flushDue = true
	ready := s.readyLocked(s.pending)
	s.mu.Unlock()
	if ready {
		s.cond.Signal()
	}
}

// PutMessage queues the body of message msgID for writing and returns its
// batch. data is kept, not copied: it must not change until the batch has
// completed (bodies are immutable in Warren). Write the message before the
// index entries that name it.
func (s *Store) PutMessage(msgID uint64, data []byte) Ticket {
	b := s.lockPending()
	if b == nil {
		return closedTicket
	}
	wasReady := s.readyLocked(b)
	if int64(len(data)) > s.opts.ValueLogFileSize {
		b.invalid = errors.Join(b.invalid, fmt.Errorf("persistence: message %d: body of %d bytes: %w",
			msgID, len(data), ErrTooLarge))
		b.ops = append(b.ops, op{kind: opPutMessage, cancelled: true})
		return s.unlockPending(b, wasReady, true)
	}
	b.puts[opKey{prefixMessage, msgID, 0}] = int32(len(b.ops))
	b.ops = append(b.ops, op{kind: opPutMessage, id: msgID, data: data})
	b.bytes += opBytes + int64(len(data))
	return s.unlockPending(b, wasReady, true)
}

// DeleteMessage queues the deletion of message msgID. If its PutMessage is
// still in the pending batch, both are dropped and nothing is written.
func (s *Store) DeleteMessage(msgID uint64) Ticket {
	b := s.lockPending()
	if b == nil {
		return closedTicket
	}
	wasReady := s.readyLocked(b)
	if !b.cancel(opKey{prefixMessage, msgID, 0}) {
		b.ops = append(b.ops, op{kind: opDeleteMessage, id: msgID})
	}
	return s.unlockPending(b, wasReady, false)
}

// PutEntry queues index entry seq of queue queueID, naming message msgID with
// caller metadata meta (copied; at most MaxEntryMeta bytes, else the batch
// fails). Sequence numbers of a queue must not be reused, not even after
// DeleteQueue.
//
// A delete cancels a pending put on the assumption that the put is the first
// write of its record. To replace an entry that may already be stored (new
// meta for the same seq), DeleteEntry it first and then PutEntry: the delete
// is then written even if a later DeleteEntry cancels the new put. The same
// holds for PutMessage.
func (s *Store) PutEntry(queueID, seq, msgID uint64, meta []byte) Ticket {
	b := s.lockPending()
	if b == nil {
		return closedTicket
	}
	wasReady := s.readyLocked(b)
	if len(meta) > MaxEntryMeta {
		b.invalid = errors.Join(b.invalid, fmt.Errorf("persistence: entry %d/%d: meta of %d bytes: %w",
			queueID, seq, len(meta), ErrTooLarge))
		b.ops = append(b.ops, op{kind: opPutEntry, cancelled: true})
		return s.unlockPending(b, wasReady, true)
	}
	start := len(b.arena)
	b.arena = append(b.arena, meta...)
	end := len(b.arena)
	b.puts[opKey{prefixEntry, queueID, seq}] = int32(len(b.ops))
	b.ops = append(b.ops, op{kind: opPutEntry, queue: queueID, seq: seq, id: msgID, data: b.arena[start:end:end]})
	b.bytes += opBytes + int64(8+len(meta))
	return s.unlockPending(b, wasReady, true)
}

// DeleteEntry queues the deletion of index entry seq of queue queueID. If its
// PutEntry is still in the pending batch, both are dropped and nothing is
// written.
func (s *Store) DeleteEntry(queueID, seq uint64) Ticket {
	b := s.lockPending()
	if b == nil {
		return closedTicket
	}
	wasReady := s.readyLocked(b)
	if !b.cancel(opKey{prefixEntry, queueID, seq}) {
		b.ops = append(b.ops, op{kind: opDeleteEntry, queue: queueID, seq: seq})
	}
	return s.unlockPending(b, wasReady, false)
}

// Synced returns the highest ticket whose batch has completed (durable or
// failed). Every lower ticket has completed too.
func (s *Store) Synced() Ticket {
	return Ticket(s.synced.Load())
}

// Pending returns the number of operations and payload bytes waiting in the
// pending batch. Callers use it for backpressure: the store itself never
// blocks a writer.
func (s *Store) Pending() (ops int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending.ops), s.pending.bytes
}

// Backlog returns the payload bytes waiting in the pending batch and that
// batch's ticket: a caller past its budget waits for the ticket (Notify)
// before queuing more. BacklogBytes is the cheap first check.
func (s *Store) Backlog() (bytes int64, t Ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending.bytes, s.pending.ticket
}

// BacklogBytes returns the payload bytes waiting in the pending batch,
// without taking the store's lock.
func (s *Store) BacklogBytes() int64 { return s.backlog.Load() }

// Notify calls w.Synced once the batch of ticket t has completed: at once, in
// this goroutine, if it already has; later from the committer otherwise. A
// ticket of a closed store is reported with ErrClosed.
//
// Every call registers w once more: the store does not deduplicate. A caller
// that issues many operations should register each Waiter once per ticket,
// e.g. keep the last ticket registered and call Notify only when a new
// operation returns a different one. Since tickets returned to one goroutine
// never decrease, that is a single comparison.
func (s *Store) Notify(t Ticket, w Waiter) {
	s.mu.Lock()
	if t <= Ticket(s.synced.Load()) {
		err := s.outcomeLocked(t)
		s.mu.Unlock()
		w.Synced(t, err)
		return
	}
	var b *batch
	switch {
	case s.inflight != nil && t == s.inflight.ticket:
		b = s.inflight
	case !s.exited && t == s.pending.ticket:
		b = s.pending
	}
	if b == nil {
		err := ErrClosed
		if !s.stopping && t != closedTicket {
			err = fmt.Errorf("persistence: ticket %d not issued yet: %w", t, ErrInvalidTicket)
		}
		s.mu.Unlock()
		w.Synced(t, err)
		return
	}
	signal := false
	if b == s.pending {
		// Someone waits for this batch: it is written now.
		signal = !s.readyLocked(b)
		b.urgent = true
	}
	b.waiters = append(b.waiters, w)
	s.mu.Unlock()
	if signal {
		s.cond.Signal()
	}
}

// failure is the remembered outcome of a failed batch.
type failure struct {
	ticket Ticket
	err    error
}

// outcomeLocked returns the error of completed batch t.
// FirstFailure returns the first batch after ticket after that failed,
// and its error; (0, nil) when none has. A caller whose operations span
// several batches, but that waits on the last, learns this way that an
// earlier one failed.
func (s *Store) FirstFailure(after Ticket) (Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if after < s.forgotten {
		return s.forgotten, fmt.Errorf("persistence: batches up to %d: %w", s.forgotten, ErrOutcomeUnknown)
	}
	for _, f := range s.failures {
		if f.ticket > after {
			return f.ticket, f.err
		}
	}
	return 0, nil
}

func (s *Store) outcomeLocked(t Ticket) error {
	for _, f := range s.failures {
		if f.ticket == t {
			return f.err
		}
	}
	if t != 0 && t <= s.forgotten {
		return fmt.Errorf("persistence: batch %d: %w", t, ErrOutcomeUnknown)
	}
	return nil
}

func (s *Store) rememberFailureLocked(t Ticket, err error) {
	if len(s.failures) == rememberedFailures {
		s.forgotten = s.failures[0].ticket
		copy(s.failures, s.failures[1:])
		s.failures = s.failures[:len(s.failures)-1]
	}
	s.failures = append(s.failures, failure{t, err})
}

// commitLoop is the committer goroutine: it takes the pending batch, writes
// and syncs it, then tells its waiters, for as long as the store is open, and
// drains what is pending when it closes.
func (s *Store) commitLoop() {
	defer close(s.commitDone)
	spare := newBatch(0)
	var lastLog time.Time
	var unlogged int
	for {
		s.mu.Lock()
		for !s.readyLocked(s.pending) && !s.stopping {
			s.cond.Wait()
		}
		if s.pending.empty() {
			if s.stopping {
				s.exited = true
				s.mu.Unlock()
				return
			}
			// Urgent once, but its puts were cancelled: nothing to write.
			s.pending.urgent = false
			s.mu.Unlock()
			continue
		}
		b := s.pending
		spare.ticket = b.ticket + 1
		s.pending, s.inflight = spare, b
		s.flushDue = false
		s.backlog.Store(0)
		s.mu.Unlock()

		if b.drops > 0 {
			for i := range b.ops {
				if d := b.ops[i].drop; d != nil {
					d.snap = s.db.NewTransaction(false)
				}
			}
		}
		err := s.writeBatch(b)
		if b.invalid != nil {
			err = errors.Join(b.invalid, err)
		}
		if b.drops > 0 {
			for i := range b.ops {
				if d := b.ops[i].drop; d != nil {
					close(d.ready)
				}
			}
		}

		s.mu.Lock()
		if err != nil {
			s.rememberFailureLocked(b.ticket, err)
		}
		s.synced.Store(uint64(b.ticket))
		s.inflight = nil
		s.mu.Unlock()

		if err != nil {
			// A failing disk fails every batch: log the first failure and
			// then at most one line a second.
			if now := time.Now(); now.Sub(lastLog) >= time.Second {
				s.log.Error("group commit failed", "ticket", uint64(b.ticket), "ops", len(b.ops),
					"suppressed", unlogged, "err", err)
				lastLog, unlogged = now, 0
			} else {
				unlogged++
			}
		}
		for _, w := range b.waiters {
			w.Synced(b.ticket, err)
		}
		b.reset()
		spare = b
	}
}

// writeBatch writes the live operations of b in one transaction (more if b
// exceeds Badger's transaction limit) and syncs them as Options.Sync and the
// batch ask.
func (s *Store) writeBatch(b *batch) error {
	live := 0
	for i := range b.ops {
		if !b.ops[i].cancelled && b.ops[i].kind != opDropQueue {
			live++
		}
	}
	if live == 0 {
		return nil
	}
	s.gate.RLock()
	defer s.gate.RUnlock()
	defer s.resetScratch()
	s.lastWrite.Store(time.Now().UnixNano())

	// Bodies in segments are written (and synced when the batch is
	// durable) before the pointers to them are committed.
	// Each transaction's changes to the segments' accounting are settled
	// when it commits; a failed one's are undone (the deferred settle).
	durable := s.opts.Sync || b.needSync
	defer s.bodies.settle(false)
	commit := func(txn *badger.Txn) error {
		if err := s.bodies.write(durable); err != nil {
			txn.Discard()
			return err
		}
		if err := txn.Commit(); err != nil {
			return err
		}
		s.bodies.settle(true)
		return nil
	}

	deletes, puts, inline := 0, 0, 0
	txn := s.db.NewTransaction(true)
	for i := range b.ops {
		o := &b.ops[i]
		if o.cancelled || o.kind == opDropQueue {
			continue
		}
		err := s.apply(txn, o)
		if errors.Is(err, badger.ErrTxnTooBig) {
			// Commit what fits and go on in a new transaction.
			if err := commit(txn); err != nil {
				return fmt.Errorf("persistence: commit part of batch %d: %w", b.ticket, err)
			}
			txn = s.db.NewTransaction(true)
			err = s.apply(txn, o)
		}
		if err != nil {
			txn.Discard()
			return fmt.Errorf("persistence: batch %d: %v: %w", b.ticket, o, err)
		}
		switch o.kind {
		case opDeleteMessage, opDeleteEntry:
			deletes++
		case opPutMessage:
			puts++
			if int64(len(o.data)) < s.opts.ValueThreshold {
				inline += len(o.data)
			}
		case opPutEntry:
			puts++
		}
	}
	if err := commit(txn); err != nil {
		return fmt.Errorf("persistence: commit batch %d: %w", b.ticket, err)
	}
	if b.needSync && !s.opts.Sync {
		if err := s.db.Sync(); err != nil {
			return fmt.Errorf("persistence: sync batch %d: %w", b.ticket, err)
		}
	}
	s.deletes.Add(uint64(deletes))
	s.puts.Add(uint64(puts))
	s.inlineBytes.Add(uint64(inline))
	return nil
}

// apply adds o to txn. Keys, entry values and Badger entries are built in
// committer-owned scratch buffers reused across batches.
func (s *Store) apply(txn *badger.Txn, o *op) error {
	start := len(s.keys)
	switch o.kind {
	case opPutMessage:
		if int64(len(o.data)) >= s.opts.ValueThreshold {
			return s.applyBody(txn, o)
		}
		s.keys = appendMessageKey(s.keys, o.id)
	case opDeleteMessage:
		if ref, ok := s.bodies.lookup(o.id); ok {
			s.keys = appendBodyKey(s.keys, o.id)
			if err := txn.Delete(s.keys[start:len(s.keys):len(s.keys)]); err != nil {
				return err
			}
			s.bodies.free(o.id, ref)
			return nil
		}
		s.keys = appendMessageKey(s.keys, o.id)
	case opPutEntry, opDeleteEntry:
		s.keys = appendEntryKey(s.keys, o.queue, o.seq)
	case opPutDefinition, opDeleteDefinition:
		s.keys = appendDefinitionKey(s.keys, o.defKind, o.name)
	case opCompactBodies:
		return s.compactBodies(txn)
	default:
		return fmt.Errorf("persistence: unknown operation %v", o.kind)
	}
	key := s.keys[start:len(s.keys):len(s.keys)]

	switch o.kind {
	case opDeleteMessage, opDeleteEntry, opDeleteDefinition:
		return txn.Delete(key)
	}
	value := o.data
	if o.kind == opPutEntry {
		vs := len(s.vals)
		s.vals = appendEntryValue(s.vals, o.id, o.data)
		value = s.vals[vs:len(s.vals):len(s.vals)]
	}
	// Badger keeps a pointer to the entry until the commit and writes its
	// internal fields (version, key with timestamp): every entry starts from
	// a zero value.
	s.entries = append(s.entries, badger.Entry{Key: key, Value: value})
	return txn.SetEntry(&s.entries[len(s.entries)-1])
}

// compactBodies moves up to maxBodyMoves live bodies out of segments that
// are mostly garbage into the current segment, with their new pointers in
// txn; settle then deletes the segments it emptied. It reports how many it
// moved in s.bodyMoves. It runs in the committer, between the operations
// of its batch: a delete later in the batch finds the body where it moved.
// A body it cannot read is left where it is, with a warning.
func (s *Store) compactBodies(txn *badger.Txn) error {
	l := s.bodies
	victims := map[uint32]bool{}
	for id, seg := range l.segs {
		if id != l.cur && seg.live > 0 && float64(seg.liveBytes) < (1-s.opts.GCDiscardRatio)*float64(seg.size) {
			victims[id] = true
		}
	}
	if len(victims) == 0 {
		return nil
	}
	for id, old := range l.where {
		if !victims[old.seg] {
			continue
		}
		// A buffer of its own: the segment write takes bodies as they are.
		body, err := l.readLocked(id, old, nil)
		if err != nil {
			s.log.Warn("segment compaction skips a body it cannot read", "err", err)
			continue
		}
		if err := s.applyBody(txn, &op{kind: opPutMessage, id: id, data: body}); err != nil {
			if errors.Is(err, badger.ErrTxnTooBig) {
				return nil // the rest next time
			}
			return err
		}
		l.free(id, old)
		if s.bodyMoves++; s.bodyMoves == maxBodyMoves {
			return nil
		}
	}
	return nil
}

// applyBody adds a put of a large body to txn: the body goes to a segment
// (written before txn commits), the pointer to it to txn.
func (s *Store) applyBody(txn *badger.Txn, o *op) error {
	ref, err := s.bodies.place(len(o.data))
	if err != nil {
		return err
	}
	start := len(s.keys)
	s.keys = appendBodyKey(s.keys, o.id)
	vs := len(s.vals)
	s.vals = ref.encode(s.vals)
	s.entries = append(s.entries, badger.Entry{Key: s.keys[start:len(s.keys):len(s.keys)], Value: s.vals[vs:len(s.vals):len(s.vals)]})
	if err := txn.SetEntry(&s.entries[len(s.entries)-1]); err != nil {
		return err
	}
	s.bodies.put(o.id, o.data, ref)
	return nil
}

func (s *Store) resetScratch() {
	if cap(s.keys) > keepBytes {
		s.keys = nil
	} else {
		s.keys = s.keys[:0]
	}
	if cap(s.vals) > keepBytes {
		s.vals = nil
	} else {
		s.vals = s.vals[:0]
	}
	if cap(s.entries) > keepOps {
		s.entries = nil
	} else {
		clear(s.entries)
		s.entries = s.entries[:0]
	}
}
