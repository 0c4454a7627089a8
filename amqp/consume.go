package amqp

import (
	"strconv"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/vhost"
)

func (ch *channel) basicQos(m *wire.BasicQos) error {
	if m.PrefetchSize != 0 {
		return wire.Errorf(wire.NotImplemented, "prefetch_size!=0 ("+strconv.FormatUint(uint64(m.PrefetchSize), 10)+")")
	}
	ch.mu.Lock()
	if m.Global {
		ch.prefetchGlobal = int(m.PrefetchCount)
	} else {
		// As in RabbitMQ 3.10+, a per-consumer prefetch lifts the
		// channel-wide limit set before it.
		ch.consumerPrefetch = int(m.PrefetchCount)
		ch.prefetchGlobal = 0
	}
	resume := ch.takeBlockedLocked()
	ch.mu.Unlock()
	ch.conn.sendMethod(ch.id, &wire.BasicQosOk{})
	resumeAll(resume)
	return nil
}

// takeBlockedLocked returns the consumers refused for lack of channel-wide
// credit when there is credit again.
func (ch *channel) takeBlockedLocked() []*queue.Consumer {
	if len(ch.blocked) == 0 || ch.prefetchGlobal != 0 && ch.unacked.live >= ch.prefetchGlobal {
		return nil
	}
	b := ch.blocked
	ch.blocked = nil
	return b
}

func resumeAll(cs []*queue.Consumer) {
	for _, c := range cs {
		c.Queue.Resume(c)
	}
}

// replyTo is the pseudo-queue of direct reply-to.
const replyTo = "amq.rabbitmq.reply-to"

func (ch *channel) basicConsume(m *wire.BasicConsume) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	var q queue.Queue
	if name != replyTo {
		if err := ch.conn.access().Permit(auth.Read, resQueue, name); err != nil {
			return err
		}
	}
	if name == replyTo {
		if q, err = ch.replyQueueFor(m.NoAck); err != nil {
			return err
		}
	} else if q, err = ch.conn.vhost.Queue(name, ch.conn.id); err != nil {
		return err
	}
	if _, replicated := q.(queue.Replicas); replicated && ch.prefetchGlobal > 0 {
		// RabbitMQ 3.10 and later: a replicated queue has no channel-wide
		// limit to share, and says so with a connection error.
		return wire.Errorf(wire.NotImplemented, "queue '"+name+"' in vhost '"+ch.conn.vhost.Name()+"' does not support global qos")
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = vhost.GenerateName("amq.ctag-")
	}
	ch.mu.Lock()
	_, dup := ch.consumers[tag]
	ch.mu.Unlock()
	if dup {
		return wire.Errorf(wire.NotAllowed, "attempt to reuse consumer tag '"+tag+"'")
	}
	c := &queue.Consumer{Tag: tag, NoAck: m.NoAck, Exclusive: m.Exclusive, Prefetch: ch.consumerPrefetch, Sink: ch,
		Queue: q, Timeout: ch.conn.srv.ackTimeout(q, m.Arguments)}
	if p, ok := m.Arguments["x-priority"]; ok {
		n, ok := wire.Int(p)
		if !ok {
			return wire.Errorf(wire.PreconditionFailed, "invalid arg 'x-priority' for queue '"+name+"' in vhost '"+
				ch.conn.vhost.Name()+"': \"expected integer, got "+wire.TypeName(p)+"\"")
		}
		c.Priority = int(n)
	}
	if q.Config().SingleActiveConsumer && m.Exclusive {
		return wire.Errorf(wire.AccessRefused, "queue '"+name+"' in vhost '"+ch.conn.vhost.Name()+"' in exclusive use")
	}
	ch.mu.Lock()
	ch.consumers[tag] = c
	ch.mu.Unlock()
	err = q.AddConsumer(c, func() {
		if !m.NoWait {
			ch.conn.sendMethod(ch.id, &wire.BasicConsumeOk{ConsumerTag: tag})
		}
	})
	if err != nil {
		ch.forgetConsumer(c)
		return err
	}
	// A channel closed meanwhile by another goroutine (consumer timeout)
	// may have missed this consumer when it cancelled the others.
	ch.mu.Lock()
	closed := ch.closed
	ch.mu.Unlock()
	if closed {
		q.RemoveConsumer(c)
	}
	return nil
}

func (ch *channel) basicCancel(m *wire.BasicCancel) error {
	ch.mu.Lock()
	c := ch.consumers[m.ConsumerTag]
	ch.mu.Unlock()
	if c != nil {
		ch.forgetConsumer(c)
		ch.mu.Lock()
		if c.Queue.Name() == ch.replyQueue {
			ch.replyQueue = "" // publishing with reply-to needs a consumer again
		}
		ch.mu.Unlock()
		c.Queue.RemoveConsumer(c)
	}
	return ch.reply(m.NoWait, &wire.BasicCancelOk{ConsumerTag: m.ConsumerTag}, nil)
}

