package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// clusterState is GET /api/cluster: the answering node, its cluster and
// the node that leads the metadata store. A node that is not clustered
// answers with itself alone.
type clusterState struct {
	ClusterName string        `json:"cluster_name"`
	Node        string        `json:"node"`
	Leader      string        `json:"leader"`
	Nodes       []clusterNode `json:"nodes"`
}

// clusterNode is one member of the cluster.
type clusterNode struct {
	Name    string `json:"name"`
	Address string `json:"address"` // the cluster address, HOST:PORT
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	Running bool   `json:"running"`
}

// clusterStatus prints GET /api/cluster in rabbitmqctl cluster_status's
// sections, or the reply itself with --formatter json. Every Warren node
// keeps the metadata on disk, so every member is a disk node.
func clusterStatus(x *invocation, _ []string) error {
	var raw json.RawMessage
	if err := x.api.call(x.ctx, request{method: http.MethodGet, path: []string{"cluster"}, out: &raw}); err != nil {
		return err
	}
	if x.opts.json() {
		var out bytes.Buffer
		if err := json.Indent(&out, raw, "", "  "); err != nil {
			return &exitError{code: exitSoftware, msg: "Error: unexpected reply to GET /api/cluster: " + err.Error()}
		}
		out.WriteByte('\n')
		_, err := x.stdout.Write(out.Bytes())
		return err
	}
	var st clusterState
	if err := json.Unmarshal(raw, &st); err != nil {
		return &exitError{code: exitSoftware, msg: "Error: unexpected reply to GET /api/cluster: " + err.Error()}
	}
	x.info("Cluster status of node %s ...", st.Node)
	_, err := io.WriteString(x.stdout, clusterStatusText(&st))
	return err
}

// clusterStatusText renders the sections: node names sorted, as
// rabbitmqctl sorts them, and "(none)" for an empty section.
func clusterStatusText(st *clusterState) string {
	var all, running []string
	for _, n := range st.Nodes {
		all = append(all, n.Name)
		if n.Running {
			running = append(running, n.Name)
		}
	}
	var b strings.Builder
	section := func(title string, names []string) {
		b.WriteString("\n" + title + "\n\n")
		if len(names) == 0 {
			b.WriteString("(none)\n")
			return
		}
		slices.Sort(names)
		for _, n := range names {
			b.WriteString(n + "\n")
		}
	}
	b.WriteString("Basics\n\nCluster name: " + st.ClusterName + "\n")
	section("Disk Nodes", all)
	section("Running Nodes", running)
	var leader []string
	if st.Leader != "" {
		leader = []string{st.Leader}
	}
	section("Metadata store leader", leader)
	return b.String()
}

// checkClusterAddress refuses a join_cluster argument that is not a
// cluster address: Warren joins through the other node's HOST:PORT, where
// rabbitmqctl takes a node name.
func checkClusterAddress(args []string) error {
	host, port, err := net.SplitHostPort(args[0])
	if err == nil && host != "" {
		if n, perr := strconv.ParseUint(port, 10, 16); perr == nil && n > 0 {
			return nil
		}
	}
	return usageError("%q is not a cluster address: join_cluster takes the cluster address (HOST:PORT) of a node of the cluster to join, not a node name", args[0])
}

// joinCluster asks the node to join the cluster of the node at a cluster
// address.
func joinCluster(x *invocation, args []string) error {
	node, err := nodeName(x)
	if err != nil {
		return err
	}
	x.info("Clustering node %s with %s", node, args[0])
	var reply struct {
		Reason string `json:"reason"`
	}
	err = x.api.call(x.ctx, request{
		method: http.MethodPost,
		path:   []string{"cluster", "join"},
		body:   map[string]string{"address": args[0]},
		out:    &reply,
	})
	if err == nil && reply.Reason != "" {
		// A node started on its own joins when it restarts.
		x.info("%s", reply.Reason)
	}
	return err
}

// forgetClusterNode removes a member from the node's cluster. The API
// answers 404 when the node is not clustered at all.
func forgetClusterNode(x *invocation, args []string) error {
	x.info("Removing node %s from the cluster", args[0])
	return x.api.call(x.ctx, request{
		method:   http.MethodDelete,
		path:     []string{"cluster", "nodes", args[0]},
		notFound: noObject("Node " + args[0] + " is not in the cluster"),
	})
}
