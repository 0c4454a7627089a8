package quorum

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/queue"
)

// model is what the property test knows of a queue from the effects it
// saw: where each live message is, and how often each came back.
type model struct {
	where    map[uint64]ConsumerKey // live message -> holder (zero key: ready)
	returns  map[uint64]uint32      // message -> times given back
	returned map[uint64]bool        // messages given back by the command being observed
	back     map[uint64]bool        // messages given back at some time (redelivered)
	kept     []uint64               // dead letters kept (at least once), in order
	// cancelled consumers may hold messages still; the machine forgets
	// them once they hold none
	cancelled map[ConsumerKey]bool
	lastNew   map[int]uint64 // by priority: the last message delivered for the first time
	priority  map[uint64]int // live message -> its level
	prefetch  map[ConsumerKey]int
	sizes     map[uint64]int64
	exclusive map[ConsumerKey]bool // consumers that attached exclusive
}

// anyExclusive reports whether an attached consumer is exclusive.
func (md *model) anyExclusive() bool {
	for key := range md.prefetch {
		if md.exclusive[key] {
			return true
		}
	}
	return false
}

var readyKey = ConsumerKey{}

func newModel() *model {
	return &model{where: map[uint64]ConsumerKey{}, returns: map[uint64]uint32{}, prefetch: map[ConsumerKey]int{}, sizes: map[uint64]int64{},
		cancelled: map[ConsumerKey]bool{}, exclusive: map[ConsumerKey]bool{}, lastNew: map[int]uint64{}, priority: map[uint64]int{}, back: map[uint64]bool{}}
}

func (md *model) clone() *model {
	c := newModel()
	for k, v := range md.where {
		c.where[k] = v
	}
	for k, v := range md.returns {
		c.returns[k] = v
	}
	for k, v := range md.prefetch {
		c.prefetch[k] = v
	}
	for k, v := range md.sizes {
		c.sizes[k] = v
	}
	for k, v := range md.cancelled {
		c.cancelled[k] = v
	}
	for k, v := range md.exclusive {
		c.exclusive[k] = v
	}
	maps.Copy(c.lastNew, md.lastNew)
	maps.Copy(c.back, md.back)
	c.kept = slices.Clone(md.kept)
	maps.Copy(c.priority, md.priority)
	return c
}

// gen makes random commands for a queue with a few consumers on two nodes.
type gen struct {
	r     *rand.Rand
	now   int64
	keys  []ConsumerKey
	nodes []string
	s     queue.Settings
}

func (g *gen) message() []byte {
	var p wire.Properties
	if g.r.IntN(8) == 0 {
		p.Expiration = strconv.Itoa(g.r.IntN(50))
	}
	if g.r.IntN(3) == 0 {
		// A few levels, one above MaxPriority (0 is not sent: the
		// default level).
		p.Priority = uint8([]int{1, 4, 9, 31, 200}[g.r.IntN(5)])
	}
	raw, _ := p.Append(nil)
	body := make([]byte, g.r.IntN(40))
	return queue.BuildMessage("", "q", raw, body).Data()
}

