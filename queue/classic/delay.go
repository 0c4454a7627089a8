package classic

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// DelayQueue holds a delayed-message exchange's messages until they are
// due: ordered by due time, then publish order, in one heap, with one timer
// for the earliest; nothing per message. It is a queue.Queue so that a
// publish reaches it as it reaches any queue (and its durability promise
// confirms the publish): a durable exchange's persistent messages are
// stored, with their due time, and fire after a restart. Nothing consumes
// from it: when messages fall due they go to the function it was made
// with, and leave the store once that has returned.
type DelayQueue struct {
	cfg  queue.Config
	kind *Kind
	idx  index
	due  func(msgs []*queue.Message)

	mu       sync.Mutex
	held     delayHeap
	nextSeq  uint64
	bytes    int64
	timer    dueTimer // for the earliest held message
	deleted  bool
	enqueued atomic.Uint64
}

// NewDelayQueue makes the queue that holds a delayed-message exchange's
// messages (named by cfg, durable when the exchange is) until they are
// due, when they go to due in the order they fall due. With cfg.Recover it
// reads back what it held before a restart.
func (k *Kind) NewDelayQueue(cfg queue.Config, due func(msgs []*queue.Message)) (queue.Queue, error) {
	if cfg.ID == 0 && k.store != nil {
		cfg.ID = k.store.NextQueueID()
	}
	q := &DelayQueue{cfg: cfg, kind: k, idx: newIndex(k, &cfg), due: due}
	q.timer = newDueTimer(&k.timers, q.fire)
	if cfg.Recover && k.store != nil {
		q.mu.Lock()
		last, err := q.idx.recover(func(e queue.Entry) {
			q.held.push(e)
			q.bytes += e.Size
		})
		q.nextSeq = last
		q.armLocked()
		q.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("recovering the delayed messages of %q: %w", cfg.Name, err)
		}
	}
	return q, nil
}

// Name implements queue.Queue.
func (q *DelayQueue) Name() string { return q.cfg.Name }

// Config implements queue.Queue.
func (q *DelayQueue) Config() *queue.Config { return &q.cfg }

// Enqueue implements queue.Queue: m waits for its x-delay.
func (q *DelayQueue) Enqueue(m *queue.Message) queue.Receipt {
	delay, _ := queue.Delay(m.Props)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return queue.Receipt{Result: queue.Gone}
	}
	q.nextSeq++
	e := queue.Entry{Msg: m, Seq: q.nextSeq, Size: int64(m.Size()), Expires: q.kind.now() + delay}
	r := queue.Receipt{Result: queue.Enqueued}
	if q.idx.store() != nil {
		var wrote bool
		if r.Promise, wrote = q.idx.keep(m, &e); wrote {
			r.Backpressure = q.kind.backpressure()
		}
	}
	q.held.push(e)
	q.bytes += e.Size
	q.enqueued.Add(1)
	q.armLocked()
	return r
}

// armLocked sets the timer for the earliest message.
func (q *DelayQueue) armLocked() {
	if len(q.held) > 0 && !q.deleted {
		q.timer.armLocked(q.held[0].Expires, q.kind.now())
	}
}

// fire hands over the messages that are due.
func (q *DelayQueue) fire() {
	q.mu.Lock()
	q.timer.firedLocked()
	now := q.kind.now()
	var due []queue.Entry
	for len(q.held) > 0 && q.held[0].Expires <= now && !q.deleted {
		e := q.held.pop()
		q.bytes -= e.Size
		due = append(due, e)
	}
	q.armLocked()
	q.mu.Unlock()
	if len(due) == 0 {
		return
	}
	msgs := make([]*queue.Message, 0, len(due))
	read := due[:0]
	for i := range due {
		if m := q.idx.message(&due[i]); m != nil {
			msgs = append(msgs, m)
			read = append(read, due[i])
		}
	}
	q.due(msgs)
	// Only now do they leave the store: a crash before this point sends
	// them again after the restart, never loses them. One whose message
	// could not be read stays there for the next start.
	for _, e := range read {
		q.idx.settle(e)
	}
}

// AddConsumer implements queue.Queue: nothing consumes from a delay queue.
func (q *DelayQueue) AddConsumer(*queue.Consumer, func()) error {
	return wire.Errorf(wire.NotImplemented, "the messages of a delayed-message exchange cannot be consumed")
}

// RemoveConsumer implements queue.Queue.
func (q *DelayQueue) RemoveConsumer(*queue.Consumer) {}

// Resume implements queue.Queue.
func (q *DelayQueue) Resume(*queue.Consumer) {}

// Get implements queue.Queue: nothing is ever ready.
func (q *DelayQueue) Get(bool) (queue.Entry, int, bool) { return queue.Entry{}, 0, false }

// Settle implements queue.Queue: there are no deliveries to settle.
func (q *DelayQueue) Settle(*queue.Consumer, []queue.Entry, queue.Settlement) {}

// Purge implements queue.Queue: the held messages are dropped.
func (q *DelayQueue) Purge() int {
	q.mu.Lock()
	dropped := q.takeLocked()
	q.mu.Unlock()
	for _, e := range dropped {
		q.idx.settle(e)
	}
	return len(dropped)
}

func (q *DelayQueue) takeLocked() []queue.Entry {
	dropped := []queue.Entry(q.held)
	q.held, q.bytes = nil, 0
	return dropped
}

// Delete implements queue.Queue: the held messages are dropped, with the
// exchange.
func (q *DelayQueue) Delete(bool, bool) (int, error) {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return 0, nil
	}
	q.deleted = true
	q.timer.stopLocked()
	dropped := q.takeLocked()
	q.mu.Unlock()
	q.idx.forget(dropped)
	return len(dropped), nil
}

// Deleted implements queue.Queue.
func (q *DelayQueue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// Stats implements queue.Queue: Ready counts the held messages.
func (q *DelayQueue) Stats() queue.Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queue.Stats{Ready: len(q.held), ReadyBytes: q.bytes, Published: q.enqueued.Load()}
}

// delayHeap orders held messages by due time, then publish order: a
// binary heap of entries by value, so that holding a message allocates
// nothing of its own.
type delayHeap []queue.Entry

func (h delayHeap) less(i, j int) bool {
	return h[i].Expires < h[j].Expires || h[i].Expires == h[j].Expires && h[i].Seq < h[j].Seq
}

func (h *delayHeap) push(e queue.Entry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s.less(i, parent) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *delayHeap) pop() queue.Entry {
	s := *h
	e := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = queue.Entry{}
	s = s[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(s) && s.less(l, small) {
			small = l
		}
		if r < len(s) && s.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		s[i], s[small] = s[small], s[i]
		i = small
	}
	*h = s
	return e
}

// Settings implements queue.Queue: a delay queue has none of its own.
func (q *DelayQueue) Settings() queue.Settings { return q.cfg.Settings }

// SetSettings implements queue.Queue: policies do not apply to what a
// delayed-message exchange holds.
func (q *DelayQueue) SetSettings(queue.Settings) {}
