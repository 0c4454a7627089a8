package vhost

import (
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// DeadLetter implements queue.DeadLetterSink for the virtual host's
// queues: each message is republished to the queue's dead-letter exchange
// as RabbitMQ does it. The copy carries an x-death record of the death, has
// no expiration any more (it is kept in x-death as original-expiration),
// and is routed with the queue's x-dead-letter-routing-key (without its CC
// header) or else with the message's own routing keys. A queue the copy
// would reach again having died there for reasons other than a rejection
// since is a cycle: the copy is not delivered there. A dead-letter exchange
// that does not exist drops the message.
func (v *VHost) DeadLetter(q queue.Queue, reason queue.Reason, msgs []*queue.Message) {
	settings := q.Settings()
	s := &settings
	if !s.DeadLetter {
		return
	}
	now := time.Now()
	var p internalPublisher
	defer p.done()
	for _, m := range msgs {
		v.deadLetterOne(&p, q, s, reason, m, now)
	}
}

// DeadLetterSafely implements queue.SafeDeadLetterSink: it dead-letters
// each message as DeadLetter does and waits until every queue its copy was
// routed to has it safe. A message whose copy went nowhere (no exchange,
// nothing bound) or that a queue refused, or whose copy a queue failed to
// keep, is not done; one dropped as a cycle, or that cannot be copied, is.
func (v *VHost) DeadLetterSafely(q queue.Queue, reasons []queue.Reason, msgs []*queue.Message) []bool {
	settings := q.Settings()
	s := &settings
	done := make([]bool, len(msgs))
	promises := make([]queue.Promises, len(msgs))
	now := time.Now()
	var p internalPublisher
	defer p.done()
	for i, m := range msgs {
		if !s.DeadLetter {
			done[i] = true // nowhere to go any more: the queue stops keeping it
			continue
		}
		if done[i] = v.deadLetterOne(&p, q, s, reasons[i], m, now); done[i] {
			promises[i] = p.out.Promises // what this publish came to
		}
	}
	for i := range promises {
		if done[i] && promises[i].Wait() != nil {
			done[i] = false
		}
	}
	return done
}

// deadLetterOne publishes the dead-letter copy of m, which q discards for
// reason, and reports whether it went where it routes to (publish).
func (v *VHost) deadLetterOne(p *internalPublisher, q queue.Queue, s *queue.Settings, reason queue.Reason, m *queue.Message, now time.Time) bool {
	dm, deaths, err := deadLetterCopy(m, reason, q.Name(), s, now)
	if err != nil {
		v.log.Error("cannot dead-letter a message", "vhost", v.name, "queue", q.Name(), "err", err)
		p.out = queue.Outcome{} // nothing published: nothing to wait for
		return true
	}
	var keep func([]queue.Queue) []queue.Queue
	if reason != queue.ReasonRejected {
		keep = func(dests []queue.Queue) []queue.Queue { return v.dropCycles(dests, deaths) }
	}
	return p.publish(v, s.DeadLetterExchange, dm, keep)
}

// internalPublisher publishes the messages the broker sends itself (dead
// letters, delayed messages that fell due), reusing its routing space
// from one message to the next.
type internalPublisher struct {
	sc    RouteScratch
	dests []queue.Queue
	out   queue.Outcome
}

// publish routes m from exchange (internal exchanges included) and
// enqueues it where it goes, or, when keep is set, where keep leaves of
// that; p.out then holds the outcome. A missing exchange drops the
// message. It reports whether m went where it routes to: not when the
// exchange is missing, nothing is bound or a queue refused it; when keep
// leaves nowhere to go, it did (it is dropped).
func (p *internalPublisher) publish(v *VHost, exchange string, m *queue.Message, keep func([]queue.Queue) []queue.Queue) bool {
	dests, _, err := v.route(exchange, m.RoutingKey, m.Props, p.dests[:0], &p.sc, true)
	if err != nil {
		return false
	}
	routed := len(dests) > 0
	if keep != nil {
		dests = keep(dests)
	}
	queue.Publish(dests, m, &p.out)
	p.dests = dests
	return routed && !p.out.Rejected
}

// done lets go of the queues the last routing named.
func (p *internalPublisher) done() { clear(p.dests) }

// deadLetterCopy returns the copy of m that dead-letters it from the queue
// named queueName for reason, and the copy's x-death list.
func deadLetterCopy(m *queue.Message, reason queue.Reason, queueName string, s *queue.Settings, now time.Time) (*queue.Message, []any, error) {
	routingKey := m.RoutingKey
	if s.HasDeadLetterRoutingKey {
		routingKey = s.DeadLetterRoutingKey
	}
	var deaths []any
	dm, err := queue.RewriteDeadLettered(m, s.DeadLetterExchange, routingKey, func(p *wire.Properties) {
		if p.Headers == nil {
			p.Headers = wire.Table{}
		}
		h := p.Headers
		if !m.DeadLettered() {
			// A client's own death headers are not the broker's record.
			for _, k := range deathHeaders {
				delete(h, k)
			}
		}
		// The keys the message was published with: its routing key, then
		// its CC keys (BCC ones were removed on publish).
		keys := []any{m.RoutingKey}
		if cc, ok := h["CC"].([]any); ok {
			for _, k := range cc {
				if s, ok := k.(string); ok {
					keys = append(keys, s)
				}
			}
		}
		death := wire.Table{
			"reason":       reason.String(),
			"queue":        queueName,
			"time":         time.Unix(now.Unix(), 0),
			"exchange":     m.Exchange,
			"routing-keys": keys,
		}
		if p.Expiration != "" {
			death["original-expiration"] = p.Expiration
			p.Expiration = ""
		}
		deaths = recordDeath(h, death)
		if s.HasDeadLetterRoutingKey {
			delete(h, "CC")
		}
	})
	return dm, deaths, err
}

// deathHeaders are the headers in which the broker records a message's
// deaths.
var deathHeaders = []string{"x-death", "x-first-death-queue", "x-first-death-reason", "x-first-death-exchange",
	"x-last-death-queue", "x-last-death-reason", "x-last-death-exchange"}

// recordDeath adds death to the x-death header of h as RabbitMQ does and
// returns the new list: most recent first, one entry per queue and reason,
// whose count goes up (the entry moving to the front) when the message
// dies there again for the same reason. The first death also sets
// x-first-death-queue, -reason and -exchange; every death sets
// x-last-death-queue, -reason and -exchange.
func recordDeath(h wire.Table, death wire.Table) []any {
	q, r, x := death["queue"], death["reason"], death["exchange"]
	h["x-last-death-queue"], h["x-last-death-reason"], h["x-last-death-exchange"] = q, r, x
	old, present := h["x-death"]
	list, isList := old.([]any)
	if !present {
		h["x-first-death-queue"], h["x-first-death-reason"], h["x-first-death-exchange"] = q, r, x
	}
	if !isList {
		// Absent, or not an array (a client re-published it with another
		// type): RabbitMQ starts the list afresh.
		death["count"] = int64(1)
		deaths := []any{death}
		h["x-death"] = deaths
		return deaths
	}
	entry := death
	entry["count"] = int64(1)
	rest := make([]any, 0, len(list)+1)
	rest = append(rest, nil) // the front, filled below
	matched := false
	for _, d := range list {
		t, ok := d.(wire.Table)
		if ok && t["queue"] == q && t["reason"] == r {
			if !matched {
				matched = true
				entry = countedAgain(t)
			}
			continue
		}
		rest = append(rest, d)
	}
	rest[0] = entry
	h["x-death"] = rest
	return rest
}

// countedAgain returns a copy of an x-death entry with its count one
// higher (1 when it has none), its other fields as they were.
func countedAgain(t wire.Table) wire.Table {
	c := make(wire.Table, len(t))
	for k, v := range t {
		c[k] = v
	}
	if n, ok := wire.Int(t["count"]); ok {
		c["count"] = n + 1
	} else {
		c["count"] = int64(1)
	}
	return c
}

// dropCycles removes from dests the queues that would close a dead-letter
// cycle (RabbitMQ's rule): the message died in the queue before, and no
// death since (that one included) was a rejection. It logs each cycle once.
func (v *VHost) dropCycles(dests []queue.Queue, deaths []any) []queue.Queue {
	kept := dests[:0]
	for _, d := range dests {
		if isDeathCycle(d.Name(), deaths) {
			v.logCycleOnce(d.Name(), deaths)
			continue
		}
		kept = append(kept, d)
	}
	clear(dests[len(kept):])
	return kept
}

// isDeathCycle reports whether a message with x-death list deaths (most
// recent first) dead-lettered to the queue named name would cycle.
func isDeathCycle(name string, deaths []any) bool {
	for _, d := range deaths {
		t, ok := d.(wire.Table)
		if !ok || t["reason"] == queue.ReasonRejected.String() {
			// A rejection, or something a client put there: not a fully
			// automatic cycle.
			return false
		}
		if t["queue"] == name {
			return true
		}
	}
	return false
}

// cyclesLogged remembers the dead-letter cycles already logged, up to a
// bound, so that each is logged once.
type cyclesLogged struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

const maxCyclesLogged = 1024

func (v *VHost) logCycleOnce(target string, deaths []any) {
	queues := []string{target}
	for _, d := range deaths {
		if t, ok := d.(wire.Table); ok {
			if name, ok := t["queue"].(string); ok {
				queues = append(queues, name)
			}
		}
	}
	key := strings.Join(queues, "\x00")
	c := &v.cycles
	c.mu.Lock()
	_, seen := c.seen[key]
	if !seen && len(c.seen) < maxCyclesLogged {
		if c.seen == nil {
			c.seen = map[string]struct{}{}
		}
		c.seen[key] = struct{}{}
	}
	c.mu.Unlock()
	if !seen {
		v.log.Warn("message dropped: the queues it died in, most recent first, form a dead-letter cycle without a rejection; this cycle is not logged again",
			"vhost", v.name, "queues", queues)
	}
}
