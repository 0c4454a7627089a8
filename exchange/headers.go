package exchange

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
)

// Headers is the headers exchange type: a message goes to the destinations
// whose binding arguments match its headers. The routing key is ignored.
//
// The binding argument "x-match" says how: "all" (the default) needs every
// other argument to match, "any" needs one. Both ignore arguments whose key
// begins with "x-"; "all-with-x" and "any-with-x" include them. An argument
// of type void matches when the header is present, whatever its value;
// any other argument matches when the header has the same value, compared as
// RabbitMQ 4 compares Erlang terms (=:=):
//
//   - integers of every width compare by value (a signed 32-bit 1 matches an
//     unsigned 8-bit 1), but never equal a float (1 does not match 1.0);
//   - float and double compare by value, after widening float to double
//     (and, as =:= does since Erlang/OTP 27, 0.0 and -0.0 differ);
//   - longstr and byte array compare by content;
//   - a timestamp header is seen in milliseconds, as RabbitMQ 4 converts it
//     (mc_amqpl:routing_headers), while a timestamp argument stays in seconds,
//     so a timestamp argument never matches the same timestamp header but the
//     integer seconds*1000 does;
//   - booleans and decimals compare by value;
//   - arrays and tables compare element by element, types included.
//
// With x-match "all" and no arguments to check, every message matches; with
// "any" and none, no message does.
//
// Routing checks every binding, as RabbitMQ does, but cheaply: the
// argument keys of all bindings are interned to small integers, a message's
// headers are looked up once per route into a table indexed by them, and a
// binding's check is then a few comparisons per argument.
type Headers struct {
	routerBase
	bindings []*headersBinding

	// Interned argument keys: keyIdx maps a key to its index in keyNames
	// and keyRefs (the number of arguments using it; 0 when free).
	keyIdx   map[string]int32
	keyNames []string
	keyRefs  []int32
	freeKeys []int32
}

type matchMode uint8

const (
	matchAll matchMode = iota
	matchAny
)

type headersBinding struct {
	dest  Destination
	mode  matchMode
	pairs []headerPair
	entry *bindingEntry
}

type headerPair struct {
	key  string
	idx  int32 // interned key
	void bool
	val  routingValue
}

// NewHeaders returns an empty headers exchange router.
func NewHeaders() *Headers {
	x := new(Headers)
	x.drop = x.dropBinding
	return x
}

// parseXMatch validates a binding's x-match argument the way RabbitMQ's
// rabbit_exchange_type_headers:validate_binding does, and returns the mode and
// whether x- arguments take part.
func parseXMatch(args wire.Table) (mode matchMode, withX bool, err error) {
	v, ok := args["x-match"]
	if !ok {
		return matchAll, false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return 0, false, wire.Errorf(wire.PreconditionFailed,
			"Invalid x-match field type "+erlType(v)+" (value "+erlTerm(v)+"); expected longstr")
	}
	switch s {
	case "all":
		return matchAll, false, nil
	case "any":
		return matchAny, false, nil
	case "all-with-x":
		return matchAll, true, nil
	case "any-with-x":
		return matchAny, true, nil
	}
	return 0, false, wire.Errorf(wire.PreconditionFailed,
		"Invalid x-match field value "+erlTerm(s)+"; expected all, any, all-with-x, or any-with-x")
}

func compileHeaders(b Binding) (*headersBinding, error) {
	mode, withX, err := parseXMatch(b.Args)
	if err != nil {
		return nil, err
	}
	hb := &headersBinding{dest: b.Destination, mode: mode}
	for k, v := range b.Args {
		if k == "x-match" || (!withX && strings.HasPrefix(k, "x-")) {
			continue
		}
		p := headerPair{key: k}
		if v == nil {
			p.void = true
		} else {
			p.val = bindingValue(v)
		}
		hb.pairs = append(hb.pairs, p)
	}
	return hb, nil
}

// Bind implements Router. An invalid x-match argument is a 406
// PRECONDITION_FAILED *wire.Error with RabbitMQ's text.
func (x *Headers) Bind(b Binding) (bool, error) {
	if b.Destination == nil {
		return false, errNilDestination
	}
	hb, err := compileHeaders(b)
	if err != nil {
		return false, err
	}
	k := keyOf(b)
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.set.add(k, b.Args)
	if e == nil {
		return false, nil
	}
	hb.entry = e
	e.idx = len(x.bindings)
	x.bindings = append(x.bindings, hb)
	for i := range hb.pairs {
		hb.pairs[i].idx = x.intern(hb.pairs[i].key)
	}
	return true, nil
}

