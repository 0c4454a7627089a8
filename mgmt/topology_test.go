package mgmt

import (
	"net/http"
	"testing"
)

// step is one request and the status it must get.
type step struct {
	name   string
	method string
	path   string
	body   any
	status int
}

// run sends the steps in order as admin, checking each status.
func (fx *fixture) run(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		r := fx.do(t, s.method, s.path, s.body)
		if r.status != s.status {
			t.Errorf("%s: %s %s: status %d, want %d; body %s", s.name, s.method, s.path, r.status, s.status, r.body)
		}
	}
}

func TestExchanges(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.run(t, []step{
		{"create", "PUT", "/api/exchanges/%2F/x1", map[string]any{"type": "topic", "durable": true, "arguments": map[string]any{"alternate-exchange": "ae"}}, 201},
		{"same again", "PUT", "/api/exchanges/%2F/x1", map[string]any{"type": "topic", "arguments": map[string]any{"alternate-exchange": "ae"}}, 204},
		{"rabbitmqadmin strings", "PUT", "/api/exchanges/%2F/x2", map[string]any{"type": "fanout", "durable": "false", "auto_delete": "true", "arguments": ""}, 201},
		{"name with a slash", "PUT", "/api/exchanges/%2F/a%2Fb", map[string]any{"type": "direct"}, 201},
		{"no type", "PUT", "/api/exchanges/%2F/x3", map[string]any{}, 400},
		{"unknown type", "PUT", "/api/exchanges/%2F/x3", map[string]any{"type": "nope"}, 400},
		{"bad boolean", "PUT", "/api/exchanges/%2F/x3", map[string]any{"type": "direct", "durable": "maybe"}, 400},
		{"bad arguments", "PUT", "/api/exchanges/%2F/x3", map[string]any{"type": "direct", "arguments": 5}, 400},
		{"unknown vhost", "PUT", "/api/exchanges/nope/x3", map[string]any{"type": "direct"}, 404},
		{"get unknown", "GET", "/api/exchanges/%2F/nope", nil, 404},
		{"get unknown vhost", "GET", "/api/exchanges/nope/x1", nil, 404},
		{"list unknown vhost", "GET", "/api/exchanges/nope", nil, 404},
		{"delete unknown", "DELETE", "/api/exchanges/%2F/nope", nil, 404},
	})

	r := fx.do(t, "PUT", "/api/exchanges/%2F/x1", map[string]any{"type": "direct"})
	r.wantError(t, 400, "bad_request", "inequivalent arg 'type' for exchange 'x1' in vhost '/': received 'direct' but current is 'topic'")

	x := fx.do(t, "GET", "/api/exchanges/%2F/x1", nil).obj(t, 200)
	fields(t, "x1", x, map[string]any{"name": "x1", "vhost": "/", "type": "topic", "durable": true, "auto_delete": false,
		"internal": false, "arguments": map[string]any{"alternate-exchange": "ae"}, "policy": nil})
	x = fx.do(t, "GET", "/api/exchanges/%2F/x2", nil).obj(t, 200)
	fields(t, "x2", x, map[string]any{"type": "fanout", "durable": false, "auto_delete": true, "arguments": map[string]any{}})
	fields(t, "a/b", fx.do(t, "GET", "/api/exchanges/%2F/a%2Fb", nil).obj(t, 200), map[string]any{"name": "a/b"})
	fields(t, "default", fx.do(t, "GET", "/api/exchanges/%2F/amq.default", nil).obj(t, 200), map[string]any{"name": "", "type": "direct"})

	list := fx.do(t, "GET", "/api/exchanges/%2F", nil).list(t, 200)
	want := map[string]bool{"": true, "amq.direct": true, "amq.fanout": true, "amq.topic": true, "amq.headers": true, "x1": true, "x2": true, "a/b": true}
	for _, n := range names(list) {
		delete(want, n)
	}
	if len(want) > 0 {
		t.Errorf("exchanges missing from the list: %v", want)
	}

	// if-unused: a bound exchange stays.
	fx.run(t, []step{
		{"queue", "PUT", "/api/queues/%2F/q", map[string]any{}, 201},
		{"bind", "POST", "/api/bindings/%2F/e/x1/q/q", map[string]any{"routing_key": "k"}, 201},
		{"if-unused in use", "DELETE", "/api/exchanges/%2F/x1?if-unused=true", nil, 400},
		{"delete", "DELETE", "/api/exchanges/%2F/x1", nil, 204},
		{"gone", "GET", "/api/exchanges/%2F/x1", nil, 404},
		{"delete slash", "DELETE", "/api/exchanges/%2F/a%2Fb", nil, 204},
		{"if-unused unused", "DELETE", "/api/exchanges/%2F/x2?if-unused=true", nil, 204},
	})
}

