package e2e

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestDeliveryErrors(t *testing.T) {
	b := startBroker(t)
	declare := func(t *testing.T, ch *amqp091.Channel, args amqp091.Table) string {
		t.Helper()
		q := uniqueName("errq")
		if _, err := ch.QueueDeclare(q, false, false, false, false, args); err != nil {
			t.Fatal(err)
		}
		return q
	}
	t.Run("duplicate consumer tag closes the connection with 530", func(t *testing.T) {
		conn, ch := dialChannel(t, b)
		q := declare(t, ch, nil)
		closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		if _, err := ch.Consume(q, "tag", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		_, _ = ch.Consume(q, "tag", false, false, false, false, nil)
		expectClose(t, closed, 530, "NOT_ALLOWED - attempt to reuse consumer tag 'tag'")
	})
	t.Run("exclusive consume on a queue with consumers gets 403", func(t *testing.T) {
		_, ch := dialChannel(t, b)
		q := declare(t, ch, nil)
		if _, err := ch.Consume(q, "", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		_, other := dialChannel(t, b)
		_, err := other.Consume(q, "", false, true, false, false, nil)
		expectCode(t, err, 403, "ACCESS_REFUSED - queue '"+q+"' in vhost '/' in exclusive use")
		_, other = dialChannel(t, b)
		_, ch2 := dialChannel(t, b)
		q2 := declare(t, ch2, nil)
		if _, err := ch2.Consume(q2, "", false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		_, err = other.Consume(q2, "", false, false, false, false, nil)
		expectCode(t, err, 403, "")
	})
	t.Run("unknown delivery tag gets 406", func(t *testing.T) {
		_, ch := dialChannel(t, b)
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		if err := ch.Ack(99, false); err != nil {
			t.Fatal(err)
		}
		expectClose(t, closed, 406, "PRECONDITION_FAILED - unknown delivery tag 99")
	})
	t.Run("double ack gets 406", func(t *testing.T) {
		_, ch := dialChannel(t, b)
		q := declare(t, ch, nil)
		publish(t, ch, "", q, "m")
		var d amqp091.Delivery
		waitFor(t, 10*time.Second, func() error {
			var err error
			var ok bool
			d, ok, err = ch.Get(q, false)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return errEmpty
			}
			return nil
		})
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		d.Ack(false)
		d.Ack(false)
		expectClose(t, closed, 406, "PRECONDITION_FAILED - unknown delivery tag 1")
	})
	t.Run("prefetch_size gets 540", func(t *testing.T) {
		conn, ch := dialChannel(t, b)
		closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		_ = ch.Qos(10, 1000, false)
		expectClose(t, closed, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)")
	})
	t.Run("recover without requeue gets 540", func(t *testing.T) {
		conn, ch := dialChannel(t, b)
		closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		//lint:ignore SA1019 basic.recover is the method under test
		_ = ch.Recover(false)
		expectClose(t, closed, 540, "NOT_IMPLEMENTED - requeue=false")
	})
	t.Run("immediate publish gets 540", func(t *testing.T) {
		conn, ch := dialChannel(t, b)
		closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		_ = ch.Publish("", "q", false, true, amqp091.Publishing{Body: []byte("now")})
		expectClose(t, closed, 540, "NOT_IMPLEMENTED - immediate=true")
	})
	t.Run("confirm and tx do not mix", func(t *testing.T) {
		_, ch := dialChannel(t, b)
		if err := ch.Tx(); err != nil {
			t.Fatal(err)
		}
		expectCode(t, ch.Confirm(false), 406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")
		_, ch = dialChannel(t, b)
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		expectCode(t, ch.Tx(), 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")
		_, ch = dialChannel(t, b)
		expectCode(t, ch.TxCommit(), 406, "PRECONDITION_FAILED - channel is not transactional")
		_, ch = dialChannel(t, b)
		expectCode(t, ch.TxRollback(), 406, "PRECONDITION_FAILED - channel is not transactional")
	})
	t.Run("message over max_message_size gets 406", func(t *testing.T) {
		_, ch := dialChannel(t, b)
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		_ = ch.Publish("", "q", false, false, amqp091.Publishing{Body: make([]byte, 16<<20+1)})
		expectClose(t, closed, 406, "PRECONDITION_FAILED - message size 16777217 is larger than configured max size 16777216")
	})
	t.Run("a user_id other than the authenticated user gets 406", func(t *testing.T) {
		_, ch := dialChannel(t, b)
		q := declare(t, ch, nil)
		if err := ch.Publish("", q, false, false, amqp091.Publishing{UserId: "guest", Body: []byte("mine")}); err != nil {
			t.Fatal(err)
		}
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		_ = ch.Publish("", q, false, false, amqp091.Publishing{UserId: "admin", Body: []byte("forged")})
		expectClose(t, closed, 406, "PRECONDITION_FAILED - user_id property set to 'admin' but authenticated user was 'guest'")
		if n := queueLen(t, b, q); n != 1 {
			t.Fatalf("%d messages, want the one with the right user_id", n)
		}
	})
	t.Run("an overdue acknowledgement closes the channel and requeues, uncounted", func(t *testing.T) {
		_, ch := dialChannel(t, b)
		// As in RabbitMQ 4.3, a consumer timeout is no failed delivery:
		// with a delivery limit of 0 the message still comes back.
		q := declare(t, ch, amqp091.Table{"x-consumer-timeout": int32(200), "x-delivery-limit": 0})
		publish(t, ch, "", q, "slow")
		_, c := dialChannel(t, b)
		closed := c.NotifyClose(make(chan *amqp091.Error, 1))
		msgs, err := c.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		receive(t, msgs)
		expectClose(t, closed, 406, "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. "+
			"Timeout value used: 200 ms. This timeout value can be configured, see consumers doc guide to learn more")
		d, ok, err := ch.Get(q, true)
		if _, counted := d.Headers["x-delivery-count"]; err != nil || !ok || !d.Redelivered || counted {
			t.Fatalf("after the timeout: ok=%v err=%v redelivered=%v x-delivery-count=%v", ok, err, d.Redelivered, d.Headers["x-delivery-count"])
		}
	})
	t.Run("per-consumer timeout argument", func(t *testing.T) {
		_, ch := dialChannel(t, b)
		q := declare(t, ch, nil)
		publish(t, ch, "", q, "slow")
		_, c := dialChannel(t, b)
		closed := c.NotifyClose(make(chan *amqp091.Error, 1))
		msgs, err := c.Consume(q, "", false, false, false, false, amqp091.Table{"x-consumer-timeout": int64(300)})
		if err != nil {
			t.Fatal(err)
		}
		receive(t, msgs)
		expectClose(t, closed, 406, "")
	})
}

// errEmpty is a polling condition's "not yet".
var errEmpty = errorString("queue empty")

type errorString string

func (e errorString) Error() string { return string(e) }
