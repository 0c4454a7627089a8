// Package quorum is the quorum queue kind: each queue is a Raft group
// (hashicorp/raft) whose state machine is the queue, so that a message a
// publisher was told is safe is on a majority of the queue's members.
package quorum

import (
	"cmp"
	"slices"

	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/queue"
)

// The machine is a quorum queue's replicated state: every member applies
// the same commands in the same order and reaches the same state, so that
// every decision (which consumer gets a message, what a length limit
// drops, when a message has expired) is taken inside Apply from the
// command and the state alone. Time comes in the commands (their proposer's
// clock); nothing in here reads a clock, a map's order or a random number.
//
// What a command leads to outside the state (a delivery to a consumer, a
// dead letter, an answer to the proposer) comes back as Effects, which
// the queue carries out: deliveries on the node whose consumer it is,
// dead letters on the leader alone.

// The commands. Each is its type byte, its proposer's clock (unix
// milliseconds: messages whose time has passed by then expire first) and
// then these fields.
const (
	cmdEnqueue      byte = iota + 1 // message
	cmdAttach                       // consumer, prefetch, priority, exclusive
	cmdDetach                       // consumer, keep
	cmdSettle                       // consumer, settlement, sequence numbers
	cmdGet                          // consumer (a node's get key), no-ack
	cmdPurge                        //
	cmdDropNode                     // node, boot to keep
	cmdExpire                       //
	cmdSettings                     // settings[, at-least-once]
	cmdNoop                         // nothing: it carries the commit index to followers
	cmdDeadLettered                 // sequence numbers: kept dead letters that are safe elsewhere
)

// DefaultCredit is how many unacknowledged deliveries a consumer with no
// prefetch limit (basic.qos 0) may have: the machine must bound what it
// hands out, so "unlimited" is this many.
const DefaultCredit = 2000

// ConsumerKey names a consumer in every member's state: the node its
// channel is on, that node's process (Boot, so that a restarted node's
// consumers are told from its earlier ones) and the consumer's number
// there. ID 0 is the node's basic.get.
type ConsumerKey struct {
	Node string
	Boot uint64
	ID   uint64
}

// settings are the queue settings the machine applies.
type settings struct {
	maxLength, maxLengthBytes int64
	overflow                  queue.Overflow
	messageTTL                int64
	deliveryLimit             int64
	deadLetter                bool
	singleActive              bool
	// atLeastOnce is x-dead-letter-strategy at-least-once; it holds only
	// with a dead-letter exchange and reject-publish (keeps).
	atLeastOnce bool
}

func settingsOf(s queue.Settings) settings {
	return settings{maxLength: s.MaxLength, maxLengthBytes: s.MaxLengthBytes, overflow: s.Overflow,
		messageTTL: s.MessageTTL, deliveryLimit: s.DeliveryLimit, deadLetter: s.DeadLetter, singleActive: s.SingleActiveConsumer,
		atLeastOnce: s.DeadLetterAtLeastOnce}
}

// keeps reports whether the queue dead-letters at least once, as RabbitMQ
// does it: with x-dead-letter-strategy at-least-once, a dead-letter
// exchange and reject-publish overflow (so that a queue whose dead letters
// cannot go anywhere refuses publishes rather than grow); otherwise at
// most once.
func (s *settings) keeps() bool {
	return s.atLeastOnce && s.deadLetter && s.overflow == queue.RejectPublish
}

func (s *settings) encode(e *cluster.Fields) {
	e.Int(s.maxLength)
	e.Int(s.maxLengthBytes)
	e.Uint(uint64(s.overflow))
	e.Int(s.messageTTL)
	e.Int(s.deliveryLimit)
	e.Bool(s.deadLetter)
	e.Bool(s.singleActive)
}

func (s *settings) decode(d *cluster.FieldReader) {
	s.maxLength, s.maxLengthBytes = d.Int(), d.Int()
	if o := d.Uint(); o <= uint64(queue.RejectPublishDLX) {
		s.overflow = queue.Overflow(o)
	} else {
		d.Fail()
	}
	s.messageTTL, s.deliveryLimit = d.Int(), d.Int()
	s.deadLetter, s.singleActive = d.Bool(), d.Bool()
}

