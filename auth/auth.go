// Package auth holds Warren's users, their password hashes and tags, and
// their permissions on virtual hosts (configure, write and read patterns,
// and topic permissions), checks logins against them and answers whether
// an operation is allowed. With a definition store it keeps all of it
// across restarts.
//
// Password hashes follow RabbitMQ's schemes (rabbit_password_hashing_sha256
// by default, sha512 and md5 accepted): a 4-byte random salt followed by the
// digest of salt || password, so hashes move between Warren and RabbitMQ in
// definitions files.
package auth

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
)

// Errors returned by Store.
var (
	// ErrRefused is returned for an unknown user, a wrong password, or a
	// loopback-only user logging in from elsewhere. Callers must not tell
	// the peer which.
	ErrRefused = errors.New("login refused")
	// ErrNoUser is returned for an operation on a user that does not exist.
	ErrNoUser = errors.New("no such user")
)

// The user tags RabbitMQ's management plugin knows; they decide what a
// user may do over the management API.
const (
	TagAdministrator = "administrator"
	TagMonitoring    = "monitoring"
	TagPolicymaker   = "policymaker"
	TagManagement    = "management"
	TagImpersonator  = "impersonator"
)

// User is a broker user. A User is never changed once stored: a change
// stores a new one.
type User struct {
	Name             string   `json:"name"`
	PasswordHash     []byte   `json:"password_hash"`
	HashingAlgorithm string   `json:"hashing_algorithm"`
	Tags             []string `json:"tags"`
	// Limits are the user's max-connections and max-channels, when set
	// (see SetUserLimit); read-only, like the rest.
	Limits map[string]int64 `json:"limits,omitempty"`
}

// HasTag reports whether the user has tag.
func (u *User) HasTag(tag string) bool { return slices.Contains(u.Tags, tag) }

// DefinitionStore is where the store keeps users and permissions: records
// in namespaces under keys, each write durable before it returns.
// persistence.Store implements it.
type DefinitionStore interface {
	PutDefinition(kind byte, key string, value []byte) error
	DeleteDefinition(kind byte, key string) error
	Definitions(kind byte, fn func(key string, value []byte) error) error
}

// Definition kinds in the store (the virtual hosts' kinds are lower-case
// letters). Values are JSON; keys of permissions are JSON arrays of their
// parts, since names may hold any byte.
const (
	kindUser       byte = 'U' // key: user name
	kindPermission byte = 'P' // key: [vhost, user]
	kindTopic      byte = 'T' // key: [vhost, user, exchange]
	kindSeeded     byte = 'S' // key "": the default user was created once
)

// Store holds users and permissions. It is safe for concurrent use.
type Store struct {
	defs DefinitionStore

	mu       sync.RWMutex
	users    map[string]*User
	perms    map[string]map[string]*Permission                 // vhost -> user -> permission
	topics   map[string]map[string]map[string]*TopicPermission // vhost -> user -> exchange -> permission
	loopback []string                                          // users who may log in only from loopback addresses
	gen      atomic.Uint64                                     // changes with every permission change
	seeded   bool                                              // this is the first start
	repl     Replicator                                        // nil: changes are this node's alone
	// clusterSeeded: the cluster's default user was made (Seed).
	clusterSeeded bool
}

// FirstStart reports whether the node is starting for the first time (no
// earlier start recorded one): New made the default user, when there is
// one, and the broker makes the default virtual host.
func (s *Store) FirstStart() bool { return s.seeded }

// Generation changes whenever a permission or topic permission does: a
// caller may keep an answer of Allowed or TopicAllowed while it is the
// same.
func (s *Store) Generation() uint64 { return s.gen.Load() }

// Config configures a Store.
type Config struct {
	// Definitions keeps users and permissions; nil keeps them in memory.
	Definitions DefinitionStore
	// DefaultUser is created, an administrator with full permissions on
	// DefaultVhost, on a node's first start (an empty store), as RabbitMQ
	// creates guest.
	DefaultUser  string
	DefaultPass  string
	DefaultVhost string
	// LoopbackUsers may log in only from loopback addresses (RabbitMQ's
	// loopback_users; by default ["guest"]).
	LoopbackUsers []string
	// Replicator, when set, orders every change through the cluster's
	// metadata group; the store then starts empty (the cluster's commands
	// fill it) and the broker makes the default user with Seed.
	Replicator Replicator
}

