// Package broker assembles a Warren node: it wires users, virtual hosts,
// storage and the AMQP listener together, starts them in order and stops
// them in reverse.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/flowcontrol"
	"github.com/warrenmq/warren/mgmt"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
	"github.com/warrenmq/warren/queue/remote"
	"github.com/warrenmq/warren/quorum"
	"github.com/warrenmq/warren/tlsconf"
	"github.com/warrenmq/warren/vhost"
)

// Config is a node's whole configuration.
type Config struct {
	Listen string // AMQP listener, HOST:PORT; empty: none (TLS only)
	// TLSListen is the AMQP-over-TLS listener's HOST:PORT (empty: none),
	// with TLS's certificate, key, CA and peer verification.
	TLSListen     string
	TLS           tlsconf.Options
	DataDir       string // where the node keeps its state
	DefaultUser   string
	DefaultPass   string
	DefaultVhost  string
	LoopbackUsers []string
	AMQP          amqp.Config
	// Sync: fsync each store batch before confirming (true), or rely on
	// the OS page cache as RabbitMQ's classic queues do (false).
	Sync bool
	// QueueMemory and TotalMemory are the memory one queue's ready
	// messages, and all queues' together, may take (bodies plus a fixed
	// bookkeeping cost each) before new messages are paged to the store.
	QueueMemory int64
	TotalMemory int64
	// GCInterval is how often the store reclaims space from deleted data.
	GCInterval time.Duration
	// MgmtListen is the management HTTP API's HOST:PORT and
	// PrometheusListen the metrics endpoint's; empty turns one off.
	// MemoryWatermark and DiskFreeLimit set the memory and disk alarms
	// (zero: flowcontrol's defaults, RabbitMQ's).
	MemoryWatermark  flowcontrol.Limit
	DiskFreeLimit    flowcontrol.Limit
	MgmtListen       string
	PrometheusListen string
	// MgmtTLSListen and PrometheusTLSListen are their HTTPS listeners
	// (empty: none), with their TLS files and options.
	MgmtTLSListen, PrometheusTLSListen string
	MgmtTLS, PrometheusTLS             tlsconf.Options
	// MgmtSessionTimeout is how long a web console login lasts unused
	// (0: mgmt.DefaultSessionTimeout, RabbitMQ's 480 minutes).
	MgmtSessionTimeout time.Duration
	// LoadDefinitions is a definitions file (RabbitMQ's JSON format)
	// applied at every start, as rabbitmq.conf's load_definitions.
	LoadDefinitions string
	// NodeName is the node's name ("warren@" and the host name by default).
	NodeName string
	// ClusterListen is the cluster listener's HOST:PORT; ClusterSeeds the
	// cluster addresses of the nodes that form the cluster (none: the node
	// is a cluster of its own unless it joined one before); ClusterSecret
	// the secret the nodes share (empty: the data directory's
	// cluster-secret file, made at the first start).
	ClusterListen string
	ClusterSeeds  []string
	ClusterSecret string
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
		Sync:          true,
		QueueMemory:   DefaultQueueMemory,
		TotalMemory:   DefaultTotalMemory,
		GCInterval:    time.Minute,

		MemoryWatermark:  flowcontrol.DefaultMemoryWatermark,
		DiskFreeLimit:    flowcontrol.DefaultDiskFreeLimit,
		MgmtListen:       "127.0.0.1:15672",
		PrometheusListen: "127.0.0.1:15692",
		ClusterListen:    cluster.DefaultListen,
	}
}

// nodeName is the node's default name, as RabbitMQ's rabbit@host.
func nodeName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return "warren@" + host
}