// consumer is a consumer as the machine keeps it.
type consumer struct {
	key      ConsumerKey
	prefetch int // 0: DefaultCredit
	priority int
	checked  map[uint64]queue.Entry // deliveries not yet settled, by sequence number
	// cancelled: the consumer gets no more messages, and goes once it has
	// settled those it has.
	cancelled bool
	// exclusive: no other consumer may attach while it is attached.
	exclusive bool
}

func (c *consumer) credit() int {
	limit := c.prefetch
	if limit <= 0 {
		limit = DefaultCredit
	}
	return limit - len(c.checked)
}

// fifo is a queue of entries: pushed at the back, taken from the front.
type fifo struct {
	items []queue.Entry
	head  int
}

func (f *fifo) len() int { return len(f.items) - f.head }

func (f *fifo) push(e queue.Entry) { f.items = append(f.items, e) }

func (f *fifo) front() *queue.Entry { return &f.items[f.head] }

func (f *fifo) pop() queue.Entry {
	e := f.items[f.head]
	f.items[f.head] = queue.Entry{}
	f.head++
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	} else if f.head >= 1024 && f.head*2 >= len(f.items) {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items, f.head = f.items[:n], 0
	}
	return e
}

func (f *fifo) all() []queue.Entry { return f.items[f.head:] }

// Message priorities, as RabbitMQ 4.3's quorum queues have them: 32
// strict levels, always on (x-max-priority is not needed, and ignored); a
// message without a priority has DefaultPriority, and one above
// MaxPriority has MaxPriority. A higher level goes first; within a level,
// first in first out.
const (
	MaxPriority     = 31
	DefaultPriority = 4
)

// priorityOf is a message's level.
func priorityOf(e queue.Entry) int {
	p, ok := e.Msg.Props.Priority()
	if !ok {
		return DefaultPriority
	}
	return min(int(p), MaxPriority)
}

// levels are the ready messages never given back, by priority.
type levels struct {
	byPriority [MaxPriority + 1]fifo
	n          int
	top        int // no level above holds messages: first starts here
}

func (l *levels) len() int { return l.n }

func (l *levels) push(e queue.Entry) {
	p := priorityOf(e)
	l.byPriority[p].push(e)
	l.n++
	l.top = max(l.top, p)
}

// first is the fifo of the highest level holding messages, nil when none.
func (l *levels) first() *fifo {
	if l.n == 0 {
		return nil
	}
	for ; l.top > 0 && l.byPriority[l.top].len() == 0; l.top-- {
	}
	return &l.byPriority[l.top]
}

// all yields the messages in the order they would go out.
func (l *levels) all() []queue.Entry {
	out := make([]queue.Entry, 0, l.n)
	for p := MaxPriority; p >= 0; p-- {
		out = append(out, l.byPriority[p].all()...)
	}
	return out
}

// Machine is the state of one quorum queue.
type Machine struct {
	settings settings
	// returned messages go before the rest, in the order they came back,
	// whatever their priority (as in RabbitMQ's quorum queues); messages
	// are the rest.
	returns    fifo
	messages   levels
	readyBytes int64
	consumers  []*consumer // in the order they attached
	rr         int         // round-robin position in consumers
	gets       map[ConsumerKey]*consumer
	enqueued   uint64
	delivered  uint64
	lastIndex  uint64
	// kept are the messages dead-lettered at least once whose copies are
	// not known to be safe yet (cmdDeadLettered), in the order they were
	// dead-lettered; keptBytes their body bytes. They count towards the
	// length limits.
	kept      []DeadLetter
	keptBytes int64
}

// NewMachine returns an empty queue with settings s.
func NewMachine(s queue.Settings) *Machine {
	return &Machine{settings: settingsOf(s), gets: map[ConsumerKey]*consumer{}}
}

// Delivery is a message handed to a consumer.
type Delivery struct {
	Consumer ConsumerKey
	Entry    queue.Entry
}

