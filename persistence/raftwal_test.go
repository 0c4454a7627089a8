package persistence

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// walTestLog returns entry index of group in term, its data a function of
// all three (so a stale entry is told apart) and of a size that varies.
func walTestLog(group, index, term uint64) *raft.Log {
	data := fmt.Appendf(nil, "g%d i%d t%d ", group, index, term)
	data = append(data, bytes.Repeat([]byte{byte(index)}, int((index*7+group)%300))...)
	l := &raft.Log{Index: index, Term: term, Type: raft.LogType(index % 4), Data: data}
	if index%3 == 0 {
		l.Extensions = []byte("ext")
	}
	if index%2 == 0 {
		l.AppendedAt = time.Unix(1700000000, int64(index))
	}
	return l
}

func walTestLogs(group, first, last, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		logs = append(logs, walTestLog(group, i, term))
	}
	return logs
}

// openTestWAL opens a WAL with segments of segSize bytes in dir.
func openTestWAL(t testing.TB, dir string, segSize int64) *raftWAL {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	w, err := openRaftWAL(dir, segSize, log)
	if err != nil {
		t.Fatalf("openRaftWAL(%s): %v", dir, err)
	}
	return w
}

func closeTestWAL(t testing.TB, w *raftWAL) {
	t.Helper()
	if err := w.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// walGroupLog adapts one group of a raftWAL to raft.LogStore for the
// comparisons with raft's InmemStore.
type walGroupLog struct {
	w     *raftWAL
	group uint64
}

func (l walGroupLog) FirstIndex() (uint64, error) { f, _ := l.w.bounds(l.group); return f, nil }
func (l walGroupLog) LastIndex() (uint64, error)  { _, last := l.w.bounds(l.group); return last, nil }
func (l walGroupLog) GetLog(i uint64, lg *raft.Log) error {
	return l.w.getLog(l.group, i, lg)
}
func (l walGroupLog) StoreLog(lg *raft.Log) error { return l.StoreLogs([]*raft.Log{lg}) }
func (l walGroupLog) StoreLogs(logs []*raft.Log) error {
	return l.w.storeLogs(l.group, logs)
}
func (l walGroupLog) DeleteRange(min, max uint64) error { return l.w.deleteRange(l.group, min, max) }

// segFiles returns the names of the files in dir, sorted.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestSharedRaftLogEmpty(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	s := mustOpen(t, o)
	defer mustClose(t, s)
	l, err := s.SharedRaftLog(3)
	if err != nil {
		t.Fatal(err)
	}
	checkEmptyLog(t, l)
	if err := s.DropRaftGroup(3); err != nil {
		t.Fatal(err)
	}
	if !l.IsMonotonic() {
		t.Fatal("not monotonic")
	}
	// A store without quorum logs makes no files for them.
	if names := segFiles(t, filepath.Join(o.Dir, walDirName)); len(names) != 0 {
		t.Fatalf("raft log files without any entry: %v", names)
	}
}

// TestSharedRaftLogContract runs the same operations on a SharedRaftLog and
// on raft's InmemStore and compares them after each, and again after
// reopening the store: stores, compaction from the front, truncation of a
// conflicting suffix, emptying, a new start after emptying, entries past
// the end replacing the log.
func TestSharedRaftLogContract(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20 // several segments
	s := mustOpen(t, o)
	defer func() { mustClose(t, s) }()
	ours, err := s.SharedRaftLog(7)
	if err != nil {
		t.Fatal(err)
	}
	ref := raft.NewInmemStore()
	for _, st := range logContract() {
		st.apply(t, ours, ref)
		sameLogs(t, st.name, ours, ref, 0, 120)
		other, err := s.SharedRaftLog(7)
		if err != nil {
			t.Fatal(err)
		}
		sameLogs(t, st.name+" (another handle)", other, ref, 0, 0)
		mustClose(t, s)
		s = mustOpen(t, o)
		if ours, err = s.SharedRaftLog(7); err != nil {
			t.Fatal(err)
		}
		sameLogs(t, st.name+" (reopened)", ours, ref, 0, 120)
	}

	// A range before the log deletes nothing (raft's InmemStore would
	// move its first index back to the range's end).
	if err := ours.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	sameLogs(t, "delete before the log", ours, ref, 0, 120)

	// What a monotonic store refuses, leaving the log as it was.
	for _, bad := range []struct {
		name string
		fn   func() error
	}{
		{"before the log", func() error { return ours.StoreLogs(raftLogs(90, 99, 5)) }},
		{"entries not consecutive", func() error {
			return ours.StoreLogs([]*raft.Log{raftLogs(116, 116, 5)[0], raftLogs(118, 118, 5)[0]})
		}},
		{"index 0", func() error { return ours.StoreLog(&raft.Log{Term: 5}) }},
		{"a hole in the middle", func() error { return ours.DeleteRange(112, 113) }},
	} {
		if err := bad.fn(); err == nil {
			t.Errorf("%s: no error", bad.name)
		}
		sameLogs(t, bad.name, ours, ref, 0, 120)
	}

	// Entries past the log's end replace it (raft installed a snapshot
	// and the node stopped before raft emptied the log), also after a
	// reopen.
	if err := ours.StoreLogs(raftLogs(130, 131, 6)); err != nil {
		t.Fatal(err)
	}
	ref = raft.NewInmemStore()
	_ = ref.StoreLogs(raftLogs(130, 131, 6))
	sameLogs(t, "entries after a gap", ours, ref, 0, 140)
	mustClose(t, s)
	s = mustOpen(t, o)
	if ours, err = s.SharedRaftLog(7); err != nil {
		t.Fatal(err)
	}
	sameLogs(t, "entries after a gap (reopened)", ours, ref, 0, 140)
}

