package classic

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

func TestDispatchRoundRobin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		consumers int
		publish   int
		want      []string
	}{
		{"one consumer", 1, 3, []string{"c0", "c0", "c0"}},
		{"two consumers", 2, 5, []string{"c0", "c1", "c0", "c1", "c0"}},
		{"three consumers", 3, 7, []string{"c0", "c1", "c2", "c0", "c1", "c2", "c0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := memQueue(testConfig())
			sink := newSink()
			for i := range tt.consumers {
				mustAdd(t, q, &queue.Consumer{Tag: fmt.Sprintf("c%d", i), Sink: sink})
			}
			var want []string
			for i := range tt.publish {
				b := fmt.Sprintf("m%d", i)
				mustPublish(t, q, b)
				want = append(want, b)
			}
			got := sink.take()
			wantStrings(t, "consumers in delivery order", tags(got), tt.want)
			wantStrings(t, "bodies", bodies(got), want)
			wantStats(t, q, 0, tt.publish, tt.consumers)
			if s := q.Stats(); s.Published != uint64(tt.publish) || s.Delivered != uint64(tt.publish) {
				t.Fatalf("Stats: published %d delivered %d, want %d each", s.Published, s.Delivered, tt.publish)
			}
		})
	}
}

func TestMessagesPublishedBeforeConsumerGoToItInOrder(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	mustPublish(t, q, "a", "b", "c")
	wantStats(t, q, 3, 0, 0)
	sink := newSink()
	var startedFirst bool
	c := &queue.Consumer{Tag: "c", Sink: sink}
	err := q.AddConsumer(c, func() { startedFirst = sink.offerCount() == 0 })
	if err != nil {
		t.Fatal(err)
	}
	if !startedFirst {
		t.Fatal("started callback ran after the first delivery (consume-ok must precede messages)")
	}
	wantStrings(t, "bodies", bodies(sink.take()), []string{"a", "b", "c"})
	wantStats(t, q, 0, 3, 1)
}

func TestPrefetchCredit(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sink := newSink()
	c := mustAdd(t, q, &queue.Consumer{Tag: "c", Prefetch: 2, Sink: sink})
	mustPublish(t, q, "m1", "m2", "m3", "m4", "m5")
	got := sink.take()
	wantStrings(t, "first deliveries", bodies(got), []string{"m1", "m2"})
	wantStats(t, q, 3, 2, 1)

	// No credit: further publishes are not even offered.
	offers := sink.offerCount()
	mustPublish(t, q, "m6")
	if n := sink.offerCount(); n != offers {
		t.Fatalf("a consumer without credit was offered %d messages", n-offers)
	}

	q.Settle(c, entries(got[:1]), queue.Ack)
	wantStrings(t, "after one ack", bodies(sink.take()), []string{"m3"})
	wantStats(t, q, 3, 2, 1)

	q.Settle(c, entries(got[1:]), queue.Ack)
	rest := sink.take()
	wantStrings(t, "after the second ack", bodies(rest), []string{"m4"})
	q.Settle(c, entries(rest), queue.Ack)
	wantStrings(t, "after the third ack", bodies(sink.take()), []string{"m5"})
	wantStats(t, q, 1, 2, 1)
}

func TestPrefetchSpreadsOverConsumers(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sa, sb := newSink(), newSink()
	a := mustAdd(t, q, &queue.Consumer{Tag: "a", Prefetch: 1, Sink: sa})
	mustAdd(t, q, &queue.Consumer{Tag: "b", Prefetch: 1, Sink: sb})
	mustPublish(t, q, "m1", "m2", "m3")
	ga, gb := sa.take(), sb.take()
	wantStrings(t, "a's deliveries", bodies(ga), []string{"m1"})
	wantStrings(t, "b's deliveries", bodies(gb), []string{"m2"})
	wantStats(t, q, 1, 2, 2)
	q.Settle(a, entries(ga), queue.Ack)
	wantStrings(t, "a after its ack", bodies(sa.take()), []string{"m3"})
	if got := sb.take(); len(got) != 0 {
		t.Fatalf("b, still without credit, got %q", bodies(got))
	}
}

func TestNoAckConsumerIgnoresPrefetchAndSettles(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sink := newSink()
	mustAdd(t, q, &queue.Consumer{Tag: "c", NoAck: true, Prefetch: 1, Sink: sink})
	mustPublish(t, q, "m1", "m2", "m3")
	wantStrings(t, "bodies", bodies(sink.take()), []string{"m1", "m2", "m3"})
	wantStats(t, q, 0, 0, 1)
}

