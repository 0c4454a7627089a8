package vhost

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// waitBodies waits until queue name holds want messages and returns their
// bodies and x-delay headers in order.
func waitBodies(t testing.TB, v *VHost, name string, want int) ([]string, []any) {
	t.Helper()
	q, err := v.Queue(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Stats().Ready < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d messages after 10s, want %d", name, q.Stats().Ready, want)
		}
		time.Sleep(time.Millisecond)
	}
	var bodies []string
	var delays []any
	for range want {
		e, p, _ := take(t, v, name)
		bodies = append(bodies, string(e.Msg.Body))
		delays = append(delays, p.Headers["x-delay"])
	}
	return bodies, delays
}

func TestDelayedExchange(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "later", Kind: "x-delayed-message", Args: wire.Table{"x-delayed-type": "direct"}})
	mustQueue(t, v, QueueSpec{Name: "q"})
	mustBind(t, v, "q", "later", "k")
	start := time.Now()
	for _, m := range []struct {
		body  string
		delay any
	}{{"1.6s", int32(1600)}, {"1s", "1000"}, {"1.3s", 1300.7}, {"1.3s-again", int64(1300)}} {
		send(t, v, "later", "k", wire.Properties{Headers: wire.Table{"x-delay": m.delay}}, m.body)
	}
	// Not delayed: no header, zero, negative, another type, too long. (The
	// delays above are long enough that these surely come first.)
	for _, h := range []wire.Table{nil, {"x-delay": int32(0)}, {"x-delay": int32(-5)}, {"x-delay": true}, {"x-delay": int64(queue.MaxDelay + 1)}} {
		send(t, v, "later", "k", wire.Properties{Headers: h}, "now")
	}
	bodies, _ := waitBodies(t, v, "q", 5)
	for _, b := range bodies {
		if b != "now" {
			t.Fatalf("a delayed message came at once: %q", bodies)
		}
	}
	bodies, delays := waitBodies(t, v, "q", 4)
	wantStrings(t, bodies, []string{"1s", "1.3s", "1.3s-again", "1.6s"})
	// Due times are whole milliseconds: one may fall up to 1 ms before
	// start plus its delay.
	if time.Since(start) < 1599*time.Millisecond {
		t.Fatalf("all delivered after %v, before the longest delay", time.Since(start))
	}
	for i, d := range delays {
		if d != []any{int32(-1000), int32(-1300), int32(-1300), int32(-1600)}[i] {
			t.Fatalf("x-delay on delivery %v, want the delay negated", delays)
		}
	}
}

func TestDelayedExchangeArguments(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	const text = "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must bean existing exchnage type"
	for _, args := range []wire.Table{nil, {"x-delayed-type": int32(1)}, {"x-delayed-type": "x-delayed-message"}, {"x-delayed-type": "x-message-deduplication"}} {
		wantWireError(t, v.DeclareExchange(ExchangeSpec{Name: "d", Kind: "x-delayed-message", Args: args}, false), wire.PreconditionFailed, text)
	}
	wantWireError(t, v.DeclareExchange(ExchangeSpec{Name: "d", Kind: "x-delayed-message", Args: wire.Table{"x-delayed-type": "nope"}}, false),
		wire.PreconditionFailed, "PRECONDITION_FAILED - unknown exchange type 'nope'")
	// Deleting the exchange drops what it holds.
	mustExchange(t, v, ExchangeSpec{Name: "d", Kind: "x-delayed-message", Args: wire.Table{"x-delayed-type": "fanout"}})
	mustQueue(t, v, QueueSpec{Name: "q"})
	mustBind(t, v, "q", "d", "")
	send(t, v, "d", "", wire.Properties{Headers: wire.Table{"x-delay": int32(20)}}, "never")
	v.mu.RLock()
	held := v.exchanges["d"].delay
	v.mu.RUnlock()
	if err := v.DeleteExchange("d", false); err != nil {
		t.Fatal(err)
	}
	if !held.Deleted() || held.Stats().Ready != 0 {
		t.Fatal("the deleted exchange's delayed messages are still held")
	}
}

func TestDelayedMessagesSurviveARestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), 64<<20, DefaultName)
	v := n.vhost(t, DefaultName)
	mustExchange(t, v, ExchangeSpec{Name: "later", Kind: "x-delayed-message", Durable: true, Args: wire.Table{"x-delayed-type": "fanout"}})
	mustQueue(t, v, QueueSpec{Name: "q", Durable: true})
	mustBind(t, v, "q", "later", "")
	for _, b := range []string{"second", "first"} {
		delay := map[string]int32{"first": 300, "second": 400}[b]
		send(t, v, "later", "", wire.Properties{DeliveryMode: 2, Headers: wire.Table{"x-delay": delay}}, b)
	}
	send(t, v, "later", "", wire.Properties{Headers: wire.Table{"x-delay": int32(300)}}, "transient: lost")
	flush(t, n.store)
	n = n.restart(t)
	v = n.vhost(t, DefaultName)
	bodies, delays := waitBodies(t, v, "q", 2)
	wantStrings(t, bodies, []string{"first", "second"})
	if delays[0] != int32(-300) {
		t.Fatalf("x-delay %v", delays)
	}
	flush(t, n.store)
	n = n.restart(t) // nothing left to fire twice
	q, _ := n.vhost(t, DefaultName).Queue("q", 0)
	if st := q.Stats(); st.Ready != 0 {
		t.Fatalf("after a second restart the queue holds %d", st.Ready)
	}
}

// Messages that fall due while the node is down (delayed ones and ones
// that expire into a dead-letter exchange) are moved once the whole
// topology is back, not while it loads: none is lost, however many
// definitions the node has to load first.
func TestOverdueMessagesAfterARestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), 64<<20, DefaultName)
	v := n.vhost(t, DefaultName)
	mustExchange(t, v, ExchangeSpec{Name: "later", Kind: "x-delayed-message", Durable: true, Args: wire.Table{"x-delayed-type": "fanout"}})
	mustQueue(t, v, QueueSpec{Name: "delayed", Durable: true})
	mustBind(t, v, "delayed", "later", "")
	mustExchange(t, v, ExchangeSpec{Name: "dlx", Kind: "fanout", Durable: true})
	mustQueue(t, v, QueueSpec{Name: "src", Durable: true, Args: wire.Table{"x-message-ttl": int32(500), "x-dead-letter-exchange": "dlx"}})
	mustQueue(t, v, QueueSpec{Name: "dead", Durable: true})
	mustBind(t, v, "dead", "dlx", "")
	for i := range 200 { // definitions to load after the ones above
		name := fmt.Sprintf("filler-%03d", i)
		mustQueue(t, v, QueueSpec{Name: name, Durable: true})
		mustBind(t, v, name, "amq.fanout", "")
	}
	const count = 20
	due := time.Now().Add(500 * time.Millisecond)
	for range count {
		send(t, v, "later", "", wire.Properties{DeliveryMode: 2, Headers: wire.Table{"x-delay": int32(500)}}, "delayed")
		send(t, v, "", "src", wire.Properties{DeliveryMode: 2}, "expired")
	}
	flush(t, n.store)
	if err := n.store.Close(); err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(due.Add(50 * time.Millisecond)) { // the node is down past both deadlines
		time.Sleep(10 * time.Millisecond)
	}
	n = startNode(t, n.dir, n.budget)
	v = n.vhost(t, DefaultName)
	waitBodies(t, v, "delayed", count)
	waitBodies(t, v, "dead", count)
}
