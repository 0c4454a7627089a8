package exchange

import (
	"sync"

	"github.com/warrenmq/warren/amqp/wire"
)

// Direct is the direct exchange type: a message goes to the destinations
// bound with a binding key equal to its routing key. Routing is one hash
// lookup whatever the number of bindings.
type Direct struct {
	mu   sync.RWMutex
	set  bindingSet
	keys map[string]*destSet
}

// NewDirect returns an empty direct exchange router.
func NewDirect() *Direct {
	return &Direct{keys: make(map[string]*destSet)}
}

// Bind implements Router. It never fails.
func (x *Direct) Bind(b Binding) (bool, error) {
	k := keyOf(b)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.set.add(k, b.Args) == nil {
		return false, nil
	}
	ds := x.keys[b.Key]
	if ds == nil {
		ds = new(destSet)
		x.keys[b.Key] = ds
	}
	ds.add(b.Destination)
	return true, nil
}

// Unbind implements Router.
func (x *Direct) Unbind(b Binding) bool {
	k := keyOf(b)
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.set.get(k)
	if e == nil {
		return false
	}
	x.drop(e)
	x.set.remove(e)
	return true
}

func (x *Direct) drop(e *bindingEntry) {
	ds := x.keys[e.key]
	ds.release(e.dest)
	if ds.len() == 0 {
		delete(x.keys, e.key)
	}
}

// RemoveDestination implements Router.
func (x *Direct) RemoveDestination(d Destination) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.set.removeDest(d, x.drop)
}

// Route implements Router. headers are ignored.
func (x *Direct) Route(key string, _ wire.Table, out []Destination) []Destination {
	x.mu.RLock()
	if ds := x.keys[key]; ds != nil {
		out = append(out, ds.list...)
	}
	x.mu.RUnlock()
	return out
}

// Len implements Router.
func (x *Direct) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.set.len()
}

// Bindings implements Router.
func (x *Direct) Bindings(fn func(Binding) bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	x.set.each(fn)
}
