package amqp

import (
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/vhost"
)

// contentState is where a channel is in assembling a published message.
type contentState uint8

const (
	awaitMethod contentState = iota
	awaitHeader
	awaitBody
)

// channel is one AMQP channel. The connection's reader owns the fields not
// marked otherwise; those under mu are shared with the queues that deliver
// to the channel's consumers (lock order: queue, then channel, then the
// connection's outbound buffer).
type channel struct {
	id   uint16
	conn *conn
	// closing is set once the server has sent channel.close; from then on
	// the channel drops everything until close-ok, answering a crossing
	// channel.close and refusing channel.open. Any goroutine may close a
	// channel (a consumer timeout does), so it is atomic.
	closing atomic.Bool

	// Publishing (reader only).
	content       contentState
	pub           wire.BasicPublish // the publish being assembled
	data          []byte            // the message's one buffer (queue.AllocMessage)
	bodyOff       int               // where the body starts in data
	bodySize      int               // the body size the content header announced
	route         vhost.RouteScratch
	routeCache    routeCache
	publishAccess publishAccess
	stats         counters      // message_stats, also written by delivering goroutines
	mode          atomic.Uint32 // modeConfirm, modeTx: for ChannelInfo
	confirm       bool
	publishSeq    uint64 // last publish sequence number in confirm mode
	confirms      confirms
	confirmDue    bool // registered with the connection for a batch-end flush
	tx            *txState

	// Consuming (reader only).
	lastQueue        string // the last queue declared, for methods naming ""
	consumerPrefetch int    // basic.qos global=false, for consumers created after
	ackScratch       []delivery

	// Shared with delivering queues.
	mu             sync.Mutex
	replyQueue     string                     // this channel's direct reply-to queue, if it consumes one
	consumers      map[string]*queue.Consumer // by tag
	closed         bool                       // no more deliveries
	nextTag        uint64                     // last delivery tag used
	unacked        unackedList
	prefetchGlobal int               // basic.qos global=true; 0 unlimited
	blocked        []*queue.Consumer // refused for lack of channel-wide credit
}

// routeCache remembers the last publish's route while the vhost's routing
// does not change.
type routeCache struct {
	valid    bool
	gen      uint64
	exchange string
	key      string
	queues   []queue.Queue
}

// openChannel handles channel.open on a channel number not in use (and not
// above channel_max: see handleFrame).
func (c *conn) openChannel(id uint16) error {
	if err := c.srv.takeChannel(c.user.Name); err != nil {
		return err
	}
	c.channels[id] = &channel{id: id, conn: c, consumers: map[string]*queue.Consumer{}}
	c.publishChannels()
	c.srv.totals.channelsOpened.Add(1)
	c.sendMethod(id, &wire.ChannelOpenOk{})
	return nil
}

// channel returns the open channel with number id, or nil.
func (c *conn) channel(id uint16) *channel {
	if ch := c.lastCh; ch != nil && ch.id == id {
		return ch
	}
	ch := c.channels[id]
	if ch != nil {
		c.lastCh = ch
	}
	return ch
}

// dropChannel forgets a closed channel.
func (c *conn) dropChannel(id uint16) {
	ch := c.channels[id]
	delete(c.channels, id)
	if c.lastCh != nil && c.lastCh.id == id {
		c.lastCh = nil
	}
	if ch == nil {
		c.publishChannels()
		return
	}
	c.srv.channelClosed(ch, c.publishChannels)
}

// publishChannels refreshes the channel list other goroutines read.
func (c *conn) publishChannels() {
	list := make([]*channel, 0, len(c.channels))
	for _, ch := range c.channels {
		list = append(list, ch)
	}
	c.channelList.Store(&list)
}

// closeChannel sends channel.close for a channel exception.
func (c *conn) closeChannel(id uint16, e *wire.Error) {
	if ch := c.channel(id); ch != nil {
		ch.fail(e)
	}
}

// fail closes the channel with a channel exception: its consumers are
// cancelled, its unacknowledged deliveries requeued and channel.close sent.
// It may run on any goroutine; the reader notices closing on the next frame.
func (ch *channel) fail(e *wire.Error) { ch.failGivingBack(e, queue.Requeue) }

