package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The access scenarios' users: each is named after what it lacks, and its
// password is its name. acc-topic may do anything but is held to routing
// keys starting with its name on amq.topic.
var accessUsers = map[string][3]string{ // configure, write, read
	"acc-all":     {".*", ".*", ".*"},
	"acc-noconf":  {"", ".*", ".*"},
	"acc-nowrite": {".*", "", ".*"},
	"acc-noread":  {".*", ".*", ""},
	"acc-topic":   {".*", ".*", ".*"},
	"acc-novhost": {}, // no permissions on "/"
}

// refused is RabbitMQ's text for a refused access to a queue or exchange.
func refused(kind, name, user string) string {
	return fmt.Sprintf("403 ACCESS_REFUSED - access to %s '%s' in vhost '/' refused for user '%s'", kind, name, user)
}

// topicRefused is RabbitMQ's text for a refused routing key on a topic
// exchange.
func topicRefused(what, key, user string) string {
	return fmt.Sprintf("403 ACCESS_REFUSED - %s access to topic '%s' in exchange 'amq.topic' in vhost '/' refused for user '%s'", what, key, user)
}

// accessCases are the scenarios "USER/OPERATION" that both clients run
// (access.py knows the same operations), with the result each must give:
// OK, or the code and text of the channel or connection close.
var accessCases = []struct{ scenario, want string }{
	// configure
	{"acc-noconf/queue.declare", refused("queue", "acc-q", "acc-noconf")},
	{"acc-noconf/queue.declare-passive", refused("queue", "acc-q", "acc-noconf")},
	{"acc-noconf/exchange.declare", refused("exchange", "acc-x", "acc-noconf")},
	{"acc-noconf/queue.delete", refused("queue", "acc-q", "acc-noconf")},
	{"acc-noconf/exchange.delete", refused("exchange", "acc-x", "acc-noconf")},
	{"acc-noconf/basic.publish", "OK"},
	{"acc-noconf/basic.get", "OK"},
	// write
	{"acc-nowrite/basic.publish", refused("exchange", "acc-x", "acc-nowrite")},
	{"acc-nowrite/basic.publish-default", refused("exchange", "amq.default", "acc-nowrite")},
	{"acc-nowrite/queue.bind", refused("queue", "acc-q", "acc-nowrite")},
	{"acc-nowrite/queue.declare", "OK"},
	{"acc-nowrite/basic.consume", "OK"},
	// read
	{"acc-noread/queue.bind", refused("exchange", "acc-x", "acc-noread")},
	{"acc-noread/basic.consume", refused("queue", "acc-q", "acc-noread")},
	{"acc-noread/basic.get", refused("queue", "acc-q", "acc-noread")},
	{"acc-noread/queue.purge", refused("queue", "acc-q", "acc-noread")},
	{"acc-noread/basic.publish", "OK"},
	// the virtual host
	{"acc-novhost/connection.open", "530 NOT_ALLOWED - access to vhost '/' refused for user 'acc-novhost'"},
	// topic permissions, with {username} in the patterns
	{"acc-topic/topic.publish-other", topicRefused("write", "other.x", "acc-topic")},
	{"acc-topic/topic.publish-own", "OK"},
	{"acc-topic/topic.bind-other", topicRefused("read", "other.#", "acc-topic")},
	{"acc-topic/topic.bind-own", "OK"},
	{"acc-noread/topic.publish-other", "OK"}, // no topic permission: any key
	// everything allowed
	{"acc-all/connection.open", "OK"},
	{"acc-all/queue.declare", "OK"},
	{"acc-all/queue.declare-passive", "OK"},
	{"acc-all/exchange.declare", "OK"},
	{"acc-all/basic.publish", "OK"},
	{"acc-all/basic.publish-default", "OK"},
	{"acc-all/queue.bind", "OK"},
	{"acc-all/basic.consume", "OK"},
	{"acc-all/basic.get", "OK"},
	{"acc-all/queue.purge", "OK"},
	{"acc-all/queue.delete-own", "OK"},
}

// setUpAccess makes the users, their permissions and the objects the
// scenarios use, through the management API: exchange acc-x with acc-q
// bound to it, acc-tq bound to amq.topic, and for each client's
// queue.delete-own a queue acc-del-go, acc-del-py.
func setUpAccess(t *testing.T, b *broker) {
	t.Helper()
	put := func(path string, body any) {
		t.Helper()
		if status, resp := b.api(t, "PUT", path, body); status != 201 && status != 204 {
			t.Fatalf("PUT %s: %d %s", path, status, resp)
		}
	}
	for user, p := range accessUsers {
		put("/api/users/"+user, map[string]any{"password": user, "tags": ""})
		if p != [3]string{} {
			put("/api/permissions/%2F/"+user, map[string]string{"configure": p[0], "write": p[1], "read": p[2]})
		}
	}
	put("/api/topic-permissions/%2F/acc-topic", map[string]string{"exchange": "amq.topic", "write": `^{username}\.`, "read": `^{username}\.`})
	put("/api/exchanges/%2F/acc-x", map[string]any{"type": "direct"})
	for _, q := range []string{"acc-q", "acc-tq", "acc-del-go", "acc-del-py"} {
		put("/api/queues/%2F/"+q, map[string]any{})
	}
	for _, bnd := range [][2]string{{"acc-x", "acc-q"}, {"amq.topic", "acc-tq"}} {
		if status, resp := b.api(t, "POST", "/api/bindings/%2F/e/"+bnd[0]+"/q/"+bnd[1], map[string]any{"routing_key": "#"}); status != 201 {
			t.Fatalf("binding %s: %d %s", bnd[1], status, resp)
		}
	}
}

