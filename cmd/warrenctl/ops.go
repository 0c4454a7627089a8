package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// pollInterval is how often await_startup asks again.
const pollInterval = 500 * time.Millisecond

// defaultCloseReason is close_all_connections' explanation when none is given.
const defaultCloseReason = "Closed via warrenctl"

// noQueue is a missing queue.
func noQueue(name, vhost string) missing {
	return noObject("Queue '" + name + "' in vhost '" + vhost + "' does not exist")
}

// purgeQueue removes a queue's ready messages.
func purgeQueue(x *invocation, args []string) error {
	x.info("Purging queue '%s' in vhost '%s' ...", args[0], x.opts.vhost)
	return x.api.call(x.ctx, request{
		method:   http.MethodDelete,
		path:     []string{"queues", x.opts.vhost, args[0], "contents"},
		notFound: noQueue(args[0], x.opts.vhost),
	})
}

// deleteQueue deletes a queue, with --if-empty and --if-unused as the
// API's if-empty and if-unused query parameters.
func deleteQueue(x *invocation, args []string) error {
	query := url.Values{}
	var conds []string
	if x.opts.ifEmpty {
		query.Set("if-empty", "true")
		conds = append(conds, "if queue is empty ")
	}
	if x.opts.ifUnused {
		query.Set("if-unused", "true")
		conds = append(conds, "if queue is unused ")
	}
	x.info("Deleting queue '%s' on vhost '%s' %s...", args[0], x.opts.vhost, strings.Join(conds, "and "))
	return x.api.call(x.ctx, request{
		method:   http.MethodDelete,
		path:     []string{"queues", x.opts.vhost, args[0]},
		query:    query,
		notFound: noQueue(args[0], x.opts.vhost),
	})
}

// closeConnection closes one connection, giving the explanation to the
// client in the X-Reason header.
func closeConnection(x *invocation, args []string) error {
	x.info("Closing connection %s, reason: %s...", args[0], args[1])
	return x.api.call(x.ctx, request{
		method:   http.MethodDelete,
		path:     []string{"connections", args[0]},
		header:   http.Header{"X-Reason": {args[1]}},
		notFound: noObject("Connection '" + args[0] + "' does not exist"),
	})
}

// closeAllConnections lists the vhost's connections (every connection with
// --global), keeps the first --limit, and closes each. A connection that
// closed meanwhile is not an error.
func closeAllConnections(x *invocation, args []string) error {
	reason := defaultCloseReason
	if len(args) > 0 {
		reason = args[0]
	}
	path := []string{"vhosts", x.opts.vhost, "connections"}
	switch {
	case x.opts.global:
		path = []string{"connections"}
		x.info("Closing all connections to node %s, reason: %s...", x.opts.base, reason)
	case x.opts.limit > 0:
		x.info("Closing %d connections to vhost %s, reason: %s...", x.opts.limit, x.opts.vhost, reason)
	default:
		x.info("Closing all connections to vhost %s, reason: %s...", x.opts.vhost, reason)
	}
	var conns []struct {
		Name string `json:"name"`
	}
	if err := x.api.call(x.ctx, request{method: http.MethodGet, path: path, out: &conns, notFound: noVHost(x.opts.vhost)}); err != nil {
		return err
	}
	if x.opts.limit > 0 && len(conns) > x.opts.limit {
		conns = conns[:x.opts.limit]
	}
	closed := 0
	for _, c := range conns {
		err := x.api.call(x.ctx, request{
			method: http.MethodDelete,
			path:   []string{"connections", c.Name},
			header: http.Header{"X-Reason": {reason}},
		})
		switch {
		case err == nil:
			closed++
		case !isNotFound(err):
			return err
		}
	}
	x.info("Closed %d connections", closed)
	return nil
}

// exportDefinitions writes GET /api/definitions, indented, to a file or,
// for "-", to standard output (with no informational line, as rabbitmqctl).
// The file is created readable by its owner only: it holds password hashes.
func exportDefinitions(x *invocation, args []string) error {
	path := args[0]
	if path != "-" {
		x.info(`Exporting definitions in JSON to a file at "%s" ...`, path)
	}
	var raw json.RawMessage
	if err := x.api.call(x.ctx, request{method: http.MethodGet, path: []string{"definitions"}, out: &raw}); err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return &exitError{code: exitSoftware, msg: "Error: unexpected reply to GET /api/definitions: " + err.Error()}
	}
	out.WriteByte('\n')
	if path == "-" {
		_, err := x.stdout.Write(out.Bytes())
		return err
	}
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		return dataError("could not write to file %s: %v", path, err)
	}
	return nil
}

// importDefinitions posts a JSON definitions file ("-": standard input).
func importDefinitions(x *invocation, args []string) error {
	path := args[0]
	var data []byte
	var err error
	if path == "-" {
		x.info("Importing definitions in JSON from standard input ...")
		data, err = io.ReadAll(x.stdin)
	} else {
		x.info(`Importing definitions in JSON from a file at "%s" ...`, path)
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return dataError("could not read definitions from %s: %v", path, err)
	}
	raw, err := jsonObject(string(data))
	if err != nil {
		return dataError("the definitions in %s are not a JSON object: %v", path, err)
	}
	return x.api.call(x.ctx, request{method: http.MethodPost, path: []string{"definitions"}, body: raw})
}