func TestRefusingSinkBlocksConsumerUntilResume(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sink := newSink()
	sink.setRoom(1)
	c := mustAdd(t, q, &queue.Consumer{Tag: "c", Sink: sink})
	mustPublish(t, q, "m1", "m2", "m3")
	wantStrings(t, "before the sink filled up", bodies(sink.take()), []string{"m1"})
	wantStats(t, q, 2, 1, 1)
	// The refusal blocked the consumer: it is not offered more until Resume.
	offers := sink.offerCount()
	mustPublish(t, q, "m4")
	if n := sink.offerCount(); n != offers {
		t.Fatalf("a blocked consumer was offered %d more messages", n-offers)
	}
	sink.setRoom(-1)
	q.Resume(c)
	got := sink.take()
	wantStrings(t, "after Resume", bodies(got), []string{"m2", "m3", "m4"})
	for _, d := range got {
		if d.e.Redelivered {
			t.Fatalf("%s: a refused offer is not a delivery, want redelivered=false", d.e.Msg.Body)
		}
	}
	wantStats(t, q, 0, 4, 1)
	// Resume of a consumer that is not blocked changes nothing.
	q.Resume(c)
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("Resume of an unblocked consumer delivered %q", bodies(got))
	}
}

func TestRefusedMessageGoesToAnotherConsumer(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	full, open := newSink(), newSink()
	full.setRoom(0)
	a := mustAdd(t, q, &queue.Consumer{Tag: "a", Sink: full})
	mustAdd(t, q, &queue.Consumer{Tag: "b", Sink: open})
	mustPublish(t, q, "m1", "m2", "m3")
	wantStrings(t, "b's deliveries", bodies(open.take()), []string{"m1", "m2", "m3"})
	if full.offerCount() != 1 {
		t.Fatalf("the refusing sink was offered %d messages, want 1 (then blocked)", full.offerCount())
	}
	full.setRoom(-1)
	q.Resume(a)
	mustPublish(t, q, "m4", "m5")
	if got := len(full.take()) + len(open.take()); got != 2 {
		t.Fatalf("%d deliveries after Resume, want 2", got)
	}
	if full.offerCount() < 2 {
		t.Fatal("the resumed consumer was never offered a message again")
	}
}

func TestRefusedRedeliveryKeepsOrder(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	mustPublish(t, q, "m1", "m2", "m3")
	got := getAll(t, q, false)
	q.Settle(nil, got[:2], queue.Requeue) // m1, m2 come back redelivered, ahead of nothing
	mustPublish(t, q, "m4")
	sink := newSink()
	sink.setRoom(0)
	c := mustAdd(t, q, &queue.Consumer{Tag: "c", Sink: sink})
	sink.setRoom(-1)
	q.Resume(c)
	ds := sink.take()
	wantStrings(t, "bodies", bodies(ds), []string{"m1", "m2", "m4"})
	if !ds[0].e.Redelivered || !ds[1].e.Redelivered || ds[2].e.Redelivered {
		t.Fatalf("redelivered flags %v %v %v, want true true false", ds[0].e.Redelivered, ds[1].e.Redelivered, ds[2].e.Redelivered)
	}
}

func TestConsumerPriorities(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		order []int // priorities in the order the consumers are added
	}{
		{"low added first", []int{0, 10}},
		{"high added first", []int{10, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := memQueue(testConfig())
			sink := newSink()
			var high *queue.Consumer
			for _, p := range tt.order {
				c := &queue.Consumer{Tag: fmt.Sprintf("p%d", p), Priority: p, Sink: sink}
				if p == 10 {
					c.Prefetch = 2
					high = c
				}
				mustAdd(t, q, c)
			}
			mustPublish(t, q, "m1", "m2", "m3", "m4")
			got := sink.take()
			wantStrings(t, "consumers", tags(got), []string{"p10", "p10", "p0", "p0"})
			q.Settle(high, entries(got[:1]), queue.Ack)
			mustPublish(t, q, "m5", "m6")
			wantStrings(t, "after the high consumer got credit back", tags(sink.take()), []string{"p10", "p0"})
		})
	}
}

func TestEqualPriorityRoundRobinBelowHigherGroup(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sink := newSink()
	blocked := newSink()
	blocked.setRoom(0)
	mustAdd(t, q, &queue.Consumer{Tag: "high", Priority: 5, Sink: blocked})
	mustAdd(t, q, &queue.Consumer{Tag: "a", Sink: sink})
	mustAdd(t, q, &queue.Consumer{Tag: "b", Sink: sink})
	mustPublish(t, q, "m1", "m2", "m3", "m4")
	got := tags(sink.take())
	if n := len(got); n != 4 {
		t.Fatalf("%d deliveries, want 4", n)
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("deliveries %q: equal-priority consumers not alternated", got)
		}
	}
}

