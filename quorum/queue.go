package quorum

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/queue"
)

// Queue is one quorum queue on one node. On its members it holds the
// group's Raft and the applied state; on every node it proposes the
// commands its clients' publishes, consumers and settlements make, through
// the leader.
type Queue struct {
	k      *Kind
	cfg    queue.Config
	ledger *queue.ReportLedger
	prop   proposer
	// getKey is this node's key for basic.get.
	getKey ConsumerKey

	mu       sync.Mutex
	r        *raft.Raft // nil when this node is not a member
	trans    raft.Transport
	m        *Machine
	settings queue.Settings
	locals   map[*queue.Consumer]*local
	byKey    map[ConsumerKey]*local
	// forwarded: consumers here, on a node without a replica, that
	// consume through a member's queue (Options.Forward); kept after the
	// consumer is removed, for its channel's settlements, while the
	// stand-in serves it.
	forwarded map[*queue.Consumer]*forward
	deleted   bool
	// nudge: the leader applied deliveries to consumers on other nodes,
	// which learn of them with the next append (see proposer.run).
	nudge bool
	// expiry: the leader's timer for the head message's TTL.
	expiry   *time.Timer
	expiryAt int64
	// lastUsed: when a consumer came or went or a get was made.
	lastUsed time.Time
	// replayed is the last log index when the group started here: what a
	// restart applies again up to there was carried out before.
	replayed uint64
	// dead are dead letters waiting for the leader's dead-lettering
	// goroutine (Apply must not wait on the virtual host, which may be
	// deleting the queue and waiting for Apply).
	dead        []DeadLetter
	deadRunning bool
	// The leader's worker for the dead letters the state keeps (at least
	// once): running, when it may try again after a failure, and whether
	// it said so in the log already.
	keptRunning bool
	keptRetry   time.Time
	keptWarned  bool

	// On a node without a replica: the counts last asked (askStats).
	statsMu sync.Mutex
	statsAt time.Time
	stats   queue.Stats
}

// local is a consumer on this node.
type local struct {
	c       *queue.Consumer
	key     ConsumerKey
	started bool          // consume-ok went out: deliveries may too
	pending []queue.Entry // deliveries its sink has not taken yet
	removed bool          // cancelled here; kept until the state forgets it
}

func newQueue(k *Kind, cfg queue.Config) *Queue {
	q := &Queue{k: k, cfg: cfg, ledger: queue.NewReportLedger(), settings: cfg.Settings,
		locals: map[*queue.Consumer]*local{}, byKey: map[ConsumerKey]*local{}, forwarded: map[*queue.Consumer]*forward{}, lastUsed: time.Now(),
		getKey: ConsumerKey{Node: k.o.Node, Boot: k.boot}}
	q.prop.q = q
	return q
}

// logCache is how many recent log entries a group keeps in memory.
const logCache = 128

// raftConfig is the Raft configuration of a group on this node.
func (q *Queue) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(q.k.o.Node)
	hb := q.k.o.HeartbeatTimeout
	if len(q.cfg.Members) == 1 {
		hb = 20 * time.Millisecond // nobody to wait for
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = hb, hb, hb/2
	// Followers learn of new commits from the next append: the leader
	// sends one when they need to know (nudge), not every 50 ms.
	rc.CommitTimeout = 500 * time.Millisecond
	rc.MaxAppendEntries = 512
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = 8192
	rc.SnapshotInterval = 20 * time.Second
	rc.TrailingLogs = 1024
	rc.Logger = cluster.RaftLogger(q.k.log, "quorum "+q.cfg.Name, q.k.logLimit)
	return rc
}

// dropStaleLog empties a log that ends before the group's latest
// snapshot: the node stopped between raft installing the snapshot and
// raft emptying the log, which may hold entries the group replaced since.
// Raft would have emptied it; it must not serve them meanwhile.
func dropStaleLog(log raft.LogStore, snaps raft.SnapshotStore) error {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return err
	}
	first, err := log.FirstIndex()
	if err != nil {
		return err
	}
	last, err := log.LastIndex()
	if err != nil || last == 0 || last >= metas[0].Index {
		return err
	}
	return log.DeleteRange(first, last)
}

