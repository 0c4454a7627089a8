package persistence

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
)

// The Raft write-ahead log: one append-only log per node, in segment files
// (Dir/raftlog/NNNNNNNN.seg), shared by every Raft group that uses a
// SharedRaftLog. Its records (raftwal_record.go) are Raft entries and
// group bounds; each group's index (Raft index -> segment, offset, length)
// is kept in memory and rebuilt on open by scanning the segments.
//
// Group commit without a goroutine of its own: a call stages its records in
// the pending batch under mu and waits for the batch; whoever finds no
// batch being written writes the pending one (one pwrite a segment, one
// fdatasync each), applies it to the index, and wakes the waiters. Many
// groups' appends thus share a write and a sync, and a lone append pays no
// hand-off to another goroutine.
//
// A record is applied to the index (and becomes visible to GetLog and the
// bounds) only once its batch is synced, so a segment deleted because
// nothing in it is needed any more was superseded by records that are on
// disk. What must survive, per group: the latest record of each index of
// its log, and its latest record of all (it carries the bounds) while the
// log is not empty or older records of the group remain in other segments
// (an empty or dropped group's latest record says the older ones are dead).
// A segment holding none of these is deleted (the last one freed is kept,
// renamed NNNNNNNN.spare, and reused as the next new segment: overwriting
// allocated blocks makes fdatasync cheaper than appending, 0.17-0.26 ms
// against 0.35-0.75 ms on the development VM). Compaction (GC) copies the
// needed records of mostly dead segments forward, so that idle groups do
// not pin old segments.
//
// A write, sync or deletion failure is sticky (failLocked): the log
// refuses every later write until the store is reopened, and recovery then
// keeps what was synced. The store reports it (RaftLogFailed), and the
// node stops.

// walRef is where a record is.
type walRef struct {
	seg uint32 // 0: nowhere
	off uint32
	n   uint32 // the record's length, header included
}

// walSegment is one segment file of the log.
type walSegment struct {
	f    *os.File // nil until the writer creates the file
	size int64    // bytes staged to it (written once their batch is)
	// needed counts the records that must survive (see the file comment)
	// and their bytes; unapplied the records staged to it that are not
	// applied yet (a seal counts too).
	needed      int
	neededBytes int64
	unapplied   int
}

// walGroup is a group's index.
type walGroup struct {
	id uint64
	// Applied: what FirstIndex, LastIndex and GetLog see.
	first, last uint64
	refs        []walRef // the entries first..last
	latest      walRef   // its latest record
	pinned      bool     // latest counts as needed
	segs        map[uint32]int
	// Staged: the bounds once every staged record is applied, and how
	// many records are staged.
	sfirst, slast uint64
	staged        int
	dropped       bool // forgotten once none of its records remain
}

// walOp is a staged record, applied to the index once its batch is
// synced.
type walOp struct {
	g           *walGroup // nil for a seal
	kind        byte
	index       uint64
	first, last uint64
	ref         walRef
	old         walRef // a copy made by compaction: the record it replaces
}

// walChunk is the part of a batch written to one segment.
type walChunk struct {
	seg    uint32
	create bool // the batch starts the segment: create its file first
	off    int64
	buf    []byte
}

// walBatch is what one write and sync puts on disk.
type walBatch struct {
	ticket uint64
	chunks []walChunk
	ops    []walOp
}

// reset empties b for reuse as batch ticket, keeping its buffers unless
// a burst made them large.
func (b *walBatch) reset(ticket uint64) {
	b.ticket = ticket
	for i := range b.chunks {
		if cap(b.chunks[i].buf) > keepBytes {
			b.chunks[i].buf = nil
		}
	}
	b.chunks = b.chunks[:0]
	clear(b.ops)
	if cap(b.ops) > keepOps {
		b.ops = nil
	}
	b.ops = b.ops[:0]
}

// walSpare is a deleted segment's file kept for reuse.
type walSpare struct {
	id uint32 // the segment it was: its records carry this id or older
	f  *os.File
}

const spareSuffix = ".spare"

