package vhost

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/exchange"
)

func TestDeduplicationExchange(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "once", Kind: "x-message-deduplication", Args: wire.Table{"x-cache-size": int32(2)}})
	mustQueue(t, v, QueueSpec{Name: "a"})
	mustQueue(t, v, QueueSpec{Name: "b"})
	mustBind(t, v, "a", "once", "ignored")
	mustBind(t, v, "b", "once", "")
	key := func(k any) wire.RawProperties { return headerProps(t, wire.Table{"x-deduplication-header": k}) }
	routes := func(p wire.RawProperties) int {
		qs, cacheable, err := v.Route("once", "any", p, nil, &RouteScratch{})
		if err != nil || cacheable {
			t.Fatalf("Route: %v, cacheable %v", err, cacheable)
		}
		return len(qs)
	}
	if n := routes(nil); n != 2 {
		t.Fatalf("a message without the header reached %d queues, want 2 (fanout)", n)
	}
	if routes(key("k1")) != 2 || routes(key("k1")) != 0 {
		t.Fatal("the second k1 was routed")
	}
	if routes(key(int64(7))) != 2 || routes(key(int8(7))) != 0 {
		t.Fatal("the same integer of another width was routed again")
	}
	// The cache holds 2 keys: a third pushes the oldest (k1) out.
	if routes(key("k3")) != 2 || routes(key("k1")) != 2 {
		t.Fatal("k1 was not forgotten when the cache filled up")
	}
}

func TestDeduplicationExchangeTTL(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "once", Kind: "x-message-deduplication", Args: wire.Table{"x-cache-size": "100", "x-cache-ttl": int32(1000)}})
	mustQueue(t, v, QueueSpec{Name: "q"})
	mustBind(t, v, "q", "once", "")
	routed := func(h wire.Table) bool {
		qs, _, err := v.Route("once", "", headerProps(t, h), nil, &RouteScratch{})
		if err != nil {
			t.Fatal(err)
		}
		return len(qs) == 1
	}
	short := wire.Table{"x-deduplication-header": "short"}
	long := wire.Table{"x-deduplication-header": "long", "x-cache-ttl": int32(60000)} // the message's own TTL wins
	if !routed(short) || routed(short) || !routed(long) {
		t.Fatal("first sightings not routed, or a duplicate routed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !routed(short) {
		if time.Now().After(deadline) {
			t.Fatal("a key was still remembered 10s after its 1s TTL")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if routed(long) {
		t.Fatal("a key with its own 60 s TTL was forgotten")
	}
}

func TestDeduplicationExchangeArguments(t *testing.T) {
	t.Parallel()
	v := newTestVHost(t)
	for _, tt := range []struct {
		args wire.Table
		text string
	}{
		{nil, "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"},
		{wire.Table{"x-cache-size": int32(0)}, "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"},
		{wire.Table{"x-cache-size": "many"}, "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"},
		{wire.Table{"x-cache-size": int32(5), "x-cache-ttl": int32(-1)}, "PRECONDITION_FAILED - Invalid argument, 'x-cache-ttl' must be an integer greater than 0"},
		{wire.Table{"x-cache-size": int32(5), "x-cache-persistence": "tape"}, "PRECONDITION_FAILED - Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"},
	} {
		wantWireError(t, v.DeclareExchange(ExchangeSpec{Name: "d", Kind: "x-message-deduplication", Args: tt.args}, false), wire.PreconditionFailed, tt.text)
	}
	mustExchange(t, v, ExchangeSpec{Name: "d", Kind: "x-message-deduplication", Args: wire.Table{"x-cache-size": int32(5), "x-cache-persistence": "disk"}})
}

func TestDedupCacheStaysBounded(t *testing.T) {
	t.Parallel()
	c := newDedupCache(exchange.DeduplicationCacheArgs{Size: 10, TTL: 1})
	for i := range 100000 {
		c.admit(fmt.Sprint(i%20), 0)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) > 10 || len(c.order)-c.head > 2*10+16 || cap(c.order) > 1000 {
		t.Fatalf("cache of size 10 holds %d keys and %d slots (capacity %d)", len(c.seen), len(c.order)-c.head, cap(c.order))
	}
}
