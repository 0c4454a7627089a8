package main

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// This file is warren-perf's own small AMQP 0-9-1 client. It speaks just
// enough of the protocol for a load generator: the handshake (PLAIN, no
// heartbeats), one channel per connection, declares, publish with confirms,
// consume, get and ack. Frames are encoded straight into a bufio.Writer and
// read from a bufio.Reader into one reused buffer, so the hot paths allocate
// nothing. See README.md for why it exists instead of amqp091-go.

const (
	frameMethod    = 1
	frameHeader    = 2
	frameBody      = 3
	frameHeartbeat = 8
	frameEnd       = 0xCE

	// clientFrameMax is the largest frame size warren-perf asks for.
	clientFrameMax = 131072
	// minFrameMax is the smallest frame size AMQP allows a peer to insist on.
	minFrameMax = 4096
	ioBufSize   = 64 * 1024
)

// AMQP class and method ids, as class<<16 | method.
const (
	connectionStart     = 10<<16 | 10
	connectionStartOk   = 10<<16 | 11
	connectionTune      = 10<<16 | 30
	connectionTuneOk    = 10<<16 | 31
	connectionOpen      = 10<<16 | 40
	connectionOpenOk    = 10<<16 | 41
	connectionClose     = 10<<16 | 50
	connectionCloseOk   = 10<<16 | 51
	connectionBlocked   = 10<<16 | 60
	connectionUnblocked = 10<<16 | 61
	channelOpen         = 20<<16 | 10
	channelOpenOk       = 20<<16 | 11
	channelClose        = 20<<16 | 40
	channelCloseOk      = 20<<16 | 41
	exchangeDeclare     = 40<<16 | 10
	exchangeDeclareOk   = 40<<16 | 11
	queueDeclare        = 50<<16 | 10
	queueDeclareOk      = 50<<16 | 11
	queueBind           = 50<<16 | 20
	queueBindOk         = 50<<16 | 21
	basicQos            = 60<<16 | 10
	basicQosOk          = 60<<16 | 11
	basicConsume        = 60<<16 | 20
	basicConsumeOk      = 60<<16 | 21
	basicCancel         = 60<<16 | 30
	basicCancelOk       = 60<<16 | 31
	basicPublish        = 60<<16 | 40
	basicReturn         = 60<<16 | 50
	basicDeliver        = 60<<16 | 60
	basicGet            = 60<<16 | 70
	basicGetOk          = 60<<16 | 71
	basicGetEmpty       = 60<<16 | 72
	basicAck            = 60<<16 | 80
	basicNack           = 60<<16 | 120
	confirmSelect       = 85<<16 | 10
	confirmSelectOk     = 85<<16 | 11
)

// serverError is a channel.close or connection.close sent by the broker.
type serverError struct {
	Connection bool
	Code       uint16
	Text       string
	Method     uint32
}

func (e *serverError) Error() string {
	kind := "channel"
	if e.Connection {
		kind = "connection"
	}
	return fmt.Sprintf("%s closed by broker: %d %s (method %d.%d)", kind, e.Code, e.Text, e.Method>>16, e.Method&0xffff)
}

// errProtocol reports a frame the client did not expect.
var errProtocol = errors.New("amqp protocol error")

// client is one AMQP connection with one channel (number 1).
type client struct {
	nc       net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	wmu      sync.Mutex // held by writers that are not the connection's owner
	frameMax int
	hdr      [7]byte
	buf      []byte // payload of the last frame read
	args     []byte // scratch for encoding method arguments
}

