package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// sequence hands out unique, increasing ids that stay above every id handed
// out before a restart. It persists an upper bound (the lease) and hands out
// ids below it from memory, so the fast path is one atomic add. Crossing the
// lease makes one synced write that raises it by bandwidth.
type sequence struct {
	s         *Store
	key       []byte
	bandwidth uint64
	next      atomic.Uint64 // next id to hand out
	leased    atomic.Uint64 // ids below this are covered by the persisted lease
	mu        sync.Mutex    // serialises lease extensions
}

// initSequences loads both sequences. A sequence starts at its persisted
// lease, raised above the largest id found in the data in case a lease write
// was lost (Options.Sync false and a power failure, or a failed write).
func (s *Store) initSequences() error {
	var maxMsg, maxQueue uint64
	err := s.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []byte{prefixMessage, prefixBody} {
			if k, err := lastKey(txn, []byte{prefix}, messageKeyLen); err != nil {
				return err
			} else if id, ok := parseMessageKey(k); ok {
				maxMsg = max(maxMsg, id)
			}
		}
		if k, err := lastKey(txn, []byte{prefixEntry}, entryKeyLen); err != nil {
			return err
		} else if q, _, ok := parseEntryKey(k); ok {
			maxQueue = q
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence: scan ids: %w", err)
	}
	if err := s.msgIDs.init(s, keyMessageLease, messageIDLease, maxMsg+1); err != nil {
		return err
	}
	return s.queueIDs.init(s, keyQueueLease, queueIDLease, maxQueue+1)
}

// lastKey returns a copy of the largest key of length n under prefix, or nil.
func lastKey(txn *badger.Txn, prefix []byte, n int) ([]byte, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
	defer it.Close()
	seek := append([]byte(nil), prefix...)
	for len(seek) < n {
		seek = append(seek, 0xff)
	}
	for it.Seek(seek); it.Valid(); it.Next() {
		if k := it.Item().Key(); len(k) == n {
			return it.Item().KeyCopy(nil), nil
		}
	}
	return nil, nil
}

func (q *sequence) init(s *Store, key []byte, bandwidth, floor uint64) error {
	q.s, q.key, q.bandwidth = s, key, bandwidth
	start := max(floor, 1) // 0 is never an id
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("lease of %d bytes", len(v))
			}
			start = max(start, binary.BigEndian.Uint64(v))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("persistence: load sequence %q: %w", key, err)
	}
	q.next.Store(start)
	q.leased.Store(start) // the first id extends the lease
	return nil
}

// Next returns the next id.
func (q *sequence) Next() uint64 {
	id := q.next.Add(1) - 1
	if id < q.leased.Load() {
		return id
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if id < q.leased.Load() {
		return id
	}
	lease := id + q.bandwidth
	if err := q.persist(lease); err != nil {
		// The ids stay unique in this process and, since Open starts
		// above the largest stored id, above every id that reached the
		// disk. Go on and retry at the next lease.
		q.s.log.Error("id lease not persisted", "sequence", string(q.key), "lease", lease, "err", err)
	}
	q.leased.Store(lease)
	return id
}

// persist durably records lease as the sequence's upper bound.
func (q *sequence) persist(lease uint64) error {
	if err := q.s.enter(); err != nil {
		return err
	}
	defer q.s.leave()
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], lease)
	q.s.gate.RLock()
	defer q.s.gate.RUnlock()
	err := q.s.db.Update(func(txn *badger.Txn) error { return txn.Set(q.key, v[:]) })
	if err == nil && !q.s.opts.Sync {
		err = q.s.db.Sync()
	}
	return err
}

// NextMessageID returns a new message id: unique and increasing, also across
// restarts (ids are leased from a persisted bound, never from the clock).
// Ids start at 1.
func (s *Store) NextMessageID() uint64 { return s.msgIDs.Next() }

// NextQueueID returns a new queue id, with the guarantees of NextMessageID.
func (s *Store) NextQueueID() uint64 { return s.queueIDs.Next() }
