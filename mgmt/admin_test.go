package mgmt

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmq/warren/auth"
)

// Access by user tag, as mgmt/access.go grades it.
func TestAccess(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.run(t, []step{
		{"other vhost", "PUT", "/api/vhosts/other", nil, 201},
		{"queue in /", "PUT", "/api/queues/%2F/q", nil, 201},
		{"queue in other", "PUT", "/api/queues/other/oq", nil, 201},
	})
	fx.addUser(t, "mgmt", []string{auth.TagManagement}, "/")
	fx.addUser(t, "mon", []string{auth.TagMonitoring}, "/")
	fx.addUser(t, "pol", []string{auth.TagPolicymaker}, "/")
	fx.addUser(t, "notag", []string{}, "/")
	fx.addUser(t, "limited", []string{auth.TagManagement})
	if err := fx.users.SetPermission("/", "limited", "^lim", "^lim", "^lim"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, cred, method, path string
		status                   int
		names                    []string // the listed names, when not nil
	}{
		{"no credentials", "", "GET", "/api/overview", 401, nil},
		{"wrong password", "admin:wrong", "GET", "/api/overview", 401, nil},
		{"unknown user", "nobody:pw", "GET", "/api/overview", 401, nil},
		{"guest from loopback", "guest:guest", "GET", "/api/whoami", 200, nil},
		{"no tags", "notag:pw", "GET", "/api/overview", 403, nil},
		{"no tags, vhosts", "notag:pw", "GET", "/api/vhosts", 403, nil},

		{"management: own vhosts", "mgmt:pw", "GET", "/api/vhosts", 200, []string{"/"}},
		{"management: own queues", "mgmt:pw", "GET", "/api/queues", 200, []string{"q"}},
		{"management: other vhost's queues", "mgmt:pw", "GET", "/api/queues/other", 403, nil},
		{"management: other vhost's queue", "mgmt:pw", "GET", "/api/queues/other/oq", 403, nil},
		{"management: other vhost", "mgmt:pw", "GET", "/api/vhosts/other", 403, nil},
		{"management: declare", "mgmt:pw", "PUT", "/api/queues/%2F/mq", 201, nil},
		{"management: nodes", "mgmt:pw", "GET", "/api/nodes", 403, nil},
		{"management: users", "mgmt:pw", "GET", "/api/users", 403, nil},
		{"management: policies", "mgmt:pw", "GET", "/api/policies", 403, nil},
		{"management: create vhost", "mgmt:pw", "PUT", "/api/vhosts/new", 403, nil},
		{"management: definitions", "mgmt:pw", "GET", "/api/definitions", 403, nil},
		{"management: vhost limits", "mgmt:pw", "GET", "/api/vhost-limits", 200, nil},

		{"monitoring: nodes", "mon:pw", "GET", "/api/nodes", 200, nil},
		{"monitoring: every vhost", "mon:pw", "GET", "/api/vhosts", 200, []string{"/", "other"}},
		{"monitoring: every queue", "mon:pw", "GET", "/api/queues", 200, []string{"mq", "oq", "q"}},
		{"monitoring: other vhost's queue", "mon:pw", "GET", "/api/queues/other/oq", 200, nil},
		{"monitoring: delete in other vhost", "mon:pw", "DELETE", "/api/queues/other/oq", 403, nil},
		{"monitoring: users", "mon:pw", "GET", "/api/users", 403, nil},
		{"monitoring: policies", "mon:pw", "GET", "/api/policies", 403, nil},

		{"policymaker: policies", "pol:pw", "GET", "/api/policies", 200, nil},
		{"policymaker: queues", "pol:pw", "GET", "/api/queues/%2F/q", 200, nil},
		{"policymaker: operator policies", "pol:pw", "GET", "/api/operator-policies", 403, nil},
		{"policymaker: nodes", "pol:pw", "GET", "/api/nodes", 403, nil},

		{"permissions: refused name", "limited:pw", "PUT", "/api/queues/%2F/other-name", 403, nil},
		{"permissions: allowed name", "limited:pw", "PUT", "/api/queues/%2F/lim1", 201, nil},
		{"permissions: purge refused", "limited:pw", "DELETE", "/api/queues/%2F/q/contents", 403, nil},
		{"permissions: publish refused", "limited:pw", "POST", "/api/exchanges/%2F/amq.default/publish", 403, nil},

		{"administrator: other vhost's queue", "admin:admin", "GET", "/api/queues/other/oq", 200, nil},
		{"administrator: users", "admin:admin", "GET", "/api/users", 200, nil},
	}
	for _, tt := range tests {
		r := fx.call(t, tt.cred, tt.method, tt.path, nil)
		if r.status != tt.status {
			t.Errorf("%s: %s %s: status %d, want %d; body %s", tt.name, tt.method, tt.path, r.status, tt.status, r.body)
			continue
		}
		if tt.names != nil {
			got := names(r.list(t, tt.status))
			slices.Sort(got)
			if !slices.Equal(got, tt.names) {
				t.Errorf("%s: names %v, want %v", tt.name, got, tt.names)
			}
		}
	}

	r := fx.call(t, "", "GET", "/api/overview", nil)
	r.wantError(t, 401, "not_authorised", "Login failed")
	if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="RabbitMQ Management"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	fx.call(t, "notag:pw", "GET", "/api/overview", nil).wantError(t, 403, "not_authorised", "Not management user")
	fx.call(t, "limited:pw", "PUT", "/api/queues/%2F/other-name", nil).wantError(t, 403, "not_authorised",
		"access to queue 'other-name' in vhost '/' refused for user 'limited'")
	fields(t, "whoami", fx.call(t, "mgmt:pw", "GET", "/api/whoami", nil).obj(t, 200), map[string]any{"name": "mgmt", "tags": []string{"management"}})
}

