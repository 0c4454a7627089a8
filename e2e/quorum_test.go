package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

var quorumArgs = amqp091.Table{"x-queue-type": "quorum"}

// declareError declares a queue on a fresh channel and returns the
// channel's error.
func declareError(t testing.TB, b *broker, name string, durable, autoDelete, exclusive bool, args amqp091.Table) *amqp091.Error {
	t.Helper()
	ch := openChannel(t, dial(t, b))
	_, err := ch.QueueDeclare(name, durable, autoDelete, exclusive, false, args)
	var ae *amqp091.Error
	if !errors.As(err, &ae) {
		t.Fatalf("declare %q: %v, want a channel error", name, err)
	}
	return ae
}

// A quorum queue is durable, not exclusive, not auto-delete and named by
// its client: anything else is refused as RabbitMQ refuses it.
func TestQuorumQueueDeclareRules(t *testing.T) {
	b := startBroker(t)
	for _, c := range []struct {
		name                           string
		durable, autoDelete, exclusive bool
		want                           string
	}{
		{"qq.transient", false, false, false, "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'qq.transient' in vhost '/'"},
		{"qq.exclusive", true, false, true, "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'qq.exclusive' in vhost '/'"},
		{"qq.autodelete", true, true, false, "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'qq.autodelete' in vhost '/'"},
		{"", true, false, false, `PRECONDITION_FAILED - Cannot declare a server-named queue for type "quorum"`},
	} {
		ae := declareError(t, b, c.name, c.durable, c.autoDelete, c.exclusive, quorumArgs)
		if ae.Code != 406 || ae.Reason != c.want {
			t.Errorf("declare %q: %d %q, want 406 %q", c.name, ae.Code, ae.Reason, c.want)
		}
	}
	// A classic queue's name is not free for a quorum one.
	_, ch := dialChannel(t, b)
	declareQueue(t, ch, "qq.classic", true, nil)
	if ae := declareError(t, b, "qq.classic", true, false, false, quorumArgs); ae.Code != 406 {
		t.Errorf("redeclaring a classic queue as quorum: %d %q, want 406", ae.Code, ae.Reason)
	}
	// An exclusive consumer keeps the queue to itself.
	declareQueue(t, ch, "qq.excl", true, quorumArgs)
	if _, err := ch.Consume("qq.excl", "only", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	other := openChannel(t, dial(t, b))
	_, err := other.Consume("qq.excl", "second", false, false, false, false, nil)
	var ae *amqp091.Error
	if want := "ACCESS_REFUSED - queue 'qq.excl' in vhost '/' in exclusive use"; !errors.As(err, &ae) || ae.Code != 403 || ae.Reason != want {
		t.Errorf("a second consumer beside an exclusive one: %v, want 403 %q", err, want)
	}
	// A consumer on a channel with a global prefetch: RabbitMQ 3.10+'s
	// connection error.
	declareQueue(t, ch, "qq.global", true, quorumArgs)
	conn, gch := dialChannel(t, b)
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	if err := gch.Qos(10, 0, true); err != nil {
		t.Fatal(err)
	}
	_, _ = gch.Consume("qq.global", "", false, false, false, false, nil)
	select {
	case ae := <-closed:
		if want := "NOT_IMPLEMENTED - queue 'qq.global' in vhost '/' does not support global qos"; ae == nil || ae.Code != 540 || ae.Reason != want {
			t.Errorf("consume with global qos: %v, want 540 %q", ae, want)
		}
	case <-time.After(10 * time.Second):
		t.Error("consume with global qos: the connection stayed open")
	}
}

// On a node of its own, a quorum queue is a group of one: confirmed
// messages survive a restart, unacknowledged ones come back with
// x-delivery-count, and basic.get and purge work.
func TestQuorumQueueOnOneNode(t *testing.T) {
	b := startBroker(t)
	conn, ch := dialChannel(t, b)
	declareQueue(t, ch, "qq.one", true, quorumArgs)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1000))
	const n = 500
	for i := range n {
		if err := ch.Publish("", "qq.one", false, false, amqp091.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	awaitAcks(t, confirms, n, 30*time.Second)
	// Consume the first 100, ack 50, requeue 50 by closing the channel.
	cons := openChannel(t, conn)
	if err := cons.Qos(100, 0, false); err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Consume("qq.one", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		d := receive(t, msgs)
		if string(d.Body) != strconv.Itoa(i) {
			t.Fatalf("delivery %d is %q", i, d.Body)
		}
		if i < 50 {
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if q, err := ch.QueueDeclarePassive("qq.one", true, false, false, false, quorumArgs); err != nil || q.Messages != n-50 {
			return fmt.Errorf("declare-ok %+v %v, want %d ready", q, err, n-50)
		}
		return nil
	})
	conn.Close()
	b.Restart()

	_, ch = dialChannel(t, b)
	d, ok, err := ch.Get("qq.one", false)
	if err != nil || !ok {
		t.Fatalf("get after the restart: %v %v", ok, err)
	}
	if string(d.Body) != "50" || !d.Redelivered || d.Headers["x-delivery-count"] != int64(1) {
		t.Fatalf("first message after the restart: %q redelivered=%v headers=%v, want \"50\" redelivered with x-delivery-count 1",
			d.Body, d.Redelivered, d.Headers)
	}
	if d.MessageCount != n-50-1 {
		t.Errorf("get-ok message count %d, want %d", d.MessageCount, n-50-1)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	purged, err := ch.QueuePurge("qq.one", false)
	if err != nil || purged != n-50-1 {
		t.Fatalf("purge: %d %v, want %d", purged, err, n-50-1)
	}

	// Message priorities: always on, higher first, none is 4, above 31
	// is 31, publish order within a level.
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms = ch.NotifyPublish(make(chan amqp091.Confirmation, 10))
	sent := []struct {
		body     string
		priority uint8
	}{{"low", 1}, {"nine-a", 9}, {"none", 0}, {"top", 200}, {"nine-b", 9}, {"five", 5}}
	for _, m := range sent {
		if err := ch.Publish("", "qq.one", false, false, amqp091.Publishing{Body: []byte(m.body), Priority: m.priority}); err != nil {
			t.Fatal(err)
		}
	}
	awaitAcks(t, confirms, len(sent), 10*time.Second)
	var got []string
	for range sent {
		d, ok, err := ch.Get("qq.one", true)
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		got = append(got, string(d.Body))
	}
	if want := []string{"top", "nine-a", "nine-b", "five", "none", "low"}; !slices.Equal(got, want) {
		t.Fatalf("quorum queue delivered %v, want %v", got, want)
	}
}

// workload publishes numbered messages with confirms on one node and
// consumes them with manual acks on another, and keeps what happened:
// which numbers were confirmed, which were received.
type workload struct {
	t         *testing.T
	mu        sync.Mutex
	next      int
	confirmed map[int]bool
	received  map[int]bool
	retry     []int     // nacked: published again
	lastAck   time.Time // when the last confirm arrived
	stop      chan struct{}
	done      sync.WaitGroup
	conns     []*amqp091.Connection
}

func newWorkload(t *testing.T) *workload {
	return &workload{t: t, confirmed: map[int]bool{}, received: map[int]bool{}}
}

// run starts publishing on pub and consuming on cons (nil: no consumer).
func (w *workload) run(pub, cons *broker, queue string) {
	w.stop = make(chan struct{})
	conn, ch := dialChannel(w.t, pub)
	w.conns = append(w.conns[:0], conn)
	if err := ch.Confirm(false); err != nil {
		w.t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 256))
	inflight := make(chan int, 200)
	w.done.Add(2)
	go func() { // publisher
		defer w.done.Done()
		defer close(inflight)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			w.mu.Lock()
			var id int
			if len(w.retry) > 0 {
				id, w.retry = w.retry[0], w.retry[1:]
			} else {
				id = w.next
				w.next++
			}
			w.mu.Unlock()
			select {
			case inflight <- id:
			case <-w.stop:
				return
			}
			if err := ch.Publish("", queue, false, false, amqp091.Publishing{DeliveryMode: 2, Body: []byte(strconv.Itoa(id))}); err != nil {
				select {
				case <-w.stop:
				default:
					w.t.Errorf("publish: %v", err)
				}
				return
			}
		}
	}()
	go func() { // confirms, in publish order
		defer w.done.Done()
		for id := range inflight {
			c, ok := <-confirms
			if !ok {
				select {
				case <-w.stop:
				default:
					w.t.Errorf("the publishing channel closed")
				}
				return
			}
			w.mu.Lock()
			if c.Ack {
				w.confirmed[id] = true
				w.lastAck = time.Now()
			} else {
				w.retry = append(w.retry, id)
			}
			w.mu.Unlock()
		}
	}()
	if cons == nil {
		return
	}
	cconn, cch := dialChannel(w.t, cons)
	w.conns = append(w.conns, cconn)
	if err := cch.Qos(50, 0, false); err != nil {
		w.t.Fatal(err)
	}
	msgs, err := cch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for {
			select {
			case <-w.stop:
				return
			case d, ok := <-msgs:
				if !ok {
					select {
					case <-w.stop:
					default:
						w.t.Errorf("the consuming channel closed")
					}
					return
				}
				id, _ := strconv.Atoi(string(d.Body))
				w.mu.Lock()
				w.received[id] = true
				w.mu.Unlock()
				if err := d.Ack(false); err != nil {
					return // the connection closed: halted
				}
			}
		}
	}()
}

