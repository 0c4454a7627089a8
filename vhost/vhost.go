// Package vhost implements a virtual host: the owner of exchanges, queues
// and bindings, with RabbitMQ's declare, delete and bind semantics and its
// reply codes and texts.
package vhost

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/queue"
)

// DefaultExchange is the nameless direct exchange every queue is bound to by
// its name.
const DefaultExchange = ""

// maxNameLen is the longest exchange or queue name (a short string).
const maxNameLen = 255

// predeclared are the exchanges every virtual host has, as on RabbitMQ
// (whose firehose tracer publishes to the internal amq.rabbitmq.trace;
// Warren has no tracer, but clients and tools expect the exchange).
var predeclared = []struct {
	name, kind string
	internal   bool
}{
	{"amq.direct", exchange.KindDirect, false},
	{"amq.fanout", exchange.KindFanout, false},
	{"amq.topic", exchange.KindTopic, false},
	{"amq.headers", exchange.KindHeaders, false},
	{"amq.match", exchange.KindHeaders, false},
	{"amq.rabbitmq.trace", exchange.KindTopic, true},
}

// Exchange is an exchange in a virtual host.
type Exchange struct {
	name       string
	kind       string
	durable    bool
	autoDelete bool
	internal   bool
	args       wire.Table
	router     exchange.Router
	alternate  string // alternate-exchange argument
	// needsHeaders: routing reads the message's headers (headers exchange,
	// or consistent hash on a header); hashProperty: consistent hash on a
	// property, passed to the router in place of the routing key.
	needsHeaders bool
	hashProperty string
	// delay holds the messages of an x-delayed-message exchange until
	// they are due; nil for other types.
	delay queue.Queue
	// dedup is an x-message-deduplication exchange's memory of the keys
	// it routed; nil for other types.
	dedup *dedupCache
}

// Name implements exchange.Destination.
func (x *Exchange) Name() string { return x.name }

// Kind returns the exchange type.
func (x *Exchange) Kind() string { return x.kind }

// Durable reports whether the exchange survives a restart.
func (x *Exchange) Durable() bool { return x.durable }

// VHost is one virtual host.
type VHost struct {
	name   string
	reg    *Registry
	defs   DefinitionStore // nil: nothing persists
	kinds  *queue.Kinds
	delays DelayKind // nil: no delayed-message exchanges
	log    *slog.Logger

	// policyMu serialises policy changes, which apply queues' new settings
	// after mu is released (see applyPoliciesLocked), in order.
	policyMu sync.Mutex

	mu         sync.RWMutex
	exchanges  map[string]*Exchange
	queues     map[string]queue.Queue
	policies   map[string]*Policy // by name
	opPolicies map[string]*Policy // operator policies, by name
	meta       Meta
	deleted    bool

	// gen changes whenever routing may change (bindings, exchanges, queues),
	// so that publishers' route caches know to drop what they hold.
	gen atomic.Uint64

	cycles cyclesLogged           // dead-letter cycles logged
	leases map[queue.Queue]*lease // of x-expires queues, under mu
	counts *queueCounters         // the registry's
}

func newVHost(name string, r *Registry) *VHost {
	d := r.deps
	v := &VHost{name: name, reg: r, defs: d.Definitions, kinds: d.Kinds, delays: d.Delays, log: d.Log, counts: &r.counts,
		exchanges: map[string]*Exchange{}, queues: map[string]queue.Queue{}}
	for _, p := range predeclared {
		router, _ := exchange.New(p.kind, nil)
		v.exchanges[p.name] = &Exchange{name: p.name, kind: p.kind, durable: true, internal: p.internal, router: router, needsHeaders: p.kind == exchange.KindHeaders}
	}
	return v
}

// Name returns the virtual host's name.
func (v *VHost) Name() string { return v.name }

// Generation returns a number that changes whenever routing may change.
func (v *VHost) Generation() uint64 { return v.gen.Load() }

