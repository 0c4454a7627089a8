package main

import (
	"fmt"
	"io"
	"strings"
)

// command is one entry of the command table.
type command struct {
	name     string
	args     string                            // argument synopsis after the name and flags
	help     string                            // one line
	min, max int                               // positional argument counts; max < 0 means no limit
	flags    []string                          // long names of the command's own flags
	vhost    bool                              // acts in the --vhost virtual host
	list     *listing                          // a list command: fetch, pick columns, print
	check    func([]string) error              // optional: checks the arguments before anything is sent
	run      func(*invocation, []string) error // any other command
}

// commandTable lists every command in the order help shows them.
var commandTable = []command{
	{name: "help", args: "[<command>]", help: "Shows the command list or one command's usage", max: 1},

	{name: "list_queues", vhost: true, args: "[<column> ...]", help: "Lists queues and their properties", max: -1, list: queuesListing},
	{name: "list_exchanges", vhost: true, args: "[<column> ...]", help: "Lists exchanges", max: -1, list: exchangesListing},
	{name: "list_bindings", vhost: true, args: "[<column> ...]", help: "Lists bindings", max: -1, list: bindingsListing},
	{name: "list_connections", args: "[<column> ...]", help: "Lists AMQP connections to the node", max: -1, list: connectionsListing},
	{name: "list_channels", args: "[<column> ...]", help: "Lists channels", max: -1, list: channelsListing},
	{name: "list_consumers", vhost: true, args: "[<column> ...]", help: "Lists consumers in a virtual host", max: -1, list: consumersListing},
	{name: "list_users", help: "Lists users and their tags", list: usersListing},
	{name: "list_vhosts", args: "[<column> ...]", help: "Lists virtual hosts", max: -1, list: vhostsListing},
	{name: "list_permissions", vhost: true, help: "Lists user permissions in a virtual host", list: permissionsListing},
	{name: "list_user_permissions", args: "<username>", help: "Lists the permissions of a user in every virtual host", min: 1, max: 1, list: userPermissionsListing},
	{name: "list_topic_permissions", vhost: true, help: "Lists topic permissions in a virtual host", list: topicPermissionsListing},
	{name: "list_user_topic_permissions", args: "<username>", help: "Lists the topic permissions of a user", min: 1, max: 1, list: userTopicPermissionsListing},
	{name: "list_policies", vhost: true, help: "Lists policies in a virtual host", list: policiesListing},
	{name: "list_operator_policies", vhost: true, help: "Lists operator policy overrides in a virtual host", list: operatorPoliciesListing},

	{name: "add_user", args: "<username> [<password>]", help: "Creates a user (the password is read from standard input when omitted)", min: 1, max: 2, run: addUser},
	{name: "delete_user", args: "<username>", help: "Deletes a user", min: 1, max: 1, run: deleteUser},
	{name: "change_password", args: "<username> [<password>]", help: "Changes a user's password (read from standard input when omitted)", min: 1, max: 2, run: changePassword},
	{name: "set_user_tags", args: "<username> [<tag> ...]", help: "Replaces a user's tags", min: 1, max: -1, run: setUserTags},
	{name: "add_vhost", args: "<vhost>", help: "Creates a virtual host", min: 1, max: 1, flags: []string{"description", "tags", "default-queue-type"}, run: addVHost},
	{name: "delete_vhost", args: "<vhost>", help: "Deletes a virtual host and everything in it", min: 1, max: 1, run: deleteVHost},
	{name: "set_permissions", vhost: true, args: "<username> <conf> <write> <read>", help: "Sets a user's permissions in a virtual host", min: 4, max: 4, run: setPermissions},
	{name: "clear_permissions", vhost: true, args: "<username>", help: "Revokes a user's permissions in a virtual host", min: 1, max: 1, run: clearPermissions},
	{name: "set_topic_permissions", vhost: true, args: "<username> <exchange> <write> <read>", help: "Sets a user's topic permissions on an exchange", min: 4, max: 4, run: setTopicPermissions},
	{name: "clear_topic_permissions", vhost: true, args: "<username> [<exchange>]", help: "Revokes a user's topic permissions in a virtual host, or on one exchange", min: 1, max: 2, run: clearTopicPermissions},

	{name: "set_policy", vhost: true, args: "<name> <pattern> <definition>", help: "Sets a policy", min: 3, max: 3, flags: []string{"priority", "apply-to"}, run: policyKind.set},
	{name: "clear_policy", vhost: true, args: "<name>", help: "Clears a policy", min: 1, max: 1, run: policyKind.clear},
	{name: "set_operator_policy", vhost: true, args: "<name> <pattern> <definition>", help: "Sets an operator policy override", min: 3, max: 3, flags: []string{"priority", "apply-to"}, run: operatorPolicyKind.set},
	{name: "clear_operator_policy", vhost: true, args: "<name>", help: "Clears an operator policy override", min: 1, max: 1, run: operatorPolicyKind.clear},
	{name: "set_vhost_limits", vhost: true, args: "<definition>", help: `Sets virtual host limits, e.g. '{"max-connections": 100, "max-queues": -1}'`, min: 1, max: 1, run: setVHostLimits},
	{name: "clear_vhost_limits", vhost: true, help: "Clears every limit of a virtual host", run: clearVHostLimits},
	{name: "set_user_limits", args: "<username> <definition>", help: `Sets user limits, e.g. '{"max-connections": 10, "max-channels": 20}'`, min: 2, max: 2, run: setUserLimits},
	{name: "clear_user_limits", args: "<username> <limit> | all", help: "Clears a user's limit (max-connections, max-channels), or all of them", min: 2, max: 2, run: clearUserLimits},

	{name: "purge_queue", vhost: true, args: "<queue>", help: "Removes every ready message from a queue", min: 1, max: 1, run: purgeQueue},
	{name: "delete_queue", vhost: true, args: "<queue>", help: "Deletes a queue", min: 1, max: 1, flags: []string{"if-empty", "if-unused"}, run: deleteQueue},
	{name: "close_connection", args: "<connection name> <explanation>", help: "Closes a connection (its name is list_connections' pid or name column)", min: 2, max: 2, run: closeConnection},
	{name: "close_all_connections", vhost: true, args: "[<explanation>]", help: "Closes the connections of a virtual host, or all with --global", max: 1, flags: []string{"global", "limit"}, run: closeAllConnections},

	{name: "export_definitions", args: `<file | "-">`, help: "Writes the definitions (users, vhosts, queues, ...) as JSON to a file or standard output", min: 1, max: 1, run: exportDefinitions},
	{name: "import_definitions", args: `<file | "-">`, help: "Loads definitions from a JSON file or standard input", min: 1, max: 1, run: importDefinitions},

	{name: "set_vm_memory_high_watermark", args: "<fraction> | absolute <memory_limit>", help: "Sets the memory alarm's threshold: a fraction of RAM, or bytes (e.g. 2GiB)", min: 1, max: 2, check: memoryWatermark.check, run: memoryWatermark.set},
	{name: "set_disk_free_limit", args: "<disk_limit> | mem_relative <fraction>", help: "Sets the free disk space limit: bytes (e.g. 1GB), or a multiple of RAM", min: 1, max: 2, check: diskFreeLimit.check, run: diskFreeLimit.set},

	{name: "cluster_status", help: "Shows the cluster's nodes, which of them run, and the metadata store's leader", run: clusterStatus},
	{name: "join_cluster", args: "<host:port>", help: "Joins the node to the cluster of the node at that cluster address (not a node name)", min: 1, max: 1, check: checkClusterAddress, run: joinCluster},
	{name: "forget_cluster_node", args: "<node>", help: "Removes a node that is not running from the cluster", min: 1, max: 1, run: forgetClusterNode},

	{name: "status", help: "Shows a summary of the node's state", run: status},
	{name: "ping", help: "Checks that the node's management API answers", run: ping},
	{name: "await_startup", help: "Waits until the node answers (at most --timeout seconds)", run: awaitStartup},
}

