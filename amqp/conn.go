package amqp

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/tlsconf"
	"github.com/warrenmq/warren/vhost"
)

// conn is one client connection. Fields without a comment on their guard
// belong to the reader goroutine.
type conn struct {
	srv  *Server
	nc   net.Conn
	fr   *wire.FrameReader
	log  *slog.Logger
	id   uint64
	name string // RabbitMQ's: "peer -> local"

	// handshakeDone describes the connection once it is open, for other
	// goroutines (the fields below are fixed by then).
	handshakeDone atomic.Pointer[handshakeInfo]

	// Negotiated in the handshake; fixed afterwards.
	frameMax   uint32
	channelMax uint16
	heartbeat  time.Duration
	user       *auth.User
	vhost      *vhost.VHost
	caps       clientCaps

	channels    map[uint16]*channel
	lastCh      *channel                   // the channel of the last frame: most frames are on the same one
	channelList atomic.Pointer[[]*channel] // the open channels, for the deadline check
	dueConfirms []*channel                 // channels with confirms to send when the read batch ends

	out        outbound
	done       chan struct{}   // closed when the reader ends; stops the writer
	writerDone chan struct{}   // closed when the writer ends
	wg         sync.WaitGroup  // the writer
	closeSent  atomic.Bool     // connection.close sent by the server
	closing    chan struct{}   // closed when closeSent is set
	batch      tlsconf.Batcher // under TLS: holds the writer's records until it flushes
	framesRead atomic.Uint64   // for heartbeat monitoring
	paused     atomic.Bool     // the reader is held back on purpose: no heartbeat check
	bytesOut   atomic.Uint64
	bytesIn    atomic.Uint64 // counted a frame at a time

	// published is set by the connection's first basic.publish: alarms
	// block publishers only. blockedSent (under out.mu) is set while the
	// client has been sent connection.blocked and not yet
	// connection.unblocked; flow is its flowRunning, flowBlocking,
	// flowBlocked or flowCredit state.
	published   atomic.Bool
	blockedSent bool
	flow        atomic.Int32
}

// clientCaps are the capabilities a client advertised in start-ok.
type clientCaps struct {
	consumerCancelNotify       bool
	connectionBlocked          bool
	authenticationFailureClose bool
	publisherConfirms          bool
	basicNack                  bool
}

func newConn(s *Server, nc net.Conn) *conn {
	id := s.nextID.Add(1)
	c := &conn{
		srv:      s,
		nc:       nc,
		id:       id,
		name:     connectionName(nc),
		frameMax: preTuneFrameMax,
		channels: map[uint16]*channel{},
		done:     make(chan struct{}),
	}
	c.out.wake = make(chan struct{}, 1)
	c.out.drained = make(chan struct{}, 1)
	c.writerDone = make(chan struct{})
	c.closing = make(chan struct{})
	c.fr = wire.NewFrameReader(nc, readBufferSize, preTuneFrameMax)
	c.log = s.log.With("conn", id, "peer", nc.RemoteAddr().String())
	return c
}

// errClosedByPeer ends the reader after a client's connection.close.
var errClosedByPeer = errors.New("connection closed by client")

// serve runs the connection: handshake, then frames until it closes.
func (c *conn) serve() {
	defer c.nc.Close()
	c.log.Debug("accepted connection")
	if err := c.handshake(); err != nil {
		c.logClose(err)
		return
	}
	c.log.Info("connection open", "user", c.user.Name, "vhost", c.vhost.Name())
	c.wg.Add(1)
	go c.writeLoop()
	err := c.readLoop()
	c.logClose(err)
	c.closeChannels()
	c.vhost.DeleteExclusive(c.id)
	close(c.done)
	c.wg.Wait()
}

func (c *conn) logClose(err error) {
	var we *wire.Error
	switch {
	case err == nil || errors.Is(err, errClosedByPeer):
		c.log.Info("connection closed by client")
	case errors.As(err, &we):
		c.log.Warn("connection closed with error", "code", we.Code, "text", we.Text)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		c.log.Info("client closed the socket without connection.close")
	default:
		c.log.Info("connection closed", "err", err)
	}
}

