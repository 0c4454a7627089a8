package exchange

import (
	"github.com/warrenmq/warren/amqp/wire"
)

// Fanout is the fanout exchange type: a message goes to every bound
// destination once, whatever its routing key and headers. Binding keys and
// arguments still make bindings distinct, as in RabbitMQ.
type Fanout struct {
	routerBase
	dests destSet
}

// NewFanout returns an empty fanout exchange router.
func NewFanout() *Fanout { return new(Fanout) }

// Bind implements Router. It fails only for a nil destination.
func (x *Fanout) Bind(b Binding) (bool, error) {
	if b.Destination == nil {
		return false, errNilDestination
	}
	k := keyOf(b)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.set.add(k, b.Args) == nil {
		return false, nil
	}
	x.dests.add(b.Destination)
	return true, nil
}

// Unbind implements Router.
func (x *Fanout) Unbind(b Binding) bool {
	k := keyOf(b)
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.set.get(k)
	if e == nil {
		return false
	}
	x.dests.release(e.dest)
	x.set.remove(e)
	return true
}

// RemoveDestination implements Router.
func (x *Fanout) RemoveDestination(d Destination) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.set.removeDest(d, func(e *bindingEntry) { x.dests.release(e.dest) })
}

// Route implements Router. The routing key and headers are ignored.
func (x *Fanout) Route(_ string, _ wire.Table, out []Destination) []Destination {
	x.mu.RLock()
	out = append(out, x.dests.list...)
	x.mu.RUnlock()
	return out
}
