package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// ctlResult is what one warrenctl run printed and exited with.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// runCtl runs the warrenctl binary with args, env added to an environment
// without WARREN_* variables, and stdin as standard input.
func runCtl(t testing.TB, env []string, stdin string, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, warrenctlBinary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARREN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
	default:
		t.Fatalf("warrenctl %q: %v", args, err)
	}
	return ctlResult{out.String(), errOut.String(), cmd.ProcessState.ExitCode()}
}

// ctl runs warrenctl against b's management API (--url).
func (b *broker) ctl(t testing.TB, args ...string) ctlResult {
	t.Helper()
	return runCtl(t, nil, "", append([]string{"--url", "http://" + b.MgmtAddr}, args...)...)
}

// ctlOK runs warrenctl against b, fails unless it exits 0 with nothing on
// standard error, and returns its standard output.
func (b *broker) ctlOK(t testing.TB, args ...string) string {
	t.Helper()
	r := b.ctl(t, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("warrenctl %q: exit %d, stderr %q, stdout %q", args, r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// ctlFails runs warrenctl against b, fails unless it exits with code and
// standard error holds want, and returns standard error.
func (b *broker) ctlFails(t testing.TB, code int, want string, args ...string) string {
	t.Helper()
	r := b.ctl(t, args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Fatalf("warrenctl %q: exit %d stderr %q, want exit %d and %q", args, r.code, r.stderr, code, want)
	}
	return r.stderr
}

// ctlTable runs a list command quietly and returns its header row and data
// rows.
func (b *broker) ctlTable(t testing.TB, args ...string) (string, []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(b.ctlOK(t, append([]string{"-q"}, args...)...), "\n"), "\n")
	return lines[0], lines[1:]
}

// ctlRows is ctlTable's data rows, after checking the header.
func (b *broker) ctlRows(t testing.TB, header string, args ...string) []string {
	t.Helper()
	h, rows := b.ctlTable(t, args...)
	if h != header {
		t.Fatalf("warrenctl %q: header %q, want %q", args, h, header)
	}
	return rows
}

// ctlJSON runs a list command with --formatter json and decodes the array.
func (b *broker) ctlJSON(t testing.TB, args ...string) []map[string]any {
	t.Helper()
	out := b.ctlOK(t, append([]string{"--formatter", "json"}, args...)...)
	var objs []map[string]any
	if err := json.Unmarshal([]byte(out), &objs); err != nil {
		t.Fatalf("warrenctl %q: output is not a JSON array: %v\n%s", args, err, out)
	}
	return objs
}

// getAPI GETs path from b's API as guest, expecting 200, and decodes it.
func (b *broker) getAPI(t testing.TB, path string, into any) {
	t.Helper()
	status, body := b.api(t, "GET", path, nil)
	if status != 200 {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// statusOf is the status of GET path as guest.
func (b *broker) statusOf(t testing.TB, path string) int {
	t.Helper()
	status, _ := b.api(t, "GET", path, nil)
	return status
}

// amqpLogin opens an amqp091-go connection as user to vhost, closed at the
// end of the test.
func amqpLogin(b *broker, user, pass, vhost string) (*amqp091.Connection, error) {
	u := fmt.Sprintf("amqp://%s:%s@%s/%s", url.PathEscape(user), url.PathEscape(pass), b.Addr, url.PathEscape(vhost))
	return amqp091.Dial(u)
}

// mustLogin is amqpLogin that fails the test on error.
func mustLogin(t testing.TB, b *broker, user, pass, vhost string) *amqp091.Connection {
	t.Helper()
	conn, err := amqpLogin(b, user, pass, vhost)
	if err != nil {
		t.Fatalf("connecting as %s to vhost %q: %v", user, vhost, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// unusedAddr is the address of a loopback port nothing listens on.
func unusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ctlConnName finds the name the API gives conn, by its client port.
func ctlConnName(t testing.TB, b *broker, conn *amqp091.Connection) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(conn.LocalAddr().String())
	for _, c := range b.ctlJSON(t, "list_connections", "name", "peer_port") {
		if fmt.Sprint(c["peer_port"]) == port {
			return c["name"].(string)
		}
	}
	t.Fatalf("no connection from port %s in list_connections", port)
	return ""
}

// TestWarrenctl runs every warrenctl command against a real broker and
// checks its output, its exit code and its effect, seen through the
// management API or AMQP.
func TestWarrenctl(t *testing.T) {
	b := startBroker(t)
	conn, ch := dialChannel(t, b)
	declareQueue(t, ch, "ctl-q", false, nil)
	declareQueue(t, ch, "ctl-c", false, nil)
	bind(t, ch, "ctl-q", "amq.direct", "ctl-key")
	for range 3 {
		publish(t, ch, "", "ctl-q", "m")
	}
	if q, err := ch.QueueDeclarePassive("ctl-q", false, false, false, false, nil); err != nil || q.Messages != 3 {
		t.Fatalf("ctl-q: %+v %v, want 3 messages", q, err)
	}
	if _, err := ch.Consume("ctl-c", "ctl-tag", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	t.Run("lists", func(t *testing.T) {
		cases := []struct {
			args   []string
			header string
			rows   []string // each must be a row
			exact  bool     // and they are all the rows, in order
		}{
			{[]string{"list_queues"}, "name\tmessages", []string{"ctl-q\t3", "ctl-c\t0"}, false},
			{[]string{"list_queues", "name", "messages", "consumers", "durable"}, "name\tmessages\tconsumers\tdurable",
				[]string{"ctl-q\t3\t0\tfalse", "ctl-c\t0\t1\tfalse"}, false},
			{[]string{"list_exchanges"}, "name\ttype", []string{"\tdirect", "amq.direct\tdirect", "amq.fanout\tfanout", "amq.topic\ttopic", "amq.headers\theaders"}, false},
			{[]string{"list_bindings"}, "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments",
				[]string{"\texchange\tctl-q\tqueue\tctl-q\t{}", "amq.direct\texchange\tctl-q\tqueue\tctl-key\t{}"}, false},
			{[]string{"list_connections", "user", "vhost", "state", "channels"}, "user\tvhost\tstate\tchannels", []string{"guest\t/\trunning\t1"}, true},
			{[]string{"list_channels", "user", "vhost", "number", "consumer_count"}, "user\tvhost\tnumber\tconsumer_count", []string{"guest\t/\t1\t1"}, true},
			{[]string{"list_consumers", "queue_name", "consumer_tag", "ack_required"}, "queue_name\tconsumer_tag\tack_required", []string{"ctl-c\tctl-tag\ttrue"}, true},
			{[]string{"list_users"}, "user\ttags", []string{"guest\t[administrator]"}, true},
			{[]string{"list_vhosts"}, "name", []string{"/"}, true},
			{[]string{"list_permissions", "-p", "/"}, "user\tconfigure\twrite\tread", []string{"guest\t.*\t.*\t.*"}, true},
			{[]string{"list_user_permissions", "guest"}, "vhost\tconfigure\twrite\tread", []string{"/\t.*\t.*\t.*"}, true},
			{[]string{"list_policies"}, "vhost\tname\tpattern\tapply-to\tdefinition\tpriority", nil, true},
			{[]string{"list_operator_policies"}, "vhost\tname\tpattern\tapply-to\tdefinition\tpriority", nil, true},
			{[]string{"list_topic_permissions"}, "user\texchange\twrite\tread", nil, true},
		}
		for _, c := range cases {
			rows := b.ctlRows(t, c.header, c.args...)
			if c.exact && !slices.Equal(rows, c.rows) && !(len(rows) == 0 && len(c.rows) == 0) {
				t.Errorf("warrenctl %q: rows %q, want exactly %q", c.args, rows, c.rows)
			}
			for _, want := range c.rows {
				if !slices.Contains(rows, want) {
					t.Errorf("warrenctl %q: rows %q lack %q", c.args, rows, want)
				}
			}
		}
		// A channel's pid is the name list_consumers gives it.
		pid := b.ctlRows(t, "pid", "list_channels", "pid")
		if cons := b.ctlRows(t, "channel_pid", "list_consumers", "channel_pid"); !slices.Equal(pid, cons) || len(pid) != 1 {
			t.Errorf("list_channels pid %q, list_consumers channel_pid %q", pid, cons)
		}
	})

	t.Run("output modes", func(t *testing.T) {
		lines := func(args ...string) []string {
			return strings.Split(strings.TrimSuffix(b.ctlOK(t, args...), "\n"), "\n")
		}
		const banner, header = "Listing queues for vhost / ...", "name\tmessages"
		if got := lines("list_queues"); len(got) != 4 || got[0] != banner || got[1] != header {
			t.Errorf("default: %q", got)
		}
		for _, quiet := range [][]string{{"-q", "list_queues"}, {"list_queues", "--quiet"}} {
			if got := lines(quiet...); len(got) != 3 || got[0] != header {
				t.Errorf("%q: %q", quiet, got)
			}
		}
		if got := lines("list_queues", "--no-table-headers"); len(got) != 3 || got[0] != banner || got[1] == header {
			t.Errorf("--no-table-headers: %q", got)
		}
		for _, silent := range [][]string{{"-s", "list_queues"}, {"-q", "--no-table-headers", "list_queues"}} {
			if got := lines(silent...); len(got) != 2 || !slices.Contains(got, "ctl-q\t3") {
				t.Errorf("%q: %q", silent, got)
			}
		}
		objs := b.ctlJSON(t, "list_queues", "name", "messages", "consumers")
		want := map[string][2]float64{"ctl-q": {3, 0}, "ctl-c": {0, 1}}
		if len(objs) != len(want) {
			t.Fatalf("json: %v", objs)
		}
		for _, o := range objs {
			w, ok := want[o["name"].(string)]
			if !ok || len(o) != 3 || o["messages"] != w[0] || o["consumers"] != w[1] {
				t.Errorf("json object %v, want %v", o, want)
			}
		}
		if objs := b.ctlJSON(t, "list_users"); len(objs) != 1 || objs[0]["user"] != "guest" || fmt.Sprint(objs[0]["tags"]) != "[administrator]" {
			t.Errorf("list_users json: %v", objs)
		}
	})

	t.Run("url from the environment", func(t *testing.T) {
		env := []string{"WARREN_MGMT_URL=http://" + b.MgmtAddr}
		if r := runCtl(t, env, "", "-q", "list_vhosts"); r.code != 0 || r.stdout != "name\n/\n" {
			t.Errorf("WARREN_MGMT_URL: %+v", r)
		}
		// Credentials: in the URL, then refused ones from the environment.
		if r := runCtl(t, nil, "", "--url", "http://guest:guest@"+b.MgmtAddr, "ping"); r.code != 0 {
			t.Errorf("credentials in the URL: %+v", r)
		}
		if r := runCtl(t, append(env, "WARREN_MGMT_PASSWORD=wrong"), "", "ping"); r.code != 77 {
			t.Errorf("wrong password: %+v, want exit 77", r)
		}
	})

	t.Run("users", func(t *testing.T) {
		if out := b.ctlOK(t, "add_user", "ctl-u", "pw-1"); !strings.HasPrefix(out, `Adding user "ctl-u" ...`) {
			t.Errorf("add_user printed %q", out)
		}
		b.ctlFails(t, 70, `User "ctl-u" already exists`, "add_user", "ctl-u", "pw-x")
		b.ctlOK(t, "set_permissions", "ctl-u", ".*", ".*", ".*")
		mustLogin(t, b, "ctl-u", "pw-1", "/")

		b.ctlOK(t, "change_password", "ctl-u", "pw-2")
		mustLogin(t, b, "ctl-u", "pw-2", "/")
		_, err := amqpLogin(b, "ctl-u", "pw-1", "/")
		expectCode(t, err, amqp091.AccessRefused, "") // amqp091-go's own text, "username or password not allowed"

		b.ctlOK(t, "set_user_tags", "ctl-u", "monitoring", "policymaker")
		if rows := b.ctlRows(t, "user\ttags", "list_users"); !slices.Contains(rows, "ctl-u\t[monitoring, policymaker]") {
			t.Errorf("list_users after set_user_tags: %q", rows)
		}
		var u struct{ Tags []string }
		b.getAPI(t, "/api/users/ctl-u", &u)
		if !slices.Equal(u.Tags, []string{"monitoring", "policymaker"}) {
			t.Errorf("API tags %q", u.Tags)
		}
		mustLogin(t, b, "ctl-u", "pw-2", "/") // the tags kept the password

		// A password on standard input, as rabbitmqctl reads it.
		if r := runCtl(t, nil, "pw-s\n", "--url", "http://"+b.MgmtAddr, "add_user", "ctl-s"); r.code != 0 {
			t.Fatalf("add_user from stdin: %+v", r)
		}
		b.ctlOK(t, "set_permissions", "ctl-s", "", "", "")
		mustLogin(t, b, "ctl-s", "pw-s", "/")
		b.ctlOK(t, "delete_user", "ctl-s")
		if s := b.statusOf(t, "/api/users/ctl-s"); s != 404 {
			t.Errorf("deleted user: GET %d", s)
		}
		if _, err := amqpLogin(b, "ctl-s", "pw-s", "/"); err == nil {
			t.Error("a deleted user logged in")
		}
		b.ctlFails(t, 67, `User "ctl-s" does not exist`, "delete_user", "ctl-s")
		b.ctlFails(t, 67, `User "nobody" does not exist`, "change_password", "nobody", "x")
		b.ctlFails(t, 67, `User "nobody" does not exist`, "set_user_tags", "nobody", "x")
	})

	t.Run("permissions", func(t *testing.T) {
		b.ctlOK(t, "add_user", "ctl-p", "pw")
		b.ctlOK(t, "set_permissions", "-p", "/", "ctl-p", "^ctl-p-", "^w$", "^r$")
		if rows := b.ctlRows(t, "user\tconfigure\twrite\tread", "list_permissions"); !slices.Contains(rows, "ctl-p\t^ctl-p-\t^w$\t^r$") {
			t.Errorf("list_permissions: %q", rows)
		}
		if rows := b.ctlRows(t, "vhost\tconfigure\twrite\tread", "list_user_permissions", "ctl-p"); !slices.Equal(rows, []string{"/\t^ctl-p-\t^w$\t^r$"}) {
			t.Errorf("list_user_permissions: %q", rows)
		}
		pc := mustLogin(t, b, "ctl-p", "pw", "/")
		pch := openChannel(t, pc)
		declareQueue(t, pch, "ctl-p-ok", false, nil)
		_, err := pch.QueueDeclare("other", false, false, false, false, nil)
		expectCode(t, err, amqp091.AccessRefused, "ACCESS_REFUSED - access to queue 'other' in vhost '/' refused for user 'ctl-p'")

		b.ctlOK(t, "clear_permissions", "ctl-p")
		if rows := b.ctlRows(t, "user\tconfigure\twrite\tread", "list_permissions"); slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, "ctl-p\t") }) {
			t.Errorf("list_permissions after clear_permissions: %q", rows)
		}
		_, err = amqpLogin(b, "ctl-p", "pw", "/")
		expectCode(t, err, amqp091.NotAllowed, "NOT_ALLOWED - access to vhost '/' refused for user 'ctl-p'")
		b.ctlFails(t, 70, `User "ctl-p" has no permissions in vhost "/"`, "clear_permissions", "ctl-p")

		// Topic permissions, on two exchanges; clearing one keeps the other.
		b.ctlOK(t, "set_topic_permissions", "ctl-p", "amq.topic", "^{username}\\.", "^r\\.")
		b.ctlOK(t, "set_topic_permissions", "-p", "/", "ctl-p", "ctl-topic", "^w", "^r")
		wantTopic := []string{"ctl-p\tamq.topic\t^{username}\\.\t^r\\.", "ctl-p\tctl-topic\t^w\t^r"}
		if rows := b.ctlRows(t, "user\texchange\twrite\tread", "list_topic_permissions"); !slices.Equal(rows, wantTopic) {
			t.Errorf("list_topic_permissions: %q, want %q", rows, wantTopic)
		}
		if rows := b.ctlRows(t, "vhost\texchange\twrite\tread", "list_user_topic_permissions", "ctl-p"); len(rows) != 2 || rows[0] != "/\tamq.topic\t^{username}\\.\t^r\\." {
			t.Errorf("list_user_topic_permissions: %q", rows)
		}
		b.ctlOK(t, "clear_topic_permissions", "ctl-p", "amq.topic")
		var tps []struct{ Exchange string }
		b.getAPI(t, "/api/topic-permissions/%2F/ctl-p", &tps)
		if len(tps) != 1 || tps[0].Exchange != "ctl-topic" {
			t.Errorf("topic permissions after clearing amq.topic's: %+v", tps)
		}
		b.ctlOK(t, "clear_topic_permissions", "ctl-p")
		if s := b.statusOf(t, "/api/topic-permissions/%2F/ctl-p"); s != 404 {
			t.Errorf("topic permissions after clear_topic_permissions: GET %d", s)
		}
	})

	t.Run("vhosts", func(t *testing.T) {
		b.ctlOK(t, "add_vhost", "ctl-v", "--description", "for warrenctl", "--tags", "a,b")
		if rows := b.ctlRows(t, "name\tdescription\ttags", "list_vhosts", "name", "description", "tags"); !slices.Contains(rows, "ctl-v\tfor warrenctl\t[a, b]") {
			t.Errorf("list_vhosts: %q", rows)
		}
		b.ctlOK(t, "set_permissions", "-p", "ctl-v", "guest", ".*", ".*", ".*")
		if rows := b.ctlRows(t, "user\tconfigure\twrite\tread", "list_permissions", "-p", "ctl-v"); !slices.Equal(rows, []string{"guest\t.*\t.*\t.*"}) {
			t.Errorf("list_permissions -p ctl-v: %q", rows)
		}
		vc := mustLogin(t, b, "guest", "guest", "ctl-v")
		closed := vc.NotifyClose(make(chan *amqp091.Error, 1))
		vch := openChannel(t, vc)
		declareQueue(t, vch, "ctl-vq", true, nil)
		if rows := b.ctlRows(t, "name\tmessages", "list_queues", "-p", "ctl-v"); !slices.Equal(rows, []string{"ctl-vq\t0"}) {
			t.Errorf("list_queues -p ctl-v: %q", rows)
		}

		b.ctlOK(t, "delete_vhost", "ctl-v")
		expectClose(t, closed, amqp091.ConnectionForced, "CONNECTION_FORCED - vhost 'ctl-v' is deleted")
		if s := b.statusOf(t, "/api/vhosts/ctl-v"); s != 404 {
			t.Errorf("deleted vhost: GET %d", s)
		}
		if s := b.statusOf(t, "/api/queues/ctl-v/ctl-vq"); s != 404 {
			t.Errorf("queue of a deleted vhost: GET %d", s)
		}
		b.ctlFails(t, 65, `Virtual host "ctl-v" does not exist`, "delete_vhost", "ctl-v")
		b.ctlFails(t, 70, "", "list_queues", "-p", "ctl-v")
	})

	t.Run("vhost limits", func(t *testing.T) {
		b.ctlOK(t, "add_vhost", "ctl-lim")
		b.ctlOK(t, "set_permissions", "-p", "ctl-lim", "guest", ".*", ".*", ".*")
		b.ctlOK(t, "set_vhost_limits", "-p", "ctl-lim", `{"max-connections": 1, "max-queues": 5}`)
		var limits []struct{ Value map[string]float64 }
		b.getAPI(t, "/api/vhost-limits/ctl-lim", &limits)
		if len(limits) != 1 || limits[0].Value["max-connections"] != 1 || limits[0].Value["max-queues"] != 5 {
			t.Errorf("limits: %+v", limits)
		}
		mustLogin(t, b, "guest", "guest", "ctl-lim")
		_, err := amqpLogin(b, "guest", "guest", "ctl-lim")
		expectCode(t, err, amqp091.NotAllowed, "NOT_ALLOWED - access to vhost 'ctl-lim' refused for user 'guest': connection limit (1) is reached")
		b.ctlOK(t, "clear_vhost_limits", "-p", "ctl-lim")
		mustLogin(t, b, "guest", "guest", "ctl-lim")
		b.ctlFails(t, 65, "", "set_vhost_limits", "-p", "ctl-lim", `{"max-connections": `)
	})

	t.Run("policies", func(t *testing.T) {
		def := `{"max-length":1}`
		b.ctlOK(t, "set_policy", "-p", "/", "--priority", "5", "--apply-to", "queues", "ctl-pol", "^ctl-q$", def)
		want := "/\tctl-pol\t^ctl-q$\tqueues\t" + def + "\t5"
		if rows := b.ctlRows(t, "vhost\tname\tpattern\tapply-to\tdefinition\tpriority", "list_policies"); !slices.Equal(rows, []string{want}) {
			t.Errorf("list_policies: %q, want %q", rows, want)
		}
		// The policy applies at once: ctl-q (drop-head) keeps its newest message.
		if rows := b.ctlRows(t, "name\tpolicy\tmessages", "list_queues", "name", "policy", "messages"); !slices.Contains(rows, "ctl-q\tctl-pol\t1") || !slices.Contains(rows, "ctl-c\t\t0") {
			t.Errorf("list_queues under the policy: %q", rows)
		}
		b.ctlOK(t, "set_operator_policy", "--apply-to", "queues", "ctl-op", "^ctl-c$", `{"max-length":0}`)
		if rows := b.ctlRows(t, "vhost\tname\tpattern\tapply-to\tdefinition\tpriority", "list_operator_policies"); !slices.Equal(rows, []string{"/\tctl-op\t^ctl-c$\tqueues\t{\"max-length\":0}\t0"}) {
			t.Errorf("list_operator_policies: %q", rows)
		}
		var q struct {
			OperatorPolicy string `json:"operator_policy"`
		}
		b.getAPI(t, "/api/queues/%2F/ctl-c", &q)
		if q.OperatorPolicy != "ctl-op" {
			t.Errorf("ctl-c operator_policy %q", q.OperatorPolicy)
		}
		b.ctlOK(t, "clear_operator_policy", "ctl-op")
		b.ctlOK(t, "clear_policy", "ctl-pol")
		for _, cmd := range []string{"list_policies", "list_operator_policies"} {
			if _, rows := b.ctlTable(t, cmd); len(rows) != 0 {
				t.Errorf("%s after clearing: %q", cmd, rows)
			}
		}
		if rows := b.ctlRows(t, "name\tpolicy", "list_queues", "name", "policy"); !slices.Contains(rows, "ctl-q\t") {
			t.Errorf("list_queues after clear_policy: %q", rows)
		}
		b.ctlFails(t, 70, `No policy "ctl-pol" in vhost "/"`, "clear_policy", "ctl-pol")
		b.ctlFails(t, 65, "not a JSON object", "set_policy", "bad", ".*", `{"max-length":`)
		b.ctlFails(t, 70, "not recognised", "set_policy", "bad", ".*", `{"no-such-key":1}`)
	})

	t.Run("queues", func(t *testing.T) {
		for range 2 {
			publish(t, ch, "", "ctl-q", "m")
		}
		waitFor(t, 10*time.Second, func() error {
			if rows := b.ctlRows(t, "name\tmessages", "list_queues"); !slices.Contains(rows, "ctl-q\t3") {
				return fmt.Errorf("list_queues %q", rows)
			}
			return nil
		})
		b.ctlFails(t, 70, "", "delete_queue", "--if-empty", "ctl-q")
		b.ctlOK(t, "purge_queue", "ctl-q")
		var q struct{ Messages int }
		b.getAPI(t, "/api/queues/%2F/ctl-q", &q)
		if q.Messages != 0 {
			t.Errorf("ctl-q after purge_queue: %d messages", q.Messages)
		}
		b.ctlFails(t, 70, "", "delete_queue", "-u", "ctl-c") // it has a consumer
		b.ctlOK(t, "delete_queue", "--if-empty", "ctl-q")
		if s := b.statusOf(t, "/api/queues/%2F/ctl-q"); s != 404 {
			t.Errorf("deleted queue: GET %d", s)
		}
		b.ctlFails(t, 70, "Queue 'ctl-q' in vhost '/' does not exist", "delete_queue", "ctl-q")
		b.ctlFails(t, 70, "Queue 'ctl-q' in vhost '/' does not exist", "purge_queue", "ctl-q")
	})

	t.Run("connections", func(t *testing.T) {
		other := dial(t, b)
		closed := other.NotifyClose(make(chan *amqp091.Error, 1))
		name := ctlConnName(t, b, other)
		if rows := b.ctlRows(t, "pid", "list_connections", "pid"); !slices.Contains(rows, name) {
			t.Errorf("list_connections pid %q lacks %q", rows, name)
		}
		b.ctlOK(t, "close_connection", name, "go away now")
		expectClose(t, closed, amqp091.ConnectionForced, "CONNECTION_FORCED - go away now")
		b.ctlFails(t, 70, "does not exist", "close_connection", name, "again")

		// close_all_connections: those of a vhost, then all (--global).
		b.ctlOK(t, "add_vhost", "ctl-v2")
		b.ctlOK(t, "set_permissions", "-p", "ctl-v2", "guest", ".*", ".*", ".*")
		inV2 := mustLogin(t, b, "guest", "guest", "ctl-v2")
		v2Closed := inV2.NotifyClose(make(chan *amqp091.Error, 1))
		mainClosed := conn.NotifyClose(make(chan *amqp091.Error, 1))
		b.ctlOK(t, "close_all_connections", "-p", "ctl-v2", "v2 maintenance")
		expectClose(t, v2Closed, amqp091.ConnectionForced, "CONNECTION_FORCED - v2 maintenance")
		if conn.IsClosed() {
			t.Fatal("close_all_connections -p ctl-v2 closed a connection to /")
		}
		b.ctlOK(t, "close_all_connections", "--global")
		expectClose(t, mainClosed, amqp091.ConnectionForced, "CONNECTION_FORCED - Closed via warrenctl")
		waitFor(t, 10*time.Second, func() error {
			if _, rows := b.ctlTable(t, "list_connections"); len(rows) != 0 {
				return fmt.Errorf("list_connections %q", rows)
			}
			return nil
		})
	})

	t.Run("definitions", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "defs.json")
		b.ctlOK(t, "add_vhost", "ctl-def")
		b.ctlOK(t, "set_permissions", "-p", "ctl-def", "ctl-u", "^d", "", "")
		b.ctlOK(t, "set_policy", "-p", "ctl-def", "ctl-def-pol", "^d", `{"message-ttl":1000}`)
		if status, body := b.api(t, "PUT", "/api/queues/ctl-def/ctl-def-q", map[string]any{"durable": true}); status != 201 && status != 204 {
			t.Fatalf("PUT queue: %d %s", status, body)
		}
		b.ctlOK(t, "export_definitions", file)
		info, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("exported file mode %v", info.Mode().Perm())
		}
		var defs struct {
			Users    []struct{ Name string }
			Queues   []struct{ Name, VHost string }
			Policies []struct{ Name string }
		}
		data, _ := os.ReadFile(file)
		if err := json.Unmarshal(data, &defs); err != nil {
			t.Fatalf("exported file: %v\n%s", err, data)
		}
		if !slices.ContainsFunc(defs.Users, func(u struct{ Name string }) bool { return u.Name == "ctl-u" }) ||
			!slices.ContainsFunc(defs.Queues, func(q struct{ Name, VHost string }) bool { return q.Name == "ctl-def-q" && q.VHost == "ctl-def" }) ||
			len(defs.Policies) != 1 || defs.Policies[0].Name != "ctl-def-pol" {
			t.Errorf("exported definitions lack what was made: %+v", defs)
		}
		if out := b.ctlOK(t, "export_definitions", "-"); !json.Valid([]byte(out)) || !strings.Contains(out, `"ctl-def-q"`) {
			t.Errorf("export_definitions -: %q", out)
		}

		b.ctlOK(t, "delete_vhost", "ctl-def")
		b.ctlOK(t, "delete_user", "ctl-u")
		b.ctlOK(t, "import_definitions", file)
		for _, path := range []string{"/api/vhosts/ctl-def", "/api/users/ctl-u", "/api/queues/ctl-def/ctl-def-q",
			"/api/policies/ctl-def/ctl-def-pol", "/api/permissions/ctl-def/ctl-u"} {
			if s := b.statusOf(t, path); s != 200 {
				t.Errorf("after import_definitions: GET %s %d", path, s)
			}
		}
		mustLogin(t, b, "ctl-u", "pw-2", "ctl-def") // the password hash came back too

		// From standard input, and bad input.
		r := runCtl(t, nil, `{"vhosts":[{"name":"ctl-stdin"}]}`, "--url", "http://"+b.MgmtAddr, "import_definitions", "-")
		if r.code != 0 || b.statusOf(t, "/api/vhosts/ctl-stdin") != 200 {
			t.Errorf("import_definitions -: %+v", r)
		}
		bad := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(bad, []byte(`{"vhosts": [`), 0o600); err != nil {
			t.Fatal(err)
		}
		b.ctlFails(t, 65, "", "import_definitions", bad)
		b.ctlFails(t, 65, "", "import_definitions", filepath.Join(dir, "missing.json"))
	})

	t.Run("node", func(t *testing.T) {
		out := b.ctlOK(t, "status")
		for _, want := range []string{"Status of node ", "RabbitMQ version: 3.13.7", "Product name: Warren", "Alarms\n\n(none)", "Queue count: "} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		var ov map[string]any
		if out := b.ctlOK(t, "status", "--formatter", "json"); json.Unmarshal([]byte(out), &ov) != nil || ov["product_name"] != "Warren" {
			t.Errorf("status --formatter json: %q", out)
		}
		if out := b.ctlOK(t, "ping"); !strings.HasSuffix(out, "Ping succeeded\n") {
			t.Errorf("ping: %q", out)
		}
		if out := b.ctlOK(t, "ping", "--formatter", "json"); out != `{"result":"ok"}`+"\n" {
			t.Errorf("ping json: %q", out)
		}
		if out := b.ctlOK(t, "await_startup", "-q"); out != "" {
			t.Errorf("await_startup: %q", out)
		}
		if out := b.ctlOK(t, "help"); !strings.Contains(out, "list_queues") || !strings.Contains(out, "await_startup") {
			t.Errorf("help: %q", out)
		}
		if out := b.ctlOK(t, "help", "set_policy"); !strings.Contains(out, "--priority") {
			t.Errorf("help set_policy: %q", out)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		down := "http://" + unusedAddr(t)
		cases := []struct {
			args []string
			code int
		}{
			{[]string{"no_such_command"}, 64},
			{[]string{"help", "no_such_command"}, 64},
			{[]string{"delete_user"}, 64},
			{[]string{"delete_user", "a", "b"}, 64},
			{[]string{"set_permissions", "u", ".*", ".*"}, 64},
			{[]string{"list_queues", "no_such_column"}, 64},
			{[]string{"list_queues", "--no-such-flag"}, 64},
			{[]string{"list_queues", "--priority", "1"}, 64}, // another command's flag
			{[]string{"-n", "rabbit@host", "list_queues"}, 64},
			{[]string{"--formatter", "xml", "list_queues"}, 64},
			{[]string{"set_policy", "p", ".*", "[1]"}, 65},
			{[]string{"delete_queue", "no-such-queue"}, 70},
			{[]string{"delete_vhost", "no-such-vhost"}, 65},
			{[]string{"--password", "wrong", "list_queues"}, 77},
			{[]string{"--url", down, "list_queues"}, 69},
			{[]string{"--url", down, "ping"}, 69},
			{[]string{"--url", down, "-t", "0.5", "await_startup"}, 69},
		}
		for _, c := range cases {
			r := b.ctl(t, c.args...) // a later --url wins over the first
			if r.code != c.code {
				t.Errorf("warrenctl %q: exit %d, want %d (stderr %q)", c.args, r.code, c.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "Error") {
				t.Errorf("warrenctl %q: stderr %q, want an Error: line", c.args, r.stderr)
			}
		}
		if r := b.ctl(t, "--url", down, "list_queues"); !strings.Contains(r.stderr, "unable to connect to the node at "+down) {
			t.Errorf("unreachable: %q", r.stderr)
		}
	})
}
