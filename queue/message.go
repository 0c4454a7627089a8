// Package queue is what every queue kind shares and what the rest of the
// broker sees of a queue: the Queue interface, the Message a publish
// carries, consumers and their Sink, the durability Promise an enqueue
// returns, how a delivery is settled (ack, requeue, discard) and where
// discarded messages go (the DeadLetterSink), and the registry of kinds
// (Kinds) that x-queue-type chooses from.
//
// The kinds themselves live elsewhere (queue/classic, and quorum): this
// package knows no store, so the AMQP front end and the virtual host, which
// use only the interface, do not depend on one.
package queue

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/warrenmq/warren/amqp/wire"
)

// Message is one published message. It is immutable once built and shared,
// never copied, by every queue the publish reached.
//
// Its fields live in one buffer, laid out as the store keeps it, so that a
// persistent message is written without another copy:
//
//	format(1) | len(exchange)(1) | exchange | len(routing key)(1) | routing key |
//	len(properties)(4) | properties | body
//
// where format is 1 for a message as a client published it, 2 for a copy
// the broker dead-lettered (see DeadLettered).
type Message struct {
	Exchange   string
	RoutingKey string
	// Props are the raw content-header properties, re-sent on delivery.
	Props wire.RawProperties
	// Body is the message body.
	Body []byte
	// ID is the message's id in the store of the kind that stored its
	// body, 0 when it is not stored. The first queue that stores the
	// message sets it, during the publish.
	ID uint64
	// data is the whole encoded message (see the layout above).
	data []byte
	// holder keeps something of the message's until the publish ends.
	holder Holder
}

// A Holder keeps something for a message while the publish that routes it
// is under way, typically a reference that stops one queue's
// acknowledgement from deleting a stored body that other queues have yet
// to take.
type Holder interface {
	// Routed is called once every queue the message was routed to has had
	// it (by Publish).
	Routed(m *Message)
}

// Hold asks that h.Routed(m) be called when the publish routing m ends. A
// message has at most one holder: the kind that stored its body. Only the
// publishing goroutine (inside Enqueue) may call it.
func (m *Message) Hold(h Holder) { m.holder = h }

// Holder returns the message's holder, or nil.
func (m *Message) Holder() Holder { return m.holder }

// routed ends the publish of m.
func (m *Message) routed() {
	if h := m.holder; h != nil {
		m.holder = nil
		h.Routed(m)
	}
}

// The message formats: the first byte of the encoded form.
const (
	formatPublished    = 1
	formatDeadLettered = 2
)

// AllocMessage returns a buffer for a message with the given exchange,
// routing key and sizes, with its header filled in, and the offset at which
// the caller copies the properties (the body follows them).
func AllocMessage(exchange, routingKey string, propsLen, bodyLen int) ([]byte, int) {
	b, off := AllocMessageHeader(exchange, routingKey, propsLen, bodyLen)
	return b[:cap(b)], off
}

// AllocMessageHeader is AllocMessage for a caller that appends the body as
// it arrives: the buffer's length ends after the properties, and its
// capacity leaves room for bodyCap body bytes.
func AllocMessageHeader(exchange, routingKey string, propsLen, bodyCap int) ([]byte, int) {
	hdr := 1 + 1 + len(exchange) + 1 + len(routingKey) + 4
	b := make([]byte, hdr+propsLen, hdr+propsLen+bodyCap)
	b[0] = formatPublished
	n := 1
	b[n] = byte(len(exchange))
	n += 1 + copy(b[n+1:], exchange)
	b[n] = byte(len(routingKey))
	n += 1 + copy(b[n+1:], routingKey)
	binary.BigEndian.PutUint32(b[n:], uint32(propsLen))
	return b, hdr
}

// errBadMessage is a stored message that does not parse.
var errBadMessage = errors.New("malformed stored message")

// DecodeMessage parses a buffer built by AllocMessage (or read back from the
// store) into a Message that keeps the buffer. exchange and routingKey, when
// they equal the encoded ones, are reused instead of allocating new strings.
func DecodeMessage(data []byte, exchange, routingKey string) (*Message, error) {
	if len(data) < 7 || data[0] != formatPublished && data[0] != formatDeadLettered {
		return nil, errBadMessage
	}
	n := 1
	el := int(data[n])
	if len(data) < n+1+el+1 {
		return nil, errBadMessage
	}
	ex := data[n+1 : n+1+el]
	n += 1 + el
	rl := int(data[n])
	if len(data) < n+1+rl+4 {
		return nil, errBadMessage
	}
	rk := data[n+1 : n+1+rl]
	n += 1 + rl
	pl := int(binary.BigEndian.Uint32(data[n:]))
	n += 4
	if pl > len(data)-n {
		return nil, errBadMessage
	}
	m := &Message{Props: wire.RawProperties(data[n : n+pl : n+pl]), Body: data[n+pl:], data: data}
	if string(ex) == exchange {
		m.Exchange = exchange
	} else {
		m.Exchange = string(ex)
	}
	if string(rk) == routingKey {
		m.RoutingKey = routingKey
	} else {
		m.RoutingKey = string(rk)
	}
	return m, nil
}

// Persistent reports whether the message has delivery-mode 2. It reads the
// raw properties (the message keeps no copy, so that it stays in a smaller
// allocation size class); callers ask it only where it matters.
func (m *Message) Persistent() bool { return m.Props.DeliveryMode() == 2 }

// Data returns the message's encoded form, what the store keeps.
func (m *Message) Data() []byte { return m.data }

