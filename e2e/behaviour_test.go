package e2e

import (
	"strconv"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqp/wire"
)

// Behaviours found to differ from RabbitMQ when Warren was first tried
// with amqp091-go's own integration tests and RabbitMQ case by case.

// A client closes a channel at the moment the broker closes it for an
// error (amqp091-go's "issue 43"): the two closes cross. The connection and
// its other channels must not suffer.
func TestCrossingChannelCloseSparesOtherChannels(t *testing.T) {
	b := startBroker(t)
	t.Run("amqp091-go", func(t *testing.T) {
		conn := dial(t, b)
		connClosed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		for i := range 20 {
			ch1, ch2 := openChannel(t, conn), openChannel(t, conn)
			// The broker will close ch1 with 404; the client closes it too.
			_ = ch1.Publish("no-such-exchange", "k", false, false, amqp091.Publishing{Body: []byte("x")})
			_ = ch1.Close()
			x := uniqueName("crossing")
			if err := ch2.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
				t.Fatalf("round %d: declare on the other channel: %v", i, err)
			}
			if err := ch2.Close(); err != nil {
				t.Fatalf("round %d: closing the other channel: %v", i, err)
			}
		}
		select {
		case err := <-connClosed:
			t.Fatalf("connection closed: %v", err)
		default:
		}
		if conn.IsClosed() {
			t.Fatal("connection closed")
		}
	})
	t.Run("raw frames", func(t *testing.T) {
		// The crossing, made certain: publish and close in one write.
		c := dialRaw(t, b)
		c.open()
		c.send(1, &wire.ChannelOpen{})
		c.expectMethod(1, wire.MethodChannelOpenOk)
		props, _ := (&wire.Properties{}).Append(nil)
		pub, _ := wire.AppendMethodFrame(nil, 1, &wire.BasicPublish{Exchange: "no-such-exchange", RoutingKey: "k"})
		pub = wire.AppendHeaderFrame(pub, 1, wire.ClassBasic, 1, props)
		pub = wire.AppendBodyFrames(pub, 1, []byte("x"), 131072)
		pub, _ = wire.AppendMethodFrame(pub, 1, &wire.ChannelClose{ReplyCode: wire.ReplySuccess, ReplyText: "bye"})
		c.write(pub)
		closeMsg := c.expectMethod(1, wire.MethodChannelClose).(*wire.ChannelClose)
		if closeMsg.ReplyCode != wire.NotFound {
			t.Fatalf("channel.close %d %q, want 404", closeMsg.ReplyCode, closeMsg.ReplyText)
		}
		c.expectMethod(1, wire.MethodChannelCloseOk) // for the client's close
		c.send(1, &wire.ChannelCloseOk{})            // for the broker's, as every client sends
		c.send(2, &wire.ChannelOpen{})
		c.expectMethod(2, wire.MethodChannelOpenOk)
		c.send(2, &wire.ExchangeDeclare{Exchange: uniqueName("crossing"), Type: "direct", AutoDelete: true})
		c.expectMethod(2, wire.MethodExchangeDeclareOk)
		// The closed number is free again.
		c.send(1, &wire.ChannelOpen{})
		c.expectMethod(1, wire.MethodChannelOpenOk)
	})
	// TestClients runs the same crossing with pika and amqplib
	// ("crossing-close").
}

// Every operation another connection tries on an exclusive queue gets 405
// RESOURCE_LOCKED at once, as a channel error.
func TestExclusiveQueueLockedForOtherConnections(t *testing.T) {
	b := startBroker(t)
	q := uniqueName("exclusive")
	_, owner := dialChannel(t, b)
	if _, err := owner.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	x := uniqueName("exclusive-x")
	if err := owner.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	locked := "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + q +
		"' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
	other := dial(t, b)
	ops := []struct {
		name string
		do   func(ch *amqp091.Channel) error
	}{
		{"passive declare", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclarePassive(q, false, false, true, false, nil)
			return err
		}},
		{"consume", func(ch *amqp091.Channel) error {
			_, err := ch.Consume(q, "", false, false, false, false, nil)
			return err
		}},
		{"purge", func(ch *amqp091.Channel) error {
			_, err := ch.QueuePurge(q, false)
			return err
		}},
		{"bind", func(ch *amqp091.Channel) error { return ch.QueueBind(q, "k", x, false, nil) }},
		{"delete", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDelete(q, false, false, false)
			return err
		}},
		{"basic.get", func(ch *amqp091.Channel) error {
			_, _, err := ch.Get(q, false)
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			ch := openChannel(t, other)
			done := make(chan error, 1)
			go func() { done <- op.do(ch) }()
			select {
			case err := <-done:
				expectCode(t, err, 405, locked)
			case <-time.After(10 * time.Second):
				t.Fatal("no answer within 10s")
			}
		})
	}
	// TestClients runs the same operations with pika and amqplib
	// ("exclusive-queue").
}

// RabbitMQ 3.10+: basic.qos with global=false after one with global=true
// lifts the channel-wide limit; the new consumers each get the per-consumer
// limit.
func TestPerConsumerQosLiftsChannelLimit(t *testing.T) {
	b := startBroker(t)
	_, pub := dialChannel(t, b)
	q := uniqueName("qos")
	if _, err := pub.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	conn, ch := dialChannel(t, b)
	if err := ch.Qos(3, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	a, err := ch.Consume(q, "a", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := ch.Consume(q, "b", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		publish(t, pub, "", q, strconv.Itoa(i))
	}
	for _, msgs := range []<-chan amqp091.Delivery{a, bc} {
		receive(t, msgs)
		receive(t, msgs)
	}
	// Each holds its 2 and no more: 2 of the 6 wait in the queue.
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, q); n != 2 {
			return errorString("ready " + strconv.Itoa(n) + ", want 2")
		}
		return nil
	})
	// A round trip on the consumers' connection: anything due is here.
	if _, err := openChannel(t, conn).QueueDeclarePassive(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	expectNoDelivery(t, a, 50*time.Millisecond)
	expectNoDelivery(t, bc, 50*time.Millisecond)
}

