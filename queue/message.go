// Package queue implements Warren's classic queue: messages in order,
// consumers with prefetch credit, deliveries and their acknowledgements.
//
// A queue is a struct under its own lock, not a goroutine: whoever holds the
// work does it. A publisher's goroutine enqueues and, when a consumer has
// credit, delivers at once; an acknowledgement's goroutine frees credit and
// delivers the next message. Consumers are reached through the Sink
// interface, which the AMQP front end implements.
package queue

import (
	"github.com/warrenmq/warren/amqp/wire"
)

// Message is one published message. It is immutable once built and shared,
// never copied, by every queue the publish reached.
type Message struct {
	Exchange   string
	RoutingKey string
	// Props are the raw content-header properties, re-sent on delivery.
	Props wire.RawProperties
	// Body is the message body.
	Body []byte
	// Persistent is delivery-mode 2.
	Persistent bool
}

// NewMessage builds a message whose properties and body live in one
// allocation: data holds the properties followed by the body.
func NewMessage(exchange, routingKey string, data []byte, propsLen int) *Message {
	m := &Message{
		Exchange:   exchange,
		RoutingKey: routingKey,
		Props:      wire.RawProperties(data[:propsLen:propsLen]),
		Body:       data[propsLen:],
	}
	m.Persistent = m.Props.DeliveryMode() == 2
	return m
}

// Size is the message's body size, the figure length limits count.
func (m *Message) Size() int { return len(m.Body) }

// Entry is a message's place in one queue.
type Entry struct {
	Msg         *Message
	Seq         uint64 // position in the queue, increasing in publish order
	Redelivered bool
}