func TestQueues(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.run(t, []step{
		{"create", "PUT", "/api/queues/%2F/q1", map[string]any{"durable": true, "arguments": map[string]any{"x-max-length": 10}}, 201},
		{"same again", "PUT", "/api/queues/%2F/q1", map[string]any{"durable": true, "arguments": map[string]any{"x-max-length": 10}}, 204},
		{"empty body", "PUT", "/api/queues/%2F/q2", nil, 201},
		{"name with a slash", "PUT", "/api/queues/%2F/a%2Fb", map[string]any{"durable": false}, 201},
		{"bad argument type", "PUT", "/api/queues/%2F/q3", map[string]any{"arguments": map[string]any{"x-max-length": "ten"}}, 400},
		{"unknown vhost", "PUT", "/api/queues/nope/q", map[string]any{}, 404},
		{"get unknown", "GET", "/api/queues/%2F/nope", nil, 404},
		{"get unknown vhost", "GET", "/api/queues/nope/q1", nil, 404},
		{"delete unknown", "DELETE", "/api/queues/%2F/nope", nil, 404},
	})
	r := fx.do(t, "PUT", "/api/queues/%2F/q1", map[string]any{"durable": false})
	r.wantError(t, 400, "bad_request", "inequivalent arg 'durable' for queue 'q1' in vhost '/'")

	q := fx.do(t, "GET", "/api/queues/%2F/q1", nil).obj(t, 200)
	fields(t, "q1", q, map[string]any{"name": "q1", "vhost": "/", "type": "classic", "durable": true, "auto_delete": false,
		"exclusive": false, "arguments": map[string]any{"x-max-length": 10}, "messages": 0, "messages_ready": 0,
		"messages_unacknowledged": 0, "consumers": 0, "state": "running", "policy": nil, "node": nodeName})
	fields(t, "a/b", fx.do(t, "GET", "/api/queues/%2F/a%2Fb", nil).obj(t, 200), map[string]any{"name": "a/b", "durable": false})

	// Messages count in the queue's fields; if-empty keeps a queue that
	// has some.
	for range 3 {
		r := fx.do(t, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"routing_key": "q1", "payload": "m", "payload_encoding": "string", "properties": map[string]any{}})
		fields(t, "publish", r.obj(t, 200), map[string]any{"routed": true})
	}
	q = fx.do(t, "GET", "/api/queues/%2F/q1", nil).obj(t, 200)
	fields(t, "q1 with messages", q, map[string]any{"messages": 3, "messages_ready": 3, "messages_unacknowledged": 0})
	fx.run(t, []step{
		{"if-empty with messages", "DELETE", "/api/queues/%2F/q1?if-empty=true", nil, 400},
		{"purge", "DELETE", "/api/queues/%2F/q1/contents", nil, 204},
		{"purge unknown", "DELETE", "/api/queues/%2F/nope/contents", nil, 404},
		{"if-empty empty", "DELETE", "/api/queues/%2F/q1?if-empty=true&if-unused=true", nil, 204},
		{"gone", "GET", "/api/queues/%2F/q1", nil, 404},
		{"delete slash", "DELETE", "/api/queues/%2F/a%2Fb", nil, 204},
	})
	list := fx.do(t, "GET", "/api/queues/%2F", nil).list(t, 200)
	if got := names(list); len(got) != 1 || got[0] != "q2" {
		t.Errorf("queues %v, want [q2]", got)
	}
}

