package mgmt

import (
	"fmt"
	"testing"
)

func TestMoveMessages(t *testing.T) {
	fx := newFixture(t)
	for _, q := range []string{"dlq", "work"} {
		fx.do(t, "PUT", "/api/queues/%2F/"+q, map[string]any{"durable": true}).want(t, 201)
	}
	fx.do(t, "POST", "/api/bindings/%2F/e/amq.direct/q/work", map[string]any{"routing_key": "retry"}).want(t, 201)
	publish := func(n int) {
		for i := range n {
			fx.do(t, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{
				"routing_key": "dlq", "payload": fmt.Sprint("m", i), "payload_encoding": "string",
				"properties": map[string]any{"delivery_mode": 2, "headers": map[string]any{"x-first-death-reason": "rejected"}},
			}).want(t, 200)
		}
	}
	depth := func(q string) float64 {
		return fx.do(t, "GET", "/api/queues/%2F/"+q, nil).obj(t, 200)["messages"].(float64)
	}
	move := func(body map[string]any) map[string]any {
		return fx.do(t, "POST", "/api/queues/%2F/dlq/move", body).obj(t, 200)
	}

	// Three messages move, in order, with their properties.
	publish(3)
	if r := move(map[string]any{"exchange": "amq.direct", "routing_key": "retry"}); r["moved"] != 3.0 || r["reason"] != nil {
		t.Fatalf("move: %v", r)
	}
	if d, w := depth("dlq"), depth("work"); d != 0 || w != 3 {
		t.Fatalf("after the move: dlq %v, work %v", d, w)
	}
	got := fx.do(t, "POST", "/api/queues/%2F/work/get", map[string]any{"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"}).list(t, 200)
	for i, m := range got {
		props := m["properties"].(map[string]any)
		if m["payload"] != fmt.Sprint("m", i) || m["routing_key"] != "retry" || m["exchange"] != "amq.direct" ||
			props["headers"].(map[string]any)["x-first-death-reason"] != "rejected" || props["delivery_mode"] != 2.0 {
			t.Errorf("moved message %d: %v", i, m)
		}
	}

	// count bounds it.
	publish(2)
	if r := move(map[string]any{"exchange": "amq.direct", "routing_key": "retry", "count": 1}); r["moved"] != 1.0 {
		t.Fatalf("move count 1: %v", r)
	}
	if d := depth("dlq"); d != 1 {
		t.Fatalf("dlq after moving 1 of 2: %v", d)
	}

	// A message that routes nowhere stays, and the move says why. Without
	// routing_key each message keeps its own ("dlq", unbound on amq.direct).
	fx.do(t, "POST", "/api/queues/%2F/dlq/move", map[string]any{"exchange": "amq.direct"}).want(t, 400)
	if d := depth("dlq"); d != 1 {
		t.Fatalf("dlq after an unroutable move: %v", d)
	}

	fx.do(t, "POST", "/api/queues/%2F/dlq/move", map[string]any{}).want(t, 400)
	fx.do(t, "POST", "/api/queues/%2F/dlq/move", map[string]any{"exchange": "amq.direct", "routing_key": 7}).want(t, 400)
	fx.do(t, "POST", "/api/queues/%2F/dlq/move", map[string]any{"exchange": "nope"}).want(t, 404)
	fx.do(t, "POST", "/api/queues/%2F/nope/move", map[string]any{"exchange": "amq.direct"}).want(t, 404)
	if d := depth("dlq"); d != 1 {
		t.Fatalf("dlq after refused moves: %v", d)
	}

	// A move that stops half-way says so, and keeps what it moved: here a
	// topic permission lets through one routing key of two.
	fx.do(t, "PUT", "/api/queues/%2F/mixed", map[string]any{"durable": true}).want(t, 201)
	for _, k := range []string{"in.ok", "in.bad"} {
		fx.do(t, "POST", "/api/bindings/%2F/e/amq.direct/q/mixed", map[string]any{"routing_key": k}).want(t, 201)
		fx.do(t, "POST", "/api/exchanges/%2F/amq.direct/publish", map[string]any{"routing_key": k, "payload": k, "payload_encoding": "string",
			"properties": map[string]any{}}).want(t, 200)
	}
	fx.do(t, "POST", "/api/bindings/%2F/e/amq.topic/q/work", map[string]any{"routing_key": "in.#"}).want(t, 201)
	fx.addUser(t, "mover", []string{"management"}, "/")
	if err := fx.users.SetTopicPermission("/", "mover", "amq.topic", "^in\\.ok$", ".*"); err != nil {
		t.Fatal(err)
	}
	before := depth("work")
	r := fx.call(t, "mover:pw", "POST", "/api/queues/%2F/mixed/move", map[string]any{"exchange": "amq.topic"}).obj(t, 200)
	if r["moved"] != 1.0 || r["reason"] == nil {
		t.Fatalf("a move stopped by a topic permission: %v", r)
	}
	if m, w := depth("mixed"), depth("work"); m != 1 || w != before+1 {
		t.Fatalf("after a move stopped half-way: mixed %v, work %v", m, w)
	}

	// The mover needs write on the exchange as a publisher would.
	fx.addUser(t, "reader", []string{"management"})
	if err := fx.users.SetPermission("/", "reader", "", "", ".*"); err != nil {
		t.Fatal(err)
	}
	fx.call(t, "reader:pw", "POST", "/api/queues/%2F/dlq/move", map[string]any{"exchange": "amq.direct", "routing_key": "retry"}).want(t, 403)
	if d := depth("dlq"); d != 1 {
		t.Fatalf("dlq after a refused move: %v", d)
	}
}
