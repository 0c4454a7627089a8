package exchange

import (
	"github.com/warrenmq/warren/amqp/wire"
)

// Direct is the direct exchange type: a message goes to the destinations
// bound with a binding key equal to its routing key. Routing is one hash
// lookup whatever the number of bindings.
type Direct struct {
	routerBase
	keys map[string]directKey
}

// directKey holds the destinations of one binding key. The common case, one
// destination, is stored in the map itself, so that routing touches no other
// memory.
type directKey struct {
	one  Destination // the only destination, when many is nil
	refs int32       // bindings to one
	many *destSet
}

// NewDirect returns an empty direct exchange router.
func NewDirect() *Direct {
	x := &Direct{keys: make(map[string]directKey)}
	x.drop = x.dropKey
	return x
}

// Bind implements Router. It fails only for a nil destination.
func (x *Direct) Bind(b Binding) (bool, error) {
	if b.Destination == nil {
		return false, errNilDestination
	}
	k := keyOf(b)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.set.add(k, b.Args) == nil {
		return false, nil
	}
	dk, d := x.keys[b.Key], b.Destination
	switch {
	case dk.many != nil:
		dk.many.add(d)
	case dk.one == nil:
		dk.one, dk.refs = d, 1
	case dk.one == d:
		dk.refs++
	default:
		dk.many = new(destSet)
		for range dk.refs {
			dk.many.add(dk.one)
		}
		dk.many.add(d)
		dk.one, dk.refs = nil, 0
	}
	x.keys[b.Key] = dk
	return true, nil
}

// dropKey takes e out of the key map.
func (x *Direct) dropKey(e *bindingEntry) {
	dk := x.keys[e.key]
	if dk.many == nil {
		if dk.refs--; dk.refs == 0 {
			delete(x.keys, e.key)
			return
		}
		x.keys[e.key] = dk
		return
	}
	dk.many.release(e.dest)
	if dk.many.len() == 1 { // back to the inline form
		dk.one, dk.refs = dk.many.list[0], 1
		if dk.many.refs != nil {
			dk.refs = dk.many.refs[0]
		}
		dk.many = nil
		x.keys[e.key] = dk
	}
}

// Route implements Router. headers are ignored.
func (x *Direct) Route(key string, _ wire.Table, out []Destination) []Destination {
	x.mu.RLock()
	if dk, ok := x.keys[key]; ok {
		if dk.many == nil {
			out = append(out, dk.one)
		} else {
			out = append(out, dk.many.list...)
		}
	}
	x.mu.RUnlock()
	return out
}
