package classic

import (
	"math/bits"

	"github.com/warrenmq/warren/queue"
)

// ready holds a queue's ready entries: one level per priority (a single
// level when the queue has no x-max-priority), offered highest level first.
// Within a level, requeued entries (kept in Seq order, so that a message
// returns near its original place) come before the others (in publish
// order). A bitmap of the levels in use makes finding the highest one a
// few instructions whatever the number of levels.
type ready struct {
	levels []level
	used   [4]uint64 // bit p: levels[p] holds entries (kept only with several levels)
	n      int
}

type level struct {
	returned, fresh deque
}

// head is the entry the level offers next; the level must not be empty.
func (l *level) head() *queue.Entry {
	if l.returned.len() > 0 {
		return l.returned.front()
	}
	return l.fresh.front()
}

func newReady(maxPriority uint8) ready {
	return ready{levels: make([]level, int(maxPriority)+1)}
}

func (r *ready) len() int { return r.n }

// levelOf is the level an entry waits at: its priority, capped at the
// queue's maximum.
func (r *ready) levelOf(e *queue.Entry) int { return min(int(e.Priority), len(r.levels)-1) }

func (r *ready) mark(p int) {
	if len(r.levels) > 1 {
		r.used[p>>6] |= 1 << (p & 63)
	}
}

// settle clears p's bit once the level is empty.
func (r *ready) settle(p int) {
	if l := &r.levels[p]; len(r.levels) > 1 && l.returned.len()+l.fresh.len() == 0 {
		r.used[p>>6] &^= 1 << (p & 63)
	}
}

// top is the highest level holding entries, -1 when none does.
func (r *ready) top() int {
	if len(r.levels) == 1 {
		if r.n > 0 {
			return 0
		}
		return -1
	}
	for w := len(r.used) - 1; w >= 0; w-- {
		if r.used[w] != 0 {
			return w<<6 + 63 - bits.LeadingZeros64(r.used[w])
		}
	}
	return -1
}

// push adds a new entry behind the others of its level.
func (r *ready) push(e *queue.Entry) {
	p := 0
	if len(r.levels) > 1 {
		p = r.levelOf(e)
		r.mark(p)
	}
	r.levels[p].fresh.pushBack(e)
	r.n++
}

// requeue puts a returned entry back near its original place.
func (r *ready) requeue(e queue.Entry) {
	p := r.levelOf(&e)
	r.levels[p].returned.insertSorted(&e)
	r.mark(p)
	r.n++
}

// pop takes the next entry to offer into e; there must be one.
func (r *ready) pop(e *queue.Entry) {
	p := 0
	if len(r.levels) > 1 {
		p = r.top()
	}
	r.popAt(p, e)
}

// popAt takes the next entry of level p into e.
func (r *ready) popAt(p int, e *queue.Entry) {
	l := &r.levels[p]
	if l.returned.n > 0 {
		l.returned.popFront(e)
	} else {
		l.fresh.popFront(e)
	}
	if len(r.levels) > 1 {
		r.settle(p)
	}
	r.n--
}

// unpop puts back an entry pop returned.
func (r *ready) unpop(e queue.Entry) {
	p := r.levelOf(&e)
	if e.Redelivered {
		r.levels[p].returned.pushFront(&e)
	} else {
		r.levels[p].fresh.pushFront(&e)
	}
	r.mark(p)
	r.n++
}

// heads calls fn with each level in use (highest first) and the entry at
// its head, until fn returns false.
func (r *ready) heads(fn func(p int, e *queue.Entry) bool) {
	if len(r.levels) == 1 {
		if r.n > 0 {
			fn(0, r.levels[0].head())
		}
		return
	}
	for w := len(r.used) - 1; w >= 0; w-- {
		for m := r.used[w]; m != 0; {
			b := 63 - bits.LeadingZeros64(m)
			m &^= 1 << b
			p := w<<6 + b
			if !fn(p, r.levels[p].head()) {
				return
			}
		}
	}
}

// drain removes every entry, in the order they would have been offered.
func (r *ready) drain(fn func(queue.Entry)) {
	var e queue.Entry
	for r.n > 0 {
		r.pop(&e)
		fn(e)
	}
}
