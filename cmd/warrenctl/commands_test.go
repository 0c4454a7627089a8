package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// cmdCase is one warrenctl run against the fake API: the canned replies,
// and what it must print, exit with and send.
type cmdCase struct {
	name    string
	args    []string
	stdin   string
	replies map[string]reply
	code    int
	stdout  string   // exact
	stderr  string   // a substring of standard error; "" means it must be empty
	reqs    []string // "METHOD target" in order
	bodies  []string // JSON bodies in request order ("" for none); nil skips the check
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// runCases runs each case against a fake API of its own.
func runCases(t *testing.T, cases []cmdCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t, tt.replies)
			r := runAgainst(f.srv.URL, tt.stdin, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			if r.stdout != tt.stdout {
				t.Errorf("stdout:\n%q\nwant:\n%q", r.stdout, tt.stdout)
			}
			if tt.stderr == "" && r.stderr != "" || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tt.stderr)
			}
			if got := f.lines(); !slices.Equal(got, tt.reqs) {
				t.Errorf("requests:\n%q\nwant:\n%q", got, tt.reqs)
			}
			if tt.bodies == nil {
				return
			}
			reqs := f.requests()
			for i, want := range tt.bodies {
				if i >= len(reqs) {
					break
				}
				if !sameJSON(reqs[i].body, want) {
					t.Errorf("body of %s = %s, want %s", reqs[i].line(), reqs[i].body, want)
				}
				if want != "" && reqs[i].contentType != "application/json" {
					t.Errorf("content type of %s = %q", reqs[i].line(), reqs[i].contentType)
				}
			}
		})
	}
}

