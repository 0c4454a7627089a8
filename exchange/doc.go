// Package exchange implements Warren's exchange types: it holds an exchange's
// bindings and routes a message, given its routing key and headers, to the
// destinations (queues or exchanges) it goes to, with RabbitMQ's semantics.
//
// It is pure routing: no I/O, no goroutines, no knowledge of messages beyond
// the key and the headers. The vhost package owns exchanges, supplies the
// destinations, follows exchange-to-exchange bindings and handles the default
// exchange, alternate exchanges and the CC/BCC headers.
//
// # Use
//
// New builds the Router for an exchange type (Known tells which types
// exist): Direct, Fanout, Topic, Headers or ConsistentHash. Bind, Unbind and
// RemoveDestination change its bindings; Route finds where a message goes,
// appending to a caller-owned slice so that a warm path allocates nothing:
//
//	r, err := exchange.New("topic", nil)
//	added, err := r.Bind(exchange.Binding{Destination: q, Key: "stock.*.nyse"})
//	dests = r.Route("stock.ibm.nyse", headers, dests[:0])
//
// Every Router is safe for concurrent use. Routing takes a read lock (a topic
// cache hit takes none), so many publishers route at once; changing bindings takes the write lock and costs
// O(1) (O(words) for topic; removing a consistent-hash destination is O(n)),
// so that binding 100,000 keys one by one stays fast.
//
// # Bindings
//
// A binding's identity is (destination, binding key, arguments), as in
// RabbitMQ: binding twice with all three equal is a no-op, and the same
// destination and key with different arguments is a second binding, listed
// separately, though the destination still receives one copy of a message.
// Arguments are compared with their AMQP types (see CanonicalArgs).
//
// Bind validates what RabbitMQ validates for the type and returns its errors
// as *wire.Error, 406 PRECONDITION_FAILED with RabbitMQ's texts:
//
//	headers:            "Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x"
//	                    "Invalid x-match field type long (value 1); expected longstr"
//	x-consistent-hash:  "The binding key must be an integer: <<\"abc\">>"
//	                    "The binding key must be greater than 0"
//
// New returns 406 "unknown exchange type 'foo'" for an unknown type (a
// channel error since rabbitmq-server#11214, 2024, in 3.13 and 4.x; earlier
// releases closed the connection with 503 COMMAND_INVALID), and for
// x-consistent-hash
// "hash-header and hash-property are mutually exclusive" and "Unsupported
// property: app_id".
//
// # Routing
//
// Route appends each destination at most once per call, but does not look at
// what out held before the call: a caller that routes several exchanges into
// one slice (exchange-to-exchange bindings, CC keys) removes duplicates
// across calls itself. The routing rules of each type are on its type:
// Topic for the word rules and the empty key, Headers for x-match and value
// comparison, ConsistentHash for weights and what is hashed. A caller routing
// a message with CC or BCC keys calls Route once per key, except for
// x-consistent-hash, which RabbitMQ routes on the first routing key only.
//
// # Differences from RabbitMQ
//
// Where RabbitMQ's behaviour cannot be observed by clients or is a crash, this
// package does something close and says so:
//
//   - nested tables in binding arguments and headers compare without regard
//     to field order (wire.Table keeps none; RabbitMQ compares them in wire
//     order);
//   - an unknown exchange type always gets "unknown exchange type"; RabbitMQ
//     says "invalid exchange type" instead when the name happens to be an
//     atom its VM knows;
//   - x-consistent-hash hashes with FNV-1a and jump hashing rather than
//     phash2 and exs1024, refuses weights above MaxWeight, refuses a
//     non-longstr hash-header or hash-property with 406 (RabbitMQ fails with an
//     internal error), and treats an absent hash-property like an empty one.
package exchange