// writeNow writes a method frame straight to the socket, for the handshake
// (before the writer runs).
func (c *conn) writeNow(ch uint16, m wire.Method) error {
	b, err := wire.AppendMethodFrame(nil, ch, m)
	if err != nil {
		return err
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout))
	if _, err = c.nc.Write(b); err != nil {
		return err
	}
	return c.flush()
}

// flush sends what a TLS connection holds back (nothing to do otherwise).
func (c *conn) flush() error {
	if c.batch == nil {
		return nil
	}
	return c.batch.Flush()
}

// readMethod reads the next frame of the handshake, which must be the method
// want on channel 0. Heartbeats are skipped.
func (c *conn) readMethod(want wire.MethodKey, m wire.Method) error {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		if f.Type == wire.FrameHeartbeat {
			continue
		}
		if f.Type != wire.FrameMethod || f.Channel != 0 {
			return wire.Errorf(wire.CommandInvalid, "expected '"+want.String()+"'")
		}
		k, args, err := wire.ReadMethodKey(f.Payload)
		if err != nil {
			return err
		}
		if k == wire.MethodConnectionClose {
			return errClosedByPeer
		}
		if k != want {
			return wire.Errorf(wire.CommandInvalid, "expected '"+want.String()+"', got '"+k.String()+"'")
		}
		return m.Decode(args)
	}
}