// TestListCommands checks each list command's request, banner, header and rows.
func TestListCommands(t *testing.T) {
	t.Parallel()
	queues := map[string]reply{
		"GET /api/queues/%2F":   {200, `[{"name":"q1","messages":3,"durable":true,"arguments":{}},{"name":"q2","messages":0,"durable":false,"arguments":{"x-queue-type":"classic"}}]`},
		"GET /api/queues/a%2Fb": {200, `[{"name":"q1","messages":3,"durable":true}]`},
	}
	runCases(t, []cmdCase{
		{name: "queues default columns", args: []string{"list_queues"}, replies: queues,
			stdout: "Listing queues for vhost / ...\nname\tmessages\nq1\t3\nq2\t0\n",
			reqs:   []string{"GET /api/queues/%2F"}},
		{name: "queues chosen columns", args: []string{"list_queues", "name", "durable", "arguments"}, replies: queues,
			stdout: "Listing queues for vhost / ...\nname\tdurable\targuments\nq1\ttrue\t{}\nq2\tfalse\t{\"x-queue-type\":\"classic\"}\n",
			reqs:   []string{"GET /api/queues/%2F"}},
		{name: "queues json in an escaped vhost", args: []string{"--formatter", "json", "-p", "a/b", "list_queues", "name", "durable", "policy"}, replies: queues,
			stdout: "[\n{\"name\":\"q1\",\"durable\":true,\"policy\":null}\n]\n",
			reqs:   []string{"GET /api/queues/a%2Fb"}},
		{name: "queues quiet keeps headers", args: []string{"-q", "list_queues"}, replies: queues,
			stdout: "name\tmessages\nq1\t3\nq2\t0\n",
			reqs:   []string{"GET /api/queues/%2F"}},
		{name: "queues silent", args: []string{"list_queues", "--silent"}, replies: queues,
			stdout: "q1\t3\nq2\t0\n",
			reqs:   []string{"GET /api/queues/%2F"}},
		{name: "queues no table headers", args: []string{"list_queues", "--no-table-headers"}, replies: queues,
			stdout: "Listing queues for vhost / ...\nq1\t3\nq2\t0\n",
			reqs:   []string{"GET /api/queues/%2F"}},
		{name: "queues unknown column", args: []string{"list_queues", "name", "colour"}, replies: queues,
			code: exitUsage, stderr: "colour"},
		{name: "exchanges", args: []string{"list_exchanges"},
			replies: map[string]reply{"GET /api/exchanges/%2F": {200, `[{"name":"","type":"direct"},{"name":"amq.topic","type":"topic"}]`}},
			stdout:  "Listing exchanges for vhost / ...\nname\ttype\n\tdirect\namq.topic\ttopic\n",
			reqs:    []string{"GET /api/exchanges/%2F"}},
		{name: "bindings", args: []string{"list_bindings"},
			replies: map[string]reply{"GET /api/bindings/%2F": {200, `[{"source":"x","vhost":"/","destination":"q","destination_type":"queue","routing_key":"k","arguments":{},"properties_key":"k"}]`}},
			stdout:  "Listing bindings for vhost /...\nsource_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments\nx\texchange\tq\tqueue\tk\t{}\n",
			reqs:    []string{"GET /api/bindings/%2F"}},
		{name: "connections", args: []string{"list_connections"},
			replies: map[string]reply{"GET /api/connections": {200, `[{"name":"c","user":"guest","peer_host":"127.0.0.1","peer_port":5000,"state":"running"}]`}},
			stdout:  "Listing connections ...\nuser\tpeer_host\tpeer_port\tstate\nguest\t127.0.0.1\t5000\trunning\n",
			reqs:    []string{"GET /api/connections"}},
		{name: "channels", args: []string{"list_channels"},
			replies: map[string]reply{"GET /api/channels": {200, `[{"name":"c (1)","user":"guest","consumer_count":1,"messages_unacknowledged":4}]`}},
			stdout:  "Listing channels ...\npid\tuser\tconsumer_count\tmessages_unacknowledged\nc (1)\tguest\t1\t4\n",
			reqs:    []string{"GET /api/channels"}},
		{name: "consumers", args: []string{"list_consumers", "-p", "v"},
			replies: map[string]reply{"GET /api/consumers/v": {200, `[{"queue":{"name":"q","vhost":"v"},"channel_details":{"name":"c (1)"},"consumer_tag":"t","ack_required":true,"prefetch_count":5,"active":true,"arguments":{},"exclusive":false}]`}},
			stdout:  "Listing consumers on vhost v ...\nqueue_name\tchannel_pid\tconsumer_tag\tack_required\tprefetch_count\tactive\targuments\nq\tc (1)\tt\ttrue\t5\ttrue\t{}\n",
			reqs:    []string{"GET /api/consumers/v"}},
		{name: "users", args: []string{"list_users"},
			replies: map[string]reply{"GET /api/users": {200, `[{"name":"guest","tags":["administrator"]},{"name":"app","tags":""}]`}},
			stdout:  "Listing users ...\nuser\ttags\nguest\t[administrator]\napp\t[]\n",
			reqs:    []string{"GET /api/users"}},
		{name: "users json", args: []string{"list_users", "--formatter=json"},
			replies: map[string]reply{"GET /api/users": {200, `[{"name":"guest","tags":"administrator,management"}]`}},
			stdout:  "[\n{\"user\":\"guest\",\"tags\":[\"administrator\",\"management\"]}\n]\n",
			reqs:    []string{"GET /api/users"}},
		{name: "vhosts", args: []string{"list_vhosts", "name", "description"},
			replies: map[string]reply{"GET /api/vhosts": {200, `[{"name":"/","description":"Default virtual host"}]`}},
			stdout:  "Listing vhosts ...\nname\tdescription\n/\tDefault virtual host\n",
			reqs:    []string{"GET /api/vhosts"}},
		{name: "permissions", args: []string{"list_permissions", "-p", "/"},
			replies: map[string]reply{"GET /api/vhosts/%2F/permissions": {200, `[{"user":"guest","vhost":"/","configure":".*","write":".*","read":".*"}]`}},
			stdout:  "Listing permissions for vhost \"/\" ...\nuser\tconfigure\twrite\tread\nguest\t.*\t.*\t.*\n",
			reqs:    []string{"GET /api/vhosts/%2F/permissions"}},
		{name: "user permissions", args: []string{"-s", "list_user_permissions", "bob%"},
			replies: map[string]reply{"GET /api/users/bob%25/permissions": {200, `[{"user":"bob%","vhost":"/","configure":"","write":"w","read":"r"}]`}},
			stdout:  "/\t\tw\tr\n",
			reqs:    []string{"GET /api/users/bob%25/permissions"}},
		{name: "topic permissions", args: []string{"list_topic_permissions"},
			replies: map[string]reply{"GET /api/vhosts/%2F/topic-permissions": {200, `[{"user":"bob","vhost":"/","exchange":"amq.topic","write":"^a","read":"^b"}]`}},
			stdout:  "Listing topic permissions for vhost \"/\" ...\nuser\texchange\twrite\tread\nbob\tamq.topic\t^a\t^b\n",
			reqs:    []string{"GET /api/vhosts/%2F/topic-permissions"}},
		{name: "user topic permissions", args: []string{"list_user_topic_permissions", "bob"},
			replies: map[string]reply{"GET /api/users/bob/topic-permissions": {200, `[]`}},
			stdout:  "Listing topic permissions for user \"bob\" ...\nvhost\texchange\twrite\tread\n",
			reqs:    []string{"GET /api/users/bob/topic-permissions"}},
		{name: "policies", args: []string{"list_policies"},
			replies: map[string]reply{"GET /api/policies/%2F": {200, `[{"vhost":"/","name":"ttl","pattern":"^q","apply-to":"queues","definition":{"message-ttl":1000},"priority":1}]`}},
			stdout:  "Listing policies for vhost \"/\" ...\nvhost\tname\tpattern\tapply-to\tdefinition\tpriority\n/\tttl\t^q\tqueues\t{\"message-ttl\":1000}\t1\n",
			reqs:    []string{"GET /api/policies/%2F"}},
		{name: "operator policies", args: []string{"list_operator_policies", "-q"},
			replies: map[string]reply{"GET /api/operator-policies/%2F": {200, `[]`}},
			stdout:  "vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n",
			reqs:    []string{"GET /api/operator-policies/%2F"}},
		{name: "reply is not an array", args: []string{"list_queues"},
			replies: map[string]reply{"GET /api/queues/%2F": {200, `{"name":"q"}`}},
			code:    exitSoftware, stdout: "Listing queues for vhost / ...\n", stderr: "unexpected reply",
			reqs: []string{"GET /api/queues/%2F"}},
	})
}

