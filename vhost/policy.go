package vhost

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/pattern"
	"github.com/warrenmq/warren/queue"
)

// Policy is a policy or an operator policy: settings (its definition)
// for the queues or exchanges whose names its pattern matches, as
// RabbitMQ's. Of the policies matching an object, the one with the
// highest priority applies (the first by name among equals); of operator
// policies the same, separately.
type Policy struct {
	Name     string `json:"name"`
	Pattern  string `json:"pattern"`
	ApplyTo  string `json:"apply-to"`
	Priority int    `json:"priority"`
	// Definition holds the settings: keys such as message-ttl and
	// dead-letter-exchange, values as JSON gives them (numbers are
	// whole).
	Definition map[string]any `json:"definition"`

	re *pattern.Pattern
}

// The apply-to values.
const (
	ApplyToAll           = "all"
	ApplyToQueues        = "queues"
	ApplyToClassicQueues = "classic_queues"
	ApplyToQuorumQueues  = "quorum_queues"
	ApplyToStreams       = "streams"
	ApplyToExchanges     = "exchanges"
)

// policyKeys are the definition keys a policy may set, each with its check
// (RabbitMQ's words when the value is wrong); operatorKeys those an
// operator policy may.
var (
	policyKeys = map[string]func(any) (any, string){
		"message-ttl":             intSetting(0, wire.MaxExpiration, "is not a valid message TTL"),
		"expires":                 intSetting(1, wire.MaxExpiration, "is not a valid queue expiry"),
		"max-length":              intSetting(0, math.MaxInt64, "is not a valid maximum length"),
		"max-length-bytes":        intSetting(0, math.MaxInt64, "is not a valid maximum length in bytes"),
		"delivery-limit":          intSetting(0, math.MaxInt64, "is not a valid delivery limit"),
		"overflow":                oneOf("is not a valid overflow value", "drop-head", "reject-publish", "reject-publish-dlx"),
		"dead-letter-exchange":    stringSetting("is not a valid dead letter exchange"),
		"dead-letter-routing-key": stringSetting("is not a valid dead letter routing key"),
		"dead-letter-strategy":    oneOf("is not a valid dead letter strategy", "at-most-once", "at-least-once"),
		"alternate-exchange":      stringSetting("is not a valid alternate exchange name"),
		"queue-mode":              oneOf("is not a valid queue-mode value", "default", "lazy"),
		"queue-version":           intSetting(1, 2, "is not a valid queue-version value"),
	}
	operatorKeys = []string{"message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit", "overflow", "queue-version"}
)

// intSetting checks a whole number in [lo, hi] and gives it as an int64.
func intSetting(lo, hi int64, problem string) func(any) (any, string) {
	return func(v any) (any, string) {
		// float64(hi) may round up past hi (to 2^63 for MaxInt64), which
		// must fail: f is whole, so f < hi+1 is f <= hi.
		if f, ok := v.(float64); ok && f == math.Trunc(f) && f >= float64(lo) && f < float64(hi)+1 {
			return int64(f), ""
		}
		if n, ok := v.(int64); ok && n >= lo && n <= hi {
			return n, ""
		}
		return nil, erlangValue(v) + " " + problem
	}
}

func stringSetting(problem string) func(any) (any, string) {
	return func(v any) (any, string) {
		if s, ok := v.(string); ok {
			return s, ""
		}
		return nil, erlangValue(v) + " " + problem
	}
}

func oneOf(problem string, values ...string) func(any) (any, string) {
	return func(v any) (any, string) {
		if s, ok := v.(string); ok && slices.Contains(values, s) {
			return s, ""
		}
		return nil, erlangValue(v) + " " + problem
	}
}

