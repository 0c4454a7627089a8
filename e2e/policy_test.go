package e2e

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// putPolicy sets a policy (kind "policies") or an operator policy (kind
// "operator-policies") on the queues of vhost "/" through the API.
func putPolicy(t testing.TB, b *broker, kind, name, pattern string, def map[string]any) {
	t.Helper()
	body := map[string]any{"pattern": pattern, "definition": def, "apply-to": "queues"}
	if status, resp := b.api(t, "PUT", "/api/"+kind+"/%2F/"+name, body); status != 201 && status != 204 {
		t.Fatalf("PUT %s %s: %d %s", kind, name, status, resp)
	}
}

// queuePolicies reads a queue's policy, operator_policy and
// effective_policy_definition from the API.
func queuePolicies(t testing.TB, b *broker, queue string) (pol, op any, effective map[string]any) {
	t.Helper()
	var q struct {
		Policy         any            `json:"policy"`
		OperatorPolicy any            `json:"operator_policy"`
		Effective      map[string]any `json:"effective_policy_definition"`
	}
	b.getAPI(t, "/api/queues/%2F/"+queue, &q)
	return q.Policy, q.OperatorPolicy, q.Effective
}

// published publishes bodies to queue through the default exchange and
// returns once the queue holds them: a passive declare on the same channel
// is answered after the publishes before it were handled.
func published(t testing.TB, ch *amqp091.Channel, queue string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		publish(t, ch, "", queue, body)
	}
	if _, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

// getBody takes the head message of queue (acknowledged) and returns its
// body, "" when the queue is empty. basic.get expires due messages first.
func getBody(t testing.TB, ch *amqp091.Channel, queue string) string {
	t.Helper()
	d, ok, err := ch.Get(queue, true)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return string(d.Body)
}

// deathOf checks d's first x-death entry and returns "body reason queue".
func deathOf(t testing.TB, d amqp091.Delivery) string {
	t.Helper()
	e := deathEntries(t, d)[0]
	return fmt.Sprintf("%s %v %v", d.Body, e["reason"], e["queue"])
}

// ttlClock proves that time has passed on the broker: a probe published
// to a queue with x-message-ttl ms comes out of it dead-lettered only
// once that time is up.
type ttlClock struct {
	ch   *amqp091.Channel
	dead <-chan amqp091.Delivery
}

