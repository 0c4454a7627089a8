package classic

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/warrenmq/warren/queue"
)

// publishTo publishes m to qs and fails unless every queue took it.
func publishTo(t testing.TB, m *queue.Message, qs ...*Queue) queue.Outcome {
	t.Helper()
	out := publish(m, qs...)
	if !out.Routed || out.Rejected {
		t.Fatalf("Publish(%s) = %+v, want routed, not rejected", m.Body, out)
	}
	return out
}

func TestDurableQueueStoresPersistentMessages(t *testing.T) {
	t.Parallel()
	st := NewKind(Options{Store: openStore(t, t.TempDir()), QueueBudget: 1 << 20})
	q := storageQueue(t, st, "durable")
	transientQ := newQueue(t, st, queue.Config{Name: "transient", VHost: "/", Settings: queue.NoSettings})

	var ids []uint64
	for _, b := range []string{"p1", "p2"} {
		m := persistentMsg(t, b)
		out := publishTo(t, m, q)
		if out.Promises.Kept() || m.ID == 0 {
			t.Fatalf("persistent message to a durable queue: promise %+v id %d, want both set", out.Promises, m.ID)
		}
		ids = append(ids, m.ID)
	}
	if out := publishTo(t, msg(t, "t3"), q); !out.Promises.Kept() {
		t.Fatalf("transient message: promise %+v, want none (nothing to wait for)", out.Promises)
	}
	m := persistentMsg(t, "p4")
	if out := publishTo(t, m, transientQ); !out.Promises.Kept() || m.ID != 0 {
		t.Fatalf("persistent message to a non-durable queue: promise %+v id %d, want none, 0", out.Promises, m.ID)
	}
	m = persistentMsg(t, "p5")
	publishTo(t, m, q)
	ids = append(ids, m.ID)
	flush(t, st.store)

	want := []storedEntry{{1, ids[0], false, 2}, {2, ids[1], false, 2}, {4, ids[2], false, 2}}
	if got := storedEntries(t, st.store, q.Config().ID); !slices.Equal(got, want) {
		t.Fatalf("stored entries %+v, want %+v", got, want)
	}
	if got := storedEntries(t, st.store, transientQ.Config().ID); len(got) != 0 {
		t.Fatalf("non-durable queue has stored entries %+v", got)
	}
	for i, id := range ids {
		if body, ok := storedBody(t, st.store, id); !ok || body != []string{"p1", "p2", "p5"}[i] {
			t.Fatalf("stored message %d = %q, %v", id, body, ok)
		}
	}

	// Ack deletes the entry and the message; a no-ack get settles at once.
	e, _, _ := q.Get(false)
	q.Settle(nil, []queue.Entry{e}, queue.Ack)
	q.Get(true)
	flush(t, st.store)
	if got := storedEntries(t, st.store, q.Config().ID); !slices.Equal(got, want[2:]) {
		t.Fatalf("stored entries after two settles %+v, want %+v", got, want[2:])
	}
	for _, id := range ids[:2] {
		if _, ok := storedBody(t, st.store, id); ok {
			t.Fatalf("message %d still stored after its only queue settled it", id)
		}
	}
	// The transient message between them is next, then p5.
	wantStrings(t, "rest", entryBodies(getAll(t, q, true)), []string{"t3", "p5"})
}

