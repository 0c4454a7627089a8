package exchange

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestTopicMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		key     string
		want    bool
	}{
		// The empty key has zero words.
		{name: "empty pattern matches empty key", pattern: "", key: "", want: true},
		{name: "hash matches empty key", pattern: "#", key: "", want: true},
		{name: "hash hash matches empty key", pattern: "#.#", key: "", want: true},
		{name: "star does not match empty key", pattern: "*", key: ""},
		{name: "empty pattern does not match a word", pattern: "", key: "a"},
		{name: "empty pattern does not match an empty word pair", pattern: "", key: "."},
		// '*' is exactly one word, '#' zero or more.
		{name: "literal", pattern: "a.b", key: "a.b", want: true},
		{name: "literal is case sensitive", pattern: "a.b", key: "a.B"},
		{name: "shorter key", pattern: "a.b", key: "a"},
		{name: "longer key", pattern: "a", key: "a.b"},
		{name: "star one word", pattern: "a.*", key: "a.b", want: true},
		{name: "star not zero words", pattern: "a.*", key: "a"},
		{name: "star not two words", pattern: "a.*", key: "a.b.c"},
		{name: "star in the middle", pattern: "a.*.c", key: "a.b.c", want: true},
		{name: "hash zero words at end", pattern: "a.#", key: "a", want: true},
		{name: "hash zero words at start", pattern: "#.a", key: "a", want: true},
		{name: "hash zero words in middle", pattern: "a.#.b", key: "a.b", want: true},
		{name: "hash many words", pattern: "a.#.b", key: "a.x.y.z.b", want: true},
		{name: "hash needs the rest", pattern: "a.#.b", key: "a.x.y.z"},
		{name: "hash matches everything", pattern: "#", key: "a.b.c", want: true},
		{name: "hash then star", pattern: "#.*", key: "a", want: true},
		{name: "hash then star needs a word", pattern: "#.*", key: ""},
		{name: "star then hash", pattern: "*.#", key: "a.b.c", want: true},
		{name: "two hashes", pattern: "#.a.#", key: "x.a.y", want: true},
		{name: "two hashes around nothing", pattern: "#.a.#", key: "a", want: true},
		{name: "two hashes no a", pattern: "#.a.#", key: "x.b.y"},
		{name: "backtracking", pattern: "#.a.b", key: "a.a.b", want: true},
		{name: "realistic stock", pattern: "stock.*.nyse", key: "stock.ibm.nyse", want: true},
		{name: "realistic nyse", pattern: "*.nyse.#", key: "stock.nyse.ibm.close", want: true},
		// Empty words are words.
		{name: "trailing dot", pattern: "a.*", key: "a.", want: true},
		{name: "trailing dot literal", pattern: "a.", key: "a.", want: true},
		{name: "trailing dot is not the bare word", pattern: "a.", key: "a"},
		{name: "leading dot", pattern: "*.a", key: ".a", want: true},
		{name: "double dot", pattern: "a..b", key: "a..b", want: true},
		{name: "star matches empty word", pattern: "a.*.b", key: "a..b", want: true},
		{name: "double dot is not single", pattern: "a..b", key: "a.b"},
		{name: "lone dot is two words", pattern: "*.*", key: ".", want: true},
		{name: "lone dot is not one word", pattern: "*", key: "."},
		{name: "hash matches dots", pattern: "#", key: "..", want: true},
		{name: "hash and empty word", pattern: "a.#", key: "a..", want: true},
		// Wildcards in routing keys are plain words.
		{name: "star in key is a word", pattern: "*", key: "*", want: true},
		{name: "star in key is not a wildcard", pattern: "a", key: "*"},
		{name: "hash in key is one word", pattern: "a.#", key: "a.#", want: true},
		{name: "hash in key does not span", pattern: "a.b.c", key: "a.#"},
		// Wildcards only count as whole words.
		{name: "star inside a word is literal", pattern: "a*", key: "ab"},
		{name: "star inside a word matches itself", pattern: "a*", key: "a*", want: true},
		{name: "hash inside a word is literal", pattern: "a#", key: "a.b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewTopic()
			mustBind(t, r, Binding{Destination: qa, Key: tt.pattern})
			// Route three times: a miss, a miss that admits, a cache hit.
			for i := range 3 {
				if got := len(r.Route(tt.key, nil, nil)) == 1; got != tt.want {
					t.Fatalf("pass %d: %q matches %q = %v, want %v", i, tt.pattern, tt.key, got, tt.want)
				}
			}
			if ref := refTopicMatch(refWords(tt.pattern), refWords(tt.key)); ref != tt.want {
				t.Fatalf("reference matcher disagrees with the table: %v", ref)
			}
		})
	}
}

