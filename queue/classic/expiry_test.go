package classic

import (
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// dlxQueue returns a queue on a kind with clock c that dead-letters into
// the returned recorder.
func dlxQueue(t testing.TB, c *fakeClock, edit func(*queue.Config)) (*Queue, *recordingDLX) {
	t.Helper()
	dlx := &recordingDLX{}
	cfg := testConfig()
	cfg.DeadLetter, cfg.DeadLetterSink = true, dlx
	if edit != nil {
		edit(&cfg)
	}
	return newQueue(t, NewKind(Options{Now: c.Now}), cfg), dlx
}

// propsMsg returns a message with the given properties.
func propsMsg(t testing.TB, body string, p wire.Properties) *queue.Message {
	t.Helper()
	raw, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return queue.BuildMessage("ex", "rk", raw, []byte(body))
}

func (d *recordingDLX) got() ([]string, []queue.Reason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.bodies...), append([]queue.Reason(nil), d.reason...)
}

func wantDead(t testing.TB, d *recordingDLX, bodies []string, reason queue.Reason) {
	t.Helper()
	got, reasons := d.got()
	wantStrings(t, "dead-lettered", got, bodies)
	for _, r := range reasons {
		if r != reason {
			t.Fatalf("dead-lettered for %v, want %v", reasons, reason)
		}
	}
}

func TestMessageTTL(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	q, dlx := dlxQueue(t, c, func(cfg *queue.Config) { cfg.MessageTTL = 1000 })
	mustPublish(t, q, "a")
	c.advance(400 * time.Millisecond)
	mustPublish(t, q, "b")
	c.advance(600 * time.Millisecond) // a is due, b has 400 ms left
	q.expire()
	wantDead(t, dlx, []string{"a"}, queue.ReasonExpired)
	wantStats(t, q, 1, 0, 0)
	c.advance(401 * time.Millisecond) // past b's expiry
	if es := getAll(t, q, true); len(es) != 0 {
		t.Fatalf("basic.get returned expired %q", entryBodies(es))
	}
	wantDead(t, dlx, []string{"a", "b"}, queue.ReasonExpired)
}

func TestPerMessageExpiration(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	q, dlx := dlxQueue(t, c, func(cfg *queue.Config) { cfg.MessageTTL = 500 })
	publish(propsMsg(t, "long", wire.Properties{Expiration: "60000"}), q) // the queue's 500 wins
	publish(propsMsg(t, "short", wire.Properties{Expiration: "100"}), q)  // its own 100 wins
	publish(propsMsg(t, "none", wire.Properties{}), q)                    // the queue's 500
	c.advance(200 * time.Millisecond)
	q.expire()
	// Expiry happens at the head: "short" waits behind "long".
	wantDead(t, dlx, nil, queue.ReasonExpired)
	c.advance(300 * time.Millisecond)
	q.expire()
	wantDead(t, dlx, []string{"long", "short", "none"}, queue.ReasonExpired)
}

func TestTTLZeroDeliversNowOrExpires(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	q, dlx := dlxQueue(t, c, func(cfg *queue.Config) { cfg.MessageTTL = 0 })
	mustPublish(t, q, "nobody there")
	wantDead(t, dlx, []string{"nobody there"}, queue.ReasonExpired)
	sink := newSink()
	mustAdd(t, q, &queue.Consumer{Tag: "c", Sink: sink})
	mustPublish(t, q, "taken")
	wantStrings(t, "delivered", bodies(sink.take()), []string{"taken"})
	wantDead(t, dlx, []string{"nobody there"}, queue.ReasonExpired)
}

func TestRequeueKeepsExpiry(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	q, dlx := dlxQueue(t, c, func(cfg *queue.Config) { cfg.MessageTTL = 1000 })
	mustPublish(t, q, "m")
	es := getAll(t, q, false)
	c.advance(1500 * time.Millisecond)
	q.Settle(nil, es, queue.Requeue)
	if got := getAll(t, q, true); len(got) != 0 {
		t.Fatalf("a requeued message past its original expiry was delivered: %q", entryBodies(got))
	}
	wantDead(t, dlx, []string{"m"}, queue.ReasonExpired)
}

func TestExpiryTimerFires(t *testing.T) {
	t.Parallel()
	q, dlx := dlxQueue(t, &fakeClock{now: time.Now()}, nil)
	q.kind.clock = time.Now // the real clock, for the real timer
	publish(propsMsg(t, "soon", wire.Properties{Expiration: "20"}), q)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := dlx.got(); len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expiry timer did not dead-letter the message within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	wantStats(t, q, 0, 0, 0)
}