// Paging defaults: a queue keeps up to 16 MiB of messages in memory, all
// queues together 64 MiB; past that, new messages wait in the store, and
// publishers go at the pace the store writes them. Measured with ten
// queues backing up under one publisher of 256-byte messages (bench's
// fanout-10q-ack-256B): at 64 MiB and 512 MiB the broker reached 1.5 GB of
// RSS in 20 s with consumer latencies of 23 s; at these, 340 MB and 3 s,
// and the consumers took more.
const (
	DefaultQueueMemory = 16 << 20
	DefaultTotalMemory = 64 << 20
)

// setGoMemoryLimit makes the memory watermark the Go runtime's soft memory
// limit (the resident set also holds mapped files, so the heap alone
// rarely reaches it; a watermark of 0, which blocks publishing for good,
// leaves the runtime's default).
func setGoMemoryLimit(bytes uint64) {
	if bytes > 0 && bytes < math.MaxInt64 {
		debug.SetMemoryLimit(int64(bytes))
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Listen == "" && c.TLSListen == "" {
		errs = append(errs, errors.New("no AMQP listener: the listen address and the TLS listen address are both empty"))
	}
	for _, l := range []struct {
		addr string
		opts tlsconf.Options
	}{{c.TLSListen, c.TLS}, {c.MgmtTLSListen, c.MgmtTLS}, {c.PrometheusTLSListen, c.PrometheusTLS}} {
		if l.addr != "" {
			if err := l.opts.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
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
	// A persistent message is one value in the store, which takes values up
	// to one value-log file: a bigger one would fail its whole batch.
	if limit := uint64(persistence.DefaultValueLogFileSize) - 1024; c.AMQP.MaxMessageSize > limit {
		errs = append(errs, fmt.Errorf("max_message_size %d is above what the store keeps in one value (%d)", c.AMQP.MaxMessageSize, limit))
	}
	return errors.Join(errs...)
}

// Broker is a running node.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	lns    []net.Listener   // the AMQP listeners: plain, then TLS
	tls    []*tlsconf.Files // the TLS listeners' files, reloaded on SIGHUP
	amqp   *amqp.Server
	store  *persistence.Store
	kind   *classic.Kind
	served chan error
	mgmt   *mgmt.Server
	https  []*http.Server // the management API's and the metrics' servers
	alarms *flowcontrol.Monitor
	// In a cluster: the node's membership and the forwarding to and from
	// the other nodes' queues (nil on a node of its own).
	node    *cluster.Node
	forward *remote.Service
	// quorum is the quorum queue kind (its groups stop before the cluster
	// membership and the store).
	quorum *quorum.Kind
	defs   *definitions // the replicated state, for the cluster's name
	// metadata are the metadata group's stores, opened once.
	metadata cluster.Stores
	names    replicator // changes the cluster's name
	// watching stops watchLostNodes; watched says it returned.
	watching, watched chan struct{}
}

// forgetPermissions has a deleted vhost's permissions go with it (on every
// node of a cluster, as each applies the deletion).
func forgetPermissions(vhosts *vhost.Registry, users *auth.Store, log *slog.Logger) {
	vhosts.OnDelete(func(name string) {
		if err := users.DeleteVhost(name); err != nil {
			log.Error("forgetting a deleted vhost's permissions", "vhost", name, "err", err)
		}
	})
}

// startAlone rebuilds a node of its own from its store.
func (b *Broker) startAlone(kinds *queue.Kinds, classicKind *classic.Kind) (*vhost.Registry, *auth.Store, error) {
	cfg := b.cfg
	b.quorum = quorum.NewKind(quorum.Options{Store: b.store, Node: cfg.NodeName, Log: b.log.With("component", "quorum")})
	kinds.Register(quorum.Name, b.quorum)
	vhosts := vhost.NewRegistry(vhost.Deps{Definitions: b.store, Kinds: kinds, Delays: classicKind, Log: b.log})
	err := vhosts.Load()
	if err == nil {
		err = classicKind.FinishRecovery()
	}
	if err == nil {
		err = b.quorum.Start()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recovering from the store: %w", err)
	}
	users, err := auth.New(auth.Config{
		Definitions:   b.store,
		DefaultUser:   cfg.DefaultUser,
		DefaultPass:   cfg.DefaultPass,
		DefaultVhost:  cfg.DefaultVhost,
		LoopbackUsers: cfg.LoopbackUsers,
	})
	if err != nil {
		classicKind.Stop()
		return nil, nil, fmt.Errorf("users: %w", err)
	}
	forgetPermissions(vhosts, users, b.log)
	if users.FirstStart() {
		// As RabbitMQ, the default vhost is made once: one an operator
		// deleted stays deleted.
		if _, err := vhosts.Add(cfg.DefaultVhost); err != nil {
			classicKind.Stop()
			return nil, nil, err
		}
	}
	return vhosts, users, nil
}

// startClustered joins the node's cluster and rebuilds the definitions
// from it: the node's own queues recover their messages as their declares
// are applied again.
func (b *Broker) startClustered(ctx context.Context, kinds *queue.Kinds, classicKind *classic.Kind) (*vhost.Registry, *auth.Store, error) {
	cfg := b.cfg
	if own, err := ownDefinitions(b.store); err != nil || own {
		if err == nil {
			err = errors.New("the data directory holds the definitions of a node that was not in a cluster: " +
				"export them (warrenctl export_definitions), start the clustered node on an empty data directory and import them")
		}
		return nil, nil, err
	}
	link := &clusterLink{name: cfg.NodeName}
	var vhosts *vhost.Registry
	b.forward = remote.New(link, func(vh, name string, id uint64) (queue.Queue, error) {
		v := vhosts.Get(vh)
		if v == nil {
			return nil, wire.Errorf(wire.NotFound, "no vhost '"+vh+"'")
		}
		return v.LocalQueue(name, id)
	}, b.log.With("component", "forwarding"))
	b.quorum = quorum.NewKind(quorum.Options{Store: b.store, Cluster: link, Node: cfg.NodeName, Forward: b.forward.New,
		Log: b.log.With("component", "quorum")})
	kinds.Register(quorum.Name, b.quorum)
	vhosts = vhost.NewRegistry(vhost.Deps{Kinds: kinds, Delays: classicKind, Log: b.log,
		Replicator: link.to(targetVhosts), Node: cfg.NodeName, Remote: b.forward})
	users, err := auth.New(auth.Config{Replicator: link.to(targetUsers), LoopbackUsers: cfg.LoopbackUsers})
	if err != nil {
		return nil, nil, err
	}
	// Before the definitions are replayed: a replayed vhost deletion takes
	// its permissions too.
	forgetPermissions(vhosts, users, b.log)
	b.defs = &definitions{vhosts: vhosts, users: users}
	b.names = link.to(targetCluster)
	b.node, err = joinCluster(ctx, cfg, b.store, b.metadata, b.defs, link, b.log)
	if err != nil {
		return nil, nil, err
	}
	// A join asked for on a node of its own is done.
	if err := os.Remove(filepath.Join(cfg.DataDir, joinFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		b.log.Warn("removing the join request", "err", err)
	}
	if err := classicKind.FinishRecovery(); err != nil {
		return nil, nil, fmt.Errorf("recovering from the store: %w", err)
	}
	if err := b.quorum.Start(); err != nil {
		return nil, nil, fmt.Errorf("recovering from the store: %w", err)
	}
	// Transient and exclusive queues do not outlive their node's restart,
	// nor its loss.
	vhosts.DropRestarted()
	b.watching, b.watched = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.watched)
		watchLostNodes(b.node, vhosts, b.watching)
	}()
	// The cluster's first node to get here makes the default user and
	// vhost, once in the cluster's life.
	first, err := users.Seed(cfg.DefaultUser, cfg.DefaultPass, cfg.DefaultVhost)
	if err == nil && first {
		_, err = vhosts.Add(cfg.DefaultVhost)
	}
	if err == nil {
		// The cluster is named after its first node, as RabbitMQ's is,
		// until an operator names it.
		_, err = b.names.Replicate([]byte("?" + cfg.NodeName))
	}
	if err != nil {
		classicKind.Stop()
		return nil, nil, err
	}
	return vhosts, users, nil
}

// reset drops everything a node of its own held (its definitions, and so
// its queues and their messages; users, permissions), as rabbitmqctl's
// reset before join_cluster, so that it can start clustered.
func (b *Broker) reset(kinds *queue.Kinds, classicKind *classic.Kind) error {
	vhosts, users, err := b.startAlone(kinds, classicKind)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range vhosts.Names() {
		errs = append(errs, vhosts.Delete(name))
	}
	for _, u := range users.Users() {
		errs = append(errs, users.DeleteUser(u.Name))
	}
	errs = append(errs, users.ForgetFirstStart())
	b.quorum.Close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("resetting the node to join a cluster: %w", err)
	}
	b.log.Warn("reset to join a cluster: this node's definitions and messages were dropped", "through", b.cfg.ClusterSeeds)
	return nil
}

