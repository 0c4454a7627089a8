package vhost

import (
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	tests := []struct {
		name     string
		p        Policy
		operator bool
		want     string // "" when valid
	}{
		{"valid", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"message-ttl": 1000.0, "dead-letter-exchange": "dlx"}}, false, ""},
		{"not a policy key", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"max-priority": 10.0}}, false,
			`[<<"max-priority">>] are not recognised policy settings`},
		{"negative TTL", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"message-ttl": -1.0}}, false, "-1 is not a valid message TTL"},
		{"fractional length", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"max-length": 1.5}}, false, "1.5 is not a valid maximum length"},
		{"length past int64", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"max-length": 9223372036854775808.0}}, false, "9223372036854775808 is not a valid maximum length"},
		{"zero expiry", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"expires": 0.0}}, false, "0 is not a valid queue expiry"},
		{"bad overflow", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"overflow": "drop-tail"}}, false,
			`<<"drop-tail">> is not a valid overflow value`},
		{"bad apply-to", Policy{Name: "p", Pattern: ".*", ApplyTo: "topics", Definition: map[string]any{"max-length": 1.0}}, false,
			`<<"topics">> is not a valid 'apply-to' value`},
		{"empty definition", Policy{Name: "p", Pattern: ".*"}, false, "no policy provided"},
		{"operator policy key", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"max-length": 10.0}}, true, ""},
		{"not an operator policy key", Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"dead-letter-exchange": "x"}}, true,
			`[<<"dead-letter-exchange">>] are not recognised policy settings`},
	}
	for _, tt := range tests {
		err := v.SetPolicy(tt.p, tt.operator)
		var pe *PolicyError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (!errors.As(err, &pe) || pe.Reason != tt.want):
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

// A policy applies at once to queues that exist, and to new ones.
func TestPolicyAppliesToExistingQueues(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "dlx", Kind: "fanout"})
	mustQueue(t, v, QueueSpec{Name: "dead"})
	mustBind(t, v, "dead", "dlx", "")
	work := mustQueue(t, v, QueueSpec{Name: "work"})
	if err := v.SetPolicy(Policy{Name: "retry", Pattern: "^work$", ApplyTo: ApplyToQueues,
		Definition: map[string]any{"message-ttl": 10.0, "dead-letter-exchange": "dlx"}}, false); err != nil {
		t.Fatal(err)
	}
	if s := work.Settings(); s.MessageTTL != 10 || !s.DeadLetter || s.DeadLetterExchange != "dlx" {
		t.Fatalf("settings after the policy: %+v", s)
	}
	if a := v.QueuePolicies(work); a.Policy != "retry" || a.Effective["message-ttl"] != int64(10) {
		t.Fatalf("applied: %+v", a)
	}
	send(t, v, "", "work", wire.Properties{}, "late")
	waitBodies(t, v, "dead", 1)
	// Without the policy the queue is as declared again.
	if ok, err := v.DeletePolicy("retry", false); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if s := work.Settings(); s.MessageTTL != -1 || s.DeadLetter {
		t.Fatalf("settings after the policy went: %+v", s)
	}
}