// channel_max is the highest channel number a client may use: a frame on
// a number above it closes the connection with 530.
func TestChannelNumberAboveChannelMax(t *testing.T) {
	b := startBroker(t)
	t.Run("amqp091-go negotiates the client's limit", func(t *testing.T) {
		conn, err := amqp091.DialConfig(b.URL(), amqp091.Config{ChannelMax: 16})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if conn.Config.ChannelMax != 16 {
			t.Fatalf("negotiated channel_max %d, want 16", conn.Config.ChannelMax)
		}
		for range 16 {
			openChannel(t, conn)
		}
		if _, err := conn.Channel(); err == nil {
			t.Fatal("a 17th channel opened")
		}
	})
	tests := []struct {
		name       string
		channelMax uint16 // tune-ok's; 0 takes the server's 2047
		open       uint16 // a number at the limit, which opens
		over       uint16
	}{
		{"client's limit", 16, 16, 17},
		{"server's limit", 0, 2047, 2048},
		{"server's limit, named", 2047, 2047, 65535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, b)
			o := defaultHandshake()
			o.channelMax = tt.channelMax
			c.handshake(o)
			c.expectMethod(0, wire.MethodConnectionOpenOk)
			c.send(tt.open, &wire.ChannelOpen{})
			c.expectMethod(tt.open, wire.MethodChannelOpenOk)
			c.send(tt.over, &wire.ChannelOpen{})
			limit := tt.channelMax
			if limit == 0 {
				limit = 2047
			}
			c.expectConnectionClose(wire.NotAllowed, "NOT_ALLOWED - channel number "+strconv.Itoa(int(tt.over))+
				" is above the negotiated channel_max ("+strconv.Itoa(int(limit))+")")
		})
	}
}

// A consumer whose prefetch credit comes back (it acked) is offered the
// next message before a lower-priority consumer. The ack is made certain to
// have been read first by a round trip on the consumers' connection, whose
// frames the broker reads in order.
func TestConsumerPriorityAfterAck(t *testing.T) {
	b := startBroker(t)
	_, pub := dialChannel(t, b)
	for trial := range 10 {
		if overtaken := priorityTrial(t, b, pub, true); overtaken {
			t.Fatalf("trial %d: message 4 went to the low-priority consumer after the high one's credit came back", trial)
		}
	}
}

// BenchmarkConsumerPriorityOvertake is TestConsumerPriorityAfterAck as a
// client that does not synchronise would run it: the 4th message is
// published from another connection as soon as the ack is written. Nothing
// orders the two connections' frames, so the broker may read the publish
// first; overtaken/op is the fraction of trials in which the low-priority
// consumer got it.
func BenchmarkConsumerPriorityOvertake(b *testing.B) {
	br := startBinary(b, fastBroker(b), b.TempDir(), "127.0.0.1:0")
	_, pub := dialChannel(b, br)
	overtaken := 0
	for b.Loop() {
		if priorityTrial(b, br, pub, false) {
			overtaken++
		}
	}
	b.ReportMetric(float64(overtaken)/float64(b.N), "overtaken/op")
}

// priorityTrial runs one trial on a new queue: a low-priority consumer
// without a prefetch limit and a high-priority one with prefetch 1 on
// another channel; three messages (the high consumer takes the first, the
// low one the other two); the high consumer acks, and a fourth message is
// published from pub. It reports whether the low consumer got the fourth.
func priorityTrial(t testing.TB, b *broker, pub *amqp091.Channel, sync bool) bool {
	t.Helper()
	q := uniqueName("prio-ack")
	if _, err := pub.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cons := dial(t, b)
	defer cons.Close()
	low, err := openChannel(t, cons).Consume(q, "low", false, false, false, false, amqp091.Table{"x-priority": int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	highCh := openChannel(t, cons)
	if err := highCh.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	high, err := highCh.Consume(q, "high", false, false, false, false, amqp091.Table{"x-priority": int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		publish(t, pub, "", q, strconv.Itoa(i))
	}
	h := receive(t, high)
	if string(h.Body) != "1" {
		t.Fatalf("high got %q first, want 1", h.Body)
	}
	for _, want := range []string{"2", "3"} {
		if d := receive(t, low); string(d.Body) != want {
			t.Fatalf("low got %q, want %s", d.Body, want)
		}
	}
	if err := h.Ack(false); err != nil {
		t.Fatal(err)
	}
	if sync {
		openChannel(t, cons) // channel.open-ok comes after the ack was handled
	}
	publish(t, pub, "", q, "4")
	select {
	case d := <-high:
		if string(d.Body) != "4" {
			t.Fatalf("high got %q, want 4", d.Body)
		}
		return false
	case d := <-low:
		if string(d.Body) != "4" {
			t.Fatalf("low got %q, want 4", d.Body)
		}
		return true
	case <-time.After(10 * time.Second):
		t.Fatal("message 4 not delivered")
	}
	return false
}
