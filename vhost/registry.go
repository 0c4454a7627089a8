package vhost

import (
	"sort"
	"sync"
)

// DefaultName is the virtual host every broker starts with.
const DefaultName = "/"

// Registry holds a broker's virtual hosts. It is safe for concurrent use.
type Registry struct {
	mu     sync.RWMutex
	vhosts map[string]*VHost
}

// NewRegistry returns a registry holding the default virtual host "/".
func NewRegistry() *Registry {
	r := &Registry{vhosts: map[string]*VHost{}}
	r.Add(DefaultName)
	return r
}

// Get returns the named virtual host, or nil.
func (r *Registry) Get(name string) *VHost {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.vhosts[name]
}

// Add creates the named virtual host if it does not exist and returns it.
func (r *Registry) Add(name string) *VHost {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v := r.vhosts[name]; v != nil {
		return v
	}
	v := newVHost(name)
	r.vhosts[name] = v
	return v
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
