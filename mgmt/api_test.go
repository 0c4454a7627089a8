package mgmt

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// populate makes one of everything definitions carry.
func populate(t *testing.T, fx *fixture) {
	t.Helper()
	fx.run(t, []step{
		{"vhost", "PUT", "/api/vhosts/v", map[string]any{"description": "d", "tags": "t1,t2", "default_queue_type": "classic"}, 201},
		{"user", "PUT", "/api/users/u", map[string]any{"password": "pw", "tags": "management"}, 201},
		{"permission", "PUT", "/api/permissions/v/u", map[string]any{"configure": "^u", "write": ".*", "read": ".*"}, 201},
		{"topic permission", "PUT", "/api/topic-permissions/v/u", map[string]any{"exchange": "amq.topic", "write": "^a", "read": "^b"}, 201},
		{"policy", "PUT", "/api/policies/v/p", map[string]any{"pattern": "^q", "apply-to": "queues", "priority": 2, "definition": map[string]any{"max-length": 10}}, 201},
		{"operator policy", "PUT", "/api/operator-policies/v/op", map[string]any{"pattern": ".*", "definition": map[string]any{"message-ttl": 1000}}, 201},
		{"limit", "PUT", "/api/vhost-limits/v/max-queues", map[string]any{"value": 100}, 204},
		{"exchange", "PUT", "/api/exchanges/v/x", map[string]any{"type": "topic", "durable": true, "arguments": map[string]any{"alternate-exchange": "ae"}}, 201},
		{"exchange 2", "PUT", "/api/exchanges/v/ae", map[string]any{"type": "fanout", "durable": true}, 201},
		{"queue", "PUT", "/api/queues/v/q1", map[string]any{"durable": true, "arguments": map[string]any{"x-message-ttl": 5000, "x-nested": map[string]any{"a": []any{1, "b", true}}}}, 201},
		{"queue 2", "PUT", "/api/queues/v/q2", map[string]any{"durable": true}, 201},
		{"binding", "POST", "/api/bindings/v/e/x/q/q1", map[string]any{"routing_key": "a.#", "arguments": map[string]any{"x-b": "c"}}, 201},
		{"e2e binding", "POST", "/api/bindings/v/e/x/e/ae", map[string]any{"routing_key": "k"}, 201},
	})
}

// normalized decodes a definitions document with each list in a stable
// order, without the version fields.
func normalized(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	for k, v := range d {
		list, ok := v.([]any)
		if !ok {
			delete(d, k)
			continue
		}
		slices.SortFunc(list, func(a, b any) int {
			ab, _ := json.Marshal(a)
			bb, _ := json.Marshal(b)
			return bytes.Compare(ab, bb)
		})
	}
	return d
}

func TestDefinitionsRoundTrip(t *testing.T) {
	t.Parallel()
	src, dst := newFixture(t), newFixture(t)
	populate(t, src)

	all := src.do(t, "GET", "/api/definitions", nil)
	d := all.obj(t, 200)
	fields(t, "definitions", d, map[string]any{"rabbit_version": "3.13.7", "rabbitmq_version": "3.13.7", "product_name": "Warren"})
	for _, k := range []string{"users", "vhosts", "permissions", "topic_permissions", "parameters", "policies", "operator_policies", "queues", "exchanges", "bindings"} {
		if _, ok := d[k].([]any); !ok {
			t.Errorf("definitions have no list %q", k)
		}
	}
	dst.do(t, "POST", "/api/definitions", all.body).want(t, 204)
	// The imported user logs in with its password.
	dst.call(t, "u:pw", "GET", "/api/whoami", nil).want(t, 200)
	want, got := normalized(t, all.body), normalized(t, dst.do(t, "GET", "/api/definitions", nil).body)
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if !bytes.Equal(wb, gb) {
		t.Errorf("definitions after the round trip:\n%s\nwant\n%s", gb, wb)
	}
	// Importing the same again changes nothing and fails nothing.
	dst.do(t, "POST", "/api/definitions", all.body).want(t, 204)

	// One vhost's definitions name no vhost and go into another.
	one := src.do(t, "GET", "/api/definitions/v", nil)
	o := one.obj(t, 200)
	if _, ok := o["users"]; ok {
		t.Errorf("vhost definitions carry users: %s", one.body)
	}
	if q := o["queues"].([]any); len(q) != 2 || q[0].(map[string]any)["vhost"] != nil {
		t.Errorf("vhost definitions' queues %v, want 2 without vhost", q)
	}
	dst.do(t, "PUT", "/api/vhosts/w", nil).want(t, 201)
	dst.do(t, "POST", "/api/definitions/w", one.body).want(t, 204)
	want, got = normalized(t, one.body), normalized(t, dst.do(t, "GET", "/api/definitions/w", nil).body)
	wb, _ = json.Marshal(want)
	gb, _ = json.Marshal(got)
	if !bytes.Equal(wb, gb) {
		t.Errorf("vhost definitions after the round trip:\n%s\nwant\n%s", gb, wb)
	}

	dst.run(t, []step{
		{"not JSON", "POST", "/api/definitions", "{", 400},
		{"unknown vhost in file", "POST", "/api/definitions", map[string]any{"queues": []any{map[string]any{"name": "q", "vhost": "nope"}}}, 400},
		{"bad policy", "POST", "/api/definitions", map[string]any{"policies": []any{map[string]any{"name": "p", "vhost": "/", "pattern": ".*", "definition": map[string]any{"nope": 1}}}}, 400},
		{"inequivalent queue", "POST", "/api/definitions/w", map[string]any{"queues": []any{map[string]any{"name": "q1", "durable": false}}}, 400},
		{"unknown vhost", "POST", "/api/definitions/nope", map[string]any{}, 404},
		{"export unknown vhost", "GET", "/api/definitions/nope", nil, 404},
	})
}

