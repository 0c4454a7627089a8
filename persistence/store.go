package persistence

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Errors returned by the store. Match them with errors.Is: they are wrapped
// with context.
var (
	// ErrClosed is returned (or reported to waiters) for work on a closed store.
	ErrClosed = errors.New("persistence: store closed")

	// ErrNotFound is returned by Message for an id that is not stored.
	ErrNotFound = errors.New("persistence: not found")

	// ErrTooLarge is returned for a key, value or entry meta beyond the limits.
	ErrTooLarge = errors.New("persistence: too large")

	// ErrInvalidTicket is reported by Notify for a ticket the store never issued.
	ErrInvalidTicket = errors.New("persistence: invalid ticket")

	// ErrOutcomeUnknown is reported by Notify for a batch that completed so
	// long ago (more than rememberedFailures failures since) that the store
	// no longer knows whether it failed.
	ErrOutcomeUnknown = errors.New("persistence: batch outcome no longer known")
)

// Kind is a caller-defined namespace of definitions, e.g. 'v' for vhosts, 'x'
// for exchanges, 'q' for queues, 'b' for bindings, 'u' for users. It is a
// plain byte so that callers can describe the definition methods in an
// interface of their own without importing this package.
type Kind = byte

// Store is Warren's durable store: definitions, message bodies and queue index
// entries in one Badger database, written by one group-commit goroutine. All
// methods are safe for concurrent use.
type Store struct {
	db     *badger.DB
	bodies *bodyLog // bodies of ValueThreshold bytes or more (bodies.go)
	wal    *raftWAL // the Raft groups' shared log (raftwal.go)
	opts   Options
	log    *slog.Logger

	// Group commit (commit.go). mu guards the fields up to commitDone.
	mu         sync.Mutex
	cond       sync.Cond    // on mu: pending became non-empty, or stopping
	pending    *batch       // accumulating; its ticket is the next to be written
	inflight   *batch       // being written, nil between batches
	stopping   bool         // no new writes; the committer drains and exits
	flushArmed bool         // a lazy-delete flush timer is running
	flushDue   bool         // the lazy-delete flush timer fired
	backlog    atomic.Int64 // payload bytes in the pending batch, for BacklogBytes
	exited     bool         // the committer has exited
	failures   []failure    // the last failed batches
	forgotten  Ticket       // highest failed ticket dropped from failures
	synced     atomic.Uint64
	commitDone chan struct{}

	// Committer-owned scratch, reused across batches.
	keys    []byte
	vals    []byte
	entries []badger.Entry

	// gate orders writes against Store.compact, which must have Badger's
	// writes quiet while it makes Badger flush its memtables: every write
	// holds it shared, compact holds it exclusively.
	gate sync.RWMutex

	// Ids (sequence.go).
	msgIDs   sequence
	queueIDs sequence

	// Garbage collection (gc.go).
	deletes          atomic.Uint64 // deletes written, ever
	puts             atomic.Uint64 // messages and entries written, ever
	inlineBytes      atomic.Uint64 // message bodies written inline in the LSM tree, ever
	lastWrite        atomic.Int64  // when the committer last wrote, in Unix ns
	gcMu             sync.Mutex    // one GC pass at a time; guards the next two
	deletesAtCompact uint64
	bodyMoves        int // bodies the last compaction step moved (committer-written)
	compactDeferrals int
	gcStop           chan struct{}
	gcDone           chan struct{}

	// Lifecycle: methods that use the database directly count themselves in
	// users; Close waits for them after setting closed.
	closed    atomic.Bool
	users     atomic.Int64
	drained   chan struct{}
	drainOnce sync.Once
}

// Open opens (creating if needed) the store in o.Dir and starts its committer
// and, unless o.GCInterval is negative, its garbage collector.
func Open(o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("persistence: create %s: %w", o.Dir, err)
	}
	db, err := badger.Open(o.badgerOptions())
	if err != nil {
		return nil, fmt.Errorf("persistence: open %s: %w", o.Dir, err)
	}
	log := o.Logger.With("component", "persistence")
	bodies, err := openBodyLog(filepath.Join(o.Dir, "bodies"), o.ValueLogFileSize, o.Sync, db, log.Warn)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	wal, err := openRaftWAL(filepath.Join(o.Dir, walDirName), o.ValueLogFileSize, log)
	if err != nil {
		return nil, errors.Join(err, bodies.close(), db.Close())
	}
	s := &Store{
		db:         db,
		bodies:     bodies,
		wal:        wal,
		opts:       o,
		log:        log,
		pending:    newBatch(1),
		commitDone: make(chan struct{}),
		gcStop:     make(chan struct{}),
		gcDone:     make(chan struct{}),
		drained:    make(chan struct{}),
	}
	s.cond.L = &s.mu
	if err := s.initSequences(); err != nil {
		return nil, errors.Join(err, wal.close(), bodies.close(), db.Close())
	}
	go s.commitLoop()
	if o.GCInterval > 0 {
		go s.gcLoop()
	} else {
		close(s.gcDone)
	}
	s.log.Info("store opened", "dir", o.Dir, "sync", o.Sync)
	return s, nil
}

