package classic

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

func TestDelayHeapOrder(t *testing.T) {
	t.Parallel()
	var h delayHeap
	var want []queue.Entry
	for i := range 2000 {
		e := queue.Entry{Seq: uint64(i + 1), Expires: rand.Int64N(300)}
		h.push(e)
		want = append(want, e)
	}
	slices.SortStableFunc(want, func(a, b queue.Entry) int { return int(a.Expires - b.Expires) })
	for i := range want {
		if got := h.pop(); got.Seq != want[i].Seq {
			t.Fatalf("pop %d: seq %d (due %d), want seq %d (due %d)", i, got.Seq, got.Expires, want[i].Seq, want[i].Expires)
		}
	}
	if len(h) != 0 {
		t.Fatalf("%d left", len(h))
	}
}

func TestDelayQueueFiresInDueOrder(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	var mu sync.Mutex
	var fired []string
	dq, err := NewKind(Options{Now: c.Now}).NewDelayQueue(testConfig(), func(msgs []*queue.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			fired = append(fired, string(m.Body))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	q := dq.(*DelayQueue)
	for _, d := range []int{50, 10, 30, 10, 20} {
		q.Enqueue(propsMsg(t, strconv.Itoa(d), wire.Properties{Headers: wire.Table{"x-delay": int32(d)}}))
	}
	c.advance(25 * time.Millisecond)
	q.fire()
	mu.Lock()
	wantStrings(t, "fired by 25 ms", fired, []string{"10", "10", "20"})
	mu.Unlock()
	if st := q.Stats(); st.Ready != 2 {
		t.Fatalf("held %d, want 2", st.Ready)
	}
	if n := q.Purge(); n != 2 {
		t.Fatalf("purged %d", n)
	}
	if _, err := q.Delete(false, false); err != nil || !q.Deleted() {
		t.Fatal("not deleted")
	}
	if r := q.Enqueue(msg(t, "late")); r.Result != queue.Gone {
		t.Fatalf("enqueue after delete: %v", r.Result)
	}
}
