package amqp

import (
	"strconv"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// timeoutCheckInterval is how often deliveries are checked against their
// acknowledgement deadlines (RabbitMQ checks once a minute; Warren's check
// is cheap, so it can afford a finer one).
const timeoutCheckInterval = time.Second

// clockLoop keeps the server's coarse clock and checks acknowledgement
// deadlines, until stop closes.
func (s *Server) clockLoop(stop <-chan struct{}) {
	t := time.NewTicker(timeoutCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.clock.Store(now.UnixMilli())
			s.checkDeadlines(now.UnixMilli())
		}
	}
}

// nowMillis is the coarse clock deliveries are stamped with.
func (s *Server) nowMillis() int64 { return s.clock.Load() }

// checkDeadlines closes every channel holding a delivery past its
// acknowledgement deadline, with RabbitMQ's 406; the channel's deliveries
// go back to their queues.
func (s *Server) checkDeadlines(now int64) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		chans := c.channelList.Load()
		if chans == nil {
			continue
		}
		for _, ch := range *chans {
			ch.mu.Lock()
			d, late := ch.unacked.overdue(now)
			var timeout int64
			if late {
				timeout = d.timeout
			}
			ch.mu.Unlock()
			if late {
				ch.failGivingBack(wire.Errorf(wire.PreconditionFailed, "delivery acknowledgement on channel "+strconv.Itoa(int(ch.id))+
					" timed out. Timeout value used: "+strconv.FormatInt(timeout, 10)+
					" ms. This timeout value can be configured, see consumers doc guide to learn more"), queue.Release)
			}
		}
	}
}