// enter counts a caller that uses the database directly; it fails once Close
// has begun. Every successful enter is paired with leave.
func (s *Store) enter() error {
	s.users.Add(1)
	if s.closed.Load() {
		s.leave()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() {
	if s.users.Add(-1) == 0 && s.closed.Load() {
		s.drainOnce.Do(func() { close(s.drained) })
	}
}

// Close stops the garbage collector, waits for calls in progress, lets the
// committer write everything already queued (telling its waiters), and closes
// the database. Writes queued after Close began get a ticket that Notify
// reports with ErrClosed; other methods return ErrClosed. A second Close
// returns ErrClosed. Close must not be called from a Waiter.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	close(s.gcStop)
	<-s.gcDone
	if s.users.Load() != 0 {
		<-s.drained
	}

	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.cond.Broadcast()
	<-s.commitDone

	if err := errors.Join(s.wal.close(), s.bodies.close(), s.db.Close()); err != nil {
		return fmt.Errorf("persistence: close %s: %w", s.opts.Dir, err)
	}
	s.log.Info("store closed", "dir", s.opts.Dir)
	return nil
}

// doneWaiter is a one-shot Waiter for callers that block on their batch.
type doneWaiter chan error

func (d doneWaiter) Synced(_ Ticket, err error) { d <- err }

// Wait blocks until the batch of ticket t has completed and returns its
// outcome, as Notify would report it. It must not be called from a Waiter.
func (s *Store) Wait(t Ticket) error {
	done := make(doneWaiter, 1)
	s.Notify(t, done)
	return <-done
}

// writeSync queues o, which must make the batch synced, and waits for it.
func (s *Store) writeSync(o op) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	done := make(doneWaiter, 1)
	b := s.lockPending()
	if b == nil {
		return ErrClosed
	}
	wasReady := s.readyLocked(b)
	b.ops = append(b.ops, o)
	b.needSync = true
	b.waiters = append(b.waiters, done)
	s.unlockPending(b, wasReady, true)
	return <-done
}

// PutDefinition stores value under key in namespace kind, replacing any
// previous value. It returns once the write is synced, whatever Options.Sync.
func (s *Store) PutDefinition(kind Kind, key string, value []byte) error {
	if len(key) > MaxDefinitionKey {
		return fmt.Errorf("persistence: definition %c key of %d bytes: %w", kind, len(key), ErrTooLarge)
	}
	if int64(len(value)) > s.opts.ValueLogFileSize {
		return fmt.Errorf("persistence: definition %c/%q value of %d bytes: %w", kind, key, len(value), ErrTooLarge)
	}
	return s.writeSync(op{kind: opPutDefinition, defKind: kind, name: key, data: value})
}

// DeleteDefinition removes key from namespace kind (a no-op if absent). It
// returns once the deletion is synced.
func (s *Store) DeleteDefinition(kind Kind, key string) error {
	if len(key) > MaxDefinitionKey {
		return fmt.Errorf("persistence: definition %c key of %d bytes: %w", kind, len(key), ErrTooLarge)
	}
	return s.writeSync(op{kind: opDeleteDefinition, defKind: kind, name: key})
}

// Definitions calls fn for every definition of namespace kind, in key order.
// value is valid only during fn. An error from fn stops the walk and is
// returned.
func (s *Store) Definitions(kind Kind, fn func(key string, value []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	prefix := appendDefinitionPrefix(nil, kind)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			name := string(item.Key()[len(prefix):])
			if err := item.Value(func(v []byte) error { return fn(name, v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence: definitions %c: %w", kind, err)
	}
	return nil
}

// Message appends the stored body of message msgID to dst. A body still
// waiting in a batch is returned too. It returns ErrNotFound if there is none.
func (s *Store) Message(msgID uint64, dst []byte) ([]byte, error) {
	if err := s.enter(); err != nil {
		return dst, err
	}
	defer s.leave()

	s.mu.Lock()
	for _, b := range [2]*batch{s.pending, s.inflight} {
		if b == nil {
			continue
		}
		if i, ok := b.puts[opKey{prefixMessage, msgID, 0}]; ok {
			dst = append(dst, b.ops[i].data...)
			s.mu.Unlock()
			return dst, nil
		}
	}
	s.mu.Unlock()

	var kb [messageKeyLen]byte
	// The committer deletes a segment only with mu held: the body a
	// pointer names stays readable while it is held shared.
	s.bodies.mu.RLock()
	defer s.bodies.mu.RUnlock()
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(appendMessageKey(kb[:0], msgID))
		if err == nil {
			return item.Value(func(v []byte) error {
				dst = append(dst, v...)
				return nil
			})
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if item, err = txn.Get(appendBodyKey(kb[:0], msgID)); err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			ref, ok := decodeBodyRef(v)
			if !ok {
				return fmt.Errorf("persistence: message %d: bad body pointer", msgID)
			}
			dst, err = s.bodies.readLocked(msgID, ref, dst)
			return err
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return dst, fmt.Errorf("persistence: message %d: %w", msgID, ErrNotFound)
	}
	if err != nil {
		return dst, fmt.Errorf("persistence: read message %d: %w", msgID, err)
	}
	return dst, nil
}

// MessageIDs calls fn with the id of every stored message, reading keys
// only: those of small bodies in increasing order, then those of bodies in
// segments in increasing order. Recovery uses it to find bodies no entry names.
func (s *Store) MessageIDs(fn func(msgID uint64) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []byte{prefixMessage, prefixBody} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
			for it.Rewind(); it.Valid(); it.Next() {
				id, ok := parseMessageKey(it.Item().Key())
				if !ok {
					continue
				}
				if err := fn(id); err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence: list messages: %w", err)
	}
	return nil
}