// accessOps are the scenarios' operations with amqp091-go, each on a
// fresh channel.
var accessOps = map[string]func(ch *amqp091.Channel) error{
	"queue.declare": func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare("acc-q", true, false, false, false, nil)
		return err
	},
	"queue.declare-passive": func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclarePassive("acc-q", true, false, false, false, nil)
		return err
	},
	"exchange.declare": func(ch *amqp091.Channel) error {
		return ch.ExchangeDeclare("acc-x", "direct", true, false, false, false, nil)
	},
	"queue.delete": func(ch *amqp091.Channel) error {
		_, err := ch.QueueDelete("acc-q", false, false, false)
		return err
	},
	"exchange.delete": func(ch *amqp091.Channel) error { return ch.ExchangeDelete("acc-x", false, false) },
	"queue.delete-own": func(ch *amqp091.Channel) error {
		_, err := ch.QueueDelete("acc-del-go", false, false, false)
		return err
	},
	"queue.bind": func(ch *amqp091.Channel) error { return ch.QueueBind("acc-q", "k", "acc-x", false, nil) },
	"queue.purge": func(ch *amqp091.Channel) error {
		_, err := ch.QueuePurge("acc-q", false)
		return err
	},
	"basic.consume": func(ch *amqp091.Channel) error {
		_, err := ch.Consume("acc-q", "acc-tag", false, false, false, false, nil)
		if err == nil {
			err = ch.Cancel("acc-tag", false)
		}
		return err
	},
	"basic.get": func(ch *amqp091.Channel) error {
		_, _, err := ch.Get("acc-q", false) // unacked: requeued when the channel closes
		return err
	},
	"basic.publish":         func(ch *amqp091.Channel) error { return confirmedPublish(ch, "acc-x", "k") },
	"basic.publish-default": func(ch *amqp091.Channel) error { return confirmedPublish(ch, "", "acc-q") },
	"topic.publish-other":   func(ch *amqp091.Channel) error { return confirmedPublish(ch, "amq.topic", "other.x") },
	"topic.publish-own":     func(ch *amqp091.Channel) error { return confirmedPublish(ch, "amq.topic", "acc-topic.x") },
	"topic.bind-other":      func(ch *amqp091.Channel) error { return ch.QueueBind("acc-tq", "other.#", "amq.topic", false, nil) },
	"topic.bind-own":        func(ch *amqp091.Channel) error { return ch.QueueBind("acc-tq", "acc-topic.#", "amq.topic", false, nil) },
	"connection.open":       func(*amqp091.Channel) error { return nil },
}

// confirmedPublish publishes in confirm mode and waits for the broker's
// answer: the ack, or the channel's close (a refused publish closes the
// channel asynchronously).
func confirmedPublish(ch *amqp091.Channel, exchange, key string) error {
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	if err := ch.Publish(exchange, key, false, false, amqp091.Publishing{Body: []byte("access")}); err != nil {
		return err
	}
	select {
	case e := <-closed:
		if e == nil {
			return errors.New("channel closed without an error")
		}
		return e
	case c, ok := <-confirms:
		if !ok {
			if e := <-closed; e != nil {
				return e
			}
			return errors.New("confirms ended without a close")
		}
		if !c.Ack {
			return errors.New("nacked")
		}
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("no confirm and no close within 10s")
	}
}

// outcome renders an operation's result as the scenarios expect it.
func outcome(err error) string {
	var e *amqp091.Error
	switch {
	case err == nil:
		return "OK"
	case errors.As(err, &e):
		return fmt.Sprintf("%d %s", e.Code, e.Reason)
	default:
		return "error " + err.Error()
	}
}