func (x *Headers) intern(k string) int32 {
	if i, ok := x.keyIdx[k]; ok {
		x.keyRefs[i]++
		return i
	}
	if x.keyIdx == nil {
		x.keyIdx = make(map[string]int32)
	}
	var i int32
	if n := len(x.freeKeys); n > 0 {
		i, x.freeKeys = x.freeKeys[n-1], x.freeKeys[:n-1]
		x.keyNames[i], x.keyRefs[i] = k, 1
	} else {
		i = int32(len(x.keyNames))
		x.keyNames = append(x.keyNames, k)
		x.keyRefs = append(x.keyRefs, 1)
	}
	x.keyIdx[k] = i
	return i
}

func (x *Headers) release(i int32) {
	if x.keyRefs[i]--; x.keyRefs[i] == 0 {
		delete(x.keyIdx, x.keyNames[i])
		x.keyNames[i] = ""
		x.freeKeys = append(x.freeKeys, i)
	}
}

// dropBinding releases e's interned arguments and takes it out of the
// binding list.
func (x *Headers) dropBinding(e *bindingEntry) {
	for _, p := range x.bindings[e.idx].pairs {
		x.release(p.idx)
	}
	i, last := e.idx, len(x.bindings)-1
	if i != last {
		x.bindings[i] = x.bindings[last]
		x.bindings[i].entry.idx = i
	}
	x.bindings[last] = nil
	x.bindings = x.bindings[:last]
}

// seenHeader is a message header reduced for comparison, in a table
// indexed by interned argument key.
type seenHeader struct {
	present bool
	isBytes bool // a byte array, kept in b to avoid a copy
	kind    valueKind
	n       int64
	s       string
	b       []byte
	nested  any
}

// seenStack is how many interned keys Route handles in a stack array.
const seenStack = 16

var seenPool = sync.Pool{New: func() any { return new([]seenHeader) }}

// Route implements Router. The routing key is ignored.
func (x *Headers) Route(_ string, headers wire.Table, out []Destination) []Destination {
	start := len(out)
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.bindings) == 0 {
		return out
	}
	var stack [seenStack]seenHeader
	var seen []seenHeader
	if k := len(x.keyNames); k <= seenStack {
		seen = stack[:k]
	} else {
		p := seenPool.Get().(*[]seenHeader)
		if cap(*p) < k {
			*p = make([]seenHeader, k)
		}
		seen = (*p)[:k]
		defer func() {
			clear(seen)
			seenPool.Put(p)
		}()
	}
	if len(headers) <= len(x.keyIdx) {
		for k, v := range headers {
			if i, ok := x.keyIdx[k]; ok {
				seen[i].set(v)
			}
		}
	} else {
		for i, k := range x.keyNames {
			if v, ok := headers[k]; ok && x.keyRefs[i] > 0 {
				seen[i].set(v)
			}
		}
	}
	for _, hb := range x.bindings {
		if hb.matches(seen) {
			out = append(out, hb.dest)
		}
	}
	return dedupTail(out, start)
}

func (h *seenHeader) set(v any) {
	h.present = true
	switch v := v.(type) {
	case []byte:
		h.kind, h.isBytes, h.b = kindBinary, true, v
	case string:
		h.kind, h.s = kindBinary, v
	default:
		rv := headerValue(v)
		h.kind, h.n, h.nested = rv.kind, rv.n, rv.nested
	}
}

// equal reports whether pair p (not void) equals header h (present).
func (p *headerPair) equal(h *seenHeader) bool {
	if p.val.kind != h.kind {
		return false
	}
	switch h.kind {
	case kindBinary:
		if h.isBytes {
			return p.val.s == string(h.b)
		}
		return p.val.s == h.s
	case kindNested:
		return typedEqual(p.val.nested, h.nested)
	case kindNone:
		return false
	}
	return p.val.n == h.n
}

func (hb *headersBinding) matches(seen []seenHeader) bool {
	if hb.mode == matchAll {
		for i := range hb.pairs {
			p := &hb.pairs[i]
			h := &seen[p.idx]
			if !h.present || !(p.void || p.equal(h)) {
				return false
			}
		}
		return true
	}
	for i := range hb.pairs {
		p := &hb.pairs[i]
		if h := &seen[p.idx]; h.present && (p.void || p.equal(h)) {
			return true
		}
	}
	return false
}