// walModel is what a group's log must hold: raft's InmemStore given the
// same operations.
type walModel map[uint64]*raft.InmemStore

func (m walModel) of(g uint64) *raft.InmemStore {
	if m[g] == nil {
		m[g] = raft.NewInmemStore()
	}
	return m[g]
}

// checkModel compares every group of the model with w.
func checkModel(t *testing.T, step string, w *raftWAL, m walModel) {
	t.Helper()
	for g, ref := range m {
		lo, _ := ref.FirstIndex()
		hi, _ := ref.LastIndex()
		sameLogs(t, fmt.Sprintf("%s: group %d", step, g), walGroupLog{w, g}, ref, max(lo, 1)-1, hi+1)
	}
}

// TestRaftWALRandom drives several groups with random operations (appends,
// suffix truncations, front compactions, emptying, drops, compaction,
// reopening) on small segments and checks the log against the model after
// each; deterministic for a seed. In the end, with every group dropped and
// a compaction pass, no segment is left.
func TestRaftWALRandom(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(seed, 0))
			const segSize = 8 << 10
			w := openTestWAL(t, dir, segSize)
			defer func() { closeTestWAL(t, w) }()
			m := walModel{}
			terms := map[uint64]uint64{}
			for step := range 600 {
				g := uint64(rng.IntN(5))
				ref := m.of(g)
				first, _ := ref.FirstIndex()
				last, _ := ref.LastIndex()
				terms[g] = max(terms[g], 1)
				name := ""
				var err error
				switch op := rng.IntN(20); {
				case op < 10: // append
					n := uint64(1 + rng.IntN(20))
					start := last + 1
					if last == 0 {
						start = uint64(1 + rng.IntN(100))
					}
					logs := walTestLogs(g, start, start+n-1, terms[g])
					name = fmt.Sprintf("append %d-%d", start, start+n-1)
					err = w.storeLogs(g, logs)
					_ = ref.StoreLogs(logs)
				case op < 12 && last > first: // a conflicting suffix: truncate, store anew
					from := first + uint64(rng.IntN(int(last-first+1)))
					terms[g]++
					logs := walTestLogs(g, from, from+uint64(rng.IntN(5)), terms[g])
					name = fmt.Sprintf("truncate %d-%d, store %d-%d", from, last, from, logs[len(logs)-1].Index)
					if err = w.deleteRange(g, from, last); err == nil {
						err = w.storeLogs(g, logs)
					}
					_ = ref.DeleteRange(from, last)
					_ = ref.StoreLogs(logs)
				case op < 15 && last > first: // compaction after a snapshot
					upTo := first + uint64(rng.IntN(int(last-first)))
					name = fmt.Sprintf("compact %d-%d", first, upTo)
					err = w.deleteRange(g, first, upTo)
					_ = ref.DeleteRange(first, upTo)
				case op == 15: // emptied after installing a snapshot
					name = "empty"
					err = w.deleteRange(g, 0, math.MaxUint64)
					m[g] = raft.NewInmemStore()
				case op == 16:
					name = "drop"
					err = w.drop(g)
					m[g] = raft.NewInmemStore()
				case op == 17:
					name = "compact segments"
					_, err = w.compact(0.5)
				case op == 18:
					name = "sweep"
					err = w.sweep()
				default:
					name = "reopen"
					closeTestWAL(t, w)
					w = openTestWAL(t, dir, segSize)
				}
				if err != nil {
					t.Fatalf("step %d: group %d: %s: %v", step, g, name, err)
				}
				checkModel(t, fmt.Sprintf("step %d (group %d: %s)", step, g, name), w, m)
				checkAccounting(t, w)
			}
			closeTestWAL(t, w)
			w = openTestWAL(t, dir, segSize)
			checkModel(t, "reopened at the end", w, m)
			for g := range m {
				if err := w.drop(g); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 { // each sweep deletes what the previous one unpinned
				if _, err := w.compact(0.5); err != nil {
					t.Fatal(err)
				}
				if err := w.sweep(); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range segFiles(t, dir) {
				if strings.HasSuffix(name, segmentSuffix) {
					t.Errorf("segment %s left with every group dropped (files %v)", name, segFiles(t, dir))
				}
			}
			if len(w.groups) != 0 {
				t.Errorf("groups still known after their drop: %d", len(w.groups))
			}
		})
	}
}

