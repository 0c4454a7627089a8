package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
)

// net is an in-process cluster: calls run the other node's handler on
// their own goroutine, casts run in the sender's order.
type net struct {
	mu    sync.Mutex
	nodes map[string]*peer
}

type peer struct {
	n        *net
	name     string
	up       atomic.Bool
	mu       sync.Mutex
	handlers map[cluster.Method]cluster.Handler
	castMu   sync.Mutex // casts to this node, one at a time in arrival order
}

func (p *peer) Name() string { return p.name }

func (p *peer) Handle(m cluster.Method, h cluster.Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handlers[m] = h
}

func (p *peer) to(node string) (*peer, cluster.Handler, error) {
	p.n.mu.Lock()
	q := p.n.nodes[node]
	p.n.mu.Unlock()
	if q == nil || !q.up.Load() || !p.up.Load() {
		return nil, nil, errors.New("connection refused")
	}
	return q, nil, nil
}

func (p *peer) Call(ctx context.Context, node string, m cluster.Method, payload []byte) ([]byte, error) {
	q, _, err := p.to(node)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	h := q.handlers[m]
	q.mu.Unlock()
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, err := h(append([]byte(nil), payload...))
		ch <- res{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *peer) Cast(_ context.Context, node string, m cluster.Method, payload []byte) error {
	q, _, err := p.to(node)
	if err != nil {
		return err
	}
	q.mu.Lock()
	h := q.handlers[m]
	q.mu.Unlock()
	q.castMu.Lock()
	defer q.castMu.Unlock()
	_, _ = h(append([]byte(nil), payload...))
	return nil
}

func (p *peer) Running(node string) bool {
	_, _, err := p.to(node)
	return err == nil
}

// pair is node a, which holds a classic queue on a store, and node b,
// which reaches it through a stand-in.
type pair struct {
	a, b    *peer
	sa, sb  *Service
	q       queue.Queue // on a
	standIn queue.Queue // on b
	store   *persistence.Store
	kind    *classic.Kind
}

func newPair(t *testing.T) *pair { return newPairOn(t, true) }

// newPairOn builds the pair; stored puts node a's queue on a store.
func newPairOn(t *testing.T, stored bool) *pair {
	t.Helper()
	n := &net{nodes: map[string]*peer{}}
	p := &pair{}
	for _, name := range []string{"a", "b"} {
		pe := &peer{n: n, name: name, handlers: map[cluster.Method]cluster.Handler{}}
		pe.up.Store(true)
		n.nodes[name] = pe
	}
	p.a, p.b = n.nodes["a"], n.nodes["b"]
	var st *persistence.Store
	var err error
	if stored {
		o := persistence.DefaultOptions(t.TempDir())
		o.Sync, o.GCInterval = false, -1
		if st, err = persistence.Open(o); err != nil {
			t.Fatal(err)
		}
	}
	p.store = st
	p.kind = classic.NewKind(classic.Options{Store: st})
	if err = p.kind.FinishRecovery(); err != nil {
		t.Fatal(err)
	}
	cfg := queue.Config{Name: "q", VHost: "/", Durable: true, Kind: classic.Name, Settings: queue.NoSettings, ID: 1<<63 | 7, Node: "a"}
	p.q, err = p.kind.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(vh, name string, id uint64) (queue.Queue, error) {
		if vh == "/" && name == "q" && id == cfg.ID {
			return p.q, nil
		}
		return nil, wire.Errorf(wire.NotFound, "no queue '"+name+"' in vhost '"+vh+"'")
	}
	p.sa = New(p.a, lookup, nil)
	p.sb = New(p.b, func(string, string, uint64) (queue.Queue, error) { return nil, errors.New("none here") }, nil)
	p.standIn, err = p.sb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.sa.Close()
		p.sb.Close()
		p.kind.Stop()
		if st != nil {
			st.Close()
		}
	})
	return p
}

// sink is a channel on node b: it takes deliveries while it has room.
type sink struct {
	mu        sync.Mutex
	room      int
	got       []queue.Entry
	cancelled atomic.Bool
}

func (s *sink) Deliver(_ *queue.Consumer, e queue.Entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.room == 0 {
		return false
	}
	s.room--
	s.got = append(s.got, e)
	return true
}

func (s *sink) Cancelled(*queue.Consumer) { s.cancelled.Store(true) }