// TestUserAndPermissionCommands checks the requests and bodies of the user, vhost and permission commands.
func TestUserAndPermissionCommands(t *testing.T) {
	t.Parallel()
	bob := reply{200, `{"name":"bob","password_hash":"h4sh","hashing_algorithm":"rabbit_password_hashing_sha256","tags":["management","monitoring"]}`}
	created := reply{http.StatusCreated, ""}
	runCases(t, []cmdCase{
		{name: "add user", args: []string{"add_user", "bob", "s3cret"},
			replies: map[string]reply{"PUT /api/users/bob": created},
			stdout:  "Adding user \"bob\" ...\nDone. Don't forget to grant the user permissions to some virtual hosts! See 'warrenctl help set_permissions' to learn more.\n",
			reqs:    []string{"GET /api/users/bob", "PUT /api/users/bob"},
			bodies:  []string{"", `{"password":"s3cret","tags":""}`}},
		{name: "add user password from stdin", args: []string{"-q", "add_user", "bob"}, stdin: "pw from stdin\nignored\n",
			replies: map[string]reply{"PUT /api/users/bob": created},
			reqs:    []string{"GET /api/users/bob", "PUT /api/users/bob"},
			bodies:  []string{"", `{"password":"pw from stdin","tags":""}`}},
		{name: "add user without a password", args: []string{"add_user", "bob"},
			code: exitDataErr, stderr: "Password is not provided"},
		{name: "add user that exists", args: []string{"add_user", "bob", "x"},
			replies: map[string]reply{"GET /api/users/bob": bob},
			code:    exitSoftware, stdout: "Adding user \"bob\" ...\n", stderr: "Error:\nUser \"bob\" already exists\n",
			reqs: []string{"GET /api/users/bob"}},
		{name: "delete user", args: []string{"delete_user", "a/b"},
			replies: map[string]reply{"DELETE /api/users/a%2Fb": ok},
			stdout:  "Deleting user \"a/b\" ...\n",
			reqs:    []string{"DELETE /api/users/a%2Fb"}},
		{name: "delete missing user", args: []string{"delete_user", "bob"},
			code: exitNoUser, stdout: "Deleting user \"bob\" ...\n", stderr: "Error:\nUser \"bob\" does not exist\n",
			reqs: []string{"DELETE /api/users/bob"}},
		{name: "change password keeps tags", args: []string{"change_password", "bob", "new"},
			replies: map[string]reply{"GET /api/users/bob": bob, "PUT /api/users/bob": ok},
			stdout:  "Changing password for user \"bob\" ...\n",
			reqs:    []string{"GET /api/users/bob", "PUT /api/users/bob"},
			bodies:  []string{"", `{"password":"new","tags":"management,monitoring"}`}},
		{name: "set user tags keeps the hash", args: []string{"set_user_tags", "bob", "administrator", "policymaker"},
			replies: map[string]reply{"GET /api/users/bob": bob, "PUT /api/users/bob": ok},
			stdout:  "Setting tags for user \"bob\" to [administrator, policymaker] ...\n",
			reqs:    []string{"GET /api/users/bob", "PUT /api/users/bob"},
			bodies:  []string{"", `{"password_hash":"h4sh","hashing_algorithm":"rabbit_password_hashing_sha256","tags":"administrator,policymaker"}`}},
		{name: "clear user tags", args: []string{"-q", "set_user_tags", "bob"},
			replies: map[string]reply{"GET /api/users/bob": bob, "PUT /api/users/bob": ok},
			reqs:    []string{"GET /api/users/bob", "PUT /api/users/bob"},
			bodies:  []string{"", `{"password_hash":"h4sh","hashing_algorithm":"rabbit_password_hashing_sha256","tags":""}`}},
		{name: "add vhost", args: []string{"add_vhost", "v/1", "--description", "d", "--tags", "a,b", "--default-queue-type", "quorum"},
			replies: map[string]reply{"PUT /api/vhosts/v%2F1": created},
			stdout:  "Adding vhost \"v/1\" ...\n",
			reqs:    []string{"PUT /api/vhosts/v%2F1"},
			bodies:  []string{`{"description":"d","tags":"a,b","default_queue_type":"quorum"}`}},
		{name: "add vhost plain", args: []string{"-q", "add_vhost", "v"},
			replies: map[string]reply{"PUT /api/vhosts/v": created},
			reqs:    []string{"PUT /api/vhosts/v"},
			bodies:  []string{`{"description":"","tags":""}`}},
		{name: "delete vhost", args: []string{"delete_vhost", "v"},
			replies: map[string]reply{"DELETE /api/vhosts/v": ok},
			stdout:  "Deleting vhost \"v\" ...\n",
			reqs:    []string{"DELETE /api/vhosts/v"}},
		{name: "set permissions", args: []string{"set_permissions", "-p", "/", "bob", "^$", ".*", ".*"},
			replies: map[string]reply{"PUT /api/permissions/%2F/bob": created},
			stdout:  "Setting permissions for user \"bob\" in vhost \"/\" ...\n",
			reqs:    []string{"PUT /api/permissions/%2F/bob"},
			bodies:  []string{`{"configure":"^$","write":".*","read":".*"}`}},
		{name: "clear permissions", args: []string{"clear_permissions", "-p", "v", "bob"},
			replies: map[string]reply{"DELETE /api/permissions/v/bob": ok},
			stdout:  "Clearing permissions for user \"bob\" in vhost \"v\" ...\n",
			reqs:    []string{"DELETE /api/permissions/v/bob"}},
		{name: "set topic permissions", args: []string{"set_topic_permissions", "bob", "amq.topic", "^a", "^b"},
			replies: map[string]reply{"PUT /api/topic-permissions/%2F/bob": created},
			stdout:  "Setting topic permissions on \"amq.topic\" for user \"bob\" in vhost \"/\" ...\n",
			reqs:    []string{"PUT /api/topic-permissions/%2F/bob"},
			bodies:  []string{`{"exchange":"amq.topic","write":"^a","read":"^b"}`}},
		{name: "clear all topic permissions", args: []string{"clear_topic_permissions", "bob"},
			replies: map[string]reply{"DELETE /api/topic-permissions/%2F/bob": ok},
			stdout:  "Clearing topic permissions for user \"bob\" in vhost \"/\" ...\n",
			reqs:    []string{"DELETE /api/topic-permissions/%2F/bob"}},
		{name: "clear topic permissions of one exchange", args: []string{"clear_topic_permissions", "bob", "amq.topic"},
			replies: map[string]reply{
				"GET /api/topic-permissions/%2F/bob":    {200, `[{"user":"bob","vhost":"/","exchange":"amq.topic","write":".*","read":".*"},{"user":"bob","vhost":"/","exchange":"logs","write":"w","read":"r"}]`},
				"DELETE /api/topic-permissions/%2F/bob": ok,
				"PUT /api/topic-permissions/%2F/bob":    created,
			},
			stdout: "Clearing topic permissions on \"amq.topic\" for user \"bob\" in vhost \"/\" ...\n",
			reqs:   []string{"GET /api/topic-permissions/%2F/bob", "DELETE /api/topic-permissions/%2F/bob", "PUT /api/topic-permissions/%2F/bob"},
			bodies: []string{"", "", `{"exchange":"logs","write":"w","read":"r"}`}},
		{name: "clear topic permissions of an exchange without any", args: []string{"-q", "clear_topic_permissions", "bob", "other"},
			replies: map[string]reply{
				"GET /api/topic-permissions/%2F/bob": {200, `[{"user":"bob","vhost":"/","exchange":"logs","write":"w","read":"r"}]`},
			},
			reqs: []string{"GET /api/topic-permissions/%2F/bob"}},
	})
}

