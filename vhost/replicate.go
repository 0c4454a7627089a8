package vhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/queue"
)

// Replicator orders definition changes across a cluster. Replicate commits
// a command in the cluster's metadata group and returns, once this node
// has applied it (through Registry.Apply), what the apply returned. In a
// cluster every change of a virtual host, exchange, queue, binding or
// policy is such a command, applied on every node in the same order; the
// state every node holds is what the commands built.
type Replicator interface {
	Replicate(cmd []byte) (any, error)
}

// clusterID is the id of a queue (or delay queue) made by the command at
// index: the same on every node, and apart from the ids a kind hands out
// itself.
func clusterID(index uint64) uint64 { return 1<<63 | index }

// outcome is what applying a command returns to the node that proposed it.
type outcome struct {
	q       queue.Queue
	n       int
	created bool
	ok      bool
	err     error
}

// Command operations.
const (
	opVhostPut        = "vhost.put"
	opVhostAdd        = "vhost.add"
	opVhostDelete     = "vhost.delete"
	opVhostLimit      = "vhost.limit"
	opExchangeDeclare = "exchange.declare"
	opExchangeDelete  = "exchange.delete"
	opQueueDeclare    = "queue.declare"
	opQueueDelete     = "queue.delete"
	opBind            = "bind"
	opUnbind          = "unbind"
	opPolicySet       = "policy.set"
	opPolicyDelete    = "policy.delete"
)

// replicate commits a command and returns its result on this node.
func (r *Registry) replicate(cmd wire.Table) outcome {
	b, err := wire.AppendTable(nil, cmd)
	if err != nil {
		return outcome{err: wire.Errorf(wire.InternalError, "encoding a definition change: "+err.Error())}
	}
	res, err := r.deps.Replicator.Replicate(b[4:])
	if err != nil {
		return outcome{err: wire.Errorf(wire.InternalError, "the cluster's metadata store did not take the change: "+err.Error())}
	}
	if a, ok := res.(outcome); ok {
		return a
	}
	if err, ok := res.(error); ok {
		return outcome{err: err}
	}
	return outcome{}
}

// replicated reports whether changes go through the cluster.
func (r *Registry) replicated() bool { return r.deps.Replicator != nil }

// Recovering says whether the node is still rebuilding what it had before
// it restarted: queues its commands make are then recovered by their kind
// (their messages loaded), as the node's start does without a cluster.
func (r *Registry) Recovering(on bool) { r.recovering.Store(on) }

// Apply applies a command committed at index in the cluster's metadata
// group. Every node applies the same commands in the same order; the
// result goes back to the node that proposed the command.
func (r *Registry) Apply(index uint64, cmd []byte) any {
	t, err := wire.DecodeTable(cmd)
	if err != nil {
		return outcome{err: fmt.Errorf("undecodable definition change: %w", err)}
	}
	op, _ := t["op"].(string)
	name, _ := t["vhost"].(string)
	switch op {
	case opVhostPut:
		var meta Meta
		if err := json.Unmarshal(bytesOf(t["meta"]), &meta); err != nil {
			return outcome{err: err}
		}
		created, err := r.put(name, meta)
		return outcome{created: created, err: err}
	case opVhostAdd:
		_, err := r.addVhost(name)
		return outcome{err: err}
	case opVhostDelete:
		return outcome{err: r.deleteVhost(name)}
	case opVhostLimit:
		limit, _ := t["limit"].(string)
		if clear, _ := t["clear"].(bool); clear {
			return outcome{err: r.editLimits(name, func(m map[string]int64) { delete(m, limit) })}
		}
		value, _ := t["value"].(int64)
		return outcome{err: r.editLimits(name, func(m map[string]int64) { m[limit] = value })}
	}
	v := r.Get(name)
	if v == nil {
		return outcome{err: wire.Errorf(wire.NotFound, "no vhost '"+name+"'")}
	}
	switch op {
	case opExchangeDeclare:
		return outcome{err: v.declareExchange(exchangeSpecOf(t), false, clusterID(index), r.recovering.Load())}
	case opExchangeDelete:
		ifUnused, _ := t["if-unused"].(bool)
		return outcome{err: v.deleteExchange(str(t, "name"), ifUnused)}
	case opQueueDeclare:
		q, created, err := v.declareQueue(queueSpecOf(t), false, clusterID(index), r.recovering.Load())
		return outcome{q: q, created: created, err: err}
	case opQueueDelete:
		id, _ := t["id"].(int64)
		n, ok, err := v.deleteQueueByID(str(t, "name"), uint64(id))
		return outcome{n: n, ok: ok, err: err}
	case opBind, opUnbind:
		owner, _ := t["owner"].(int64)
		args, _ := t["arguments"].(wire.Table)
		dest, source, key := str(t, "destination"), str(t, "source"), str(t, "key")
		var find func() (exchange.Destination, error)
		if str(t, "destination-type") == "queue" {
			find = v.queueDest(dest, uint64(owner), op == opBind)
		} else {
			find = v.exchangeDest(dest)
		}
		return outcome{err: v.bind(source, key, args, find, op == opBind)}
	case opPolicySet, opPolicyDelete:
		operator, _ := t["operator"].(bool)
		if op == opPolicyDelete {
			ok, err := v.deletePolicy(str(t, "name"), operator)
			return outcome{ok: ok, err: err}
		}
		var p Policy
		if err := json.Unmarshal(bytesOf(t["policy"]), &p); err != nil {
			return outcome{err: err}
		}
		return outcome{err: v.setPolicy(p, operator)}
	}
	return outcome{err: fmt.Errorf("unknown definition change %q", op)}
}