// stopCluster leaves the cluster's work: the quorum queues' groups,
// forwarding, then membership.
func (b *Broker) stopCluster() {
	if b.quorum != nil {
		b.quorum.Close()
		b.quorum = nil
	}
	if b.watching != nil {
		close(b.watching)
		<-b.watched
		b.watching = nil
	}
	if b.forward != nil {
		b.forward.Close()
		b.forward = nil
	}
	if b.node != nil {
		if err := b.node.Close(); err != nil {
			b.log.Warn("stopping the cluster membership", "err", err)
		}
		b.node = nil
	}
}

// Start opens the data directory, builds the node and starts listening.
func Start(cfg Config, log *slog.Logger) (*Broker, error) {
	return StartContext(context.Background(), cfg, log)
}

// StartContext is Start, given up when ctx ends first (a clustered node
// waits for its cluster during the start).
func StartContext(ctx context.Context, cfg Config, log *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	opts := persistence.DefaultOptions(filepath.Join(cfg.DataDir, "store"))
	opts.Sync = cfg.Sync
	opts.GCInterval = cfg.GCInterval
	opts.Logger = log.With("component", "store")
	store, err := persistence.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	classicKind := classic.NewKind(classic.Options{Store: store, Log: log, QueueBudget: cfg.QueueMemory, GlobalBudget: cfg.TotalMemory})
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, classicKind)
	if cfg.NodeName == "" {
		cfg.NodeName = nodeName()
	}
	metadata := raftStores(store)
	inCluster, err := clustered(cfg, metadata)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("reading the cluster's state: %w", err)
	}
	joining, err := readJoinFile(cfg.DataDir)
	if err != nil {
		store.Close()
		return nil, err
	}
	b := &Broker{cfg: cfg, log: log, store: store, kind: classicKind, served: make(chan error, 1), metadata: metadata}
	started := time.Now()
	var vhosts *vhost.Registry
	var users *auth.Store
	if joining != "" && !inCluster {
		// join_cluster on a node of its own: reset now, then join.
		if err := b.reset(kinds, classicKind); err != nil {
			store.Close()
			return nil, err
		}
		b.cfg.ClusterSeeds = []string{joining}
		inCluster = true
	}
	if inCluster {
		vhosts, users, err = b.startClustered(ctx, kinds, classicKind)
	} else {
		vhosts, users, err = b.startAlone(kinds, classicKind)
	}
	if err != nil {
		b.stopCluster()
		store.Close()
		return nil, err
	}
	log.Info("recovered definitions and messages", "elapsed", time.Since(started).Round(time.Millisecond))
	// From here on the classic kind's timers run: stop them before the
	// store closes.
	stop := func() {
		b.stopCluster()
		classicKind.Stop()
		store.Close()
	}
	if cfg.LoadDefinitions != "" {
		data, err := os.ReadFile(cfg.LoadDefinitions)
		if err == nil {
			err = mgmt.Import(vhosts, users, data, "", log)
		}
		if err != nil {
			stop()
			return nil, fmt.Errorf("load_definitions %s: %w", cfg.LoadDefinitions, err)
		}
		log.Info("definitions loaded", "file", cfg.LoadDefinitions)
	}
	deps := amqp.Deps{Users: users, Vhosts: vhosts, Log: log}
	if inCluster {
		deps.ConnectionIDs = connectionIDs(cfg.NodeName)
	}
	srv, err := amqp.NewServer(cfg.AMQP, deps)
	if err != nil {
		stop()
		return nil, err
	}
	vhosts.OnDelete(func(name string) {
		srv.CloseVhostConnections(name, "vhost '"+name+"' is deleted")
	})
	// While a memory or disk alarm is set, publishers are blocked.
	alarms := flowcontrol.New(flowcontrol.Config{MemoryWatermark: cfg.MemoryWatermark, DiskFreeLimit: cfg.DiskFreeLimit,
		DataDir: cfg.DataDir, Log: log, OnChange: func(s flowcontrol.Status) { srv.SetAlarm(s.Reason()) },
		Relieve: debug.FreeOSMemory, OnLimit: setGoMemoryLimit})
	srv.SetAlarm(alarms.Status().Reason())
	alarms.Start()
	stopAll := stop
	stop = func() {
		alarms.Close()
		stopAll()
	}
	b.amqp, b.alarms = srv, alarms
	node := mgmt.Node{Name: cfg.NodeName, Version: cfg.AMQP.Version, Started: started, Memory: flowcontrol.ResidentMemory}
	var amqpAddrs []any
	closeAMQP := func() {
		for _, ln := range b.lns {
			ln.Close()
		}
	}
	// loadTLS loads a TLS listener's files, to be reloaded with the rest.
	loadTLS := func(o tlsconf.Options) (*tlsconf.Files, error) {
		f, err := tlsconf.Load(o)
		if err == nil {
			b.tls = append(b.tls, f)
		}
		return f, err
	}
	var amqpTLS *tlsconf.Files
	if cfg.TLSListen != "" {
		if amqpTLS, err = loadTLS(cfg.TLS); err != nil {
			stop()
			return nil, err
		}
	}
	for _, l := range []struct{ protocol, addr, key string }{{"amqp", cfg.Listen, "listen"}, {"amqp/ssl", cfg.TLSListen, "tls_listen"}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			closeAMQP()
			stop()
			return nil, fmt.Errorf("listen (%s): %w", l.protocol, err)
		}
		node.Listeners = append(node.Listeners, listenerOf(l.protocol, ln.Addr()))
		amqpAddrs = append(amqpAddrs, l.key, ln.Addr().String())
		if l.protocol == "amqp/ssl" {
			ln = amqpTLS.Listener(ln)
		}
		b.lns = append(b.lns, ln)
	}
	// The management API and the metrics: listen first, so that the node
	// description names the ports, then serve.
	type httpListener struct {
		protocol string
		ln       net.Listener
	}
	var hls []httpListener
	var httpAddrs []any
	for _, l := range []struct {
		protocol, addr string
		tls            *tlsconf.Options
	}{
		{"http", cfg.MgmtListen, nil}, {"prometheus", cfg.PrometheusListen, nil},
		{"https", cfg.MgmtTLSListen, &cfg.MgmtTLS}, {"https/prometheus", cfg.PrometheusTLSListen, &cfg.PrometheusTLS},
	} {
		if l.addr == "" {
			continue
		}
		fail := func(err error) (*Broker, error) {
			closeAMQP()
			for _, h := range hls {
				h.ln.Close()
			}
			stop()
			return nil, fmt.Errorf("listen (%s): %w", l.protocol, err)
		}
		hl, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fail(err)
		}
		if l.tls != nil {
			f, err := loadTLS(*l.tls)
			if err != nil {
				hl.Close()
				return fail(err)
			}
			hl = tls.NewListener(hl, f.Config())
		}
		hls = append(hls, httpListener{l.protocol, hl})
		node.Listeners = append(node.Listeners, listenerOf(l.protocol, hl.Addr()))
		httpAddrs = append(httpAddrs, l.protocol, hl.Addr().String())
	}
	md := mgmt.Deps{Vhosts: vhosts, Users: users, AMQP: srv, Alarms: alarms, Node: node, Log: log,
		SessionTimeout: cfg.MgmtSessionTimeout}
	if b.node != nil {
		md.Cluster = b.node
		md.ClusterName = b.defs.clusterName
		md.SetClusterName = func(name string) error {
			_, err := b.names.Replicate([]byte("=" + name))
			return err
		}
	} else {
		md.JoinAtRestart = func(addr string) error { return writeJoinFile(cfg.DataDir, addr) }
	}
	b.mgmt = mgmt.New(md)
	for _, h := range hls {
		var handler http.Handler = b.mgmt
		if strings.HasSuffix(h.protocol, "prometheus") {
			handler = b.mgmt.Metrics()
		}
		hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		b.https = append(b.https, hs)
		go func() { _ = hs.Serve(h.ln) }()
	}
	go func() { b.served <- srv.Serve(b.lns...) }()
	log.Info("Warren started", append(append(amqpAddrs, "data_dir", cfg.DataDir, "version", cfg.AMQP.Version), httpAddrs...)...)
	return b, nil
}