func TestExclusiveConsumer(t *testing.T) {
	t.Parallel()
	const locked = "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"
	tests := []struct {
		name                  string
		firstExcl, secondExcl bool
		wantErr               bool
	}{
		{"exclusive then shared", true, false, true},
		{"exclusive then exclusive", true, true, true},
		{"shared then exclusive", false, true, true},
		{"shared then shared", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := memQueue(testConfig())
			first := mustAdd(t, q, &queue.Consumer{Tag: "first", Exclusive: tt.firstExcl, Sink: newSink()})
			second := &queue.Consumer{Tag: "second", Exclusive: tt.secondExcl, Sink: newSink()}
			started := false
			err := q.AddConsumer(second, func() { started = true })
			if started == tt.wantErr {
				t.Fatalf("started ran: %v, want %v", started, !tt.wantErr)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("AddConsumer: %v", err)
				}
				return
			}
			wantWireError(t, err, wire.AccessRefused, locked)
			wantStats(t, q, 0, 0, 1)
			// Once the first goes, the second may consume.
			q.RemoveConsumer(first)
			if err := q.AddConsumer(second, nil); err != nil {
				t.Fatalf("AddConsumer after the first left: %v", err)
			}
		})
	}
}

func TestExclusiveConsumerGetsEverything(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sink := newSink()
	mustAdd(t, q, &queue.Consumer{Tag: "x", Exclusive: true, Priority: -1, Sink: sink})
	mustPublish(t, q, "m1", "m2")
	wantStrings(t, "consumers", tags(sink.take()), []string{"x", "x"})
}

func TestSingleActiveConsumer(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.SingleActiveConsumer = true
	q := memQueue(cfg)
	sa, sb, sc := newSink(), newSink(), newSink()
	a := mustAdd(t, q, &queue.Consumer{Tag: "a", Prefetch: 1, Sink: sa})
	// A higher priority does not make a later consumer active: SAC keeps
	// arrival order.
	b := mustAdd(t, q, &queue.Consumer{Tag: "b", Priority: 10, Sink: sb})
	mustAdd(t, q, &queue.Consumer{Tag: "c", Sink: sc})
	mustPublish(t, q, "m1", "m2", "m3")
	ga := sa.take()
	wantStrings(t, "a's deliveries", bodies(ga), []string{"m1"})
	if n := len(sb.take()) + len(sc.take()); n != 0 {
		t.Fatalf("inactive consumers got %d messages", n)
	}
	wantStats(t, q, 2, 1, 3)

	// a goes: b takes over at once; a's unacked delivery stays with a.
	q.RemoveConsumer(a)
	wantStrings(t, "b after failover", bodies(sb.take()), []string{"m2", "m3"})
	wantStats(t, q, 0, 3, 2)
	// a's channel requeues what it held: it goes to the active consumer.
	q.Settle(a, entries(ga), queue.Requeue)
	got := sb.take()
	wantStrings(t, "b after a's requeue", bodies(got), []string{"m1"})
	if !got[0].e.Redelivered {
		t.Fatal("requeued message not marked redelivered")
	}
	q.RemoveConsumer(b)
	mustPublish(t, q, "m4")
	wantStrings(t, "c after the second failover", bodies(sc.take()), []string{"m4"})
}

func TestAutoDelete(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var deleted []queue.Queue
	cfg := testConfig()
	cfg.AutoDelete = true
	cfg.OnAutoDelete = func(q queue.Queue) {
		mu.Lock()
		deleted = append(deleted, q)
		mu.Unlock()
	}
	q := memQueue(cfg)
	calls := func() []queue.Queue {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(deleted)
	}

	// Never had a consumer: publishing, getting and removing an unknown
	// consumer do not delete it.
	mustPublish(t, q, "m1", "m2", "m3")
	if _, _, ok := q.Get(true); !ok {
		t.Fatal("Get on a queue with messages found none")
	}
	q.RemoveConsumer(&queue.Consumer{Tag: "stranger", Sink: newSink()})
	if q.Deleted() || len(calls()) != 0 {
		t.Fatal("an auto-delete queue that never had a consumer was deleted")
	}

	a := mustAdd(t, q, &queue.Consumer{Tag: "a", Prefetch: 1, Sink: newSink()})
	b := mustAdd(t, q, &queue.Consumer{Tag: "b", Prefetch: 1, Sink: newSink()})
	q.RemoveConsumer(a)
	if q.Deleted() || len(calls()) != 0 {
		t.Fatal("deleted while a consumer remained")
	}
	q.RemoveConsumer(b)
	if !q.Deleted() {
		t.Fatal("not deleted after its last consumer left")
	}
	if got := calls(); len(got) != 1 || got[0] != queue.Queue(q) {
		t.Fatalf("OnAutoDelete called with %v, want once with the queue", got)
	}
	if res := q.Enqueue(msg(t, "late")).Result; res != queue.Gone {
		t.Fatalf("Publish to an auto-deleted queue = %v, want Gone", res)
	}
	wantWireError(t, q.AddConsumer(&queue.Consumer{Tag: "late", Sink: newSink()}, nil), wire.NotFound, "NOT_FOUND - no queue 'q' in vhost '/'")
	q.RemoveConsumer(b) // again: nothing happens
	if n := len(calls()); n != 1 {
		t.Fatalf("OnAutoDelete called %d times, want 1", n)
	}
}