func str(t wire.Table, key string) string {
	s, _ := t[key].(string)
	return s
}

func bytesOf(v any) []byte {
	switch b := v.(type) {
	case []byte:
		return b
	case string:
		return []byte(b)
	}
	return nil
}

func exchangeSpecTable(s ExchangeSpec) wire.Table {
	t := wire.Table{"name": s.Name, "type": s.Kind, "durable": s.Durable, "auto_delete": s.AutoDelete, "internal": s.Internal}
	if s.Args != nil {
		t["arguments"] = s.Args
	}
	return t
}

func exchangeSpecOf(t wire.Table) ExchangeSpec {
	s := ExchangeSpec{Name: str(t, "name"), Kind: str(t, "type")}
	s.Durable, _ = t["durable"].(bool)
	s.AutoDelete, _ = t["auto_delete"].(bool)
	s.Internal, _ = t["internal"].(bool)
	s.Args, _ = t["arguments"].(wire.Table)
	return s
}

func queueSpecTable(s QueueSpec) wire.Table {
	t := wire.Table{"name": s.Name, "durable": s.Durable, "exclusive": s.Exclusive, "auto_delete": s.AutoDelete,
		"owner": int64(s.Owner), "server-named": s.ServerNamed, "node": s.Node}
	if s.Args != nil {
		t["arguments"] = s.Args
	}
	if len(s.Members) > 0 {
		members := make([]any, len(s.Members))
		for i, m := range s.Members {
			members[i] = m
		}
		t["members"] = members
	}
	if len(s.Members) > 0 {
		members := make([]any, len(s.Members))
		for i, m := range s.Members {
			members[i] = m
		}
		t["members"] = members
	}
	return t
}

func queueSpecOf(t wire.Table) QueueSpec {
	s := QueueSpec{Name: str(t, "name"), Node: str(t, "node")}
	s.Durable, _ = t["durable"].(bool)
	s.Exclusive, _ = t["exclusive"].(bool)
	s.AutoDelete, _ = t["auto_delete"].(bool)
	s.ServerNamed, _ = t["server-named"].(bool)
	owner, _ := t["owner"].(int64)
	s.Owner = uint64(owner)
	s.Args, _ = t["arguments"].(wire.Table)
	members, _ := t["members"].([]any)
	for _, m := range members {
		if name, ok := m.(string); ok {
			s.Members = append(s.Members, name)
		}
	}
	return s
}

