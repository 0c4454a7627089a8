package amqp

import (
	"strconv"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
)

// takeChannel counts a channel the user opens, refusing it (530, closing
// the connection, as RabbitMQ does) past the user's max-channels.
func (s *Server) takeChannel(user string) error {
	limit, limited := s.users.UserLimit(user, auth.LimitChannels)
	s.mu.Lock()
	defer s.mu.Unlock()
	if limited && int64(s.channels[user]) >= limit {
		return wire.Errorf(wire.NotAllowed, "number of channels opened for user '"+user+
			"' has reached the maximum allowed user limit of ("+strconv.FormatInt(limit, 10)+")")
	}
	s.channels[user]++
	return nil
}
