package mgmt

import (
	"math"
	"net/http"
	"net/url"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// dial opens an AMQP connection as cred and a channel, closed at cleanup.
func (fx *fixture) dial(t *testing.T, cred string) (*amqp091.Connection, *amqp091.Channel) {
	t.Helper()
	conn, err := amqp091.Dial("amqp://" + cred + "@" + fx.amqpAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return conn, ch
}

// scrape reads a metrics endpoint.
func (fx *fixture) scrape(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := fx.metrics.Client().Get(fx.metrics.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return fams
}

// value is the value of the family's series with the labels (all of
// them given as name, value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.do(t, "PUT", "/api/queues/%2F/mq", nil).want(t, 201)
	fx.do(t, "PUT", "/api/queues/%2F/other", nil).want(t, 201)
	for range 3 {
		fx.do(t, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"routing_key": "mq", "payload": "x"}).want(t, 200)
	}
	// An AMQP publisher counts in the global counters.
	_, ch := fx.dial(t, adminCred)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	if err := ch.Publish("", "other", false, false, amqp091.Publishing{Body: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-confirms:
		if !c.Ack {
			t.Fatal("publish nacked")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no confirm within 10s")
	}

	// A refused login counts, with the successful one above.
	if c, err := amqp091.Dial("amqp://" + adminCred + "wrong@" + fx.amqpAddr + "/"); err == nil {
		c.Close()
		t.Fatal("a wrong password logged in")
	}

	fams := fx.scrape(t, "/metrics")
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64 // -1: any value
	}{
		{"rabbitmq_auth_attempts_total", []string{"protocol", "amqp091"}, 2},
		{"rabbitmq_auth_attempts_succeeded_total", []string{"protocol", "amqp091"}, 1},
		{"rabbitmq_auth_attempts_failed_total", []string{"protocol", "amqp091"}, 1},
		{"rabbitmq_connections", nil, 1},
		{"rabbitmq_channels", nil, 1},
		{"rabbitmq_consumers", nil, 0},
		{"rabbitmq_queues", nil, 2},
		{"rabbitmq_queue_messages_ready", nil, 4},
		{"rabbitmq_queue_messages_unacked", nil, 0},
		{"rabbitmq_queue_messages", nil, 4},
		{"rabbitmq_queue_messages_bytes", nil, -1},
		{"rabbitmq_connections_opened_total", nil, 2}, // the refused one too
		{"rabbitmq_channels_opened_total", nil, 1},
		{"rabbitmq_global_messages_received_total", []string{"protocol", "amqp091"}, 1},
		{"rabbitmq_global_messages_received_confirm_total", []string{"protocol", "amqp091"}, 1},
		{"rabbitmq_queues_created_total", nil, 2},
		{"rabbitmq_queues_deleted_total", nil, 0},
		{"rabbitmq_global_messages_routed_total", []string{"protocol", "amqp091"}, 1},
		{"rabbitmq_global_messages_confirmed_total", []string{"protocol", "amqp091"}, 1},
		{"rabbitmq_global_messages_delivered_total", []string{"protocol", "amqp091"}, 0},
		{"rabbitmq_identity_info", []string{"rabbitmq_node", nodeName}, 1},
		{"rabbitmq_build_info", []string{"rabbitmq_version", "3.13.7"}, 1},
		{"rabbitmq_process_resident_memory_bytes", nil, -1},
	} {
		v, ok := value(fams, tt.name, tt.labels...)
		switch {
		case !ok:
			t.Errorf("no series %s%v", tt.name, tt.labels)
		case tt.want >= 0 && v != tt.want:
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, v, tt.want)
		}
	}

	per := fx.scrape(t, "/metrics/per-object")
	for _, tt := range []struct {
		name, queue string
		want        float64
	}{
		{"rabbitmq_queue_messages_ready", "mq", 3},
		{"rabbitmq_queue_messages_ready", "other", 1},
		{"rabbitmq_queue_messages_unacked", "mq", 0},
		{"rabbitmq_queue_messages", "mq", 3},
		{"rabbitmq_queue_consumers", "mq", 0},
		{"rabbitmq_queue_messages_published_total", "mq", 3},
	} {
		if v, ok := value(per, tt.name, "vhost", "/", "queue", tt.queue); !ok || v != tt.want {
			t.Errorf("%s{queue=%q} = %v (found %v), want %v", tt.name, tt.queue, v, ok, tt.want)
		}
	}
	if resp, err := fx.metrics.Client().Post(fx.metrics.URL+"/metrics", "text/plain", nil); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: status %d", resp.StatusCode)
	}
}

