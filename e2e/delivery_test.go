package e2e

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestDelivery(t *testing.T) {
	b := startBroker(t)
	tests := []struct {
		name string
		run  func(t *testing.T, b *broker)
	}{
		{"work queue with prefetch 1 dispatches fairly", testFairDispatch},
		{"fanout publishes to every queue", testFanout},
		{"direct routing", testDirectRouting},
		{"topic routing", testTopicRouting},
		{"rpc over a callback queue", testRPCCallbackQueue},
		{"rpc over direct reply-to", testRPCDirectReplyTo},
		{"publisher confirms, with a nack from a full queue", testConfirms},
		{"mandatory publish comes back before its ack", testMandatoryReturn},
		{"unacked messages are redelivered when a consumer's connection drops", testRedeliveryOnDrop},
		{"transactions commit and roll back publishes and acks", testTransactions},
		{"exclusive queue lifecycle", testExclusiveQueue},
		{"auto-delete queue lifecycle", testAutoDeleteQueue},
		{"consumer priorities", testConsumerPriorities},
		{"single active consumer fails over", testSingleActiveConsumer},
		{"basic.get and get-empty", testBasicGet},
		{"nack and reject requeue near the original position", testRequeueOrder},
		{"global prefetch limits the channel", testGlobalPrefetch},
		{"basic.recover redelivers", testRecover},
		{"purge drops only ready messages", testPurge},
		{"deleting a queue cancels its consumers", testDeleteCancelsConsumers},
		{"large bodies arrive intact, over several frames", testLargeBodies},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, b) })
	}
}

