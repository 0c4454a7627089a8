package mgmt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/vhost"
)

// Definitions is RabbitMQ's definitions file: the node's (or one virtual
// host's) users, virtual hosts, permissions, policies and topology.
type Definitions struct {
	RabbitVersion    string           `json:"rabbit_version,omitempty"`
	RabbitMQVersion  string           `json:"rabbitmq_version,omitempty"`
	ProductName      string           `json:"product_name,omitempty"`
	ProductVersion   string           `json:"product_version,omitempty"`
	Users            []map[string]any `json:"users,omitzero"`
	Vhosts           []map[string]any `json:"vhosts,omitzero"`
	Permissions      []map[string]any `json:"permissions,omitzero"`
	TopicPermissions []map[string]any `json:"topic_permissions,omitzero"`
	Parameters       []map[string]any `json:"parameters"`
	GlobalParameters []map[string]any `json:"global_parameters,omitzero"`
	Policies         []map[string]any `json:"policies"`
	OperatorPolicies []map[string]any `json:"operator_policies,omitempty"`
	Queues           []map[string]any `json:"queues"`
	Exchanges        []map[string]any `json:"exchanges"`
	Bindings         []map[string]any `json:"bindings"`
}

// isPredeclared reports whether an exchange is one every virtual host has
// (not exported).
func isPredeclared(name string) bool { return name == "" || strings.HasPrefix(name, "amq.") }

// Export returns the definitions of every virtual host (or of the one
// named), as RabbitMQ exports them.
func Export(vhosts *vhost.Registry, users *auth.Store, version, only string) (*Definitions, error) {
	d := &Definitions{RabbitVersion: rabbitVersion, Parameters: []map[string]any{}, Policies: []map[string]any{},
		Queues: []map[string]any{}, Exchanges: []map[string]any{}, Bindings: []map[string]any{}}
	var list []*vhost.VHost
	if only != "" {
		v := vhosts.Get(only)
		if v == nil {
			return nil, notFound()
		}
		list = []*vhost.VHost{v}
	} else {
		d.RabbitMQVersion, d.ProductName, d.ProductVersion = rabbitVersion, "Warren", version
		d.Users, d.Vhosts, d.Permissions, d.TopicPermissions = []map[string]any{}, []map[string]any{}, []map[string]any{}, []map[string]any{}
		d.GlobalParameters = []map[string]any{}
		for _, u := range users.Users() {
			o := userObject(u)
			d.Users = append(d.Users, o)
		}
		for _, name := range vhosts.Names() {
			if v := vhosts.Get(name); v != nil {
				list = append(list, v)
				m := v.Meta()
				o := object{"name": name}
				if m.Description != "" || len(m.Tags) > 0 {
					o["metadata"] = object{"description": m.Description, "tags": m.Tags}
				}
				if m.DefaultQueueType != "" {
					o["default_queue_type"] = m.DefaultQueueType
				}
				d.Vhosts = append(d.Vhosts, o)
			}
		}
		for _, p := range users.Permissions() {
			d.Permissions = append(d.Permissions, permissionObject(p))
		}
		for _, p := range users.TopicPermissions() {
			d.TopicPermissions = append(d.TopicPermissions, topicPermissionObject(p))
		}
	}
	// Per-vhost files name no vhost in their entries.
	withVhost := func(o object, name string) object {
		if only == "" {
			o["vhost"] = name
		}
		return o
	}
	for _, v := range list {
		if l := v.Limits(); len(l) > 0 {
			d.Parameters = append(d.Parameters, withVhost(object{"component": "vhost-limits", "name": "limits", "value": l}, v.Name()))
		}
		for _, operator := range []bool{false, true} {
			for _, p := range v.Policies(operator) {
				o := withVhost(object{"name": p.Name, "pattern": p.Pattern, "apply-to": p.ApplyTo, "definition": p.Definition,
					"priority": p.Priority}, v.Name())
				if operator {
					d.OperatorPolicies = append(d.OperatorPolicies, o)
				} else {
					d.Policies = append(d.Policies, o)
				}
			}
		}
		for _, q := range v.Queues() {
			c := q.Config()
			if c.Exclusive {
				continue
			}
			d.Queues = append(d.Queues, withVhost(object{"name": c.Name, "durable": c.Durable, "auto_delete": c.AutoDelete,
				"arguments": argsJSON(c.Args)}, v.Name()))
		}
		for _, x := range v.Exchanges() {
			if isPredeclared(x.Name) {
				continue
			}
			d.Exchanges = append(d.Exchanges, withVhost(object{"name": x.Name, "type": x.Kind, "durable": x.Durable,
				"auto_delete": x.AutoDelete, "internal": x.Internal, "arguments": argsJSON(x.Args)}, v.Name()))
		}
		for _, b := range v.Bindings() {
			if b.Source == vhost.DefaultExchange {
				continue
			}
			d.Bindings = append(d.Bindings, withVhost(object{"source": b.Source, "destination": b.Destination,
				"destination_type": b.DestinationType, "routing_key": b.Key, "arguments": argsJSON(b.Args)}, v.Name()))
		}
	}
	return d, nil
}