func TestNonAutoDeleteQueueSurvivesLastConsumer(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	c := mustAdd(t, q, &queue.Consumer{Tag: "c", Sink: newSink()})
	q.RemoveConsumer(c)
	if q.Deleted() {
		t.Fatal("a queue without auto-delete deleted itself")
	}
}

func TestRequeueOrder(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	mustPublish(t, q, "m1", "m2", "m3", "m4", "m5")
	var held []queue.Entry
	for range 3 {
		e, _, ok := q.Get(false)
		if !ok {
			t.Fatal("Get found nothing")
		}
		held = append(held, e)
	}
	wantStats(t, q, 2, 3, 0)
	// Requeue m3 and m1, out of order: they return in Seq order, ahead of
	// the newer m4 and m5.
	q.Settle(nil, []queue.Entry{held[2], held[0]}, queue.Requeue)
	wantStats(t, q, 4, 1, 0)
	mustPublish(t, q, "m6")
	var order []string
	var redelivered []bool
	for range 3 {
		e, _, _ := q.Get(true)
		order = append(order, string(e.Msg.Body))
		redelivered = append(redelivered, e.Redelivered)
	}
	wantStrings(t, "order after requeue", order, []string{"m1", "m3", "m4"})
	if !slices.Equal(redelivered, []bool{true, true, false}) {
		t.Fatalf("redelivered = %v, want [true true false]", redelivered)
	}
	// m2 comes back ahead of m5 and m6 though it was requeued last.
	q.Settle(nil, held[1:2], queue.Requeue)
	wantStrings(t, "rest", entryBodies(getAll(t, q, true)), []string{"m2", "m5", "m6"})
	wantStats(t, q, 0, 0, 0)
}

func TestRequeueFromConsumerRedeliversAheadOfNewer(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sink := newSink()
	c := mustAdd(t, q, &queue.Consumer{Tag: "c", Prefetch: 2, Sink: sink})
	mustPublish(t, q, "m1", "m2", "m3", "m4")
	got := sink.take()
	wantStrings(t, "first", bodies(got), []string{"m1", "m2"})
	// Requeue frees the credit and the requeued messages come first.
	q.Settle(c, []queue.Entry{got[1].e, got[0].e}, queue.Requeue)
	again := sink.take()
	wantStrings(t, "after requeue", bodies(again), []string{"m1", "m2"})
	for _, d := range again {
		if !d.e.Redelivered {
			t.Fatalf("%s not marked redelivered", d.e.Msg.Body)
		}
	}
	wantStats(t, q, 2, 2, 1)
}

func TestGet(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	if e, n, ok := q.Get(false); ok || n != 0 || e.Msg != nil {
		t.Fatalf("Get on an empty queue = %v, %d, %v; want nothing", e, n, ok)
	}
	mustPublish(t, q, "m1", "m2", "m3")
	tests := []struct {
		noAck     bool
		body      string
		remaining int
		unacked   int
	}{
		{false, "m1", 2, 1},
		{true, "m2", 1, 1},
		{false, "m3", 0, 2},
	}
	for _, tt := range tests {
		e, n, ok := q.Get(tt.noAck)
		if !ok || string(e.Msg.Body) != tt.body || n != tt.remaining {
			t.Fatalf("Get(%v) = %q, %d, %v; want %q, %d, true", tt.noAck, e.Msg.Body, n, ok, tt.body, tt.remaining)
		}
		if e.Redelivered {
			t.Fatalf("%s: first delivery marked redelivered", tt.body)
		}
		wantStats(t, q, tt.remaining, tt.unacked, 0)
	}
	if _, n, ok := q.Get(true); ok || n != 0 {
		t.Fatalf("Get after draining = %d, %v; want 0, false", n, ok)
	}
}

