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

// rates turns the node's and the queues' counters into per-second rates
// over the last sampling interval.
type rates struct {
	mu         sync.Mutex
	prev, last amqp.Totals
	prevAt     time.Time
	lastAt     time.Time
	queues     map[queue.Queue]queueSample
}

type queueSample struct {
	published, delivered     uint64
	publishRate, deliverRate float64
}

func newRates() *rates { return &rates{queues: map[queue.Queue]queueSample{}} }

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
		s := queueSample{published: st.Published, delivered: st.Delivered}
		if old, ok := r.queues[q]; ok && secs > 0 {
			s.publishRate = float64(st.Published-old.published) / secs
			s.deliverRate = float64(st.Delivered-old.delivered) / secs
		}
		seen[q] = s
	}
	r.queues = seen
}

// queue returns q's rates (zero before two samples).
func (r *rates) queue(q queue.Queue) (publish, deliver float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.queues[q]
	return s.publishRate, s.deliverRate
}

// rate is a counter's per-second rate between two samples.
func rate(prev, last uint64, secs float64) float64 {
	if secs <= 0 || last < prev {
		return 0
	}
	return float64(last-prev) / secs
}
