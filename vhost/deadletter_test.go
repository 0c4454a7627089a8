package vhost

import (
	"reflect"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// send publishes a message as a channel does: routed, then enqueued.
func send(t testing.TB, v *VHost, exchange, key string, p wire.Properties, body string) {
	t.Helper()
	raw, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := queue.BuildMessage(exchange, key, raw, []byte(body))
	qs, _, err := v.Route(exchange, key, m.Props, nil, &RouteScratch{})
	if err != nil {
		t.Fatal(err)
	}
	var out queue.Outcome
	queue.Publish(qs, m, &out)
}

// take gets one message from a queue (acknowledged at once) and returns
// its routing, properties and body; ok is false when the queue is empty.
func take(t testing.TB, v *VHost, name string) (e queue.Entry, p wire.Properties, ok bool) {
	t.Helper()
	q, err := v.Queue(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	e, _, ok = q.Get(true)
	if !ok {
		return e, p, false
	}
	if p, err = e.Msg.Props.Decode(); err != nil {
		t.Fatal(err)
	}
	return e, p, true
}

// reject takes one message from a queue and rejects it without requeue.
func reject(t testing.TB, v *VHost, name string) {
	t.Helper()
	q, err := v.Queue(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	e, _, ok := q.Get(false)
	if !ok {
		t.Fatalf("nothing to reject in %s", name)
	}
	q.Settle(nil, []queue.Entry{e}, queue.Discard)
}

// deathsOf returns an x-death header's entries without their times, which
// it checks are whole seconds within the test's run.
func deathsOf(t testing.TB, h wire.Table, since time.Time) []wire.Table {
	t.Helper()
	list, ok := h["x-death"].([]any)
	if !ok {
		t.Fatalf("x-death is %T, want an array", h["x-death"])
	}
	out := make([]wire.Table, len(list))
	for i, d := range list {
		tab, ok := d.(wire.Table)
		if !ok {
			t.Fatalf("x-death[%d] is %T, want a table", i, d)
		}
		tm, ok := tab["time"].(time.Time)
		if !ok || tm.Nanosecond() != 0 || tm.Before(since.Truncate(time.Second)) || tm.After(time.Now()) {
			t.Fatalf("x-death[%d] time %v, want a timestamp of this run", i, tab["time"])
		}
		c := wire.Table{}
		for k, v := range tab {
			if k != "time" {
				c[k] = v
			}
		}
		out[i] = c
	}
	return out
}

func TestDeadLetterOnReject(t *testing.T) {
	t.Parallel()
	start := time.Now()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "work-x", Kind: "direct"})
	mustExchange(t, v, ExchangeSpec{Name: "dlx", Kind: "fanout"})
	mustQueue(t, v, QueueSpec{Name: "work", Args: wire.Table{"x-dead-letter-exchange": "dlx"}})
	mustQueue(t, v, QueueSpec{Name: "dlq"})
	mustBind(t, v, "work", "work-x", "job")
	mustBind(t, v, "dlq", "dlx", "")
	send(t, v, "work-x", "job", wire.Properties{DeliveryMode: 2, Expiration: "60000", MessageID: "m1",
		Headers: wire.Table{"CC": []any{"other"}, "app": "kept"}}, "payload")
	reject(t, v, "work")

	e, p, ok := take(t, v, "dlq")
	if !ok {
		t.Fatal("nothing dead-lettered")
	}
	if string(e.Msg.Body) != "payload" || e.Msg.Exchange != "dlx" || e.Msg.RoutingKey != "job" {
		t.Fatalf("dead letter %q via %q/%q", e.Msg.Body, e.Msg.Exchange, e.Msg.RoutingKey)
	}
	if p.Expiration != "" || p.DeliveryMode != 2 || p.MessageID != "m1" {
		t.Fatalf("properties %+v: want the expiration removed, the rest kept", p)
	}
	h := p.Headers
	want := []wire.Table{{"count": int64(1), "reason": "rejected", "queue": "work", "exchange": "work-x",
		"routing-keys": []any{"job", "other"}, "original-expiration": "60000"}}
	if got := deathsOf(t, h, start); !reflect.DeepEqual(got, want) {
		t.Fatalf("x-death %v, want %v", got, want)
	}
	for k, want := range map[string]any{
		"x-first-death-queue": "work", "x-first-death-reason": "rejected", "x-first-death-exchange": "work-x",
		"x-last-death-queue": "work", "x-last-death-reason": "rejected", "x-last-death-exchange": "work-x",
		"CC": []any{"other"}, "app": "kept",
	} {
		if !reflect.DeepEqual(h[k], want) {
			t.Errorf("header %s = %v, want %v", k, h[k], want)
		}
	}
}

func TestDeadLetterRoutingKeyReplacesKeysAndCC(t *testing.T) {
	t.Parallel()
	start := time.Now()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "dlx", Kind: "direct", Internal: true}) // internal: only dead letters reach it
	mustQueue(t, v, QueueSpec{Name: "work", Args: wire.Table{"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "parked"}})
	mustQueue(t, v, QueueSpec{Name: "parked"})
	mustQueue(t, v, QueueSpec{Name: "cc-target"})
	mustBind(t, v, "parked", "dlx", "parked")
	mustBind(t, v, "cc-target", "dlx", "cc-key")
	send(t, v, "", "work", wire.Properties{Headers: wire.Table{"CC": []any{"cc-key"}}}, "m")
	reject(t, v, "work")
	e, p, ok := take(t, v, "parked")
	if !ok || e.Msg.RoutingKey != "parked" {
		t.Fatalf("dead letter %v routed with %q, want parked", ok, e.Msg.RoutingKey)
	}
	if _, ok := p.Headers["CC"]; ok {
		t.Fatal("CC kept although x-dead-letter-routing-key replaces the keys")
	}
	if got := deathsOf(t, p.Headers, start)[0]["routing-keys"]; !reflect.DeepEqual(got, []any{"work", "cc-key"}) {
		t.Fatalf("routing-keys %v, want the original key and CC", got)
	}
	if _, _, ok := take(t, v, "cc-target"); ok {
		t.Fatal("the dead letter followed its CC key")
	}
}

// The seed's retry pattern: a rejected message waits in a retry queue
// whose TTL sends it back; x-death counts the attempts.
func TestRetryLoopCountsDeaths(t *testing.T) {
	t.Parallel()
	start := time.Now()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "retry-x", Kind: "fanout"})
	mustQueue(t, v, QueueSpec{Name: "work", Args: wire.Table{"x-dead-letter-exchange": "retry-x"}})
	mustQueue(t, v, QueueSpec{Name: "retry", Args: wire.Table{"x-message-ttl": int32(0), "x-dead-letter-exchange": "",
		"x-dead-letter-routing-key": "work"}})
	mustBind(t, v, "retry", "retry-x", "")
	send(t, v, "", "work", wire.Properties{}, "job")
	for attempt := 1; attempt <= 3; attempt++ {
		reject(t, v, "work") // to retry, which expires it at once back to work
	}
	_, p, ok := take(t, v, "work")
	if !ok {
		t.Fatal("the message did not come back")
	}
	got := deathsOf(t, p.Headers, start)
	want := []wire.Table{
		{"count": int64(3), "reason": "expired", "queue": "retry", "exchange": "retry-x", "routing-keys": []any{"work"}},
		{"count": int64(3), "reason": "rejected", "queue": "work", "exchange": "", "routing-keys": []any{"work"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("x-death after three attempts:\n got %v\nwant %v", got, want)
	}
	if p.Headers["x-first-death-queue"] != "work" || p.Headers["x-last-death-queue"] != "retry" ||
		p.Headers["x-last-death-reason"] != "expired" {
		t.Fatalf("first/last death headers %v", p.Headers)
	}
}

func TestDeadLetterCycles(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	// Expiring back into itself: a cycle without a rejection, dropped.
	mustQueue(t, v, QueueSpec{Name: "self", Args: wire.Table{"x-message-ttl": int32(0), "x-dead-letter-exchange": "",
		"x-dead-letter-routing-key": "self"}})
	send(t, v, "", "self", wire.Properties{}, "m")
	if st := mustQueue(t, v, QueueSpec{Name: "self", Args: wire.Table{"x-message-ttl": int32(0), "x-dead-letter-exchange": "",
		"x-dead-letter-routing-key": "self"}}).Stats(); st.Ready != 0 {
		t.Fatalf("the cycling message is still there: %+v", st)
	}
	// Rejected back into itself: allowed, every time.
	mustQueue(t, v, QueueSpec{Name: "again", Args: wire.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "again"}})
	send(t, v, "", "again", wire.Properties{}, "m")
	for range 3 {
		reject(t, v, "again")
	}
	_, p, ok := take(t, v, "again")
	if !ok {
		t.Fatal("a rejected message was dropped as a cycle")
	}
	if n := p.Headers["x-death"].([]any)[0].(wire.Table)["count"]; n != int64(3) {
		t.Fatalf("count %v, want 3", n)
	}
}

func TestDeadLetterWithoutExchangeDrops(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	q := mustQueue(t, v, QueueSpec{Name: "work", Args: wire.Table{"x-dead-letter-exchange": "missing"}})
	send(t, v, "", "work", wire.Properties{}, "m")
	reject(t, v, "work")
	if st := q.Stats(); st.Ready != 0 || st.Unacked != 0 {
		t.Fatalf("after dead-lettering to a missing exchange: %+v", st)
	}
}

func TestIsDeathCycle(t *testing.T) {
	t.Parallel()
	death := func(q, r string) wire.Table { return wire.Table{"queue": q, "reason": r} }
	tests := []struct {
		name   string
		target string
		deaths []any
		want   bool
	}{
		{"no deaths", "a", nil, false},
		{"never died there", "a", []any{death("b", "expired")}, false},
		{"expired there", "a", []any{death("a", "expired")}, true},
		{"expired there via another", "a", []any{death("b", "maxlen"), death("a", "expired")}, true},
		{"a rejection on the way", "a", []any{death("b", "rejected"), death("a", "expired")}, false},
		{"rejected there", "a", []any{death("a", "rejected")}, false},
		{"a foreign entry", "a", []any{"junk", death("a", "expired")}, false},
	}
	for _, tt := range tests {
		if got := isDeathCycle(tt.target, tt.deaths); got != tt.want {
			t.Errorf("%s: isDeathCycle = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRecordDeathResetsAForeignHeader(t *testing.T) {
	t.Parallel()
	h := wire.Table{"x-death": "not an array", "x-first-death-queue": "old"}
	recordDeath(h, wire.Table{"queue": "q", "reason": "expired", "exchange": ""})
	list, ok := h["x-death"].([]any)
	if !ok || len(list) != 1 || list[0].(wire.Table)["count"] != int64(1) {
		t.Fatalf("x-death %v, want a fresh list", h["x-death"])
	}
	if h["x-first-death-queue"] != "old" {
		t.Fatal("x-first-death-* rewritten although the message had died before")
	}
}

func TestQueueExpiry(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	args := wire.Table{"x-expires": int32(60000)}
	q := mustQueue(t, v, QueueSpec{Name: "leased", Args: args})
	send(t, v, "", "leased", wire.Properties{}, "not dead-lettered")
	expire := func() { // as if the lease's period had passed since the last use
		v.mu.Lock()
		v.leases[q].declared = time.Now().Add(-time.Hour)
		v.mu.Unlock()
	}

	c := &queue.Consumer{Tag: "c", Sink: &collectSink{}, Queue: q}
	if err := q.AddConsumer(c, nil); err != nil {
		t.Fatal(err)
	}
	expire()
	v.checkLease(q)
	if q.Deleted() {
		t.Fatal("a queue with a consumer expired")
	}
	q.RemoveConsumer(c) // used just now
	expire()
	v.checkLease(q)
	if q.Deleted() {
		t.Fatal("a queue whose consumer left just now expired")
	}
	mustQueue(t, v, QueueSpec{Name: "leased", Args: args}) // a redeclare renews the lease
	v.checkLease(q)
	if q.Deleted() {
		t.Fatal("a queue declared just now expired")
	}

	short := mustQueue(t, v, QueueSpec{Name: "short", Args: wire.Table{"x-expires": int32(20)}})
	deadline := time.Now().Add(10 * time.Second)
	for !short.Deleted() {
		if time.Now().After(deadline) {
			t.Fatal("an unused queue with x-expires 20 ms still exists after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := v.Queue("short", 0); err == nil {
		t.Fatal("the expired queue is still in the vhost")
	}
}

// As in RabbitMQ 4, death headers a client publishes (say, republishing a
// message from a dead-letter queue) are not the broker's record: the
// message's first death by the broker starts a fresh one.
func TestClientDeathHeadersAreNotTheRecord(t *testing.T) {
	t.Parallel()
	start := time.Now()
	v := newTestVHost(t)
	mustQueue(t, v, QueueSpec{Name: "work", Args: wire.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}})
	mustQueue(t, v, QueueSpec{Name: "dlq"})
	send(t, v, "", "work", wire.Properties{Headers: wire.Table{
		"x-death":             []any{wire.Table{"queue": "work", "reason": "rejected", "count": int64(5)}},
		"x-first-death-queue": "elsewhere", "x-last-death-reason": "expired",
	}}, "republished")
	reject(t, v, "work")
	_, p, ok := take(t, v, "dlq")
	if !ok {
		t.Fatal("nothing dead-lettered")
	}
	want := []wire.Table{{"count": int64(1), "reason": "rejected", "queue": "work", "exchange": "", "routing-keys": []any{"work"}}}
	if got := deathsOf(t, p.Headers, start); !reflect.DeepEqual(got, want) {
		t.Fatalf("x-death %v, want %v", got, want)
	}
	if p.Headers["x-first-death-queue"] != "work" || p.Headers["x-last-death-reason"] != "rejected" {
		t.Fatalf("first/last death headers %v", p.Headers)
	}
}
