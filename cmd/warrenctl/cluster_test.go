package main

import "testing"

// threeNodes is GET /api/cluster of a three-node cluster whose second node
// leads and whose third is down, nodes out of order.
const threeNodes = `{"cluster_name":"warren@n1","node":"warren@n1","leader":"warren@n2","nodes":[` +
	`{"name":"warren@n3","address":"127.0.0.1:25703","voter":true,"leader":false,"running":false},` +
	`{"name":"warren@n1","address":"127.0.0.1:25701","voter":true,"leader":false,"running":true},` +
	`{"name":"warren@n2","address":"127.0.0.1:25702","voter":true,"leader":true,"running":true}]}`

// TestClusterStatus checks cluster_status's sections and its JSON.
func TestClusterStatus(t *testing.T) {
	t.Parallel()
	const get = "GET /api/cluster"
	const text = "Basics\n\nCluster name: warren@n1\n" +
		"\nDisk Nodes\n\nwarren@n1\nwarren@n2\nwarren@n3\n" +
		"\nRunning Nodes\n\nwarren@n1\nwarren@n2\n" +
		"\nMetadata store leader\n\nwarren@n2\n"
	runCases(t, []cmdCase{
		{name: "three nodes, one down", args: []string{"cluster_status"}, replies: map[string]reply{get: {200, threeNodes}},
			stdout: "Cluster status of node warren@n1 ...\n" + text, reqs: []string{get}},
		{name: "quiet", args: []string{"-q", "cluster_status"}, replies: map[string]reply{get: {200, threeNodes}},
			stdout: text, reqs: []string{get}},
		{name: "single node", args: []string{"cluster_status"},
			replies: map[string]reply{get: {200, `{"cluster_name":"warren@h","node":"warren@h","leader":"warren@h",` +
				`"nodes":[{"name":"warren@h","address":"","voter":true,"leader":true,"running":true}]}`}},
			stdout: "Cluster status of node warren@h ...\nBasics\n\nCluster name: warren@h\n" +
				"\nDisk Nodes\n\nwarren@h\n\nRunning Nodes\n\nwarren@h\n\nMetadata store leader\n\nwarren@h\n",
			reqs: []string{get}},
		{name: "no leader, none running", args: []string{"cluster_status"},
			replies: map[string]reply{get: {200, `{"cluster_name":"warren@a","node":"warren@a","leader":"",` +
				`"nodes":[{"name":"warren@b","running":false}]}`}},
			stdout: "Cluster status of node warren@a ...\nBasics\n\nCluster name: warren@a\n" +
				"\nDisk Nodes\n\nwarren@b\n\nRunning Nodes\n\n(none)\n\nMetadata store leader\n\n(none)\n",
			reqs: []string{get}},
		{name: "json", args: []string{"--formatter", "json", "cluster_status"},
			replies: map[string]reply{get: {200, `{"cluster_name":"warren@h","node":"warren@h","leader":"warren@h","nodes":[{"name":"warren@h","running":true}]}`}},
			stdout: "{\n  \"cluster_name\": \"warren@h\",\n  \"node\": \"warren@h\",\n  \"leader\": \"warren@h\",\n" +
				"  \"nodes\": [\n    {\n      \"name\": \"warren@h\",\n      \"running\": true\n    }\n  ]\n}\n",
			reqs: []string{get}},
		{name: "not json", args: []string{"cluster_status"}, replies: map[string]reply{get: {200, `[`}},
			code: exitSoftware, stderr: "unexpected reply to GET /api/cluster", reqs: []string{get}},
		{name: "permission refused", args: []string{"cluster_status"},
			replies: map[string]reply{get: {403, `{"error":"not_authorised","reason":"Not monitor user"}`}},
			code:    exitNoPerm, stderr: "Error:\nNot monitor user\n", reqs: []string{get}},
		{name: "arguments refused", args: []string{"cluster_status", "extra"},
			code: exitUsage, stderr: "too many arguments for cluster_status"},
	})
}