func TestTopicDestinations(t *testing.T) {
	t.Parallel()
	r := NewTopic()
	for _, b := range []Binding{
		{Destination: qa, Key: "stock.#"},
		{Destination: qa, Key: "*.ibm.*"},
		{Destination: qa, Key: "#.nyse"},
		{Destination: qb, Key: "stock.ibm.nyse"},
		{Destination: qb, Key: "stock.ibm.*"},
		{Destination: qc, Key: "#"},
		{Destination: qd, Key: "bond.#"},
	} {
		mustBind(t, r, b)
	}
	for i := range 3 {
		got := r.Route("stock.ibm.nyse", nil, nil)
		noDups(t, got)
		if n := names(got); !equalStrings(n, []string{"a", "b", "c"}) {
			t.Fatalf("pass %d: routed to %q", i, n)
		}
	}
	// Removing destinations must update even a cached result.
	if n := r.RemoveDestination(qa); n != 3 {
		t.Fatalf("RemoveDestination = %d, want 3", n)
	}
	if n := route(r, "stock.ibm.nyse", nil); !equalStrings(n, []string{"b", "c"}) {
		t.Fatalf("after removal routed to %q", n)
	}
	r.Unbind(Binding{Destination: qc, Key: "#"})
	if n := route(r, "stock.ibm.nyse", nil); !equalStrings(n, []string{"b"}) {
		t.Fatalf("after unbind routed to %q", n)
	}
	mustBind(t, r, Binding{Destination: qd, Key: "*.*.nyse"})
	if n := route(r, "stock.ibm.nyse", nil); !equalStrings(n, []string{"b", "d"}) {
		t.Fatalf("after bind routed to %q", n)
	}
}

// TestTopicPrunes checks that unbinding leaves no trie nodes behind.
func TestTopicPrunes(t *testing.T) {
	t.Parallel()
	r := NewTopic()
	keys := []string{"a.b.c", "a.*.c", "a.#", "#", "*.*", "", "a..", "#.#.x"}
	for _, k := range keys {
		mustBind(t, r, Binding{Destination: qa, Key: k})
		mustBind(t, r, Binding{Destination: qb, Key: k})
	}
	for _, k := range keys {
		r.Unbind(Binding{Destination: qa, Key: k})
	}
	r.RemoveDestination(qb)
	if !r.root.unused() || r.Len() != 0 {
		t.Fatalf("trie not empty after removing every binding: %+v", r.root)
	}
}

// TestTopicManyWildcards checks that patterns made of many '#' route in
// polynomial time (a backtracking matcher takes exponential time here).
func TestTopicManyWildcards(t *testing.T) {
	t.Parallel()
	r := NewTopic()
	pattern := strings.Repeat("#.", 40) + "b"
	mustBind(t, r, Binding{Destination: qa, Key: pattern})
	key := strings.TrimSuffix(strings.Repeat("a.", 60), ".")
	if got := r.Route(key, nil, nil); len(got) != 0 {
		t.Fatalf("routed %q to %v", key, names(got))
	}
	if got := r.Route(key+".b", nil, nil); len(got) != 1 {
		t.Fatalf("did not route %q", key+".b")
	}
}

// refWords splits a topic key into words as RabbitMQ does: the empty key has
// none.
func refWords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

