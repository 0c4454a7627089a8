package vhost

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/queue"
)

// Meta is what an operator says of a virtual host.
type Meta struct {
	Description      string   `json:"description"`
	Tags             []string `json:"tags"`
	DefaultQueueType string   `json:"default_queue_type,omitempty"`
	// Limits are max-connections and max-queues, when set (negative:
	// none).
	Limits map[string]int64 `json:"limits,omitempty"`
}

// ErrNoVhost is returned for a virtual host that does not exist.
var ErrNoVhost = errors.New("no such vhost")

// Put creates the named virtual host or, when it exists, changes its
// metadata; created reports which.
func (r *Registry) Put(name string, meta Meta) (created bool, err error) {
	if r.replicated() {
		b, err := json.Marshal(meta)
		if err != nil {
			return false, err
		}
		res := r.replicate(wire.Table{"op": opVhostPut, "vhost": name, "meta": b})
		return res.created, res.err
	}
	return r.put(name, meta)
}

func (r *Registry) put(name string, meta Meta) (created bool, err error) {
	r.admin.Lock()
	defer r.admin.Unlock()
	v, created := r.add(name)
	v.mu.Lock()
	defer v.mu.Unlock()
	meta.Limits = v.meta.Limits // set apart, with SetLimit
	v.meta = meta
	return created, r.saveVhost(v)
}

// The virtual host limits.
const (
	LimitConnections = "max-connections"
	LimitQueues      = "max-queues"
)

// SetLimit sets a virtual host limit (LimitConnections or LimitQueues; a
// negative value is no limit).
func (r *Registry) SetLimit(name, limit string, value int64) error {
	if limit != LimitConnections && limit != LimitQueues {
		return fmt.Errorf("unknown limit %q: max-connections and max-queues are", limit)
	}
	if r.replicated() {
		return r.replicate(wire.Table{"op": opVhostLimit, "vhost": name, "limit": limit, "value": value}).err
	}
	return r.editLimits(name, func(limits map[string]int64) { limits[limit] = value })
}

// ClearLimit removes a virtual host limit.
func (r *Registry) ClearLimit(name, limit string) error {
	if r.replicated() {
		return r.replicate(wire.Table{"op": opVhostLimit, "vhost": name, "limit": limit, "clear": true}).err
	}
	return r.editLimits(name, func(limits map[string]int64) { delete(limits, limit) })
}

// editLimits edits the named virtual host's limits and stores them.
func (r *Registry) editLimits(name string, edit func(map[string]int64)) error {
	v := r.Get(name)
	if v == nil {
		return ErrNoVhost
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.deleted {
		return ErrNoVhost
	}
	limits := maps.Clone(v.meta.Limits)
	if limits == nil {
		limits = map[string]int64{}
	}
	edit(limits)
	v.meta.Limits = limits
	return r.saveVhost(v)
}

// Limits returns the virtual host's limits.
func (v *VHost) Limits() map[string]int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return maps.Clone(v.meta.Limits)
}

// limitLocked returns a limit's value; ok is false when none applies.
func (v *VHost) limitLocked(limit string) (int64, bool) {
	n, ok := v.meta.Limits[limit]
	return n, ok && n >= 0
}

// ConnectionLimit returns the virtual host's max-connections; ok is false
// when it has none.
func (v *VHost) ConnectionLimit() (int64, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.limitLocked(LimitConnections)
}

// saveVhost stores v's record (v.mu held or v not yet shared).
func (r *Registry) saveVhost(v *VHost) error {
	if r.deps.Definitions == nil {
		return nil
	}
	b, err := json.Marshal(&v.meta)
	if err != nil {
		return err
	}
	return r.deps.Definitions.PutDefinition(kindVhost, v.name, b)
}