// queueDest finds a binding's destination queue; a bind checks the
// binder's access to an exclusive queue, an unbind does not (RabbitMQ).
func (v *VHost) queueDest(name string, owner uint64, checkOwner bool) func() (exchange.Destination, error) {
	return func() (exchange.Destination, error) {
		q := v.queues[name]
		if q == nil {
			return nil, v.queueNotFound(name)
		}
		if checkOwner {
			return q, v.checkExclusiveLocked(q, owner)
		}
		return q, nil
	}
}

// replicateBind commits a bind or unbind.
func (v *VHost) replicateBind(op, source, destType, dest, key string, args wire.Table, owner uint64) error {
	t := wire.Table{"op": op, "vhost": v.name, "source": source, "destination-type": destType, "destination": dest,
		"key": key, "owner": int64(owner)}
	if args != nil {
		t["arguments"] = args
	}
	return v.reg.replicate(t).err
}

// deleteQueueByID deletes the queue named name if it is still the one
// with id (a later declare may have made another): the node that holds it
// drops its messages. ok reports whether it was there.
func (v *VHost) deleteQueueByID(name string, id uint64) (n int, ok bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	q := v.queues[name]
	if q == nil || q.Config().ID != id {
		return 0, false, nil
	}
	n, _ = q.Delete(false, false)
	return n, true, v.forgetQueueLocked(q)
}

// proposeQueueDelete commits the deletion of q, for what a node decides
// on its own (an auto-delete queue's last consumer gone, an expired lease,
// an exclusive queue's connection closed). It runs on its own goroutine
// when async, as it may be reached from the apply of another command.
func (v *VHost) proposeQueueDelete(q queue.Queue, async bool) {
	t := wire.Table{"op": opQueueDelete, "vhost": v.name, "name": q.Name(), "id": int64(q.Config().ID)}
	do := func() {
		if res := v.reg.replicate(t); res.err != nil {
			v.log.Warn("deleting a queue through the cluster", "vhost", v.name, "queue", q.Name(), "err", res.err)
		}
	}
	if async {
		go do()
		return
	}
	do()
}

// Snapshot returns every virtual host's definitions (the state the
// cluster's commands built), for the metadata group's snapshots.
func (r *Registry) Snapshot() ([]byte, error) {
	var vhosts []any
	for _, name := range r.Names() {
		v := r.Get(name)
		if v == nil {
			continue
		}
		vhosts = append(vhosts, v.snapshot())
	}
	b, err := wire.AppendTable(nil, wire.Table{"vhosts": vhosts})
	if err != nil {
		return nil, err
	}
	return b[4:], nil
}

func (v *VHost) snapshot() wire.Table {
	v.mu.RLock()
	defer v.mu.RUnlock()
	meta, _ := json.Marshal(v.meta)
	t := wire.Table{"name": v.name, "meta": meta}
	for _, operator := range []bool{false, true} {
		var ps []any
		for _, name := range slices.Sorted(maps.Keys(v.policyMap(operator))) {
			b, _ := json.Marshal(v.policyMap(operator)[name])
			ps = append(ps, b)
		}
		t[policyListKey(operator)] = ps
	}
	var xs, qs, bs []any
	for _, name := range slices.Sorted(maps.Keys(v.exchanges)) {
		x := v.exchanges[name]
		xt := exchangeSpecTable(ExchangeSpec{Name: x.name, Kind: x.kind, Durable: x.durable, AutoDelete: x.autoDelete, Internal: x.internal, Args: x.args})
		if x.delay != nil {
			xt["delay-id"] = int64(x.delay.Config().ID)
		}
		xs = append(xs, xt)
		x.router.Bindings(func(b exchange.Binding) bool {
			bt := wire.Table{"source": x.name, "destination": b.Destination.Name(), "destination-type": "exchange", "key": b.Key}
			if _, isQueue := b.Destination.(queue.Queue); isQueue {
				bt["destination-type"] = "queue"
			}
			if b.Args != nil {
				bt["arguments"] = b.Args
			}
			bs = append(bs, bt)
			return true
		})
	}
	for _, name := range slices.Sorted(maps.Keys(v.queues)) {
		c := v.queues[name].Config()
		qt := queueSpecTable(QueueSpec{Name: c.Name, Durable: c.Durable, Exclusive: c.Exclusive, AutoDelete: c.AutoDelete,
			Args: c.Args, Owner: c.Owner, Node: c.Node, Members: c.Members})
		qt["id"] = int64(c.ID)
		qs = append(qs, qt)
	}
	t["exchanges"], t["queues"], t["bindings"] = xs, qs, bs
	return t
}