// New returns a Store with what the definition store holds, and the
// default user on a first start.
func New(cfg Config) (*Store, error) {
	s := &Store{
		defs:     cfg.Definitions,
		users:    map[string]*User{},
		perms:    map[string]map[string]*Permission{},
		topics:   map[string]map[string]map[string]*TopicPermission{},
		loopback: slices.Clone(cfg.LoopbackUsers),
		repl:     cfg.Replicator,
	}
	if s.repl != nil {
		return s, nil
	}
	seeded, err := s.load()
	if err != nil {
		return nil, fmt.Errorf("loading users and permissions: %w", err)
	}
	if seeded {
		return s, nil
	}
	if cfg.DefaultUser != "" {
		if err := s.PutUser(&User{Name: cfg.DefaultUser, PasswordHash: HashPassword(cfg.DefaultPass), HashingAlgorithm: HashSHA256,
			Tags: []string{TagAdministrator}}); err != nil {
			return nil, err
		}
		if err := s.SetPermission(cfg.DefaultVhost, cfg.DefaultUser, ".*", ".*", ".*"); err != nil {
			return nil, err
		}
	}
	// The first start is over (the broker makes the default vhost on it)
	// with a default user or without one.
	if s.defs != nil {
		if err := s.defs.PutDefinition(kindSeeded, "", nil); err != nil {
			return nil, err
		}
	}
	s.seeded = true
	return s, nil
}

// load reads the stored users and permissions; seeded reports whether the
// default user was created before.
func (s *Store) load() (seeded bool, err error) {
	if s.defs == nil {
		return false, nil
	}
	err = s.defs.Definitions(kindSeeded, func(string, []byte) error { seeded = true; return nil })
	if err != nil {
		return false, err
	}
	err = s.defs.Definitions(kindUser, func(_ string, v []byte) error {
		var u User
		if err := json.Unmarshal(v, &u); err != nil {
			return err
		}
		s.users[u.Name] = &u
		return nil
	})
	if err != nil {
		return false, err
	}
	err = s.defs.Definitions(kindPermission, func(k string, v []byte) error {
		var p Permission
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		if err := p.compile(); err != nil {
			return err
		}
		s.putPermissionLocked(&p)
		return nil
	})
	if err != nil {
		return false, err
	}
	err = s.defs.Definitions(kindTopic, func(k string, v []byte) error {
		var p TopicPermission
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		if err := p.compile(); err != nil {
			return err
		}
		s.putTopicLocked(&p)
		return nil
	})
	// Users stored without the marker: a node that started before the
	// marker was written without a default user.
	return seeded || len(s.users) > 0, err
}

