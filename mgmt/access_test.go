package mgmt

import (
	"slices"
	"testing"

	"github.com/warrenmq/warren/auth"
)

// What the API does for a user is checked as AMQP checks it: topic
// permissions on publish and bind, the alternate exchange of a declared
// exchange, the dead-letter exchange of a declared queue, and a publish's
// user_id, expiration and size.
func TestAPIChecksAsAMQP(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.addUser(t, "bob", []string{auth.TagManagement}, "/")
	if err := fx.users.SetTopicPermission("/", "bob", "t", "^allowed", "^allowed"); err != nil {
		t.Fatal(err)
	}
	fx.addUser(t, "carol", []string{auth.TagManagement})
	if err := fx.users.SetPermission("/", "carol", "^mine", "^mine", "^mine"); err != nil {
		t.Fatal(err)
	}
	fx.run(t, []step{
		{"topic exchange", "PUT", "/api/exchanges/%2F/t", map[string]any{"type": "topic"}, 201},
		{"secret exchange", "PUT", "/api/exchanges/%2F/secret", map[string]any{"type": "fanout"}, 201},
		{"queue", "PUT", "/api/queues/%2F/q", map[string]any{}, 201},
		{"a binding to delete", "POST", "/api/bindings/%2F/e/t/q/q", map[string]any{"routing_key": "secret.#"}, 201},
	})
	refused := func(text string) func(t *testing.T, r reply) {
		return func(t *testing.T, r reply) { r.wantError(t, 403, "not_authorised", text) }
	}
	precondition := func(text string) func(t *testing.T, r reply) {
		return func(t *testing.T, r reply) { r.wantError(t, 400, "bad_request", text) }
	}
	ok := func(status int) func(t *testing.T, r reply) {
		return func(t *testing.T, r reply) { r.want(t, status) }
	}
	publish := func(key string, props map[string]any) map[string]any {
		return map[string]any{"routing_key": key, "payload": "x", "payload_encoding": "string", "properties": props}
	}
	for _, tt := range []struct {
		name, cred, method, path string
		body                     any
		check                    func(t *testing.T, r reply)
	}{
		{"publish with an allowed topic", "bob:pw", "POST", "/api/exchanges/%2F/t/publish", publish("allowed.key", nil), ok(200)},
		{"publish outside the topic permission", "bob:pw", "POST", "/api/exchanges/%2F/t/publish", publish("secret.key", nil),
			refused("write access to topic 'secret.key' in exchange 't' in vhost '/' refused for user 'bob'")},
		{"bind outside the topic permission", "bob:pw", "POST", "/api/bindings/%2F/e/t/q/q", map[string]any{"routing_key": "secret.#"},
			refused("read access to topic 'secret.#' in exchange 't' in vhost '/' refused for user 'bob'")},
		{"unbind outside the topic permission", "bob:pw", "DELETE", "/api/bindings/%2F/e/t/q/q/secret.%23", nil,
			refused("read access to topic 'secret.#' in exchange 't' in vhost '/' refused for user 'bob'")},
		{"another user's user_id", "bob:pw", "POST", "/api/exchanges/%2F/amq.default/publish", publish("q", map[string]any{"user_id": "admin"}),
			precondition("user_id property set to 'admin' but authenticated user was 'bob'")},
		{"own user_id", "bob:pw", "POST", "/api/exchanges/%2F/amq.default/publish", publish("q", map[string]any{"user_id": "bob"}), ok(200)},
		{"bad expiration", "bob:pw", "POST", "/api/exchanges/%2F/amq.default/publish", publish("q", map[string]any{"expiration": "soon"}),
			precondition("invalid expiration 'soon': no_integer")},
		{"alternate exchange not writable", "carol:pw", "PUT", "/api/exchanges/%2F/mine", map[string]any{"type": "fanout",
			"arguments": map[string]any{"alternate-exchange": "secret"}},
			refused("access to exchange 'secret' in vhost '/' refused for user 'carol'")},
		{"alternate exchange writable", "carol:pw", "PUT", "/api/exchanges/%2F/mine", map[string]any{"type": "fanout",
			"arguments": map[string]any{"alternate-exchange": "mine.ae"}}, ok(201)},
		{"dead-letter exchange not writable", "carol:pw", "PUT", "/api/queues/%2F/mine.q", map[string]any{
			"arguments": map[string]any{"x-dead-letter-exchange": "secret"}},
			refused("access to exchange 'secret' in vhost '/' refused for user 'carol'")},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, fx.call(t, tt.cred, tt.method, tt.path, tt.body)) })
	}
}

// The aliveness test declares a queue: a monitoring user, who may read any
// vhost, still needs access to the one it tests.
func TestAlivenessNeedsVhostAccess(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.do(t, "PUT", "/api/vhosts/other", map[string]any{}).want(t, 201)
	fx.addUser(t, "mon", []string{auth.TagMonitoring}, "/")
	fx.call(t, "mon:pw", "GET", "/api/aliveness-test/other", nil).wantError(t, 403, "not_authorised", "Not authorised to access virtual host")
	if qs := fx.vhosts.Get("other").Queues(); len(qs) != 0 {
		t.Fatalf("the refused aliveness test left %d queues", len(qs))
	}
	fx.call(t, "mon:pw", "GET", "/api/aliveness-test/%2F", nil).want(t, 200)
}

// A management user sees its own consumers only; a monitoring user sees
// every consumer.
func TestConsumersOfOthersHidden(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.addUser(t, "bob", []string{auth.TagManagement}, "/")
	fx.addUser(t, "eve", []string{auth.TagManagement}, "/")
	fx.addUser(t, "mon", []string{auth.TagMonitoring}, "/")
	for _, user := range []string{"bob", "eve"} {
		_, ch := fx.dial(t, user+":pw")
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.Consume(q.Name, user+"-consumer", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		user string
		want []string
	}{{"bob", []string{"bob-consumer"}}, {"eve", []string{"eve-consumer"}}, {"mon", []string{"bob-consumer", "eve-consumer"}}} {
		var tags []string
		for _, c := range fx.call(t, tt.user+":pw", "GET", "/api/consumers", nil).list(t, 200) {
			tags = append(tags, c["consumer_tag"].(string))
		}
		slices.Sort(tags)
		if !slices.Equal(tags, tt.want) {
			t.Errorf("%s sees consumers %v, want %v", tt.user, tags, tt.want)
		}
	}
}
