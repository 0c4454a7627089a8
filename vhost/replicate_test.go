package vhost

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
)

// testLog is an in-process stand-in for the cluster's metadata group: a
// command is applied on every member in the order Replicate is called, and
// the proposer gets its own result.
type testLog struct {
	mu      sync.Mutex
	index   uint64
	members map[string]*Registry
}

type member struct {
	l    *testLog
	name string
}

func (m member) Replicate(cmd []byte) (any, error) {
	m.l.mu.Lock()
	defer m.l.mu.Unlock()
	m.l.index++
	var mine any
	for name, r := range m.l.members {
		res := r.Apply(m.l.index, cmd)
		if name == m.name {
			mine = res
		}
	}
	return mine, nil
}

// clusterRegistries returns registries of nodes sharing one log.
func clusterRegistries(names ...string) (*testLog, map[string]*Registry) {
	l := &testLog{members: map[string]*Registry{}}
	for _, name := range names {
		k := classic.NewKind(classic.Options{})
		l.members[name] = NewRegistry(Deps{Kinds: testKinds(k), Delays: k, Replicator: member{l, name}, Node: name,
			Remote: classic.NewKind(classic.Options{})})
	}
	return l, l.members
}

// describe is what a registry holds, as comparable values.
func describe(r *Registry) map[string]any {
	out := map[string]any{}
	for _, name := range r.Names() {
		v := r.Get(name)
		var qs []string
		for _, q := range v.Queues() {
			c := q.Config()
			qs = append(qs, fmt.Sprintf("%s node=%s id=%d durable=%v args=%v", c.Name, c.Node, c.ID, c.Durable, c.Args))
		}
		out[name] = []any{v.Meta(), v.Exchanges(), qs, v.Bindings(), v.Policies(false), v.Policies(true)}
	}
	return out
}

func TestReplicatedDefinitionsAgree(t *testing.T) {
	_, regs := clusterRegistries("a", "b")
	a, b := regs["a"], regs["b"]
	if _, err := a.Add(DefaultName); err != nil {
		t.Fatal(err)
	}
	va, vb := a.Get(DefaultName), b.Get(DefaultName)
	if vb == nil {
		t.Fatal("vhost not on b")
	}
	if err := va.DeclareExchange(ExchangeSpec{Name: "x", Kind: "topic", Durable: true}, false); err != nil {
		t.Fatal(err)
	}
	qa, err := va.DeclareQueue(QueueSpec{Name: "qa", Durable: true, Args: wire.Table{"x-max-length": int64(5)}}, false)
	if err != nil {
		t.Fatal(err)
	}
	qb, err := vb.DeclareQueue(QueueSpec{}, false) // server-named, on b
	if err != nil {
		t.Fatal(err)
	}
	if qa.Config().Node != "a" || qb.Config().Node != "b" {
		t.Fatalf("queues placed on %q and %q", qa.Config().Node, qb.Config().Node)
	}
	if err := vb.BindQueue("qa", "x", "k.#", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := va.BindExchange("amq.fanout", "x", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := vb.SetPolicy(Policy{Name: "p", Pattern: "^q", ApplyTo: "queues", Definition: map[string]any{"message-ttl": float64(1000)}}, false); err != nil {
		t.Fatal(err)
	}
	if err := a.SetLimit(DefaultName, LimitQueues, 10); err != nil {
		t.Fatal(err)
	}
	// Refusals come back to the proposer, and change nothing anywhere.
	_, err = vb.DeclareQueue(QueueSpec{Name: "qa", Durable: false}, false)
	wantWireError(t, err, wire.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'qa' in vhost '/': received 'false' but current is 'true'")
	wantWireError(t, vb.BindQueue("nope", "x", "", nil, 0), wire.NotFound, "NOT_FOUND - no queue 'nope' in vhost '/'")
	// The same queue everywhere: routing on b finds qa's stand-in.
	qs, _, err := vb.Route("x", "k.1", nil, nil, &RouteScratch{})
	if err != nil || len(qs) != 1 || qs[0].Name() != "qa" {
		t.Fatalf("routing on b: %v %v", qs, err)
	}
	if !reflect.DeepEqual(describe(a), describe(b)) {
		t.Fatalf("the nodes disagree:\na: %v\nb: %v", describe(a), describe(b))
	}
	if _, err := vb.DeleteQueue("qa", 0, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := va.Queue("qa", 0); err == nil {
		t.Fatal("qa still on a after b deleted it")
	}
	if err := b.Delete(DefaultName); err != nil {
		t.Fatal(err)
	}
	if a.Get(DefaultName) != nil {
		t.Fatal("the vhost is still on a")
	}
}

func TestReplicatedSnapshotRestore(t *testing.T) {
	_, regs := clusterRegistries("a")
	a := regs["a"]
	v, _ := a.Add(DefaultName)
	if _, err := a.Add("other"); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(v.DeclareExchange(ExchangeSpec{Name: "x", Kind: "direct", Durable: true, Args: wire.Table{"alternate-exchange": "ae"}}, false))
	_, err := v.DeclareQueue(QueueSpec{Name: "q1", Durable: true}, false)
	must(err)
	_, err = v.DeclareQueue(QueueSpec{Name: "q2"}, false)
	must(err)
	must(v.BindQueue("q1", "x", "k", wire.Table{"a": int64(1)}, 0))
	must(v.SetPolicy(Policy{Name: "op", Pattern: ".*", ApplyTo: "queues", Definition: map[string]any{"max-length": float64(9)}}, true))
	snap, err := a.Snapshot()
	must(err)

	// Into an empty node.
	k := classic.NewKind(classic.Options{})
	fresh := NewRegistry(Deps{Kinds: testKinds(k), Delays: k, Node: "a"})
	must(fresh.Restore(snap))
	if !reflect.DeepEqual(describe(a), describe(fresh)) {
		t.Fatalf("restored:\n%v\nwant:\n%v", describe(fresh), describe(a))
	}

	// Into a node that went its own way: what differs goes, what is the
	// same stays (the same queue object, messages and all).
	_, others := clusterRegistries("a")
	b := others["a"]
	must(b.Restore(snap))
	vb := b.Get(DefaultName)
	kept, _ := vb.Queue("q1", 0)
	_ = kept.Enqueue(queue.BuildMessage("", "q1", nil, []byte("hello")))
	must(vb.DeleteExchange("x", false))
	_, err = vb.DeclareQueue(QueueSpec{Name: "stray"}, false)
	must(err)
	_, err = b.Add("stray-vhost")
	must(err)
	must(b.Restore(snap))
	if !reflect.DeepEqual(describe(a), describe(b)) {
		t.Fatalf("restored over a diverged node:\n%v\nwant:\n%v", describe(b), describe(a))
	}
	if q, _ := vb.Queue("q1", 0); q != kept || q.Stats().Ready != 1 {
		t.Fatalf("q1 was not kept with its message: %v", q.Stats())
	}
}
