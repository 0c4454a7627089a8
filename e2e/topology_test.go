package e2e

import (
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestTopology(t *testing.T) {
	b := startBroker(t)
	tests := []struct {
		name string
		run  func(t *testing.T, b *broker)
	}{
		{"exchange declare, redeclare and passive declare", testExchangeDeclare},
		{"exchange delete", testExchangeDelete},
		{"queue declare errors", testQueueDeclareErrors},
		{"bind and unbind", testBindUnbind},
		{"exchange-to-exchange bindings with a cycle deliver once", testExchangeBindings},
		{"alternate exchange", testAlternateExchange},
		{"internal exchange", testInternalExchange},
		{"auto-delete exchange", testAutoDeleteExchange},
		{"headers exchange", testHeadersExchange},
		{"sender-selected distribution with CC and BCC", testSenderSelected},
		{"consistent hash exchange spreads by routing key", testConsistentHash},
		{"predeclared exchanges", testPredeclared},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, b) })
	}
}

func testExchangeDeclare(t *testing.T, b *broker) {
	x := uniqueName("x")
	_, ch := dialChannel(t, b)
	if err := ch.ExchangeDeclare(x, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(x, "direct", true, false, false, false, nil); err != nil {
		t.Fatalf("equivalent redeclare: %v", err)
	}
	if err := ch.ExchangeDeclarePassive(x, "whatever", false, false, false, false, nil); err != nil {
		t.Fatalf("passive declare: %v", err)
	}
	err := ch.ExchangeDeclare(x, "direct", false, false, false, false, nil)
	expectCode(t, err, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '"+x+"' in vhost '/': received 'false' but current is 'true'")
	_, ch = dialChannel(t, b)
	err = ch.ExchangeDeclare(x, "fanout", true, false, false, false, nil)
	expectCode(t, err, 406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '"+x+"' in vhost '/': received 'fanout' but current is 'direct'")
	_, ch = dialChannel(t, b)
	err = ch.ExchangeDeclarePassive(uniqueName("missing"), "direct", false, false, false, false, nil)
	expectCode(t, err, 404, "")
	_, ch = dialChannel(t, b)
	err = ch.ExchangeDeclare("amq.custom", "direct", false, false, false, false, nil)
	expectCode(t, err, 403, "ACCESS_REFUSED - exchange name 'amq.custom' contains reserved prefix 'amq.*'")
	_, ch = dialChannel(t, b)
	if err := ch.ExchangeDeclare("amq.direct", "direct", true, false, false, false, nil); err != nil {
		t.Fatalf("redeclaring amq.direct as it is: %v", err)
	}
	err = ch.ExchangeDeclare(uniqueName("typeless"), "no-such-type", false, false, false, false, nil)
	expectCode(t, err, 406, "")
	_, ch = dialChannel(t, b)
	err = ch.ExchangeDeclare("", "direct", false, false, false, false, nil)
	expectCode(t, err, 403, "ACCESS_REFUSED - operation not permitted on the default exchange")
}

func testExchangeDelete(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	if err := ch.ExchangeDelete(uniqueName("never-was"), false, false); err != nil {
		t.Fatalf("deleting a missing exchange: %v", err)
	}
	x := uniqueName("used")
	if err := ch.ExchangeDeclare(x, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "", x, false, nil); err != nil {
		t.Fatal(err)
	}
	err = ch.ExchangeDelete(x, true, false)
	expectCode(t, err, 406, "PRECONDITION_FAILED - exchange '"+x+"' in vhost '/' in use")
	_, ch = dialChannel(t, b)
	if err := ch.ExchangeDelete(x, false, false); err != nil {
		t.Fatal(err)
	}
	err = ch.ExchangeDeclarePassive(x, "fanout", false, false, false, false, nil)
	expectCode(t, err, 404, "")
	_, ch = dialChannel(t, b)
	expectCode(t, ch.ExchangeDelete("", false, false), 403, "")
	_, ch = dialChannel(t, b)
	expectCode(t, ch.ExchangeDelete("amq.direct", false, false), 403, "")
}

func testQueueDeclareErrors(t *testing.T, b *broker) {
	q := uniqueName("q")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, err := ch.QueueDeclare(q, false, false, false, false, nil)
	expectCode(t, err, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '"+q+"' in vhost '/': received 'false' but current is 'true'")
	_, ch = dialChannel(t, b)
	_, err = ch.QueueDeclare(q, true, false, false, false, amqp091.Table{"x-max-length": int32(10)})
	expectCode(t, err, 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '"+q+"' in vhost '/': received the value '10' of type 'signedint' but current is none")
	_, ch = dialChannel(t, b)
	_, err = ch.QueueDeclarePassive(uniqueName("missing"), false, false, false, false, nil)
	expectCode(t, err, 404, "")
	_, ch = dialChannel(t, b)
	_, err = ch.QueueDeclare("amq.mine", false, false, false, false, nil)
	expectCode(t, err, 403, "ACCESS_REFUSED - queue name 'amq.mine' contains reserved prefix 'amq.*'")
	_, ch = dialChannel(t, b)
	name := uniqueName("prio")
	_, err = ch.QueueDeclare(name, false, false, false, false, amqp091.Table{"x-max-priority": int32(300)})
	expectCode(t, err, 406, "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '"+name+"' in vhost '/': {max_value_exceeded,300}")
	_, ch = dialChannel(t, b)
	gen, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil || len(gen.Name) != len("amq.gen-")+22 {
		t.Fatalf("server-named queue %q: %v", gen.Name, err)
	}
	// An empty name means the channel's last declared queue.
	if err := ch.QueueBind("", "", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "amq.direct", gen.Name, "via last declared")
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, q); n != 0 {
			return fmt.Errorf("unrelated queue got %d", n)
		}
		d, ok, err := ch.Get("", true)
		if err != nil || !ok || string(d.Body) != "via last declared" {
			return fmt.Errorf("get from last declared: %v %v", ok, err)
		}
		return nil
	})
	err = ch.QueueBind(uniqueName("missing"), "k", "amq.direct", false, nil)
	expectCode(t, err, 404, "")
	_, ch = dialChannel(t, b)
	_, err = ch.QueueDelete(q, false, true, false)
	if err != nil {
		t.Fatalf("delete if-empty of an empty queue: %v", err)
	}
	if _, err := ch.QueueDelete(uniqueName("missing"), false, false, false); err != nil {
		t.Fatalf("deleting a missing queue: %v", err)
	}
	full := uniqueName("full")
	if _, err := ch.QueueDeclare(full, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", full, "m")
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, full); n != 1 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})
	_, err = ch.QueueDelete(full, false, true, false)
	expectCode(t, err, 406, "PRECONDITION_FAILED - queue '"+full+"' in vhost '/' not empty")
	_, ch = dialChannel(t, b)
	if _, err := ch.Consume(full, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, other := dialChannel(t, b)
	_, err = other.QueueDelete(full, true, false, false)
	expectCode(t, err, 406, "PRECONDITION_FAILED - queue '"+full+"' in vhost '/' in use")
}

func testBindUnbind(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	x := uniqueName("bx")
	if err := ch.ExchangeDeclare(x, "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "k", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "k", x, false, nil); err != nil {
		t.Fatalf("binding twice: %v", err)
	}
	publish(t, ch, x, "k", "bound")
	if err := ch.QueueUnbind(q.Name, "k", x, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueUnbind(q.Name, "k", x, nil); err != nil {
		t.Fatalf("unbinding a missing binding: %v", err)
	}
	publish(t, ch, x, "k", "unbound")
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, q.Name); n != 1 {
			return fmt.Errorf("%d messages, want 1", n)
		}
		return nil
	})
	err = ch.QueueBind(q.Name, "k", "", false, nil)
	expectCode(t, err, 403, "ACCESS_REFUSED - operation not permitted on the default exchange")
	_, ch = dialChannel(t, b)
	err = ch.QueueBind(q.Name, "k", uniqueName("nx"), false, nil)
	expectCode(t, err, 404, "")
}