// refTopicMatch is the obvious recursive matcher, the property tests'
// reference.
func refTopicMatch(p, k []string) bool {
	if len(p) == 0 {
		return len(k) == 0
	}
	switch p[0] {
	case "#":
		for i := 0; i <= len(k); i++ {
			if refTopicMatch(p[1:], k[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(k) > 0 && refTopicMatch(p[1:], k[1:])
	}
	return len(k) > 0 && k[0] == p[0] && refTopicMatch(p[1:], k[1:])
}

// topicKey draws a key of up to five words, words from a small alphabet that
// includes the empty word (and, in patterns, the wildcards).
func topicKey(wildcards bool) *rapid.Generator[string] {
	words := []string{"a", "b", "", "ab"}
	if wildcards {
		words = append(words, "*", "#", "*", "#")
	} else {
		words = append(words, "*", "#") // plain words in a routing key
	}
	return rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(0, 5).Draw(t, "words")
		if n == 0 {
			return ""
		}
		ws := make([]string, n)
		for i := range ws {
			ws[i] = rapid.SampledFrom(words).Draw(t, "word")
		}
		return strings.Join(ws, ".")
	})
}

// TestTopicProperty checks the trie, with its cache, against refTopicMatch
// over random bindings, unbindings and routing keys.
func TestTopicProperty(t *testing.T) {
	t.Parallel()
	dests := []*testDest{qa, qb, qc, qd}
	rapid.Check(t, func(t *rapid.T) {
		r := NewTopic()
		type bound struct {
			d *testDest
			p string
		}
		var live []bound
		patterns := topicKey(true)
		keys := topicKey(false)
		for step := range rapid.IntRange(1, 60).Draw(t, "steps") {
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 4:
				b := bound{rapid.SampledFrom(dests).Draw(t, "dest"), patterns.Draw(t, "pattern")}
				added, _ := r.Bind(Binding{Destination: b.d, Key: b.p})
				if added {
					live = append(live, b)
				}
			case op < 5 && len(live) > 0:
				i := rapid.IntRange(0, len(live)-1).Draw(t, "unbind")
				if !r.Unbind(Binding{Destination: live[i].d, Key: live[i].p}) {
					t.Fatalf("step %d: Unbind(%q) found nothing", step, live[i].p)
				}
				live = append(live[:i], live[i+1:]...)
			default:
				key := keys.Draw(t, "key")
				want := map[string]bool{}
				for _, b := range live {
					if refTopicMatch(refWords(b.p), refWords(key)) {
						want[b.d.name] = true
					}
				}
				for pass := range 3 { // miss, admit, hit
					got := r.Route(key, nil, nil)
					noDups(t, got)
					if len(got) != len(want) {
						t.Fatalf("step %d pass %d: Route(%q) = %q, want %v", step, pass, key, names(got), want)
					}
					for _, d := range got {
						if !want[d.Name()] {
							t.Fatalf("step %d pass %d: Route(%q) = %q, want %v", step, pass, key, names(got), want)
						}
					}
				}
			}
			if r.Len() != len(live) {
				t.Fatalf("Len = %d, want %d", r.Len(), len(live))
			}
		}
	})
}

func ExampleTopic() {
	r := NewTopic()
	q := &testDest{"prices"}
	r.Bind(Binding{Destination: q, Key: "stock.*.nyse"})
	r.Bind(Binding{Destination: q, Key: "stock.#"})
	fmt.Println(names(r.Route("stock.ibm.nyse", nil, nil)))
	fmt.Println(names(r.Route("bond.ibm.nyse", nil, nil)))
	// Output:
	// [prices]
	// []
}