// startGroup starts the group's Raft on this node, bootstrapping a new
// group (every member does, with the same configuration).
func (q *Queue) startGroup() error {
	st := q.k.o.Store
	id := q.cfg.ID
	stable, snaps := st.RaftStable(id), st.RaftSnapshots(id, 2)
	// The node's groups share one write-ahead log: their appends share
	// writes and syncs, and entries stay out of Badger's LSM tree.
	shared, err := st.SharedRaftLog(id)
	if err != nil {
		return err
	}
	if err := dropStaleLog(shared, snaps); err != nil {
		return err
	}
	// The leader reads back what it sends, and every member what it
	// applies: recent entries come from memory.
	logs, err := raft.NewLogCache(logCache, shared)
	if err != nil {
		return err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return err
	}
	trans, addr := q.k.transport(id)
	q.mu.Lock()
	q.m = NewMachine(q.settings)
	q.trans = trans
	q.replayed = last
	q.mu.Unlock()
	r, err := raft.NewRaft(q.raftConfig(), (*fsm)(q), logs, stable, snaps, trans)
	if err != nil {
		closeTransport(trans)
		return err
	}
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		r.Shutdown()
		closeTransport(trans)
		return err
	}
	if !existing {
		var servers []raft.Server
		for _, m := range q.cfg.Members {
			a := raft.ServerAddress(q.k.addrOf(m))
			if m == q.k.o.Node {
				a = addr
			}
			servers = append(servers, raft.Server{ID: raft.ServerID(m), Address: a})
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			r.Shutdown()
			closeTransport(trans)
			return err
		}
	}
	q.mu.Lock()
	q.r = r
	q.mu.Unlock()
	if !existing && q.cfg.Members[0] == q.k.o.Node {
		// The log starts with the settings the queue was declared with: a
		// replay after a restart applies them, not the policies of then.
		q.prop.submit(op{cmd: SettingsCommand(now(), q.settings), retry: true})
	}
	if !existing && len(q.cfg.Members) > 1 {
		go q.leadFromFirst(r)
	}
	if existing {
		// Consumers of this node's earlier process are gone.
		q.prop.submit(op{cmd: DropNodeCommand(now(), q.k.o.Node, q.k.boot), retry: true})
	}
	return nil
}

