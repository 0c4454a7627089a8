package auth

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"github.com/warrenmq/warren/pattern"
)

// Access is what an operation does to a resource, as RabbitMQ's
// permissions divide it.
type Access uint8

// The kinds of access.
const (
	// Configure creates, deletes or changes a resource.
	Configure Access = iota
	// Write puts messages into a resource.
	Write
	// Read takes messages out of a resource.
	Read
)

// Permission is a user's access to one virtual host: regular expressions
// over resource names, as in RabbitMQ. A name is allowed when the pattern
// matches somewhere in it (unanchored, as Erlang's re:run); an empty
// pattern allows nothing.
type Permission struct {
	VHost     string `json:"vhost"`
	User      string `json:"user"`
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`

	compiled [3]*pattern.Pattern // by Access
}

// TopicPermission restricts the routing keys a user may publish with
// (Write) and bind with (Read) on one topic exchange of a virtual host.
// The patterns may hold {username} and {vhost}, replaced before matching.
type TopicPermission struct {
	VHost    string `json:"vhost"`
	User     string `json:"user"`
	Exchange string `json:"exchange"`
	Write    string `json:"write"`
	Read     string `json:"read"`

	compiled [3]*pattern.Pattern // Write and Read, expanded; nil if the expansion does not compile
}

// compilePattern compiles a permission pattern ("" allows nothing).
func compilePattern(p string) (*pattern.Pattern, error) {
	if p == "" {
		p = "^$"
	}
	return pattern.Compile(p)
}

func (p *Permission) compile() error {
	var errs [3]error
	for i, pat := range [3]string{p.Configure, p.Write, p.Read} {
		p.compiled[i], errs[i] = compilePattern(pat)
	}
	return errors.Join(errs[:]...)
}

// compile checks the patterns as written and compiles them with the
// variables filled in (as they are, unquoted, as RabbitMQ does): the
// permission's user and vhost are those it is looked up by, so the
// expansion is the same for every check.
func (p *TopicPermission) compile() error {
	expand := strings.NewReplacer("{username}", p.User, "{vhost}", p.VHost)
	var errs []error
	for _, a := range []Access{Write, Read} {
		raw := p.Write
		if a == Read {
			raw = p.Read
		}
		if _, err := compilePattern(raw); err != nil {
			errs = append(errs, err)
			continue
		}
		p.compiled[a], _ = compilePattern(expand.Replace(raw)) // nil allows nothing
	}
	return errors.Join(errs...)
}

// SetPermission grants user the given configure, write and read patterns
// on vhost, replacing what it had there.
func (s *Store) SetPermission(vhost, user, configure, write, read string) error {
	if s.replicated() {
		p := &Permission{Configure: configure, Write: write, Read: read}
		if err := p.compile(); err != nil {
			return err
		}
		return s.replicate(command{Op: opSetPerm, VHost: vhost, Name: user, Configure: configure, Write: write, Read: read})
	}
	return s.setPermission(vhost, user, configure, write, read)
}

func (s *Store) setPermission(vhost, user, configure, write, read string) error {
	p := &Permission{VHost: vhost, User: user, Configure: configure, Write: write, Read: read}
	if err := p.compile(); err != nil {
		return err
	}
	return s.grant(user, kindPermission, recordKey(vhost, user), p, func() { s.putPermissionLocked(p) })
}

// grant stores the record of a permission or topic permission of user,
// who must exist, and then installs it.
func (s *Store) grant(user string, kind byte, key string, record any, install func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[user] == nil {
		return ErrNoUser
	}
	if err := s.put(kind, key, record); err != nil {
		return err
	}
	install()
	return nil
}

func (s *Store) putPermissionLocked(p *Permission) {
	s.gen.Add(1)
	if s.perms[p.VHost] == nil {
		s.perms[p.VHost] = map[string]*Permission{}
	}
	s.perms[p.VHost][p.User] = p
}

// ClearPermission takes away user's permissions on vhost.
func (s *Store) ClearPermission(vhost, user string) error {
	if s.replicated() {
		return s.replicate(command{Op: opClearPerm, VHost: vhost, Name: user})
	}
	return s.clearPermission(vhost, user)
}

func (s *Store) clearPermission(vhost, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clearPermissionLocked(vhost, user)
}

func (s *Store) clearPermissionLocked(vhost, user string) error {
	if err := s.drop(kindPermission, recordKey(vhost, user)); err != nil {
		return err
	}
	s.gen.Add(1)
	delete(s.perms[vhost], user)
	if len(s.perms[vhost]) == 0 {
		delete(s.perms, vhost)
	}
	return nil
}

// Permission returns user's permission on vhost, or nil.
func (s *Store) Permission(vhost, user string) *Permission {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.perms[vhost][user]
}

// Permissions returns every permission, by virtual host then user.
func (s *Store) Permissions() []*Permission {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Permission
	for _, byUser := range s.perms {
		for _, p := range byUser {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *Permission) int { return cmp.Or(cmp.Compare(a.VHost, b.VHost), cmp.Compare(a.User, b.User)) })
	return out
}

// CanAccessVhost reports whether user has any permission on vhost.
func (s *Store) CanAccessVhost(user, vhost string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.perms[vhost][user] != nil
}

// Allowed reports whether user may have access a to the resource named
// name (an exchange or a queue) in vhost.
func (s *Store) Allowed(user, vhost string, a Access, name string) bool {
	s.mu.RLock()
	p := s.perms[vhost][user]
	s.mu.RUnlock()
	return p != nil && p.compiled[a].Match(name)
}

// SetTopicPermission restricts user's routing keys on exchange in vhost.
func (s *Store) SetTopicPermission(vhost, user, exchange, write, read string) error {
	if s.replicated() {
		p := &TopicPermission{VHost: vhost, User: user, Exchange: exchange, Write: write, Read: read}
		if err := p.compile(); err != nil {
			return err
		}
		return s.replicate(command{Op: opSetTopic, VHost: vhost, Name: user, Exchange: exchange, Write: write, Read: read})
	}
	return s.setTopicPermission(vhost, user, exchange, write, read)
}

func (s *Store) setTopicPermission(vhost, user, exchange, write, read string) error {
	p := &TopicPermission{VHost: vhost, User: user, Exchange: exchange, Write: write, Read: read}
	if err := p.compile(); err != nil {
		return err
	}
	return s.grant(user, kindTopic, recordKey(vhost, user, exchange), p, func() { s.putTopicLocked(p) })
}

func (s *Store) putTopicLocked(p *TopicPermission) {
	s.gen.Add(1)
	if s.topics[p.VHost] == nil {
		s.topics[p.VHost] = map[string]map[string]*TopicPermission{}
	}
	if s.topics[p.VHost][p.User] == nil {
		s.topics[p.VHost][p.User] = map[string]*TopicPermission{}
	}
	s.topics[p.VHost][p.User][p.Exchange] = p
}

// ClearTopicPermission removes user's topic permission on exchange in
// vhost, or on every exchange when exchange is "".
func (s *Store) ClearTopicPermission(vhost, user, exchange string) error {
	if s.replicated() {
		return s.replicate(command{Op: opClearTopic, VHost: vhost, Name: user, Exchange: exchange})
	}
	return s.clearTopicPermission(vhost, user, exchange)
}

func (s *Store) clearTopicPermission(vhost, user, exchange string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for x := range s.topics[vhost][user] {
		if exchange == "" || x == exchange {
			errs = append(errs, s.clearTopicLocked(vhost, user, x))
		}
	}
	return errors.Join(errs...)
}

func (s *Store) clearTopicLocked(vhost, user, exchange string) error {
	if err := s.drop(kindTopic, recordKey(vhost, user, exchange)); err != nil {
		return err
	}
	s.gen.Add(1)
	delete(s.topics[vhost][user], exchange)
	if len(s.topics[vhost][user]) == 0 {
		delete(s.topics[vhost], user)
	}
	if len(s.topics[vhost]) == 0 {
		delete(s.topics, vhost)
	}
	return nil
}

// TopicPermissions returns every topic permission, by virtual host, user
// and exchange.
func (s *Store) TopicPermissions() []*TopicPermission {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*TopicPermission
	for _, byUser := range s.topics {
		for _, byX := range byUser {
			for _, p := range byX {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b *TopicPermission) int {
		return cmp.Or(cmp.Compare(a.VHost, b.VHost), cmp.Compare(a.User, b.User), cmp.Compare(a.Exchange, b.Exchange))
	})
	return out
}

// TopicAllowed reports whether user may use routingKey with access a
// (Write to publish, Read to bind) on the topic exchange named exchange in
// vhost: yes, unless a topic permission on that exchange does not match
// it.
func (s *Store) TopicAllowed(user, vhost, exchange string, a Access, routingKey string) bool {
	s.mu.RLock()
	p := s.topics[vhost][user][exchange]
	s.mu.RUnlock()
	if p == nil {
		return true
	}
	re := p.compiled[a]
	return re != nil && re.Match(routingKey)
}
