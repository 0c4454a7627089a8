package auth

import (
	"errors"
	"net"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s, err := New(Config{DefaultUser: "guest", DefaultPass: "guest", DefaultVhost: "/", LoopbackUsers: []string{"guest"}})
	if err != nil {
		t.Fatal(err)
	}
	s.PutUser("bob", HashPassword("secret"), nil)
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := s.Authenticate(tt.user, tt.pass, tt.from)
			if tt.ok && (err != nil || u.Name != tt.user) {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v, want ErrRefused", err)
			}
		})
	}
	if !s.CanAccessVhost("guest", "/") || s.CanAccessVhost("bob", "/") || s.CanAccessVhost("guest", "other") {
		t.Error("vhost access")
	}
}

func TestHashFormat(t *testing.T) {
	t.Parallel()
	h := HashPassword("pw")
	if len(h) != 4+32 {
		t.Fatalf("hash length %d, want 36 (salt + sha256)", len(h))
	}
	if string(hashWithSalt(h[:4], "pw")) != string(h) {
		t.Fatal("rehash with the same salt differs")
	}
}