// failGivingBack is fail, giving the unacknowledged deliveries back with
// how: a consumer timeout releases them (RabbitMQ 4.3 does not count it
// as a failed delivery), any other failure requeues them.
func (ch *channel) failGivingBack(e *wire.Error, how queue.Settlement) {
	if !ch.closing.CompareAndSwap(false, true) {
		return
	}
	ch.conn.log.Warn("channel error", "channel", ch.id, "code", e.Code, "text", e.Text)
	ch.forgetConfirms()
	ch.releaseShared(how)
	ch.conn.sendMethod(ch.id, &wire.ChannelClose{ReplyCode: e.Code, ReplyText: e.Text, ClassID: e.ClassID, MethodID: e.MethodID})
}

// closeChannels releases every channel when the connection ends.
func (c *conn) closeChannels() {
	for id, ch := range c.channels {
		ch.release()
		delete(c.channels, id)
		c.srv.channelClosed(ch, c.publishChannels)
	}
	c.lastCh = nil
}

// release gives back everything the channel holds (reader only). The
// channel counts as closing from then on, so that a close another
// goroutine decided on (a failed store write, a consumer timeout) is not
// sent on a channel number the client may already be using again.
func (ch *channel) release() {
	ch.closing.Store(true)
	ch.resetReaderState()
	ch.flushConfirms()
	ch.forgetConfirms()
	ch.releaseShared(queue.Requeue)
}

// resetReaderState drops what the reader was assembling; acknowledgements
// in an open transaction are undone, so their messages go back.
func (ch *channel) resetReaderState() {
	ch.content = awaitMethod
	ch.data = nil
	if ch.tx != nil {
		ch.tx.requeueSettles()
		ch.tx = nil
	}
}

// releaseShared cancels the channel's consumers and gives its
// unacknowledged deliveries back with how; safe on any goroutine, and
// idempotent.
func (ch *channel) releaseShared(how queue.Settlement) {
	ch.mu.Lock()
	ch.closed = true
	ch.blocked = nil
	consumers := ch.consumers
	ch.consumers = map[string]*queue.Consumer{}
	ds := ch.unacked.takeAll(nil)
	ch.mu.Unlock()
	for _, c := range consumers {
		c.Queue.RemoveConsumer(c)
	}
	settle(ds, how)
}

// handleMethod dispatches a method frame on this channel.
func (ch *channel) handleMethod(k wire.MethodKey, args []byte) error {
	if ch.closing.Load() {
		// As RabbitMQ does, the channel waits for close-ok: a client whose
		// own channel.close crossed ours gets its close-ok and then sends
		// ours (every client answers a server's close), and that close-ok
		// must find the channel still here, not an unopened number.
		ch.resetReaderState()
		switch k {
		case wire.MethodChannelCloseOk:
			ch.conn.dropChannel(ch.id)
		case wire.MethodChannelClose:
			ch.conn.sendMethod(ch.id, &wire.ChannelCloseOk{})
		case wire.MethodChannelOpen:
			return wire.Errorf(wire.ChannelError, "second 'channel.open' seen").WithMethod(k.Class(), k.ID())
		}
		return nil
	}
	if ch.content != awaitMethod {
		return ch.unexpectedFrame(wire.FrameMethod)
	}
	if k == wire.MethodBasicPublish {
		return ch.startPublish(args)
	}
	m := wire.NewMethod(k)
	if m == nil {
		return wire.UnknownMethodError(k)
	}
	if err := m.Decode(args); err != nil {
		return err
	}
	if err := ch.handle(m); err != nil {
		if we, ok := err.(*wire.Error); ok && we.ClassID == 0 {
			return we.WithMethod(k.Class(), k.ID())
		}
		return err
	}
	return nil
}

