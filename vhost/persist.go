package vhost

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/queue"
)

// DefinitionStore is where virtual hosts keep their durable definitions:
// records in namespaces (kind) under keys, each write durable before it
// returns. persistence.Store implements it.
type DefinitionStore interface {
	PutDefinition(kind byte, key string, value []byte) error
	DeleteDefinition(kind byte, key string) error
	// Definitions calls fn for every record of kind, in key order; value
	// is valid only during fn.
	Definitions(kind byte, fn func(key string, value []byte) error) error
}

// Definition kinds in the store. Keys are their parts, each preceded by its
// length (a uvarint), since names and keys may hold any byte; values are
// field tables (so argument types survive a restart exactly).
const (
	kindVhost    byte = 'v' // key: vhost (alone, not length-prefixed)
	kindExchange byte = 'x' // key: vhost, exchange
	kindQueue    byte = 'q' // key: vhost, queue
	kindBinding  byte = 'b' // key: vhost, source, destination kind, destination, binding key, arguments
)

// defKey joins the parts of a definition key.
func defKey(parts ...string) string {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return string(b)
}

// splitKey splits a definition key into its n parts; ok is false for a key
// that does not hold exactly n.
func splitKey(k string, n int) (parts []string, ok bool) {
	for len(k) > 0 {
		l, w := binary.Uvarint([]byte(k[:min(len(k), binary.MaxVarintLen64)]))
		if w <= 0 || uint64(len(k)-w) < l {
			return nil, false
		}
		parts = append(parts, k[w:w+int(l)])
		k = k[w+int(l):]
	}
	return parts, len(parts) == n
}

// storeErr turns a failed definition write into the error the client sees.
func storeErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return wire.Errorf(wire.InternalError, "could not store "+what+": "+err.Error())
}

// putRecord stores a definition whose value is the field table rec.
func putRecord(st DefinitionStore, kind byte, what, key string, rec wire.Table) error {
	b, err := wire.AppendTable(nil, rec)
	if err == nil {
		err = st.PutDefinition(kind, key, b[4:])
	}
	return storeErr(what, err)
}

func (v *VHost) saveExchangeLocked(x *Exchange) error {
	st := v.defs
	if st == nil || !x.durable {
		return nil
	}
	rec := wire.Table{"type": x.kind, "auto_delete": x.autoDelete, "internal": x.internal}
	if x.args != nil {
		rec["arguments"] = x.args
	}
	if x.delay != nil {
		rec["delay-id"] = int64(x.delay.Config().ID)
	}
	return putRecord(st, kindExchange, "exchange", defKey(v.name, x.name), rec)
}

func (v *VHost) dropExchangeLocked(x *Exchange) error {
	st := v.defs
	if st == nil || !x.durable {
		return nil
	}
	return storeErr("exchange", st.DeleteDefinition(kindExchange, defKey(v.name, x.name)))
}

// persistentQueue reports whether a queue's definition is stored.
func persistentQueue(q queue.Queue) bool {
	c := q.Config()
	return c.Durable && !c.Exclusive
}

func (v *VHost) saveQueueLocked(q queue.Queue) error {
	st := v.defs
	if st == nil || !persistentQueue(q) {
		return nil
	}
	c := q.Config()
	rec := wire.Table{"id": int64(c.ID), "auto_delete": c.AutoDelete}
	if c.Args != nil {
		rec["arguments"] = c.Args
	}
	return putRecord(st, kindQueue, "queue", defKey(v.name, c.Name), rec)
}

func (v *VHost) dropQueueLocked(q queue.Queue) error {
	st := v.defs
	if st == nil || !persistentQueue(q) {
		return nil
	}
	return storeErr("queue", st.DeleteDefinition(kindQueue, defKey(v.name, q.Name())))
}

// durableDestination reports whether a binding to d can be stored, and how
// its kind is written.
func durableDestination(d exchange.Destination) (string, bool) {
	switch d := d.(type) {
	case *Exchange:
		return "x", d.durable
	case queue.Queue:
		return "q", persistentQueue(d)
	}
	return "", false
}

func (v *VHost) bindingKey(source string, b exchange.Binding) (string, bool) {
	kind, ok := durableDestination(b.Destination)
	if !ok {
		return "", false
	}
	return defKey(v.name, source, kind, b.Destination.Name(), b.Key, exchange.CanonicalArgs(b.Args)), true
}

// saveBindingLocked stores a binding between durable ends.
func (v *VHost) saveBindingLocked(src *Exchange, b exchange.Binding) error {
	st := v.defs
	if st == nil || !src.durable {
		return nil
	}
	key, ok := v.bindingKey(src.name, b)
	if !ok {
		return nil
	}
	rec := wire.Table{}
	if b.Args != nil {
		rec["arguments"] = b.Args
	}
	return putRecord(st, kindBinding, "binding", key, rec)
}