// drain consumes on b until every confirmed message has been received.
func (w *workload) drain(b *broker, queue string) {
	w.t.Helper()
	_, ch := dialChannel(w.t, b)
	msgs, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	waitFor(w.t, 60*time.Second, func() error {
		for {
			select {
			case d := <-msgs:
				id, _ := strconv.Atoi(string(d.Body))
				w.mu.Lock()
				w.received[id] = true
				w.mu.Unlock()
				if err := d.Ack(false); err != nil {
					return err
				}
				continue
			default:
			}
			if m := w.missing(); len(m) > 0 {
				_, q := b.api(w.t, "GET", "/api/queues/%2F/"+queue+"?columns=messages_ready,messages_unacknowledged,consumers,leader", nil)
				return fmt.Errorf("%d of %d confirmed messages not received, from %d; the queue: %s", len(m), len(w.confirmed), m[0], q)
			}
			return nil
		}
	})
	if err := ch.Close(); err != nil {
		w.t.Fatal(err)
	}
}

// halt stops publishing and consuming, and closes the connections (what
// the consumer had not acknowledged goes back to the queue).
func (w *workload) halt() {
	close(w.stop)
	for _, c := range w.conns {
		c.Close()
	}
	w.done.Wait()
}

// confirmedSince reports whether a confirm arrived after t.
func (w *workload) confirmedSince(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastAck.After(t)
}

