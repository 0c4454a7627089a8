package amqp

import (
	"sync/atomic"
)

// MessageStats are message counters, in RabbitMQ's message_stats terms:
// what a channel (or the whole server) has seen since it opened.
type MessageStats struct {
	// Publish counts messages received from publishers, PublishConfirmMode
	// those of them published in confirm mode; Confirm those confirmed to
	// them (basic.ack, each message once).
	Publish, PublishConfirmMode, Confirm uint64
	// Routed counts published messages that reached at least one queue;
	// ReturnUnroutable those returned for want of a queue (mandatory),
	// DropUnroutable those dropped for want of one.
	Routed, ReturnUnroutable, DropUnroutable uint64
	// Deliver and DeliverNoAck count deliveries to consumers that
	// acknowledge and that do not; Get and GetNoAck basic.get's the same
	// way; Redeliver those of them flagged redelivered.
	Deliver, DeliverNoAck, Get, GetNoAck, Redeliver uint64
	// Ack counts deliveries acknowledged.
	Ack uint64
}

// add adds o's counts to s.
func (s *MessageStats) add(o MessageStats) {
	s.Publish += o.Publish
	s.PublishConfirmMode += o.PublishConfirmMode
	s.Confirm += o.Confirm
	s.Routed += o.Routed
	s.ReturnUnroutable += o.ReturnUnroutable
	s.DropUnroutable += o.DropUnroutable
	s.Deliver += o.Deliver
	s.DeliverNoAck += o.DeliverNoAck
	s.Get += o.Get
	s.GetNoAck += o.GetNoAck
	s.Redeliver += o.Redeliver
	s.Ack += o.Ack
}

// counters are MessageStats that several goroutines add to (the channel's
// reader, the goroutines that deliver to its consumers, the store's
// committer confirming) while another reads them.
type counters struct {
	publish, publishConfirmMode, confirm                 atomic.Uint64
	routed, returnUnroutable, dropUnroutable             atomic.Uint64
	deliver, deliverNoAck, get, getNoAck, redeliver, ack atomic.Uint64
}

func (c *counters) snapshot() MessageStats {
	return MessageStats{
		Publish: c.publish.Load(), PublishConfirmMode: c.publishConfirmMode.Load(), Confirm: c.confirm.Load(),
		Routed: c.routed.Load(), ReturnUnroutable: c.returnUnroutable.Load(), DropUnroutable: c.dropUnroutable.Load(),
		Deliver: c.deliver.Load(), DeliverNoAck: c.deliverNoAck.Load(), Get: c.get.Load(), GetNoAck: c.getNoAck.Load(),
		Redeliver: c.redeliver.Load(), Ack: c.ack.Load(),
	}
}

// addTo adds the counts to t (a closing channel's to the server's).
func (c *counters) addTo(t *counters) {
	s := c.snapshot()
	t.publish.Add(s.Publish)
	t.publishConfirmMode.Add(s.PublishConfirmMode)
	t.confirm.Add(s.Confirm)
	t.routed.Add(s.Routed)
	t.returnUnroutable.Add(s.ReturnUnroutable)
	t.dropUnroutable.Add(s.DropUnroutable)
	t.deliver.Add(s.Deliver)
	t.deliverNoAck.Add(s.DeliverNoAck)
	t.get.Add(s.Get)
	t.getNoAck.Add(s.GetNoAck)
	t.redeliver.Add(s.Redeliver)
	t.ack.Add(s.Ack)
}

// countDelivery counts one delivery (get when it answers basic.get).
func (c *counters) countDelivery(get, noAck, redelivered bool) {
	switch {
	case get && noAck:
		c.getNoAck.Add(1)
	case get:
		c.get.Add(1)
	case noAck:
		c.deliverNoAck.Add(1)
	default:
		c.deliver.Add(1)
	}
	if redelivered {
		c.redeliver.Add(1)
	}
}

// Totals are the server's counters since it started: the message counts of
// every channel, open or closed, and what opened and closed.
type Totals struct {
	MessageStats
	ConnectionsOpened, ConnectionsClosed uint64
	ChannelsOpened, ChannelsClosed       uint64
	// AuthSucceeded and AuthFailed count logins.
	AuthSucceeded, AuthFailed uint64
	// RecvOct and SendOct are the bytes read from and written to clients.
	RecvOct, SendOct uint64
}

// serverTotals are what the server keeps of closed channels and
// connections (the open ones count themselves). A channel or connection
// hands its counts over under the server's lock, in the same step that
// takes it off the lists Totals reads, so that no total ever goes back.
type serverTotals struct {
	closed                               counters
	connectionsOpened, connectionsClosed atomic.Uint64
	channelsOpened, channelsClosed       atomic.Uint64
	authSucceeded, authFailed            atomic.Uint64
	recvOct, sendOct                     atomic.Uint64 // of closed connections
}

// Totals returns the server's counters.
func (s *Server) Totals() Totals {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := Totals{
		MessageStats:      s.totals.closed.snapshot(),
		ConnectionsOpened: s.totals.connectionsOpened.Load(),
		ConnectionsClosed: s.totals.connectionsClosed.Load(),
		ChannelsOpened:    s.totals.channelsOpened.Load(),
		ChannelsClosed:    s.totals.channelsClosed.Load(),
		AuthSucceeded:     s.totals.authSucceeded.Load(),
		AuthFailed:        s.totals.authFailed.Load(),
		RecvOct:           s.totals.recvOct.Load(),
		SendOct:           s.totals.sendOct.Load(),
	}
	for c := range s.conns {
		t.RecvOct += c.bytesIn.Load()
		t.SendOct += c.bytesOut.Load()
		for _, ch := range c.openChannels() {
			t.MessageStats.add(ch.stats.snapshot())
		}
	}
	return t
}

// openChannels returns the connection's open channels (any goroutine).
func (c *conn) openChannels() []*channel {
	if l := c.channelList.Load(); l != nil {
		return *l
	}
	return nil
}

// channelClosed hands a closing channel's counts to the server as it goes
// off the connection's list (drop does that), and gives its user's
// channel back.
func (s *Server) channelClosed(ch *channel, drop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	drop()
	user := ch.conn.user.Name
	if s.channels[user]--; s.channels[user] <= 0 {
		delete(s.channels, user)
	}
	ch.stats.addTo(&s.totals.closed)
	s.totals.channelsClosed.Add(1)
}
