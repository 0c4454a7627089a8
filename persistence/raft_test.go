package persistence

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftbench "github.com/hashicorp/raft/bench"
)

// raftLogs returns entries first..last with every field set, Data and
// Extensions varying in size (some empty, one over Badger's value
// threshold), some without AppendedAt.
func raftLogs(first, last, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		l := &raft.Log{
			Index: i,
			Term:  term,
			Type:  raft.LogType(i % 6),
			Data:  []byte(fmt.Sprintf("data %d/%d", term, i)),
		}
		if i%3 != 0 {
			l.Extensions = []byte(fmt.Sprintf("ext %d", i))
		}
		if i%4 != 0 {
			l.AppendedAt = time.Unix(1700000000, int64(i)*1001)
		}
		switch i % 7 {
		case 0:
			l.Data = nil
		case 1:
			l.Data = bytes.Repeat([]byte{byte(i)}, 600<<10) // in Badger's value log
		}
		logs = append(logs, l)
	}
	return logs
}

func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

// sameLogs checks that ours agrees with ref (raft's InmemStore) on the first
// and last index and on every entry from lo through hi.
func sameLogs(t *testing.T, step string, ours, ref raft.LogStore, lo, hi uint64) {
	t.Helper()
	for _, f := range []struct {
		name string
		fn   func(raft.LogStore) (uint64, error)
	}{{"FirstIndex", raft.LogStore.FirstIndex}, {"LastIndex", raft.LogStore.LastIndex}} {
		got, err := f.fn(ours)
		if err != nil {
			t.Fatalf("%s: %s: %v", step, f.name, err)
		}
		if want, _ := f.fn(ref); got != want {
			t.Fatalf("%s: %s = %d, want %d", step, f.name, got, want)
		}
	}
	for i := lo; i <= hi; i++ {
		var got, want raft.Log
		err := ours.GetLog(i, &got)
		wantErr := ref.GetLog(i, &want)
		if err != wantErr { // raft compares ErrLogNotFound with ==
			t.Fatalf("%s: GetLog(%d) error = %v, want %v", step, i, err, wantErr)
		}
		if err == nil && !sameLog(&got, &want) {
			t.Fatalf("%s: GetLog(%d) = %+v, want %+v", step, i, got, want)
		}
	}
}

// countKeys returns how many keys start with prefix.
func countKeys(t testing.TB, s *Store, prefix []byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("count keys: %v", err)
	}
	return n
}

func TestRaftLogEmpty(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	checkEmptyLog(t, s.RaftLog(0))
}

// checkEmptyLog checks an empty log: no entries, raft.ErrLogNotFound
// itself (raft compares with ==), and a DeleteRange that changes nothing.
func checkEmptyLog(t *testing.T, l raft.LogStore) {
	t.Helper()
	sameLogs(t, "empty", l, raft.NewInmemStore(), 0, 3)
	var lg raft.Log
	if err := l.GetLog(1, &lg); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(1) = %v, want raft.ErrLogNotFound itself", err)
	}
	if err := l.DeleteRange(1, 10); err != nil {
		t.Fatalf("DeleteRange on an empty log: %v", err)
	}
	sameLogs(t, "after DeleteRange", l, raft.NewInmemStore(), 0, 3)
}

// logStep is one operation of a log contract test: store entries (one
// with StoreLog), or delete a range.
type logStep struct {
	name  string
	store []*raft.Log
	del   [2]uint64
}

// apply does the step on ours, failing the test if it refuses, and on ref
// (raft's InmemStore).
func (st logStep) apply(t *testing.T, ours, ref raft.LogStore) {
	t.Helper()
	var err error
	switch {
	case len(st.store) == 1:
		err = ours.StoreLog(st.store[0])
		_ = ref.StoreLog(st.store[0])
	case len(st.store) > 1:
		err = ours.StoreLogs(st.store)
		_ = ref.StoreLogs(st.store)
	default:
		err = ours.DeleteRange(st.del[0], st.del[1])
		_ = ref.DeleteRange(st.del[0], st.del[1])
	}
	if err != nil {
		t.Fatalf("%s: %v", st.name, err)
	}
}

