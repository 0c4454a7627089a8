package queue

import (
	"testing"

	"github.com/warrenmq/warren/amqp/wire"
)

// nopSink takes every delivery and remembers the last one, so that the
// benchmark can ack it.
type nopSink struct{ last Entry }

func (s *nopSink) Deliver(_ *Consumer, e Entry) bool { s.last = e; return true }
func (s *nopSink) Cancelled(*Consumer)               {}

func benchMessage(b *testing.B, persistent bool) *Message {
	b.Helper()
	var p wire.Properties
	if persistent {
		p.DeliveryMode = 2
	}
	raw, err := p.Append(nil)
	if err != nil {
		b.Fatal(err)
	}
	return BuildMessage("", "q", raw, make([]byte, 16))
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
			q := New(testConfig())
			sink := &nopSink{}
			c := &Consumer{Tag: "c", NoAck: noAck, Prefetch: 1, Sink: sink}
			if err := q.AddConsumer(c, nil); err != nil {
				b.Fatal(err)
			}
			m := benchMessage(b, false)
			acks := make([]Entry, 1)
			b.SetBytes(int64(m.Size()))
			b.ReportAllocs()
			for b.Loop() {
				q.Publish(m)
				if !noAck {
					acks[0] = sink.last
					q.Ack(c, acks)
				}
			}
			if s := q.Stats(); s.Ready != 0 || s.Unacked != 0 {
				b.Fatalf("after the run: %+v", s)
			}
		})
	}
}

// BenchmarkPublishEnqueue publishes to a queue with no consumers.
func BenchmarkPublishEnqueue(b *testing.B) {
	q := New(testConfig())
	m := benchMessage(b, false)
	b.SetBytes(int64(m.Size()))
	b.ReportAllocs()
	for b.Loop() {
		q.Publish(m)
	}
}

// BenchmarkGet takes messages with basic.get (no-ack) from a queue filled
// beforehand.
func BenchmarkGet(b *testing.B) {
	q := New(testConfig())
	m := benchMessage(b, false)
	for range b.N {
		q.Publish(m)
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

// BenchmarkPublishToDurable publishes a persistent 16-byte message to a
// durable queue on a real store (Sync off): the message and its index
// entry go to the group commit. With a no-ack consumer the entry and
// message are deleted at once (usually cancelling the pending writes).
func BenchmarkPublishToDurable(b *testing.B) {
	for _, consumer := range []bool{false, true} {
		name := "enqueue"
		if consumer {
			name = "consume-noack"
		}
		b.Run(name, func(b *testing.B) {
			st := &Storage{Store: openStore(b, b.TempDir())}
			q := storageQueue(st, "q")
			if consumer {
				if err := q.AddConsumer(&Consumer{Tag: "c", NoAck: true, Sink: &nopSink{}}, nil); err != nil {
					b.Fatal(err)
				}
			}
			m := benchMessage(b, true)
			qs := []*Queue{q}
			var last Outcome
			b.SetBytes(int64(m.Size()))
			b.ReportAllocs()
			for b.Loop() {
				last = PublishTo(qs, m, st)
			}
			b.StopTimer()
			waitTicket(b, st.Store, last.Ticket)
		})
	}
}
