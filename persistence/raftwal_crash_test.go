package persistence

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// walCrashDirEnv names the store directory of TestRaftWALCrashChild.
const walCrashDirEnv = "WARREN_PERSISTENCE_WAL_CRASH_DIR"

// walCrashGroups is how many groups the child writes, one goroutine each.
const walCrashGroups = 4

// TestRaftWALCrashChild is the child of TestRaftWALCrash: it appends to
// walCrashGroups shared Raft logs as Raft would (appends, conflicting
// suffixes replaced, compactions from the front, emptied logs) until it is
// killed, and runs compaction passes meanwhile. Before each operation it
// prints it ("op group seq store lo hi term" or "op group seq del min
// max"), after it returns "ok group seq"; each line is flushed at once.
func TestRaftWALCrashChild(t *testing.T) {
	dir := os.Getenv(walCrashDirEnv)
	if dir == "" {
		t.Skip("run by TestRaftWALCrash")
	}
	o := DefaultOptions(dir)
	o.GCInterval = -1
	o.ValueLogFileSize = 1 << 20 // segments fill, are freed and reused
	s, err := Open(o)
	if err != nil {
		fmt.Printf("open failed: %v\n", err)
		os.Exit(2)
	}
	p := &crashPrinter{w: bufio.NewWriter(os.Stdout)}
	for g := uint64(1); g <= walCrashGroups; g++ {
		l, err := s.SharedRaftLog(g)
		if err != nil {
			fmt.Printf("open failed: %v\n", err)
			os.Exit(2)
		}
		go walCrashWriter(s, l, g, p)
	}
	select {} // until SIGKILL
}

func walCrashWriter(s *Store, l *SharedRaftLog, g uint64, p *crashPrinter) {
	rng := rand.New(rand.NewPCG(g, uint64(os.Getpid())))
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	term := uint64(1)
	if last > 0 {
		var e raft.Log
		if err := l.GetLog(last, &e); err == nil {
			term = e.Term
		}
	}
	fail := func(err error) {
		p.printf(true, "fail %d %v\n", g, err)
		select {}
	}
	for seq := 1; ; seq++ {
		switch op := rng.IntN(100); {
		case op < 8 && first != 0 && last > first: // a conflicting suffix: truncated, stored anew
			from := first + uint64(rng.IntN(int(last-first+1)))
			p.printf(true, "op %d %d del %d %d\n", g, seq, from, last)
			if err := l.DeleteRange(from, last); err != nil {
				fail(err)
			}
			p.printf(true, "ok %d %d\n", g, seq)
			if from == first {
				first = 0
			}
			last = from - 1
			term++
		case op < 14 && first != 0 && last-first > 300: // compaction after a snapshot
			p.printf(true, "op %d %d del %d %d\n", g, seq, first, last-200)
			if err := l.DeleteRange(first, last-200); err != nil {
				fail(err)
			}
			p.printf(true, "ok %d %d\n", g, seq)
			first = last - 199
		case op == 14: // emptied after installing a snapshot
			p.printf(true, "op %d %d del %d %d\n", g, seq, uint64(0), uint64(math.MaxUint64))
			if err := l.DeleteRange(0, math.MaxUint64); err != nil {
				fail(err)
			}
			p.printf(true, "ok %d %d\n", g, seq)
			first, last = 0, last+uint64(rng.IntN(1000))
			term++
		case op == 15 && g == 1:
			if _, err := s.compactRaftWAL(); err != nil {
				fail(err)
			}
		default:
			lo := last + 1
			hi := lo + uint64(rng.IntN(30))
			p.printf(true, "op %d %d store %d %d %d\n", g, seq, lo, hi, term)
			if err := l.StoreLogs(walTestLogs(g, lo, hi, term)); err != nil {
				fail(err)
			}
			p.printf(true, "ok %d %d\n", g, seq)
			if first == 0 {
				first = lo
			}
			last = hi
		}
	}
}

// walCrashOp is an operation the child reported starting.
type walCrashOp struct {
	del          bool
	lo, hi, term uint64
	done         bool
}