// logContract are the steps of the log contract tests: stores, compaction
// from the front, truncation of a conflicting suffix, overwrites, emptying,
// a new start after emptying (as after a snapshot install).
func logContract() []logStep {
	return []logStep{
		{name: "StoreLog one", store: raftLogs(1, 1, 1)},
		{name: "StoreLogs", store: raftLogs(2, 60, 1)},
		{name: "compact the front", del: [2]uint64{1, 20}},
		{name: "truncate the back", del: [2]uint64{50, 60}},
		{name: "store the suffix again in a new term", store: raftLogs(50, 55, 2)},
		{name: "overwrite in place", store: raftLogs(53, 55, 3)},
		{name: "overwrite in the middle", store: raftLogs(30, 32, 3)},
		{name: "delete everything", del: [2]uint64{21, 55}},
		{name: "store after emptying (snapshot installed)", store: raftLogs(100, 110, 4)},
		{name: "delete beyond both ends", del: [2]uint64{90, 200}},
		{name: "store again", store: raftLogs(111, 115, 5)},
	}
}

// TestRaftLogContract runs the same operations on a RaftLog and on raft's
// InmemStore and compares them after each: stores, compaction from the
// front, truncation of a conflicting suffix, emptying, a gap.
func TestRaftLogContract(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	ours, ref := s.RaftLog(7), raft.NewInmemStore()
	for _, st := range logContract() {
		st.apply(t, ours, ref)
		sameLogs(t, st.name, ours, ref, 0, 120)
		// A new RaftLog reads the bounds from the database: the cache
		// must agree with it.
		sameLogs(t, st.name+" (fresh)", s.RaftLog(7), ref, 0, 0)
	}
}

// TestRaftLogLarge stores more entries in one call than a Badger transaction
// holds and deletes more than one deletion round.
func TestRaftLogLarge(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	l := s.RaftLog(1)
	const n = 25000
	logs := make([]*raft.Log, n)
	for i := range logs {
		logs[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Data: bytes.Repeat([]byte{'x'}, 64)}
	}
	if err := l.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs(%d): %v", n, err)
	}
	if got := countKeys(t, s, raftGroupPrefix(prefixRaftLog, 1)); got != n {
		t.Fatalf("%d keys stored, want %d", got, n)
	}
	if err := l.DeleteRange(1, n-10); err != nil {
		t.Fatalf("DeleteRange: %v", err)
	}
	if got := countKeys(t, s, raftGroupPrefix(prefixRaftLog, 1)); got != 10 {
		t.Fatalf("%d keys left, want 10", got)
	}
	if first, _ := l.FirstIndex(); first != n-9 {
		t.Fatalf("FirstIndex = %d, want %d", first, n-9)
	}
}

