package vhost

import (
	"fmt"
	"sort"
	"sync"

	"github.com/warrenmq/warren/queue"
)

// DefaultName is the virtual host every broker starts with.
const DefaultName = "/"

// Registry holds a broker's virtual hosts. It is safe for concurrent use.
type Registry struct {
	storage *queue.Storage // nil: nothing persists
	mu      sync.RWMutex
	vhosts  map[string]*VHost
}

// NewRegistry returns an empty registry whose virtual hosts keep their
// durable definitions and messages in storage (nil: in memory only). A
// broker calls Load, then Add for its default virtual host.
func NewRegistry(storage *queue.Storage) *Registry {
	return &Registry{storage: storage, vhosts: map[string]*VHost{}}
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
	v, created := r.add(name)
	if created && r.storage != nil && r.storage.Store != nil {
		if err := r.storage.Store.PutDefinition(kindVhost, name, nil); err != nil {
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
	v := newVHost(name, r.storage)
	r.vhosts[name] = v
	return v, true
}

// Names returns the virtual hosts' names in sorted order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.vhosts))
	for n := range r.vhosts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
