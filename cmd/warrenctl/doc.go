// Command warrenctl is Warren's operator tool. It keeps rabbitmqctl's command
// names, arguments, output and exit codes so that runbooks written for
// RabbitMQ carry over, but it talks only to the management HTTP API (the
// paths and JSON of RabbitMQ's management plugin), never to an Erlang node.
//
//	warrenctl [global flags] <command> [command flags] [arguments]
//
// Flags may stand before or after the command name; "--" ends them, so that
// an argument that starts with a dash (a password, a pattern) can follow.
//
// Global flags:
//
//	--url URL              management API base URL; env WARREN_MGMT_URL,
//	                       default http://127.0.0.1:15672. Credentials in the
//	                       URL (http://user:pass@host:15672) are used when
//	                       neither the flags nor the environment give any.
//	--username NAME        env WARREN_MGMT_USERNAME, default guest
//	--password SECRET      env WARREN_MGMT_PASSWORD, default guest
//	-p, --vhost VHOST      virtual host of vhost-scoped commands, default /
//	--formatter table|json table (default) or json
//	-q, --quiet            no informational lines ("Listing queues ...")
//	-s, --silent           --quiet and --no-table-headers
//	--no-table-headers     no header row above list output
//	-t, --timeout SECONDS  time allowed for the command (decimals allowed);
//	                       for await_startup the time to wait; default 60
//	-h, --help             usage; "warrenctl help <command>" for one command
//
// rabbitmqctl's -n/--node is refused rather than ignored: the node is the one
// --url names.
//
// Clustering: cluster_status shows the sections of rabbitmqctl's (Basics,
// Disk Nodes, Running Nodes; every Warren node keeps the metadata on disk)
// and Warren's "Metadata store leader", from GET /api/cluster; with
// --formatter json it prints that reply. join_cluster takes the cluster
// address (HOST:PORT) of a node of the cluster to join, not a node name, and
// has no --disc or --ram. forget_cluster_node removes a node that is not
// running; the API refuses (409) to remove a running one.
//
// Output: list commands print an informational line (unless quiet), a header
// row of column names and one row per object, tab-separated, as rabbitmqctl
// does. Strings print raw, booleans as true/false, numbers as the API sent
// them, a missing or null value as an empty field, tags as [a, b], and other
// maps and arrays (arguments, definitions) as compact JSON rather than as
// Erlang terms. With --formatter json a list command prints a JSON array of
// objects keyed by the column names and no informational line. Commands
// that change things print only informational lines ("Adding user "bob"
// ..."), which --quiet and --formatter json suppress. Errors go to standard
// error as "Error:" and the reason the API gave.
//
// Exit codes follow rabbitmqctl (sysexits):
//
//	0   success
//	64  usage: unknown command or flag, wrong argument count, bad flag value
//	65  invalid input data: malformed JSON definition, unreadable file, a
//	    virtual host that does not exist
//	67  a user that does not exist
//	69  the node cannot be reached, or await_startup timed out
//	70  the API answered with another error (a missing queue, policy,
//	    connection or permission too)
//	75  a request timed out (--timeout)
//	77  the API refused the credentials or the permission (401, 403)
package main
