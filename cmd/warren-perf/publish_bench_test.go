package main

import (
	"context"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The two benchmarks below publish 16-byte messages to the fake broker, one
// with amqp091-go and one with warren-perf's own publisher, to show why
// warren-perf does not publish through amqp091-go (see README.md).

func BenchmarkPublishAmqp091(b *testing.B) {
	fb := startFakeBroker(b)
	conn, err := amqp.Dial(fb.uri())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare("q", false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 16)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		encodeBody(body, 0, uint64(i), 1)
		if err := ch.PublishWithContext(ctx, "", "q", false, false, amqp.Publishing{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	// A round trip: the broker has read every publish before it answers.
	if _, err := ch.QueueDeclare("q", false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkPublishLean(b *testing.B) {
	fb := startFakeBroker(b)
	o, err := parseArgs([]string{"-h", fb.uri(), "-x", "1", "-y", "0", "-u", "q", "-s", "16", "-C", "1"})
	if err != nil {
		b.Fatal(err)
	}
	o.PMessages = max(b.N, 1)
	b.ReportAllocs()
	b.ResetTimer()
	s, err := run(&o, discard{}, nil)
	b.StopTimer()
	if err != nil || s.Error != "" {
		b.Fatalf("run: %v %s", err, s.Error)
	}
}
