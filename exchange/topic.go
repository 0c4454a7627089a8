package exchange

import (
	"hash/maphash"
	"strings"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp/wire"
)

// Topic is the topic exchange type. Routing keys and binding keys are lists
// of words separated by '.'; in a binding key '*' matches exactly one word and
// '#' matches zero or more words. As in RabbitMQ, the empty key has no words,
// and every other key has one word more than it has dots, so empty words are
// words: "a..b" is "a", "", "b" and matches "a.*.b".
//
// Bindings are kept in a trie of binding-key words and routing walks it once
// per routing key, keeping the set of trie nodes the words so far can have
// reached (a breadth-first NFA walk, so many '#' cannot make it exponential).
// Its cost depends on the routing key and the wildcards along its path, not
// on the number of bindings.
//
// A small cache maps recently routed keys to their destinations: a key seen
// twice in a row at the same cache slot is cached, and routing it again
// appends the cached destinations without walking the trie or allocating.
// Any change of bindings invalidates the cache.
type Topic struct {
	routerBase
	root  topicNode
	gen   atomic.Uint64 // bumped on every change of bindings, under mu
	cache atomic.Pointer[topicCache]
}

type edgeKind uint8

const (
	edgeWord edgeKind = iota
	edgeStar
	edgeHash
)

type topicNode struct {
	kids   kidTable   // literal words
	star   *topicNode // '*'
	hash   *topicNode // '#'
	dests  destSet    // destinations bound with the key ending here
	parent *topicNode
	word   string // the literal word leading here from parent (edgeWord)
	edge   edgeKind
}

func (n *topicNode) unused() bool {
	return n.dests.len() == 0 && n.kids.n == 0 && n.star == nil && n.hash == nil
}

// wordHash hashes a word for kidTable. Routing hashes each word of a key
// once and looks it up in every trie node it reaches.
func wordHash(w string) uint64 { return maphash.String(cacheSeed, w) }

// kidTable maps literal words to child nodes: an open-addressed table with
// linear probing, keyed by precomputed word hashes.
type kidTable struct {
	slots []kid // len is 0 or a power of two
	n     int
}

type kid struct {
	h    uint64
	word string
	node *topicNode // nil in an empty slot
}

func (t *kidTable) get(h uint64, w string) *topicNode {
	if len(t.slots) == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		k := &t.slots[i]
		if k.node == nil {
			return nil
		}
		if k.h == h && k.word == w {
			return k.node
		}
	}
}

// put adds a word that is not in t.
func (t *kidTable) put(h uint64, w string, node *topicNode) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(2, len(t.slots)*2))
	}
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].node != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = kid{h: h, word: w, node: node}
	t.n++
}

// del removes a word that is in t, shifting back the entries that probed
// past it so that no tombstones are needed.
func (t *kidTable) del(h uint64, w string) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].h != h || t.slots[i].word != w {
		i = (i + 1) & mask
	}
	t.slots[i] = kid{}
	t.n--
	for j := (i + 1) & mask; t.slots[j].node != nil; j = (j + 1) & mask {
		home := t.slots[j].h & mask
		// The entry at j may move to the hole at i unless its home slot lies
		// cyclically in (i, j].
		if (i < j && i < home && home <= j) || (i > j && (home > i || home <= j)) {
			continue
		}
		t.slots[i], t.slots[j] = t.slots[j], kid{}
		i = j
	}
	switch {
	case t.n == 0:
		t.slots = nil
	case len(t.slots) > 8 && t.n*8 < len(t.slots):
		t.resize(len(t.slots) / 4)
	}
}

func (t *kidTable) resize(size int) {
	old := t.slots
	t.slots = make([]kid, size)
	mask := uint64(size - 1)
	for _, k := range old {
		if k.node == nil {
			continue
		}
		i := k.h & mask
		for t.slots[i].node != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = k
	}
}

