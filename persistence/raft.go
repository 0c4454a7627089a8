package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// Raft storage: hashicorp/raft's LogStore, StableStore and SnapshotStore on
// the store's Badger database, for many Raft groups at once. A group is named
// by a uint64 (0 for the metadata group, the queue id for a quorum queue).
// These writes bypass the committer: each call writes its own transaction
// (under the compaction gate, like the id leases) and is synced before it
// returns, whatever Options.Sync, since Raft counts what it stored as
// durable.
//
// Keys (DESIGN.md has the table):
//
//	'r' | group | index                             -> log entry
//	'R' | group | key                               -> stable value
//	'n' | group | 'm' | term | index | seq          -> snapshot meta (the commit mark)
//	'n' | group | 'd' | term | index | seq | chunk  -> snapshot data, raftChunkSize a chunk

const (
	prefixRaftSnapshot byte = 'n'

	snapshotMeta byte = 'm' // after 'n' | group: a committed snapshot's meta
	snapshotData byte = 'd' // after 'n' | group: a chunk of a snapshot's data

	raftGroupPrefixLen = 1 + 8
	raftLogKeyLen      = raftGroupPrefixLen + 8
	snapshotIDLen      = 3 * 8
	snapshotMetaKeyLen = raftGroupPrefixLen + 1 + snapshotIDLen
	snapshotDataKeyLen = snapshotMetaKeyLen + 4

	// raftChunkSize is the most data one snapshot chunk (one Badger value)
	// holds. A sink holds one chunk in memory.
	raftChunkSize = 256 << 10

	// Format bytes of the encodings below, for later changes.
	raftLogFormat      byte = 1
	snapshotMetaFormat byte = 1

	logHasAppendedAt byte = 1 << 0 // flag of an encoded log entry
)

// ErrRaftKeyNotFound is what RaftStable.Get returns for a key never set. Its
// text is exactly "not found", unwrapped: hashicorp/raft recognises a missing
// key by comparing err.Error() with that string (as its InmemStore returns).
var ErrRaftKeyNotFound = errors.New("not found")

// raftGroupPrefix returns prefix | group.
func raftGroupPrefix(prefix byte, group uint64) []byte {
	dst := make([]byte, 0, raftGroupPrefixLen)
	return binary.BigEndian.AppendUint64(append(dst, prefix), group)
}

func appendRaftLogKey(dst []byte, group, index uint64) []byte {
	dst = append(dst, prefixRaftLog)
	dst = binary.BigEndian.AppendUint64(dst, group)
	return binary.BigEndian.AppendUint64(dst, index)
}

// raftLogIndex returns the index of a log key.
func raftLogIndex(k []byte) (uint64, bool) {
	if len(k) != raftLogKeyLen || k[0] != prefixRaftLog {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[raftGroupPrefixLen:]), true
}

// writeRaft sets the pairs of kv (key, value, key, value...) in one
// transaction, more if they exceed Badger's limit, and syncs them when
// sync is set, whatever Options.Sync. Badger keeps the slices until the
// commit: they must not change before writeRaft returns. The caller holds
// enter.
func (s *Store) writeRaft(kv [][]byte, sync bool) error {
	threshold := s.db.Opts().ValueThreshold
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.lastWrite.Store(time.Now().UnixNano())
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	inline := 0
	for i := 0; i+1 < len(kv); i += 2 {
		err := txn.Set(kv[i], kv[i+1])
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			err = txn.Set(kv[i], kv[i+1])
		}
		if err != nil {
			return err
		}
		if int64(len(kv[i+1])) < threshold {
			inline += len(kv[i+1])
		}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	// For the GC's guess at what share of the LSM tree deletes make up.
	s.puts.Add(uint64(len(kv) / 2))
	s.inlineBytes.Add(uint64(inline))
	if sync && !s.opts.Sync {
		return s.db.Sync()
	}
	return nil
}

// deleteRaft deletes keys (deleteKeys) and counts them for the GC. The
// caller holds enter.
func (s *Store) deleteRaft(keys [][]byte) (int, error) {
	n, err := s.deleteKeys(len(keys), func(i int) []byte { return keys[i] })
	s.deletes.Add(uint64(n))
	return n, err
}

