package exchange

import (
	"strconv"
	"sync"
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
)

// TestConcurrentRouteAndBind routes from several goroutines while others bind,
// unbind and remove destinations, for every type. Run it with -race. Every
// route must return distinct destinations, only ones that were ever bound,
// and a destination bound for the whole run must always be found.
func TestConcurrentRouteAndBind(t *testing.T) {
	t.Parallel()
	type setup struct {
		kind    string
		args    wire.Table
		steady  Binding // bound throughout; matches the routed message
		churn   func(i int) Binding
		key     string
		headers wire.Table
	}
	setups := []setup{
		{kind: "direct", steady: Binding{Key: "k"}, churn: func(i int) Binding { return Binding{Key: []string{"k", "j"}[i%2]} }, key: "k"},
		{kind: "fanout", steady: Binding{}, churn: func(i int) Binding { return Binding{Key: strconv.Itoa(i % 3)} }},
		{kind: "topic", steady: Binding{Key: "a.*.c"}, churn: func(i int) Binding {
			return Binding{Key: []string{"a.#", "#.c", "a.b.c", "x.#", "#"}[i%5]}
		}, key: "a.b.c"},
		{kind: "headers", steady: Binding{Args: wire.Table{"h": "1"}}, churn: func(i int) Binding {
			return Binding{Args: wire.Table{"x-match": "any", "h": "1", "n": int32(i % 7)}}
		}, headers: wire.Table{"h": "1"}},
		{kind: "x-consistent-hash", steady: Binding{Key: "5"}, churn: func(i int) Binding { return Binding{Key: strconv.Itoa(1 + i%4)} }, key: "k"},
	}
	for _, s := range setups {
		t.Run(s.kind, func(t *testing.T) {
			t.Parallel()
			r, err := New(s.kind, s.args)
			if err != nil {
				t.Fatal(err)
			}
			steady := &testDest{"steady"}
			s.steady.Destination = steady
			mustBind(t, r, s.steady)
			churners := make([]*testDest, 8)
			valid := map[Destination]bool{steady: true}
			for i := range churners {
				churners[i] = &testDest{"churn" + strconv.Itoa(i)}
				valid[churners[i]] = true
			}
			const rounds = 2000
			var wg sync.WaitGroup
			errs := make(chan string, 16)
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var out []Destination
					for i := range rounds {
						key := s.key
						if i%3 == w%3 && s.kind != "x-consistent-hash" {
							key += "." + strconv.Itoa(i%5) // some misses
						}
						out = r.Route(key, s.headers, out[:0])
						seen := map[Destination]bool{}
						for _, d := range out {
							if seen[d] || !valid[d] {
								errs <- "bad route " + d.Name()
								return
							}
							seen[d] = true
						}
						if key == s.key && s.kind != "x-consistent-hash" && !seen[steady] {
							errs <- "steady destination missing"
							return
						}
					}
				}()
			}
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range rounds {
						b := s.churn(i)
						b.Destination = churners[(i+w)%len(churners)]
						switch i % 4 {
						case 0, 1:
							if _, err := r.Bind(b); err != nil {
								errs <- err.Error()
								return
							}
						case 2:
							r.Unbind(b)
						default:
							r.RemoveDestination(b.Destination)
						}
						if i%100 == 0 {
							r.Len()
							r.Bindings(func(Binding) bool { return true })
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			for _, d := range churners {
				r.RemoveDestination(d)
			}
			if r.Len() != 1 {
				t.Fatalf("Len = %d after removing the churners, want 1", r.Len())
			}
		})
	}
}
