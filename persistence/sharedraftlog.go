package persistence

import (
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// SharedRaftLog is the raft.LogStore of one Raft group in the node's Raft
// write-ahead log (raftwal.go), which all such groups share: their appends
// are written and synced together, and no entry goes through Badger. Its
// methods are safe for concurrent use, and any number of SharedRaftLog
// values for one group see the same log.
//
// The log is monotonic (raft.MonotonicLogStore): it never has a gap.
// StoreLogs refuses entries that start before the log, and entries that
// start past its end replace it; DeleteRange refuses to leave a hole.
// Raft appends, overwrites a suffix, deletes from the front after a
// snapshot and from the back to drop a conflicting suffix, and empties the
// log after installing a snapshot; if the node stops before that emptying,
// the next entries after the snapshot replace the stale log.
type SharedRaftLog struct {
	s     *Store
	group uint64
}

var (
	_ raft.LogStore          = (*SharedRaftLog)(nil)
	_ raft.MonotonicLogStore = (*SharedRaftLog)(nil)
)

// SharedRaftLog returns the log of Raft group group in the write-ahead log.
// If RaftLog kept the group's log in Badger (a data directory of an
// earlier version), it is moved to the write-ahead log first, and then
// deleted from Badger.
func (s *Store) SharedRaftLog(group uint64) (*SharedRaftLog, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("persistence: raft group %d: open log: %w", group, err)
	}
	defer s.leave()
	if err := s.moveRaftLog(group); err != nil {
		return nil, fmt.Errorf("persistence: raft group %d: move log from Badger: %w", group, err)
	}
	return &SharedRaftLog{s: s, group: group}, nil
}

// moveRaftLog moves group's log from Badger ('r' keys) to the write-ahead
// log. The mark 'w' | group says the write-ahead log has it all (written,
// synced, once the copy is): until the mark, Badger's copy is the log, and
// a move cut short starts again from an emptied log; after it, what is
// left in Badger is deleted, then the mark. Entries before a gap (raft
// leaves one in a log that is not monotonic when it installs a snapshot
// past the log's end) are not moved: the snapshot covers them.
func (s *Store) moveRaftLog(group uint64) error {
	prefix := raftGroupPrefix(prefixRaftLog, group)
	mark := raftGroupPrefix(prefixRaftMoved, group)
	var marked, found bool
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(mark)
		marked = err == nil
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		it.Rewind()
		found = it.Valid()
		return nil
	})
	if err != nil || !marked && !found {
		return err
	}
	if !marked {
		if err := s.copyRaftLog(group, prefix); err != nil {
			return err
		}
		if err := s.writeRaft([][]byte{mark, nil}, true); err != nil {
			return err
		}
	}
	if _, err := s.deleteRaftRange(prefix, prefix, nil); err != nil {
		return err
	}
	if err := s.syncRaft(); err != nil {
		return err
	}
	if _, err := s.deleteRaft([][]byte{mark}); err != nil {
		return err
	}
	return s.syncRaft()
}

// copyRaftLog stores group's Badger-held entries in the write-ahead log,
// replacing whatever that held of the group, moveChunk entries at a time.
func (s *Store) copyRaftLog(group uint64, prefix []byte) error {
	if err := s.wal.deleteRange(group, 0, math.MaxUint64); err != nil {
		return err
	}
	from := prefix
	for from != nil {
		var logs []*raft.Log
		var next []byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Seek(from); it.Valid(); it.Next() {
				item := it.Item()
				index, ok := raftLogIndex(item.Key())
				if !ok {
					continue
				}
				if len(logs) == moveChunk {
					next = item.KeyCopy(nil)
					return nil
				}
				l := &raft.Log{Index: index}
				if err := item.Value(func(v []byte) error { return decodeRaftLog(v, l) }); err != nil {
					return fmt.Errorf("entry %d: %w", index, err)
				}
				l.Index = index
				logs = append(logs, l)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for len(logs) > 0 {
			// The run up to a gap; after a gap, the log starts again
			// (storeLogs replaces it).
			n := 1
			for n < len(logs) && logs[n].Index == logs[n-1].Index+1 {
				n++
			}
			if err := s.wal.storeLogs(group, logs[:n]); err != nil {
				return err
			}
			logs = logs[n:]
		}
		from = next
	}
	return nil
}

// RaftLogFailed is closed when the Raft write-ahead log fails: a write,
// sync or deletion of its files did not succeed. From then on every Raft
// group's log on this node refuses writes until the store is reopened;
// the node should stop, so that a restart recovers what was synced.
// RaftLogErr says why.
func (s *Store) RaftLogFailed() <-chan struct{} { return s.wal.down }

// RaftLogErr returns why the Raft write-ahead log failed, nil while it has
// not.
func (s *Store) RaftLogErr() error {
	s.wal.mu.Lock()
	defer s.wal.mu.Unlock()
	return s.wal.err
}

// FirstIndex returns the lowest index stored, 0 if there is none.
func (l *SharedRaftLog) FirstIndex() (uint64, error) {
	if err := l.s.enter(); err != nil {
		return 0, fmt.Errorf("persistence: raft group %d: first index: %w", l.group, err)
	}
	defer l.s.leave()
	first, _ := l.s.wal.bounds(l.group)
	return first, nil
}

// LastIndex returns the highest index stored, 0 if there is none.
func (l *SharedRaftLog) LastIndex() (uint64, error) {
	if err := l.s.enter(); err != nil {
		return 0, fmt.Errorf("persistence: raft group %d: last index: %w", l.group, err)
	}
	defer l.s.leave()
	_, last := l.s.wal.bounds(l.group)
	return last, nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound,
// unwrapped (raft compares it with ==), if there is none.
func (l *SharedRaftLog) GetLog(index uint64, log *raft.Log) error {
	if err := l.s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: get log %d: %w", l.group, index, err)
	}
	defer l.s.leave()
	return l.s.wal.getLog(l.group, index, log)
}

// StoreLog stores one entry, as StoreLogs.
func (l *SharedRaftLog) StoreLog(log *raft.Log) error {
	return l.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries, which must have consecutive indexes and
// start within the log or right after it (anywhere if it is empty),
// replacing those at the same indexes, and returns once they are synced.
func (l *SharedRaftLog) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if err := l.s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: store logs: %w", l.group, err)
	}
	defer l.s.leave()
	return l.s.wal.storeLogs(l.group, logs)
}

// DeleteRange deletes the entries from min through max, inclusive, and
// returns once the deletion is synced. The range must include the first or
// the last entry (or miss the log: nothing is deleted then).
func (l *SharedRaftLog) DeleteRange(min, max uint64) error {
	if err := l.s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: delete logs %d-%d: %w", l.group, min, max, err)
	}
	defer l.s.leave()
	return l.s.wal.deleteRange(l.group, min, max)
}

// IsMonotonic reports that the log takes no gaps (raft.MonotonicLogStore):
// after installing a snapshot raft then empties it rather than leaving old
// entries before a gap.
func (l *SharedRaftLog) IsMonotonic() bool { return true }