func (g *gen) next(md *model) []byte {
	g.now += int64(g.r.IntN(10))
	key := g.keys[g.r.IntN(len(g.keys))]
	held := func(k ConsumerKey) []uint64 {
		var seqs []uint64
		for seq, h := range md.where {
			if h == k {
				seqs = append(seqs, seq)
			}
		}
		slices.Sort(seqs)
		if len(seqs) > 0 && g.r.IntN(2) == 0 {
			seqs = seqs[:1+g.r.IntN(len(seqs))]
		}
		return seqs
	}
	switch n := g.r.IntN(100); {
	case n < 40:
		return EnqueueCommand(g.now, g.message())
	case n < 50:
		return AttachCommand(g.now, key, g.r.IntN(4), g.r.IntN(2), g.r.IntN(10) == 0)
	case n < 53:
		return DetachCommand(g.now, key, g.r.IntN(2) == 0)
	case n < 75:
		if g.r.IntN(3) == 0 {
			key.ID = 0
		}
		// 9 is no settlement: it must change nothing.
		how := []queue.Settlement{queue.Ack, queue.Ack, queue.Requeue, queue.Discard, queue.Release, 9}[g.r.IntN(6)]
		return SettleCommand(g.now, key, how, held(key))
	case n < 83:
		key.ID = 0
		return GetCommand(g.now, key, g.r.IntN(3) == 0)
	case n < 85:
		return PurgeCommand(g.now)
	case n < 87:
		return DropNodeCommand(g.now, g.nodes[g.r.IntN(len(g.nodes))], uint64(g.r.IntN(3)))
	case n < 90:
		return ExpireCommand(g.now)
	case n < 92:
		// The leader's word that some kept dead letters are safe, and
		// one the queue never kept.
		var seqs []uint64
		for _, seq := range md.kept {
			if g.r.IntN(2) == 0 {
				seqs = append(seqs, seq)
			}
		}
		return DeadLetteredCommand(g.now, append(seqs, 1<<40))
	case n < 94:
		s := g.s
		s.MaxLength = int64(g.r.IntN(12)) - 1
		s.DeliveryLimit = int64(g.r.IntN(4)) - 1
		if g.r.IntN(4) == 0 {
			s.DeadLetterAtLeastOnce = !s.DeadLetterAtLeastOnce
		}
		return SettingsCommand(g.now, s)
	default:
		return NoopCommand(g.now)
	}
}