func newTTLClock(t testing.TB, ch *amqp091.Channel, ms int) *ttlClock {
	t.Helper()
	declareQueue(t, ch, "clock-dead", false, nil)
	declareQueue(t, ch, "clock", false, amqp091.Table{
		"x-message-ttl": ms, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "clock-dead"})
	dead, err := ch.Consume("clock-dead", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &ttlClock{ch, dead}
}

// wait returns once the queue's TTL has run out since it was called.
func (c *ttlClock) wait(t testing.TB) {
	t.Helper()
	publish(t, c.ch, "", "clock", "tick")
	receive(t, c.dead)
}

// TestPolicyTTLAndDeadLetter applies a policy with message-ttl and
// dead-letter-exchange to existing queues, one holding messages, and then
// deletes it. As in RabbitMQ's classic queues, a message's expiry is fixed
// when it is enqueued: messages published after the policy expire (at the
// head of the queue) and are dead-lettered with reason "expired", those
// already there when it came do not expire, and deleting the policy stops
// the expiry of later messages.
func TestPolicyTTLAndDeadLetter(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	clock := newTTLClock(t, openChannel(t, dial(t, b)), 100)
	declareExchange(t, ch, "pol-dlx", "fanout", false)
	declareQueue(t, ch, "pol-dead", false, nil)
	bind(t, ch, "pol-dead", "pol-dlx", "")
	declareQueue(t, ch, "pol-q", false, nil)
	declareQueue(t, ch, "pol-fresh", false, nil)
	published(t, ch, "pol-q", "old-1", "old-2")
	dead, err := openChannel(t, dial(t, b)).Consume("pol-dead", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	putPolicy(t, b, "policies", "pol-ttl", "^pol-(q|fresh)$", map[string]any{"message-ttl": 100, "dead-letter-exchange": "pol-dlx"})
	pol, op, eff := queuePolicies(t, b, "pol-q")
	if want := map[string]any{"message-ttl": 100.0, "dead-letter-exchange": "pol-dlx"}; pol != "pol-ttl" || op != nil || !reflect.DeepEqual(eff, want) {
		t.Errorf("pol-q: policy %v, operator_policy %v, effective_policy_definition %v; want pol-ttl, none, %v", pol, op, eff, want)
	}

	// A message published now expires and is dead-lettered.
	published(t, ch, "pol-fresh", "new-fresh")
	if got := deathOf(t, receive(t, dead)); got != "new-fresh expired pol-fresh" {
		t.Errorf("dead letter %q, want new-fresh expired pol-fresh", got)
	}
	// By now the TTL has run out since the policy came, but the messages
	// that were there keep no expiry (RabbitMQ's rabbit_amqqueue_process
	// computes a message's expiry when it is enqueued).
	if got := getBody(t, ch, "pol-q"); got != "old-1" {
		t.Fatalf("pol-q head %q, want old-1", got)
	}
	// A message behind old-2 expires once it reaches the head.
	published(t, ch, "pol-q", "new-q")
	if got := getBody(t, ch, "pol-q"); got != "old-2" {
		t.Fatalf("pol-q head %q, want old-2", got)
	}
	if got := deathOf(t, receive(t, dead)); got != "new-q expired pol-q" {
		t.Errorf("dead letter %q, want new-q expired pol-q", got)
	}
	if n := queueLen(t, b, "pol-q"); n != 0 {
		t.Errorf("pol-q holds %d messages, want 0", n)
	}

	if status, resp := b.api(t, "DELETE", "/api/policies/%2F/pol-ttl", nil); status != 204 {
		t.Fatalf("DELETE policy: %d %s", status, resp)
	}
	if pol, _, eff := queuePolicies(t, b, "pol-q"); pol != nil && pol != "" || len(eff) != 0 {
		t.Errorf("pol-q after the policy's deletion: policy %v, effective_policy_definition %v", pol, eff)
	}
	published(t, ch, "pol-fresh", "after")
	clock.wait(t)
	if got := getBody(t, ch, "pol-fresh"); got != "after" {
		t.Errorf("pol-fresh head %q after the policy was deleted, want after (not expired)", got)
	}
}

// TestPolicyPrecedence checks RabbitMQ's precedence between queue
// arguments, policies and operator policies by behaviour: for message-ttl
// (and the other limits) the lower of argument and policy wins, for
// dead-letter-exchange the argument; an operator policy caps a larger
// policy value.
func TestPolicyPrecedence(t *testing.T) {
	b := startBroker(t)
	_, ch := dialChannel(t, b)
	declareExchange(t, ch, "prec-dlx-arg", "fanout", false)
	declareExchange(t, ch, "prec-dlx-pol", "fanout", false)
	declareQueue(t, ch, "prec-dead", false, nil)
	bind(t, ch, "prec-dead", "prec-dlx-arg", "arg")
	bind(t, ch, "prec-dead", "prec-dlx-pol", "pol")
	dead, err := openChannel(t, dial(t, b)).Consume("prec-dead", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// via names the dead-letter exchange a delivery came through.
	via := func(d amqp091.Delivery) string {
		return deathOf(t, d) + " via " + d.Exchange
	}

	const hour = 3600000
	// prec-arg: its argument's TTL is the lower, and its DLX is an argument.
	declareQueue(t, ch, "prec-arg", false, amqp091.Table{"x-message-ttl": 100, "x-dead-letter-exchange": "prec-dlx-arg"})
	putPolicy(t, b, "policies", "prec-a", "^prec-arg$", map[string]any{"message-ttl": hour, "dead-letter-exchange": "prec-dlx-pol"})
	// prec-low: the policy's TTL is the lower, and it has no DLX argument.
	declareQueue(t, ch, "prec-low", false, amqp091.Table{"x-message-ttl": hour})
	putPolicy(t, b, "policies", "prec-l", "^prec-low$", map[string]any{"message-ttl": 100, "dead-letter-exchange": "prec-dlx-pol"})
	published(t, ch, "prec-arg", "arg")
	published(t, ch, "prec-low", "low")
	got := []string{via(receive(t, dead)), via(receive(t, dead))}
	slices.Sort(got)
	if want := []string{"arg expired prec-arg via prec-dlx-arg", "low expired prec-low via prec-dlx-pol"}; !slices.Equal(got, want) {
		t.Errorf("dead letters %q, want %q", got, want)
	}

	// Operator policies cap the policy's max-length and message-ttl.
	declareExchange(t, ch, "cap-dlx", "fanout", false)
	declareQueue(t, ch, "cap-dead", false, nil)
	bind(t, ch, "cap-dead", "cap-dlx", "")
	capDead, err := openChannel(t, dial(t, b)).Consume("cap-dead", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	declareQueue(t, ch, "cap-len", false, nil)
	declareQueue(t, ch, "cap-ttl", false, nil)
	putPolicy(t, b, "policies", "cap", "^cap-(len|ttl)$", map[string]any{"max-length": 10, "message-ttl": hour, "dead-letter-exchange": "cap-dlx"})
	putPolicy(t, b, "operator-policies", "cap-op-len", "^cap-len$", map[string]any{"max-length": 2, "message-ttl": 2 * hour})
	putPolicy(t, b, "operator-policies", "cap-op-ttl", "^cap-ttl$", map[string]any{"message-ttl": 100})
	pol, op, eff := queuePolicies(t, b, "cap-len")
	if want := map[string]any{"max-length": 2.0, "message-ttl": float64(hour), "dead-letter-exchange": "cap-dlx"}; pol != "cap" || op != "cap-op-len" || !reflect.DeepEqual(eff, want) {
		t.Errorf("cap-len: policy %v, operator_policy %v, effective_policy_definition %v; want cap, cap-op-len, %v", pol, op, eff, want)
	}
	published(t, ch, "cap-len", "len-1", "len-2", "len-3", "len-4", "len-5")
	if n := queueLen(t, b, "cap-len"); n != 2 {
		t.Errorf("cap-len holds %d messages, want 2 (the operator policy's max-length)", n)
	}
	published(t, ch, "cap-ttl", "ttl-1")
	got = nil
	for range 4 {
		got = append(got, deathOf(t, receive(t, capDead)))
	}
	slices.Sort(got)
	want := []string{"len-1 maxlen cap-len", "len-2 maxlen cap-len", "len-3 maxlen cap-len", "ttl-1 expired cap-ttl"}
	if !slices.Equal(got, want) {
		t.Errorf("dead letters %q, want %q", got, want)
	}
	if got := getBody(t, ch, "cap-len"); got != "len-4" {
		t.Errorf("cap-len head %q, want len-4", got)
	}
}
