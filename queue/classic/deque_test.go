package classic

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/warrenmq/warren/queue"
)

// dequeSeqs returns the Seqs of d's entries, front to back, by draining a
// copy (d is left as it was).
func dequeSeqs(d *deque) []uint64 {
	c := deque{buf: slices.Clone(d.buf), head: d.head, n: d.n}
	var out []uint64
	c.drain(func(e queue.Entry) { out = append(out, e.Seq) })
	return out
}

// checkDeque compares d with the model, element by element.
func checkDeque(t *rapid.T, d *deque, model []uint64) {
	t.Helper()
	if d.len() != len(model) {
		t.Fatalf("len %d, model %d", d.len(), len(model))
	}
	if got := dequeSeqs(d); !slices.Equal(got, model) {
		t.Fatalf("deque %v, model %v", got, model)
	}
	if d.n > len(d.buf) || d.n > 0 && (d.head < 0 || d.head >= len(d.buf)) {
		t.Fatalf("ring state: head %d n %d cap %d", d.head, d.n, len(d.buf))
	}
}

// TestDequeModel runs random pushes and pops against a slice.
func TestDequeModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		var d deque
		var model []uint64
		next := uint64(0)
		seq := func() uint64 { next++; return next }
		t.Repeat(map[string]func(*rapid.T){
			"pushBack": func(t *rapid.T) {
				s := seq()
				d.pushBack(&queue.Entry{Seq: s})
				model = append(model, s)
			},
			"pushFront": func(t *rapid.T) {
				s := seq()
				d.pushFront(&queue.Entry{Seq: s})
				model = slices.Insert(model, 0, s)
			},
			"pushBackMany": func(t *rapid.T) {
				// Enough to grow the ring several times, past the size at
				// which a drained ring is let go.
				for range rapid.IntRange(1, 1500).Draw(t, "n") {
					s := seq()
					d.pushBack(&queue.Entry{Seq: s})
					model = append(model, s)
				}
			},
			"popFront": func(t *rapid.T) {
				if len(model) == 0 {
					t.Skip("empty")
				}
				if e := popFront(&d); e.Seq != model[0] {
					t.Fatalf("popFront = %d, model %d", e.Seq, model[0])
				}
				model = model[1:]
			},
			"popMany": func(t *rapid.T) {
				for range rapid.IntRange(0, len(model)).Draw(t, "n") {
					if e := popFront(&d); e.Seq != model[0] {
						t.Fatalf("popFront = %d, model %d", e.Seq, model[0])
					}
					model = model[1:]
				}
			},
			"drain": func(t *rapid.T) {
				var got []uint64
				d.drain(func(e queue.Entry) { got = append(got, e.Seq) })
				if !slices.Equal(got, model) {
					t.Fatalf("drain = %v, model %v", got, model)
				}
				model = nil
			},
			"": func(t *rapid.T) { checkDeque(t, &d, model) },
		})
	})
}

// TestDequeInsertSortedModel checks that a deque kept in Seq order with
// insertSorted (requeues), popFront (deliveries) and pushFront of a smaller
// Seq (a refused offer put back) stays sorted like a sorted slice.
func TestDequeInsertSortedModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		var d deque
		var model []uint64 // sorted
		used := map[uint64]bool{}
		fresh := func(t *rapid.T) uint64 {
			s := rapid.Uint64Range(1, 5000).Filter(func(s uint64) bool { return !used[s] }).Draw(t, "seq")
			used[s] = true
			return s
		}
		insert := func(s uint64) {
			d.insertSorted(&queue.Entry{Seq: s})
			i, _ := slices.BinarySearch(model, s)
			model = slices.Insert(model, i, s)
		}
		t.Repeat(map[string]func(*rapid.T){
			"insertSorted": func(t *rapid.T) { insert(fresh(t)) },
			"insertMany": func(t *rapid.T) {
				for range rapid.IntRange(1, 40).Draw(t, "n") {
					insert(fresh(t))
				}
			},
			"popFront": func(t *rapid.T) {
				if len(model) == 0 {
					t.Skip("empty")
				}
				if e := popFront(&d); e.Seq != model[0] {
					t.Fatalf("popFront = %d, model %d", e.Seq, model[0])
				}
				model = model[1:]
			},
			"unpop": func(t *rapid.T) {
				if len(model) == 0 {
					t.Skip("empty")
				}
				e := popFront(&d)
				d.pushFront(&e)
			},
			"": func(t *rapid.T) { checkDeque(t, &d, model) },
		})
	})
}

func TestDequeReleasesLargeDrainedRing(t *testing.T) {
	t.Parallel()
	var d deque
	for i := range 2000 {
		d.pushBack(&queue.Entry{Seq: uint64(i)})
	}
	for range 2000 {
		popFront(&d)
	}
	if d.buf != nil || d.head != 0 || d.n != 0 {
		t.Fatalf("drained 2000-entry deque kept a ring of %d (head %d)", len(d.buf), d.head)
	}
	// Small rings are kept for reuse.
	d.pushBack(&queue.Entry{Seq: 1})
	popFront(&d)
	if d.buf == nil {
		t.Fatal("a small drained ring was let go")
	}
	// popFront clears the slot so a delivered message is not kept alive.
	d.pushBack(&queue.Entry{Msg: &queue.Message{}, Seq: 2})
	popFront(&d)
	for i, e := range d.buf {
		if e.Msg != nil {
			t.Fatalf("slot %d still references a popped message", i)
		}
	}
}

// popFront pops d's first entry and returns it.
func popFront(d *deque) queue.Entry {
	var e queue.Entry
	d.popFront(&e)
	return e
}
