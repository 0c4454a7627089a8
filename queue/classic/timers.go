package classic

import (
	"sync"
	"time"
)

// timerGate orders the work the kind's timers start (message expiry,
// delayed messages falling due) with the node's life: such work moves
// messages between queues and settles them in the store, so it must wait
// until every queue, exchange and binding has been recovered (else a
// message due while the node was down would be dead-lettered or released
// into a vhost that cannot route it yet, and then forgotten), and it must
// be over before the store closes.
type timerGate struct {
	mu      sync.Mutex
	state   gateState
	held    []func() // work that fired while holding, run at open
	running sync.WaitGroup
}

type gateState uint8

const (
	gateOpen    gateState = iota // timers' work runs
	gateHolding                  // the node is recovering: work waits for open
	gateClosed                   // the node is stopping: work is dropped
)

// enter reports whether timer work may run now; the caller then calls
// leave when it is done. While the gate holds, fn is kept to run once it
// opens; once it is closed, nothing runs.
func (g *timerGate) enter(fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.state {
	case gateOpen:
		g.running.Add(1)
		return true
	case gateHolding:
		g.held = append(g.held, fn)
	}
	return false
}

func (g *timerGate) leave() { g.running.Done() }

// open lets timer work run, starting what fired while the gate held.
func (g *timerGate) open() {
	g.mu.Lock()
	if g.state != gateHolding {
		g.mu.Unlock()
		return
	}
	g.state = gateOpen
	held := g.held
	g.held = nil
	g.mu.Unlock()
	for _, fn := range held {
		go fn()
	}
}

// close stops timer work for good and waits for what runs.
func (g *timerGate) close() {
	g.mu.Lock()
	g.state = gateClosed
	g.held = nil
	g.mu.Unlock()
	g.running.Wait()
}

// dueTimer is a queue's one timer, set for the earliest time anything in
// the queue falls due; when it fires it runs the queue's work through the
// kind's gate. Its fields are under the owning queue's lock.
type dueTimer struct {
	gate *timerGate
	work func()
	t    *time.Timer
	at   int64 // unix ms it is set for; 0 when not set
}

func newDueTimer(gate *timerGate, work func()) dueTimer {
	return dueTimer{gate: gate, work: work}
}

// armLocked sets the timer for next (unix ms; now is the time), unless it
// is set for then or earlier already: a timer that fires early finds
// nothing due, and the work arms it again.
func (d *dueTimer) armLocked(next, now int64) {
	if d.at != 0 && d.at <= next {
		return
	}
	wait := time.Duration(next-now) * time.Millisecond
	if d.t == nil {
		d.t = time.AfterFunc(wait, d.fire)
	} else {
		d.t.Reset(wait)
	}
	d.at = next
}

// firedLocked marks the timer unset: the work calls it once it holds the
// queue's lock.
func (d *dueTimer) firedLocked() { d.at = 0 }

// stopLocked stops the timer for good (the queue is deleted).
func (d *dueTimer) stopLocked() {
	if d.t != nil {
		d.t.Stop()
	}
	d.at = 0
}

func (d *dueTimer) fire() {
	if !d.gate.enter(d.fire) {
		return
	}
	defer d.gate.leave()
	d.work()
}
