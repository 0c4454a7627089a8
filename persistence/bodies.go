package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Message bodies of ValueThreshold bytes or more live in segment files of
// the store's own (Dir/bodies/NNNNNNNN.seg), not in Badger's value log.
// Badger maps its value-log files into memory and writes them through the
// mapping, so every body written stays in the process's resident set until
// value-log GC, which can only run after LSM compactions, deletes its file:
// under a steady persistent load the resident set and the disk grew by the
// whole of the traffic between two GC passes (hundreds of MB a minute). A
// segment is written with write(2) and read with pread(2): bodies sit in the
// OS page cache, not in the resident set, and a segment is deleted as soon
// as its last live body is: messages consumed within milliseconds cost
// neither lasting memory nor disk.
//
// Badger holds, under 'b' | msgID, a 12-byte pointer to the body (segment,
// offset, length). The committer writes a batch's bodies to the current
// segment, syncs it when the batch must be durable, and only then commits
// the pointers, so a pointer never names a body that is not on disk.
//
// A record in a segment is msgID(8) | length(4) | CRC-32C of the body (4) |
// body. A segment holding few live bodies (a long-lived message among many
// short-lived ones) is compacted: its live bodies are copied to the current
// segment and their pointers rewritten, then it is deleted (see
// compactBodies).

// bodyHeaderLen is the size of a record's header in a segment.
const bodyHeaderLen = 16

// bodyRef is where a body is: its record's segment and offset, and the
// body's length.
type bodyRef struct {
	seg uint32
	off uint32
	n   uint32
}

// encode appends the pointer value stored in Badger.
func (r bodyRef) encode(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, r.seg)
	dst = binary.BigEndian.AppendUint32(dst, r.off)
	return binary.BigEndian.AppendUint32(dst, r.n)
}

func decodeBodyRef(v []byte) (bodyRef, bool) {
	if len(v) != 12 {
		return bodyRef{}, false
	}
	return bodyRef{binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:]), binary.BigEndian.Uint32(v[8:])}, true
}

// segment is one segment file.
type segment struct {
	f *os.File
	// Committer-owned: the bytes written, and the live bodies in it.
	size      int64
	live      int
	liveBytes int64
}

// bodyLog is the set of segments. Readers hold mu shared while they read;
// the committer holds it exclusively only to add or remove a segment. The
// rest (current segment, accounting) belongs to the committer, and to Open
// before it starts.
type bodyLog struct {
	dir     string
	maxSize int64
	sync    bool // Options.Sync: new segments' directory entries are synced too

	mu   sync.RWMutex
	segs map[uint32]*segment

	cur   uint32             // the segment being written
	where map[uint64]bodyRef // every stored body, by message id
	// The batch's records for the current segment, written with pwritev
	// from where they are (bodies are not copied): iov holds each record's
	// header (in hdrs) and body in turn, pending their length.
	iov     [][]byte
	hdrs    []byte
	pending int64
	dirty   []uint32 // segments written since the last durable batch, to sync
	// journal is what the transaction being built does to where: where
	// changes at once (a later operation of the same batch must see it),
	// the segments' counts when the transaction commits, and a failed
	// one is undone in reverse.
	journal []bodyChange
	// sealed are the segments filled since the last transaction ended:
	// deleted then if nothing in them is live.
	sealed []uint32
}

// bodyChange is a body put (add) or deleted.
type bodyChange struct {
	id  uint64
	ref bodyRef
	add bool
}