// deleteRaftRange deletes the keys under prefix from `from` through `to`
// (inclusive; nil: to the end of prefix), dropChunk keys per round, and
// returns how many it deleted. It does not sync. The caller holds enter.
func (s *Store) deleteRaftRange(prefix, from, to []byte) (int, error) {
	total := 0
	var arena []byte
	var ends []int // where each key ends in arena
	var keys [][]byte
	for from != nil {
		arena, ends, keys = arena[:0], ends[:0], keys[:0]
		var next []byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Seek(from); it.Valid(); it.Next() {
				k := it.Item().Key()
				if to != nil && bytes.Compare(k, to) > 0 {
					return nil
				}
				if len(ends) == dropChunk {
					next = it.Item().KeyCopy(nil)
					return nil
				}
				arena = append(arena, k...)
				ends = append(ends, len(arena))
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		start := 0
		for _, end := range ends {
			keys = append(keys, arena[start:end:end])
			start = end
		}
		n, err := s.deleteRaft(keys)
		total += n
		if err != nil {
			return total, err
		}
		from = next
	}
	return total, nil
}

// syncRaft makes the deletions written so far durable when Options.Sync is
// off (with it on, every commit was synced).
func (s *Store) syncRaft() error {
	if s.opts.Sync {
		return nil
	}
	return s.db.Sync()
}

// DropRaftGroup deletes everything stored for Raft group group: its log
// (RaftLog's in Badger, SharedRaftLog's in the write-ahead log), stable
// values and snapshots (a quorum queue that is deleted; the metadata group
// when the node resets to join a cluster). It returns once the deletion is
// synced. Stop the group's Raft first, and do not use the RaftLog,
// SharedRaftLog, RaftStable or RaftSnapshots made for the group before the
// drop: make new ones.
func (s *Store) DropRaftGroup(group uint64) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("persistence: drop raft group %d: %w", group, err)
	}
	defer s.leave()
	if err := s.wal.drop(group); err != nil {
		return fmt.Errorf("persistence: drop raft group %d: %w", group, err)
	}
	total := 0
	for _, p := range []byte{prefixRaftLog, prefixRaftMoved, prefixRaftStable, prefixRaftSnapshot} {
		prefix := raftGroupPrefix(p, group)
		n, err := s.deleteRaftRange(prefix, prefix, nil)
		total += n
		if err != nil {
			return fmt.Errorf("persistence: drop raft group %d (%d keys deleted): %w", group, total, err)
		}
	}
	if err := s.syncRaft(); err != nil {
		return fmt.Errorf("persistence: drop raft group %d: sync: %w", group, err)
	}
	return nil
}

// RaftLog is the raft.LogStore of one Raft group. Its methods are safe for
// concurrent use. It caches the group's first and last index: make one per
// group and share it, since two for the same group would not see each
// other's writes in their caches.
type RaftLog struct {
	s      *Store
	group  uint64
	prefix []byte // 'r' | group

	wmu sync.Mutex // serialises StoreLogs and DeleteRange; guards buf and kv
	buf []byte     // keys and values being written
	kv  [][]byte

	mu     sync.Mutex // guards the cache below
	loaded bool
	first  uint64
	last   uint64
}

var _ raft.LogStore = (*RaftLog)(nil)

// RaftLog returns the raft.LogStore of Raft group group. It reads the group's
// first and last index now (or, if that fails, at its first use).
func (s *Store) RaftLog(group uint64) *RaftLog {
	l := &RaftLog{s: s, group: group, prefix: raftGroupPrefix(prefixRaftLog, group)}
	_, _, _ = l.bounds() // an error is returned at the first use
	return l
}

// bounds returns the cached first and last index, reading them first if
// needed.
func (l *RaftLog) bounds() (first, last uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		if l.first, l.last, err = l.scan(); err != nil {
			return 0, 0, fmt.Errorf("persistence: raft group %d: read log bounds: %w", l.group, err)
		}
		l.loaded = true
	}
	return l.first, l.last, nil
}

// scan reads the first and last index stored: a forward and a reverse seek.
func (l *RaftLog) scan() (first, last uint64, err error) {
	if err := l.s.enter(); err != nil {
		return 0, 0, err
	}
	defer l.s.leave()
	err = l.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: l.prefix})
		for it.Rewind(); it.Valid(); it.Next() {
			if i, ok := raftLogIndex(it.Item().Key()); ok {
				first = i
				break
			}
		}
		it.Close()
		k, err := lastKey(txn, l.prefix, raftLogKeyLen)
		if err != nil {
			return err
		}
		last, _ = raftLogIndex(k)
		return nil
	})
	return first, last, err
}

// FirstIndex returns the lowest index stored, 0 if there is none.
func (l *RaftLog) FirstIndex() (uint64, error) {
	first, _, err := l.bounds()
	return first, err
}

// LastIndex returns the highest index stored, 0 if there is none.
func (l *RaftLog) LastIndex() (uint64, error) {
	_, last, err := l.bounds()
	return last, err
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound,
// unwrapped (raft compares it with ==), if there is none.
func (l *RaftLog) GetLog(index uint64, log *raft.Log) error {
	if err := l.s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: get log %d: %w", l.group, index, err)
	}
	defer l.s.leave()
	var kb [raftLogKeyLen]byte
	err := l.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(appendRaftLogKey(kb[:0], l.group, index))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return decodeRaftLog(v, log) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("persistence: raft group %d: get log %d: %w", l.group, index, err)
	}
	log.Index = index
	return nil
}