func TestVhosts(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.run(t, []step{
		{"create", "PUT", "/api/vhosts/v1", map[string]any{"description": "first", "tags": "a,b", "default_queue_type": "classic"}, 201},
		{"update", "PUT", "/api/vhosts/v1", map[string]any{"description": "changed", "tags": []string{"c"}}, 204},
		{"slash in name", "PUT", "/api/vhosts/a%2Fb", nil, 201},
		{"bad tags", "PUT", "/api/vhosts/v2", map[string]any{"tags": 5}, 400},
		{"get unknown", "GET", "/api/vhosts/nope", nil, 404},
		{"delete unknown", "DELETE", "/api/vhosts/nope", nil, 404},
	})
	v := fx.do(t, "GET", "/api/vhosts/v1", nil).obj(t, 200)
	fields(t, "v1", v, map[string]any{"name": "v1", "description": "changed", "tags": []string{"c"}, "default_queue_type": "undefined",
		"metadata": map[string]any{"description": "changed", "tags": []string{"c"}}, "messages": 0, "messages_ready": 0, "messages_unacknowledged": 0,
		"cluster_state": map[string]any{nodeName: "running"}})
	// The creator may use it at once.
	fx.do(t, "PUT", "/api/queues/v1/q", nil).want(t, 201)
	fields(t, "creator's permission", fx.do(t, "GET", "/api/permissions/v1/admin", nil).obj(t, 200),
		map[string]any{"user": "admin", "vhost": "v1", "configure": ".*", "write": ".*", "read": ".*"})
	got := names(fx.do(t, "GET", "/api/vhosts", nil).list(t, 200))
	slices.Sort(got)
	if want := []string{"/", "a/b", "v1"}; !slices.Equal(got, want) {
		t.Errorf("vhosts %v, want %v", got, want)
	}
	fx.run(t, []step{
		{"delete", "DELETE", "/api/vhosts/v1", nil, 204},
		{"gone", "GET", "/api/vhosts/v1", nil, 404},
		{"its queues gone", "GET", "/api/queues/v1/q", nil, 404},
		{"its permissions gone", "GET", "/api/permissions/v1/admin", nil, 404},
		{"delete slash", "DELETE", "/api/vhosts/a%2Fb", nil, 204},
	})
}

// rabbitHash is RabbitMQ's password hash: base64 of a salt followed by the
// digest of salt and password.
func rabbitHash(salt []byte, password string, sha512sum bool) string {
	in := append(append([]byte{}, salt...), password...)
	var sum []byte
	if sha512sum {
		s := sha512.Sum512(in)
		sum = s[:]
	} else {
		s := sha256.Sum256(in)
		sum = s[:]
	}
	return base64.StdEncoding.EncodeToString(append(append([]byte{}, salt...), sum...))
}

