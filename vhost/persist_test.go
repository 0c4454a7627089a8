package vhost

import (
	"slices"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
)

// node is a registry on a store in a directory, as a broker holds them.
type node struct {
	dir    string
	store  *persistence.Store
	budget int64 // the classic kind's queue budget
	reg    *Registry
}

// startNode opens the store in dir, loads the registry from it and adds
// vhosts (as broker.Start adds its default vhost).
func startNode(t *testing.T, dir string, budget int64, vhosts ...string) *node {
	t.Helper()
	st := openStore(t, dir)
	ck := classic.NewKind(classic.Options{Store: st, QueueBudget: budget})
	reg := NewRegistry(Deps{Definitions: st, Kinds: testKinds(ck), Delays: ck})
	if err := reg.Load(); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := ck.FinishRecovery(); err != nil {
		t.Fatalf("FinishRecovery: %v", err)
	}
	for _, name := range vhosts {
		if _, err := reg.Add(name); err != nil {
			t.Fatal(err)
		}
	}
	return &node{dir: dir, store: st, budget: budget, reg: reg}
}

// restart closes the store and starts a new node on the same directory.
func (n *node) restart(t *testing.T) *node {
	t.Helper()
	if err := n.store.Close(); err != nil {
		t.Fatalf("closing the store: %v", err)
	}
	return startNode(t, n.dir, n.budget)
}

func (n *node) vhost(t *testing.T, name string) *VHost {
	t.Helper()
	v := n.reg.Get(name)
	if v == nil {
		t.Fatalf("no vhost %q (have %q)", name, n.reg.Names())
	}
	return v
}

func exchangeExists(v *VHost, name string) bool {
	return v.DeclareExchange(ExchangeSpec{Name: name}, true) == nil
}

func queueExists(v *VHost, name string) bool {
	_, err := v.DeclareQueue(QueueSpec{Name: name}, true)
	return err == nil
}

// publish routes a persistent message and publishes it as a channel does.
func publish(t *testing.T, n *node, v *VHost, exchange, key, body string) {
	t.Helper()
	m := persistentMessage(t, exchange, key, body)
	qs, _, err := v.Route(exchange, key, m.Props, nil, &RouteScratch{})
	if err != nil {
		t.Fatal(err)
	}
	var out queue.Outcome
	if queue.Publish(qs, m, &out); !out.Routed {
		t.Fatalf("%s: not routed", body)
	}
}