func TestPurgeDropsOnlyReady(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	mustPublish(t, q, "m1", "m2", "m3", "m4", "m5")
	held := []queue.Entry{}
	for range 2 {
		e, _, _ := q.Get(false)
		held = append(held, e)
	}
	if n := q.Purge(); n != 3 {
		t.Fatalf("Purge = %d, want 3", n)
	}
	wantStats(t, q, 0, 2, 0)
	if s := q.Stats(); s.ReadyBytes != 0 || s.Resident != 0 {
		t.Fatalf("after Purge: ready bytes %d resident %d, want 0", s.ReadyBytes, s.Resident)
	}
	q.Settle(nil, held, queue.Requeue)
	wantStrings(t, "unacked survive a purge", entryBodies(getAll(t, q, true)), []string{"m1", "m2"})
	if n := q.Purge(); n != 0 {
		t.Fatalf("Purge of an empty queue = %d", n)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	const (
		inUse    = "PRECONDITION_FAILED - queue 'q' in vhost '/' in use"
		notEmpty = "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty"
	)
	tests := []struct {
		name              string
		consumer, message bool
		ifUnused, ifEmpty bool
		wantText          string // "" for success
	}{
		{"plain", true, true, false, false, ""},
		{"if-unused with a consumer", true, false, true, false, inUse},
		{"if-unused without consumers", false, true, true, false, ""},
		{"if-empty with a message", false, true, false, true, notEmpty},
		{"if-empty when empty", true, false, false, true, ""},
		{"if-unused checked before if-empty", true, true, true, true, inUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := memQueue(testConfig())
			sink := newSink()
			if tt.message {
				mustPublish(t, q, "a", "b")
			}
			var c *queue.Consumer
			if tt.consumer {
				// A consumer whose channel has no room: the messages stay ready.
				sink.setRoom(0)
				c = mustAdd(t, q, &queue.Consumer{Tag: "c", Sink: sink})
			}
			ready := q.Stats().Ready
			n, err := q.Delete(tt.ifUnused, tt.ifEmpty)
			if tt.wantText != "" {
				wantWireError(t, err, wire.PreconditionFailed, tt.wantText)
				if q.Deleted() {
					t.Fatal("a refused delete deleted the queue")
				}
				return
			}
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if n != ready {
				t.Fatalf("Delete dropped %d, want %d", n, ready)
			}
			if !q.Deleted() {
				t.Fatal("Deleted() = false after Delete")
			}
			if tt.consumer {
				if got := sink.cancelledConsumers(); len(got) != 1 || got[0] != c {
					t.Fatalf("Cancelled called for %v, want the consumer once", got)
				}
			}
			if n, err := q.Delete(tt.ifUnused, tt.ifEmpty); n != 0 || err != nil {
				t.Fatalf("second Delete = %d, %v; want 0, nil", n, err)
			}
			if res := q.Enqueue(msg(t, "late")).Result; res != queue.Gone {
				t.Fatalf("Publish after Delete = %v, want Gone", res)
			}
		})
	}
}

func TestDeleteIfEmptyIgnoresUnacked(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	mustPublish(t, q, "m1")
	e, _, _ := q.Get(false)
	if _, err := q.Delete(false, true); err != nil {
		t.Fatalf("if-empty delete with only an unacked message: %v", err)
	}
	// The unacked delivery comes back after the delete: it is dropped.
	q.Settle(nil, []queue.Entry{e}, queue.Requeue)
	wantStats(t, q, 0, 0, 0)
}

func TestLengthLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		maxLen       int64
		maxBytes     int64
		overflow     queue.Overflow
		consumer     bool
		publish      []string
		wantRejected []string
		wantReady    []string
		wantConsumed []string
	}{
		{name: "drop-head count", maxLen: 3, maxBytes: -1, overflow: queue.DropHead,
			publish: []string{"m1", "m2", "m3", "m4", "m5"}, wantReady: []string{"m3", "m4", "m5"}},
		{name: "drop-head bytes", maxLen: -1, maxBytes: 10, overflow: queue.DropHead,
			publish: []string{"aaaa", "bbbb", "cccc", "dddd"}, wantReady: []string{"cccc", "dddd"}},
		{name: "drop-head bytes, message larger than the limit", maxLen: -1, maxBytes: 5, overflow: queue.DropHead,
			publish: []string{"aa", "bbbbbbbbbb"}, wantReady: []string{}},
		{name: "drop-head both limits", maxLen: 2, maxBytes: 100, overflow: queue.DropHead,
			publish: []string{"a", "b", "c"}, wantReady: []string{"b", "c"}},
		{name: "reject-publish count", maxLen: 2, maxBytes: -1, overflow: queue.RejectPublish,
			publish: []string{"m1", "m2", "m3", "m4"}, wantRejected: []string{"m3", "m4"}, wantReady: []string{"m1", "m2"}},
		{name: "reject-publish bytes", maxLen: -1, maxBytes: 6, overflow: queue.RejectPublish,
			publish: []string{"aaa", "bbb", "c"}, wantRejected: []string{"c"}, wantReady: []string{"aaa", "bbb"}},
		{name: "reject-publish-dlx", maxLen: 1, maxBytes: -1, overflow: queue.RejectPublishDLX,
			publish: []string{"m1", "m2"}, wantRejected: []string{"m2"}, wantReady: []string{"m1"}},
		{name: "max-length 0 drop-head, no consumer", maxLen: 0, maxBytes: -1, overflow: queue.DropHead,
			publish: []string{"m1", "m2"}, wantReady: []string{}},
		{name: "max-length 0 drop-head, consumer takes it", maxLen: 0, maxBytes: -1, overflow: queue.DropHead, consumer: true,
			publish: []string{"m1", "m2"}, wantReady: []string{}, wantConsumed: []string{"m1", "m2"}},
		{name: "max-length 0 reject-publish, even with a consumer", maxLen: 0, maxBytes: -1, overflow: queue.RejectPublish, consumer: true,
			publish: []string{"m1"}, wantRejected: []string{"m1"}, wantReady: []string{}},
		{name: "max-length-bytes 0 drop-head", maxLen: -1, maxBytes: 0, overflow: queue.DropHead,
			publish: []string{"m1"}, wantReady: []string{}},
		{name: "empty bodies fit max-length-bytes 0", maxLen: -1, maxBytes: 0, overflow: queue.RejectPublish,
			publish: []string{"", ""}, wantReady: []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.MaxLength, cfg.MaxLengthBytes, cfg.Overflow = tt.maxLen, tt.maxBytes, tt.overflow
			q := memQueue(cfg)
			sink := newSink()
			if tt.consumer {
				mustAdd(t, q, &queue.Consumer{Tag: "c", Sink: sink})
			}
			rejected := []string{}
			for _, b := range tt.publish {
				switch res := q.Enqueue(msg(t, b)).Result; res {
				case queue.Rejected:
					rejected = append(rejected, b)
				case queue.Enqueued:
				default:
					t.Fatalf("Publish(%q) = %v", b, res)
				}
			}
			wantStrings(t, "rejected", rejected, append([]string{}, tt.wantRejected...))
			wantStrings(t, "consumed", append([]string{}, bodies(sink.take())...), append([]string{}, tt.wantConsumed...))
			var bytes int64
			for _, b := range tt.wantReady {
				bytes += int64(len(b))
			}
			if s := q.Stats(); s.ReadyBytes != bytes {
				t.Fatalf("ReadyBytes = %d, want %d", s.ReadyBytes, bytes)
			}
			wantStrings(t, "ready", append([]string{}, entryBodies(getAll(t, q, true))...), tt.wantReady)
		})
	}
}

func TestLengthLimitCountsOnlyReady(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxLength = 1
	cfg.Overflow = queue.RejectPublish
	q := memQueue(cfg)
	mustPublish(t, q, "m1")
	if _, _, ok := q.Get(false); !ok {
		t.Fatal("Get found nothing")
	}
	// m1 is unacked, not ready: there is room for m2.
	mustPublish(t, q, "m2")
	if res := q.Enqueue(msg(t, "m3")).Result; res != queue.Rejected {
		t.Fatalf("Publish past the limit = %v, want Rejected", res)
	}
}

// RabbitMQ's classic queue trims a drop-head queue back to its limit after
// a requeue (rabbit_amqqueue_process:requeue_and_run calls maybe_drop_head),
// dropping from the head, which is where the requeued messages go.
func TestRequeueTrimsDropHeadQueueToLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxLength = 2
	q := memQueue(cfg)
	mustPublish(t, q, "m1", "m2")
	held := getAll(t, q, false)
	mustPublish(t, q, "m3", "m4")
	q.Settle(nil, held, queue.Requeue)
	wantStrings(t, "ready after requeue past max-length 2", entryBodies(getAll(t, q, true)), []string{"m3", "m4"})
}

