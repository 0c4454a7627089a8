package auth

import (
	"errors"
	"net"
	"reflect"
	"sync"
	"testing"
)

// sharedLog applies each command on every store, in the order Replicate is
// called, as the cluster's metadata group does; the proposer gets its own
// result.
type sharedLog struct {
	mu     sync.Mutex
	stores []*Store
}

type logMember struct {
	l *sharedLog
	i int
}

func (m logMember) Replicate(cmd []byte) (any, error) {
	m.l.mu.Lock()
	defer m.l.mu.Unlock()
	var mine any
	for i, s := range m.l.stores {
		if res := s.Apply(cmd); i == m.i {
			mine = res
		}
	}
	return mine, nil
}

func replicatedStores(t *testing.T, n int) []*Store {
	t.Helper()
	l := &sharedLog{}
	for i := range n {
		s, err := New(Config{Replicator: logMember{l, i}, LoopbackUsers: []string{"guest"}})
		if err != nil {
			t.Fatal(err)
		}
		l.stores = append(l.stores, s)
	}
	return l.stores
}

func state(s *Store) []any {
	return []any{s.Users(), s.Permissions(), s.TopicPermissions()}
}

func TestReplicatedUsersAgree(t *testing.T) {
	ss := replicatedStores(t, 2)
	a, b := ss[0], ss[1]
	first, err := a.Seed("guest", "guest", "/")
	if err != nil || !first {
		t.Fatalf("first seed: %v %v", first, err)
	}
	if first, err := b.Seed("guest", "other", "/"); err != nil || first {
		t.Fatalf("second seed: %v %v", first, err)
	}
	if _, err := b.Authenticate("guest", "guest", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatalf("b does not know guest's password: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.PutUser(&User{Name: "u", PasswordHash: HashPassword("p"), HashingAlgorithm: HashSHA256, Tags: []string{"management"}}))
	must(a.SetPermission("/", "u", "^u", ".*", ".*"))
	must(b.SetTopicPermission("/", "u", "amq.topic", "^a", "^b"))
	must(a.SetUserLimit("u", LimitConnections, 3))
	if err := a.SetPermission("/", "nobody", ".*", ".*", ".*"); !errors.Is(err, ErrNoUser) {
		t.Fatalf("permission for a missing user: %v", err)
	}
	if !reflect.DeepEqual(state(a), state(b)) {
		t.Fatalf("the stores disagree:\n%v\n%v", state(a), state(b))
	}
	if !b.Allowed("u", "/", Configure, "uq") || b.Allowed("u", "/", Configure, "q") {
		t.Fatal("b does not apply a's permission")
	}
	snap, err := a.Snapshot()
	must(err)
	c := replicatedStores(t, 1)[0]
	must(c.Restore(snap))
	if !reflect.DeepEqual(state(a), state(c)) {
		t.Fatalf("restored:\n%v\nwant\n%v", state(c), state(a))
	}
	if first, _ := c.Seed("x", "y", "/"); first {
		t.Fatal("a restored store seeded again")
	}
	must(a.DeleteUser("u"))
	if b.User("u") != nil || b.Permission("/", "u") != nil {
		t.Fatal("the user is still on b")
	}
}