// put stores a record as JSON (nothing without a definition store).
func (s *Store) put(kind byte, key string, rec any) error {
	if s.defs == nil {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.defs.PutDefinition(kind, key, b)
}

func (s *Store) drop(kind byte, key string) error {
	if s.defs == nil {
		return nil
	}
	return s.defs.DeleteDefinition(kind, key)
}

// recordKey is the key of a record named by parts.
func recordKey(parts ...string) string {
	b, _ := json.Marshal(parts)
	return string(b)
}

// PutUser creates or replaces a user (whose hashing algorithm must be
// known) and stores it. A user replaced keeps its limits unless u sets
// some.
func (s *Store) PutUser(u *User) error {
	if s.replicated() {
		if !KnownHashing(u.HashingAlgorithm) {
			return fmt.Errorf("unknown password hashing algorithm %q", u.HashingAlgorithm)
		}
		return s.replicate(command{Op: opPutUser, User: u})
	}
	return s.putUser(u)
}

func (s *Store) putUser(u *User) error {
	if !KnownHashing(u.HashingAlgorithm) {
		return fmt.Errorf("unknown password hashing algorithm %q", u.HashingAlgorithm)
	}
	u = &User{Name: u.Name, PasswordHash: slices.Clone(u.PasswordHash), HashingAlgorithm: u.HashingAlgorithm,
		Tags: slices.Clone(u.Tags), Limits: maps.Clone(u.Limits)}
	if u.HashingAlgorithm == "" {
		u.HashingAlgorithm = HashSHA256
	}
	if u.Tags == nil {
		u.Tags = []string{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.users[u.Name]; old != nil && u.Limits == nil {
		u.Limits = old.Limits
	}
	if err := s.put(kindUser, u.Name, u); err != nil {
		return err
	}
	s.users[u.Name] = u
	return nil
}

// DeleteUser removes a user and every permission it has.
func (s *Store) DeleteUser(name string) error {
	if s.replicated() {
		return s.replicate(command{Op: opDeleteUser, Name: name})
	}
	return s.deleteUser(name)
}

func (s *Store) deleteUser(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[name] == nil {
		return ErrNoUser
	}
	// The first failure stops it, the user still there: what memory
	// holds stays what the store holds.
	for vhost, byUser := range s.perms {
		if byUser[name] != nil {
			if err := s.clearPermissionLocked(vhost, name); err != nil {
				return err
			}
		}
	}
	for vhost, byUser := range s.topics {
		for x := range byUser[name] {
			if err := s.clearTopicLocked(vhost, name, x); err != nil {
				return err
			}
		}
	}
	if err := s.drop(kindUser, name); err != nil {
		return err
	}
	delete(s.users, name)
	return nil
}

// ForgetFirstStart erases the record that the node started before, for a
// node reset to join a cluster (whose start then makes no default user).
func (s *Store) ForgetFirstStart() error { return s.drop(kindSeeded, "") }

// User returns the named user, or nil.
func (s *Store) User(name string) *User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.users[name]
}

// Users returns every user, sorted by name.
func (s *Store) Users() []*User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := slices.Collect(maps.Values(s.users))
	slices.SortFunc(out, func(a, b *User) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Authenticate checks a user name and password from a peer at remote. A
// blank password never logs in, whatever the user's hash, as on RabbitMQ.
func (s *Store) Authenticate(name, password string, remote net.Addr) (*User, error) {
	if password == "" {
		return nil, ErrRefused
	}
	s.mu.RLock()
	u := s.users[name]
	loopbackOnly := slices.Contains(s.loopback, name)
	s.mu.RUnlock()
	if u == nil {
		// Hash anyway, so that an unknown name takes as long to refuse as
		// a wrong password and the time does not tell which names exist.
		passwordMatches(HashSHA256, unknownUserHash, password)
		return nil, ErrRefused
	}
	if loopbackOnly && !isLoopback(remote) || !passwordMatches(u.HashingAlgorithm, u.PasswordHash, password) {
		return nil, ErrRefused
	}
	return u, nil
}

// AuthenticateExternal admits the user a verified client certificate
// names (SASL EXTERNAL): no password is checked, but the user must exist,
// and a loopback-only user must connect from the loopback interface.
func (s *Store) AuthenticateExternal(name string, remote net.Addr) (*User, error) {
	s.mu.RLock()
	u := s.users[name]
	loopbackOnly := slices.Contains(s.loopback, name)
	s.mu.RUnlock()
	if u == nil || loopbackOnly && !isLoopback(remote) {
		return nil, ErrRefused
	}
	return u, nil
}

// unknownUserHash is what a password is checked against for a user that
// does not exist.
var unknownUserHash = HashPassword("no user has this password")

// DeleteVhost forgets every permission on vhost (a deleted virtual host).
func (s *Store) DeleteVhost(vhost string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for user := range s.perms[vhost] {
		errs = append(errs, s.clearPermissionLocked(vhost, user))
	}
	for user, byX := range s.topics[vhost] {
		for x := range byX {
			errs = append(errs, s.clearTopicLocked(vhost, user, x))
		}
	}
	return errors.Join(errs...)
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	// Pipes and unix sockets are local.
	return a == nil || a.Network() != "tcp"
}