// erlangValue renders a JSON value roughly as Erlang's ~p shows it in
// RabbitMQ's validation messages.
func erlangValue(v any) string {
	switch v := v.(type) {
	case string:
		return `<<"` + v + `">>`
	case float64:
		if v == math.Trunc(v) && !math.IsInf(v, 0) {
			return new(big.Float).SetFloat64(v).Text('f', 0) // exact, as Erlang's integer
		}
		return fmt.Sprintf("%g", v)
	case bool:
		return fmt.Sprint(v)
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// PolicyError is a policy that does not validate: the management API's
// 400 reason.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// checkPolicy validates p as RabbitMQ does and fills in its defaults and
// canonical values.
func checkPolicy(p *Policy, operator bool) error {
	if p.ApplyTo == "" {
		p.ApplyTo = ApplyToAll
	}
	switch p.ApplyTo {
	case ApplyToAll, ApplyToQueues, ApplyToClassicQueues, ApplyToQuorumQueues, ApplyToStreams, ApplyToExchanges:
	default:
		return &PolicyError{erlangValue(p.ApplyTo) + " is not a valid 'apply-to' value"}
	}
	re, err := pattern.Compile(p.Pattern)
	if err != nil {
		return &PolicyError{erlangValue(p.Pattern) + " is not a valid regular expression: " + err.Error()}
	}
	p.re = re
	if len(p.Definition) == 0 {
		return &PolicyError{"no policy provided"}
	}
	def := make(map[string]any, len(p.Definition))
	var unknown []string
	for _, k := range slices.Sorted(maps.Keys(p.Definition)) {
		check := policyKeys[k]
		if check == nil || operator && !slices.Contains(operatorKeys, k) {
			unknown = append(unknown, `<<"`+k+`">>`)
			continue
		}
		val, problem := check(p.Definition[k])
		if problem != "" {
			return &PolicyError{problem}
		}
		def[k] = val
	}
	if len(unknown) > 0 {
		return &PolicyError{"[" + strings.Join(unknown, ",") + "] are not recognised policy settings"}
	}
	p.Definition = def
	return nil
}

// Policy definition kinds in the store: key vhost, name; value the policy
// as JSON.
const (
	kindPolicy         byte = 'p'
	kindOperatorPolicy byte = 'o'
)

func policyKind(operator bool) byte {
	if operator {
		return kindOperatorPolicy
	}
	return kindPolicy
}

// SetPolicy creates or replaces a policy (an operator policy when
// operator), stores it and applies it at once to the queues and exchanges
// it matches. A policy that does not validate is a *PolicyError.
func (v *VHost) SetPolicy(p Policy, operator bool) error {
	if err := checkPolicy(&p, operator); err != nil {
		return err
	}
	if v.reg.replicated() {
		b, err := json.Marshal(&p)
		if err != nil {
			return err
		}
		return v.reg.replicate(wire.Table{"op": opPolicySet, "vhost": v.name, "policy": b, "operator": operator}).err
	}
	return v.setPolicy(p, operator)
}

func (v *VHost) setPolicy(p Policy, operator bool) error {
	if err := checkPolicy(&p, operator); err != nil {
		return err
	}
	v.policyMu.Lock()
	defer v.policyMu.Unlock()
	v.mu.Lock()
	if v.deleted {
		v.mu.Unlock()
		return v.deletedErr()
	}
	if v.defs != nil {
		b, err := json.Marshal(&p)
		if err == nil {
			err = storeErr("policy", v.defs.PutDefinition(policyKind(operator), defKey(v.name, p.Name), b))
		}
		if err != nil {
			v.mu.Unlock()
			return err
		}
	}
	v.policyMap(operator)[p.Name] = &p
	apply := v.applyPoliciesLocked()
	v.mu.Unlock()
	apply()
	return nil
}

// DeletePolicy removes a policy; ok is false when there was none.
func (v *VHost) DeletePolicy(name string, operator bool) (ok bool, err error) {
	if v.reg.replicated() {
		res := v.reg.replicate(wire.Table{"op": opPolicyDelete, "vhost": v.name, "name": name, "operator": operator})
		return res.ok, res.err
	}
	return v.deletePolicy(name, operator)
}

func (v *VHost) deletePolicy(name string, operator bool) (ok bool, err error) {
	v.policyMu.Lock()
	defer v.policyMu.Unlock()
	v.mu.Lock()
	m := v.policyMap(operator)
	if v.deleted || m[name] == nil {
		v.mu.Unlock()
		return false, nil
	}
	if v.defs != nil {
		if err := v.defs.DeleteDefinition(policyKind(operator), defKey(v.name, name)); err != nil {
			v.mu.Unlock()
			return true, storeErr("policy", err)
		}
	}
	delete(m, name)
	apply := v.applyPoliciesLocked()
	v.mu.Unlock()
	apply()
	return true, nil
}

// Policies returns the policies (the operator policies when operator),
// by name.
func (v *VHost) Policies(operator bool) []Policy {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := v.policyMap(operator)
	out := make([]Policy, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[name])
	}
	return out
}

// policyMap returns the policies or the operator policies (v.mu held).
func (v *VHost) policyMap(operator bool) map[string]*Policy {
	if operator {
		if v.opPolicies == nil {
			v.opPolicies = map[string]*Policy{}
		}
		return v.opPolicies
	}
	if v.policies == nil {
		v.policies = map[string]*Policy{}
	}
	return v.policies
}

// matchPolicy returns the policy of m that applies to the object named
// name (a queue of queueKind, or an exchange when queueKind is ""), or nil.
func matchPolicy(m map[string]*Policy, name, queueKind string) *Policy {
	var best *Policy
	for _, p := range m {
		if !appliesTo(p.ApplyTo, queueKind) || !p.re.Match(name) {
			continue
		}
		if best == nil || p.Priority > best.Priority || p.Priority == best.Priority && p.Name < best.Name {
			best = p
		}
	}
	return best
}

func appliesTo(applyTo, queueKind string) bool {
	switch applyTo {
	case ApplyToAll:
		return true
	case ApplyToExchanges:
		return queueKind == ""
	case ApplyToQueues:
		return queueKind != ""
	case ApplyToClassicQueues:
		return queueKind == queue.DefaultKind
	case ApplyToQuorumQueues:
		return queueKind == "quorum"
	case ApplyToStreams:
		return queueKind == "stream"
	}
	return false
}

// AppliedPolicies names the policy and operator policy that apply to an
// object ("" for none), with the definition they make together.
type AppliedPolicies struct {
	Policy, OperatorPolicy string
	Effective              map[string]any
}

// appliedLocked returns the policies applying to the object named name (a
// queue of queueKind, or an exchange when queueKind is "").
func (v *VHost) appliedLocked(name, queueKind string) (pol, op *Policy) {
	return matchPolicy(v.policies, name, queueKind), matchPolicy(v.opPolicies, name, queueKind)
}

// policyValue is key's value from the policy and the operator policy
// together: for the limits (numbers) the lower of the two; for the rest,
// queue-version included, the operator policy's.
func policyValue(pol, op *Policy, key string) (any, bool) {
	var pv, ov any
	var pok, ook bool
	if pol != nil {
		pv, pok = pol.Definition[key]
	}
	if op != nil {
		ov, ook = op.Definition[key]
	}
	switch {
	case pok && ook && key != "queue-version":
		if a, ok := pv.(int64); ok {
			if b, ok := ov.(int64); ok {
				return min(a, b), true
			}
		}
		return ov, true
	case ook:
		return ov, true
	}
	return pv, pok
}

// effective merges the definitions of pol and op (for display).
func effective(pol, op *Policy) map[string]any {
	out := map[string]any{}
	for _, p := range []*Policy{pol, op} {
		if p == nil {
			continue
		}
		for k := range p.Definition {
			out[k], _ = policyValue(pol, op, k)
		}
	}
	return out
}

// queueSettings are a queue's effective settings: those of its arguments
// (declared) with the policies'. As in RabbitMQ's classic queues, the lower
// of an argument and a policy wins for the limits (TTL, expiry, lengths,
// delivery limit) and the argument wins for the others.
func queueSettings(declared queue.Settings, args wire.Table, pol, op *Policy) queue.Settings {
	s := declared
	limit := func(arg string, key string, cur *int64, none int64) {
		pv, ok := policyValue(pol, op, key)
		if !ok {
			return
		}
		n := pv.(int64)
		if _, argSet := args[arg]; argSet && *cur != none {
			n = min(n, *cur)
		}
		*cur = n
	}
	limit("x-message-ttl", "message-ttl", &s.MessageTTL, -1)
	limit("x-expires", "expires", &s.Expires, 0)
	limit("x-max-length", "max-length", &s.MaxLength, -1)
	limit("x-max-length-bytes", "max-length-bytes", &s.MaxLengthBytes, -1)
	limit("x-delivery-limit", "delivery-limit", &s.DeliveryLimit, -1)
	if _, argSet := args["x-overflow"]; !argSet {
		if pv, ok := policyValue(pol, op, "overflow"); ok {
			s.Overflow, _ = queue.ParseOverflow(pv.(string))
		}
	}
	if _, argSet := args["x-dead-letter-exchange"]; !argSet {
		if pv, ok := policyValue(pol, op, "dead-letter-exchange"); ok {
			s.DeadLetter, s.DeadLetterExchange = true, pv.(string)
		}
	}
	if _, argSet := args["x-dead-letter-strategy"]; !argSet {
		if pv, ok := policyValue(pol, op, "dead-letter-strategy"); ok {
			s.DeadLetterAtLeastOnce = pv == "at-least-once"
		}
	}
	if _, argSet := args["x-dead-letter-routing-key"]; !argSet {
		if pv, ok := policyValue(pol, op, "dead-letter-routing-key"); ok {
			s.HasDeadLetterRoutingKey, s.DeadLetterRoutingKey = true, pv.(string)
		}
	}
	return s
}

// alternateExchange is an exchange's effective alternate exchange: its
// argument, else its policy's.
func alternateExchange(args wire.Table, pol, op *Policy) string {
	if ae, ok := args["alternate-exchange"].(string); ok {
		return ae
	}
	if pv, ok := policyValue(pol, op, "alternate-exchange"); ok {
		return pv.(string)
	}
	return ""
}

// applyPoliciesLocked gives every exchange the settings the policies now
// make (after a policy changed), and returns what gives the queues theirs,
// to be called once mu is released: a queue trimmed to a lower limit
// dead-letters what it drops, which routes through the vhost.
func (v *VHost) applyPoliciesLocked() (applyToQueues func()) {
	type change struct {
		q queue.Queue
		s queue.Settings
	}
	var changes []change
	for _, q := range v.queues {
		if q.Deleted() {
			continue
		}
		c := q.Config()
		args, err := validateQueueArgs(v.kinds, "", c.Args)
		if err != nil {
			continue // it validated when declared
		}
		pol, op := v.appliedLocked(c.Name, c.Kind)
		if s := queueSettings(args.Settings, c.Args, pol, op); s != q.Settings() {
			changes = append(changes, change{q, s})
		}
	}
	for _, x := range v.exchanges {
		if x.name == DefaultExchange {
			continue
		}
		pol, op := v.appliedLocked(x.name, "")
		x.alternate = alternateExchange(x.args, pol, op)
	}
	v.gen.Add(1)
	return func() {
		for _, c := range changes {
			c.q.SetSettings(c.s)
		}
		// A queue's expiry counts from now under its new settings (an
		// x-expires the policy brought starts its lease).
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, c := range changes {
			if v.queues[c.q.Name()] == c.q {
				v.touchLocked(c.q)
			}
		}
	}
}

// loadPolicies reads the stored policies of every virtual host (Load).
func (r *Registry) loadPolicies() error {
	for _, operator := range []bool{false, true} {
		err := r.deps.Definitions.Definitions(policyKind(operator), func(key string, val []byte) error {
			f, ok := splitKey(key, 2)
			if !ok {
				return nil
			}
			v := r.Get(f[0])
			if v == nil {
				return nil
			}
			var p Policy
			if err := json.Unmarshal(val, &p); err != nil {
				return err
			}
			if err := checkPolicy(&p, operator); err != nil {
				return fmt.Errorf("stored policy %q in vhost %q: %w", p.Name, f[0], err)
			}
			v.mu.Lock()
			v.policyMap(operator)[p.Name] = &p
			v.mu.Unlock()
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