func TestPublishStoresSharedMessageOnce(t *testing.T) {
	t.Parallel()
	st := NewKind(Options{Store: openStore(t, t.TempDir())})
	q1, q2 := storageQueue(t, st, "q1"), storageQueue(t, st, "q2")
	q3 := newQueue(t, st, queue.Config{Name: "q3", VHost: "/", Settings: queue.NoSettings})
	m := persistentMsg(t, "shared")
	publishTo(t, m, q1, q2, q3)
	flush(t, st.store)

	var stored []uint64
	if err := st.store.MessageIDs(func(id uint64) error { stored = append(stored, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stored, []uint64{m.ID}) {
		t.Fatalf("stored messages %v, want just %d", stored, m.ID)
	}
	for _, q := range []*Queue{q1, q2} {
		if got := storedEntries(t, st.store, q.Config().ID); len(got) != 1 || got[0].msgID != m.ID {
			t.Fatalf("%s's entries %+v, want one naming %d", q.Name(), got, m.ID)
		}
	}
	if got := storedEntries(t, st.store, q3.Config().ID); len(got) != 0 {
		t.Fatalf("non-durable q3 has entries %+v", got)
	}

	steps := []struct {
		q          *Queue
		wantStored bool
	}{
		{q3, true}, // holds no reference
		{q1, true},
		{q2, false}, // the last reference
	}
	for _, s := range steps {
		e, _, ok := s.q.Get(false)
		if !ok {
			t.Fatalf("%s: nothing to get", s.q.Name())
		}
		s.q.Settle(nil, []queue.Entry{e}, queue.Ack)
		flush(t, st.store)
		if _, ok := storedBody(t, st.store, m.ID); ok != s.wantStored {
			t.Fatalf("after %s acked: message stored %v, want %v", s.q.Name(), ok, s.wantStored)
		}
	}
}

func TestPublishReleasesRejectedReferences(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		accepting int // durable queues that take the message
		rejecting int // durable queues at their limit (reject-publish)
		deleted   int // durable queues deleted before the publish
	}{
		{"one takes, one rejects", 1, 1, 0},
		{"all reject", 0, 2, 0},
		{"one rejects, one deleted", 0, 1, 1},
		{"one takes, two deleted", 1, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := NewKind(Options{Store: openStore(t, t.TempDir())})
			var qs, accepting []*Queue
			for i := range tt.accepting {
				q := storageQueue(t, st, fmt.Sprintf("ok%d", i))
				qs, accepting = append(qs, q), append(accepting, q)
			}
			for i := range tt.rejecting {
				q := storageQueue(t, st, fmt.Sprintf("full%d", i))
				s := q.Settings()
				s.MaxLength, s.Overflow = 0, queue.RejectPublish
				q.SetSettings(s)
				qs = append(qs, q)
			}
			for i := range tt.deleted {
				gone := storageQueue(t, st, fmt.Sprintf("gone%d", i))
				if _, err := gone.Delete(false, false); err != nil {
					t.Fatal(err)
				}
				qs = append(qs, gone)
			}
			m := persistentMsg(t, "m")
			out := publish(m, qs...)
			if out.Rejected != (tt.rejecting > 0) || !out.Routed {
				t.Fatalf("Publish = %+v, want routed, rejected %v", out, tt.rejecting > 0)
			}
			flush(t, st.store)
			_, stored := storedBody(t, st.store, m.ID)
			if stored != (tt.accepting > 0) {
				t.Fatalf("message stored %v with %d accepting queues", stored, tt.accepting)
			}
			for _, q := range accepting {
				e, _, _ := q.Get(false)
				q.Settle(nil, []queue.Entry{e}, queue.Ack)
			}
			flush(t, st.store)
			if _, ok := storedBody(t, st.store, m.ID); ok {
				t.Fatal("message still stored after every queue that took it acked")
			}
		})
	}
}

// budgetFor is a budget that holds n messages of 16-byte bodies.
func budgetFor(n int) int64 { return int64(n) * (16 + messageOverhead) }