// TestPolicyAndLimitCommands checks the policy and vhost limit commands, and their refusal of malformed JSON.
func TestPolicyAndLimitCommands(t *testing.T) {
	t.Parallel()
	created := reply{http.StatusCreated, ""}
	runCases(t, []cmdCase{
		{name: "set policy", args: []string{"set_policy", "-p", "v", "--priority", "7", "--apply-to", "queues", "ttl", `^q\.`, `{"message-ttl": 1000}`},
			replies: map[string]reply{"PUT /api/policies/v/ttl": created},
			stdout:  "Setting policy \"ttl\" for pattern \"^q\\.\" to \"{\"message-ttl\": 1000}\" with priority \"7\" for vhost \"v\" ...\n",
			reqs:    []string{"PUT /api/policies/v/ttl"},
			bodies:  []string{`{"pattern":"^q\\.","definition":{"message-ttl":1000},"priority":7,"apply-to":"queues"}`}},
		{name: "set policy defaults", args: []string{"-q", "set_policy", "a/b", ".*", `{}`},
			replies: map[string]reply{"PUT /api/policies/%2F/a%2Fb": created},
			reqs:    []string{"PUT /api/policies/%2F/a%2Fb"},
			bodies:  []string{`{"pattern":".*","definition":{},"priority":0,"apply-to":"all"}`}},
		{name: "set policy with bad json", args: []string{"set_policy", "p", ".*", `{"ha-mode":}`},
			code: exitDataErr, stderr: "not a JSON object"},
		{name: "set policy with an array", args: []string{"set_policy", "p", ".*", `[1]`},
			code: exitDataErr, stderr: "not a JSON object"},
		{name: "clear policy", args: []string{"clear_policy", "ttl"},
			replies: map[string]reply{"DELETE /api/policies/%2F/ttl": ok},
			stdout:  "Clearing policy \"ttl\" on vhost \"/\" ...\n",
			reqs:    []string{"DELETE /api/policies/%2F/ttl"}},
		{name: "clear missing policy", args: []string{"-q", "clear_policy", "ttl"},
			code: exitSoftware, stderr: "Error:\nNo policy \"ttl\" in vhost \"/\"",
			reqs: []string{"DELETE /api/policies/%2F/ttl"}},
		{name: "set operator policy", args: []string{"set_operator_policy", "--apply-to", "queues", "cap", ".*", `{"max-length":100}`},
			replies: map[string]reply{"PUT /api/operator-policies/%2F/cap": created},
			stdout:  "Setting operator policy override \"cap\" for pattern \".*\" to \"{\"max-length\":100}\" with priority \"0\" for vhost \"/\" ...\n",
			reqs:    []string{"PUT /api/operator-policies/%2F/cap"},
			bodies:  []string{`{"pattern":".*","definition":{"max-length":100},"priority":0,"apply-to":"queues"}`}},
		{name: "clear operator policy", args: []string{"clear_operator_policy", "cap"},
			replies: map[string]reply{"DELETE /api/operator-policies/%2F/cap": ok},
			stdout:  "Clearing operator policy override \"cap\" on vhost \"/\" ...\n",
			reqs:    []string{"DELETE /api/operator-policies/%2F/cap"}},
		{name: "set vhost limits", args: []string{"set_vhost_limits", `{"max-queues": 10, "max-connections": -1}`},
			replies: map[string]reply{"PUT /api/vhost-limits/%2F/max-connections": ok, "PUT /api/vhost-limits/%2F/max-queues": ok},
			stdout:  "Setting vhost limits to \"{\"max-queues\": 10, \"max-connections\": -1}\" for vhost \"/\" ...\n",
			reqs:    []string{"PUT /api/vhost-limits/%2F/max-connections", "PUT /api/vhost-limits/%2F/max-queues"},
			bodies:  []string{`{"value":-1}`, `{"value":10}`}},
		{name: "set vhost limits not integers", args: []string{"set_vhost_limits", `{"max-queues": 1.5}`},
			code: exitDataErr, stderr: "max-queues"},
		{name: "set vhost limits not numbers", args: []string{"set_vhost_limits", `{"max-queues": "ten"}`},
			code: exitDataErr, stderr: "integer"},
		{name: "clear vhost limits", args: []string{"clear_vhost_limits", "-p", "v"},
			replies: map[string]reply{
				"GET /api/vhost-limits/v":                    {200, `[{"vhost":"v","value":{"max-queues":10,"max-connections":5}}]`},
				"DELETE /api/vhost-limits/v/max-connections": ok,
				"DELETE /api/vhost-limits/v/max-queues":      ok,
			},
			stdout: "Clearing vhost \"v\" limits ...\n",
			reqs:   []string{"GET /api/vhost-limits/v", "DELETE /api/vhost-limits/v/max-connections", "DELETE /api/vhost-limits/v/max-queues"}},
	})
}