// handshake runs the protocol header, start, tune and open exchanges.
func (c *conn) handshake() error {
	cfg := &c.srv.cfg
	_ = c.nc.SetReadDeadline(time.Now().Add(cfg.HandshakeTimeout))
	if tc, ok := c.nc.(*tls.Conn); ok {
		// The TLS handshake first; then the writer's batches go out one
		// write each.
		_ = tc.SetWriteDeadline(time.Now().Add(cfg.HandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			return err
		}
		if b, ok := tc.NetConn().(tlsconf.Batcher); ok {
			c.batch = b
		}
	}
	var hdr [8]byte
	if err := c.fr.ReadFull(hdr[:]); err != nil {
		return err
	}
	if string(hdr[:]) != wire.ProtocolHeader {
		_ = c.nc.SetWriteDeadline(time.Now().Add(cfg.HandshakeTimeout))
		_, _ = io.WriteString(c.nc, wire.ProtocolHeader)
		_ = c.flush()
		return errors.New("bad protocol header " + strconv.Quote(string(hdr[:])))
	}
	offered, certUser := c.mechanisms()
	if err := c.writeNow(0, &wire.ConnectionStart{
		VersionMajor:     0,
		VersionMinor:     9,
		ServerProperties: c.srv.serverProperties(),
		Mechanisms:       strings.Join(offered, " "),
		Locales:          "en_US",
	}); err != nil {
		return err
	}

	var startOk wire.ConnectionStartOk
	if err := c.readMethod(wire.MethodConnectionStartOk, &startOk); err != nil {
		return c.handshakeFail(err)
	}
	c.caps = parseCaps(startOk.ClientProperties)
	user, err := c.login(offered, certUser, startOk.Mechanism, []byte(startOk.Response))
	if err == nil {
		c.srv.totals.authSucceeded.Add(1)
	} else {
		c.srv.totals.authFailed.Add(1)
	}
	if err != nil {
		c.log.Warn("login refused", "user", user, "mechanism", startOk.Mechanism, "err", err)
		refusal := wire.Errorf(wire.AccessRefused, "Login was refused using authentication mechanism "+
			startOk.Mechanism+". For details see the broker logfile.")
		if !c.caps.authenticationFailureClose {
			return refusal // closed without a word, as the spec asks of a server
		}
		return c.handshakeFail(refusal)
	}

	if err := c.writeNow(0, &wire.ConnectionTune{
		ChannelMax: cfg.ChannelMax,
		FrameMax:   cfg.FrameMax,
		Heartbeat:  uint16(cfg.Heartbeat / time.Second),
	}); err != nil {
		return err
	}
	var tuneOk wire.ConnectionTuneOk
	if err := c.readMethod(wire.MethodConnectionTuneOk, &tuneOk); err != nil {
		return c.handshakeFail(err)
	}
	if err := c.applyTune(&tuneOk); err != nil {
		return c.handshakeFail(err)
	}

	var open wire.ConnectionOpen
	if err := c.readMethod(wire.MethodConnectionOpen, &open); err != nil {
		return c.handshakeFail(err)
	}
	// The handshake's reading is done. This is cleared now, not after
	// open-ok: once the connection is in its vhost, a close from the
	// server (the vhost deleted) sets the deadline for its close-ok.
	_ = c.nc.SetReadDeadline(time.Time{})
	vh := c.srv.vhosts.Get(open.VirtualHost)
	if vh == nil {
		return c.handshakeFail(wire.Errorf(wire.NotAllowed, "vhost "+open.VirtualHost+" not found"))
	}
	if !c.srv.users.CanAccessVhost(c.user.Name, open.VirtualHost) {
		return c.handshakeFail(wire.Errorf(wire.NotAllowed, "access to vhost '"+open.VirtualHost+"' refused for user '"+c.user.Name+"'"))
	}
	if err := c.enterVhost(vh, open.VirtualHost, &startOk); err != nil {
		return c.handshakeFail(err)
	}
	if err := c.writeNow(0, &wire.ConnectionOpenOk{}); err != nil {
		return err
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	return nil
}

// enterVhost makes the connection one of vh's open connections, if vh's
// connection limit allows one more. Opens are serialised, so that two of
// them cannot both take the last place, and a vhost deleted meanwhile is
// seen: either its deletion finds this connection open and closes it, or
// this finds the vhost gone.
func (c *conn) enterVhost(vh *vhost.VHost, name string, startOk *wire.ConnectionStartOk) error {
	c.srv.openMu.Lock()
	defer c.srv.openMu.Unlock()
	if limit, ok := vh.ConnectionLimit(); ok && int64(c.srv.vhostConnections(name)) >= limit {
		return wire.Errorf(wire.NotAllowed, "access to vhost '"+name+"' refused for user '"+
			c.user.Name+"': connection limit ("+strconv.FormatInt(limit, 10)+") is reached")
	}
	if limit, ok := c.srv.users.UserLimit(c.user.Name, auth.LimitConnections); ok && int64(c.srv.userConnections(c.user.Name)) >= limit {
		return wire.Errorf(wire.NotAllowed, "Connection refused for user '"+c.user.Name+
			"'. User connection limit ("+strconv.FormatInt(limit, 10)+") is reached")
	}
	c.vhost = vh
	c.handshakeDone.Store(&handshakeInfo{clientProperties: startOk.ClientProperties, mechanism: startOk.Mechanism, connectedAt: time.Now()})
	if c.srv.vhosts.Get(name) != vh {
		return wire.Errorf(wire.NotAllowed, "vhost "+name+" not found")
	}
	return nil
}

// applyTune checks the client's tune-ok against the server's proposal and
// fixes the connection's limits.
func (c *conn) applyTune(t *wire.ConnectionTuneOk) error {
	cfg := &c.srv.cfg
	frameMax := t.FrameMax
	if frameMax == 0 {
		frameMax = cfg.FrameMax
	}
	if frameMax < wire.FrameMinSize {
		return wire.Errorf(wire.NotAllowed, "negotiated frame_max = "+strconv.Itoa(int(frameMax))+
			" is lower than the minimum allowed value ("+strconv.Itoa(wire.FrameMinSize)+")")
	}
	if frameMax > cfg.FrameMax {
		return wire.Errorf(wire.NotAllowed, "negotiated frame_max = "+strconv.Itoa(int(frameMax))+
			" is higher than the maximum allowed value ("+strconv.Itoa(int(cfg.FrameMax))+")")
	}
	channelMax := t.ChannelMax
	if channelMax == 0 || channelMax > cfg.ChannelMax {
		channelMax = cfg.ChannelMax
	}
	c.frameMax = frameMax
	c.channelMax = channelMax
	c.heartbeat = time.Duration(t.Heartbeat) * time.Second
	c.fr.SetMaxFrame(frameMax)
	return nil
}

// handshakeFail answers a handshake error: an AMQP error is sent as
// connection.close and the close-ok awaited briefly; anything else just ends
// the connection.
func (c *conn) handshakeFail(err error) error {
	var we *wire.Error
	if !errors.As(err, &we) {
		return err
	}
	if c.writeNow(0, &wire.ConnectionClose{ReplyCode: we.Code, ReplyText: we.Text, ClassID: we.ClassID, MethodID: we.MethodID}) != nil {
		return err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.CloseTimeout))
	c.awaitCloseOk()
	return err
}

// awaitCloseOk reads and drops frames until connection.close-ok, an error or
// the read deadline.
func (c *conn) awaitCloseOk() {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		if f.Type == wire.FrameMethod && f.Channel == 0 {
			if k, _, err := wire.ReadMethodKey(f.Payload); err == nil && (k == wire.MethodConnectionCloseOk || k == wire.MethodConnectionClose) {
				return
			}
		}
	}
}

