package classic

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/persistence"
	"github.com/warrenmq/warren/queue"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSink is a queue.Sink that records what it is given. room is how many more
// deliveries it accepts (negative: any number); past it, Deliver refuses.
type testSink struct {
	mu        sync.Mutex
	room      int
	offers    int // Deliver calls, accepted or not
	got       []delivery
	cancelled []*queue.Consumer
}

type delivery struct {
	c *queue.Consumer
	e queue.Entry
}

func newSink() *testSink { return &testSink{room: -1} }

func (s *testSink) Deliver(c *queue.Consumer, e queue.Entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offers++
	if s.room == 0 {
		return false
	}
	if s.room > 0 {
		s.room--
	}
	s.got = append(s.got, delivery{c, e})
	return true
}

func (s *testSink) Cancelled(c *queue.Consumer) {
	s.mu.Lock()
	s.cancelled = append(s.cancelled, c)
	s.mu.Unlock()
}

// setRoom changes how many more deliveries the sink accepts.
func (s *testSink) setRoom(n int) {
	s.mu.Lock()
	s.room = n
	s.mu.Unlock()
}

// take returns and forgets the deliveries recorded so far.
func (s *testSink) take() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

func (s *testSink) offerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offers
}

func (s *testSink) cancelledConsumers() []*queue.Consumer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cancelled)
}

// bodies returns the message bodies of ds in order.
func bodies(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.e.Msg.Body)
	}
	return out
}

// tags returns the consumer tags of ds in order.
func tags(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.c.Tag
	}
	return out
}

// entries returns the entries of ds in order.
func entries(ds []delivery) []queue.Entry {
	out := make([]queue.Entry, len(ds))
	for i, d := range ds {
		out[i] = d.e
	}
	return out
}

// testConfig is a queue config with no length limits and no storage.
func testConfig() queue.Config {
	return queue.Config{Name: "q", VHost: "/", Settings: queue.NoSettings}
}

// props returns encoded properties: persistent (delivery-mode 2) or not.
func props(t testing.TB, persistent bool) wire.RawProperties {
	t.Helper()
	var p wire.Properties
	if persistent {
		p.DeliveryMode = 2
	}
	b, err := p.Append(nil)
	if err != nil {
		t.Fatalf("encoding properties: %v", err)
	}
	return b
}

// msg returns a transient message with body body.
func msg(t testing.TB, body string) *queue.Message {
	t.Helper()
	return queue.BuildMessage("ex", "rk", props(t, false), []byte(body))
}

// persistentMsg returns a persistent message with body body.
func persistentMsg(t testing.TB, body string) *queue.Message {
	t.Helper()
	return queue.BuildMessage("ex", "rk", props(t, true), []byte(body))
}

// mustPublish publishes each body as a transient message and fails unless
// the queue took it.
func mustPublish(t testing.TB, q *Queue, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if out := publish(msg(t, b), q); !out.Routed || out.Rejected {
			t.Fatalf("Publish(%q) = %+v, want enqueued", b, out)
		}
	}
}

// mustAdd adds a consumer and fails on error.
func mustAdd(t testing.TB, q *Queue, c *queue.Consumer) *queue.Consumer {
	t.Helper()
	if err := q.AddConsumer(c, nil); err != nil {
		t.Fatalf("AddConsumer(%q): %v", c.Tag, err)
	}
	return c
}

// getAll takes every ready message with basic.get and returns the entries.
func getAll(t testing.TB, q *Queue, noAck bool) []queue.Entry {
	t.Helper()
	var out []queue.Entry
	for {
		e, _, ok := q.Get(noAck)
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

// entryBodies returns the bodies of es in order.
func entryBodies(es []queue.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Msg.Body)
	}
	return out
}

func wantStrings(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
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

// wantStats checks the counts that tests care about.
func wantStats(t testing.TB, q *Queue, ready, unacked, consumers int) {
	t.Helper()
	s := q.Stats()
	if s.Ready != ready || s.Unacked != unacked || s.Consumers != consumers {
		t.Fatalf("Stats: ready %d unacked %d consumers %d, want %d %d %d",
			s.Ready, s.Unacked, s.Consumers, ready, unacked, consumers)
	}
}

// openStore opens a store in dir with the GC schedule off and unsynced
// commits (tests wait for batches themselves). It is closed at cleanup
// unless the test closed it.
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

// flush waits until every write queued so far is in the database: batches
// are written in order, so it queues a harmless tombstone and waits for it.
func flush(t testing.TB, st *persistence.Store) {
	t.Helper()
	if err := st.Wait(st.DeleteMessage(^uint64(0))); err != nil {
		t.Fatalf("store batch: %v", err)
	}
}

// storedEntry is one index entry read back from the store.
type storedEntry struct {
	seq, msgID uint64
	transient  bool
	size       int64
}

// storedEntries reads queue id's index entries from the database.
func storedEntries(t testing.TB, st *persistence.Store, id uint64) []storedEntry {
	t.Helper()
	var out []storedEntry
	err := st.Entries(id, func(seq, msgID uint64, meta []byte) error {
		md := parseMeta(meta)
		out = append(out, storedEntry{seq, msgID, md.transient, md.size})
		return nil
	})
	if err != nil {
		t.Fatalf("Entries(%d): %v", id, err)
	}
	return out
}

// storedBody reads message id's stored body (the message's encoded form).
func storedBody(t testing.TB, st *persistence.Store, id uint64) (string, bool) {
	t.Helper()
	data, err := st.Message(id, nil)
	if errors.Is(err, persistence.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("Message(%d): %v", id, err)
	}
	m, err := queue.DecodeMessage(data, "", "")
	if err != nil {
		t.Fatalf("stored message %d: %v", id, err)
	}
	return string(m.Body), true
}

// newQueue makes a queue of kind k.
func newQueue(t testing.TB, k *Kind, cfg queue.Config) *Queue {
	t.Helper()
	q, err := k.New(cfg)
	if err != nil {
		t.Fatalf("New(%q): %v", cfg.Name, err)
	}
	return q.(*Queue)
}

// memQueue makes a queue that keeps everything in memory.
func memQueue(cfg queue.Config) *Queue {
	q, _ := NewKind(Options{}).New(cfg)
	return q.(*Queue)
}

// storageQueue returns a durable queue with its own id on k's store.
func storageQueue(t testing.TB, k *Kind, name string) *Queue {
	t.Helper()
	cfg := testConfig()
	cfg.Name = name
	cfg.Durable = true
	return newQueue(t, k, cfg)
}

// publish routes m to qs as a publish does and returns the outcome.
func publish(m *queue.Message, qs ...*Queue) queue.Outcome {
	dests := make([]queue.Queue, len(qs))
	for i, q := range qs {
		dests[i] = q
	}
	var out queue.Outcome
	queue.Publish(dests, m, &out)
	return out
}