// missing returns the confirmed numbers not received.
func (w *workload) missing() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for id := range w.confirmed {
		if !w.received[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// queueReplicas is what the API says of a quorum queue's replicas.
type queueReplicas struct {
	Type    string   `json:"type"`
	Leader  string   `json:"leader"`
	Members []string `json:"members"`
	Online  []string `json:"online"`
}

func (c *testCluster) replicas(t testing.TB, from int, name string) queueReplicas {
	t.Helper()
	var r queueReplicas
	c.nodes[from].getAPI(t, "/api/queues/%2F/"+name, &r)
	return r
}

// leaderOf waits until the queue has a leader, as node from sees it, and
// returns its index.
func (c *testCluster) leaderOf(t testing.TB, from int, name string) int {
	t.Helper()
	leader := -1
	waitFor(t, 15*time.Second, func() error {
		r := c.replicas(t, from, name)
		if leader = c.index(r.Leader); leader < 0 {
			return fmt.Errorf("queue %s: %+v", name, r)
		}
		return nil
	})
	return leader
}

// applied is how many publishes node i's replica of a queue has applied.
func (c *testCluster) applied(t testing.TB, i int, name string) int64 {
	t.Helper()
	var q struct {
		Stats struct {
			Publish int64 `json:"publish"`
		} `json:"message_stats"`
	}
	c.nodes[i].getAPI(t, "/api/queues/%2F/"+name, &q)
	return q.Stats.Publish
}

// awaitCaughtUp waits until member i has applied every publish member
// other has (with no publisher running).
func (c *testCluster) awaitCaughtUp(t testing.TB, i, other int, name string) {
	t.Helper()
	want := c.applied(t, other, name)
	waitFor(t, 60*time.Second, func() error {
		if got := c.applied(t, i, name); got < want {
			return fmt.Errorf("%s has applied %d publishes of %d", c.names[i], got, want)
		}
		return nil
	})
}

// others returns the two indexes of a three-node cluster other than i.
func others(i int) (int, int) { return (i + 1) % 3, (i + 2) % 3 }

// The quorum queue's promise, on three nodes: SIGKILL its leader under
// confirmed publishing and consuming, three times; cut the leader off
// (SIGSTOP) and heal it; stop and start every node; leave a node alone.
// No confirmed message is ever lost, publishing resumes within 5 s, and a
// minority confirms nothing.
func TestQuorumQueueCluster(t *testing.T) {
	c := startCluster(t, 3, []int{0, 1, 2})
	_, ch := dialChannel(t, c.nodes[0])
	declareQueue(t, ch, "qq.c", true, quorumArgs)
	r := c.replicas(t, 1, "qq.c")
	if r.Type != "quorum" || len(r.Members) != 3 || len(r.Online) != 3 {
		t.Fatalf("the queue as node 2 shows it: %+v, want type quorum with 3 members online", r)
	}
	// The declaring node leads (so leaders spread as declares do).
	waitFor(t, 20*time.Second, func() error {
		if r := c.replicas(t, 1, "qq.c"); r.Leader != c.names[0] {
			return fmt.Errorf("leader %q, want the declaring node %s", r.Leader, c.names[0])
		}
		return nil
	})
	// As rabbitmqctl lists them.
	leaderName := c.names[c.leaderOf(t, 0, "qq.c")]
	members := "[" + strings.Join(slices.Sorted(slices.Values(c.names)), ", ") + "]"
	rows := c.nodes[2].ctlRows(t, "name\ttype\tleader\tmembers", "list_queues", "name", "type", "leader", "members")
	if want := "qq.c\tquorum\t" + leaderName + "\t" + members; !slices.Contains(rows, want) {
		t.Errorf("warrenctl list_queues: %q, want a row %q", rows, want)
	}
	// A queue of one member: another node publishes to it, gets from it
	// and consumes from it, all forwarded.
	declareQueue(t, ch, "qq.single", true, amqp091.Table{"x-queue-type": "quorum", "x-quorum-initial-group-size": 1})
	if r := c.replicas(t, 1, "qq.single"); len(r.Members) != 1 || r.Members[0] != c.names[0] {
		t.Fatalf("qq.single: %+v, want node 1 its only member", r)
	}
	conn2, ch2 := dialChannel(t, c.nodes[1])
	publish(t, ch2, "", "qq.single", "via node 2")
	waitFor(t, 10*time.Second, func() error {
		d, ok, err := ch2.Get("qq.single", true)
		if err != nil || !ok || string(d.Body) != "via node 2" {
			return fmt.Errorf("get on node 2: %q %v %v", d.Body, ok, err)
		}
		return nil
	})
	// Its counts come from the group: an if-empty delete there is refused.
	publish(t, ch2, "", "qq.single", "stays")
	waitFor(t, 10*time.Second, func() error {
		if q, err := ch2.QueueDeclarePassive("qq.single", true, false, false, false, nil); err != nil || q.Messages != 1 {
			return fmt.Errorf("declare-ok on node 2: %+v %v, want 1 message", q, err)
		}
		return nil
	})
	_, err := openChannel(t, conn2).QueueDelete("qq.single", false, true, false)
	if ae := (*amqp091.Error)(nil); !errors.As(err, &ae) || ae.Code != 406 {
		t.Errorf("if-empty delete of a queue with a message, on a node without a replica: %v, want 406", err)
	}
	// A consumer there consumes through the member: it gets the message,
	// and what it leaves unacknowledged when its connection closes goes
	// back to the queue.
	publish(t, ch2, "", "qq.single", "second")
	msgs, err := ch2.Consume("qq.single", "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consuming on a node without a replica: %v", err)
	}
	if d := receive(t, msgs); string(d.Body) != "stays" {
		t.Fatalf("first delivery on node 2: %q, want %q", d.Body, "stays")
	} else if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, msgs); string(d.Body) != "second" {
		t.Fatalf("second delivery on node 2: %q, want %q", d.Body, "second")
	}
	conn2.Close()
	waitFor(t, 10*time.Second, func() error {
		d, ok, err := ch.Get("qq.single", true)
		if err != nil || !ok || string(d.Body) != "second" || !d.Redelivered {
			return fmt.Errorf("get on node 1: %q %v redelivered %v (%v), want the unacknowledged one back", d.Body, ok, d.Redelivered, err)
		}
		return nil
	})
	// With every member up, no node is critical to the queue.
	if st, body := c.nodes[0].api(t, "GET", "/api/health/checks/node-is-quorum-critical", nil); st != 200 {
		t.Errorf("node-is-quorum-critical with every node up: %d %s", st, body)
	}
	w := newWorkload(t)
	for round := range 3 {
		leader := c.leaderOf(t, 0, "qq.c")
		if round > 0 {
			leader = c.leaderOf(t, (leader+1)%3, "qq.c")
		}
		p, q := others(leader)
		w.run(c.nodes[p], c.nodes[q], "qq.c")
		waitFor(t, 20*time.Second, func() error {
			if !w.confirmedSince(time.Now().Add(-100 * time.Millisecond)) {
				return errors.New("no confirms yet")
			}
			return nil
		})
		killed := time.Now()
		c.nodes[leader].Kill()
		waitFor(t, 5*time.Second, func() error {
			if !w.confirmedSince(killed.Add(500 * time.Millisecond)) {
				return fmt.Errorf("round %d: no confirm since the leader (%s) was killed", round+1, c.names[leader])
			}
			return nil
		})
		t.Logf("round %d: killed leader %s; confirms resumed", round+1, c.names[leader])
		w.halt()
		c.nodes[leader].Start()
		// The next round starts once the restarted member has caught up
		// (a leader killed under load leaves a log tail the new leader
		// must walk back; a round on top of that is a second failure).
		c.awaitCaughtUp(t, leader, (leader+1)%3, "qq.c")
	}

	// Cut the leader off from the others, and heal.
	leader := c.leaderOf(t, 0, "qq.c")
	p, q := others(leader)
	w.run(c.nodes[p], c.nodes[q], "qq.c")
	proc, err := os.FindProcess(c.nodes[leader].Pid())
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if !w.confirmedSince(cut.Add(500 * time.Millisecond)) {
			return fmt.Errorf("no confirm since the leader (%s) was cut off", c.names[leader])
		}
		return nil
	})
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	w.halt()
	w.drain(c.nodes[q], "qq.c")

	// Stop and start every node: every confirmed message is back.
	w2 := newWorkload(t)
	w2.run(c.nodes[0], nil, "qq.c")
	waitFor(t, 20*time.Second, func() error {
		w2.mu.Lock()
		defer w2.mu.Unlock()
		if len(w2.confirmed) < 300 {
			return fmt.Errorf("%d confirmed", len(w2.confirmed))
		}
		return nil
	})
	w2.halt()
	for _, b := range c.nodes {
		b.Stop()
	}
	starts := make([]chan []string, 3)
	for i, b := range c.nodes {
		for j, a := range b.args {
			if a == "--listen" {
				b.args[j+1] = b.Addr
			}
		}
		starts[i] = b.launch()
	}
	for i, b := range c.nodes {
		b.awaitStart(starts[i])
	}
	w2.drain(c.nodes[1], "qq.c")

	// A node alone confirms nothing, and is critical to its queue.
	c.nodes[1].Stop()
	c.nodes[2].Stop()
	waitFor(t, 15*time.Second, func() error {
		if st, body := c.nodes[0].api(t, "GET", "/api/health/checks/node-is-quorum-critical", nil); st != 503 ||
			!strings.Contains(string(body), `"name":"qq.c"`) {
			return fmt.Errorf("node-is-quorum-critical with two members down: %d %s", st, body)
		}
		return nil
	})
	_, alone := dialChannel(t, c.nodes[0])
	if err := alone.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := alone.PublishWithDeferredConfirm("", "qq.c", false, false, amqp091.Publishing{Body: []byte("alone")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if ok, err := dc.WaitContext(ctx); err != nil || ok {
		t.Fatalf("a publish on a node alone: confirmed=%v (%v), want a nack", ok, err)
	}
}

// RabbitMQ's quorum-queue rules on one node: a message returned past
// x-delivery-limit is dead-lettered (reason delivery_limit) with its
// x-delivery-count counting the rejects on the way, not the nacks; reject-publish at the length
// limit nacks the publish and the channel goes on; an expired message is
// dead-lettered (reason expired).
func TestQuorumQueuePoisonAndLimits(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	declareQueue(t, ch, "qq.dlq", true, nil)
	declareQueue(t, ch, "qq.poison", true, amqp091.Table{"x-queue-type": "quorum", "x-delivery-limit": 2,
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "qq.dlq"})
	publish(t, ch, "", "qq.poison", "poison")
	cons := openChannel(t, dial(t, b))
	msgs, err := cons.Consume("qq.poison", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	requeueToLimit(t, msgs, 2)
	var dead amqp091.Delivery
	waitFor(t, 10*time.Second, func() error {
		d, ok, err := ch.Get("qq.dlq", true)
		if err != nil || !ok {
			return fmt.Errorf("nothing dead-lettered yet (%v)", err)
		}
		dead = d
		return nil
	})
	deaths, _ := dead.Headers["x-death"].([]any)
	if len(deaths) != 1 || deaths[0].(amqp091.Table)["reason"] != "delivery_limit" || string(dead.Body) != "poison" {
		t.Fatalf("dead letter %q with x-death %v, want reason delivery_limit", dead.Body, dead.Headers["x-death"])
	}

	// reject-publish: the third publish is nacked, the channel stays open.
	declareQueue(t, ch, "qq.full", true, amqp091.Table{"x-queue-type": "quorum", "x-max-length": 2, "x-overflow": "reject-publish"})
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var acks []bool
	for i := range 3 {
		dc, err := ch.PublishWithDeferredConfirm("", "qq.full", false, false, amqp091.Publishing{Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := dc.WaitContext(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ok)
	}
	if !slices.Equal(acks, []bool{true, true, false}) {
		t.Fatalf("confirms %v, want ack, ack, nack", acks)
	}
	if q, err := ch.QueueDeclarePassive("qq.full", true, false, false, false, nil); err != nil || q.Messages != 2 {
		t.Fatalf("after the nack: %+v %v, want the channel open and 2 messages", q, err)
	}

	// TTL: an expired message is dead-lettered.
	declareQueue(t, ch, "qq.ttl", true, amqp091.Table{"x-queue-type": "quorum", "x-message-ttl": 50,
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "qq.dlq"})
	publish(t, ch, "", "qq.ttl", "short-lived")
	waitFor(t, 10*time.Second, func() error {
		d, ok, err := ch.Get("qq.dlq", true)
		if err != nil || !ok {
			return fmt.Errorf("nothing expired yet (%v)", err)
		}
		deaths, _ := d.Headers["x-death"].([]any)
		if string(d.Body) != "short-lived" || len(deaths) != 1 || deaths[0].(amqp091.Table)["reason"] != "expired" {
			return fmt.Errorf("dead letter %q x-death %v, want the expired message", d.Body, d.Headers["x-death"])
		}
		return nil
	})
}

// At-least-once dead-lettering (x-dead-letter-strategy at-least-once,
// with reject-publish): a message that expires while its dead-letter copy
// can go nowhere stays in the quorum queue (in its messages, not ready),
// counts towards the length limit, and reaches the target queue once one
// is there; at most once, the same message is lost. An unknown strategy is
// refused.
func TestQuorumQueueAtLeastOnceDeadLettering(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	source := amqp091.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "alo.target",
		"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish", "x-max-length": 2}
	declareQueue(t, ch, "alo.source", true, source)
	lossy := amqp091.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "alo.target"}
	declareQueue(t, ch, "amo.source", true, lossy)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 8))
	send := func(queue, body, expiration string) bool {
		t.Helper()
		if err := ch.Publish("", queue, false, false, amqp091.Publishing{Body: []byte(body), Expiration: expiration}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-confirms:
			return c.Ack
		case <-time.After(10 * time.Second):
			t.Fatalf("no confirm for %q", body)
		}
		return false
	}
	counts := func(name string) (messages, ready int) {
		t.Helper()
		_, body := b.api(t, "GET", "/api/queues/%2F/"+name, nil)
		q := struct {
			Messages int `json:"messages"`
			Ready    int `json:"messages_ready"`
		}{-1, -1} // -1: not in the answer
		_ = json.Unmarshal(body, &q)
		return q.Messages, q.Ready
	}
	if !send("alo.source", "kept", "1") || !send("amo.source", "lost", "1") {
		t.Fatal("publishes nacked")
	}
	// Expired with nowhere to go: kept at least once, dropped at most once.
	waitFor(t, 10*time.Second, func() error {
		if m, r := counts("alo.source"); m != 1 || r != 0 {
			return fmt.Errorf("alo.source: %d messages, %d ready; want the expired one kept (1, 0)", m, r)
		}
		if m, _ := counts("amo.source"); m != 0 {
			return fmt.Errorf("amo.source: %d messages, want 0", m)
		}
		return nil
	})
	// The kept message counts towards x-max-length 2: one more fits.
	if !send("alo.source", "ready", "") {
		t.Fatal("a publish under the limit was nacked")
	}
	if send("alo.source", "over", "") {
		t.Fatal("a publish past the limit (one ready, one kept) was confirmed, want a nack")
	}
	// A target appears: the kept copy reaches it, with its death.
	declareQueue(t, ch, "alo.target", true, nil)
	var d amqp091.Delivery
	waitFor(t, 30*time.Second, func() error {
		got, ok, err := ch.Get("alo.target", true)
		if err != nil || !ok {
			return fmt.Errorf("nothing in alo.target yet (%v)", err)
		}
		d = got
		return nil
	})
	deaths, _ := d.Headers["x-death"].([]any)
	if string(d.Body) != "kept" || len(deaths) != 1 || deaths[0].(amqp091.Table)["reason"] != "expired" {
		t.Fatalf("dead letter %q with x-death %v, want \"kept\", reason expired", d.Body, d.Headers["x-death"])
	}
	if _, ok, _ := ch.Get("alo.target", true); ok {
		t.Fatal("the at-most-once message reached the target too, or the kept one twice")
	}
	waitFor(t, 10*time.Second, func() error {
		if m, r := counts("alo.source"); m != 1 || r != 1 {
			return fmt.Errorf("alo.source: %d messages, %d ready; want only the ready one", m, r)
		}
		return nil
	})
	if ae := declareError(t, b, "alo.bad", true, false, false, amqp091.Table{"x-queue-type": "quorum", "x-dead-letter-strategy": "sometimes"}); ae.Code != 406 {
		t.Fatalf("x-dead-letter-strategy sometimes: %d %s, want 406", ae.Code, ae.Reason)
	}
}