// raftWAL is the node's Raft write-ahead log.
type raftWAL struct {
	dir     string
	maxSize int64
	log     *slog.Logger

	// files guards the segments' files against deletion: a reader holds
	// it shared while it reads one, the writer exclusively while it
	// closes and deletes some. Lock order: files -> mu.
	files sync.RWMutex

	mu      sync.Mutex
	cond    sync.Cond // on mu: a batch was applied, or the writer's role is free
	segs    map[uint32]*walSegment
	cur     uint32 // the segment records are staged to; 0: none yet
	nextSeg uint32
	groups  map[uint64]*walGroup
	pending *walBatch
	spareB  *walBatch     // an emptied batch, for reuse
	writing bool          // someone holds the writer's role
	done    uint64        // the last batch written (or failed)
	failed  uint64        // the first batch that failed; it and later ones fail
	err     error         // why
	down    chan struct{} // closed when the log fails

	// Writer-owned (whoever holds the writer's role).
	spare   *walSpare
	dirMade bool
	seal    []byte // a seal record's scratch
}

// walDirName is the log's directory under the store's.
const walDirName = "raftlog"

// openRaftWAL opens the log in dir, rebuilding every group's index from
// its segments. A directory that does not exist is left so: the first
// write creates it. A crash can cut only the last segment: it is sealed
// where its valid records end (a torn record after them is ignored) and
// new records go to a new one. A segment other than the last that does
// not end with a seal is damage, and the open fails naming it: nothing is
// deleted.
func openRaftWAL(dir string, maxSize int64, log *slog.Logger) (*raftWAL, error) {
	w := &raftWAL{
		dir:     dir,
		maxSize: maxSize,
		log:     log,
		segs:    map[uint32]*walSegment{},
		groups:  map[uint64]*walGroup{},
		nextSeg: 1,
	}
	w.cond.L = &w.mu
	w.down = make(chan struct{})
	w.pending = &walBatch{ticket: 1}
	w.spareB = &walBatch{}
	if err := w.recover(); err != nil {
		return nil, errors.Join(err, w.close())
	}
	return w, nil
}

// recovered is a group as the scan finds it.
type recovered struct {
	latest    walRecord
	latestRef walRef
	entries   map[uint64]walRef // the latest record of each index
	segs      map[uint32]int
}

