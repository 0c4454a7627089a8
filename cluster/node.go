// Package cluster joins Warren nodes into a cluster: each node's identity
// and its one cluster listener (multiplexed, the peers authenticated by a
// shared secret), the metadata Raft group (hashicorp/raft) that orders
// every definition change, and calls between nodes. It knows nothing of
// AMQP: the metadata group's state is a StateMachine the broker gives it,
// and other rooms add their own calls with Handle and Call.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// DefaultListen is the cluster listener's default address (RabbitMQ's
// inter-node port).
const DefaultListen = "127.0.0.1:25672"

// StateMachine is the state the metadata group replicates: the broker's
// definitions. Apply must be deterministic: every node applies the same
// commands in the same order and must reach the same state.
type StateMachine interface {
	// Apply applies a command committed at index and returns its result
	// (an error value when the command was refused).
	Apply(index uint64, cmd []byte) any
	// Snapshot returns the whole state.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot's; nil data empties it
	// (the node resets to join another cluster).
	Restore(data []byte) error
}

// Stores are where the metadata group keeps its log, its term and vote,
// and its snapshots (persistence implements them on the node's store).
type Stores struct {
	Log       raft.LogStore
	Stable    raft.StableStore
	Snapshots raft.SnapshotStore
}

// Config configures a Node.
type Config struct {
	// Name is the node's name, as every node, the API and the logs know it.
	Name string
	// Listen is the cluster listener's HOST:PORT; peers reach the node
	// there (so it must not be a wildcard address when there are peers).
	Listen string
	// Seeds are the cluster addresses of the nodes that form the cluster
	// (this one's included or not). With no seeds and no earlier state the
	// node forms a cluster of one.
	Seeds []string
	// Secret is the shared secret peers prove they know.
	Secret []byte
	Stores Stores
	State  StateMachine
	Log    *slog.Logger
	// ElectionTimeout is Raft's heartbeat and election timeout (1 s when
	// zero).
	ElectionTimeout time.Duration
	// Reset, for Join, drops the metadata group's stored log, term and
	// snapshots and returns empty stores; nil: the node cannot join
	// another cluster.
	Reset func() (Stores, error)
}

// Node is this node's membership in the cluster.
type Node struct {
	cfg    Config
	log    *slog.Logger
	addr   string // the cluster address peers use for this node
	mux    *mux
	calls  *callServer
	caller *caller
	raft   atomic.Pointer[raft.Raft] // replaced when the node resets to join another cluster
	fsm    *fsm
	groups groups // the Raft groups' transports (group.go)
	// joinMu serialises Join's reset of the metadata group.
	joinMu sync.Mutex

	seq     atomic.Uint64
	boot    string // this process's prefix of command ids: unique across restarts
	mu      sync.Mutex
	seen    map[string]time.Time // node name -> last answer to a hello
	lost    map[string]time.Time // node name -> last hello that failed
	addrs   map[string]string    // node name -> cluster address, as Members last saw
	stop    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once
}

// hello is the answer to methodHello.
type hello struct {
	Name      string   `json:"name"`
	Addr      string   `json:"addr"`
	Clustered bool     `json:"clustered"` // the node belongs to a formed cluster
	Seeds     []string `json:"seeds,omitempty"`
}