// TestRaftLogConcurrent appends, compacts and reads at once (raft compacts
// from its snapshot goroutine while the main one appends); the cached bounds
// must end equal to the database's.
func TestRaftLogConcurrent(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	l := s.RaftLog(2)
	const n, batch, keep = 1000, 20, 100
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 3)
	wg.Go(func() {
		defer close(done)
		for i := uint64(1); i <= n; i += batch {
			logs := make([]*raft.Log, batch)
			for j := range logs {
				logs[j] = &raft.Log{Index: i + uint64(j), Term: 1, Data: []byte("data")}
			}
			if err := l.StoreLogs(logs); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			first, err1 := l.FirstIndex()
			last, err2 := l.LastIndex()
			if err := errors.Join(err1, err2); err != nil {
				errs <- err
				return
			}
			if first > 0 && last > first+keep {
				if err := l.DeleteRange(first, last-keep); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	wg.Go(func() {
		var lg raft.Log
		for {
			select {
			case <-done:
				return
			default:
			}
			last, err := l.LastIndex()
			if err != nil {
				errs <- err
				return
			}
			if err := l.GetLog(last, &lg); err != nil && err != raft.ErrLogNotFound {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	fresh := s.RaftLog(2)
	ffirst, _ := fresh.FirstIndex()
	flast, _ := fresh.LastIndex()
	if first != ffirst || last != flast || last != n {
		t.Fatalf("cached bounds %d-%d, stored %d-%d, want last %d", first, last, ffirst, flast, n)
	}
	for i := first; i <= last; i++ {
		var lg raft.Log
		if err := l.GetLog(i, &lg); err != nil {
			t.Fatalf("GetLog(%d) within %d-%d: %v", i, first, last, err)
		}
	}
}

func TestRaftStable(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	st := s.RaftStable(0)

	// Missing keys, as raft's InmemStore reports them.
	v, err := st.Get([]byte("LastVoteCand"))
	if err == nil || err.Error() != "not found" || !errors.Is(err, ErrRaftKeyNotFound) || v != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, \"not found\"", v, err)
	}
	if n, err := st.GetUint64([]byte("CurrentTerm")); n != 0 || err != nil {
		t.Fatalf("GetUint64(missing) = %d, %v; want 0, nil", n, err)
	}
	if ok, err := raft.HasExistingState(s.RaftLog(0), st, s.RaftSnapshots(0, 1)); ok || err != nil {
		t.Fatalf("HasExistingState(empty) = %v, %v", ok, err)
	}

	if err := st.Set([]byte("LastVoteCand"), []byte("node-1")); err != nil {
		t.Fatal(err)
	}
	if err := st.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := st.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if n, err := st.GetUint64([]byte("CurrentTerm")); err != nil || n != 42 {
		t.Fatalf("GetUint64 = %d, %v", n, err)
	}
	if v, err := st.Get([]byte("empty")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get(set empty) = %#v, %v; want an empty non-nil slice", v, err)
	}
	if err := st.SetUint64([]byte("CurrentTerm"), math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if n, err := st.GetUint64([]byte("CurrentTerm")); err != nil || n != math.MaxUint64 {
		t.Fatalf("GetUint64 after overwrite = %d, %v", n, err)
	}
	if _, err := st.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatal("GetUint64 of a 6-byte value succeeded")
	}
	if ok, err := raft.HasExistingState(s.RaftLog(0), st, s.RaftSnapshots(0, 1)); !ok || err != nil {
		t.Fatalf("HasExistingState(term set) = %v, %v", ok, err)
	}
	// Groups do not share keys.
	if _, err := s.RaftStable(1).Get([]byte("LastVoteCand")); !errors.Is(err, ErrRaftKeyNotFound) {
		t.Fatalf("group 1 sees group 0's key: %v", err)
	}
}

// testConfiguration has a server of each suffrage.
var testConfiguration = raft.Configuration{Servers: []raft.Server{
	{Suffrage: raft.Voter, ID: "a", Address: "10.0.0.1:5672"},
	{Suffrage: raft.Nonvoter, ID: "b", Address: "10.0.0.2:5672"},
	{Suffrage: raft.Staging, ID: "c", Address: ""},
}}

// snapshotBytes returns n deterministic bytes, different for each seed.
func snapshotBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// writeSnapshot creates a snapshot of data in odd-sized writes and closes
// it, or leaves it open if !close.
func writeSnapshot(t *testing.T, snaps *RaftSnapshots, index, term uint64, data []byte, close bool) raft.SnapshotSink {
	t.Helper()
	sink, err := snaps.Create(1, index, term, testConfiguration, index-1, nil)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for p := data; len(p) > 0; {
		n := min(len(p), 100003)
		if w, err := sink.Write(p[:n]); err != nil || w != n {
			t.Fatalf("Write = %d, %v; want %d", w, err, n)
		}
		p = p[n:]
	}
	if close {
		if err := sink.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	return sink
}

func readSnapshot(t *testing.T, snaps *RaftSnapshots, id string) (*raft.SnapshotMeta, []byte) {
	t.Helper()
	meta, rc, err := snaps.Open(id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read snapshot %s: %v", id, err)
	}
	return meta, data
}

func listIDs(t *testing.T, snaps *RaftSnapshots) []string {
	t.Helper()
	metas, err := snaps.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	ids := []string{}
	for _, m := range metas {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestRaftSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	snaps := s.RaftSnapshots(0, 2)
	if ids := listIDs(t, snaps); len(ids) != 0 {
		t.Fatalf("List of an empty store = %v", ids)
	}
	data := snapshotBytes(1, 2*raftChunkSize+12345) // three chunks
	sink := writeSnapshot(t, snaps, 100, 3, data, true)
	if err := sink.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := sink.Cancel(); err != nil {
		t.Fatalf("Cancel after Close: %v", err)
	}
	if _, err := sink.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if got := countKeys(t, s, snaps.data); got != 3 {
		t.Fatalf("%d chunks, want 3", got)
	}

	want := raft.SnapshotMeta{
		Version: 1, ID: sink.ID(), Index: 100, Term: 3,
		Configuration: testConfiguration, ConfigurationIndex: 99, Size: int64(len(data)),
	}
	metas, err := snaps.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("List = %v, %v; want one", metas, err)
	}
	if !reflect.DeepEqual(*metas[0], want) {
		t.Fatalf("List()[0] = %+v\nwant %+v", *metas[0], want)
	}
	meta, got := readSnapshot(t, snaps, sink.ID())
	if !reflect.DeepEqual(*meta, want) {
		t.Fatalf("Open meta = %+v\nwant %+v", *meta, want)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}

	// An empty snapshot.
	empty := writeSnapshot(t, snaps, 101, 3, nil, true)
	if meta, got := readSnapshot(t, snaps, empty.ID()); meta.Size != 0 || len(got) != 0 {
		t.Fatalf("empty snapshot: size %d, %d bytes read", meta.Size, len(got))
	}

	if _, _, err := snaps.Open("1-2-3"); err == nil {
		t.Fatal("Open of a missing snapshot succeeded")
	}
	if _, _, err := snaps.Open("nonsense"); err == nil {
		t.Fatal("Open of a bad id succeeded")
	}
	if _, err := snaps.Create(0, 1, 1, testConfiguration, 1, nil); err == nil {
		t.Fatal("Create of version 0 succeeded")
	}
}

func TestRaftSnapshotChecksum(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	snaps := s.RaftSnapshots(0, 1)
	sink := writeSnapshot(t, snaps, 10, 1, snapshotBytes(2, raftChunkSize+10), true)
	id, _ := parseSnapshotID(sink.ID())
	key := binary.BigEndian.AppendUint32(snaps.dataPrefix(id), 1)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, []byte("0123456789")) }); err != nil {
		t.Fatal(err)
	}
	_, rc, err := snaps.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil {
		t.Fatal("a corrupt snapshot read without error")
	}
}

func TestRaftSnapshotRetain(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	snaps := s.RaftSnapshots(0, 2)
	var ids []string
	for i := range 4 {
		sink := writeSnapshot(t, snaps, uint64(10*(i+1)), 1, snapshotBytes(byte(i), raftChunkSize+1), true)
		ids = append(ids, sink.ID())
	}
	if got, want := listIDs(t, snaps), []string{ids[3], ids[2]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v (newest first)", got, want)
	}
	if _, _, err := snaps.Open(ids[1]); err == nil {
		t.Fatal("an old snapshot can still be opened")
	}
	if got := countKeys(t, s, snaps.data); got != 4 {
		t.Fatalf("%d chunks left, want 4 (2 snapshots of 2)", got)
	}

	// A snapshot open for reading outlives the retention until closed.
	_, rc, err := snaps.Open(ids[2])
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, writeSnapshot(t, snaps, 50, 2, snapshotBytes(5, 10), true).ID())
	ids = append(ids, writeSnapshot(t, snaps, 60, 2, snapshotBytes(6, 10), true).ID())
	if got, want := listIDs(t, snaps), []string{ids[5], ids[4]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	data, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(data, snapshotBytes(2, raftChunkSize+1)) {
		t.Fatalf("read of a snapshot past retention: %d bytes, %v", len(data), err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, writeSnapshot(t, snaps, 70, 2, snapshotBytes(7, 10), true).ID())
	if got, want := listIDs(t, snaps), []string{ids[6], ids[5]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if got := countKeys(t, s, snaps.meta); got != 2 {
		t.Fatalf("%d metas left, want 2 (the one read from is gone)", got)
	}
	if got := countKeys(t, s, snaps.data); got != 2 {
		t.Fatalf("%d chunks left, want 2", got)
	}
	// Same term and index: ordered by creation.
	a := writeSnapshot(t, snaps, 70, 2, nil, true).ID()
	if got, want := listIDs(t, snaps), []string{a, ids[6]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
}

func TestRaftSnapshotCancel(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	snaps := s.RaftSnapshots(0, 1)
	kept := writeSnapshot(t, snaps, 5, 1, snapshotBytes(1, 100), true)
	sink := writeSnapshot(t, snaps, 10, 1, snapshotBytes(2, 2*raftChunkSize+1), false)
	if got := countKeys(t, s, snaps.data); got != 3 {
		t.Fatalf("%d chunks while writing, want 3 (1 kept, 2 flushed)", got)
	}
	if err := sink.Cancel(); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close after Cancel: %v", err)
	}
	if got, want := listIDs(t, snaps), []string{kept.ID()}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if got := countKeys(t, s, snaps.data); got != 1 {
		t.Fatalf("%d chunks after Cancel, want 1", got)
	}
}

// TestRaftSnapshotConcurrentSinks checks that the cleanup at Create does not
// take the chunks of a sink still being written.
func TestRaftSnapshotConcurrentSinks(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	snaps := s.RaftSnapshots(0, 2)
	data := snapshotBytes(3, raftChunkSize+5)
	slow := writeSnapshot(t, snaps, 10, 1, data[:raftChunkSize+1], false)
	fast := writeSnapshot(t, snaps, 11, 1, snapshotBytes(4, 7), true)
	if _, err := slow.Write(data[raftChunkSize+1:]); err != nil {
		t.Fatal(err)
	}
	if err := slow.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := listIDs(t, snaps), []string{fast.ID(), slow.ID()}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if _, got := readSnapshot(t, snaps, slow.ID()); !bytes.Equal(got, data) {
		t.Fatal("the slow snapshot's data changed")
	}
}

// TestRaftStoresReopen closes the store with everything written, one sink
// left open (a crash while writing a snapshot), and checks it all after
// Open.
func TestRaftStoresReopen(t *testing.T) {
	t.Parallel()
	for _, synced := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", synced), func(t *testing.T) {
			t.Parallel()
			o := testOptions(t, "")
			o.Sync = synced
			s := mustOpen(t, o)
			ref := raft.NewInmemStore()
			logs := raftLogs(1, 40, 1)
			if err := s.RaftLog(9).StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			_ = ref.StoreLogs(logs)
			if err := s.RaftLog(9).DeleteRange(1, 5); err != nil {
				t.Fatal(err)
			}
			_ = ref.DeleteRange(1, 5)
			if err := s.RaftStable(9).SetUint64([]byte("CurrentTerm"), 7); err != nil {
				t.Fatal(err)
			}
			data := snapshotBytes(9, raftChunkSize+77)
			done := writeSnapshot(t, s.RaftSnapshots(9, 1), 40, 1, data, true)
			// Left open: its two chunks are written, its meta is not.
			writeSnapshot(t, s.RaftSnapshots(9, 1), 41, 1, snapshotBytes(1, 2*raftChunkSize), false)
			mustClose(t, s)

			s = mustOpen(t, o)
			defer mustClose(t, s)
			sameLogs(t, "reopened", s.RaftLog(9), ref, 0, 45)
			if n, err := s.RaftStable(9).GetUint64([]byte("CurrentTerm")); n != 7 || err != nil {
				t.Fatalf("GetUint64 after reopen = %d, %v", n, err)
			}
			prefix := raftGroupPrefix(prefixRaftSnapshot, 9)
			if got := countKeys(t, s, prefix); got != 1+2+2 {
				t.Fatalf("%d snapshot keys before cleanup, want 5 (meta and 2 chunks, 2 left by the crash)", got)
			}
			snaps := s.RaftSnapshots(9, 1)
			if got := countKeys(t, s, prefix); got != 3 {
				t.Fatalf("%d snapshot keys after cleanup, want 3", got)
			}
			if got, want := listIDs(t, snaps), []string{done.ID()}; !reflect.DeepEqual(got, want) {
				t.Fatalf("List = %v, want %v", got, want)
			}
			if _, got := readSnapshot(t, snaps, done.ID()); !bytes.Equal(got, data) {
				t.Fatal("snapshot data changed across reopen")
			}

			// The rest of the store ignores the Raft key spaces.
			if err := s.Queues(func(q uint64) error { return fmt.Errorf("queue %d listed", q) }); err != nil {
				t.Fatal(err)
			}
			if err := s.MessageIDs(func(id uint64) error { return fmt.Errorf("message %d listed", id) }); err != nil {
				t.Fatal(err)
			}
			if err := s.RunGC(); err != nil {
				t.Fatalf("RunGC: %v", err)
			}
		})
	}
}

func TestDropRaftGroup(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, testOptions(t, ""))
	defer mustClose(t, s)
	groups := []uint64{0, 1, 2, math.MaxUint64}
	for _, g := range groups {
		if err := s.RaftLog(g).StoreLogs(raftLogs(1, 10, g+1)); err != nil {
			t.Fatal(err)
		}
		if err := s.RaftStable(g).SetUint64([]byte("CurrentTerm"), g); err != nil {
			t.Fatal(err)
		}
		writeSnapshot(t, s.RaftSnapshots(g, 1), 10, 1, snapshotBytes(byte(g), raftChunkSize+1), true)
	}
	if err := s.PutDefinition('q', "queue", []byte("def")); err != nil {
		t.Fatal(err)
	}
	mustWait(t, s, s.PutEntry(1, 1, 5, nil))

	if err := s.DropRaftGroup(1); err != nil {
		t.Fatalf("DropRaftGroup: %v", err)
	}
	for _, p := range []byte{prefixRaftLog, prefixRaftStable, prefixRaftSnapshot} {
		if got := countKeys(t, s, raftGroupPrefix(p, 1)); got != 0 {
			t.Fatalf("%d keys %c of group 1 left", got, p)
		}
	}
	if ids := listIDs(t, s.RaftSnapshots(1, 1)); len(ids) != 0 {
		t.Fatalf("group 1 lists snapshots %v", ids)
	}
	if last, _ := s.RaftLog(1).LastIndex(); last != 0 {
		t.Fatalf("group 1 LastIndex = %d", last)
	}
	for _, g := range []uint64{0, 2, math.MaxUint64} {
		ref := raft.NewInmemStore()
		_ = ref.StoreLogs(raftLogs(1, 10, g+1))
		sameLogs(t, fmt.Sprintf("group %d", g), s.RaftLog(g), ref, 0, 11)
		if n, err := s.RaftStable(g).GetUint64([]byte("CurrentTerm")); n != g || err != nil {
			t.Fatalf("group %d: GetUint64 = %d, %v", g, n, err)
		}
		if ids := listIDs(t, s.RaftSnapshots(g, 1)); len(ids) != 1 {
			t.Fatalf("group %d lists %v", g, ids)
		}
	}
	if got := entryMap(t, s, 1); len(got) != 1 {
		t.Fatalf("queue entries after the drop: %v", got)
	}
	if err := s.Definitions('q', func(string, []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// listFSM is a Raft FSM holding a list of commands. Command n carries n in
// its first 8 bytes and is applied only right after command n-1: a command
// retried after a lost leadership is not applied twice.
type listFSM struct {
	mu   sync.Mutex
	cmds [][]byte
}

func raftCommand(n int) []byte {
	cmd := binary.BigEndian.AppendUint64(nil, uint64(n))
	return append(cmd, bytes.Repeat([]byte{byte(n)}, 5000)...) // snapshots of several chunks
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(l.Data) >= 8 && binary.BigEndian.Uint64(l.Data) == uint64(len(f.cmds)+1) {
		f.cmds = append(f.cmds, bytes.Clone(l.Data))
	}
	return nil
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(f.cmds[:len(f.cmds):len(f.cmds)]), nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds [][]byte
	r := bufio.NewReader(rc)
	for {
		n, err := binary.ReadUvarint(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		cmd := make([]byte, n)
		if _, err := io.ReadFull(r, cmd); err != nil {
			return err
		}
		cmds = append(cmds, cmd)
	}
	f.mu.Lock()
	f.cmds = cmds
	f.mu.Unlock()
	return nil
}

func (f *listFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cmds)
}

// check reports whether the FSM holds commands 1..n in order.
func (f *listFSM) check(n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cmds) != n {
		return fmt.Errorf("%d commands, want %d", len(f.cmds), n)
	}
	for i, cmd := range f.cmds {
		if !bytes.Equal(cmd, raftCommand(i+1)) {
			return fmt.Errorf("command %d is not the one applied %d-th", binary.BigEndian.Uint64(cmd), i+1)
		}
	}
	return nil
}

type listSnapshot [][]byte

func (l listSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	for _, cmd := range l {
		_, _ = w.Write(binary.AppendUvarint(nil, uint64(len(cmd))))
		_, _ = w.Write(cmd)
	}
	if err := w.Flush(); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// raftNode is one member of a test cluster: a Raft on a Store of its own.
type raftNode struct {
	id     raft.ServerID
	dir    string
	shared bool // the log is a SharedRaftLog, not a RaftLog
	store  *Store
	logs   raft.LogStore
	snaps  *RaftSnapshots
	fsm    *listFSM
	trans  *raft.InmemTransport
	raft   *raft.Raft
}

// raftTimeout bounds every wait of the cluster test: generous for a busy
// two-core machine under -race.
const raftTimeout = 20 * time.Second

func startRaftNodes(t *testing.T, nodes []*raftNode, bootstrap bool) {
	t.Helper()
	var servers []raft.Server
	for _, n := range nodes {
		n.store = mustOpen(t, testOptions(t, n.dir))
		n.logs, n.snaps = n.store.RaftLog(0), n.store.RaftSnapshots(0, 2)
		if n.shared {
			l, err := n.store.SharedRaftLog(0)
			if err != nil {
				t.Fatal(err)
			}
			n.logs = l
		}
		n.fsm = &listFSM{}
		_, n.trans = raft.NewInmemTransport(raft.ServerAddress(n.id))
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: n.id, Address: raft.ServerAddress(n.id)})
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
	for _, n := range nodes {
		conf := raft.DefaultConfig()
		conf.LocalID = n.id
		conf.HeartbeatTimeout = 200 * time.Millisecond
		conf.ElectionTimeout = 200 * time.Millisecond
		conf.LeaderLeaseTimeout = 200 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
		conf.SnapshotInterval = time.Hour // only the snapshot the test asks for
		conf.SnapshotThreshold = 1 << 30
		conf.TrailingLogs = 64
		conf.Logger = hclog.NewNullLogger()
		stable := n.store.RaftStable(0)
		if bootstrap {
			err := raft.BootstrapCluster(conf, n.logs, stable, n.snaps, n.trans, raft.Configuration{Servers: servers})
			if err != nil {
				t.Fatalf("%s: bootstrap: %v", n.id, err)
			}
		} else if ok, err := raft.HasExistingState(n.logs, stable, n.snaps); !ok || err != nil {
			t.Fatalf("%s: HasExistingState after restart = %v, %v", n.id, ok, err)
		}
		r, err := raft.NewRaft(conf, n.fsm, n.logs, stable, n.snaps, n.trans)
		if err != nil {
			t.Fatalf("%s: NewRaft: %v", n.id, err)
		}
		n.raft = r
	}
}

func stopRaftNodes(t *testing.T, nodes []*raftNode) {
	t.Helper()
	for _, n := range nodes {
		if n.raft != nil {
			if err := n.raft.Shutdown().Error(); err != nil {
				t.Errorf("%s: shutdown: %v", n.id, err)
			}
			n.raft = nil
		}
		if n.trans != nil {
			_ = n.trans.Close()
			n.trans = nil
		}
	}
	for _, n := range nodes {
		if n.store != nil {
			mustClose(t, n.store)
			n.store = nil
		}
	}
}

func raftLeader(t *testing.T, nodes []*raftNode) *raftNode {
	t.Helper()
	var leader *raftNode
	checkFor(t, raftTimeout, 10*time.Millisecond, func() error {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader = n
				return nil
			}
		}
		return errors.New("no leader")
	})
	return leader
}

// applyCommands applies commands from..to through the leader, pipelined. If
// leadership changes meanwhile it waits for the new leader to apply what was
// committed and goes on after its last command (the FSM skips repeats).
func applyCommands(t *testing.T, nodes []*raftNode, from, to int) {
	t.Helper()
	for attempt := 0; from <= to; attempt++ {
		if attempt == 5 {
			t.Fatalf("commands %d..%d not applied after %d leader changes", from, to, attempt)
		}
		leader := raftLeader(t, nodes)
		futures := make([]raft.ApplyFuture, 0, to-from+1)
		for i := from; i <= to; i++ {
			futures = append(futures, leader.raft.Apply(raftCommand(i), raftTimeout))
		}
		var err error
		for _, f := range futures {
			if ferr := f.Error(); ferr != nil && err == nil {
				err = ferr
			}
		}
		if err == nil {
			return
		}
		t.Logf("applying %d..%d through %s: %v; retrying", from, to, leader.id, err)
		leader = raftLeader(t, nodes)
		if err := leader.raft.Barrier(raftTimeout).Error(); err != nil {
			continue
		}
		from = leader.fsm.len() + 1
	}
}

// waitApplied waits until every node's FSM holds commands 1..n in order.
func waitApplied(t *testing.T, nodes []*raftNode, n int) {
	t.Helper()
	for _, node := range nodes {
		checkFor(t, raftTimeout, 10*time.Millisecond, func() error {
			if err := node.fsm.check(n); err != nil {
				return fmt.Errorf("%s: %w", node.id, err)
			}
			return nil
		})
	}
}

// TestRaftCluster runs three Rafts on the three stores, takes a snapshot,
// restarts them all and checks that they agree on every command; with the
// log in Badger and in the shared write-ahead log.
func TestRaftCluster(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) { testRaftCluster(t, shared) })
	}
}