// observe checks one command's effects against the model and updates it.
func (md *model) observe(t *testing.T, m *Machine, index uint64, cmd []byte, fx Effects) {
	t.Helper()
	gone := func(seq uint64, why string) {
		if _, ok := md.where[seq]; !ok {
			t.Fatalf("index %d: message %d %s but it was not live", index, seq, why)
		}
		delete(md.where, seq)
	}
	md.returned = map[uint64]bool{}
	readyBefore := map[uint64]bool{}
	for seq, h := range md.where {
		if h == readyKey {
			readyBefore[seq] = true
		}
	}
	for _, dl := range fx.DeadLetters {
		if dl.Kept != m.settings.keeps() && cmd[0] != cmdSettings { // a settings command may change it after
			t.Fatalf("index %d: dead letter %d kept=%v, the queue keeps: %v", index, dl.Entry.Seq, dl.Kept, m.settings.keeps())
		}
		if dl.Reason == queue.ReasonDeliveryLimit && (m.settings.deliveryLimit < 0 || int64(dl.Entry.Returns) <= m.settings.deliveryLimit) &&
			cmd[0] != cmdSettings {
			t.Fatalf("index %d: message %d dead-lettered (delivery_limit) with %d returns, limit %d", index, dl.Entry.Seq, dl.Entry.Returns, m.settings.deliveryLimit)
		}
		if dl.Kept {
			md.kept = append(md.kept, dl.Entry.Seq)
			md.sizes[dl.Entry.Seq] = dl.Entry.Size
		}
		if dl.Entry.Seq == index { // refused or expired at once: never live
			continue
		}
		gone(dl.Entry.Seq, "dead-lettered ("+dl.Reason.String()+")")
	}
	d := cluster.ReadFields(cmd[1:])
	d.Int()
	switch cmd[0] {
	case cmdEnqueue:
		if fx.Published == queue.Enqueued && !slices.ContainsFunc(fx.DeadLetters, func(dl DeadLetter) bool { return dl.Entry.Seq == index }) {
			md.where[index] = readyKey
			msg, err := queue.DecodeMessage(d.Bin(), "", "")
			if err != nil {
				t.Fatal(err)
			}
			md.sizes[index] = int64(msg.Size())
			md.priority[index] = priorityOf(queue.Entry{Msg: msg})
		}
	case cmdAttach:
		key := decodeKey(d)
		if md.cancelled[key] && !slices.Contains(slices.Collect(maps.Values(md.where)), key) {
			delete(md.cancelled, key) // settled all it had: gone, the key may come again
		}
		prefetch := int(d.Uint())
		d.Int()
		exclusive := d.Bool()
		if _, ok := md.prefetch[key]; !ok && !md.cancelled[key] {
			conflict := len(md.prefetch) > 0 && (exclusive || md.anyExclusive())
			if conflict != fx.Refused {
				t.Fatalf("index %d: attach %v refused=%v, want %v", index, key, fx.Refused, conflict)
			}
			if !conflict {
				md.prefetch[key] = prefetch
				md.exclusive[key] = exclusive
			}
		}
	case cmdDetach:
		key := decodeKey(d)
		keep := d.Bool()
		if _, ok := md.prefetch[key]; ok {
			delete(md.prefetch, key)
			md.cancelled[key] = true
		}
		if !keep || !md.cancelled[key] {
			for seq, h := range md.where {
				if h == key {
					md.where[seq] = readyKey
					md.returned[seq] = true
					md.back[seq] = true
				}
			}
		}
	case cmdSettle:
		key := decodeKey(d)
		how := queue.Settlement(d.Uint())
		for n := d.Count(); n > 0; n-- {
			seq := d.Uint()
			if md.where[seq] != key || key == readyKey {
				continue
			}
			switch how {
			case queue.Ack:
				gone(seq, "acked")
			case queue.Requeue, queue.Release:
				if how == queue.Requeue {
					md.returns[seq]++ // a release does not count
				}
				md.returned[seq] = true
				md.back[seq] = true
				md.where[seq] = readyKey
			}
		}
	case cmdGet:
		key := decodeKey(d)
		noAck := d.Bool()
		if fx.Ok {
			seq := fx.Got.Seq
			if !readyBefore[seq] {
				t.Fatalf("index %d: get took %d, which was not ready", index, seq)
			}
			if !fx.Got.Redelivered && slices.ContainsFunc(slices.Collect(maps.Keys(readyBefore)), func(s uint64) bool {
				_, live := md.where[s] // not expired by this command
				return live && s != seq && md.back[s]
			}) {
				t.Fatalf("index %d: get took %d before a message given back", index, seq)
			}
			md.checkDelivery(t, index, fx.Got)
			if noAck {
				gone(seq, "got without ack")
			} else {
				md.where[seq] = key
			}
		} else if len(readyBefore) > len(fx.DeadLetters) {
			t.Fatalf("index %d: get found nothing with %d ready", index, len(readyBefore))
		}
	case cmdDeadLettered:
		safe := map[uint64]bool{}
		for n := d.Count(); n > 0; n-- {
			safe[d.Uint()] = true
		}
		md.kept = slices.DeleteFunc(md.kept, func(seq uint64) bool { return safe[seq] })
	case cmdSettings:
		if !m.settings.keeps() {
			md.kept = nil // leaving at-least-once drops them
		}
	case cmdPurge:
		n := 0
		for seq, h := range md.where {
			if h == readyKey {
				delete(md.where, seq)
				n++
			}
		}
		if n != fx.Purged {
			t.Fatalf("index %d: purged %d, %d were ready", index, fx.Purged, n)
		}
	case cmdDropNode:
		node, keep := d.Str(), d.Uint()
		for seq, h := range md.where {
			if h.Node == node && h.Boot != keep && h != readyKey {
				md.where[seq] = readyKey
				md.returned[seq] = true
				md.back[seq] = true
			}
		}
		for key := range md.prefetch {
			if key.Node == node && key.Boot != keep {
				delete(md.prefetch, key)
				md.cancelled[key] = true
				if !slices.Contains(fx.Dropped, key) {
					t.Fatalf("index %d: consumer %v was dropped without a word", index, key)
				}
			}
		}
	}
	// Messages given back past the delivery limit were dead-lettered
	// above; the model gave them back first.
	for _, dl := range fx.DeadLetters {
		delete(md.where, dl.Entry.Seq)
	}
	// Messages given back go out before those never delivered.
	backs := 0
	for seq, h := range md.where {
		if h == readyKey && md.back[seq] {
			backs++
		}
	}
	for _, dv := range fx.Deliveries {
		if dv.Entry.Redelivered {
			backs--
		} else if backs > 0 {
			t.Fatalf("index %d: message %d delivered before %d given back", index, dv.Entry.Seq, backs)
		}
		if md.where[dv.Entry.Seq] != readyKey {
			t.Fatalf("index %d: delivered %d, which was not ready", index, dv.Entry.Seq)
		}
		if _, ok := md.prefetch[dv.Consumer]; !ok {
			t.Fatalf("index %d: delivered to %v, which is not attached", index, dv.Consumer)
		}
		md.checkDelivery(t, index, dv.Entry)
		md.where[dv.Entry.Seq] = dv.Consumer
	}
	md.checkPriorities(t, index, fx)
	typ := cmd[0]
	if typ == cmdEnqueue && slices.ContainsFunc(fx.DeadLetters, func(dl DeadLetter) bool { return dl.Entry.Seq == index && dl.Reason == queue.ReasonExpired }) {
		typ = cmdNoop // a message with TTL 0 and no consumer: the queue was not added to
	}
	md.check(t, m, index, typ)
}