// StoreLog stores one entry, as StoreLogs.
func (l *RaftLog) StoreLog(log *raft.Log) error {
	return l.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries, replacing any at the same indexes, in one
// Badger transaction (several if they exceed Badger's transaction limit,
// committed in order), and returns once they are synced.
func (l *RaftLog) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s := l.s
	if err := s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: store logs: %w", l.group, err)
	}
	defer s.leave()
	l.wmu.Lock()
	defer l.wmu.Unlock()

	// One buffer for all keys and values, sized up front: Badger keeps
	// the slices until the commit.
	size := 0
	for _, lg := range logs {
		size += raftLogKeyLen + maxLogHeader + len(lg.Data) + len(lg.Extensions)
	}
	if cap(l.buf) < size {
		l.buf = make([]byte, 0, size)
	}
	buf, kv := l.buf[:0], l.kv[:0]
	lo, hi := logs[0].Index, logs[0].Index
	for _, lg := range logs {
		start := len(buf)
		buf = appendRaftLogKey(buf, l.group, lg.Index)
		mid := len(buf)
		buf = appendRaftLog(buf, lg)
		kv = append(kv, buf[start:mid:mid], buf[mid:len(buf):len(buf)])
		lo, hi = min(lo, lg.Index), max(hi, lg.Index)
	}
	err := s.writeRaft(kv, true)
	clear(kv)
	l.buf, l.kv = buf[:0], kv[:0]
	if cap(l.buf) > keepBytes {
		l.buf, l.kv = nil, nil // a burst: do not keep its buffer
	}

	l.mu.Lock()
	switch {
	case err != nil:
		l.loaded = false // may be written in part: read the bounds again
	case l.loaded:
		if l.first == 0 || lo < l.first {
			l.first = lo
		}
		l.last = max(l.last, hi)
	}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("persistence: raft group %d: store logs %d-%d: %w", l.group, lo, hi, err)
	}
	return nil
}

// DeleteRange deletes the entries from min through max, inclusive, in
// transactions of bounded size, and returns once the deletion is synced.
// Raft deletes from the front after a snapshot and from the back to drop a
// conflicting suffix.
func (l *RaftLog) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	s := l.s
	if err := s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: delete logs %d-%d: %w", l.group, min, max, err)
	}
	defer s.leave()
	from := appendRaftLogKey(nil, l.group, min)
	to := appendRaftLogKey(nil, l.group, max)

	// Raft compacts the front of the log (after a snapshot, on its own
	// goroutine) while it appends at the back: the two touch different
	// keys, so such a deletion does not hold up appends (a leader's
	// append waits for it otherwise, and every publish with it).
	l.mu.Lock()
	front := l.loaded && l.first > 0 && min <= l.first && max < l.last
	l.mu.Unlock()
	if front {
		n, err := s.deleteRaftRange(l.prefix, from, to)
		if err == nil {
			err = s.syncRaft()
		}
		l.mu.Lock()
		if err != nil {
			l.loaded = false // deleted in part: read the bounds again
		} else {
			if l.first <= max {
				l.first = max + 1
			}
		}
		l.mu.Unlock()
		if err != nil {
			return fmt.Errorf("persistence: raft group %d: delete logs %d-%d (%d deleted): %w", l.group, min, max, n, err)
		}
		return nil
	}

	l.wmu.Lock()
	defer l.wmu.Unlock()
	n, err := s.deleteRaftRange(l.prefix, from, to)
	if err == nil {
		err = s.syncRaft()
	}
	first, last, serr := l.scan()
	l.mu.Lock()
	l.first, l.last, l.loaded = first, last, serr == nil
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("persistence: raft group %d: delete logs %d-%d (%d deleted): %w", l.group, min, max, n, err)
	}
	return nil
}

// maxLogHeader bounds an encoded entry's size besides its data and
// extensions: format, type, flags, term, appendedAt, data length.
const maxLogHeader = 3 + binary.MaxVarintLen64 + 8 + binary.MaxVarintLen64

// appendRaftLog encodes l but for its index, which is in the key:
//
//	format(1) | type(1) | flags(1) | term uvarint | [appendedAt: Unix ns, 8] |
//	len(data) uvarint | data | extensions
func appendRaftLog(dst []byte, l *raft.Log) []byte {
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= logHasAppendedAt
	}
	dst = append(dst, raftLogFormat, byte(l.Type), flags)
	dst = binary.AppendUvarint(dst, l.Term)
	if flags&logHasAppendedAt != 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(l.AppendedAt.UnixNano()))
	}
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	return append(dst, l.Extensions...)
}

