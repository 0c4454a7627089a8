package e2e

import (
	"os"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// BenchmarkRetryLoop measures the retry pattern's throughput: each message
// is rejected once from the work queue, waits in a retry queue (TTL 0),
// dead-letters back and is acknowledged. It reports retried messages per
// second. With BENCH_AMQP_URL set it runs against that broker instead
// (RabbitMQ, for a side-by-side figure).
func BenchmarkRetryLoop(b *testing.B) {
	url := os.Getenv("BENCH_AMQP_URL")
	if url == "" {
		url = startBinary(b, fastBroker(b), b.TempDir(), "127.0.0.1:0").URL()
	}
	conn, err := amqp091.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	work, retry := uniqueName("bench-work"), uniqueName("bench-retry")
	for _, q := range []struct {
		name string
		args amqp091.Table
	}{
		{work, amqp091.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": retry}},
		{retry, amqp091.Table{"x-message-ttl": int32(0), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work}},
	} {
		if _, err := ch.QueueDeclare(q.name, false, true, false, false, q.args); err != nil {
			b.Fatal(err)
		}
	}
	if err := ch.Qos(200, 0, false); err != nil {
		b.Fatal(err)
	}
	msgs, err := ch.Consume(work, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		retried := 0
		for d := range msgs {
			if d.Headers["x-death"] == nil {
				_ = d.Reject(false)
				continue
			}
			_ = d.Ack(false)
			if retried++; retried == b.N {
				return
			}
		}
	}()
	body := make([]byte, 256)
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish("", work, false, false, amqp091.Publishing{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("the retry loop did not finish")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "retried/s")
	_, _ = ch.QueueDelete(work, false, false, false)
	_, _ = ch.QueueDelete(retry, false, false, false)
}
