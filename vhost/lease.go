package vhost

import (
	"time"

	"github.com/warrenmq/warren/queue"
)

// lease is an x-expires queue's lease: the queue is deleted once it has
// had no consumer, no basic.get and no declare for its Expires period.
// One timer per such queue; it checks the queue when it fires and is set
// again for what is left of the period while the queue is in use.
type lease struct {
	timer    *time.Timer
	declared time.Time // last declare (or the node's start, for a recovered queue)
}

// touchLocked starts or renews q's lease when q has x-expires (or an
// expires policy). RabbitMQ renews it on every declare, passive ones
// included; leases of durable queues start afresh when the node restarts.
func (v *VHost) touchLocked(q queue.Queue) {
	expires := q.Settings().Expires
	if expires <= 0 || v.remote(q) { // the queue's own node keeps its lease
		return
	}
	if v.leases == nil {
		v.leases = map[queue.Queue]*lease{}
	}
	l := v.leases[q]
	if l == nil {
		l = &lease{}
		v.leases[q] = l
		l.timer = time.AfterFunc(time.Duration(expires)*time.Millisecond, func() { v.checkLease(q) })
	}
	l.declared = time.Now()
}

// checkLease deletes q if its lease has run out, or sets the timer for the
// rest of it. The queue's messages are not dead-lettered, as in RabbitMQ.
func (v *VHost) checkLease(q queue.Queue) {
	v.mu.Lock()
	defer v.mu.Unlock()
	l := v.leases[q]
	if l == nil || v.queues[q.Name()] != q {
		return
	}
	expires := q.Settings().Expires
	if expires <= 0 { // a policy took it away
		v.endLeaseLocked(q)
		return
	}
	period := time.Duration(expires) * time.Millisecond
	st := q.Stats()
	if st.Consumers > 0 {
		l.timer.Reset(period)
		return
	}
	used := l.declared
	if st.LastUsed.After(used) {
		used = st.LastUsed
	}
	if left := period - time.Since(used); left > 0 {
		l.timer.Reset(left)
		return
	}
	if v.reg.replicated() {
		// The deletion, once applied, ends the lease; should it not be
		// taken, the lease runs out again and tries again.
		l.timer.Reset(period)
		v.proposeQueueDelete(q, true)
		v.log.Info("queue expired", "vhost", v.name, "queue", q.Name(), "expires_ms", expires)
		return
	}
	if _, err := q.Delete(false, false); err == nil {
		if err := v.forgetQueueLocked(q); err != nil {
			v.log.Error("removing an expired queue from the store", "vhost", v.name, "queue", q.Name(), "err", err)
		}
		v.log.Info("queue expired", "vhost", v.name, "queue", q.Name(), "expires_ms", expires)
	}
}

// endLeaseLocked stops q's lease when q goes.
func (v *VHost) endLeaseLocked(q queue.Queue) {
	if l := v.leases[q]; l != nil {
		l.timer.Stop()
		delete(v.leases, q)
	}
}