// TestQueueConnectionAndNodeCommands checks queue, connection, definitions and node commands.
func TestQueueConnectionAndNodeCommands(t *testing.T) {
	t.Parallel()
	overview := `{"node":"warren@h","product_name":"Warren","product_version":"0.1.0","rabbitmq_version":"3.13.7","object_totals":{"connections":1,"channels":2,"exchanges":7,"queues":3,"consumers":0}}`
	nodes := `[{"name":"warren@h","uptime":61500,"mem_used":1000,"mem_limit":2000,"mem_alarm":false,"disk_free":5,"disk_free_limit":1,"disk_free_alarm":true}]`
	conns := reply{200, `[{"name":"c1"},{"name":"c2"}]`}
	runCases(t, []cmdCase{
		{name: "purge queue with escaped names", args: []string{"purge_queue", "-p", "a/b", "q%1"},
			replies: map[string]reply{"DELETE /api/queues/a%2Fb/q%251/contents": ok},
			stdout:  "Purging queue 'q%1' in vhost 'a/b' ...\n",
			reqs:    []string{"DELETE /api/queues/a%2Fb/q%251/contents"}},
		{name: "purge missing queue", args: []string{"purge_queue", "q"},
			code: exitSoftware, stdout: "Purging queue 'q' in vhost '/' ...\n", stderr: "Error:\nQueue 'q' in vhost '/' does not exist\n",
			reqs: []string{"DELETE /api/queues/%2F/q/contents"}},
		{name: "delete queue", args: []string{"delete_queue", "q"},
			replies: map[string]reply{"DELETE /api/queues/%2F/q": ok},
			stdout:  "Deleting queue 'q' on vhost '/' ...\n",
			reqs:    []string{"DELETE /api/queues/%2F/q"}},
		{name: "delete queue if empty and unused", args: []string{"delete_queue", "q", "-e", "--if-unused"},
			replies: map[string]reply{"DELETE /api/queues/%2F/q?if-empty=true&if-unused=true": ok},
			stdout:  "Deleting queue 'q' on vhost '/' if queue is empty and if queue is unused ...\n",
			reqs:    []string{"DELETE /api/queues/%2F/q?if-empty=true&if-unused=true"}},
		{name: "delete queue refused", args: []string{"-q", "delete_queue", "q", "--if-empty"},
			replies: map[string]reply{"DELETE /api/queues/%2F/q?if-empty=true": {400, `{"error":"bad_request","reason":"queue not empty"}`}},
			code:    exitSoftware, stderr: "Error:\nqueue not empty\n",
			reqs: []string{"DELETE /api/queues/%2F/q?if-empty=true"}},
		{name: "close connection", args: []string{"close_connection", "127.0.0.1:5000 -> 127.0.0.1:5672", "maintenance"},
			replies: map[string]reply{"DELETE /api/connections/127.0.0.1:5000%20-%3E%20127.0.0.1:5672": ok},
			stdout:  "Closing connection 127.0.0.1:5000 -> 127.0.0.1:5672, reason: maintenance...\n",
			reqs:    []string{"DELETE /api/connections/127.0.0.1:5000%20-%3E%20127.0.0.1:5672"}},
		{name: "close all connections of a vhost", args: []string{"close_all_connections", "bye"},
			replies: map[string]reply{"GET /api/vhosts/%2F/connections": conns, "DELETE /api/connections/c1": ok},
			stdout:  "Closing all connections to vhost /, reason: bye...\nClosed 1 connections\n",
			reqs:    []string{"GET /api/vhosts/%2F/connections", "DELETE /api/connections/c1", "DELETE /api/connections/c2"}},
		{name: "close connections globally with a limit", args: []string{"-q", "close_all_connections", "--global", "--limit", "1"},
			replies: map[string]reply{"GET /api/connections": conns, "DELETE /api/connections/c1": ok},
			reqs:    []string{"GET /api/connections", "DELETE /api/connections/c1"}},
		{name: "export definitions to stdout", args: []string{"export_definitions", "-"},
			replies: map[string]reply{"GET /api/definitions": {200, `{"rabbit_version":"3.13.7","users":[]}`}},
			stdout:  "{\n  \"rabbit_version\": \"3.13.7\",\n  \"users\": []\n}\n",
			reqs:    []string{"GET /api/definitions"}},
		{name: "import definitions from stdin", args: []string{"import_definitions", "-"}, stdin: `{"queues":[]}`,
			replies: map[string]reply{"POST /api/definitions": ok},
			stdout:  "Importing definitions in JSON from standard input ...\n",
			reqs:    []string{"POST /api/definitions"},
			bodies:  []string{`{"queues":[]}`}},
		{name: "import malformed definitions", args: []string{"import_definitions", "-"}, stdin: `{"queues":[}`,
			code: exitDataErr, stdout: "Importing definitions in JSON from standard input ...\n", stderr: "not a JSON object"},
		{name: "import missing file", args: []string{"-q", "import_definitions", "/nonexistent/defs.json"},
			code: exitDataErr, stderr: "could not read"},
		{name: "status", args: []string{"status"},
			replies: map[string]reply{"GET /api/overview": {200, overview}, "GET /api/nodes": {200, nodes}},
			stdout: "Status of node warren@h ...\nRuntime\n\nUptime (seconds): 61\nRabbitMQ version: 3.13.7\nProduct name: Warren\nProduct version: 0.1.0\n" +
				"\nAlarms\n\nFree disk space alarm on node warren@h\n" +
				"\nMemory\n\nTotal memory used (bytes): 1000\nMemory high watermark (bytes): 2000\n" +
				"\nFree Disk Space\n\nFree disk space (bytes): 5\nLow free disk space watermark (bytes): 1\n" +
				"\nTotals\n\nConnection count: 1\nChannel count: 2\nQueue count: 3\nExchange count: 7\nConsumer count: 0\n",
			reqs: []string{"GET /api/overview", "GET /api/nodes"}},
		{name: "status json", args: []string{"status", "--formatter", "json"},
			replies: map[string]reply{"GET /api/overview": {200, `{"node":"warren@h","object_totals":{"queues":3}}`}},
			stdout:  "{\n  \"node\": \"warren@h\",\n  \"object_totals\": {\n    \"queues\": 3\n  }\n}\n",
			reqs:    []string{"GET /api/overview"}},
		{name: "ping", args: []string{"-q", "ping"},
			replies: map[string]reply{"GET /api/overview": {200, overview}},
			stdout:  "Ping succeeded\n",
			reqs:    []string{"GET /api/overview"}},
		{name: "ping refused credentials", args: []string{"ping", "-q"},
			replies: map[string]reply{"GET /api/overview": {401, `{"error":"not_authorised","reason":"Login failed"}`}},
			code:    exitNoPerm, stderr: "Error:\nLogin failed\n",
			reqs: []string{"GET /api/overview"}},
		{name: "await startup", args: []string{"await_startup"},
			replies: map[string]reply{"GET /api/overview": {200, overview}},
			reqs:    []string{"GET /api/overview"}},
		{name: "await startup refused credentials", args: []string{"await_startup"},
			replies: map[string]reply{"GET /api/overview": {403, `{"error":"not_authorised","reason":"Not management user"}`}},
			code:    exitNoPerm, stderr: "Not management user",
			reqs: []string{"GET /api/overview"}},
		{name: "server error", args: []string{"-q", "list_vhosts"},
			replies: map[string]reply{"GET /api/vhosts": {500, `{"error":"internal_server_error","reason":"boom"}`}},
			code:    exitSoftware, stdout: "", stderr: "Error:\nboom\n",
			reqs: []string{"GET /api/vhosts"}},
	})
}

