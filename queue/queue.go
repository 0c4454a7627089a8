package queue

import (
	"strconv"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
)

// Queue is a queue of any kind, as the AMQP front end and the virtual host
// use it. Every method is safe for concurrent use. A kind keeps its state
// under its own lock; the methods that take a callback (AddConsumer's
// started, Sink.Deliver) say whether it runs under that lock.
type Queue interface {
	// Name returns the queue's name.
	Name() string
	// Config returns what the queue was declared with. Callers must not
	// change it.
	Config() *Config
	// Settings returns the queue's effective settings now: those it was
	// created with (Config().Settings), or the last SetSettings gave.
	Settings() Settings
	// SetSettings changes the settings a policy may change (all but
	// MaxPriority, SingleActiveConsumer and Deduplicate, which stay as
	// declared): a lower length limit applies at once, a new message TTL
	// to messages enqueued from then on.
	SetSettings(s Settings)

	// Enqueue takes m and delivers it at once when a consumer has credit.
	// It is called through Publish, which routes one message to all its
	// queues and ends the publish (see Message.Hold).
	Enqueue(m *Message) Receipt

	// AddConsumer registers c and starts delivering to it. started, when
	// not nil, runs under the queue's lock once c is accepted and before the
	// first delivery (so basic.consume-ok precedes the messages).
	AddConsumer(c *Consumer, started func()) error
	// RemoveConsumer drops c (basic.cancel, channel close). Its
	// unacknowledged deliveries stay with its channel, which settles them.
	RemoveConsumer(c *Consumer)
	// Resume lets the queue offer c messages again after its sink refused
	// one.
	Resume(c *Consumer)

	// Get takes the next message for basic.get. It returns the entry, the
	// number of messages left ready, and false when the queue is empty.
	Get(noAck bool) (e Entry, left int, ok bool)
	// Settle ends deliveries made to c (nil for basic.get) as how says, and
	// offers more messages.
	Settle(c *Consumer, entries []Entry, how Settlement)

	// Purge drops the ready messages (unacknowledged ones stay) and returns
	// how many it dropped.
	Purge() int
	// Delete deletes the queue unless ifUnused and it has consumers (406) or
	// ifEmpty and it has ready messages (406). Consumers are told through
	// their sinks. It returns the number of ready messages dropped.
	Delete(ifUnused, ifEmpty bool) (int, error)
	// Deleted reports whether the queue has been deleted.
	Deleted() bool

	// Stats returns the queue's counts.
	Stats() Stats
}

// Config is what a queue is declared with, as the virtual host parsed it.
type Config struct {
	Name       string
	VHost      string
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       wire.Table
	// Kind is the queue's kind, the x-queue-type it was declared with
	// ("classic" when none).
	Kind string
	// Owner is the connection that owns an exclusive queue, 0 for none.
	Owner uint64
	// Settings are the queue's effective settings when it was created
	// (its arguments with the policies that applied then); Queue.Settings
	// has the current ones.
	Settings
	// OnAutoDelete runs (without the queue's lock) when an auto-delete queue
	// loses its last consumer and deletes itself.
	OnAutoDelete func(q Queue)
	// DeadLetterSink receives the messages the queue discards while it
	// dead-letters (Settings.DeadLetterExchange); nil drops them.
	DeadLetterSink DeadLetterSink
	// ID is the kind's own id for the queue, kept with its definition: 0
	// asks the kind for a new one, which it sets here.
	ID uint64
	// Recover says that the queue existed before the node restarted: the
	// kind loads what it kept of it.
	Recover bool
	// Node is the cluster node the queue lives on ("" outside a cluster).
	Node string
	// Members are the nodes a replicated queue's replicas live on (see
	// Replicated), as placed when it was declared.
	Members []string
}