// dial connects, authenticates and opens channel 1.
func dial(uri amqp.URI, name string) (*client, error) {
	if uri.Scheme != "amqp" && uri.Scheme != "amqps" {
		return nil, fmt.Errorf("scheme %q: warren-perf speaks amqp and amqps", uri.Scheme)
	}
	addr := net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if uri.Scheme == "amqps" {
		// As PerfTest does with an amqps URI, any server certificate is
		// trusted: warren-perf measures a broker, it does not vet it.
		nc = tls.Client(nc, &tls.Config{ServerName: uri.Host, InsecureSkipVerify: true}) //nolint:gosec // a load tool
	}
	c := &client{
		nc:       nc,
		r:        bufio.NewReaderSize(nc, ioBufSize),
		w:        bufio.NewWriterSize(nc, ioBufSize),
		frameMax: clientFrameMax,
		buf:      make([]byte, clientFrameMax+1),
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.handshake(uri, name); err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *client) handshake(uri amqp.URI, name string) error {
	if _, err := c.w.WriteString("AMQP\x00\x00\x09\x01"); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	if _, err := c.readMethod(0, connectionStart); err != nil {
		return err
	}
	props := map[string]any{
		"product":         "warren-perf",
		"connection_name": name,
		"capabilities": map[string]any{
			"authentication_failure_close": true,
			"publisher_confirms":           true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
		},
	}
	a := appendTable(c.args[:0], props)
	a = appendShortstr(a, "PLAIN")
	a = appendLongstr(a, "\x00"+uri.Username+"\x00"+uri.Password)
	a = appendShortstr(a, "en_US")
	c.args = a
	if err := c.writeMethod(0, connectionStartOk, a); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	tune, err := c.readMethod(0, connectionTune)
	if err != nil {
		return err
	}
	if len(tune) < 8 {
		return fmt.Errorf("%w: short connection.tune", errProtocol)
	}
	channelMax := binary.BigEndian.Uint16(tune)
	frameMax := int(binary.BigEndian.Uint32(tune[2:]))
	if frameMax == 0 || frameMax > clientFrameMax {
		frameMax = clientFrameMax
	}
	if frameMax < minFrameMax {
		return fmt.Errorf("%w: broker frame_max %d below %d", errProtocol, frameMax, minFrameMax)
	}
	c.frameMax = frameMax
	a = binary.BigEndian.AppendUint16(c.args[:0], channelMax)
	a = binary.BigEndian.AppendUint32(a, uint32(frameMax))
	a = binary.BigEndian.AppendUint16(a, 0) // no heartbeats: runs are short and both ends are busy
	if err := c.writeMethod(0, connectionTuneOk, a); err != nil {
		return err
	}
	a = appendShortstr(c.args[:0], uri.Vhost)
	a = appendShortstr(a, "")
	a = append(a, 0)
	if err := c.writeMethod(0, connectionOpen, a); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	if _, err := c.readMethod(0, connectionOpenOk); err != nil {
		return err
	}
	_, err = c.rpc(channelOpen, appendShortstr(c.args[:0], ""), channelOpenOk)
	return err
}

// readFrame reads one frame. The payload stays valid until the next call.
func (c *client) readFrame() (typ byte, ch uint16, payload []byte, err error) {
	if _, err = io.ReadFull(c.r, c.hdr[:]); err != nil {
		return 0, 0, nil, err
	}
	size := int(binary.BigEndian.Uint32(c.hdr[3:]))
	if size > c.frameMax {
		return 0, 0, nil, fmt.Errorf("%w: frame of %d bytes exceeds frame_max %d", errProtocol, size, c.frameMax)
	}
	if _, err = io.ReadFull(c.r, c.buf[:size+1]); err != nil {
		return 0, 0, nil, err
	}
	if c.buf[size] != frameEnd {
		return 0, 0, nil, fmt.Errorf("%w: bad frame end 0x%02x", errProtocol, c.buf[size])
	}
	return c.hdr[0], binary.BigEndian.Uint16(c.hdr[1:]), c.buf[:size], nil
}

// readMethod reads frames until a method frame arrives and checks that it is
// want. A broker close becomes a *serverError (after answering it).
func (c *client) readMethod(ch uint16, want uint32) ([]byte, error) {
	for {
		typ, fch, p, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		if typ == frameHeartbeat {
			continue
		}
		if typ != frameMethod || len(p) < 4 {
			return nil, fmt.Errorf("%w: frame type %d while waiting for method %d.%d", errProtocol, typ, want>>16, want&0xffff)
		}
		id := binary.BigEndian.Uint32(p)
		if err := c.closeError(fch, id, p[4:]); err != nil {
			return nil, err
		}
		if id != want || fch != ch {
			return nil, fmt.Errorf("%w: got method %d.%d on channel %d, want %d.%d", errProtocol, id>>16, id&0xffff, fch, want>>16, want&0xffff)
		}
		return p[4:], nil
	}
}

// closeError answers a broker's channel.close or connection.close and returns
// it as an error; other methods give nil.
func (c *client) closeError(ch uint16, id uint32, args []byte) error {
	if id != channelClose && id != connectionClose {
		return nil
	}
	e := &serverError{Connection: id == connectionClose}
	if len(args) >= 2 {
		e.Code = binary.BigEndian.Uint16(args)
		text, rest := readShortstr(args[2:])
		e.Text = text
		if len(rest) >= 4 {
			e.Method = binary.BigEndian.Uint32(rest)
		}
	}
	reply := uint32(channelCloseOk)
	if e.Connection {
		reply = connectionCloseOk
	}
	c.wmu.Lock()
	if c.writeMethod(ch, reply, nil) == nil {
		_ = c.w.Flush()
	}
	c.wmu.Unlock()
	return e
}

// writeMethod encodes a method frame into the write buffer.
func (c *client) writeMethod(ch uint16, id uint32, args []byte) error {
	var h [11]byte
	h[0] = frameMethod
	binary.BigEndian.PutUint16(h[1:], ch)
	binary.BigEndian.PutUint32(h[3:], uint32(4+len(args)))
	binary.BigEndian.PutUint32(h[7:], id)
	if _, err := c.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := c.w.Write(args); err != nil {
		return err
	}
	return c.w.WriteByte(frameEnd)
}

// rpc sends a synchronous method on channel 1 and waits for its reply.
// Only for setup, before the connection's loops start.
func (c *client) rpc(id uint32, args []byte, want uint32) ([]byte, error) {
	if err := c.writeMethod(1, id, args); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	return c.readMethod(1, want)
}

func (c *client) declareExchange(name, kind string, durable, autoDelete bool) error {
	a := binary.BigEndian.AppendUint16(c.args[:0], 0)
	a = appendShortstr(a, name)
	a = appendShortstr(a, kind)
	a = append(a, bitsOf(false, durable, autoDelete, false, false))
	a = appendTable(a, nil)
	c.args = a
	_, err := c.rpc(exchangeDeclare, a, exchangeDeclareOk)
	if err != nil {
		return fmt.Errorf("declare exchange %q: %w", name, err)
	}
	return nil
}

// declareQueue declares a queue and returns its name (server-named if name is "").
func (c *client) declareQueue(name string, durable, exclusive, autoDelete bool, args map[string]any) (string, error) {
	a := binary.BigEndian.AppendUint16(c.args[:0], 0)
	a = appendShortstr(a, name)
	a = append(a, bitsOf(false, durable, exclusive, autoDelete, false))
	a = appendTable(a, args)
	c.args = a
	p, err := c.rpc(queueDeclare, a, queueDeclareOk)
	if err != nil {
		return "", fmt.Errorf("declare queue %q: %w", name, err)
	}
	got, _ := readShortstr(p)
	return got, nil
}

func (c *client) bindQueue(queue, exchange, key string) error {
	a := binary.BigEndian.AppendUint16(c.args[:0], 0)
	a = appendShortstr(a, queue)
	a = appendShortstr(a, exchange)
	a = appendShortstr(a, key)
	a = append(a, 0)
	a = appendTable(a, nil)
	c.args = a
	if _, err := c.rpc(queueBind, a, queueBindOk); err != nil {
		return fmt.Errorf("bind queue %q to %q with %q: %w", queue, exchange, key, err)
	}
	return nil
}

func (c *client) qos(prefetch int) error {
	a := binary.BigEndian.AppendUint32(c.args[:0], 0)
	a = binary.BigEndian.AppendUint16(a, uint16(prefetch))
	a = append(a, 0)
	c.args = a
	_, err := c.rpc(basicQos, a, basicQosOk)
	return err
}

func (c *client) confirmSelect() error {
	_, err := c.rpc(confirmSelect, []byte{0}, confirmSelectOk)
	return err
}

// consume starts a consumer and returns its tag.
func (c *client) consume(queue string, noAck bool) (string, error) {
	a := binary.BigEndian.AppendUint16(c.args[:0], 0)
	a = appendShortstr(a, queue)
	a = appendShortstr(a, "")
	a = append(a, bitsOf(false, noAck, false, false))
	a = appendTable(a, nil)
	c.args = a
	p, err := c.rpc(basicConsume, a, basicConsumeOk)
	if err != nil {
		return "", fmt.Errorf("consume from %q: %w", queue, err)
	}
	tag, _ := readShortstr(p)
	return tag, nil
}

// appendAck appends a basic.ack frame on channel 1.
func appendAck(b []byte, tag uint64, multiple bool) []byte {
	b = append(b, frameMethod, 0, 1, 0, 0, 0, 13, 0, 60, 0, 80)
	b = binary.BigEndian.AppendUint64(b, tag)
	return append(b, bitsOf(multiple), frameEnd)
}

// close sends connection.close and waits for close-ok, reading and
// discarding anything else (the caller has stopped its own loop).
func (c *client) close() error {
	a := binary.BigEndian.AppendUint16(nil, 200)
	a = appendShortstr(a, "bye")
	a = append(a, 0, 0, 0, 0)
	c.wmu.Lock()
	err := c.writeMethod(0, connectionClose, a)
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err == nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			typ, _, p, rerr := c.readFrame()
			if rerr != nil {
				err = rerr
				break
			}
			if typ == frameMethod && len(p) >= 4 {
				id := binary.BigEndian.Uint32(p)
				if id == connectionCloseOk || id == connectionClose {
					break
				}
			}
		}
	}
	c.nc.Close()
	return err
}

func bitsOf(bs ...bool) byte {
	var b byte
	for i, v := range bs {
		if v {
			b |= 1 << i
		}
	}
	return b
}

func appendShortstr(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendLongstr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendTable encodes a field table with keys in sorted order. It knows the
// value types warren-perf uses: strings, integers, booleans and tables.
func appendTable(b []byte, t map[string]any) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendShortstr(b, k)
		switch v := t[k].(type) {
		case string:
			b = append(b, 'S')
			b = appendLongstr(b, v)
		case int:
			b = append(b, 'l')
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		case int64:
			b = append(b, 'l')
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		case bool:
			b = append(b, 't', bitsOf(v))
		case map[string]any:
			b = append(b, 'F')
			b = appendTable(b, v)
		default:
			b = append(b, 'S')
			b = appendLongstr(b, fmt.Sprint(v))
		}
	}
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

func readShortstr(b []byte) (string, []byte) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:]
}

// skipShortstr is readShortstr without the allocation.
func skipShortstr(b []byte) []byte {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil
	}
	return b[1+int(b[0]):]
}
