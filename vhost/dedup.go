package vhost

import (
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/exchange"
)

// dedupCache is a deduplication exchange's memory of the
// x-deduplication-header keys it routed: each for x-cache-ttl (or the
// message's own x-cache-ttl header; for ever without either), at most
// x-cache-size of them, the oldest leaving first when it is full. It is
// kept in memory only, also with x-cache-persistence "disk".
type dedupCache struct {
	mu    sync.Mutex
	size  int
	ttl   int64 // ms
	seen  map[string]dedupEntry
	order []dedupSlot // keys in the order they were recorded, from head
	head  int
	gen   uint64
}

type dedupEntry struct {
	expires int64 // unix ms; 0 never
	gen     uint64
}

// dedupSlot is a recorded key; it is stale once its key was recorded again.
type dedupSlot struct {
	key string
	gen uint64
}

func newDedupCache(c exchange.DeduplicationCacheArgs) *dedupCache {
	return &dedupCache{size: int(min(c.Size, 1<<30)), ttl: c.TTL, seen: map[string]dedupEntry{}}
}

// admit reports whether a message with key is to be routed (its key is new,
// or its time has run out) and records the key if so.
func (c *dedupCache) admit(key string, ttl int64) bool {
	now := time.Now().UnixMilli()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.seen[key]; ok && (e.expires == 0 || e.expires > now) {
		return false
	}
	if ttl <= 0 {
		ttl = c.ttl
	}
	c.gen++
	e := dedupEntry{gen: c.gen}
	if ttl > 0 {
		e.expires = now + ttl
	}
	c.seen[key] = e
	c.order = append(c.order, dedupSlot{key, c.gen})
	for len(c.seen) > c.size {
		s := c.order[c.head]
		c.order[c.head] = dedupSlot{}
		c.head++
		if e, ok := c.seen[s.key]; ok && e.gen == s.gen {
			delete(c.seen, s.key)
		}
	}
	if live := len(c.order) - c.head; c.head > live || live > 2*c.size+16 {
		c.compact()
	}
	return true
}

// compact drops the consumed and stale slots of order.
func (c *dedupCache) compact() {
	kept := c.order[:0]
	for _, s := range c.order[c.head:] {
		if e, ok := c.seen[s.key]; ok && e.gen == s.gen {
			kept = append(kept, s)
		}
	}
	clear(c.order[len(kept):])
	c.order, c.head = kept, 0
}

// messageCacheTTL is a message's own x-cache-ttl header, 0 when it has none.
func messageCacheTTL(h wire.Table) int64 {
	n, _ := wire.Int(h["x-cache-ttl"])
	return n
}
