package amqp

import (
	"strconv"

	"github.com/warrenmq/warren/amqp/wire"
)

// channelState is where a channel is in its life.
type channelState uint8

const (
	channelOpen    channelState = iota + 1
	channelClosing              // the server sent channel.close and awaits close-ok
)

// contentState is where a channel is in assembling a content-bearing method.
type contentState uint8

const (
	awaitMethod contentState = iota
	awaitHeader
	awaitBody
)

// channel is one AMQP channel's state machine. The connection's reader owns
// it; the fields under mu (added with delivery) are shared with queues.
type channel struct {
	id    uint16
	conn  *conn
	state channelState

	content contentState
	pending wire.MethodKey // the content-bearing method being assembled
}

// openChannel handles channel.open on a channel number not in use.
func (c *conn) openChannel(id uint16) error {
	if id > c.channelMax {
		return wire.Errorf(wire.ChannelError, "channel id "+strconv.Itoa(int(id))+
			" is higher than the negotiated channel_max ("+strconv.Itoa(int(c.channelMax))+")").
			WithMethod(wire.ClassChannel, wire.MethodChannelOpen.ID())
	}
	c.channels[id] = &channel{id: id, conn: c, state: channelOpen}
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

// release gives back what the channel holds (consumers, unacked messages).
func (ch *channel) release() {
	ch.content = awaitMethod
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
	switch k {
	case wire.MethodChannelOpen:
		return wire.Errorf(wire.ChannelError, "second 'channel.open' seen").WithMethod(k.Class(), k.ID())
	case wire.MethodChannelClose:
		var m wire.ChannelClose
		if err := m.Decode(args); err != nil {
			return err
		}
		ch.release()
		delete(ch.conn.channels, ch.id)
		ch.conn.sendMethod(ch.id, &wire.ChannelCloseOk{})
		return nil
	case wire.MethodChannelCloseOk:
		return nil // close-ok for a close we did not send: ignore
	case wire.MethodChannelFlow:
		var m wire.ChannelFlow
		if err := m.Decode(args); err != nil {
			return err
		}
		if !m.Active {
			return wire.Errorf(wire.NotImplemented, "active=false").WithMethod(k.Class(), k.ID())
		}
		ch.conn.sendMethod(ch.id, &wire.ChannelFlowOk{Active: true})
		return nil
	}
	return ch.handleClassMethod(k, args)
}

// handleClassMethod handles the exchange, queue, basic, confirm and tx
// classes.
func (ch *channel) handleClassMethod(k wire.MethodKey, args []byte) error {
	m := wire.NewMethod(k)
	if m == nil {
		return wire.UnknownMethodError(k)
	}
	return wire.Errorf(wire.NotImplemented, "'"+k.String()+"' is not implemented yet").WithMethod(k.Class(), k.ID())
}

// handleContent handles a content header or body frame.
func (ch *channel) handleContent(f wire.Frame) error {
	if ch.state == channelClosing {
		return nil
	}
	switch {
	case f.Type == wire.FrameHeader && ch.content == awaitHeader,
		f.Type == wire.FrameBody && ch.content == awaitBody:
		return nil
	}
	return ch.unexpectedFrame(f.Type)
}

// unexpectedFrame is the error for a frame out of the method, header, body
// order.
func (ch *channel) unexpectedFrame(got uint8) error {
	switch ch.content {
	case awaitHeader:
		return wire.Errorf(wire.UnexpectedFrame, "expected content header for class "+
			strconv.Itoa(int(ch.pending.Class()))+", got non content header frame instead").WithMethod(ch.pending.Class(), ch.pending.ID())
	case awaitBody:
		return wire.Errorf(wire.UnexpectedFrame, "expected content body, got non content body frame instead").WithMethod(ch.pending.Class(), ch.pending.ID())
	}
	return wire.Errorf(wire.UnexpectedFrame, "expected method frame, got non method frame instead")
}
