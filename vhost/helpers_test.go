package vhost

import (
	"errors"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/queue/classic"
)

func TestMain(m *testing.M) {
	// regexp2's clock for match time limits (package pattern) runs for a
	// while after the last match and then ends on its own.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/dlclark/regexp2/v2.runClock"))
}

// testKinds returns a registry of queue kinds with k as the classic kind.
func testKinds(k *classic.Kind) *queue.Kinds {
	kinds := &queue.Kinds{}
	kinds.Register(classic.Name, k)
	return kinds
}

// memRegistry returns a registry whose queues and definitions stay in
// memory.
func memRegistry() *Registry {
	k := classic.NewKind(classic.Options{})
	return NewRegistry(Deps{Kinds: testKinds(k), Delays: k})
}

// newTestVHost returns the virtual host "/" of a registry that keeps nothing.
func newTestVHost(t testing.TB) *VHost {
	t.Helper()
	v, err := memRegistry().Add(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantWireError checks that err is a *wire.Error with code and text.
func wantWireError(t testing.TB, err error, code uint16, text string) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v (%T), want *wire.Error %d %q", err, err, code, text)
	}
	if we.Code != code || we.Text != text {
		t.Fatalf("error %d %q, want %d %q", we.Code, we.Text, code, text)
	}
}

// wantResult checks err against an expected code and text (code 0: no error).
func wantResult(t testing.TB, err error, code uint16, text string) {
	t.Helper()
	if code == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	wantWireError(t, err, code, text)
}

func mustExchange(t testing.TB, v *VHost, s ExchangeSpec) {
	t.Helper()
	if err := v.DeclareExchange(s, false); err != nil {
		t.Fatalf("DeclareExchange(%q): %v", s.Name, err)
	}
}

func mustQueue(t testing.TB, v *VHost, s QueueSpec) queue.Queue {
	t.Helper()
	q, err := v.DeclareQueue(s, false)
	if err != nil {
		t.Fatalf("DeclareQueue(%q): %v", s.Name, err)
	}
	return q
}

func mustBind(t testing.TB, v *VHost, queueName, exchangeName, key string) {
	t.Helper()
	if err := v.BindQueue(queueName, exchangeName, key, nil, 0); err != nil {
		t.Fatalf("BindQueue(%q, %q, %q): %v", queueName, exchangeName, key, err)
	}
}

func mustBindExchange(t testing.TB, v *VHost, dest, source, key string) {
	t.Helper()
	if err := v.BindExchange(dest, source, key, nil); err != nil {
		t.Fatalf("BindExchange(%q, %q, %q): %v", dest, source, key, err)
	}
}

// queueNames returns the sorted names of qs.
func queueNames(qs []queue.Queue) []string {
	out := make([]string, len(qs))
	for i, q := range qs {
		out[i] = q.Name()
	}
	slices.Sort(out)
	return out
}

// routeNames routes with fresh scratch and returns the sorted queue names,
// failing on error or on a queue listed twice.
func routeNames(t testing.TB, v *VHost, exchangeName, key string, props wire.RawProperties) ([]string, bool) {
	t.Helper()
	qs, cacheable, err := v.Route(exchangeName, key, props, nil, &RouteScratch{})
	if err != nil {
		t.Fatalf("Route(%q, %q): %v", exchangeName, key, err)
	}
	names := queueNames(qs)
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Fatalf("Route(%q, %q) listed a queue twice: %q", exchangeName, key, names)
	}
	return names, cacheable
}

func wantRoute(t testing.TB, v *VHost, exchangeName, key string, want ...string) {
	t.Helper()
	got, _ := routeNames(t, v, exchangeName, key, nil)
	if want == nil {
		want = []string{}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Route(%q, %q) = %q, want %q", exchangeName, key, got, want)
	}
}

// headerProps encodes properties with the given headers.
func headerProps(t testing.TB, h wire.Table) wire.RawProperties {
	t.Helper()
	b, err := (&wire.Properties{Headers: h}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.RawProperties(b).Validate(); err != nil {
		t.Fatal(err)
	}
	return b
}

// persistentMessage builds a persistent message.
func persistentMessage(t testing.TB, exchange, key, body string) *queue.Message {
	t.Helper()
	b, err := (&wire.Properties{DeliveryMode: 2}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return queue.BuildMessage(exchange, key, b, []byte(body))
}

// openStore opens a store in dir with the GC schedule off and unsynced
// commits; it is closed at cleanup unless the test closed it.
func openStore(t testing.TB, dir string) *persistence.Store {
	t.Helper()
	o := persistence.DefaultOptions(dir)
	o.Sync = false
	o.GCInterval = -1
	st, err := persistence.Open(o)
	if err != nil {
		t.Fatalf("persistence.Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, persistence.ErrClosed) {
			t.Errorf("closing the store: %v", err)
		}
	})
	return st
}

// flush waits until every write queued so far is in the database.
func flush(t testing.TB, st *persistence.Store) {
	t.Helper()
	if err := st.Wait(st.DeleteMessage(^uint64(0))); err != nil {
		t.Fatal(err)
	}
}

// collectSink is a queue.Sink that records deliveries.
type collectSink struct{ got []queue.Entry }

func (s *collectSink) Deliver(_ *queue.Consumer, e queue.Entry) bool {
	s.got = append(s.got, e)
	return true
}
func (s *collectSink) Cancelled(*queue.Consumer) {}