// TestConcurrentPublishAndAck publishes from several goroutines to a
// queue whose consumers' acks come from other goroutines (as they do from
// channels' readers), and checks every message is delivered exactly once.
func TestConcurrentPublishAndAck(t *testing.T) {
	t.Parallel()
	const (
		publishers = 4
		perPub     = 500
		total      = publishers * perPub
		consumers  = 3
		prefetch   = 10
	)
	q := memQueue(testConfig())
	var (
		mu    sync.Mutex
		seen  = make(map[string]int)
		acked int
		done  = make(chan struct{})
		wg    sync.WaitGroup
		sinks []*chanSink
	)
	for i := range consumers {
		s := &chanSink{ch: make(chan queue.Entry, prefetch)}
		sinks = append(sinks, s)
		c := mustAdd(t, q, &queue.Consumer{Tag: fmt.Sprintf("c%d", i), Prefetch: prefetch, Sink: s})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range s.ch {
				q.Settle(c, []queue.Entry{e}, queue.Ack)
				mu.Lock()
				seen[string(e.Msg.Body)]++
				if acked++; acked == total {
					close(done)
				}
				mu.Unlock()
			}
		}()
	}
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := range perPub {
				if res := q.Enqueue(queue.BuildMessage("", "q", nil, fmt.Appendf(nil, "%d-%d", p, i))).Result; res != queue.Enqueued {
					t.Errorf("Publish = %v", res)
					return
				}
			}
		}()
	}
	pubs.Wait()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("not every message acked after 30s: %+v", q.Stats())
	}
	for _, s := range sinks {
		close(s.ch)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(seen) != total {
		t.Fatalf("%d distinct messages delivered, want %d", len(seen), total)
	}
	for b, n := range seen {
		if n != 1 {
			t.Fatalf("message %s delivered %d times", b, n)
		}
	}
	wantStats(t, q, 0, 0, consumers)
	if s := q.Stats(); s.Published != total || s.Delivered != total {
		t.Fatalf("Stats: published %d delivered %d, want %d", s.Published, s.Delivered, total)
	}
}

// chanSink hands deliveries to a goroutine through a channel with room for
// the consumer's prefetch, so Deliver never blocks.
type chanSink struct{ ch chan queue.Entry }

func (s *chanSink) Deliver(_ *queue.Consumer, e queue.Entry) bool {
	select {
	case s.ch <- e:
		return true
	default:
		return false
	}
}

func (s *chanSink) Cancelled(*queue.Consumer) {}

// A publisher does not hand a message to a lower-priority consumer at once
// while a higher-priority one is out of prefetch credit: it defers, so that
// an ack already on its way can be read first.
func TestPublishDefersOvertakingPrefetchLimitedConsumer(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sink := newSink()
	mustAdd(t, q, &queue.Consumer{Tag: "high", Priority: 10, Prefetch: 1, Sink: sink})
	mustAdd(t, q, &queue.Consumer{Tag: "low", Sink: sink})
	mustPublish(t, q, "m1")
	wantStrings(t, "first delivery", tags(sink.take()), []string{"high"})

	q.mu.Lock()
	q.enqueueLocked(msg(t, "m2"))
	deferred := q.dispatchOrDeferLocked()
	q.mu.Unlock()
	if !deferred || len(sink.take()) != 0 {
		t.Fatal("m2 went to the low-priority consumer without deferring")
	}
	q.mu.Lock()
	q.dispatchLocked() // what Enqueue does after it yields
	q.mu.Unlock()
	wantStrings(t, "after the deferral", tags(sink.take()), []string{"low"})

	// A consumer refused by its sink (its connection is full) is not
	// waiting for an ack: nothing to defer for.
	blocked := newSink()
	blocked.setRoom(0)
	q2 := memQueue(testConfig())
	mustAdd(t, q2, &queue.Consumer{Tag: "full", Priority: 10, Sink: blocked})
	mustAdd(t, q2, &queue.Consumer{Tag: "low", Sink: sink})
	mustPublish(t, q2, "m1")
	q2.mu.Lock()
	q2.enqueueLocked(msg(t, "m2"))
	deferred = q2.dispatchOrDeferLocked()
	q2.mu.Unlock()
	if deferred {
		t.Fatal("deferred for a consumer its sink refused")
	}
	wantStrings(t, "past the refused consumer", tags(sink.take()), []string{"low", "low"})
}

// Deferring for a higher-priority consumer does not disturb the round robin
// among the lower ones.
func TestOvertakingKeepsRoundRobin(t *testing.T) {
	t.Parallel()
	q := memQueue(testConfig())
	sink := newSink()
	mustAdd(t, q, &queue.Consumer{Tag: "high", Priority: 10, Prefetch: 1, Sink: sink})
	mustAdd(t, q, &queue.Consumer{Tag: "a", Sink: sink})
	mustAdd(t, q, &queue.Consumer{Tag: "b", Sink: sink})
	mustPublish(t, q, "m0", "m1", "m2", "m3", "m4", "m5", "m6")
	got := tags(sink.take())
	if got[0] != "high" {
		t.Fatalf("consumers %q: high did not take the first", got)
	}
	for i := 2; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("consumers %q: a and b do not take turns", got)
		}
	}
}

// recordingDLX is a dead-letter sink that records what it is given.
type recordingDLX struct {
	mu     sync.Mutex
	q      []queue.Queue
	reason []queue.Reason
	bodies []string
}

func (d *recordingDLX) DeadLetter(q queue.Queue, reason queue.Reason, msgs []*queue.Message) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range msgs {
		d.q = append(d.q, q)
		d.reason = append(d.reason, reason)
		d.bodies = append(d.bodies, string(m.Body))
	}
}

