// Package auth holds Warren's users, their password hashes and their
// permissions on virtual hosts, and checks logins against them.
//
// Password hashes follow RabbitMQ's default scheme (rabbit_password_hashing_sha256):
// a 4-byte random salt followed by SHA-256(salt || password), so hashes move
// between Warren and RabbitMQ in definitions files.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"regexp"
	"slices"
	"sync"
)

// Errors returned by Store.
var (
	// ErrRefused is returned for an unknown user, a wrong password, or a
	// loopback-only user logging in from elsewhere. Callers must not tell
	// the peer which.
	ErrRefused = errors.New("login refused")
)

// User is a broker user.
type User struct {
	Name         string
	PasswordHash []byte
	Tags         []string
}

// Permission is a user's access to one virtual host: regular expressions
// over resource names, as in RabbitMQ.
type Permission struct {
	Configure, Write, Read string
	configure, write, read *regexp.Regexp
}

// Store holds users and permissions. It is safe for concurrent use.
type Store struct {
	mu       sync.RWMutex
	users    map[string]*User
	perms    map[string]map[string]*Permission // vhost -> user -> permission
	loopback []string                          // users who may log in only from loopback addresses
}

// Config configures a Store's initial contents.
type Config struct {
	DefaultUser   string   // created with full permissions on DefaultVhost
	DefaultPass   string   //
	DefaultVhost  string   // usually "/"
	LoopbackUsers []string // users allowed only from loopback (RabbitMQ's loopback_users; default ["guest"])
}

// New returns a Store with the default user.
func New(cfg Config) (*Store, error) {
	s := &Store{users: map[string]*User{}, perms: map[string]map[string]*Permission{}, loopback: slices.Clone(cfg.LoopbackUsers)}
	if cfg.DefaultUser != "" {
		s.PutUser(cfg.DefaultUser, HashPassword(cfg.DefaultPass), []string{"administrator"})
		if err := s.SetPermission(cfg.DefaultVhost, cfg.DefaultUser, ".*", ".*", ".*"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// HashPassword returns a salted SHA-256 hash of password in RabbitMQ's format.
func HashPassword(password string) []byte {
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	return hashWithSalt(salt, password)
}

func hashWithSalt(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(slices.Clone(salt))
}

// PutUser creates or replaces a user.
func (s *Store) PutUser(name string, passwordHash []byte, tags []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[name] = &User{Name: name, PasswordHash: passwordHash, Tags: tags}
}

// SetPermission grants user the given configure, write and read patterns on vhost.
func (s *Store) SetPermission(vhost, user, configure, write, read string) error {
	p := &Permission{Configure: configure, Write: write, Read: read}
	var err error
	if p.configure, err = regexp.Compile("^(?:" + configure + ")$"); err != nil {
		return err
	}
	if p.write, err = regexp.Compile("^(?:" + write + ")$"); err != nil {
		return err
	}
	if p.read, err = regexp.Compile("^(?:" + read + ")$"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perms[vhost] == nil {
		s.perms[vhost] = map[string]*Permission{}
	}
	s.perms[vhost][user] = p
	return nil
}

// Authenticate checks a user name and password from a peer at remote.
func (s *Store) Authenticate(name, password string, remote net.Addr) (*User, error) {
	s.mu.RLock()
	u := s.users[name]
	loopbackOnly := slices.Contains(s.loopback, name)
	s.mu.RUnlock()
	if u == nil || len(u.PasswordHash) < 4 {
		return nil, ErrRefused
	}
	if loopbackOnly && !isLoopback(remote) {
		return nil, ErrRefused
	}
	want := hashWithSalt(u.PasswordHash[:4], password)
	if subtle.ConstantTimeCompare(want, u.PasswordHash) != 1 {
		return nil, ErrRefused
	}
	return u, nil
}

// CanAccessVhost reports whether user has any permission on vhost.
func (s *Store) CanAccessVhost(user, vhost string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.perms[vhost][user] != nil
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	// Pipes and unix sockets are local.
	return a == nil || a.Network() != "tcp"
}