func TestListQueries(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	for i, name := range []string{"q1", "q2", "q3", "other4", "q5"} {
		fx.do(t, "PUT", "/api/queues/%2F/"+name, nil).want(t, 201)
		for range i {
			fx.do(t, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"routing_key": name, "payload": "x"}).want(t, 200)
		}
	}
	page := func(query string) map[string]any {
		t.Helper()
		return fx.do(t, "GET", "/api/queues/%2F?"+query, nil).obj(t, 200)
	}
	p := page("page=1&page_size=2&sort=name")
	fields(t, "page 1", p, map[string]any{"page": 1, "page_size": 2, "page_count": 3, "total_count": 5, "filtered_count": 5, "item_count": 2})
	if got := itemNames(p); !slices.Equal(got, []string{"other4", "q1"}) {
		t.Errorf("page 1 %v", got)
	}
	p = page("page=3&page_size=2&sort=name")
	fields(t, "page 3", p, map[string]any{"page": 3, "item_count": 1})
	p = page("page=1&page_size=10&name=q&sort=messages&sort_reverse=true")
	fields(t, "filtered", p, map[string]any{"total_count": 5, "filtered_count": 4, "item_count": 4})
	if got := itemNames(p); !slices.Equal(got, []string{"q5", "q3", "q2", "q1"}) {
		t.Errorf("sorted by messages, reversed: %v", got)
	}
	p = page("page=1&name=" + "%5Eq%5B12%5D%24" + "&use_regex=true")
	fields(t, "regex", p, map[string]any{"filtered_count": 2, "page_size": 100})
	// An empty listing is one page.
	p = page("page=1&name=nothing")
	fields(t, "empty", p, map[string]any{"page_count": 1, "item_count": 0, "items": []any{}})

	list := fx.do(t, "GET", "/api/queues?sort=messages&columns=name,messages,message_stats.publish", nil).list(t, 200)
	if len(list) != 5 || list[4]["name"] != "q5" {
		t.Fatalf("sorted by messages: %v", list)
	}
	fields(t, "columns", list[4], map[string]any{"name": "q5", "messages": 4, "message_stats": map[string]any{"publish": 4}})
	if len(list[4]) != 3 {
		t.Errorf("columns kept %v", list[4])
	}
	fields(t, "object columns", fx.do(t, "GET", "/api/queues/%2F/q2?columns=name,vhost", nil).obj(t, 200), map[string]any{"name": "q2", "vhost": "/"})

	for _, q := range []string{"page=0", "page=-1", "page=x", "page=4&page_size=2", "page=1&page_size=0", "page=1&page_size=-5",
		"page=1&page_size=501", "page=99999999999999999999", "page=9223372036854775807", "name=(&use_regex=true"} {
		if r := fx.do(t, "GET", "/api/queues?"+q, nil); r.status != 400 {
			t.Errorf("?%s: status %d, want 400; %s", q, r.status, r.body)
		}
	}
}