func (v *VHost) exchangeNotFound(name string) error {
	return wire.Errorf(wire.NotFound, "no exchange '"+name+"' in vhost '"+v.name+"'")
}

func (v *VHost) queueNotFound(name string) error {
	return wire.Errorf(wire.NotFound, "no queue '"+name+"' in vhost '"+v.name+"'")
}

// deletedErr refuses to create anything in a deleted virtual host (for the
// connections still closing).
func (v *VHost) deletedErr() error {
	return wire.Errorf(wire.NotFound, "vhost '"+v.name+"' is deleted")
}

func defaultExchangeRefused() error {
	return wire.Errorf(wire.AccessRefused, "operation not permitted on the default exchange")
}

// checkName validates a name the client chose for a new exchange or queue.
func checkName(kind, name string) error {
	if len(name) > maxNameLen {
		return wire.Errorf(wire.PreconditionFailed, kind+" name too long")
	}
	if strings.HasPrefix(name, "amq.") {
		return wire.Errorf(wire.AccessRefused, kind+" name '"+name+"' contains reserved prefix 'amq.*'")
	}
	return nil
}

// ExchangeSpec is an exchange.declare.
type ExchangeSpec struct {
	Name       string
	Kind       string
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       wire.Table
}

// DeclareExchange creates an exchange or checks an existing one is
// equivalent. passive only checks that it exists.
func (v *VHost) DeclareExchange(s ExchangeSpec, passive bool) error {
	if !passive && v.reg.replicated() {
		if err := v.checkExchangeSpec(s); err != nil {
			return err
		}
		t := exchangeSpecTable(s)
		t["op"], t["vhost"] = opExchangeDeclare, v.name
		return v.reg.replicate(t).err
	}
	return v.declareExchange(s, passive, 0, false)
}

// checkExchangeSpec refuses what a declare of s is refused for whatever
// the virtual host holds.
func (v *VHost) checkExchangeSpec(s ExchangeSpec) error {
	if s.Name == DefaultExchange {
		return defaultExchangeRefused()
	}
	if !exchange.Known(s.Kind) {
		_, err := exchange.New(s.Kind, nil)
		return err
	}
	return nil
}