// checkPriorities checks that the fresh messages a command handed out
// left behind none that goes before them: of a higher priority, or of the
// same and published earlier.
func (md *model) checkPriorities(t *testing.T, index uint64, fx Effects) {
	t.Helper()
	var fresh []uint64
	for _, dv := range fx.Deliveries {
		if !dv.Entry.Redelivered {
			fresh = append(fresh, dv.Entry.Seq)
		}
	}
	if fx.Ok && !fx.Got.Redelivered {
		fresh = append(fresh, fx.Got.Seq)
	}
	for seq, h := range md.where {
		if h != readyKey || md.back[seq] {
			continue
		}
		for _, f := range fresh {
			if p, q := md.priority[seq], md.priority[f]; p > q || p == q && seq < f {
				t.Fatalf("index %d: message %d (priority %d) handed out before %d (priority %d)", index, f, q, seq, p)
			}
		}
	}
}

// checkDelivery checks a message handed out: fresh ones in publish order
// within their priority, returned ones with their delivery count.
func (md *model) checkDelivery(t *testing.T, index uint64, e queue.Entry) {
	t.Helper()
	if e.Returns != md.returns[e.Seq] {
		t.Fatalf("index %d: message %d handed out with delivery count %d, want %d", index, e.Seq, e.Returns, md.returns[e.Seq])
	}
	if !e.Redelivered {
		p := md.priority[e.Seq]
		if e.Seq <= md.lastNew[p] {
			t.Fatalf("index %d: message %d (priority %d) first delivered after %d", index, e.Seq, p, md.lastNew[p])
		}
		md.lastNew[p] = e.Seq
	}
	if e.Redelivered != md.back[e.Seq] {
		t.Fatalf("index %d: message %d redelivered=%v, given back before: %v", index, e.Seq, e.Redelivered, md.back[e.Seq])
	}
}