// raftLogLen returns the length of appendRaftLog's encoding of l.
func raftLogLen(l *raft.Log) int {
	n := 3 + uvarintLen(l.Term) + uvarintLen(uint64(len(l.Data))) + len(l.Data) + len(l.Extensions)
	if !l.AppendedAt.IsZero() {
		n += 8
	}
	return n
}

// uvarintLen returns the length of v's uvarint encoding.
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// decodeRaftLog decodes v into l (but its index), copying Data and
// Extensions into one new buffer.
func decodeRaftLog(v []byte, l *raft.Log) error {
	d := decoder{b: v}
	if f := d.byte(); f != raftLogFormat && !d.bad {
		return fmt.Errorf("log entry of unknown format %d", f)
	}
	typ, flags := d.byte(), d.byte()
	term := d.uvarint()
	var at time.Time
	if flags&logHasAppendedAt != 0 {
		at = time.Unix(0, int64(d.uint64()))
	}
	data := d.bytes()
	if d.bad {
		return fmt.Errorf("corrupt log entry of %d bytes", len(v))
	}
	ext := d.b
	*l = raft.Log{Term: term, Type: raft.LogType(typ), AppendedAt: at}
	if len(data)+len(ext) > 0 {
		buf := make([]byte, len(data)+len(ext))
		n := copy(buf, data)
		copy(buf[n:], ext)
		if n > 0 {
			l.Data = buf[:n:n]
		}
		if len(ext) > 0 {
			l.Extensions = buf[n:]
		}
	}
	return nil
}

// RaftStable is the raft.StableStore of one Raft group. Set and SetUint64
// share one key space (a value set by SetUint64 is 8 bytes, big-endian).
// Its methods are safe for concurrent use.
type RaftStable struct {
	s      *Store
	group  uint64
	prefix []byte // 'R' | group
}

var _ raft.StableStore = (*RaftStable)(nil)

// RaftStable returns the raft.StableStore of Raft group group.
func (s *Store) RaftStable(group uint64) *RaftStable {
	return &RaftStable{s: s, group: group, prefix: raftGroupPrefix(prefixRaftStable, group)}
}

func (r *RaftStable) key(k []byte) []byte {
	return append(append(make([]byte, 0, len(r.prefix)+len(k)), r.prefix...), k...)
}

// Set stores val under key and returns once it is synced.
func (r *RaftStable) Set(key, val []byte) error {
	if err := r.s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: set %q: %w", r.group, key, err)
	}
	defer r.s.leave()
	if err := r.s.writeRaft([][]byte{r.key(key), val}, true); err != nil {
		return fmt.Errorf("persistence: raft group %d: set %q: %w", r.group, key, err)
	}
	return nil
}

// Get returns the value of key (a copy), or ErrRaftKeyNotFound, unwrapped,
// if it was never set. A value set empty is returned as an empty, non-nil
// slice.
func (r *RaftStable) Get(key []byte) ([]byte, error) {
	if err := r.s.enter(); err != nil {
		return nil, fmt.Errorf("persistence: raft group %d: get %q: %w", r.group, key, err)
	}
	defer r.s.leave()
	var val []byte
	err := r.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(r.key(key))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(make([]byte, 0, item.ValueSize()))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrRaftKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("persistence: raft group %d: get %q: %w", r.group, key, err)
	}
	return val, nil
}

