package exchange

import (
	"github.com/warrenmq/warren/amqp/wire"
)

// Exchange type names, as clients send them in exchange.declare.
const (
	KindDirect         = "direct"
	KindFanout         = "fanout"
	KindTopic          = "topic"
	KindHeaders        = "headers"
	KindConsistentHash = "x-consistent-hash"
	// KindDelayed is the rabbitmq-delayed-message-exchange plugin's type:
	// messages with an x-delay header wait that long, then are routed as
	// the exchange's x-delayed-type routes them. Routing here is that
	// type's; the waiting is the virtual host's.
	KindDelayed = "x-delayed-message"
	// KindDeduplication is the rabbitmq-message-deduplication plugin's
	// exchange: a fanout that routes a message only when its
	// x-deduplication-header was not seen within x-cache-ttl. Routing here
	// is the fanout's; the seeing is the virtual host's.
	KindDeduplication = "x-message-deduplication"
)

// Destination is what a binding routes to: a queue or another exchange.
//
// The vhost package supplies the implementations, as pointers: routers
// compare destinations by identity (==) and use them as map keys, so the
// dynamic type must be comparable and two distinct destinations must never
// compare equal. Name is used only for diagnostics.
type Destination interface {
	Name() string
}

// Binding is one binding of an exchange to a destination.
//
// Its identity, as in RabbitMQ, is the triple (Destination, Key, Args):
// binding the same destination twice with the same key and arguments is a
// no-op, while the same destination and key with different arguments is a
// second binding. Arguments are compared by CanonicalArgs, so AMQP field types
// matter (a signed 32-bit 1 and a signed 64-bit 1 are different arguments).
//
// A Router keeps the Args table it is given; callers must not modify it
// afterwards.
type Binding struct {
	Destination Destination
	Key         string     // the binding key (routing pattern, weight, ...)
	Args        wire.Table // the binding arguments
}

// Router routes messages for one exchange: it holds the exchange's bindings
// and finds the destinations a message goes to. It is safe for concurrent
// use: many goroutines may Route while others Bind and Unbind.
type Router interface {
	// Bind adds a binding. It reports whether the binding is new (false when
	// an identical binding exists) and validates the type-specific parts of
	// the binding (a *wire.Error, 406 PRECONDITION_FAILED, when invalid).
	// b.Destination must not be nil.
	Bind(b Binding) (added bool, err error)

	// Unbind removes the binding with b's identity and reports whether there
	// was one.
	Unbind(b Binding) (removed bool)

	// RemoveDestination removes every binding to d (for instance because the
	// queue was deleted) and returns how many there were.
	RemoveDestination(d Destination) int

	// Route appends to out the destinations of a message with routing key key
	// and header table headers (nil when the message has none), and returns
	// the extended slice. Among the destinations this call appends, each
	// appears once. Route does not retain out.
	Route(key string, headers wire.Table, out []Destination) []Destination

	// Len returns the number of bindings.
	Len() int

	// Bindings calls fn for each binding, in the order they were added, until
	// fn returns false. The router is read-locked meanwhile: fn must not call
	// the router's Bind, Unbind or RemoveDestination.
	Bindings(fn func(Binding) bool)
}

// Known reports whether kind names an exchange type that New can build.
func Known(kind string) bool {
	switch kind {
	case KindDirect, KindFanout, KindTopic, KindHeaders, KindConsistentHash, KindDelayed, KindDeduplication:
		return true
	}
	return false
}

// New returns an empty Router for an exchange of type kind declared with the
// arguments args.
//
// An unknown kind yields a *wire.Error with RabbitMQ's code and text,
// 406 "PRECONDITION_FAILED - unknown exchange type 'foo'", a channel error
// (rabbitmq-server#11214, 2024; before it RabbitMQ closed the connection with
// 503 COMMAND_INVALID). Exchange
// arguments are validated where RabbitMQ validates them (x-consistent-hash's
// hash-header and hash-property); other arguments are ignored here.
func New(kind string, args wire.Table) (Router, error) {
	switch kind {
	case KindDirect:
		return NewDirect(), nil
	case KindFanout:
		return NewFanout(), nil
	case KindTopic:
		return NewTopic(), nil
	case KindHeaders:
		return NewHeaders(), nil
	case KindConsistentHash:
		return NewConsistentHash(args)
	case KindDeduplication:
		if _, err := DeduplicationCache(args); err != nil {
			return nil, err
		}
		return NewFanout(), nil
	case KindDelayed:
		inner, ok := args["x-delayed-type"].(string)
		if !ok || inner == KindDelayed || inner == KindDeduplication {
			// The plugin's words, as clients see them. (Deduplication is
			// the exchange's own doing, not a router's: it cannot be the
			// type that routes delayed messages.)
			return nil, wire.Errorf(wire.PreconditionFailed, "Invalid argument, 'x-delayed-type' must bean existing exchnage type")
		}
		return New(inner, args)
	}
	return nil, wire.Errorf(wire.PreconditionFailed, "unknown exchange type '"+kind+"'")
}
