package e2e

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// declareQueue declares a queue and fails on error.
func declareQueue(t testing.TB, ch *amqp091.Channel, name string, durable bool, args amqp091.Table) {
	t.Helper()
	if _, err := ch.QueueDeclare(name, durable, false, false, false, args); err != nil {
		t.Fatalf("declaring %s: %v", name, err)
	}
}

func declareExchange(t testing.TB, ch *amqp091.Channel, name, kind string, durable bool) {
	t.Helper()
	if err := ch.ExchangeDeclare(name, kind, durable, false, false, false, nil); err != nil {
		t.Fatalf("declaring exchange %s: %v", name, err)
	}
}

func bind(t testing.TB, ch *amqp091.Channel, q, x, key string) {
	t.Helper()
	if err := ch.QueueBind(q, key, x, false, nil); err != nil {
		t.Fatalf("binding %s to %s: %v", q, x, err)
	}
}

// deathEntries returns a delivery's x-death entries, times checked and
// left out.
func deathEntries(t testing.TB, d amqp091.Delivery) []amqp091.Table {
	t.Helper()
	list, ok := d.Headers["x-death"].([]any)
	if !ok {
		t.Fatalf("x-death is %T, want an array", d.Headers["x-death"])
	}
	out := make([]amqp091.Table, len(list))
	for i, e := range list {
		tab, ok := e.(amqp091.Table)
		if !ok {
			t.Fatalf("x-death[%d] is %T", i, e)
		}
		if tm, ok := tab["time"].(time.Time); !ok || time.Since(tm) > time.Minute || time.Since(tm) < -time.Second {
			t.Fatalf("x-death[%d] time %v", i, tab["time"])
		}
		c := amqp091.Table{}
		for k, v := range tab {
			if k != "time" {
				c[k] = v
			}
		}
		out[i] = c
	}
	return out
}

// rejectedCount is how often x-death says a delivery was rejected from
// queue.
func rejectedCount(d amqp091.Delivery, queue string) int64 {
	list, _ := d.Headers["x-death"].([]any)
	for _, e := range list {
		if tab, ok := e.(amqp091.Table); ok && tab["queue"] == queue && tab["reason"] == "rejected" {
			n, _ := tab["count"].(int64)
			return n
		}
	}
	return 0
}