// Settings are what a queue does with its messages, from its arguments
// (and, later, policies) as the virtual host resolved them. Their zero
// value is not "no limits": use NoSettings.
type Settings struct {
	// MaxLength and MaxLengthBytes bound the ready messages (count, body
	// bytes); negative means no limit. Overflow says what happens at the
	// limit.
	MaxLength      int64
	MaxLengthBytes int64
	Overflow       Overflow
	// SingleActiveConsumer is x-single-active-consumer: one consumer at a
	// time gets messages; the next takes over when it goes.
	SingleActiveConsumer bool
	// MessageTTL is x-message-ttl in milliseconds; negative means none.
	// A message's own expiration applies too: the lower one wins.
	MessageTTL int64
	// Expires is x-expires in milliseconds: the queue is deleted once it
	// has been unused that long. Zero means never.
	Expires int64
	// DeadLetter is set when the queue has x-dead-letter-exchange:
	// messages it discards (rejected, expired, dropped at the length limit,
	// past the delivery limit) go to DeadLetterExchange ("" is the default
	// exchange), with DeadLetterRoutingKey in place of their routing keys
	// when HasDeadLetterRoutingKey.
	DeadLetter              bool
	DeadLetterExchange      string
	DeadLetterRoutingKey    string
	HasDeadLetterRoutingKey bool
	// DeadLetterAtLeastOnce is x-dead-letter-strategy at-least-once: a
	// quorum queue with a dead-letter exchange and reject-publish keeps
	// what it dead-letters until the copies are safe where they were
	// routed. Other queues, and other settings, dead-letter at most once.
	DeadLetterAtLeastOnce bool
	// MaxPriority is x-max-priority: messages are offered highest priority
	// first; 0 means priorities are ignored.
	MaxPriority uint8
	// DeliveryLimit is x-delivery-limit: a message returned to the queue
	// more often than this is dead-lettered (reason delivery_limit) instead;
	// negative means no limit.
	DeliveryLimit int64
	// Deduplicate is x-message-deduplication (the deduplication plugin's
	// queue form): a message whose x-deduplication-header equals that of
	// a message the queue holds (ready or unacknowledged) is dropped.
	Deduplicate bool
}

// NoSettings are the settings of a queue declared without arguments.
var NoSettings = Settings{MaxLength: -1, MaxLengthBytes: -1, MessageTTL: -1, DeliveryLimit: -1}

// Overflow is a queue's behaviour at its length limit (x-overflow).
type Overflow uint8

const (
	// DropHead drops the oldest ready messages to make room (the default).
	DropHead Overflow = iota
	// RejectPublish refuses new messages; confirm-mode publishers get a nack.
	RejectPublish
	// RejectPublishDLX refuses new messages and dead-letters them.
	RejectPublishDLX
)

var overflowNames = [...]string{DropHead: "drop-head", RejectPublish: "reject-publish", RejectPublishDLX: "reject-publish-dlx"}

// String returns the x-overflow value for o.
func (o Overflow) String() string {
	if int(o) < len(overflowNames) {
		return overflowNames[o]
	}
	return "unknown"
}

// ParseOverflow reads an x-overflow value; ok is false for an unknown one.
func ParseOverflow(s string) (o Overflow, ok bool) {
	for i, name := range overflowNames {
		if s == name {
			return Overflow(i), true
		}
	}
	return DropHead, false
}

// PublishResult is what a queue did with a published message.
type PublishResult uint8

const (
	// Enqueued: the queue holds (or has delivered) the message.
	Enqueued PublishResult = iota + 1
	// Rejected: the queue is at its length limit and refuses new messages.
	Rejected
	// Gone: the queue has been deleted.
	Gone
	// Duplicate: the queue deduplicates and holds a message with the same
	// x-deduplication-header; the message is dropped (and counts as
	// routed, so a confirming publisher gets an ack).
	Duplicate
)

// Receipt is a queue's answer to Enqueue.
type Receipt struct {
	Result PublishResult
	// Promise comes due once the message is safe: on disk, or committed by
	// a majority. The zero Promise is kept already.
	Promise Promise
	// Backpressure, when not kept, asks the publisher to wait for it before
	// it publishes more (the queue's store is behind).
	Backpressure Promise
}

// Settlement is how a delivery ends.
type Settlement uint8

const (
	// Ack: the client acknowledged the delivery (basic.ack); the message is
	// gone.
	Ack Settlement = iota + 1
	// Requeue: the delivery failed; the message goes back to the queue,
	// near its original position and marked redelivered, and the return
	// counts towards its delivery count and the queue's delivery limit
	// (basic.reject with requeue, a channel or connection that closed with
	// it unacknowledged).
	Requeue
	// Discard: the client refused the message (nack or reject without
	// requeue); it goes to the queue's dead-letter sink.
	Discard
	// Release: the message goes back as with Requeue, but the return does
	// not count: the client did not try it, or was not the one to
	// (basic.nack with requeue, basic.recover, a consumer timeout, a
	// delivery the client never got, a message a management get or move
	// puts back), as RabbitMQ 4.3 counts them.
	Release
)

var settlementNames = [...]string{Ack: "ack", Requeue: "requeue", Discard: "discard", Release: "release"}

// SettlementOf returns the settlement numbered v (as encoded between
// nodes), false when there is none.
func SettlementOf(v uint64) (Settlement, bool) {
	if v < uint64(Ack) || v > uint64(Release) {
		return 0, false
	}
	return Settlement(v), true
}

// Returns reports whether s gives the message back to the queue.
func (s Settlement) Returns() bool { return s == Requeue || s == Release }