// itemNames are the names of a page's items.
func itemNames(page map[string]any) []string {
	var out []string
	for _, it := range page["items"].([]any) {
		out = append(out, it.(map[string]any)["name"].(string))
	}
	return out
}

func TestOverviewNodesHealth(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.do(t, "PUT", "/api/queues/%2F/q", nil).want(t, 201)
	fx.do(t, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"routing_key": "q", "payload": "x"}).want(t, 200)

	o := fx.do(t, "GET", "/api/overview", nil).obj(t, 200)
	fields(t, "overview", o, map[string]any{"management_version": "3.13.7", "rabbitmq_version": "3.13.7", "product_name": "Warren",
		"product_version": "0.0.0-test", "node": nodeName, "cluster_name": nodeName, "rates_mode": "basic"})
	exchanges := len(fx.do(t, "GET", "/api/exchanges", nil).list(t, 200))
	fields(t, "object_totals", o["object_totals"].(map[string]any), map[string]any{"queues": 1, "exchanges": exchanges, "connections": 0, "channels": 0, "consumers": 0})
	fields(t, "queue_totals", o["queue_totals"].(map[string]any), map[string]any{"messages": 1, "messages_ready": 1, "messages_unacknowledged": 0})
	if _, ok := o["message_stats"].(map[string]any)["publish_details"]; !ok {
		t.Errorf("message_stats without rates: %v", o["message_stats"])
	}
	var ports []float64
	for _, l := range o["listeners"].([]any) {
		ports = append(ports, l.(map[string]any)["port"].(float64))
	}
	if !slices.Contains(ports, float64(fx.amqpPort)) {
		t.Errorf("listeners %v lack the AMQP port %d", o["listeners"], fx.amqpPort)
	}
	var types []string
	for _, x := range o["exchange_types"].([]any) {
		types = append(types, x.(map[string]any)["name"].(string))
	}
	for _, want := range []string{"direct", "fanout", "topic", "headers"} {
		if !slices.Contains(types, want) {
			t.Errorf("exchange_types %v lack %s", types, want)
		}
	}

	nodes := fx.do(t, "GET", "/api/nodes", nil).list(t, 200)
	if len(nodes) != 1 {
		t.Fatalf("nodes %v", nodes)
	}
	fields(t, "node", nodes[0], map[string]any{"name": nodeName, "running": true, "type": "disc", "mem_alarm": false, "disk_free_alarm": false})
	fields(t, "node by name", fx.do(t, "GET", "/api/nodes/rabbit@test", nil).obj(t, 200), map[string]any{"name": nodeName})
	fields(t, "cluster name", fx.do(t, "GET", "/api/cluster-name", nil).obj(t, 200), map[string]any{"name": nodeName})
	fields(t, "whoami", fx.do(t, "GET", "/api/whoami", nil).obj(t, 200), map[string]any{"name": "admin", "tags": []string{"administrator"}})
	if got := fx.do(t, "GET", "/api/extensions", nil).want(t, 200); len(got.([]any)) != 0 {
		t.Errorf("extensions %v", got)
	}

	ok := map[string]any{"status": "ok"}
	amqpPort := strconv.Itoa(fx.amqpPort)
	checks := []struct {
		path   string
		status int
		want   map[string]any
	}{
		{"/api/health/checks/alarms", 200, ok},
		{"/api/health/checks/local-alarms", 200, ok},
		{"/api/health/checks/virtual-hosts", 200, ok},
		{"/api/health/checks/node-is-quorum-critical", 200, ok},
		{"/api/health/checks/node-is-mirror-sync-critical", 200, ok},
		{"/api/health/checks/port-listener/" + amqpPort, 200, map[string]any{"status": "ok", "port": fx.amqpPort}},
		{"/api/health/checks/port-listener/1", 503, map[string]any{"status": "failed", "reason": "No active listener", "missing": 1}},
		{"/api/health/checks/protocol-listener/amqp091", 200, map[string]any{"status": "ok", "protocol": "amqp091"}},
		{"/api/health/checks/protocol-listener/http", 200, ok},
		{"/api/health/checks/protocol-listener/mqtt", 503, map[string]any{"status": "failed", "missing": "mqtt"}},
		{"/api/aliveness-test/%2F", 200, ok},
		{"/api/nodes/rabbit@elsewhere", 404, map[string]any{"error": "Object Not Found"}},
		{"/api/aliveness-test/nope", 404, nil},
		{"/api/health/checks/port-listener/abc", 400, nil},
	}
	for _, c := range checks {
		r := fx.do(t, "GET", c.path, nil)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d; %s", c.path, r.status, c.status, r.body)
			continue
		}
		if c.want != nil {
			fields(t, c.path, r.obj(t, c.status), c.want)
		}
	}
	// The aliveness test leaves its queue empty.
	fields(t, "aliveness queue", fx.do(t, "GET", "/api/queues/%2F/aliveness-test", nil).obj(t, 200), map[string]any{"messages": 0})
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.do(t, "PUT", "/api/queues/%2F/q", nil).want(t, 201)
	for _, tt := range []struct{ name, method, path, body string }{
		{"truncated", "PUT", "/api/queues/%2F/q2", `{"durable":`},
		{"not an object", "PUT", "/api/exchanges/%2F/x", `[1,2]`},
		{"garbage", "POST", "/api/exchanges/%2F/amq.default/publish", `payload=x`},
		{"wrong field types", "PUT", "/api/users/x", `{"tags":{"a":1},"password":"`},
		{"bulk delete", "POST", "/api/users/bulk-delete", `{"users":"bob"}`},
	} {
		r := fx.do(t, tt.method, tt.path, tt.body)
		if r.status != 400 {
			t.Errorf("%s: status %d, want 400; %s", tt.name, r.status, r.body)
			continue
		}
		fields(t, tt.name, r.obj(t, 400), map[string]any{"error": "bad_request", "reason": "not_json"})
	}

	r := fx.do(t, "DELETE", "/api/overview", nil)
	r.wantError(t, 405, "method_not_allowed", "Method Not Allowed")
	if got := r.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow %q", got)
	}
	if got := fx.do(t, "PATCH", "/api/queues/%2F/q", nil).header.Get("Allow"); got != "DELETE, GET, HEAD, PUT" {
		t.Errorf("Allow %q", got)
	}
	if r := fx.do(t, "HEAD", "/api/overview", nil); r.status != 200 {
		t.Errorf("HEAD: status %d", r.status)
	}
	for _, p := range []string{"/api/nope", "/api", "/api/queues/%2F/q/nope", "/api/queues/a/b/c/d/e"} {
		fx.do(t, "GET", p, nil).wantError(t, 404, "Object Not Found", "Not Found")
	}
	// Unauthenticated unknown paths are 404 too: nothing is behind them.
	fx.call(t, "", "GET", "/api/nope", nil).want(t, 404)

	// Arguments of every JSON type survive.
	args := map[string]any{"x-str": "s", "x-int": 7, "x-float": 1.5, "x-bool": true, "x-list": []any{1, "a", false}, "x-table": map[string]any{"k": "v"}}
	fx.do(t, "PUT", "/api/queues/%2F/args", map[string]any{"arguments": args}).want(t, 201)
	fields(t, "arguments", fx.do(t, "GET", "/api/queues/%2F/args", nil).obj(t, 200), map[string]any{"arguments": args})
}

