package vhost

import (
	"strings"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

const lockedText = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex' in vhost '/'. " +
	"It could be originally declared on another connection or the exclusive property value does not " +
	"match that of the original declaration."

func TestDeclareExchange(t *testing.T) {
	t.Parallel()
	existing := ExchangeSpec{Name: "x", Kind: "direct", Durable: true, Args: wire.Table{"alternate-exchange": "ae"}}
	const what = "exchange 'x' in vhost '/'"
	tests := []struct {
		name     string
		spec     ExchangeSpec
		passive  bool
		wantCode uint16
		wantText string
	}{
		{name: "new", spec: ExchangeSpec{Name: "y", Kind: "fanout"}},
		{name: "redeclare equal", spec: existing},
		{name: "redeclare with other arguments ignored",
			spec: ExchangeSpec{Name: "x", Kind: "direct", Durable: true, Args: wire.Table{"alternate-exchange": "ae", "x-other": int32(1)}}},
		{name: "type differs", spec: ExchangeSpec{Name: "x", Kind: "fanout", Durable: true, Args: existing.Args},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'type' for " + what + ": received 'fanout' but current is 'direct'"},
		{name: "durable differs", spec: ExchangeSpec{Name: "x", Kind: "direct", Args: existing.Args},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'durable' for " + what + ": received 'false' but current is 'true'"},
		{name: "auto_delete differs", spec: ExchangeSpec{Name: "x", Kind: "direct", Durable: true, AutoDelete: true, Args: existing.Args},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for " + what + ": received 'true' but current is 'false'"},
		{name: "internal differs", spec: ExchangeSpec{Name: "x", Kind: "direct", Durable: true, Internal: true, Args: existing.Args},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'internal' for " + what + ": received 'true' but current is 'false'"},
		{name: "type checked before durable", spec: ExchangeSpec{Name: "x", Kind: "topic"},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'type' for " + what + ": received 'topic' but current is 'direct'"},
		{name: "alternate exchange differs", spec: ExchangeSpec{Name: "x", Kind: "direct", Durable: true, Args: wire.Table{"alternate-exchange": "other"}},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for " + what + ": received 'other' but current is 'ae'"},
		{name: "alternate exchange missing", spec: ExchangeSpec{Name: "x", Kind: "direct", Durable: true},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for " + what + ": received none but current is the value 'ae' of type 'longstr'"},
		{name: "passive existing ignores the rest", spec: ExchangeSpec{Name: "x", Kind: "fanout"}, passive: true},
		{name: "passive missing", spec: ExchangeSpec{Name: "nope", Kind: "direct"}, passive: true,
			wantCode: wire.NotFound, wantText: "NOT_FOUND - no exchange 'nope' in vhost '/'"},
		{name: "default exchange", spec: ExchangeSpec{Name: "", Kind: "direct", Durable: true},
			wantCode: wire.AccessRefused, wantText: "ACCESS_REFUSED - operation not permitted on the default exchange"},
		{name: "default exchange passive", spec: ExchangeSpec{Name: "", Kind: "direct"}, passive: true,
			wantCode: wire.AccessRefused, wantText: "ACCESS_REFUSED - operation not permitted on the default exchange"},
		{name: "reserved prefix", spec: ExchangeSpec{Name: "amq.custom", Kind: "direct"},
			wantCode: wire.AccessRefused, wantText: "ACCESS_REFUSED - exchange name 'amq.custom' contains reserved prefix 'amq.*'"},
		{name: "redeclare predeclared", spec: ExchangeSpec{Name: "amq.direct", Kind: "direct", Durable: true}},
		{name: "redeclare predeclared inequivalent", spec: ExchangeSpec{Name: "amq.topic", Kind: "fanout", Durable: true},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.topic' in vhost '/': received 'fanout' but current is 'topic'"},
		{name: "passive amq.match", spec: ExchangeSpec{Name: "amq.match"}, passive: true},
		{name: "passive amq.headers", spec: ExchangeSpec{Name: "amq.headers"}, passive: true},
		{name: "passive amq.fanout", spec: ExchangeSpec{Name: "amq.fanout"}, passive: true},
		{name: "unknown type", spec: ExchangeSpec{Name: "z", Kind: "nope"},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - unknown exchange type 'nope'"},
		{name: "name too long", spec: ExchangeSpec{Name: strings.Repeat("n", 256), Kind: "direct"},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - exchange name too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustExchange(t, v, existing)
			gen := v.Generation()
			err := v.DeclareExchange(tt.spec, tt.passive)
			wantResult(t, err, tt.wantCode, tt.wantText)
			created := tt.wantCode == 0 && !tt.passive && tt.spec.Name == "y"
			if changed := v.Generation() != gen; changed != created {
				t.Fatalf("generation changed: %v, want %v", changed, created)
			}
			// A failed declare creates nothing.
			if tt.wantCode != 0 && tt.spec.Name != "" && tt.spec.Name != "x" && !strings.HasPrefix(tt.spec.Name, "amq.") {
				wantResult(t, v.DeclareExchange(ExchangeSpec{Name: tt.spec.Name}, true),
					wire.NotFound, "NOT_FOUND - no exchange '"+tt.spec.Name+"' in vhost '/'")
			}
		})
	}
}

func TestDeleteExchange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		exchange string
		ifUnused bool
		wantCode uint16
		wantText string
	}{
		{name: "bound source", exchange: "src"},
		{name: "missing", exchange: "nope"},
		{name: "default", exchange: "", wantCode: wire.AccessRefused,
			wantText: "ACCESS_REFUSED - operation not permitted on the default exchange"},
		{name: "predeclared", exchange: "amq.direct", wantCode: wire.AccessRefused,
			wantText: "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"},
		{name: "missing with reserved prefix", exchange: "amq.nope", wantCode: wire.AccessRefused,
			wantText: "ACCESS_REFUSED - deletion of system exchange 'amq.nope' in vhost '/' not allowed"},
		{name: "if-unused with bindings", exchange: "src", ifUnused: true, wantCode: wire.PreconditionFailed,
			wantText: "PRECONDITION_FAILED - exchange 'src' in vhost '/' in use"},
		// Only bindings from the exchange count, as in RabbitMQ.
		{name: "if-unused when only a destination", exchange: "dst", ifUnused: true},
		{name: "if-unused without bindings", exchange: "lonely", ifUnused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			for _, n := range []string{"src", "dst", "lonely"} {
				mustExchange(t, v, ExchangeSpec{Name: n, Kind: "direct"})
			}
			mustQueue(t, v, QueueSpec{Name: "q"})
			mustBind(t, v, "q", "src", "k")
			mustBindExchange(t, v, "dst", "src", "k2")
			err := v.DeleteExchange(tt.exchange, tt.ifUnused)
			wantResult(t, err, tt.wantCode, tt.wantText)
			gone := tt.wantCode == 0 && tt.exchange != "nope"
			if gone {
				wantResult(t, v.DeclareExchange(ExchangeSpec{Name: tt.exchange}, true), wire.NotFound,
					"NOT_FOUND - no exchange '"+tt.exchange+"' in vhost '/'")
				// Deleting again succeeds.
				wantResult(t, v.DeleteExchange(tt.exchange, tt.ifUnused), 0, "")
			}
		})
	}
}

func TestDeleteExchangeRemovesItsBindings(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "src", Kind: "direct"})
	mustExchange(t, v, ExchangeSpec{Name: "mid", Kind: "fanout"})
	mustQueue(t, v, QueueSpec{Name: "q1"})
	mustQueue(t, v, QueueSpec{Name: "q2"})
	mustBindExchange(t, v, "mid", "src", "k")
	mustBind(t, v, "q1", "mid", "")
	mustBind(t, v, "q2", "src", "k")
	wantRoute(t, v, "src", "k", "q1", "q2")
	if err := v.DeleteExchange("mid", false); err != nil {
		t.Fatal(err)
	}
	wantRoute(t, v, "src", "k", "q2")
	// A new exchange of the same name starts without bindings.
	mustExchange(t, v, ExchangeSpec{Name: "mid", Kind: "fanout"})
	wantRoute(t, v, "src", "k", "q2")
	wantRoute(t, v, "mid", "")
}

func TestDeclareQueue(t *testing.T) {
	t.Parallel()
	existing := QueueSpec{Name: "q", Durable: true, Args: wire.Table{"x-max-length": int64(10)}, Owner: 1}
	exclusive := QueueSpec{Name: "ex", Exclusive: true, Owner: 1}
	const what = "queue 'q' in vhost '/'"
	tests := []struct {
		name     string
		spec     QueueSpec
		passive  bool
		wantCode uint16
		wantText string
	}{
		{name: "new", spec: QueueSpec{Name: "new", Owner: 2}},
		{name: "redeclare equal", spec: existing},
		{name: "redeclare equal from another connection", spec: QueueSpec{Name: "q", Durable: true, Args: wire.Table{"x-max-length": int64(10)}, Owner: 2}},
		{name: "redeclare with an unchecked argument", spec: QueueSpec{Name: "q", Durable: true, Args: wire.Table{"x-max-length": int64(10), "x-custom": "v"}}},
		{name: "durable differs", spec: QueueSpec{Name: "q", Args: existing.Args},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'durable' for " + what + ": received 'false' but current is 'true'"},
		{name: "auto_delete differs", spec: QueueSpec{Name: "q", Durable: true, AutoDelete: true, Args: existing.Args},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for " + what + ": received 'true' but current is 'false'"},
		{name: "argument value differs", spec: QueueSpec{Name: "q", Durable: true, Args: wire.Table{"x-max-length": int64(20)}},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for " + what + ": received '20' but current is '10'"},
		{name: "argument missing", spec: QueueSpec{Name: "q", Durable: true},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for " + what + ": received none but current is the value '10' of type 'long'"},
		{name: "argument added", spec: QueueSpec{Name: "q", Durable: true, Args: wire.Table{"x-max-length": int64(10), "x-message-ttl": int32(5)}},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for " + what + ": received the value '5' of type 'signedint' but current is none"},
		{name: "passive existing ignores the rest", spec: QueueSpec{Name: "q", AutoDelete: true, Owner: 3}, passive: true},
		{name: "passive missing", spec: QueueSpec{Name: "nope"}, passive: true,
			wantCode: wire.NotFound, wantText: "NOT_FOUND - no queue 'nope' in vhost '/'"},
		{name: "passive empty name", spec: QueueSpec{}, passive: true,
			wantCode: wire.NotFound, wantText: "NOT_FOUND - no queue '' in vhost '/'"},
		{name: "reserved prefix", spec: QueueSpec{Name: "amq.q"},
			wantCode: wire.AccessRefused, wantText: "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"},
		{name: "name too long", spec: QueueSpec{Name: strings.Repeat("n", 256)},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - queue name too long"},
		{name: "exclusive redeclared by its owner", spec: exclusive},
		{name: "exclusive passive by its owner", spec: QueueSpec{Name: "ex", Owner: 1}, passive: true},
		{name: "exclusive redeclared by another connection", spec: QueueSpec{Name: "ex", Exclusive: true, Owner: 2},
			wantCode: wire.ResourceLocked, wantText: lockedText},
		{name: "exclusive passive by another connection", spec: QueueSpec{Name: "ex", Owner: 2}, passive: true,
			wantCode: wire.ResourceLocked, wantText: lockedText},
		{name: "exclusive lock checked before equivalence", spec: QueueSpec{Name: "ex", Durable: true, Owner: 2},
			wantCode: wire.ResourceLocked, wantText: lockedText},
		{name: "invalid argument", spec: QueueSpec{Name: "bad", Args: wire.Table{"x-max-length": int64(-1)}},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'bad' in vhost '/': {value_negative,-1}"},
		{name: "other queue type", spec: QueueSpec{Name: "qq", Durable: true, Args: wire.Table{"x-queue-type": "quorum"}},
			wantCode: wire.PreconditionFailed, wantText: "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'qq' in vhost '/': queue type 'quorum' is not supported yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustQueue(t, v, existing)
			mustQueue(t, v, exclusive)
			q, err := v.DeclareQueue(tt.spec, tt.passive)
			wantResult(t, err, tt.wantCode, tt.wantText)
			if err == nil && (q == nil || q.Name() != tt.spec.Name) {
				t.Fatalf("DeclareQueue returned %v, want queue %q", q, tt.spec.Name)
			}
			if tt.wantCode != 0 && tt.spec.Name != "" && tt.spec.Name != "q" && tt.spec.Name != "ex" {
				wantResult(t, func() error { _, err := v.Queue(tt.spec.Name, tt.spec.Owner); return err }(),
					wire.NotFound, "NOT_FOUND - no queue '"+tt.spec.Name+"' in vhost '/'")
			}
		})
	}
}

func TestDeclareQueueAppliesArguments(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	q := mustQueue(t, v, QueueSpec{Name: "q", Args: wire.Table{
		"x-max-length": int32(2), "x-max-length-bytes": int64(100), "x-overflow": "reject-publish", "x-single-active-consumer": true,
	}})
	c := q.Config()
	if c.MaxLength != 2 || c.MaxLengthBytes != 100 || c.Overflow != queue.RejectPublish || !c.SingleActiveConsumer {
		t.Fatalf("config %+v: arguments not applied", c)
	}
	plain := mustQueue(t, v, QueueSpec{Name: "plain", Exclusive: false, Owner: 9})
	if c := plain.Config(); c.MaxLength != -1 || c.MaxLengthBytes != -1 || c.Overflow != queue.DropHead || c.Owner != 0 {
		t.Fatalf("plain queue config %+v, want no limits and no owner", c)
	}
	if c := plain.Config(); c.Name != "plain" || c.VHost != "/" {
		t.Fatalf("config names %q %q", c.Name, c.VHost)
	}
}

func TestServerNamedQueues(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	seen := map[string]bool{}
	for range 10 {
		q := mustQueue(t, v, QueueSpec{Exclusive: true, Owner: 1})
		name := q.Name()
		if !strings.HasPrefix(name, "amq.gen-") || len(name) != len("amq.gen-")+22 || seen[name] {
			t.Fatalf("server-named queue %q: want amq.gen- and 22 fresh characters", name)
		}
		seen[name] = true
		if _, err := v.DeclareQueue(QueueSpec{Name: name, Owner: 1}, true); err != nil {
			t.Fatalf("passive declare of %q: %v", name, err)
		}
		wantRoute(t, v, "", name, name)
	}
	if g := GenerateName("amq.ctag-"); !strings.HasPrefix(g, "amq.ctag-") || len(g) != len("amq.ctag-")+22 {
		t.Fatalf("GenerateName = %q", g)
	}
}

func TestExclusiveQueueAccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		op   func(v *VHost, owner uint64) error
		// unbind is allowed to anyone, as in RabbitMQ.
		otherAllowed bool
	}{
		{name: "lookup", op: func(v *VHost, o uint64) error { _, err := v.Queue("ex", o); return err }},
		{name: "delete", op: func(v *VHost, o uint64) error { _, err := v.DeleteQueue("ex", o, false, false); return err }},
		{name: "purge", op: func(v *VHost, o uint64) error { _, err := v.PurgeQueue("ex", o); return err }},
		{name: "bind", op: func(v *VHost, o uint64) error { return v.BindQueue("ex", "amq.direct", "k2", nil, o) }},
		{name: "unbind", op: func(v *VHost, o uint64) error { return v.UnbindQueue("ex", "amq.direct", "k", nil) }, otherAllowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustQueue(t, v, QueueSpec{Name: "ex", Exclusive: true, Owner: 1})
			if err := v.BindQueue("ex", "amq.direct", "k", nil, 1); err != nil {
				t.Fatal(err)
			}
			err := tt.op(v, 2)
			if tt.otherAllowed {
				wantResult(t, err, 0, "")
			} else {
				wantWireError(t, err, wire.ResourceLocked, lockedText)
				if _, err := v.Queue("ex", 1); err != nil {
					t.Fatalf("after another connection's refused %s: %v", tt.name, err)
				}
			}
			if err := tt.op(v, 1); err != nil {
				t.Fatalf("the owner's %s: %v", tt.name, err)
			}
		})
	}
}

func TestQueueLookupMissing(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	_, err := v.Queue("nope", 0)
	wantWireError(t, err, wire.NotFound, "NOT_FOUND - no queue 'nope' in vhost '/'")
	_, err = v.PurgeQueue("nope", 0)
	wantWireError(t, err, wire.NotFound, "NOT_FOUND - no queue 'nope' in vhost '/'")
}

func TestDeleteQueue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		queue             string
		ifUnused, ifEmpty bool
		wantN             int
		wantCode          uint16
		wantText          string
	}{
		{name: "with messages", queue: "busy", wantN: 2},
		{name: "missing", queue: "nope"},
		{name: "if-unused with a consumer", queue: "busy", ifUnused: true, wantCode: wire.PreconditionFailed,
			wantText: "PRECONDITION_FAILED - queue 'busy' in vhost '/' in use"},
		{name: "if-empty with messages", queue: "busy", ifEmpty: true, wantCode: wire.PreconditionFailed,
			wantText: "PRECONDITION_FAILED - queue 'busy' in vhost '/' not empty"},
		{name: "if-unused and if-empty on an idle empty queue", queue: "idle", ifUnused: true, ifEmpty: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			busy := mustQueue(t, v, QueueSpec{Name: "busy"})
			mustQueue(t, v, QueueSpec{Name: "idle"})
			mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "fanout"})
			mustBind(t, v, "busy", "x", "")
			mustBind(t, v, "idle", "x", "")
			for _, b := range []string{"a", "b"} {
				busy.Enqueue(queue.BuildMessage("", "busy", nil, []byte(b)))
			}
			// A consumer whose channel has no room: it holds nothing.
			if err := busy.AddConsumer(&queue.Consumer{Tag: "c", Sink: refusingSink{}}, nil); err != nil {
				t.Fatal(err)
			}
			gen := v.Generation()
			n, err := v.DeleteQueue(tt.queue, 0, tt.ifUnused, tt.ifEmpty)
			wantResult(t, err, tt.wantCode, tt.wantText)
			if n != tt.wantN {
				t.Fatalf("DeleteQueue = %d, want %d", n, tt.wantN)
			}
			deleted := tt.wantCode == 0 && tt.queue != "nope"
			if (v.Generation() != gen) != deleted {
				t.Fatalf("generation changed %v, want %v", v.Generation() != gen, deleted)
			}
			if !deleted {
				return
			}
			_, err = v.Queue(tt.queue, 0)
			wantWireError(t, err, wire.NotFound, "NOT_FOUND - no queue '"+tt.queue+"' in vhost '/'")
			wantRoute(t, v, "", tt.queue)
			got, _ := routeNames(t, v, "x", "", nil)
			for _, n := range got {
				if n == tt.queue {
					t.Fatalf("deleted queue %q still bound", n)
				}
			}
			if n, err := v.DeleteQueue(tt.queue, 0, tt.ifUnused, tt.ifEmpty); n != 0 || err != nil {
				t.Fatalf("second delete = %d, %v", n, err)
			}
		})
	}
}

// refusingSink refuses every delivery.
type refusingSink struct{}

func (refusingSink) Deliver(*queue.Consumer, queue.Entry) bool { return false }
func (refusingSink) Cancelled(*queue.Consumer)                 {}

func TestDeleteExclusive(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	mine1 := mustQueue(t, v, QueueSpec{Name: "mine1", Exclusive: true, Owner: 1})
	mustQueue(t, v, QueueSpec{Exclusive: true, Owner: 1}) // server-named
	mustQueue(t, v, QueueSpec{Name: "theirs", Exclusive: true, Owner: 2})
	mustQueue(t, v, QueueSpec{Name: "shared", Owner: 1}) // declared by 1, not exclusive
	mustBind(t, v, "shared", "amq.fanout", "")
	if err := v.BindQueue("mine1", "amq.fanout", "", nil, 1); err != nil {
		t.Fatal(err)
	}
	gen := v.Generation()
	v.DeleteExclusive(1)
	if v.Generation() == gen {
		t.Fatal("generation unchanged after deleting queues")
	}
	if !mine1.Deleted() {
		t.Fatal("the owner's exclusive queue was not deleted")
	}
	for _, name := range []string{"theirs", "shared"} {
		owner := uint64(0)
		if name == "theirs" {
			owner = 2
		}
		if _, err := v.Queue(name, owner); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	wantRoute(t, v, "amq.fanout", "", "shared")
	if _, err := v.DeclareQueue(QueueSpec{Name: "mine1"}, true); err == nil {
		t.Fatal("mine1 still declared")
	}
}

func TestBindErrors(t *testing.T) {
	t.Parallel()
	const defaultRefused = "ACCESS_REFUSED - operation not permitted on the default exchange"
	tests := []struct {
		name     string
		op       func(v *VHost) error
		wantCode uint16
		wantText string
	}{
		{"queue to default exchange", func(v *VHost) error { return v.BindQueue("q", "", "q", nil, 0) },
			wire.AccessRefused, defaultRefused},
		{"unbind from default exchange", func(v *VHost) error { return v.UnbindQueue("q", "", "q", nil) },
			wire.AccessRefused, defaultRefused},
		{"missing queue", func(v *VHost) error { return v.BindQueue("nope", "x", "k", nil, 0) },
			wire.NotFound, "NOT_FOUND - no queue 'nope' in vhost '/'"},
		{"missing exchange", func(v *VHost) error { return v.BindQueue("q", "nope", "k", nil, 0) },
			wire.NotFound, "NOT_FOUND - no exchange 'nope' in vhost '/'"},
		{"unbind missing queue", func(v *VHost) error { return v.UnbindQueue("nope", "x", "k", nil) },
			wire.NotFound, "NOT_FOUND - no queue 'nope' in vhost '/'"},
		{"unbind missing exchange", func(v *VHost) error { return v.UnbindQueue("q", "nope", "k", nil) },
			wire.NotFound, "NOT_FOUND - no exchange 'nope' in vhost '/'"},
		{"unbind missing binding", func(v *VHost) error { return v.UnbindQueue("q", "x", "unbound", nil) }, 0, ""},
		{"exchange from default", func(v *VHost) error { return v.BindExchange("x", "", "k", nil) },
			wire.AccessRefused, defaultRefused},
		{"exchange to default", func(v *VHost) error { return v.BindExchange("", "x", "k", nil) },
			wire.AccessRefused, defaultRefused},
		{"missing destination exchange", func(v *VHost) error { return v.BindExchange("nope", "x", "k", nil) },
			wire.NotFound, "NOT_FOUND - no exchange 'nope' in vhost '/'"},
		{"missing source exchange", func(v *VHost) error { return v.BindExchange("x", "nope", "k", nil) },
			wire.NotFound, "NOT_FOUND - no exchange 'nope' in vhost '/'"},
		{"unbind missing exchange binding", func(v *VHost) error { return v.UnbindExchange("amq.fanout", "x", "k", nil) }, 0, ""},
		{"invalid headers binding", func(v *VHost) error {
			return v.BindQueue("q", "amq.headers", "", wire.Table{"x-match": "some"}, 0)
		}, wire.PreconditionFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustQueue(t, v, QueueSpec{Name: "q"})
			mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct"})
			gen := v.Generation()
			err := tt.op(v)
			if tt.wantCode != 0 && tt.wantText == "" {
				if we, ok := err.(*wire.Error); !ok || we.Code != tt.wantCode {
					t.Fatalf("error %v, want code %d", err, tt.wantCode)
				}
			} else {
				wantResult(t, err, tt.wantCode, tt.wantText)
			}
			if v.Generation() != gen {
				t.Fatal("a failed or empty bind changed the generation")
			}
		})
	}
}

func TestAutoDeleteExchange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(t *testing.T, v *VHost)
		act      func(t *testing.T, v *VHost)
		wantGone []string // exchanges that must be gone
		wantKept []string
	}{
		{
			name: "unbinding one of two bindings keeps it",
			setup: func(t *testing.T, v *VHost) {
				mustBind(t, v, "q1", "ad", "k")
				mustBind(t, v, "q2", "ad", "k")
			},
			act: func(t *testing.T, v *VHost) {
				if err := v.UnbindQueue("q1", "ad", "k", nil); err != nil {
					t.Fatal(err)
				}
			},
			wantKept: []string{"ad"},
		},
		{
			name:  "unbinding the last binding deletes it",
			setup: func(t *testing.T, v *VHost) { mustBind(t, v, "q1", "ad", "k") },
			act: func(t *testing.T, v *VHost) {
				if err := v.UnbindQueue("q1", "ad", "k", nil); err != nil {
					t.Fatal(err)
				}
			},
			wantGone: []string{"ad"},
		},
		{
			name:  "deleting the bound queue deletes it",
			setup: func(t *testing.T, v *VHost) { mustBind(t, v, "q1", "ad", "k") },
			act: func(t *testing.T, v *VHost) {
				if _, err := v.DeleteQueue("q1", 0, false, false); err != nil {
					t.Fatal(err)
				}
			},
			wantGone: []string{"ad"},
		},
		{
			name: "a queue bound twice: deleting it removes both bindings",
			setup: func(t *testing.T, v *VHost) {
				mustBind(t, v, "q1", "ad", "a")
				mustBind(t, v, "q1", "ad", "b")
			},
			act: func(t *testing.T, v *VHost) {
				if _, err := v.DeleteQueue("q1", 0, false, false); err != nil {
					t.Fatal(err)
				}
			},
			wantGone: []string{"ad"},
		},
		{
			name:  "deleting the destination exchange deletes it",
			setup: func(t *testing.T, v *VHost) { mustBindExchange(t, v, "plain", "ad", "k") },
			act: func(t *testing.T, v *VHost) {
				if err := v.DeleteExchange("plain", false); err != nil {
					t.Fatal(err)
				}
			},
			wantGone: []string{"ad"},
		},
		{
			name: "unbinding an exchange-to-exchange binding deletes it",
			setup: func(t *testing.T, v *VHost) {
				mustBindExchange(t, v, "plain", "ad", "k")
			},
			act: func(t *testing.T, v *VHost) {
				if err := v.UnbindExchange("plain", "ad", "k", nil); err != nil {
					t.Fatal(err)
				}
			},
			wantGone: []string{"ad"},
			wantKept: []string{"plain"},
		},
		{
			name: "cascade through a chain of auto-delete exchanges",
			setup: func(t *testing.T, v *VHost) {
				mustBindExchange(t, v, "ad2", "ad", "k")
				mustBind(t, v, "q1", "ad2", "k")
			},
			act: func(t *testing.T, v *VHost) {
				if _, err := v.DeleteQueue("q1", 0, false, false); err != nil {
					t.Fatal(err)
				}
			},
			wantGone: []string{"ad", "ad2"},
		},
		{
			name:     "never bound: kept",
			setup:    func(t *testing.T, v *VHost) {},
			act:      func(t *testing.T, v *VHost) {},
			wantKept: []string{"ad"},
		},
		{
			name:  "being a destination does not count",
			setup: func(t *testing.T, v *VHost) { mustBindExchange(t, v, "ad", "plain", "k") },
			act: func(t *testing.T, v *VHost) {
				if err := v.UnbindExchange("ad", "plain", "k", nil); err != nil {
					t.Fatal(err)
				}
			},
			wantKept: []string{"ad", "plain"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustExchange(t, v, ExchangeSpec{Name: "ad", Kind: "direct", AutoDelete: true})
			mustExchange(t, v, ExchangeSpec{Name: "ad2", Kind: "direct", AutoDelete: true})
			mustExchange(t, v, ExchangeSpec{Name: "plain", Kind: "direct"})
			mustQueue(t, v, QueueSpec{Name: "q1"})
			mustQueue(t, v, QueueSpec{Name: "q2"})
			tt.setup(t, v)
			tt.act(t, v)
			for _, n := range tt.wantGone {
				wantResult(t, v.DeclareExchange(ExchangeSpec{Name: n}, true), wire.NotFound, "NOT_FOUND - no exchange '"+n+"' in vhost '/'")
			}
			for _, n := range tt.wantKept {
				if err := v.DeclareExchange(ExchangeSpec{Name: n}, true); err != nil {
					t.Fatalf("exchange %q: %v", n, err)
				}
			}
		})
	}
}

