package quorum

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
)

// Name is the kind's name in x-queue-type.
const Name = "quorum"

// DefaultGroupSize is how many members a queue gets without
// x-quorum-initial-group-size (at most every node of the cluster).
const DefaultGroupSize = 3

// DefaultDeliveryLimit is a quorum queue's delivery limit when neither an
// argument nor a policy sets one (RabbitMQ 4's default).
const DefaultDeliveryLimit = 20

// methodApply is the cluster call that carries commands to a queue's
// leader: group id, then the commands; the answer is their results.
const methodApply cluster.Method = 48

// Options configure a Kind.
type Options struct {
	// Store keeps every group's log, term and snapshots (required).
	Store *persistence.Store
	// Cluster is this node's cluster membership; nil for a node alone,
	// whose queues are groups of one.
	Cluster Cluster
	// Node is this node's name: its id in every group it is a member of.
	Node string
	Log  *slog.Logger
	// Timing of the groups' Raft (zero: defaults for a cluster; a group of
	// one elects itself at once whatever these say).
	HeartbeatTimeout time.Duration
	// Forward returns a stand-in that forwards to the queue cfg on node
	// cfg.Node (remote.Service.New): a consumer on a node without a
	// replica consumes through a member. Nil: such consumers are refused.
	Forward func(cfg queue.Config) (queue.Queue, error)
}

// Cluster is what the kind needs of the node's cluster membership
// (cluster.Node has it; the broker hands a view that works before the
// node has joined, since joining makes the queues).
type Cluster interface {
	Members() []cluster.Member
	Running(node string) bool
	Call(ctx context.Context, node string, m cluster.Method, payload []byte) ([]byte, error)
	Handle(m cluster.Method, h cluster.Handler)
	GroupTransport(group uint64) *cluster.GroupTransport
}

// Kind is the quorum kind of one node. It implements queue.Kind and
// queue.Replicated.
type Kind struct {
	o    Options
	log  *slog.Logger
	boot uint64 // this process, in consumer keys
	// logLimit bounds what all the groups' Raft logs together: 20 lines
	// a second.
	logLimit *cluster.LogLimit

	mu      sync.Mutex
	queues  map[uint64]*Queue // by group id
	nextID  uint64            // consumer ids
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped bool
	// started: groups start as their queues are made; before Start
	// (while the node joins its cluster) they wait in pending.
	started bool
	pending []*Queue
}

// NewKind returns the quorum kind for a node.
func NewKind(o Options) *Kind {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = time.Second
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	k := &Kind{o: o, log: o.Log, boot: binary.BigEndian.Uint64(b[:]) | 1, queues: map[uint64]*Queue{}, stop: make(chan struct{}),
		logLimit: cluster.NewLogLimit(20)}
	if o.Cluster != nil {
		o.Cluster.Handle(methodApply, k.onApply)
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.watchNodes()
	}()
	return k
}

// Close stops every group this node is a member of (the node stops); the
// groups' stores stay.
func (k *Kind) Close() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.stopped = true
	close(k.stop)
	qs := make([]*Queue, 0, len(k.queues))
	for _, q := range k.queues {
		qs = append(qs, q)
	}
	k.mu.Unlock()
	k.wg.Wait()
	for _, q := range qs {
		q.stopGroup()
	}
}

// Place implements queue.Replicated: the declaring node first (its
// clients' queue is led there, as RabbitMQ's client-local locator does),
// then the nodes that are members of the fewest quorum queues, up to
// x-quorum-initial-group-size running nodes.
func (k *Kind) Place(cfg queue.Config) ([]string, error) {
	size := DefaultGroupSize
	if v, ok := cfg.Args["x-quorum-initial-group-size"]; ok {
		n, isInt := wire.Int(v)
		if !isInt || n < 1 {
			return nil, wire.Errorf(wire.PreconditionFailed, "invalid arg 'x-quorum-initial-group-size' for "+describe(cfg)+
				": {value_zero,"+fmt.Sprint(v)+"}")
		}
		size = int(min(n, 1<<10))
	}
	members := []string{k.o.Node}
	if k.o.Cluster == nil {
		return members, nil
	}
	load := map[string]int{}
	k.mu.Lock()
	for _, q := range k.queues {
		for _, m := range q.cfg.Members {
			load[m]++
		}
	}
	k.mu.Unlock()
	var others []string
	for _, m := range k.o.Cluster.Members() {
		if m.Running && m.Name != k.o.Node {
			others = append(others, m.Name)
		}
	}
	slices.SortStableFunc(others, func(a, b string) int { return load[a] - load[b] })
	for _, n := range others {
		if len(members) >= size {
			break
		}
		members = append(members, n)
	}
	return members, nil
}