func (s Settlement) String() string {
	if int(s) < len(settlementNames) && settlementNames[s] != "" {
		return settlementNames[s]
	}
	return "settlement(" + strconv.Itoa(int(s)) + ")"
}

// Reason is why a queue dead-letters a message, named as RabbitMQ names it
// in the x-death header.
type Reason uint8

const (
	// ReasonRejected: a consumer rejected the message without requeueing it.
	ReasonRejected Reason = iota + 1
	// ReasonExpired: the message's TTL passed.
	ReasonExpired
	// ReasonMaxLen: the queue dropped the message at its length limit.
	ReasonMaxLen
	// ReasonDeliveryLimit: the message was returned more often than the
	// queue's delivery limit allows.
	ReasonDeliveryLimit
)

var reasonNames = [...]string{ReasonRejected: "rejected", ReasonExpired: "expired", ReasonMaxLen: "maxlen", ReasonDeliveryLimit: "delivery_limit"}

// String returns the reason as x-death writes it.
func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "unknown"
}

// DeadLetterSink takes the messages a queue discards. The virtual host
// implements it. Queues call it without holding their locks, so it may
// publish to other queues (or to the same one): but a message may still be
// shared with other queues, so it publishes a new message built from it
// (BuildMessage), never the discarded one itself.
type DeadLetterSink interface {
	DeadLetter(q Queue, reason Reason, msgs []*Message)
}

// SafeDeadLetterSink is a DeadLetterSink that dead-letters at least once:
// DeadLetterSafely dead-letters msgs (each for its reason), waits until
// their copies are safe in the queues they were routed to, and reports for
// each message whether it is done with (false: try again later).
type SafeDeadLetterSink interface {
	DeadLetterSafely(q Queue, reasons []Reason, msgs []*Message) []bool
}

// Sink receives a consumer's deliveries; the AMQP channel that owns the
// consumer implements it.
type Sink interface {
	// Deliver hands e to consumer c. It runs with the queue's lock held and
	// must not call back into the queue. It returns false, without taking
	// the entry, when the consumer's channel or connection has no room; the
	// sink then calls Queue.Resume(c) once it has.
	Deliver(c *Consumer, e Entry) bool
	// Cancelled tells the sink that the queue dropped c because the queue
	// was deleted. It runs without the queue's lock.
	Cancelled(c *Consumer)
}

// Consumer is one basic.consume on a queue, as the front end describes it.
// A queue keeps its own bookkeeping for each consumer (its credit, whether
// its sink refused a delivery) and never changes these fields.
type Consumer struct {
	Tag       string
	NoAck     bool
	Exclusive bool
	Priority  int
	// Prefetch is the consumer's own limit on unacknowledged deliveries
	// (basic.qos with global=false); 0 is unlimited.
	Prefetch int
	// Timeout is the delivery acknowledgement timeout for this consumer's
	// deliveries; 0 is none.
	Timeout time.Duration
	Sink    Sink
	// Queue is the queue the consumer consumes from.
	Queue Queue
}

// Reachable is implemented by queues that may be out of reach (a stand-in
// for a queue on another node of a cluster): Unreachable returns the error
// a client gets while it is, nil otherwise.
type Reachable interface {
	Unreachable() error
}

// Unreachable returns the error a client gets for q while it is out of
// reach, nil for a queue that is not (or cannot be).
func Unreachable(q Queue) error {
	if r, ok := q.(Reachable); ok {
		return r.Unreachable()
	}
	return nil
}

// Replicas is implemented by queues with replicas on several nodes
// (quorum): the management API shows where they are.
type Replicas interface {
	// Leader is the node that leads the queue now, "" when none does.
	Leader() string
	// Members are the nodes with a replica; Online those of them that are
	// running.
	Members() []string
	Online() []string
}

// Stats is a snapshot of a queue's counts.
type Stats struct {
	Ready     int
	Unacked   int
	Consumers int
	Published uint64
	Delivered uint64
	// ReadyBytes is the body bytes of ready messages, Resident the part of
	// them held in memory (the rest is paged out to a store).
	ReadyBytes int64
	Resident   int64
	// LastUsed is when a consumer was last added or removed or a
	// basic.get was made; zero when never (x-expires counts from it).
	LastUsed time.Time
	// Down is set when the queue lives on a node that cannot be reached
	// (its counts are then unknown).
	Down bool
	// DeadLettering counts the messages the queue keeps until their
	// dead-letter copies are safe (at-least-once dead-lettering): neither
	// ready nor unacknowledged, yet in the queue's messages.
	DeadLettering int
}

// Messages is the queue's message count as RabbitMQ reports it: ready,
// unacknowledged and being dead-lettered.
func (s Stats) Messages() int { return s.Ready + s.Unacked + s.DeadLettering }
