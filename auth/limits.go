package auth

import (
	"fmt"
	"maps"
	"slices"
)

// User limits, as RabbitMQ names them: how many connections, and how many
// channels over all its connections, a user may have open at once.
const (
	LimitConnections = "max-connections"
	LimitChannels    = "max-channels"
)

// SetUserLimit sets one of a user's limits (LimitConnections or
// LimitChannels). A negative value means no limit, 0 allows none, as on
// RabbitMQ. The limits are kept in the user's record.
func (s *Store) SetUserLimit(user, name string, value int64) error {
	if name != LimitConnections && name != LimitChannels {
		return fmt.Errorf("unknown user limit %q: %s and %s are", name, LimitConnections, LimitChannels)
	}
	if s.replicated() {
		return s.replicate(command{Op: opSetLimit, Name: user, Limit: name, Value: value})
	}
	return s.editLimits(user, func(l map[string]int64) { l[name] = value })
}

// ClearUserLimit removes one of a user's limits, or all of them when
// name is "all".
func (s *Store) ClearUserLimit(user, name string) error {
	if s.replicated() {
		return s.replicate(command{Op: opClearLimit, Name: user, Limit: name})
	}
	return s.clearUserLimit(user, name)
}

func (s *Store) clearUserLimit(user, name string) error {
	return s.editLimits(user, func(l map[string]int64) {
		if name == "all" {
			clear(l)
		} else {
			delete(l, name)
		}
	})
}

// editLimits stores the user again with its limits changed by edit.
func (s *Store) editLimits(user string, edit func(map[string]int64)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	if u == nil {
		return ErrNoUser
	}
	n := *u
	n.Limits = maps.Clone(u.Limits)
	if n.Limits == nil {
		n.Limits = map[string]int64{}
	}
	edit(n.Limits)
	if len(n.Limits) == 0 {
		n.Limits = nil
	}
	if err := s.put(kindUser, n.Name, &n); err != nil {
		return err
	}
	s.users[user] = &n
	return nil
}

// UserLimit returns one of a user's limits; ok is false when it has none
// (or a negative one).
func (s *Store) UserLimit(user, name string) (limit int64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[user]
	if u == nil {
		return 0, false
	}
	limit, ok = u.Limits[name]
	return limit, ok && limit >= 0
}

// UsersWithLimits returns the users that have limits, sorted by name.
func (s *Store) UsersWithLimits() []*User {
	return slices.DeleteFunc(s.Users(), func(u *User) bool { return len(u.Limits) == 0 })
}
