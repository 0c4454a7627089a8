// Package remote is the stand-in kind for queues that live on another
// node of a cluster: every node holds every queue's definition, and a
// queue declared elsewhere is, here, a remote.Queue that forwards what a
// client on this node does (publish, consume, get, ack, purge) to the
// queue's node and brings back deliveries, confirms and counts. The same
// Service answers the other nodes' forwarded calls for this node's queues.
package remote

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/queue"
)

// Name is the kind's name (no declare names it: the vhost picks it for
// queues whose node is another).
const Name = "remote"

// Peers is the cluster as forwarding uses it; cluster.Node implements it.
type Peers interface {
	Name() string
	Call(ctx context.Context, node string, m cluster.Method, payload []byte) ([]byte, error)
	Cast(ctx context.Context, node string, m cluster.Method, payload []byte) error
	Handle(m cluster.Method, h cluster.Handler)
	Running(node string) bool
}

// Lookup finds one of this node's queues by virtual host, name and id.
type Lookup func(vhost, name string, id uint64) (queue.Queue, error)

// The forwarding calls.
const (
	methodPublish   cluster.Method = 32 + iota // call: a publish to a queue here
	methodDurable                              // cast: publishes that are safe now
	methodGet                                  // call: basic.get
	methodSettle                               // cast: acks, rejects, requeues
	methodPurge                                // call
	methodStats                                // call
	methodConsume                              // call: basic.consume
	methodCancel                               // call: basic.cancel
	methodDeliver                              // cast: a delivery to a consumer on the caller's node
	methodCredit                               // cast: deliveries the consumer's node passed on
	methodCancelled                            // cast: the queue dropped a consumer (deleted)
	methodForget                               // cast: a cancelled consumer's deliveries are all settled
	methodDrop                                 // cast: the consumer's node no longer knows the consumer
)

// window is how many deliveries a consumer's node may hold that its
// channel has not taken yet: past it the queue stops delivering to that
// consumer until credit comes back.
const window = 256

// callTimeout bounds a forwarded call.
const callTimeout = 10 * time.Second

// Service forwards for one node: stand-ins for other nodes' queues, and
// the answers to other nodes' calls for its own.
type Service struct {
	peers  Peers
	lookup Lookup
	log    *slog.Logger

	mu       sync.Mutex
	ledgers  map[string]*queue.ReportLedger // per queue node: publishes forwarded there
	standIns map[uint64]*standIn            // consumers here of queues elsewhere, by id
	// consumerIDs are the ids of those consumers, cancelled ones too.
	consumerIDs map[*queue.Consumer]consumerID
	served      map[servedKey]*served   // consumers elsewhere of queues here
	gets        map[getKey]gotEntry     // basic.gets elsewhere of queues here, unsettled
	durables    map[string]*durableLink // per publishing node
	outboxes    map[string]*outbox      // per consumer node: deliveries, in order
	// cancelled are consumers cancelled lately, so that a consume call
	// overtaken by its cancel is refused.
	cancelled map[servedKey]time.Time
	// dropped are, per node, the consumers of its that this node dropped
	// when it went away: it is told once it answers again, since it may
	// not have seen itself go (a partition).
	dropped map[string][]uint64
	nextID  atomic.Uint64
	closed  bool // Close was called: no more goroutines start
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New returns the node's forwarding service and registers its calls.
func New(peers Peers, lookup Lookup, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{peers: peers, lookup: lookup, log: log, ledgers: map[string]*queue.ReportLedger{}, standIns: map[uint64]*standIn{},
		served: map[servedKey]*served{}, gets: map[getKey]gotEntry{}, durables: map[string]*durableLink{},
		outboxes: map[string]*outbox{}, consumerIDs: map[*queue.Consumer]consumerID{}, cancelled: map[servedKey]time.Time{}, dropped: map[string][]uint64{}, stop: make(chan struct{})}
	for m, h := range map[cluster.Method]cluster.Handler{
		methodPublish: s.onPublish, methodDurable: s.onDurable, methodGet: s.onGet, methodSettle: s.onSettle,
		methodPurge: s.onPurge, methodStats: s.onStats, methodConsume: s.onConsume, methodCancel: s.onCancel,
		methodDeliver: s.onDeliver, methodCredit: s.onCredit, methodCancelled: s.onCancelled, methodForget: s.onForget,
		methodDrop: s.onDrop,
	} {
		peers.Handle(m, h)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watch()
	}()
	return s
}

// Close stops the service's goroutines.
func (s *Service) Close() {
	close(s.stop)
	s.wg.Wait()
	// Closed outside the lock: an outbox that fails to send takes it.
	s.mu.Lock()
	s.closed = true
	outboxes, durables := s.outboxes, s.durables
	s.outboxes, s.durables = map[string]*outbox{}, map[string]*durableLink{}
	s.mu.Unlock()
	for _, o := range outboxes {
		o.close()
	}
	for _, d := range durables {
		d.close()
	}
}

// New implements queue.Kind: the stand-in for a queue on cfg.Node.
func (s *Service) New(cfg queue.Config) (queue.Queue, error) {
	q := &Queue{s: s, cfg: cfg, settings: cfg.Settings}
	return q, nil
}

func (s *Service) ledger(node string) *queue.ReportLedger {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.ledgers[node]
	if l == nil {
		l = queue.NewReportLedger()
		s.ledgers[node] = l
	}
	return l
}

// watch notices nodes that went away: what their consumers and gets held
// of this node's queues goes back to the queues, and this node's
// consumers of their queues are cancelled.
func (s *Service) watch() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.pruneConsumerIDs()
		s.tellDropped()
		for _, node := range s.nodesInUse() {
			if !s.peers.Running(node) {
				s.nodeDown(node, errors.New("node "+node+" is down"))
			}
		}
	}
}