// DeadLetter is a message the queue discarded, and why.
type DeadLetter struct {
	Reason queue.Reason
	Entry  queue.Entry
	// Kept: the queue dead-letters at least once and keeps the message
	// (Machine.Kept) until a DeadLetteredCommand says its copies are safe.
	Kept bool
}

// Effects are what applying one command leads to.
type Effects struct {
	Deliveries []Delivery
	// DeadLetters go to the dead-letter exchange when the queue has one
	// (the leader publishes them); otherwise they are dropped.
	DeadLetters []DeadLetter
	// Dropped are consumers the command took away (a node's consumers
	// after it restarted or was lost): their node cancels them.
	Dropped []ConsumerKey
	// Published is an enqueue's result.
	Published queue.PublishResult
	// Got, Left and Ok answer a basic.get.
	Got  queue.Entry
	Left int
	Ok   bool
	// Purged answers a purge.
	Purged int
	// Refused answers an attach the queue refused: an exclusive consumer
	// where there are others, or another where there is an exclusive one.
	Refused bool
	// Ready and Consumers answer a no-op: the queue's counts then.
	Ready, Consumers int
}

// exclusive reports whether an exclusive consumer is attached.
func (m *Machine) exclusive() bool {
	return slices.ContainsFunc(m.consumers, func(c *consumer) bool { return c.exclusive && !c.cancelled })
}

// Apply applies the command committed at index and returns its effects.
// A command that does not decode changes nothing.
func (m *Machine) Apply(index uint64, cmd []byte) Effects {
	var fx Effects
	m.lastIndex = index
	if len(cmd) == 0 {
		return fx
	}
	d := cluster.ReadFields(cmd[1:])
	now := d.Int()
	if d.Err() != nil {
		return fx
	}
	m.expire(now, &fx)
	switch cmd[0] {
	case cmdEnqueue:
		data := d.Bin()
		if d.Err() == nil {
			m.enqueue(index, now, data, &fx)
		}
	case cmdAttach:
		key := decodeKey(d)
		prefetch, priority, exclusive := int(d.Uint()), int(d.Int()), d.Bool()
		switch {
		case d.Err() != nil || m.find(key) >= 0:
		case m.Consumers() > 0 && (exclusive || m.exclusive()):
			fx.Refused = true
		default:
			m.consumers = append(m.consumers, &consumer{key: key, prefetch: prefetch, priority: priority, exclusive: exclusive,
				checked: map[uint64]queue.Entry{}})
		}
	case cmdDetach:
		key := decodeKey(d)
		keep := d.Bool()
		if d.Err() == nil {
			if c := m.consumer(key); keep && c != nil && key.ID != 0 {
				c.cancelled = true
				m.dropIfDone(c)
			} else {
				m.detach(key, &fx)
			}
		}
	case cmdSettle:
		key := decodeKey(d)
		how, known := queue.SettlementOf(d.Uint())
		n := d.Count()
		seqs := make([]uint64, 0, n)
		for range n {
			seqs = append(seqs, d.Uint())
		}
		if d.Err() == nil && known { // an unknown one (a later version's) changes nothing
			m.settle(key, how, seqs, &fx)
		}
	case cmdGet:
		key := decodeKey(d)
		noAck := d.Bool()
		if d.Err() == nil {
			m.get(key, noAck, &fx)
		}
	case cmdPurge:
		for m.returns.len() > 0 || m.messages.len() > 0 {
			m.take()
			fx.Purged++
		}
	case cmdDropNode:
		node, keep := d.Str(), d.Uint()
		if d.Err() == nil {
			m.dropNode(node, keep, &fx)
		}
	case cmdExpire:
		// expired above
	case cmdNoop:
		fx.Ready, _ = m.Ready()
		fx.Consumers = m.Consumers()
	case cmdSettings:
		var s settings
		s.decode(d)
		if d.Err() == nil && d.Left() > 0 {
			s.atLeastOnce = d.Bool() // absent from commands of earlier versions
		}
		if d.Err() == nil {
			m.settings = s
			if !s.keeps() {
				// As in RabbitMQ: leaving at-least-once drops what was kept.
				m.kept, m.keptBytes = nil, 0
			}
			m.trim(&fx)
		}
	case cmdDeadLettered:
		n := d.Count()
		seqs := make(map[uint64]bool, n)
		for range n {
			seqs[d.Uint()] = true
		}
		if d.Err() == nil {
			m.kept = slices.DeleteFunc(m.kept, func(dl DeadLetter) bool {
				if seqs[dl.Entry.Seq] {
					m.keptBytes -= dl.Entry.Size
					return true
				}
				return false
			})
		}
	}
	m.dispatch(&fx)
	return fx
}

