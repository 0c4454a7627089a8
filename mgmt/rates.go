package mgmt

import (
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/queue"
)

// rateInterval is how often counters are sampled for rates (RabbitMQ's
// default collect_statistics_interval).
const rateInterval = 5 * time.Second

// rates turns the node's, the queues' and the connections' counters into
// per-second rates over the last sampling interval.
type rates struct {
	mu         sync.Mutex
	prev, last amqp.Totals
	prevAt     time.Time
	lastAt     time.Time
	queues     map[queue.Queue]queueSample
	conns      map[string]connSample
}

// queueSample is a queue's counters and depths at the last sample, and
// their rates of change since the one before.
type queueSample struct {
	published, delivered, ready, unacked uint64
	publishRate, deliverRate             float64
	readyRate, unackedRate               float64
}

// connSample is a connection's byte counters at the last sample, and their
// rates since the one before.
type connSample struct {
	recv, send         uint64
	recvRate, sendRate float64
}

func newRates() *rates {
	return &rates{queues: map[queue.Queue]queueSample{}, conns: map[string]connSample{}}
}

// sample records the totals as of now.
func (r *rates) sample(t amqp.Totals, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prev, r.prevAt = r.last, r.lastAt
	r.last, r.lastAt = t, now
}

// totals returns the last two samples and the seconds between them (0
// before there are two).
func (r *rates) totals() (prev, last amqp.Totals, secs float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.prevAt.IsZero() {
		secs = r.lastAt.Sub(r.prevAt).Seconds()
	}
	return r.prev, r.last, secs
}

// sampleQueues records the queues' counters, forgetting queues that went.
func (r *rates) sampleQueues(qs []queue.Queue, secs float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[queue.Queue]queueSample, len(qs))
	for _, q := range qs {
		st := q.Stats()
		s := queueSample{published: st.Published, delivered: st.Delivered, ready: uint64(st.Ready), unacked: uint64(st.Unacked)}
		if old, ok := r.queues[q]; ok {
			s.publishRate = rate(old.published, s.published, secs)
			s.deliverRate = rate(old.delivered, s.delivered, secs)
			s.readyRate = change(old.ready, s.ready, secs)
			s.unackedRate = change(old.unacked, s.unacked, secs)
		}
		seen[q] = s
	}
	r.queues = seen
}

// queue returns q's last sample (rates zero before two samples).
func (r *rates) queue(q queue.Queue) queueSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queues[q]
}

// sampleConnections records the connections' byte counters, forgetting
// connections that closed.
func (r *rates) sampleConnections(cs []amqp.ConnectionInfo, secs float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]connSample, len(cs))
	for _, c := range cs {
		s := connSample{recv: c.RecvOct, send: c.SendOct}
		if old, ok := r.conns[c.Name]; ok {
			s.recvRate = rate(old.recv, s.recv, secs)
			s.sendRate = rate(old.send, s.send, secs)
		}
		seen[c.Name] = s
	}
	r.conns = seen
}

// connection returns the named connection's byte rates (zero before two
// samples).
func (r *rates) connection(name string) (recv, send float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.conns[name]
	return s.recvRate, s.sendRate
}

// change is a gauge's per-second change between two samples, negative
// when it fell.
func change(prev, last uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return (float64(last) - float64(prev)) / secs
}

// rate is a counter's per-second rate between two samples.
func rate(prev, last uint64, secs float64) float64 {
	if secs <= 0 || last < prev {
		return 0
	}
	return float64(last-prev) / secs
}