// check compares the machine's state with the model.
func (md *model) check(t *testing.T, m *Machine, index uint64, typ byte) {
	t.Helper()
	ready, readyBytes := 0, int64(0)
	for seq, h := range md.where {
		if h == readyKey {
			ready++
			readyBytes += md.sizes[seq]
		}
	}
	if n, b := m.Ready(); n != ready || b != readyBytes {
		t.Fatalf("index %d: machine has %d ready (%d bytes), model %d (%d bytes)", index, n, b, ready, readyBytes)
	}
	kept, n := m.Kept(len(md.kept) + 1)
	keptBytes := int64(0)
	for _, seq := range md.kept {
		keptBytes += md.sizes[seq]
	}
	if n != len(md.kept) || !slices.Equal(slices.Collect(func(yield func(uint64) bool) {
		for _, dl := range kept {
			if !yield(dl.Entry.Seq) {
				return
			}
		}
	}), md.kept) || m.keptBytes != keptBytes {
		t.Fatalf("index %d: machine keeps dead letters %v (%d bytes), model %v (%d bytes)", index, kept, m.keptBytes, md.kept, keptBytes)
	}
	if got, want := m.Unacked(), len(md.where)-ready; got != want {
		t.Fatalf("index %d: machine has %d unacked, model %d", index, got, want)
	}
	if m.Consumers() != len(md.prefetch) {
		t.Fatalf("index %d: machine has %d consumers, model %d", index, m.Consumers(), len(md.prefetch))
	}
	held := map[ConsumerKey]int{}
	for _, h := range md.where {
		held[h]++
	}
	for key, prefetch := range md.prefetch {
		if prefetch > 0 && held[key] > prefetch {
			t.Fatalf("index %d: consumer %v holds %d, prefetch %d", index, key, held[key], prefetch)
		}
		if ready > 0 && !m.settings.singleActive && (prefetch == 0 || held[key] < prefetch) {
			t.Fatalf("index %d: %d ready while consumer %v has credit", index, ready, key)
		}
	}
	// The length limit holds after a publish (as in RabbitMQ, messages
	// given back may take a queue past it) and after a settings change.
	if (typ == cmdEnqueue || typ == cmdSettings) && m.settings.overflow == queue.DropHead &&
		m.settings.maxLength >= 0 && int64(ready) > m.settings.maxLength {
		t.Fatalf("index %d: %d ready over max-length %d", index, ready, m.settings.maxLength)
	}
	// Kept dead letters count towards it: reject-publish takes a message
	// only while ready and kept ones are under the limit.
	if h, live := md.where[index]; typ == cmdEnqueue && live && h == readyKey && m.settings.overflow == queue.RejectPublish &&
		m.settings.maxLength >= 0 && int64(ready+len(md.kept)) > m.settings.maxLength {
		t.Fatalf("index %d: enqueued with %d ready and %d kept, max-length %d", index, ready, len(md.kept), m.settings.maxLength)
	}
	// A message given back past the delivery limit is not kept (one given
	// back before a lower limit was set may be).
	if typ == cmdSettle || typ == cmdDetach || typ == cmdDropNode {
		for seq, h := range md.where {
			if h == readyKey && md.returned[seq] && m.settings.deliveryLimit >= 0 && int64(md.returns[seq]) > m.settings.deliveryLimit {
				t.Fatalf("index %d: message %d ready after %d returns, limit %d", index, seq, md.returns[seq], m.settings.deliveryLimit)
			}
		}
	}
}

// sameEffects compares two machines' effects for one command.
func sameEffects(a, b Effects) bool {
	key := func(fx Effects) string {
		s := fmt.Sprint(fx.Published, fx.Ok, fx.Got.Seq, fx.Left, fx.Purged, fx.Dropped)
		for _, d := range fx.Deliveries {
			s += fmt.Sprint(d.Consumer, d.Entry.Seq, d.Entry.Returns)
		}
		for _, d := range fx.DeadLetters {
			s += fmt.Sprint(d.Reason, d.Entry.Seq)
		}
		return s
	}
	return key(a) == key(b)
}