func (s *Service) nodesInUse() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for k := range s.served {
		add(k.node)
	}
	for k := range s.gets {
		add(k.node)
	}
	for _, si := range s.standIns {
		add(si.q.cfg.Node)
	}
	for n, l := range s.ledgers {
		if l.Outstanding() {
			add(n)
		}
	}
	return out
}

// nodeDown settles what a lost node held and fails what it owed.
func (s *Service) nodeDown(node string, err error) {
	s.mu.Lock()
	var lost []*served
	for k, sv := range s.served {
		if k.node == node {
			lost = append(lost, sv)
			delete(s.served, k)
			s.dropped[node] = append(s.dropped[node], k.id)
		}
	}
	var gets []gotEntry
	for k, g := range s.gets {
		if k.node == node {
			gets = append(gets, g)
			delete(s.gets, k)
		}
	}
	var cancelled []*standIn
	for id, si := range s.standIns {
		if si.q.cfg.Node == node {
			cancelled = append(cancelled, si)
			delete(s.standIns, id)
			delete(s.consumerIDs, si.c)
		}
	}
	l := s.ledgers[node]
	s.mu.Unlock()
	for _, sv := range lost {
		sv.requeueAll()
	}
	for _, g := range gets {
		g.q.Settle(nil, []queue.Entry{g.e}, queue.Requeue)
	}
	for _, si := range cancelled {
		si.c.Sink.Cancelled(si.c)
	}
	if l != nil {
		l.FailAll(err)
	}
	if len(lost)+len(gets)+len(cancelled) > 0 {
		s.log.Warn("forwarding: a node went away", "node", node, "its_consumers", len(lost), "its_gets", len(gets),
			"consumers_cancelled_here", len(cancelled))
	}
}

// tellDropped tells nodes that answer again which of their consumers this
// node dropped while they were away: those are cancelled there too.
func (s *Service) tellDropped() {
	s.mu.Lock()
	var nodes []string
	for n := range s.dropped {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()
	for _, n := range nodes {
		if !s.peers.Running(n) {
			continue
		}
		s.mu.Lock()
		ids := s.dropped[n]
		delete(s.dropped, n)
		s.mu.Unlock()
		for _, id := range ids {
			if err := s.cast(n, methodCancelled, new(cluster.Fields).Uint(id).Bytes()); err != nil {
				s.mu.Lock()
				s.dropped[n] = append(s.dropped[n], id)
				s.mu.Unlock()
			}
		}
	}
}

// status bytes that open an answer.
const (
	statusOK       = 0
	statusAMQP     = 1 // a *wire.Error: code, text
	statusOther    = 2 // text
	resultEnqueued = 1
	resultRejected = 2
	resultGone     = 3
	resultDup      = 4
)

// answer encodes an outcome: OK and the rest of e, or err.
func answer(e *cluster.Fields, err error) []byte {
	if err == nil {
		return append([]byte{statusOK}, e.Bytes()...)
	}
	var we *wire.Error
	if errors.As(err, &we) {
		out := &cluster.Fields{statusAMQP}
		return out.Uint(uint64(we.Code)).Str(we.Text).Bytes()
	}
	out := &cluster.Fields{statusOther}
	return out.Str(err.Error()).Bytes()
}

// unanswer decodes an answer into its OK body or its error.
func unanswer(b []byte, err error) (*cluster.FieldReader, error) {
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, cluster.ErrMalformed
	}
	d := cluster.ReadFields(b[1:])
	switch b[0] {
	case statusOK:
		return d, nil
	case statusAMQP:
		code := d.Uint()
		text := d.Str()
		if d.Err() != nil {
			return nil, d.Err()
		}
		return nil, &wire.Error{Code: uint16(code), Text: text}
	default:
		text := d.Str()
		return nil, errors.New(text)
	}
}

// call makes a forwarded call to node.
func (s *Service) call(node string, m cluster.Method, e *cluster.Fields) (*cluster.FieldReader, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return unanswer(s.peers.Call(ctx, node, m, e.Bytes()))
}

func (s *Service) cast(node string, m cluster.Method, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return s.peers.Cast(ctx, node, m, payload)
}

// queueRef names a queue in a call: its virtual host, name and id.
func queueRef(e *cluster.Fields, cfg *queue.Config) *cluster.Fields {
	return e.Str(cfg.VHost).Str(cfg.Name).Uint(cfg.ID)
}

func (s *Service) findQueue(d *cluster.FieldReader) (queue.Queue, error) {
	vh, name, id := d.Str(), d.Str(), d.Uint()
	if d.Err() != nil {
		return nil, d.Err()
	}
	return s.lookup(vh, name, id)
}

// encodeEntry writes a delivered entry; decodeEntry reads it back with a
// message of its own.
func encodeEntry(e *cluster.Fields, en queue.Entry) *cluster.Fields {
	e.Uint(en.Seq).Uint(uint64(en.Size)).Uint(uint64(en.Expires)).Uint(uint64(en.Returns)).Uint(uint64(en.Priority)).Bool(en.Redelivered)
	return e.Bin(en.Msg.Data())
}

func decodeEntry(d *cluster.FieldReader) (queue.Entry, error) {
	en := queue.Entry{Seq: d.Uint(), Size: int64(d.Uint()), Expires: int64(d.Uint()), Returns: uint32(d.Uint()),
		Priority: uint8(d.Uint()), Redelivered: d.Bool()}
	data := d.Bin()
	if d.Err() != nil {
		return en, d.Err()
	}
	m, err := queue.DecodeMessage(data, "", "")
	en.Msg = m
	return en, err
}