// A body over the limit is 413.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	for _, tt := range []struct {
		method, path string
		fill         byte
	}{
		{"PUT", "/api/queues/%2F/q", ' '},
		{"POST", "/api/definitions", 'x'},
	} {
		req := httptest.NewRequest(tt.method, tt.path, bytes.NewReader(bytes.Repeat([]byte{tt.fill}, maxBody+1)))
		req.SetBasicAuth("admin", "admin")
		w := httptest.NewRecorder()
		fx.srv.ServeHTTP(w, req)
		r := reply{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
		r.wantError(t, http.StatusRequestEntityTooLarge, "bad_request", "request body larger than")
	}
	if strings.Contains(fx.do(t, "GET", "/api/queues", nil).string(), `"q"`) {
		t.Error("the queue of the oversized request was declared")
	}
}

func (r reply) string() string { return string(r.body) }

// ?columns naming a field and one inside it must not write into the
// vhost's own maps (a policy's definition), which other requests read at
// the same time: under -race this fails if it does.
func TestColumnsLeaveObjectsAlone(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.do(t, "PUT", "/api/policies/%2F/p", map[string]any{"pattern": ".*", "definition": map[string]any{"max-length": 5}}).want(t, 201)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			fx.do(t, "GET", "/api/policies/%2F/p", nil)
		}
	}()
	for range 20 {
		list := fx.do(t, "GET", "/api/policies?columns=definition,definition.max-length", nil).list(t, 200)
		fields(t, "columns", list[0], map[string]any{"definition": map[string]any{"max-length": 5}})
	}
	<-done
}