// checkAccounting recomputes what each segment must keep and compares it
// with the counts the log keeps.
func checkAccounting(t *testing.T, w *raftWAL) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	needed := map[uint32]int{}
	for _, g := range w.groups {
		for _, ref := range g.refs {
			needed[ref.seg]++
		}
		if g.pinned {
			needed[g.latest.seg]++
		}
		if want := g.latest.seg != 0 && (g.last != 0 || len(g.segs) > 1); want != g.pinned {
			t.Fatalf("group %d: pinned %v, want %v", g.id, g.pinned, want)
		}
	}
	for id, s := range w.segs {
		if s.needed != needed[id] {
			t.Fatalf("segment %d: needed %d, want %d", id, s.needed, needed[id])
		}
		if s.unapplied != 0 {
			t.Fatalf("segment %d: %d records not applied with no write in progress", id, s.unapplied)
		}
	}
}

// TestRaftWALConcurrent stores into many groups at once (their appends
// share writes) while one compacts its front and another reads; every
// group must end complete, in memory and after a reopen.
func TestRaftWALConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openTestWAL(t, dir, 64<<10)
	const groups, n, batch = 8, 400, 10
	var wg sync.WaitGroup
	errs := make(chan error, groups+2)
	for g := range uint64(groups) {
		wg.Go(func() {
			for i := uint64(1); i <= n; i += batch {
				if err := w.storeLogs(g, walTestLogs(g, i, i+batch-1, 1)); err != nil {
					errs <- err
					return
				}
				if g == 0 && i > 100 {
					if err := w.deleteRange(g, 0, i-100); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		var l raft.Log
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, last := w.bounds(3)
			if err := w.getLog(3, last, &l); err != nil && err != raft.ErrLogNotFound {
				errs <- err
				return
			}
			if _, err := w.compact(0.5); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := func(step string) {
		for g := range uint64(groups) {
			ref := raft.NewInmemStore()
			_ = ref.StoreLogs(walTestLogs(g, 1, n, 1))
			if g == 0 {
				_ = ref.DeleteRange(1, n-batch+1-100)
			}
			sameLogs(t, fmt.Sprintf("%s: group %d", step, g), walGroupLog{w, g}, ref, 0, n+1)
		}
	}
	check("written")
	checkAccounting(t, w)
	closeTestWAL(t, w)
	w = openTestWAL(t, dir, 64<<10)
	defer closeTestWAL(t, w)
	check("reopened")
}

// walWrite is one batch a torn-tail test writes: the records it adds and
// the bytes it ends at.
type walWrite struct {
	logs []*raft.Log
	end  int64
}

// TestRaftWALTornTail cuts the segment being written at every byte of its
// last two batches and reopens: every batch before the cut is there, the
// batch cut holds the entries whose records are whole (a prefix), nothing
// else; and writing goes on.
func TestRaftWALTornTail(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	w := openTestWAL(t, src, 1<<20)
	var writes []walWrite
	for i := uint64(0); i < 6; i++ {
		logs := walTestLogs(1, 1+i*3, 3+i*3, 1)
		if err := w.storeLogs(1, logs); err != nil {
			t.Fatal(err)
		}
		writes = append(writes, walWrite{logs: logs, end: w.segs[w.cur].size})
	}
	seg := w.cur
	closeTestWAL(t, w)
	data, err := os.ReadFile(segmentName(src, seg))
	if err != nil {
		t.Fatal(err)
	}
	tail := writes[len(writes)-3].end
	for cut := tail; cut <= int64(len(data)); cut++ {
		dir := t.TempDir()
		if err := os.WriteFile(segmentName(dir, seg), data[:cut], 0o640); err != nil {
			t.Fatal(err)
		}
		// What must be there: every whole record before the cut.
		ref := raft.NewInmemStore()
		for _, wr := range writes {
			off := wr.end
			for k := len(wr.logs) - 1; k >= 0; k-- {
				if off <= cut {
					_ = ref.StoreLogs(wr.logs[:k+1])
					break
				}
				off -= walHeaderLen + int64(raftLogLen(wr.logs[k]))
			}
		}
		w := openTestWAL(t, dir, 1<<20)
		sameLogs(t, fmt.Sprintf("cut at %d of %d", cut, len(data)), walGroupLog{w, 1}, ref, 0, 20)
		if cut%16 != 0 && cut != int64(len(data)) {
			closeTestWAL(t, w)
			continue // the rest (syncs) for some cuts only
		}
		// Writing goes on after the torn tail, in a new segment.
		_, last := w.bounds(1)
		more := walTestLogs(1, last+1, last+2, 2)
		if err := w.storeLogs(1, more); err != nil {
			t.Fatal(err)
		}
		_ = ref.StoreLogs(more)
		closeTestWAL(t, w)
		w = openTestWAL(t, dir, 1<<20)
		sameLogs(t, fmt.Sprintf("cut at %d, written on, reopened", cut), walGroupLog{w, 1}, ref, 0, 20)
		closeTestWAL(t, w)
	}
}

// TestRaftWALCorruptRecord flips one byte in each record of the last batch
// in turn: the log ends before the damaged record.
func TestRaftWALCorruptRecord(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	w := openTestWAL(t, src, 1<<20)
	logs := walTestLogs(1, 1, 10, 1)
	var offs []int64
	for _, l := range logs {
		off := int64(0)
		if s := w.segs[w.cur]; s != nil {
			off = s.size
		}
		offs = append(offs, off)
		if err := w.storeLogs(1, []*raft.Log{l}); err != nil {
			t.Fatal(err)
		}
	}
	seg := w.cur
	closeTestWAL(t, w)
	data, err := os.ReadFile(segmentName(src, seg))
	if err != nil {
		t.Fatal(err)
	}
	for k, off := range offs {
		for _, at := range []int64{0, 5, 13, walHeaderLen, walHeaderLen + 3} {
			dir := t.TempDir()
			bad := bytes.Clone(data)
			bad[off+at] ^= 0x40
			if err := os.WriteFile(segmentName(dir, seg), bad, 0o640); err != nil {
				t.Fatal(err)
			}
			ref := raft.NewInmemStore()
			_ = ref.StoreLogs(logs[:k])
			w := openTestWAL(t, dir, 1<<20)
			sameLogs(t, fmt.Sprintf("record %d damaged at +%d", k, at), walGroupLog{w, 1}, ref, 0, 11)
			closeTestWAL(t, w)
		}
	}
}

// TestRaftWALDamagedSegment: a segment followed by another always ends
// with its seal on disk (the seal is synced before the next segment's file
// is made), so one that does not, cut short or with a damaged record, is
// damage, not a crash: the open fails naming the file, and no file is
// deleted. The same log opens again once the damage is undone.
func TestRaftWALDamagedSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const segSize = 4 << 10
	w := openTestWAL(t, dir, segSize)
	ref := raft.NewInmemStore()
	for i := uint64(1); w.cur < 3; i++ {
		l := walTestLog(1, i, 1)
		if err := w.storeLogs(1, []*raft.Log{l}); err != nil {
			t.Fatal(err)
		}
		_ = ref.StoreLog(l)
	}
	closeTestWAL(t, w)
	name := segmentName(dir, 2)
	good, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		data []byte
	}{
		{"its seal cut off", good[:len(good)-walHeaderLen]},
		{"a record in the middle damaged", func() []byte {
			bad := bytes.Clone(good)
			bad[len(bad)/2] ^= 0x10
			return bad
		}()},
	} {
		if err := os.WriteFile(name, c.data, 0o640); err != nil {
			t.Fatal(err)
		}
		w, err := openRaftWAL(dir, segSize, slog.New(slog.DiscardHandler))
		if err == nil {
			closeTestWAL(t, w)
			t.Fatalf("segment 2 with %s: the log opened", c.what)
		}
		if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("segment 2 with %s: the error does not name the file: %v", c.what, err)
		}
		if names := segFiles(t, dir); len(names) != 3 {
			t.Errorf("segment 2 with %s: files %v after the failed open, want 3 segments", c.what, names)
		}
	}
	if err := os.WriteFile(name, good, 0o640); err != nil {
		t.Fatal(err)
	}
	w = openTestWAL(t, dir, segSize)
	defer closeTestWAL(t, w)
	sameLogs(t, "repaired", walGroupLog{w, 1}, ref, 0, 200)
}

// TestRaftWALFailureIsSticky: once a write fails the log refuses every
// later one and says so (down is closed); reopened, it holds what was
// synced before.
func TestRaftWALFailureIsSticky(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openTestWAL(t, dir, 1<<20)
	ref := raft.NewInmemStore()
	logs := walTestLogs(1, 1, 5, 1)
	if err := w.storeLogs(1, logs); err != nil {
		t.Fatal(err)
	}
	_ = ref.StoreLogs(logs)
	// The segment's file closed under the log: its next write fails.
	if err := w.segs[w.cur].f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.down:
		t.Fatal("down before any failure")
	default:
	}
	if err := w.storeLogs(1, walTestLogs(1, 6, 6, 1)); err == nil {
		t.Fatal("a write to a closed file succeeded")
	}
	select {
	case <-w.down:
	default:
		t.Fatal("down not closed after a failed write")
	}
	for name, fn := range map[string]func() error{
		"store (another group)": func() error { return w.storeLogs(2, walTestLogs(2, 1, 1, 1)) },
		"delete":                func() error { return w.deleteRange(1, 1, 2) },
		"drop":                  func() error { return w.drop(1) },
	} {
		if err := fn(); err == nil || !strings.Contains(err.Error(), "until the store is reopened") {
			t.Errorf("%s after the failure: %v", name, err)
		}
	}
	_ = w.close()
	w = openTestWAL(t, dir, 1<<20)
	defer closeTestWAL(t, w)
	sameLogs(t, "reopened", walGroupLog{w, 1}, ref, 0, 10)
}