func testRaftCluster(t *testing.T, shared bool) {
	nodes := make([]*raftNode, 3)
	for i := range nodes {
		nodes[i] = &raftNode{id: raft.ServerID(fmt.Sprintf("node%d", i)), dir: t.TempDir(), shared: shared}
	}
	t.Cleanup(func() { stopRaftNodes(t, nodes) })

	startRaftNodes(t, nodes, true)
	applyCommands(t, nodes, 1, 500)
	waitApplied(t, nodes, 500)

	// A snapshot of 2.5 MB (three chunks) and log compaction on one node.
	snapped := raftLeader(t, nodes)
	if err := snapped.raft.Snapshot().Error(); err != nil {
		t.Fatalf("%s: snapshot: %v", snapped.id, err)
	}
	metas, err := snapped.snaps.List()
	if err != nil || len(metas) != 1 || metas[0].Size <= 2*raftChunkSize {
		t.Fatalf("%s: snapshots after Snapshot() = %v, %v", snapped.id, metas, err)
	}
	if first, _ := snapped.logs.FirstIndex(); first <= 1 {
		t.Fatalf("%s: log not compacted after the snapshot: FirstIndex %d", snapped.id, first)
	}
	applyCommands(t, nodes, 501, 700)
	waitApplied(t, nodes, 700)

	stopRaftNodes(t, nodes)
	startRaftNodes(t, nodes, false)
	raftLeader(t, nodes)
	waitApplied(t, nodes, 700)
	for _, n := range nodes {
		if got, want := n.raft.Stats()["last_snapshot_index"] != "0", n == snapped; got != want {
			t.Fatalf("%s: restored from a snapshot: %v, want %v", n.id, got, want)
		}
	}
	if first, _ := snapped.logs.FirstIndex(); first <= 1 {
		t.Fatalf("%s: FirstIndex %d after restart", snapped.id, first)
	}
	applyCommands(t, nodes, 701, 720)
	waitApplied(t, nodes, 720)

	// A follower that fell behind the leader's compacted log catches up by
	// a snapshot (a monotonic log is emptied then, not left with a gap).
	leader := raftLeader(t, nodes)
	var lag *raftNode
	var live []*raftNode
	for _, n := range nodes {
		if n != leader && lag == nil {
			lag = n
		} else {
			live = append(live, n)
		}
	}
	stopRaftNodes(t, []*raftNode{lag})
	applyCommands(t, live, 721, 900)
	waitApplied(t, live, 900)
	for _, n := range live { // both: whichever leads must send a snapshot
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatalf("%s: snapshot: %v", n.id, err)
		}
	}
	startRaftNodes(t, []*raftNode{lag}, false)
	for _, n := range live {
		n.trans.Connect(lag.trans.LocalAddr(), lag.trans)
		lag.trans.Connect(n.trans.LocalAddr(), n.trans)
	}
	waitApplied(t, nodes, 900)
	if lag.raft.Stats()["last_snapshot_index"] == "0" {
		t.Fatalf("%s caught up without a snapshot", lag.id)
	}
	applyCommands(t, nodes, 901, 920)
	waitApplied(t, nodes, 920)
	// RaftLog keeps its old entries before a gap; the monotonic
	// SharedRaftLog was emptied and holds only what followed.
	if first, _ := lag.logs.FirstIndex(); shared && first <= 720 {
		t.Fatalf("%s: FirstIndex %d after installing a snapshot past 720", lag.id, first)
	}
}

