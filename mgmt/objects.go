package mgmt

import (
	"net/http"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/auth"
)

// connectionVisible reports whether u may see a connection: its own, or
// any for monitoring and administrator users.
func (s *Server) connectionVisible(u *auth.User, c *amqp.ConnectionInfo) bool {
	return c.User == u.Name || seesAll(u)
}

// visibleConnections are the connections u may see.
func (s *Server) visibleConnections(u *auth.User) []amqp.ConnectionInfo {
	var out []amqp.ConnectionInfo
	for _, c := range s.d.AMQP.Connections() {
		if s.connectionVisible(u, &c) {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) connectionObject(c *amqp.ConnectionInfo) object {
	recvRate, sendRate := s.rates.connection(c.Name)
	o := object{
		"name": c.Name, "node": s.d.Node.Name, "user": c.User, "vhost": c.VHost, "state": c.State,
		"type": "network", "protocol": "AMQP 0-9-1", "auth_mechanism": c.AuthMechanism, "ssl": false,
		"peer_host": c.PeerHost, "peer_port": c.PeerPort, "host": c.Host, "port": c.Port,
		"client_properties": argsJSON(c.ClientProperties),
		"connected_at":      c.ConnectedAt.UnixMilli(),
		"frame_max":         c.FrameMax, "channel_max": c.ChannelMax, "timeout": int(c.Heartbeat.Seconds()),
		"channels": c.Channels,
		"recv_oct": c.RecvOct, "recv_oct_details": details(recvRate), "recv_cnt": c.RecvCnt,
		"send_oct": c.SendOct, "send_oct_details": details(sendRate), "send_pend": 0,
		"user_who_performed_action": c.User,
		"ssl_protocol":              nil, "ssl_cipher": nil, "peer_cert_subject": nil, "peer_cert_issuer": nil,
	}
	if t := c.TLS; t != nil {
		o["ssl"], o["ssl_protocol"], o["ssl_cipher"] = true, t.Protocol, t.Cipher
		if t.PeerCertSubject != "" {
			o["peer_cert_subject"], o["peer_cert_issuer"] = t.PeerCertSubject, t.PeerCertIssuer
		}
	}
	return o
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	vh := r.PathValue("vhost")
	if vh != "" {
		if _, err := s.vhostFor(r, u); err != nil {
			return err
		}
	}
	var items []object
	for _, c := range s.visibleConnections(u) {
		if vh == "" || c.VHost == vh {
			items = append(items, s.connectionObject(&c))
		}
	}
	for _, c := range s.remoteConnections(u) {
		if vh == "" || c["vhost"] == vh {
			items = append(items, c)
		}
	}
	return writeList(w, r, items)
}

// findConnection returns the named connection if u may see it.
func (s *Server) findConnection(u *auth.User, name string) (*amqp.ConnectionInfo, error) {
	for _, c := range s.visibleConnections(u) {
		if c.Name == name {
			return &c, nil
		}
	}
	return nil, notFound()
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	c, err := s.findConnection(u, r.PathValue("name"))
	if err != nil {
		for _, o := range s.remoteConnections(u) {
			if o["name"] == r.PathValue("name") {
				writeObject(w, r, o)
				return nil
			}
		}
		return err
	}
	writeObject(w, r, s.connectionObject(c))
	return nil
}

// deleteConnection closes a connection with 320 CONNECTION_FORCED and the
// X-Reason header's text, as RabbitMQ does.
func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	reason := r.Header.Get("X-Reason")
	if reason == "" {
		reason = "Closed via management plugin"
	}
	c, err := s.findConnection(u, r.PathValue("name"))
	if err != nil && s.d.Cluster != nil {
		if err := s.closeRemoteConnection(u, r.PathValue("name"), reason); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if c.User != u.Name && !u.HasTag(auth.TagAdministrator) {
		return forbidden("Not administrator user")
	}
	if !s.d.AMQP.CloseConnection(c.Name, reason) {
		return notFound()
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) channelObject(c *amqp.ChannelInfo) object {
	return object{
		"name": c.Name, "number": c.Number, "node": s.d.Node.Name, "user": c.Connection.User, "vhost": c.Connection.VHost,
		"state": "running", "confirm": c.Confirm, "transactional": c.Transactional,
		"consumer_count": c.Consumers, "messages_unacknowledged": c.Unacked, "messages_unconfirmed": c.Unconfirmed,
		"messages_uncommitted": 0, "acks_uncommitted": 0,
		"prefetch_count": c.Prefetch, "global_prefetch_count": c.GlobalPrefetch,
		"connection_details":        object{"name": c.Connection.Name, "peer_host": c.Connection.PeerHost, "peer_port": c.Connection.PeerPort},
		"message_stats":             messageStats(c.Stats, c.Stats, c.Stats, 0),
		"user_who_performed_action": c.Connection.User,
	}
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	vh, conn := r.PathValue("vhost"), r.PathValue("name")
	if vh != "" {
		if _, err := s.vhostFor(r, u); err != nil {
			return err
		}
	}
	if conn != "" {
		if _, err := s.findConnection(u, conn); err != nil {
			return err
		}
	}
	var items []object
	for _, c := range s.d.AMQP.Channels() {
		if s.connectionVisible(u, c.Connection) && (vh == "" || c.Connection.VHost == vh) && (conn == "" || c.Connection.Name == conn) {
			items = append(items, s.channelObject(&c))
		}
	}
	return writeList(w, r, items)
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	for _, c := range s.d.AMQP.Channels() {
		if c.Name == r.PathValue("name") && s.connectionVisible(u, c.Connection) {
			writeObject(w, r, s.channelObject(&c))
			return nil
		}
	}
	return notFound()
}

func (s *Server) listConsumers(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	vh := r.PathValue("vhost")
	if vh != "" {
		if _, err := s.vhostFor(r, u); err != nil {
			return err
		}
	}
	var items []object
	for _, c := range s.d.AMQP.Consumers() {
		conn := c.Channel.Connection
		// A user sees the consumers of its own connections; monitoring
		// and administrator users see all, as RabbitMQ's filter has it.
		if !s.connectionVisible(u, conn) || vh != "" && conn.VHost != vh {
			continue
		}
		args := object{}
		if c.Priority != 0 {
			args["x-priority"] = c.Priority
		}
		items = append(items, object{
			"consumer_tag": c.Tag, "exclusive": c.Exclusive, "ack_required": c.AckRequired, "prefetch_count": c.Prefetch,
			"active": true, "activity_status": "up", "arguments": args,
			"queue": object{"name": c.Queue.Name(), "vhost": conn.VHost},
			"channel_details": object{"name": c.Channel.Name, "number": c.Channel.Number, "connection_name": conn.Name,
				"peer_host": conn.PeerHost, "peer_port": conn.PeerPort, "node": s.d.Node.Name, "user": conn.User},
		})
	}
	return writeList(w, r, items)
}