func decodeKey(d *cluster.FieldReader) ConsumerKey {
	return ConsumerKey{Node: d.Str(), Boot: d.Uint(), ID: d.Uint()}
}

func (k ConsumerKey) encode(e *cluster.Fields) {
	e.Str(k.Node)
	e.Uint(k.Boot)
	e.Uint(k.ID)
}

// Ready returns the number of messages waiting for a consumer and their
// body bytes.
func (m *Machine) Ready() (int, int64) { return m.returns.len() + m.messages.len(), m.readyBytes }

// Unacked returns the number of deliveries not yet settled.
func (m *Machine) Unacked() int {
	n := 0
	for _, c := range m.consumers {
		n += len(c.checked)
	}
	for _, c := range m.gets {
		n += len(c.checked)
	}
	return n
}

// Kept returns the dead letters the queue keeps until their copies are
// safe (at-least-once), oldest first, at most n of them, and how many
// there are in all. The slice is the machine's: read it under the lock
// that guards the machine.
func (m *Machine) Kept(n int) ([]DeadLetter, int) {
	return m.kept[:min(n, len(m.kept))], len(m.kept)
}

// Consumers returns the number of attached consumers (not cancelled).
func (m *Machine) Consumers() int {
	n := 0
	for _, c := range m.consumers {
		if !c.cancelled {
			n++
		}
	}
	return n
}

// Counts returns how many messages were enqueued and delivered so far.
func (m *Machine) Counts() (enqueued, delivered uint64) { return m.enqueued, m.delivered }

// LastIndex is the index of the last command applied.
func (m *Machine) LastIndex() uint64 { return m.lastIndex }

// HeadExpires returns when the message at the head of the queue expires
// (unix milliseconds), 0 when it does not or the queue is empty.
func (m *Machine) HeadExpires() int64 {
	if f := m.head(); f != nil {
		return f.front().Expires
	}
	return 0
}

func (m *Machine) find(key ConsumerKey) int {
	return slices.IndexFunc(m.consumers, func(c *consumer) bool { return c.key == key })
}

// consumer returns the consumer or get key named key, nil when unknown.
func (m *Machine) consumer(key ConsumerKey) *consumer {
	if key.ID == 0 {
		return m.gets[key]
	}
	if i := m.find(key); i >= 0 {
		return m.consumers[i]
	}
	return nil
}

func (m *Machine) enqueue(index uint64, now int64, data []byte, fx *Effects) {
	msg, err := queue.DecodeMessage(data, "", "")
	if err != nil {
		return
	}
	e := queue.Entry{Msg: msg, Seq: index, Size: int64(msg.Size())}
	ttl, ok := m.settings.messageTTL, m.settings.messageTTL >= 0
	if exp, present, problem := msg.Props.ExpirationMillis(); present && problem == "" && (!ok || exp < ttl) {
		ttl, ok = exp, true
	}
	switch {
	case ok && ttl == 0:
		// Delivered at once if a consumer can take it, else expired.
		if c, _ := m.pick(); c == nil || m.head() != nil {
			fx.Published = queue.Enqueued
			m.enqueued++
			m.discard(queue.ReasonExpired, e, fx)
			return
		}
	case ok:
		e.Expires = now + ttl
	}
	if m.full(e.Size) {
		switch m.settings.overflow {
		case queue.RejectPublish:
			fx.Published = queue.Rejected
			return
		case queue.RejectPublishDLX:
			fx.Published = queue.Rejected
			m.discard(queue.ReasonMaxLen, e, fx)
			return
		}
	}
	fx.Published = queue.Enqueued
	m.enqueued++
	m.messages.push(e)
	m.readyBytes += e.Size
	m.trim(fx)
}