func (v *VHost) dropBindingLocked(src *Exchange, b exchange.Binding) error {
	st := v.defs
	if st == nil || !src.durable {
		return nil
	}
	key, ok := v.bindingKey(src.name, b)
	if !ok {
		return nil
	}
	return storeErr("binding", st.DeleteDefinition(kindBinding, key))
}

// dropBindingsLocked removes the stored bindings from or to name (an
// exchange or queue being deleted).
func (v *VHost) dropBindingsLocked(name string, isQueue bool) error {
	st := v.defs
	if st == nil {
		return nil
	}
	destKind := "x"
	if isQueue {
		destKind = "q"
	}
	var keys []string
	err := st.Definitions(kindBinding, func(key string, _ []byte) error {
		f, ok := splitKey(key, 6)
		if ok && f[0] == v.name && (f[2] == destKind && f[3] == name || !isQueue && f[1] == name) {
			keys = append(keys, key)
		}
		return nil
	})
	for _, k := range keys {
		err = errors.Join(err, st.DeleteDefinition(kindBinding, k))
	}
	return storeErr("binding", err)
}

// Load rebuilds the virtual hosts and their durable exchanges, queues and
// bindings from the definition store, as a node does at start. Each queue's
// kind recovers the queue's messages; once Load returns, the caller lets
// each kind finish its recovery (classic.Kind.FinishRecovery), which needs
// every queue loaded first.
func (r *Registry) Load() error {
	defs := r.deps.Definitions
	if err := defs.Definitions(kindVhost, func(name string, val []byte) error {
		v, _ := r.add(name)
		if len(val) > 0 {
			return json.Unmarshal(val, &v.meta)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("loading vhosts: %w", err)
	}
	if err := r.loadPolicies(); err != nil {
		return fmt.Errorf("loading policies: %w", err)
	}
	if err := r.loadRecords(kindExchange, 2, func(v *VHost, f []string, rec wire.Table) error {
		kind, _ := rec["type"].(string)
		ad, _ := rec["auto_delete"].(bool)
		internal, _ := rec["internal"].(bool)
		args, _ := rec["arguments"].(wire.Table)
		delayID, _ := rec["delay-id"].(int64)
		_, err := v.createExchangeLocked(ExchangeSpec{Name: f[0], Kind: kind, Durable: true, AutoDelete: ad, Internal: internal, Args: args},
			uint64(delayID), true)
		return err
	}); err != nil {
		return fmt.Errorf("loading exchanges: %w", err)
	}
	if err := r.loadRecords(kindQueue, 2, func(v *VHost, f []string, rec wire.Table) error {
		id, _ := rec["id"].(int64)
		ad, _ := rec["auto_delete"].(bool)
		args, _ := rec["arguments"].(wire.Table)
		_, err := v.createQueueLocked(QueueSpec{Name: f[0], Durable: true, AutoDelete: ad, Args: args}, uint64(id), true, false)
		return err
	}); err != nil {
		return fmt.Errorf("loading queues: %w", err)
	}
	if err := r.loadRecords(kindBinding, 6, func(v *VHost, f []string, rec wire.Table) error {
		args, _ := rec["arguments"].(wire.Table)
		src := v.exchanges[f[0]]
		var dest exchange.Destination
		if f[1] == "q" {
			if q := v.queues[f[2]]; q != nil {
				dest = q
			}
		} else if x := v.exchanges[f[2]]; x != nil {
			dest = x
		}
		if src == nil || dest == nil {
			return nil
		}
		_, err := src.router.Bind(exchange.Binding{Destination: dest, Key: f[3], Args: args})
		return err
	}); err != nil {
		return fmt.Errorf("loading bindings: %w", err)
	}
	return nil
}

// loadRecords calls fn, with the virtual host's lock held, for each stored
// definition of kind whose key has n parts and whose virtual host exists:
// fn gets the key's parts after the virtual host's name and the record.
func (r *Registry) loadRecords(kind byte, n int, fn func(v *VHost, parts []string, rec wire.Table) error) error {
	return r.deps.Definitions.Definitions(kind, func(key string, val []byte) error {
		f, ok := splitKey(key, n)
		if !ok {
			return nil
		}
		rec, err := wire.DecodeTable(val)
		if err != nil {
			return err
		}
		v := r.Get(f[0])
		if v == nil {
			return nil
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		return fn(v, f[1:], rec)
	})
}