func (s *Server) exportDefinitions(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	d, err := Export(s.d.Vhosts, s.d.Users, s.d.Node.Version, r.PathValue("vhost"))
	if err != nil {
		return err
	}
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+r.URL.Query().Get("download")+`"`)
	}
	writeJSON(w, d)
	return nil
}

func (s *Server) importDefinitions(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	// The UI posts a form with the file; rabbitmqadmin the JSON itself.
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "multipart/form-data") {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return badRequest("bad form: " + err.Error())
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			return badRequest("the form has no file")
		}
		defer f.Close()
		if body, err = io.ReadAll(f); err != nil {
			return err
		}
	}
	only := r.PathValue("vhost")
	if only != "" && s.d.Vhosts.Get(only) == nil {
		return notFound()
	}
	if err := Import(s.d.Vhosts, s.d.Users, body, only, s.log); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return err
		}
		return badRequest(err.Error())
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Import applies a definitions file (RabbitMQ's format) to the node, or to
// the virtual host named by only: users, virtual hosts, permissions, topic
// permissions, policies, exchanges, queues and bindings, in that order.
// Parameters other than vhost limits, and global parameters, are ignored
// with a warning. What exists is kept (a queue declared again must be
// equivalent, as on RabbitMQ); the import stops at the first error.
func Import(vhosts *vhost.Registry, users *auth.Store, data []byte, only string, log *slog.Logger) error {
	var d Definitions
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("definitions are not valid JSON: %w", err)
	}
	vhostOf := func(o map[string]any) (*vhost.VHost, error) {
		name := only
		if name == "" {
			var err error
			if name, err = stringField(o["vhost"], ""); err != nil {
				return nil, err
			}
		}
		v := vhosts.Get(name)
		if v == nil {
			return nil, fmt.Errorf("vhost %q does not exist", name)
		}
		return v, nil
	}
	if only == "" {
		for _, o := range d.Users {
			name, err := stringField(o["name"], "")
			if err != nil || name == "" {
				return errors.New("a user without a name")
			}
			u, err := userFromJSON(name, o)
			if err != nil {
				return fmt.Errorf("user %q: %w", name, err)
			}
			if err := users.PutUser(u); err != nil {
				return fmt.Errorf("user %q: %w", name, err)
			}
		}
		for _, o := range d.Vhosts {
			name, err := stringField(o["name"], "")
			if err != nil || name == "" {
				return errors.New("a vhost without a name")
			}
			m, err := metaFromJSON(o)
			if err != nil {
				return fmt.Errorf("vhost %q: %w", name, err)
			}
			if _, err := vhosts.Put(name, m); err != nil {
				return fmt.Errorf("vhost %q: %w", name, err)
			}
		}
		for _, o := range d.Permissions {
			v, err := vhostOf(o)
			if err != nil {
				return err
			}
			user, _ := stringField(o["user"], "")
			conf, _ := stringField(o["configure"], "")
			write, _ := stringField(o["write"], "")
			read, _ := stringField(o["read"], "")
			if err := users.SetPermission(v.Name(), user, conf, write, read); err != nil {
				return fmt.Errorf("permission of %q on vhost %q: %w", user, v.Name(), err)
			}
		}
		for _, o := range d.TopicPermissions {
			v, err := vhostOf(o)
			if err != nil {
				return err
			}
			user, _ := stringField(o["user"], "")
			x, _ := stringField(o["exchange"], "")
			write, _ := stringField(o["write"], "")
			read, _ := stringField(o["read"], "")
			if err := users.SetTopicPermission(v.Name(), user, x, write, read); err != nil {
				return fmt.Errorf("topic permission of %q on vhost %q: %w", user, v.Name(), err)
			}
		}
		for _, o := range d.GlobalParameters {
			log.Warn("definitions: global parameter ignored", "name", o["name"])
		}
	}
	for _, o := range d.Parameters {
		component, _ := stringField(o["component"], "")
		v, err := vhostOf(o)
		if err != nil {
			return err
		}
		value, _ := o["value"].(map[string]any)
		if component != "vhost-limits" {
			log.Warn("definitions: parameter ignored", "component", component, "name", o["name"], "vhost", v.Name())
			continue
		}
		for limit, n := range value {
			val, err := intField(n, -1)
			if err != nil {
				return err
			}
			if err := vhosts.SetLimit(v.Name(), limit, val); err != nil {
				return err
			}
		}
	}
	for i, list := range [][]map[string]any{d.Policies, d.OperatorPolicies} {
		for _, o := range list {
			v, err := vhostOf(o)
			if err != nil {
				return err
			}
			name, _ := stringField(o["name"], "")
			p, err := policyFromJSON(name, o)
			if err != nil {
				return err
			}
			if err := v.SetPolicy(p, i == 1); err != nil {
				return fmt.Errorf("policy %q in vhost %q: %w", name, v.Name(), policyErr(err))
			}
		}
	}
	for _, o := range d.Exchanges {
		v, err := vhostOf(o)
		if err != nil {
			return err
		}
		spec := vhost.ExchangeSpec{}
		if spec.Name, err = stringField(o["name"], ""); err != nil {
			return err
		}
		if spec.Kind, err = stringField(o["type"], ""); err != nil {
			return err
		}
		if spec.Durable, err = boolField(o["durable"], true); err != nil {
			return err
		}
		if spec.AutoDelete, err = boolField(o["auto_delete"], false); err != nil {
			return err
		}
		if spec.Internal, err = boolField(o["internal"], false); err != nil {
			return err
		}
		if spec.Args, err = argsField(o["arguments"]); err != nil {
			return err
		}
		if err := v.DeclareExchange(spec, false); err != nil {
			return fmt.Errorf("exchange %q in vhost %q: %w", spec.Name, v.Name(), err)
		}
	}
	for _, o := range d.Queues {
		v, err := vhostOf(o)
		if err != nil {
			return err
		}
		spec := vhost.QueueSpec{}
		if spec.Name, err = stringField(o["name"], ""); err != nil {
			return err
		}
		if spec.Durable, err = boolField(o["durable"], true); err != nil {
			return err
		}
		if spec.AutoDelete, err = boolField(o["auto_delete"], false); err != nil {
			return err
		}
		if spec.Args, err = argsField(o["arguments"]); err != nil {
			return err
		}
		if _, err := v.DeclareQueue(spec, false); err != nil {
			return fmt.Errorf("queue %q in vhost %q: %w", spec.Name, v.Name(), err)
		}
	}
	for _, o := range d.Bindings {
		v, err := vhostOf(o)
		if err != nil {
			return err
		}
		src, _ := stringField(o["source"], "")
		dst, _ := stringField(o["destination"], "")
		dt, _ := stringField(o["destination_type"], "queue")
		key, _ := stringField(o["routing_key"], "")
		args, err := argsField(o["arguments"])
		if err != nil {
			return err
		}
		if dt == "exchange" {
			err = v.BindExchange(dst, src, key, args)
		} else {
			err = v.BindQueue(dst, src, key, args, 0)
		}
		if err != nil {
			return fmt.Errorf("binding of %q to %q in vhost %q: %w", dst, src, v.Name(), err)
		}
	}
	return nil
}