// A consumer on a node without a replica (four nodes, a queue on three)
// consumes through a member; when that member is SIGKILLed, it goes on
// through another, with no basic.cancel, and gets every message published
// (those it held unacknowledged come again).
func TestQuorumQueueForwardedConsumerOutlivesItsMember(t *testing.T) {
	c := startCluster(t, 4, []int{0, 1, 2, 3})
	_, ch := dialChannel(t, c.nodes[0])
	declareQueue(t, ch, "qq.fwd", true, amqp091.Table{"x-queue-type": "quorum", "x-quorum-initial-group-size": 3})
	r := c.replicas(t, 0, "qq.fwd")
	outside := -1
	for i, name := range c.names {
		if !slices.Contains(r.Members, name) {
			outside = i
		}
	}
	if len(r.Members) != 3 || outside < 0 {
		t.Fatalf("qq.fwd: members %v, want three of the four nodes", r.Members)
	}
	leader := c.leaderOf(t, outside, "qq.fwd")
	publisher := (leader + 1) % 4
	if publisher == outside {
		publisher = (publisher + 1) % 4
	}
	_, pch := dialChannel(t, c.nodes[publisher])
	if err := pch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	send := func(body string) {
		t.Helper()
		for {
			if err := pch.Publish("", "qq.fwd", false, false, amqp091.Publishing{Body: []byte(body)}); err != nil {
				t.Fatal(err)
			}
			select {
			case cf := <-confirms:
				if cf.Ack {
					return
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no confirm for %q", body)
			}
		}
	}
	cconn, cch := dialChannel(t, c.nodes[outside])
	cancels := cch.NotifyCancel(make(chan string, 1))
	closed := cconn.NotifyClose(make(chan *amqp091.Error, 1))
	msgs, err := cch.Consume("qq.fwd", "fwd", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	take := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !got[want] {
			select {
			case d := <-msgs:
				got[string(d.Body)] = true
				if err := d.Ack(false); err != nil {
					t.Fatal(err)
				}
			case tag := <-cancels:
				t.Fatalf("the consumer was cancelled (%s)", tag)
			case ae := <-closed:
				t.Fatalf("the consumer's connection closed: %v", ae)
			case <-deadline:
				t.Fatalf("%q did not come; got %v", want, got)
			}
		}
	}
	send("before")
	take("before")
	c.nodes[leader].Kill() // the consumer's member: the leader, as its node saw it
	send("after")
	take("after")
	// It came through another member (the log line follows the attach).
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(c.nodes[outside].log.String(), "goes on through another member") {
			return errors.New("the consumer did not move to another member")
		}
		return nil
	})
}
