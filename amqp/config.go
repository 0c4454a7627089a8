package amqp

import (
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
)

// Defaults, matching RabbitMQ's where RabbitMQ has the setting.
const (
	// DefaultFrameMax is the largest frame the server proposes (frame_max).
	DefaultFrameMax = 131072
	// DefaultChannelMax is the highest channel number the server proposes (channel_max).
	DefaultChannelMax = 2047
	// DefaultHeartbeat is the heartbeat interval the server proposes.
	DefaultHeartbeat = 60 * time.Second
	// DefaultHandshakeTimeout bounds the time from accept to connection.open.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxMessageSize is the largest message body accepted (RabbitMQ 4's max_message_size).
	DefaultMaxMessageSize = 16 << 20
	// DefaultCloseTimeout bounds the wait for a peer's close-ok after the server closes.
	DefaultCloseTimeout = 3 * time.Second
	// DefaultConsumerTimeout is the delivery acknowledgement timeout (consumer_timeout).
	DefaultConsumerTimeout = 30 * time.Minute

	// preTuneFrameMax is the largest frame accepted before tune-ok, as in RabbitMQ 4.1+.
	preTuneFrameMax = 8192
	// readBufferSize is each connection's read buffer.
	readBufferSize = 64 * 1024
)

// Config tunes the AMQP front end.
type Config struct {
	FrameMax         uint32        // frame_max proposed in connection.tune
	ChannelMax       uint16        // channel_max proposed in connection.tune
	Heartbeat        time.Duration // heartbeat proposed in connection.tune; 0 disables
	HandshakeTimeout time.Duration // accept to connection.open
	CloseTimeout     time.Duration // wait for close-ok after the server closes
	MaxMessageSize   uint64        // largest body accepted
	MaxConnections   int           // 0 = unlimited
	ConsumerTimeout  time.Duration // delivery acknowledgement timeout; 0 disables
	ClusterName      string        // server property cluster_name
	Version          string        // server property version
	// AuthMechanisms are the SASL mechanisms offered, in order
	// (rabbitmq.conf's auth_mechanisms.N): PLAIN, AMQPLAIN, EXTERNAL.
	// EXTERNAL is offered only to a client that presented a verified
	// certificate, and logs it in as the user the certificate names:
	// CertLoginFrom is "distinguished_name" (the subject as RFC 4514
	// writes it, RabbitMQ's default) or "common_name".
	AuthMechanisms []string
	CertLoginFrom  string
}

// DefaultConfig returns RabbitMQ's defaults.
func DefaultConfig() Config {
	return Config{
		FrameMax:         DefaultFrameMax,
		ChannelMax:       DefaultChannelMax,
		Heartbeat:        DefaultHeartbeat,
		HandshakeTimeout: DefaultHandshakeTimeout,
		CloseTimeout:     DefaultCloseTimeout,
		MaxMessageSize:   DefaultMaxMessageSize,
		ConsumerTimeout:  DefaultConsumerTimeout,
		ClusterName:      "warren",
		Version:          "0.1.0",
		AuthMechanisms:   []string{"AMQPLAIN", "PLAIN"},
		CertLoginFrom:    CertLoginDN,
	}
}

// The ways a client certificate names its user (ssl_cert_login_from).
const (
	CertLoginDN = "distinguished_name"
	CertLoginCN = "common_name"
)

// Validate reports settings no client could work with.
func (c Config) Validate() error {
	var errs []error
	if c.FrameMax < wire.FrameMinSize {
		errs = append(errs, fmt.Errorf("frame_max %d is below the protocol minimum %d", c.FrameMax, wire.FrameMinSize))
	}
	if c.ChannelMax == 0 {
		errs = append(errs, errors.New("channel_max must be at least 1"))
	}
	if c.Heartbeat < 0 || c.Heartbeat > 65535*time.Second {
		errs = append(errs, fmt.Errorf("heartbeat %v out of range", c.Heartbeat))
	}
	if c.HandshakeTimeout <= 0 || c.CloseTimeout <= 0 {
		errs = append(errs, errors.New("handshake and close timeouts must be positive"))
	}
	if c.MaxMessageSize == 0 || c.MaxMessageSize > 512<<20 {
		errs = append(errs, fmt.Errorf("max_message_size %d out of range (1 byte to 512 MiB)", c.MaxMessageSize))
	}
	if c.MaxConnections < 0 || c.ConsumerTimeout < 0 {
		errs = append(errs, errors.New("max connections and consumer timeout must not be negative"))
	}
	if len(c.AuthMechanisms) == 0 {
		errs = append(errs, errors.New("no authentication mechanism"))
	}
	for _, m := range c.AuthMechanisms {
		if m != "PLAIN" && m != "AMQPLAIN" && m != "EXTERNAL" {
			errs = append(errs, fmt.Errorf("authentication mechanism %q is not one of PLAIN, AMQPLAIN, EXTERNAL", m))
		}
	}
	if c.CertLoginFrom != CertLoginDN && c.CertLoginFrom != CertLoginCN {
		errs = append(errs, fmt.Errorf("ssl_cert_login_from %q is neither %s nor %s", c.CertLoginFrom, CertLoginDN, CertLoginCN))
	}
	return errors.Join(errs...)
}