// TestJoinCluster checks join_cluster: the node's name from the overview
// for the banner, then POST /api/cluster/join with the address.
func TestJoinCluster(t *testing.T) {
	t.Parallel()
	const (
		overview = "GET /api/overview"
		join     = "POST /api/cluster/join"
	)
	node := reply{200, `{"node":"warren@n2"}`}
	usage := func(name string, args []string, stderr string) cmdCase {
		return cmdCase{name: name, args: args, code: exitUsage, stderr: stderr}
	}
	runCases(t, []cmdCase{
		{name: "joins", args: []string{"join_cluster", "10.0.0.1:25701"}, replies: map[string]reply{overview: node, join: ok},
			stdout: "Clustering node warren@n2 with 10.0.0.1:25701\n",
			reqs:   []string{overview, join}, bodies: []string{"", `{"address":"10.0.0.1:25701"}`}},
		{name: "host name and IPv6", args: []string{"-q", "join_cluster", "[::1]:25701"}, replies: map[string]reply{overview: node, join: ok},
			reqs: []string{overview, join}, bodies: []string{"", `{"address":"[::1]:25701"}`}},
		{name: "join refused", args: []string{"join_cluster", "n1.example:25701"},
			replies: map[string]reply{overview: node, join: {409, `{"error":"join_failed","reason":"node n1.example:25701 did not answer"}`}},
			code:    exitSoftware, stdout: "Clustering node warren@n2 with n1.example:25701\n", stderr: "Error:\nnode n1.example:25701 did not answer\n",
			reqs: []string{overview, join}, bodies: []string{"", `{"address":"n1.example:25701"}`}},
		{name: "not clustered", args: []string{"-q", "join_cluster", "n1:25701"},
			replies: map[string]reply{overview: node, join: {409, `{"error":"not_clustered","reason":"this node was started without --cluster-seeds"}`}},
			code:    exitSoftware, stderr: "Error:\nthis node was started without --cluster-seeds\n",
			reqs: []string{overview, join}},
		{name: "unavailable", args: []string{"-q", "join_cluster", "n1:25701"},
			replies: map[string]reply{overview: node, join: {503, `{"error":"unavailable","reason":"no leader"}`}},
			code:    exitSoftware, stderr: "Error:\nno leader\n",
			reqs: []string{overview, join}},
		{name: "bad request", args: []string{"-q", "join_cluster", "n1:25701"},
			replies: map[string]reply{overview: node, join: {400, `{"error":"bad_request","reason":"address missing"}`}},
			code:    exitSoftware, stderr: "Error:\naddress missing\n",
			reqs: []string{overview, join}},
		usage("node name", []string{"join_cluster", "warren@n1"},
			"Error: \"warren@n1\" is not a cluster address: join_cluster takes the cluster address (HOST:PORT) of a node of the cluster to join, not a node name\n"+
				"Usage: warrenctl join_cluster <host:port>\n"),
		usage("no port", []string{"join_cluster", "n1:"}, "is not a cluster address"),
		usage("no host", []string{"join_cluster", ":25701"}, "is not a cluster address"),
		usage("port out of range", []string{"join_cluster", "n1:70000"}, "is not a cluster address"),
		usage("port zero", []string{"join_cluster", "n1:0"}, "is not a cluster address"),
		usage("no address", []string{"join_cluster"}, "not enough arguments for join_cluster"),
		usage("two addresses", []string{"join_cluster", "n1:25701", "n3:25701"}, "too many arguments for join_cluster"),
		usage("ram node", []string{"join_cluster", "--ram", "n1:25701"}, "unknown option --ram"),
		usage("disc node", []string{"join_cluster", "--disc", "n1:25701"}, "unknown option --disc"),
	})
}

// TestForgetClusterNode checks forget_cluster_node: one DELETE with the
// node's name escaped, and the API's reasons for refusing.
func TestForgetClusterNode(t *testing.T) {
	t.Parallel()
	const del = "DELETE /api/cluster/nodes/warren@n3"
	runCases(t, []cmdCase{
		{name: "forgets", args: []string{"forget_cluster_node", "warren@n3"}, replies: map[string]reply{del: ok},
			stdout: "Removing node warren@n3 from the cluster\n", reqs: []string{del}, bodies: []string{""}},
		{name: "name escaped", args: []string{"-q", "forget_cluster_node", "odd/name %x"},
			replies: map[string]reply{"DELETE /api/cluster/nodes/odd%2Fname%20%25x": ok},
			reqs:    []string{"DELETE /api/cluster/nodes/odd%2Fname%20%25x"}},
		{name: "running node refused", args: []string{"forget_cluster_node", "warren@n3"},
			replies: map[string]reply{del: {409, `{"error":"forget_failed","reason":"node warren@n3 is running: stop it first"}`}},
			code:    exitSoftware, stdout: "Removing node warren@n3 from the cluster\n", stderr: "Error:\nnode warren@n3 is running: stop it first\n",
			reqs: []string{del}},
		{name: "not clustered", args: []string{"-q", "forget_cluster_node", "warren@n3"},
			code: exitSoftware, stderr: "Error:\nNode warren@n3 is not in the cluster\n", reqs: []string{del}},
		{name: "empty name", args: []string{"-q", "forget_cluster_node", ""},
			code: exitDataErr, stderr: "names cannot be empty"},
		{name: "no name", args: []string{"forget_cluster_node"},
			code: exitUsage, stderr: "not enough arguments for forget_cluster_node"},
		{name: "offline flag", args: []string{"forget_cluster_node", "--offline", "warren@n3"},
			code: exitUsage, stderr: "unknown option --offline"},
	})
}

// TestClusterHelp checks the commands' usage lines.
func TestClusterHelp(t *testing.T) {
	t.Parallel()
	runCases(t, []cmdCase{
		{name: "join_cluster", args: []string{"help", "join_cluster"},
			stdout: "Usage: warrenctl join_cluster <host:port>\n\nJoins the node to the cluster of the node at that cluster address (not a node name)\n"},
		{name: "forget_cluster_node", args: []string{"forget_cluster_node", "--help"},
			stdout: "Usage: warrenctl forget_cluster_node <node>\n\nRemoves a node that is not running from the cluster\n"},
		{name: "cluster_status", args: []string{"help", "cluster_status"},
			stdout: "Usage: warrenctl cluster_status\n\nShows the cluster's nodes, which of them run, and the metadata store's leader\n"},
	})
}