// Start opens the cluster listener and starts the metadata group: from
// its stored state after a restart, or by forming the cluster with the
// seeds (in the background: Ready says when it is formed).
func Start(cfg Config) (*Node, error) {
	if cfg.Name == "" {
		return nil, errors.New("cluster: the node has no name")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("cluster: no cluster secret")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = time.Second
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster listener: %w", err)
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	n := &Node{cfg: cfg, log: log, addr: advertised(cfg.Listen, ln.Addr()), caller: newCaller(cfg.Secret),
		boot: cfg.Name + "#" + hex.EncodeToString(nonce[:]),
		seen: map[string]time.Time{}, lost: map[string]time.Time{}, addrs: map[string]string{}, stop: make(chan struct{})}
	n.mux = newMux(ln, cfg.Secret, log)
	n.calls = newCallServer(n.mux.listener(tagCall), log)
	n.calls.handle(Method(methodHello), n.onHello)
	n.calls.handle(Method(methodApply), n.onApply)
	n.calls.handle(Method(methodJoin), n.onJoin)
	n.calls.handle(Method(methodRemove), n.onRemove)
	n.calls.handle(Method(methodAwait), n.onAwait)
	n.calls.handle(Method(methodSees), func(name []byte) ([]byte, error) {
		if n.Running(string(name)) {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	})
	n.calls.handle(methodGroup, n.onGroupCall)
	n.calls.handle(methodGroupHeartbeat, n.onGroupCall)
	n.fsm = &fsm{state: cfg.State, waiting: map[string]chan applied{}}
	n.fsm.cond = sync.NewCond(&n.fsm.mu)
	r, err := n.startRaft(cfg.Stores)
	if err != nil {
		ln.Close()
		return nil, err
	}
	go n.mux.serve()
	go n.calls.serve()
	existing, err := raft.HasExistingState(cfg.Stores.Log, cfg.Stores.Stable, cfg.Stores.Snapshots)
	if err != nil {
		n.Close()
		return nil, err
	}
	switch {
	case existing:
		log.Info("cluster: rejoining with the stored metadata", "node", cfg.Name)
	case len(cfg.Seeds) == 0:
		if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(cfg.Name), Address: raft.ServerAddress(n.addr)}}}).Error(); err != nil {
			n.Close()
			return nil, fmt.Errorf("forming a cluster of one: %w", err)
		}
	default:
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.form()
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchPeers()
	}()
	return n, nil
}

// startRaft starts the metadata group's Raft on stores, with a transport
// of its own on the cluster listener.
func (n *Node) startRaft(stores Stores) (*raft.Raft, error) {
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.mux.fresh(tagRaft), MaxPool: 3, Timeout: 10 * time.Second, Logger: raftLogger(n.log, "raft-net", nil),
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.Name)
	rc.HeartbeatTimeout = n.cfg.ElectionTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.ElectionTimeout / 2
	// Followers learn a new commit index from the barrier each change sends
	// (see commit), so the idle leader need not tell them every 50 ms.
	rc.CommitTimeout = 500 * time.Millisecond
	rc.Logger = raftLogger(n.log, "raft", nil)
	r, err := raft.NewRaft(rc, n.fsm, stores.Log, stores.Stable, stores.Snapshots, trans)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("starting the metadata group: %w", err)
	}
	n.raft.Store(r)
	return r, nil
}

// r is the metadata group's Raft.
func (n *Node) r() *raft.Raft { return n.raft.Load() }

// advertised is the address peers reach a listener on: the one it was
// given, with the port the system chose when it was 0.
func advertised(listen string, actual net.Addr) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" || port == "" {
		return actual.String()
	}
	return net.JoinHostPort(host, port)
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr returns the node's cluster address.
func (n *Node) Addr() string { return n.addr }

