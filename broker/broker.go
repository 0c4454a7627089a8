// Package broker assembles a Warren node: it wires users, virtual hosts,
// storage and the AMQP listener together, starts them in order and stops
// them in reverse.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/vhost"
)

// Config is a node's whole configuration.
type Config struct {
	Listen        string // AMQP listener, HOST:PORT
	DataDir       string // where the node keeps its state
	DefaultUser   string
	DefaultPass   string
	DefaultVhost  string
	LoopbackUsers []string
	AMQP          amqp.Config
}

// DefaultConfig returns a node configuration with RabbitMQ's defaults.
func DefaultConfig() Config {
	return Config{
		Listen:        "127.0.0.1:5672",
		DataDir:       "warren-data",
		DefaultUser:   "guest",
		DefaultPass:   "guest",
		DefaultVhost:  vhost.DefaultName,
		LoopbackUsers: []string{"guest"},
		AMQP:          amqp.DefaultConfig(),
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen address is empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	if c.DefaultVhost == "" {
		errs = append(errs, errors.New("default vhost is empty"))
	}
	if err := c.AMQP.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Broker is a running node.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	amqp   *amqp.Server
	served chan error
}

// Start opens the data directory, builds the node and starts listening.
func Start(cfg Config, log *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	vhosts := vhost.NewRegistry()
	vhosts.Add(cfg.DefaultVhost)
	users, err := auth.New(auth.Config{
		DefaultUser:   cfg.DefaultUser,
		DefaultPass:   cfg.DefaultPass,
		DefaultVhost:  cfg.DefaultVhost,
		LoopbackUsers: cfg.LoopbackUsers,
	})
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	srv, err := amqp.NewServer(cfg.AMQP, amqp.Deps{Users: users, Vhosts: vhosts, Log: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	b := &Broker{cfg: cfg, log: log, ln: ln, amqp: srv, served: make(chan error, 1)}
	go func() { b.served <- srv.Serve(ln) }()
	log.Info("Warren started", "listen", ln.Addr().String(), "data_dir", cfg.DataDir, "version", cfg.AMQP.Version)
	return b, nil
}

// Addr returns the AMQP listener's address.
func (b *Broker) Addr() net.Addr { return b.ln.Addr() }

// Shutdown stops accepting, closes every connection with 320
// CONNECTION_FORCED and waits for them (until ctx ends), then stops the rest.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.log.Info("Warren stopping")
	err := b.amqp.Shutdown(ctx)
	b.ln.Close()
	if serr := <-b.served; serr != nil {
		err = errors.Join(err, serr)
	}
	b.log.Info("Warren stopped")
	return err
}