func TestPagingPastQueueBudget(t *testing.T) {
	t.Parallel()
	budget := budgetFor(4)
	tests := []struct {
		name       string
		durable    bool
		persistent bool
	}{
		{"persistent on durable queue", true, true},
		{"transient on durable queue", true, false},
		{"transient on non-durable queue", false, false},
		{"persistent on non-durable queue", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := NewKind(Options{Store: openStore(t, t.TempDir()), QueueBudget: budget})
			cfg := testConfig()
			cfg.Durable = tt.durable
			q := newQueue(t, st, cfg)
			var want []string
			for i := range 20 {
				b := fmt.Sprintf("message-%08d", i) // 16 bytes
				want = append(want, b)
				m := queue.BuildMessage("ex", "rk", props(t, tt.persistent), []byte(b))
				publishTo(t, m, q)
				s := q.Stats()
				if s.Resident > 4*16 {
					t.Fatalf("after %d messages: %d body bytes resident, budget %d with overhead", i+1, s.Resident, budget)
				}
				if s.ReadyBytes != int64(16*(i+1)) {
					t.Fatalf("after %d messages: ready bytes %d", i+1, s.ReadyBytes)
				}
			}
			if s := q.Stats(); s.Resident != 4*16 {
				t.Fatalf("resident %d body bytes, want the budget filled by four messages", s.Resident)
			}
			// Consume through a consumer: bodies come back, in order.
			sink := newSink()
			c := mustAdd(t, q, &queue.Consumer{Tag: "c", Sink: sink})
			got := sink.take()
			wantStrings(t, "delivered", bodies(got), want)
			for _, d := range got {
				if d.e.Redelivered {
					t.Fatal("paged message delivered as redelivered")
				}
			}
			q.Settle(c, entries(got), queue.Ack)
			flush(t, st.store)
			if left := storedEntries(t, st.store, q.Config().ID); len(left) != 0 {
				t.Fatalf("entries left after every message was acked: %+v", left)
			}
			var stored []uint64
			if err := st.store.MessageIDs(func(id uint64) error { stored = append(stored, id); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(stored) != 0 {
				t.Fatalf("messages left after every message was acked: %v", stored)
			}
		})
	}
}

func TestPagingPastGlobalBudget(t *testing.T) {
	t.Parallel()
	st := NewKind(Options{Store: openStore(t, t.TempDir()), GlobalBudget: budgetFor(4)})
	q1, q2 := storageQueue(t, st, "q1"), storageQueue(t, st, "q2")
	for i := range 4 {
		publishTo(t, msg(t, fmt.Sprintf("q1-message-%05d", i)), q1)
	}
	for i := range 4 {
		publishTo(t, msg(t, fmt.Sprintf("q2-message-%05d", i)), q2)
	}
	if r1, r2 := q1.Stats().Resident, q2.Stats().Resident; r1 != 64 || r2 != 0 {
		t.Fatalf("resident %d and %d, want 64 and 0 (the global budget is shared)", r1, r2)
	}
	// Draining q1 frees budget for q2's next messages.
	getAll(t, q1, true)
	publishTo(t, msg(t, "q2-message-00004"), q2)
	if r := q2.Stats().Resident; r != 16 {
		t.Fatalf("q2 resident %d after q1 drained, want 16", r)
	}
	wantStrings(t, "q2", entryBodies(getAll(t, q2, true)),
		[]string{"q2-message-00000", "q2-message-00001", "q2-message-00002", "q2-message-00003", "q2-message-00004"})
}

func TestPagedMessageMissingFromStoreIsDropped(t *testing.T) {
	t.Parallel()
	st := NewKind(Options{Store: openStore(t, t.TempDir()), QueueBudget: 1, Log: slog.New(slog.DiscardHandler)})
	q := storageQueue(t, st, "q")
	var ms []*queue.Message
	for _, b := range []string{"aa", "bb", "cc"} { // each past the 1-byte budget
		m := persistentMsg(t, b)
		publishTo(t, m, q)
		ms = append(ms, m)
	}
	if r := q.Stats().Resident; r != 0 {
		t.Fatalf("%d bytes resident, want every message paged out", r)
	}
	flush(t, st.store)
	st.store.DeleteMessage(ms[1].ID)
	flush(t, st.store)
	wantStrings(t, "delivered", entryBodies(getAll(t, q, true)), []string{"aa", "cc"})
	wantStats(t, q, 0, 0, 0)
}

func TestTransientOverflowDroppedOnRecover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := openStore(t, dir)
	st := NewKind(Options{Store: store, QueueBudget: budgetFor(2)})
	q := storageQueue(t, st, "q")
	id := q.Config().ID
	// p1, p2 fill the budget; t3, t4 are paged out as overflow; p5 is paged
	// out too, under its own (persistent) entry.
	pub := []struct {
		body       string
		persistent bool
	}{{"p1-0000000000000", true}, {"p2-0000000000000", true}, {"t3-0000000000000", false}, {"t4-0000000000000", false}, {"p5-0000000000000", true}}
	for _, p := range pub {
		publishTo(t, queue.BuildMessage("ex", "rk", props(t, p.persistent), []byte(p.body)), q)
	}
	flush(t, store)
	got := storedEntries(t, store, id)
	var transient []uint64
	for i, e := range got {
		if e.seq != uint64(i+1) || e.transient != !pub[i].persistent || e.size != 16 {
			t.Fatalf("entry %d = %+v (for %s)", i, e, pub[i].body)
		}
		if e.transient {
			transient = append(transient, e.msgID)
		}
	}
	if len(got) != 5 || len(transient) != 2 {
		t.Fatalf("stored entries %+v, want 5 of which 2 transient", got)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store = openStore(t, dir)
	st = NewKind(Options{Store: store, QueueBudget: budgetFor(2)})
	cfg := testConfig()
	cfg.Durable, cfg.ID, cfg.Recover = true, id, true
	q = newQueue(t, st, cfg)
	if n := len(st.entries); n != 3 {
		t.Fatalf("recovery counted %d messages, want 3", n)
	}
	if err := st.FinishRecovery(); err != nil {
		t.Fatal(err)
	}
	if s := q.Stats(); s.Ready != 3 || s.ReadyBytes != 48 || s.Resident != 0 {
		t.Fatalf("after Recover: %+v, want 3 ready, 48 bytes, none resident", s)
	}
	flush(t, store)
	if got := storedEntries(t, store, id); len(got) != 3 {
		t.Fatalf("entries after Recover: %+v, want the 3 persistent ones", got)
	}
	for _, mid := range transient {
		if _, ok := storedBody(t, store, mid); ok {
			t.Fatalf("transient overflow message %d survived recovery", mid)
		}
	}

	// New messages go after the recovered ones.
	mustPublish(t, q, "new")
	es := getAll(t, q, false)
	wantStrings(t, "after recovery", entryBodies(es), []string{"p1-0000000000000", "p2-0000000000000", "p5-0000000000000", "new"})
	for _, e := range es {
		if e.Redelivered != (string(e.Msg.Body) != "new") {
			t.Fatalf("%s: redelivered %v", e.Msg.Body, e.Redelivered)
		}
		if string(e.Msg.Body) != "new" && (!e.Msg.Persistent() || e.Msg.ID != e.ID || e.Msg.Exchange != "ex" || e.Msg.RoutingKey != "rk") {
			t.Fatalf("%s: recovered message %+v", e.Msg.Body, e.Msg)
		}
	}
	if es[3].Seq <= es[2].Seq {
		t.Fatalf("new message seq %d not after recovered %d", es[3].Seq, es[2].Seq)
	}
	// Requeued recovered messages keep their places.
	q.Settle(nil, []queue.Entry{es[3], es[1], es[0]}, queue.Requeue)
	wantStrings(t, "requeued", entryBodies(getAll(t, q, true)), []string{"p1-0000000000000", "p2-0000000000000", "new"})
	q.Settle(nil, es[2:3], queue.Ack)
	flush(t, store)
	if got := storedEntries(t, store, id); len(got) != 0 {
		t.Fatalf("entries after everything settled: %+v", got)
	}
}

func TestRecoverOnNonDurableQueueDropsEverything(t *testing.T) {
	t.Parallel()
	st := NewKind(Options{Store: openStore(t, t.TempDir())})
	q := storageQueue(t, st, "q")
	for _, b := range []string{"a", "b"} {
		publishTo(t, persistentMsg(t, b), q)
	}
	flush(t, st.store)
	cfg := testConfig()
	cfg.ID, cfg.Recover = q.Config().ID, true
	again := newQueue(t, st, cfg) // same id, not durable
	if counted := len(st.entries); counted != 0 || again.Stats().Ready != 0 {
		t.Fatalf("a non-durable queue recovered %d messages (%d counted)", again.Stats().Ready, counted)
	}
	flush(t, st.store)
	if got := storedEntries(t, st.store, cfg.ID); len(got) != 0 {
		t.Fatalf("entries left: %+v", got)
	}
}

func TestDeleteAndPurgeRemoveStoredMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		drop func(q *Queue) int
	}{
		{"delete", func(q *Queue) int { n, _ := q.Delete(false, false); return n }},
		{"purge", func(q *Queue) int { return q.Purge() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := NewKind(Options{Store: openStore(t, t.TempDir()), QueueBudget: budgetFor(1)})
			q := storageQueue(t, st, "q")
			var ms []*queue.Message
			for i := range 4 {
				m := persistentMsg(t, fmt.Sprintf("message-%08d", i))
				publishTo(t, m, q)
				ms = append(ms, m)
			}
			held, _, _ := q.Get(false)
			if n := tt.drop(q); n != 3 {
				t.Fatalf("dropped %d, want 3", n)
			}
			flush(t, st.store)
			for _, m := range ms[1:] {
				if _, ok := storedBody(t, st.store, m.ID); ok {
					t.Fatalf("dropped message %d still stored", m.ID)
				}
			}
			if _, ok := storedBody(t, st.store, ms[0].ID); !ok {
				t.Fatal("the unacked message was removed from the store before its ack")
			}
			q.Settle(nil, []queue.Entry{held}, queue.Ack)
			flush(t, st.store)
			if _, ok := storedBody(t, st.store, ms[0].ID); ok {
				t.Fatal("acked message still stored")
			}
			if got := storedEntries(t, st.store, q.Config().ID); len(got) != 0 {
				t.Fatalf("entries left: %+v", got)
			}
		})
	}
}