func TestAutoDeleteQueueLeavesVHost(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "ad", Kind: "fanout", AutoDelete: true})
	q := mustQueue(t, v, QueueSpec{Name: "tmp", AutoDelete: true})
	mustBind(t, v, "tmp", "ad", "")
	c := &queue.Consumer{Tag: "c", Sink: &collectSink{}}
	if err := q.AddConsumer(c, nil); err != nil {
		t.Fatal(err)
	}
	gen := v.Generation()
	q.RemoveConsumer(c)
	if !q.Deleted() {
		t.Fatal("auto-delete queue not deleted with its last consumer")
	}
	if v.Generation() == gen {
		t.Fatal("generation unchanged after the auto-delete")
	}
	_, err := v.Queue("tmp", 0)
	wantWireError(t, err, wire.NotFound, "NOT_FOUND - no queue 'tmp' in vhost '/'")
	// Its binding went, and with it the auto-delete exchange.
	wantResult(t, v.DeclareExchange(ExchangeSpec{Name: "ad"}, true), wire.NotFound, "NOT_FOUND - no exchange 'ad' in vhost '/'")
}

func TestGeneration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		op      func(t *testing.T, v *VHost)
		changes bool
	}{
		{"declare exchange", func(t *testing.T, v *VHost) { mustExchange(t, v, ExchangeSpec{Name: "new", Kind: "topic"}) }, true},
		{"redeclare exchange", func(t *testing.T, v *VHost) { mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct"}) }, false},
		{"passive exchange", func(t *testing.T, v *VHost) { _ = v.DeclareExchange(ExchangeSpec{Name: "x"}, true) }, false},
		{"declare queue", func(t *testing.T, v *VHost) { mustQueue(t, v, QueueSpec{Name: "new"}) }, true},
		{"redeclare queue", func(t *testing.T, v *VHost) { mustQueue(t, v, QueueSpec{Name: "q"}) }, false},
		{"bind", func(t *testing.T, v *VHost) { mustBind(t, v, "q", "x", "other") }, true},
		{"bind again", func(t *testing.T, v *VHost) { mustBind(t, v, "q", "x", "k") }, false},
		{"bind exchange", func(t *testing.T, v *VHost) { mustBindExchange(t, v, "amq.fanout", "x", "k") }, true},
		{"unbind", func(t *testing.T, v *VHost) { _ = v.UnbindQueue("q", "x", "k", nil) }, true},
		{"unbind missing", func(t *testing.T, v *VHost) { _ = v.UnbindQueue("q", "x", "none", nil) }, false},
		{"delete exchange", func(t *testing.T, v *VHost) { _ = v.DeleteExchange("x", false) }, true},
		{"delete missing exchange", func(t *testing.T, v *VHost) { _ = v.DeleteExchange("none", false) }, false},
		{"delete queue", func(t *testing.T, v *VHost) { _, _ = v.DeleteQueue("q", 0, false, false) }, true},
		{"purge", func(t *testing.T, v *VHost) { _, _ = v.PurgeQueue("q", 0) }, false},
		{"route", func(t *testing.T, v *VHost) { routeNames(t, v, "x", "k", nil) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct"})
			mustQueue(t, v, QueueSpec{Name: "q"})
			mustBind(t, v, "q", "x", "k")
			gen := v.Generation()
			tt.op(t, v)
			if changed := v.Generation() != gen; changed != tt.changes {
				t.Fatalf("generation changed: %v, want %v", changed, tt.changes)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := memRegistry()
	if r.Get("/") != nil || len(r.Names()) != 0 {
		t.Fatal("a new registry is not empty")
	}
	a, err := r.Add("b-host")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := r.Add("b-host"); again != a {
		t.Fatal("Add of an existing vhost returned another one")
	}
	if _, err := r.Add("/"); err != nil {
		t.Fatal(err)
	}
	if got := r.Names(); len(got) != 2 || got[0] != "/" || got[1] != "b-host" {
		t.Fatalf("Names = %q", got)
	}
	if r.Get("b-host") != a || a.Name() != "b-host" {
		t.Fatal("Get does not return the added vhost")
	}
	// Every vhost has the predeclared exchanges.
	for _, p := range predeclared {
		if err := a.DeclareExchange(ExchangeSpec{Name: p.name, Kind: p.kind, Durable: true, Internal: p.internal}, false); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
}

func TestVHostIsolation(t *testing.T) {
	t.Parallel()
	r := memRegistry()
	a, _ := r.Add("a")
	b, _ := r.Add("b")
	for _, v := range []*VHost{a, b} {
		mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct"})
		mustQueue(t, v, QueueSpec{Name: "q"})
	}
	qa, _ := a.Queue("q", 0)
	qb, _ := b.Queue("q", 0)
	if qa == qb {
		t.Fatal("two vhosts share a queue")
	}
	mustBind(t, a, "q", "x", "k")
	wantRoute(t, a, "x", "k", "q")
	wantRoute(t, b, "x", "k")
	// Different declarations of the same names do not conflict.
	mustExchange(t, b, ExchangeSpec{Name: "y", Kind: "fanout"})
	mustExchange(t, a, ExchangeSpec{Name: "y", Kind: "topic"})
	mustQueue(t, a, QueueSpec{Name: "ex", Exclusive: true, Owner: 1})
	mustQueue(t, b, QueueSpec{Name: "ex", Exclusive: true, Owner: 2})
	a.DeleteExclusive(2)
	if _, err := a.Queue("ex", 1); err != nil {
		t.Fatalf("a's exclusive queue: %v", err)
	}
	if _, err := a.DeleteQueue("q", 0, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Queue("q", 0); err != nil {
		t.Fatalf("deleting a's queue touched b's: %v", err)
	}
	if err := a.DeleteExchange("x", false); err != nil {
		t.Fatal(err)
	}
	if err := b.DeclareExchange(ExchangeSpec{Name: "x"}, true); err != nil {
		t.Fatalf("deleting a's exchange touched b's: %v", err)
	}
	_, err := a.Queue("nope", 0)
	wantWireError(t, err, wire.NotFound, "NOT_FOUND - no queue 'nope' in vhost 'a'")
}
