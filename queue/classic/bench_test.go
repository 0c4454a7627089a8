package classic

import (
	"runtime"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// nopSink takes every delivery and remembers the last one, so that the
// benchmark can ack it.
type nopSink struct{ last queue.Entry }

func (s *nopSink) Deliver(_ *queue.Consumer, e queue.Entry) bool { s.last = e; return true }
func (s *nopSink) Cancelled(*queue.Consumer)                     {}

func benchMessage(b *testing.B, persistent bool) *queue.Message {
	b.Helper()
	var p wire.Properties
	if persistent {
		p.DeliveryMode = 2
	}
	raw, err := p.Append(nil)
	if err != nil {
		b.Fatal(err)
	}
	return queue.BuildMessage("", "q", raw, make([]byte, 16))
}

// BenchmarkPublishDispatch publishes a 16-byte message that a consumer
// with credit takes at once: with no-ack it is settled on delivery, with
// acks the benchmark acks each delivery.
func BenchmarkPublishDispatch(b *testing.B) {
	for _, noAck := range []bool{true, false} {
		name := "ack"
		if noAck {
			name = "noack"
		}
		b.Run(name, func(b *testing.B) {
			q := memQueue(testConfig())
			sink := &nopSink{}
			c := &queue.Consumer{Tag: "c", NoAck: noAck, Prefetch: 1, Sink: sink}
			if err := q.AddConsumer(c, nil); err != nil {
				b.Fatal(err)
			}
			m := benchMessage(b, false)
			acks := make([]queue.Entry, 1)
			b.SetBytes(int64(m.Size()))
			b.ReportAllocs()
			for b.Loop() {
				q.Enqueue(m)
				if !noAck {
					acks[0] = sink.last
					q.Settle(c, acks, queue.Ack)
				}
			}
			if s := q.Stats(); s.Ready != 0 || s.Unacked != 0 {
				b.Fatalf("after the run: %+v", s)
			}
		})
	}
}

// BenchmarkPublishOverflow publishes to a queue whose high-priority
// consumer is at its prefetch limit, so every message goes to the
// low-priority (no-ack) one after the publisher yields once.
func BenchmarkPublishOverflow(b *testing.B) {
	q := memQueue(testConfig())
	if err := q.AddConsumer(&queue.Consumer{Tag: "high", Priority: 10, Prefetch: 1, Sink: &nopSink{}}, nil); err != nil {
		b.Fatal(err)
	}
	q.Enqueue(benchMessage(b, false)) // the high consumer's one
	if err := q.AddConsumer(&queue.Consumer{Tag: "low", NoAck: true, Sink: &nopSink{}}, nil); err != nil {
		b.Fatal(err)
	}
	m := benchMessage(b, false)
	b.SetBytes(int64(m.Size()))
	b.ReportAllocs()
	for b.Loop() {
		q.Enqueue(m)
	}
}

// BenchmarkPublishEnqueue publishes to a queue with no consumers.
func BenchmarkPublishEnqueue(b *testing.B) {
	q := memQueue(testConfig())
	m := benchMessage(b, false)
	b.SetBytes(int64(m.Size()))
	b.ReportAllocs()
	for b.Loop() {
		q.Enqueue(m)
	}
}

// BenchmarkGet takes messages with basic.get (no-ack) from a queue filled
// beforehand.
func BenchmarkGet(b *testing.B) {
	q := memQueue(testConfig())
	m := benchMessage(b, false)
	for range b.N {
		q.Enqueue(m)
	}
	b.SetBytes(int64(m.Size()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, ok := q.Get(true); !ok {
			b.Fatal("Get found nothing")
		}
	}
}

// BenchmarkPublishDurable publishes a persistent 16-byte message to a
// durable queue on a real store (Sync off): the message and its index
// entry go to the group commit. With a no-ack consumer the entry and
// message are deleted at once (usually cancelling the pending writes).
func BenchmarkPublishDurable(b *testing.B) {
	for _, consumer := range []bool{false, true} {
		name := "enqueue"
		if consumer {
			name = "consume-noack"
		}
		b.Run(name, func(b *testing.B) {
			st := NewKind(Options{Store: openStore(b, b.TempDir())})
			q := storageQueue(b, st, "q")
			if consumer {
				if err := q.AddConsumer(&queue.Consumer{Tag: "c", NoAck: true, Sink: &nopSink{}}, nil); err != nil {
					b.Fatal(err)
				}
			}
			m := benchMessage(b, true)
			var last queue.Outcome
			b.SetBytes(int64(m.Size()))
			b.ReportAllocs()
			for b.Loop() {
				last = publish(m, q)
			}
			b.StopTimer()
			if err := last.Promises.Wait(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkExpiry fills a queue with b.N messages that have a TTL and lets
// them all expire at once, dead-lettering to a sink that drops them: the
// cost per message, and the goroutines it takes (one timer's, at most,
// however many messages expire).
func BenchmarkExpiry(b *testing.B) {
	c := newFakeClock()
	dlx := &countingSink{}
	cfg := testConfig()
	cfg.MessageTTL, cfg.DeadLetter, cfg.DeadLetterSink = 1000, true, dlx
	q := newQueue(b, NewKind(Options{Now: c.Now}), cfg)
	m := benchMessage(b, false)
	before := runtime.NumGoroutine()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		q.Enqueue(m)
	}
	peak := runtime.NumGoroutine() - before
	c.advance(2 * time.Second)
	q.expire()
	b.StopTimer()
	if dlx.n != b.N {
		b.Fatalf("%d of %d dead-lettered", dlx.n, b.N)
	}
	b.ReportMetric(float64(peak), "goroutines")
}

// countingSink is a dead-letter sink that counts what it is given.
type countingSink struct{ n int }

func (s *countingSink) DeadLetter(_ queue.Queue, _ queue.Reason, msgs []*queue.Message) {
	s.n += len(msgs)
}
