// Package wire is Warren's AMQP 0-9-1 codec: frames, methods, field tables and
// basic properties, in RabbitMQ's dialect of the protocol.
//
// It knows nothing about queues, exchanges, connections or sockets beyond
// []byte and io.Reader. Encoders append to a caller's buffer
// (AppendX(b []byte) []byte); decoders read from a byte slice with bounds
// checks and report malformed input as *Error carrying the AMQP reply code a
// broker must close with.
//
// The method types, class and method ids, reply codes and the "is a reply
// expected" rule are generated from spec.txt by internal/gen (go generate).
package wire

//go:generate go run ./internal/gen -spec internal/gen/spec.txt -o methods_gen.go