// forgetConsumer drops c from the channel's consumers if it is still there.
func (ch *channel) forgetConsumer(c *queue.Consumer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.consumers[c.Tag] != c {
		return false
	}
	delete(ch.consumers, c.Tag)
	return true
}

func (ch *channel) basicGet(m *wire.BasicGet) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.access().Permit(auth.Read, resQueue, name); err != nil {
		return err
	}
	q, err := ch.conn.vhost.Queue(name, ch.conn.id)
	if err != nil {
		return err
	}
	if q.Config().SingleActiveConsumer {
		// RabbitMQ refuses this on quorum queues; Warren refuses it on every
		// single-active-consumer queue, since a get would bypass the
		// active consumer.
		return wire.Errorf(wire.ResourceLocked, "cannot obtain access to locked queue '"+name+"' in vhost '"+
			ch.conn.vhost.Name()+"'. basic.get operations are not supported by queues with single active consumer")
	}
	if err := queue.Unreachable(q); err != nil {
		return err
	}
	e, left, ok := q.Get(m.NoAck)
	if !ok {
		ch.conn.sendMethod(ch.id, &wire.BasicGetEmpty{})
		return nil
	}
	ch.mu.Lock()
	if ch.closed {
		// Closed meanwhile by another goroutine (consumer timeout): nothing
		// would ever settle the delivery.
		ch.mu.Unlock()
		if !m.NoAck {
			q.Settle(nil, []queue.Entry{e}, queue.Release)
		}
		return nil
	}
	ch.nextTag++
	tag := ch.nextTag
	if !m.NoAck {
		ch.unacked.push(ch.conn.srv.newDelivery(tag, q, nil, e, ch.conn.srv.ackTimeout(q, nil)))
	}
	c := ch.conn
	c.out.mu.Lock()
	ch.stats.countDelivery(true, m.NoAck, e.Redelivered)
	c.out.buf = wire.AppendGetOk(c.out.buf, ch.id, tag, e.Redelivered, e.Msg.Exchange, e.Msg.RoutingKey, uint32(left))
	c.appendContentLocked(ch.id, e.Msg)
	c.out.mu.Unlock()
	ch.mu.Unlock()
	c.out.kick()
	return nil
}

// appendContentLocked queues a message's content header and body frames;
// c.out.mu is held.
func (c *conn) appendContentLocked(ch uint16, m *queue.Message) {
	c.out.buf = wire.AppendHeaderFrame(c.out.buf, ch, wire.ClassBasic, uint64(len(m.Body)), m.Props)
	c.out.appendBodyLocked(ch, m.Body, c.frameMax)
}

// Deliver implements queue.Sink: it writes basic.deliver and the content
// into the connection's outbound buffer, unless the channel is out of
// credit or the connection's buffer is full.
func (ch *channel) Deliver(qc *queue.Consumer, e queue.Entry) bool {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return false
	}
	if !qc.NoAck && ch.prefetchGlobal > 0 && ch.unacked.live >= ch.prefetchGlobal {
		ch.blocked = append(ch.blocked, qc)
		ch.mu.Unlock()
		return false
	}
	c := ch.conn
	c.out.mu.Lock()
	if c.out.pendingLocked() >= maxPendingOutput {
		c.out.waiters = append(c.out.waiters, qc)
		c.out.mu.Unlock()
		ch.mu.Unlock()
		return false
	}
	ch.nextTag++
	tag := ch.nextTag
	if !qc.NoAck {
		ch.unacked.push(c.srv.newDelivery(tag, qc.Queue, qc, e, qc.Timeout))
	}
	ch.stats.countDelivery(false, qc.NoAck, e.Redelivered)
	c.out.buf = wire.AppendDeliver(c.out.buf, ch.id, qc.Tag, tag, e.Redelivered, e.Msg.Exchange, e.Msg.RoutingKey)
	c.appendContentLocked(ch.id, e.Msg)
	c.out.mu.Unlock()
	ch.mu.Unlock()
	c.out.kick()
	return true
}

// Cancelled implements queue.Sink: the queue was deleted under the
// consumer. Clients that advertised consumer_cancel_notify get basic.cancel.
func (ch *channel) Cancelled(qc *queue.Consumer) {
	if ch.forgetConsumer(qc) && ch.conn.caps.consumerCancelNotify {
		ch.conn.sendMethod(ch.id, &wire.BasicCancel{ConsumerTag: qc.Tag, NoWait: true})
	}
}

// refusal is how basic.nack (nack) or basic.reject settles: discard
// without requeue; with it, as RabbitMQ 4.3 counts them, a reject is a
// failed delivery (it counts towards the delivery limit) and a nack is not.
func refusal(requeue, nack bool) queue.Settlement {
	switch {
	case !requeue:
		return queue.Discard
	case nack:
		return queue.Release
	}
	return queue.Requeue
}

