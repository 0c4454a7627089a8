package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// getter reads one column's value from an API object.
type getter func(obj map[string]any) any

// field reads the value at a dotted path ("queue.name"); nil when absent.
func field(path string) getter {
	keys := strings.Split(path, ".")
	return func(obj map[string]any) any {
		var v any = obj
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
}

// constant is a column with the same value in every row.
func constant(v any) getter {
	return func(map[string]any) any { return v }
}

// tagList is a list of tags; a table shows it as rabbitmqctl does, [a, b].
type tagList []string

// toTags reads tags sent either as an array or as a comma-separated
// string (RabbitMQ's API has used both).
func toTags(v any) tagList {
	out := tagList{}
	switch v := v.(type) {
	case []any:
		for _, t := range v {
			out = append(out, cell(t))
		}
	case string:
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// tags reads the tags at a dotted path.
func tags(path string) getter {
	get := field(path)
	return func(obj map[string]any) any { return toTags(get(obj)) }
}

// listing is a list command: the API path it reads, the informational
// line, and its columns.
type listing struct {
	// path returns the API path segments; args are the positional
	// arguments when the columns are fixed (items is nil).
	path   func(o *options, args []string) []string
	banner func(o *options, args []string) string
	// items are the column names a user may ask for, in rabbitmqctl's
	// spelling; nil means the columns are fixed and positional arguments
	// go to path and banner instead.
	items    []string
	defaults []string
	// getters read the columns whose API field has another name or shape;
	// every other column reads the field of its own name.
	getters map[string]getter
}

// columnsFor returns the columns to show for args: the defaults when there
// are none, else args themselves, which must be known items.
func (l *listing) columnsFor(args []string) ([]string, error) {
	if l.items == nil || len(args) == 0 {
		return l.defaults, nil
	}
	var bad []string
	for _, a := range args {
		if !slices.Contains(l.items, a) {
			bad = append(bad, a)
		}
	}
	if bad != nil {
		return nil, usageError("info key(s) %s are not supported. Possible keys: %s",
			strings.Join(bad, ","), strings.Join(l.items, ", "))
	}
	return args, nil
}

// getter returns how to read a column.
func (l *listing) getter(col string) getter {
	if g, ok := l.getters[col]; ok {
		return g
	}
	return field(col)
}

// run fetches the JSON array, picks the columns and prints them.
func (l *listing) run(x *invocation, args []string) error {
	cols, err := l.columnsFor(args)
	if err != nil {
		return err
	}
	var pathArgs []string
	if l.items == nil {
		pathArgs = args
	}
	x.info("%s", l.banner(x.opts, pathArgs))
	var objs []map[string]any
	err = x.api.call(x.ctx, request{method: http.MethodGet, path: l.path(x.opts, pathArgs), out: &objs})
	if err != nil {
		return err
	}
	rows := make([][]any, len(objs))
	for i, obj := range objs {
		row := make([]any, len(cols))
		for j, c := range cols {
			row[j] = l.getter(c)(obj)
		}
		rows[i] = row
	}
	if x.opts.json() {
		_, err = x.stdout.Write(formatJSON(cols, rows))
	} else {
		_, err = x.stdout.Write(formatTable(cols, rows, x.opts.headers()))
	}
	return err
}

// formatTable renders rows tab-separated, with a header row of the column
// names when headers is set.
func formatTable(cols []string, rows [][]any, headers bool) []byte {
	var b bytes.Buffer
	if headers {
		b.WriteString(strings.Join(cols, "\t"))
		b.WriteByte('\n')
	}
	for _, row := range rows {
		for i, v := range row {
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(cell(v))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// cell renders one value for a table: strings raw, booleans true/false,
// numbers as sent, null or missing as nothing, tags as [a, b], and other
// maps and arrays as compact JSON.
func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
		return "false"
	case json.Number:
		return v.String()
	case tagList:
		return "[" + strings.Join(v, ", ") + "]"
	default:
		return marshalCompact(v)
	}
}

// formatJSON renders rows as a JSON array of objects whose keys are the
// column names, in column order.
func formatJSON(cols []string, rows [][]any) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, row := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n{")
		for j, v := range row {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(marshalCompact(cols[j]))
			b.WriteByte(':')
			b.WriteString(marshalCompact(v))
		}
		b.WriteByte('}')
	}
	if len(rows) > 0 {
		b.WriteByte('\n')
	}
	b.WriteString("]\n")
	return b.Bytes()
}

// marshalCompact is v as compact JSON without HTML escaping. Values decoded
// from JSON always encode; anything else shows as its Go form.
func marshalCompact(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// inVHost is the path of a vhost-scoped collection: /api/{kind}/{vhost}.
func inVHost(kind string) func(*options, []string) []string {
	return func(o *options, _ []string) []string { return []string{kind, o.vhost} }
}

// whole is the path of a collection that is not scoped: /api/{kind}.
func whole(kind string) func(*options, []string) []string {
	return func(*options, []string) []string { return []string{kind} }
}

// ofUser is /api/users/{user}/{kind} for the first argument.
func ofUser(kind string) func(*options, []string) []string {
	return func(_ *options, args []string) []string { return []string{"users", args[0], kind} }
}

// fixedBanner is an informational line that names nothing.
func fixedBanner(s string) func(*options, []string) string {
	return func(*options, []string) string { return s }
}

// The list commands, with rabbitmqctl's info items and default columns.
var (
	queuesListing = &listing{
		path:   inVHost("queues"),
		banner: func(o *options, _ []string) string { return "Listing queues for vhost " + o.vhost + " ..." },
		items: []string{"name", "durable", "auto_delete", "arguments", "policy", "pid", "owner_pid",
			"exclusive", "exclusive_consumer_pid", "exclusive_consumer_tag", "messages_ready",
			"messages_unacknowledged", "messages", "messages_ready_ram", "messages_unacknowledged_ram",
			"messages_ram", "messages_persistent", "message_bytes", "message_bytes_ready",
			"message_bytes_unacknowledged", "message_bytes_ram", "message_bytes_persistent",
			"head_message_timestamp", "disk_reads", "disk_writes", "consumers", "consumer_utilisation",
			"consumer_capacity", "memory", "state", "type", "vhost", "node", "leader", "members", "online"},
		defaults: []string{"name", "messages"},
		getters: map[string]getter{
			"owner_pid":              field("owner_pid_details.name"),
			"exclusive_consumer_pid": field("exclusive_consumer_details.channel_details.name"),
			"members":                tags("members"),
			"online":                 tags("online"),
		},
	}
	exchangesListing = &listing{
		path:     inVHost("exchanges"),
		banner:   func(o *options, _ []string) string { return "Listing exchanges for vhost " + o.vhost + " ..." },
		items:    []string{"name", "type", "durable", "auto_delete", "internal", "arguments", "policy", "vhost"},
		defaults: []string{"name", "type"},
	}
	bindingsListing = &listing{
		path:     inVHost("bindings"),
		banner:   func(o *options, _ []string) string { return "Listing bindings for vhost " + o.vhost + "..." },
		items:    []string{"source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments", "vhost", "properties_key"},
		defaults: []string{"source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"},
		getters: map[string]getter{
			"source_name":      field("source"),
			"source_kind":      constant("exchange"),
			"destination_name": field("destination"),
			"destination_kind": field("destination_type"),
		},
	}
	connectionsListing = &listing{
		path:   whole("connections"),
		banner: fixedBanner("Listing connections ..."),
		items: []string{"pid", "name", "port", "host", "peer_port", "peer_host", "ssl", "ssl_protocol",
			"ssl_key_exchange", "ssl_cipher", "ssl_hash", "peer_cert_subject", "peer_cert_issuer",
			"peer_cert_validity", "state", "channels", "protocol", "auth_mechanism", "user", "vhost",
			"timeout", "frame_max", "channel_max", "client_properties", "recv_oct", "recv_cnt",
			"send_oct", "send_cnt", "send_pend", "connected_at", "node"},
		defaults: []string{"user", "peer_host", "peer_port", "state"},
		getters:  map[string]getter{"pid": field("name")},
	}
	channelsListing = &listing{
		path:   whole("channels"),
		banner: fixedBanner("Listing channels ..."),
		items: []string{"pid", "connection", "name", "number", "user", "vhost", "transactional",
			"confirm", "consumer_count", "messages_unacknowledged", "messages_uncommitted",
			"acks_uncommitted", "messages_unconfirmed", "prefetch_count", "global_prefetch_count", "state", "node"},
		defaults: []string{"pid", "user", "consumer_count", "messages_unacknowledged"},
		getters: map[string]getter{
			"pid":        field("name"),
			"connection": field("connection_details.name"),
		},
	}
	consumersListing = &listing{
		path:     inVHost("consumers"),
		banner:   func(o *options, _ []string) string { return "Listing consumers on vhost " + o.vhost + " ..." },
		items:    []string{"queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "activity_status", "arguments", "exclusive"},
		defaults: []string{"queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "arguments"},
		getters: map[string]getter{
			"queue_name":  field("queue.name"),
			"channel_pid": field("channel_details.name"),
		},
	}
	usersListing = &listing{
		path:     whole("users"),
		banner:   fixedBanner("Listing users ..."),
		defaults: []string{"user", "tags"},
		getters:  map[string]getter{"user": field("name"), "tags": tags("tags")},
	}
	vhostsListing = &listing{
		path:     whole("vhosts"),
		banner:   fixedBanner("Listing vhosts ..."),
		items:    []string{"name", "description", "tags", "default_queue_type", "tracing", "cluster_state", "metadata"},
		defaults: []string{"name"},
		getters:  map[string]getter{"tags": tags("tags")},
	}
	permissionsListing = &listing{
		path: func(o *options, _ []string) []string { return []string{"vhosts", o.vhost, "permissions"} },
		banner: func(o *options, _ []string) string {
			return fmt.Sprintf(`Listing permissions for vhost "%s" ...`, o.vhost)
		},
		defaults: []string{"user", "configure", "write", "read"},
	}
	userPermissionsListing = &listing{
		path: ofUser("permissions"),
		banner: func(_ *options, args []string) string {
			return fmt.Sprintf(`Listing permissions for user "%s" ...`, args[0])
		},
		defaults: []string{"vhost", "configure", "write", "read"},
	}
	topicPermissionsListing = &listing{
		path: func(o *options, _ []string) []string { return []string{"vhosts", o.vhost, "topic-permissions"} },
		banner: func(o *options, _ []string) string {
			return fmt.Sprintf(`Listing topic permissions for vhost "%s" ...`, o.vhost)
		},
		defaults: []string{"user", "exchange", "write", "read"},
	}
	userTopicPermissionsListing = &listing{
		path: ofUser("topic-permissions"),
		banner: func(_ *options, args []string) string {
			return fmt.Sprintf(`Listing topic permissions for user "%s" ...`, args[0])
		},
		defaults: []string{"vhost", "exchange", "write", "read"},
	}
	policiesListing = &listing{
		path: inVHost("policies"),
		banner: func(o *options, _ []string) string {
			return fmt.Sprintf(`Listing policies for vhost "%s" ...`, o.vhost)
		},
		defaults: []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"},
	}
	operatorPoliciesListing = &listing{
		path: inVHost("operator-policies"),
		banner: func(o *options, _ []string) string {
			return fmt.Sprintf(`Listing operator policy overrides for vhost "%s" ...`, o.vhost)
		},
		defaults: []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"},
	}
)
