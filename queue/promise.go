package queue

import "iter"

// A Ledger is where a queue kind's durability promises come due: positions
// numbered in the order the kind promised them, each either kept (the
// message is safe) or failed. A classic queue's ledger is its store's group
// commit, where a position is a batch; a Raft-backed kind's would be its
// log. Positions come due in order: once position n has, every position
// before it has too.
type Ledger interface {
	// Notify calls w.Due(l, upTo, err) once position at has come due, where
	// l is this ledger, every position up to upTo has come due, and err is
	// the outcome of position upTo. It calls at once, on this goroutine,
	// when at has come due already; otherwise later, from a goroutine of the
	// ledger's, and then w must not block.
	Notify(at uint64, w Waiter)
	// Wait blocks until position at has come due and returns its outcome.
	Wait(at uint64) error
	// FirstFailure returns the first position after `after` that failed,
	// and its error; 0 and nil when none has (so far).
	FirstFailure(after uint64) (uint64, error)
}

// A Waiter hears from a Ledger that positions have come due.
type Waiter interface {
	Due(l Ledger, upTo uint64, err error)
}

// Promise is a queue's word that a message will be safe: kept once every
// position from First to Last of Ledger has come due without failing. The
// zero Promise has no ledger and is kept already (a transient message, or
// a queue that keeps nothing).
type Promise struct {
	Ledger      Ledger
	First, Last uint64
}

// Kept reports whether there is nothing to wait for.
func (p Promise) Kept() bool { return p.Ledger == nil }

// Wait blocks until the promise comes due and returns the first failure
// among its positions.
func (p Promise) Wait() error {
	if p.Kept() {
		return nil
	}
	err := p.Ledger.Wait(p.Last)
	if err == nil && p.First > 0 {
		if at, ferr := p.Ledger.FirstFailure(p.First - 1); ferr != nil && at <= p.Last {
			err = ferr
		}
	}
	return err
}

// merge widens p to cover o when both are on the same ledger (or p is
// kept) and reports whether it did.
func (p *Promise) merge(o Promise) bool {
	switch {
	case o.Kept():
		return true
	case p.Kept():
		*p = o
		return true
	case p.Ledger != o.Ledger:
		return false
	}
	p.First = min(p.First, o.First)
	p.Last = max(p.Last, o.Last)
	return true
}

// Promises is a set of promises with one per ledger: promises on the same
// ledger merge into one from the first position to the last. A message
// routed to queues of one kind, the usual case, holds one promise and
// allocates nothing.
type Promises struct {
	first Promise
	more  []Promise // promises on other ledgers than first's
}

// Add puts p into the set.
func (ps *Promises) Add(p Promise) {
	if ps.first.merge(p) {
		return
	}
	for i := range ps.more {
		if ps.more[i].merge(p) {
			return
		}
	}
	ps.more = append(ps.more, p)
}

// AddAll puts every promise of o into the set.
func (ps *Promises) AddAll(o Promises) {
	for p := range o.All() {
		ps.Add(p)
	}
}

// Kept reports whether there is nothing to wait for.
func (ps *Promises) Kept() bool { return ps.first.Kept() }

// All yields the promises that are not kept already, one per ledger.
func (ps *Promises) All() iter.Seq[Promise] {
	return func(yield func(Promise) bool) {
		if ps.first.Kept() || !yield(ps.first) {
			return
		}
		for _, p := range ps.more {
			if !yield(p) {
				return
			}
		}
	}
}

// Wait blocks until every promise has come due and returns the first
// failure.
func (ps *Promises) Wait() error {
	for p := range ps.All() {
		if err := p.Wait(); err != nil {
			return err
		}
	}
	return nil
}