// The seed's retry pattern: a failed message waits in a retry queue with a
// TTL, comes back to the work queue, and after three retries (counted from
// x-death) is parked in a DLQ that operators read.
func TestRetryPattern(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	declareExchange(t, ch, "work-x", "direct", true)
	declareExchange(t, ch, "retry-x", "fanout", true)
	declareQueue(t, ch, "work", true, amqp091.Table{"x-dead-letter-exchange": "retry-x"})
	declareQueue(t, ch, "retry", true, amqp091.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "work-x"})
	declareQueue(t, ch, "dlq", true, nil)
	bind(t, ch, "work", "work-x", "job")
	bind(t, ch, "retry", "retry-x", "")
	if err := ch.Publish("work-x", "job", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, MessageId: "j1", Body: []byte("task")}); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume("work", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	const maxRetries = 3
	var last amqp091.Delivery
	for attempt := 0; ; attempt++ {
		d := receive(t, msgs)
		if n := rejectedCount(d, "work"); n != int64(attempt) {
			t.Fatalf("attempt %d: x-death counts %d rejections", attempt, n)
		}
		if attempt == maxRetries {
			last = d
			// Park it in the DLQ, headers and all, and take it off work.
			if err := ch.Publish("", "dlq", false, false, amqp091.Publishing{Headers: d.Headers, MessageId: d.MessageId,
				DeliveryMode: amqp091.Persistent, Body: d.Body}); err != nil {
				t.Fatal(err)
			}
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	want := []amqp091.Table{
		{"count": int64(3), "reason": "expired", "queue": "retry", "exchange": "retry-x", "routing-keys": []any{"job"}},
		{"count": int64(3), "reason": "rejected", "queue": "work", "exchange": "work-x", "routing-keys": []any{"job"}},
	}
	if got := deathEntries(t, last); !reflect.DeepEqual(got, want) {
		t.Fatalf("x-death on the last attempt:\n got %v\nwant %v", got, want)
	}
	for k, v := range map[string]any{
		"x-first-death-queue": "work", "x-first-death-reason": "rejected", "x-first-death-exchange": "work-x",
		"x-last-death-queue": "retry", "x-last-death-reason": "expired", "x-last-death-exchange": "retry-x",
	} {
		if last.Headers[k] != v {
			t.Errorf("%s = %v, want %v", k, last.Headers[k], v)
		}
	}
	if last.Exchange != "work-x" || last.RoutingKey != "job" || last.MessageId != "j1" {
		t.Fatalf("last attempt came via %q/%q id %q", last.Exchange, last.RoutingKey, last.MessageId)
	}
	parked, ok, err := ch.Get("dlq", true)
	if err != nil || !ok || string(parked.Body) != "task" || len(deathEntries(t, parked)) != 2 {
		t.Fatalf("DLQ holds %q (%v, %v)", parked.Body, ok, err)
	}
	for _, q := range []string{"work", "retry"} {
		if n := queueLen(t, b, q); n != 0 {
			t.Fatalf("%s still holds %d messages", q, n)
		}
	}
	// The same pattern with pika and amqplib (TestClients, "retry-dlq").
}

func TestTTL(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	declareExchange(t, ch, "ttl-dlx", "fanout", false)
	declareQueue(t, ch, "ttl-dead", false, nil)
	bind(t, ch, "ttl-dead", "ttl-dlx", "")
	declareQueue(t, ch, "ttl-q", false, amqp091.Table{"x-message-ttl": int32(100), "x-dead-letter-exchange": "ttl-dlx"})
	dead, err := ch.Consume("ttl-dead", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Per message, per queue: the lower wins, and expiry happens at the head.
	start := time.Now()
	for _, m := range []struct{ body, exp string }{{"own-20", "20"}, {"queue-100", ""}, {"own-5000", "5000"}} {
		if err := ch.Publish("", "ttl-q", false, false, amqp091.Publishing{Expiration: m.exp, Body: []byte(m.body)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for range 3 {
		d := receive(t, dead)
		got = append(got, string(d.Body))
		want := ""
		if string(d.Body) != "queue-100" {
			want = d.Headers["x-death"].([]any)[0].(amqp091.Table)["original-expiration"].(string)
			if want != map[string]string{"own-20": "20", "own-5000": "5000"}[string(d.Body)] {
				t.Fatalf("%s: original-expiration %q", d.Body, want)
			}
		}
		if d.Expiration != "" {
			t.Fatalf("%s: dead letter still has expiration %q", d.Body, d.Expiration)
		}
	}
	if !reflect.DeepEqual(got, []string{"own-20", "queue-100", "own-5000"}) {
		t.Fatalf("dead-lettered in order %q", got)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Fatalf("the queue's TTL of 100 ms ran out after %v", time.Since(start))
	}
	// An invalid expiration is refused, as RabbitMQ refuses it.
	for exp, text := range map[string]string{
		"abc":          "PRECONDITION_FAILED - invalid expiration 'abc': no_integer",
		"-5":           "PRECONDITION_FAILED - invalid expiration '-5': {value_negative,-5}",
		"315360000001": "PRECONDITION_FAILED - invalid expiration '315360000001': {value_too_large,315360000001}",
		// Past column 78 Erlang's ~p breaks the term (as RabbitMQ 3.10.8 sends it).
		"00000000000000315360000001": "PRECONDITION_FAILED - invalid expiration '00000000000000315360000001': {value_too_large,\n" +
			strings.Repeat(" ", 50) + "315360000001}",
	} {
		_, bad := dialChannel(t, b)
		closed := bad.NotifyClose(make(chan *amqp091.Error, 1))
		_ = bad.Publish("", "ttl-q", false, false, amqp091.Publishing{Expiration: exp, Body: []byte("x")})
		expectClose(t, closed, 406, text)
	}
}

func TestQueueExpires(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	declareQueue(t, ch, "lease", false, amqp091.Table{"x-expires": int32(150)})
	publish(t, ch, "", "lease", "dropped with the queue")
	// A declare (even a passive one) would renew the lease: watch for the
	// queue's end with mandatory publishes, which do not.
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	deadline := time.After(10 * time.Second)
	for {
		if err := ch.Publish("", "lease", true, false, amqp091.Publishing{Body: []byte("probe")}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-returns:
			if r.ReplyCode != 312 {
				t.Fatalf("returned with %d %s", r.ReplyCode, r.ReplyText)
			}
			return
		case <-deadline:
			t.Fatal("the unused queue was not deleted within 10s")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestOverflowModes(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	declareExchange(t, ch, "over-dlx", "fanout", false)
	declareQueue(t, ch, "over-dead", false, nil)
	bind(t, ch, "over-dead", "over-dlx", "")
	for _, tt := range []struct {
		overflow   string
		wantKept   []string
		wantDead   []string
		wantNacked []uint64
	}{
		{"drop-head", []string{"3", "4"}, []string{"1", "2"}, nil},
		{"reject-publish", []string{"1", "2"}, nil, []uint64{3, 4}},
		{"reject-publish-dlx", []string{"1", "2"}, []string{"3", "4"}, []uint64{3, 4}},
	} {
		t.Run(tt.overflow, func(t *testing.T) {
			q := "over-" + tt.overflow
			declareQueue(t, ch, q, false, amqp091.Table{"x-max-length": int32(2), "x-overflow": tt.overflow,
				"x-dead-letter-exchange": "over-dlx"})
			_, pub := dialChannel(t, b)
			if err := pub.Confirm(false); err != nil {
				t.Fatal(err)
			}
			confirms := pub.NotifyPublish(make(chan amqp091.Confirmation, 4))
			for i := 1; i <= 4; i++ {
				publish(t, pub, "", q, strconv.Itoa(i))
			}
			var nacked []uint64
			for range 4 {
				select {
				case c := <-confirms:
					if !c.Ack {
						nacked = append(nacked, c.DeliveryTag)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("confirms missing")
				}
			}
			if !reflect.DeepEqual(nacked, tt.wantNacked) {
				t.Fatalf("nacked %v, want %v", nacked, tt.wantNacked)
			}
			var kept, dead []string
			for {
				d, ok, err := ch.Get(q, true)
				if err != nil || !ok {
					break
				}
				kept = append(kept, string(d.Body))
			}
			for {
				d, ok, err := ch.Get("over-dead", true)
				if err != nil || !ok {
					break
				}
				if r := d.Headers["x-death"].([]any)[0].(amqp091.Table)["reason"]; r != "maxlen" {
					t.Fatalf("dead-lettered for %v, want maxlen", r)
				}
				dead = append(dead, string(d.Body))
			}
			if !reflect.DeepEqual(kept, tt.wantKept) || !reflect.DeepEqual(dead, tt.wantDead) {
				t.Fatalf("kept %q dead %q, want %q %q", kept, dead, tt.wantKept, tt.wantDead)
			}
		})
	}
}

func TestPriorityQueue(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	declareQueue(t, ch, "prio", false, amqp091.Table{"x-max-priority": int32(10)})
	for i, p := range []uint8{1, 5, 0, 200, 5, 9} {
		if err := ch.Publish("", "prio", false, false, amqp091.Publishing{Priority: p, Body: []byte(fmt.Sprintf("p%d-%d", p, i))}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for {
		d, ok, err := ch.Get("prio", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, string(d.Body))
	}
	// 200 counts as the maximum (10); equal priorities in publish order.
	want := []string{"p200-3", "p9-5", "p5-1", "p5-4", "p1-0", "p0-2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// A classic queue with x-delivery-limit counts rejects, not nacks, and
// dead-letters the message past the limit (reason delivery_limit).
func TestDeliveryLimit(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	declareExchange(t, ch, "limit-dlx", "fanout", false)
	declareQueue(t, ch, "limit-dead", false, nil)
	bind(t, ch, "limit-dead", "limit-dlx", "")
	declareQueue(t, ch, "limited", false, amqp091.Table{"x-delivery-limit": int32(2), "x-dead-letter-exchange": "limit-dlx"})
	publish(t, ch, "", "limited", "poison")
	msgs, err := ch.Consume("limited", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	requeueToLimit(t, msgs, 2)
	waitFor(t, 10*time.Second, func() error {
		d, ok, err := ch.Get("limit-dead", true)
		if err != nil || !ok {
			return fmt.Errorf("not dead-lettered yet (%v)", err)
		}
		if r := d.Headers["x-death"].([]any)[0].(amqp091.Table)["reason"]; r != "delivery_limit" {
			return fmt.Errorf("reason %v", r)
		}
		return nil
	})
}

// requeueToLimit takes the one message of a queue with a delivery limit
// of limit from msgs and gives it back as RabbitMQ 4.3 counts returns:
// basic.nack with requeue more times than the limit, which does not count
// (no x-delivery-count, yet redelivered), then basic.reject with requeue
// until the count passes the limit (x-delivery-count 1, 2, ...).
func requeueToLimit(t *testing.T, msgs <-chan amqp091.Delivery, limit int) {
	t.Helper()
	for i := range limit + 1 {
		d := receive(t, msgs)
		if got, ok := d.Headers["x-delivery-count"]; ok || d.Redelivered != (i > 0) {
			t.Fatalf("nacked %d times: x-delivery-count %v, redelivered %v; want none, %v", i, got, d.Redelivered, i > 0)
		}
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
	}
	for i := range limit + 1 {
		d := receive(t, msgs)
		if got := d.Headers["x-delivery-count"]; i > 0 && got != int64(i) || i == 0 && got != nil || !d.Redelivered {
			t.Fatalf("rejected %d times: x-delivery-count %v, redelivered %v", i, got, d.Redelivered)
		}
		if err := d.Reject(true); err != nil {
			t.Fatal(err)
		}
	}
}

// A SIGKILL while persistent messages move from a durable queue to a
// durable dead-letter queue loses none of them.
func TestCrashDuringDeadLetterMove(t *testing.T) {
	b := startBinary(t, fastBroker(t), t.TempDir(), "127.0.0.1:0")
	conn, ch := dialChannel(t, b)
	declareExchange(t, ch, "move-dlx", "fanout", true)
	declareQueue(t, ch, "move-dst", true, nil)
	bind(t, ch, "move-dst", "move-dlx", "")
	declareQueue(t, ch, "move-src", true, amqp091.Table{"x-message-ttl": int32(300), "x-dead-letter-exchange": "move-dlx"})
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const n = 20000
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, n))
	body := make([]byte, 512)
	for i := range n {
		binary.BigEndian.PutUint32(body, uint32(i))
		if err := ch.Publish("", "move-src", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	awaitAcks(t, confirms, n, 60*time.Second)
	// Kill once the move is under way.
	waitFor(t, 30*time.Second, func() error {
		if queueLen(t, b, "move-dst") == 0 {
			return fmt.Errorf("nothing moved yet")
		}
		return nil
	})
	conn.Close()
	b.Kill()
	b.Start()
	// What was left expires after the restart too (expiries are stored):
	// every message reaches the dead-letter queue.
	_, ch = dialChannel(t, b)
	msgs, err := ch.Consume("move-dst", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	deliveries := 0
	deadline := time.After(60 * time.Second)
	for len(seen) < n {
		select {
		case d := <-msgs:
			seen[binary.BigEndian.Uint32(d.Body)] = true
			deliveries++
		case <-deadline:
			t.Fatalf("%d of %d messages reached the dead-letter queue (%d deliveries) within 60s", len(seen), n, deliveries)
		}
	}
	if left := queueLen(t, b, "move-src"); left != 0 {
		t.Fatalf("%d messages still in the source queue", left)
	}
	t.Logf("%d messages all reached the dead-letter queue after the crash (%d deliveries so far)", n, deliveries)
}

// delayTolerance is how late a delayed message may arrive: the timer, the
// scheduler of a busy 2-core machine and a race-detector build.
const delayTolerance = 750 * time.Millisecond

func TestDelayedMessages(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	if err := ch.ExchangeDeclare("later", "x-delayed-message", true, false, false, false, amqp091.Table{"x-delayed-type": "direct"}); err != nil {
		t.Fatal(err)
	}
	declareQueue(t, ch, "later-q", true, nil)
	bind(t, ch, "later-q", "later", "k")
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 16))
	publishDelayed := func(delays ...int) map[string]time.Time {
		due := map[string]time.Time{}
		for _, d := range delays {
			body := strconv.Itoa(d)
			due[body] = time.Now().Add(time.Duration(d) * time.Millisecond)
			if err := ch.Publish("later", "k", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent,
				Headers: amqp091.Table{"x-delay": int32(d)}, Body: []byte(body)}); err != nil {
				t.Fatal(err)
			}
		}
		for range delays {
			select {
			case c := <-confirms:
				if !c.Ack {
					t.Fatal("a delayed publish was nacked")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a delayed publish was not confirmed")
			}
		}
		return due
	}
	checkArrivals := func(msgs <-chan amqp091.Delivery, due map[string]time.Time, order []string) {
		t.Helper()
		for _, want := range order {
			d := receive(t, msgs)
			at := time.Now()
			if string(d.Body) != want {
				t.Fatalf("got %q, want %q next", d.Body, want)
			}
			if late := at.Sub(due[want]); late < 0 || late > delayTolerance {
				t.Fatalf("%q arrived %v after its due time, want 0 to %v", want, late, delayTolerance)
			}
			if want := -int32(mustAtoi(t, want)); d.Headers["x-delay"] != want {
				t.Fatalf("x-delay %v, want %d", d.Headers["x-delay"], want)
			}
		}
	}
	due := publishDelayed(900, 300, 600, 150)
	_, cons := dialChannel(t, b)
	msgs, err := cons.Consume("later-q", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkArrivals(msgs, due, []string{"150", "300", "600", "900"})

	// Across a restart: stored, and fired when due.
	due = publishDelayed(2500, 2000)
	b.Restart()
	_, cons = dialChannel(t, b)
	msgs, err = cons.Consume("later-q", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkArrivals(msgs, due, []string{"2000", "2500"})
}

func mustAtoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeduplication(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	if err := ch.ExchangeDeclare("dedup-x", "x-message-deduplication", false, false, false, false,
		amqp091.Table{"x-cache-size": int32(1000), "x-cache-ttl": int32(60000)}); err != nil {
		t.Fatal(err)
	}
	declareQueue(t, ch, "dedup-via-x", false, nil)
	bind(t, ch, "dedup-via-x", "dedup-x", "")
	declareQueue(t, ch, "dedup-q", false, amqp091.Table{"x-message-deduplication": true})
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 8))
	send := func(exchange, key, id string) {
		t.Helper()
		if err := ch.Publish(exchange, key, false, false, amqp091.Publishing{
			Headers: amqp091.Table{"x-deduplication-header": id}, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("%s was nacked: a duplicate is confirmed and dropped", id)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no confirm")
		}
	}
	for _, id := range []string{"order-1", "order-2", "order-1", "order-2", "order-3"} {
		send("dedup-x", "", id)
		send("", "dedup-q", id)
	}
	for _, q := range []string{"dedup-via-x", "dedup-q"} {
		if n := queueLen(t, b, q); n != 3 {
			t.Fatalf("%s holds %d messages, want 3 (duplicates dropped)", q, n)
		}
	}
	// The queue form forgets a key once its message is consumed.
	for range 3 {
		if _, ok, err := ch.Get("dedup-q", true); !ok || err != nil {
			t.Fatalf("get: %v %v", ok, err)
		}
	}
	send("", "dedup-q", "order-1")
	if n := queueLen(t, b, "dedup-q"); n != 1 {
		t.Fatalf("dedup-q holds %d after its messages were consumed and order-1 sent again, want 1", n)
	}
}
