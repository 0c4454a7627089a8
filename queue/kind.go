package queue

import "sync"

// DefaultKind is the kind of a queue declared without x-queue-type.
const DefaultKind = "classic"

// Kind makes queues of one kind (classic, quorum, ...). The broker makes
// one of each kind it offers and registers it in Kinds.
type Kind interface {
	// New makes a queue from cfg. With cfg.ID 0 the kind picks the queue's
	// id; with cfg.Recover it loads what it kept of the queue before a
	// restart. An error is a *wire.Error when the client caused it.
	New(cfg Config) (Queue, error)
}

// Replicated is implemented by kinds whose queues keep replicas on several
// nodes of a cluster and answer on every node themselves (quorum): the
// virtual host makes them with their kind on every node, never with a
// stand-in, and refuses to name them for the client (a server-named queue
// is a connection's scratch queue, not a replicated one).
type Replicated interface {
	Kind
	// Place chooses the nodes a new queue's replicas go on (cfg.Members).
	// The virtual host calls it on the declaring node, before the declare
	// is replicated.
	Place(cfg Config) ([]string, error)
}

// Kinds is the registry of queue kinds, by the name x-queue-type gives. It
// is safe for concurrent use.
type Kinds struct {
	mu    sync.RWMutex
	kinds map[string]Kind
}

// Register makes kind available under name, replacing any kind registered
// under that name before.
func (r *Kinds) Register(name string, kind Kind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kinds == nil {
		r.kinds = map[string]Kind{}
	}
	r.kinds[name] = kind
}

// Lookup returns the kind registered under name, or nil.
func (r *Kinds) Lookup(name string) Kind {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.kinds[name]
}

// Outcome is what publishing one message to its queues came to.
type Outcome struct {
	Routed   bool // at least one queue took the message (or refused it for length)
	Rejected bool // a queue refused it for length: a confirm-mode publisher gets a nack
	// Promises come due once every queue that took the message has it
	// safe: then, and not before, it may be confirmed.
	Promises Promises
	// Backpressure: the publisher waits for these before it reads more.
	Backpressure Promises
}

// Publish enqueues m on each of queues and ends the publish: whatever a
// kind held on m for the publish's sake (see Message.Hold) is released. It
// sets *out to what the publish came to (out is the caller's, so that the
// outcome is not copied on every publish).
func Publish(queues []Queue, m *Message, out *Outcome) {
	*out = Outcome{}
	for _, q := range queues {
		r := q.Enqueue(m)
		switch r.Result {
		case Enqueued, Duplicate:
			out.Routed = true
		case Rejected:
			out.Routed, out.Rejected = true, true
		}
		if !r.Promise.Kept() {
			out.Promises.Add(r.Promise)
		}
		if !r.Backpressure.Kept() {
			out.Backpressure.Add(r.Backpressure)
		}
	}
	if m.holder != nil {
		m.routed()
	}
}