// TestUsage checks help output and the usage errors, which send no request.
func TestUsage(t *testing.T) {
	t.Parallel()
	runCases(t, []cmdCase{
		{name: "no arguments", args: nil, code: exitUsage, stderr: "Usage: warrenctl"},
		{name: "unknown command", args: []string{"stop_app"}, code: exitUsage, stderr: "command 'stop_app' not found"},
		{name: "not enough arguments", args: []string{"purge_queue"}, code: exitUsage,
			stderr: "not enough arguments for purge_queue\nUsage: warrenctl purge_queue [-p <vhost>] <queue>\n"},
		{name: "too many arguments", args: []string{"delete_user", "a", "b"}, code: exitUsage, stderr: "too many arguments"},
		{name: "flag of another command", args: []string{"purge_queue", "--if-empty", "q"}, code: exitUsage,
			stderr: "option --if-empty is not valid for purge_queue\nUsage: warrenctl purge_queue"},
		{name: "node flag refused", args: []string{"-n", "rabbit@h", "list_queues"}, code: exitUsage, stderr: "--url"},
		{name: "help command", args: []string{"help", "delete_queue"},
			stdout: "Usage: warrenctl delete_queue [-p <vhost>] [-e, --if-empty] [-u, --if-unused] <queue>\n\nDeletes a queue\n\nFlags:\n" +
				"  -e, --if-empty               only if the queue is empty\n" +
				"  -u, --if-unused              only if the queue has no consumers\n"},
		{name: "help of an unknown command", args: []string{"help", "nope"}, code: exitUsage, stderr: "'nope' not found"},
	})
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := runAgainst("http://127.0.0.1:1", "", args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "list_queues") || !strings.Contains(r.stdout, "await_startup") {
			t.Errorf("%q: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	r := runAgainst("ftp://not-an-api", "", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "Commands:") {
		t.Errorf("--help with a bad URL in the environment: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runAgainst("http://127.0.0.1:1", "", "list_queues", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "messages_unacknowledged") || !strings.Contains(r.stdout, "Default: name messages") {
		t.Errorf("list_queues --help: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestCredentialsAndHeaders checks basic auth from flags and environment, and the X-Reason header.
func TestCredentialsAndHeaders(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, map[string]reply{"GET /api/users": {200, `[]`}})
	var out, errOut strings.Builder
	env := envOf(map[string]string{envURL: f.srv.URL, envUsername: "env-user", envPassword: "env-pass"})
	if code := run([]string{"list_users", "--password", "flag-pass"}, env, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].user != "env-user" || reqs[0].pass != "flag-pass" {
		t.Errorf("requests = %+v, want basic auth env-user:flag-pass", reqs)
	}
	g := newFakeAPI(t, map[string]reply{"DELETE /api/connections/c": ok})
	if r := runAgainst(g.srv.URL, "", "close_connection", "c", "going away"); r.code != exitOK {
		t.Fatalf("close_connection: %+v", r)
	}
	if reqs := g.requests(); len(reqs) != 1 || reqs[0].reason != "going away" || reqs[0].user != "guest" || reqs[0].pass != "guest" {
		t.Errorf("close_connection request = %+v", reqs)
	}
}

// TestExportDefinitionsToFile checks export to a private file and import from it.
func TestExportDefinitionsToFile(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, map[string]reply{"GET /api/definitions": {200, `{"users":[{"name":"guest"}]}`}})
	path := filepath.Join(t.TempDir(), "defs.json")
	r := runAgainst(f.srv.URL, "", "export_definitions", path)
	if r.code != exitOK || r.stdout != "Exporting definitions in JSON to a file at \""+path+"\" ...\n" {
		t.Fatalf("export: %+v", r)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"users\": [\n    {\n      \"name\": \"guest\"\n    }\n  ]\n}\n"; string(data) != want {
		t.Errorf("file = %q, want %q", data, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	r = runAgainst(f.srv.URL, "", "export_definitions", filepath.Join(path, "below-a-file.json"))
	if r.code != exitDataErr {
		t.Errorf("export below a file: %+v", r)
	}

	g := newFakeAPI(t, map[string]reply{"POST /api/definitions": ok})
	r = runAgainst(g.srv.URL, "", "import_definitions", path)
	if r.code != exitOK || r.stdout != "Importing definitions in JSON from a file at \""+path+"\" ...\n" {
		t.Fatalf("import: %+v", r)
	}
	if reqs := g.requests(); len(reqs) != 1 || !sameJSON(reqs[0].body, string(data)) {
		t.Errorf("import requests = %+v", reqs)
	}
}

// TestNodeUnreachable checks exit 69 for a closed port, and await_startup giving up.
func TestNodeUnreachable(t *testing.T) {
	t.Parallel()
	url := closedURL(t)
	r := runAgainst(url, "", "list_queues")
	if r.code != exitUnavailable || !strings.Contains(r.stderr, "unable to connect to the node at "+url) {
		t.Errorf("list_queues against a closed port: %+v", r)
	}
	r = runAgainst(url, "", "await_startup", "--timeout", "0.1")
	if r.code != exitUnavailable || !strings.Contains(r.stderr, "did not start within 100ms") {
		t.Errorf("await_startup against a closed port: %+v", r)
	}
}

// TestRequestTimeout checks exit 75 when the API does not answer within --timeout.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answer only when the client gives up
	}))
	t.Cleanup(srv.Close)
	r := runAgainst(srv.URL, "", "-t", "0.05", "list_queues")
	if r.code != exitTempFail || !strings.Contains(r.stderr, "timed out") {
		t.Errorf("list_queues against a silent server: %+v", r)
	}
}
