package queue

import (
	"encoding/binary"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/persistence"
)

// Storage is what queues share to keep messages in the store: the store,
// the reference counts of stored messages, and the memory budgets past which
// queues page message bodies out.
type Storage struct {
	Store *persistence.Store
	Log   *slog.Logger
	// QueueBudget is the body bytes one queue keeps in memory before it
	// pages new messages out; GlobalBudget the same for all queues
	// together. Zero or negative: no paging.
	QueueBudget  int64
	GlobalBudget int64

	resident atomic.Int64 // body bytes of ready messages in memory, all queues
	refs     Refs
}

// Refs counts the index entries naming each stored message held by more
// than one queue; a message it does not know has exactly one. That keeps the
// common case (one queue) out of the map.
type Refs struct {
	mu sync.Mutex
	n  map[uint64]int32
}

// Hold records that id has n references (n >= 2).
func (r *Refs) Hold(id uint64, n int32) {
	r.mu.Lock()
	if r.n == nil {
		r.n = map[uint64]int32{}
	}
	r.n[id] = n
	r.mu.Unlock()
}

// Release drops one reference to id and reports whether it was the last.
func (r *Refs) Release(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.n[id]
	switch {
	case !ok:
		return true
	case c <= 2:
		delete(r.n, id)
	default:
		r.n[id] = c - 1
	}
	return false
}

// Refs returns the reference counts, for recovery.
func (s *Storage) Refs() *Refs { return &s.refs }

// release drops one reference to a stored message, deleting it from the
// store with the last.
func (s *Storage) release(id uint64) {
	if s.refs.Release(id) {
		s.Store.DeleteMessage(id)
	}
}

// Entry metadata in the store: flags then the body size.
const (
	metaTransient = 1 << 0 // a transient message paged out: not recovered
	metaLen       = 5
)

func appendMeta(b []byte, transient bool, size int64) []byte {
	var flags byte
	if transient {
		flags |= metaTransient
	}
	return binary.BigEndian.AppendUint32(append(b, flags), uint32(size))
}

func parseMeta(meta []byte) (transient bool, size int64) {
	if len(meta) < metaLen {
		return false, 0
	}
	return meta[0]&metaTransient != 0, int64(binary.BigEndian.Uint32(meta[1:]))
}

// Outcome is what publishing to a set of queues came to.
type Outcome struct {
	Routed   bool // at least one queue took the message (or refused it for length)
	Rejected bool // a queue refused it for length: a confirm-mode publisher gets a nack
	// First and Ticket are the first and last store batches the publish
	// wrote to: all of them must be durable before it may be confirmed
	// (0 when nothing waits for the store).
	First, Ticket persistence.Ticket
}

// PublishTo enqueues m on each queue. A persistent message bound for at
// least one durable queue is written to the store once, before any queue
// takes it, and each durable queue that takes it adds an index entry.
func PublishTo(queues []*Queue, m *Message, st *Storage) Outcome {
	var out Outcome
	stored := false
	if m.Persistent && st != nil && st.Store != nil {
		durable := int32(0)
		for _, q := range queues {
			if q.cfg.Durable {
				durable++
			}
		}
		if durable > 0 {
			m.ID = st.Store.NextMessageID()
			st.refs.Hold(m.ID, durable+1) // one for each queue, one for this call
			out.Ticket = st.Store.PutMessage(m.ID, m.data)
			out.First = out.Ticket
			stored = true
		}
	}
	for _, q := range queues {
		res, t := q.Publish(m)
		switch res {
		case Enqueued:
			out.Routed = true
		case Rejected:
			out.Routed, out.Rejected = true, true
		}
		if t > out.Ticket {
			out.Ticket = t
		}
		if t != 0 && out.First == 0 {
			out.First = t
		}
		if stored && q.cfg.Durable && res != Enqueued {
			st.release(m.ID)
		}
	}
	if stored {
		st.release(m.ID)
	}
	return out
}

// BuildMessage makes a message from parts (for messages the broker
// rewrites, such as a reply-to or a header change).
func BuildMessage(exchange, routingKey string, props wire.RawProperties, body []byte) *Message {
	b, off := AllocMessage(exchange, routingKey, len(props), len(body))
	copy(b[off:], props)
	copy(b[off+len(props):], body)
	m, _ := DecodeMessage(b, exchange, routingKey)
	return m
}
