package exchange

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
)

// benchDests is a pool of destinations that bindings are spread over.
func benchDests(n int) []*testDest {
	ds := make([]*testDest, n)
	for i := range ds {
		ds[i] = &testDest{"q" + strconv.Itoa(i)}
	}
	return ds
}

// topicBench builds a topic exchange with n bindings of realistic shapes:
// "stock.<sym>.*", "*.<exchange>.#", "#.<tag>" and three-word literal keys,
// spread over 1,000 queues, plus three bindings that "stock.sym1.nyse"
// matches, so that every size routes that key to the same three queues.
func topicBench(b *testing.B, n int) *Topic {
	b.Helper()
	r := NewTopic()
	ds := benchDests(1000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n - 3 {
		var key string
		switch i % 4 {
		case 0:
			key = "stock.sym" + strconv.Itoa(i+2) + ".*"
		case 1:
			key = "*.ex" + strconv.Itoa(i) + ".#"
		case 2:
			key = "#.tag" + strconv.Itoa(i)
		default:
			key = "w" + strconv.Itoa(rng.IntN(1000)) + ".w" + strconv.Itoa(rng.IntN(1000)) + ".w" + strconv.Itoa(rng.IntN(1000))
		}
		mustBind(b, r, Binding{Destination: ds[rng.IntN(len(ds))], Key: key})
	}
	mustBind(b, r, Binding{Destination: qa, Key: "stock.sym1.*"})
	mustBind(b, r, Binding{Destination: qb, Key: "*.sym1.#"})
	mustBind(b, r, Binding{Destination: qc, Key: "#.nyse"})
	return r
}

func BenchmarkTopicRoute(b *testing.B) {
	for _, n := range []int{10, 10_000, 100_000} {
		r := topicBench(b, n)
		// Distinct keys, never admitted to the cache: each is seen again only
		// after 32 others have passed through its slot.
		keys := make([]string, 4096)
		for i := range keys {
			keys[i] = "stock.sym" + strconv.Itoa(i) + ".nyse"
		}
		out := make([]Destination, 0, 64)
		b.Run("bindings="+strconv.Itoa(n)+"/cached", func(b *testing.B) {
			if got := len(r.Route("stock.sym1.nyse", nil, out[:0])); got != 3 {
				b.Fatalf("routed to %d, want 3", got)
			}
			b.ReportAllocs()
			for b.Loop() {
				out = r.Route("stock.sym1.nyse", nil, out[:0])
			}
		})
		b.Run("bindings="+strconv.Itoa(n)+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				out = r.Route(keys[i&4095], nil, out[:0])
				i++
			}
		})
		b.Run("bindings="+strconv.Itoa(n)+"/uncached-same-key", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.mu.RLock()
				out = r.match("stock.sym1.nyse", out[:0])
				r.mu.RUnlock()
			}
		})
	}
}

func BenchmarkTopicRouteParallel(b *testing.B) {
	r := topicBench(b, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		out := make([]Destination, 0, 64)
		for pb.Next() {
			out = r.Route("stock.sym1.nyse", nil, out[:0])
		}
	})
}

func BenchmarkDirectRoute(b *testing.B) {
	const n = 100_000
	r := NewDirect()
	ds := benchDests(1000)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "order.created." + strconv.Itoa(i)
		mustBind(b, r, Binding{Destination: ds[i%len(ds)], Key: keys[i]})
	}
	out := make([]Destination, 0, 8)
	b.Run("bindings=100000/same-key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out = r.Route(keys[4242], nil, out[:0])
		}
		if len(out) != 1 {
			b.Fatalf("routed to %d", len(out))
		}
	})
	// Keys in random order: every route misses the CPU caches.
	b.Run("bindings=100000/random-keys", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			out = r.Route(keys[i%n], nil, out[:0])
			i += 7919
		}
		if len(out) != 1 {
			b.Fatalf("routed to %d", len(out))
		}
	})
}

func BenchmarkFanoutRoute(b *testing.B) {
	r := NewFanout()
	for _, d := range benchDests(10) {
		mustBind(b, r, Binding{Destination: d})
	}
	out := make([]Destination, 0, 16)
	b.Run("bindings=10", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out = r.Route("", nil, out[:0])
		}
	})
}

func BenchmarkHeadersRoute(b *testing.B) {
	const n = 1000
	r := NewHeaders()
	ds := benchDests(100)
	for i := range n {
		args := wire.Table{
			"region": "r" + strconv.Itoa(i%10),
			"type":   "t" + strconv.Itoa(i/10%10),
			"prio":   int32(i / 100),
		}
		if i%2 == 1 {
			args["x-match"] = "any"
			args["id"] = int64(i)
		}
		mustBind(b, r, Binding{Destination: ds[i%len(ds)], Args: args})
	}
	headers := wire.Table{"region": "r3", "type": "t4", "prio": int64(5), "id": uint16(999), "other": "x"}
	out := make([]Destination, 0, 128)
	b.Run("bindings=1000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out = r.Route("", headers, out[:0])
		}
	})
}

func BenchmarkConsistentHashRoute(b *testing.B) {
	r, _ := NewConsistentHash(nil)
	for _, d := range benchDests(100) {
		mustBind(b, r, Binding{Destination: d, Key: "20"})
	}
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	out := make([]Destination, 0, 1)
	b.Run("bindings=100", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			out = r.Route(keys[i&4095], nil, out[:0])
			i++
		}
	})
}

// BenchmarkBind measures binding 100,000 keys one by one, per binding.
func BenchmarkBind(b *testing.B) {
	ds := benchDests(1000)
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = "stock.sym" + strconv.Itoa(i) + ".*"
	}
	for _, kind := range []string{"direct", "topic", "headers"} {
		b.Run(kind+"/bindings=100000", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, _ := New(kind, nil)
				for i, k := range keys {
					r.Bind(Binding{Destination: ds[i%len(ds)], Key: k})
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/bind")
		})
	}
}