// full reports whether a message of size bytes would take the ready
// messages over a length limit.
func (m *Machine) full(size int64) bool {
	n, bytes := m.Ready()
	n, bytes = n+len(m.kept), bytes+m.keptBytes
	return m.settings.maxLength >= 0 && int64(n)+1 > m.settings.maxLength ||
		m.settings.maxLengthBytes >= 0 && bytes+size > m.settings.maxLengthBytes
}

// discard dead-letters e for reason: an effect for the leader to carry
// out at most once, or, when the queue dead-letters at least once, kept
// in the state as well until its copies are safe.
func (m *Machine) discard(reason queue.Reason, e queue.Entry, fx *Effects) {
	dl := DeadLetter{Reason: reason, Entry: e, Kept: m.settings.keeps()}
	if dl.Kept {
		m.kept = append(m.kept, dl)
		m.keptBytes += e.Size
	}
	fx.DeadLetters = append(fx.DeadLetters, dl)
}

// trim drops messages from the head while the queue is over a limit with
// drop-head overflow.
func (m *Machine) trim(fx *Effects) {
	if m.settings.overflow != queue.DropHead {
		return
	}
	for {
		n, bytes := m.Ready()
		if n == 0 || (m.settings.maxLength < 0 || int64(n) <= m.settings.maxLength) &&
			(m.settings.maxLengthBytes < 0 || bytes <= m.settings.maxLengthBytes) {
			return
		}
		m.discard(queue.ReasonMaxLen, m.take(), fx)
	}
}

// head is the fifo the next ready message comes from, nil when none.
func (m *Machine) head() *fifo {
	if m.returns.len() > 0 {
		return &m.returns
	}
	return m.messages.first()
}

// take removes the next ready message.
func (m *Machine) take() queue.Entry {
	f := m.head()
	if f != &m.returns {
		m.messages.n--
	}
	e := f.pop()
	m.readyBytes -= e.Size
	return e
}

// expire drops the messages at the head whose time has passed, as
// RabbitMQ's quorum queues do (a message behind one that lives longer
// waits for it).
func (m *Machine) expire(now int64, fx *Effects) {
	for f := m.head(); f != nil; f = m.head() {
		if exp := f.front().Expires; exp == 0 || exp > now {
			return
		}
		m.discard(queue.ReasonExpired, m.take(), fx)
	}
}

func (m *Machine) get(key ConsumerKey, noAck bool, fx *Effects) {
	if m.head() == nil {
		return
	}
	e := m.take()
	m.delivered++
	fx.Got, fx.Ok = e, true
	fx.Left, _ = m.Ready()
	if noAck {
		return
	}
	c := m.gets[key]
	if c == nil {
		c = &consumer{key: key, checked: map[uint64]queue.Entry{}}
		m.gets[key] = c
	}
	c.checked[e.Seq] = e
}

func (m *Machine) settle(key ConsumerKey, how queue.Settlement, seqs []uint64, fx *Effects) {
	c := m.consumer(key)
	if c == nil {
		return
	}
	for _, seq := range seqs {
		e, ok := c.checked[seq]
		if !ok {
			continue
		}
		delete(c.checked, seq)
		switch how {
		case queue.Requeue, queue.Release:
			m.giveBack(e, how == queue.Requeue, fx)
		case queue.Discard:
			m.discard(queue.ReasonRejected, e, fx)
		}
	}
	if key.ID == 0 && len(c.checked) == 0 {
		delete(m.gets, key)
	}
	m.dropIfDone(c)
}

// dropIfDone removes a cancelled consumer that has settled everything.
func (m *Machine) dropIfDone(c *consumer) {
	if c.cancelled && len(c.checked) == 0 {
		i := m.find(c.key)
		m.consumers = slices.Delete(m.consumers, i, i+1)
		if m.rr > i {
			m.rr--
		}
	}
}

