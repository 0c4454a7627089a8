package exchange

import (
	"testing"

	"pgregory.net/rapid"
)

// TestDestSet checks destSet's counts, lazy reference counts and position
// index against a map, and dedupTail against the obvious filter.
func TestDestSet(t *testing.T) {
	t.Parallel()
	pool := make([]*testDest, 40)
	for i := range pool {
		pool[i] = &testDest{string(rune('A' + i))}
	}
	rapid.Check(t, func(t *rapid.T) {
		var s destSet
		ref := map[Destination]int{}
		for step := range rapid.IntRange(1, 300).Draw(t, "steps") {
			d := pool[rapid.IntRange(0, rapid.IntRange(1, len(pool)-1).Draw(t, "span")).Draw(t, "dest")]
			if rapid.Bool().Draw(t, "add") {
				if isNew := s.add(d); isNew != (ref[d] == 0) {
					t.Fatalf("step %d: add new = %v, count was %d", step, isNew, ref[d])
				}
				ref[d]++
			} else {
				c := ref[d]
				if gone := s.release(d); gone != (c == 1) {
					t.Fatalf("step %d: release gone = %v, count was %d", step, gone, c)
				}
				if c <= 1 {
					delete(ref, d)
				} else {
					ref[d] = c - 1
				}
			}
			if s.len() != len(ref) {
				t.Fatalf("step %d: len %d, want %d", step, s.len(), len(ref))
			}
			noDups(t, s.list)
			for i, x := range s.list {
				if ref[x] == 0 {
					t.Fatalf("step %d: %s listed but not bound", step, x.Name())
				}
				if got := s.find(x); got != i {
					t.Fatalf("step %d: find(%s) = %d, want %d", step, x.Name(), got, i)
				}
			}
		}
	})
}

func TestDedupTail(t *testing.T) {
	t.Parallel()
	pool := []Destination{qa, qb, qc, qd}
	rapid.Check(t, func(t *rapid.T) {
		head := rapid.SliceOfN(rapid.SampledFrom(pool), 0, 3).Draw(t, "head")
		tail := rapid.SliceOfN(rapid.SampledFrom(pool), 0, 100).Draw(t, "tail")
		out := dedupTail(append(append([]Destination(nil), head...), tail...), len(head))
		var want []Destination
		seen := map[Destination]bool{}
		for _, d := range tail {
			if !seen[d] {
				seen[d] = true
				want = append(want, d)
			}
		}
		if len(out) != len(head)+len(want) {
			t.Fatalf("dedupTail kept %d, want %d", len(out)-len(head), len(want))
		}
		for i, d := range want {
			if out[len(head)+i] != d {
				t.Fatalf("dedupTail order differs at %d", i)
			}
		}
		for i, d := range head {
			if out[i] != d {
				t.Fatal("dedupTail changed the head")
			}
		}
	})
}
