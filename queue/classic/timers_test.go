package classic

import (
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// await polls cond until it holds, failing the test after 10 seconds.
func await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// heldTimers is how much timer work waits for the gate to open.
func heldTimers(k *Kind) int {
	k.timers.mu.Lock()
	defer k.timers.mu.Unlock()
	return len(k.timers.held)
}

// restartKind closes st and opens the directory again, with a new kind on
// clock c that holds its timers until FinishRecovery.
func restartKind(t *testing.T, dir string, st interface{ Close() error }, c *fakeClock) *Kind {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return NewKind(Options{Store: openStore(t, dir), Now: c.Now})
}

// A message that expired while the node was down is dead-lettered only
// once recovery is over (when everything it may be routed to is back), and
// not lost.
func TestExpiryWaitsForRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newFakeClock()
	k := NewKind(Options{Store: openStore(t, dir), Now: c.Now})
	dlx := &recordingDLX{}
	cfg := testConfig()
	cfg.Durable, cfg.MessageTTL, cfg.DeadLetter, cfg.DeadLetterSink = true, 1000, true, dlx
	q := newQueue(t, k, cfg)
	for _, b := range []string{"a", "b", "c"} {
		publish(persistentMsg(t, b), q)
	}
	flush(t, k.store)

	c.advance(time.Hour) // the node is down while they expire
	k = restartKind(t, dir, k.store, c)
	cfg.ID, cfg.Recover = q.Config().ID, true
	q = newQueue(t, k, cfg)
	await(t, "the overdue expiry timer to fire", func() bool { return heldTimers(k) > 0 })
	if got, _ := dlx.got(); len(got) != 0 {
		t.Fatalf("dead-lettered %q during recovery", got)
	}
	wantStats(t, q, 3, 0, 0)

	if err := k.FinishRecovery(); err != nil {
		t.Fatal(err)
	}
	await(t, "the expired messages to be dead-lettered", func() bool { got, _ := dlx.got(); return len(got) == 3 })
	wantDead(t, dlx, []string{"a", "b", "c"}, queue.ReasonExpired)
	flush(t, k.store)
	if left := storedEntries(t, k.store, q.Config().ID); len(left) != 0 {
		t.Fatalf("%d index entries left after dead-lettering", len(left))
	}
}

// Delayed messages that fell due while the node was down are released
// once recovery is over.
func TestDelayedReleaseWaitsForRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newFakeClock()
	var mu sync.Mutex
	var fired []string
	due := func(msgs []*queue.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			fired = append(fired, string(m.Body))
		}
	}
	firedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(fired) }
	k := NewKind(Options{Store: openStore(t, dir), Now: c.Now})
	cfg := testConfig()
	cfg.Durable = true
	dq, err := k.NewDelayQueue(cfg, due)
	if err != nil {
		t.Fatal(err)
	}
	dq.Enqueue(propsMsg(t, "later", wire.Properties{DeliveryMode: 2, Headers: wire.Table{"x-delay": int32(1000)}}))
	flush(t, k.store)

	c.advance(time.Hour)
	k = restartKind(t, dir, k.store, c)
	cfg.ID, cfg.Recover = dq.Config().ID, true
	if _, err := k.NewDelayQueue(cfg, due); err != nil {
		t.Fatal(err)
	}
	await(t, "the overdue delay timer to fire", func() bool { return heldTimers(k) > 0 })
	if n := firedCount(); n != 0 {
		t.Fatalf("released %d during recovery", n)
	}
	if err := k.FinishRecovery(); err != nil {
		t.Fatal(err)
	}
	await(t, "the delayed message to be released", func() bool { return firedCount() == 1 })
}

// After Stop, what falls due stays in the store for the next start.
func TestStopLeavesDueWorkStored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newFakeClock()
	k := NewKind(Options{Store: openStore(t, dir), Now: c.Now})
	if err := k.FinishRecovery(); err != nil {
		t.Fatal(err)
	}
	dlx := &recordingDLX{}
	cfg := testConfig()
	cfg.Durable, cfg.MessageTTL, cfg.DeadLetter, cfg.DeadLetterSink = true, 1000, true, dlx
	q := newQueue(t, k, cfg)
	publish(persistentMsg(t, "kept"), q)
	flush(t, k.store)

	k.Stop()
	c.advance(time.Hour)
	q.expiry.fire() // as the timer would
	if got, _ := dlx.got(); len(got) != 0 {
		t.Fatalf("dead-lettered %q after Stop", got)
	}
	flush(t, k.store)
	if left := storedEntries(t, k.store, q.Config().ID); len(left) != 1 {
		t.Fatalf("%d index entries after Stop, want 1", len(left))
	}

	k = restartKind(t, dir, k.store, c)
	cfg.ID, cfg.Recover = q.Config().ID, true
	newQueue(t, k, cfg)
	if err := k.FinishRecovery(); err != nil {
		t.Fatal(err)
	}
	await(t, "the message to be dead-lettered after the restart", func() bool { got, _ := dlx.got(); return len(got) == 1 })
}

// A backlog that expires at once is dropped in batches: a consumer gets
// the live message behind it once the timer has dropped the rest, and
// basic.get drops the batches itself.
func TestLargeExpiryBacklog(t *testing.T) {
	t.Parallel()
	for _, viaGet := range []bool{false, true} {
		c := newFakeClock()
		q, dlx := dlxQueue(t, c, nil)
		n := 2*expireBatch + 10
		for range n {
			publish(propsMsg(t, "old", wire.Properties{Expiration: "3600000"}), q)
		}
		publish(msg(t, "live"), q)
		c.advance(2 * time.Hour) // the real timer stays an hour away
		var got string
		if viaGet {
			e, _, ok := q.Get(true)
			if !ok {
				t.Fatal("basic.get found nothing behind the expired backlog")
			}
			got = string(e.Msg.Body)
		} else {
			sink := newSink()
			mustAdd(t, q, &queue.Consumer{Tag: "c", NoAck: true, Sink: sink})
			q.expire() // the timer, armed for the past, would run it now
			ds := sink.take()
			if len(ds) != 1 {
				t.Fatalf("consumer got %d deliveries, want 1", len(ds))
			}
			got = bodies(ds)[0]
		}
		if got != "live" {
			t.Fatalf("got %q, want the live message", got)
		}
		// Between batches the timer is armed for the past, so part of the
		// backlog may be dead-lettered by its goroutine.
		await(t, "the whole backlog to be dead-lettered", func() bool { dead, _ := dlx.got(); return len(dead) == n })
	}
}