// giveBack returns a delivered message to the queue, ahead of the
// messages never delivered, or dead-letters it past the delivery limit;
// counted: the return counts towards it.
func (m *Machine) giveBack(e queue.Entry, counted bool, fx *Effects) {
	if counted && e.Returns < ^uint32(0) {
		e.Returns++
	}
	e.Redelivered = true
	if m.settings.deliveryLimit >= 0 && int64(e.Returns) > m.settings.deliveryLimit {
		m.discard(queue.ReasonDeliveryLimit, e, fx)
		return
	}
	m.returns.push(e)
	m.readyBytes += e.Size
}

// detach drops a consumer (or a node's get key) and gives back what it
// had not settled, in the order it got it. The returns do not count
// towards the delivery limit: a consumer detached this way never settles
// (it failed to attach, a get failed, or its node restarted or was lost);
// a channel that closes settles its deliveries with Requeue, which counts.
func (m *Machine) detach(key ConsumerKey, fx *Effects) {
	c := m.consumer(key)
	if c == nil {
		return
	}
	held := c.held()
	if key.ID == 0 {
		delete(m.gets, key)
	} else {
		c.cancelled = true
		clear(c.checked)
		m.dropIfDone(c)
	}
	for _, e := range held {
		m.giveBack(e, false, fx)
	}
}