func TestDropHeadRemovesStoredEntries(t *testing.T) {
	t.Parallel()
	st := NewKind(Options{Store: openStore(t, t.TempDir())})
	q := storageQueue(t, st, "q")
	s := q.Settings()
	s.MaxLength = 1
	q.SetSettings(s)
	a, b := persistentMsg(t, "a"), persistentMsg(t, "b")
	publishTo(t, a, q)
	publishTo(t, b, q)
	flush(t, st.store)
	if _, ok := storedBody(t, st.store, a.ID); ok {
		t.Fatal("the dropped head is still stored")
	}
	if got := storedEntries(t, st.store, q.Config().ID); len(got) != 1 || got[0].msgID != b.ID {
		t.Fatalf("entries %+v, want only b's", got)
	}
}

func TestRefs(t *testing.T) {
	t.Parallel()
	var r refs
	if !r.release(7) {
		t.Fatal("an unknown id has one reference: release must report the last")
	}
	r.hold(7, 3)
	got := []bool{r.release(7), r.release(7), r.release(7)}
	if !slices.Equal(got, []bool{false, false, true}) {
		t.Fatalf("releases of 3 references = %v, want [false false true]", got)
	}
	r.add(8) // one more on an id with one: two
	r.add(8)
	got = []bool{r.release(8), r.release(8), r.release(8)}
	if !slices.Equal(got, []bool{false, false, true}) {
		t.Fatalf("releases of 1+2 references = %v, want [false false true]", got)
	}
}