func TestBindings(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.run(t, []step{
		{"queue", "PUT", "/api/queues/%2F/q", nil, 201},
		{"exchange", "PUT", "/api/exchanges/%2F/x", map[string]any{"type": "topic"}, 201},
		{"exchange 2", "PUT", "/api/exchanges/%2F/y", map[string]any{"type": "fanout"}, 201},
	})
	r := fx.do(t, "POST", "/api/bindings/%2F/e/x/q/q", map[string]any{"routing_key": "a.#", "arguments": map[string]any{}})
	r.want(t, 201)
	// RabbitMQ's Location is relative to the request's path, the
	// properties key escaped once more.
	if loc := r.header.Get("Location"); loc != "q/a.%2523" {
		t.Errorf("Location %q, want %q", loc, "q/a.%2523")
	}
	fields(t, "at Location", fx.do(t, "GET", "/api/bindings/%2F/e/x/q/q/a.%2523", nil).obj(t, 200), map[string]any{"routing_key": "a.#"})
	fx.do(t, "POST", "/api/bindings/%2F/e/x/q/q", map[string]any{"routing_key": "k", "arguments": map[string]any{"x-a": 1}}).want(t, 201)
	fx.do(t, "POST", "/api/bindings/%2F/e/x/e/y", map[string]any{}).want(t, 201)

	list := fx.do(t, "GET", "/api/bindings/%2F/e/x/q/q", nil).list(t, 200)
	if len(list) != 2 {
		t.Fatalf("bindings %v, want 2", list)
	}
	fields(t, "binding", list[0], map[string]any{"source": "x", "vhost": "/", "destination": "q", "destination_type": "queue",
		"routing_key": "a.#", "arguments": map[string]any{}, "properties_key": "a.%23"})
	props := list[1]["properties_key"].(string)
	if props == "k" || props[:2] != "k~" {
		t.Errorf("properties_key of a binding with arguments %q, want k~<hash>", props)
	}
	fields(t, "by props", fx.do(t, "GET", "/api/bindings/%2F/e/x/q/q/"+props, nil).obj(t, 200), map[string]any{"routing_key": "k", "arguments": map[string]any{"x-a": 1}})
	fields(t, "e2e", fx.do(t, "GET", "/api/bindings/%2F/e/x/e/y/~", nil).obj(t, 200), map[string]any{"destination_type": "exchange", "destination": "y", "properties_key": "~"})

	// The default binding shows in the queue's bindings.
	qb := fx.do(t, "GET", "/api/queues/%2F/q/bindings", nil).list(t, 200)
	if len(qb) != 3 || qb[0]["source"] != "" {
		t.Errorf("queue bindings %v, want the default one and 2", qb)
	}
	if n := len(fx.do(t, "GET", "/api/exchanges/%2F/x/bindings/source", nil).list(t, 200)); n != 3 {
		t.Errorf("%d bindings from x, want 3", n)
	}
	if n := len(fx.do(t, "GET", "/api/exchanges/%2F/y/bindings/destination", nil).list(t, 200)); n != 1 {
		t.Errorf("%d bindings to y, want 1", n)
	}
	fx.run(t, []step{
		{"unknown source", "POST", "/api/bindings/%2F/e/nope/q/q", map[string]any{}, 404},
		{"unknown queue", "POST", "/api/bindings/%2F/e/x/q/nope", map[string]any{}, 404},
		{"unknown vhost", "POST", "/api/bindings/nope/e/x/q/q", map[string]any{}, 404},
		{"bad key", "POST", "/api/bindings/%2F/e/x/q/q", map[string]any{"routing_key": 5}, 400},
		{"delete by props as it reads", "DELETE", "/api/bindings/%2F/e/x/q/q/a.%23", nil, 204},
		{"delete again, escaped", "DELETE", "/api/bindings/%2F/e/x/q/q/a.%2523", nil, 404},
		{"delete with args", "DELETE", "/api/bindings/%2F/e/x/q/q/" + props, nil, 204},
		{"delete e2e", "DELETE", "/api/bindings/%2F/e/x/e/y/~", nil, 204},
		{"bindings of unknown queue", "GET", "/api/queues/%2F/nope/bindings", nil, 404},
		{"bindings of unknown exchange", "GET", "/api/exchanges/%2F/nope/bindings/source", nil, 404},
	})
	if n := len(fx.do(t, "GET", "/api/bindings/%2F", nil).list(t, 200)); n != 1 {
		t.Errorf("%d bindings left, want the default one", n)
	}
}

