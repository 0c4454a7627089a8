package persistence

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// segmentFiles lists the segment files of the store in dir.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "bodies", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// Large bodies go to segments; they read back before and after a
// restart; a segment whose bodies are all deleted is removed at once, so
// a stream of short-lived messages leaves neither files nor disk behind.
func TestBodySegments(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20 // 15 bodies of 64 KiB per segment
	s := mustOpen(t, o)
	const n, size = 100, 64 << 10
	var last Ticket
	for id := uint64(1); id <= n; id++ {
		last = s.PutMessage(id, body(id, size))
		mustWait(t, s, last) // one batch each: the put is written, not cancelled
	}
	small := s.PutMessage(n+1, []byte("small"))
	mustWait(t, s, small)
	if files := segmentFiles(t, o.Dir); len(files) < n*size/(1<<20) {
		t.Fatalf("%d bodies of 64 KiB in %d segments of 1 MiB", n, len(files))
	}
	check := func(s *Store, id uint64) {
		t.Helper()
		got, err := s.Message(id, nil)
		if err != nil || !bytes.Equal(got, body(id, size)) {
			t.Fatalf("message %d: %d bytes, %v", id, len(got), err)
		}
	}
	check(s, 1)
	check(s, n)
	mustClose(t, s)

	s = mustOpen(t, o)
	defer func() { mustClose(t, s) }()
	for id := uint64(1); id <= n; id++ {
		check(s, id)
	}
	var ids []uint64
	if err := s.MessageIDs(func(id uint64) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if len(ids) != n+1 || ids[0] != 1 || ids[n] != n+1 {
		t.Fatalf("MessageIDs after reopening: %d ids, %v...", len(ids), ids[:min(len(ids), 5)])
	}
	if next := s.NextMessageID(); next <= n+1 {
		t.Fatalf("NextMessageID %d reuses a stored id", next)
	}
	// Delete all but one: every segment but the current one and the one
	// holding the survivor goes.
	for id := uint64(1); id <= n; id++ {
		if id != 50 {
			s.DeleteMessage(id)
		}
	}
	mustWait(t, s, s.PutMessage(1000, []byte("flush")))
	if files := segmentFiles(t, o.Dir); len(files) > 2 {
		t.Fatalf("after deleting all but one body: %d segments: %v", len(files), files)
	}
	check(s, 50)
	if _, err := s.Message(1, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted message: %v", err)
	}
}

// A body whose segment was lost or damaged is reported, not returned
// wrong; opening the store drops pointers to a lost segment.
func TestBodySegmentDamage(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20
	s := mustOpen(t, o)
	const size = 600 << 10 // one body per segment
	for id := uint64(1); id <= 3; id++ {
		mustWait(t, s, s.PutMessage(id, body(id, size)))
	}
	mustClose(t, s)
	files := segmentFiles(t, o.Dir)
	slices.Sort(files)
	if len(files) < 3 {
		t.Fatalf("segments: %v", files)
	}
	// Lose the first body's segment, flip a byte of the second body.
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(files[1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'!'}, bodyHeaderLen+1000); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s = mustOpen(t, o)
	defer mustClose(t, s)
	if _, err := s.Message(1, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("body of a lost segment: %v, want ErrNotFound", err)
	}
	if _, err := s.Message(2, nil); err == nil {
		t.Error("a damaged body was returned")
	}
	if got, err := s.Message(3, nil); err != nil || !bytes.Equal(got, body(3, size)) {
		t.Errorf("intact body: %d bytes, %v", len(got), err)
	}
	n := 0
	if err := s.MessageIDs(func(uint64) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("MessageIDs: %d, %v; want the two bodies whose segments exist", n, err)
	}
}

// A few long-lived bodies among many deleted ones do not pin their
// segments: GC moves them to the current segment and deletes the old
// ones; they read back, also after a restart.
func TestBodySegmentCompaction(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20
	s := mustOpen(t, o)
	const n, size = 200, 32 << 10 // 31 bodies a segment
	for id := uint64(1); id <= n; id++ {
		mustWait(t, s, s.PutMessage(id, body(id, size)))
	}
	kept := func(id uint64) bool { return id%40 == 0 }
	for id := uint64(1); id <= n; id++ {
		if !kept(id) {
			s.DeleteMessage(id)
		}
	}
	mustWait(t, s, s.PutMessage(n+1, body(n+1, size)))
	before := len(segmentFiles(t, o.Dir))
	if err := s.RunGC(); err != nil {
		t.Fatal(err)
	}
	after := len(segmentFiles(t, o.Dir))
	if after >= before || after > 2 {
		t.Fatalf("segments: %d before GC, %d after; want the survivors moved into the current one", before, after)
	}
	check := func() {
		t.Helper()
		for id := uint64(1); id <= n+1; id++ {
			got, err := s.Message(id, nil)
			switch {
			case kept(id) || id == n+1:
				if err != nil || !bytes.Equal(got, body(id, size)) {
					t.Fatalf("kept message %d: %d bytes, %v", id, len(got), err)
				}
			case !errors.Is(err, ErrNotFound):
				t.Fatalf("deleted message %d: %v", id, err)
			}
		}
	}
	check()
	mustClose(t, s)
	s = mustOpen(t, o)
	defer mustClose(t, s)
	check()
}

// blockCommitter makes the committer take a one-op batch and wait on the
// gate, so that what is queued next lands in one pending batch.
func blockCommitter(t *testing.T, s *Store, id uint64) func() {
	t.Helper()
	s.gate.Lock()
	s.PutMessage(id, []byte("x"))
	awaitStore(t, s, func() bool { return s.inflight != nil })
	return s.gate.Unlock
}

// awaitStore waits, with a deadline, until cond (called under s.mu) holds.
func awaitStore(t *testing.T, s *Store, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the store did not get there within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func storedIDs(t *testing.T, s *Store) []uint64 {
	t.Helper()
	var out []uint64
	if err := s.MessageIDs(func(id uint64) error { out = append(out, id); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// A batch split by ErrTxnTooBig whose later part fails: the first part's
// pointers are committed and counted, so their segment is not deleted
// under them.
func TestBodiesOfAPartlyFailedBatch(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20
	s := mustOpen(t, o)
	defer func() { mustClose(t, s) }()
	if err := s.Wait(s.PutMessage(1, body(1, 128))); err != nil { // A, in segment 1
		t.Fatal(err)
	}
	// Make the rollover to segment 2 fail.
	block := filepath.Join(o.Dir, "bodies", "00000002.seg")
	if err := os.WriteFile(block, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	release := blockCommitter(t, s, 5)
	var last Ticket
	for id := uint64(10); id < 10+12000; id++ {
		last = s.PutMessage(id, body(id, 128))
	}
	release()
	if err := s.Wait(last); err == nil {
		t.Fatal("batch did not fail")
	}
	if _, err := s.Message(10, nil); err != nil {
		t.Fatalf("message 10 unreadable right after: %v", err)
	}
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	// Roll segment 1 over, then delete A: segment 1 goes.
	if err := s.Wait(s.PutMessage(50000, body(50000, 128))); err != nil {
		t.Fatal(err)
	}
	s.DeleteMessage(1)
	if err := s.Wait(s.PutMessage(50001, body(50001, 128))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(10, nil); err != nil {
		t.Errorf("message 10, whose pointer is committed (listed by MessageIDs: %v): %v",
			slices.Contains(storedIDs(t, s), 10), err)
	}
}

// A compaction step and a delete of a moved body in the same batch: the
// delete finds the body where it moved.
func TestCompactionThenDeleteInOneBatch(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20
	s := mustOpen(t, o)
	defer func() { mustClose(t, s) }()
	const size = 64 << 10
	for id := uint64(1); id <= 20; id++ {
		if err := s.Wait(s.PutMessage(id, body(id, size))); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(1); id <= 14; id++ {
		s.DeleteMessage(id)
	}
	if err := s.Wait(s.PutMessage(100, []byte("f"))); err != nil {
		t.Fatal(err)
	}
	release := blockCommitter(t, s, 101)
	done := make(chan error, 1)
	go func() { done <- s.writeSync(op{kind: opCompactBodies}) }()
	awaitStore(t, s, func() bool { return len(s.pending.ops) == 1 })
	s.DeleteMessage(15)
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.bodyMoves == 0 {
		t.Fatal("the compaction step moved nothing")
	}
	if _, err := s.Message(15, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("message 15 deleted, but Message returns err=%v; MessageIDs lists it: %v",
			err, slices.Contains(storedIDs(t, s), 15))
	}
}

// With a small GCDiscardRatio, fully live segments of small bodies are not
// taken for garbage (their records' headers count as live): compaction
// does not move them round and round.
func TestCompactionLeavesLiveSegments(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "")
	o.ValueLogFileSize = 1 << 20
	o.GCDiscardRatio = 0.1
	s := mustOpen(t, o)
	defer func() { mustClose(t, s) }()
	var last Ticket
	for id := uint64(1); id <= 20000; id++ {
		last = s.PutMessage(id, body(id, 128))
	}
	if err := s.Wait(last); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := 0; i < 5; i++ {
		s.bodyMoves = 0
		if err := s.writeSync(op{kind: opCompactBodies}); err != nil {
			t.Fatal(err)
		}
		total += s.bodyMoves
	}
	if total != 0 {
		t.Errorf("nothing deleted, yet 5 compaction steps moved %d live bodies", total)
	}
}
