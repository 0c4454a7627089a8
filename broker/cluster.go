package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/vhost"
)

// metadataGroup is the metadata Raft group's number in the store (quorum
// queues' groups take their queues' ids).
const metadataGroup = 0

// The metadata group's commands start with the byte of what they change.
const (
	targetVhosts  byte = 'v'
	targetUsers   byte = 'u'
	targetCluster byte = 'c' // the cluster's name
)

// definitions is the state the metadata group replicates: the virtual
// hosts (with their exchanges, queues, bindings and policies) and the
// users with their permissions.
type definitions struct {
	vhosts *vhost.Registry
	users  *auth.Store
	mu     sync.Mutex
	name   string // the cluster's name ("" until the first node names it)
}

// clusterName returns the cluster's name.
func (d *definitions) clusterName() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.name
}

// Apply implements cluster.StateMachine.
func (d *definitions) Apply(index uint64, cmd []byte) any {
	switch cmd[0] {
	case targetVhosts:
		return d.vhosts.Apply(index, cmd[1:])
	case targetUsers:
		return d.users.Apply(cmd[1:])
	case targetCluster:
		// "=name" names the cluster; "?name" only when it has no name yet.
		if len(cmd) < 2 {
			return nil
		}
		d.mu.Lock()
		if cmd[1] == '=' || d.name == "" {
			d.name = string(cmd[2:])
		}
		d.mu.Unlock()
		return nil
	}
	return fmt.Errorf("unknown metadata command %q", cmd[0])
}

type definitionsSnapshot struct {
	Vhosts []byte `json:"vhosts"`
	Users  []byte `json:"users"`
	Name   string `json:"cluster_name"`
}

// Snapshot implements cluster.StateMachine.
func (d *definitions) Snapshot() ([]byte, error) {
	var s definitionsSnapshot
	var err error
	if s.Users, err = d.users.Snapshot(); err != nil {
		return nil, err
	}
	if s.Vhosts, err = d.vhosts.Snapshot(); err != nil {
		return nil, err
	}
	s.Name = d.clusterName()
	return json.Marshal(s)
}