func TestOverflowDeadLetters(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	tests := []struct {
		name     string
		overflow queue.Overflow
		wantDead []string
		wantKept []string
	}{
		{"drop-head dead-letters the head", queue.DropHead, []string{"m1", "m2"}, []string{"m3", "m4"}},
		{"reject-publish-dlx dead-letters the refused", queue.RejectPublishDLX, []string{"m3", "m4"}, []string{"m1", "m2"}},
		{"reject-publish drops nothing", queue.RejectPublish, nil, []string{"m1", "m2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, dlx := dlxQueue(t, c, func(cfg *queue.Config) { cfg.MaxLength, cfg.Overflow = 2, tt.overflow })
			for _, b := range []string{"m1", "m2", "m3", "m4"} {
				publish(msg(t, b), q)
			}
			wantDead(t, dlx, tt.wantDead, queue.ReasonMaxLen)
			wantStrings(t, "kept", entryBodies(getAll(t, q, true)), tt.wantKept)
		})
	}
}

func TestDeliveryLimit(t *testing.T) {
	t.Parallel()
	q, dlx := dlxQueue(t, newFakeClock(), func(cfg *queue.Config) { cfg.DeliveryLimit = 2 })
	mustPublish(t, q, "poison")
	var counts []any
	for range 3 {
		e, _, ok := q.Get(false)
		if !ok {
			t.Fatal("the message left before the limit")
		}
		h, _ := e.Msg.Props.Headers()
		counts = append(counts, h["x-delivery-count"])
		q.Settle(nil, []queue.Entry{e}, queue.Requeue)
	}
	if counts[0] != nil || counts[1] != int64(1) || counts[2] != int64(2) {
		t.Fatalf("x-delivery-count on the deliveries %v, want none, 1, 2", counts)
	}
	wantStats(t, q, 0, 0, 0)
	wantDead(t, dlx, []string{"poison"}, queue.ReasonDeliveryLimit)
}

func TestPriorities(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxPriority = 5
	q := memQueue(cfg)
	for _, m := range []struct {
		body string
		prio uint8
		set  bool
	}{{"none-1", 0, false}, {"p3-1", 3, true}, {"p9", 9, true}, {"p3-2", 3, true}, {"p5", 5, true}, {"none-2", 0, false}} {
		p := wire.Properties{}
		if m.set {
			p.Priority = m.prio
		}
		publish(propsMsg(t, m.body, p), q)
	}
	es := getAll(t, q, false)
	// Above the maximum counts as the maximum; FIFO within a priority.
	wantStrings(t, "order", entryBodies(es), []string{"p9", "p5", "p3-1", "p3-2", "none-1", "none-2"})
	// Requeued messages go back to their priority, ahead of newer ones.
	q.Settle(nil, []queue.Entry{es[2], es[4]}, queue.Requeue)
	publish(propsMsg(t, "p3-3", wire.Properties{Priority: 3}), q)
	wantStrings(t, "after requeue", entryBodies(getAll(t, q, true)), []string{"p3-1", "p3-3", "none-1"})
}

func TestPrioritiesIgnoredWithoutMaxPriority(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	publish(propsMsg(t, "low", wire.Properties{Priority: 1}), q)
	publish(propsMsg(t, "high", wire.Properties{Priority: 9}), q)
	wantStrings(t, "order", entryBodies(getAll(t, q, true)), []string{"low", "high"})
}

func TestRecoveryKeepsExpiryAndPriority(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newFakeClock()
	store := openStore(t, dir)
	k := NewKind(Options{Store: store, Now: c.Now})
	cfg := testConfig()
	cfg.Durable, cfg.MaxPriority, cfg.MessageTTL = true, 9, 1000
	q := newQueue(t, k, cfg)
	persistent := func(body string, prio uint8) *queue.Message {
		return propsMsg(t, body, wire.Properties{DeliveryMode: 2, Priority: prio})
	}
	publish(persistent("low", 1), q)
	publish(persistent("high", 7), q)
	flush(t, store)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store = openStore(t, dir)
	k = NewKind(Options{Store: store, Now: c.Now})
	cfg.ID, cfg.Recover = q.Config().ID, true
	q = newQueue(t, k, cfg)
	if err := k.FinishRecovery(); err != nil {
		t.Fatal(err)
	}
	es := getAll(t, q, false)
	wantStrings(t, "recovered order", entryBodies(es), []string{"high", "low"})
	q.Settle(nil, es, queue.Requeue)
	c.advance(time.Second + time.Millisecond)
	if got := getAll(t, q, true); len(got) != 0 {
		t.Fatalf("recovered messages past their expiry delivered: %q", entryBodies(got))
	}
}

// A policy change: a lower length limit drops (dead-letters) the oldest at
// once; a new TTL applies to messages enqueued from then on.
func TestSetSettings(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	q, dlx := dlxQueue(t, c, nil)
	mustPublish(t, q, "m1", "m2", "m3")
	s := q.Settings()
	s.MaxLength, s.MessageTTL = 1, 1000
	q.SetSettings(s)
	wantDead(t, dlx, []string{"m1", "m2"}, queue.ReasonMaxLen)
	s.MaxLength = -1
	q.SetSettings(s)
	mustPublish(t, q, "m4")
	c.advance(2 * time.Second)
	wantStrings(t, "left", entryBodies(getAll(t, q, true)), []string{"m3"}) // m4 expired
	if got := q.Settings(); got.MaxPriority != 0 || got.MessageTTL != 1000 {
		t.Fatalf("settings %+v", got)
	}
}