// TestRaftWALSpare: a segment freed is kept as the spare and becomes the
// next segment; its old records, with their old segment id, are not read
// as the new segment's, before or after a reopen.
func TestRaftWALSpare(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const segSize = 4 << 10
	w := openTestWAL(t, dir, segSize)
	ref := raft.NewInmemStore()
	next := uint64(1)
	store := func(n int) {
		t.Helper()
		for range n {
			l := walTestLog(1, next, 1)
			if err := w.storeLogs(1, []*raft.Log{l}); err != nil {
				t.Fatal(err)
			}
			_ = ref.StoreLog(l)
			next++
		}
		// Keep the last 5 entries, as raft compacts.
		if next > 6 {
			if err := w.deleteRange(1, 1, next-6); err != nil {
				t.Fatal(err)
			}
			_ = ref.DeleteRange(1, next-6)
		}
	}
	for w.spare == nil {
		store(3)
	}
	spare := w.spare.id
	for w.spare != nil && w.spare.id == spare {
		store(3)
	}
	if slices.Contains(segFiles(t, dir), filepath.Base(w.spareName(spare))) {
		t.Fatalf("spare %d not reused: %v", spare, segFiles(t, dir))
	}
	sameLogs(t, "spare reused", walGroupLog{w, 1}, ref, 0, next)
	closeTestWAL(t, w)
	w = openTestWAL(t, dir, segSize)
	defer closeTestWAL(t, w)
	sameLogs(t, "spare reused, reopened", walGroupLog{w, 1}, ref, 0, next)
}