// Restore implements cluster.StateMachine.
func (d *definitions) Restore(data []byte) error {
	var s definitionsSnapshot
	if data != nil {
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.name = s.Name
	d.mu.Unlock()
	return errors.Join(d.users.Restore(s.Users), d.vhosts.Restore(s.Vhosts))
}

// clusterLink hands the vhosts' and users' changes to the metadata group
// once the node has joined it.
type clusterLink struct {
	name     string
	node     atomic.Pointer[cluster.Node]
	mu       sync.Mutex
	handlers map[cluster.Method]cluster.Handler // until the node has joined
}

// replicateTimeout bounds how long a definition change waits for the
// metadata group (a minority waits that long, then fails).
const replicateTimeout = 30 * time.Second

type replicator struct {
	link   *clusterLink
	target byte
}

// Replicate implements vhost.Replicator and auth.Replicator.
func (r replicator) Replicate(cmd []byte) (any, error) {
	n := r.link.node.Load()
	if n == nil {
		return nil, errors.New("the node has not joined its cluster yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicateTimeout)
	defer cancel()
	return n.Replicate(ctx, append([]byte{r.target}, cmd...))
}

func (l *clusterLink) to(target byte) replicator { return replicator{link: l, target: target} }

// clusterSecret returns the secret the cluster's nodes share: the
// configured one, or the data directory's cluster-secret file, made with
// a random secret at the first start (as RabbitMQ makes .erlang.cookie).
func clusterSecret(cfg Config) ([]byte, error) {
	if cfg.ClusterSecret != "" {
		return []byte(cfg.ClusterSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "cluster-secret")
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	b = []byte(base64.RawURLEncoding.EncodeToString(raw[:]))
	if err := os.WriteFile(path, b, 0o400); err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	return b, nil
}

// raftStores opens the metadata group's stores in the node's store. Each
// instance caches what it read, so a node opens them once (and again only
// after dropping the group).
func raftStores(st *persistence.Store) cluster.Stores {
	return cluster.Stores{Log: st.RaftLog(metadataGroup), Stable: st.RaftStable(metadataGroup), Snapshots: st.RaftSnapshots(metadataGroup, 2)}
}

// clustered reports whether the node runs in a cluster: it was given
// seeds, or it belonged to one before.
func clustered(cfg Config, s cluster.Stores) (bool, error) {
	if len(cfg.ClusterSeeds) > 0 {
		return true, nil
	}
	return raft.HasExistingState(s.Log, s.Stable, s.Snapshots)
}

// ownDefinitions reports whether the store holds definitions a node kept
// before it was clustered (a clustered node's come from the cluster).
func ownDefinitions(st *persistence.Store) (bool, error) {
	found := false
	err := st.Definitions('v', func(string, []byte) error { found = true; return nil })
	return found, err
}

// joinCluster starts the node's membership and waits until it has caught
// up with the cluster's definitions: the node's queues are recovered as
// their declares are applied again.
func joinCluster(ctx context.Context, cfg Config, st *persistence.Store, stores cluster.Stores, state *definitions, link *clusterLink, log *slog.Logger) (*cluster.Node, error) {
	secret, err := clusterSecret(cfg)
	if err != nil {
		return nil, err
	}
	state.vhosts.Recovering(true)
	defer state.vhosts.Recovering(false)
	node, err := cluster.Start(cluster.Config{Name: cfg.NodeName, Listen: cfg.ClusterListen, Seeds: cfg.ClusterSeeds, Secret: secret,
		Stores: stores, State: state, Log: log.With("component", "cluster"),
		Reset: func() (cluster.Stores, error) {
			if err := st.DropRaftGroup(metadataGroup); err != nil {
				return cluster.Stores{}, err
			}
			return raftStores(st), nil
		}})
	if err != nil {
		return nil, err
	}
	link.joined(node)
	log.Info("waiting for the cluster's definitions", "node", cfg.NodeName, "cluster_listen", node.Addr(), "seeds", cfg.ClusterSeeds)
	for {
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := node.Ready(wait)
		cancel()
		if err == nil {
			return node, nil
		}
		if ctx.Err() != nil {
			node.Close()
			return nil, fmt.Errorf("waiting for the cluster: %w", ctx.Err())
		}
		log.Warn("still waiting for the cluster (a majority of its nodes must be running)", "err", err)
	}
}

// clusterLink also serves as the forwarding's view of the cluster
// (remote.Peers): the forwarding exists before the node has joined, since
// the queues the cluster's definitions make need it.
func (l *clusterLink) Name() string { return l.name }

// Call implements remote.Peers.
func (l *clusterLink) Call(ctx context.Context, node string, m cluster.Method, payload []byte) ([]byte, error) {
	n := l.node.Load()
	if n == nil {
		return nil, errors.New("the node has not joined its cluster yet")
	}
	return n.Call(ctx, node, m, payload)
}

// Cast implements remote.Peers.
func (l *clusterLink) Cast(ctx context.Context, node string, m cluster.Method, payload []byte) error {
	n := l.node.Load()
	if n == nil {
		return errors.New("the node has not joined its cluster yet")
	}
	return n.Cast(ctx, node, m, payload)
}

// Running implements remote.Peers.
func (l *clusterLink) Running(node string) bool {
	n := l.node.Load()
	return n != nil && n.Running(node)
}

// Handle implements remote.Peers: handlers wait for the node.
func (l *clusterLink) Handle(m cluster.Method, h cluster.Handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.node.Load(); n != nil {
		n.Handle(m, h)
		return
	}
	if l.handlers == nil {
		l.handlers = map[cluster.Method]cluster.Handler{}
	}
	l.handlers[m] = h
}

// Members implements quorum.Cluster: none before the node has joined.
func (l *clusterLink) Members() []cluster.Member {
	if n := l.node.Load(); n != nil {
		return n.Members()
	}
	return nil
}

// GroupTransport implements quorum.Cluster. The quorum kind starts its
// groups only once the node has joined (quorum.Kind.Start).
func (l *clusterLink) GroupTransport(group uint64) *cluster.GroupTransport {
	return l.node.Load().GroupTransport(group)
}

// joined hands the node its handlers and makes it the link's.
func (l *clusterLink) joined(n *cluster.Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for m, h := range l.handlers {
		n.Handle(m, h)
	}
	l.node.Store(n)
}

// downGrace is how long a node must have been down before its transient
// and exclusive queues are deleted.
const downGrace = 10 * time.Second

// watchLostNodes, on the node that leads the metadata group, deletes the
// transient and exclusive queues of nodes down for downGrace. It returns
// when stop closes.
func watchLostNodes(node *cluster.Node, vhosts *vhost.Registry, stop <-chan struct{}) {
	t := time.NewTicker(downGrace / 4)
	defer t.Stop()
	downSince := map[string]time.Time{}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		members := node.Members()
		leading := false
		for _, m := range members {
			leading = leading || m.Leader && m.Name == node.Name()
		}
		for _, m := range members {
			if m.Running {
				delete(downSince, m.Name)
				continue
			}
			since, ok := downSince[m.Name]
			if !ok {
				downSince[m.Name] = time.Now()
				continue
			}
			if leading && !since.IsZero() && time.Since(since) >= downGrace {
				vhosts.DropTransientOf(m.Name)
				downSince[m.Name] = time.Time{} // once per outage
			}
		}
	}
}

// connectionIDs is where a clustered node's connection ids start: its own
// range of 2^32, from its name.
func connectionIDs(node string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(node))
	return uint64(h.Sum32()) << 32
}

// joinFile, in the data directory, names the cluster address of a node
// whose cluster this node, started on its own, is to join at its next
// start (warrenctl join_cluster).
const joinFile = "cluster-join"

func writeJoinFile(dataDir, addr string) error {
	return os.WriteFile(filepath.Join(dataDir, joinFile), []byte(addr), 0o600)
}

// readJoinFile returns the address a join was asked through, or "".
func readJoinFile(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, joinFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", joinFile, err)
	}
	return strings.TrimSpace(string(b)), nil
}