// leadFromFirst hands a new group's leadership to its first member (the
// declaring node, which placed the group so that leaders spread over the
// nodes) if another member won the first election.
func (q *Queue) leadFromFirst(r *raft.Raft) {
	first := q.cfg.Members[0]
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && !q.Deleted() {
		if _, id := r.LeaderWithID(); id != "" {
			if r.State() == raft.Leader && string(id) != first {
				if err := r.LeadershipTransferToServer(raft.ServerID(first), raft.ServerAddress(q.k.addrOf(first))).Error(); err != nil {
					q.k.log.Debug("quorum queue: handing leadership to the first member", "queue", q.cfg.Name, "err", err)
				}
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func closeTransport(t raft.Transport) {
	if c, ok := t.(raft.WithClose); ok {
		_ = c.Close()
	}
}

// stopGroup stops the group's Raft on this node.
func (q *Queue) stopGroup() {
	q.mu.Lock()
	r, trans := q.r, q.trans
	q.r = nil
	if q.expiry != nil {
		q.expiry.Stop()
	}
	q.mu.Unlock()
	q.prop.close()
	if r != nil {
		_ = r.Shutdown().Error()
	}
	if trans != nil {
		closeTransport(trans)
	}
}

// raftOf returns the group's Raft on this node, nil when not a member.
func (q *Queue) raftOf() *raft.Raft {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.r
}

// leads reports whether this node leads the group.
func (q *Queue) leads() bool {
	r := q.raftOf()
	return r != nil && r.State() == raft.Leader
}

// Leader returns the node that leads the queue's group now, "" when none
// is known.
func (q *Queue) Leader() string {
	if r := q.raftOf(); r != nil {
		_, id := r.LeaderWithID()
		return string(id)
	}
	return q.prop.leaderHint()
}

// Members returns the queue's members, the nodes its group runs on.
func (q *Queue) Members() []string { return slices.Clone(q.cfg.Members) }

// Online returns the members that are running.
func (q *Queue) Online() []string {
	c := q.k.o.Cluster
	if c == nil {
		return q.Members()
	}
	var out []string
	for _, m := range q.cfg.Members {
		if m == q.k.o.Node || c.Running(m) {
			out = append(out, m)
		}
	}
	return out
}

// Name implements queue.Queue.
func (q *Queue) Name() string { return q.cfg.Name }

// Config implements queue.Queue.
func (q *Queue) Config() *queue.Config { return &q.cfg }

// Settings implements queue.Queue.
func (q *Queue) Settings() queue.Settings {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.settings
}

// SetSettings implements queue.Queue: every node proposes the change (the
// same command; applying it twice changes nothing more).
func (q *Queue) SetSettings(s queue.Settings) {
	s = withDefaults(s)
	q.mu.Lock()
	q.settings = s
	q.mu.Unlock()
	q.prop.submit(op{cmd: SettingsCommand(now(), s), retry: true})
}

// backlog bounds the enqueues a queue takes before their commands are
// applied: a publisher then waits for the oldest (backpressure).
const backlog = 4096

// Enqueue implements queue.Queue. The message is safe once its command is
// committed (on a majority of the members); a refusal (the queue is full
// with reject-publish, or has no leader in time) nacks it.
func (q *Queue) Enqueue(m *queue.Message) queue.Receipt {
	if q.Deleted() {
		return queue.Receipt{Result: queue.Gone}
	}
	pos := q.ledger.Take()
	q.prop.submit(op{cmd: EnqueueCommand(now(), m.Data()), pos: pos})
	r := queue.Receipt{Result: queue.Enqueued, Promise: queue.Promise{Ledger: q.ledger, First: pos, Last: pos}}
	if pos > backlog {
		r.Backpressure = queue.Promise{Ledger: q.ledger, First: pos - backlog, Last: pos - backlog}
	}
	return r
}

// AddConsumer implements queue.Queue: the consumer is attached through
// the leader before consume-ok goes out; deliveries applied here before
// then wait.
func (q *Queue) AddConsumer(c *queue.Consumer, started func()) error {
	if !slices.Contains(q.cfg.Members, q.k.o.Node) {
		// Deliveries are made by the members as they apply the queue's
		// commands: a node without a replica consumes through one.
		return q.forwardConsumer(c, started)
	}
	l := &local{c: c, key: ConsumerKey{Node: q.k.o.Node, Boot: q.k.boot, ID: q.k.consumerID()}}
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return wire.Errorf(wire.NotFound, "no "+describe(q.cfg))
	}
	q.locals[c] = l
	q.byKey[l.key] = l
	q.lastUsed = time.Now()
	q.mu.Unlock()
	fx, err := q.prop.callAgain(AttachCommand(now(), l.key, c.Prefetch, c.Priority, c.Exclusive), attachAgain)
	var we *wire.Error
	switch {
	case err == nil && fx.Refused:
		err = wire.Errorf(wire.AccessRefused, describe(q.cfg)+" in exclusive use")
	case err != nil && !errors.As(err, &we):
		err = wire.Errorf(wire.InternalError, "consuming from "+describe(q.cfg)+": "+err.Error())
	}
	if err != nil {
		q.mu.Lock()
		delete(q.locals, c)
		delete(q.byKey, l.key)
		q.mu.Unlock()
		// The attach may have been applied all the same.
		q.prop.submit(op{cmd: DetachCommand(now(), l.key, false), retry: true})
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if started != nil {
		started()
	}
	l.started = true
	q.flushLocked(l)
	return nil
}

// attachAgain is how long a consumer's attach is tried while the group
// has no leader (an election, the leadership transfer after a declare).
const attachAgain = 10 * time.Second

// forward is a consumer here, on a node without a replica, that consumes
// through a stand-in for a member's queue: inner is the stand-in's
// consumer, whose sink relays to the channel's.
type forward struct {
	q         queue.Queue // the stand-in
	inner     *queue.Consumer
	member    string
	attaching bool // AddConsumer is under way
	moving    bool // its member went: forwardAgain looks for another
	removed   bool // the channel removed the consumer
}

// serving is what a stand-in tells of its consumers (remote.Queue has it):
// whether it still serves c, cancelled but with settlements to pass on
// included.
type serving interface {
	Serves(c *queue.Consumer) bool
}

// relay is the sink of a forwarded consumer's stand-in consumer: it hands
// deliveries to the channel as the channel's consumer c, and a cancel (the
// member went down, or dropped the consumer) to the queue, which attaches
// c through another member or passes the cancel on.
type relay struct {
	q *Queue
	c *queue.Consumer
}

func (r relay) Deliver(_ *queue.Consumer, e queue.Entry) bool { return r.c.Sink.Deliver(r.c, e) }

func (r relay) Cancelled(inner *queue.Consumer) { go r.q.forwardAgain(r.c, inner) }

// forwardConsumer adds c, on a node without a replica, as a consumer of
// the queue on a member (its leader when known and running): the member
// delivers to it through a stand-in, which also takes its settlements.
// If that member goes down, c goes on through another.
func (q *Queue) forwardConsumer(c *queue.Consumer, started func()) error {
	if q.k.o.Forward == nil {
		return wire.Errorf(wire.NotImplemented, "consuming from "+describe(q.cfg)+" on node "+q.k.o.Node+
			", which holds no replica of it: consume on one of "+strings.Join(q.cfg.Members, ", "))
	}
	return q.attachForward(c, started, "")
}

// attachForward attaches c through a running member other than avoid.
func (q *Queue) attachForward(c *queue.Consumer, started func(), avoid string) error {
	online := slices.DeleteFunc(q.Online(), func(m string) bool { return m == avoid })
	if len(online) == 0 {
		return wire.Errorf(wire.InternalError, "no member of "+describe(q.cfg)+" is running")
	}
	member := online[0]
	if l := q.Leader(); slices.Contains(online, l) {
		member = l
	}
	cfg := q.cfg
	cfg.Node = member
	sq, err := q.k.o.Forward(cfg)
	if err != nil {
		return err
	}
	inner := &queue.Consumer{Tag: c.Tag, NoAck: c.NoAck, Exclusive: c.Exclusive, Priority: c.Priority,
		Prefetch: c.Prefetch, Timeout: c.Timeout, Queue: sq}
	inner.Sink = relay{q: q, c: c}
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return wire.Errorf(wire.NotFound, "no "+describe(q.cfg))
	}
	// Consumers the stand-ins forgot (removed and settled, or cancelled)
	// are forgotten here too.
	for fc, f := range q.forwarded {
		busy := f.attaching || f.moving && !f.removed
		if sv, ok := f.q.(serving); ok && !busy && !sv.Serves(f.inner) {
			delete(q.forwarded, fc)
		}
	}
	prev := q.forwarded[c]
	f := &forward{q: sq, inner: inner, member: member, attaching: true}
	q.forwarded[c] = f
	q.mu.Unlock()
	err = sq.AddConsumer(inner, started)
	q.mu.Lock()
	f.attaching = false
	removed := f.removed
	if err != nil && q.forwarded[c] == f {
		if prev != nil {
			q.forwarded[c] = prev // the consumer it replaces is still the one
		} else {
			delete(q.forwarded, c)
		}
	}
	q.mu.Unlock()
	if err == nil && removed {
		sq.RemoveConsumer(inner) // its channel removed it meanwhile
	}
	return err
}

// How long a forwarded consumer whose member went tries to attach through
// another (the group elects a new leader meanwhile), and how often.
const (
	forwardAgainFor   = 30 * time.Second
	forwardAgainEvery = 250 * time.Millisecond
)

// forwardAgain attaches c through another member after inner, its
// stand-in consumer, was cancelled; when that cannot be done within
// forwardAgainFor, or the queue is gone, c's channel is told
// (basic.cancel). What c's channel held unacknowledged from the member
// that went comes again: the group gives back what a lost node's
// consumers held.
func (q *Queue) forwardAgain(c *queue.Consumer, inner *queue.Consumer) {
	q.mu.Lock()
	f := q.forwarded[c]
	if f == nil || f.inner != inner || f.removed {
		q.mu.Unlock()
		return // removed by its channel, or already moved
	}
	f.moving = true // kept meanwhile: its channel may remove it or settle
	member := f.member
	q.mu.Unlock()
	deadline := time.Now().Add(forwardAgainFor)
	for {
		q.mu.Lock()
		deleted, current := q.deleted, q.forwarded[c] == f && !f.removed
		q.mu.Unlock()
		if !current {
			return
		}
		var err error
		if !deleted {
			if err = q.attachForward(c, nil, member); err == nil {
				q.k.log.Info("quorum queue: a consumer here goes on through another member", "queue", q.cfg.Name, "from", member)
				return
			}
		}
		var we *wire.Error
		if deleted || time.Now().After(deadline) || errors.As(err, &we) && we.Code == wire.NotFound {
			q.k.log.Info("quorum queue: a consumer here lost its member and no other takes it; it is cancelled",
				"queue", q.cfg.Name, "member", member, "err", err)
			q.mu.Lock()
			if q.forwarded[c] == f {
				delete(q.forwarded, c)
			}
			q.mu.Unlock()
			c.Sink.Cancelled(c)
			return
		}
		q.k.log.Debug("quorum queue: a consumer here could not attach through another member yet", "queue", q.cfg.Name, "err", err)
		time.Sleep(forwardAgainEvery)
	}
}

// RemoveConsumer implements queue.Queue: the consumer gets no more
// messages; those its sink had not taken go back, and its channel settles
// the others.
func (q *Queue) RemoveConsumer(c *queue.Consumer) {
	q.mu.Lock()
	if f := q.forwarded[c]; f != nil {
		f.removed = true
		q.mu.Unlock()
		f.q.RemoveConsumer(f.inner)
		return
	}
	l := q.locals[c]
	if l == nil || l.removed {
		q.mu.Unlock()
		return
	}
	l.removed = true
	q.lastUsed = time.Now()
	back := seqsOf(l.pending)
	l.pending = nil
	q.mu.Unlock()
	if len(back) > 0 {
		q.prop.settle(l.key, queue.Release, back)
	}
	q.prop.submit(op{cmd: DetachCommand(now(), l.key, true), retry: true})
}

func seqsOf(entries []queue.Entry) []uint64 {
	seqs := make([]uint64, len(entries))
	for i, e := range entries {
		seqs[i] = e.Seq
	}
	return seqs
}

// Resume implements queue.Queue.
func (q *Queue) Resume(c *queue.Consumer) {
	q.mu.Lock()
	if f := q.forwarded[c]; f != nil {
		q.mu.Unlock()
		f.q.Resume(f.inner)
		return
	}
	defer q.mu.Unlock()
	if l := q.locals[c]; l != nil && !l.removed {
		q.flushLocked(l)
	}
}

// flushLocked hands a consumer the deliveries that waited, while its sink
// takes them.
func (q *Queue) flushLocked(l *local) {
	n := 0
	for _, e := range l.pending {
		if !l.c.Sink.Deliver(l.c, e) {
			break
		}
		n++
	}
	if n > 0 {
		q.delivered(l, l.pending[:n])
		l.pending = slices.Delete(l.pending, 0, n)
	}
}

// deliverLocked hands e to a consumer here, or keeps it until the
// consumer can take it.
func (q *Queue) deliverLocked(l *local, e queue.Entry) {
	if e.Returns > 0 {
		e = queue.WithDeliveryCount(e)
	}
	if l.removed {
		q.prop.settle(l.key, queue.Release, []uint64{e.Seq})
		return
	}
	if !l.started || len(l.pending) > 0 || !l.c.Sink.Deliver(l.c, e) {
		l.pending = append(l.pending, e)
		return
	}
	q.delivered(l, []queue.Entry{e})
}

// delivered settles what a no-ack consumer's sink took.
func (q *Queue) delivered(l *local, entries []queue.Entry) {
	if l.c.NoAck {
		q.prop.settle(l.key, queue.Ack, seqsOf(entries))
	}
}

// Get implements queue.Queue.
func (q *Queue) Get(noAck bool) (queue.Entry, int, bool) {
	q.mu.Lock()
	q.lastUsed = time.Now()
	q.mu.Unlock()
	res, err := q.prop.call(GetCommand(now(), q.getKey, noAck))
	if err != nil {
		// The get may have been applied all the same: what this node's
		// gets hold goes back rather than stay taken for good.
		q.prop.submit(op{cmd: DetachCommand(now(), q.getKey, false), retry: true})
		return queue.Entry{}, 0, false
	}
	if !res.Ok {
		return queue.Entry{}, 0, false
	}
	e := res.Got
	if e.Returns > 0 {
		e = queue.WithDeliveryCount(e)
	}
	return e, res.Left, true
}

// Settle implements queue.Queue.
func (q *Queue) Settle(c *queue.Consumer, entries []queue.Entry, how queue.Settlement) {
	key := q.getKey
	if c != nil {
		q.mu.Lock()
		l, f := q.locals[c], q.forwarded[c]
		q.mu.Unlock()
		if f != nil {
			f.q.Settle(f.inner, entries, how)
			return
		}
		if l == nil {
			return
		}
		key = l.key
	}
	q.prop.settle(key, how, seqsOf(entries))
}

// Purge implements queue.Queue.
func (q *Queue) Purge() int {
	res, err := q.prop.call(PurgeCommand(now()))
	if err != nil {
		return 0
	}
	return res.Purged
}

// Delete implements queue.Queue: on every node the virtual host deletes
// the queue on, its group stops and its stored log goes.
func (q *Queue) Delete(ifUnused, ifEmpty bool) (int, error) {
	st := q.Stats()
	if ifUnused && st.Consumers > 0 {
		return 0, wire.Errorf(wire.PreconditionFailed, describe(q.cfg)+" in use")
	}
	if ifEmpty && st.Ready > 0 {
		return 0, wire.Errorf(wire.PreconditionFailed, describe(q.cfg)+" not empty")
	}
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return 0, nil
	}
	q.deleted = true
	var sinks []*queue.Consumer
	for c, l := range q.locals {
		if !l.removed {
			sinks = append(sinks, c)
		}
	}
	q.mu.Unlock()
	q.stopGroup()
	q.k.forget(q)
	if err := q.k.o.Store.DropRaftGroup(q.cfg.ID); err != nil {
		q.k.log.Warn("quorum queue: dropping its log", "queue", q.cfg.Name, "err", err)
	}
	q.ledger.FailAll(fmt.Errorf("%w: %s was deleted", queue.ErrRefused, describe(q.cfg)))
	for _, c := range sinks {
		c.Sink.Cancelled(c)
	}
	return st.Ready, nil
}

// Deleted implements queue.Queue.
func (q *Queue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// Stats implements queue.Queue: the counts of the state applied here (on
// a node that is not a member, none).
func (q *Queue) Stats() queue.Stats {
	q.mu.Lock()
	member := q.m != nil
	q.mu.Unlock()
	if !member {
		return q.askStats()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	st := queue.Stats{LastUsed: q.lastUsed}
	if q.m != nil {
		st.Ready, st.ReadyBytes = q.m.Ready()
		st.Resident = st.ReadyBytes
		st.Unacked = q.m.Unacked()
		_, st.DeadLettering = q.m.Kept(0)
		st.Consumers = q.m.Consumers()
		st.Published, st.Delivered = q.m.Counts()
	}
	return st
}

// askStats is Stats on a node without a replica: the group's ready
// messages and consumers, asked with a no-op at most once a second.
func (q *Queue) askStats() queue.Stats {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	if time.Since(q.statsAt) >= time.Second {
		if fx, err := q.prop.call(NoopCommand(now())); err == nil {
			q.stats.Ready, q.stats.Consumers = fx.Ready, fx.Consumers
		}
		q.statsAt = time.Now()
	}
	st := q.stats
	q.mu.Lock()
	st.LastUsed = q.lastUsed
	q.mu.Unlock()
	return st
}

// fsm is the queue as its group's raft.FSM.
type fsm Queue

// Apply implements raft.FSM: it applies a command to the state and carries
// out what falls to this node: deliveries to its consumers, and, on the
// leader, dead letters and the expiry timer.
func (f *fsm) Apply(l *raft.Log) any {
	q := (*Queue)(f)
	if l.Type != raft.LogCommand {
		return nil
	}
	q.mu.Lock()
	leader := q.r != nil && q.r.State() == raft.Leader
	fx := q.m.Apply(l.Index, l.Data)
	var cancelled []*queue.Consumer
	var ghosts []ConsumerKey
	for _, d := range fx.Deliveries {
		switch lc := q.byKey[d.Consumer]; {
		case lc != nil:
			q.deliverLocked(lc, d.Entry)
		case d.Consumer.Node == q.k.o.Node && d.Consumer.Boot == q.k.boot:
			// A consumer of this process the queue does not know: its
			// attach was applied after AddConsumer gave up on it.
			if !slices.Contains(ghosts, d.Consumer) {
				ghosts = append(ghosts, d.Consumer)
			}
		case leader && d.Consumer.Node != q.k.o.Node:
			q.nudge = true
		}
	}
	for _, key := range ghosts {
		q.k.log.Debug("quorum queue: detaching a consumer this node does not know", "queue", q.cfg.Name, "consumer", key.ID)
		q.prop.submit(op{cmd: DetachCommand(now(), key, false), retry: true})
	}
	for _, key := range fx.Dropped {
		if lc := q.byKey[key]; lc != nil && !lc.removed {
			lc.removed = true
			cancelled = append(cancelled, lc.c)
		}
	}
	q.forgetRemovedLocked()
	if leader {
		q.armExpiryLocked()
	}
	if leader && l.Index > q.replayed && q.cfg.DeadLetterSink != nil && q.settings.DeadLetter {
		kept := false
		for _, dl := range fx.DeadLetters {
			if dl.Kept {
				kept = true // the worker takes it from the state
			} else {
				q.dead = append(q.dead, dl)
			}
		}
		if len(q.dead) > 0 && !q.deadRunning {
			q.deadRunning = true
			go q.deadLetters()
		}
		if kept {
			q.startKeptLocked()
		}
	}
	q.mu.Unlock()
	for _, c := range cancelled {
		c.Sink.Cancelled(c)
	}
	return &fx
}

// forgetRemovedLocked drops the bookkeeping of consumers cancelled here
// once the state has forgotten them too.
func (q *Queue) forgetRemovedLocked() {
	for c, l := range q.locals {
		if l.removed && q.m.consumer(l.key) == nil {
			delete(q.locals, c)
			delete(q.byKey, l.key)
		}
	}
}

// deadLetters hands the waiting dead letters to the sink until none wait.
func (q *Queue) deadLetters() {
	for {
		q.mu.Lock()
		dls := q.dead
		q.dead = nil
		if len(dls) == 0 || q.deleted {
			q.deadRunning = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.deadLetter(dls)
	}
}

// deadLetter hands discarded messages to the dead-letter sink, grouped by
// reason (at most once: the leader does it when it applies the discard).
func (q *Queue) deadLetter(dls []DeadLetter) {
	for len(dls) > 0 {
		reason := dls[0].Reason
		var msgs []*queue.Message
		n := 0
		for n < len(dls) && dls[n].Reason == reason {
			msgs = append(msgs, dls[n].Entry.Msg)
			n++
		}
		q.cfg.DeadLetterSink.DeadLetter(q, reason, msgs)
		dls = dls[n:]
	}
}

// At-least-once dead-lettering: the state keeps what it dead-letters
// (Machine.Kept) until a DeadLetteredCommand says the copies are safe; the
// leader's worker dead-letters the kept messages in order, through the
// sink's DeadLetterSafely, and proposes that command for those done with.
// One that cannot go (nowhere to route, refused, a target failed) stays,
// with the ones after it, and the worker tries again after keptRetry
// (RabbitMQ's worker waits 3 minutes). A new leader starts from the
// state, so a copy may be made twice, never lost.
const (
	keptRetry = 5 * time.Second
	keptBatch = 256
)

// startKeptLocked starts the leader's worker for the kept dead letters
// unless it runs, has nothing to do, or waits to try again. The caller
// holds mu and has checked that this node leads.
func (q *Queue) startKeptLocked() {
	sink, ok := q.cfg.DeadLetterSink.(queue.SafeDeadLetterSink)
	if !ok || q.keptRunning || q.deleted || q.m == nil || time.Now().Before(q.keptRetry) {
		return
	}
	if _, n := q.m.Kept(0); n == 0 {
		return
	}
	q.keptRunning = true
	go q.deadLetterKept(sink)
}

// deadLetterKept is the worker: it runs while this node leads and the
// state keeps dead letters that go.
func (q *Queue) deadLetterKept(sink queue.SafeDeadLetterSink) {
	for {
		leads := q.leads()
		q.mu.Lock()
		var batch []DeadLetter
		if leads && !q.deleted && q.m != nil {
			kept, _ := q.m.Kept(keptBatch)
			batch = slices.Clone(kept)
		}
		if len(batch) == 0 {
			q.keptRunning = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		reasons := make([]queue.Reason, len(batch))
		msgs := make([]*queue.Message, len(batch))
		for i, dl := range batch {
			reasons[i], msgs[i] = dl.Reason, dl.Entry.Msg
		}
		done := sink.DeadLetterSafely(q, reasons, msgs)
		var safe []uint64
		for i, dl := range batch {
			if done[i] {
				safe = append(safe, dl.Entry.Seq)
			}
		}
		var err error
		if len(safe) > 0 {
			_, err = q.prop.call(DeadLetteredCommand(now(), safe))
		}
		if err == nil && len(safe) == len(batch) {
			continue
		}
		q.mu.Lock()
		q.keptRunning = false
		q.keptRetry = time.Now().Add(keptRetry)
		warn := !q.keptWarned && err == nil
		q.keptWarned = q.keptWarned || warn
		dlx := q.settings.DeadLetterExchange
		q.mu.Unlock()
		if warn {
			q.k.log.Warn("cannot dead-letter every message of a quorum queue that dead-letters at least once: they stay in it and are tried again;"+
				" check that its dead-letter exchange exists and routes them to queues that take them (this is logged once)",
				"vhost", q.cfg.VHost, "queue", q.cfg.Name, "dead_letter_exchange", dlx, "kept", len(batch)-len(safe))
		}
		return
	}
}

// armExpiryLocked sets the leader's timer for the head message's expiry.
func (q *Queue) armExpiryLocked() {
	at := q.m.HeadExpires()
	if at == 0 || at == q.expiryAt {
		return
	}
	q.expiryAt = at
	d := time.Until(time.UnixMilli(at)) + time.Millisecond
	if q.expiry == nil {
		q.expiry = time.AfterFunc(d, func() {
			q.mu.Lock()
			q.expiryAt = 0 // armed again by the next apply, or the kind's watch
			q.mu.Unlock()
			q.prop.submit(op{cmd: ExpireCommand(now())})
		})
		return
	}
	q.expiry.Reset(d)
}

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	q := (*Queue)(f)
	q.mu.Lock()
	defer q.mu.Unlock()
	return snapshot(q.m.Snapshot()), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	m, err := RestoreMachine(data)
	if err != nil {
		return err
	}
	q := (*Queue)(f)
	q.mu.Lock()
	q.m = m
	// A follower that fell behind skipped the entries the snapshot covers,
	// and with them deliveries to its consumers: each live consumer here
	// starts again under a new key, and what the old one held goes back
	// (the channel's later settlements of it are ignored; the messages come
	// again).
	var again []op
	for _, l := range q.locals {
		if l.removed || !l.started {
			continue
		}
		old := l.key
		delete(q.byKey, old)
		l.key.ID = q.k.consumerID()
		q.byKey[l.key] = l
		l.pending = nil
		again = append(again, op{cmd: DetachCommand(now(), old, false), retry: true},
			op{cmd: AttachCommand(now(), l.key, l.c.Prefetch, l.c.Priority, l.c.Exclusive), retry: true})
	}
	q.mu.Unlock()
	for _, o := range again {
		q.prop.submit(o)
	}
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}

// watch is the kind's periodic look at a queue: on the leader, it arms
// the expiry timer (a new leader has applied nothing yet) and detaches the
// consumers of nodes that no longer answer (what they held goes back).
func (q *Queue) watch() {
	if !q.leads() {
		return
	}
	q.mu.Lock()
	if q.m != nil && !q.deleted {
		q.armExpiryLocked()
		q.startKeptLocked() // a new leader's, or after a failure
	}
	q.mu.Unlock()
	c := q.k.o.Cluster
	if c == nil {
		return
	}
	q.mu.Lock()
	var lost []string
	for _, n := range q.m.nodes() {
		if n != q.k.o.Node && !c.Running(n) {
			lost = append(lost, n)
		}
	}
	q.mu.Unlock()
	for _, n := range lost {
		q.prop.submit(op{cmd: DropNodeCommand(now(), n, 0)})
	}
}