func (s *sink) take() []queue.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got
	s.got = nil
	return out
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *sink) setRoom(n int) {
	s.mu.Lock()
	s.room = n
	s.mu.Unlock()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func publish(t *testing.T, q queue.Queue, body string, persistent bool) queue.Receipt {
	t.Helper()
	props := wire.Properties{}
	if persistent {
		props.DeliveryMode = 2
	}
	raw, err := props.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Enqueue(queue.BuildMessage("", "q", raw, []byte(body)))
}

func TestPublishThroughAStandIn(t *testing.T) {
	p := newPair(t)
	r := publish(t, p.standIn, "persistent", true)
	if r.Result != queue.Enqueued || r.Promise.Kept() {
		t.Fatalf("a persistent publish: %+v", r)
	}
	if err := r.Promise.Wait(); err != nil {
		t.Fatal(err)
	}
	if r := publish(t, p.standIn, "transient", false); r.Result != queue.Enqueued || !r.Promise.Kept() {
		t.Fatalf("a transient publish: %+v", r)
	}
	if st := p.q.Stats(); st.Ready != 2 {
		t.Fatalf("the queue holds %d", st.Ready)
	}
	if st := p.standIn.Stats(); st.Ready != 2 || st.Down {
		t.Fatalf("the stand-in reports %+v", st)
	}
	// Length limits answer through the stand-in.
	p.q.SetSettings(queue.Settings{MaxLength: 2, MaxLengthBytes: -1, MessageTTL: -1, DeliveryLimit: -1, Overflow: queue.RejectPublish})
	if r := publish(t, p.standIn, "over", false); r.Result != queue.Rejected {
		t.Fatalf("over the limit: %+v", r)
	}
	if n := p.standIn.Purge(); n != 2 {
		t.Fatalf("purged %d", n)
	}
}

func TestConsumeThroughAStandIn(t *testing.T) {
	p := newPair(t)
	s := &sink{room: 1000}
	c := &queue.Consumer{Tag: "ctag", Prefetch: 5, Sink: s, Queue: p.standIn}
	started := false
	if err := p.standIn.AddConsumer(c, func() { started = true }); err != nil {
		t.Fatal(err)
	}
	if !started {
		t.Fatal("started did not run")
	}
	for i := range 20 {
		publish(t, p.standIn, fmt.Sprint(i), false)
	}
	// The prefetch holds on the queue's node.
	waitUntil(t, "5 deliveries", func() bool { return s.count() == 5 })
	next := 0
	for range 4 {
		got := s.take()
		for _, e := range got {
			if string(e.Msg.Body) != fmt.Sprint(next) {
				t.Fatalf("delivery %d is %q", next, e.Msg.Body)
			}
			next++
		}
		p.standIn.Settle(c, got, queue.Ack)
		waitUntil(t, "the next deliveries", func() bool { return s.count() == 5 || next == 20 })
	}
	if next != 20 {
		t.Fatalf("got %d of 20", next)
	}
	waitUntil(t, "the acks", func() bool { st := p.q.Stats(); return st.Unacked == 0 && st.Ready == 0 })

	// A channel without room: deliveries wait on node b, and the queue's
	// node stops once the window is full.
	s.setRoom(0)
	for i := range window + 50 {
		publish(t, p.standIn, fmt.Sprint(i), false)
	}
	p.standIn.RemoveConsumer(c)
	p.standIn.Settle(c, nil, queue.Ack)
	c2 := &queue.Consumer{Tag: "c2", Sink: s, Queue: p.standIn, NoAck: false}
	if err := p.standIn.AddConsumer(c2, nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a full window", func() bool { return p.q.Stats().Unacked == window })
	s.setRoom(window + 50)
	p.standIn.Resume(c2)
	waitUntil(t, "every message", func() bool { return s.count() == window+50 })
	got := s.take()
	for i, e := range got {
		if string(e.Msg.Body) != fmt.Sprint(i) {
			t.Fatalf("delivery %d is %q", i, e.Msg.Body)
		}
	}
	// Requeued ones come back, redelivered.
	s.setRoom(10)
	p.standIn.Settle(c2, got[:3], queue.Requeue)
	p.standIn.Settle(c2, got[3:], queue.Ack)
	waitUntil(t, "the requeued three", func() bool { return s.count() == 3 })
	for _, e := range s.take() {
		if !e.Redelivered {
			t.Fatalf("a requeued message is not marked redelivered: %q", e.Msg.Body)
		}
	}
}

func TestGetThroughAStandIn(t *testing.T) {
	p := newPair(t)
	publish(t, p.standIn, "one", false)
	publish(t, p.standIn, "two", false)
	e, left, ok := p.standIn.Get(false)
	if !ok || string(e.Msg.Body) != "one" || left != 1 {
		t.Fatalf("get: %v %d %v", e.Msg, left, ok)
	}
	p.standIn.Settle(nil, []queue.Entry{e}, queue.Requeue)
	waitUntil(t, "the requeue", func() bool { return p.q.Stats().Ready == 2 })
	e, _, _ = p.standIn.Get(false)
	if string(e.Msg.Body) != "one" || !e.Redelivered {
		t.Fatalf("after requeue: %q redelivered %v", e.Msg.Body, e.Redelivered)
	}
	p.standIn.Settle(nil, []queue.Entry{e}, queue.Ack)
	waitUntil(t, "the ack", func() bool { st := p.q.Stats(); return st.Ready == 1 && st.Unacked == 0 })
}

func TestNodeLoss(t *testing.T) {
	p := newPair(t)
	s := &sink{room: 1000}
	c := &queue.Consumer{Tag: "ctag", Sink: s, Queue: p.standIn}
	if err := p.standIn.AddConsumer(c, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		publish(t, p.standIn, fmt.Sprint(i), false)
	}
	waitUntil(t, "10 deliveries", func() bool { return s.count() == 10 })
	// Node b goes away: node a takes its unacknowledged deliveries back.
	p.b.up.Store(false)
	waitUntil(t, "the requeue on a", func() bool { st := p.q.Stats(); return st.Ready == 10 && st.Consumers == 0 })
	// ...and b's consumer of a's queue is cancelled, and the queue is down
	// from b.
	waitUntil(t, "the cancel on b", s.cancelled.Load)
	if err := p.standIn.(queue.Reachable).Unreachable(); err == nil {
		t.Fatal("a queue on a lost node is reachable")
	}
	if r := publish(t, p.standIn, "lost", false); r.Result != queue.Gone {
		t.Fatalf("a publish to a down queue: %+v", r)
	}
}

// FuzzCalls feeds arbitrary payloads to every forwarding call: each is
// answered or refused, never a panic.
func FuzzCalls(f *testing.F) {
	e := new(cluster.Fields)
	queueRef(e.Str("b"), &queue.Config{VHost: "/", Name: "q", ID: 1<<63 | 7}).Uint(1).Bin([]byte{1, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(0), e.Bytes())
	f.Add(uint8(3), []byte{1, 'b', 1, 1, '/', 1, 'q', 0})
	f.Fuzz(func(t *testing.T, m uint8, payload []byte) {
		p := newPairForFuzz(t)
		method := methodPublish + cluster.Method(m%13)
		p.a.mu.Lock()
		h := p.a.handlers[method]
		p.a.mu.Unlock()
		_, _ = h(payload)
		p.b.mu.Lock()
		h = p.b.handlers[method]
		p.b.mu.Unlock()
		_, _ = h(payload)
	})
}

func newPairForFuzz(t *testing.T) *pair { return newPairOn(t, false) }

// A consumer cancelled while its channel had not taken what was sent to
// it: those messages go back to the queue, the ones it took stay with the
// channel to settle.
func TestCancelReturnsWhatTheChannelDidNotTake(t *testing.T) {
	p := newPair(t)
	s := &sink{room: 3}
	c := &queue.Consumer{Tag: "ctag", Sink: s, Queue: p.standIn}
	if err := p.standIn.AddConsumer(c, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		publish(t, p.standIn, fmt.Sprint(i), false)
	}
	waitUntil(t, "all ten sent", func() bool { return p.q.Stats().Unacked == 10 })
	waitUntil(t, "three taken", func() bool { return s.count() == 3 })
	p.standIn.RemoveConsumer(c)
	waitUntil(t, "seven back", func() bool { st := p.q.Stats(); return st.Ready == 7 && st.Unacked == 3 })
	p.standIn.Settle(c, s.take(), queue.Ack)
	waitUntil(t, "the acks", func() bool { st := p.q.Stats(); return st.Ready == 7 && st.Unacked == 0 })
	// Node a is done with the consumer: node b forgets its id.
	waitUntil(t, "b to forget the consumer", func() bool {
		p.sb.mu.Lock()
		defer p.sb.mu.Unlock()
		_, ok := p.sb.consumerIDs[c]
		return !ok
	})
}

// One node takes the other for lost while the other does not (a
// partition): the two make up once deliveries or credit flow again.
func TestOneSidedNodeLoss(t *testing.T) {
	p := newPair(t)
	s := &sink{room: 5}
	c := &queue.Consumer{Tag: "ctag", Sink: s, Queue: p.standIn}
	if err := p.standIn.AddConsumer(c, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		publish(t, p.standIn, fmt.Sprint(i), false)
	}
	waitUntil(t, "five taken", func() bool { return s.count() == 5 })
	// Node b alone decides that node a is lost: its consumer is cancelled.
	p.sb.nodeDown("a", errors.New("test"))
	if !s.cancelled.Load() {
		t.Fatal("the consumer on b was not cancelled")
	}
	// Node a still delivers to it; b says it does not know it, and a takes
	// everything back.
	publish(t, p.q, "more", false)
	waitUntil(t, "a to take its messages back", func() bool {
		st := p.q.Stats()
		return st.Ready == 6 && st.Unacked == 0 && st.Consumers == 0
	})
}