// overview is the part of GET /api/overview that status shows.
type overview struct {
	Node            string `json:"node"`
	ProductName     string `json:"product_name"`
	ProductVersion  string `json:"product_version"`
	RabbitMQVersion string `json:"rabbitmq_version"`
	ClusterName     string `json:"cluster_name"`
	ObjectTotals    struct {
		Connections any `json:"connections"`
		Channels    any `json:"channels"`
		Exchanges   any `json:"exchanges"`
		Queues      any `json:"queues"`
		Consumers   any `json:"consumers"`
	} `json:"object_totals"`
}

// nodeInfo is the part of an element of GET /api/nodes that status shows.
type nodeInfo struct {
	Name          string      `json:"name"`
	Uptime        json.Number `json:"uptime"` // milliseconds
	MemUsed       any         `json:"mem_used"`
	MemLimit      any         `json:"mem_limit"`
	MemAlarm      bool        `json:"mem_alarm"`
	DiskFree      any         `json:"disk_free"`
	DiskFreeLimit any         `json:"disk_free_limit"`
	DiskFreeAlarm bool        `json:"disk_free_alarm"`
}

// status prints a summary of GET /api/overview and /api/nodes in
// rabbitmqctl's sections, or the overview object with --formatter json.
func status(x *invocation, _ []string) error {
	var raw json.RawMessage
	if err := x.api.call(x.ctx, request{method: http.MethodGet, path: []string{"overview"}, out: &raw}); err != nil {
		return err
	}
	if x.opts.json() {
		var out bytes.Buffer
		if err := json.Indent(&out, raw, "", "  "); err != nil {
			return &exitError{code: exitSoftware, msg: "Error: unexpected reply to GET /api/overview: " + err.Error()}
		}
		out.WriteByte('\n')
		_, err := x.stdout.Write(out.Bytes())
		return err
	}
	var ov overview
	if err := json.Unmarshal(raw, &ov); err != nil {
		return &exitError{code: exitSoftware, msg: "Error: unexpected reply to GET /api/overview: " + err.Error()}
	}
	var nodes []nodeInfo
	if err := x.api.call(x.ctx, request{method: http.MethodGet, path: []string{"nodes"}, out: &nodes}); err != nil {
		return err
	}
	var n nodeInfo
	for i := range nodes {
		if i == 0 || nodes[i].Name == ov.Node {
			n = nodes[i]
		}
	}
	x.info("Status of node %s ...", ov.Node)
	_, err := io.WriteString(x.stdout, statusText(&ov, &n))
	return err
}

// statusText renders the summary; lines whose value the API did not send
// are left out.
func statusText(ov *overview, n *nodeInfo) string {
	var b strings.Builder
	line := func(label string, v any) {
		if s := cell(v); s != "" {
			fmt.Fprintf(&b, "%s: %s\n", label, s)
		}
	}
	b.WriteString("Runtime\n\n")
	if ms, err := n.Uptime.Int64(); err == nil {
		line("Uptime (seconds)", ms/1000)
	}
	line("RabbitMQ version", ov.RabbitMQVersion)
	line("Product name", ov.ProductName)
	line("Product version", ov.ProductVersion)
	line("Cluster name", ov.ClusterName)
	b.WriteString("\nAlarms\n\n")
	switch {
	case n.MemAlarm || n.DiskFreeAlarm:
		if n.MemAlarm {
			fmt.Fprintf(&b, "Memory alarm on node %s\n", n.Name)
		}
		if n.DiskFreeAlarm {
			fmt.Fprintf(&b, "Free disk space alarm on node %s\n", n.Name)
		}
	default:
		b.WriteString("(none)\n")
	}
	b.WriteString("\nMemory\n\n")
	line("Total memory used (bytes)", n.MemUsed)
	line("Memory high watermark (bytes)", n.MemLimit)
	b.WriteString("\nFree Disk Space\n\n")
	line("Free disk space (bytes)", n.DiskFree)
	line("Low free disk space watermark (bytes)", n.DiskFreeLimit)
	b.WriteString("\nTotals\n\n")
	t := ov.ObjectTotals
	line("Connection count", t.Connections)
	line("Channel count", t.Channels)
	line("Queue count", t.Queues)
	line("Exchange count", t.Exchanges)
	line("Consumer count", t.Consumers)
	return b.String()
}

// ping checks that GET /api/overview answers.
func ping(x *invocation, _ []string) error {
	x.info("Will ping the node at %s. This only checks that its management API answers.", x.opts.base)
	if err := x.api.call(x.ctx, request{method: http.MethodGet, path: []string{"overview"}}); err != nil {
		return err
	}
	if x.opts.json() {
		_, err := io.WriteString(x.stdout, `{"result":"ok"}`+"\n")
		return err
	}
	_, err := io.WriteString(x.stdout, "Ping succeeded\n")
	return err
}

// awaitStartup asks GET /api/overview every pollInterval until it answers,
// and gives up when --timeout runs out (exit 69). Refused credentials end
// the wait at once: the node is up, and waiting will not change them.
func awaitStartup(x *invocation, _ []string) error {
	var last error
	for {
		err := x.api.call(x.ctx, request{method: http.MethodGet, path: []string{"overview"}})
		if err == nil {
			return nil
		}
		if exitCodeFor(err) == exitNoPerm {
			return err
		}
		if x.ctx.Err() == nil {
			last = err
		}
		t := time.NewTimer(pollInterval)
		select {
		case <-t.C:
		case <-x.ctx.Done():
			t.Stop()
			msg := fmt.Sprintf("Error: the node at %s did not start within %v", x.opts.base, x.opts.timeout)
			if last != nil {
				msg += "\nLast attempt:\n" + last.Error()
			}
			return &exitError{code: exitUnavailable, msg: msg}
		}
	}
}