// As in RabbitMQ: the lower of an argument and a policy wins for limits,
// the argument for the rest, and an operator policy caps both.
func TestPolicyPrecedence(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	q := mustQueue(t, v, QueueSpec{Name: "q", Args: wire.Table{"x-max-length": int32(5), "x-message-ttl": int32(100),
		"x-dead-letter-exchange": "from-arg", "x-overflow": "reject-publish"}})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(v.SetPolicy(Policy{Name: "low", Pattern: ".*", Priority: 1, Definition: map[string]any{"max-length": 100.0}}, false))
	must(v.SetPolicy(Policy{Name: "high", Pattern: "^q", Priority: 5, Definition: map[string]any{"max-length": 3.0,
		"message-ttl": 1000.0, "dead-letter-exchange": "from-policy", "overflow": "drop-head", "expires": 60000.0}}, false))
	must(v.SetPolicy(Policy{Name: "cap", Pattern: ".*", Definition: map[string]any{"max-length": 2.0, "expires": 30000.0}}, true))
	s := q.Settings()
	if s.MaxLength != 2 || s.MessageTTL != 100 || s.DeadLetterExchange != "from-arg" || s.Overflow != queue.RejectPublish || s.Expires != 30000 {
		t.Fatalf("effective settings %+v", s)
	}
	if a := v.QueuePolicies(q); a.Policy != "high" || a.OperatorPolicy != "cap" {
		t.Fatalf("applied %+v", a)
	}
	// Exchanges get the alternate exchange of a policy, unless they have one.
	must(v.SetPolicy(Policy{Name: "ae", Pattern: "^x", ApplyTo: ApplyToExchanges, Priority: 10, Definition: map[string]any{"alternate-exchange": "lost"}}, false))
	mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct"})
	mustExchange(t, v, ExchangeSpec{Name: "lost", Kind: "fanout"})
	mustQueue(t, v, QueueSpec{Name: "lost-q"})
	mustBind(t, v, "lost-q", "lost", "")
	wantRoute(t, v, "x", "nowhere", "lost-q")
}

// Policies and virtual host metadata survive a restart; a deleted virtual
// host leaves nothing behind.
func TestPoliciesStoredAndVhostDeleted(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), 64<<20, DefaultName)
	if _, err := n.reg.Put("prod", Meta{Description: "production", Tags: []string{"critical"}}); err != nil {
		t.Fatal(err)
	}
	v := n.vhost(t, "prod")
	if err := v.SetPolicy(Policy{Name: "cap", Pattern: ".*", Definition: map[string]any{"max-length": 1.0}}, false); err != nil {
		t.Fatal(err)
	}
	if err := v.SetPolicy(Policy{Name: "op", Pattern: ".*", Definition: map[string]any{"message-ttl": 5000.0}}, true); err != nil {
		t.Fatal(err)
	}
	mustQueue(t, v, QueueSpec{Name: "q", Durable: true})
	n = n.restart(t)
	v = n.vhost(t, "prod")
	if m := v.Meta(); m.Description != "production" || len(m.Tags) != 1 {
		t.Fatalf("meta after restart: %+v", m)
	}
	q, err := v.Queue("q", 0)
	if err != nil {
		t.Fatal(err)
	}
	if s := q.Settings(); s.MaxLength != 1 || s.MessageTTL != 5000 {
		t.Fatalf("recovered queue settings %+v", s)
	}
	var deleted []string
	n.reg.OnDelete(func(name string) { deleted = append(deleted, name) })
	if err := n.reg.Delete("prod"); err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || !q.Deleted() {
		t.Fatalf("hooks %q, queue deleted %v", deleted, q.Deleted())
	}
	if err := n.reg.Delete("prod"); !errors.Is(err, ErrNoVhost) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := v.DeclareQueue(QueueSpec{Name: "late"}, false); err == nil {
		t.Fatal("declared in a deleted vhost")
	}
	n = n.restart(t)
	if n.reg.Get("prod") != nil {
		t.Fatal("the deleted vhost came back")
	}
	for _, kind := range []byte{kindQueue, kindPolicy, kindOperatorPolicy, kindExchange, kindBinding} {
		_ = n.store.Definitions(kind, func(key string, _ []byte) error {
			if f, ok := splitKey(key, 2); ok && f[0] == "prod" {
				t.Errorf("record %c %q of the deleted vhost remains", kind, key)
			}
			return nil
		})
	}
}

