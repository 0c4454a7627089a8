package persistence

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Badger keeps bodies in its value log and reclaims a value-log file only by
// rewriting it (RunValueLogGC), and only a file that its "discard statistics"
// say is mostly garbage. Those statistics are filled in by LSM compaction
// when it drops a deleted key or an overwritten version. Badger compacts a
// level only when it outgrows its target size, so after a backlog drains the
// tombstones sit in the memtable and upper levels, nothing is compacted, the
// statistics stay empty and the disk never shrinks.
//
// A GC pass therefore does two things:
//
//  1. rewrite value-log files while Badger finds one worth it;
//  2. if many deletes were written since the last forced compaction and they
//     plausibly make up a good part of the LSM tree, force one: make Badger
//     flush its memtables (DropPrefix of a scratch key is the public way:
//     it flushes every memtable, with writes held off meanwhile) and
//     Flatten the tree so tombstones meet the data they delete at the bottom
//     level, where both are dropped and the statistics filled; then rewrite
//     again.
//
// The LSM tree holds keys, value pointers, index entries and small bodies
// (under the value threshold); whether enough of it was deleted to force a
// compaction is judged by the average record size written. The memtable
// flush holds writes off (200-600 ms after a 200 MB backlog here): confirms
// wait meanwhile. A scheduled pass therefore forces it only when the
// committer has written nothing for compactQuiet, or when it has been put off
// compactMaxDeferrals times. RunGC forces it at once.

// lsmRecordBytes is a rough size of one record in the LSM tree (key,
// timestamp, inline value or value pointer, overhead), used to guess what
// share of the tree recent deletes make up.
const lsmRecordBytes = 64

func (s *Store) gcLoop() {
	defer close(s.gcDone)
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
			if err := s.runGC(true); err != nil {
				s.log.Warn("garbage collection failed", "err", err)
			}
		}
	}
}

// RunGC runs one garbage-collection pass now, as the schedule does: it
// rewrites the value-log files that are mostly garbage, forcing an LSM
// compaction first when enough has been deleted since the last one. Tests
// and operators use it; it returns when the pass is done.
func (s *Store) RunGC() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.runGC(false)
}

// runGC runs one pass; scheduled passes put the forced compaction off while
// the store is busy.
func (s *Store) runGC(scheduled bool) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	start := time.Now()
	rewrites, err := s.rewriteValueLog()
	if err != nil {
		return err
	}
	deletes := s.deletes.Load()
	recent := deletes - s.deletesAtCompact
	compacted := false
	due := recent >= compactAfterDeletes && recent*s.recordBytes() >= s.lsmSize()/4 && !s.stopped()
	if due && scheduled && s.compactDeferrals < compactMaxDeferrals &&
		time.Since(time.Unix(0, s.lastWrite.Load())) < compactQuiet {
		s.compactDeferrals++
		due = false
	}
	if due {
		if err := s.compact(); err != nil {
			return err
		}
		s.deletesAtCompact = deletes
		s.compactDeferrals = 0
		compacted = true
		n, err := s.rewriteValueLog()
		rewrites += n
		if err != nil {
			return err
		}
	}
	moved, err := s.compactSegments()
	if err != nil {
		return err
	}
	records, err := s.compactRaftWAL()
	if err != nil {
		return err
	}
	s.log.Debug("garbage collection done", "rewrites", rewrites, "compacted", compacted,
		"bodies_moved", moved, "raft_records_moved", records, "took", time.Since(start))
	return nil
}

// compactRaftWAL moves the needed records of the Raft write-ahead log's
// mostly dead segments (GCDiscardRatio) forward, step by step, and deletes
// the segments left with nothing needed. It returns how many records it
// moved.
func (s *Store) compactRaftWAL() (int, error) {
	moved := 0
	// Bounded: copies fill new segments, which may qualify in turn.
	for step := 0; step < maxWALCompactSteps && !s.stopped(); step++ {
		n, err := s.wal.compact(s.opts.GCDiscardRatio)
		moved += n
		if err != nil {
			return moved, err
		}
		if n == 0 {
			break
		}
	}
	return moved, s.wal.sweep()
}

// compactSegments moves the live bodies out of body segments that are
// mostly garbage (GCDiscardRatio), step by step through the committer,
// which then deletes the segments. It returns how many it moved.
func (s *Store) compactSegments() (int, error) {
	moved := 0
	for !s.stopped() {
		s.bodyMoves = 0
		if err := s.writeSync(op{kind: opCompactBodies}); err != nil {
			return moved, fmt.Errorf("persistence: compact body segments: %w", err)
		}
		moved += s.bodyMoves
		if s.bodyMoves < maxBodyMoves {
			break
		}
	}
	return moved, nil
}

// stopped reports whether Close has asked the GC to stop.
func (s *Store) stopped() bool {
	select {
	case <-s.gcStop:
		return true
	default:
		return false
	}
}

// rewriteValueLog runs Badger's value-log GC until it finds nothing worth
// rewriting, and returns how many files it rewrote.
func (s *Store) rewriteValueLog() (int, error) {
	n := 0
	for !s.stopped() {
		err := s.db.RunValueLogGC(s.opts.GCDiscardRatio)
		switch {
		case err == nil:
			n++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		default:
			return n, fmt.Errorf("persistence: value-log GC: %w", err)
		}
	}
	return n, nil
}

// recordBytes is the average size of a record in the LSM tree as written:
// lsmRecordBytes, plus the bodies kept inline (under the value threshold)
// shared among the records.
func (s *Store) recordBytes() uint64 {
	return lsmRecordBytes + s.inlineBytes.Load()/max(s.puts.Load(), 1)
}

// lsmSize returns the size of the LSM tree's tables.
func (s *Store) lsmSize() uint64 {
	var n int64
	for _, l := range s.db.Levels() {
		n += l.Size
	}
	return uint64(max(n, 0))
}

// compact flushes Badger's memtables and merges the LSM tree into one level,
// dropping deleted keys and filling the value log's discard statistics.
func (s *Store) compact() error {
	s.gate.RLock()
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyCompactMark, nil) })
	s.gate.RUnlock()
	if err != nil {
		return fmt.Errorf("persistence: compaction mark: %w", err)
	}
	start := time.Now()
	s.gate.Lock() // writes wait: DropPrefix refuses them meanwhile
	err = s.db.DropPrefix(prefixCompactMark)
	s.gate.Unlock()
	flushed := time.Now()
	if err != nil {
		return fmt.Errorf("persistence: flush memtables: %w", err)
	}
	if err := s.db.Flatten(2); err != nil {
		return fmt.Errorf("persistence: flatten: %w", err)
	}
	s.log.Debug("LSM compaction forced", "writes_held", flushed.Sub(start), "flatten", time.Since(flushed))
	return nil
}
