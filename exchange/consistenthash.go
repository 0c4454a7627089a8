package exchange

import (
	"errors"
	"slices"
	"strconv"

	"github.com/warrenmq/warren/amqp/wire"
)

// ConsistentHash is the x-consistent-hash exchange type of RabbitMQ's
// rabbitmq_consistent_hash_exchange plugin: each message goes to at most one
// destination, chosen by hashing its routing key (or a header, or a property)
// so that equal values always go to the same destination and the share of
// values each destination receives is proportional to its weight.
//
// The binding key is the weight: a positive decimal integer. As in RabbitMQ,
// the ring holds one run of weight buckets per destination, in binding
// order, and a value picks its bucket by jump consistent hashing; adding a
// destination moves only values that go to it. The ring keeps a destination's
// first binding only: binding it again with another weight adds a binding
// but leaves the ring as it is, and removing any binding to a destination
// takes the destination off the ring, even when another binding to it
// remains (RabbitMQ's ring works the same way).
//
// What is hashed depends on the exchange arguments:
//
//   - none: the routing key passed to Route;
//   - "hash-header": the value of that header (a header that is missing or
//     void hashes to one fixed value, so all such messages go to the same
//     destination);
//   - "hash-property": the value of that message property, which the caller
//     passes to Route as the key (see HashProperty); "" stands for an absent
//     property.
//
// The hash function is not RabbitMQ's (Erlang's phash2 and exs1024), so a
// given value may pick a different destination than it would in RabbitMQ;
// the distribution and the stability under change are the same.
type ConsistentHash struct {
	header   string // hash-header argument, or ""
	property string // hash-property argument, or ""

	routerBase
	ring    []ringMember
	onRing  map[Destination]int // index into ring
	buckets int64               // sum of the weights on the ring
}

type ringMember struct {
	dest   Destination
	weight int64
	end    int64 // one past the member's last bucket
}

// Properties RabbitMQ accepts for hash-property.
const (
	PropertyMessageID     = "message_id"
	PropertyCorrelationID = "correlation_id"
	PropertyTimestamp     = "timestamp"
)

// MaxWeight is the largest binding weight a consistent-hash exchange accepts.
// RabbitMQ has no limit but materialises one bucket per unit of weight, so
// far smaller weights already exhaust its memory.
const MaxWeight = 1<<31 - 1

// NewConsistentHash returns an empty x-consistent-hash router for an exchange
// declared with args. It validates hash-header and hash-property as RabbitMQ
// does, with 406 PRECONDITION_FAILED errors.
func NewConsistentHash(args wire.Table) (*ConsistentHash, error) {
	x := &ConsistentHash{onRing: make(map[Destination]int)}
	x.drop = func(e *bindingEntry) { x.offRing(e.dest) }
	var hasHeader, hasProperty bool
	var err error
	if x.header, hasHeader, err = stringArg(args, "hash-header"); err != nil {
		return nil, err
	}
	if x.property, hasProperty, err = stringArg(args, "hash-property"); err != nil {
		return nil, err
	}
	switch {
	case hasHeader && hasProperty:
		return nil, wire.Errorf(wire.PreconditionFailed, "hash-header and hash-property are mutually exclusive")
	case hasProperty:
		switch x.property {
		case PropertyMessageID, PropertyCorrelationID, PropertyTimestamp:
		default:
			return nil, wire.Errorf(wire.PreconditionFailed, "Unsupported property: "+x.property)
		}
	}
	return x, nil
}

// stringArg returns the longstr argument name. RabbitMQ fails with an
// internal error on a value of another type; this refuses it with 406.
func stringArg(args wire.Table, name string) (string, bool, error) {
	v, ok := args[name]
	if !ok {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, wire.Errorf(wire.PreconditionFailed,
			"Invalid "+name+" field type "+erlType(v)+" (value "+erlTerm(v)+"); expected longstr")
	}
	return s, true, nil
}

// HashHeader returns the header whose value is hashed, or "".
func (x *ConsistentHash) HashHeader() string { return x.header }

// HashProperty returns the message property whose value is hashed
// (PropertyMessageID, PropertyCorrelationID or PropertyTimestamp), or "".
// When it is not "", the caller passes to Route, instead of the routing key,
// the property's value: the message-id or correlation-id as it is, the
// timestamp as its number of seconds in decimal (strconv.FormatUint), and ""
// when the message does not have the property.
func (x *ConsistentHash) HashProperty() string { return x.property }

