package vhost

import (
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue/classic"
)

// The tests in this file pin behaviour where RabbitMQ's source says one
// thing and Warren did another. Each names the RabbitMQ function that
// decides it.

// rabbit_amqqueue:perform_full_equivalence_checks runs
// check_exclusive_access(Q, Owner, strict) before any field check, where
// Owner is the declaring connection only for an exclusive declare: a
// redeclare whose exclusive flag differs from the queue's is 405
// RESOURCE_LOCKED, never "inequivalent arg 'exclusive'". And rabbit_channel
// declares exclusive queues non-durable (Durable = DurableDeclare andalso
// not ExclusiveDeclare), so the durable flag of an exclusive redeclare is
// not compared with the first declare's.
func TestRedeclareExclusiveMismatchIsLocked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		first    QueueSpec
		again    QueueSpec
		wantCode uint16
		wantText string
	}{
		{"owner redeclares its exclusive queue as not exclusive",
			QueueSpec{Name: "ex", Exclusive: true, Owner: 1}, QueueSpec{Name: "ex", Owner: 1},
			wire.ResourceLocked, lockedText},
		{"a shared queue redeclared as exclusive",
			QueueSpec{Name: "ex", Owner: 1}, QueueSpec{Name: "ex", Exclusive: true, Owner: 1},
			wire.ResourceLocked, lockedText},
		{"exclusive mismatch is checked before durable",
			QueueSpec{Name: "ex", Durable: true, Owner: 1}, QueueSpec{Name: "ex", Exclusive: true, Owner: 1},
			wire.ResourceLocked, lockedText},
		{"exclusive queues are not durable: the flag is not compared",
			QueueSpec{Name: "ex", Durable: true, Exclusive: true, Owner: 1}, QueueSpec{Name: "ex", Exclusive: true, Owner: 1},
			0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustQueue(t, v, tt.first)
			_, err := v.DeclareQueue(tt.again, false)
			wantResult(t, err, tt.wantCode, tt.wantText)
		})
	}
}

// rabbit_channel's queue.declare calls check_name('queue', Name) on every
// client-supplied name, before looking the queue up: "amq.gen-..." is
// reserved like any "amq." name, whether or not such a queue exists (only
// the server generates those names; a passive declare is not checked).
func TestClientSuppliedAmqGenNameIsReserved(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	_, err := v.DeclareQueue(QueueSpec{Name: "amq.gen-mine", Owner: 1}, false)
	wantResult(t, err, wire.AccessRefused, "ACCESS_REFUSED - queue name 'amq.gen-mine' contains reserved prefix 'amq.*'")

	q := mustQueue(t, v, QueueSpec{Exclusive: true, Owner: 1})
	if _, err := v.DeclareQueue(QueueSpec{Name: q.Name(), Owner: 1}, true); err != nil {
		t.Fatalf("passive declare of a server-named queue: %v", err)
	}
	_, err = v.DeclareQueue(QueueSpec{Name: q.Name(), Exclusive: true, Owner: 1}, false)
	wantResult(t, err, wire.AccessRefused, "ACCESS_REFUSED - queue name '"+q.Name()+"' contains reserved prefix 'amq.*'")
}

// rabbit_misc:assert_args_equivalence1 compares argument values by
// type_class: every integer type is "int", so x-max-length declared as a
// signed 32-bit 10 (the Java client) and redeclared as a 64-bit 10 (other
// clients) are equivalent. assert_field_equivalence also treats a missing
// x-queue-type and "classic" as equivalent (rabbitmq-common#341).
func TestQueueArgumentEquivalenceByTypeClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		first, then wire.Table
	}{
		{"signedint then long", wire.Table{"x-max-length": int32(10)}, wire.Table{"x-max-length": int64(10)}},
		{"long then unsignedshort", wire.Table{"x-message-ttl": int64(500)}, wire.Table{"x-message-ttl": uint16(500)}},
		{"byte then signedint", wire.Table{"x-max-priority": int8(5)}, wire.Table{"x-max-priority": int32(5)}},
		{"classic then no type", wire.Table{"x-queue-type": "classic"}, nil},
		{"no type then classic", nil, wire.Table{"x-queue-type": "classic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustQueue(t, v, QueueSpec{Name: "q", Args: tt.first})
			if _, err := v.DeclareQueue(QueueSpec{Name: "q", Args: tt.then}, false); err != nil {
				t.Fatalf("redeclare: %v", err)
			}
		})
	}
}

// The problem texts of rabbit_amqqueue's argument checks (RabbitMQ 3.9
// to 4.x): check_int_arg returns the string "expected integer, got <type>"
// (printed with ~p, so quoted); check_overflow returns invalid_overflow;
// check_dlxrk_arg returns routing_key_but_no_dlx_defined; check_queue_mode
// accepts only "default" and "lazy".
func TestValidateQueueArgsRabbitMQTexts(t *testing.T) {
	t.Parallel()
	const what = "queue 'q' in vhost '/'"
	invalid := func(arg, problem string) string {
		return "PRECONDITION_FAILED - invalid arg '" + arg + "' for " + what + ": " + problem
	}
	tests := []struct {
		name     string
		args     wire.Table
		wantText string
	}{
		{"x-max-length not an integer", wire.Table{"x-max-length": "10"}, invalid("x-max-length", `"expected integer, got longstr"`)},
		{"x-expires not an integer", wire.Table{"x-expires": true}, invalid("x-expires", `"expected integer, got bool"`)},
		{"x-message-ttl a double", wire.Table{"x-message-ttl": 1.5}, invalid("x-message-ttl", `"expected integer, got double"`)},
		{"x-max-priority not an integer", wire.Table{"x-max-priority": "high"}, invalid("x-max-priority", `"expected integer, got longstr"`)},
		{"x-overflow unknown", wire.Table{"x-overflow": "drop-tail"}, invalid("x-overflow", "invalid_overflow")},
		{"dead-letter key without exchange", wire.Table{"x-dead-letter-routing-key": "k"}, invalid("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")},
		{"x-queue-mode unknown", wire.Table{"x-queue-mode": "eager"}, invalid("x-queue-mode", `"unsupported queue mode 'eager'"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := validateQueueArgs(testKinds(classic.NewKind(classic.Options{})), what, tt.args)
			wantWireError(t, err, wire.PreconditionFailed, tt.wantText)
		})
	}
}

// rabbit_channel's exchange.declare calls rabbit_exchange:check_type
// before looking the exchange up: an unknown type is refused as such even
// when the exchange exists. And on creation an alternate-exchange argument
// that is not a string is refused (rabbit_misc:r_arg's invalid_type).
func TestExchangeDeclareTypeAndAlternateChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		spec     ExchangeSpec
		wantText string
	}{
		{"unknown type on an existing exchange", ExchangeSpec{Name: "x", Kind: "nope"},
			"PRECONDITION_FAILED - unknown exchange type 'nope'"},
		{"alternate exchange not a string", ExchangeSpec{Name: "y", Kind: "direct", Args: wire.Table{"alternate-exchange": int32(1)}},
			"PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in exchange 'y' in vhost '/'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustExchange(t, v, ExchangeSpec{Name: "x", Kind: "direct"})
			wantResult(t, v.DeclareExchange(tt.spec, false), wire.PreconditionFailed, tt.wantText)
		})
	}
}