// OnDelete registers fn to run when a virtual host is deleted, before its
// queues go (the AMQP front end closes its connections; the users' store
// forgets permissions on it).
func (r *Registry) OnDelete(fn func(name string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onDelete = append(r.onDelete, fn)
}

// Delete deletes a virtual host with everything in it: its connections are
// closed, its queues deleted with their messages, its exchanges, bindings
// and policies forgotten.
func (r *Registry) Delete(name string) error {
	if r.replicated() {
		return r.replicate(wire.Table{"op": opVhostDelete, "vhost": name}).err
	}
	return r.deleteVhost(name)
}

func (r *Registry) deleteVhost(name string) error {
	r.admin.Lock()
	defer r.admin.Unlock()
	r.mu.Lock()
	v := r.vhosts[name]
	delete(r.vhosts, name)
	hooks := slices.Clone(r.onDelete)
	r.mu.Unlock()
	if v == nil {
		return ErrNoVhost
	}
	for _, fn := range hooks {
		fn(name)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.deleted = true
	var errs []error
	for _, q := range v.queues {
		if _, err := q.Delete(false, false); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, v.forgetQueueLocked(q))
	}
	for _, x := range v.exchanges {
		if x.name != DefaultExchange {
			errs = append(errs, v.deleteExchangeLocked(x))
		}
	}
	if st := r.deps.Definitions; st != nil {
		for _, operator := range []bool{false, true} {
			for pname := range v.policyMap(operator) {
				errs = append(errs, st.DeleteDefinition(policyKind(operator), defKey(v.name, pname)))
			}
		}
		errs = append(errs, st.DeleteDefinition(kindVhost, v.name))
	}
	return errors.Join(errs...)
}

// Meta returns the virtual host's metadata.
func (v *VHost) Meta() Meta {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.meta
}

// ExchangeInfo describes an exchange.
type ExchangeInfo struct {
	Name, Kind                    string
	Durable, AutoDelete, Internal bool
	Args                          wire.Table
	AppliedPolicies
}

func (v *VHost) exchangeInfoLocked(x *Exchange) ExchangeInfo {
	pol, op := v.appliedLocked(x.name, "")
	return ExchangeInfo{Name: x.name, Kind: x.kind, Durable: x.durable, AutoDelete: x.autoDelete, Internal: x.internal,
		Args: x.args, AppliedPolicies: applied(pol, op)}
}

func applied(pol, op *Policy) AppliedPolicies {
	var a AppliedPolicies
	if pol != nil {
		a.Policy = pol.Name
	}
	if op != nil {
		a.OperatorPolicy = op.Name
	}
	a.Effective = effective(pol, op)
	return a
}

// Exchanges describes the virtual host's exchanges (the default one, named
// "", included), by name.
func (v *VHost) Exchanges() []ExchangeInfo {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := []ExchangeInfo{{Name: DefaultExchange, Kind: exchange.KindDirect, Durable: true}}
	for _, name := range slices.Sorted(maps.Keys(v.exchanges)) {
		out = append(out, v.exchangeInfoLocked(v.exchanges[name]))
	}
	return out
}

// Exchange describes the named exchange; ok is false when there is none.
func (v *VHost) Exchange(name string) (ExchangeInfo, bool) {
	if name == DefaultExchange {
		return ExchangeInfo{Name: DefaultExchange, Kind: exchange.KindDirect, Durable: true}, true
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	x := v.exchanges[name]
	if x == nil {
		return ExchangeInfo{}, false
	}
	return v.exchangeInfoLocked(x), true
}

// Queues returns the virtual host's queues, by name.
func (v *VHost) Queues() []queue.Queue {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]queue.Queue, 0, len(v.queues))
	for _, name := range slices.Sorted(maps.Keys(v.queues)) {
		out = append(out, v.queues[name])
	}
	return out
}

// QueuePolicies names the policies that apply to a queue.
func (v *VHost) QueuePolicies(q queue.Queue) AppliedPolicies {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return applied(v.appliedLocked(q.Name(), q.Config().Kind))
}

// BindingInfo describes a binding.
type BindingInfo struct {
	Source      string
	Destination string
	// DestinationType is "queue" or "exchange".
	DestinationType string
	Key             string
	Args            wire.Table
}

// Bindings describes every binding, the default exchange's to each queue
// first (as RabbitMQ lists them), then by source, destination and key.
func (v *VHost) Bindings() []BindingInfo {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []BindingInfo
	for _, name := range slices.Sorted(maps.Keys(v.queues)) {
		out = append(out, BindingInfo{Source: DefaultExchange, Destination: name, DestinationType: "queue", Key: name})
	}
	var rest []BindingInfo
	for _, x := range v.exchanges {
		x.router.Bindings(func(b exchange.Binding) bool {
			bi := BindingInfo{Source: x.name, Destination: b.Destination.Name(), DestinationType: "exchange", Key: b.Key, Args: b.Args}
			if _, isQueue := b.Destination.(queue.Queue); isQueue {
				bi.DestinationType = "queue"
			}
			rest = append(rest, bi)
			return true
		})
	}
	slices.SortFunc(rest, func(a, b BindingInfo) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.DestinationType, b.DestinationType),
			cmp.Compare(a.Destination, b.Destination), cmp.Compare(a.Key, b.Key))
	})
	return append(out, rest...)
}