// SetUint64 stores val under key and returns once it is synced.
func (r *RaftStable) SetUint64(key []byte, val uint64) error {
	return r.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value of key, 0 (and no error) if it was never set,
// as raft's InmemStore does.
func (r *RaftStable) GetUint64(key []byte) (uint64, error) {
	v, err := r.Get(key)
	if errors.Is(err, ErrRaftKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("persistence: raft group %d: %q holds %d bytes, not a uint64", r.group, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// snapshotID names a snapshot of a group; it orders snapshots as raft does
// (term, then index), then by creation.
type snapshotID struct{ term, index, seq uint64 }

// String returns the id raft sees: "term-index-seq".
func (id snapshotID) String() string {
	return fmt.Sprintf("%d-%d-%d", id.term, id.index, id.seq)
}

func parseSnapshotID(s string) (snapshotID, error) {
	parts := strings.Split(s, "-")
	var n [3]uint64
	if len(parts) != len(n) {
		return snapshotID{}, fmt.Errorf("bad snapshot id %q", s)
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return snapshotID{}, fmt.Errorf("bad snapshot id %q", s)
		}
		n[i] = v
	}
	return snapshotID{n[0], n[1], n[2]}, nil
}

func (id snapshotID) append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, id.term)
	dst = binary.BigEndian.AppendUint64(dst, id.index)
	return binary.BigEndian.AppendUint64(dst, id.seq)
}

// parseSnapshotKey returns the id in a meta or data key of a group.
func parseSnapshotKey(k []byte) (snapshotID, bool) {
	const at = raftGroupPrefixLen + 1
	if len(k) < at+snapshotIDLen || k[0] != prefixRaftSnapshot {
		return snapshotID{}, false
	}
	b := k[at:]
	return snapshotID{
		binary.BigEndian.Uint64(b),
		binary.BigEndian.Uint64(b[8:]),
		binary.BigEndian.Uint64(b[16:]),
	}, true
}

// RaftSnapshots is the raft.SnapshotStore of one Raft group, keeping its
// snapshots in the store's Badger database. Make one per group. Its methods
// are safe for concurrent use; a sink or a reader is for one goroutine.
//
// A sink writes its data in chunks of at most 256 KiB as they fill; Close
// writes the meta, which commits the snapshot, and then deletes the
// snapshots beyond the newest retain (but those open for reading, deleted at
// a later pass) and the chunks of snapshots never committed (a sink
// cancelled, failed, or cut short by a crash). That pass also runs when the
// RaftSnapshots is made and at each Create.
type RaftSnapshots struct {
	s      *Store
	group  uint64
	retain int
	meta   []byte // 'n' | group | 'm'
	data   []byte // 'n' | group | 'd'

	// mu orders a snapshot's commit against the pass that deletes
	// uncommitted chunks, and an Open against the deletion of what it opens.
	mu      sync.Mutex
	writing map[snapshotID]bool // sinks neither closed nor cancelled
	reading map[snapshotID]int  // open readers
	lastSeq uint64
}

var _ raft.SnapshotStore = (*RaftSnapshots)(nil)

// RaftSnapshots returns the raft.SnapshotStore of Raft group group, keeping
// the newest retain snapshots (at least 1). It deletes what crashed sinks
// left (a failure is logged; the next Create tries again).
func (s *Store) RaftSnapshots(group uint64, retain int) *RaftSnapshots {
	p := raftGroupPrefix(prefixRaftSnapshot, group)
	r := &RaftSnapshots{
		s:       s,
		group:   group,
		retain:  max(retain, 1),
		meta:    append(p[:raftGroupPrefixLen:raftGroupPrefixLen], snapshotMeta),
		data:    append(p[:raftGroupPrefixLen:raftGroupPrefixLen], snapshotData),
		writing: make(map[snapshotID]bool),
		reading: make(map[snapshotID]int),
	}
	if err := r.reap(); err != nil && !errors.Is(err, ErrClosed) {
		s.log.Warn("raft snapshots: cleanup failed", "group", group, "err", err)
	}
	return r
}

func (r *RaftSnapshots) metaKey(id snapshotID) []byte {
	return id.append(append(make([]byte, 0, snapshotMetaKeyLen), r.meta...))
}

// dataPrefix returns the prefix of the chunk keys of snapshot id.
func (r *RaftSnapshots) dataPrefix(id snapshotID) []byte {
	return id.append(append(make([]byte, 0, snapshotDataKeyLen), r.data...))
}

// Create starts a snapshot. Only version 1 is supported, as in raft's own
// stores. trans is not used: Peers, the configuration's encoding for
// version-0 snapshots, is left empty.
func (r *RaftSnapshots) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("persistence: raft group %d: unsupported snapshot version %d", r.group, version)
	}
	if err := r.reap(); err != nil {
		return nil, fmt.Errorf("persistence: raft group %d: create snapshot: %w", r.group, err)
	}
	r.mu.Lock()
	// Unique and, within a term and index, increasing.
	r.lastSeq = max(r.lastSeq+1, uint64(time.Now().UnixNano()))
	id := snapshotID{term: term, index: index, seq: r.lastSeq}
	r.writing[id] = true
	r.mu.Unlock()
	return &raftSnapshotSink{
		snaps: r,
		id:    id,
		meta: raft.SnapshotMeta{
			Version:            version,
			ID:                 id.String(),
			Index:              index,
			Term:               term,
			Configuration:      cloneConfiguration(configuration),
			ConfigurationIndex: configurationIndex,
		},
		buf: make([]byte, 0, raftChunkSize),
	}, nil
}

func cloneConfiguration(c raft.Configuration) raft.Configuration {
	return raft.Configuration{Servers: append([]raft.Server(nil), c.Servers...)}
}

