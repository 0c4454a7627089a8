package e2e

import (
	"net"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqp/wire"
)

// stalledMaxRSS bounds the broker's resident set while 1 GiB is published
// to a queue whose only consumer (autoack, no prefetch limit) has stopped
// reading its socket: the queues' memory budget (64 MiB by default), the
// store's pending writes (16 MiB), the stalled connection's pending output
// (1 MiB), Badger's memtables and buffers, and the Go runtime's headroom.
// Measured: 180 MiB, with 85 messages (5 MiB) sent to the stalled consumer.
const stalledMaxRSS = 320 << 20

// A consumer that stops reading its socket cannot make the broker hold
// what it publishes to it in memory: deliveries stop when its pending
// output is full, the queue pages past its budget, and the broker's
// memory stays bounded however much is published.
func TestStalledConsumerBoundsMemory(t *testing.T) {
	const size, count = 64 << 10, 16384 // 1 GiB
	b := startBinary(t, fastBroker(t), t.TempDir(), "127.0.0.1:0")
	q := uniqueName("stalled")

	// The stalled consumer: a raw connection with a small receive buffer
	// that consumes with autoack and then never reads again.
	stalled := dialRaw(t, b)
	if err := stalled.nc.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	stalled.open()
	stalled.send(1, &wire.ChannelOpen{})
	stalled.expectMethod(1, wire.MethodChannelOpenOk)
	stalled.send(1, &wire.QueueDeclare{Queue: q})
	stalled.expectMethod(1, wire.MethodQueueDeclareOk)
	stalled.send(1, &wire.BasicConsume{Queue: q, ConsumerTag: "stalled", NoAck: true})
	stalled.expectMethod(1, wire.MethodBasicConsumeOk)

	_, ch := dialChannel(t, b)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 256))
	body := make([]byte, size)
	var peak uint64
	sample := func() { peak = max(peak, vmRSS(t, b.Pid())) }
	const window = 128
	acked := 0
	await := func() {
		t.Helper()
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("message %d nacked", c.DeliveryTag)
			}
			acked++
		case <-time.After(30 * time.Second):
			t.Fatalf("no confirm within 30 s after %d", acked)
		}
	}
	start := time.Now()
	for i := range count {
		if i-acked >= window {
			await()
		}
		if err := ch.Publish("", q, false, false, amqp091.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
		if i%256 == 0 {
			sample()
		}
	}
	for acked < count {
		await()
	}
	sample()
	elapsed := time.Since(start)
	st, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("published %d x %d KiB in %v (%.0f MB/s); %d ready, %d went to the stalled consumer; peak RSS %d MiB (bound %d MiB)",
		count, size>>10, elapsed.Round(time.Millisecond), float64(count*size)/elapsed.Seconds()/1e6,
		st.Messages, count-st.Messages, peak>>20, stalledMaxRSS>>20)
	if peak > stalledMaxRSS {
		t.Errorf("peak RSS %d MiB, bound %d MiB", peak>>20, stalledMaxRSS>>20)
	}
	// What the stalled consumer was sent fits in its pending output and
	// the sockets' buffers: a few MiB.
	if st.Messages < count-256 || st.Consumers != 1 {
		t.Errorf("queue: %d ready, %d consumers; want nearly all %d ready and the stalled consumer still there", st.Messages, st.Consumers, count)
	}
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
}