// The machine against the model: random command sequences, with the
// state snapshotted and restored along the way; a restored machine must
// go on exactly as the original does.
func TestMachineProperties(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			s := queue.NoSettings
			s.DeadLetter = r.IntN(2) == 0
			s.SingleActiveConsumer = r.IntN(5) == 0
			s.MaxLength = int64(r.IntN(20)) - 1
			s.Overflow = []queue.Overflow{queue.DropHead, queue.RejectPublish, queue.RejectPublishDLX}[r.IntN(3)]
			if r.IntN(3) == 0 {
				s.MessageTTL = int64(r.IntN(100))
			}
			s.DeliveryLimit = int64(r.IntN(4)) - 1
			s.DeadLetterAtLeastOnce = r.IntN(2) == 0
			g := &gen{r: r, nodes: []string{"a", "b"}, s: s}
			for _, node := range g.nodes {
				for boot := range uint64(2) {
					for id := range uint64(2) {
						g.keys = append(g.keys, ConsumerKey{Node: node, Boot: boot + 1, ID: id + 1})
					}
				}
			}
			m, md := NewMachine(s), newModel()
			for index := uint64(1); index <= 400; index++ {
				cmd := g.next(md)
				if r.IntN(40) == 0 {
					restored, err := RestoreMachine(m.Snapshot())
					if err != nil {
						t.Fatalf("index %d: restore: %v", index, err)
					}
					if !bytes.Equal(restored.Snapshot(), m.Snapshot()) {
						t.Fatalf("index %d: a restored machine snapshots differently", index)
					}
					// Both go on with the next commands alike.
					twin, tmd := m, md.clone()
					m = restored
					for k := range uint64(5) {
						c := g.next(tmd)
						fa, fb := twin.Apply(index+k, c), m.Apply(index+k, c)
						if !sameEffects(fa, fb) {
							t.Fatalf("index %d: a restored machine did otherwise: %+v vs %+v", index+k, fa, fb)
						}
						md.observe(t, m, index+k, c, fb)
					}
					index += 5
					continue
				}
				md.observe(t, m, index, cmd, m.Apply(index, cmd))
			}
		})
	}
}

// A corrupt command changes nothing and a corrupt snapshot is refused,
// never a panic.
func FuzzMachine(f *testing.F) {
	m := NewMachine(queue.NoSettings)
	key := ConsumerKey{Node: "a", Boot: 1, ID: 1}
	msg := queue.BuildMessage("", "q", nil, []byte("hi")).Data()
	alo := queue.NoSettings
	alo.DeadLetter, alo.DeadLetterAtLeastOnce, alo.Overflow = true, true, queue.RejectPublish
	seeds := [][]byte{
		EnqueueCommand(1, msg),
		AttachCommand(2, key, 1, 0, false),
		SettleCommand(3, key, queue.Requeue, []uint64{1}),
		GetCommand(4, ConsumerKey{Node: "a", Boot: 1}, false),
		DropNodeCommand(5, "a", 0),
		SettingsCommand(6, queue.NoSettings),
		// At least once: the rejected message is kept, then let go.
		SettingsCommand(7, alo),
		EnqueueCommand(8, msg),
		GetCommand(9, ConsumerKey{Node: "a", Boot: 1}, false),
		SettleCommand(10, ConsumerKey{Node: "a", Boot: 1}, queue.Discard, []uint64{1}),
		DeadLetteredCommand(11, []uint64{1, 12}),
	}
	for i, c := range seeds {
		if i == len(seeds)-1 {
			if _, n := m.Kept(0); n != 1 {
				f.Fatalf("the seeds keep %d dead letters, want 1", n)
			}
			f.Add(m.Snapshot()) // with a kept dead letter
		}
		m.Apply(uint64(i+1), c)
		f.Add(c)
	}
	f.Add(m.Snapshot())
	f.Fuzz(func(t *testing.T, data []byte) {
		m := NewMachine(queue.NoSettings)
		m.Apply(1, AttachCommand(0, key, 0, 0, false))
		m.Apply(2, data)
		if len(data) > 0 {
			data[0] = snapshotVersion
		}
		if r, err := RestoreMachine(data); err == nil {
			r.Apply(3, EnqueueCommand(0, msg))
			_ = r.Snapshot()
		}
	})
}
