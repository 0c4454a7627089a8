package vhost

import (
	"fmt"
	"testing"

	"github.com/warrenmq/warren/queue"
)

// BenchmarkRoute routes with a warm RouteScratch and a reused result
// slice, as a publishing channel does when its route cache misses: direct
// and topic exchanges with 100 bindings each, and a fanout to 10 queues.
func BenchmarkRoute(b *testing.B) {
	v := newTestVHost(b)
	mustExchange(b, v, ExchangeSpec{Name: "direct", Kind: "direct"})
	mustExchange(b, v, ExchangeSpec{Name: "topic", Kind: "topic"})
	mustExchange(b, v, ExchangeSpec{Name: "fanout", Kind: "fanout"})
	for i := range 100 {
		name := fmt.Sprintf("q%03d", i)
		mustQueue(b, v, QueueSpec{Name: name})
		mustBind(b, v, name, "direct", name)
		mustBind(b, v, name, "topic", fmt.Sprintf("stock.%d.*", i))
		if i < 10 {
			mustBind(b, v, name, "fanout", "")
		}
	}
	cases := []struct {
		name, exchange, key string
		want                int
	}{
		{"direct", "direct", "q042", 1},
		{"topic", "topic", "stock.42.nyse", 1},
		{"fanout10", "fanout", "", 10},
		{"default", "", "q042", 1},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			sc := &RouteScratch{}
			var out []queue.Queue
			var err error
			out, _, err = v.Route(c.exchange, c.key, nil, out[:0], sc) // warm up
			if err != nil || len(out) != c.want {
				b.Fatalf("Route: %d queues, %v; want %d", len(out), err, c.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				out, _, _ = v.Route(c.exchange, c.key, nil, out[:0], sc)
			}
			if len(out) != c.want {
				b.Fatalf("Route: %d queues, want %d", len(out), c.want)
			}
		})
	}
}
