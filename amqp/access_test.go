package amqp_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
	"github.com/warrenmq/warren/vhost"
)

// Each operation needs the access RabbitMQ's access-control table gives
// it, and a refusal is its 403 text, closing the channel.
func TestPermissions(t *testing.T) {
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, classic.NewKind(classic.Options{}))
	ts := startServer(t, kinds)
	url, users := ts.url, ts.users
	if err := users.PutUser(&auth.User{Name: "app", PasswordHash: auth.HashPassword("pw")}); err != nil {
		t.Fatal(err)
	}
	// configure: app-*; write: app-* and out; read: app-* and in.
	if err := users.SetPermission("/", "app", "^app-", "^(app-|out$)", "^(app-|in$)"); err != nil {
		t.Fatal(err)
	}
	if err := users.SetTopicPermission("/", "app", "app-topic", "^orders\\.", "^orders\\."); err != nil {
		t.Fatal(err)
	}
	// Objects the restricted user may not configure, made by guest.
	admin := dial(t, url)
	for _, x := range []string{"out", "in", "locked"} {
		if err := admin.ExchangeDeclare(x, "fanout", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"in", "locked"} {
		if _, err := admin.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.ExchangeDeclare("app-topic", "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	appURL := strings.Replace(url, "guest:guest", "app:pw", 1)
	refused := func(kind, name string) string {
		return "ACCESS_REFUSED - access to " + kind + " '" + name + "' in vhost '/' refused for user 'app'"
	}
	tests := []struct {
		name string
		op   func(ch *amqp091.Channel) error
		want string // "" when allowed
	}{
		{"declare own queue", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclare("app-q", false, false, false, false, nil)
			return err
		}, ""},
		{"declare foreign queue", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclare("other", false, false, false, false, nil)
			return err
		}, refused("queue", "other")},
		{"passive declare needs configure", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclarePassive("locked", false, false, false, false, nil)
			return err
		}, refused("queue", "locked")},
		{"server-named queue", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclare("", false, false, true, false, nil)
			return err
		}, "ACCESS_REFUSED - access to queue 'amq.gen-"},
		{"declare with a DLX it cannot write", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclare("app-dl", false, false, false, false, amqp091.Table{"x-dead-letter-exchange": "locked"})
			return err
		}, refused("exchange", "locked")},
		{"declare exchange", func(ch *amqp091.Channel) error {
			return ch.ExchangeDeclare("app-x", "direct", false, true, false, false, nil)
		}, ""},
		{"declare foreign exchange", func(ch *amqp091.Channel) error {
			return ch.ExchangeDeclare("x", "direct", false, true, false, false, nil)
		}, refused("exchange", "x")},
		{"delete foreign queue", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDelete("locked", false, false, false)
			return err
		}, refused("queue", "locked")},
		{"publish to a writable exchange", func(ch *amqp091.Channel) error {
			return publishRoundTrip(ch, "out", "")
		}, ""},
		{"publish to the default exchange", func(ch *amqp091.Channel) error {
			return publishRoundTrip(ch, "", "app-q")
		}, refused("exchange", "amq.default")},
		{"publish with a topic key outside the topic permission", func(ch *amqp091.Channel) error {
			return publishRoundTrip(ch, "app-topic", "invoices.new")
		}, "ACCESS_REFUSED - write access to topic 'invoices.new' in exchange 'app-topic' in vhost '/' refused for user 'app'"},
		{"bind from a readable exchange", func(ch *amqp091.Channel) error {
			return ch.QueueBind("app-q", "", "in", false, nil)
		}, ""},
		{"bind from an unreadable exchange", func(ch *amqp091.Channel) error {
			return ch.QueueBind("app-q", "", "out", false, nil)
		}, refused("exchange", "out")},
		{"bind to an unwritable queue", func(ch *amqp091.Channel) error {
			return ch.QueueBind("in", "", "in", false, nil)
		}, refused("queue", "in")},
		{"consume a readable queue", func(ch *amqp091.Channel) error {
			_, err := ch.Consume("in", "", true, false, false, false, nil)
			return err
		}, ""},
		{"consume an unreadable queue", func(ch *amqp091.Channel) error {
			_, err := ch.Consume("locked", "", true, false, false, false, nil)
			return err
		}, refused("queue", "locked")},
		{"get from an unreadable queue", func(ch *amqp091.Channel) error {
			_, _, err := ch.Get("locked", true)
			return err
		}, refused("queue", "locked")},
		{"purge an unreadable queue", func(ch *amqp091.Channel) error {
			_, err := ch.QueuePurge("locked", false)
			return err
		}, refused("queue", "locked")},
	}
	for _, tt := range tests {
		ch := dial(t, appURL)
		err := tt.op(ch)
		var ae *amqp091.Error
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tt.name, err)
		case tt.want != "" && (!errors.As(err, &ae) || ae.Code != 403 || !strings.HasPrefix(ae.Reason, tt.want)):
			t.Errorf("%s: got %v, want 403 %q", tt.name, err, tt.want)
		}
	}
}

// publishRoundTrip publishes and then makes a round trip on the channel;
// a refused publish closes the channel, and the error is the broker's
// channel.close (the round trip itself may fail first, with the client's
// "not open").
func publishRoundTrip(ch *amqp091.Channel, exchange, key string) error {
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Publish(exchange, key, false, false, amqp091.Publishing{}); err != nil {
		return err
	}
	if _, err := ch.QueueDeclarePassive("app-q", false, false, false, false, nil); err == nil {
		return nil
	}
	select {
	case e := <-closed:
		return e
	case <-time.After(10 * time.Second):
		return errors.New("round trip failed and the channel did not close")
	}
}

// dial opens a connection and a channel, closed when the test ends.
func dial(t *testing.T, url string) *amqp091.Channel {
	t.Helper()
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// Connections opening at the same time cannot both take a vhost's last
// place: exactly the limit gets in, the others get 530 with RabbitMQ's
// text.
func TestConnectionLimitUnderConcurrentOpens(t *testing.T) {
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, classic.NewKind(classic.Options{}))
	ts := startServer(t, kinds)
	url, vhosts := ts.url, ts.vhosts
	const limit, tries = 2, 12
	if err := vhosts.SetLimit("/", vhost.LimitConnections, limit); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, tries)
	var wg sync.WaitGroup
	for range tries {
		wg.Go(func() {
			conn, err := amqp091.Dial(url)
			if err == nil {
				t.Cleanup(func() { conn.Close() })
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	opened := 0
	for err := range errs {
		var ae *amqp091.Error
		switch {
		case err == nil:
			opened++
		case !errors.As(err, &ae) || ae.Code != 530 || !strings.HasSuffix(ae.Reason, "connection limit (2) is reached"):
			t.Errorf("refused with %v, want 530 and the limit's text", err)
		}
	}
	if opened != limit {
		t.Fatalf("%d connections opened, want %d", opened, limit)
	}
}
