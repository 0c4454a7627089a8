package e2e

import (
	"bytes"
	"io"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqp/wire"
)

// stillServes checks that a well-behaved client can still connect and open
// a channel: one client's error must not hurt others.
func stillServes(t *testing.T, b *broker) {
	t.Helper()
	conn, err := amqp091.Dial(b.URL())
	if err != nil {
		t.Fatalf("broker stopped serving: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("broker stopped serving channels: %v", err)
	}
	ch.Close()
}

func TestProtocolErrors(t *testing.T) {
	b := startBroker(t, "--channel-max", "10")
	tests := []struct {
		name string
		run  func(t *testing.T, c *rawClient)
	}{
		{"wrong protocol header", func(t *testing.T, c *rawClient) {
			c.write([]byte("AMQP\x00\x00\x09\x00"))
			got := make([]byte, 8)
			if _, err := io.ReadFull(c.nc, got); err != nil {
				t.Fatal(err)
			}
			if string(got) != wire.ProtocolHeader {
				t.Fatalf("got %q, want %q", got, wire.ProtocolHeader)
			}
			c.expectEOF()
		}},
		{"HTTP instead of AMQP", func(t *testing.T, c *rawClient) {
			c.write([]byte("GET / HTTP/1.1\r\n\r\n"))
			got := make([]byte, 8)
			if _, err := io.ReadFull(c.nc, got); err != nil || string(got) != wire.ProtocolHeader {
				t.Fatalf("got %q %v", got, err)
			}
		}},
		{"frame over frame_max", func(t *testing.T, c *rawClient) {
			c.open()
			big := bytes.Repeat([]byte{'x'}, 200000)
			// The server stops reading at the oversized header, so the
			// write may fail; what matters is the close that comes back.
			go c.nc.Write(wire.AppendBodyFrames(nil, 1, big, 300000))
			c.expectConnectionClose(wire.FrameError, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,200000,131064}")
		}},
		{"bad frame end octet", func(t *testing.T, c *rawClient) {
			c.open()
			c.write([]byte{wire.FrameHeartbeat, 0, 0, 0, 0, 0, 0, 205})
			c.expectConnectionClose(wire.FrameError, "FRAME_ERROR - type 8, all octets = <<>>: {invalid_frame_end_marker,205}")
		}},
		{"method on unopened channel", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(5, &wire.BasicQos{PrefetchCount: 1})
			c.expectConnectionClose(wire.ChannelError, "CHANNEL_ERROR - expected 'channel.open'")
		}},
		{"content header without a method", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			props, _ := (&wire.Properties{}).Append(nil)
			c.write(wire.AppendHeaderFrame(nil, 1, wire.ClassBasic, 3, props))
			c.expectConnectionClose(wire.UnexpectedFrame, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")
		}},
		{"content body without a method", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			c.write(wire.AppendBodyFrames(nil, 1, []byte("abc"), 131072))
			c.expectConnectionClose(wire.UnexpectedFrame, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")
		}},
		{"every channel up to channel_max, then one more", func(t *testing.T, c *rawClient) {
			c.open()
			for id := uint16(1); id <= 10; id++ {
				c.send(id, &wire.ChannelOpen{})
				c.expectMethod(id, wire.MethodChannelOpenOk)
			}
			c.send(11, &wire.ChannelOpen{})
			c.expectConnectionClose(wire.NotAllowed, "NOT_ALLOWED - channel number 11 is above the negotiated channel_max (10)")
		}},
		{"content frame above channel_max", func(t *testing.T, c *rawClient) {
			c.open()
			c.write(wire.AppendBodyFrames(nil, 11, []byte("abc"), 131072))
			c.expectConnectionClose(wire.NotAllowed, "NOT_ALLOWED - channel number 11 is above the negotiated channel_max (10)")
		}},
		{"channel.open on a channel the broker is closing", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			c.send(1, &wire.QueueDeclare{Queue: "no-such-queue", Passive: true})
			c.expectMethod(1, wire.MethodChannelClose)
			c.send(1, &wire.ChannelOpen{}) // before close-ok
			c.expectConnectionClose(wire.ChannelError, "CHANNEL_ERROR - second 'channel.open' seen")
		}},
		{"close-ok for a channel never opened", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(3, &wire.ChannelCloseOk{})
			c.expectConnectionClose(wire.ChannelError, "CHANNEL_ERROR - expected 'channel.open'")
		}},
		{"second channel.open", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			c.send(1, &wire.ChannelOpen{})
			c.expectConnectionClose(wire.ChannelError, "CHANNEL_ERROR - second 'channel.open' seen")
		}},
		{"unknown vhost", func(t *testing.T, c *rawClient) {
			o := defaultHandshake()
			o.vhost = "nope"
			c.handshake(o)
			c.expectConnectionClose(wire.NotAllowed, "NOT_ALLOWED - vhost nope not found")
		}},
		{"wrong password with authentication_failure_close", func(t *testing.T, c *rawClient) {
			o := defaultHandshake()
			o.pass, o.authFailureClose = "wrong", true
			c.write([]byte(wire.ProtocolHeader))
			c.expectMethod(0, wire.MethodConnectionStart)
			c.send(0, &wire.ConnectionStartOk{ClientProperties: wire.Table{"capabilities": wire.Table{"authentication_failure_close": true}},
				Mechanism: "PLAIN", Response: "\x00guest\x00wrong", Locale: "en_US"})
			c.expectConnectionClose(wire.AccessRefused,
				"ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.")
		}},
		{"wrong password without the capability", func(t *testing.T, c *rawClient) {
			c.write([]byte(wire.ProtocolHeader))
			c.expectMethod(0, wire.MethodConnectionStart)
			c.send(0, &wire.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00wrong", Locale: "en_US"})
			c.expectEOF()
		}},
		{"channel.flow active=false", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			c.send(1, &wire.ChannelFlow{Active: false})
			c.expectConnectionClose(wire.NotImplemented, "NOT_IMPLEMENTED - active=false")
		}},
		{"channel.flow active=true", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			c.send(1, &wire.ChannelFlow{Active: true})
			if m := c.expectMethod(1, wire.MethodChannelFlowOk).(*wire.ChannelFlowOk); !m.Active {
				t.Fatal("flow-ok active=false")
			}
		}},
		{"truncated method", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			c.write([]byte{wire.FrameMethod, 0, 1, 0, 0, 0, 6, 0, 60, 0, 40, 0, 0, wire.FrameEnd})
			m := c.expectMethod(0, wire.MethodConnectionClose).(*wire.ConnectionClose)
			if m.ReplyCode != wire.FrameError || m.ReplyText != "FRAME_ERROR - cannot decode <<0,0>>" || m.ClassID != 60 || m.MethodID != 40 {
				t.Fatalf("close %+v", m)
			}
		}},
		{"unknown frame type", func(t *testing.T, c *rawClient) {
			c.open()
			c.write([]byte{9, 0, 0, 0, 0, 0, 2, 'a', 'b', wire.FrameEnd})
			c.expectConnectionClose(wire.FrameError, "FRAME_ERROR - type 9, all octets = <<\"ab\">>: unknown_frame")
		}},
		{"unknown method", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			f := []byte{wire.FrameMethod, 0, 1, 0, 0, 0, 4, 0, 60, 3, 231, wire.FrameEnd}
			c.write(f)
			c.expectConnectionClose(wire.CommandInvalid, "")
		}},
		{"update-secret", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(0, &wire.ConnectionUpdateSecret{NewSecret: "guest", Reason: "refresh"})
			c.expectMethod(0, wire.MethodConnectionUpdateSecretOk)
		}},
		{"close handshake from client", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(0, &wire.ConnectionClose{ReplyCode: 200, ReplyText: "bye"})
			c.expectMethod(0, wire.MethodConnectionCloseOk)
			c.expectEOF()
		}},
		{"channel close handshake both ways", func(t *testing.T, c *rawClient) {
			c.open()
			c.send(1, &wire.ChannelOpen{})
			c.expectMethod(1, wire.MethodChannelOpenOk)
			c.send(1, &wire.ChannelClose{ReplyCode: 200, ReplyText: "done"})
			c.expectMethod(1, wire.MethodChannelCloseOk)
			c.send(1, &wire.ChannelOpen{}) // the number is free again
			c.expectMethod(1, wire.MethodChannelOpenOk)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, dialRaw(t, b))
			stillServes(t, b)
		})
	}
}

func TestMissedHeartbeatsCloseTheConnection(t *testing.T) {
	b := startBroker(t)
	c := dialRaw(t, b)
	o := defaultHandshake()
	o.heartbeat = 1
	c.handshake(o)
	c.expectMethod(0, wire.MethodConnectionOpenOk)
	start := time.Now()
	heartbeats := 0
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			break
		}
		if f.Type != wire.FrameHeartbeat {
			t.Fatalf("unexpected frame type %d", f.Type)
		}
		heartbeats++
	}
	elapsed := time.Since(start)
	if heartbeats == 0 {
		t.Error("the server sent no heartbeats to a silent client")
	}
	// Two missed intervals close it; allow generous scheduling slack.
	if elapsed < 1500*time.Millisecond || elapsed > 15*time.Second {
		t.Errorf("closed after %v, want about two heartbeat intervals (2s)", elapsed)
	}
	stillServes(t, b)
}

func TestHeartbeatsKeepAnIdleClientConnected(t *testing.T) {
	b := startBroker(t)
	conn, err := amqp091.DialConfig(b.URL(), amqp091.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	select {
	case e := <-closed:
		t.Fatalf("an idle client that sends heartbeats was disconnected: %v", e)
	case <-time.After(4 * time.Second):
	}
}