func TestUsers(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.run(t, []step{
		{"with password, tags as a string", "PUT", "/api/users/alice", map[string]any{"password": "secret", "tags": "management, monitoring"}, 201},
		{"with sha256 hash, tags as a list", "PUT", "/api/users/bob",
			map[string]any{"password_hash": rabbitHash([]byte{1, 2, 3, 4}, "bobpw", false), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []string{"management"}}, 201},
		{"with sha512 hash", "PUT", "/api/users/carol",
			map[string]any{"password_hash": rabbitHash([]byte{9, 8, 7, 6}, "carolpw", true), "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": ""}, 201},
		{"no password", "PUT", "/api/users/dave", map[string]any{"tags": "management"}, 201},
		{"unknown algorithm", "PUT", "/api/users/eve", map[string]any{"password_hash": "AAAA", "hashing_algorithm": "rot13"}, 400},
		{"hash not base64", "PUT", "/api/users/eve", map[string]any{"password_hash": "!!!"}, 400},
		{"tags not strings", "PUT", "/api/users/eve", map[string]any{"password": "x", "tags": []any{1}}, 400},
		{"get unknown", "GET", "/api/users/nope", nil, 404},
		{"delete unknown", "DELETE", "/api/users/nope", nil, 404},
	})
	logins := []struct {
		cred   string
		status int
	}{{"alice:secret", 200}, {"alice:wrong", 401}, {"bob:bobpw", 200}, {"carol:carolpw", 403}, {"dave:", 401}}
	for _, l := range logins {
		if r := fx.call(t, l.cred, "GET", "/api/whoami", nil); r.status != l.status {
			t.Errorf("whoami as %s: status %d, want %d", l.cred, r.status, l.status)
		}
	}
	u := fx.do(t, "GET", "/api/users/alice", nil).obj(t, 200)
	fields(t, "alice", u, map[string]any{"name": "alice", "tags": []string{"management", "monitoring"},
		"hashing_algorithm": "rabbit_password_hashing_sha256", "limits": map[string]any{}})
	if h, _ := base64.StdEncoding.DecodeString(u["password_hash"].(string)); len(h) != 4+sha256.Size {
		t.Errorf("password_hash %q is not a salted SHA-256", u["password_hash"])
	}

	// An update without a password keeps it.
	fx.do(t, "PUT", "/api/users/alice", map[string]any{"tags": "administrator"}).want(t, 204)
	fields(t, "alice as administrator", fx.call(t, "alice:secret", "GET", "/api/whoami", nil).obj(t, 200), map[string]any{"tags": []string{"administrator"}})

	without := names(fx.do(t, "GET", "/api/users/without-permissions", nil).list(t, 200))
	if want := []string{"alice", "bob", "carol", "dave"}; !slices.Equal(without, want) {
		t.Errorf("users without permissions %v, want %v", without, want)
	}
	fx.run(t, []step{
		{"bulk delete", "POST", "/api/users/bulk-delete", map[string]any{"users": []string{"bob", "carol", "nope"}}, 204},
		{"delete", "DELETE", "/api/users/dave", nil, 204},
		{"deleted", "GET", "/api/users/bob", nil, 404},
	})
	if got := names(fx.do(t, "GET", "/api/users", nil).list(t, 200)); !slices.Equal(got, []string{"admin", "alice", "guest"}) {
		t.Errorf("users %v", got)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.addUser(t, "u", []string{auth.TagManagement})
	fx.run(t, []step{
		{"create", "PUT", "/api/permissions/%2F/u", map[string]any{"configure": "^u-", "write": ".*", "read": ""}, 201},
		{"update", "PUT", "/api/permissions/%2F/u", map[string]any{"configure": "^u-", "write": ".*", "read": ".*"}, 204},
		{"bad pattern", "PUT", "/api/permissions/%2F/u", map[string]any{"configure": "(", "write": "", "read": ""}, 400},
		{"unknown vhost", "PUT", "/api/permissions/nope/u", map[string]any{"configure": ".*"}, 400},
		{"unknown user", "PUT", "/api/permissions/%2F/nope", map[string]any{"configure": ".*"}, 400},
		{"get unknown", "GET", "/api/permissions/%2F/nope", nil, 404},
		{"vhost's, unknown vhost", "GET", "/api/vhosts/nope/permissions", nil, 404},
		{"user's, unknown user", "GET", "/api/users/nope/permissions", nil, 404},
	})
	fields(t, "permission", fx.do(t, "GET", "/api/permissions/%2F/u", nil).obj(t, 200),
		map[string]any{"user": "u", "vhost": "/", "configure": "^u-", "write": ".*", "read": ".*"})
	// The permission is what the user may do.
	fx.call(t, "u:pw", "PUT", "/api/queues/%2F/u-q", nil).want(t, 201)
	fx.call(t, "u:pw", "PUT", "/api/queues/%2F/other", nil).want(t, 403)

	if got := len(fx.do(t, "GET", "/api/users/u/permissions", nil).list(t, 200)); got != 1 {
		t.Errorf("%d permissions of u, want 1", got)
	}
	if got := len(fx.do(t, "GET", "/api/vhosts/%2F/permissions", nil).list(t, 200)); got != 3 {
		t.Errorf("%d permissions on /, want 3 (guest, admin, u)", got)
	}
	fx.run(t, []step{
		{"delete", "DELETE", "/api/permissions/%2F/u", nil, 204},
		{"delete again", "DELETE", "/api/permissions/%2F/u", nil, 404},
	})
	fx.call(t, "u:pw", "GET", "/api/queues/%2F", nil).want(t, 403)
}

func TestTopicPermissions(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.addUser(t, "u", []string{auth.TagManagement}, "/")
	fx.run(t, []step{
		{"create", "PUT", "/api/topic-permissions/%2F/u", map[string]any{"exchange": "amq.topic", "write": "^a", "read": "^b"}, 201},
		{"no exchange", "PUT", "/api/topic-permissions/%2F/u", map[string]any{"write": "^a"}, 400},
		{"bad pattern", "PUT", "/api/topic-permissions/%2F/u", map[string]any{"exchange": "x", "write": "("}, 400},
		{"unknown vhost", "PUT", "/api/topic-permissions/nope/u", map[string]any{"exchange": "x"}, 400},
		{"unknown user", "PUT", "/api/topic-permissions/%2F/nope", map[string]any{"exchange": "x"}, 400},
	})
	list := fx.do(t, "GET", "/api/topic-permissions/%2F/u", nil).list(t, 200)
	if len(list) != 1 {
		t.Fatalf("topic permissions %v, want 1", list)
	}
	fields(t, "topic permission", list[0], map[string]any{"user": "u", "vhost": "/", "exchange": "amq.topic", "write": "^a", "read": "^b"})
	if got := len(fx.do(t, "GET", "/api/topic-permissions", nil).list(t, 200)); got != 1 {
		t.Errorf("%d topic permissions, want 1", got)
	}
	if got := len(fx.do(t, "GET", "/api/users/u/topic-permissions", nil).list(t, 200)); got != 1 {
		t.Errorf("%d topic permissions of u, want 1", got)
	}
	fx.run(t, []step{
		{"delete", "DELETE", "/api/topic-permissions/%2F/u", nil, 204},
		{"gone", "GET", "/api/topic-permissions/%2F/u", nil, 404},
		{"delete again", "DELETE", "/api/topic-permissions/%2F/u", nil, 404},
	})
}

func TestPolicies(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.do(t, "PUT", "/api/queues/%2F/pq", nil).want(t, 201)
	fx.run(t, []step{
		{"create", "PUT", "/api/policies/%2F/p", map[string]any{"pattern": "^pq", "apply-to": "queues", "priority": 1, "definition": map[string]any{"max-length": 5, "message-ttl": 60000}}, 201},
		{"update", "PUT", "/api/policies/%2F/p", map[string]any{"pattern": "^pq", "apply-to": "queues", "priority": "1", "definition": map[string]any{"max-length": 5, "message-ttl": 60000}}, 204},
		{"operator", "PUT", "/api/operator-policies/%2F/op", map[string]any{"pattern": "^pq", "definition": map[string]any{"max-length": 3}}, 201},
		{"unknown vhost", "PUT", "/api/policies/nope/p", map[string]any{"pattern": ".*", "definition": map[string]any{"max-length": 1}}, 404},
		{"get unknown", "GET", "/api/policies/%2F/nope", nil, 404},
		{"definition not an object", "PUT", "/api/policies/%2F/p2", map[string]any{"pattern": ".*", "definition": "x"}, 400},
	})
	p := fx.do(t, "GET", "/api/policies/%2F/p", nil).obj(t, 200)
	fields(t, "policy", p, map[string]any{"vhost": "/", "name": "p", "pattern": "^pq", "apply-to": "queues", "priority": 1,
		"definition": map[string]any{"max-length": 5, "message-ttl": 60000}})
	q := fx.do(t, "GET", "/api/queues/%2F/pq", nil).obj(t, 200)
	fields(t, "queue under policies", q, map[string]any{"policy": "p", "operator_policy": "op",
		"effective_policy_definition": map[string]any{"max-length": 3, "message-ttl": 60000}})

	validation := []struct {
		name, path string
		body       map[string]any
		reason     string
	}{
		{"unknown setting", "/api/policies/%2F/bad", map[string]any{"pattern": ".*", "definition": map[string]any{"nope": 1}},
			`[<<"nope">>] are not recognised policy settings`},
		{"empty definition", "/api/policies/%2F/bad", map[string]any{"pattern": ".*", "definition": map[string]any{}}, "no policy provided"},
		{"bad apply-to", "/api/policies/%2F/bad", map[string]any{"pattern": ".*", "apply-to": "everything", "definition": map[string]any{"max-length": 1}},
			"is not a valid 'apply-to' value"},
		{"bad pattern", "/api/policies/%2F/bad", map[string]any{"pattern": "(", "definition": map[string]any{"max-length": 1}},
			"is not a valid regular expression"},
		{"bad value", "/api/policies/%2F/bad", map[string]any{"pattern": ".*", "definition": map[string]any{"max-length": -1}},
			"is not a valid maximum length"},
		{"not an operator setting", "/api/operator-policies/%2F/bad", map[string]any{"pattern": ".*", "definition": map[string]any{"alternate-exchange": "ae"}},
			`[<<"alternate-exchange">>] are not recognised policy settings`},
	}
	for _, tt := range validation {
		o := fx.do(t, "PUT", tt.path, tt.body).obj(t, 400)
		reason, _ := o["reason"].(string)
		if o["error"] != "bad_request" || !strings.HasPrefix(reason, "Validation failed\n\n") || !strings.Contains(reason, tt.reason) {
			t.Errorf("%s: error %q reason %q, want Validation failed ... %q", tt.name, o["error"], reason, tt.reason)
		}
	}

	if got := names(fx.do(t, "GET", "/api/policies/%2F", nil).list(t, 200)); !slices.Equal(got, []string{"p"}) {
		t.Errorf("policies %v", got)
	}
	if got := names(fx.do(t, "GET", "/api/operator-policies", nil).list(t, 200)); !slices.Equal(got, []string{"op"}) {
		t.Errorf("operator policies %v", got)
	}
	fx.run(t, []step{
		{"delete", "DELETE", "/api/policies/%2F/p", nil, 204},
		{"delete again", "DELETE", "/api/policies/%2F/p", nil, 404},
		{"delete operator", "DELETE", "/api/operator-policies/%2F/op", nil, 204},
	})
	fields(t, "queue without policies", fx.do(t, "GET", "/api/queues/%2F/pq", nil).obj(t, 200), map[string]any{"policy": nil, "operator_policy": nil})
}

func TestVhostLimits(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.run(t, []step{
		{"set", "PUT", "/api/vhost-limits/%2F/max-queues", map[string]any{"value": 1}, 204},
		{"set connections", "PUT", "/api/vhost-limits/%2F/max-connections", map[string]any{"value": "10"}, 204},
		{"unknown limit", "PUT", "/api/vhost-limits/%2F/max-nothing", map[string]any{"value": 1}, 400},
		{"bad value", "PUT", "/api/vhost-limits/%2F/max-queues", map[string]any{"value": "many"}, 400},
		{"value out of range", "PUT", "/api/vhost-limits/%2F/max-queues", map[string]any{"value": 1e300}, 400},
		{"unknown vhost", "PUT", "/api/vhost-limits/nope/max-queues", map[string]any{"value": 1}, 404},
		{"first queue", "PUT", "/api/queues/%2F/q1", nil, 201},
		{"over the limit", "PUT", "/api/queues/%2F/q2", nil, 400},
	})
	list := fx.do(t, "GET", "/api/vhost-limits/%2F", nil).list(t, 200)
	if len(list) != 1 {
		t.Fatalf("limits %v", list)
	}
	fields(t, "limits", list[0], map[string]any{"vhost": "/", "value": map[string]any{"max-queues": 1, "max-connections": 10}})
	fx.run(t, []step{
		{"clear", "DELETE", "/api/vhost-limits/%2F/max-queues", nil, 204},
		{"second queue", "PUT", "/api/queues/%2F/q2", nil, 201},
		{"clear connections", "DELETE", "/api/vhost-limits/%2F/max-connections", nil, 204},
	})
	if got := fx.do(t, "GET", "/api/vhost-limits", nil).list(t, 200); len(got) != 0 {
		t.Errorf("limits after clearing %v", got)
	}
	fx.do(t, "GET", "/api/vhost-limits/nope", nil).want(t, http.StatusNotFound)
}
