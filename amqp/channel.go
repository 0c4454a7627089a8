package amqp

import (
	"strconv"
	"sync"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/vhost"
)

// channelState is where a channel is in its life.
type channelState uint8

const (
	channelOpen    channelState = iota + 1
	channelClosing              // the server sent channel.close and awaits close-ok
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
	id    uint16
	conn  *conn
	state channelState

	// Publishing (reader only).
	content     contentState
	pub         wire.BasicPublish // the publish being assembled
	data        []byte            // its properties followed by its body
	propsLen    int
	received    int
	route       vhost.RouteScratch
	routeCache  routeCache
	confirm     bool
	publishSeq  uint64 // last publish sequence number in confirm mode
	ackRunStart uint64 // first of a run of acks not yet sent (0: none)
	ackRunEnd   uint64
	confirmDue  bool // registered with the connection for a batch-end flush
	tx          *txState

	// Consuming (reader only).
	lastQueue        string // the last queue declared, for methods naming ""
	consumerPrefetch int    // basic.qos global=false, for consumers created after
	ackScratch       []delivery

	// Shared with delivering queues.
	mu             sync.Mutex
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
	queues   []*queue.Queue
}

// openChannel handles channel.open on a channel number not in use. As in
// RabbitMQ, channel_max limits how many channels are open at once, not the
// channel numbers.
func (c *conn) openChannel(id uint16) error {
	if n := len(c.channels); n >= int(c.channelMax) {
		return wire.Errorf(wire.NotAllowed, "number of channels opened ("+strconv.Itoa(n)+
			") has reached the negotiated channel_max ("+strconv.Itoa(int(c.channelMax))+")")
	}
	c.channels[id] = &channel{id: id, conn: c, state: channelOpen, consumers: map[string]*queue.Consumer{}}
	c.sendMethod(id, &wire.ChannelOpenOk{})
	return nil
}

// closeChannel sends channel.close for a channel exception; the channel
// ignores everything but close-ok from then on.
func (c *conn) closeChannel(id uint16, e *wire.Error) {
	ch := c.channels[id]
	if ch == nil || ch.state == channelClosing {
		return
	}
	c.log.Warn("channel error", "channel", id, "code", e.Code, "text", e.Text)
	ch.release()
	ch.state = channelClosing
	c.sendMethod(id, &wire.ChannelClose{ReplyCode: e.Code, ReplyText: e.Text, ClassID: e.ClassID, MethodID: e.MethodID})
}

// closeChannels releases every channel when the connection ends.
func (c *conn) closeChannels() {
	for id, ch := range c.channels {
		ch.release()
		delete(c.channels, id)
	}
}

// release gives back what the channel holds: its consumers are cancelled
// and its unacknowledged deliveries requeued.
func (ch *channel) release() {
	ch.content = awaitMethod
	ch.data = nil
	ch.tx = nil
	ch.mu.Lock()
	ch.closed = true
	ch.blocked = nil
	consumers := ch.consumers
	ch.consumers = map[string]*queue.Consumer{}
	ch.mu.Unlock()
	for _, c := range consumers {
		c.Queue().RemoveConsumer(c)
	}
	ch.mu.Lock()
	ds := ch.unacked.takeAll(ch.ackScratch[:0])
	ch.mu.Unlock()
	settle(ds, true)
	ch.flushConfirms()
}

// handleMethod dispatches a method frame on this channel.
func (ch *channel) handleMethod(k wire.MethodKey, args []byte) error {
	if ch.state == channelClosing {
		switch k {
		case wire.MethodChannelCloseOk:
			delete(ch.conn.channels, ch.id)
		case wire.MethodChannelClose:
			ch.conn.sendMethod(ch.id, &wire.ChannelCloseOk{})
			delete(ch.conn.channels, ch.id)
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
		delete(ch.conn.channels, ch.id)
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
		return ch.reply(m.NoWait, &wire.ExchangeBindOk{}, ch.conn.vhost.BindExchange(m.Destination, m.Source, m.RoutingKey, m.Arguments))
	case *wire.ExchangeUnbind:
		return ch.reply(m.NoWait, &wire.ExchangeUnbindOk{}, ch.conn.vhost.UnbindExchange(m.Destination, m.Source, m.RoutingKey, m.Arguments))

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
		return ch.settleTag(m.DeliveryTag, m.Multiple, false, ackSettle)
	case *wire.BasicNack:
		return ch.settleTag(m.DeliveryTag, m.Multiple, m.Requeue, nackSettle)
	case *wire.BasicReject:
		return ch.settleTag(m.DeliveryTag, false, m.Requeue, nackSettle)
	case *wire.BasicRecover:
		return ch.basicRecover(m.Requeue, true)
	case *wire.BasicRecoverAsync:
		return ch.basicRecover(m.Requeue, false)

	case *wire.ConfirmSelect:
		if ch.tx != nil {
			return wire.Errorf(wire.PreconditionFailed, "cannot switch from tx to confirm mode")
		}
		ch.confirm = true
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
	if ch.state == channelClosing {
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