// drain takes every ready message of a queue (no-ack) and returns the
// bodies and whether each was marked redelivered.
func drain(t *testing.T, v *VHost, name string) ([]string, []bool) {
	t.Helper()
	q, err := v.Queue(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	var redelivered []bool
	for {
		e, _, ok := q.Get(true)
		if !ok {
			return bodies, redelivered
		}
		bodies = append(bodies, string(e.Msg.Body))
		redelivered = append(redelivered, e.Redelivered)
	}
}

func TestLoadRestoresDurableTopology(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), 0, DefaultName, "other")
	v := n.vhost(t, DefaultName)
	for _, x := range []ExchangeSpec{
		{Name: "dx", Kind: "direct", Durable: true, Args: wire.Table{"alternate-exchange": "dae"}},
		{Name: "dae", Kind: "fanout", Durable: true},
		{Name: "dfan", Kind: "fanout", Durable: true, AutoDelete: true, Internal: true},
		{Name: "dtopic", Kind: "topic", Durable: true},
		{Name: "tx", Kind: "fanout"},
	} {
		mustExchange(t, v, x)
	}
	for _, q := range []QueueSpec{
		{Name: "dq", Durable: true, Args: wire.Table{"x-max-length": int64(5), "x-overflow": "reject-publish"}},
		{Name: "aeq", Durable: true, AutoDelete: true},
		{Name: "fanq", Durable: true},
		{Name: "tq"},
		{Name: "exq", Durable: true, Exclusive: true, Owner: 7},
	} {
		mustQueue(t, v, q)
	}
	mustBind(t, v, "dq", "dx", "k")
	if err := v.BindQueue("dq", "dx", "k2", wire.Table{"x-arg": int32(1)}, 0); err != nil {
		t.Fatal(err)
	}
	mustBind(t, v, "tq", "dx", "k")         // transient queue: not stored
	mustBind(t, v, "dq", "tx", "")          // transient exchange: not stored
	mustBind(t, v, "aeq", "dae", "")        // durable ends
	mustBind(t, v, "dq", "amq.direct", "a") // predeclared source
	mustBind(t, v, "fanq", "dfan", "")
	if err := v.BindQueue("exq", "dx", "k", nil, 7); err != nil { // exclusive queue: not stored
		t.Fatal(err)
	}
	mustBindExchange(t, v, "dfan", "dx", "e2e")   // durable exchange to durable exchange
	mustBindExchange(t, v, "tx", "dx", "e2e")     // to a transient exchange: not stored
	mustBindExchange(t, v, "dtopic", "dx", "top") // durable, removed again below
	if err := v.UnbindExchange("dtopic", "dx", "top", nil); err != nil {
		t.Fatal(err)
	}

	publish(t, n, v, "dx", "k", "m1")       // dq, tq, exq
	publish(t, n, v, "dx", "k", "m2")       // dq, tq, exq
	publish(t, n, v, "dx", "nowhere", "a1") // alternate: aeq
	publish(t, n, v, "dx", "e2e", "f1")     // dfan: fanq; tx: dq
	// A message both dq and aeq hold: routed with CC.
	m := persistentMessage(t, "dx", "k", "shared")
	dq, _ := v.Queue("dq", 0)
	aeq, _ := v.Queue("aeq", 0)
	queue.Publish([]queue.Queue{dq, aeq}, m, &queue.Outcome{})
	// A transient message on a durable queue is not kept.
	dq.Enqueue(queue.BuildMessage("dx", "k", nil, []byte("transient")))
	sharedID := m.ID

	n = n.restart(t)
	v = n.vhost(t, DefaultName)
	if got := n.reg.Names(); !slices.Equal(got, []string{DefaultName, "other"}) {
		t.Fatalf("vhosts after restart %q", got)
	}
	for name, want := range map[string]bool{"dx": true, "dae": true, "dfan": true, "dtopic": true, "tx": false, "amq.direct": true} {
		if got := exchangeExists(v, name); got != want {
			t.Errorf("exchange %s exists: %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]bool{"dq": true, "aeq": true, "fanq": true, "tq": false, "exq": false} {
		if got := queueExists(v, name); got != want {
			t.Errorf("queue %s exists: %v, want %v", name, got, want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Flags and arguments came back: equivalent redeclares succeed.
	mustExchange(t, v, ExchangeSpec{Name: "dx", Kind: "direct", Durable: true, Args: wire.Table{"alternate-exchange": "dae"}})
	mustExchange(t, v, ExchangeSpec{Name: "dfan", Kind: "fanout", Durable: true, AutoDelete: true, Internal: true})
	dq = mustQueue(t, v, QueueSpec{Name: "dq", Durable: true, Args: wire.Table{"x-max-length": int64(5), "x-overflow": "reject-publish"}})
	mustQueue(t, v, QueueSpec{Name: "aeq", Durable: true, AutoDelete: true})
	if c := dq.Config(); c.MaxLength != 5 || c.Overflow != queue.RejectPublish || !c.Durable {
		t.Fatalf("dq config after restart: %+v", c)
	}
	// Bindings between durable ends came back; the others did not.
	wantRoute(t, v, "dx", "k", "dq")
	wantRoute(t, v, "dx", "nowhere", "aeq")
	wantRoute(t, v, "dx", "e2e", "fanq")
	wantRoute(t, v, "dx", "top", "aeq") // unbound before the restart: the alternate
	wantRoute(t, v, "amq.direct", "a", "dq")
	qs, _, err := v.Route("dx", "k2", nil, nil, &RouteScratch{})
	if err != nil || len(qs) != 1 || qs[0] != dq {
		t.Fatalf("binding with arguments: %v, %v", queueNames(qs), err)
	}
	if err := v.UnbindQueue("dq", "dx", "k2", wire.Table{"x-arg": int32(1)}); err != nil {
		t.Fatal(err)
	}
	wantRoute(t, v, "dx", "k2", "aeq")

	// Messages: persistent ones on durable queues, in order, redelivered.
	bodies, redelivered := drain(t, v, "dq")
	if !slices.Equal(bodies, []string{"m1", "m2", "f1", "shared"}) || slices.Contains(redelivered, false) {
		t.Fatalf("dq after restart: %q redelivered %v", bodies, redelivered)
	}
	aeq, _ = v.Queue("aeq", 0)
	e, _, _ := aeq.Get(false)
	if string(e.Msg.Body) != "a1" {
		t.Fatalf("aeq's first message %q", e.Msg.Body)
	}
	aeq.Settle(nil, []queue.Entry{e}, queue.Ack)
	if bodies, _ := drain(t, v, "fanq"); !slices.Equal(bodies, []string{"f1"}) {
		t.Fatalf("fanq after restart: %q", bodies)
	}
	// The shared message: dq settled it (no-ack get); aeq still holds it.
	flush(t, n.store)
	if _, err := n.store.Message(sharedID, nil); err != nil {
		t.Fatalf("shared message after one of two queues settled it: %v", err)
	}
	e, _, _ = aeq.Get(false)
	if string(e.Msg.Body) != "shared" || e.ID != sharedID {
		t.Fatalf("aeq's second message %q (id %d), want shared (%d)", e.Msg.Body, e.ID, sharedID)
	}
	aeq.Settle(nil, []queue.Entry{e}, queue.Ack)
	flush(t, n.store)
	if _, err := n.store.Message(sharedID, nil); err == nil {
		t.Fatal("shared message still stored after both queues settled it")
	}
}

func TestLoadDropsWhatNoDurableQueueHolds(t *testing.T) {
	t.Parallel()
	// Budget 1: every message is paged out to the store, transient queues'
	// messages too (as overflow that recovery must drop).
	n := startNode(t, t.TempDir(), 1, DefaultName)
	v := n.vhost(t, DefaultName)
	mustQueue(t, v, QueueSpec{Name: "dq", Durable: true})
	tq := mustQueue(t, v, QueueSpec{Name: "tq"})
	exq := mustQueue(t, v, QueueSpec{Name: "exq", Durable: true, Exclusive: true, Owner: 3})
	publish(t, n, v, "", "dq", "keep")
	publish(t, n, v, "", "tq", "drop-transient-queue")
	publish(t, n, v, "", "exq", "drop-exclusive")
	dq, _ := v.Queue("dq", 0)
	dq.Enqueue(queue.BuildMessage("", "dq", nil, []byte("drop-transient-message")))
	flush(t, n.store)
	for _, q := range []queue.Queue{tq, exq} {
		var stored int
		if err := n.store.Entries(q.Config().ID, func(uint64, uint64, []byte) error { stored++; return nil }); err != nil {
			t.Fatal(err)
		}
		if stored != 1 {
			t.Fatalf("%s: %d stored entries before the restart, want 1 (paged out)", q.Name(), stored)
		}
	}

	n = n.restart(t)
	flush(t, n.store)
	var queues, messages []uint64
	if err := n.store.Queues(func(id uint64) error { queues = append(queues, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := n.store.MessageIDs(func(id uint64) error { messages = append(messages, id); return nil }); err != nil {
		t.Fatal(err)
	}
	v = n.vhost(t, DefaultName)
	dq, _ = v.Queue("dq", 0)
	if len(queues) != 1 || queues[0] != dq.Config().ID || len(messages) != 1 {
		t.Fatalf("after Load: queues with entries %v (dq is %d), messages %v; want only dq's one message", queues, dq.Config().ID, messages)
	}
	if bodies, _ := drain(t, v, "dq"); !slices.Equal(bodies, []string{"keep"}) {
		t.Fatalf("dq after restart: %q", bodies)
	}
}

func TestDeletingDurableObjectsRemovesStoredBindings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		act  func(t *testing.T, v *VHost)
		// routes after the restart: exchange -> queues (key "k")
		want map[string][]string
	}{
		{
			name: "queue deleted and declared again",
			act: func(t *testing.T, v *VHost) {
				if _, err := v.DeleteQueue("q", 0, false, false); err != nil {
					t.Fatal(err)
				}
				mustQueue(t, v, QueueSpec{Name: "q", Durable: true})
			},
			want: map[string][]string{"x": {"q2"}, "src": {"q2"}},
		},
		{
			name: "exchange deleted and declared again",
			act: func(t *testing.T, v *VHost) {
				if err := v.DeleteExchange("x", false); err != nil {
					t.Fatal(err)
				}
				mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct", Durable: true})
			},
			want: map[string][]string{"x": {}, "src": {}},
		},
		{
			name: "queue unbound",
			act: func(t *testing.T, v *VHost) {
				if err := v.UnbindQueue("q", "x", "k", nil); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string][]string{"x": {"q2"}, "src": {"q2"}},
		},
		{
			name: "exchange-to-exchange binding unbound",
			act: func(t *testing.T, v *VHost) {
				if err := v.UnbindExchange("x", "src", "k", nil); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string][]string{"x": {"q", "q2"}, "src": {}},
		},
		{
			name: "auto-delete exchange deleted by its last unbind",
			act: func(t *testing.T, v *VHost) {
				if err := v.UnbindQueue("q", "ad", "k", nil); err != nil {
					t.Fatal(err)
				}
				mustExchange(t, v, ExchangeSpec{Name: "ad", Kind: "direct", Durable: true})
			},
			want: map[string][]string{"x": {"q", "q2"}, "src": {"q", "q2"}, "ad": {}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := startNode(t, t.TempDir(), 0, DefaultName)
			v := n.vhost(t, DefaultName)
			mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct", Durable: true})
			mustExchange(t, v, ExchangeSpec{Name: "src", Kind: "direct", Durable: true})
			mustExchange(t, v, ExchangeSpec{Name: "ad", Kind: "direct", Durable: true, AutoDelete: true})
			mustQueue(t, v, QueueSpec{Name: "q", Durable: true})
			mustQueue(t, v, QueueSpec{Name: "q2", Durable: true})
			mustBind(t, v, "q", "x", "k")
			mustBind(t, v, "q2", "x", "k")
			mustBind(t, v, "q", "ad", "k")
			mustBindExchange(t, v, "x", "src", "k")
			tt.act(t, v)
			n = n.restart(t)
			v = n.vhost(t, DefaultName)
			for x, want := range tt.want {
				wantRoute(t, v, x, "k", want...)
			}
		})
	}
}

func TestDeletedDurableQueueLeavesNoMessages(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), 0, DefaultName)
	v := n.vhost(t, DefaultName)
	q := mustQueue(t, v, QueueSpec{Name: "q", Durable: true})
	for _, b := range []string{"a", "b", "c"} {
		publish(t, n, v, "", "q", b)
	}
	if n, err := v.DeleteQueue("q", 0, false, false); err != nil || n != 3 {
		t.Fatalf("DeleteQueue = %d, %v", n, err)
	}
	flush(t, n.store)
	var entries, messages int
	if err := n.store.Entries(q.Config().ID, func(uint64, uint64, []byte) error { entries++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := n.store.MessageIDs(func(uint64) error { messages++; return nil }); err != nil {
		t.Fatal(err)
	}
	if entries != 0 || messages != 0 {
		t.Fatalf("after deleting the queue: %d entries, %d messages stored", entries, messages)
	}
	n = n.restart(t)
	if queueExists(n.vhost(t, DefaultName), "q") {
		t.Fatal("deleted queue came back")
	}
}

func TestAutoDeletedDurableQueueIsForgotten(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), 0, DefaultName)
	v := n.vhost(t, DefaultName)
	q := mustQueue(t, v, QueueSpec{Name: "q", Durable: true, AutoDelete: true})
	mustBind(t, v, "q", "amq.topic", "#")
	c := &queue.Consumer{Tag: "c", Sink: &collectSink{}}
	if err := q.AddConsumer(c, nil); err != nil {
		t.Fatal(err)
	}
	q.RemoveConsumer(c)
	n = n.restart(t)
	v = n.vhost(t, DefaultName)
	if queueExists(v, "q") {
		t.Fatal("auto-deleted durable queue came back")
	}
	wantRoute(t, v, "amq.topic", "a.b")
}

func TestPersistentVHostIsolation(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), 0, "a", "b")
	for _, name := range []string{"a", "b"} {
		v := n.vhost(t, name)
		mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct", Durable: true})
		mustQueue(t, v, QueueSpec{Name: "q", Durable: true})
		mustBind(t, v, "q", "x", "k")
		publish(t, n, v, "x", "k", "in "+name)
	}
	a := n.vhost(t, "a")
	if _, err := a.DeleteQueue("q", 0, false, false); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteExchange("x", false); err != nil {
		t.Fatal(err)
	}
	n = n.restart(t)
	a, b := n.vhost(t, "a"), n.vhost(t, "b")
	if queueExists(a, "q") || exchangeExists(a, "x") {
		t.Fatal("a's deleted queue or exchange came back")
	}
	wantRoute(t, b, "x", "k", "q")
	if bodies, _ := drain(t, b, "q"); !slices.Equal(bodies, []string{"in b"}) {
		t.Fatalf("b's q after restart: %q", bodies)
	}
}

// Names and binding keys may hold any byte, NUL included: stored keys keep
// them apart.
func TestDefinitionKeysHoldAnyByte(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), 0, "/")
	v := n.vhost(t, "/")
	mustExchange(t, v, ExchangeSpec{Name: "x\x00y", Kind: "direct", Durable: true})
	mustQueue(t, v, QueueSpec{Name: "q\x00", Durable: true})
	mustBind(t, v, "q\x00", "x\x00y", "a\x00b")
	n = n.restart(t)
	v = n.vhost(t, "/")
	wantRoute(t, v, "x\x00y", "a\x00b", "q\x00")
	wantRoute(t, v, "x\x00y", "a")
}