// closeFromServer sends connection.close from outside the reader (shutdown,
// an operator's close); the reader then waits for close-ok.
func (c *conn) closeFromServer(e *wire.Error) {
	if !c.closeSent.CompareAndSwap(false, true) {
		return
	}
	close(c.closing)
	c.sendMethod(0, &wire.ConnectionClose{ReplyCode: e.Code, ReplyText: e.Text, ClassID: e.ClassID, MethodID: e.MethodID})
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.CloseTimeout))
}

// readLoop reads frames until the connection ends and returns why.
func (c *conn) readLoop() error {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) && !c.closeSent.Load() {
				// The stream can no longer be split into frames: say why,
				// then discard input until the peer hangs up or the close
				// timeout passes, so the close is not lost to a reset.
				c.closeFromServer(we)
				_, _ = io.Copy(io.Discard, c.nc)
				return we
			}
			return err
		}
		c.framesRead.Add(1)
		c.bytesIn.Add(uint64(len(f.Payload)) + wire.FrameHeaderSize + 1)
		if a := c.srv.alarm.Load(); a != nil && f.Type == wire.FrameMethod && f.Channel != 0 && !c.closeSent.Load() {
			if k, _, err := wire.ReadMethodKey(f.Payload); err == nil && k == wire.MethodBasicPublish {
				c.published.Store(true)
				c.holdForAlarm(a)
			}
		}
		if c.closeSent.Load() {
			// After connection.close only close-ok (or a crossing close) matters.
			if f.Type == wire.FrameMethod && f.Channel == 0 {
				if k, _, err := wire.ReadMethodKey(f.Payload); err == nil {
					if k == wire.MethodConnectionCloseOk {
						return nil
					}
					if k == wire.MethodConnectionClose {
						c.sendMethod(0, &wire.ConnectionCloseOk{})
						return nil
					}
				}
			}
			continue
		}
		if err := c.handleFrame(f); err != nil {
			if errors.Is(err, errClosedByPeer) {
				return err
			}
			var we *wire.Error
			if !errors.As(err, &we) {
				return err
			}
			if !we.Soft() || f.Channel == 0 {
				return c.closeWithError(we)
			}
			c.closeChannel(f.Channel, we)
		}
		if c.fr.Buffered() == 0 {
			if len(c.dueConfirms) > 0 {
				c.flushBatch()
			}
			c.awaitOutputRoom()
		}
	}
}

// flushBatch sends what was held back to coalesce over a read batch.
func (c *conn) flushBatch() {
	for _, ch := range c.dueConfirms {
		ch.flushConfirms()
	}
	clear(c.dueConfirms)
	c.dueConfirms = c.dueConfirms[:0]
}

// closeWithError sends connection.close for a connection exception and
// waits for close-ok (or the close timeout), dropping other frames.
func (c *conn) closeWithError(we *wire.Error) error {
	if we.Soft() {
		// A channel-level code raised where only a connection can close.
		we = &wire.Error{Code: wire.InternalError, Text: we.Text, ClassID: we.ClassID, MethodID: we.MethodID}
	}
	c.closeFromServer(we)
	c.awaitCloseOk()
	return we
}

