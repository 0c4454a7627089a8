package exchange

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

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
	return string(appendTable(nil, args))
}

func appendTable(b []byte, t wire.Table) []byte {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = appendValue(b, t[k])
	}
	return b
}

// appendValue appends v's AMQP type code and an unambiguous encoding of its
// value.
func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, 'V')
	case bool:
		if v {
			return append(b, 't', 1)
		}
		return append(b, 't', 0)
	case int8:
		return append(b, 'b', byte(v))
	case uint8:
		return append(b, 'B', v)
	case int16:
		return binary.BigEndian.AppendUint16(append(b, 's'), uint16(v))
	case uint16:
		return binary.BigEndian.AppendUint16(append(b, 'u'), v)
	case int32:
		return binary.BigEndian.AppendUint32(append(b, 'I'), uint32(v))
	case uint32:
		return binary.BigEndian.AppendUint32(append(b, 'i'), v)
	case int64:
		return binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v))
	case int:
		return binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v))
	case float32:
		return binary.BigEndian.AppendUint32(append(b, 'f'), math.Float32bits(v))
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 'd'), math.Float64bits(v))
	case wire.Decimal:
		return binary.BigEndian.AppendUint32(append(b, 'D', v.Scale), uint32(v.Value))
	case string:
		b = binary.AppendUvarint(append(b, 'S'), uint64(len(v)))
		return append(b, v...)
	case []byte:
		b = binary.AppendUvarint(append(b, 'x'), uint64(len(v)))
		return append(b, v...)
	case time.Time:
		return binary.BigEndian.AppendUint64(append(b, 'T'), uint64(v.Unix()))
	case []any:
		b = binary.AppendUvarint(append(b, 'A'), uint64(len(v)))
		for _, e := range v {
			b = appendValue(b, e)
		}
		return b
	case wire.Table:
		return appendTable(append(b, 'F'), v)
	case map[string]any:
		return appendTable(append(b, 'F'), v)
	}
	// Not a field value wire can carry; keep it distinct from every other.
	s := fmt.Sprintf("%T:%#v", v, v)
	b = binary.AppendUvarint(append(b, '?'), uint64(len(s)))
	return append(b, s...)
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
