package e2e

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// dial opens an amqp091-go connection closed at the end of the test.
func dial(t testing.TB, b *broker) *amqp091.Connection {
	t.Helper()
	conn, err := amqp091.Dial(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// openChannel opens a channel on conn.
func openChannel(t testing.TB, conn *amqp091.Connection) *amqp091.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// dialChannel opens a fresh connection with one channel.
func dialChannel(t testing.TB, b *broker) (*amqp091.Connection, *amqp091.Channel) {
	t.Helper()
	conn := dial(t, b)
	return conn, openChannel(t, conn)
}

// expectCode checks err is an AMQP error with code and, when text is not
// empty, that reply text.
func expectCode(t testing.TB, err error, code int, text string) {
	t.Helper()
	var e *amqp091.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want AMQP error %d", err, err, code)
	}
	if e.Code != code || (text != "" && e.Reason != text) {
		t.Fatalf("got %d %q, want %d %q", e.Code, e.Reason, code, text)
	}
}

// expectClose waits for a channel or connection close notification with
// code and text.
func expectClose(t testing.TB, closed <-chan *amqp091.Error, code int, text string) {
	t.Helper()
	select {
	case e := <-closed:
		if e == nil {
			t.Fatalf("closed without an error, want %d", code)
		}
		expectCode(t, e, code, text)
	case <-time.After(10 * time.Second):
		t.Fatalf("no close with %d within 10s", code)
	}
}

// receive reads one delivery or fails after a deadline.
func receive(t testing.TB, msgs <-chan amqp091.Delivery) amqp091.Delivery {
	t.Helper()
	select {
	case d, ok := <-msgs:
		if !ok {
			t.Fatal("delivery channel closed")
		}
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	return amqp091.Delivery{}
}

// expectNoDelivery checks nothing arrives within a short window. It is used
// only after a positive synchronisation point (for example a round trip on
// the same connection), so a delivery that was due would already be here.
func expectNoDelivery(t testing.TB, msgs <-chan amqp091.Delivery, within time.Duration) {
	t.Helper()
	select {
	case d := <-msgs:
		t.Fatalf("unexpected delivery %q", d.Body)
	case <-time.After(within):
	}
}

// publish sends a transient message through the default or named exchange.
func publish(t testing.TB, ch *amqp091.Channel, exchange, key, body string) {
	t.Helper()
	if err := ch.Publish(exchange, key, false, false, amqp091.Publishing{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

// queueLen returns a queue's ready message count by passive declare.
func queueLen(t testing.TB, b *broker, name string) int {
	t.Helper()
	_, ch := dialChannel(t, b)
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

var nameSeq atomic.Int64

// uniqueName returns a name no other test uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nameSeq.Add(1))
}

// awaitAcks waits for n confirms on confirms and fails the test on a nack
// or when one is missing after timeout.
func awaitAcks(t testing.TB, confirms <-chan amqp091.Confirmation, n int, timeout time.Duration) {
	t.Helper()
	for range n {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("publish %d nacked", c.DeliveryTag)
			}
		case <-time.After(timeout):
			t.Fatalf("confirms missing after %v", timeout)
		}
	}
}