// form makes the cluster from the seeds: it joins one of them that already
// belongs to a cluster, or, once every seed has answered and none does,
// bootstraps the metadata group with all of them (every seed computes the
// same configuration, so they agree whatever the order they start in).
func (n *Node) form() {
	seeds := slices.Clone(n.cfg.Seeds)
	logged := time.Time{}
	for {
		servers := map[raft.ServerID]raft.ServerAddress{raft.ServerID(n.cfg.Name): raft.ServerAddress(n.addr)}
		var clustered []string
		var missing, differ []string
		for _, s := range seeds {
			h, err := n.hello(s)
			if err != nil {
				missing = append(missing, s)
				continue
			}
			if !sameSeeds(h.Seeds, seeds) {
				// Bootstrapping with different configurations would make
				// two clusters: every seed must list the same seeds.
				differ = append(differ, s)
			}
			if h.Name == n.cfg.Name {
				servers[raft.ServerID(h.Name)] = raft.ServerAddress(s)
				continue
			}
			servers[raft.ServerID(h.Name)] = raft.ServerAddress(s)
			if h.Clustered {
				clustered = append(clustered, s)
			}
		}
		if n.formed() {
			return
		}
		for _, s := range clustered {
			if err := n.join(s); err != nil {
				level := slog.LevelWarn
				if retryable(err) { // the seed's cluster is electing its leader
					level = slog.LevelDebug
				}
				n.log.Log(context.Background(), level, "cluster: joining through a seed failed", "seed", s, "err", err)
				continue
			}
			n.log.Info("cluster: joined", "through", s)
			return
		}
		if len(missing) == 0 && len(clustered) == 0 && len(differ) == 0 {
			cfg := raft.Configuration{}
			for id, addr := range servers {
				cfg.Servers = append(cfg.Servers, raft.Server{ID: id, Address: addr})
			}
			slices.SortFunc(cfg.Servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
			if err := n.r().BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				n.log.Error("cluster: bootstrapping failed", "err", err)
			} else {
				n.log.Info("cluster: formed", "nodes", len(cfg.Servers))
				return
			}
		}
		if time.Since(logged) > 10*time.Second {
			if len(differ) > 0 && len(clustered) == 0 {
				n.log.Warn("cluster: seeds list other seeds than this node; give every node the same --cluster-seeds",
					"differing", differ, "seeds", seeds)
			} else {
				n.log.Info("cluster: waiting for the seeds", "unreachable", missing)
			}
			logged = time.Now()
		}
		select {
		case <-n.stop:
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// formed reports whether the metadata group has a configuration.
func (n *Node) formed() bool {
	f := n.r().GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// hello asks the node at addr who it is, naming this node, and notes the
// answer as a sign of life.
func (n *Node) hello(addr string) (hello, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := n.caller.call(ctx, addr, Method(methodHello), []byte(n.cfg.Name))
	var h hello
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	if err == nil {
		n.alive(h.Name)
	}
	return h, err
}

// helloMember says hello to a member, noting a failure as the member
// being down until it answers again.
func (n *Node) helloMember(m Member) {
	if _, err := n.hello(m.Addr); err != nil {
		n.mu.Lock()
		n.lost[m.Name] = time.Now()
		n.mu.Unlock()
	}
}

func (n *Node) onHello(caller []byte) ([]byte, error) {
	if len(caller) > 0 {
		n.alive(string(caller))
	}
	return json.Marshal(hello{Name: n.cfg.Name, Addr: n.addr, Clustered: n.formed(), Seeds: n.cfg.Seeds})
}

// sameSeeds reports whether two seed lists name the same addresses.
func sameSeeds(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// alive notes that the named node answered or called just now.
func (n *Node) alive(name string) {
	if name == n.cfg.Name {
		return
	}
	n.mu.Lock()
	last := n.seen[name]
	n.seen[name] = time.Now()
	n.mu.Unlock()
	if last.IsZero() || time.Since(last) >= 3*peerCheck {
		n.log.Info("cluster: node up", "node", name)
	}
}

// join asks the cluster that the node at addr belongs to to add this node.
func (n *Node) join(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, _ := json.Marshal(hello{Name: n.cfg.Name, Addr: n.addr})
	_, err := n.caller.call(ctx, addr, Method(methodJoin), b)
	return err
}

func (n *Node) onJoin(payload []byte) ([]byte, error) {
	var h hello
	if err := json.Unmarshal(payload, &h); err != nil {
		return nil, err
	}
	return nil, n.onLeader(Method(methodJoin), payload, func() error {
		n.log.Info("cluster: adding a node", "node", h.Name, "addr", h.Addr)
		return n.r().AddVoter(raft.ServerID(h.Name), raft.ServerAddress(h.Addr), 0, 10*time.Second).Error()
	})
}

func (n *Node) onRemove(payload []byte) ([]byte, error) {
	name := string(payload)
	return nil, n.onLeader(Method(methodRemove), payload, func() error {
		n.log.Info("cluster: forgetting a node", "node", name)
		return n.r().RemoveServer(raft.ServerID(name), 0, 10*time.Second).Error()
	})
}

// onLeader runs do when this node leads the metadata group, and otherwise
// passes the call on to the leader.
func (n *Node) onLeader(m Method, payload []byte, do func() error) error {
	if n.r().State() == raft.Leader {
		return do()
	}
	leader, _ := n.r().LeaderWithID()
	if leader == "" {
		return ErrNoLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := n.caller.call(ctx, string(leader), m, payload)
	return err
}

// ErrNoLeader is returned while the metadata group has no leader (no
// majority of its nodes is reachable).
var ErrNoLeader = errors.New("the cluster's metadata store has no leader (is a majority of the nodes running?)")

// Replicate commits cmd in the metadata group and returns what this node's
// StateMachine.Apply returned for it, once this node and every other node
// that is running have applied it (so that what a client was told exists
// exists on every node it may ask next). It retries while there is no
// leader, until ctx ends.
func (n *Node) Replicate(ctx context.Context, cmd []byte) (any, error) {
	id := n.boot + "#" + strconv.FormatUint(n.seq.Add(1), 10)
	entry := make([]byte, 0, 1+len(id)+len(cmd))
	entry = append(entry, byte(len(id)))
	entry = append(entry, id...)
	entry = append(entry, cmd...)
	ch := n.fsm.await(id)
	defer n.fsm.forget(id)
	for {
		err := n.propose(ctx, entry)
		if err == nil {
			break
		}
		if !retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrNoLeader, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	var res applied
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("committed but not yet applied on this node: %w", ctx.Err())
	}
	n.awaitOthers(ctx, res.index)
	return res.result, nil
}

// awaitTimeout bounds how long a change waits for a slow node to apply it.
const awaitTimeout = 2 * time.Second

// awaitOthers waits until every other running node has applied index (or
// awaitTimeout has passed for the slow ones).
func (n *Node) awaitOthers(ctx context.Context, index uint64) {
	ctx, cancel := context.WithTimeout(ctx, awaitTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], index)
	for _, m := range n.Members() {
		if m.Name == n.cfg.Name || !m.Running {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = n.caller.call(ctx, m.Addr, Method(methodAwait), b[:])
		}()
	}
	wg.Wait()
}

// onAwait answers once this node has applied the index asked for (or
// after awaitTimeout).
func (n *Node) onAwait(payload []byte) ([]byte, error) {
	if len(payload) != 8 {
		return nil, errors.New("malformed await")
	}
	index := binary.BigEndian.Uint64(payload)
	// A snapshot restored may have carried the index past the commands
	// this node applied one by one: raft's own count says so.
	for deadline := time.Now().Add(awaitTimeout); n.r().AppliedIndex() < index && time.Now().Before(deadline); {
		n.fsm.waitApplied(index, 50*time.Millisecond)
	}
	return nil, nil
}

func retryable(err error) bool {
	if errors.Is(err, ErrNoLeader) || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, errPeerGone) || errors.Is(err, raft.ErrEnqueueTimeout) {
		return true
	}
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Text == ErrNoLeader.Error() || re.Text == raft.ErrNotLeader.Error() || re.Text == raft.ErrLeadershipLost.Error()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)
}

// propose appends entry to the metadata log: here when this node leads,
// through the leader otherwise.
func (n *Node) propose(ctx context.Context, entry []byte) error {
	if n.r().State() == raft.Leader {
		timeout := 10 * time.Second
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		return n.commit(entry, timeout)
	}
	leader, _ := n.r().LeaderWithID()
	if leader == "" {
		return ErrNoLeader
	}
	_, err := n.caller.call(ctx, string(leader), Method(methodApply), entry)
	return err
}

func (n *Node) onApply(entry []byte) ([]byte, error) {
	if n.r().State() != raft.Leader {
		return nil, raft.ErrNotLeader
	}
	return nil, n.commit(entry, 10*time.Second)
}

// commit appends entry on the leader and waits for its commit; a barrier
// then goes out at once, whose replication tells the followers the new
// commit index (they would otherwise learn it up to two CommitTimeouts
// later), so that they apply the entry without delay.
func (n *Node) commit(entry []byte, timeout time.Duration) error {
	if err := n.r().Apply(entry, timeout).Error(); err != nil {
		return err
	}
	n.r().Barrier(timeout)
	return nil
}

// Ready waits until this node has applied every definition committed
// before it was called (a no-op command goes round the group), or until
// ctx ends.
func (n *Node) Ready(ctx context.Context) error {
	_, err := n.Replicate(ctx, nil)
	return err
}

// Member is a node of the cluster.
type Member struct {
	Name    string
	Addr    string
	Voter   bool
	Leader  bool // leads the metadata group
	Running bool // answered lately (this node always)
}

// Members returns the cluster's nodes, by name.
func (n *Node) Members() []Member {
	f := n.r().GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	_, leader := n.r().LeaderWithID()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Member
	clear(n.addrs)
	for _, s := range f.Configuration().Servers {
		n.addrs[string(s.ID)] = string(s.Address)
		m := Member{Name: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter, Leader: s.ID == leader}
		m.Running = m.Name == n.cfg.Name || n.runningLocked(m.Name)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Running reports whether the named node answered lately.
func (n *Node) Running(name string) bool {
	if name == n.cfg.Name {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.runningLocked(name)
}

// runningLocked: the node answered lately, and no hello failed since.
func (n *Node) runningLocked(name string) bool {
	seen := n.seen[name]
	return time.Since(seen) < 3*peerCheck && !n.lost[name].After(seen)
}

// peerCheck is how often the node says hello to every other.
const peerCheck = time.Second

func (n *Node) watchPeers() {
	t := time.NewTicker(peerCheck)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, m := range n.Members() {
			if m.Name == n.cfg.Name {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.helloMember(m)
			}()
		}
		wg.Wait()
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// Forget removes a node that is not running from the cluster.
func (n *Node) Forget(name string) error {
	known := false
	for _, m := range n.Members() {
		if m.Name == name {
			known = true
			if m.Running {
				return fmt.Errorf("node %s is running: stop it before forgetting it", name)
			}
		}
	}
	if !known {
		return fmt.Errorf("node %s is not a member of the cluster", name)
	}
	// Not down for this node alone (a partition): no other running node
	// may see it running either.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range n.Members() {
		if m.Name == n.cfg.Name || m.Name == name || !m.Running {
			continue
		}
		if b, err := n.caller.call(ctx, m.Addr, Method(methodSees), []byte(name)); err == nil && len(b) == 1 && b[0] == 1 {
			return fmt.Errorf("node %s is running (node %s reaches it): stop it before forgetting it", name, m.Name)
		}
	}
	return n.onLeader(Method(methodRemove), []byte(name), func() error {
		return n.r().RemoveServer(raft.ServerID(name), 0, 10*time.Second).Error()
	})
}

// Join makes this node, a cluster of one, a member of the cluster the
// node at addr belongs to. As rabbitmqctl's reset before join_cluster, it
// first drops everything the node held (its definitions, and so its
// queues and their messages): the cluster's definitions replace them.
func (n *Node) Join(addr string) error {
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	if ms := n.Members(); len(ms) > 1 {
		return fmt.Errorf("node %s already belongs to a cluster of %d nodes: forget it there first", n.cfg.Name, len(ms))
	}
	h, err := n.hello(addr)
	if err != nil {
		return fmt.Errorf("no node answers at %s: %w", addr, err)
	}
	if n.cfg.Reset == nil {
		return errors.New("this node cannot reset to join another cluster")
	}
	if h.Name == n.cfg.Name {
		return fmt.Errorf("%s is this node's own address", addr)
	}
	n.log.Warn("cluster: resetting to join another cluster: this node's definitions and messages are dropped", "through", addr, "node", h.Name)
	if err := n.r().Shutdown().Error(); err != nil {
		return fmt.Errorf("stopping the metadata group: %w", err)
	}
	stores, err := n.cfg.Reset()
	if err == nil {
		err = n.fsm.reset() // the new cluster's log starts again
	}
	if err == nil {
		_, err = n.startRaft(stores)
	}
	if err != nil {
		return fmt.Errorf("resetting the node: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = n.join(addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("joining through %s: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Ready(ctx)
}

// Handle registers a handler for calls of method m (32 and up).
func (n *Node) Handle(m Method, h Handler) { n.calls.handle(m, h) }

// Call calls method m on the named node.
func (n *Node) Call(ctx context.Context, node string, m Method, payload []byte) ([]byte, error) {
	addr, err := n.addrOf(node)
	if err != nil {
		return nil, err
	}
	return n.caller.call(ctx, addr, m, payload)
}

// addrOf returns a member's cluster address.
func (n *Node) addrOf(node string) (string, error) {
	n.mu.Lock()
	addr, ok := n.addrs[node]
	n.mu.Unlock()
	if ok {
		return addr, nil
	}
	for _, m := range n.Members() {
		if m.Name == node {
			return m.Addr, nil
		}
	}
	return "", fmt.Errorf("no node %s in the cluster", node)
}

// Cast sends method m to the named node without waiting for an answer:
// casts from one goroutine to one node are handled there in order.
func (n *Node) Cast(ctx context.Context, node string, m Method, payload []byte) error {
	addr, err := n.addrOf(node)
	if err != nil {
		return err
	}
	return n.caller.cast(ctx, addr, m, payload)
}

// Close leaves the metadata group's work (the node stays a member) and
// closes the listener and connections.
func (n *Node) Close() error {
	var err error
	n.closeMu.Do(func() {
		close(n.stop)
		n.joinMu.Lock()
		err = n.r().Shutdown().Error() // closes its transport too
		n.joinMu.Unlock()
		n.wg.Wait()
		n.groups.close()
		n.caller.close()
		n.calls.close()
		n.mux.close()
	})
	return err
}

// fsm is the metadata group's raft.FSM: it applies each entry to the
// StateMachine and hands the result to the Replicate call waiting for it
// on this node.
type fsm struct {
	state   StateMachine
	mu      sync.Mutex
	cond    *sync.Cond
	waiting map[string]chan applied
	index   uint64 // the last command applied
	// recent are the ids of the last recentIDs commands applied, oldest
	// first in order (a ring from next), part of the replicated state.
	recent map[string]struct{}
	order  []string
	next   int
}

// recentIDs is how many command ids the group remembers, so that a
// command proposed twice (again after an answer was lost) is applied once.
const recentIDs = 8192

func (f *fsm) rememberLocked(id string) {
	if f.recent == nil {
		f.recent = map[string]struct{}{}
	}
	if len(f.order) < recentIDs {
		f.order = append(f.order, id)
	} else {
		delete(f.recent, f.order[f.next])
		f.order[f.next] = id
		f.next = (f.next + 1) % recentIDs
	}
	f.recent[id] = struct{}{}
}

// reset empties the state machine (a node about to join another cluster).
func (f *fsm) reset() error {
	f.mu.Lock()
	f.recent, f.order, f.next, f.index = nil, nil, 0, 0
	f.mu.Unlock()
	return f.state.Restore(nil)
}

// applied is a command's result and its index.
type applied struct {
	result any
	index  uint64
}

// waitApplied waits until the command at index (or a later one) has been
// applied here, for at most timeout.
func (f *fsm) waitApplied(index uint64, timeout time.Duration) {
	t := time.AfterFunc(timeout, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.index < index && time.Now().Before(deadline) {
		f.cond.Wait()
	}
}

func (f *fsm) await(id string) chan applied {
	ch := make(chan applied, 1)
	f.mu.Lock()
	f.waiting[id] = ch
	f.mu.Unlock()
	return ch
}

func (f *fsm) forget(id string) {
	f.mu.Lock()
	delete(f.waiting, id)
	f.mu.Unlock()
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 || int(l.Data[0]) >= len(l.Data) {
		return nil
	}
	id := string(l.Data[1 : 1+int(l.Data[0])])
	cmd := l.Data[1+int(l.Data[0]):]
	f.mu.Lock()
	_, dup := f.recent[id]
	f.mu.Unlock()
	if dup {
		// Proposed again after an answer was lost, and applied already:
		// the first apply answered the proposer.
		f.mu.Lock()
		f.index = l.Index
		f.cond.Broadcast()
		f.mu.Unlock()
		return nil
	}
	var res any
	if len(cmd) > 0 {
		res = f.state.Apply(l.Index, cmd)
	}
	f.mu.Lock()
	f.rememberLocked(id)
	ch := f.waiting[id]
	f.index = l.Index
	f.cond.Broadcast()
	f.mu.Unlock()
	if ch != nil {
		select {
		case ch <- applied{res, l.Index}:
		default:
		}
	}
	return res
}

// Snapshot implements raft.FSM: the recent command ids, then the state.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(f.order)))
	for i := range f.order {
		id := f.order[(f.next+i)%len(f.order)]
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
	}
	f.mu.Unlock()
	data, err := f.state.Snapshot()
	if err != nil {
		return nil, err
	}
	return snapshot(append(b, data...)), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	var n [8]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	data := make([]byte, binary.BigEndian.Uint64(n[:]))
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	count, w := binary.Uvarint(data)
	if w <= 0 || count > recentIDs {
		return errors.New("malformed metadata snapshot")
	}
	data = data[w:]
	f.mu.Lock()
	f.recent, f.order, f.next = nil, nil, 0
	for range count {
		l, w := binary.Uvarint(data)
		if w <= 0 || uint64(len(data)-w) < l {
			f.mu.Unlock()
			return errors.New("malformed metadata snapshot")
		}
		f.rememberLocked(string(data[w : w+int(l)]))
		data = data[w+int(l):]
	}
	f.mu.Unlock()
	return f.state.Restore(data)
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	_, err := sink.Write(n[:])
	if err == nil {
		_, err = sink.Write(s)
	}
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