// valueKind classifies field values the way Erlang sees them once RabbitMQ
// has dropped the AMQP type tag.
type valueKind uint8

const (
	kindNone    valueKind = iota // void, or a type wire does not produce
	kindInt                      // b B s u I i l, and timestamps
	kindFloat                    // f d
	kindBinary                   // S x
	kindBool                     // t
	kindDecimal                  // D
	kindNested                   // A F: compared with their types
)

// routingValue is a field value reduced to what RabbitMQ compares.
type routingValue struct {
	kind   valueKind
	n      int64  // integer; float64 bits; bool 0/1; decimal scale<<32|value
	s      string // binary
	nested any    // array or table
}

// bindingValue reduces a binding argument. A timestamp stays in seconds.
func bindingValue(v any) routingValue {
	if t, ok := v.(time.Time); ok {
		return routingValue{kind: kindInt, n: t.Unix()}
	}
	return scalarValue(v)
}

// headerValue reduces a message header. A timestamp is in milliseconds.
func headerValue(v any) routingValue {
	if t, ok := v.(time.Time); ok {
		return routingValue{kind: kindInt, n: t.Unix() * 1000}
	}
	return scalarValue(v)
}

func scalarValue(v any) routingValue {
	switch v := v.(type) {
	case int8:
		return routingValue{kind: kindInt, n: int64(v)}
	case uint8:
		return routingValue{kind: kindInt, n: int64(v)}
	case int16:
		return routingValue{kind: kindInt, n: int64(v)}
	case uint16:
		return routingValue{kind: kindInt, n: int64(v)}
	case int32:
		return routingValue{kind: kindInt, n: int64(v)}
	case uint32:
		return routingValue{kind: kindInt, n: int64(v)}
	case int64:
		return routingValue{kind: kindInt, n: v}
	case int:
		return routingValue{kind: kindInt, n: int64(v)}
	case float32:
		return routingValue{kind: kindFloat, n: int64(math.Float64bits(float64(v)))}
	case float64:
		return routingValue{kind: kindFloat, n: int64(math.Float64bits(v))}
	case string:
		return routingValue{kind: kindBinary, s: v}
	case []byte:
		return routingValue{kind: kindBinary, s: string(v)}
	case bool:
		if v {
			return routingValue{kind: kindBool, n: 1}
		}
		return routingValue{kind: kindBool}
	case wire.Decimal:
		return routingValue{kind: kindDecimal, n: int64(v.Scale)<<32 | int64(uint32(v.Value))}
	case []any, wire.Table, map[string]any:
		return routingValue{kind: kindNested, nested: v}
	}
	return routingValue{}
}

// typedEqual compares two field values exactly, AMQP types included, as
// Erlang's =:= compares RabbitMQ's typed array elements and table fields.
func typedEqual(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case bool, int8, uint8, int16, uint16, int32, uint32, string, wire.Decimal:
		return a == b
	case int64:
		return eqInt64(a, b)
	case int:
		return eqInt64(int64(a), b)
	case float32:
		bf, ok := b.(float32)
		return ok && math.Float32bits(a) == math.Float32bits(bf)
	case float64:
		bf, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(bf)
	case []byte:
		bb, ok := b.([]byte)
		return ok && bytes.Equal(a, bb)
	case time.Time:
		bt, ok := b.(time.Time)
		return ok && a.Unix() == bt.Unix()
	case []any:
		ba, ok := b.([]any)
		if !ok || len(a) != len(ba) {
			return false
		}
		for i := range a {
			if !typedEqual(a[i], ba[i]) {
				return false
			}
		}
		return true
	case wire.Table:
		return tableEqual(a, b)
	case map[string]any:
		return tableEqual(a, b)
	}
	return false
}

func eqInt64(a int64, b any) bool {
	switch b := b.(type) {
	case int64:
		return a == b
	case int:
		return a == int64(b)
	}
	return false
}

func tableEqual(a map[string]any, b any) bool {
	var bt map[string]any
	switch b := b.(type) {
	case wire.Table:
		bt = b
	case map[string]any:
		bt = b
	default:
		return false
	}
	if len(a) != len(bt) {
		return false
	}
	for k, av := range a {
		bv, ok := bt[k]
		if !ok || !typedEqual(av, bv) {
			return false
		}
	}
	return true
}