func testExchangeBindings(t *testing.T, b *broker) {
	conn, ch := dialChannel(t, b)
	a, bx := uniqueName("ea"), uniqueName("eb")
	for _, x := range []string{a, bx} {
		if err := ch.ExchangeDeclare(x, "topic", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.ExchangeBind(bx, "#", a, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeBind(a, "#", bx, false, nil); err != nil { // a cycle
		t.Fatal(err)
	}
	msgs := bindAndConsume(t, conn, a, "k.#")
	// The same queue also bound to b: one copy still.
	sub := openChannel(t, conn)
	qs, _ := sub.QueueDeclare("", false, false, true, false, nil)
	_ = qs
	publish(t, ch, bx, "k.1", "through b")
	publish(t, ch, a, "k.2", "through a")
	expectBodies(t, msgs, "through b", "through a")
	if err := ch.ExchangeUnbind(bx, "#", a, false, nil); err != nil {
		t.Fatal(err)
	}
	err := ch.ExchangeBind(uniqueName("nx"), "#", a, false, nil)
	expectCode(t, err, 404, "")
}

func testAlternateExchange(t *testing.T, b *broker) {
	conn, ch := dialChannel(t, b)
	ae, x := uniqueName("ae"), uniqueName("main")
	if err := ch.ExchangeDeclare(ae, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(x, "direct", false, false, false, false, amqp091.Table{"alternate-exchange": ae}); err != nil {
		t.Fatal(err)
	}
	routed := bindAndConsume(t, conn, x, "known")
	caught := bindAndConsume(t, conn, ae, "")
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	if err := ch.Publish(x, "unknown", true, false, amqp091.Publishing{Body: []byte("to ae")}); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, x, "known", "routed")
	expectBodies(t, caught, "to ae")
	expectBodies(t, routed, "routed")
	select {
	case r := <-returns:
		t.Fatalf("a message routed through the alternate exchange was returned: %+v", r)
	default:
	}
}

func testInternalExchange(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	x := uniqueName("internal")
	if err := ch.ExchangeDeclare(x, "fanout", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	publish(t, ch, x, "", "nope")
	expectClose(t, closed, 403, "ACCESS_REFUSED - cannot publish to internal exchange '"+x+"' in vhost '/'")
	_, ch = dialChannel(t, b)
	closed = ch.NotifyClose(make(chan *amqp091.Error, 1))
	missing := uniqueName("nx")
	publish(t, ch, missing, "", "nope")
	expectClose(t, closed, 404, "NOT_FOUND - no exchange '"+missing+"' in vhost '/'")
}

func testAutoDeleteExchange(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	x := uniqueName("adx")
	if err := ch.ExchangeDeclare(x, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclarePassive(x, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueUnbind(q.Name, "", x, nil); err != nil {
		t.Fatal(err)
	}
	err = ch.ExchangeDeclarePassive(x, "fanout", false, true, false, false, nil)
	expectCode(t, err, 404, "")
}

func testHeadersExchange(t *testing.T, b *broker) {
	conn, ch := dialChannel(t, b)
	x := uniqueName("hx")
	if err := ch.ExchangeDeclare(x, "headers", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	all := openChannel(t, conn)
	qa, _ := all.QueueDeclare("", false, true, false, false, nil)
	if err := all.QueueBind(qa.Name, "", x, false, amqp091.Table{"x-match": "all", "format": "pdf", "type": "report"}); err != nil {
		t.Fatal(err)
	}
	anyq, _ := all.QueueDeclare("", false, true, false, false, nil)
	if err := all.QueueBind(anyq.Name, "", x, false, amqp091.Table{"x-match": "any", "format": "pdf", "type": "log"}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []amqp091.Table{{"format": "pdf", "type": "report"}, {"format": "pdf"}, {"type": "log"}, {"format": "zip"}} {
		if err := ch.Publish(x, "", false, false, amqp091.Publishing{Headers: h, Body: []byte(fmt.Sprint(h))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() error {
		na, nany := queueLen(t, b, qa.Name), queueLen(t, b, anyq.Name)
		if na != 1 || nany != 3 {
			return fmt.Errorf("all got %d (want 1), any got %d (want 3)", na, nany)
		}
		return nil
	})
	err := all.QueueBind(qa.Name, "", x, false, amqp091.Table{"x-match": "foo"})
	expectCode(t, err, 406, "PRECONDITION_FAILED - Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x")
}

func testSenderSelected(t *testing.T, b *broker) {
	conn, ch := dialChannel(t, b)
	x := uniqueName("ssd")
	if err := ch.ExchangeDeclare(x, "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	main := bindAndConsume(t, conn, x, "main")
	cc := bindAndConsume(t, conn, x, "cc")
	bcc := bindAndConsume(t, conn, x, "bcc")
	if err := ch.Publish(x, "main", false, false, amqp091.Publishing{
		Headers: amqp091.Table{"CC": []any{"cc"}, "BCC": []any{"bcc"}, "other": "kept"}, Body: []byte("m"),
	}); err != nil {
		t.Fatal(err)
	}
	for _, msgs := range []<-chan amqp091.Delivery{main, cc, bcc} {
		d := receive(t, msgs)
		if _, ok := d.Headers["BCC"]; ok {
			t.Fatal("BCC header delivered")
		}
		if d.Headers["other"] != "kept" || d.Headers["CC"] == nil {
			t.Fatalf("headers %v", d.Headers)
		}
	}
}

func testConsistentHash(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	x := uniqueName("chx")
	if err := ch.ExchangeDeclare(x, "x-consistent-hash", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	var qs []string
	for range 2 {
		q, _ := ch.QueueDeclare("", false, true, false, false, nil)
		if err := ch.QueueBind(q.Name, "1", x, false, nil); err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q.Name)
	}
	for i := range 200 {
		publish(t, ch, x, fmt.Sprintf("key-%d", i), "m")
	}
	waitFor(t, 10*time.Second, func() error {
		n0, n1 := queueLen(t, b, qs[0]), queueLen(t, b, qs[1])
		if n0+n1 != 200 || n0 < 50 || n1 < 50 {
			return fmt.Errorf("split %d/%d", n0, n1)
		}
		return nil
	})
	err := ch.QueueBind(qs[0], "heavy", x, false, nil)
	expectCode(t, err, 406, "PRECONDITION_FAILED - The binding key must be an integer: <<\"heavy\">>")
}

func testPredeclared(t *testing.T, b *broker) {
	_, ch := dialChannel(t, b)
	for _, x := range []struct{ name, kind string }{
		{"amq.direct", "direct"}, {"amq.fanout", "fanout"}, {"amq.topic", "topic"}, {"amq.headers", "headers"}, {"amq.match", "headers"},
	} {
		if err := ch.ExchangeDeclarePassive(x.name, x.kind, true, false, false, false, nil); err != nil {
			t.Fatalf("%s: %v", x.name, err)
		}
	}
}