// benchRaftStore runs bench on a new store, timing neither its Open nor its
// Close.
func benchRaftStore(b *testing.B, bench func(s *Store)) {
	s := mustOpen(b, testOptions(b, ""))
	b.ResetTimer()
	bench(s)
	b.StopTimer()
	mustClose(b, s)
}

func benchRaftLog(b *testing.B, f func(*testing.B, raft.LogStore)) {
	benchRaftStore(b, func(s *Store) { f(b, s.RaftLog(1)) })
}

func benchRaftStable(b *testing.B, f func(*testing.B, raft.StableStore)) {
	benchRaftStore(b, func(s *Store) { f(b, s.RaftStable(1)) })
}

func BenchmarkRaftLog_FirstIndex(b *testing.B)  { benchRaftLog(b, raftbench.FirstIndex) }
func BenchmarkRaftLog_LastIndex(b *testing.B)   { benchRaftLog(b, raftbench.LastIndex) }
func BenchmarkRaftLog_GetLog(b *testing.B)      { benchRaftLog(b, raftbench.GetLog) }
func BenchmarkRaftLog_StoreLog(b *testing.B)    { benchRaftLog(b, raftbench.StoreLog) }
func BenchmarkRaftLog_StoreLogs(b *testing.B)   { benchRaftLog(b, raftbench.StoreLogs) }
func BenchmarkRaftLog_DeleteRange(b *testing.B) { benchRaftLog(b, raftbench.DeleteRange) }
func BenchmarkRaftStable_Set(b *testing.B)      { benchRaftStable(b, raftbench.Set) }
func BenchmarkRaftStable_Get(b *testing.B)      { benchRaftStable(b, raftbench.Get) }
func BenchmarkRaftStable_SetUint64(b *testing.B) {
	benchRaftStable(b, raftbench.SetUint64)
}
func BenchmarkRaftStable_GetUint64(b *testing.B) {
	benchRaftStable(b, raftbench.GetUint64)
}