// runAccessGo runs one scenario with amqp091-go: a connection as the
// user, a fresh channel, the operation.
func runAccessGo(t *testing.T, b *broker, scenario string) string {
	user, op, _ := strings.Cut(scenario, "/")
	conn, err := amqpLogin(b, user, user, "/")
	if err != nil {
		return outcome(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return outcome(err)
	}
	run, ok := accessOps[op]
	if !ok {
		t.Fatalf("no operation %q", op)
	}
	return outcome(run(ch))
}

// TestAccessControl checks that each operation needs the permission
// RabbitMQ's access-control table gives it, with RabbitMQ's 403 (or, for
// the virtual host, 530) texts, using amqp091-go and pika.
func TestAccessControl(t *testing.T) {
	b := startBroker(t)
	setUpAccess(t, b)
	scenarios := make([]string, len(accessCases))
	for i, c := range accessCases {
		scenarios[i] = c.scenario
		if got := runAccessGo(t, b, c.scenario); got != c.want {
			t.Errorf("amqp091-go %s: %s, want %s", c.scenario, got, c.want)
		}
	}

	out := clientScript(t, b, 90*time.Second, "python/access.py", scenarios...)
	got := map[string]string{}
	for line := range strings.Lines(out) {
		if s, res, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ": "); ok {
			got[s] = res
		}
	}
	for _, c := range accessCases {
		if got[c.scenario] != c.want {
			t.Errorf("pika %s: %q, want %s", c.scenario, got[c.scenario], c.want)
		}
	}
	if t.Failed() {
		t.Logf("access.py printed:\n%s", out)
	}

	// What was refused changed nothing: acc-q and its binding are there,
	// and the queues the control case deleted are gone.
	for path, want := range map[string]int{
		"/api/queues/%2F/acc-q": 200, "/api/queues/%2F/acc-del-go": 404, "/api/queues/%2F/acc-del-py": 404,
		"/api/bindings/%2F/e/acc-x/q/acc-q/%23": 200,
	} {
		if s := b.statusOf(t, path); s != want {
			t.Errorf("GET %s: %d, want %d", path, s, want)
		}
	}
}

// TestAccessChangesAtRunTime changes a connected user's permissions through
// the API: Warren checks every operation against the permissions of the
// moment, also on channels opened before the change (publishes included:
// a channel's remembered check lapses when the permissions change).
// RabbitMQ instead caches successful checks per channel, so there an open
// channel may keep a revoked permission.
func TestAccessChangesAtRunTime(t *testing.T) {
	b := startBroker(t)
	setUpAccess(t, b)
	setPerm := func(configure, write, read string) {
		t.Helper()
		body := map[string]string{"configure": configure, "write": write, "read": read}
		if status, resp := b.api(t, "PUT", "/api/permissions/%2F/acc-all", body); status != 201 && status != 204 {
			t.Fatalf("PUT permissions: %d %s", status, resp)
		}
	}
	conn := mustLogin(t, b, "acc-all", "acc-all", "/")
	early := openChannel(t, conn) // opened before any change
	if err := confirmedPublish(early, "acc-x", "k"); err != nil {
		t.Fatal(err)
	}
	// try runs op on a new channel of conn.
	try := func(op string) string {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		return outcome(accessOps[op](ch))
	}

	setPerm(".*", "", ".*")
	closed := early.NotifyClose(make(chan *amqp091.Error, 1))
	if err := early.Publish("acc-x", "k", false, false, amqp091.Publishing{}); err != nil {
		t.Fatal(err) // the refusal comes as a close
	}
	expectClose(t, closed, amqp091.AccessRefused, strings.TrimPrefix(refused("exchange", "acc-x", "acc-all"), "403 "))
	if got, want := try("basic.publish"), refused("exchange", "acc-x", "acc-all"); got != want {
		t.Errorf("publish on a new channel after write was revoked: %s, want %s", got, want)
	}
	if got, want := try("queue.bind"), refused("queue", "acc-q", "acc-all"); got != want {
		t.Errorf("bind after write was revoked: %s, want %s", got, want)
	}
	if got := try("queue.declare"); got != "OK" {
		t.Errorf("declare with configure kept: %s", got)
	}

	setPerm(".*", ".*", ".*")
	if got := try("basic.publish"); got != "OK" {
		t.Errorf("publish after write was granted again: %s", got)
	}

	// Topic permissions too.
	if status, resp := b.api(t, "PUT", "/api/topic-permissions/%2F/acc-all", map[string]string{"exchange": "amq.topic", "write": "^allowed$", "read": ".*"}); status != 201 && status != 204 {
		t.Fatalf("PUT topic permissions: %d %s", status, resp)
	}
	if got, want := try("topic.publish-other"), topicRefused("write", "other.x", "acc-all"); got != want {
		t.Errorf("topic publish after a topic permission was set: %s, want %s", got, want)
	}

	// Without permissions the open connection stays, but refuses every
	// operation; a new connection is refused.
	if status, resp := b.api(t, "DELETE", "/api/permissions/%2F/acc-all", nil); status != 204 {
		t.Fatalf("DELETE permissions: %d %s", status, resp)
	}
	for _, op := range []string{"queue.declare", "basic.get"} {
		if got, want := try(op), refused("queue", "acc-q", "acc-all"); got != want {
			t.Errorf("%s without permissions: %s, want %s", op, got, want)
		}
	}
	_, err := amqpLogin(b, "acc-all", "acc-all", "/")
	expectCode(t, err, amqp091.NotAllowed, "NOT_ALLOWED - access to vhost '/' refused for user 'acc-all'")
	if conn.IsClosed() {
		t.Error("revoking permissions closed the connection")
	}
}