// Size is the message's body size, the figure length limits count.
func (m *Message) Size() int { return len(m.Body) }

// Entry is a message's place in one queue. The queue hands it out with a
// delivery and takes it back, unchanged, when the delivery is settled; only
// Msg and Redelivered mean anything to the front end.
type Entry struct {
	// Msg is the message. A queue may drop it from memory while the entry
	// waits (paging) but always sets it on the entries it hands out.
	Msg *Message
	// Seq is the position in the queue, increasing in publish order.
	Seq uint64
	// ID is the message's store id when this queue holds an index entry
	// for it (0 when it does not).
	ID uint64
	// Size is the body size (known even while paged out).
	Size int64
	// Expires is when the message expires (unix milliseconds), 0 never.
	Expires int64
	// Returns is how often the message came back to the queue
	// (x-delivery-count).
	Returns     uint32
	Priority    uint8
	Redelivered bool
}

// WithDeliveryCount is e as a consumer gets it once it has come back to
// its queue: with an x-delivery-count header counting its returns.
func WithDeliveryCount(e Entry) Entry {
	n := int64(e.Returns)
	if m, err := Rewrite(e.Msg, e.Msg.Exchange, e.Msg.RoutingKey, func(p *wire.Properties) {
		if p.Headers == nil {
			p.Headers = wire.Table{}
		}
		p.Headers["x-delivery-count"] = n
	}); err == nil {
		e.Msg = m
	}
	return e
}

// Rewrite returns a new message with m's body, published to exchange with
// routingKey and with m's properties as edit changes them: for the
// messages the broker changes (a dead letter, a reply-to, a header added or
// removed). m itself is shared with other queues and never changed.
func Rewrite(m *Message, exchange, routingKey string, edit func(p *wire.Properties)) (*Message, error) {
	return rewrite(m, exchange, routingKey, m.data[0], edit)
}

// RewriteDeadLettered is Rewrite for the copy of m that dead-letters it:
// the copy is marked DeadLettered.
func RewriteDeadLettered(m *Message, exchange, routingKey string, edit func(p *wire.Properties)) (*Message, error) {
	return rewrite(m, exchange, routingKey, formatDeadLettered, edit)
}

func rewrite(m *Message, exchange, routingKey string, format byte, edit func(p *wire.Properties)) (*Message, error) {
	p, err := m.Props.Decode()
	if err != nil {
		return nil, err
	}
	edit(&p)
	raw, err := p.Append(nil)
	if err != nil {
		return nil, err
	}
	dm := BuildMessage(exchange, routingKey, raw, m.Body)
	dm.data[0] = format // before anyone else sees it
	return dm, nil
}

// DeadLettered reports whether the broker dead-lettered the message (or a
// message it was made from): only then are its x-death and
// x-{first,last}-death-* headers the broker's own record, to be extended
// when it dies again. As in RabbitMQ 4, such headers on a message a client
// published are not read: a message republished from a dead-letter queue
// starts its record afresh.
func (m *Message) DeadLettered() bool { return m.data[0] == formatDeadLettered }

// BuildMessage makes a message from parts.
func BuildMessage(exchange, routingKey string, props wire.RawProperties, body []byte) *Message {
	b, off := AllocMessage(exchange, routingKey, len(props), len(body))
	copy(b[off:], props)
	copy(b[off+len(props):], body)
	m, _ := DecodeMessage(b, exchange, routingKey)
	return m
}

// MaxDelay is the longest x-delay a delayed-message exchange honours, in
// milliseconds (the rabbitmq-delayed-message-exchange plugin's limit);
// a message with a longer one is routed at once.
const MaxDelay = 4294967295

// Delay reads a message's x-delay header as the delayed-message exchange
// plugin does: an integer of any width, a decimal string, or a number
// with a fraction (truncated), in milliseconds. ok is false when the
// message is not to be delayed: no header, another type, zero, negative,
// or past MaxDelay.
func Delay(props wire.RawProperties) (ms int64, ok bool) {
	if !props.HasHeaders() {
		return 0, false
	}
	h, err := props.Headers()
	if err != nil {
		return 0, false
	}
	switch v := h["x-delay"].(type) {
	case string:
		ms, err = strconv.ParseInt(v, 10, 64)
		ok = err == nil
	case float32:
		ms, ok = int64(v), true
	case float64:
		ms, ok = int64(v), true
	case wire.Decimal:
		ms = int64(v.Value)
		for range v.Scale {
			ms /= 10
		}
		ok = true
	default:
		ms, ok = wire.Int(v)
	}
	if !ok || ms <= 0 || ms > MaxDelay {
		return 0, false
	}
	return ms, true
}

// DeduplicationKey is a message's x-deduplication-header as a key, equal
// for the values the deduplication plugin takes as equal: the same string
// (of either kind), the same integer (of any width), or the same value of
// another type. ok is false when the message has no such header.
func DeduplicationKey(props wire.RawProperties) (key string, ok bool) {
	if !props.HasHeaders() {
		return "", false
	}
	h, err := props.Headers()
	if err != nil {
		return "", false
	}
	v, ok := h["x-deduplication-header"]
	if !ok {
		return "", false
	}
	if s, isString := v.(string); isString {
		return "s" + s, true
	}
	if n, isInt := wire.Int(v); isInt {
		return "i" + strconv.FormatInt(n, 10), true
	}
	b, err := wire.AppendTable(nil, wire.Table{"": v})
	if err != nil {
		return "", false
	}
	return "t" + string(b), true
}