// listenerOf describes a listening address.
func listenerOf(protocol string, a net.Addr) mgmt.Listener {
	l := mgmt.Listener{Protocol: protocol}
	if ta, ok := a.(*net.TCPAddr); ok {
		l.IP, l.Port = ta.IP.String(), ta.Port
	}
	return l
}

// closeHTTP stops the HTTP servers.
func (b *Broker) closeHTTP() {
	for _, hs := range b.https {
		_ = hs.Close()
	}
	if b.mgmt != nil {
		b.mgmt.Close()
	}
}

// Addr returns the plain AMQP listener's address (the TLS listener's
// when there is no plain one).
func (b *Broker) Addr() net.Addr { return b.lns[0].Addr() }

// ReloadTLS reads the TLS certificate, key and CA files again (on SIGHUP):
// new connections use them, established ones go on. Without a TLS
// listener it does nothing.
func (b *Broker) ReloadTLS() error {
	if len(b.tls) == 0 {
		return nil
	}
	var errs []error
	for _, f := range b.tls {
		errs = append(errs, f.Reload())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.log.Info("TLS certificate, key and CA files reloaded")
	return nil
}

// Failed is closed when the node can no longer keep its durability
// promises and must stop: its Raft write-ahead log failed (Err says why).
// A restart recovers what was synced.
func (b *Broker) Failed() <-chan struct{} { return b.store.RaftLogFailed() }

// Err returns why Failed was closed, nil before.
func (b *Broker) Err() error { return b.store.RaftLogErr() }

// Shutdown stops accepting, closes every connection with 320
// CONNECTION_FORCED and waits for them (until ctx ends), then stops the rest.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.log.Info("Warren stopping")
	b.closeHTTP()
	b.alarms.Close()
	err := b.amqp.Shutdown(ctx)
	for _, ln := range b.lns {
		ln.Close()
	}
	if serr := <-b.served; serr != nil {
		err = errors.Join(err, serr)
	}
	b.stopCluster()
	b.kind.Stop() // what falls due from now on waits for the next start
	if serr := b.store.Close(); serr != nil {
		err = errors.Join(err, fmt.Errorf("closing the store: %w", serr))
	}
	b.log.Info("Warren stopped")
	return err
}
