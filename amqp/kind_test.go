package amqp_test

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
	"github.com/warrenmq/warren/vhost"
)

// A queue kind the front end has never heard of works through a real
// connection: it is registered, chosen by x-queue-type, and its promises
// decide when publishes are confirmed.
func TestRegisteredKindThroughAConnection(t *testing.T) {
	ledger := &manualLedger{}
	memo := &memoKind{ledger: ledger}
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, classic.NewKind(classic.Options{}))
	kinds.Register("memo", memo)
	url := startServer(t, kinds).url

	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("m", true, false, false, false, amqp091.Table{"x-queue-type": "memo"}); err != nil {
		t.Fatal(err)
	}
	q := memo.queue("m")
	if q == nil {
		t.Fatal("the declare did not reach the memo kind")
	}
	// Declaring it again with the same type is equivalent; another type is not.
	if _, err := ch.QueueDeclare("m", true, false, false, false, amqp091.Table{"x-queue-type": "memo"}); err != nil {
		t.Fatal(err)
	}
	other, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.QueueDeclare("m", true, false, false, false, amqp091.Table{"x-queue-type": "classic"})
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != int(wire.PreconditionFailed) ||
		ae.Reason != "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'm' in vhost '/': received 'classic' but current is 'memo'" {
		t.Fatalf("redeclare as classic: %v", err)
	}

	// Confirms wait for the kind's promise.
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 4))
	if err := ch.Publish("", "m", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	// Two round trips: a confirm that were due would have been sent by the
	// end of the read batch before the second.
	for range 2 {
		if _, err := ch.QueueDeclarePassive("m", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case c := <-confirms:
		t.Fatalf("confirm %+v before the kind kept its promise", c)
	default:
	}
	ledger.release(nil)
	if c := waitConfirm(t, confirms); !c.Ack || c.DeliveryTag != 1 {
		t.Fatalf("confirm %+v, want ack of 1", c)
	}

	// Consume, then reject without requeue: the kind hears a discard.
	msgs, err := ch.Consume("m", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := receive(t, msgs)
	if string(d.Body) != "one" {
		t.Fatalf("got %q", d.Body)
	}
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return q.settled(queue.Discard) == 1 })

	// A promise the kind breaks is a nack, and the channel is closed.
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Publish("", "m", false, false, amqp091.Publishing{Body: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	d = receive(t, msgs)
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return q.settled(queue.Ack) == 1 })
	ledger.release(errors.New("lost"))
	if c := waitConfirm(t, confirms); c.Ack || c.DeliveryTag != 2 {
		t.Fatalf("confirm %+v, want nack of 2", c)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != int(wire.InternalError) {
			t.Fatalf("channel closed with %v, want 541", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed after a broken promise")
	}

	// Purge and delete reach the kind too.
	ch2, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch2.Publish("", "m", false, false, amqp091.Publishing{Body: []byte("three")}); err != nil {
		t.Fatal(err)
	}
	if n, err := ch2.QueuePurge("m", false); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want 1", n, err)
	}
	if _, err := ch2.QueueDelete("m", false, false, false); err != nil {
		t.Fatal(err)
	}
	if !q.Deleted() {
		t.Fatal("queue.delete did not reach the memo queue")
	}
}

// startServer serves AMQP on a loopback port with the given queue kinds
// and returns the URL to dial.
// startServer serves the default vhost over kinds on a random port; it
// returns guest's URL and the server's users.
// testServer is a server on a loopback port, its URL (as guest) and parts.
type testServer struct {
	url    string
	users  *auth.Store
	vhosts *vhost.Registry
	srv    *amqp.Server
}

func startServer(t *testing.T, kinds *queue.Kinds) testServer {
	return startServerWith(t, kinds, amqp.DefaultConfig())
}

// startServerWith starts a server with cfg.
func startServerWith(t *testing.T, kinds *queue.Kinds, cfg amqp.Config) testServer {
	t.Helper()
	vhosts := vhost.NewRegistry(vhost.Deps{Kinds: kinds})
	if _, err := vhosts.Add(vhost.DefaultName); err != nil {
		t.Fatal(err)
	}
	users, err := auth.New(auth.Config{DefaultUser: "guest", DefaultPass: "guest", DefaultVhost: vhost.DefaultName})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := amqp.NewServer(cfg, amqp.Deps{Users: users, Vhosts: vhosts})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(t.Context())
		ln.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return testServer{url: "amqp://guest:guest@" + ln.Addr().String() + "/", users: users, vhosts: vhosts, srv: srv}
}

// A publisher whose queue pushes back is not read until the queue's
// promise is kept, and shows RabbitMQ's "flow" state meanwhile.
func TestBackpressureHoldsPublisher(t *testing.T) {
	ledger := &manualLedger{}
	memo := &memoKind{ledger: ledger}
	kinds := &queue.Kinds{}
	kinds.Register("memo", memo)
	ts := startServer(t, kinds)
	ch := dial(t, ts.url)
	if _, err := ch.QueueDeclare("pb", true, false, false, false, amqp091.Table{"x-queue-type": "memo"}); err != nil {
		t.Fatal(err)
	}
	q := memo.queue("pb")
	q.mu.Lock()
	q.pushBack = true
	q.mu.Unlock()
	for _, body := range []string{"one", "two"} {
		if err := ch.Publish("", "pb", false, false, amqp091.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	state := func() string { return ts.srv.Connections()[0].State }
	waitFor(t, func() bool { return state() == "flow" })
	q.mu.Lock()
	held := len(q.ready)
	q.mu.Unlock()
	if held != 1 {
		t.Fatalf("%d messages enqueued while the first one's promise was pending, want 1", held)
	}
	ledger.release(nil)
	waitFor(t, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.ready) == 2 })
	ledger.release(nil)
	waitFor(t, func() bool { return state() == "running" })
}

func waitConfirm(t *testing.T, c <-chan amqp091.Confirmation) amqp091.Confirmation {
	t.Helper()
	select {
	case conf := <-c:
		return conf
	case <-time.After(10 * time.Second):
		t.Fatal("no confirm within 10s")
	}
	return amqp091.Confirmation{}
}

func receive(t *testing.T, msgs <-chan amqp091.Delivery) amqp091.Delivery {
	t.Helper()
	select {
	case d := <-msgs:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	return amqp091.Delivery{}
}

// waitFor polls cond until it holds, failing after 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// manualLedger is a queue.Ledger whose positions come due when the test
// releases them.
type manualLedger struct {
	mu      sync.Mutex
	issued  uint64
	due     uint64
	failed  map[uint64]error
	waiters []ledgerWait
}

type ledgerWait struct {
	at uint64
	w  queue.Waiter
}

// promise issues the next position.
func (l *manualLedger) promise() queue.Promise {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.issued++
	return queue.Promise{Ledger: l, First: l.issued, Last: l.issued}
}

// release makes every position issued so far come due, failed with err
// when err is not nil.
func (l *manualLedger) release(err error) {
	l.mu.Lock()
	if err != nil {
		if l.failed == nil {
			l.failed = map[uint64]error{}
		}
		for p := l.due + 1; p <= l.issued; p++ {
			l.failed[p] = err
		}
	}
	l.due = l.issued
	ws := l.waiters
	l.waiters = nil
	upTo, outcome := l.due, l.failed[l.due]
	l.mu.Unlock()
	for _, w := range ws {
		w.w.Due(l, upTo, outcome)
	}
}

func (l *manualLedger) Notify(at uint64, w queue.Waiter) {
	l.mu.Lock()
	if at <= l.due {
		upTo, err := l.due, l.failed[at]
		l.mu.Unlock()
		w.Due(l, upTo, err)
		return
	}
	l.waiters = append(l.waiters, ledgerWait{at, w})
	l.mu.Unlock()
}

func (l *manualLedger) Wait(at uint64) error {
	done := make(chan error, 1)
	l.Notify(at, waitFunc(func(err error) { done <- err }))
	return <-done
}

func (l *manualLedger) FirstFailure(after uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := after + 1; p <= l.due; p++ {
		if err := l.failed[p]; err != nil {
			return p, err
		}
	}
	return 0, nil
}

type waitFunc func(error)

func (f waitFunc) Due(_ queue.Ledger, _ uint64, err error) { f(err) }

// memoKind is a small queue kind: messages in memory, in order, offered to
// consumers in turn, with promises from a manualLedger.
type memoKind struct {
	ledger *manualLedger
	mu     sync.Mutex
	queues map[string]*memoQueue
}

func (k *memoKind) New(cfg queue.Config) (queue.Queue, error) {
	q := &memoQueue{cfg: cfg, ledger: k.ledger, credit: map[*queue.Consumer]int{}, settles: map[queue.Settlement]int{}}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.queues == nil {
		k.queues = map[string]*memoQueue{}
	}
	k.queues[cfg.Name] = q
	return q, nil
}

func (k *memoKind) queue(name string) *memoQueue {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.queues[name]
}

type memoQueue struct {
	cfg    queue.Config
	ledger *manualLedger

	mu        sync.Mutex
	ready     []queue.Entry
	seq       uint64
	consumers []*queue.Consumer
	credit    map[*queue.Consumer]int // unacked per consumer; -1: its sink refused
	unacked   int
	settles   map[queue.Settlement]int
	deleted   bool
	// pushBack makes each publish wait for its promise before the
	// publisher is read again, as a queue paging to a full store does.
	pushBack bool
}

func (q *memoQueue) Name() string          { return q.cfg.Name }
func (q *memoQueue) Config() *queue.Config { return &q.cfg }

func (q *memoQueue) Settings() queue.Settings { return q.cfg.Settings }

func (q *memoQueue) SetSettings(queue.Settings) {}

func (q *memoQueue) Enqueue(m *queue.Message) queue.Receipt {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return queue.Receipt{Result: queue.Gone}
	}
	q.seq++
	q.ready = append(q.ready, queue.Entry{Msg: m, Seq: q.seq, Size: int64(m.Size())})
	q.dispatchLocked()
	r := queue.Receipt{Result: queue.Enqueued, Promise: q.ledger.promise()}
	if q.pushBack {
		r.Backpressure = r.Promise
	}
	return r
}

func (q *memoQueue) dispatchLocked() {
	for len(q.ready) > 0 {
		var to *queue.Consumer
		for _, c := range q.consumers {
			if n := q.credit[c]; n >= 0 && (c.NoAck || c.Prefetch == 0 || n < c.Prefetch) {
				to = c
				break
			}
		}
		if to == nil {
			return
		}
		if !to.Sink.Deliver(to, q.ready[0]) {
			q.credit[to] = -1
			continue
		}
		q.ready = q.ready[1:]
		if !to.NoAck {
			q.credit[to]++
			q.unacked++
		}
	}
}

func (q *memoQueue) AddConsumer(c *queue.Consumer, started func()) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.consumers = append(q.consumers, c)
	if started != nil {
		started()
	}
	q.dispatchLocked()
	return nil
}