// List returns the metas of the snapshots kept, newest first.
func (r *RaftSnapshots) List() ([]*raft.SnapshotMeta, error) {
	if err := r.s.enter(); err != nil {
		return nil, fmt.Errorf("persistence: raft group %d: list snapshots: %w", r.group, err)
	}
	defer r.s.leave()
	var metas []*raft.SnapshotMeta
	err := r.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: r.meta, Reverse: true})
		defer it.Close()
		for it.Seek(seekLast(r.meta, snapshotMetaKeyLen)); it.Valid() && len(metas) < r.retain; it.Next() {
			item := it.Item()
			id, ok := parseSnapshotKey(item.Key())
			if !ok || len(item.Key()) != snapshotMetaKeyLen {
				continue
			}
			var m snapshotRecord
			err := item.Value(func(v []byte) error { return m.decode(id, v) })
			if err != nil {
				return fmt.Errorf("snapshot %v: %w", id, err)
			}
			metas = append(metas, &m.SnapshotMeta)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persistence: raft group %d: list snapshots: %w", r.group, err)
	}
	return metas, nil
}

// seekLast returns prefix padded with 0xff to n bytes: where a reverse
// iteration over keys of length n starts.
func seekLast(prefix []byte, n int) []byte {
	k := append(make([]byte, 0, n), prefix...)
	for len(k) < n {
		k = append(k, 0xff)
	}
	return k
}

// Open returns the meta of snapshot id and a reader of its data, which
// checks the data's length and checksum at its end. The snapshot is not
// deleted while the reader is open.
func (r *RaftSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	sid, err := parseSnapshotID(id)
	if err != nil {
		return nil, nil, fmt.Errorf("persistence: raft group %d: open snapshot: %w", r.group, err)
	}
	if err := r.s.enter(); err != nil {
		return nil, nil, fmt.Errorf("persistence: raft group %d: open snapshot %s: %w", r.group, id, err)
	}
	defer r.s.leave()
	var m snapshotRecord
	r.mu.Lock()
	defer r.mu.Unlock()
	err = r.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(r.metaKey(sid))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return m.decode(sid, v) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil, fmt.Errorf("persistence: raft group %d: snapshot %s not found", r.group, id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("persistence: raft group %d: open snapshot %s: %w", r.group, id, err)
	}
	r.reading[sid]++
	return &m.SnapshotMeta, &raftSnapshotReader{snaps: r, id: sid, rec: m}, nil
}

// reap deletes the snapshots beyond the newest retain that no reader has
// open, and the chunks of snapshots neither committed nor being written.
// Metas go first: a crash in between leaves chunks the next pass deletes.
func (r *RaftSnapshots) reap() error {
	s := r.s
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	r.mu.Lock()
	defer r.mu.Unlock()
	var doomed [][]byte
	keep := make(map[snapshotID]bool)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: r.meta, Reverse: true})
		n := 0
		for it.Seek(seekLast(r.meta, snapshotMetaKeyLen)); it.Valid(); it.Next() {
			id, ok := parseSnapshotKey(it.Item().Key())
			if !ok {
				continue
			}
			if n++; n <= r.retain || r.reading[id] > 0 {
				keep[id] = true
			} else {
				doomed = append(doomed, it.Item().KeyCopy(nil))
			}
		}
		it.Close()
		it = txn.NewIterator(badger.IteratorOptions{Prefix: r.data})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id, ok := parseSnapshotKey(it.Item().Key())
			if ok && !keep[id] && !r.writing[id] {
				doomed = append(doomed, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence: raft group %d: find old snapshots: %w", r.group, err)
	}
	if len(doomed) == 0 {
		return nil
	}
	n, err := s.deleteRaft(doomed)
	if err == nil {
		err = s.syncRaft()
	}
	if err != nil {
		return fmt.Errorf("persistence: raft group %d: delete old snapshots (%d of %d keys deleted): %w",
			r.group, n, len(doomed), err)
	}
	return nil
}

// snapshotRecord is a snapshot's meta as stored: raft's, the data's
// checksum and its number of chunks.
type snapshotRecord struct {
	raft.SnapshotMeta
	crc    uint32 // CRC-32C of the data
	chunks uint32
}

// encode appends the record but for the id (term, index), which is in the
// key:
//
//	format(1) | version uvarint | configurationIndex uvarint | size uvarint |
//	crc(4) | chunks uvarint | peers | servers uvarint |
//	per server: suffrage uvarint | id | address
//
// where byte strings are a uvarint length and the bytes.
func (m *snapshotRecord) encode(dst []byte) []byte {
	dst = append(dst, snapshotMetaFormat)
	dst = binary.AppendUvarint(dst, uint64(m.Version))
	dst = binary.AppendUvarint(dst, m.ConfigurationIndex)
	dst = binary.AppendUvarint(dst, uint64(m.Size))
	dst = binary.BigEndian.AppendUint32(dst, m.crc)
	dst = binary.AppendUvarint(dst, uint64(m.chunks))
	dst = appendBytes(dst, m.Peers)
	dst = binary.AppendUvarint(dst, uint64(len(m.Configuration.Servers)))
	for _, srv := range m.Configuration.Servers {
		dst = binary.AppendUvarint(dst, uint64(srv.Suffrage))
		dst = appendBytes(dst, []byte(srv.ID))
		dst = appendBytes(dst, []byte(srv.Address))
	}
	return dst
}