// openBodyLog opens the segments in dir and rebuilds their accounting from
// the pointers in db: a segment without a live body is deleted, and a
// pointer past the end of its segment (a segment lost or cut short) is
// deleted with a warning: its message is gone.
func openBodyLog(dir string, maxSize int64, sync bool, db *badger.DB, warn func(msg string, args ...any)) (*bodyLog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("persistence: create %s: %w", dir, err)
	}
	l := &bodyLog{dir: dir, maxSize: maxSize, sync: sync, segs: map[uint32]*segment{}, where: map[uint64]bodyRef{}}
	ids, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		f, size, err := openSegment(dir, id)
		if err != nil {
			return nil, errors.Join(err, l.close())
		}
		l.segs[id] = &segment{f: f, size: size}
		l.cur = max(l.cur, id)
	}
	var lost [][]byte
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixBody}, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id, ok := parseBodyKey(item.Key())
			if !ok {
				continue
			}
			var ref bodyRef
			if err := item.Value(func(v []byte) error { ref, ok = decodeBodyRef(v); return nil }); err != nil {
				return err
			}
			s := l.segs[ref.seg]
			if !ok || s == nil || int64(ref.off)+bodyHeaderLen+int64(ref.n) > s.size {
				lost = append(lost, item.KeyCopy(nil))
				continue
			}
			l.where[id] = ref
			s.live++
			s.liveBytes += bodyHeaderLen + int64(ref.n)
		}
		return nil
	})
	if err == nil && len(lost) > 0 {
		warn("message bodies missing from their segments: their messages are lost", "count", len(lost))
		err = db.Update(func(txn *badger.Txn) error {
			for _, k := range lost {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("persistence: load body pointers: %w", err), l.close())
	}
	for id, s := range l.segs {
		if s.live == 0 {
			l.removeLocked(id)
		}
	}
	// Write to a new segment: the last one may end in a torn record.
	if err := l.startSegment(l.cur + 1); err != nil {
		return nil, errors.Join(err, l.close())
	}
	return l, nil
}

// startSegment creates segment id and makes it the current one.
func (l *bodyLog) startSegment(id uint32) error {
	f, err := createSegment(l.dir, id, l.sync)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.segs[id] = &segment{f: f}
	l.mu.Unlock()
	l.cur = id
	return nil
}

// removeLocked closes and deletes segment id (under mu, or before any
// reader exists).
func (l *bodyLog) removeLocked(id uint32) {
	s := l.segs[id]
	delete(l.segs, id)
	_ = removeSegment(l.dir, id, s.f)
}

// place returns where a body of n bytes goes next, starting a new segment
// when the current one is full. Committer only; put then writes it there.
func (l *bodyLog) place(n int) (bodyRef, error) {
	s := l.segs[l.cur]
	if s.size > 0 && s.size+bodyHeaderLen+int64(n) > l.maxSize {
		if err := l.flush(); err != nil {
			return bodyRef{}, err
		}
		l.sealed = append(l.sealed, l.cur)
		if err := l.startSegment(l.cur + 1); err != nil {
			return bodyRef{}, err
		}
		s = l.segs[l.cur]
	}
	return bodyRef{seg: l.cur, off: uint32(s.size), n: uint32(n)}, nil
}

// put stages the record of message id's body at ref, which place has just
// returned, for the batch's write. body must not change until then
// (bodies are immutable in Warren).
func (l *bodyLog) put(id uint64, body []byte, ref bodyRef) {
	start := len(l.hdrs)
	l.hdrs = binary.BigEndian.AppendUint64(l.hdrs, id)
	l.hdrs = binary.BigEndian.AppendUint32(l.hdrs, ref.n)
	l.hdrs = binary.BigEndian.AppendUint32(l.hdrs, crc32.Checksum(body, castagnoli))
	l.iov = append(l.iov, l.hdrs[start:len(l.hdrs):len(l.hdrs)], body)
	l.pending += bodyHeaderLen + int64(len(body))
	l.segs[ref.seg].size += bodyHeaderLen + int64(len(body))
	l.where[id] = ref
	l.journal = append(l.journal, bodyChange{id, ref, true})
}

// flush writes the staged records to the current segment.
func (l *bodyLog) flush() error {
	if l.pending == 0 {
		return nil
	}
	s := l.segs[l.cur]
	err := pwritevAll(s.f, l.iov, s.size-l.pending)
	if !slices.Contains(l.dirty, l.cur) {
		l.dirty = append(l.dirty, l.cur)
	}
	clear(l.iov)
	if cap(l.iov) > keepOps {
		l.iov = nil
	} else {
		l.iov = l.iov[:0]
	}
	l.hdrs = l.hdrs[:0]
	l.pending = 0
	if err != nil {
		return fmt.Errorf("persistence: write segment %d: %w", l.cur, err)
	}
	return nil
}

// write puts the batch's staged records on disk, synced when durable is
// set, before the batch's pointers are committed.
func (l *bodyLog) write(durable bool) error {
	if err := l.flush(); err != nil {
		return err
	}
	if !durable {
		return nil // dirty waits for the next durable batch
	}
	for _, id := range l.dirty {
		if s := l.segs[id]; s != nil {
			if err := s.f.Sync(); err != nil {
				return fmt.Errorf("persistence: sync segment %d: %w", id, err)
			}
		}
	}
	l.dirty = l.dirty[:0]
	return nil
}

// lookup reports where the body of message id is. Committer only.
func (l *bodyLog) lookup(id uint64) (bodyRef, bool) {
	ref, ok := l.where[id]
	return ref, ok
}

// free notes that the batch deletes the body of message id.
func (l *bodyLog) free(id uint64, ref bodyRef) {
	if l.where[id] == ref { // not when a compaction has just moved it
		delete(l.where, id)
	}
	l.journal = append(l.journal, bodyChange{id, ref, false})
}

// settle ends a transaction: after its commit (ok) the bodies it wrote
// count as live in their segments and those it deleted no longer do;
// after a failed one its changes to where are undone, and the records it
// wrote are dead space. Either way, segments filled meanwhile that hold
// nothing live, and (after a commit) segments it emptied, are deleted.
func (l *bodyLog) settle(ok bool) {
	var empty []uint32
	if ok {
		for _, c := range l.journal {
			s := l.segs[c.ref.seg]
			if c.add {
				s.live++
				s.liveBytes += bodyHeaderLen + int64(c.ref.n)
				continue
			}
			s.live--
			s.liveBytes -= bodyHeaderLen + int64(c.ref.n)
			if s.live == 0 {
				empty = append(empty, c.ref.seg)
			}
		}
	} else {
		for i := len(l.journal) - 1; i >= 0; i-- {
			if c := l.journal[i]; c.add {
				if l.where[c.id] == c.ref { // else a move's free put the old place back
					delete(l.where, c.id)
				}
			} else {
				l.where[c.id] = c.ref
			}
		}
	}
	empty = append(empty, l.sealed...)
	if len(empty) > 0 {
		l.mu.Lock()
		for _, id := range empty {
			if s := l.segs[id]; s != nil && s.live == 0 && id != l.cur {
				l.removeLocked(id)
			}
		}
		l.mu.Unlock()
	}
	l.sealed = l.sealed[:0]
	clear(l.journal)
	if cap(l.journal) > keepOps {
		l.journal = nil
	} else {
		l.journal = l.journal[:0]
	}
}

// read appends the body at ref, which must be message id's, to dst. The
// caller holds mu shared.
func (l *bodyLog) readLocked(id uint64, ref bodyRef, dst []byte) ([]byte, error) {
	s := l.segs[ref.seg]
	if s == nil {
		return dst, fmt.Errorf("persistence: message %d: segment %d is gone: %w", id, ref.seg, ErrNotFound)
	}
	var h [bodyHeaderLen]byte
	if _, err := s.f.ReadAt(h[:], int64(ref.off)); err != nil {
		return dst, fmt.Errorf("persistence: message %d: read segment %d: %w", id, ref.seg, err)
	}
	if binary.BigEndian.Uint64(h[:]) != id || binary.BigEndian.Uint32(h[8:]) != ref.n {
		return dst, fmt.Errorf("persistence: message %d: segment %d holds another record at %d", id, ref.seg, ref.off)
	}
	start := len(dst)
	dst = slices.Grow(dst, int(ref.n))[:start+int(ref.n)]
	if _, err := s.f.ReadAt(dst[start:], int64(ref.off)+bodyHeaderLen); err != nil && !errors.Is(err, io.EOF) {
		return dst[:start], fmt.Errorf("persistence: message %d: read segment %d: %w", id, ref.seg, err)
	}
	if crc32.Checksum(dst[start:], castagnoli) != binary.BigEndian.Uint32(h[12:]) {
		return dst[:start], fmt.Errorf("persistence: message %d: segment %d: checksum mismatch", id, ref.seg)
	}
	return dst, nil
}

// close closes every segment file.
func (l *bodyLog) close() error {
	var errs []error
	for _, s := range l.segs {
		errs = append(errs, s.f.Close())
	}
	return errors.Join(errs...)
}