func (q *memoQueue) RemoveConsumer(c *queue.Consumer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, o := range q.consumers {
		if o == c {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			break
		}
	}
	delete(q.credit, c)
}

func (q *memoQueue) Resume(c *queue.Consumer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.credit[c] < 0 {
		q.credit[c] = 0
	}
	q.dispatchLocked()
}

func (q *memoQueue) Get(noAck bool) (queue.Entry, int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ready) == 0 {
		return queue.Entry{}, 0, false
	}
	e := q.ready[0]
	q.ready = q.ready[1:]
	if !noAck {
		q.unacked++
	}
	return e, len(q.ready), true
}

func (q *memoQueue) Settle(c *queue.Consumer, entries []queue.Entry, how queue.Settlement) {
	q.mu.Lock()
	q.unacked -= len(entries)
	if c != nil && q.credit[c] > 0 {
		q.credit[c] -= len(entries)
	}
	q.settles[how] += len(entries)
	var discarded []*queue.Message
	switch how {
	case queue.Requeue:
		for _, e := range entries {
			e.Redelivered = true
			q.ready = append([]queue.Entry{e}, q.ready...)
		}
	case queue.Discard:
		for _, e := range entries {
			discarded = append(discarded, e.Msg)
		}
	}
	q.dispatchLocked()
	q.mu.Unlock()
	if len(discarded) > 0 && q.cfg.DeadLetterSink != nil {
		q.cfg.DeadLetterSink.DeadLetter(q, queue.ReasonRejected, discarded)
	}
}

// settled returns how many deliveries were settled as how.
func (q *memoQueue) settled(how queue.Settlement) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.settles[how]
}

func (q *memoQueue) Purge() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.ready)
	q.ready = nil
	return n
}

func (q *memoQueue) Delete(ifUnused, ifEmpty bool) (int, error) {
	q.mu.Lock()
	consumers := q.consumers
	n := len(q.ready)
	q.deleted, q.ready, q.consumers = true, nil, nil
	q.mu.Unlock()
	for _, c := range consumers {
		c.Sink.Cancelled(c)
	}
	return n, nil
}

func (q *memoQueue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

func (q *memoQueue) Stats() queue.Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queue.Stats{Ready: len(q.ready), Unacked: q.unacked, Consumers: len(q.consumers)}
}