func describe(cfg queue.Config) string {
	return "queue '" + cfg.Name + "' in vhost '" + cfg.VHost + "'"
}

// New implements queue.Kind. Every node of a cluster makes the queue; the
// nodes among its members start its group, the others forward to it.
func (k *Kind) New(cfg queue.Config) (queue.Queue, error) {
	what := describe(cfg)
	switch {
	case cfg.AutoDelete:
		return nil, wire.Errorf(wire.PreconditionFailed, "invalid property 'auto-delete' for "+what)
	case cfg.Exclusive:
		return nil, wire.Errorf(wire.PreconditionFailed, "invalid property 'exclusive-owner' for "+what)
	case !cfg.Durable:
		return nil, wire.Errorf(wire.PreconditionFailed, "invalid property 'non-durable' for "+what)
	}
	if cfg.ID == 0 {
		cfg.ID = k.o.Store.NextQueueID()
	}
	if len(cfg.Members) == 0 {
		cfg.Members = []string{k.o.Node}
	}
	cfg.Settings = withDefaults(cfg.Settings)
	q := newQueue(k, cfg)
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return nil, fmt.Errorf("quorum queues are stopping")
	}
	k.queues[cfg.ID] = q
	member := slices.Contains(cfg.Members, k.o.Node)
	if member && !k.started {
		k.pending = append(k.pending, q)
		member = false
	}
	k.mu.Unlock()
	if !slices.Contains(cfg.Members, k.o.Node) && cfg.Recover {
		// Gets of this node's earlier process are gone.
		q.prop.submit(op{cmd: DropNodeCommand(now(), k.o.Node, k.boot), retry: true})
	}
	if member {
		if err := q.startGroup(); err != nil {
			k.forget(q)
			return nil, fmt.Errorf("starting the group of %s: %w", what, err)
		}
	}
	return q, nil
}

// Start starts the groups of the queues made so far, and those made from
// now on as they are made: the broker calls it once the node has its
// cluster (or, alone, has loaded its definitions).
func (k *Kind) Start() error {
	k.mu.Lock()
	k.started = true
	pending := k.pending
	k.pending = nil
	k.mu.Unlock()
	var errs []error
	for _, q := range pending {
		if q.Deleted() {
			continue
		}
		if err := q.startGroup(); err != nil {
			errs = append(errs, fmt.Errorf("starting the group of %s: %w", describe(q.cfg), err))
		}
	}
	return errors.Join(errs...)
}

// withDefaults applies a quorum queue's defaults to settings: the
// delivery limit when none is set.
func withDefaults(s queue.Settings) queue.Settings {
	if s.DeliveryLimit < 0 {
		s.DeliveryLimit = DefaultDeliveryLimit
	}
	return s
}

func (k *Kind) forget(q *Queue) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.queues[q.cfg.ID] == q {
		delete(k.queues, q.cfg.ID)
	}
}

func (k *Kind) queue(id uint64) *Queue {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.queues[id]
}

// consumerID returns a new consumer id, unique in this process.
func (k *Kind) consumerID() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nextID++
	return k.nextID
}

// now is the clock commands carry, in unix milliseconds.
func now() int64 { return time.Now().UnixMilli() }

// addrOf returns the cluster address of a node, "" when unknown.
func (k *Kind) addrOf(node string) string {
	if k.o.Cluster == nil {
		return ""
	}
	for _, m := range k.o.Cluster.Members() {
		if m.Name == node {
			return m.Addr
		}
	}
	return ""
}

// transport returns a group's Raft transport on this node.
func (k *Kind) transport(id uint64) (raft.Transport, raft.ServerAddress) {
	if k.o.Cluster == nil {
		addr, t := raft.NewInmemTransport(raft.ServerAddress(k.o.Node))
		return t, addr
	}
	t := k.o.Cluster.GroupTransport(id)
	return t, t.LocalAddr()
}

// watchNodes looks at every queue once a second (see Queue.watch).
func (k *Kind) watchNodes() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		k.mu.Lock()
		qs := make([]*Queue, 0, len(k.queues))
		for _, q := range k.queues {
			qs = append(qs, q)
		}
		k.mu.Unlock()
		for _, q := range qs {
			q.watch()
		}
	}
}