// handle runs one decoded method.
func (ch *channel) handle(m wire.Method) error {
	switch m := m.(type) {
	case *wire.ChannelOpen:
		return wire.Errorf(wire.ChannelError, "second 'channel.open' seen")
	case *wire.ChannelClose:
		ch.release()
		ch.conn.dropChannel(ch.id)
		ch.conn.sendMethod(ch.id, &wire.ChannelCloseOk{})
		return nil
	case *wire.ChannelCloseOk:
		return nil // close-ok for a close we did not send: ignore
	case *wire.ChannelFlow:
		if !m.Active {
			return wire.Errorf(wire.NotImplemented, "active=false")
		}
		ch.conn.sendMethod(ch.id, &wire.ChannelFlowOk{Active: true})
		return nil

	case *wire.ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *wire.ExchangeDelete:
		return ch.exchangeDelete(m)
	case *wire.ExchangeBind:
		err := ch.conn.access().PermitBind(resExchange, m.Destination, m.Source, m.RoutingKey)
		if err == nil {
			err = ch.conn.vhost.BindExchange(m.Destination, m.Source, m.RoutingKey, m.Arguments)
		}
		return ch.reply(m.NoWait, &wire.ExchangeBindOk{}, err)
	case *wire.ExchangeUnbind:
		err := ch.conn.access().PermitBind(resExchange, m.Destination, m.Source, m.RoutingKey)
		if err == nil {
			err = ch.conn.vhost.UnbindExchange(m.Destination, m.Source, m.RoutingKey, m.Arguments)
		}
		return ch.reply(m.NoWait, &wire.ExchangeUnbindOk{}, err)

	case *wire.QueueDeclare:
		return ch.queueDeclare(m)
	case *wire.QueueBind:
		return ch.queueBind(m)
	case *wire.QueueUnbind:
		return ch.queueUnbind(m)
	case *wire.QueuePurge:
		return ch.queuePurge(m)
	case *wire.QueueDelete:
		return ch.queueDelete(m)

	case *wire.BasicQos:
		return ch.basicQos(m)
	case *wire.BasicConsume:
		return ch.basicConsume(m)
	case *wire.BasicCancel:
		return ch.basicCancel(m)
	case *wire.BasicGet:
		return ch.basicGet(m)
	case *wire.BasicAck:
		return ch.settleTag(m.DeliveryTag, m.Multiple, queue.Ack)
	case *wire.BasicNack:
		return ch.settleTag(m.DeliveryTag, m.Multiple, refusal(m.Requeue, true))
	case *wire.BasicReject:
		return ch.settleTag(m.DeliveryTag, false, refusal(m.Requeue, false))
	case *wire.BasicRecover:
		return ch.basicRecover(m.Requeue, true)
	case *wire.BasicRecoverAsync:
		return ch.basicRecover(m.Requeue, false)

	case *wire.ConfirmSelect:
		if ch.tx != nil {
			return wire.Errorf(wire.PreconditionFailed, "cannot switch from tx to confirm mode")
		}
		ch.confirm = true
		ch.mode.Or(modeConfirm)
		return ch.reply(m.NoWait, &wire.ConfirmSelectOk{}, nil)
	case *wire.TxSelect:
		return ch.txSelect()
	case *wire.TxCommit:
		return ch.txCommit()
	case *wire.TxRollback:
		return ch.txRollback()
	}
	return wire.Errorf(wire.CommandInvalid, "'"+m.Key().String()+"' is not a method a client sends")
}

// reply sends ok unless err is set or noWait.
func (ch *channel) reply(noWait bool, ok wire.Method, err error) error {
	if err != nil {
		return err
	}
	if !noWait {
		ch.conn.sendMethod(ch.id, ok)
	}
	return nil
}

// handleContent handles a content header or body frame.
func (ch *channel) handleContent(f wire.Frame) error {
	if ch.closing.Load() {
		ch.resetReaderState()
		return nil
	}
	switch {
	case f.Type == wire.FrameHeader && ch.content == awaitHeader:
		return ch.publishHeader(f.Payload)
	case f.Type == wire.FrameBody && ch.content == awaitBody:
		return ch.publishBody(f.Payload)
	}
	return ch.unexpectedFrame(f.Type)
}

// unexpectedFrame is the error for a frame out of the method, header, body
// order.
func (ch *channel) unexpectedFrame(got uint8) error {
	switch ch.content {
	case awaitHeader:
		return wire.Errorf(wire.UnexpectedFrame, "expected content header for class 60, got non content header frame instead").
			WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	case awaitBody:
		return wire.Errorf(wire.UnexpectedFrame, "expected content body, got non content body frame instead").
			WithMethod(wire.ClassBasic, wire.MethodBasicPublish.ID())
	}
	return wire.Errorf(wire.UnexpectedFrame, "expected method frame, got non method frame instead")
}
