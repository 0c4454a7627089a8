package amqp

import (
	"cmp"
	"crypto/tls"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// ConnectionInfo describes an open connection as the management API lists
// it.
type ConnectionInfo struct {
	// Name is RabbitMQ's name for the connection: "peer -> local".
	Name        string
	User, VHost string
	PeerHost    string
	PeerPort    int
	Host        string
	Port        int
	// ClientProperties are the client's start-ok properties (with
	// connection_name when it gave one).
	ClientProperties wire.Table
	AuthMechanism    string
	ConnectedAt      time.Time
	FrameMax         uint32
	ChannelMax       uint16
	// Heartbeat is the negotiated heartbeat interval; 0 is none.
	Heartbeat time.Duration
	// State is RabbitMQ's: "running", "blocking" (an alarm is set and
	// the connection publishes: its next publish will block) or "blocked".
	State    string
	Channels int
	// RecvOct and SendOct are bytes read and written; RecvCnt the frames
	// read.
	RecvOct, SendOct, RecvCnt uint64
	// TLS describes the connection's TLS session (nil without TLS).
	TLS *TLSInfo
}

// TLSInfo is what RabbitMQ shows of a connection's TLS session.
type TLSInfo struct {
	Protocol, Cipher string // "tlsv1.3", and the cipher suite's name
	// PeerCertSubject and PeerCertIssuer are the client certificate's
	// names (RFC 4514), "" without one.
	PeerCertSubject, PeerCertIssuer string
}

// tlsInfo describes nc's TLS session, or nil.
func tlsInfo(nc net.Conn) *TLSInfo {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	ti := &TLSInfo{Protocol: "tlsv1." + strconv.Itoa(int(st.Version-tls.VersionTLS10)), Cipher: tls.CipherSuiteName(st.CipherSuite)}
	if len(st.PeerCertificates) > 0 {
		ti.PeerCertSubject = st.PeerCertificates[0].Subject.String()
		ti.PeerCertIssuer = st.PeerCertificates[0].Issuer.String()
	}
	return ti
}

// ChannelInfo describes an open channel.
type ChannelInfo struct {
	Connection *ConnectionInfo
	Number     uint16
	// Name is RabbitMQ's: the connection's name and the number, "... (1)".
	Name                   string
	Confirm, Transactional bool
	Consumers              int
	Unacked                int
	Unconfirmed            int
	// Prefetch is basic.qos global=false (for new consumers);
	// GlobalPrefetch global=true. 0 is unlimited.
	Prefetch, GlobalPrefetch int
	Stats                    MessageStats
}

// ConsumerInfo describes a consumer.
type ConsumerInfo struct {
	Channel     *ChannelInfo
	Tag         string
	Queue       queue.Queue
	AckRequired bool
	Exclusive   bool
	Prefetch    int
	Priority    int
}

// handshakeInfo is what the handshake settled, published for other
// goroutines once the connection is open.
type handshakeInfo struct {
	clientProperties wire.Table
	mechanism        string
	connectedAt      time.Time
}

// connectionName is RabbitMQ's name for a connection.
func connectionName(nc net.Conn) string {
	return nc.RemoteAddr().String() + " -> " + nc.LocalAddr().String()
}

// info describes the connection; ok is false until the handshake is done.
func (c *conn) info() (ConnectionInfo, bool) {
	h := c.handshakeDone.Load()
	if h == nil {
		return ConnectionInfo{}, false
	}
	peerHost, peerPort := splitHostPort(c.nc.RemoteAddr())
	host, port := splitHostPort(c.nc.LocalAddr())
	return ConnectionInfo{
		Name: c.name, User: c.user.Name, VHost: c.vhost.Name(),
		PeerHost: peerHost, PeerPort: peerPort, Host: host, Port: port,
		ClientProperties: h.clientProperties, AuthMechanism: h.mechanism, ConnectedAt: h.connectedAt,
		FrameMax: c.frameMax, ChannelMax: c.channelMax, Heartbeat: c.heartbeat,
		State:    [...]string{flowRunning: "running", flowBlocking: "blocking", flowBlocked: "blocked", flowCredit: "flow"}[c.flow.Load()],
		Channels: len(c.openChannels()),
		RecvOct:  c.bytesIn.Load(), SendOct: c.bytesOut.Load(), RecvCnt: c.framesRead.Load(),
		TLS: tlsInfo(c.nc),
	}, true
}

func splitHostPort(a net.Addr) (string, int) {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// info describes the channel of the connection described by ci.
func (ch *channel) info(ci *ConnectionInfo) ChannelInfo {
	out := ChannelInfo{
		Connection: ci, Number: ch.id, Name: ci.Name + " (" + strconv.Itoa(int(ch.id)) + ")",
		Confirm: ch.mode.Load()&modeConfirm != 0, Transactional: ch.mode.Load()&modeTx != 0,
		Stats: ch.stats.snapshot(),
	}
	ch.mu.Lock()
	out.Consumers = len(ch.consumers)
	out.Unacked = ch.unacked.live
	out.Prefetch, out.GlobalPrefetch = ch.consumerPrefetch, ch.prefetchGlobal
	ch.mu.Unlock()
	ch.confirms.mu.Lock()
	out.Unconfirmed = len(ch.confirms.pending) - ch.confirms.head
	ch.confirms.mu.Unlock()
	return out
}

// consumers describes the channel's consumers.
func (ch *channel) consumerInfos(chi *ChannelInfo) []ConsumerInfo {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	out := make([]ConsumerInfo, 0, len(ch.consumers))
	for _, c := range ch.consumers {
		out = append(out, ConsumerInfo{Channel: chi, Tag: c.Tag, Queue: c.Queue, AckRequired: !c.NoAck,
			Exclusive: c.Exclusive, Prefetch: c.Prefetch, Priority: c.Priority})
	}
	return out
}

// Channel modes, for ChannelInfo.
const (
	modeConfirm uint32 = 1 << iota
	modeTx
)

// openConns returns the open connections whose handshake is done, with
// their descriptions, in the order they connected.
func (s *Server) openConns() ([]*conn, []*ConnectionInfo) {
	s.mu.Lock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	conns := all[:0]
	var infos []*ConnectionInfo
	for _, c := range all {
		if ci, ok := c.info(); ok {
			conns = append(conns, c)
			infos = append(infos, &ci)
		}
	}
	return conns, infos
}

// Connections describes the open connections.
func (s *Server) Connections() []ConnectionInfo {
	_, infos := s.openConns()
	out := make([]ConnectionInfo, len(infos))
	for i, ci := range infos {
		out[i] = *ci
	}
	return out
}

// Channels describes the open channels, by connection then number.
func (s *Server) Channels() []ChannelInfo {
	conns, infos := s.openConns()
	var out []ChannelInfo
	for i, c := range conns {
		chans := slices.Clone(c.openChannels())
		slices.SortFunc(chans, func(a, b *channel) int { return int(a.id) - int(b.id) })
		for _, ch := range chans {
			out = append(out, ch.info(infos[i]))
		}
	}
	return out
}

// Consumers describes every consumer of every channel.
func (s *Server) Consumers() []ConsumerInfo {
	conns, infos := s.openConns()
	var out []ConsumerInfo
	for i, c := range conns {
		for _, ch := range c.openChannels() {
			chi := ch.info(infos[i])
			out = append(out, ch.consumerInfos(&chi)...)
		}
	}
	return out
}

// CloseConnection closes the named connection with 320 CONNECTION_FORCED
// and reason as its text, as the management API's DELETE does; it
// reports whether there was such a connection.
func (s *Server) CloseConnection(name, reason string) bool {
	conns, infos := s.openConns()
	for i, c := range conns {
		if infos[i].Name == name {
			c.closeFromServer(wire.Errorf(wire.ConnectionForced, reason))
			return true
		}
	}
	return false
}

// CloseVhostConnections closes every connection to vhost with 320
// CONNECTION_FORCED and reason, as RabbitMQ does when the virtual host is
// deleted.
func (s *Server) CloseVhostConnections(vhost, reason string) {
	conns, infos := s.openConns()
	for i, c := range conns {
		if infos[i].VHost == vhost {
			c.closeFromServer(wire.Errorf(wire.ConnectionForced, reason))
		}
	}
}

// vhostConnections counts the open connections to vhost.
func (s *Server) vhostConnections(vhost string) int {
	return s.countConnections(func(ci *ConnectionInfo) bool { return ci.VHost == vhost })
}

// userConnections counts the open connections of user.
func (s *Server) userConnections(user string) int {
	return s.countConnections(func(ci *ConnectionInfo) bool { return ci.User == user })
}

// countConnections counts the open connections that match.
func (s *Server) countConnections(match func(*ConnectionInfo) bool) int {
	_, infos := s.openConns()
	n := 0
	for _, ci := range infos {
		if match(ci) {
			n++
		}
	}
	return n
}
