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
func NewFanout() *Fanout {
	x := new(Fanout)
	x.drop = func(e *bindingEntry) { x.dests.release(e.dest) }
	return x
}

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

// Route implements Router. The routing key and headers are ignored.
func (x *Fanout) Route(_ string, _ wire.Table, out []Destination) []Destination {
	x.mu.RLock()
	out = append(out, x.dests.list...)
	x.mu.RUnlock()
	return out
}