// lookupCommand returns the command called name, or nil.
func lookupCommand(name string) *command {
	for i := range commandTable {
		if commandTable[i].name == name {
			return &commandTable[i]
		}
	}
	return nil
}

// synopsis is the command's usage line after "warrenctl".
func (c *command) synopsis() string {
	parts := []string{c.name}
	if c.vhost {
		parts = append(parts, "[-p <vhost>]")
	}
	for _, n := range c.flags {
		if f, ok := lookupFlag("--" + n); ok {
			parts = append(parts, "["+f.String()+"]")
		}
	}
	if c.args != "" {
		parts = append(parts, c.args)
	}
	return strings.Join(parts, " ")
}

// checkArgs checks the count of positional arguments and, for a list
// command, the column names.
func (c *command) checkArgs(args []string) error {
	if len(args) < c.min {
		return usageError("not enough arguments for %s", c.name)
	}
	if c.max >= 0 && len(args) > c.max {
		return usageError("too many arguments for %s", c.name)
	}
	if c.list != nil && c.list.items != nil {
		_, err := c.list.columnsFor(args)
		return err
	}
	if c.check != nil {
		return c.check(args)
	}
	return nil
}

// execute runs the command with checked arguments.
func (c *command) execute(x *invocation, args []string) error {
	if c.list != nil {
		return c.list.run(x, args)
	}
	return c.run(x, args)
}

// writeUsage writes the command list.
func writeUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("Usage: warrenctl [global flags] <command> [command flags] [arguments]\n\n")
	b.WriteString("warrenctl manages a Warren node through its management HTTP API, with\nrabbitmqctl's commands and exit codes.\n\nGlobal flags:\n")
	var global []string
	for _, f := range flagSpecs {
		if f.global {
			global = append(global, f.long)
		}
	}
	describeFlags(&b, global)
	b.WriteString("\nCommands:\n")
	for i := range commandTable {
		c := &commandTable[i]
		fmt.Fprintf(&b, "  %-28s %s\n", c.name, c.help)
	}
	b.WriteString("\nRun 'warrenctl help <command>' for a command's arguments and flags.\n")
	b.WriteString("Exit codes: 0 ok, 64 usage, 65 bad data, 69 node unreachable, 70 error reply,\n75 timeout, 77 access refused.\n")
	_, _ = io.WriteString(w, b.String())
}

// writeCommandHelp writes one command's usage.
func writeCommandHelp(w io.Writer, c *command) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: warrenctl %s\n\n%s\n", c.synopsis(), c.help)
	if len(c.flags) > 0 {
		b.WriteString("\nFlags:\n")
		describeFlags(&b, c.flags)
	}
	if c.list != nil && c.list.items != nil {
		fmt.Fprintf(&b, "\n<column> must be one of: %s.\nDefault: %s.\n",
			strings.Join(c.list.items, ", "), strings.Join(c.list.defaults, " "))
	}
	_, _ = io.WriteString(w, b.String())
}