func testFairDispatch(t *testing.T, b *broker) {
	q := uniqueName("tasks")
	_, pub := dialChannel(t, b)
	if _, err := pub.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	consume := func() <-chan amqp091.Delivery {
		_, ch := dialChannel(t, b)
		if err := ch.Qos(1, 0, false); err != nil {
			t.Fatal(err)
		}
		msgs, err := ch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	slow, fast := consume(), consume()
	for i := range 10 {
		publish(t, pub, "", q, strconv.Itoa(i))
	}
	// One of the two takes the first message and holds it; the other must
	// get all nine others while the first is unacknowledged.
	var held amqp091.Delivery
	select {
	case held = <-slow:
	case held = <-fast:
		slow, fast = fast, slow
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	for range 9 {
		d := receive(t, fast)
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	expectNoDelivery(t, slow, 50*time.Millisecond)
	if err := held.Ack(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, q); n != 0 {
			return fmt.Errorf("%d messages left", n)
		}
		return nil
	})
}

func testFanout(t *testing.T, b *broker) {
	x := uniqueName("logs")
	conn, ch := dialChannel(t, b)
	if err := ch.ExchangeDeclare(x, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	var subs []<-chan amqp091.Delivery
	for range 3 {
		sub := openChannel(t, conn)
		q, err := sub.QueueDeclare("", false, false, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.QueueBind(q.Name, "", x, false, nil); err != nil {
			t.Fatal(err)
		}
		msgs, err := sub.Consume(q.Name, "", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, msgs)
	}
	for i := range 5 {
		publish(t, ch, x, "ignored", strconv.Itoa(i))
	}
	for _, msgs := range subs {
		for i := range 5 {
			if d := receive(t, msgs); string(d.Body) != strconv.Itoa(i) {
				t.Fatalf("got %q, want %d", d.Body, i)
			}
		}
	}
}

// bindAndConsume declares a server-named exclusive queue bound to x with
// the keys and consumes it with auto-ack.
func bindAndConsume(t *testing.T, conn *amqp091.Connection, x string, keys ...string) <-chan amqp091.Delivery {
	t.Helper()
	ch := openChannel(t, conn)
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := ch.QueueBind(q.Name, k, x, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// expectBodies receives len(want) messages and compares their bodies in
// order, then checks nothing else arrives (after a round trip through the
// publishing channel has settled what was in flight).
func expectBodies(t *testing.T, msgs <-chan amqp091.Delivery, want ...string) {
	t.Helper()
	for _, w := range want {
		if d := receive(t, msgs); string(d.Body) != w {
			t.Fatalf("got %q, want %q", d.Body, w)
		}
	}
	expectNoDelivery(t, msgs, 50*time.Millisecond)
}

func testDirectRouting(t *testing.T, b *broker) {
	x := uniqueName("direct_logs")
	conn, ch := dialChannel(t, b)
	if err := ch.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	errors := bindAndConsume(t, conn, x, "error")
	all := bindAndConsume(t, conn, x, "info", "warning", "error")
	for _, k := range []string{"info", "error", "debug", "warning"} {
		publish(t, ch, x, k, k)
	}
	if _, err := ch.QueueDeclarePassive("amq.gen-none", false, false, false, false, nil); err == nil {
		t.Fatal("passive declare of a missing queue succeeded")
	}
	expectBodies(t, errors, "error")
	expectBodies(t, all, "info", "error", "warning")
}

func testTopicRouting(t *testing.T, b *broker) {
	x := uniqueName("topic_logs")
	conn, ch := dialChannel(t, b)
	if err := ch.ExchangeDeclare(x, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q1 := bindAndConsume(t, conn, x, "*.orange.*")
	q2 := bindAndConsume(t, conn, x, "*.*.rabbit", "lazy.#")
	for _, k := range []string{"quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
		"lazy.pink.rabbit", "quick.brown.fox", "orange", "quick.orange.new.rabbit", "lazy.orange.new.rabbit", "lazy"} {
		publish(t, ch, x, k, k)
	}
	expectBodies(t, q1, "quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox")
	expectBodies(t, q2, "quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox", "lazy.pink.rabbit",
		"lazy.orange.new.rabbit", "lazy")
}

// serveRPC answers requests on queue name by echoing the body upper-cased
// to the request's reply_to with its correlation id.
func serveRPC(t *testing.T, b *broker, name string) {
	t.Helper()
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(name, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	reqs, err := ch.Consume(name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for d := range reqs {
			_ = ch.Publish("", d.ReplyTo, false, false, amqp091.Publishing{CorrelationId: d.CorrelationId, Body: append([]byte("re:"), d.Body...)})
			_ = d.Ack(false)
		}
	}()
}

func testRPCCallbackQueue(t *testing.T, b *broker) {
	name := uniqueName("rpc_queue")
	serveRPC(t, b, name)
	_, ch := dialChannel(t, b)
	cb, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies, err := ch.Consume(cb.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := "corr-" + strconv.Itoa(i)
		if err := ch.Publish("", name, false, false, amqp091.Publishing{ReplyTo: cb.Name, CorrelationId: id, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
		d := receive(t, replies)
		if d.CorrelationId != id || string(d.Body) != "re:"+id {
			t.Fatalf("reply %q %q", d.CorrelationId, d.Body)
		}
	}
}

func testRPCDirectReplyTo(t *testing.T, b *broker) {
	name := uniqueName("rpc_drt")
	serveRPC(t, b, name)
	_, ch := dialChannel(t, b)
	// Publishing with reply_to before consuming is refused.
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	_ = ch.Publish("", name, false, false, amqp091.Publishing{ReplyTo: "amq.rabbitmq.reply-to", Body: []byte("x")})
	expectClose(t, closed, 406, "PRECONDITION_FAILED - fast reply consumer does not exist")

	_, ch = dialChannel(t, b)
	if _, err := ch.Consume("amq.rabbitmq.reply-to", "", false, false, false, false, nil); err == nil {
		t.Fatal("a direct reply-to consumer with manual ack was accepted")
	} else {
		expectCode(t, err, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")
	}
	_, ch = dialChannel(t, b)
	replies, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := "drt-" + strconv.Itoa(i)
		if err := ch.Publish("", name, false, false, amqp091.Publishing{ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: id, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
		d := receive(t, replies)
		if d.CorrelationId != id || string(d.Body) != "re:"+id {
			t.Fatalf("reply %q %q", d.CorrelationId, d.Body)
		}
	}
}

func testConfirms(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	q := uniqueName("confirmed")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1000))
	for range 500 {
		publish(t, ch, "", q, "m")
	}
	for i := uint64(1); i <= 500; i++ {
		select {
		case c := <-confirms:
			if !c.Ack || c.DeliveryTag != i {
				t.Fatalf("confirm %+v, want ack %d", c, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("confirm %d missing", i)
		}
	}
	full := uniqueName("full")
	if _, err := ch.QueueDeclare(full, false, true, false, false, amqp091.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", full, "fits")
	publish(t, ch, "", full, "refused")
	for i, want := range []bool{true, false} {
		select {
		case c := <-confirms:
			if c.Ack != want || c.DeliveryTag != uint64(501+i) {
				t.Fatalf("confirm %+v, want ack=%v for %d", c, want, 501+i)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("confirm missing")
		}
	}
	if n := queueLen(t, b, full); n != 1 {
		t.Fatalf("full queue holds %d, want 1", n)
	}
}

func testMandatoryReturn(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	if err := ch.Publish("amq.direct", uniqueName("nowhere"), true, false, amqp091.Publishing{MessageId: "lost", Body: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	// amqp091-go delivers returns and confirms on separate Go channels;
	// the return's arrival first on the wire shows as it being ready once
	// the confirm is.
	select {
	case c := <-confirms:
		if !c.Ack {
			t.Fatal("unroutable message nacked, want acked")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no confirm")
	}
	select {
	case r := <-returns:
		if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.MessageId != "lost" || string(r.Body) != "b" {
			t.Fatalf("return %+v", r)
		}
	default:
		t.Fatal("the basic.return did not precede the ack")
	}
}

func testRedeliveryOnDrop(t *testing.T, b *broker) {
	q := uniqueName("redeliver")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q, "once")
	conn1, ch1 := dialChannel(t, b)
	msgs1, err := ch1.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := receive(t, msgs1); d.Redelivered {
		t.Fatal("first delivery marked redelivered")
	}
	conn1.Close()
	_, ch2 := dialChannel(t, b)
	msgs2, err := ch2.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := receive(t, msgs2)
	if !d.Redelivered || string(d.Body) != "once" {
		t.Fatalf("redelivery %q redelivered=%v", d.Body, d.Redelivered)
	}
	d.Ack(false)
}

func testTransactions(t *testing.T, b *broker) {
	q := uniqueName("tx")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q, "rolled back")
	if n := queueLen(t, b, q); n != 0 {
		t.Fatalf("uncommitted publish visible: %d", n)
	}
	if err := ch.TxRollback(); err != nil {
		t.Fatal(err)
	}
	if n := queueLen(t, b, q); n != 0 {
		t.Fatalf("rolled back publish delivered: %d", n)
	}
	publish(t, ch, "", q, "committed")
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if n := queueLen(t, b, q); n != 1 {
		t.Fatalf("after commit %d messages, want 1", n)
	}
	// An ack inside a rolled back transaction leaves the message unacked.
	d, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.TxRollback(); err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 basic.recover is the method under test
	if err := ch.Recover(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, q); n != 1 {
			return fmt.Errorf("%d ready after rollback and recover, want 1", n)
		}
		return nil
	})
	d, ok, err = ch.Get(q, false)
	if err != nil || !ok || !d.Redelivered {
		t.Fatalf("get after recover: %v %v redelivered=%v", ok, err, d.Redelivered)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if n := queueLen(t, b, q); n != 0 {
		t.Fatalf("after committed ack %d messages, want 0", n)
	}
}

func testExclusiveQueue(t *testing.T, b *broker) {
	q := uniqueName("exclusive")
	owner, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	_, other := dialChannel(t, b)
	_, err := other.QueueDeclare(q, false, false, true, false, nil)
	expectCode(t, err, 405, "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '"+q+
		"' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.")
	_, other = dialChannel(t, b)
	_, err = other.Consume(q, "", false, false, false, false, nil)
	expectCode(t, err, 405, "")
	owner.Close()
	waitFor(t, 10*time.Second, func() error {
		_, ch := dialChannel(t, b)
		if _, err := ch.QueueDeclarePassive(q, false, false, true, false, nil); err == nil {
			return fmt.Errorf("exclusive queue survived its connection")
		}
		return nil
	})
}

func testAutoDeleteQueue(t *testing.T, b *broker) {
	q := uniqueName("autodelete")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// Never consumed: it stays.
	if _, err := ch.QueueDeclarePassive(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, c1 := dialChannel(t, b)
	if _, err := c1.Consume(q, "a", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Consume(q, "b", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := c1.Cancel("a", false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive(q, false, true, false, false, nil); err != nil {
		t.Fatalf("deleted while a consumer remained: %v", err)
	}
	if err := c1.Cancel("b", false); err != nil {
		t.Fatal(err)
	}
	_, err := ch.QueueDeclarePassive(q, false, true, false, false, nil)
	expectCode(t, err, 404, "NOT_FOUND - no queue '"+q+"' in vhost '/'")
}

func testConsumerPriorities(t *testing.T, b *broker) {
	q := uniqueName("prio")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	consume := func(prio int32) (*amqp091.Channel, <-chan amqp091.Delivery) {
		_, c := dialChannel(t, b)
		if err := c.Qos(2, 0, false); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Consume(q, "", false, false, false, false, amqp091.Table{"x-priority": prio})
		if err != nil {
			t.Fatal(err)
		}
		return c, msgs
	}
	_, low := consume(1)
	highCh, high := consume(10)
	for i := range 3 {
		publish(t, ch, "", q, strconv.Itoa(i))
	}
	// The high-priority consumer takes messages while it has credit (2);
	// only then does the low-priority one get the third.
	h1, h2 := receive(t, high), receive(t, high)
	if string(h1.Body) != "0" || string(h2.Body) != "1" {
		t.Fatalf("high got %q %q", h1.Body, h2.Body)
	}
	if l := receive(t, low); string(l.Body) != "2" {
		t.Fatalf("low got %q", l.Body)
	}
	h1.Ack(false)
	// A synchronous method on the same channel is processed after the ack.
	if err := highCh.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q, "3")
	if d := receive(t, high); string(d.Body) != "3" {
		t.Fatalf("high got %q after credit returned", d.Body)
	}
}

func testSingleActiveConsumer(t *testing.T, b *broker) {
	q := uniqueName("sac")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, true, false, false, amqp091.Table{"x-single-active-consumer": true}); err != nil {
		t.Fatal(err)
	}
	conn1, c1 := dialChannel(t, b)
	first, err := c1.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, c2 := dialChannel(t, b)
	second, err := c2.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		publish(t, ch, "", q, strconv.Itoa(i))
	}
	for i := range 3 {
		if d := receive(t, first); string(d.Body) != strconv.Itoa(i) {
			t.Fatalf("active consumer got %q", d.Body)
		}
	}
	expectNoDelivery(t, second, 50*time.Millisecond)
	conn1.Close()
	publish(t, ch, "", q, "after failover")
	if d := receive(t, second); string(d.Body) != "after failover" {
		t.Fatalf("standby got %q", d.Body)
	}
	_, _, err = ch.Get(q, false)
	expectCode(t, err, 405, "")
}

func testBasicGet(t *testing.T, b *broker) {
	q := uniqueName("get")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ch.Get(q, true); err != nil || ok {
		t.Fatalf("get on empty queue: ok=%v err=%v", ok, err)
	}
	publish(t, ch, "", q, "a")
	publish(t, ch, "", q, "b")
	d, ok, err := ch.Get(q, false)
	if err != nil || !ok || string(d.Body) != "a" || d.MessageCount != 1 {
		t.Fatalf("get: %q ok=%v count=%d err=%v", d.Body, ok, d.MessageCount, err)
	}
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	d, ok, err = ch.Get(q, true)
	if err != nil || !ok || string(d.Body) != "a" || !d.Redelivered {
		t.Fatalf("get after requeue: %q ok=%v redelivered=%v err=%v", d.Body, ok, d.Redelivered, err)
	}
}

func testRequeueOrder(t *testing.T, b *broker) {
	q := uniqueName("order")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		publish(t, ch, "", q, strconv.Itoa(i))
	}
	msgs, err := ch.Consume(q, "c", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ds []amqp091.Delivery
	for range 5 {
		ds = append(ds, receive(t, msgs))
	}
	// With the consumer gone, requeue 3, then 1, then 0: they go back in
	// their original order, ahead of anything newer.
	if err := ch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q, "newer")
	ds[3].Reject(true)
	ds[1].Reject(true)
	ds[0].Nack(false, true)
	for _, want := range []string{"0", "1", "3", "newer"} {
		d, ok, err := ch.Get(q, true)
		if err != nil || !ok || string(d.Body) != want || d.Redelivered != (want != "newer") {
			t.Fatalf("got %q redelivered=%v (%v %v), want %q", d.Body, d.Redelivered, ok, err, want)
		}
	}
	ds[2].Ack(false)
	ds[4].Nack(false, false) // dropped: no dead-letter exchange
	if n := queueLen(t, b, q); n != 0 {
		t.Fatalf("%d left", n)
	}
}

func testGlobalPrefetch(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	q1, q2 := uniqueName("g1"), uniqueName("g2")
	for _, q := range []string{q1, q2} {
		if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			publish(t, ch, "", q, strconv.Itoa(i))
		}
	}
	_, c := dialChannel(t, b)
	if err := c.Qos(3, 0, true); err != nil { // channel-wide: 3 in all
		t.Fatal(err)
	}
	msgs := make(chan amqp091.Delivery, 10)
	for _, q := range []string{q1, q2} {
		in, err := c.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for d := range in {
				msgs <- d
			}
		}()
	}
	var held []amqp091.Delivery
	for range 3 {
		held = append(held, receive(t, msgs))
	}
	expectNoDelivery(t, msgs, 100*time.Millisecond)
	// Raising the limit on the live channel takes effect at once.
	if err := c.Qos(4, 0, true); err != nil {
		t.Fatal(err)
	}
	held = append(held, receive(t, msgs))
	expectNoDelivery(t, msgs, 100*time.Millisecond)
	if err := held[3].Ack(true); err != nil { // acks all four
		t.Fatal(err)
	}
	for range 2 {
		receive(t, msgs)
	}
}

func testRecover(t *testing.T, b *broker) {
	q := uniqueName("recover")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q, "again")
	msgs, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := receive(t, msgs); d.Redelivered {
		t.Fatal("redelivered on first delivery")
	}
	//lint:ignore SA1019 basic.recover is the method under test
	if err := ch.Recover(true); err != nil {
		t.Fatal(err)
	}
	d := receive(t, msgs)
	if !d.Redelivered || string(d.Body) != "again" {
		t.Fatalf("after recover: %q redelivered=%v", d.Body, d.Redelivered)
	}
	d.Ack(false)
}

func testPurge(t *testing.T, b *broker) {
	q := uniqueName("purge")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		publish(t, ch, "", q, "m")
	}
	d, _, err := ch.Get(q, false)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ch.QueuePurge(q, false)
	if err != nil || n != 3 {
		t.Fatalf("purged %d (%v), want 3 (the unacked one stays)", n, err)
	}
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, q); n != 1 {
			return fmt.Errorf("%d ready, want the requeued 1", n)
		}
		return nil
	})
}

func testDeleteCancelsConsumers(t *testing.T, b *broker) {
	q := uniqueName("deleted")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, c := dialChannel(t, b)
	cancels := c.NotifyCancel(make(chan string, 1))
	if _, err := c.Consume(q, "watcher", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q, "x")
	publish(t, ch, "", q, "y")
	n, err := ch.QueueDelete(q, false, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if n > 2 {
		t.Fatalf("delete-ok count %d", n)
	}
	select {
	case tag := <-cancels:
		if tag != "watcher" {
			t.Fatalf("cancelled %q", tag)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no basic.cancel after the queue was deleted")
	}
}

func testLargeBodies(t *testing.T, b *broker) {
	q := uniqueName("large")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	sizes := []int{16 << 10, 131072 - 8, 131072, 300_000, 4 << 20}
	bodies := make([][]byte, len(sizes))
	for i, n := range sizes {
		bodies[i] = make([]byte, n)
		for j := range bodies[i] {
			bodies[i][j] = byte(i*31 + j*7)
		}
		if err := ch.Publish("", q, false, false, amqp091.Publishing{Body: bodies[i]}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sizes {
		d := receive(t, msgs)
		if !bytes.Equal(d.Body, bodies[i]) {
			t.Fatalf("body %d (%d bytes) arrived as %d bytes, not intact", i, sizes[i], len(d.Body))
		}
	}
}
