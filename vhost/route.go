package vhost

import (
	"strconv"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/queue"
)

// RouteScratch is a publisher's reusable routing state, so that routing a
// message allocates nothing on the common paths. Not safe for concurrent use.
type RouteScratch struct {
	dests     []exchange.Destination
	exchanges []*Exchange
	keys      []string
	seen      map[queue.Queue]struct{}
}

// linearDedupMax is the result size up to which duplicates are found by
// scanning rather than with a map.
const linearDedupMax = 16

// Route appends to out the queues a message published to exchangeName with
// routingKey and properties props goes to: bindings are followed through
// exchange-to-exchange bindings (cycles allowed, each queue once), an
// exchange that routes nowhere hands the message to its alternate exchange,
// and the CC and BCC headers add routing keys. cacheable reports whether the
// result depends only on the exchange, the routing key and Generation, so a
// publisher may reuse it.
func (v *VHost) Route(exchangeName, routingKey string, props wire.RawProperties, out []queue.Queue, sc *RouteScratch) (res []queue.Queue, cacheable bool, err error) {
	return v.route(exchangeName, routingKey, props, out, sc, false)
}

// route is Route; the broker's own publishes (dead letters) may go to an
// internal exchange (internalOK), as in RabbitMQ.
func (v *VHost) route(exchangeName, routingKey string, props wire.RawProperties, out []queue.Queue, sc *RouteScratch, internalOK bool) (res []queue.Queue, cacheable bool, err error) {
	var headers wire.Table
	headersRead := false
	readHeaders := func() wire.Table {
		if !headersRead {
			headersRead = true
			headers, _ = props.Headers() // validated on arrival
		}
		return headers
	}
	if len(sc.seen) > 0 {
		clear(sc.seen)
	}
	sc.keys = append(sc.keys[:0], routingKey)
	cacheable = true
	if props.HasHeaders() {
		for _, h := range [...]string{"CC", "BCC"} {
			if list, ok := readHeaders()[h].([]any); ok {
				for _, k := range list {
					if s, ok := k.(string); ok {
						sc.keys = append(sc.keys, s)
						cacheable = false
					}
				}
			}
		}
	}

	v.mu.RLock()
	defer v.mu.RUnlock()
	if exchangeName == DefaultExchange {
		for _, k := range sc.keys {
			if q := v.queues[k]; q != nil {
				out = appendQueue(out, q, sc)
			}
		}
		return out, cacheable, nil
	}
	x := v.exchanges[exchangeName]
	if x == nil {
		return out, false, v.exchangeNotFound(exchangeName)
	}
	if x.internal && !internalOK {
		return out, false, wire.Errorf(wire.AccessRefused, "cannot publish to internal exchange '"+exchangeName+"' in vhost '"+v.name+"'")
	}
	sc.exchanges = append(sc.exchanges[:0], x)
	for i := 0; i < len(sc.exchanges); i++ {
		x := sc.exchanges[i]
		var h wire.Table
		if x.needsHeaders {
			h = readHeaders()
			cacheable = false
		}
		sc.dests = sc.dests[:0]
		if x.dedup != nil {
			if key, ok := queue.DeduplicationKey(props); ok && !x.dedup.admit(key, messageCacheTTL(h)) {
				continue // a duplicate: routed nowhere from here
			}
		}
		if x.delay != nil {
			if _, later := queue.Delay(props); later {
				out = appendQueue(out, x.delay, sc) // routed when due
				continue
			}
		}
		switch {
		case x.hashProperty != "":
			cacheable = false
			sc.dests = x.router.Route(propertyValue(props, x.hashProperty), h, sc.dests)
		case x.kind == exchange.KindConsistentHash:
			sc.dests = x.router.Route(sc.keys[0], h, sc.dests) // RabbitMQ hashes the first key only
		default:
			for _, k := range sc.keys {
				sc.dests = x.router.Route(k, h, sc.dests)
			}
		}
		if len(sc.dests) == 0 && x.alternate != "" {
			if ae := v.exchanges[x.alternate]; ae != nil {
				sc.dests = append(sc.dests, ae)
			}
		}
		for _, d := range sc.dests {
			switch d := d.(type) {
			case queue.Queue:
				out = appendQueue(out, d, sc)
			case *Exchange:
				if !containsExchange(sc.exchanges, d) {
					sc.exchanges = append(sc.exchanges, d)
				}
			}
		}
	}
	clear(sc.dests)
	clear(sc.exchanges)
	return out, cacheable, nil
}

// appendQueue adds q to out unless it is there already.
func appendQueue(out []queue.Queue, q queue.Queue, sc *RouteScratch) []queue.Queue {
	if len(out) < linearDedupMax {
		for _, o := range out {
			if o == q {
				return out
			}
		}
		return append(out, q)
	}
	if sc.seen == nil {
		sc.seen = make(map[queue.Queue]struct{})
	}
	if len(sc.seen) == 0 {
		for _, o := range out {
			sc.seen[o] = struct{}{}
		}
	}
	if _, ok := sc.seen[q]; ok {
		return out
	}
	sc.seen[q] = struct{}{}
	return append(out, q)
}

func containsExchange(xs []*Exchange, x *Exchange) bool {
	for _, o := range xs {
		if o == x {
			return true
		}
	}
	return false
}

// propertyValue is the value a consistent-hash exchange on hash-property
// hashes: see exchange.ConsistentHash.HashProperty.
func propertyValue(props wire.RawProperties, name string) string {
	p, err := props.Decode()
	if err != nil {
		return ""
	}
	switch name {
	case exchange.PropertyMessageID:
		return p.MessageID
	case exchange.PropertyCorrelationID:
		return p.CorrelationID
	case exchange.PropertyTimestamp:
		if p.Timestamp.IsZero() {
			return ""
		}
		return strconv.FormatInt(p.Timestamp.Unix(), 10)
	}
	return ""
}