// TestRaftWALIdleGroupCompaction: an idle group's few entries among a busy
// group's many pin their segment until compaction moves them forward; the
// disk then holds about the live data.
func TestRaftWALIdleGroupCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const segSize = 16 << 10
	w := openTestWAL(t, dir, segSize)
	defer func() { closeTestWAL(t, w) }()
	idle := walTestLogs(2, 1, 3, 1)
	if err := w.storeLogs(2, idle); err != nil {
		t.Fatal(err)
	}
	busy := uint64(0)
	for range 400 { // ~40 segments of the busy group, which keeps 10 entries
		if err := w.storeLogs(1, walTestLogs(1, busy+1, busy+5, 1)); err != nil {
			t.Fatal(err)
		}
		busy += 5
		if busy > 10 {
			if err := w.deleteRange(1, 0, busy-10); err != nil {
				t.Fatal(err)
			}
		}
	}
	countSegs := func() int {
		n := 0
		for _, name := range segFiles(t, dir) {
			if strings.HasSuffix(name, segmentSuffix) {
				n++
			}
		}
		return n
	}
	// The idle group's segment stays; the busy group's old ones went.
	if n := countSegs(); n > 4 {
		t.Fatalf("%d segments for 13 live entries", n)
	}
	if _, ok := w.segs[1]; !ok {
		t.Fatal("segment 1, holding the idle group's entries, was deleted")
	}
	moved, err := w.compact(0.5)
	if err != nil {
		t.Fatal(err)
	}
	if moved < len(idle) {
		t.Fatalf("compaction moved %d records, want the idle group's %d at least", moved, len(idle))
	}
	if _, ok := w.segs[1]; ok {
		t.Fatal("segment 1 still there after its live records moved")
	}
	ref := raft.NewInmemStore()
	_ = ref.StoreLogs(idle)
	sameLogs(t, "idle group moved", walGroupLog{w, 2}, ref, 0, 4)
	closeTestWAL(t, w)
	w = openTestWAL(t, dir, segSize)
	sameLogs(t, "idle group moved, reopened", walGroupLog{w, 2}, ref, 0, 4)
}

