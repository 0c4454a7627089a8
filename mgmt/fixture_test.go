package mgmt

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/flowcontrol"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
	"github.com/warrenmq/warren/vhost"
)

func TestMain(m *testing.M) {
	// regexp2's clock for match time limits (package pattern) runs for a
	// while after the last match and then ends on its own.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/dlclark/regexp2/v2.runClock"))
}

// fixture is a node wired as broker.Start wires it (store, classic
// queues, virtual hosts, users, AMQP server) in a temporary directory,
// with the management API and the metrics served over HTTP.
type fixture struct {
	srv      *Server
	api      *httptest.Server
	metrics  *httptest.Server
	vhosts   *vhost.Registry
	users    *auth.Store
	amqp     *amqp.Server
	amqpAddr string
	amqpPort int
	// resident and diskFree are the memory in use and the free disk space
	// the alarms see (of 1,000,000 bytes of memory available).
	resident, diskFree *atomic.Uint64
	alarms             *flowcontrol.Monitor
}

// The fixture's users: guest (the default user, loopback only) and admin,
// both administrators with full permissions on "/".
const (
	adminCred = "admin:admin"
	nodeName  = "rabbit@test"
)

// newFixture builds a node; everything stops at cleanup.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	opts := persistence.DefaultOptions(filepath.Join(t.TempDir(), "store"))
	opts.Sync, opts.GCInterval = false, -1
	store, err := persistence.Open(opts)
	must(err)
	t.Cleanup(func() { store.Close() })
	kind := classic.NewKind(classic.Options{Store: store})
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, kind)
	vhosts := vhost.NewRegistry(vhost.Deps{Definitions: store, Kinds: kinds, Delays: kind})
	must(vhosts.Load())
	must(kind.FinishRecovery())
	t.Cleanup(kind.Stop)
	users, err := auth.New(auth.Config{Definitions: store, DefaultUser: "guest", DefaultPass: "guest",
		DefaultVhost: vhost.DefaultName, LoopbackUsers: []string{"guest"}})
	must(err)
	_, err = vhosts.Add(vhost.DefaultName)
	must(err)
	must(users.PutUser(&auth.User{Name: "admin", PasswordHash: auth.HashPassword("admin"), Tags: []string{auth.TagAdministrator}}))
	must(users.SetPermission(vhost.DefaultName, "admin", ".*", ".*", ".*"))

	srv, err := amqp.NewServer(amqp.DefaultConfig(), amqp.Deps{Users: users, Vhosts: vhosts})
	must(err)
	vhosts.OnDelete(func(name string) {
		srv.CloseVhostConnections(name, "vhost '"+name+"' is deleted")
		if err := users.DeleteVhost(name); err != nil {
			t.Errorf("forgetting vhost %q's permissions: %v", name, err)
		}
	})
	var resident, diskFree atomic.Uint64
	resident.Store(100_000)
	diskFree.Store(100_000_000)
	alarms := flowcontrol.New(flowcontrol.Config{
		MemoryWatermark: flowcontrol.DefaultMemoryWatermark,
		DiskFreeLimit:   flowcontrol.DefaultDiskFreeLimit,
		Resident:        resident.Load,
		Available:       func() uint64 { return 1_000_000 },
		DiskFree:        func(string) (uint64, error) { return diskFree.Load(), nil },
		OnChange:        func(s flowcontrol.Status) { srv.SetAlarm(s.Reason()) },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(t.Context())
		ln.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	api := httptest.NewUnstartedServer(nil)
	metrics := httptest.NewUnstartedServer(nil)
	node := Node{Name: nodeName, Version: "0.0.0-test", Started: time.Now(), Listeners: []Listener{
		{Protocol: "amqp", IP: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port},
		{Protocol: "http", IP: "127.0.0.1", Port: api.Listener.Addr().(*net.TCPAddr).Port},
	}}
	fx := &fixture{srv: New(Deps{Vhosts: vhosts, Users: users, AMQP: srv, Alarms: alarms, Node: node}), api: api, metrics: metrics,
		vhosts: vhosts, users: users, amqp: srv, amqpAddr: ln.Addr().String(), amqpPort: node.Listeners[0].Port,
		resident: &resident, diskFree: &diskFree, alarms: alarms}
	t.Cleanup(fx.srv.Close)
	api.Config.Handler = fx.srv
	api.Start()
	t.Cleanup(api.Close)
	metrics.Config.Handler = fx.srv.Metrics()
	metrics.Start()
	t.Cleanup(metrics.Close)
	return fx
}

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request with the credentials cred ("user:password", or ""
// for none). A body that is a string or []byte is sent as it is, anything
// else as JSON. Every answer is checked for what must always hold: no 500,
// and a body that claims JSON is JSON.
func (fx *fixture) call(t testing.TB, cred, method, path string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, fx.api.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if user, pass, ok := strings.Cut(cred, ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	return fx.send(t, req)
}

// send sends req and returns the answer, checked as call's are.
func (fx *fixture) send(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := fx.api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	if req.Method != http.MethodHead {
		checkReply(t, req.Method+" "+req.URL.Path, r)
	}
	return r
}

// checkReply checks what every answer must satisfy.
func checkReply(t testing.TB, what string, r reply) {
	t.Helper()
	if r.status >= 500 && r.status != http.StatusServiceUnavailable {
		t.Errorf("%s: status %d: %s", what, r.status, r.body)
	}
	if strings.HasPrefix(r.header.Get("Content-Type"), "application/json") && !json.Valid(r.body) {
		t.Errorf("%s: body is not JSON: %q", what, r.body)
	}
}

// do sends a request as admin.
func (fx *fixture) do(t testing.TB, method, path string, body any) reply {
	t.Helper()
	return fx.call(t, adminCred, method, path, body)
}

// want checks the status and returns the JSON body (nil when empty).
func (r reply) want(t testing.TB, status int) any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return v
}

// obj checks the status and returns the body as an object.
func (r reply) obj(t testing.TB, status int) map[string]any {
	t.Helper()
	o, ok := r.want(t, status).(map[string]any)
	if !ok {
		t.Fatalf("body %s is not an object", r.body)
	}
	return o
}

// list checks the status and returns the body as a list of objects.
func (r reply) list(t testing.TB, status int) []map[string]any {
	t.Helper()
	v, ok := r.want(t, status).([]any)
	if !ok {
		t.Fatalf("body %s is not a list", r.body)
	}
	out := make([]map[string]any, len(v))
	for i, e := range v {
		if out[i], ok = e.(map[string]any); !ok {
			t.Fatalf("item %d of %s is not an object", i, r.body)
		}
	}
	return out
}

// wantError checks RabbitMQ's error body: status, error and reason (a
// prefix of it).
func (r reply) wantError(t testing.TB, status int, kind, reason string) {
	t.Helper()
	o := r.obj(t, status)
	if o["error"] != kind || !strings.HasPrefix(o["reason"].(string), reason) {
		t.Fatalf("error %q reason %q, want %q %q", o["error"], o["reason"], kind, reason)
	}
}

// fields checks the named fields of o (JSON values: float64 numbers,
// nil for null).
func fields(t testing.TB, what string, o map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		got, ok := o[k]
		if !ok {
			t.Errorf("%s: no field %q in %v", what, k, o)
			continue
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(w)
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s: %s = %s, want %s", what, k, gb, wb)
		}
	}
}

// names returns the "name" fields of items.
func names(items []map[string]any) []string {
	out := make([]string, len(items))
	for i, o := range items {
		out[i], _ = o["name"].(string)
	}
	return out
}

// addUser creates a user with password "pw", tags and full permissions
// on the given virtual hosts.
func (fx *fixture) addUser(t testing.TB, name string, tags []string, vhosts ...string) {
	t.Helper()
	if err := fx.users.PutUser(&auth.User{Name: name, PasswordHash: auth.HashPassword("pw"), Tags: tags}); err != nil {
		t.Fatal(err)
	}
	for _, v := range vhosts {
		if err := fx.users.SetPermission(v, name, ".*", ".*", ".*"); err != nil {
			t.Fatal(err)
		}
	}
}
