package amqp

import (
	"sync"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/persistence"
)

// confirms tracks a confirm-mode channel's publishes until they may be
// confirmed: at once for messages that are wholly in memory, once their
// store batch is durable for persistent ones. Confirms go out in publish
// order, consecutive acks as one basic.ack with multiple=true. The reader
// adds publishes; the store's committer reports durability (Synced).
type confirms struct {
	mu       sync.Mutex
	pending  []pendingConfirm // in publish order, from head
	head     int
	synced   persistence.Ticket // highest store batch known complete
	checked  persistence.Ticket // batches up to here were checked for failures
	notified persistence.Ticket // highest batch this channel waits for
	failed   bool
	gone     bool // the channel is closed: nothing more is sent
}

type pendingConfirm struct {
	seq    uint64
	first  persistence.Ticket // first store batch the publish wrote to
	ticket persistence.Ticket // last one; 0: nothing to wait for
	nack   bool
}

// addConfirm records publish seq, to be confirmed once every store batch
// from first to ticket is durable (ticket 0: at the end of the read
// batch), or nacked.
func (ch *channel) addConfirm(seq uint64, first, ticket persistence.Ticket, nack bool) {
	cf := &ch.confirms
	cf.mu.Lock()
	cf.pending = append(cf.pending, pendingConfirm{seq: seq, first: first, ticket: ticket, nack: nack})
	notify := ticket > cf.notified && ticket > cf.synced
	if notify {
		cf.notified = ticket
	}
	cf.mu.Unlock()
	if notify {
		ch.conn.srv.storage.Store.Notify(ticket, ch)
	}
	if !ch.confirmDue {
		ch.confirmDue = true
		ch.conn.dueConfirms = append(ch.conn.dueConfirms, ch)
	}
}

// Synced implements persistence.Waiter: store batches up to upTo are
// complete. It runs on the store's committer and must not block.
func (ch *channel) Synced(upTo persistence.Ticket, err error) {
	cf := &ch.confirms
	failedAt := upTo
	if err == nil {
		// A publish may span batches while this channel waits on its last:
		// an earlier one that failed nacks it too.
		cf.mu.Lock()
		checked := cf.checked
		cf.mu.Unlock()
		if upTo > checked {
			if t, ferr := ch.conn.srv.storage.Store.FirstFailure(checked); ferr != nil && t <= upTo {
				failedAt, err = t, ferr
			}
		}
	}
	cf.mu.Lock()
	if upTo > cf.synced {
		cf.synced = upTo
	}
	if upTo > cf.checked {
		cf.checked = upTo
	}
	fail := err != nil && !cf.failed && !cf.gone
	if err != nil {
		cf.failed = true
		for i := cf.head; i < len(cf.pending); i++ {
			if p := &cf.pending[i]; p.ticket != 0 && p.first <= failedAt {
				p.nack = true
			}
		}
	}
	ch.flushConfirmsLocked()
	cf.mu.Unlock()
	if fail {
		ch.conn.log.Error("store write failed", "err", err)
		// Closing the channel may delete queues, which waits for the
		// committer: not from here.
		go ch.fail(wire.Errorf(wire.InternalError, "the message store failed to write: publishes on this channel were nacked"))
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
	var runStart, runEnd uint64
	c.out.mu.Lock()
	for cf.head < len(cf.pending) {
		p := cf.pending[cf.head]
		if p.ticket > cf.synced {
			break
		}
		cf.head++
		if !p.nack {
			if runStart == 0 {
				runStart = p.seq
			}
			runEnd = p.seq
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
	if cf.head == len(cf.pending) {
		cf.pending, cf.head = cf.pending[:0], 0
	} else if cf.head > 1024 && cf.head > len(cf.pending)/2 {
		cf.pending = append(cf.pending[:0], cf.pending[cf.head:]...)
		cf.head = 0
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
