package exchange

import (
	"errors"
	"fmt"
	"sync"

	"github.com/warrenmq/warren/amqp/wire"
)

// CanonicalArgs returns a string that is equal for two argument tables exactly
// when RabbitMQ would consider them the same binding arguments: the same keys
// with values of the same AMQP type and value. Empty and nil tables give "".
//
// RabbitMQ sorts a binding's top-level arguments by key before comparing them
// but keeps nested tables in wire order; wire.Table has no order, so nested
// tables are compared as unordered here.
func CanonicalArgs(args wire.Table) string {
	if len(args) == 0 {
		return ""
	}
	// wire's encoding is typed and writes keys in sorted order, at every
	// level: equal tables give equal bytes.
	b, err := wire.AppendTable(nil, args)
	if err != nil {
		// Not a table wire can carry (never true of decoded arguments):
		// keep it distinct from every table that is.
		return fmt.Sprintf("?%#v", args)
	}
	return string(b)
}

// bindingKey is a binding's identity.
type bindingKey struct {
	dest Destination
	key  string
	args string // CanonicalArgs
}

// bindingEntry is one binding held by a bindingSet. Entries are linked in
// insertion order and, separately, per destination.
type bindingEntry struct {
	bindingKey
	table        wire.Table
	prev, next   *bindingEntry
	dprev, dnext *bindingEntry
	idx          int // position in a router's own slice, where it keeps one
}

func (e *bindingEntry) binding() Binding {
	return Binding{Destination: e.dest, Key: e.key, Args: e.table}
}

// bindingSet is the set of an exchange's bindings: identity lookup,
// insertion-order iteration and per-destination lists, all O(1) per change.
// It is not safe for concurrent use; routers guard it with their lock.
type bindingSet struct {
	byKey      map[bindingKey]*bindingEntry
	byDest     map[Destination]*bindingEntry // head of each destination's list
	head, tail *bindingEntry
}

// errNilDestination is returned by Bind for a binding without a destination,
// a programming error in the caller.
var errNilDestination = errors.New("exchange: binding has no destination")

func keyOf(b Binding) bindingKey {
	return bindingKey{dest: b.Destination, key: b.Key, args: CanonicalArgs(b.Args)}
}

func (s *bindingSet) len() int { return len(s.byKey) }

func (s *bindingSet) get(k bindingKey) *bindingEntry { return s.byKey[k] }

// add inserts a binding with identity k and returns its entry, or nil when
// the set already has one.
func (s *bindingSet) add(k bindingKey, args wire.Table) *bindingEntry {
	if _, ok := s.byKey[k]; ok {
		return nil
	}
	if s.byKey == nil {
		s.byKey = make(map[bindingKey]*bindingEntry)
		s.byDest = make(map[Destination]*bindingEntry)
	}
	e := &bindingEntry{bindingKey: k, table: args, prev: s.tail}
	if s.tail != nil {
		s.tail.next = e
	} else {
		s.head = e
	}
	s.tail = e
	if h := s.byDest[k.dest]; h != nil {
		e.dnext = h
		h.dprev = e
	}
	s.byDest[k.dest] = e
	s.byKey[k] = e
	return e
}

// remove deletes e, which must be in the set.
func (s *bindingSet) remove(e *bindingEntry) {
	delete(s.byKey, e.bindingKey)
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	if e.dprev != nil {
		e.dprev.dnext = e.dnext
	} else if e.dnext != nil {
		s.byDest[e.dest] = e.dnext
	} else {
		delete(s.byDest, e.dest)
	}
	if e.dnext != nil {
		e.dnext.dprev = e.dprev
	}
	e.prev, e.next, e.dprev, e.dnext = nil, nil, nil, nil
}

// removeDest deletes every binding to d, calling fn for each before it goes.
func (s *bindingSet) removeDest(d Destination, fn func(*bindingEntry)) int {
	n := 0
	for e := s.byDest[d]; e != nil; e = s.byDest[d] {
		fn(e)
		s.remove(e)
		n++
	}
	return n
}

func (s *bindingSet) each(fn func(Binding) bool) {
	for e := s.head; e != nil; e = e.next {
		if !fn(e.binding()) {
			return
		}
	}
}

// routerBase is what every router has: its lock, its bindings, and how a
// binding leaves the router's own index. Its methods are the routers'
// Unbind, RemoveDestination, Len and Bindings.
type routerBase struct {
	mu  sync.RWMutex
	set bindingSet
	// drop takes a binding out of the router's own index, under mu, just
	// before it leaves set. Every constructor sets it.
	drop func(e *bindingEntry)
	// changed, when set, runs under mu once bindings have been removed.
	changed func()
}

// Unbind implements Router.
func (r *routerBase) Unbind(b Binding) bool {
	k := keyOf(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.set.get(k)
	if e == nil {
		return false
	}
	r.drop(e)
	r.set.remove(e)
	if r.changed != nil {
		r.changed()
	}
	return true
}

// RemoveDestination implements Router.
func (r *routerBase) RemoveDestination(d Destination) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.set.removeDest(d, r.drop)
	if n > 0 && r.changed != nil {
		r.changed()
	}
	return n
}

// Len implements Router.
func (r *routerBase) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.set.len()
}

// Bindings implements Router.
func (r *routerBase) Bindings(fn func(Binding) bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.set.each(fn)
}