// A policy that lowers a queue's max-length trims it at once, and what it
// drops is dead-lettered: that routes through the vhost, so it must not
// happen under the vhost's lock (it deadlocked the whole vhost).
func TestPolicyTrimDeadLetters(t *testing.T) {
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "dlx", Kind: "fanout"})
	mustQueue(t, v, QueueSpec{Name: "dead"})
	mustBind(t, v, "dead", "dlx", "")
	mustQueue(t, v, QueueSpec{Name: "work", Args: wire.Table{"x-dead-letter-exchange": "dlx"}})
	for range 3 {
		send(t, v, "", "work", wire.Properties{}, "m")
	}
	for _, change := range []func() error{
		func() error {
			return v.SetPolicy(Policy{Name: "cap", Pattern: "^work$", Definition: map[string]any{"max-length": 2.0}}, false)
		},
		func() error {
			return v.SetPolicy(Policy{Name: "low", Pattern: "^work$", Priority: -1, Definition: map[string]any{"max-length": 1.0}}, false)
		},
		func() error { _, err := v.DeletePolicy("cap", false); return err }, // uncovers the lower limit
	} {
		done := make(chan error, 1)
		go func() { done <- change() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a policy change did not return within 30s: trimming under the vhost lock")
		}
	}
	waitBodies(t, v, "dead", 2)
}

// With both a policy and an operator policy, the lower limit wins; for
// queue-version, as for strings, the operator policy does.
func TestPolicyValueMerge(t *testing.T) {
	pol := &Policy{Definition: map[string]any{"max-length": int64(10), "queue-version": int64(1), "overflow": "drop-head"}}
	op := &Policy{Definition: map[string]any{"max-length": int64(20), "queue-version": int64(2), "overflow": "reject-publish"}}
	for key, want := range map[string]any{"max-length": int64(10), "queue-version": int64(2), "overflow": "reject-publish"} {
		if got, ok := policyValue(pol, op, key); !ok || got != want {
			t.Errorf("%s = %v, %v; want %v", key, got, ok, want)
		}
	}
}

// Patterns are Perl's, as Erlang's re has them: the common "everything but
// amq.*" policy, with a lookahead, applies as on RabbitMQ.
func TestPolicyLookaheadPattern(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	mine := mustQueue(t, v, QueueSpec{Name: "orders"})
	gen := mustQueue(t, v, QueueSpec{Name: "amq.gen-x", ServerNamed: true})
	if err := v.SetPolicy(Policy{Name: "all-but-amq", Pattern: `^(?!amq\.).*`, Definition: map[string]any{"max-length": 7.0}}, false); err != nil {
		t.Fatal(err)
	}
	if mine.Settings().MaxLength != 7 || gen.Settings().MaxLength == 7 {
		t.Fatalf("max-length: orders %d, amq.gen-x %d; want 7 and unlimited", mine.Settings().MaxLength, gen.Settings().MaxLength)
	}
}

// An expiry a policy brings to an existing queue starts its lease: the
// unused queue goes.
func TestPolicyExpiresStartsLease(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	q := mustQueue(t, v, QueueSpec{Name: "idle"})
	if err := v.SetPolicy(Policy{Name: "exp", Pattern: "^idle$", Definition: map[string]any{"expires": 50.0}}, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !q.Deleted() {
		if time.Now().After(deadline) {
			t.Fatal("a queue given expires by a policy still exists 10s later")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Changes made through a vhost that has been deleted are refused: they
// must not be stored for a vhost made again under its name.
func TestDeletedVhostRefusesChanges(t *testing.T) {
	t.Parallel()
	r := memRegistry()
	v, err := r.Add("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if err := v.SetPolicy(Policy{Name: "p", Pattern: ".*", Definition: map[string]any{"max-length": 1.0}}, false); err == nil {
		t.Error("SetPolicy on a deleted vhost succeeded")
	}
	if ok, err := v.DeletePolicy("p", false); ok || err != nil {
		t.Errorf("DeletePolicy on a deleted vhost = %v, %v", ok, err)
	}
	if _, err := r.Add("x"); err != nil {
		t.Fatal(err)
	}
	if len(r.Get("x").Policies(false)) != 0 {
		t.Error("the new vhost has the old one's policy")
	}
}