// Connections, channels and consumers as the API shows them, and closing a
// connection through it.
func TestConnections(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.addUser(t, "mgmt", []string{"management"}, "/")
	fx.do(t, "PUT", "/api/queues/%2F/cq", nil).want(t, 201)
	conn, ch := fx.dial(t, adminCred)
	if _, err := ch.Consume("cq", "ctag", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))

	conns := fx.do(t, "GET", "/api/connections", nil).list(t, 200)
	if len(conns) != 1 {
		t.Fatalf("connections %v", conns)
	}
	c := conns[0]
	fields(t, "connection", c, map[string]any{"user": "admin", "vhost": "/", "state": "running", "protocol": "AMQP 0-9-1",
		"channels": 1, "node": nodeName, "auth_mechanism": "PLAIN"})
	name := c["name"].(string)
	path := "/api/connections/" + url.PathEscape(name)
	fields(t, "connection by name", fx.do(t, "GET", path, nil).obj(t, 200), map[string]any{"name": name})
	if n := len(fx.do(t, "GET", "/api/vhosts/%2F/connections", nil).list(t, 200)); n != 1 {
		t.Errorf("%d connections on /, want 1", n)
	}
	chans := fx.do(t, "GET", path+"/channels", nil).list(t, 200)
	if len(chans) != 1 {
		t.Fatalf("channels %v", chans)
	}
	fields(t, "channel", chans[0], map[string]any{"number": 1, "user": "admin", "vhost": "/", "consumer_count": 1,
		"connection_details": map[string]any{"name": name, "peer_host": c["peer_host"], "peer_port": c["peer_port"]}})
	chName := chans[0]["name"].(string)
	fields(t, "channel by name", fx.do(t, "GET", "/api/channels/"+url.PathEscape(chName), nil).obj(t, 200), map[string]any{"name": chName})
	cons := fx.do(t, "GET", "/api/consumers/%2F", nil).list(t, 200)
	if len(cons) != 1 {
		t.Fatalf("consumers %v", cons)
	}
	fields(t, "consumer", cons[0], map[string]any{"consumer_tag": "ctag", "ack_required": true, "exclusive": false,
		"queue": map[string]any{"name": "cq", "vhost": "/"}})
	fields(t, "queue with a consumer", fx.do(t, "GET", "/api/queues/%2F/cq", nil).obj(t, 200), map[string]any{"consumers": 1})
	fields(t, "overview", fx.do(t, "GET", "/api/overview", nil).obj(t, 200)["object_totals"].(map[string]any),
		map[string]any{"connections": 1, "channels": 1, "consumers": 1})

	// A management user sees only its own connections.
	if n := len(fx.call(t, "mgmt:pw", "GET", "/api/connections", nil).list(t, 200)); n != 0 {
		t.Errorf("mgmt sees %d connections, want 0", n)
	}
	fx.call(t, "mgmt:pw", "DELETE", path, nil).want(t, 404)
	fx.do(t, "GET", "/api/connections/nope", nil).want(t, 404)

	req, err := http.NewRequest("DELETE", fx.api.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("X-Reason", "maintenance")
	resp, err := fx.api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE connection: status %d", resp.StatusCode)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || e.Reason != "CONNECTION_FORCED - maintenance" {
			t.Errorf("connection closed with %v, want 320 CONNECTION_FORCED - maintenance", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed within 10s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(fx.do(t, "GET", "/api/connections", nil).list(t, 200)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("connection still listed after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Values AMQP carries and JSON does not (a NaN or infinite double) do not
// make the objects that hold them unreadable.
func TestNonFiniteArguments(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	_, ch := fx.dial(t, adminCred)
	args := amqp091.Table{"x-nan": math.NaN(), "x-inf": math.Inf(-1), "x-f32": float32(math.Inf(1))}
	if _, err := ch.QueueDeclare("nq", false, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", "nq", false, false, amqp091.Publishing{Headers: amqp091.Table{"h": math.NaN()}, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	fields(t, "queue", fx.do(t, "GET", "/api/queues/%2F/nq", nil).obj(t, 200),
		map[string]any{"arguments": map[string]any{"x-nan": "NaN", "x-inf": "-Inf", "x-f32": "+Inf"}})
	fx.do(t, "GET", "/api/queues", nil).want(t, 200)
	fx.do(t, "GET", "/api/definitions", nil).want(t, 200)
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs := fx.do(t, "POST", "/api/queues/%2F/nq/get", map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}).list(t, 200)
		if len(msgs) == 1 {
			fields(t, "message", msgs[0], map[string]any{"properties": map[string]any{"headers": map[string]any{"h": "NaN"}}})
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message not in the queue after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
