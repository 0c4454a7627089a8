package auth

import (
	"errors"
	"net"
	"testing"
)

// User limits are kept in the user's record: they survive a restart and
// a password change, and go with the user.
func TestUserLimits(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	s := newStore(t, st)
	if err := s.SetUserLimit("guest", LimitConnections, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUserLimit("guest", LimitChannels, -1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUserLimit("guest", "max-queues", 1); err == nil {
		t.Error("an unknown limit was set")
	}
	if err := s.SetUserLimit("nobody", LimitConnections, 1); !errors.Is(err, ErrNoUser) {
		t.Errorf("a limit for a missing user: %v", err)
	}
	check := func(s *Store, when string) {
		t.Helper()
		if n, ok := s.UserLimit("guest", LimitConnections); !ok || n != 3 {
			t.Errorf("%s: max-connections %d, %v", when, n, ok)
		}
		if _, ok := s.UserLimit("guest", LimitChannels); ok {
			t.Errorf("%s: a negative max-channels limits", when)
		}
	}
	check(s, "set")
	if err := s.PutUser(&User{Name: "guest", PasswordHash: HashPassword("new"), HashingAlgorithm: HashSHA256}); err != nil {
		t.Fatal(err)
	}
	check(s, "after a password change")
	check(newStore(t, st), "after a restart")
	if len(s.UsersWithLimits()) != 1 {
		t.Errorf("UsersWithLimits: %v", s.UsersWithLimits())
	}
	if err := s.ClearUserLimit("guest", "all"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.UserLimit("guest", LimitConnections); ok || len(s.UsersWithLimits()) != 0 {
		t.Error("limits left after clearing all")
	}
	if _, err := s.Authenticate("guest", "new", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Errorf("login after the limits changed: %v", err)
	}
}