// held returns the consumer's unsettled deliveries in the order it got
// them.
func (c *consumer) held() []queue.Entry {
	out := make([]queue.Entry, 0, len(c.checked))
	for _, e := range c.checked {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b queue.Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// dropNode detaches every consumer of node but those of its process keep
// (0 keeps none): the node restarted, or is lost.
func (m *Machine) dropNode(node string, keep uint64, fx *Effects) {
	var keys []ConsumerKey
	for _, c := range m.consumers {
		if c.key.Node == node && c.key.Boot != keep {
			keys = append(keys, c.key)
		}
	}
	for key := range m.gets {
		if key.Node == node && key.Boot != keep {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, compareKeys)
	for _, key := range keys {
		m.detach(key, fx)
		if key.ID != 0 {
			fx.Dropped = append(fx.Dropped, key)
		}
	}
}

func compareKeys(a, b ConsumerKey) int {
	if a.Boot != b.Boot {
		if a.Boot < b.Boot {
			return -1
		}
		return 1
	}
	switch {
	case a.ID < b.ID:
		return -1
	case a.ID > b.ID:
		return 1
	}
	return 0
}

// pick chooses the consumer for the next message: with a single active
// consumer, the first attached if it has credit; otherwise the consumers
// of the highest priority that have credit, round robin. i is its
// position.
func (m *Machine) pick() (c *consumer, i int) {
	if len(m.consumers) == 0 {
		return nil, -1
	}
	if m.settings.singleActive {
		i := slices.IndexFunc(m.consumers, func(c *consumer) bool { return !c.cancelled })
		if i >= 0 && m.consumers[i].credit() > 0 {
			return m.consumers[i], i
		}
		return nil, -1
	}
	best := -1
	n := len(m.consumers)
	for k := range n {
		j := (m.rr + k) % n
		c := m.consumers[j]
		if !c.cancelled && c.credit() > 0 && (best < 0 || c.priority > m.consumers[best].priority) {
			best = j
		}
	}
	if best < 0 {
		return nil, -1
	}
	return m.consumers[best], best
}

// dispatch hands ready messages to consumers while they have credit.
func (m *Machine) dispatch(fx *Effects) {
	for m.head() != nil {
		c, i := m.pick()
		if c == nil {
			return
		}
		e := m.take()
		c.checked[e.Seq] = e
		m.delivered++
		m.rr = (i + 1) % len(m.consumers)
		fx.Deliveries = append(fx.Deliveries, Delivery{Consumer: c.key, Entry: e})
	}
}

// nodes returns the nodes that have consumers (or gets not settled).
func (m *Machine) nodes() []string {
	var out []string
	add := func(n string) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, c := range m.consumers {
		add(c.key.Node)
	}
	for key := range m.gets {
		add(key.Node)
	}
	return out
}

// ActiveConsumer returns the key of the consumer that gets the messages
// of a single-active-consumer queue; ok is false when there is none.
func (m *Machine) ActiveConsumer() (key ConsumerKey, ok bool) {
	if !m.settings.singleActive {
		return ConsumerKey{}, false
	}
	for _, c := range m.consumers {
		if !c.cancelled {
			return c.key, true
		}
	}
	return ConsumerKey{}, false
}

// command starts a command of type typ proposed at now.
func command(typ byte, now int64) cluster.Fields {
	e := cluster.Fields{typ}
	e.Int(now)
	return e
}

// EnqueueCommand enqueues a message (its encoded form, queue.Message.Data).
func EnqueueCommand(now int64, data []byte) []byte {
	e := command(cmdEnqueue, now)
	e.Bin(data)
	return e
}

// AttachCommand attaches a consumer.
func AttachCommand(now int64, key ConsumerKey, prefetch, priority int, exclusive bool) []byte {
	e := command(cmdAttach, now)
	key.encode(&e)
	e.Uint(uint64(max(prefetch, 0)))
	e.Int(int64(priority))
	e.Bool(exclusive)
	return e
}

// DetachCommand detaches a consumer (or a node's get key). With keep (a
// basic.cancel) the consumer gets no more messages but may still settle
// those it has; without (its channel closed) they go back to the queue.
func DetachCommand(now int64, key ConsumerKey, keep bool) []byte {
	e := command(cmdDetach, now)
	key.encode(&e)
	e.Bool(keep)
	return e
}

// SettleCommand settles deliveries made to a consumer (or a get key).
func SettleCommand(now int64, key ConsumerKey, how queue.Settlement, seqs []uint64) []byte {
	e := command(cmdSettle, now)
	key.encode(&e)
	e.Uint(uint64(how))
	e.Uint(uint64(len(seqs)))
	for _, s := range seqs {
		e.Uint(s)
	}
	return e
}

// GetCommand takes the next message for a basic.get by key (ID 0).
func GetCommand(now int64, key ConsumerKey, noAck bool) []byte {
	e := command(cmdGet, now)
	key.encode(&e)
	e.Bool(noAck)
	return e
}

// PurgeCommand drops the ready messages.
func PurgeCommand(now int64) []byte { return command(cmdPurge, now) }

// DropNodeCommand detaches the consumers of node but those of the process
// keep names (0: all of them).
func DropNodeCommand(now int64, node string, keep uint64) []byte {
	e := command(cmdDropNode, now)
	e.Str(node)
	e.Uint(keep)
	return e
}

// ExpireCommand drops the messages whose time has passed by now.
func ExpireCommand(now int64) []byte { return command(cmdExpire, now) }

// NoopCommand changes nothing but what expires by now.
func NoopCommand(now int64) []byte { return command(cmdNoop, now) }

// SettingsCommand changes the queue's settings (a policy changed).
func SettingsCommand(now int64, s queue.Settings) []byte {
	e := command(cmdSettings, now)
	st := settingsOf(s)
	st.encode(&e)
	e.Bool(st.atLeastOnce)
	return e
}

// DeadLetteredCommand says that the copies of kept dead letters seqs are
// safe where they went: the queue lets them go.
func DeadLetteredCommand(now int64, seqs []uint64) []byte {
	e := command(cmdDeadLettered, now)
	e.Uint(uint64(len(seqs)))
	for _, s := range seqs {
		e.Uint(s)
	}
	return e
}

// snapshotVersion is the first byte of a snapshot.
const snapshotVersion = 1

func encodeEntry(e *cluster.Fields, en queue.Entry) {
	e.Uint(en.Seq)
	e.Bin(en.Msg.Data())
	e.Int(en.Expires)
	e.Uint(uint64(en.Returns))
	e.Bool(en.Redelivered)
}

func decodeEntry(d *cluster.FieldReader) queue.Entry {
	seq, data, expires, returns, redelivered := d.Uint(), d.Bin(), d.Int(), d.Uint(), d.Bool()
	if d.Err() != nil {
		return queue.Entry{}
	}
	msg, err := queue.DecodeMessage(data, "", "")
	if err != nil || returns > uint64(^uint32(0)) {
		d.Fail()
		return queue.Entry{}
	}
	return queue.Entry{Msg: msg, Seq: seq, Size: int64(msg.Size()), Expires: expires, Returns: uint32(returns), Redelivered: redelivered}
}

// Snapshot encodes the whole state.
func (m *Machine) Snapshot() []byte {
	e := cluster.Fields{snapshotVersion}
	m.settings.encode(&e)
	e.Uint(m.enqueued)
	e.Uint(m.delivered)
	e.Uint(uint64(m.rr))
	e.Uint(m.lastIndex)
	for _, ens := range [][]queue.Entry{m.returns.all(), m.messages.all()} {
		e.Uint(uint64(len(ens)))
		for _, en := range ens {
			encodeEntry(&e, en)
		}
	}
	gets := make([]*consumer, 0, len(m.gets))
	for _, c := range m.gets {
		gets = append(gets, c)
	}
	slices.SortFunc(gets, func(a, b *consumer) int {
		if a.key.Node != b.key.Node {
			if a.key.Node < b.key.Node {
				return -1
			}
			return 1
		}
		return compareKeys(a.key, b.key)
	})
	for _, cs := range [][]*consumer{m.consumers, gets} {
		e.Uint(uint64(len(cs)))
		for _, c := range cs {
			c.key.encode(&e)
			e.Uint(uint64(c.prefetch))
			e.Int(int64(c.priority))
			e.Bool(c.cancelled)
			e.Bool(c.exclusive)
			held := c.held()
			e.Uint(uint64(len(held)))
			for _, en := range held {
				encodeEntry(&e, en)
			}
		}
	}
	// Added later, and read only when present: the at-least-once setting
	// and the kept dead letters.
	e.Bool(m.settings.atLeastOnce)
	e.Uint(uint64(len(m.kept)))
	for _, dl := range m.kept {
		e.Uint(uint64(dl.Reason))
		encodeEntry(&e, dl.Entry)
	}
	return e
}

// RestoreMachine rebuilds a queue's state from a snapshot.
func RestoreMachine(data []byte) (*Machine, error) {
	if len(data) == 0 || data[0] != snapshotVersion {
		return nil, cluster.ErrMalformed
	}
	d := cluster.ReadFields(data[1:])
	m := &Machine{gets: map[ConsumerKey]*consumer{}}
	m.settings.decode(d)
	m.enqueued, m.delivered = d.Uint(), d.Uint()
	rr := d.Uint()
	m.lastIndex = d.Uint()
	for _, push := range []func(queue.Entry){m.returns.push, m.messages.push} {
		for n := d.Count(); n > 0 && d.Err() == nil; n-- {
			en := decodeEntry(d)
			if d.Err() != nil {
				break
			}
			push(en)
			m.readyBytes += en.Size
		}
	}
	for round := range 2 {
		for n := d.Count(); n > 0 && d.Err() == nil; n-- {
			c := &consumer{key: decodeKey(d), checked: map[uint64]queue.Entry{}}
			c.prefetch, c.priority, c.cancelled, c.exclusive = int(d.Uint()), int(d.Int()), d.Bool(), d.Bool()
			for k := d.Count(); k > 0 && d.Err() == nil; k-- {
				en := decodeEntry(d)
				c.checked[en.Seq] = en
			}
			if round == 0 {
				m.consumers = append(m.consumers, c)
			} else {
				m.gets[c.key] = c
			}
		}
	}
	if d.Err() == nil && d.Left() > 0 {
		m.settings.atLeastOnce = d.Bool()
		for n := d.Count(); n > 0 && d.Err() == nil; n-- {
			r := queue.Reason(d.Uint())
			en := decodeEntry(d)
			if r < queue.ReasonRejected || r > queue.ReasonDeliveryLimit {
				d.Fail()
			}
			if d.Err() != nil {
				break
			}
			m.kept = append(m.kept, DeadLetter{Reason: r, Entry: en, Kept: true})
			m.keptBytes += en.Size
		}
	}
	if d.Err() != nil || d.Left() != 0 || rr > uint64(len(m.consumers)) {
		return nil, cluster.ErrMalformed
	}
	m.rr = int(rr)
	return m, nil
}
