package e2e

// End-to-end tests of the operator's surface against the real binary:
// Debian's rabbitmqadmin unchanged, a RabbitMQ 3.x definitions file,
// the Prometheus endpoints and bad HTTP input.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// ---- helpers ----

// mgmtCall sends a request as guest, checks the status and decodes the
// body (when out is not nil).
func (b *broker) mgmtCall(t testing.TB, method, path string, body any, want int, out any) {
	t.Helper()
	status, data := b.api(t, method, path, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v; body %s", method, path, err, data)
		}
	}
}

// mgmtDo sends req to the management listener and returns the status,
// the header and the body.
func (b *broker) mgmtDo(t testing.TB, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

// mgmtDial opens an AMQP connection as user to vhost (closed at the end of
// the test), or returns the error.
func mgmtDial(t testing.TB, b *broker, user, pass, vhost string) (*amqp091.Connection, error) {
	t.Helper()
	conn, err := amqp091.DialConfig("amqp://"+b.Addr+"/", amqp091.Config{
		SASL:  []amqp091.Authentication{&amqp091.PlainAuth{Username: user, Password: pass}},
		Vhost: vhost,
	})
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, err
}

// ---- 1. rabbitmqadmin ----

// rabbitmqadminPath finds Debian's rabbitmqadmin; its absence fails the
// test, since `make deps` installs it.
func rabbitmqadminPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("rabbitmqadmin"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/rabbitmqadmin", "/usr/bin/rabbitmqadmin"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("rabbitmqadmin not found on PATH nor in /usr/sbin: `make deps` installs it (Debian's rabbitmq-server package)")
	return ""
}

// rabbitmqadmin runs rabbitmqadmin as guest against b's management API
// and returns its standard output; a failure fails the test.
func rabbitmqadmin(t testing.TB, b *broker, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(b.MgmtAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rabbitmqadminPath(t),
		append([]string{"-H", host, "-P", port, "-u", "guest", "-p", "guest"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rabbitmqadmin %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// rabbitmqadminJSON runs rabbitmqadmin with -f raw_json and decodes its
// output.
func rabbitmqadminJSON(t testing.TB, b *broker, args ...string) []map[string]any {
	t.Helper()
	out := rabbitmqadmin(t, b, append([]string{"-f", "raw_json"}, args...)...)
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("rabbitmqadmin %v: output is not a JSON list: %v\n%s", args, err, out)
	}
	return items
}

// rabbitmqadminTSV runs rabbitmqadmin with -f tsv and returns its rows as
// maps from the header's column names.
func rabbitmqadminTSV(t testing.TB, b *broker, args ...string) []map[string]string {
	t.Helper()
	out := rabbitmqadmin(t, b, append([]string{"-f", "tsv"}, args...)...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatalf("rabbitmqadmin %v: no header in\n%s", args, out)
	}
	header := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[1:] {
		cells := strings.Split(l, "\t")
		if len(cells) != len(header) {
			t.Fatalf("rabbitmqadmin %v: row %q has %d cells, header %d", args, l, len(cells), len(header))
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = cells[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// findItem returns the first item whose fields equal want's, or nil.
func findItem[M ~map[string]V, V any](items []M, want map[string]V) M {
	for _, it := range items {
		ok := true
		for k, v := range want {
			if !reflect.DeepEqual(it[k], v) {
				ok = false
				break
			}
		}
		if ok {
			return it
		}
	}
	return nil
}

func TestRabbitmqadmin(t *testing.T) {
	rabbitmqadminPath(t)
	b := startBroker(t)
	conn, ch := dialChannel(t, b)
	// expectLen waits until a queue holds n messages (counted on this
	// test's channel).
	expectLen := func(name string, n int) {
		t.Helper()
		waitFor(t, 10*time.Second, func() error {
			q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if q.Messages != n {
				return fmt.Errorf("%s has %d messages, want %d", name, q.Messages, n)
			}
			return nil
		})
	}

	// Declarations, checked through the API and AMQP.
	rabbitmqadmin(t, b, "declare", "queue", "name=ra.durable", "durable=true")
	rabbitmqadmin(t, b, "declare", "queue", "name=ra.args", "durable=false",
		`arguments={"x-max-length": 10, "x-message-ttl": 60000, "x-overflow": "reject-publish"}`)
	rabbitmqadmin(t, b, "declare", "exchange", "name=ra.topic", "type=topic", "durable=true")
	rabbitmqadmin(t, b, "declare", "binding", "source=ra.topic", "destination=ra.durable", "routing_key=ra.#")

	var q map[string]any
	b.mgmtCall(t, "GET", "/api/queues/%2F/ra.durable", nil, 200, &q)
	if q["durable"] != true {
		t.Fatalf("ra.durable: %v", q)
	}
	b.mgmtCall(t, "GET", "/api/queues/%2F/ra.args", nil, 200, &q)
	wantArgs := map[string]any{"x-max-length": 10.0, "x-message-ttl": 60000.0, "x-overflow": "reject-publish"}
	if q["durable"] != false || !reflect.DeepEqual(q["arguments"], wantArgs) {
		t.Fatalf("ra.args: durable %v arguments %v, want false %v", q["durable"], q["arguments"], wantArgs)
	}
	// Declaring again over AMQP with other arguments is refused: the
	// arguments really are the queue's.
	ch2 := openChannel(t, conn)
	_, err := ch2.QueueDeclare("ra.args", false, false, false, false, amqp091.Table{"x-max-length": int32(11)})
	expectCode(t, err, 406, "")
	if err := ch.ExchangeDeclarePassive("ra.topic", "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("ra.topic over AMQP: %v", err)
	}

	// Publish through rabbitmqadmin, see the messages over AMQP; get with
	// both ack modes.
	rabbitmqadmin(t, b, "publish", "exchange=ra.topic", "routing_key=ra.one", "payload=hello-1")
	rabbitmqadmin(t, b, "publish", "exchange=ra.topic", "routing_key=ra.two", "payload=hello-2")
	rabbitmqadmin(t, b, "publish", "exchange=ra.topic", "routing_key=other", "payload=dropped")
	rabbitmqadmin(t, b, "publish", "routing_key=ra.args", "payload=direct")
	expectLen("ra.durable", 2)
	expectLen("ra.args", 1)
	got := rabbitmqadminJSON(t, b, "get", "queue=ra.durable", "ackmode=ack_requeue_true")
	if len(got) != 1 || got[0]["payload"] != "hello-1" || got[0]["routing_key"] != "ra.one" || got[0]["exchange"] != "ra.topic" {
		t.Fatalf("get (requeue): %v", got)
	}
	expectLen("ra.durable", 2)
	got = rabbitmqadminJSON(t, b, "get", "queue=ra.durable", "ackmode=ack_requeue_false", "count=1")
	if len(got) != 1 || got[0]["payload"] != "hello-1" || got[0]["redelivered"] != true {
		t.Fatalf("get (ack): %v", got)
	}
	d, ok, err := ch.Get("ra.durable", true)
	if err != nil || !ok || string(d.Body) != "hello-2" || d.RoutingKey != "ra.two" {
		t.Fatalf("AMQP get after rabbitmqadmin's: %q %v %v", d.Body, ok, err)
	}
	// And the other way: published over AMQP, read by rabbitmqadmin.
	publish(t, ch, "ra.topic", "ra.three", "from-amqp")
	expectLen("ra.durable", 1)
	got = rabbitmqadminJSON(t, b, "get", "queue=ra.durable", "ackmode=ack_requeue_false")
	if len(got) != 1 || got[0]["payload"] != "from-amqp" || got[0]["message_count"] != 0.0 {
		t.Fatalf("get of an AMQP message: %v", got)
	}

	// Lists, in raw_json and tsv.
	queues := rabbitmqadminJSON(t, b, "list", "queues")
	if findItem(queues, map[string]any{"name": "ra.args", "vhost": "/", "durable": false}) == nil ||
		findItem(queues, map[string]any{"name": "ra.durable", "durable": true}) == nil {
		t.Fatalf("list queues: %v", queues)
	}
	rows := rabbitmqadminTSV(t, b, "list", "queues", "name", "durable", "messages")
	if findItem(rows, map[string]string{"name": "ra.args", "durable": "False", "messages": "1"}) == nil ||
		findItem(rows, map[string]string{"name": "ra.durable", "durable": "True", "messages": "0"}) == nil {
		t.Fatalf("list queues (tsv): %v", rows)
	}
	if x := findItem(rabbitmqadminJSON(t, b, "list", "exchanges"), map[string]any{"name": "ra.topic"}); x == nil || x["type"] != "topic" || x["durable"] != true {
		t.Fatalf("list exchanges: ra.topic is %v", x)
	}
	bindings := rabbitmqadminJSON(t, b, "list", "bindings")
	bnd := findItem(bindings, map[string]any{"source": "ra.topic", "destination": "ra.durable", "destination_type": "queue", "routing_key": "ra.#"})
	if bnd == nil {
		t.Fatalf("list bindings: %v", bindings)
	}
	if findItem(rabbitmqadminTSV(t, b, "list", "vhosts", "name"), map[string]string{"name": "/"}) == nil {
		t.Fatal("list vhosts: no /")
	}
	users := rabbitmqadminJSON(t, b, "list", "users")
	if u := findItem(users, map[string]any{"name": "guest"}); u == nil || !reflect.DeepEqual(u["tags"], []any{"administrator"}) {
		t.Fatalf("list users: %v", users)
	}
	named, err := amqp091.DialConfig(b.URL(), amqp091.Config{Properties: amqp091.Table{"connection_name": "ra-named"}})
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	openChannel(t, named)
	openChannel(t, named)
	conns := rabbitmqadminJSON(t, b, "list", "connections")
	if len(conns) != 2 {
		t.Fatalf("list connections with two AMQP connections: %v", conns)
	}
	c := findItem(conns, map[string]any{"user": "guest", "vhost": "/", "channels": 2.0})
	if props, _ := c["client_properties"].(map[string]any); props["connection_name"] != "ra-named" {
		t.Fatalf("list connections: no connection of 2 channels named ra-named in %v", conns)
	}
	rows = rabbitmqadminTSV(t, b, "list", "connections", "user", "channels")
	if findItem(rows, map[string]string{"user": "guest", "channels": "2"}) == nil {
		t.Fatalf("list connections (tsv): %v", rows)
	}

	// A virtual host of its own, used with -V.
	rabbitmqadmin(t, b, "declare", "vhost", "name=ra-vh")
	rabbitmqadmin(t, b, "declare", "permission", "vhost=ra-vh", "user=guest", "configure=.*", "write=.*", "read=.*")
	rabbitmqadmin(t, b, "-V", "ra-vh", "declare", "queue", "name=in-vh")
	rabbitmqadmin(t, b, "-V", "ra-vh", "publish", "routing_key=in-vh", "payload=vh-msg")
	vconn, err := mgmtDial(t, b, "guest", "guest", "ra-vh")
	if err != nil {
		t.Fatal(err)
	}
	vch := openChannel(t, vconn)
	if d, ok, err := vch.Get("in-vh", true); err != nil || !ok || string(d.Body) != "vh-msg" {
		t.Fatalf("get in ra-vh: %q %v %v", d.Body, ok, err)
	}

	// Export, then import into a fresh broker: the topology works there.
	file := filepath.Join(t.TempDir(), "defs.json")
	rabbitmqadmin(t, b, "export", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var exported definitionsDoc
	if err := json.Unmarshal(data, &exported); err != nil {
		t.Fatalf("exported file: %v", err)
	}
	if findItem(exported.Queues, map[string]any{"name": "ra.args", "arguments": wantArgs}) == nil {
		t.Fatalf("exported queues: %v", exported.Queues)
	}
	b2 := startBroker(t)
	rabbitmqadmin(t, b2, "import", file)
	b2.mgmtCall(t, "GET", "/api/queues/%2F/ra.args", nil, 200, &q)
	if !reflect.DeepEqual(q["arguments"], wantArgs) {
		t.Fatalf("imported ra.args: %v", q)
	}
	b2.mgmtCall(t, "GET", "/api/queues/ra-vh/in-vh", nil, 200, nil)
	// One vhost's export (-V) names no vhost and imports into another.
	vfile := filepath.Join(t.TempDir(), "vh.json")
	rabbitmqadmin(t, b, "-V", "ra-vh", "export", vfile)
	if data, err = os.ReadFile(vfile); err != nil {
		t.Fatal(err)
	}
	var vdefs definitionsDoc
	if err := json.Unmarshal(data, &vdefs); err != nil || len(vdefs.Queues) != 1 || vdefs.Queues[0]["name"] != "in-vh" ||
		vdefs.Queues[0]["vhost"] != nil || vdefs.Users != nil {
		t.Fatalf("ra-vh's export: %v\n%s", err, data)
	}
	rabbitmqadmin(t, b2, "declare", "vhost", "name=other-vh")
	rabbitmqadmin(t, b2, "-V", "other-vh", "import", vfile)
	b2.mgmtCall(t, "GET", "/api/queues/other-vh/in-vh", nil, 200, nil)
	_, ch3 := dialChannel(t, b2)
	publish(t, ch3, "ra.topic", "ra.imported", "routed-on-b2")
	if d, ok, err := ch3.Get("ra.durable", true); err != nil || !ok || string(d.Body) != "routed-on-b2" {
		t.Fatalf("the imported binding does not route: %q %v %v", d.Body, ok, err)
	}

	// Deletions.
	rabbitmqadmin(t, b, "delete", "binding", "source=ra.topic", "destination_type=queue", "destination=ra.durable",
		"properties_key="+bnd["properties_key"].(string))
	var qb []map[string]any
	b.mgmtCall(t, "GET", "/api/queues/%2F/ra.durable/bindings", nil, 200, &qb)
	if findItem(qb, map[string]any{"source": "ra.topic"}) != nil {
		t.Fatalf("binding still listed: %v", qb)
	}
	// A message through the gone binding, then a marker on the same
	// channel: had the first been routed, it would be there before it.
	publish(t, ch, "ra.topic", "ra.after", "unbound")
	publish(t, ch, "", "ra.durable", "marker")
	expectLen("ra.durable", 1)
	if d, ok, err := ch.Get("ra.durable", true); err != nil || !ok || string(d.Body) != "marker" {
		t.Fatalf("after unbinding ra.durable holds %q %v %v, want only the marker", d.Body, ok, err)
	}
	rabbitmqadmin(t, b, "delete", "queue", "name=ra.args")
	b.mgmtCall(t, "GET", "/api/queues/%2F/ra.args", nil, 404, nil)
	rabbitmqadmin(t, b, "delete", "exchange", "name=ra.topic")
	err = openChannel(t, conn).ExchangeDeclarePassive("ra.topic", "topic", true, false, false, false, nil)
	expectCode(t, err, 404, "")
	if rows := rabbitmqadminTSV(t, b, "list", "queues", "name"); findItem(rows, map[string]string{"name": "ra.args"}) != nil {
		t.Fatalf("ra.args still listed: %v", rows)
	}
}

// ---- 2. a RabbitMQ 3.x definitions file ----

// definitionsDoc is the part of a definitions file the tests read.
type definitionsDoc struct {
	Users            []map[string]any `json:"users"`
	Vhosts           []map[string]any `json:"vhosts"`
	Permissions      []map[string]any `json:"permissions"`
	TopicPermissions []map[string]any `json:"topic_permissions"`
	Parameters       []map[string]any `json:"parameters"`
	Policies         []map[string]any `json:"policies"`
	Queues           []map[string]any `json:"queues"`
	Exchanges        []map[string]any `json:"exchanges"`
	Bindings         []map[string]any `json:"bindings"`
}

// rabbitDefsFile is written in RabbitMQ 3.10's export format; its
// password hashes were made with these passwords (4-byte salt, then
// SHA-256 or SHA-512 of salt ++ UTF-8 password, base64).
var (
	rabbitDefsFile = filepath.Join(repoRoot, "e2e", "testdata", "rabbitmq-3-definitions.json")
	rabbitDefsUser = []struct{ name, pass, vhost string }{
		{"guest", "guest", "/"},
		{"ops", "0ps-Secret!", "/"},          // SHA-256, tags as a list
		{"reporter", "rep0rt-s3cret", "/"},   // SHA-512, tags as a string (3.8's form)
		{"app", "app-pässword", "orders"},    // SHA-256, non-ASCII password
		{"reader", "read-only-pw", "orders"}, // SHA-512, empty tags string
	}
)

// canonDefs reduces a definitions file to what it means: per section, a
// set of keys each with the fields that matter in canonical JSON. Fields
// RabbitMQ fills in itself (limits, metadata defaults, versions) and
// parameters other than vhost limits (Warren does not keep them) are left
// out; tags are sorted lists whether written as a string or a list.
func canonDefs(t testing.TB, d definitionsDoc) map[string]map[string]string {
	t.Helper()
	str := func(v any) string { s, _ := v.(string); return s }
	tags := func(v any) []string {
		out := []string{}
		switch v := v.(type) {
		case string:
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		case []any:
			for _, s := range v {
				out = append(out, str(s))
			}
		}
		sort.Strings(out)
		return out
	}
	args := func(v any) any {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			return m
		}
		return map[string]any{}
	}
	enc := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	out := map[string]map[string]string{}
	add := func(section, key string, v any) {
		if out[section] == nil {
			out[section] = map[string]string{}
		}
		if _, dup := out[section][key]; dup {
			t.Fatalf("%s %s appears twice", section, key)
		}
		out[section][key] = enc(v)
	}
	for _, u := range d.Users {
		add("users", str(u["name"]), []any{u["password_hash"], u["hashing_algorithm"], tags(u["tags"])})
	}
	for _, v := range d.Vhosts {
		md, _ := v["metadata"].(map[string]any)
		add("vhosts", str(v["name"]), []any{str(md["description"]), tags(md["tags"])})
	}
	for _, p := range d.Permissions {
		add("permissions", str(p["vhost"])+" "+str(p["user"]), []any{p["configure"], p["write"], p["read"]})
	}
	for _, p := range d.TopicPermissions {
		add("topic_permissions", str(p["vhost"])+" "+str(p["user"])+" "+str(p["exchange"]), []any{p["write"], p["read"]})
	}
	for _, p := range d.Parameters {
		if p["component"] == "vhost-limits" {
			add("parameters", str(p["vhost"])+" "+str(p["name"]), p["value"])
		}
	}
	for _, p := range d.Policies {
		add("policies", str(p["vhost"])+" "+str(p["name"]), []any{p["pattern"], p["apply-to"], p["priority"], p["definition"]})
	}
	for _, q := range d.Queues {
		add("queues", str(q["vhost"])+" "+str(q["name"]), []any{q["durable"], q["auto_delete"], args(q["arguments"])})
	}
	for _, x := range d.Exchanges {
		add("exchanges", str(x["vhost"])+" "+str(x["name"]), []any{x["type"], x["durable"], x["auto_delete"], x["internal"], args(x["arguments"])})
	}
	for _, bd := range d.Bindings {
		add("bindings", enc([]any{bd["vhost"], bd["source"], bd["destination_type"], bd["destination"], bd["routing_key"], args(bd["arguments"])}), true)
	}
	return out
}

// diffCanon fails the test with every difference between two canonical
// definitions.
func diffCanon(t testing.TB, what string, got, want map[string]map[string]string) {
	t.Helper()
	var diffs []string
	sections := map[string]bool{}
	for s := range got {
		sections[s] = true
	}
	for s := range want {
		sections[s] = true
	}
	for s := range sections {
		for k, w := range want[s] {
			if g, ok := got[s][k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: missing %s %s", s, k, w))
			} else if g != w {
				diffs = append(diffs, fmt.Sprintf("%s %s: got %s, want %s", s, k, g, w))
			}
		}
		for k, g := range got[s] {
			if _, ok := want[s][k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: unexpected %s %s", s, k, g))
			}
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Fatalf("%s differs:\n%s", what, strings.Join(diffs, "\n"))
	}
}

func readDefs(t testing.TB, data []byte) definitionsDoc {
	t.Helper()
	var d definitionsDoc
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// exportDefs returns the broker's definitions.
func exportDefs(t testing.TB, b *broker) definitionsDoc {
	t.Helper()
	var d definitionsDoc
	b.mgmtCall(t, "GET", "/api/definitions", nil, 200, &d)
	return d
}

// checkRabbitDefs checks a broker holds what the definitions file says:
// the export means the same, the users log in with their passwords (and
// not with wrong ones), the topology routes and the permissions hold.
func checkRabbitDefs(t *testing.T, b *broker) {
	t.Helper()
	data, err := os.ReadFile(rabbitDefsFile)
	if err != nil {
		t.Fatal(err)
	}
	diffCanon(t, "the export", canonDefs(t, exportDefs(t, b)), canonDefs(t, readDefs(t, data)))

	for _, u := range rabbitDefsUser {
		if _, err := mgmtDial(t, b, u.name, u.pass, u.vhost); err != nil {
			t.Fatalf("%s cannot log in to %q with its password: %v", u.name, u.vhost, err)
		}
		if _, err := mgmtDial(t, b, u.name, u.pass+"x", u.vhost); err == nil {
			t.Fatalf("%s logged in with a wrong password", u.name)
		}
	}
	// Tags written as a string (reporter's) are tags: monitoring may read
	// the overview but not the users.
	var who map[string]any
	if st, body := b.apiAs(t, "reporter", "rep0rt-s3cret", "GET", "/api/whoami", nil); st != 200 || json.Unmarshal(body, &who) != nil ||
		!reflect.DeepEqual(who["tags"], []any{"monitoring"}) {
		t.Fatalf("whoami as reporter: %d %s", st, body)
	}
	if st, body := b.apiAs(t, "reporter", "rep0rt-s3cret", "GET", "/api/users", nil); st != 403 {
		t.Fatalf("reporter (monitoring) listing users: %d %s", st, body)
	}

	// The policies apply.
	var q map[string]any
	b.mgmtCall(t, "GET", "/api/queues/orders/orders.created", nil, 200, &q)
	if q["policy"] != "orders-ttl-dlx" || q["durable"] != true {
		t.Fatalf("orders.created: policy %v durable %v", q["policy"], q["durable"])
	}
	if eff, _ := q["effective_policy_definition"].(map[string]any); eff["message-ttl"] != 60000.0 || eff["dead-letter-exchange"] != "orders.dlx" {
		t.Fatalf("orders.created's effective policy: %v", q["effective_policy_definition"])
	}
	b.mgmtCall(t, "GET", "/api/queues/orders/audit", nil, 200, &q)
	if q["policy"] != "audit-cap" {
		t.Fatalf("audit's policy: %v", q["policy"])
	}
	var limits []map[string]any
	b.mgmtCall(t, "GET", "/api/vhost-limits/orders", nil, 200, &limits)
	if len(limits) != 1 || !reflect.DeepEqual(limits[0]["value"], map[string]any{"max-connections": 100.0, "max-queues": 50.0}) {
		t.Fatalf("orders' limits: %v", limits)
	}

	// The topology routes: a topic exchange to a queue and, through an
	// exchange-to-exchange binding, to a headers exchange whose binding
	// has arguments; what orders.events routes nowhere goes to its
	// alternate exchange. As in RabbitMQ, the alternate exchange is an
	// exchange's own: orders.shipped.eu, routed by orders.events to
	// orders.by-region where it matches nothing, is dropped.
	app, err := mgmtDial(t, b, "app", "app-pässword", "orders")
	if err != nil {
		t.Fatal(err)
	}
	ch := openChannel(t, app)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 3))
	for _, m := range []struct {
		key    string
		region string
	}{{"orders.created.eu", "eu"}, {"orders.shipped", "us"}, {"orders.shipped.eu", "us"}} {
		if err := ch.Publish("orders.events", m.key, false, false, amqp091.Publishing{
			Headers: amqp091.Table{"region": m.region}, Body: []byte(m.key)}); err != nil {
			t.Fatal(err)
		}
		if c := <-confirms; !c.Ack {
			t.Fatalf("publish of %s nacked", m.key)
		}
	}
	for name, want := range map[string]float64{"orders.created": 1, "audit": 2, "orders.dead": 0} {
		waitFor(t, 10*time.Second, func() error {
			b.mgmtCall(t, "GET", "/api/queues/orders/"+name, nil, 200, &q)
			if q["messages_ready"] != want {
				return fmt.Errorf("%s has %v messages ready, want %v", name, q["messages_ready"], want)
			}
			return nil
		})
	}
	// The topic permission: app may publish to orders.events only with
	// keys starting with "orders.".
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Publish("orders.events", "misc.key", false, false, amqp091.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	expectClose(t, closed, 403, "")
	// The permissions: app configures only app.*; reader may not write,
	// and reads only orders.*.
	_, err = openChannel(t, app).QueueDeclare("orders.mine", false, false, false, false, nil)
	expectCode(t, err, 403, "")
	reader, err := mgmtDial(t, b, "reader", "read-only-pw", "orders")
	if err != nil {
		t.Fatal(err)
	}
	rch := openChannel(t, reader)
	closed = rch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := rch.Publish("orders.events", "orders.created.eu", false, false, amqp091.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	expectClose(t, closed, 403, "")
	if d, ok, err := openChannel(t, reader).Get("orders.created", true); err != nil || !ok || string(d.Body) != "orders.created.eu" {
		t.Fatalf("reader's get from orders.created: %q %v %v", d.Body, ok, err)
	}
	_, _, err = openChannel(t, reader).Get("audit", false)
	expectCode(t, err, 403, "")
	// reader has no permissions in /.
	if _, err := mgmtDial(t, b, "reader", "read-only-pw", "/"); err == nil {
		t.Fatal("reader logged in to / where it has no permissions")
	}
	// Leave the queues as the file made them (orders.created is empty).
	b.mgmtCall(t, "DELETE", "/api/queues/orders/audit/contents", nil, 204, nil)
}

func TestRabbitMQ3Definitions(t *testing.T) {
	data, err := os.ReadFile(rabbitDefsFile)
	if err != nil {
		t.Fatal(err)
	}
	// (a) loaded at start.
	loaded := startBroker(t, "--load-definitions", rabbitDefsFile)
	checkRabbitDefs(t, loaded)
	for _, component := range []string{"shovel", "federation-upstream"} {
		if !strings.Contains(loaded.log.String(), "component="+component) {
			t.Errorf("no warning that the %s parameter was ignored", component)
		}
	}

	// (b) posted to a fresh broker.
	posted := startBroker(t)
	posted.mgmtCall(t, "POST", "/api/definitions", data, 204, nil)
	checkRabbitDefs(t, posted)

	// (c) both exports mean the same (checkRabbitDefs compared each with
	// the file); (d) an export imported into a third broker exports the
	// same.
	first := exportDefs(t, posted)
	raw, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	third := startBroker(t)
	third.mgmtCall(t, "POST", "/api/definitions", raw, 204, nil)
	diffCanon(t, "a re-imported export", canonDefs(t, exportDefs(t, third)), canonDefs(t, first))
	diffCanon(t, "the export of the loaded broker", canonDefs(t, exportDefs(t, loaded)), canonDefs(t, first))

	// (e) what was imported (not loaded at start) survives a restart.
	posted.Restart()
	checkRabbitDefs(t, posted)
}

// ---- 3. Prometheus metrics ----

// mgmtScrape fetches and parses a Prometheus endpoint of b.
func mgmtScrape(t testing.TB, b *broker, path string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := apiClient.Get("http://" + b.PromAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return mfs
}

// metricValue returns the value of family's series with labels (all of
// them when labels is nil: their sum), and whether there was one.
func metricValue(mfs map[string]*dto.MetricFamily, family string, labels map[string]string) (float64, bool) {
	mf := mfs[family]
	if mf == nil {
		return 0, false
	}
	var sum float64
	found := false
	for _, m := range mf.GetMetric() {
		ok := true
		for k, v := range labels {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// expectMetrics checks the scrape's values: deltas from before for
// counters (a before of nil means absolute values).
func expectMetrics(mfs, before map[string]*dto.MetricFamily, want map[string]float64, labels map[string]string) error {
	var errs []error
	for name, w := range want {
		v, ok := metricValue(mfs, name, labels)
		if !ok {
			errs = append(errs, fmt.Errorf("no %s%v", name, labels))
			continue
		}
		if before != nil && strings.HasSuffix(name, "_total") {
			b, _ := metricValue(before, name, labels)
			v -= b
		}
		if v != w {
			errs = append(errs, fmt.Errorf("%s%v = %v, want %v", name, labels, v, w))
		}
	}
	return errors.Join(errs...)
}

func TestPrometheusMetrics(t *testing.T) {
	b := startBroker(t)
	before := mgmtScrape(t, b, "/metrics")
	families := map[string]dto.MetricType{
		"rabbitmq_connections":                                        dto.MetricType_GAUGE,
		"rabbitmq_channels":                                           dto.MetricType_GAUGE,
		"rabbitmq_consumers":                                          dto.MetricType_GAUGE,
		"rabbitmq_queues":                                             dto.MetricType_GAUGE,
		"rabbitmq_queue_messages_ready":                               dto.MetricType_GAUGE,
		"rabbitmq_queue_messages_unacked":                             dto.MetricType_GAUGE,
		"rabbitmq_queue_messages":                                     dto.MetricType_GAUGE,
		"rabbitmq_connections_opened_total":                           dto.MetricType_COUNTER,
		"rabbitmq_channels_opened_total":                              dto.MetricType_COUNTER,
		"rabbitmq_global_messages_received_total":                     dto.MetricType_COUNTER,
		"rabbitmq_global_messages_routed_total":                       dto.MetricType_COUNTER,
		"rabbitmq_global_messages_confirmed_total":                    dto.MetricType_COUNTER,
		"rabbitmq_global_messages_unroutable_dropped_total":           dto.MetricType_COUNTER,
		"rabbitmq_global_messages_unroutable_returned_total":          dto.MetricType_COUNTER,
		"rabbitmq_global_messages_delivered_total":                    dto.MetricType_COUNTER,
		"rabbitmq_global_messages_delivered_consume_manual_ack_total": dto.MetricType_COUNTER,
		"rabbitmq_global_messages_acknowledged_total":                 dto.MetricType_COUNTER,
		"rabbitmq_global_messages_redelivered_total":                  dto.MetricType_COUNTER,
		"rabbitmq_identity_info":                                      dto.MetricType_GAUGE,
		"rabbitmq_build_info":                                         dto.MetricType_GAUGE,
		"rabbitmq_process_resident_memory_bytes":                      dto.MetricType_GAUGE,
		"rabbitmq_process_open_fds":                                   dto.MetricType_GAUGE,
		"go_goroutines":                                               dto.MetricType_GAUGE,
		"go_memstats_heap_alloc_bytes":                                dto.MetricType_GAUGE,
	}
	for name, typ := range families {
		mf := before[name]
		if mf == nil {
			t.Errorf("no family %s", name)
		} else if mf.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), typ)
		}
	}
	if _, ok := metricValue(before, "rabbitmq_global_messages_received_total", map[string]string{"protocol": "amqp091"}); !ok {
		t.Error(`no rabbitmq_global_messages_received_total{protocol="amqp091"}`)
	}
	if t.Failed() {
		t.FailNow()
	}

	// A known load: N routed and M unroutable publishes with confirms, K
	// deliveries to a manual-ack consumer of which U stay unacknowledged.
	const n, m, k, u = 500, 20, 120, 7
	conn, pub := dialChannel(t, b)
	declareQueue(t, pub, "metrics.q", true, nil)
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pub.NotifyPublish(make(chan amqp091.Confirmation, n+m))
	for i := range n + m {
		x, key := "", "metrics.q"
		if i >= n {
			x, key = "amq.direct", "nowhere"
		}
		if err := pub.Publish(x, key, false, false, amqp091.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	awaitAcks(t, confirms, n+m, 30*time.Second)
	cons := openChannel(t, conn)
	if err := cons.Qos(k, 0, false); err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Consume("metrics.q", "metrics-consumer", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tags []uint64
	for range k {
		tags = append(tags, receive(t, msgs).DeliveryTag)
	}
	// The prefetch window is full: cancelling now leaves exactly k
	// delivered.
	if err := cons.Cancel("metrics-consumer", false); err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags[:k-u] {
		if err := cons.Ack(tag, false); err != nil {
			t.Fatal(err)
		}
	}
	wantTotals := map[string]float64{
		"rabbitmq_global_messages_received_total":                     n + m,
		"rabbitmq_global_messages_received_confirm_total":             n + m,
		"rabbitmq_global_messages_confirmed_total":                    n + m,
		"rabbitmq_global_messages_routed_total":                       n,
		"rabbitmq_global_messages_unroutable_dropped_total":           m,
		"rabbitmq_global_messages_unroutable_returned_total":          0,
		"rabbitmq_global_messages_delivered_total":                    k,
		"rabbitmq_global_messages_delivered_consume_manual_ack_total": k,
		"rabbitmq_global_messages_acknowledged_total":                 k - u,
		"rabbitmq_global_messages_redelivered_total":                  0,
		"rabbitmq_connections_opened_total":                           1,
		"rabbitmq_channels_opened_total":                              2,
		"rabbitmq_queues_declared_total":                              1,
		"rabbitmq_queues_created_total":                               1,
		"rabbitmq_queues_deleted_total":                               0,
	}
	wantGauges := map[string]float64{
		"rabbitmq_connections":            1,
		"rabbitmq_channels":               2,
		"rabbitmq_consumers":              0,
		"rabbitmq_queues":                 1,
		"rabbitmq_queue_messages_ready":   n - k,
		"rabbitmq_queue_messages_unacked": u,
		"rabbitmq_queue_messages":         n - k + u,
	}
	waitFor(t, 20*time.Second, func() error {
		mfs := mgmtScrape(t, b, "/metrics")
		return errors.Join(expectMetrics(mfs, before, wantTotals, nil), expectMetrics(mfs, before, wantGauges, nil))
	})

	// Per object: the queue's series with its labels.
	perQueue := map[string]string{"vhost": "/", "queue": "metrics.q"}
	if err := expectMetrics(mgmtScrape(t, b, "/metrics/per-object"), nil, map[string]float64{
		"rabbitmq_queue_messages_ready":           n - k,
		"rabbitmq_queue_messages_unacked":         u,
		"rabbitmq_queue_messages":                 n - k + u,
		"rabbitmq_queue_consumers":                0,
		"rabbitmq_queue_messages_published_total": n,
	}, perQueue); err != nil {
		t.Fatalf("/metrics/per-object: %v", err)
	}

	// Closing the connection: the gauges fall, the unacknowledged return
	// to the queue, the totals stay.
	conn.Close()
	wantTotals["rabbitmq_connections_closed_total"] = 1
	wantTotals["rabbitmq_channels_closed_total"] = 2
	waitFor(t, 20*time.Second, func() error {
		mfs := mgmtScrape(t, b, "/metrics")
		return errors.Join(expectMetrics(mfs, before, wantTotals, nil), expectMetrics(mfs, before, map[string]float64{
			"rabbitmq_connections":            0,
			"rabbitmq_channels":               0,
			"rabbitmq_queue_messages_ready":   n - k + u,
			"rabbitmq_queue_messages_unacked": 0,
		}, nil))
	})
}

// ---- 4. bad HTTP input ----

func TestManagementAPIBadInput(t *testing.T) {
	b := startBroker(t)
	b.mgmtCall(t, "PUT", "/api/queues/%2F/exists", map[string]any{"durable": true}, 201, nil)
	tests := []struct {
		method, path string
		body         any
		want         int
	}{
		{"PUT", "/api/queues/%2F/q", `{"durable": tru`, 400},
		{"PUT", "/api/queues/%2F/q", `[1, 2]`, 400},
		{"PUT", "/api/queues/%2F/q", `{"durable": "maybe"}`, 400},
		{"PUT", "/api/queues/%2F/q", `{"arguments": "not an object"}`, 400},
		{"PUT", "/api/exchanges/%2F/x", `{"type":`, 400},
		{"PUT", "/api/exchanges/%2F/x", `{"type": "no-such-type"}`, 400},
		{"PUT", "/api/vhosts/v", `{"description": 5}`, 400},
		{"PUT", "/api/users/u", `{"password": "p", "tags": 5}`, 400},
		{"PUT", "/api/users/u", `{"password_hash": "not base64!", "hashing_algorithm": "rabbit_password_hashing_sha256"}`, 400},
		{"PUT", "/api/users/u", `{"password": "p", "hashing_algorithm": "rabbit_password_hashing_rot13"}`, 400},
		{"PUT", "/api/policies/%2F/p", `{"pattern": ".*", "definition": "ttl"}`, 400},
		{"POST", "/api/definitions", `{"queues": [`, 400},
		{"POST", "/api/exchanges/%2F/amq.default/publish", `{"routing_key": 1`, 400},
		{"GET", "/api/queues/no-such-vhost", nil, 404},
		{"GET", "/api/queues/no-such-vhost/q", nil, 404},
		{"PUT", "/api/queues/no-such-vhost/q", `{}`, 404},
		{"GET", "/api/exchanges/no-such-vhost", nil, 404},
		{"GET", "/api/vhosts/no-such-vhost", nil, 404},
		{"GET", "/api/definitions/no-such-vhost", nil, 404},
		{"POST", "/api/definitions/no-such-vhost", `{}`, 404},
		{"GET", "/api/queues/%2F/missing", nil, 404},
		{"DELETE", "/api/queues/%2F/missing", nil, 404},
		{"GET", "/api/no-such-thing", nil, 404},
		{"GET", "/api/queues/%2F/exists/no-such-thing", nil, 404},
	}
	for _, tc := range tests {
		status, body := b.api(t, tc.method, tc.path, tc.body)
		if status != tc.want {
			t.Errorf("%s %s %v: status %d, want %d; body %s", tc.method, tc.path, tc.body, status, tc.want, body)
			continue
		}
		var e map[string]any
		if err := json.Unmarshal(body, &e); err != nil || e["error"] == nil || e["reason"] == nil {
			t.Errorf("%s %s: error body %s is not RabbitMQ's {error, reason}", tc.method, tc.path, body)
		}
	}
	// A malformed PUT changed nothing.
	b.mgmtCall(t, "GET", "/api/queues/%2F/q", nil, 404, nil)
	b.mgmtCall(t, "GET", "/api/users/u", nil, 404, nil)

	// Names holding "/" as %2F, in a vhost and a queue.
	b.mgmtCall(t, "PUT", "/api/vhosts/a%2Fb", nil, 201, nil)
	// As in RabbitMQ, the vhost's creator was given all permissions on it.
	b.mgmtCall(t, "PUT", "/api/permissions/a%2Fb/guest", map[string]string{"configure": ".*", "write": ".*", "read": ".*"}, 204, nil)
	b.mgmtCall(t, "PUT", "/api/queues/a%2Fb/x%2Fy", map[string]any{"durable": true}, 201, nil)
	var qs []map[string]any
	b.mgmtCall(t, "GET", "/api/queues/a%2Fb", nil, 200, &qs)
	if len(qs) != 1 || qs[0]["name"] != "x/y" || qs[0]["vhost"] != "a/b" {
		t.Fatalf("queues of a/b: %v", qs)
	}
	conn, err := mgmtDial(t, b, "guest", "guest", "a/b")
	if err != nil {
		t.Fatalf("AMQP to vhost a/b: %v", err)
	}
	ch := openChannel(t, conn)
	publish(t, ch, "", "x/y", "slashed")
	waitFor(t, 10*time.Second, func() error {
		var q map[string]any
		b.mgmtCall(t, "GET", "/api/queues/a%2Fb/x%2Fy", nil, 200, &q)
		if q["name"] != "x/y" || q["messages"] != 1.0 {
			return fmt.Errorf("x/y: %v", q)
		}
		return nil
	})
	b.mgmtCall(t, "DELETE", "/api/queues/a%2Fb/x%2Fy", nil, 204, nil)
	_, err = ch.QueueDeclarePassive("x/y", true, false, false, false, nil)
	expectCode(t, err, 404, "")
	b.mgmtCall(t, "DELETE", "/api/vhosts/a%2Fb", nil, 204, nil)
	b.mgmtCall(t, "GET", "/api/vhosts/a%2Fb", nil, 404, nil)

	// A body over the limit (mgmt's maxBody, 32 MiB) is 413.
	big := append([]byte(`{"queues": [`), bytes.Repeat([]byte(" "), 32<<20)...)
	if status, body := b.api(t, "POST", "/api/definitions", big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 32 MiB body: status %d, want 413; %s", status, body)
	}

	// Methods a resource does not have: 405 with Allow.
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/api/overview", "GET, HEAD"},
		{"DELETE", "/api/queues", "GET, HEAD"},
		{"POST", "/api/queues/%2F/exists", "DELETE, GET, HEAD, PUT"},
		{"PATCH", "/api/users/guest", "DELETE, GET, HEAD, PUT"},
		{"GET", "/api/queues/%2F/exists/get", "POST"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+b.MgmtAddr+tc.path, nil)
		req.SetBasicAuth("guest", "guest")
		status, h, body := b.mgmtDo(t, req)
		if status != http.StatusMethodNotAllowed || h.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q; %s", tc.method, tc.path, status, h.Get("Allow"), tc.allow, body)
		}
	}

	// Unauthenticated or wrongly authenticated: 401 with a challenge.
	for _, auth := range [][2]string{{}, {"guest", "wrong"}, {"nobody", "guest"}} {
		req, _ := http.NewRequest("GET", "http://"+b.MgmtAddr+"/api/overview", nil)
		if auth[0] != "" {
			req.SetBasicAuth(auth[0], auth[1])
		}
		status, h, body := b.mgmtDo(t, req)
		if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET /api/overview as %q: %d WWW-Authenticate %q; %s", auth[0], status, h.Get("WWW-Authenticate"), body)
		}
	}

	// Still serving, and no request made it fail inside.
	b.mgmtCall(t, "GET", "/api/overview", nil, 200, nil)
	stillServes(t, b)
	for _, bad := range []string{"panicked", "management API request failed"} {
		if strings.Contains(b.log.String(), bad) {
			t.Errorf("the broker's log says %q", bad)
		}
	}
}