func TestSettleOutcomes(t *testing.T) {
	t.Parallel()
	dlx := &recordingDLX{}
	cfg := testConfig()
	cfg.DeadLetter, cfg.DeadLetterSink = true, dlx
	q := memQueue(cfg)
	mustPublish(t, q, "acked", "requeued", "discarded")
	es := getAll(t, q, false)
	wantStats(t, q, 0, 3, 0)
	q.Settle(nil, es[0:1], queue.Ack)
	q.Settle(nil, es[1:2], queue.Requeue)
	q.Settle(nil, es[2:3], queue.Discard)
	wantStats(t, q, 1, 0, 0)
	if d := getAll(t, q, true); len(d) != 1 || string(d[0].Msg.Body) != "requeued" || !d[0].Redelivered {
		t.Fatalf("after the settles the queue holds %q", entryBodies(d))
	}
	dlx.mu.Lock()
	defer dlx.mu.Unlock()
	wantStrings(t, "dead-lettered", dlx.bodies, []string{"discarded"})
	if dlx.reason[0] != queue.ReasonRejected || dlx.q[0] != queue.Queue(q) {
		t.Fatalf("dead-lettered by %v for %v, want the queue for rejected", dlx.q[0], dlx.reason[0])
	}
}

// A discarded message leaves the store like an acked one.
func TestDiscardRemovesStoredMessage(t *testing.T) {
	t.Parallel()
	k := NewKind(Options{Store: openStore(t, t.TempDir())})
	q := storageQueue(t, k, "q")
	m := persistentMsg(t, "refused")
	publish(m, q)
	e, _, _ := q.Get(false)
	q.Settle(nil, []queue.Entry{e}, queue.Discard)
	flush(t, k.store)
	if _, ok := storedBody(t, k.store, m.ID); ok {
		t.Fatal("a discarded message is still stored")
	}
	if got := storedEntries(t, k.store, q.Config().ID); len(got) != 0 {
		t.Fatalf("entries left: %+v", got)
	}
}

func TestDeduplicatingQueue(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Deduplicate = true
	q := memQueue(cfg)
	keyed := func(body, key string) *queue.Message {
		return propsMsg(t, body, wire.Properties{Headers: wire.Table{"x-deduplication-header": key}})
	}
	for _, m := range []*queue.Message{keyed("a1", "a"), keyed("a2", "a"), keyed("b1", "b"), msg(t, "none"), msg(t, "none")} {
		out := publish(m, q)
		if !out.Routed || !out.Promises.Kept() {
			t.Fatalf("publish of %s: %+v, want routed (a duplicate counts as routed)", m.Body, out)
		}
	}
	wantStats(t, q, 4, 0, 0) // a2 was a duplicate
	es := getAll(t, q, false)
	wantStrings(t, "held", entryBodies(es), []string{"a1", "b1", "none", "none"})
	// Unacknowledged still counts as held; a requeue keeps the key.
	publish(keyed("a3", "a"), q)
	q.Settle(nil, es[:1], queue.Requeue)
	publish(keyed("a4", "a"), q)
	wantStats(t, q, 1, 3, 0)
	// Once the message leaves for good, the key is free again.
	a, _, _ := q.Get(false)
	q.Settle(nil, []queue.Entry{a}, queue.Ack)
	publish(keyed("a5", "a"), q)
	q.Settle(nil, es[1:2], queue.Discard) // b1 leaves too
	publish(keyed("b2", "b"), q)
	wantStrings(t, "after the acks", entryBodies(getAll(t, q, true)), []string{"a5", "b2"})
}

// As in RabbitMQ, a full queue that rejects publishes rejects a duplicate
// too, and a duplicate is dropped before it could push out a drop-head
// queue's head.
func TestDuplicateOnAFullQueue(t *testing.T) {
	t.Parallel()
	keyed := func(body, key string) *queue.Message {
		return propsMsg(t, body, wire.Properties{Headers: wire.Table{"x-deduplication-header": key}})
	}
	for _, overflow := range []queue.Overflow{queue.DropHead, queue.RejectPublish} {
		q, dlx := dlxQueue(t, newFakeClock(), func(cfg *queue.Config) {
			cfg.Deduplicate, cfg.MaxLength, cfg.Overflow = true, 2, overflow
		})
		publish(keyed("a", "a"), q)
		publish(keyed("b", "b"), q)
		out := publish(keyed("b again", "b"), q)
		if out.Rejected != (overflow == queue.RejectPublish) {
			t.Fatalf("overflow %v: duplicate rejected = %v", overflow, out.Rejected)
		}
		wantDead(t, dlx, nil, queue.ReasonMaxLen)
		wantStrings(t, "held", entryBodies(getAll(t, q, true)), []string{"a", "b"})
	}
}
