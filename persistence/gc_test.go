package persistence

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestDiskShrinksAfterBacklogDrains writes a backlog of 1-4 KiB messages with
// their index entries, deletes everything, runs one GC pass and checks that
// the directory gave the space back. What may remain: the value-log file being
// written (at most ValueLogFileSize: GC never rewrites it), the memtable's
// write-ahead log, and small fixed files (MANIFEST, DISCARD, KEYREGISTRY).
func TestDiskShrinksAfterBacklogDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MB")
	}
	t.Parallel()
	const backlog = 200 << 20
	o := testOptions(t, "")
	o.Sync = false // the test is about space, not durability
	s := mustOpen(t, o)
	defer mustClose(t, s)

	rng := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, 4096)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	q := s.NextQueueID()
	var ids []uint64
	var written int64
	var last Ticket
	start := time.Now()
	for seq := uint64(0); written < backlog; seq++ {
		id := s.NextMessageID()
		n := 1024 + rng.IntN(3072)
		s.PutMessage(id, payload[:n])
		last = s.PutEntry(q, seq, id, []byte{1, 2, 3})
		ids = append(ids, id)
		written += int64(n)
		if seq%4096 == 4095 {
			mustWait(t, s, last) // bound the pending batch, as a publisher's window would
		}
	}
	mustWait(t, s, last)
	peak, err := diskUsage(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d messages, %d MiB, in %v: %d MiB on disk", len(ids), written>>20, time.Since(start).Round(time.Millisecond), peak>>20)
	if peak < backlog {
		t.Fatalf("only %d MiB on disk after writing %d MiB: the measure is wrong", peak>>20, backlog>>20)
	}

	start = time.Now()
	for seq, id := range ids {
		s.DeleteEntry(q, uint64(seq))
		last = s.DeleteMessage(id)
		if seq%8192 == 8191 {
			mustWait(t, s, last)
		}
	}
	mustWait(t, s, last)
	afterDelete, _ := diskUsage(o.Dir)
	t.Logf("deleted everything in %v: %d MiB on disk", time.Since(start).Round(time.Millisecond), afterDelete>>20)

	start = time.Now()
	if err := s.RunGC(); err != nil {
		t.Fatalf("RunGC: %v", err)
	}
	final, err := diskUsage(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	bound := o.ValueLogFileSize + 2*o.MemTableSize + 8<<20
	t.Logf("GC pass took %v: %d MiB on disk (bound %d MiB)", time.Since(start).Round(time.Millisecond), final>>20, bound>>20)
	if final > bound {
		t.Errorf("after draining %d MiB and GC, %d MiB on disk; want at most %d MiB", written>>20, final>>20, bound>>20)
	}

	// The store is still whole: new writes work and nothing old came back.
	id := s.NextMessageID()
	s.PutMessage(id, []byte("after gc"))
	mustWait(t, s, s.PutEntry(q, uint64(len(ids)), id, nil))
	if got := entryMap(t, s, q); len(got) != 1 {
		t.Errorf("%d entries after GC, want the 1 new one", len(got))
	}
}

func TestScheduledCompactionWaitsForQuiet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		quiet     bool // the committer idle for long
		deferrals int  // passes put off before the compaction
	}{
		{name: "busy", quiet: false, deferrals: compactMaxDeferrals},
		{name: "quiet", quiet: true, deferrals: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions(t, "")
			o.Sync = false
			s := mustOpen(t, o)
			defer mustClose(t, s)
			const n = compactAfterDeletes
			var last Ticket
			for i := range uint64(n) {
				s.PutMessage(i+1, body(i+1, 600))
				last = s.PutEntry(1, i, i+1, nil)
			}
			mustWait(t, s, last)
			for i := range uint64(n) {
				s.DeleteEntry(1, i)
				last = s.DeleteMessage(i + 1)
			}
			mustWait(t, s, last)

			pass := func() {
				t.Helper()
				if tt.quiet {
					s.lastWrite.Store(time.Now().Add(-time.Hour).UnixNano())
				} else {
					mustWait(t, s, s.PutMessage(1<<40, []byte("traffic")))
				}
				if err := s.runGC(true); err != nil {
					t.Fatalf("runGC: %v", err)
				}
			}
			for i := range tt.deferrals {
				pass()
				if s.deletesAtCompact != 0 || s.compactDeferrals != i+1 {
					t.Fatalf("pass %d: compacted at %d deletes, %d deferrals; want put off", i+1, s.deletesAtCompact, s.compactDeferrals)
				}
			}
			pass()
			if s.deletesAtCompact < 2*n || s.compactDeferrals != 0 {
				t.Fatalf("after %d deferrals: compacted at %d deletes, %d deferrals; want compacted", tt.deferrals, s.deletesAtCompact, s.compactDeferrals)
			}
		})
	}
}
