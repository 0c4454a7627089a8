package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Entries calls fn for every stored index entry of queue queueID, in sequence
// order. meta is valid only during fn. Entries still waiting in a batch are
// not seen: it is meant for recovery and for paging entries that are known to
// be written. An error from fn stops the walk and is returned.
func (s *Store) Entries(queueID uint64, fn func(seq, msgID uint64, meta []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	prefix := appendEntryPrefix(make([]byte, 0, 9), queueID)
	err := s.db.View(func(txn *badger.Txn) error {
		// Entries are stored inline in the LSM tree (they are smaller than
		// the value threshold), so with PrefetchValues off reading a value
		// is a copy from the block already in hand, never a value-log read.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			_, seq, ok := parseEntryKey(item.Key())
			if !ok {
				continue
			}
			err := item.Value(func(v []byte) error {
				if len(v) < 8 {
					return fmt.Errorf("entry %d/%d: value of %d bytes", queueID, seq, len(v))
				}
				return fn(seq, binary.BigEndian.Uint64(v), v[8:])
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence: entries of queue %d: %w", queueID, err)
	}
	return nil
}

// Queues calls fn with the id of every queue that has stored entries, in
// increasing order. Recovery uses it to find entries of queues that no longer
// exist (and drop them with DeleteQueue).
func (s *Store) Queues(fn func(queueID uint64) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixEntry}})
		defer it.Close()
		seek := make([]byte, 0, entryKeyLen)
		for it.Rewind(); it.Valid(); {
			q, _, ok := parseEntryKey(it.Item().Key())
			if !ok {
				it.Next()
				continue
			}
			if err := fn(q); err != nil {
				return err
			}
			if q == ^uint64(0) {
				return nil
			}
			it.Seek(appendEntryPrefix(seek[:0], q+1))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence: list queues: %w", err)
	}
	return nil
}

// DeleteQueue deletes every index entry of queue queueID: those written and
// those still pending. It is for queue.delete and queue.purge: entries put
// after DeleteQueue returns survive, so a purged queue goes on with new
// (never reused) sequence numbers. Message bodies are the caller's to delete.
//
// The entries are deleted in transactions of bounded size, from a snapshot
// taken by the committer just before the batch that follows the call; the
// deletion is synced before DeleteQueue returns (when Options.Sync).
func (s *Store) DeleteQueue(queueID uint64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()

	req := &dropRequest{queue: queueID, ready: make(chan struct{})}
	b := s.lockPending()
	if b == nil {
		return ErrClosed
	}
	wasReady := s.readyLocked(b)
	// Backwards: cancel may drop the tail operation.
	for i := len(b.ops) - 1; i >= 0; i-- {
		if o := &b.ops[i]; o.kind == opPutEntry && !o.cancelled && o.queue == queueID {
			b.cancel(opKey{prefixEntry, o.queue, o.seq})
		}
	}
	b.ops = append(b.ops, op{kind: opDropQueue, queue: queueID, drop: req})
	b.drops++
	s.unlockPending(b, wasReady, true)

	<-req.ready
	defer req.snap.Discard()
	n, err := s.deleteEntries(req.snap, queueID)
	if err != nil {
		return fmt.Errorf("persistence: delete queue %d (%d entries deleted): %w", queueID, n, err)
	}
	return nil
}

// deleteEntries deletes the entries of queueID that snap sees, dropChunk per
// transaction, and returns how many it deleted.
func (s *Store) deleteEntries(snap *badger.Txn, queueID uint64) (int, error) {
	prefix := appendEntryPrefix(make([]byte, 0, 9), queueID)
	it := snap.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()

	keys := make([]byte, 0, dropChunk*entryKeyLen)
	total := 0
	it.Rewind()
	for it.Valid() {
		keys = keys[:0]
		for ; it.Valid() && len(keys) < dropChunk*entryKeyLen; it.Next() {
			keys = append(keys, it.Item().Key()...)
		}
		n, err := s.deleteKeys(len(keys)/entryKeyLen, func(i int) []byte {
			return keys[i*entryKeyLen : (i+1)*entryKeyLen : (i+1)*entryKeyLen]
		})
		total += n
		if err != nil {
			return total, err
		}
	}
	if total > 0 && !s.opts.Sync {
		if err := s.db.Sync(); err != nil {
			return total, err
		}
	}
	s.deletes.Add(uint64(total))
	return total, nil
}

// deleteKeys deletes the count keys key returns, in one transaction unless
// they exceed Badger's transaction limit, without syncing; it returns how
// many it deleted (also when it fails part way).
func (s *Store) deleteKeys(count int, key func(i int) []byte) (int, error) {
	if count == 0 {
		return 0, nil
	}
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.lastWrite.Store(time.Now().UnixNano())
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	n, done := 0, 0
	for i := range count {
		k := key(i)
		err := txn.Delete(k)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return done, err
			}
			done = n
			txn = s.db.NewTransaction(true)
			err = txn.Delete(k)
		}
		if err != nil {
			return done, err
		}
		n++
	}
	if err := txn.Commit(); err != nil {
		return done, err
	}
	return n, nil
}
