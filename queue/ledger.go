package queue

import (
	"errors"
	"sync"
)

// ErrRefused is a ledger's outcome for a message the queue refused after
// it returned from Enqueue (a replicated queue learns that it is full, or
// that it has no majority, only when the command is applied): the
// publisher gets a nack, and its channel stays open.
var ErrRefused = errors.New("the queue refused the message")

// ReportLedger is a Ledger whose positions are handed out in order (Take)
// and reported safe or failed in any order (Report); a position comes due
// once it and every one before it has been reported. Forwarded publishes
// and replicated queues use it.
type ReportLedger struct {
	mu      sync.Mutex
	next    uint64              // last position handed out
	due     uint64              // every position up to here has come due
	done    map[uint64]struct{} // reported beyond due
	failed  map[uint64]error
	pruneAt int // prune failed when it holds this many
	waiters []ledgerWaiter
	cond    *sync.Cond
}

type ledgerWaiter struct {
	at uint64
	w  Waiter
}

// NewReportLedger returns a ledger with no positions handed out.
func NewReportLedger() *ReportLedger {
	l := &ReportLedger{done: map[uint64]struct{}{}, failed: map[uint64]error{}}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// Take hands out the next position.
func (l *ReportLedger) Take() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	return l.next
}

// Outstanding reports whether a position handed out has not come due.
func (l *ReportLedger) Outstanding() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next > l.due
}

// Report marks positions as come due, with err for a failure.
func (l *ReportLedger) Report(positions []uint64, err error) {
	l.mu.Lock()
	for _, p := range positions {
		if p <= l.due {
			continue
		}
		l.done[p] = struct{}{}
		if err != nil {
			l.failed[p] = err
		}
	}
	before := l.due
	for {
		if _, ok := l.done[l.due+1]; !ok {
			break
		}
		delete(l.done, l.due+1)
		l.due++
	}
	var ready []ledgerWaiter
	if l.due > before {
		keep := l.waiters[:0]
		for _, w := range l.waiters {
			if w.at <= l.due {
				ready = append(ready, w)
			} else {
				keep = append(keep, w)
			}
		}
		l.waiters = keep
		l.cond.Broadcast()
	}
	upTo, upErr := l.due, l.failed[l.due]
	l.pruneLocked()
	l.mu.Unlock()
	for _, w := range ready {
		w.w.Due(l, upTo, upErr)
	}
}

// failureMemory is how far behind the due position a failure is kept:
// waiters learn of failures as their positions come due, so only a waiter
// whose one publish spans more positions than this could miss one.
const failureMemory = 1 << 16

// pruneLocked forgets failures long due, once there are many.
func (l *ReportLedger) pruneLocked() {
	if len(l.failed) < max(l.pruneAt, 4096) || l.due <= failureMemory {
		return
	}
	for p := range l.failed {
		if p < l.due-failureMemory {
			delete(l.failed, p)
		}
	}
	l.pruneAt = 2 * len(l.failed)
}

// FailAll reports every position handed out and not yet reported as
// failed (the node they were forwarded to is gone).
func (l *ReportLedger) FailAll(err error) {
	l.mu.Lock()
	var ps []uint64
	for p := l.due + 1; p <= l.next; p++ {
		ps = append(ps, p)
	}
	l.mu.Unlock()
	l.Report(ps, err)
}

// Notify implements Ledger.
func (l *ReportLedger) Notify(at uint64, w Waiter) {
	l.mu.Lock()
	if at <= l.due {
		upTo, err := l.due, l.failed[l.due]
		l.mu.Unlock()
		w.Due(l, upTo, err)
		return
	}
	l.waiters = append(l.waiters, ledgerWaiter{at, w})
	l.mu.Unlock()
}

// Wait implements Ledger.
func (l *ReportLedger) Wait(at uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.due < at {
		l.cond.Wait()
	}
	return l.failed[at]
}

// FirstFailure implements Ledger.
func (l *ReportLedger) FirstFailure(after uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first uint64
	var ferr error
	for p, err := range l.failed {
		if p > after && (first == 0 || p < first) {
			first, ferr = p, err
		}
	}
	return first, ferr
}
