package auth

import (
	"encoding/json"
	"fmt"
)

// Replicator orders changes to users and permissions across a cluster:
// Replicate commits a command in the cluster's metadata group and returns
// what this node's Store.Apply returned for it, once it has applied it.
type Replicator interface {
	Replicate(cmd []byte) (any, error)
}

// command is a change to users and permissions, as the cluster carries it.
type command struct {
	Op        string `json:"op"`
	User      *User  `json:"user,omitempty"`
	Name      string `json:"name,omitempty"`
	VHost     string `json:"vhost,omitempty"`
	Exchange  string `json:"exchange,omitempty"`
	Configure string `json:"configure,omitempty"`
	Write     string `json:"write,omitempty"`
	Read      string `json:"read,omitempty"`
	Limit     string `json:"limit,omitempty"`
	Value     int64  `json:"value,omitempty"`
}

const (
	opPutUser      = "user.put"
	opDeleteUser   = "user.delete"
	opSetPerm      = "permission.set"
	opClearPerm    = "permission.clear"
	opSetTopic     = "topic-permission.set"
	opClearTopic   = "topic-permission.clear"
	opSetLimit     = "limit.set"
	opClearLimit   = "limit.clear"
	opSeed         = "seed"
	seededResponse = "seeded"
)

// replicated reports whether changes go through a cluster.
func (s *Store) replicated() bool { return s.repl != nil }

// replicate commits c and returns the error its apply returned.
func (s *Store) replicate(c command) error {
	_, err := s.replicateResult(c)
	return err
}

func (s *Store) replicateResult(c command) (any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	res, err := s.repl.Replicate(b)
	if err != nil {
		return nil, fmt.Errorf("the cluster's metadata store did not take the change: %w", err)
	}
	if err, ok := res.(error); ok {
		return nil, err
	}
	return res, nil
}

// Apply applies a command committed in the cluster's metadata group;
// every node applies the same ones in the same order.
func (s *Store) Apply(cmd []byte) any {
	var c command
	if err := json.Unmarshal(cmd, &c); err != nil {
		return fmt.Errorf("undecodable change of users: %w", err)
	}
	var err error
	switch c.Op {
	case opPutUser:
		if c.User == nil {
			return fmt.Errorf("user.put without a user")
		}
		err = s.putUser(c.User)
	case opDeleteUser:
		err = s.deleteUser(c.Name)
	case opSetPerm:
		err = s.setPermission(c.VHost, c.Name, c.Configure, c.Write, c.Read)
	case opClearPerm:
		err = s.clearPermission(c.VHost, c.Name)
	case opSetTopic:
		err = s.setTopicPermission(c.VHost, c.Name, c.Exchange, c.Write, c.Read)
	case opClearTopic:
		err = s.clearTopicPermission(c.VHost, c.Name, c.Exchange)
	case opSetLimit:
		err = s.editLimits(c.Name, func(l map[string]int64) { l[c.Limit] = c.Value })
	case opClearLimit:
		err = s.clearUserLimit(c.Name, c.Limit)
	case opSeed:
		s.mu.RLock()
		done := s.clusterSeeded
		s.mu.RUnlock()
		if done {
			return nil
		}
		if c.User != nil {
			if err := s.putUser(c.User); err != nil {
				return err
			}
			if err := s.setPermission(c.VHost, c.User.Name, ".*", ".*", ".*"); err != nil {
				return err
			}
		}
		s.mu.Lock()
		s.clusterSeeded = true
		s.mu.Unlock()
		return seededResponse
	default:
		err = fmt.Errorf("unknown change of users %q", c.Op)
	}
	if err != nil {
		return err
	}
	return nil
}

// Seed makes the cluster's default user (an administrator with every
// permission on vhost) unless the cluster was seeded before: once per
// cluster, as RabbitMQ makes guest once. first reports whether this call
// did it (the caller then makes the default virtual host).
func (s *Store) Seed(user, password, vhost string) (first bool, err error) {
	c := command{Op: opSeed, VHost: vhost}
	if user != "" {
		c.User = &User{Name: user, PasswordHash: HashPassword(password), HashingAlgorithm: HashSHA256, Tags: []string{TagAdministrator}}
	}
	res, err := s.replicateResult(c)
	return res == seededResponse, err
}

// snapshotState is the users' part of the cluster's snapshots.
type snapshotState struct {
	Users       []*User            `json:"users"`
	Permissions []*Permission      `json:"permissions"`
	Topics      []*TopicPermission `json:"topic_permissions"`
	Seeded      bool               `json:"seeded"`
}

// Snapshot returns every user and permission, for the metadata group's
// snapshots.
func (s *Store) Snapshot() ([]byte, error) {
	st := snapshotState{Users: s.Users(), Permissions: s.Permissions(), Topics: s.TopicPermissions()}
	s.mu.RLock()
	st.Seeded = s.clusterSeeded
	s.mu.RUnlock()
	return json.Marshal(st)
}

// Restore replaces every user and permission with a snapshot's (none for
// empty data).
func (s *Store) Restore(data []byte) error {
	var st snapshotState
	if len(data) > 0 {
		if err := json.Unmarshal(data, &st); err != nil {
			return err
		}
	}
	for _, p := range st.Permissions {
		if err := p.compile(); err != nil {
			return err
		}
	}
	for _, p := range st.Topics {
		if err := p.compile(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = map[string]*User{}
	for _, u := range st.Users {
		s.users[u.Name] = u
	}
	s.perms = map[string]map[string]*Permission{}
	for _, p := range st.Permissions {
		s.putPermissionLocked(p)
	}
	s.topics = map[string]map[string]map[string]*TopicPermission{}
	for _, p := range st.Topics {
		s.putTopicLocked(p)
	}
	s.clusterSeeded = st.Seeded
	s.gen.Add(1)
	return nil
}
