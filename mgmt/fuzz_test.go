package mgmt

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/warrenmq/warren/vhost"
)

// fuzzMethods are the methods FuzzAPI picks from.
var fuzzMethods = []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead, http.MethodPatch}

// FuzzAPI sends arbitrary requests as an administrator to one node (built
// once per fuzzing process): no answer may be a 500 (a handler's panic is
// recovered into one) and every body said to be JSON must be JSON.
func FuzzAPI(f *testing.F) {
	fx := newFixture(f)
	for _, s := range []step{
		{"vhost", "PUT", "/api/vhosts/v", nil, 201},
		{"queue", "PUT", "/api/queues/%2F/q", map[string]any{"arguments": map[string]any{"x-max-length": 100}}, 201},
		{"exchange", "PUT", "/api/exchanges/%2F/x", map[string]any{"type": "topic"}, 201},
		{"binding", "POST", "/api/bindings/%2F/e/x/q/q", map[string]any{"routing_key": "a.#"}, 201},
		{"policy", "PUT", "/api/policies/%2F/p", map[string]any{"pattern": "^q", "definition": map[string]any{"message-ttl": 60000}}, 201},
		{"message", "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"routing_key": "q", "payload": "hello"}, 200},
	} {
		if r := fx.do(f, s.method, s.path, s.body); r.status != s.status {
			f.Fatalf("%s: status %d: %s", s.name, r.status, r.body)
		}
	}
	// Inputs may delete or change the administrator or the vhost "/";
	// they come back before each input so that the next ones get past
	// authentication. A stored User never changes, so comparing pointers
	// tells whether it was.
	admin := fx.users.User("admin")

	defs := `{"users":[{"name":"fz","password_hash":"kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUAuEmR","hashing_algorithm":"rabbit_password_hashing_sha256","tags":["management"]}],` +
		`"vhosts":[{"name":"fv","metadata":{"description":"d","tags":["t"]}}],"permissions":[{"user":"fz","vhost":"fv","configure":".*","write":".*","read":".*"}],` +
		`"parameters":[{"component":"vhost-limits","vhost":"fv","name":"limits","value":{"max-queues":5}}],` +
		`"policies":[{"vhost":"fv","name":"p","pattern":".*","apply-to":"queues","definition":{"max-length":3},"priority":0}],` +
		`"queues":[{"name":"fq","vhost":"fv","durable":true,"auto_delete":false,"arguments":{"x-queue-type":"classic"}}],` +
		`"exchanges":[{"name":"fx","vhost":"fv","type":"direct","durable":true,"auto_delete":false,"internal":false,"arguments":{}}],` +
		`"bindings":[{"source":"fx","vhost":"fv","destination":"fq","destination_type":"queue","routing_key":"k","arguments":{}}]}`
	seeds := []struct {
		method uint8
		path   string
		body   string
	}{
		{1, "/api/queues/%2F/fq", `{"durable":true,"auto_delete":false,"arguments":{"x-max-length":5,"x-nested":{"a":[1,"b",null,{"c":1.5}]}}}`},
		{1, "/api/exchanges/%2F/fx", `{"type":"headers","durable":"false","arguments":{"alternate-exchange":"ae"}}`},
		{2, "/api/bindings/%2F/e/x/q/q", `{"routing_key":"a.*","arguments":{"x-match":"any"}}`},
		{2, "/api/bindings/%2F/e/x/e/amq.fanout", `{"routing_key":""}`},
		{3, "/api/bindings/%2F/e/x/q/q/a.%23", ``},
		{0, "/api/bindings/%2F/e/x/q/q/~", ``},
		{2, "/api/exchanges/%2F/amq.default/publish", `{"routing_key":"q","payload":"aGk=","payload_encoding":"base64","properties":{"headers":{"h":[1,{"x":true}]},"priority":9,"timestamp":-5}}`},
		{2, "/api/queues/%2F/q/get", `{"count":5,"ackmode":"reject_requeue_true","encoding":"auto","truncate":2}`},
		{2, "/api/queues/%2F/q/get", `{"count":"3","ackmode":"ack_requeue_false","encoding":"base64","truncate":"-9"}`},
		{3, "/api/queues/%2F/q/contents", ``},
		{2, "/api/queues/%2F/q/move", `{"exchange":"amq.direct","routing_key":"q","count":3}`},
		{2, "/api/queues/%2F/q/move", `{"exchange":"","count":"-1"}`},
		{2, "/api/session", `{"username":"admin","password":"admin"}`},
		{0, "/api/session", ``},
		{0, "/js/../index.html", ``},
		{2, "/api/definitions", defs},
		{2, "/api/definitions/%2F", `{"queues":[{"name":"dq","durable":"yes"}],"bindings":[{"source":"nope","destination":"dq"}]}`},
		{0, "/api/definitions?download=x.json", ``},
		{0, "/api/queues?page=99999999999&page_size=2", ``},
		{0, "/api/queues?page=1&page_size=-1", ``},
		{0, "/api/exchanges?page=2&page_size=500&name=amq&sort=name&sort_reverse=true", ``},
		{0, "/api/queues?columns=name,message_stats.publish,arguments.x-max-length,arguments&sort=message_stats.publish", ``},
		{0, "/api/policies?columns=definition,definition.message-ttl,definition.message-ttl.x", ``},
		{0, "/api/exchanges?name=(&use_regex=true", ``},
		{0, "/api/vhosts?sort=metadata.tags&columns=", ``},
		{0, "/api/queues/%2F/%2F%2F", ``},
		{0, "/api/queues/%252F", ``},
		{0, "/api/bindings/%2F/e//q/", ``},
		{0, "//api///queues", ``},
		{1, "/api/vhosts/%2Ffuzz", `{"description":"d","tags":["a","b"],"default_queue_type":"quorum"}`},
		{1, "/api/users/fuzz", `{"password_hash":"AAAA","hashing_algorithm":"rabbit_password_hashing_md5","tags":"a,,b"}`},
		{1, "/api/permissions/%2F/guest", `{"configure":"(","write":"","read":""}`},
		{1, "/api/topic-permissions/%2F/guest", `{"exchange":"amq.topic","write":"^a","read":"["}`},
		{3, "/api/topic-permissions/%2F/guest?exchange=amq.topic", ``},
		{1, "/api/policies/%2F/fp", `{"pattern":".*","apply-to":"all","definition":{"max-length":1e300},"priority":"x"}`},
		{1, "/api/operator-policies/%2F/op", `{"pattern":".*","definition":{"expires":0}}`},
		{1, "/api/vhost-limits/%2F/max-queues", `{"value":1e300}`},
		{3, "/api/vhost-limits/%2F/max-connections", ``},
		{0, "/api/health/checks/port-listener/99999999999999999999", ``},
		{0, "/api/health/checks/protocol-listener/amqp091", ``},
		{0, "/api/aliveness-test/%2F", ``},
		{2, "/api/users/bulk-delete", `{"users":["nobody",""]}`},
		{0, "/api/overview?columns=object_totals.queues,message_stats", ``},
		{0, "/api/nodes/rabbit@test?columns=name,uptime", ``},
		{0, "/api/connections/nope/channels", ``},
		{3, "/api/connections/nope", ``},
		{5, "/api/queues", ``},
		{1, "/api/queues/%2F/bad", `{`},
		{4, "/api/whoami", ``},
		{3, "/api/vhosts/v", ``},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, m uint8, path string, body []byte) {
		if fx.users.User("admin") != admin {
			if err := fx.users.PutUser(admin); err != nil {
				t.Fatal(err)
			}
			admin = fx.users.User("admin")
		}
		if fx.vhosts.Get(vhost.DefaultName) == nil {
			if _, err := fx.vhosts.Add(vhost.DefaultName); err != nil {
				t.Fatal(err)
			}
		}
		if fx.users.Permission(vhost.DefaultName, "admin") == nil {
			if err := fx.users.SetPermission(vhost.DefaultName, "admin", ".*", ".*", ".*"); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.HasPrefix(path, "/") {
			path = "/api/" + path
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return // the HTTP server answers 400 before the API sees it
		}
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		req := httptest.NewRequest(method, "/", bytes.NewReader(body))
		req.URL, req.RequestURI = u, path
		req.SetBasicAuth("admin", "admin")
		w := httptest.NewRecorder()
		fx.srv.ServeHTTP(w, req)
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s %q: 500: %s", method, path, body, w.Body)
		}
		if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s %q: body is not JSON: %q", method, path, body, w.Body)
		}
	})
}
