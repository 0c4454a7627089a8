package auth

import (
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"net"
	"reflect"
	"testing"

	"github.com/warrenmq/warren/persistence"
)

func newStore(t *testing.T, defs DefinitionStore) *Store {
	t.Helper()
	s, err := New(Config{Definitions: defs, DefaultUser: "guest", DefaultPass: "guest", DefaultVhost: "/", LoopbackUsers: []string{"guest"}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t *testing.T, dir string) *persistence.Store {
	t.Helper()
	o := persistence.DefaultOptions(dir)
	o.Sync, o.GCInterval = false, -1
	st, err := persistence.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	if err := s.PutUser(&User{Name: "bob", PasswordHash: HashPassword("secret")}); err != nil {
		t.Fatal(err)
	}
	// A SHA-512 hash as a RabbitMQ export carries it.
	salt := []byte{1, 2, 3, 4}
	sum := sha512.Sum512(append(append([]byte{}, salt...), "s3cret"...))
	imported, _ := base64.StdEncoding.DecodeString(base64.StdEncoding.EncodeToString(append(salt, sum[:]...)))
	if err := s.PutUser(&User{Name: "carol", PasswordHash: imported, HashingAlgorithm: HashSHA512}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(&User{Name: "nopass"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(&User{Name: "blank", PasswordHash: HashPassword("")}); err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	remote := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	tests := []struct {
		name, user, pass string
		from             net.Addr
		ok               bool
	}{
		{"guest from loopback", "guest", "guest", local, true},
		{"guest from remote", "guest", "guest", remote, false},
		{"wrong password", "guest", "nope", local, false},
		{"unknown user", "alice", "guest", local, false},
		{"other user from remote", "bob", "secret", remote, true},
		{"empty password", "bob", "", remote, false},
		{"sha512 hash", "carol", "s3cret", remote, true},
		{"sha512 wrong", "carol", "secret", remote, false},
		{"a user without a password", "nopass", "", local, false},
		{"a blank password, even the right one", "blank", "", local, false},
	}
	for _, tt := range tests {
		u, err := s.Authenticate(tt.user, tt.pass, tt.from)
		if tt.ok && (err != nil || u.Name != tt.user) {
			t.Errorf("%s: refused: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrRefused) {
			t.Errorf("%s: err = %v, want ErrRefused", tt.name, err)
		}
	}
	if !s.CanAccessVhost("guest", "/") || s.CanAccessVhost("bob", "/") || s.CanAccessVhost("guest", "other") {
		t.Error("vhost access")
	}
	if err := s.PutUser(&User{Name: "x", HashingAlgorithm: "rabbit_password_hashing_rot13"}); err == nil {
		t.Error("an unknown hashing algorithm was accepted")
	}
}

func TestHashFormat(t *testing.T) {
	t.Parallel()
	h := HashPassword("pw")
	if len(h) != 4+32 {
		t.Fatalf("hash length %d, want 36 (salt + sha256)", len(h))
	}
	if !passwordMatches(HashSHA256, h, "pw") || passwordMatches(HashSHA256, h, "pW") || passwordMatches(HashSHA512, h, "pw") {
		t.Fatal("hash check")
	}
}

// Patterns match anywhere in a name, as Erlang's re:run does; an empty
// pattern allows nothing.
func TestAllowed(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	if err := s.PutUser(&User{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPermission("/", "app", "^app-", "orders|^(?!amq\\.inv).*inv", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		a    Access
		name string
		want bool
	}{
		{Configure, "app-q", true},
		{Configure, "my-app-q", false},
		{Write, "orders", true},
		{Write, "new-orders-x", true},  // unanchored
		{Write, "invoices", true},      // lookahead, as Erlang's re
		{Write, "amq.invoices", false}, // refused by it
		{Write, "payments", false},
		{Read, "", true}, // "" stands for "^$", which the empty name matches
		{Read, "anything", false},
	}
	for _, tt := range tests {
		if got := s.Allowed("app", "/", tt.a, tt.name); got != tt.want {
			t.Errorf("Allowed(%d, %q) = %v", tt.a, tt.name, got)
		}
	}
	if s.Allowed("app", "other", Configure, "app-q") || s.Allowed("nobody", "/", Configure, "app-q") {
		t.Error("allowed without a permission")
	}
	if err := s.SetPermission("/", "app", "(", ".*", ".*"); err == nil {
		t.Error("a bad pattern was accepted")
	}
	if err := s.SetPermission("/", "ghost", ".*", ".*", ".*"); !errors.Is(err, ErrNoUser) {
		t.Errorf("permission for an unknown user: %v", err)
	}
}

func TestTopicAllowed(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	if err := s.SetTopicPermission("/", "guest", "amq.topic", "^{username}\\.", "^public\\."); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		exchange string
		a        Access
		key      string
		want     bool
	}{
		{"amq.topic", Write, "guest.orders", true},
		{"amq.topic", Write, "other.orders", false},
		{"amq.topic", Read, "public.news", true},
		{"amq.topic", Read, "guest.orders", false},
		{"other.topic", Write, "anything", true}, // no topic permission there
	}
	for _, tt := range tests {
		if got := s.TopicAllowed("guest", "/", tt.exchange, tt.a, tt.key); got != tt.want {
			t.Errorf("TopicAllowed(%s, %d, %q) = %v", tt.exchange, tt.a, tt.key, got)
		}
	}
	// A user name that makes the expanded pattern invalid allows nothing.
	if err := s.PutUser(&User{Name: "a(b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTopicPermission("/", "a(b", "amq.topic", "^{username}", ".*"); err != nil {
		t.Fatal(err)
	}
	if s.TopicAllowed("a(b", "/", "amq.topic", Write, "a(b.x") || !s.TopicAllowed("a(b", "/", "amq.topic", Read, "x") {
		t.Error("an expansion that does not compile must refuse, and only where it is used")
	}
	if err := s.ClearTopicPermission("/", "a(b", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearTopicPermission("/", "guest", ""); err != nil {
		t.Fatal(err)
	}
	if !s.TopicAllowed("guest", "/", "amq.topic", Write, "other.orders") || len(s.TopicPermissions()) != 0 {
		t.Error("cleared topic permissions still apply")
	}
}

// Users and permissions survive a restart; the default user is created on
// the first start only, so one deleted stays deleted.
func TestStoredAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := openStore(t, dir)
	s := newStore(t, st)
	if err := s.PutUser(&User{Name: "app", PasswordHash: HashPassword("pw"), Tags: []string{TagMonitoring}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPermission("prod", "app", "", "x", "q"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTopicPermission("prod", "app", "amq.topic", "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("guest"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	s = newStore(t, openStore(t, dir))
	if s.User("guest") != nil {
		t.Fatal("the deleted default user came back")
	}
	u := s.User("app")
	if u == nil || !u.HasTag(TagMonitoring) {
		t.Fatalf("user after restart: %+v", u)
	}
	if _, err := s.Authenticate("app", "pw", nil); err != nil {
		t.Fatal("the stored user cannot log in")
	}
	p := s.Permission("prod", "app")
	if p == nil || p.Configure != "" || p.Write != "x" || !s.Allowed("app", "prod", Read, "q") {
		t.Fatalf("permission after restart: %+v", p)
	}
	if got := s.TopicPermissions(); len(got) != 1 || got[0].Exchange != "amq.topic" || s.TopicAllowed("app", "prod", "amq.topic", Write, "z") {
		t.Fatalf("topic permissions after restart: %+v", got)
	}
	if err := s.DeleteVhost("prod"); err != nil {
		t.Fatal(err)
	}
	if len(s.Permissions()) != 0 || len(s.TopicPermissions()) != 0 {
		t.Fatal("a deleted vhost's permissions remain")
	}
}

func TestDeleteUserTakesItsPermissions(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	if err := s.SetTopicPermission("/", "guest", "t", ".*", ".*"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("guest"); err != nil {
		t.Fatal(err)
	}
	if got := s.Permissions(); len(got) != 0 {
		t.Fatalf("permissions left: %+v", got)
	}
	if !reflect.DeepEqual(s.TopicPermissions(), []*TopicPermission(nil)) {
		t.Fatal("topic permissions left")
	}
	if err := s.DeleteUser("guest"); !errors.Is(err, ErrNoUser) {
		t.Fatalf("second delete: %v", err)
	}
}

// Without a default user, the first start is still the first start (the
// broker makes the default vhost on it), and only it.
func TestFirstStartWithoutDefaultUser(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	for i, want := range []bool{true, false} {
		s, err := New(Config{Definitions: st, DefaultVhost: "/"})
		if err != nil {
			t.Fatal(err)
		}
		if s.FirstStart() != want || len(s.Users()) != 0 {
			t.Fatalf("start %d: FirstStart() = %v with %d users, want %v and none", i+1, s.FirstStart(), len(s.Users()), want)
		}
	}
}