// nextWord splits the first word off s, which must hold at least one word.
// more reports whether another word follows rest.
func nextWord(s string) (word, rest string, more bool) {
	i := strings.IndexByte(s, '.')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// NewTopic returns an empty topic exchange router.
func NewTopic() *Topic {
	x := new(Topic)
	x.drop, x.changed = x.dropKey, x.invalidate
	return x
}

// Bind implements Router. Every binding key is valid: it fails only for a
// nil destination.
func (x *Topic) Bind(b Binding) (bool, error) {
	if b.Destination == nil {
		return false, errNilDestination
	}
	k := keyOf(b)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.set.add(k, b.Args) == nil {
		return false, nil
	}
	n := &x.root
	for rest, more := b.Key, b.Key != ""; more; {
		var w string
		w, rest, more = nextWord(rest)
		n = n.child(w)
	}
	n.dests.add(b.Destination)
	x.gen.Add(1)
	return true, nil
}

// child returns n's child for binding-key word w, creating it if need be.
func (n *topicNode) child(w string) *topicNode {
	switch w {
	case "*":
		if n.star == nil {
			n.star = &topicNode{parent: n, edge: edgeStar}
		}
		return n.star
	case "#":
		if n.hash == nil {
			n.hash = &topicNode{parent: n, edge: edgeHash}
		}
		return n.hash
	}
	h := wordHash(w)
	c := n.kids.get(h, w)
	if c == nil {
		c = &topicNode{parent: n, word: w, edge: edgeWord}
		n.kids.put(h, w, c)
	}
	return c
}

// lookup returns the node for binding key key, or nil.
func (x *Topic) lookup(key string) *topicNode {
	n := &x.root
	for rest, more := key, key != ""; more && n != nil; {
		var w string
		w, rest, more = nextWord(rest)
		switch w {
		case "*":
			n = n.star
		case "#":
			n = n.hash
		default:
			n = n.kids.get(wordHash(w), w)
		}
	}
	return n
}

// dropKey forgets e's destination at e's trie node and prunes unused nodes.
func (x *Topic) dropKey(e *bindingEntry) {
	n := x.lookup(e.key)
	n.dests.release(e.dest)
	for n != &x.root && n.unused() {
		p := n.parent
		switch n.edge {
		case edgeStar:
			p.star = nil
		case edgeHash:
			p.hash = nil
		default:
			p.kids.del(wordHash(n.word), n.word)
		}
		n.parent = nil
		n = p
	}
}

// invalidate makes every cached result stale and, since bindings went away,
// lets go of cached destinations so that deleted queues are not kept alive.
func (x *Topic) invalidate() {
	x.gen.Add(1)
	if c := x.cache.Load(); c != nil {
		for i := range c {
			c[i].entry.Store(nil)
		}
	}
}

// Route implements Router. headers are ignored.
//
// A cache hit takes no lock: an entry is valid while the generation it was
// computed at is current, and every change of bindings, made under the
// write lock, moves the generation on before it returns.
func (x *Topic) Route(key string, _ wire.Table, out []Destination) []Destination {
	c := x.cache.Load()
	if c == nil {
		x.cache.CompareAndSwap(nil, new(topicCache))
		c = x.cache.Load()
	}
	h := maphash.String(cacheSeed, key)
	slot := &c[h%topicCacheSlots]
	if e := slot.entry.Load(); e != nil && e.key == key && e.gen == x.gen.Load() {
		return append(out, e.dests...)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	start := len(out)
	out = x.match(key, out)
	// Admit a key to the cache on its second consecutive sighting at this
	// slot, so that a stream of distinct keys costs no allocations.
	if slot.seen.Load() != h {
		slot.seen.Store(h)
	} else if n := len(out) - start; n <= topicCacheMaxDests && len(key) <= topicCacheMaxKey {
		slot.entry.Store(&topicCacheEntry{
			gen:   x.gen.Load(), // stable: writers are locked out
			key:   strings.Clone(key),
			dests: append([]Destination(nil), out[start:]...),
		})
	}
	return out
}

// Cache geometry: a direct-mapped table of this many slots per topic
// exchange, each caching a key of at most topicCacheMaxKey bytes (longer ones
// cannot come off the wire) and at most topicCacheMaxDests destinations.
const (
	topicCacheSlots    = 128
	topicCacheMaxKey   = 255
	topicCacheMaxDests = 64
)

var cacheSeed = maphash.MakeSeed()

type topicCache [topicCacheSlots]topicCacheSlot

type topicCacheSlot struct {
	entry atomic.Pointer[topicCacheEntry]
	seen  atomic.Uint64 // hash of the last key that missed here
}

type topicCacheEntry struct {
	gen   uint64
	key   string
	dests []Destination
}

// matchBuf is the number of trie nodes a routing walk tracks without
// allocating.
const matchBuf = 16

// match appends the destinations routing key key reaches in the trie.
func (x *Topic) match(key string, out []Destination) []Destination {
	var bufA, bufB [matchBuf]*topicNode
	cur := addReached(bufA[:0], &x.root)
	spare := bufB[:0]
	for rest, more := key, key != ""; more && len(cur) > 0; {
		var w string
		w, rest, more = nextWord(rest)
		h := wordHash(w)
		next := spare
		for _, n := range cur {
			if c := n.kids.get(h, w); c != nil {
				next = addReached(next, c)
			}
			if n.star != nil {
				next = addReached(next, n.star)
			}
			if n.edge == edgeHash {
				// Inside a '#': it takes this word as well.
				next = addReached(next, n)
			}
		}
		cur, spare = next, cur[:0]
	}
	start, sources := len(out), 0
	for _, n := range cur {
		if n.dests.len() > 0 {
			out = append(out, n.dests.list...)
			sources++
		}
	}
	if sources > 1 {
		out = dedupTail(out, start)
	}
	return out
}

// addReached adds n to the node set s, and with it the '#' below n, since
// '#' may match zero words.
func addReached(s []*topicNode, n *topicNode) []*topicNode {
	for n != nil {
		for _, m := range s {
			if m == n {
				return s
			}
		}
		s = append(s, n)
		n = n.hash
	}
	return s
}