// TestRaftWALCrash kills the writing child at random moments, reopens the
// store each time and checks every group's log: it holds exactly what the
// operations the child saw return made of it, but for the one in progress
// when it died, which may have been written in part (a prefix of its
// entries) or whole.
func TestRaftWALCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	dir := t.TempDir()
	models := map[uint64]*raft.InmemStore{}
	for round := range 4 {
		ops := map[uint64][]walCrashOp{}
		runUntilKilled(t, "TestRaftWALCrashChild", []string{walCrashDirEnv + "=" + dir}, func(line string) (bool, error) {
			f := strings.Fields(line)
			n := make([]uint64, len(f))
			for i := 1; i < len(f); i++ {
				n[i], _ = strconv.ParseUint(f[i], 10, 64)
			}
			switch {
			case len(f) >= 6 && f[0] == "op":
				op := walCrashOp{del: f[3] == "del", lo: n[4], hi: n[5]}
				if len(f) == 7 {
					op.term = n[6]
				}
				ops[n[1]] = append(ops[n[1]], op)
			case len(f) == 3 && f[0] == "ok":
				o := ops[n[1]]
				o[len(o)-1].done = true
				return true, nil
			case len(f) > 0 && f[0] == "fail":
				return false, fmt.Errorf("child: %s", line)
			}
			return false, nil
		})
		s := mustOpen(t, testOptions(t, dir))
		acked := 0
		for g := uint64(1); g <= walCrashGroups; g++ {
			if models[g] == nil {
				models[g] = raft.NewInmemStore()
			}
			m := models[g]
			var inflight *walCrashOp
			for i := range ops[g] {
				op := &ops[g][i]
				if !op.done {
					inflight = op
					break
				}
				m = applyWALCrashOp(m, g, op, op.hi-op.lo+1)
				acked++
			}
			l, err := s.SharedRaftLog(g)
			if err != nil {
				t.Fatal(err)
			}
			models[g] = walCrashOutcome(t, round, g, l, m, inflight)
		}
		t.Logf("round %d: %d operations returned before the kill, all found", round, acked)
		mustClose(t, s)
	}
}

// applyWALCrashOp applies op to m and returns the result: a deletion, or
// the first n entries of a store.
func applyWALCrashOp(m *raft.InmemStore, g uint64, op *walCrashOp, n uint64) *raft.InmemStore {
	if op.del {
		first, _ := m.FirstIndex()
		last, _ := m.LastIndex()
		if op.lo <= first && op.hi >= last {
			return raft.NewInmemStore() // emptied
		}
		_ = m.DeleteRange(op.lo, op.hi)
		return m
	}
	if n > 0 {
		_ = m.StoreLogs(walTestLogs(g, op.lo, op.lo+n-1, op.term))
	}
	return m
}

// walCrashOutcome checks that l holds m, or m with the operation in
// progress applied in part or whole, and returns the model that matched.
func walCrashOutcome(t *testing.T, round int, g uint64, l *SharedRaftLog, m *raft.InmemStore, inflight *walCrashOp) *raft.InmemStore {
	t.Helper()
	candidates := []*raft.InmemStore{m}
	if inflight != nil {
		n := uint64(1)
		if !inflight.del {
			n = inflight.hi - inflight.lo + 1
		}
		for k := uint64(1); k <= n; k++ {
			candidates = append(candidates, applyWALCrashOp(cloneInmem(m), g, inflight, k))
		}
	}
	var errs []string
	for _, c := range candidates {
		err := sameLogErr(l, c)
		if err == nil {
			return c
		}
		errs = append(errs, err.Error())
	}
	t.Fatalf("round %d: group %d matches no outcome (in progress: %+v): %s", round, g, inflight, strings.Join(errs, "; "))
	return nil
}

// cloneInmem copies an InmemStore's entries.
func cloneInmem(m *raft.InmemStore) *raft.InmemStore {
	c := raft.NewInmemStore()
	first, _ := m.FirstIndex()
	last, _ := m.LastIndex()
	for i := first; i <= last && first != 0; i++ {
		var e raft.Log
		if m.GetLog(i, &e) == nil {
			_ = c.StoreLog(&e)
		}
	}
	return c
}

// sameLogErr is sameLogs returning the first difference over the whole of
// both logs instead of failing.
func sameLogErr(ours, ref raft.LogStore) error {
	f1, _ := ours.FirstIndex()
	l1, _ := ours.LastIndex()
	f2, _ := ref.FirstIndex()
	l2, _ := ref.LastIndex()
	if f1 != f2 || l1 != l2 {
		return fmt.Errorf("bounds %d-%d, want %d-%d", f1, l1, f2, l2)
	}
	for i := f1; i <= l1 && f1 != 0; i++ {
		var a, b raft.Log
		if err := ours.GetLog(i, &a); err != nil {
			return fmt.Errorf("GetLog(%d): %v", i, err)
		}
		if err := ref.GetLog(i, &b); err != nil {
			return fmt.Errorf("reference GetLog(%d): %v", i, err)
		}
		if !sameLog(&a, &b) {
			return fmt.Errorf("entry %d differs: term %d, want %d", i, a.Term, b.Term)
		}
	}
	return nil
}