func policyListKey(operator bool) string {
	if operator {
		return "operator-policies"
	}
	return "policies"
}

// Restore makes the virtual hosts what a snapshot says, keeping the
// queues (with their messages) and exchanges that are the same in both.
// Empty data deletes every virtual host.
func (r *Registry) Restore(data []byte) error {
	t, err := wire.DecodeTable(data)
	if err != nil {
		return err
	}
	want := byName(t, "vhosts")
	var errs []error
	for _, name := range r.Names() {
		if want[name] == nil {
			errs = append(errs, r.deleteVhost(name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		v, _ := r.add(name)
		errs = append(errs, v.restore(want[name], r.recovering.Load()))
	}
	return errors.Join(errs...)
}

// restore makes one virtual host what its snapshot says.
func (v *VHost) restore(t wire.Table, recovering bool) error {
	v.policyMu.Lock()
	defer v.policyMu.Unlock()
	v.mu.Lock()
	var errs []error
	var meta Meta
	errs = append(errs, json.Unmarshal(bytesOf(t["meta"]), &meta))
	v.meta = meta
	for _, operator := range []bool{false, true} {
		m := map[string]*Policy{}
		list, _ := t[policyListKey(operator)].([]any)
		for _, e := range list {
			var p Policy
			if err := json.Unmarshal(bytesOf(e), &p); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := checkPolicy(&p, operator); err != nil {
				errs = append(errs, err)
				continue
			}
			m[p.Name] = &p
		}
		if operator {
			v.opPolicies = m
		} else {
			v.policies = m
		}
	}
	// Bindings go first and come back last, between what is kept.
	for _, x := range v.exchanges {
		var bs []exchange.Binding
		x.router.Bindings(func(b exchange.Binding) bool { bs = append(bs, b); return true })
		for _, b := range bs {
			x.router.Unbind(b)
		}
	}
	wantX := byName(t, "exchanges")
	for name, x := range v.exchanges {
		if xt := wantX[name]; xt == nil || !sameExchange(x, xt) {
			delete(v.exchanges, name)
			if x.delay != nil {
				_, _ = x.delay.Delete(false, false)
			}
		}
	}
	wantQ := byName(t, "queues")
	for name, q := range v.queues {
		qt := wantQ[name]
		id, _ := qt["id"].(int64)
		if qt == nil || uint64(id) != q.Config().ID {
			_, _ = q.Delete(false, false)
			delete(v.queues, name)
			v.endLeaseLocked(q)
		}
	}
	for name, xt := range wantX {
		if v.exchanges[name] == nil {
			delayID, _ := xt["delay-id"].(int64)
			_, err := v.createExchangeLocked(exchangeSpecOf(xt), uint64(delayID), recovering)
			errs = append(errs, err)
		}
	}
	for name, qt := range wantQ {
		if v.queues[name] == nil {
			id, _ := qt["id"].(int64)
			_, err := v.createQueueLocked(queueSpecOf(qt), uint64(id), recovering, false)
			errs = append(errs, err)
		}
	}
	bs, _ := t["bindings"].([]any)
	for _, e := range bs {
		bt, ok := e.(wire.Table)
		if !ok {
			continue
		}
		src := v.exchanges[str(bt, "source")]
		var dest exchange.Destination
		if str(bt, "destination-type") == "queue" {
			if q := v.queues[str(bt, "destination")]; q != nil {
				dest = q
			}
		} else if x := v.exchanges[str(bt, "destination")]; x != nil {
			dest = x
		}
		if src == nil || dest == nil {
			continue
		}
		args, _ := bt["arguments"].(wire.Table)
		_, err := src.router.Bind(exchange.Binding{Destination: dest, Key: str(bt, "key"), Args: args})
		errs = append(errs, err)
	}
	v.gen.Add(1)
	apply := v.applyPoliciesLocked()
	v.mu.Unlock()
	apply()
	return errors.Join(errs...)
}

// byName indexes a snapshot's list of tables (vhosts, exchanges, queues)
// by their names.
func byName(t wire.Table, list string) map[string]wire.Table {
	items, _ := t[list].([]any)
	out := make(map[string]wire.Table, len(items))
	for _, e := range items {
		if it, ok := e.(wire.Table); ok {
			out[str(it, "name")] = it
		}
	}
	return out
}

// sameExchange reports whether x is the exchange a snapshot describes.
func sameExchange(x *Exchange, t wire.Table) bool {
	s := exchangeSpecOf(t)
	delayID, _ := t["delay-id"].(int64)
	var have uint64
	if x.delay != nil {
		have = x.delay.Config().ID
	}
	return x.kind == s.Kind && x.durable == s.Durable && x.autoDelete == s.AutoDelete && x.internal == s.Internal &&
		exchange.CanonicalArgs(x.args) == exchange.CanonicalArgs(s.Args) && have == uint64(delayID)
}

// replicateDeleteQueue is DeleteQueue in a cluster: the conditions are
// checked here, against the queue's counts now, and the deletion of that
// queue (by its id) is committed.
func (v *VHost) replicateDeleteQueue(name string, owner uint64, ifUnused, ifEmpty bool) (int, error) {
	v.mu.RLock()
	q := v.queues[name]
	var err error
	if q != nil {
		err = v.checkExclusiveLocked(q, owner)
	}
	v.mu.RUnlock()
	if q == nil || err != nil {
		return 0, err
	}
	st := q.Stats()
	what := "queue '" + name + "' in vhost '" + v.name + "'"
	switch {
	case ifUnused && st.Consumers > 0:
		return 0, wire.Errorf(wire.PreconditionFailed, what+" in use")
	case ifEmpty && st.Ready > 0:
		return 0, wire.Errorf(wire.PreconditionFailed, what+" not empty")
	}
	res := v.reg.replicate(wire.Table{"op": opQueueDelete, "vhost": v.name, "name": name, "id": int64(q.Config().ID)})
	if res.err != nil {
		return 0, res.err
	}
	return max(res.n, st.Ready), nil
}

// LocalQueue returns the queue named name if it is the one with id, for
// calls from other nodes (which checked exclusive access themselves).
func (v *VHost) LocalQueue(name string, id uint64) (queue.Queue, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	q := v.queues[name]
	if q == nil || q.Deleted() || q.Config().ID != id || v.remote(q) {
		return nil, v.queueNotFound(name)
	}
	return q, nil
}

// remote reports whether q lives on another node of the cluster.
func (v *VHost) remote(q queue.Queue) bool {
	n := q.Config().Node
	return n != "" && n != v.reg.deps.Node
}

// DropNode deletes, through the cluster, the queues that lived on a node
// the cluster forgot: their messages went with it.
func (r *Registry) DropNode(node string) {
	r.dropOf(node, func(*queue.Config) bool { return true })
}

// DropTransientOf deletes, through the cluster, the transient and
// exclusive queues of a node that is down: their messages and owners went
// with it, as RabbitMQ deletes them when their node fails.
func (r *Registry) DropTransientOf(node string) {
	r.dropOf(node, func(c *queue.Config) bool { return !c.Durable || c.Exclusive })
}

func (r *Registry) dropOf(node string, drop func(*queue.Config) bool) {
	for _, name := range r.Names() {
		v := r.Get(name)
		if v == nil {
			continue
		}
		for _, q := range v.Queues() {
			if c := q.Config(); c.Node == node && drop(c) {
				v.proposeQueueDelete(q, false)
			}
		}
	}
}

// DropRestarted deletes, through the cluster, this node's transient and
// exclusive queues that the cluster's definitions brought back after the
// node restarted: their messages and owners went with the old process, as
// RabbitMQ drops them.
func (r *Registry) DropRestarted() {
	for _, name := range r.Names() {
		v := r.Get(name)
		if v == nil {
			continue
		}
		for _, q := range v.Queues() {
			c := q.Config()
			if !v.remote(q) && (!c.Durable || c.Exclusive) {
				v.proposeQueueDelete(q, false)
			}
		}
	}
}
