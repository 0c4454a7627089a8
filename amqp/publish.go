package amqp

import (
	"strconv"
	"strings"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// startPublish handles basic.publish: the content header and body follow.
func (ch *channel) startPublish(args []byte) error {
	if err := ch.pub.Decode(args); err != nil {
		return err
	}
	if !ch.conn.published.Load() {
		ch.conn.published.Store(true)
	}
	if ch.pub.Immediate {
		return wire.Errorf(wire.NotImplemented, "immediate=true").WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	}
	if err := ch.permitPublish(ch.pub.Exchange, ch.pub.RoutingKey); err != nil {
		return err.(*wire.Error).WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	}
	ch.content = awaitHeader
	return nil
}

// publishHeader handles the content header of a publish: the one
// allocation of a message holds its properties and then its body.
func (ch *channel) publishHeader(payload []byte) error {
	h, err := wire.ParseContentHeader(payload)
	if err != nil {
		return err
	}
	if h.ClassID != wire.ClassBasic {
		return wire.Errorf(wire.UnexpectedFrame, "expected content header for class 60, got one for class "+
			strconv.Itoa(int(h.ClassID))).WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	}
	if err := CheckPublishProperties(ch.conn.user.Name, h.Props, h.BodySize, ch.conn.srv.cfg.MaxMessageSize); err != nil {
		ch.content = awaitMethod
		return err.(*wire.Error).WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	}
	// The buffer grows as body frames arrive, past a first allocation
	// that fits most messages whole: a header announcing a large body
	// does not reserve it before it comes.
	var off int
	ch.data, off = queue.AllocMessageHeader(ch.pub.Exchange, ch.pub.RoutingKey, len(h.Props), min(int(h.BodySize), initialBodyCap))
	copy(ch.data[off:], h.Props)
	ch.bodyOff = off + len(h.Props)
	ch.bodySize = int(h.BodySize)
	if h.BodySize == 0 {
		return ch.finishPublish()
	}
	ch.content = awaitBody
	return nil
}

// publishBody handles a body frame of a publish.
func (ch *channel) publishBody(p []byte) error {
	received := len(ch.data) - ch.bodyOff
	if received+len(p) > ch.bodySize {
		return wire.Errorf(wire.FrameError, "content body larger than the "+strconv.Itoa(ch.bodySize)+
			" bytes its header announced").WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	}
	ch.data = append(ch.data, p...)
	if len(ch.data)-ch.bodyOff == ch.bodySize {
		return ch.finishPublish()
	}
	return nil
}

// initialBodyCap is the body room a publish gets before its body frames
// arrive; larger bodies grow the buffer as they come.
const initialBodyCap = 128 << 10

// finishPublish routes a completely received message.
func (ch *channel) finishPublish() error {
	ch.content = awaitMethod
	ch.stats.publish.Add(1)
	if ch.confirm {
		ch.stats.publishConfirmMode.Add(1)
	}
	m, err := queue.DecodeMessage(ch.data, ch.pub.Exchange, ch.pub.RoutingKey)
	ch.data = nil
	if err != nil {
		return wire.Errorf(wire.InternalError, err.Error())
	}
	if ch.tx != nil {
		// Routing errors surface at commit, as in RabbitMQ.
		ch.tx.publishes = append(ch.tx.publishes, txPublish{msg: m, mandatory: ch.pub.Mandatory})
		return nil
	}
	var out queue.Outcome
	return ch.publish(m, ch.pub.Mandatory, &out)
}

// publish routes m to its queues, returns it when mandatory and unroutable,
// and confirms it in confirm mode. out receives what the publish came to.
func (ch *channel) publish(m *queue.Message, mandatory bool, out *queue.Outcome) error {
	if m.Props.ReplyTo() == replyTo {
		var err error
		if m, err = ch.withReplyQueue(m); err != nil {
			return err
		}
	}
	queues, err := ch.routeMessage(m)
	if err != nil {
		return err.(*wire.Error).WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	}
	if len(queues) > 0 && m.Props.HasHeaders() {
		m = withoutBCC(m)
	}
	queue.Publish(queues, m, out)
	switch {
	case out.Routed:
		ch.stats.routed.Add(1)
	case mandatory:
		ch.stats.returnUnroutable.Add(1)
	default:
		ch.stats.dropUnroutable.Add(1)
	}
	if !out.Backpressure.Kept() {
		ch.conn.awaitCredit(&out.Backpressure)
	}
	if !out.Routed && mandatory {
		c := ch.conn
		c.out.mu.Lock()
		c.out.buf = wire.AppendReturn(c.out.buf, ch.id, wire.NoRoute, "NO_ROUTE", m.Exchange, m.RoutingKey)
		c.appendContentLocked(ch.id, m)
		c.out.mu.Unlock()
		c.out.kick()
	}
	if ch.confirm {
		ch.publishSeq++
		ch.addConfirm(ch.publishSeq, out.Promises, out.Rejected)
	}
	return nil
}

// routeMessage finds m's queues, from the channel's route cache when the
// vhost's routing has not changed since.
func (ch *channel) routeMessage(m *queue.Message) ([]queue.Queue, error) {
	v := ch.conn.vhost
	rc := &ch.routeCache
	gen := v.Generation()
	useCache := !m.Props.HasHeaders()
	if useCache && rc.valid && rc.gen == gen && rc.exchange == m.Exchange && rc.key == m.RoutingKey {
		return rc.queues, nil
	}
	queues, cacheable, err := v.Route(m.Exchange, m.RoutingKey, m.Props, rc.queues[:0], &ch.route)
	if err != nil {
		rc.valid = false
		return nil, err
	}
	rc.queues = queues
	rc.valid = useCache && cacheable
	rc.gen, rc.exchange, rc.key = gen, m.Exchange, m.RoutingKey
	return queues, nil
}

// withoutBCC returns m without its BCC header, which RabbitMQ removes
// before delivery; m itself when it has none.
func withoutBCC(m *queue.Message) *queue.Message {
	h, err := m.Props.Headers()
	if err != nil {
		return m
	}
	if _, ok := h["BCC"]; !ok {
		return m
	}
	out, err := queue.Rewrite(m, m.Exchange, m.RoutingKey, func(p *wire.Properties) { delete(p.Headers, "BCC") })
	if err != nil {
		return m
	}
	return out
}

// txState is a channel's open transaction.
type txState struct {
	publishes []txPublish
	settles   []txSettle
}

type txPublish struct {
	msg       *queue.Message
	mandatory bool
}

type txSettle struct {
	ds  []delivery
	how queue.Settlement
}

func (ch *channel) txSelect() error {
	if ch.confirm {
		return wire.Errorf(wire.PreconditionFailed, "cannot switch from confirm to tx mode")
	}
	if ch.tx == nil {
		ch.tx = &txState{}
		ch.mode.Or(modeTx)
	}
	ch.conn.sendMethod(ch.id, &wire.TxSelectOk{})
	return nil
}

// txSettle takes acknowledged deliveries off the unacked list at once (so
// an unknown tag fails now, as in RabbitMQ) and settles them at commit.
func (ch *channel) txSettle(tag uint64, multiple bool, how queue.Settlement) error {
	ds, err := ch.takeDeliveries(tag, multiple)
	if err != nil {
		return err
	}
	ch.tx.settles = append(ch.tx.settles, txSettle{ds: append([]delivery(nil), ds...), how: how})
	return nil
}

func (ch *channel) txCommit() error {
	if ch.tx == nil {
		return wire.Errorf(wire.PreconditionFailed, "channel is not transactional")
	}
	tx := ch.tx
	ch.tx = &txState{}
	var promises queue.Promises
	var out queue.Outcome
	for _, p := range tx.publishes {
		if err := ch.publish(p.msg, p.mandatory, &out); err != nil {
			tx.requeueSettles()
			return err
		}
		promises.AddAll(out.Promises)
	}
	for _, s := range tx.settles {
		ch.countSettled(len(s.ds), s.how)
		settle(s.ds, s.how)
	}
	// commit-ok means the queues have the transaction's messages safe.
	if err := ch.conn.await(&promises); err != nil {
		ch.conn.log.Error("store write failed", "err", err)
		return wire.Errorf(wire.InternalError, "the message store failed to write the transaction's messages")
	}
	ch.conn.sendMethod(ch.id, &wire.TxCommitOk{})
	return nil
}

// requeueSettles gives back the deliveries a transaction acknowledged but
// never committed (the channel closed, or the commit failed).
func (tx *txState) requeueSettles() {
	for _, s := range tx.settles {
		settle(s.ds, queue.Requeue)
	}
	tx.settles = nil
}

func (ch *channel) txRollback() error {
	if ch.tx == nil {
		return wire.Errorf(wire.PreconditionFailed, "channel is not transactional")
	}
	// Acknowledgements in the transaction are undone: their deliveries are
	// unacknowledged again.
	ch.mu.Lock()
	closed := ch.closed
	if !closed {
		for _, s := range ch.tx.settles {
			ch.unacked.restore(s.ds)
		}
	}
	ch.mu.Unlock()
	if closed {
		ch.tx.requeueSettles() // nothing would settle them on a closed channel
	}
	ch.tx = &txState{}
	ch.conn.sendMethod(ch.id, &wire.TxRollbackOk{})
	return nil
}

// withReplyQueue points a request's reply-to at the channel's direct
// reply-to queue, as RabbitMQ rewrites amq.rabbitmq.reply-to.
func (ch *channel) withReplyQueue(m *queue.Message) (*queue.Message, error) {
	ch.mu.Lock()
	name := ch.replyQueue
	ch.mu.Unlock()
	if name == "" {
		return nil, wire.Errorf(wire.PreconditionFailed, "fast reply consumer does not exist").WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	}
	return queue.Rewrite(m, m.Exchange, m.RoutingKey, func(p *wire.Properties) { p.ReplyTo = name })
}

// await blocks the reader until the promises are kept and returns the
// first failure. The client is not being read meanwhile: its heartbeats
// must not count as missed (RabbitMQ suspends the check while it blocks a
// connection too).
func (c *conn) await(ps *queue.Promises) error {
	if ps.Kept() {
		return nil
	}
	c.paused.Store(true)
	defer c.paused.Store(false)
	return ps.Wait()
}

// awaitCredit blocks the reader until the store has taken enough of what
// was published for more to be read (the queues' Backpressure); meanwhile
// the connection shows RabbitMQ's "flow" state.
func (c *conn) awaitCredit(ps *queue.Promises) {
	c.flow.CompareAndSwap(flowRunning, flowCredit)
	defer c.flow.CompareAndSwap(flowCredit, flowRunning)
	_ = c.await(ps) // a failure reaches the publishes' own confirms
}

// erlangPrinted is text followed by term, a two-element Erlang tuple or an
// atom, as RabbitMQ's ~p lays it out in a reply text: a tuple that would
// reach column 79 breaks after its comma, its second element aligned
// under its first.
func erlangPrinted(text, term string) string {
	comma := strings.IndexByte(term, ',')
	if len(text)+len(term) < 79 || !strings.HasPrefix(term, "{") || comma < 0 {
		return text + term
	}
	return text + term[:comma+1] + "\n" + strings.Repeat(" ", len(text)+1) + term[comma+1:]
}