// declareExchange is DeclareExchange on this node; a new delayed-message
// exchange's queue gets delayID (0: the kind picks one).
func (v *VHost) declareExchange(s ExchangeSpec, passive bool, delayID uint64, recover bool) error {
	if s.Name == DefaultExchange {
		return defaultExchangeRefused()
	}
	if !passive && !exchange.Known(s.Kind) {
		// RabbitMQ checks the type before looking the exchange up.
		_, err := exchange.New(s.Kind, nil)
		return err
	}
	if ae, ok := s.Args["alternate-exchange"]; ok && !passive {
		if _, isString := ae.(string); !isString {
			return wire.Errorf(wire.PreconditionFailed, "invalid type '"+wire.TypeName(ae)+
				"' for arg 'alternate-exchange' in exchange '"+s.Name+"' in vhost '"+v.name+"'")
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if x := v.exchanges[s.Name]; x != nil {
		if passive {
			return nil
		}
		return v.exchangeEquivalent(x, s)
	}
	if passive {
		return v.exchangeNotFound(s.Name)
	}
	if err := checkName("exchange", s.Name); err != nil {
		return err
	}
	x, err := v.createExchangeLocked(s, delayID, recover)
	if err != nil {
		return err
	}
	if err := v.saveExchangeLocked(x); err != nil {
		delete(v.exchanges, x.name)
		if x.delay != nil {
			_, _ = x.delay.Delete(false, false)
		}
		return err
	}
	return nil
}

// createExchangeLocked builds and registers an exchange. A delayed-message
// exchange gets the queue that holds its messages: delayID is that queue's
// id when the exchange is recovered (recover set), 0 for a new exchange.
func (v *VHost) createExchangeLocked(s ExchangeSpec, delayID uint64, recover bool) (*Exchange, error) {
	if v.deleted {
		return nil, v.deletedErr()
	}
	if s.Kind == exchange.KindDelayed && v.delays == nil {
		return nil, wire.Errorf(wire.PreconditionFailed, "unknown exchange type '"+s.Kind+"'")
	}
	router, err := exchange.New(s.Kind, s.Args)
	if err != nil {
		return nil, err
	}
	x := &Exchange{name: s.Name, kind: s.Kind, durable: s.Durable, autoDelete: s.AutoDelete, internal: s.Internal,
		args: s.Args, router: router, needsHeaders: s.Kind == exchange.KindHeaders}
	pol, op := v.appliedLocked(s.Name, "")
	x.alternate = alternateExchange(s.Args, pol, op)
	if ch, ok := router.(*exchange.ConsistentHash); ok {
		x.needsHeaders = ch.HashHeader() != ""
		x.hashProperty = ch.HashProperty()
	}
	if s.Kind == exchange.KindDeduplication {
		c, _ := exchange.DeduplicationCache(s.Args) // exchange.New checked them
		x.dedup, x.needsHeaders = newDedupCache(c), true
	}
	if s.Kind == exchange.KindDelayed {
		x.needsHeaders = true // x-delay decides, and the type may be headers
		cfg := queue.Config{Name: s.Name, VHost: v.name, Durable: s.Durable, Kind: exchange.KindDelayed,
			Settings: queue.NoSettings, ID: delayID, Recover: recover}
		if x.delay, err = v.delays.NewDelayQueue(cfg, func(msgs []*queue.Message) { v.releaseDelayed(x, msgs) }); err != nil {
			return nil, err
		}
	}
	v.exchanges[s.Name] = x
	v.gen.Add(1)
	return x, nil
}

// exchangeEquivalent is RabbitMQ's equivalence check on redeclare.
func (v *VHost) exchangeEquivalent(x *Exchange, s ExchangeSpec) error {
	what := "exchange '" + x.name + "' in vhost '" + v.name + "'"
	if s.Kind != x.kind {
		return inequivalent("type", what, "'"+s.Kind+"'", "'"+x.kind+"'")
	}
	for _, f := range []struct {
		name      string
		got, have bool
	}{{"durable", s.Durable, x.durable}, {"auto_delete", s.AutoDelete, x.autoDelete}, {"internal", s.Internal, x.internal}} {
		if f.got != f.have {
			return inequivalent(f.name, what, quoteBool(f.got), quoteBool(f.have))
		}
	}
	return argsEquivalent(what, s.Args, x.args, "alternate-exchange")
}

func quoteBool(b bool) string {
	if b {
		return "'true'"
	}
	return "'false'"
}

func inequivalent(arg, what, got, have string) error {
	return wire.Errorf(wire.PreconditionFailed, "inequivalent arg '"+arg+"' for "+what+": received "+got+" but current is "+have)
}

// argsEquivalent compares the named arguments of a redeclare with the
// original ones, with RabbitMQ's texts.
func argsEquivalent(what string, got, have wire.Table, names ...string) error {
	for _, n := range names {
		g, gok := got[n]
		h, hok := have[n]
		if n == "x-queue-type" && sameArg(queueKind(g, gok), queueKind(h, hok)) {
			continue // no type is the default kind
		}
		if !gok && !hok {
			continue
		}
		if gok && hok {
			if sameArg(g, h) {
				continue
			}
			// Both present: RabbitMQ shows just the values.
			return inequivalent(n, what, "'"+valueString(g)+"'", "'"+valueString(h)+"'")
		}
		return inequivalent(n, what, describeValue(g, gok), describeValue(h, hok))
	}
	return nil
}

// queueKind is the kind an x-queue-type argument (present or not) names.
func queueKind(v any, present bool) any {
	if !present {
		return queue.DefaultKind
	}
	return v
}

// sameArg compares two argument values as RabbitMQ does: by type class
// (every integer width is one class) and value.
func sameArg(a, b any) bool {
	if x, ok := wire.Int(a); ok {
		y, ok := wire.Int(b)
		return ok && x == y
	}
	return exchange.CanonicalArgs(wire.Table{"": a}) == exchange.CanonicalArgs(wire.Table{"": b})
}

// describeValue renders an argument as RabbitMQ does in inequivalence errors.
func describeValue(v any, present bool) string {
	if !present {
		return "none"
	}
	return "the value '" + valueString(v) + "' of type '" + typeName(v) + "'"
}

// ExchangeKind returns the type of the named exchange; ok is false when
// there is no such exchange.
func (v *VHost) ExchangeKind(name string) (kind string, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if x := v.exchanges[name]; x != nil {
		return x.kind, true
	}
	return "", false
}

// DeleteExchange deletes an exchange. Deleting a missing exchange succeeds,
// as in RabbitMQ.
func (v *VHost) DeleteExchange(name string, ifUnused bool) error {
	if v.reg.replicated() {
		if name == DefaultExchange {
			return defaultExchangeRefused()
		}
		return v.reg.replicate(wire.Table{"op": opExchangeDelete, "vhost": v.name, "name": name, "if-unused": ifUnused}).err
	}
	return v.deleteExchange(name, ifUnused)
}

func (v *VHost) deleteExchange(name string, ifUnused bool) error {
	if name == DefaultExchange {
		return defaultExchangeRefused()
	}
	if strings.HasPrefix(name, "amq.") {
		return wire.Errorf(wire.AccessRefused, "deletion of system exchange '"+name+"' in vhost '"+v.name+"' not allowed")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	x := v.exchanges[name]
	if x == nil {
		return nil
	}
	if ifUnused && x.router.Len() > 0 {
		return wire.Errorf(wire.PreconditionFailed, "exchange '"+name+"' in vhost '"+v.name+"' in use")
	}
	return v.deleteExchangeLocked(x)
}

// deleteExchangeLocked removes x and every binding to or from it; source
// exchanges left without bindings that are auto-delete go too.
func (v *VHost) deleteExchangeLocked(x *Exchange) error {
	delete(v.exchanges, x.name)
	if x.delay != nil {
		_, _ = x.delay.Delete(false, false) // its messages go with it
	}
	v.gen.Add(1)
	err := errors.Join(v.dropExchangeLocked(x), v.dropBindingsLocked(x.name, false))
	return errors.Join(err, v.removeDestinationLocked(x))
}

// removeDestinationLocked drops every binding to d and auto-deletes the
// exchanges that leaves without bindings.
func (v *VHost) removeDestinationLocked(d exchange.Destination) error {
	var emptied []*Exchange
	for _, src := range v.exchanges {
		if src.router.RemoveDestination(d) > 0 && src.autoDelete && src.router.Len() == 0 {
			emptied = append(emptied, src)
		}
	}
	var err error
	for _, src := range emptied {
		if v.exchanges[src.name] == src {
			err = errors.Join(err, v.deleteExchangeLocked(src))
		}
	}
	return err
}

// QueueSpec is a queue.declare.
type QueueSpec struct {
	Name       string
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       wire.Table
	// Owner identifies the declaring connection (for exclusive queues).
	Owner uint64
	// ServerNamed says Name was made by GenerateName for a declare that
	// named no queue (so that the caller could check its permission on
	// the name first): its reserved prefix is no error.
	ServerNamed bool
	// Node is the cluster node the queue lives on (the declaring one).
	Node string
	// Members are the nodes a replicated queue's replicas live on, as its
	// kind placed them (queue.Replicated).
	Members []string
}

// QueueInfo is a declare-ok's answer.
type QueueInfo struct {
	Name          string
	Messages      int
	ConsumerCount int
}

// DeclareQueue creates a queue or checks an existing one is equivalent and
// accessible; passive only checks that it exists and is accessible. An
// empty name asks for a server-generated one.
func (v *VHost) DeclareQueue(s QueueSpec, passive bool) (queue.Queue, error) {
	if passive || !v.reg.replicated() {
		q, _, err := v.declareQueue(s, passive, 0, false)
		return q, err
	}
	if err := v.refuseServerNamed(s); err != nil {
		return nil, err
	}
	if s.Name == "" {
		s.Name, s.ServerNamed = generateName("amq.gen-"), true
	}
	s.Node = v.reg.deps.Node
	v.mu.RLock()
	existing := v.queues[s.Name]
	v.mu.RUnlock()
	if existing != nil {
		// A redeclare of a queue whose node is down fails here, as on
		// RabbitMQ, and changes nothing anywhere.
		if err := queue.Unreachable(existing); err != nil {
			return nil, err
		}
	}
	if existing == nil {
		if err := v.place(&s); err != nil {
			return nil, err
		}
	}
	t := queueSpecTable(s)
	t["op"], t["vhost"] = opQueueDeclare, v.name
	res := v.reg.replicate(t)
	return res.q, res.err
}

// replicatedKind returns the kind a declare's x-queue-type names when it
// is a replicated one, nil otherwise.
func (v *VHost) replicatedKind(args wire.Table) queue.Replicated {
	name, _ := args["x-queue-type"].(string)
	if name == "" {
		return nil
	}
	r, _ := v.kinds.Lookup(name).(queue.Replicated)
	return r
}

// refuseServerNamed refuses a declare with no name of a replicated kind,
// with RabbitMQ's text.
func (v *VHost) refuseServerNamed(s QueueSpec) error {
	if (s.Name == "" || s.ServerNamed) && v.replicatedKind(s.Args) != nil {
		return wire.Errorf(wire.PreconditionFailed, "Cannot declare a server-named queue for type "+
			strconv.Quote(s.Args["x-queue-type"].(string)))
	}
	return nil
}

// place has a replicated kind choose a new queue's members.
func (v *VHost) place(s *QueueSpec) error {
	r := v.replicatedKind(s.Args)
	if r == nil {
		return nil
	}
	members, err := r.Place(queue.Config{Name: s.Name, VHost: v.name, Durable: s.Durable, Args: s.Args, Node: s.Node})
	s.Members = members
	return err
}

// declareQueue is DeclareQueue on this node; a new queue gets id (0: its
// kind picks one) and is recovered by its kind when recover is set.
// created reports whether the queue is new.
func (v *VHost) declareQueue(s QueueSpec, passive bool, id uint64, recover bool) (q queue.Queue, created bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case s.Name == "" && passive:
		return nil, false, v.queueNotFound("")
	case s.Name == "" || s.ServerNamed:
		if err := v.refuseServerNamed(s); err != nil {
			return nil, false, err
		}
		if s.Name == "" {
			s.Name = generateName("amq.gen-")
		}
	case !passive && !s.ServerNamed:
		// Every name a client supplies is checked, before the lookup:
		// "amq.gen-..." is reserved too, existing or not.
		if err := checkName("queue", s.Name); err != nil {
			return nil, false, err
		}
	}
	// Exclusive queues are never durable, whatever the declare says.
	s.Durable = s.Durable && !s.Exclusive
	// In a cluster a queue exists until its deletion is applied, whatever
	// it did here meanwhile (an auto-delete queue that deleted itself):
	// every node must decide alike.
	if q := v.queues[s.Name]; q != nil && (!q.Deleted() || v.reg.replicated()) {
		if err := v.checkExclusiveLocked(q, s.Owner); err != nil {
			return nil, false, err
		}
		if passive {
			if err := queue.Unreachable(q); err != nil {
				return nil, false, err
			}
			v.touchLocked(q)
			return q, false, nil
		}
		if s.Exclusive != q.Config().Exclusive {
			return nil, false, v.lockedErr(q)
		}
		if err := v.queueEquivalent(q, s); err != nil {
			return nil, false, err
		}
		v.touchLocked(q)
		v.countDeclare(s, false)
		return q, false, nil
	}
	if passive {
		return nil, false, v.queueNotFound(s.Name)
	}
	// The queue limit holds for every declare (a cluster's replayed ones
	// too: a node rebuilding its definitions must decide as the others did).
	q, err = v.createQueueLocked(s, id, recover, true)
	if err != nil {
		return nil, false, err
	}
	if err := v.saveQueueLocked(q); err != nil {
		delete(v.queues, q.Name())
		v.endLeaseLocked(q)
		_, _ = q.Delete(false, false)
		return nil, false, err
	}
	v.countDeclare(s, true)
	return q, true, nil
}

// countDeclare counts a declare made on this node (in a cluster each node
// counts its own clients' declares, as RabbitMQ's nodes do).
func (v *VHost) countDeclare(s QueueSpec, created bool) {
	if s.Node != "" && s.Node != v.reg.deps.Node {
		return
	}
	v.counts.declared.Add(1)
	if created {
		v.counts.created.Add(1)
	}
}

// createQueueLocked builds a queue of the kind its arguments name and
// registers it. id is the queue's id (0: the kind picks one); recover has
// the kind load what it kept of the queue; admit checks the vhost's queue
// limit (not for a queue that existed before: a restart, a snapshot).
func (v *VHost) createQueueLocked(s QueueSpec, id uint64, recover, admit bool) (queue.Queue, error) {
	if v.deleted {
		return nil, v.deletedErr()
	}
	if limit, ok := v.limitLocked(LimitQueues); ok && admit && int64(len(v.queues)) >= limit {
		return nil, wire.Errorf(wire.PreconditionFailed, "cannot declare queue '"+s.Name+"': queue limit in vhost '"+v.name+
			"' ("+strconv.FormatInt(limit, 10)+") is reached")
	}
	args, err := validateQueueArgs(v.kinds, "queue '"+s.Name+"' in vhost '"+v.name+"'", s.Args)
	if err != nil {
		return nil, err
	}
	pol, op := v.appliedLocked(s.Name, args.kind)
	cfg := queue.Config{
		Name: s.Name, VHost: v.name, Durable: s.Durable, Exclusive: s.Exclusive, AutoDelete: s.AutoDelete,
		Args: s.Args, Kind: args.kind, Owner: s.Owner, Settings: queueSettings(args.Settings, s.Args, pol, op),
		OnAutoDelete: v.autoDeleted, DeadLetterSink: v, ID: id, Recover: recover, Node: s.Node, Members: s.Members,
	}
	if !s.Exclusive {
		cfg.Owner = 0
	}
	kind := v.kinds.Lookup(args.kind)
	if _, replicated := kind.(queue.Replicated); replicated {
		// A replicated queue lives on its members, not on the node that
		// declared it: forgetting that node does not take the queue.
		cfg.Node = ""
	} else if remote := v.reg.deps.Remote; remote != nil && s.Node != "" && s.Node != v.reg.deps.Node {
		kind = remote
	}
	q, err := kind.New(cfg)
	if err != nil {
		return nil, err
	}
	v.queues[s.Name] = q
	v.touchLocked(q)
	v.gen.Add(1)
	return q, nil
}

// ReplyToPrefix starts the names of direct reply-to queues.
const ReplyToPrefix = "amq.rabbitmq.reply-to."

// DeclareReplyQueue creates the hidden queue behind a channel's direct
// reply-to consumer: exclusive to owner, deleted with its consumer, and
// reachable through the default exchange by its generated name.
func (v *VHost) DeclareReplyQueue(owner uint64) (queue.Queue, error) {
	if v.reg.replicated() {
		return v.DeclareQueue(QueueSpec{Name: generateName(ReplyToPrefix), Exclusive: true, AutoDelete: true, Owner: owner, ServerNamed: true}, false)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.createQueueLocked(QueueSpec{Name: generateName(ReplyToPrefix), Exclusive: true, AutoDelete: true, Owner: owner}, 0, false, true)
}

// checkExclusiveLocked refuses access to another connection's exclusive queue.
func (v *VHost) checkExclusiveLocked(q queue.Queue, owner uint64) error {
	if o := q.Config().Owner; o != 0 && o != owner {
		return v.lockedErr(q)
	}
	return nil
}

// lockedErr is RabbitMQ's 405 for an exclusive queue another connection
// owns, or a redeclare that disagrees on exclusivity.
func (v *VHost) lockedErr(q queue.Queue) error {
	return wire.Errorf(wire.ResourceLocked, "cannot obtain exclusive access to locked queue '"+q.Name()+
		"' in vhost '"+v.name+"'. It could be originally declared on another connection or the exclusive "+
		"property value does not match that of the original declaration.")
}

// queueEquivalent is RabbitMQ's equivalence check on redeclare.
func (v *VHost) queueEquivalent(q queue.Queue, s QueueSpec) error {
	cfg := q.Config()
	what := "queue '" + q.Name() + "' in vhost '" + v.name + "'"
	for _, f := range []struct {
		name      string
		got, have bool
	}{{"durable", s.Durable, cfg.Durable}, {"auto_delete", s.AutoDelete, cfg.AutoDelete}} {
		if f.got != f.have {
			return inequivalent(f.name, what, quoteBool(f.got), quoteBool(f.have))
		}
	}
	return argsEquivalent(what, s.Args, cfg.Args, equivalentQueueArgs...)
}

// Queue looks up a queue; owner is the asking connection, refused (405) on
// another connection's exclusive queue.
func (v *VHost) Queue(name string, owner uint64) (queue.Queue, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	q := v.queues[name]
	if q == nil || q.Deleted() {
		return nil, v.queueNotFound(name)
	}
	if err := v.checkExclusiveLocked(q, owner); err != nil {
		return nil, err
	}
	return q, nil
}

// DeleteQueue deletes a queue and its bindings and returns the number of
// ready messages it held. Deleting a missing queue succeeds.
func (v *VHost) DeleteQueue(name string, owner uint64, ifUnused, ifEmpty bool) (int, error) {
	if v.reg.replicated() {
		return v.replicateDeleteQueue(name, owner, ifUnused, ifEmpty)
	}
	v.mu.Lock()
	q := v.queues[name]
	if q == nil {
		v.mu.Unlock()
		return 0, nil
	}
	if err := v.checkExclusiveLocked(q, owner); err != nil {
		v.mu.Unlock()
		return 0, err
	}
	n, err := q.Delete(ifUnused, ifEmpty)
	if err == nil {
		err = v.forgetQueueLocked(q)
	}
	v.mu.Unlock()
	return n, err
}

// forgetQueueLocked removes a deleted queue, its bindings and its stored
// definition.
func (v *VHost) forgetQueueLocked(q queue.Queue) error {
	if v.queues[q.Name()] != q {
		return nil
	}
	delete(v.queues, q.Name())
	v.endLeaseLocked(q)
	v.gen.Add(1)
	v.counts.deleted.Add(1)
	var err error
	if persistentQueue(q) {
		err = errors.Join(v.dropQueueLocked(q), v.dropBindingsLocked(q.Name(), true))
	}
	return errors.Join(err, v.removeDestinationLocked(q))
}

// autoDeleted removes a queue that deleted itself (auto-delete).
func (v *VHost) autoDeleted(q queue.Queue) {
	if v.reg.replicated() {
		v.proposeQueueDelete(q, true)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.forgetQueueLocked(q); err != nil {
		v.log.Error("removing an auto-deleted queue from the store", "vhost", v.name, "queue", q.Name(), "err", err)
	}
}

// DeleteExclusive deletes every exclusive queue owned by a closing connection.
func (v *VHost) DeleteExclusive(owner uint64) {
	if v.reg.replicated() {
		v.mu.RLock()
		var owned []queue.Queue
		for _, q := range v.queues {
			if q.Config().Owner == owner {
				owned = append(owned, q)
			}
		}
		deleted := v.deleted
		v.mu.RUnlock()
		for _, q := range owned {
			if !deleted {
				v.proposeQueueDelete(q, false)
			}
		}
		return
	}
	v.mu.Lock()
	var owned []queue.Queue
	for _, q := range v.queues {
		if q.Config().Owner == owner {
			owned = append(owned, q)
		}
	}
	for _, q := range owned {
		_, _ = q.Delete(false, false)
		_ = v.forgetQueueLocked(q) // exclusive queues have nothing stored
	}
	v.mu.Unlock()
}

// PurgeQueue drops a queue's ready messages.
func (v *VHost) PurgeQueue(name string, owner uint64) (int, error) {
	q, err := v.Queue(name, owner)
	if err != nil {
		return 0, err
	}
	return q.Purge(), nil
}

// BindQueue binds a queue to an exchange.
func (v *VHost) BindQueue(queueName, exchangeName, key string, args wire.Table, owner uint64) error {
	if v.reg.replicated() {
		return v.replicateBind(opBind, exchangeName, "queue", queueName, key, args, owner)
	}
	return v.bind(exchangeName, key, args, v.queueDest(queueName, owner, true), true)
}

// UnbindQueue removes a queue's binding; removing a missing binding
// succeeds. As in RabbitMQ, another connection's exclusive queue may be
// unbound.
func (v *VHost) UnbindQueue(queueName, exchangeName, key string, args wire.Table) error {
	if v.reg.replicated() {
		return v.replicateBind(opUnbind, exchangeName, "queue", queueName, key, args, 0)
	}
	return v.bind(exchangeName, key, args, v.queueDest(queueName, 0, false), false)
}

// BindExchange binds destination to source (exchange.bind).
func (v *VHost) BindExchange(destination, source, key string, args wire.Table) error {
	if v.reg.replicated() {
		return v.replicateBind(opBind, source, "exchange", destination, key, args, 0)
	}
	return v.bind(source, key, args, v.exchangeDest(destination), true)
}

// UnbindExchange removes an exchange-to-exchange binding.
func (v *VHost) UnbindExchange(destination, source, key string, args wire.Table) error {
	if v.reg.replicated() {
		return v.replicateBind(opUnbind, source, "exchange", destination, key, args, 0)
	}
	return v.bind(source, key, args, v.exchangeDest(destination), false)
}

func (v *VHost) exchangeDest(name string) func() (exchange.Destination, error) {
	return func() (exchange.Destination, error) {
		if name == DefaultExchange {
			return nil, defaultExchangeRefused()
		}
		x := v.exchanges[name]
		if x == nil {
			return nil, v.exchangeNotFound(name)
		}
		return x, nil
	}
}

// bind adds or removes a binding from source to the destination dest finds.
func (v *VHost) bind(source, key string, args wire.Table, dest func() (exchange.Destination, error), add bool) error {
	if source == DefaultExchange {
		return defaultExchangeRefused()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	d, err := dest()
	if err != nil {
		return err
	}
	x := v.exchanges[source]
	if x == nil {
		return v.exchangeNotFound(source)
	}
	b := exchange.Binding{Destination: d, Key: key, Args: args}
	if add {
		added, err := x.router.Bind(b)
		if err != nil || !added {
			return err
		}
		v.gen.Add(1)
		if err := v.saveBindingLocked(x, b); err != nil {
			x.router.Unbind(b)
			return err
		}
		return nil
	}
	if !x.router.Unbind(b) {
		return nil
	}
	v.gen.Add(1)
	err = v.dropBindingLocked(x, b)
	if x.autoDelete && x.router.Len() == 0 {
		err = errors.Join(err, v.deleteExchangeLocked(x))
	}
	return err
}

// generateName returns a server-generated name with RabbitMQ's shape:
// prefix then 22 URL-safe base64 characters.
func generateName(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// GenerateName is generateName for other packages (consumer tags).
func GenerateName(prefix string) string { return generateName(prefix) }
