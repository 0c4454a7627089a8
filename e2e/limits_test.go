package e2e

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// User limits (warrenctl set_user_limits): the connection past
// max-connections and the channel past max-channels (over all the user's
// connections) are refused with 530 and RabbitMQ's texts, and a closed
// one frees its slot; clear_user_limits lifts them.
func TestUserLimits(t *testing.T) {
	b := startBroker(t)
	b.ctlOK(t, "add_user", "lim", "lim-s3cret")
	b.ctlOK(t, "set_permissions", "-p", "/", "lim", ".*", ".*", ".*")
	b.ctlOK(t, "set_user_limits", "lim", `{"max-connections": 2, "max-channels": 3}`)
	var limits []struct {
		User  string
		Value map[string]float64
	}
	b.getAPI(t, "/api/user-limits/lim", &limits)
	if len(limits) != 1 || limits[0].User != "lim" || limits[0].Value["max-connections"] != 2 || limits[0].Value["max-channels"] != 3 {
		t.Fatalf("user limits: %+v", limits)
	}

	first := mustLogin(t, b, "lim", "lim-s3cret", "/")
	second := mustLogin(t, b, "lim", "lim-s3cret", "/")
	_, err := amqpLogin(b, "lim", "lim-s3cret", "/")
	expectCode(t, err, amqp091.NotAllowed, "NOT_ALLOWED - Connection refused for user 'lim'. User connection limit (2) is reached")
	// Another user is not counted against lim's limit.
	mustLogin(t, b, "guest", "guest", "/")

	// Channels count over both connections.
	for _, c := range []*amqp091.Connection{first, first, second} {
		if _, err := c.Channel(); err != nil {
			t.Fatalf("a channel under the limit: %v", err)
		}
	}
	closed := second.NotifyClose(make(chan *amqp091.Error, 1))
	_, err = second.Channel()
	expectCode(t, err, amqp091.NotAllowed, "")
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp091.NotAllowed ||
			e.Reason != "NOT_ALLOWED - number of channels opened for user 'lim' has reached the maximum allowed user limit of (3)" {
			t.Fatalf("connection closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection past max-channels was not closed")
	}

	// second is gone with its channel: a connection and a channel are free.
	third := mustLogin(t, b, "lim", "lim-s3cret", "/")
	if _, err := third.Channel(); err != nil {
		t.Fatalf("a channel freed by a closed connection: %v", err)
	}
	_, err = amqpLogin(b, "lim", "lim-s3cret", "/")
	expectCode(t, err, amqp091.NotAllowed, "")

	b.ctlOK(t, "clear_user_limits", "lim", "all")
	b.getAPI(t, "/api/user-limits", &limits)
	if len(limits) != 0 {
		t.Errorf("limits after clear_user_limits all: %+v", limits)
	}
	mustLogin(t, b, "lim", "lim-s3cret", "/")
	b.ctlFails(t, 67, "", "set_user_limits", "nobody", `{"max-connections": 1}`)
	b.ctlFails(t, 65, "", "set_user_limits", "lim", `{"max-connections": "x"}`)
}

// Virtual host limits and the node's connection limit refuse the next
// connection or queue, and a closed connection or deleted queue frees its
// slot.
func TestVhostAndNodeLimits(t *testing.T) {
	b := startBroker(t, "--max-connections", "3")
	b.ctlOK(t, "add_vhost", "vl")
	b.ctlOK(t, "set_permissions", "-p", "vl", "guest", ".*", ".*", ".*")
	b.ctlOK(t, "set_vhost_limits", "-p", "vl", `{"max-connections": 1, "max-queues": 2}`)

	first, err := amqpLogin(b, "guest", "guest", "vl")
	if err != nil {
		t.Fatal(err)
	}
	_, err = amqpLogin(b, "guest", "guest", "vl")
	expectCode(t, err, amqp091.NotAllowed, "NOT_ALLOWED - access to vhost 'vl' refused for user 'guest': connection limit (1) is reached")
	ch, err := first.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"vl-1", "vl-2"} {
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err = ch.QueueDeclare("vl-3", false, false, false, false, nil)
	expectCode(t, err, amqp091.PreconditionFailed, "PRECONDITION_FAILED - cannot declare queue 'vl-3': queue limit in vhost 'vl' (2) is reached")
	if ch, err = first.Channel(); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete("vl-1", false, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("vl-3", false, false, false, false, nil); err != nil {
		t.Fatalf("a queue in the slot a deleted one freed: %v", err)
	}
	first.Close()
	waitFor(t, 10*time.Second, func() error {
		c, err := amqpLogin(b, "guest", "guest", "vl")
		if err == nil {
			c.Close()
		}
		return err
	})

	// The node's limit (connection_max = 3): the fourth is refused.
	conns := []*amqp091.Connection{mustLogin(t, b, "guest", "guest", "/"), mustLogin(t, b, "guest", "guest", "/")}
	conns = append(conns, mustLogin(t, b, "guest", "guest", "/"))
	if c, err := amqpLogin(b, "guest", "guest", "/"); err == nil {
		c.Close()
		t.Fatal("a connection past connection_max was accepted")
	}
	conns[0].Close()
	waitFor(t, 10*time.Second, func() error {
		c, err := amqpLogin(b, "guest", "guest", "/")
		if err == nil {
			c.Close()
		}
		return err
	})
}
