package e2e

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqp/wire"
)

// Confirms still owed when a client closes its channel must not go out on
// the channel number once it is reused.
func TestReopenedChannelGetsNoStaleConfirms(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare("stale", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// barrier returns once the store has written everything published
	// before it: its own persistent publish is confirmed, and the store
	// completes batches in order.
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	acks := ch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	barrier := func() {
		t.Helper()
		if err := ch.Publish("", "stale", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte("barrier")}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-acks:
		case <-time.After(10 * time.Second):
			t.Fatal("barrier not confirmed")
		}
	}
	// Large persistent publishes on another connection keep the store's
	// batches slow, so that confirms fall due after the channel closes.
	_, load := dialChannel(t, b)
	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		big := make([]byte, 256<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if load.Publish("", "stale", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: big}) != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-loaded }()
	c := dialRaw(t, b)
	c.open()
	props, _ := (&wire.Properties{DeliveryMode: 2}).Append(nil)
	for round := range 20 {
		c.send(1, &wire.ChannelOpen{})
		c.expectMethod(1, wire.MethodChannelOpenOk)
		c.send(1, &wire.ConfirmSelect{})
		c.expectMethod(1, wire.MethodConfirmSelectOk)
		pub, _ := wire.AppendMethodFrame(nil, 1, &wire.BasicPublish{RoutingKey: "stale"})
		pub = wire.AppendHeaderFrame(pub, 1, wire.ClassBasic, 4, props)
		pub = wire.AppendBodyFrames(pub, 1, []byte("body"), 131072)
		close1, _ := wire.AppendMethodFrame(nil, 1, &wire.ChannelClose{ReplyCode: 200})
		c.write(append(pub, close1...))
		// An ack before close-ok is fine; none may follow it.
		for {
			m := c.readMethod()
			if _, ok := m.(*wire.ChannelCloseOk); ok {
				break
			}
			if _, ok := m.(*wire.BasicAck); !ok {
				t.Fatalf("round %d: got %T before close-ok", round, m)
			}
		}
		c.send(1, &wire.ChannelOpen{})
		c.expectMethod(1, wire.MethodChannelOpenOk)
		barrier() // a stale confirm would be on its way by now
		c.send(1, &wire.BasicQos{PrefetchCount: 1})
		if m := c.readMethod(); m.Key() != wire.MethodBasicQosOk {
			t.Fatalf("round %d: the reopened channel got %T (a stale confirm?)", round, m)
		}
		c.send(1, &wire.ChannelClose{ReplyCode: 200})
		c.expectMethod(1, wire.MethodChannelCloseOk)
	}
}

// Acknowledgements made in a transaction that never commits are undone:
// the messages go back to the queue when the channel closes.
func TestUncommittedTransactionalAcksRequeue(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	q := uniqueName("txacks")
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q, "m")
	_, c := dialChannel(t, b)
	if err := c.Tx(); err != nil {
		t.Fatal(err)
	}
	var d amqp091.Delivery
	waitFor(t, 10*time.Second, func() error {
		var ok bool
		var err error
		if d, ok, err = c.Get(q, false); err != nil {
			t.Fatal(err)
		} else if !ok {
			return errEmpty
		}
		return nil
	})
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, q); n != 1 {
			return errorString("the acked-but-uncommitted message is not back")
		}
		return nil
	})
}

// tx.commit-ok means the transaction's persistent messages are on disk: a
// crash right after it loses none of them.
func TestCommittedTransactionSurvivesCrash(t *testing.T) {
	b := startBinary(t, fastBroker(t), t.TempDir(), "127.0.0.1:0")
	_, ch := dialChannel(t, b)
	if _, err := ch.QueueDeclare("txq", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := ch.Publish("", "txq", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	b.Kill()
	b.Start()
	if got := queueLen(t, b, "txq"); got != n {
		t.Fatalf("%d messages after a crash right after commit-ok, want %d", got, n)
	}
}
