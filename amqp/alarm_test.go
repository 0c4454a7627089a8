package amqp_test

import (
	"context"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
)

// While an alarm is set, a publisher is told once (connection.blocked with
// the reason) and its publishes wait; a consumer goes on. When the alarm
// clears, the publisher is told (connection.unblocked) and what it sent
// goes through, in order.
func TestAlarmBlocksPublishers(t *testing.T) {
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, classic.NewKind(classic.Options{}))
	ts := startServer(t, kinds)

	pubConn, err := amqp091.Dial(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	blocked := pubConn.NotifyBlocked(make(chan amqp091.Blocking, 4))
	pub, err := pubConn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.QueueDeclare("q", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish := func(body string) {
		t.Helper()
		if err := pub.Publish("", "q", false, false, amqp091.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	publish("before")

	consConn, err := amqp091.Dial(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	defer consConn.Close()
	consBlocked := consConn.NotifyBlocked(make(chan amqp091.Blocking, 4))
	cons, err := consConn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Consume("q", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		select {
		case d := <-msgs:
			return string(d.Body)
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery within 10s")
			return ""
		}
	}
	if got := next(); got != "before" {
		t.Fatalf("got %q", got)
	}

	ts.srv.SetAlarm("low on memory")
	ts.srv.SetAlarm("low on disk") // a second alarm sends nothing more
	select {
	case b := <-blocked:
		if !b.Active || b.Reason != "low on memory" {
			t.Fatalf("publisher got %+v, want blocked with %q", b, "low on memory")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher was not sent connection.blocked")
	}
	publish("during") // the client writes it; the server does not read it
	states := func() map[string]int {
		n := map[string]int{}
		for _, c := range ts.srv.Connections() {
			n[c.State]++
		}
		return n
	}
	waitFor(t, func() bool { s := states(); return s["blocked"] == 1 && s["running"] == 1 })
	// The consumer's connection is not blocked: it can still declare and
	// get, and receives nothing from the held publish.
	if _, err := cons.QueueDeclare("q", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-msgs:
		t.Fatalf("delivered %q while the publisher was blocked", d.Body)
	case b := <-consBlocked:
		t.Fatalf("a connection that only consumes got %+v", b)
	default:
	}

	ts.srv.SetAlarm("")
	select {
	case b := <-blocked:
		if b.Active {
			t.Fatalf("publisher got %+v, want unblocked", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher was not sent connection.unblocked")
	}
	publish("after")
	waitFor(t, func() bool { return states()["running"] == 2 })
	if a, b := next(), next(); a != "during" || b != "after" {
		t.Fatalf("after the alarm: %q, %q", a, b)
	}
	select {
	case b := <-blocked:
		t.Fatalf("one more notification: %+v", b)
	default:
	}
}

// A connection held by an alarm is not read, its heartbeats included: they
// must not count as missed (RabbitMQ suspends the check too), so it
// outlives several heartbeat intervals and carries on when the alarm
// clears.
func TestBlockedConnectionOutlivesHeartbeats(t *testing.T) {
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, classic.NewKind(classic.Options{}))
	cfg := amqp.DefaultConfig()
	cfg.Heartbeat = time.Second
	ts := startServerWith(t, kinds, cfg)
	conn, err := amqp091.DialConfig(ts.url, amqp091.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("hb", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ts.srv.SetAlarm("low on memory")
	if err := ch.Publish("", "hb", false, false, amqp091.Publishing{Body: []byte("held")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(ts.srv.Connections()) == 1 && ts.srv.Connections()[0].State == "blocked" })
	// Three and a half heartbeat intervals: the server would close a
	// connection it reads nothing from after two.
	select {
	case e := <-closed:
		t.Fatalf("the blocked connection was closed: %v", e)
	case <-time.After(3500 * time.Millisecond):
	}
	ts.srv.SetAlarm("")
	q, err := ch.QueueDeclarePassive("hb", false, false, false, false, nil)
	if err != nil || q.Messages != 1 {
		t.Fatalf("after the alarm: %+v, %v", q, err)
	}
}

// A publisher held by an alarm can still be closed: by an operator (its
// client gets the 320 with the operator's reason) and by a shutdown,
// which finishes without waiting for its deadline.
func TestBlockedConnectionCloses(t *testing.T) {
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, classic.NewKind(classic.Options{}))
	cfg := amqp.DefaultConfig()
	cfg.Heartbeat = 0
	ts := startServerWith(t, kinds, cfg)
	ts.srv.SetAlarm("low on disk")
	held := func() (*amqp091.Connection, chan *amqp091.Error) {
		t.Helper()
		conn, err := amqp091.DialConfig(ts.url, amqp091.Config{Heartbeat: 0})
		if err != nil {
			t.Fatal(err)
		}
		// A client's close is not read while it is held.
		t.Cleanup(func() { _ = conn.CloseDeadline(time.Now().Add(time.Second)) })
		closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Publish("", "nowhere", false, false, amqp091.Publishing{Body: []byte("held")}); err != nil {
			t.Fatal(err)
		}
		return conn, closed
	}
	awaitClose := func(closed chan *amqp091.Error, text string) {
		t.Helper()
		select {
		case e := <-closed:
			if e == nil || e.Code != amqp091.ConnectionForced || e.Reason != text {
				t.Fatalf("closed with %v, want 320 %q", e, text)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the held connection was not closed within 10s")
		}
	}
	blockedCount := func() int {
		n := 0
		for _, c := range ts.srv.Connections() {
			if c.State == "blocked" {
				n++
			}
		}
		return n
	}

	_, closed1 := held()
	_, closed2 := held()
	waitFor(t, func() bool { return blockedCount() == 2 })
	name := ts.srv.Connections()[0].Name
	if !ts.srv.CloseConnection(name, "bye") {
		t.Fatal("no connection to close")
	}
	waitFor(t, func() bool { return len(ts.srv.Connections()) == 1 })
	select {
	case e := <-closed1:
		if e == nil || e.Reason != "CONNECTION_FORCED - bye" {
			t.Fatalf("closed with %v", e)
		}
		closed1 = closed2
	case e := <-closed2:
		if e == nil || e.Reason != "CONNECTION_FORCED - bye" {
			t.Fatalf("closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the operator's close did not reach the held client")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a held publisher: %v", err)
	}
	awaitClose(closed1, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
}