// settleTag handles basic.ack, basic.nack and basic.reject.
func (ch *channel) settleTag(tag uint64, multiple bool, how queue.Settlement) error {
	if ch.tx != nil {
		return ch.txSettle(tag, multiple, how)
	}
	ds, err := ch.takeDeliveries(tag, multiple)
	if err != nil {
		return err
	}
	ch.countSettled(len(ds), how)
	settle(ds, how)
	ch.ackScratch = ds[:0]
	return nil
}

// takeDeliveries removes acknowledged deliveries from the unacked list and
// resumes consumers that were waiting for channel-wide credit.
func (ch *channel) takeDeliveries(tag uint64, multiple bool) ([]delivery, error) {
	ch.mu.Lock()
	ds, ok := ch.unacked.take(tag, multiple, ch.ackScratch[:0])
	resume := ch.takeBlockedLocked()
	ch.mu.Unlock()
	resumeAll(resume)
	if !ok {
		return nil, wire.Errorf(wire.PreconditionFailed, "unknown delivery tag "+strconv.FormatUint(tag, 10))
	}
	return ds, nil
}

// settle tells the queues how deliveries ended, grouping runs that share a
// queue and consumer into one call.
func settle(ds []delivery, how queue.Settlement) {
	var buf [16]queue.Entry
	entries := buf[:0]
	for i := 0; i < len(ds); {
		j := i + 1
		for j < len(ds) && ds[j].queue == ds[i].queue && ds[j].consumer == ds[i].consumer {
			j++
		}
		entries = entries[:0]
		for _, d := range ds[i:j] {
			entries = append(entries, d.entry)
		}
		ds[i].queue.Settle(ds[i].consumer, entries, how)
		i = j
	}
	clear(ds)
}

// basicRecover redelivers every unacknowledged delivery (requeue=true).
func (ch *channel) basicRecover(requeue, reply bool) error {
	if !requeue {
		return wire.Errorf(wire.NotImplemented, "requeue=false")
	}
	ch.mu.Lock()
	ds := ch.unacked.takeAll(ch.ackScratch[:0])
	resume := ch.takeBlockedLocked()
	ch.mu.Unlock()
	resumeAll(resume)
	settle(ds, queue.Release)
	ch.ackScratch = ds[:0]
	if reply {
		ch.conn.sendMethod(ch.id, &wire.BasicRecoverOk{})
	}
	return nil
}

// ackTimeout is the delivery acknowledgement timeout for a consumer with
// args on q (args nil for basic.get): the consumer's x-consumer-timeout,
// else the queue's, else the server's consumer_timeout.
func (s *Server) ackTimeout(q queue.Queue, args wire.Table) time.Duration {
	for _, t := range []wire.Table{args, q.Config().Args} {
		if v, ok := t["x-consumer-timeout"]; ok {
			if n, ok := wire.Int(v); ok && n >= 0 {
				return time.Duration(n) * time.Millisecond
			}
		}
	}
	return s.cfg.ConsumerTimeout
}

// newDelivery records a delivery, stamped with its acknowledgement deadline.
func (s *Server) newDelivery(tag uint64, q queue.Queue, c *queue.Consumer, e queue.Entry, timeout time.Duration) delivery {
	d := delivery{tag: tag, queue: q, consumer: c, entry: e}
	if timeout > 0 {
		d.timeout = timeout.Milliseconds()
		d.deadline = s.nowMillis() + d.timeout
	}
	return d
}

// replyQueueFor sets up direct reply-to for a consumer on the
// amq.rabbitmq.reply-to pseudo-queue: it must be no-ack, one per channel.
func (ch *channel) replyQueueFor(noAck bool) (queue.Queue, error) {
	if !noAck {
		return nil, wire.Errorf(wire.PreconditionFailed, "reply consumer cannot acknowledge")
	}
	ch.mu.Lock()
	existing := ch.replyQueue
	ch.mu.Unlock()
	if existing != "" {
		if q, err := ch.conn.vhost.Queue(existing, ch.conn.id); err == nil && !q.Deleted() {
			return nil, wire.Errorf(wire.PreconditionFailed, "reply consumer already set")
		}
	}
	q, err := ch.conn.vhost.DeclareReplyQueue(ch.conn.id)
	if err != nil {
		return nil, err
	}
	ch.mu.Lock()
	ch.replyQueue = q.Name()
	ch.mu.Unlock()
	return q, nil
}

// countSettled counts n deliveries settled with how: acknowledgements are
// what message_stats count.
func (ch *channel) countSettled(n int, how queue.Settlement) {
	if how == queue.Ack {
		ch.stats.ack.Add(uint64(n))
	}
}
