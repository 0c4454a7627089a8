package e2e

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
)

// rawClient speaks AMQP frame by frame, for the error paths real clients
// never take.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	fr *wire.FrameReader
}

func dialRaw(t testing.TB, b *broker) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawClient{t: t, nc: nc, fr: wire.NewFrameReader(nc, 64*1024, 1<<20)}
}

// handshakeOpts are what the raw client negotiates.
type handshakeOpts struct {
	user, pass, vhost string
	channelMax        uint16
	heartbeat         uint16
	authFailureClose  bool
}

func defaultHandshake() handshakeOpts {
	return handshakeOpts{user: "guest", pass: "guest", vhost: "/", channelMax: 2047}
}

// handshake runs the protocol up to connection.open, which it sends; the
// caller reads the answer (open-ok or close).
func (c *rawClient) handshake(o handshakeOpts) {
	c.t.Helper()
	c.write([]byte(wire.ProtocolHeader))
	c.expectMethod(0, wire.MethodConnectionStart)
	caps := wire.Table{"authentication_failure_close": o.authFailureClose}
	c.send(0, &wire.ConnectionStartOk{ClientProperties: wire.Table{"capabilities": caps}, Mechanism: "PLAIN",
		Response: "\x00" + o.user + "\x00" + o.pass, Locale: "en_US"})
	m := c.readMethod()
	if _, ok := m.(*wire.ConnectionTune); !ok {
		c.t.Fatalf("after start-ok got %T %+v, want connection.tune", m, m)
	}
	c.send(0, &wire.ConnectionTuneOk{ChannelMax: o.channelMax, FrameMax: 131072, Heartbeat: o.heartbeat})
	c.send(0, &wire.ConnectionOpen{VirtualHost: o.vhost})
}

// open runs the whole handshake and expects open-ok.
func (c *rawClient) open() {
	c.t.Helper()
	c.handshake(defaultHandshake())
	c.expectMethod(0, wire.MethodConnectionOpenOk)
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) send(ch uint16, m wire.Method) {
	c.t.Helper()
	b, err := wire.AppendMethodFrame(nil, ch, m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
}

// readFrame returns the next non-heartbeat frame.
func (c *rawClient) readFrame() wire.Frame {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("reading a frame: %v", err)
		}
		if f.Type != wire.FrameHeartbeat {
			return f
		}
	}
}

func (c *rawClient) readMethod() wire.Method {
	c.t.Helper()
	f := c.readFrame()
	if f.Type != wire.FrameMethod {
		c.t.Fatalf("got frame type %d, want a method", f.Type)
	}
	m, err := wire.DecodeMethod(f.Payload)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *rawClient) expectMethod(ch uint16, k wire.MethodKey) wire.Method {
	c.t.Helper()
	f := c.readFrame()
	m, err := wire.DecodeMethod(f.Payload)
	if err != nil || f.Channel != ch || m.Key() != k {
		c.t.Fatalf("got %+v on channel %d (err %v), want %v on channel %d", m, f.Channel, err, k, ch)
	}
	return m
}

// expectConnectionClose reads a connection.close, checks its code and text,
// answers close-ok and checks the server then closes the socket.
func (c *rawClient) expectConnectionClose(code uint16, text string) {
	c.t.Helper()
	m := c.expectMethod(0, wire.MethodConnectionClose).(*wire.ConnectionClose)
	if m.ReplyCode != code || (text != "" && m.ReplyText != text) {
		c.t.Fatalf("connection.close %d %q, want %d %q", m.ReplyCode, m.ReplyText, code, text)
	}
	c.send(0, &wire.ConnectionCloseOk{})
	c.expectEOF()
}

// expectEOF checks that the server closes the socket (heartbeats aside).
func (c *rawClient) expectEOF() {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err == nil && f.Type == wire.FrameHeartbeat {
			continue
		}
		if err == nil {
			c.t.Fatalf("got frame type %d, want the socket closed", f.Type)
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
			c.t.Fatalf("got %v, want the socket closed", err)
		}
		return
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