func (w *raftWAL) recover() error {
	if err := w.openSpare(); err != nil {
		return err
	}
	ids, err := listSegments(w.dir)
	if err != nil || len(ids) == 0 {
		return err
	}
	w.dirMade = true
	w.nextSeg = max(w.nextSeg, ids[len(ids)-1]+1)
	found := map[uint64]*recovered{}
	var lastEnd int64
	lastSealed := false
	for k, id := range ids {
		f, size, err := openSegment(w.dir, id)
		if err != nil {
			return err
		}
		s := &walSegment{f: f}
		w.segs[id] = s
		end, sealed, err := scanSegment(io.NewSectionReader(f, 0, size), size, id, func(r walRecord, off int64) error {
			g := found[r.group]
			if g == nil {
				g = &recovered{entries: map[uint64]walRef{}, segs: map[uint32]int{}}
				found[r.group] = g
			}
			ref := walRef{seg: id, off: uint32(off), n: uint32(r.len())}
			g.latest, g.latestRef = r, ref
			g.segs[id]++
			if r.kind == walEntry {
				g.entries[r.index] = ref
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("persistence: raft log: read segment %d: %w", id, err)
		}
		s.size = end
		lastEnd, lastSealed = end, sealed
		if !sealed && k < len(ids)-1 {
			return fmt.Errorf("persistence: raft log: %s is damaged: its records end without a seal at byte %d, yet later segments exist (a crash cuts only the last segment)", segmentName(w.dir, id), end)
		}
	}

	for id, r := range found {
		g := &walGroup{id: id, first: r.latest.first, last: r.latest.last, latest: r.latestRef, segs: r.segs}
		g.sfirst, g.slast = g.first, g.last
		if g.first != 0 {
			g.refs = make([]walRef, 0, g.last-g.first+1)
			for i := g.first; i <= g.last; i++ {
				ref, ok := r.entries[i]
				if !ok {
					return fmt.Errorf("persistence: raft log: group %d: entry %d of %d-%d is missing", id, i, g.first, g.last)
				}
				g.refs = append(g.refs, ref)
				w.need(ref, 1)
			}
		}
		w.groups[id] = g
		w.repin(g)
	}

	// The last segment is sealed where its records end, so that new
	// segments may follow it (even one about to be deleted: its deletion
	// may fail).
	last := ids[len(ids)-1]
	if s := w.segs[last]; !lastSealed {
		w.seal = appendWALRecord(w.seal[:0], walRecord{seg: last, kind: walSeal}, nil)
		if _, err := s.f.WriteAt(w.seal, lastEnd); err != nil {
			return fmt.Errorf("persistence: raft log: seal segment %d: %w", last, err)
		}
		if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
			return fmt.Errorf("persistence: raft log: sync segment %d: %w", last, err)
		}
		s.size += int64(len(w.seal))
	}
	doomed := w.reclaimLocked()
	return w.remove(doomed)
}

// openSpare keeps the newest spare segment file in the directory for reuse
// and deletes the others.
func (w *raftWAL) openSpare() error {
	names, err := os.ReadDir(w.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("persistence: raft log: %w", err)
	}
	var ids []uint32
	for _, de := range names {
		if id, ok := parseSegmentName(de.Name(), spareSuffix); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for i, id := range ids {
		name := w.spareName(id)
		w.nextSeg = max(w.nextSeg, id+1)
		if i < len(ids)-1 {
			if err := os.Remove(name); err != nil {
				return fmt.Errorf("persistence: raft log: %w", err)
			}
			continue
		}
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("persistence: raft log: %w", err)
		}
		w.spare = &walSpare{id: id, f: f}
	}
	return nil
}

func (w *raftWAL) spareName(id uint32) string {
	return filepath.Join(w.dir, fmt.Sprintf("%08d%s", id, spareSuffix))
}

// need adds d (1 or -1) to the needed records of ref's segment.
func (w *raftWAL) need(ref walRef, d int) {
	s := w.segs[ref.seg]
	s.needed += d
	s.neededBytes += int64(d) * int64(ref.n)
}

// repin makes g's latest record count as needed exactly when it is: while
// its log is not empty (the record says its bounds) or older records of
// the group remain in other segments (the record says they are dead).
func (w *raftWAL) repin(g *walGroup) {
	want := g.latest.seg != 0 && (g.last != 0 || len(g.segs) > 1)
	if want != g.pinned {
		g.pinned = want
		if want {
			w.need(g.latest, 1)
		} else {
			w.need(g.latest, -1)
		}
	}
}

// group returns the index of group id, made if new. The caller holds mu.
func (w *raftWAL) group(id uint64) *walGroup {
	g := w.groups[id]
	if g == nil {
		g = &walGroup{id: id, segs: map[uint32]int{}}
		w.groups[id] = g
	}
	g.dropped = false
	return g
}

// place returns where the next record of n bytes goes, starting a new
// segment (and sealing the current one) when the current one is full, and
// the chunk of the pending batch to append the record to. The caller
// holds mu and appends exactly n bytes to the chunk.
func (w *raftWAL) place(n int) (walRef, *walChunk) {
	b := w.pending
	s := w.segs[w.cur]
	if s == nil || s.size > 0 && s.size+int64(n) > w.maxSize {
		if s != nil {
			c := w.chunk(b, s, false)
			c.buf = appendWALRecord(c.buf, walRecord{seg: w.cur, kind: walSeal}, nil)
			s.size += walHeaderLen
			s.unapplied++
			b.ops = append(b.ops, walOp{kind: walSeal, ref: walRef{seg: w.cur}})
		}
		w.cur = w.nextSeg
		w.nextSeg++
		s = &walSegment{}
		w.segs[w.cur] = s
		w.chunk(b, s, true)
	}
	c := w.chunk(b, s, false)
	ref := walRef{seg: w.cur, off: uint32(s.size), n: uint32(n)}
	s.size += int64(n)
	s.unapplied++
	return ref, c
}

// chunk returns b's chunk for the current segment s, started if needed
// (create: s is new, its file is to be made).
func (w *raftWAL) chunk(b *walBatch, s *walSegment, create bool) *walChunk {
	if k := len(b.chunks); k > 0 && b.chunks[k-1].seg == w.cur {
		return &b.chunks[k-1]
	}
	if len(b.chunks) < cap(b.chunks) {
		// Reuse the slot's buffer.
		b.chunks = b.chunks[:len(b.chunks)+1]
		c := &b.chunks[len(b.chunks)-1]
		*c = walChunk{seg: w.cur, create: create, off: s.size, buf: c.buf[:0]}
		return c
	}
	b.chunks = append(b.chunks, walChunk{seg: w.cur, create: create, off: s.size})
	return &b.chunks[len(b.chunks)-1]
}

// stageEntry stages entry l of g with the bounds g has after it. The
// caller holds mu and has checked that l may follow g's staged log.
func (w *raftWAL) stageEntry(g *walGroup, l *raft.Log) {
	if g.sfirst == 0 {
		g.sfirst, g.slast = l.Index, l.Index
	} else {
		g.slast = max(g.slast, l.Index)
	}
	r := walRecord{kind: walEntry, group: g.id, index: l.Index, first: g.sfirst, last: g.slast}
	ref, c := w.place(walHeaderLen + raftLogLen(l))
	r.seg = ref.seg
	c.buf = appendWALRecord(c.buf, r, l)
	w.addOp(g, r, ref, walRef{})
}

// stageBounds stages a bounds record setting g's bounds to first, last.
func (w *raftWAL) stageBounds(g *walGroup, first, last uint64) {
	g.sfirst, g.slast = first, last
	r := walRecord{kind: walBounds, group: g.id, first: first, last: last}
	ref, c := w.place(walHeaderLen)
	r.seg = ref.seg
	c.buf = appendWALRecord(c.buf, r, nil)
	w.addOp(g, r, ref, walRef{})
}

// stageCopy stages rec, an entry record of g read from old, again with
// g's current bounds.
func (w *raftWAL) stageCopy(g *walGroup, index uint64, rec []byte, old walRef) {
	ref, c := w.place(len(rec))
	rewriteWALHeader(rec, ref.seg, g.sfirst, g.slast)
	c.buf = append(c.buf, rec...)
	w.addOp(g, walRecord{kind: walEntry, index: index, first: g.sfirst, last: g.slast}, ref, old)
}

func (w *raftWAL) addOp(g *walGroup, r walRecord, ref, old walRef) {
	g.staged++
	w.pending.ops = append(w.pending.ops, walOp{g: g, kind: r.kind, index: r.index, first: r.first, last: r.last, ref: ref, old: old})
}

// commitLocked waits until the pending batch, which the caller staged to,
// is written, synced and applied, and returns its outcome. When no one is
// writing it writes the batch itself. The caller holds mu; commitLocked
// releases it while it writes or waits.
func (w *raftWAL) commitLocked() error {
	t := w.pending.ticket
	for w.done < t {
		if w.writing {
			w.cond.Wait()
			continue
		}
		w.writeLocked()
	}
	if w.failed != 0 && t >= w.failed {
		return w.err
	}
	return nil
}

// writeLocked takes the writer's role and writes the pending batch: its
// records, one fdatasync per segment written, then it applies the batch,
// wakes its waiters and deletes the segments nothing needs any more. The
// caller holds mu, which is released meanwhile.
func (w *raftWAL) writeLocked() {
	w.writing = true
	b := w.pending
	w.pending, w.spareB = w.spareB, nil
	w.pending.reset(b.ticket + 1)
	files := make([]*os.File, len(b.chunks))
	for i, c := range b.chunks {
		if s := w.segs[c.seg]; s != nil {
			files[i] = s.f
		}
	}
	failed := w.failed != 0
	w.mu.Unlock()

	var err error
	if !failed {
		err = w.write(b, files)
	}

	w.mu.Lock()
	if err != nil {
		w.failLocked(b.ticket, err)
	}
	var doomed []*doomedSegment
	if w.failed == 0 {
		w.apply(b)
		doomed = w.reclaimLocked()
	}
	w.done = b.ticket
	w.cond.Broadcast() // b's waiters
	if len(doomed) > 0 {
		w.mu.Unlock()
		err := w.remove(doomed)
		w.mu.Lock()
		if err != nil {
			w.failLocked(w.pending.ticket, err)
		}
	}
	b.reset(0)
	w.spareB = b
	w.writing = false
	w.cond.Broadcast() // a waiter of the next batch may write it
}

// failLocked makes the log fail from batch ticket on: a write, sync or
// deletion failed. The failure is sticky: the records of a failed batch
// may be on disk in part, and a segment that could not be deleted may
// hold records that the index has forgotten and that later records would
// have to outlive; reopening the store recovers from what is on disk. The
// caller holds mu.
func (w *raftWAL) failLocked(ticket uint64, err error) {
	if w.failed != 0 {
		return
	}
	w.failed, w.err = ticket, fmt.Errorf("persistence: raft log: %w (no more writes until the store is reopened)", err)
	w.log.Error("raft log failed; quorum logs on this node refuse writes until the store is reopened", "err", err)
	close(w.down)
}

// write puts b on disk and syncs it. Writer only.
//
// The chunks before a new segment's, the previous segment's seal among
// them, are synced before its file is made: on disk, a segment followed
// by another always ends with a seal, so recovery can tell a crash (only
// the last segment is cut) from damage.
func (w *raftWAL) write(b *walBatch, files []*os.File) error {
	synced := 0 // the chunks before this one are synced
	for i, c := range b.chunks {
		if c.create {
			if err := syncChunks(b, files, synced, i); err != nil {
				return err
			}
			synced = i
			f, err := w.createSegment(c.seg)
			if err != nil {
				return err
			}
			w.mu.Lock()
			w.segs[c.seg].f = f
			w.mu.Unlock()
			files[i] = f
			for j := i + 1; j < len(b.chunks); j++ {
				if b.chunks[j].seg == c.seg {
					files[j] = f
				}
			}
		}
		if len(c.buf) == 0 {
			continue
		}
		if _, err := files[i].WriteAt(c.buf, c.off); err != nil {
			return fmt.Errorf("write segment %d: %w", c.seg, err)
		}
	}
	return syncChunks(b, files, synced, len(b.chunks))
}

// syncChunks syncs the files of b's chunks from through to-1.
func syncChunks(b *walBatch, files []*os.File, from, to int) error {
	for i := from; i < to; i++ {
		c := &b.chunks[i]
		if len(c.buf) == 0 {
			continue
		}
		if err := unix.Fdatasync(int(files[i].Fd())); err != nil {
			return fmt.Errorf("sync segment %d: %w", c.seg, err)
		}
	}
	return nil
}

// createSegment makes the file of new segment id: the spare renamed, or a
// new file; either way its directory entry is synced. Writer only.
func (w *raftWAL) createSegment(id uint32) (*os.File, error) {
	if !w.dirMade {
		if err := os.MkdirAll(w.dir, 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", w.dir, err)
		}
		if err := syncDir(filepath.Dir(w.dir)); err != nil {
			return nil, err
		}
		w.dirMade = true
	}
	if sp := w.spare; sp != nil {
		w.spare = nil
		if err := os.Rename(w.spareName(sp.id), segmentName(w.dir, id)); err != nil {
			sp.f.Close()
			return nil, fmt.Errorf("reuse segment file: %w", err)
		}
		if err := syncDir(w.dir); err != nil {
			sp.f.Close()
			return nil, err
		}
		return sp.f, nil
	}
	return createSegment(w.dir, id, true)
}

// apply makes b's records visible: each group's entries and bounds, the
// segments' counts. The caller holds mu.
func (w *raftWAL) apply(b *walBatch) {
	for i := range b.ops {
		op := &b.ops[i]
		w.segs[op.ref.seg].unapplied--
		g := op.g
		if g == nil {
			continue // a seal
		}
		g.staged--
		g.segs[op.ref.seg]++
		switch {
		case op.kind == walBounds:
			w.setBounds(g, op.first, op.last)
		case op.old.seg != 0: // a compaction's copy
			if k := op.index - g.first; g.first != 0 && op.index >= g.first && op.index <= g.last && g.refs[k] == op.old {
				w.need(op.old, -1)
				w.need(op.ref, 1)
				g.refs[k] = op.ref
			}
		default:
			w.setBounds(g, op.first, op.last)
			k := op.index - g.first
			if old := g.refs[k]; old.seg != 0 {
				w.need(old, -1)
			}
			g.refs[k] = op.ref
			w.need(op.ref, 1)
		}
		if g.pinned {
			g.pinned = false
			w.need(g.latest, -1)
		}
		g.latest = op.ref
		w.repin(g)
	}
}

// setBounds makes g's log first..last: entries outside are dropped, and
// new indexes are empty slots (an entry fills its own at once).
func (w *raftWAL) setBounds(g *walGroup, first, last uint64) {
	if first == g.first && last == g.last {
		return
	}
	if first == 0 || g.first == 0 || first > g.last || last < g.first {
		for _, ref := range g.refs {
			if ref.seg != 0 {
				w.need(ref, -1)
			}
		}
		g.refs = nil
		if first != 0 {
			g.refs = make([]walRef, last-first+1)
		}
		g.first, g.last = first, last
		return
	}
	// Overlapping: trim or extend each end.
	if first > g.first {
		for _, ref := range g.refs[:first-g.first] {
			w.need(ref, -1)
		}
		held := cap(g.refs)
		g.refs = g.refs[first-g.first:]
		if held > 64 && len(g.refs) < held/4 {
			// A snapshot trimmed most of the log: let the old array go.
			g.refs = slices.Clone(g.refs)
		}
	} else if first < g.first {
		g.refs = append(make([]walRef, g.first-first, uint64(len(g.refs))+g.first-first), g.refs...)
	}
	g.first = first
	if last < g.last {
		for _, ref := range g.refs[last-first+1:] {
			w.need(ref, -1)
		}
		g.refs = g.refs[:last-first+1]
	}
	for uint64(len(g.refs)) < last-first+1 {
		g.refs = append(g.refs, walRef{})
	}
	g.last = last
}

// doomedSegment is a segment taken off the log, its file to delete.
type doomedSegment struct {
	id   uint32
	f    *os.File
	size int64
}

// reclaimLocked takes off the log the segments that hold nothing needed
// (not the current one, nor one with records not applied yet) and returns
// them for remove. Groups forget them; a dropped group that has no records
// left is forgotten. Records of groups whose latest record these deletions
// unpin are reclaimed by a later call, after these deletions are durable:
// the latest record must outlive the older records it says are dead. The
// caller holds mu.
func (w *raftWAL) reclaimLocked() []*doomedSegment {
	var doomed []*doomedSegment
	for id, s := range w.segs {
		if id != w.cur && s.needed == 0 && s.unapplied == 0 {
			doomed = append(doomed, &doomedSegment{id: id, f: s.f, size: s.size})
		}
	}
	if len(doomed) == 0 {
		return nil
	}
	for _, d := range doomed {
		delete(w.segs, d.id)
	}
	for _, g := range w.groups {
		changed := false
		for _, d := range doomed {
			if _, ok := g.segs[d.id]; ok {
				delete(g.segs, d.id)
				changed = true
				if g.latest.seg == d.id {
					g.latest = walRef{} // not pinned, or the segment would be needed
				}
			}
		}
		if changed {
			w.repin(g)
		}
		if g.dropped && len(g.segs) == 0 && g.staged == 0 {
			delete(w.groups, g.id)
		}
	}
	return doomed
}

// remove deletes the segments' files (the first one of full size becomes
// the spare if there is none) and syncs the directory. Writer only (or
// open, before any).
func (w *raftWAL) remove(doomed []*doomedSegment) error {
	if len(doomed) == 0 {
		return nil
	}
	var errs []error
	w.files.Lock()
	for _, d := range doomed {
		if d.f == nil {
			continue
		}
		if w.spare == nil && d.size >= w.maxSize {
			err := os.Rename(segmentName(w.dir, d.id), w.spareName(d.id))
			if err == nil {
				w.spare = &walSpare{id: d.id, f: d.f}
				continue
			}
			w.log.Warn("raft log: keeping a segment file for reuse; it is deleted instead", "segment", d.id, "err", err)
		}
		errs = append(errs, removeSegment(w.dir, d.id, d.f))
	}
	w.files.Unlock()
	errs = append(errs, syncDir(w.dir))
	return errors.Join(errs...)
}

// sweep deletes the segments a previous reclaim left to a later one, and
// the current segment too if nothing in it is needed (the next record
// starts a new one); with no group left, the spare goes too: a node whose
// quorum queues are all deleted keeps no file of the log.
func (w *raftWAL) sweep() error {
	w.mu.Lock()
	for w.writing {
		w.cond.Wait()
	}
	if w.failed != 0 {
		w.mu.Unlock()
		return nil
	}
	w.writing = true
	if s := w.segs[w.cur]; s != nil && s.needed == 0 && s.unapplied == 0 {
		w.cur = 0
	}
	doomed := w.reclaimLocked()
	var spare *walSpare
	if len(w.groups) == 0 {
		spare, w.spare = w.spare, nil
	}
	w.mu.Unlock()
	err := w.remove(doomed)
	if spare != nil {
		// A spare left behind is harmless: the next open deletes or reuses it.
		if serr := errors.Join(spare.f.Close(), os.Remove(w.spareName(spare.id))); serr != nil {
			w.log.Warn("raft log: deleting the spare segment file", "err", serr)
		}
	}
	w.mu.Lock()
	if err != nil {
		w.failLocked(w.pending.ticket, err)
	}
	w.writing = false
	w.cond.Broadcast()
	w.mu.Unlock()
	return err
}

// storeLogs stores group's entries, which must be consecutive and not
// start before its log, and returns once they are synced. Entries that
// start past the log's end replace it (the store is monotonic: no gaps).
func (w *raftWAL) storeLogs(group uint64, logs []*raft.Log) error {
	lo, hi := logs[0].Index, logs[len(logs)-1].Index
	for i, l := range logs {
		if l.Index != lo+uint64(i) || l.Index == 0 {
			return fmt.Errorf("persistence: raft log: group %d: entries %d-%d are not consecutive", group, lo, hi)
		}
		if int64(raftLogLen(l)) > maxWALPayload {
			return fmt.Errorf("persistence: raft log: group %d: entry %d of %d bytes: %w", group, l.Index, len(l.Data), ErrTooLarge)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != 0 {
		return w.err
	}
	g := w.group(group)
	if g.slast != 0 && lo < g.sfirst {
		return fmt.Errorf("persistence: raft log: group %d: entries %d-%d start before the log's %d-%d", group, lo, hi, g.sfirst, g.slast)
	}
	if g.slast != 0 && lo > g.slast+1 {
		// Raft installed a snapshot past the log's end, and the node
		// stopped before raft emptied the log: what the log holds is
		// older than the snapshot, which covers it.
		w.log.Warn("raft log: entries follow a gap; the log before them is dropped (a snapshot covers it)",
			"group", group, "log_first", g.sfirst, "log_last", g.slast, "entries_first", lo)
		w.stageBounds(g, 0, 0)
	}
	for _, l := range logs {
		w.stageEntry(g, l)
	}
	return w.commitLocked()
}

// deleteRange deletes group's entries min through max, which must not
// leave a gap (raft deletes from the front after a snapshot and from the
// back to drop a conflicting suffix), and returns once that is synced.
func (w *raftWAL) deleteRange(group, min, max uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != 0 {
		return w.err
	}
	g := w.groups[group]
	if g == nil || g.slast == 0 || min > max || max < g.sfirst || min > g.slast {
		return nil // nothing to delete
	}
	first, last := g.sfirst, g.slast
	switch {
	case min <= first && max >= last:
		first, last = 0, 0
	case min <= first:
		first = max + 1
	case max >= last:
		last = min - 1
	default:
		return fmt.Errorf("persistence: raft log: group %d: deleting %d-%d would leave a gap in %d-%d", group, min, max, first, last)
	}
	w.stageBounds(g, first, last)
	return w.commitLocked()
}

// drop forgets group: a record says its log is empty and the group is
// forgotten once none of its records remain. It returns once that is
// synced.
func (w *raftWAL) drop(group uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != 0 {
		return w.err
	}
	g := w.groups[group]
	if g == nil {
		return nil
	}
	if g.staged == 0 && len(g.segs) == 0 {
		delete(w.groups, group)
		return nil
	}
	w.stageBounds(g, 0, 0)
	g.dropped = true
	return w.commitLocked()
}

// bounds returns group's first and last index.
func (w *raftWAL) bounds(group uint64) (first, last uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if g := w.groups[group]; g != nil {
		return g.first, g.last
	}
	return 0, 0
}

// readBufs holds buffers for records read back.
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// getLog reads group's entry index into l; raft.ErrLogNotFound if it has
// none.
func (w *raftWAL) getLog(group, index uint64, l *raft.Log) error {
	w.files.RLock()
	defer w.files.RUnlock()
	w.mu.Lock()
	g := w.groups[group]
	if g == nil || g.first == 0 || index < g.first || index > g.last {
		w.mu.Unlock()
		return raft.ErrLogNotFound
	}
	ref := g.refs[index-g.first]
	f := w.segs[ref.seg].f
	w.mu.Unlock()

	bp := readBufs.Get().(*[]byte)
	rec, err := readRecord(f, ref, *bp)
	defer func() {
		if cap(rec) <= keepBytes {
			*bp = rec[:0]
			readBufs.Put(bp)
		}
	}()
	if err != nil {
		return fmt.Errorf("persistence: raft log: group %d: entry %d: %w", group, index, err)
	}
	r, _, _ := parseWALHeader(rec, ref.seg)
	if r.kind != walEntry || r.group != group || r.index != index {
		return fmt.Errorf("persistence: raft log: group %d: entry %d: segment %d holds another record at %d", group, index, ref.seg, ref.off)
	}
	if err := decodeRaftLog(rec[walHeaderLen:], l); err != nil {
		return fmt.Errorf("persistence: raft log: group %d: entry %d: %w", group, index, err)
	}
	l.Index = index
	return nil
}

// readRecord reads the record at ref into buf (grown as needed) and checks
// its header and checksum.
func readRecord(f *os.File, ref walRef, buf []byte) ([]byte, error) {
	buf = slices.Grow(buf[:0], int(ref.n))[:ref.n]
	if _, err := f.ReadAt(buf, int64(ref.off)); err != nil {
		return buf, fmt.Errorf("read segment %d: %w", ref.seg, err)
	}
	r, sum, ok := parseWALHeader(buf, ref.seg)
	if !ok || r.len() != int64(ref.n) || crc32.Checksum(buf[4:], castagnoli) != sum {
		return buf, fmt.Errorf("segment %d: corrupt record at %d", ref.seg, ref.off)
	}
	return buf, nil
}

// walMove is a needed record compaction moves.
type walMove struct {
	g     *walGroup
	index uint64 // 0: the group's latest record, not an entry
	ref   walRef
	rec   []byte
}

// compact moves the needed records out of segments where they take less
// than 1-ratio of the space, at most maxWALMove bytes a call, into the
// current segment; the segments are deleted once the copies are synced.
// It returns how many records it moved. Groups with records staged are
// left for a later pass (their next records may supersede these).
func (w *raftWAL) compact(ratio float64) (int, error) {
	// Segments are not deleted from here until the records are read.
	w.files.RLock()
	w.mu.Lock()
	if w.failed != 0 {
		w.mu.Unlock()
		w.files.RUnlock()
		return 0, nil
	}
	victims := map[uint32]bool{}
	for id, s := range w.segs {
		if id != w.cur && s.unapplied == 0 && s.needed > 0 && float64(s.neededBytes) < (1-ratio)*float64(s.size) {
			victims[id] = true
		}
	}
	var moves []walMove
	size := 0
	for _, g := range w.groups {
		if g.staged > 0 || size >= maxWALMove || !hasAny(g.segs, victims) {
			continue
		}
		for k, ref := range g.refs {
			if size >= maxWALMove {
				break // the rest of the group moves in a later step
			}
			if victims[ref.seg] {
				moves = append(moves, walMove{g: g, index: g.first + uint64(k), ref: ref})
				size += int(ref.n)
			}
		}
		if g.pinned && victims[g.latest.seg] {
			moves = append(moves, walMove{g: g, ref: g.latest})
		}
	}
	files := make(map[uint32]*os.File, len(victims))
	for id := range victims {
		files[id] = w.segs[id].f
	}
	w.mu.Unlock()
	for i := range moves {
		m := &moves[i]
		if m.index == 0 {
			continue
		}
		rec, err := readRecord(files[m.ref.seg], m.ref, nil)
		if err != nil {
			w.files.RUnlock()
			return 0, fmt.Errorf("persistence: raft log: compact group %d: %w", m.g.id, err)
		}
		m.rec = rec
	}
	w.files.RUnlock()

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != 0 {
		return 0, nil
	}
	// A group changed since (records staged by others, or applied) is
	// left for the next pass.
	ours := map[*walGroup]int{}
	changed := map[*walGroup]bool{}
	for _, m := range moves {
		if m.index == 0 || changed[m.g] {
			continue
		}
		g := m.g
		if g.staged != ours[g] || m.index < g.first || m.index > g.last || g.refs[m.index-g.first] != m.ref {
			changed[g] = true
			continue
		}
		w.stageCopy(g, m.index, m.rec, m.ref)
		ours[g]++
	}
	for _, m := range moves {
		g := m.g
		if m.index != 0 || changed[g] || ours[g] > 0 || g.staged != 0 || g.latest != m.ref {
			continue
		}
		w.stageBounds(g, g.sfirst, g.slast)
		ours[g]++
	}
	moved := 0
	for _, n := range ours {
		moved += n
	}
	if moved == 0 {
		return 0, nil
	}
	return moved, w.commitLocked()
}

// hasAny reports whether segs has records in any of victims.
func hasAny(segs map[uint32]int, victims map[uint32]bool) bool {
	for id := range segs {
		if victims[id] {
			return true
		}
	}
	return false
}

// close closes the segment files. No call may be in progress.
func (w *raftWAL) close() error {
	var errs []error
	for _, s := range w.segs {
		if s.f != nil {
			errs = append(errs, s.f.Close())
		}
	}
	if w.spare != nil {
		errs = append(errs, w.spare.f.Close())
	}
	return errors.Join(errs...)
}
