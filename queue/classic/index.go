package classic

import (
	"sync/atomic"

	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
)

// index is a queue's part of the kind's store: the index entries of its
// persistent messages (and of the bodies it pages out), its share of the
// reference counts of stored bodies, and reading bodies back. Every queue
// of the kind, whatever order it keeps its messages in, keeps them in the
// store this way. keep and pageOut run under the queue's lock (they share
// scratch); the rest need none.
type index struct {
	kind    *Kind
	id      uint64 // the queue's id in the store
	durable bool
	name    string // for logs
	vhost   string
	scratch []byte      // for entry metadata
	wrote   atomic.Bool // some entry of this queue went to the store
}

func newIndex(k *Kind, cfg *queue.Config) index {
	return index{kind: k, id: cfg.ID, durable: cfg.Durable, name: cfg.Name, vhost: cfg.VHost}
}

// store returns the store, or nil when the kind keeps nothing there.
func (x *index) store() *persistence.Store { return x.kind.store }

// keep writes a persistent message taken by a durable queue to the store:
// its body once per publish, by the first durable queue that takes it
// (which holds a reference for the publish until it ends), and an index
// entry naming it (e, whose ID it sets). It returns the promise those
// writes keep, and whether it wrote.
func (x *index) keep(m *queue.Message, e *queue.Entry) (queue.Promise, bool) {
	st := x.store()
	if st == nil || !x.durable || !m.Persistent() {
		return queue.Promise{}, false
	}
	var first persistence.Ticket
	if m.Holder() != x.kind {
		// Not stored by a queue of this publish (m.ID, if set, is the id
		// of a copy read back from the store).
		m.ID = st.NextMessageID()
		x.kind.refs.hold(m.ID, 2) // this queue's and the publish's
		m.Hold(x.kind)
		first = st.PutMessage(m.ID, m.Data())
	} else {
		x.kind.refs.add(m.ID)
	}
	e.ID = m.ID
	x.scratch = appendMeta(x.scratch[:0], false, e)
	last := st.PutEntry(x.id, e.Seq, e.ID, x.scratch)
	if first == 0 {
		first = last
	}
	x.wrote.Store(true)
	return x.kind.promise(first, last), true
}

// pageOut drops e's body from memory, writing it to the store first when
// it is not there (a transient message, or one on a non-durable queue).
func (x *index) pageOut(e *queue.Entry) {
	st := x.store()
	if e.ID == 0 {
		e.ID = st.NextMessageID()
		st.PutMessage(e.ID, e.Msg.Data())
		x.scratch = appendMeta(x.scratch[:0], true, e)
		st.PutEntry(x.id, e.Seq, e.ID, x.scratch)
		x.wrote.Store(true)
	}
	e.Msg = nil
}

// settle forgets an entry for good: its index entry leaves the store and,
// with the last reference, its message.
func (x *index) settle(e queue.Entry) {
	if e.ID == 0 {
		return
	}
	x.store().DeleteEntry(x.id, e.Seq)
	x.kind.release(e.ID)
}

// readBack reads stored message id.
func (x *index) readBack(id uint64) (*queue.Message, error) {
	data, err := x.store().Message(id, nil)
	if err != nil {
		return nil, err
	}
	m, err := queue.DecodeMessage(data, "", "")
	if err != nil {
		return nil, err
	}
	m.ID = id
	return m, nil
}

// message returns e's message, reading it back from the store when it is
// paged out; nil (logged) when the store cannot produce it.
func (x *index) message(e *queue.Entry) *queue.Message {
	if e.Msg != nil {
		return e.Msg
	}
	m, err := x.readBack(e.ID)
	if err != nil {
		x.kind.log.Error("reading a stored message failed", "queue", x.name, "vhost", x.vhost, "id", e.ID, "err", err)
		return nil
	}
	return m
}

// forget removes a deleted queue's entries from the store and releases
// the messages of the dropped ones.
func (x *index) forget(dropped []queue.Entry) {
	st := x.store()
	if st == nil {
		return
	}
	if x.wrote.Load() {
		if err := st.DeleteQueue(x.id); err != nil {
			x.kind.log.Error("deleting a queue's index from the store", "queue", x.name, "err", err)
		}
	}
	for _, e := range dropped {
		if e.ID != 0 {
			x.kind.release(e.ID)
		}
	}
}

// recover reads the queue's entries back at start and passes the durable
// ones to push, marked redelivered (they may have been delivered before
// the restart), paged out, with their expiry and priority; it returns the
// highest sequence number seen. Entries of transient messages that had
// been paged out, and every entry of a queue that is not durable, are
// dropped.
func (x *index) recover(push func(e queue.Entry)) (lastSeq uint64, err error) {
	st := x.store()
	var stale []queue.Entry
	var held []uint64
	err = st.Entries(x.id, func(seq, msgID uint64, meta []byte) error {
		md := parseMeta(meta)
		lastSeq = max(lastSeq, seq)
		e := queue.Entry{Seq: seq, ID: msgID, Size: md.size, Expires: md.expires, Priority: md.priority, Redelivered: true}
		if md.transient || !x.durable {
			stale = append(stale, e) // never shared: its own id
			return nil
		}
		held = append(held, msgID)
		x.wrote.Store(true)
		push(e)
		return nil
	})
	for _, e := range stale {
		x.settle(e)
	}
	x.kind.noteRecovered(x.id, held)
	return lastSeq, err
}