// TestKidTable checks the trie's child table against a map, with hashes that
// collide on purpose (the length of the word) and with real ones, so that
// probing, backward-shift deletion, growing and shrinking are all exercised.
func TestKidTable(t *testing.T) {
	t.Parallel()
	hashes := map[string]func(string) uint64{
		"colliding": func(w string) uint64 { return uint64(len(w)) },
		"wordHash":  wordHash,
	}
	for name, hash := range hashes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rapid.Check(t, func(t *rapid.T) {
				var tb kidTable
				ref := map[string]*topicNode{}
				words := rapid.SliceOfNDistinct(rapid.StringMatching(`[a-c]{0,6}`), 1, 200, rapid.ID).Draw(t, "words")
				for step := range rapid.IntRange(1, 400).Draw(t, "steps") {
					w := rapid.SampledFrom(words).Draw(t, "word")
					if _, ok := ref[w]; ok && rapid.Bool().Draw(t, "delete") {
						tb.del(hash(w), w)
						delete(ref, w)
					} else if !ok {
						n := &topicNode{word: w}
						tb.put(hash(w), w, n)
						ref[w] = n
					}
					if tb.n != len(ref) {
						t.Fatalf("step %d: n = %d, want %d", step, tb.n, len(ref))
					}
					for _, w := range words {
						if got := tb.get(hash(w), w); got != ref[w] {
							t.Fatalf("step %d: get(%q) = %v, want %v", step, w, got, ref[w])
						}
					}
				}
			})
		})
	}
}

// TestTopicScenarios routes keys through exchanges with several overlapping
// bindings, with the results RabbitMQ 4.3's trie gives (the scenarios of its
// rabbit_db_topic_exchange_SUITE).
func TestTopicScenarios(t *testing.T) {
	t.Parallel()
	q := func(n int) *testDest { return &testDest{"q" + strconv.Itoa(n)} }
	type scenario struct {
		name     string
		bindings []string // binding i goes to queue qi
		routes   map[string][]int
	}
	scenarios := []scenario{
		{
			name:     "wildcards",
			bindings: []string{"foo.*", "foo.#", "foo.bar", "foo.*.baz", "#"},
			routes: map[string][]int{
				"foo.bar":         {0, 1, 2, 4},
				"foo.bar.baz":     {1, 3, 4},
				"foo.bar.baz.qux": {1, 4},
				"foo.qux":         {0, 1, 4},
				"bar.foo":         {4},
			},
		},
		{
			name:     "hash in the middle and at the start",
			bindings: []string{"#.c", "#.b.c", "a.#.d", "#.*.#"},
			routes: map[string][]int{
				"a.b.c":   {0, 1, 3},
				"c":       {0, 3},
				"x.y.b.c": {0, 1, 3},
				"a.d":     {2, 3},
				"a.b.c.d": {2, 3},
				"x":       {3},
				"x.c":     {0, 3},
				"":        {},
			},
		},
		{
			name:     "empty routing key",
			bindings: []string{"#", "foo.bar"},
			routes:   map[string][]int{"": {0}, "foo.bar": {0, 1}},
		},
		{
			name:     "overlapping",
			bindings: []string{"a.b", "a.b.#", "a.b.c", "a.b.*", "a.b.d", "a.*.*", "a.*.#", "*.b.c"},
			routes: map[string][]int{
				"a.b.c": {1, 2, 3, 5, 6, 7},
				"a.b":   {0, 1, 6},
			},
		},
		{
			name:     "empty segments",
			bindings: []string{".#", ".*", ".*.a.b.c"},
			routes:   map[string][]int{".0.a.b.c": {0, 2}},
		},
		{
			name: "deep",
			bindings: []string{
				"*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.#",
				"a.*.c.*.e.*.g.*.i.*.k.*.m.*.o.*.q.*.s.*.u.*.w.*.y.*.#",
				"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.*",
			},
			routes: map[string][]int{
				"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z":   {0, 1},
				"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.1": {0, 1, 2},
			},
		},
		{
			name:     "unicode",
			bindings: []string{"传感器.温度.摄氏", "传感器.*.摄氏", "датчик.#", "#"},
			routes: map[string][]int{
				"传感器.温度.摄氏":       {0, 1, 3},
				"传感器.压力.摄氏":       {1, 3},
				"датчик.давление": {2, 3},
			},
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			r := NewTopic()
			for i, k := range sc.bindings {
				mustBind(t, r, Binding{Destination: q(i), Key: k})
			}
			for key, idx := range sc.routes {
				want := make([]string, len(idx))
				for i, n := range idx {
					want[i] = "q" + strconv.Itoa(n)
				}
				for range 3 {
					if got := route(r, key, nil); !equalStrings(got, want) {
						t.Errorf("Route(%q) = %q, want %q", key, got, want)
					}
				}
			}
		})
	}
}
