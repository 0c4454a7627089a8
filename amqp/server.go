// Package amqp is Warren's AMQP 0-9-1 front end: the listener, connections
// and their channel state machines. It turns frames into calls on virtual
// hosts and queues and writes their results back.
//
// Each connection has exactly two goroutines: a reader that parses frames
// and runs every channel's state machine inline (so per-channel ordering
// needs no locks), and a writer that drains the connection's pending output
// in as few writes as it can. There is no goroutine per channel.
package amqp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/vhost"
)

// Server accepts AMQP connections and serves them.
type Server struct {
	cfg    Config
	log    *slog.Logger
	users  *auth.Store
	vhosts *vhost.Registry

	nextID atomic.Uint64
	clock  atomic.Int64 // coarse unix ms, for acknowledgement deadlines

	// openMu serialises connection.open's check of the vhost's connection
	// limit with the connection joining the vhost (see enterVhost).
	openMu sync.Mutex

	alarm atomic.Pointer[alarm] // the resource alarm in force, nil when none (see SetAlarm)

	mu       sync.Mutex
	conns    map[*conn]struct{}
	channels map[string]int // open channels per user, for their max-channels
	totals   serverTotals   // under mu where it says so
	closing  bool
	wg       sync.WaitGroup // one per connection
}

// Deps are what a Server serves: users and virtual hosts.
type Deps struct {
	Users  *auth.Store
	Vhosts *vhost.Registry
	Log    *slog.Logger
	// ConnectionIDs is where the connections' ids start: in a cluster each
	// node takes its own range, since an exclusive queue names its owner
	// by id on every node.
	ConnectionIDs uint64
}

// NewServer returns a server with the given configuration.
func NewServer(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, users: deps.Users, vhosts: deps.Vhosts, conns: map[*conn]struct{}{}, channels: map[string]int{}}
	s.nextID.Store(deps.ConnectionIDs)
	return s, nil
}

// Serve accepts connections on each of lns (a plain listener, a TLS one)
// until they are closed or Shutdown is called. It returns nil after
// Shutdown, else the first listener's error.
func (s *Server) Serve(lns ...net.Listener) error {
	s.clock.Store(time.Now().UnixMilli())
	stop := make(chan struct{})
	clockDone := make(chan struct{})
	go func() { s.clockLoop(stop); close(clockDone) }()
	defer func() { close(stop); <-clockDone }()
	errs := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errs <- s.accept(ln) }()
	}
	var err error
	for range lns {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return err
}

// accept serves ln until it is closed.
func (s *Server) accept(ln net.Listener) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.serveConn(nc)
	}
}

func (s *Server) serveConn(nc net.Conn) {
	s.mu.Lock()
	if s.closing || s.cfg.MaxConnections > 0 && len(s.conns) >= s.cfg.MaxConnections {
		s.mu.Unlock()
		s.log.Warn("refusing connection", "peer", nc.RemoteAddr().String(), "reason", "connection limit or shutdown")
		nc.Close()
		return
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.totals.connectionsOpened.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.totals.recvOct.Add(c.bytesIn.Load())
		s.totals.sendOct.Add(c.bytesOut.Load())
		s.totals.connectionsClosed.Add(1)
		s.mu.Unlock()
	}()
}

// Shutdown closes every connection with 320 CONNECTION_FORCED, as RabbitMQ
// does when it stops, and waits for them to finish or for ctx to end, after
// which the remaining sockets are closed. The caller closes the listener.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeFromServer(wire.Errorf(wire.ConnectionForced, "broker forced connection closure with reason 'shutdown'"))
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
