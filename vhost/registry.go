package vhost

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// DefaultName is the virtual host every broker starts with.
const DefaultName = "/"

// Deps are what a broker's virtual hosts are built on.
type Deps struct {
	// Definitions keeps durable definitions; nil keeps nothing.
	Definitions DefinitionStore
	// Kinds are the queue kinds x-queue-type chooses from. It must hold
	// queue.DefaultKind.
	Kinds *queue.Kinds
	// Delays holds the messages of delayed-message exchanges; nil refuses
	// that exchange type.
	Delays DelayKind
	Log    *slog.Logger
	// Replicator, when set, orders every definition change through the
	// cluster's metadata group (see Replicator); nil changes only this
	// node.
	Replicator Replicator
	// Node is this node's name in a cluster: queues declared here live
	// here. Remote makes the stand-ins for queues that live on other nodes.
	Node   string
	Remote queue.Kind
}

// DelayKind makes the queues that hold a delayed-message exchange's
// messages until they are due; due receives them then, in the order they
// fall due.
type DelayKind interface {
	NewDelayQueue(cfg queue.Config, due func(msgs []*queue.Message)) (queue.Queue, error)
}

// Registry holds a broker's virtual hosts. It is safe for concurrent use.
type Registry struct {
	deps Deps
	// admin serialises making and deleting virtual hosts: a deletion (its
	// hooks and its stored records, all by name) ends before the name can
	// be made again.
	admin    sync.Mutex
	mu       sync.RWMutex
	vhosts   map[string]*VHost
	onDelete []func(name string)
	counts   queueCounters
	// recovering: see Recovering.
	recovering atomic.Bool
}

// QueueCounts are the queues declared (queue.declare and its API
// equivalent, passive ones aside), created and deleted in every virtual
// host since the node started: RabbitMQ's rabbitmq_queues_*_total.
type QueueCounts struct {
	Declared, Created, Deleted uint64
}

type queueCounters struct {
	declared, created, deleted atomic.Uint64
}

// QueueCounts returns the queue counters.
func (r *Registry) QueueCounts() QueueCounts {
	return QueueCounts{Declared: r.counts.declared.Load(), Created: r.counts.created.Load(), Deleted: r.counts.deleted.Load()}
}

// NewRegistry returns an empty registry. A broker calls Load, then Add for
// its default virtual host.
func NewRegistry(d Deps) *Registry {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Registry{deps: d, vhosts: map[string]*VHost{}}
}

// Get returns the named virtual host, or nil.
func (r *Registry) Get(name string) *VHost {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.vhosts[name]
}

// Add creates the named virtual host if it does not exist, stores it, and
// returns it.
func (r *Registry) Add(name string) (*VHost, error) {
	if r.replicated() {
		if res := r.replicate(wire.Table{"op": opVhostAdd, "vhost": name}); res.err != nil {
			return nil, res.err
		}
		if v := r.Get(name); v != nil {
			return v, nil
		}
		return nil, ErrNoVhost
	}
	return r.addVhost(name)
}

func (r *Registry) addVhost(name string) (*VHost, error) {
	r.admin.Lock()
	defer r.admin.Unlock()
	v, created := r.add(name)
	if created {
		if err := r.saveVhost(v); err != nil {
			return v, fmt.Errorf("storing vhost %q: %w", name, err)
		}
	}
	return v, nil
}

func (r *Registry) add(name string) (*VHost, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v := r.vhosts[name]; v != nil {
		return v, false
	}
	v := newVHost(name, r)
	r.vhosts[name] = v
	return v, true
}

// Names returns the virtual hosts' names in sorted order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.vhosts))
}
