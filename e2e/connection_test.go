package e2e

import (
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestClientsOpenAndClose100Channels(t *testing.T) {
	b := startBroker(t)
	t.Run("amqp091-go", func(t *testing.T) {
		conn, err := amqp091.Dial(b.URL())
		if err != nil {
			t.Fatal(err)
		}
		if p := conn.Properties["product"]; p != "Warren" {
			t.Errorf("product = %v", p)
		}
		var chs []*amqp091.Channel
		for range 100 {
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			chs = append(chs, ch)
		}
		for _, ch := range chs {
			if err := ch.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("pika", func(t *testing.T) {
		out := clientScript(t, b, time.Minute, "python/channels.py")
		if !strings.Contains(out, "100 channels opened and closed") {
			t.Fatalf("output: %s", out)
		}
	})
	t.Run("amqplib", func(t *testing.T) {
		out := clientScript(t, b, time.Minute, "node/channels.js")
		if !strings.Contains(out, "100 channels opened and closed") {
			t.Fatalf("output: %s", out)
		}
	})
}

func TestServerPropertiesAndTuning(t *testing.T) {
	b := startBroker(t)
	conn, err := amqp091.DialConfig(b.URL(), amqp091.Config{Heartbeat: 5 * time.Second, ChannelMax: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	caps, _ := conn.Properties["capabilities"].(amqp091.Table)
	for _, c := range []string{"publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
		"connection.blocked", "consumer_priorities", "authentication_failure_close", "per_consumer_qos", "direct_reply_to"} {
		if caps[c] != true {
			t.Errorf("capability %s = %v", c, caps[c])
		}
	}
	for _, p := range []string{"product", "version", "platform", "copyright", "information", "cluster_name"} {
		if _, ok := conn.Properties[p].(string); !ok {
			t.Errorf("server property %s missing", p)
		}
	}
	if conn.Config.FrameSize != 131072 || conn.Config.ChannelMax != 10 || conn.Config.Heartbeat != 5*time.Second {
		t.Errorf("negotiated frame_max %d channel_max %d heartbeat %v", conn.Config.FrameSize, conn.Config.ChannelMax, conn.Config.Heartbeat)
	}
}

func TestGracefulShutdownClosesWith320(t *testing.T) {
	b := startBroker(t)
	conn, err := amqp091.Dial(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	b.Stop()
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || !strings.HasPrefix(e.Reason, "CONNECTION_FORCED - ") {
			t.Fatalf("close = %+v, want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no connection.close after SIGTERM")
	}
}
