package vhost

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
)

// routingTopology declares, in a fresh vhost:
//
//	queues q1..q4, dq, ae1q, ae2q
//	direct "d":   q1 "k1", q2 "k1", q3 "k2"
//	fanout "f":   q1, q2, q3
//	topic "t":    q1 "a.*", q2 "a.#", q3 "#", q4 "*.b"
//	headers "h":  q1 {x-match: all, kind: a}, q2 {x-match: any, kind: a, other: x}
//	direct "x1" -> q1 "k";  x1 -> x2 "k";  fanout "x2" -> q2, x2 -> x1 (a cycle)
//	direct "dia" -> x3 "k", -> x4 "k"; fanout x3, x4 -> dq (a diamond)
//	direct "withae" (alternate-exchange "ae1") -> q1 "k"
//	direct "ae1" (alternate-exchange "ae2") -> ae1q "only"; fanout "ae2" -> ae2q
//	direct "missingae" (alternate-exchange "nope")
//	direct "loopae1" (ae "loopae2"), direct "loopae2" (ae "loopae1")
//	fanout "internal" (internal) -> q4; direct "public" -> internal "k"
//	direct "toempty" -> fanout "empty" "k"; toempty has alternate-exchange "ae2"
func routingTopology(t testing.TB) *VHost {
	t.Helper()
	v := newTestVHost(t)
	for _, q := range []string{"q1", "q2", "q3", "q4", "dq", "ae1q", "ae2q"} {
		mustQueue(t, v, QueueSpec{Name: q})
	}
	for _, x := range []ExchangeSpec{
		{Name: "d", Kind: "direct"}, {Name: "f", Kind: "fanout"}, {Name: "t", Kind: "topic"}, {Name: "h", Kind: "headers"},
		{Name: "x1", Kind: "direct"}, {Name: "x2", Kind: "fanout"},
		{Name: "dia", Kind: "direct"}, {Name: "x3", Kind: "fanout"}, {Name: "x4", Kind: "fanout"},
		{Name: "withae", Kind: "direct", Args: wire.Table{"alternate-exchange": "ae1"}},
		{Name: "ae1", Kind: "direct", Args: wire.Table{"alternate-exchange": "ae2"}},
		{Name: "ae2", Kind: "fanout"},
		{Name: "missingae", Kind: "direct", Args: wire.Table{"alternate-exchange": "nope"}},
		{Name: "loopae1", Kind: "direct", Args: wire.Table{"alternate-exchange": "loopae2"}},
		{Name: "loopae2", Kind: "direct", Args: wire.Table{"alternate-exchange": "loopae1"}},
		{Name: "internal", Kind: "fanout", Internal: true},
		{Name: "public", Kind: "direct"},
		{Name: "toempty", Kind: "direct", Args: wire.Table{"alternate-exchange": "ae2"}},
		{Name: "empty", Kind: "fanout"},
	} {
		mustExchange(t, v, x)
	}
	for _, b := range []struct{ q, x, k string }{
		{"q1", "d", "k1"}, {"q2", "d", "k1"}, {"q3", "d", "k2"},
		{"q1", "f", ""}, {"q2", "f", ""}, {"q3", "f", ""},
		{"q1", "t", "a.*"}, {"q2", "t", "a.#"}, {"q3", "t", "#"}, {"q4", "t", "*.b"},
		{"q1", "x1", "k"}, {"q2", "x2", ""}, {"dq", "x3", ""}, {"dq", "x4", ""},
		{"q1", "withae", "k"}, {"ae1q", "ae1", "only"}, {"ae2q", "ae2", ""},
		{"q4", "internal", ""},
	} {
		mustBind(t, v, b.q, b.x, b.k)
	}
	for _, b := range []struct{ dest, src, k string }{
		{"x2", "x1", "k"}, {"x1", "x2", ""}, {"x3", "dia", "k"}, {"x4", "dia", "k"},
		{"internal", "public", "k"}, {"empty", "toempty", "k"},
	} {
		mustBindExchange(t, v, b.dest, b.src, b.k)
	}
	if err := v.BindQueue("q1", "h", "", wire.Table{"x-match": "all", "kind": "a"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.BindQueue("q2", "h", "", wire.Table{"x-match": "any", "kind": "a", "other": "x"}, 0); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRoute(t *testing.T) {
	t.Parallel()
	v := routingTopology(t)
	tests := []struct {
		name          string
		exchange, key string
		headers       wire.Table
		want          []string
		wantCacheable bool
	}{
		{"default exchange", "", "q1", nil, []string{"q1"}, true},
		{"default exchange, no such queue", "", "nope", nil, []string{}, true},
		{"direct", "d", "k1", nil, []string{"q1", "q2"}, true},
		{"direct, no match", "d", "k9", nil, []string{}, true},
		{"fanout ignores the key", "f", "anything", nil, []string{"q1", "q2", "q3"}, true},
		{"topic one word", "t", "a.b", nil, []string{"q1", "q2", "q3", "q4"}, true},
		{"topic many words", "t", "a.b.c", nil, []string{"q2", "q3"}, true},
		{"topic hash only", "t", "z", nil, []string{"q3"}, true},
		{"headers all", "h", "", wire.Table{"kind": "a"}, []string{"q1", "q2"}, false},
		{"headers any", "h", "", wire.Table{"other": "x"}, []string{"q2"}, false},
		{"headers none", "h", "", nil, []string{}, false},
		{"exchange to exchange with a cycle", "x1", "k", nil, []string{"q1", "q2"}, true},
		{"cycle entered from the fanout side", "x2", "k", nil, []string{"q1", "q2"}, true},
		{"cycle entered from the fanout side, key x1 does not route", "x2", "", nil, []string{"q2"}, true},
		{"diamond: the queue once", "dia", "k", nil, []string{"dq"}, true},
		{"alternate exchange not used when routed", "withae", "k", nil, []string{"q1"}, true},
		{"alternate exchange", "withae", "only", nil, []string{"ae1q"}, true},
		{"alternate exchange of the alternate exchange", "withae", "other", nil, []string{"ae2q"}, true},
		{"missing alternate exchange", "missingae", "k", nil, []string{}, true},
		{"alternate exchanges in a loop", "loopae1", "k", nil, []string{}, true},
		{"routed to an exchange that routes nowhere: no alternate", "toempty", "k", nil, []string{}, true},
		{"unrouted: alternate", "toempty", "other", nil, []string{"ae2q"}, true},
		{"internal exchange through a binding", "public", "k", nil, []string{"q4"}, true},
		{"CC adds keys", "d", "k1", wire.Table{"CC": []any{"k2"}}, []string{"q1", "q2", "q3"}, false},
		{"BCC adds keys", "d", "k9", wire.Table{"BCC": []any{"k2"}}, []string{"q3"}, false},
		{"CC and BCC", "d", "k9", wire.Table{"CC": []any{"k1"}, "BCC": []any{"k2"}}, []string{"q1", "q2", "q3"}, false},
		{"CC ignores non-strings", "d", "k9", wire.Table{"CC": []any{int32(1), "k2"}}, []string{"q3"}, false},
		{"CC not an array is ignored", "d", "k9", wire.Table{"CC": "k2"}, []string{}, true},
		{"other headers keep it cacheable", "d", "k1", wire.Table{"x": "y"}, []string{"q1", "q2"}, true},
		{"CC on the default exchange", "", "q1", wire.Table{"CC": []any{"q2", "nope"}}, []string{"q1", "q2"}, false},
		{"CC on a topic exchange", "t", "z", wire.Table{"CC": []any{"a.b.c"}}, []string{"q2", "q3"}, false},
		{"CC to the same queue", "d", "k1", wire.Table{"CC": []any{"k1"}}, []string{"q1", "q2"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var props wire.RawProperties
			if tt.headers != nil {
				props = headerProps(t, tt.headers)
			}
			got, cacheable := routeNames(t, v, tt.exchange, tt.key, props)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Route(%q, %q) = %q, want %q", tt.exchange, tt.key, got, tt.want)
			}
			if cacheable != tt.wantCacheable {
				t.Fatalf("cacheable = %v, want %v", cacheable, tt.wantCacheable)
			}
		})
	}
}

func TestRouteErrors(t *testing.T) {
	t.Parallel()
	v := routingTopology(t)
	tests := []struct {
		name, exchange string
		code           uint16
		text           string
	}{
		{"missing exchange", "nope", wire.NotFound, "NOT_FOUND - no exchange 'nope' in vhost '/'"},
		{"internal exchange", "internal", wire.AccessRefused, "ACCESS_REFUSED - cannot publish to internal exchange 'internal' in vhost '/'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, cacheable, err := v.Route(tt.exchange, "k", nil, nil, &RouteScratch{})
			wantWireError(t, err, tt.code, tt.text)
			if len(out) != 0 || cacheable {
				t.Fatalf("on error: %d queues, cacheable %v", len(out), cacheable)
			}
		})
	}
}

func TestRouteAppendsToOut(t *testing.T) {
	t.Parallel()
	v := routingTopology(t)
	q1, _ := v.Queue("q1", 0)
	other, err := classic.NewKind(classic.Options{}).New(queue.Config{Name: "outside", Settings: queue.NoSettings})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := v.Route("f", "", nil, []queue.Queue{other, q1}, &RouteScratch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 || out[0] != other || out[1] != q1 {
		t.Fatalf("Route appended %q to [outside q1], want q2 and q3 after them", queueNames(out))
	}
}

// TestRouteManyQueues crosses the size at which Route switches from a
// linear duplicate check to a map.
func TestRouteManyQueues(t *testing.T) {
	t.Parallel()
	for _, n := range []int{15, 16, 17, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			v := newTestVHost(t)
			mustExchange(t, v, ExchangeSpec{Name: "fan", Kind: "fanout"})
			mustExchange(t, v, ExchangeSpec{Name: "fan2", Kind: "fanout"})
			mustExchange(t, v, ExchangeSpec{Name: "dir", Kind: "direct"})
			mustBindExchange(t, v, "fan2", "fan", "")
			var keys []any
			for i := range n {
				name := fmt.Sprintf("q%02d", i)
				mustQueue(t, v, QueueSpec{Name: name})
				mustBind(t, v, name, "fan", "")
				mustBind(t, v, name, "fan2", "") // every queue reached twice
				mustBind(t, v, name, "dir", name)
				keys = append(keys, name)
			}
			sc := &RouteScratch{}
			for range 3 { // the same scratch, reused
				for _, c := range []struct {
					exchange, key string
					props         wire.RawProperties
				}{
					{"fan", "", nil},
					{"dir", "q00", headerProps(t, wire.Table{"CC": keys, "BCC": keys})},
				} {
					qs, _, err := v.Route(c.exchange, c.key, c.props, nil, sc)
					if err != nil {
						t.Fatal(err)
					}
					got := queueNames(qs)
					if len(got) != n || len(slices.Compact(slices.Clone(got))) != n {
						t.Fatalf("Route(%q) = %d queues (%q), want each of %d once", c.exchange, len(got), got, n)
					}
				}
			}
			// The default exchange with CC naming every queue (and q00 twice),
			// on a scratch of its own (see the test below for why).
			got, _ := routeNames(t, v, "", "q00", headerProps(t, wire.Table{"CC": keys}))
			if len(got) != n {
				t.Fatalf("default exchange with CC: %d queues, want %d", len(got), n)
			}
		})
	}
}