func TestMeta(t *testing.T) {
	t.Parallel()
	tests := []struct {
		transient bool
		e         queue.Entry
		wantLen   int
	}{
		{false, queue.Entry{}, metaLen},
		{true, queue.Entry{Size: 1}, metaLen},
		{false, queue.Entry{Size: 1 << 20, Expires: 1700000000123}, metaLen + 8},
		{true, queue.Entry{Size: 1<<32 - 1, Priority: 9}, metaLen + 1},
		{false, queue.Entry{Size: 7, Expires: 1, Priority: 255}, metaLen + 9},
	}
	for _, tt := range tests {
		b := appendMeta(nil, tt.transient, &tt.e)
		if len(b) != tt.wantLen {
			t.Fatalf("meta of %d bytes, want %d", len(b), tt.wantLen)
		}
		want := entryMeta{transient: tt.transient, size: tt.e.Size, expires: tt.e.Expires, priority: tt.e.Priority}
		if got := parseMeta(b); got != want {
			t.Fatalf("parseMeta(appendMeta(%+v)) = %+v", want, got)
		}
	}
	for _, short := range [][]byte{{1, 2}, {metaExpires, 0, 0, 0, 1, 9}} {
		if got := parseMeta(short); got.expires != 0 || short[0] == 1 && got != (entryMeta{}) {
			t.Fatalf("short meta %v parsed as %+v", short, got)
		}
	}
}
