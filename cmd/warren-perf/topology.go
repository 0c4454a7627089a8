package main

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// topology says where producers publish and which queue each consumer
// reads, following PerfTest: named queues (-u, --queue-pattern) are declared
// and bound once up front; without them each consumer declares its own
// exclusive server-named queue and binds it with the shared routing key.
type topology struct {
	exchange      string
	key           string   // routing key shared by producers and bindings
	queues        []string // queue names; "" until a consumer declares it
	serverNamed   bool
	producerKey   []string
	consumerQueue []int   // queue index per consumer
	routes        [][]int // producers whose messages each queue should get
}

func newTopology(o *Options) *topology {
	t := &topology{exchange: o.Exchange, key: o.RoutingKey, queues: o.queueNames()}
	if t.exchange == "amq.default" {
		t.exchange = ""
	}
	if t.key == "" {
		t.key = randomUUID()
		if t.exchange == "" && len(t.queues) == 1 {
			// The default exchange routes by queue name.
			t.key = t.queues[0]
		}
	}
	if len(t.queues) == 0 && o.Consumers > 0 {
		t.serverNamed = true
		t.queues = make([]string, o.Consumers)
	}
	pattern := o.QueuePattern != ""
	for i := 0; i < o.Producers; i++ {
		k := t.key
		if pattern {
			k = t.queues[i%len(t.queues)]
		}
		t.producerKey = append(t.producerKey, k)
	}
	for i := 0; i < o.Consumers; i++ {
		q := 0
		if t.serverNamed {
			q = i
		} else if len(t.queues) > 0 {
			q = i % len(t.queues)
		}
		t.consumerQueue = append(t.consumerQueue, q)
	}
	everyQueue := t.exchange != "" && (o.ExchangeType == "fanout" || o.ExchangeType == "headers")
	t.routes = make([][]int, len(t.queues))
	for q := range t.queues {
		for p, k := range t.producerKey {
			switch {
			case everyQueue:
			case t.exchange == "" && !t.serverNamed && k != t.queues[q]:
				continue
			case t.exchange == "" && t.serverNamed:
				continue
			case pattern && k != t.queues[q]:
				continue
			}
			t.routes[q] = append(t.routes[q], p)
		}
	}
	return t
}

// bindingKey is the key a queue is bound with.
func (t *topology) bindingKey(q int, o *Options) string {
	if o.QueuePattern != "" {
		return t.queues[q]
	}
	return t.key
}

// declareShared declares the exchange and the named queues with their bindings.
func (t *topology) declareShared(c *client, o *Options) error {
	if t.exchange != "" && !strings.HasPrefix(t.exchange, "amq.") {
		if err := c.declareExchange(t.exchange, o.ExchangeType, false, false); err != nil {
			return err
		}
	}
	if t.serverNamed {
		return nil
	}
	for q, name := range t.queues {
		if _, err := c.declareQueue(name, o.Persistent(), false, o.AutoDelete, o.QueueArgs); err != nil {
			return err
		}
		if t.exchange != "" {
			if err := c.bindQueue(name, t.exchange, t.bindingKey(q, o)); err != nil {
				return err
			}
		}
	}
	if len(t.queues) > 0 {
		return t.bindExtra(c, o, t.queues[0])
	}
	return nil
}

// declareOwn declares consumer i's exclusive server-named queue.
func (t *topology) declareOwn(c *client, o *Options, i int) (string, error) {
	name, err := c.declareQueue("", o.Persistent(), true, o.AutoDelete, o.QueueArgs)
	if err != nil {
		return "", err
	}
	if t.exchange != "" {
		if err := c.bindQueue(name, t.exchange, t.key); err != nil {
			return "", err
		}
	}
	if i == 0 {
		if err := t.bindExtra(c, o, name); err != nil {
			return "", err
		}
	}
	return name, nil
}

// bindExtra adds --bind-extra bindings that never match the routing key:
// they share its first word and mix literal words with * and #, so a topic
// router has to look at them.
func (t *topology) bindExtra(c *client, o *Options, queue string) error {
	if o.BindExtra == 0 || t.exchange == "" {
		return nil
	}
	first, _, _ := strings.Cut(t.key, ".")
	for i := 0; i < o.BindExtra; i++ {
		var k string
		switch i % 3 {
		case 0:
			k = fmt.Sprintf("%s.nomatch%d.*", first, i)
		case 1:
			k = fmt.Sprintf("*.nomatch%d.#", i)
		default:
			k = fmt.Sprintf("%s.#.nomatch%d", first, i)
		}
		if err := c.bindQueue(queue, t.exchange, k); err != nil {
			return err
		}
	}
	return nil
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
