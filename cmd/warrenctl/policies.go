package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// policyAPI is one of the two kinds of policy, which differ only in their
// API path and in rabbitmqctl's wording.
type policyAPI struct {
	path string // "policies" or "operator-policies"
	noun string // in informational lines
}

// The two kinds of policy.
var (
	policyKind         = policyAPI{path: "policies", noun: "policy"}
	operatorPolicyKind = policyAPI{path: "operator-policies", noun: "operator policy override"}
)

// set puts a policy: name, pattern and a JSON object definition, with
// --priority and --apply-to.
func (k policyAPI) set(x *invocation, args []string) error {
	name, pattern, definition := args[0], args[1], args[2]
	def, err := jsonObject(definition)
	if err != nil {
		return dataError("the policy definition is not a JSON object: %v", err)
	}
	x.info(`Setting %s "%s" for pattern "%s" to "%s" with priority "%d" for vhost "%s" ...`,
		k.noun, name, pattern, definition, x.opts.priority, x.opts.vhost)
	return x.api.call(x.ctx, request{
		method: http.MethodPut,
		path:   []string{k.path, x.opts.vhost, name},
		body: map[string]any{
			"pattern":    pattern,
			"definition": def,
			"priority":   x.opts.priority,
			"apply-to":   x.opts.applyTo,
		},
	})
}

// clear deletes a policy.
func (k policyAPI) clear(x *invocation, args []string) error {
	x.info(`Clearing %s "%s" on vhost "%s" ...`, k.noun, args[0], x.opts.vhost)
	return x.api.call(x.ctx, request{
		method:   http.MethodDelete,
		path:     []string{k.path, x.opts.vhost, args[0]},
		notFound: noObject(`No ` + k.noun + ` "` + args[0] + `" in vhost "` + x.opts.vhost + `"`),
	})
}

// jsonObject checks that s is one JSON object and returns it unchanged.
func jsonObject(s string) (json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("null is not an object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the object")
	}
	return json.RawMessage(s), nil
}

// setVHostLimits sets each limit of a JSON object such as
// {"max-connections": 100, "max-queues": -1} (negative: no limit) with one
// PUT /api/vhost-limits/{vhost}/{name} each, in name order.
func setVHostLimits(x *invocation, args []string) error {
	values, err := parseLimits(args[0])
	if err != nil {
		return err
	}
	x.info(`Setting vhost limits to "%s" for vhost "%s" ...`, args[0], x.opts.vhost)
	return putLimits(x, values, "vhost-limits", x.opts.vhost, noVHost(x.opts.vhost))
}

// setUserLimits sets a user's limits (max-connections, max-channels).
func setUserLimits(x *invocation, args []string) error {
	values, err := parseLimits(args[1])
	if err != nil {
		return err
	}
	x.info(`Setting user limits to "%s" for user "%s" ...`, args[1], args[0])
	return putLimits(x, values, "user-limits", args[0], noUser(args[0]))
}

// clearUserLimits clears one of a user's limits, or all of them.
func clearUserLimits(x *invocation, args []string) error {
	x.info(`Clearing "%s" limit for user "%s" ...`, args[1], args[0])
	return x.api.call(x.ctx, request{method: http.MethodDelete, path: []string{"user-limits", args[0], args[1]},
		notFound: noUser(args[0])})
}

// parseLimits reads a limits definition: a JSON object of integers.
func parseLimits(def string) (map[string]int64, error) {
	raw, err := jsonObject(def)
	if err != nil {
		return nil, dataError("the limits definition is not a JSON object: %v", err)
	}
	var limits map[string]json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&limits); err != nil {
		return nil, dataError("each limit must be an integer: %v", err)
	}
	values := make(map[string]int64, len(limits))
	for name, n := range limits {
		v, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return nil, dataError("limit %s must be an integer, not %s", name, n)
		}
		values[name] = v
	}
	return values, nil
}

// putLimits sets each limit at /api/<kind>/<owner>/<name>; notFound says
// the owner is missing.
func putLimits(x *invocation, values map[string]int64, kind, owner string, notFound missing) error {
	for _, name := range sortedKeys(values) {
		err := x.api.call(x.ctx, request{
			method:   http.MethodPut,
			path:     []string{kind, owner, name},
			body:     map[string]int64{"value": values[name]},
			notFound: notFound,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// clearVHostLimits reads the vhost's limits and deletes each.
func clearVHostLimits(x *invocation, _ []string) error {
	x.info(`Clearing vhost "%s" limits ...`, x.opts.vhost)
	var entries []struct {
		Value map[string]any `json:"value"`
	}
	err := x.api.call(x.ctx, request{
		method:   http.MethodGet,
		path:     []string{"vhost-limits", x.opts.vhost},
		out:      &entries,
		notFound: noVHost(x.opts.vhost),
	})
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, e := range entries {
		for n := range e.Value {
			names[n] = true
		}
	}
	for _, name := range sortedKeys(names) {
		err := x.api.call(x.ctx, request{method: http.MethodDelete, path: []string{"vhost-limits", x.opts.vhost, name}})
		if err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