func TestPublishAndGet(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.do(t, "PUT", "/api/queues/%2F/q", nil).want(t, 201)
	publish := func(body map[string]any) map[string]any {
		t.Helper()
		return fx.do(t, "POST", "/api/exchanges/%2F/amq.default/publish", body).obj(t, 200)
	}
	fields(t, "routed", publish(map[string]any{"routing_key": "q", "payload": "hello", "payload_encoding": "string",
		"properties": map[string]any{"content_type": "text/plain", "delivery_mode": 2, "priority": 3, "headers": map[string]any{"h": "v", "n": 7}, "message_id": "m1", "timestamp": 1700000000}}), map[string]any{"routed": true})
	fields(t, "binary", publish(map[string]any{"routing_key": "q", "payload": "AP8=", "payload_encoding": "base64"}), map[string]any{"routed": true})
	fields(t, "unroutable", publish(map[string]any{"routing_key": "nowhere", "payload": "x"}), map[string]any{"routed": false})
	fx.run(t, []step{
		{"bad base64", "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"payload": "!!", "payload_encoding": "base64"}, 400},
		{"bad encoding", "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"payload": "x", "payload_encoding": "rot13"}, 400},
		{"bad priority", "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{"priority": 300}}, 400},
		{"bad properties", "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": "x"}, 400},
		{"unknown exchange", "POST", "/api/exchanges/%2F/nope/publish", map[string]any{"payload": "x"}, 404},
		{"unknown vhost", "POST", "/api/exchanges/nope/amq.default/publish", map[string]any{"payload": "x"}, 404},
		{"get from unknown queue", "POST", "/api/queues/%2F/nope/get", map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, 404},
		{"bad ackmode", "POST", "/api/queues/%2F/q/get", map[string]any{"count": 1, "ackmode": "sometimes", "encoding": "auto"}, 400},
		{"bad encoding", "POST", "/api/queues/%2F/q/get", map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "hex"}, 400},
		{"bad count", "POST", "/api/queues/%2F/q/get", map[string]any{"count": 0, "ackmode": "ack_requeue_true", "encoding": "auto"}, 400},
	})

	get := func(body map[string]any) []map[string]any {
		t.Helper()
		return fx.do(t, "POST", "/api/queues/%2F/q/get", body).list(t, 200)
	}
	// Requeued: both come back, the second time redelivered.
	msgs := get(map[string]any{"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000})
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	fields(t, "first", msgs[0], map[string]any{"payload": "hello", "payload_bytes": 5, "payload_encoding": "string", "redelivered": false,
		"exchange": "", "routing_key": "q", "message_count": 1,
		"properties": map[string]any{"content_type": "text/plain", "delivery_mode": 2, "priority": 3, "headers": map[string]any{"h": "v", "n": 7}, "message_id": "m1", "timestamp": 1700000000}})
	fields(t, "binary", msgs[1], map[string]any{"payload": "AP8=", "payload_bytes": 2, "payload_encoding": "base64", "message_count": 0, "properties": map[string]any{}})

	// rabbitmqadmin's strings; base64 encoding; truncate.
	msgs = get(map[string]any{"count": "1", "ackmode": "reject_requeue_true", "encoding": "base64", "truncate": "2"})
	fields(t, "truncated", msgs[0], map[string]any{"payload": "aGU=", "payload_bytes": 5, "payload_encoding": "base64", "redelivered": true})
	// Acknowledged: gone.
	msgs = get(map[string]any{"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
	fields(t, "acked", msgs[0], map[string]any{"payload": "hello", "redelivered": true, "message_count": 1})
	msgs = get(map[string]any{"count": 10, "ackmode": "reject_requeue_false", "encoding": "auto"})
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	if msgs = get(map[string]any{"count": 10, "ackmode": "ack_requeue_true", "encoding": "auto"}); len(msgs) != 0 {
		t.Errorf("empty queue gave %v", msgs)
	}
	fields(t, "queue", fx.do(t, "GET", "/api/queues/%2F/q", nil).obj(t, 200), map[string]any{"messages": 0, "messages_unacknowledged": 0})
}

func TestPurge(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.do(t, "PUT", "/api/queues/%2F/q", nil).want(t, 201)
	for range 5 {
		fx.do(t, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"routing_key": "q", "payload": "x"}).want(t, 200)
	}
	fields(t, "before", fx.do(t, "GET", "/api/queues/%2F/q", nil).obj(t, 200), map[string]any{"messages_ready": 5})
	fx.do(t, "DELETE", "/api/queues/%2F/q/contents", nil).want(t, http.StatusNoContent)
	fields(t, "after", fx.do(t, "GET", "/api/queues/%2F/q", nil).obj(t, 200), map[string]any{"messages_ready": 0, "messages": 0})
	fx.do(t, "POST", "/api/queues/%2F/q/contents", nil).want(t, http.StatusMethodNotAllowed)
}