// handleFrame dispatches one frame.
func (c *conn) handleFrame(f wire.Frame) error {
	switch f.Type {
	case wire.FrameHeartbeat:
		switch {
		case f.Channel != 0:
			return wire.FrameErrorf(wire.UnexpectedFrame, f.Type, f.Payload, "")
		case len(f.Payload) != 0:
			return wire.FrameErrorf(wire.FrameError, f.Type, f.Payload, "unknown_frame")
		}
		return nil
	case wire.FrameMethod:
		k, args, err := wire.ReadMethodKey(f.Payload)
		if err != nil {
			return err
		}
		if f.Channel == 0 {
			return c.handleConnectionMethod(k, args)
		}
		if f.Channel > c.channelMax {
			return c.aboveChannelMax(f.Channel)
		}
		ch := c.channel(f.Channel)
		if ch == nil {
			if k != wire.MethodChannelOpen {
				return wire.Errorf(wire.ChannelError, "expected 'channel.open'").WithMethod(k.Class(), k.ID())
			}
			return c.openChannel(f.Channel)
		}
		return ch.handleMethod(k, args)
	case wire.FrameHeader, wire.FrameBody:
		if f.Channel == 0 {
			return wire.FrameErrorf(wire.UnexpectedFrame, f.Type, f.Payload, "")
		}
		if f.Channel > c.channelMax {
			return c.aboveChannelMax(f.Channel)
		}
		ch := c.channel(f.Channel)
		if ch == nil {
			return wire.Errorf(wire.ChannelError, "expected 'channel.open'")
		}
		return ch.handleContent(f)
	}
	return wire.FrameErrorf(wire.FrameError, f.Type, f.Payload, "unknown_frame")
}

// aboveChannelMax is the connection error for a frame on a channel number
// the client agreed not to use: channel_max is the highest channel number
// (tune-ok's 0 takes the server's).
func (c *conn) aboveChannelMax(id uint16) error {
	return wire.Errorf(wire.NotAllowed, "channel number "+strconv.Itoa(int(id))+
		" is above the negotiated channel_max ("+strconv.Itoa(int(c.channelMax))+")")
}

// handleConnectionMethod handles methods on channel 0 after the handshake.
func (c *conn) handleConnectionMethod(k wire.MethodKey, args []byte) error {
	switch k {
	case wire.MethodConnectionClose:
		var m wire.ConnectionClose
		if err := m.Decode(args); err != nil {
			return err
		}
		if m.ReplyCode != wire.ReplySuccess {
			c.log.Info("client closed connection with error", "code", m.ReplyCode, "text", m.ReplyText)
		}
		// Channels go first, so that by the time the client has close-ok
		// its consumers are gone and its deliveries requeued.
		c.closeChannels()
		c.sendMethod(0, &wire.ConnectionCloseOk{})
		return errClosedByPeer
	case wire.MethodConnectionCloseOk:
		return nil // a stray close-ok: nothing to do
	case wire.MethodConnectionUpdateSecret:
		var m wire.ConnectionUpdateSecret
		if err := m.Decode(args); err != nil {
			return err
		}
		// Passwords do not expire in Warren's internal user store: the new
		// secret is accepted as RabbitMQ's internal backend does.
		c.sendMethod(0, &wire.ConnectionUpdateSecretOk{})
		return nil
	case wire.MethodConnectionBlocked, wire.MethodConnectionUnblocked:
		return wire.Errorf(wire.CommandInvalid, "'"+k.String()+"' is sent by the server only").WithMethod(k.Class(), k.ID())
	}
	if wire.NewMethod(k) == nil {
		return wire.UnknownMethodError(k)
	}
	return wire.Errorf(wire.CommandInvalid, "unexpected '"+k.String()+"' on channel 0").WithMethod(k.Class(), k.ID())
}

// serverProperties is connection.start's server-properties table.
func (s *Server) serverProperties() wire.Table {
	return wire.Table{
		"product":      "Warren",
		"version":      s.cfg.Version,
		"platform":     "Go " + runtime.Version(),
		"copyright":    "Copyright (c) the Warren authors",
		"information":  "Warren, an AMQP 0-9-1 broker. Licensed under the Apache License 2.0.",
		"cluster_name": s.cfg.ClusterName,
		"capabilities": wire.Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"consumer_priorities":          true,
			"authentication_failure_close": true,
			"per_consumer_qos":             true,
			"direct_reply_to":              true,
		},
	}
}

func parseCaps(props wire.Table) clientCaps {
	t, _ := props["capabilities"].(wire.Table)
	b := func(name string) bool { v, _ := t[name].(bool); return v }
	return clientCaps{
		consumerCancelNotify:       b("consumer_cancel_notify"),
		connectionBlocked:          b("connection.blocked"),
		authenticationFailureClose: b("authentication_failure_close"),
		publisherConfirms:          b("publisher_confirms"),
		basicNack:                  b("basic.nack"),
	}
}