func (m *snapshotRecord) decode(id snapshotID, v []byte) error {
	d := decoder{b: v}
	if f := d.byte(); f != snapshotMetaFormat && !d.bad {
		return fmt.Errorf("snapshot meta of unknown format %d", f)
	}
	*m = snapshotRecord{SnapshotMeta: raft.SnapshotMeta{ID: id.String(), Index: id.index, Term: id.term}}
	m.Version = raft.SnapshotVersion(d.uvarint())
	m.ConfigurationIndex = d.uvarint()
	m.Size = int64(d.uvarint())
	m.crc = d.uint32()
	m.chunks = uint32(d.uvarint())
	if peers := d.bytes(); len(peers) > 0 {
		m.Peers = bytes.Clone(peers)
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each server takes 3 bytes at least
		d.bad = true
	}
	for i := uint64(0); i < n && !d.bad; i++ {
		var srv raft.Server
		srv.Suffrage = raft.ServerSuffrage(d.uvarint())
		srv.ID = raft.ServerID(d.bytes())
		srv.Address = raft.ServerAddress(d.bytes())
		m.Configuration.Servers = append(m.Configuration.Servers, srv)
	}
	if d.bad || len(d.b) != 0 {
		return fmt.Errorf("corrupt snapshot meta of %d bytes", len(v))
	}
	return nil
}

// raftSnapshotSink writes one snapshot. It is for one goroutine.
type raftSnapshotSink struct {
	snaps  *RaftSnapshots
	id     snapshotID
	meta   raft.SnapshotMeta
	buf    []byte // the chunk being filled
	chunks uint32 // chunks written
	crc    uint32
	err    error // the first write error: the sink is then failed
	done   bool  // closed or cancelled
}

// ID returns the snapshot's id.
func (k *raftSnapshotSink) ID() string { return k.meta.ID }

// Write adds p to the snapshot, writing each chunk as it fills.
func (k *raftSnapshotSink) Write(p []byte) (int, error) {
	if k.done {
		return 0, fmt.Errorf("persistence: raft group %d: snapshot %s: write after close", k.snaps.group, k.meta.ID)
	}
	if k.err != nil {
		return 0, k.err
	}
	n := 0
	for len(p) > 0 {
		c := copy(k.buf[len(k.buf):cap(k.buf)], p)
		k.buf = k.buf[:len(k.buf)+c]
		k.crc = crc32.Update(k.crc, castagnoli, p[:c])
		k.meta.Size += int64(c)
		n += c
		p = p[c:]
		if len(k.buf) == cap(k.buf) {
			if err := k.flush(); err != nil {
				k.err = fmt.Errorf("persistence: raft group %d: snapshot %s: %w", k.snaps.group, k.meta.ID, err)
				return n, k.err
			}
		}
	}
	return n, nil
}

// flush writes the chunk in buf (synced only with Options.Sync: Close
// syncs).
func (k *raftSnapshotSink) flush() error {
	if len(k.buf) == 0 {
		return nil
	}
	s := k.snaps.s
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	key := binary.BigEndian.AppendUint32(k.snaps.dataPrefix(k.id), k.chunks)
	if err := s.writeRaft([][]byte{key, k.buf}, false); err != nil {
		return fmt.Errorf("write chunk %d: %w", k.chunks, err)
	}
	k.chunks++
	k.buf = k.buf[:0]
	return nil
}

