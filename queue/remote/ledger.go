package remote

import (
	"sync"

	"github.com/warrenmq/warren/queue"
)

// linkLedger is where the promises of messages forwarded to one node come
// due: positions are handed out in order, the node reports each one safe
// (or failed) in any order, and a position comes due once it and every
// one before it has been reported.
type linkLedger struct {
	mu      sync.Mutex
	next    uint64              // last position handed out
	due     uint64              // every position up to here has come due
	done    map[uint64]struct{} // reported beyond due
	failed  map[uint64]error
	waiters []ledgerWaiter
	cond    *sync.Cond
}

type ledgerWaiter struct {
	at uint64
	w  queue.Waiter
}

func newLinkLedger() *linkLedger {
	l := &linkLedger{done: map[uint64]struct{}{}, failed: map[uint64]error{}}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// take hands out the next position.
func (l *linkLedger) take() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	return l.next
}

// report marks positions as come due, with err for a failure.
func (l *linkLedger) report(positions []uint64, err error) {
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
	l.mu.Unlock()
	for _, w := range ready {
		w.w.Due(l, upTo, upErr)
	}
}

// failAll reports every position handed out as failed (the node is gone).
func (l *linkLedger) failAll(err error) {
	l.mu.Lock()
	var ps []uint64
	for p := l.due + 1; p <= l.next; p++ {
		ps = append(ps, p)
	}
	l.mu.Unlock()
	l.report(ps, err)
}

// Notify implements queue.Ledger.
func (l *linkLedger) Notify(at uint64, w queue.Waiter) {
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

// Wait implements queue.Ledger.
func (l *linkLedger) Wait(at uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.due < at {
		l.cond.Wait()
	}
	return l.failed[at]
}

// FirstFailure implements queue.Ledger.
func (l *linkLedger) FirstFailure(after uint64) (uint64, error) {
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