// TestRouteScratchReuseAfterDefaultExchangeCC: a publish to the default
// exchange whose CC header names more than linearDedupMax queues leaves
// its duplicate set in the scratch (Route returns early for the default
// exchange without clearing it), and the next Route with the same scratch
// treats those queues as already routed: a fanout to them then reaches
// only the first linearDedupMax.
func TestRouteScratchReuseAfterDefaultExchangeCC(t *testing.T) {
	t.Parallel()
	const n = 20
	v := newTestVHost(t)
	mustExchange(t, v, ExchangeSpec{Name: "fan", Kind: "fanout"})
	var keys []any
	for i := range n {
		name := fmt.Sprintf("q%02d", i)
		mustQueue(t, v, QueueSpec{Name: name})
		mustBind(t, v, name, "fan", "")
		keys = append(keys, name)
	}
	sc := &RouteScratch{}
	qs, _, err := v.Route("", "q00", headerProps(t, wire.Table{"CC": keys}), nil, sc)
	if err != nil || len(qs) != n {
		t.Fatalf("default exchange with CC: %d queues, %v; want %d", len(qs), err, n)
	}
	qs, _, err = v.Route("fan", "", nil, nil, sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != n {
		t.Fatalf("fanout after a default-exchange CC publish on the same scratch: %d queues, want %d", len(qs), n)
	}
}

func TestRouteSeesTopologyChanges(t *testing.T) {
	t.Parallel()
	v := routingTopology(t)
	sc := &RouteScratch{}
	route := func() []string {
		qs, _, err := v.Route("d", "k1", nil, nil, sc)
		if err != nil {
			t.Fatal(err)
		}
		return queueNames(qs)
	}
	wantStrings(t, route(), []string{"q1", "q2"})
	if err := v.UnbindQueue("q1", "d", "k1", nil); err != nil {
		t.Fatal(err)
	}
	wantStrings(t, route(), []string{"q2"})
	if _, err := v.DeleteQueue("q2", 0, false, false); err != nil {
		t.Fatal(err)
	}
	wantStrings(t, route(), []string{})
	mustBind(t, v, "q4", "d", "k1")
	wantStrings(t, route(), []string{"q4"})
}

func wantStrings(t testing.TB, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestConcurrentRouteAndBind routes from several goroutines, each with its
// own scratch, while others bind, unbind and declare (for the race
// detector: routing reads the topology under the vhost's read lock).
func TestConcurrentRouteAndBind(t *testing.T) {
	t.Parallel()
	v := routingTopology(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := &RouteScratch{}
			var out []queue.Queue
			cc := headerProps(t, wire.Table{"CC": []any{"k2"}})
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, x := range []string{"d", "t", "x1", "withae", ""} {
					var err error
					if out, _, err = v.Route(x, "k1", cc, out[:0], sc); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	for i := range 300 {
		name := fmt.Sprintf("extra%d", i%10)
		mustQueue(t, v, QueueSpec{Name: name})
		mustBind(t, v, name, "d", "k1")
		mustBind(t, v, name, "t", "#")
		if err := v.UnbindQueue(name, "d", "k1", nil); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if _, err := v.DeleteQueue(name, 0, false, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
}
