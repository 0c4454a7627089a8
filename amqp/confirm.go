package amqp

import (
	"errors"
	"sync"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// confirms tracks a confirm-mode channel's publishes until they may be
// confirmed: at the end of the read batch for messages that every queue
// holds in memory, once the queues' durability promises are kept for the
// others. Confirms go out in publish order, consecutive acks as one
// basic.ack with multiple=true. The reader adds publishes; the ledgers the
// promises are on report when positions come due (Due).
type confirms struct {
	mu      sync.Mutex
	pending []pendingConfirm // in publish order, from head
	head    int
	ledgers []ledgerState // one per ledger the channel's publishes were promised on
	failed  bool
	gone    bool // the channel is closed: nothing more is sent
}

// ledgerState is what a channel knows of one ledger.
type ledgerState struct {
	ledger   queue.Ledger
	due      uint64 // positions up to here have come due
	checked  uint64 // positions up to here were checked for failures
	notified uint64 // the highest position this channel asked to hear of
}

type pendingConfirm struct {
	seq      uint64
	promises queue.Promises
	nack     bool
}

// ledgerLocked returns the channel's state for l, adding it if new.
func (cf *confirms) ledgerLocked(l queue.Ledger) *ledgerState {
	for i := range cf.ledgers {
		if cf.ledgers[i].ledger == l {
			return &cf.ledgers[i]
		}
	}
	cf.ledgers = append(cf.ledgers, ledgerState{ledger: l})
	return &cf.ledgers[len(cf.ledgers)-1]
}

// dueLocked reports whether every promise of p has come due.
func (cf *confirms) dueLocked(p *pendingConfirm) bool {
	for pr := range p.promises.All() {
		if cf.ledgerLocked(pr.Ledger).due < pr.Last {
			return false
		}
	}
	return true
}

// addConfirm records publish seq, to be confirmed once its promises are
// kept (at the end of the read batch when it has none), or nacked.
func (ch *channel) addConfirm(seq uint64, promises queue.Promises, nack bool) {
	cf := &ch.confirms
	var notify [2]queue.Promise // ledgers to ask; a publish rarely spans more than one
	asks := notify[:0]
	cf.mu.Lock()
	cf.pending = append(cf.pending, pendingConfirm{seq: seq, promises: promises, nack: nack})
	for p := range promises.All() {
		ls := cf.ledgerLocked(p.Ledger)
		if p.Last > ls.notified && p.Last > ls.due {
			ls.notified = p.Last
			asks = append(asks, p)
		}
	}
	cf.mu.Unlock()
	for _, p := range asks {
		p.Ledger.Notify(p.Last, ch)
	}
	if !ch.confirmDue {
		ch.confirmDue = true
		ch.conn.dueConfirms = append(ch.conn.dueConfirms, ch)
	}
}

// Due implements queue.Waiter: positions up to upTo of l have come due. It
// runs on the ledger's goroutine (the store's committer) and must not
// block. A publish whose positions include a failed one is nacked; a
// failure other than a queue's refusal (queue.ErrRefused) also closes the
// channel, since the channel can no longer say what is safe.
func (ch *channel) Due(l queue.Ledger, upTo uint64, err error) {
	cf := &ch.confirms
	cf.mu.Lock()
	checked := cf.ledgerLocked(l).checked
	cf.mu.Unlock()
	// A publish may span positions while this channel waits on its last:
	// an earlier one that failed nacks it too.
	first, ferr := uint64(0), error(nil)
	if upTo > checked {
		if at, e := l.FirstFailure(checked); e != nil && at <= upTo {
			first, ferr = at, e
		}
	}
	if err != nil && first == 0 {
		first, ferr = upTo, err
	}
	cf.mu.Lock()
	ls := cf.ledgerLocked(l)
	ls.due = max(ls.due, upTo)
	ls.checked = max(ls.checked, upTo)
	fatal := ferr != nil && !errors.Is(ferr, queue.ErrRefused)
	fail := fatal && !cf.failed && !cf.gone
	if fatal {
		cf.failed = true
		for i := cf.head; i < len(cf.pending); i++ {
			p := &cf.pending[i]
			for pr := range p.promises.All() {
				if pr.Ledger == l && pr.First <= first {
					p.nack = true
				}
			}
		}
	} else if ferr != nil {
		// Refusals: nack exactly the publishes that were refused.
		for i := cf.head; i < len(cf.pending); i++ {
			p := &cf.pending[i]
			for pr := range p.promises.All() {
				if pr.Ledger == l && pr.Last <= upTo && pr.Last >= first {
					if at, e := l.FirstFailure(pr.First - 1); e != nil && at <= pr.Last {
						p.nack = true
					}
				}
			}
		}
	}
	ch.flushConfirmsLocked()
	cf.mu.Unlock()
	if fail {
		ch.conn.log.Error("a queue failed to keep a message safe", "channel", ch.id, "err", ferr)
		// Closing the channel may delete queues, which may wait for the
		// ledger that is calling: the connection's writer closes it.
		ch.conn.failLater(ch, wire.Errorf(wire.InternalError, "the message store failed to write: publishes on this channel were nacked"))
	}
}

// flushConfirms sends every confirm that is due (the reader calls it at the
// end of each read batch).
func (ch *channel) flushConfirms() {
	ch.confirmDue = false
	ch.confirms.mu.Lock()
	ch.flushConfirmsLocked()
	ch.confirms.mu.Unlock()
}

// flushConfirmsLocked sends confirms from the head of the pending list
// while they are due, in order.
func (ch *channel) flushConfirmsLocked() {
	cf := &ch.confirms
	if cf.head == len(cf.pending) {
		return
	}
	if cf.gone || ch.closing.Load() {
		cf.pending, cf.head = cf.pending[:0], 0
		return
	}
	c := ch.conn
	var runStart, runEnd, acked uint64
	c.out.mu.Lock()
	for cf.head < len(cf.pending) {
		p := &cf.pending[cf.head]
		if !cf.dueLocked(p) {
			break
		}
		cf.head++
		if !p.nack {
			if runStart == 0 {
				runStart = p.seq
			}
			runEnd = p.seq
			acked++
			continue
		}
		if runStart != 0 {
			c.out.buf = wire.AppendConfirm(c.out.buf, ch.id, runEnd, runEnd > runStart, false)
			runStart = 0
		}
		c.out.buf = wire.AppendConfirm(c.out.buf, ch.id, p.seq, false, true)
	}
	if runStart != 0 {
		c.out.buf = wire.AppendConfirm(c.out.buf, ch.id, runEnd, runEnd > runStart, false)
	}
	c.out.mu.Unlock()
	c.out.kick()
	ch.stats.confirm.Add(acked)
	if cf.head == len(cf.pending) {
		clear(cf.pending) // drop ledger references
		cf.pending, cf.head = cf.pending[:0], 0
	} else if cf.head > 1024 && cf.head > len(cf.pending)/2 {
		n := copy(cf.pending, cf.pending[cf.head:])
		clear(cf.pending[n:])
		cf.pending, cf.head = cf.pending[:n], 0
	}
}

// forgetConfirms drops what the channel still owes when it closes: a
// confirm that becomes due later must not go out on the channel number,
// which a new channel may be using by then.
func (ch *channel) forgetConfirms() {
	cf := &ch.confirms
	cf.mu.Lock()
	cf.gone = true
	cf.pending, cf.head = nil, 0
	cf.mu.Unlock()
}