// Close writes what is buffered and the meta, which commits the snapshot,
// syncs, and deletes the snapshots beyond those retained. A failed sink
// leaves nothing. A second Close, or Close after Cancel, does nothing
// (raft may close a sink that the FSM's Persist closed).
func (k *raftSnapshotSink) Close() error {
	if k.done {
		return nil
	}
	k.done = true
	r := k.snaps
	err := k.err
	if err == nil {
		err = k.flush()
	}
	if err == nil {
		err = k.commit()
	}
	if err != nil {
		r.mu.Lock()
		delete(r.writing, k.id)
		r.mu.Unlock()
		k.buf = nil
		if rerr := r.reap(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("persistence: raft group %d: close snapshot %s: %w", r.group, k.meta.ID, err)
	}
	k.buf = nil
	// The snapshot is committed: failing to delete older ones is no
	// reason to fail it.
	if err := r.reap(); err != nil {
		r.s.log.Warn("raft snapshots: cleanup failed", "group", r.group, "err", err)
	}
	return nil
}

// commit writes the meta, synced, and takes the snapshot off the list of
// those being written.
func (k *raftSnapshotSink) commit() error {
	r := k.snaps
	s := r.s
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := snapshotRecord{SnapshotMeta: k.meta, crc: k.crc, chunks: k.chunks}
	key := r.metaKey(k.id)
	if err := s.writeRaft([][]byte{key, rec.encode(nil)}, true); err != nil {
		// The meta may be written (the sync failed): take it back, so
		// that the snapshot Close fails is not listed.
		_, derr := s.deleteRaft([][]byte{key})
		return errors.Join(fmt.Errorf("write meta: %w", err), derr)
	}
	delete(r.writing, k.id)
	return nil
}

// Cancel discards the snapshot: what was written is deleted. After Close
// it does nothing.
func (k *raftSnapshotSink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	k.buf = nil
	r := k.snaps
	r.mu.Lock()
	delete(r.writing, k.id)
	r.mu.Unlock()
	if k.chunks == 0 {
		return nil
	}
	s := r.s
	if err := s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: cancel snapshot %s: %w", r.group, k.meta.ID, err)
	}
	defer s.leave()
	p := r.dataPrefix(k.id)
	_, err := s.deleteRaftRange(p, p, nil)
	if err != nil {
		return fmt.Errorf("persistence: raft group %d: cancel snapshot %s: %w", r.group, k.meta.ID, err)
	}
	return nil
}

// raftSnapshotReader streams a snapshot's chunks, one in memory at a time,
// and checks the length and checksum at the end. It is for one goroutine.
type raftSnapshotReader struct {
	snaps  *RaftSnapshots
	id     snapshotID
	rec    snapshotRecord
	next   uint32 // next chunk to read
	buf    []byte // the chunk being read
	off    int
	read   int64
	crc    uint32
	err    error // sticky: io.EOF at the end
	closed bool
}

// Read reads the snapshot's data.
func (rd *raftSnapshotReader) Read(p []byte) (int, error) {
	if rd.closed {
		return 0, fmt.Errorf("persistence: raft group %d: snapshot %v: read after close", rd.snaps.group, rd.id)
	}
	for rd.off == len(rd.buf) && rd.err == nil {
		rd.err = rd.load()
	}
	if rd.off == len(rd.buf) {
		return 0, rd.err
	}
	n := copy(p, rd.buf[rd.off:])
	rd.off += n
	return n, nil
}

// load reads the next chunk into buf, or checks the data at the end and
// returns io.EOF.
func (rd *raftSnapshotReader) load() error {
	r := rd.snaps
	if rd.next == rd.rec.chunks {
		if rd.read != rd.rec.Size || rd.crc != rd.rec.crc {
			return fmt.Errorf("persistence: raft group %d: snapshot %v: %d bytes, checksum %08x; want %d, %08x",
				r.group, rd.id, rd.read, rd.crc, rd.rec.Size, rd.rec.crc)
		}
		return io.EOF
	}
	if err := r.s.enter(); err != nil {
		return fmt.Errorf("persistence: raft group %d: snapshot %v: %w", r.group, rd.id, err)
	}
	defer r.s.leave()
	key := binary.BigEndian.AppendUint32(r.dataPrefix(rd.id), rd.next)
	err := r.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		rd.buf, err = item.ValueCopy(rd.buf[:0])
		return err
	})
	if err != nil {
		return fmt.Errorf("persistence: raft group %d: snapshot %v: chunk %d: %w", r.group, rd.id, rd.next, err)
	}
	rd.next++
	rd.off = 0
	rd.read += int64(len(rd.buf))
	rd.crc = crc32.Update(rd.crc, castagnoli, rd.buf)
	return nil
}

// Close releases the snapshot, which may then be deleted.
func (rd *raftSnapshotReader) Close() error {
	if rd.closed {
		return nil
	}
	rd.closed = true
	rd.buf = nil
	r := rd.snaps
	r.mu.Lock()
	if r.reading[rd.id]--; r.reading[rd.id] <= 0 {
		delete(r.reading, rd.id)
	}
	r.mu.Unlock()
	return nil
}

// appendBytes appends b with its length before it, as a uvarint.
func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decoder reads the encodings above; a read past the end or a bad varint
// sets bad and returns zero values.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.bad = true
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint32() uint32 {
	if len(d.b) < 4 {
		d.bad = true
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.bad = true
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// bytes returns the next length-prefixed byte string, not copied.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
