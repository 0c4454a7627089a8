package amqp

import (
	"github.com/warrenmq/warren/amqp/wire"
)

// alarm is a resource alarm in force: why, and a channel closed when
// every alarm has cleared.
type alarm struct {
	reason  string
	cleared chan struct{}
}

// Connection flow states, as RabbitMQ's connection objects show them.
const (
	flowRunning  int32 = iota
	flowBlocking       // an alarm is set and the connection has published: it stops at its next publish
	flowBlocked        // its reader is held until the alarms clear
	flowCredit         // its reader waits for the store to take what it published ("flow")
)

// SetAlarm raises the node's resource alarm with reason (RabbitMQ's "low
// on memory", "low on disk"), or clears it when reason is "". While it is
// raised, a connection that publishes stops being read at its next
// basic.publish (TCP pushes back on the client) until it clears;
// consuming goes on. Clients that advertised the connection.blocked
// capability get one connection.blocked when they are publishers, and one
// connection.unblocked when every alarm has cleared. A raised alarm
// raised again keeps its first reason.
func (s *Server) SetAlarm(reason string) {
	s.mu.Lock()
	old := s.alarm.Load()
	var now *alarm
	switch {
	case reason != "" && old == nil:
		now = &alarm{reason: reason, cleared: make(chan struct{})}
		s.alarm.Store(now)
	case reason == "" && old != nil:
		s.alarm.Store(nil)
		close(old.cleared)
	default:
		s.mu.Unlock()
		return
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if now != nil {
			if c.published.Load() {
				c.flow.CompareAndSwap(flowRunning, flowBlocking)
				c.notifyBlocked(now.reason)
			}
		} else {
			c.notifyUnblocked()
		}
	}
}

// notifyBlocked sends connection.blocked, once per alarm, to a client
// that understands it.
func (c *conn) notifyBlocked(reason string) {
	if c.caps.connectionBlocked {
		c.setBlockedSent(true, &wire.ConnectionBlocked{Reason: reason})
	}
}

// notifyUnblocked sends connection.unblocked to a client that was told it
// was blocked.
func (c *conn) notifyUnblocked() {
	c.flow.CompareAndSwap(flowBlocking, flowRunning)
	c.setBlockedSent(false, &wire.ConnectionUnblocked{})
}

// setBlockedSent sends m when the client's blocked state changes to
// blocked. The check, the change and the send are one step under the
// output lock, so blocked and unblocked alternate on the wire and
// neither follows the server's connection.close.
func (c *conn) setBlockedSent(blocked bool, m wire.Method) {
	c.out.mu.Lock()
	send := c.blockedSent != blocked && !c.closeSent.Load()
	if send {
		c.blockedSent = blocked
		c.appendMethodLocked(0, m)
	}
	c.out.mu.Unlock()
	if send {
		c.out.kick()
	}
}

// holdForAlarm holds the reader, which has just read a basic.publish,
// while an alarm is in force (a is the one it saw), or until the server
// closes the connection. The client's heartbeats are not read meanwhile
// and do not count as missed. Confirms due from the frames before are
// sent first: the client may be waiting on them.
func (c *conn) holdForAlarm(a *alarm) {
	if len(c.dueConfirms) > 0 {
		c.flushBatch()
	}
	c.notifyBlocked(a.reason)
	c.flow.Store(flowBlocked)
	c.paused.Store(true)
	defer c.paused.Store(false)
	for a != nil {
		select {
		case <-a.cleared:
		case <-c.closing:
			return
		case <-c.writerDone:
			return
		}
		a = c.srv.alarm.Load()
	}
	c.flow.Store(flowRunning)
	c.notifyUnblocked()
}