// TestRaftWALCompactionStep: one compaction step moves about maxWALMove
// bytes, even when a single group holds more live data in the victims;
// the rest moves in later steps, and the log reads the same throughout.
// A group whose log a snapshot trimmed lets its index's old array go.
func TestRaftWALCompactionStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const segSize = 1 << 20
	w := openTestWAL(t, dir, segSize)
	defer func() { closeTestWAL(t, w) }()
	big := func(group, index uint64, n int) *raft.Log {
		return &raft.Log{Index: index, Term: 1, Data: bytes.Repeat([]byte{byte(index)}, n)}
	}
	ref := raft.NewInmemStore()
	const live = 160 // 64 KiB entries of group 1: 10 MiB, each beside 128 KiB of group 2's
	for i := uint64(1); i <= live; i++ {
		l := big(1, i, 64<<10)
		if err := w.storeLogs(1, []*raft.Log{l}); err != nil {
			t.Fatal(err)
		}
		_ = ref.StoreLog(l)
		if err := w.storeLogs(2, []*raft.Log{big(2, i, 128<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.deleteRange(2, 0, live); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for {
		moved, err := w.compact(0.5)
		if err != nil {
			t.Fatal(err)
		}
		if moved == 0 {
			break
		}
		steps++
		// The bound, one record past it, and group 2's bounds record.
		if most := maxWALMove/(64<<10) + 2; moved > most {
			t.Fatalf("step %d moved %d records of 64 KiB, more than the step's bound of %d bytes allows (%d)", steps, moved, maxWALMove, most)
		}
		sameLogs(t, fmt.Sprintf("after step %d", steps), walGroupLog{w, 1}, ref, 0, live+1)
	}
	if steps < 2 {
		t.Fatalf("10 MiB of live records moved in %d steps", steps)
	}

	// Raft's pattern: entries appended in small batches, a snapshot every
	// 8192 that trims all but the last 1024.
	var logs []*raft.Log
	for next := uint64(1); next <= 9216; next += 64 {
		batch := walTestLogs(3, next, next+63, 1)
		if err := w.storeLogs(3, batch); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, batch...)
	}
	if err := w.deleteRange(3, 0, 9216-1024); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	kept := cap(w.groups[3].refs)
	w.mu.Unlock()
	if kept > 2*1024 {
		t.Fatalf("1024 entries left keep an index array of %d", kept)
	}
	ref = raft.NewInmemStore()
	_ = ref.StoreLogs(logs[9216-1024:])
	sameLogs(t, "trimmed", walGroupLog{w, 3}, ref, 9216-1030, 9217)
}

// TestSharedRaftLogDrop: DropRaftGroup forgets a group's shared log, and
// the others keep theirs.
func TestSharedRaftLogDrop(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	s := mustOpen(t, o)
	defer func() { mustClose(t, s) }()
	for g := uint64(1); g <= 3; g++ {
		l, err := s.SharedRaftLog(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.StoreLogs(walTestLogs(g, 1, 50, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DropRaftGroup(2); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		for g := uint64(1); g <= 3; g++ {
			l, err := s.SharedRaftLog(g)
			if err != nil {
				t.Fatal(err)
			}
			ref := raft.NewInmemStore()
			if g != 2 {
				_ = ref.StoreLogs(walTestLogs(g, 1, 50, 1))
			}
			sameLogs(t, fmt.Sprintf("%s: group %d", step, g), l, ref, 0, 51)
		}
	}
	check("dropped")
	mustClose(t, s)
	s = mustOpen(t, o)
	check("reopened")
}

// TestSharedRaftLogMoveFromBadger: a log RaftLog kept in Badger (a data
// directory of an earlier version) is moved to the write-ahead log when
// the group's SharedRaftLog is made, whatever step a move cut short had
// reached; and only the run after a gap is moved.
func TestSharedRaftLogMoveFromBadger(t *testing.T) {
	t.Parallel()
	type setup struct {
		name  string
		badge func(s *Store) // what Badger holds
		wal   func(s *Store) // what a move cut short left in the log
		mark  bool           // the move's mark was written
		want  []*raft.Log
	}
	logs := walTestLogs(4, 5, 1500, 2) // more than a move's chunk
	gapped := append(walTestLogs(4, 1, 10, 1), walTestLogs(4, 20, 30, 2)...)
	storeBadger := func(logs []*raft.Log) func(s *Store) {
		return func(s *Store) {
			if err := s.RaftLog(4).StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []setup{
		{name: "not started", badge: storeBadger(logs), want: logs},
		{name: "copy cut short", badge: storeBadger(logs), wal: func(s *Store) {
			if err := s.wal.storeLogs(4, walTestLogs(4, 5, 100, 3)); err != nil {
				t.Fatal(err)
			}
		}, want: logs},
		{name: "copied, Badger's not deleted", badge: storeBadger(logs[700:]), mark: true, wal: func(s *Store) {
			if err := s.wal.storeLogs(4, logs); err != nil {
				t.Fatal(err)
			}
		}, want: logs},
		{name: "a gap", badge: storeBadger(gapped), want: walTestLogs(4, 20, 30, 2)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions(t, "")
			s := mustOpen(t, o)
			c.badge(s)
			if c.wal != nil {
				c.wal(s)
			}
			if c.mark {
				if err := s.writeRaft([][]byte{raftGroupPrefix(prefixRaftMoved, 4), nil}, true); err != nil {
					t.Fatal(err)
				}
			}
			mustClose(t, s)
			s = mustOpen(t, o)
			defer mustClose(t, s)
			l, err := s.SharedRaftLog(4)
			if err != nil {
				t.Fatal(err)
			}
			ref := raft.NewInmemStore()
			_ = ref.StoreLogs(c.want)
			sameLogs(t, "moved", l, ref, 0, 1501)
			for _, p := range []byte{prefixRaftLog, prefixRaftMoved} {
				if n := countKeys(t, s, raftGroupPrefix(p, 4)); n != 0 {
					t.Fatalf("%d keys %c left in Badger", n, p)
				}
			}
		})
	}
}

// FuzzRaftWALSegment feeds arbitrary bytes to the segment scanner: it must
// not fail or panic, its records must tile the data from 0 to where it
// stops, scanning that prefix again must find the same, and a record
// written after it (unless it stopped at a seal) must be found too.
func FuzzRaftWALSegment(f *testing.F) {
	var seg []byte
	for i := uint64(1); i <= 4; i++ {
		seg = appendWALRecord(seg, walRecord{seg: 1, kind: walEntry, group: 9, index: i, first: 1, last: i}, walTestLog(9, i, 1))
	}
	seg = appendWALRecord(seg, walRecord{seg: 1, kind: walBounds, group: 9, first: 3, last: 4}, nil)
	f.Add(seg)
	f.Add(seg[:len(seg)-7])
	f.Add(appendWALRecord(bytes.Clone(seg), walRecord{seg: 1, kind: walSeal}, nil))
	f.Add(append(bytes.Clone(seg), make([]byte, 100)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		type found struct {
			r   walRecord
			off int64
		}
		scan := func(b []byte) ([]found, int64, bool) {
			var recs []found
			end, sealed, err := scanSegment(bytes.NewReader(b), int64(len(b)), 1, func(r walRecord, off int64) error {
				recs = append(recs, found{r, off})
				return nil
			})
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			return recs, end, sealed
		}
		recs, end, sealed := scan(data)
		if end > int64(len(data)) {
			t.Fatalf("end %d past the data's %d bytes", end, len(data))
		}
		off := int64(0)
		for _, f := range recs {
			if f.off != off {
				t.Fatalf("record at %d, want %d", f.off, off)
			}
			if f.r.seg != 1 || f.r.kind == walSeal {
				t.Fatalf("record %+v returned", f.r)
			}
			if f.r.kind == walEntry {
				// A crafted entry with a valid checksum may not decode:
				// GetLog reports that; decoding must not panic.
				var l raft.Log
				_ = decodeRaftLog(data[f.off+walHeaderLen:f.off+f.r.len()], &l)
			}
			off += f.r.len()
		}
		if sealed {
			off += walHeaderLen
		}
		if off != end {
			t.Fatalf("records end at %d, scan says %d", off, end)
		}
		again, end2, sealed2 := scan(data[:end])
		if len(again) != len(recs) || end2 != end || sealed2 != sealed {
			t.Fatalf("prefix scan: %d records to %d (sealed %v), first %d to %d (%v)", len(again), end2, sealed2, len(recs), end, sealed)
		}
		if !sealed {
			more := appendWALRecord(bytes.Clone(data[:end]), walRecord{seg: 1, kind: walEntry, group: 1, index: 7, first: 7, last: 7}, walTestLog(1, 7, 1))
			recs3, end3, _ := scan(more)
			if len(recs3) != len(recs)+1 || end3 != int64(len(more)) {
				t.Fatalf("a record appended at %d not found: %d records to %d", end, len(recs3), end3)
			}
		}
	})
}

// BenchmarkRaftLogStoreLogs stores 1 KiB entries, batch at a time, into
// groups Raft groups at once (one goroutine each, as each group's Raft
// appends in turn), on the Badger-held RaftLog and on the shared
// write-ahead log. Each group compacts its front as Raft does after a
// snapshot: past 8192+1024 entries it deletes all but the last 1024. One
// op is one entry.
func BenchmarkRaftLogStoreLogs(b *testing.B) {
	for _, groups := range []int{1, 64} {
		for _, batch := range []int{1, 32} {
			for _, store := range []string{"badger", "wal"} {
				b.Run(fmt.Sprintf("store=%s/groups=%d/batch=%d", store, groups, batch), func(b *testing.B) {
					benchStoreLogs(b, store, groups, batch)
				})
			}
		}
	}
}

func benchStoreLogs(b *testing.B, store string, groups, batch int) {
	s := mustOpen(b, testOptions(b, ""))
	defer mustClose(b, s)
	logs := make([]raft.LogStore, groups)
	for g := range logs {
		if store == "badger" {
			logs[g] = s.RaftLog(uint64(g + 1))
			continue
		}
		l, err := s.SharedRaftLog(uint64(g + 1))
		if err != nil {
			b.Fatal(err)
		}
		logs[g] = l
	}
	data := bytes.Repeat([]byte{'x'}, 1024)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for g, l := range logs {
		n := b.N / groups
		if g < b.N%groups {
			n++
		}
		wg.Go(func() {
			entries := make([]raft.Log, batch)
			ptrs := make([]*raft.Log, batch)
			next, first := uint64(1), uint64(1)
			for done := 0; done < n; {
				k := min(batch, n-done)
				for i := range k {
					entries[i] = raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
					ptrs[i] = &entries[i]
					next++
				}
				if err := l.StoreLogs(ptrs[:k]); err != nil {
					errs <- err
					return
				}
				done += k
				if next-first > 8192+1024 {
					if err := l.DeleteRange(first, next-1025); err != nil {
						errs <- err
						return
					}
					first = next - 1024
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}