// parseWeight checks a binding key as RabbitMQ's validate_binding does
// (Erlang's list_to_integer: an optional sign and decimal digits).
func parseWeight(key string) (int64, error) {
	w, err := strconv.ParseInt(key, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && key[0] != '-':
		return 0, wire.Errorf(wire.PreconditionFailed,
			"The binding key must not be greater than "+strconv.Itoa(MaxWeight))
	case errors.Is(err, strconv.ErrRange):
		w = 0
	case err != nil:
		return 0, wire.Errorf(wire.PreconditionFailed, "The binding key must be an integer: "+erlTerm(key))
	}
	if w < 1 {
		return 0, wire.Errorf(wire.PreconditionFailed, "The binding key must be greater than 0")
	}
	if w > MaxWeight {
		return 0, wire.Errorf(wire.PreconditionFailed,
			"The binding key must not be greater than "+strconv.Itoa(MaxWeight))
	}
	return w, nil
}

// Bind implements Router. A binding key that is not a positive integer is a
// 406 PRECONDITION_FAILED *wire.Error with RabbitMQ's text.
func (x *ConsistentHash) Bind(b Binding) (bool, error) {
	if b.Destination == nil {
		return false, errNilDestination
	}
	w, err := parseWeight(b.Key)
	if err != nil {
		return false, err
	}
	k := keyOf(b)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.set.add(k, b.Args) == nil {
		return false, nil
	}
	if _, ok := x.onRing[b.Destination]; !ok {
		x.buckets += w
		x.onRing[b.Destination] = len(x.ring)
		x.ring = append(x.ring, ringMember{dest: b.Destination, weight: w, end: x.buckets})
	}
	return true, nil
}

// offRing takes d off the ring; the members after it move down.
func (x *ConsistentHash) offRing(d Destination) {
	i, ok := x.onRing[d]
	if !ok {
		return
	}
	delete(x.onRing, d)
	x.buckets -= x.ring[i].weight
	x.ring = slices.Delete(x.ring, i, i+1)
	end := int64(0)
	if i > 0 {
		end = x.ring[i-1].end
	}
	for j := i; j < len(x.ring); j++ {
		end += x.ring[j].weight
		x.ring[j].end = end
		x.onRing[x.ring[j].dest] = j
	}
}

// Route implements Router: it appends at most one destination. key is the
// routing key, or the property value when HashProperty is not "".
func (x *ConsistentHash) Route(key string, headers wire.Table, out []Destination) []Destination {
	var h uint64
	if x.header != "" {
		h = hashValue(headers[x.header])
	} else {
		h = hashString(key)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.buckets == 0 {
		return out
	}
	b := jumpHash(h, x.buckets)
	lo, hi := 0, len(x.ring)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.ring[m].end > b {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return append(out, x.ring[lo].dest)
}

// jumpHash is Lamping and Veach's jump consistent hash: the bucket in
// [0, n) for key, such that growing n only moves keys to new buckets.
func jumpHash(key uint64, n int64) int64 {
	b, j := int64(-1), int64(0)
	for j < n {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return b
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashString hashes s with FNV-1a and a final avalanche (MurmurHash3's
// fmix64), so that similar keys land far apart.
func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return fmix64(h)
}

func hashBytes(s []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range s {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return fmix64(h)
}

func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// hashValue hashes a header value as RabbitMQ sees it: longstr and byte
// arrays by content (as the routing key), numbers by value, and a missing or
// void header as the Erlang atom undefined.
func hashValue(v any) uint64 {
	switch v := v.(type) {
	case string:
		return hashString(v)
	case []byte:
		return hashBytes(v)
	case nil:
		return fmix64(fnvOffset ^ 'V')
	}
	rv := headerValue(v)
	if rv.kind == kindNested {
		return hashString(string(kindNested) + CanonicalArgs(wire.Table{"": v}))
	}
	h := uint64(fnvOffset)
	h = (h ^ uint64(rv.kind)) * fnvPrime
	for i := 0; i < 8; i++ {
		h = (h ^ uint64(byte(rv.n>>(8*i)))) * fnvPrime
	}
	return fmix64(h)
}
