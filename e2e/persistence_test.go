package e2e

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestRestartKeepsDurableState(t *testing.T) {
	b := startBroker(t)
	conn, ch := dialChannel(t, b)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare("dx", "direct", true, false, false, false, nil))
	must(ch.ExchangeDeclare("dx2", "fanout", true, false, false, false, nil))
	must(ch.ExchangeDeclare("tx", "fanout", false, false, false, false, nil))
	_, err := ch.QueueDeclare("dq", true, false, false, false, amqp091.Table{"x-max-length": int32(100)})
	must(err)
	_, err = ch.QueueDeclare("tq", false, false, false, false, nil)
	must(err)
	_, err = ch.QueueDeclare("eq", true, false, true, false, nil)
	must(err)
	must(ch.QueueBind("dq", "k", "dx", false, nil))
	must(ch.ExchangeBind("dx", "k", "dx2", false, nil))
	must(ch.QueueBind("tq", "", "tx", false, nil))
	must(ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 4))
	must(ch.Publish("dx", "k", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, MessageId: "kept", Body: []byte("persistent")}))
	must(ch.Publish("dx", "k", false, false, amqp091.Publishing{DeliveryMode: amqp091.Transient, Body: []byte("transient")}))
	must(ch.Publish("", "tq", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte("in a transient queue")}))
	for range 3 {
		if c := <-confirms; !c.Ack {
			t.Fatal("nack")
		}
	}
	conn.Close()

	b.Restart()

	_, ch = dialChannel(t, b)
	must(ch.ExchangeDeclarePassive("dx", "direct", true, false, false, false, nil))
	must(ch.ExchangeDeclarePassive("dx2", "fanout", true, false, false, false, nil))
	// The queue's arguments survived: an equivalent redeclare is fine, a
	// different one is not.
	q, err := ch.QueueDeclare("dq", true, false, false, false, amqp091.Table{"x-max-length": int32(100)})
	must(err)
	if q.Messages != 1 {
		t.Fatalf("durable queue has %d messages after restart, want the 1 persistent one", q.Messages)
	}
	d, ok, err := ch.Get("dq", false)
	if err != nil || !ok || string(d.Body) != "persistent" || d.MessageId != "kept" || d.DeliveryMode != amqp091.Persistent {
		t.Fatalf("recovered message %q id=%q mode=%d ok=%v err=%v", d.Body, d.MessageId, d.DeliveryMode, ok, err)
	}
	must(d.Ack(false))
	for _, gone := range []string{"tq", "eq"} {
		_, c := dialChannel(t, b)
		_, err := c.QueueDeclarePassive(gone, false, false, false, false, nil)
		expectCode(t, err, 404, "")
	}
	_, c := dialChannel(t, b)
	expectCode(t, c.ExchangeDeclarePassive("tx", "fanout", false, false, false, false, nil), 404, "")
	// Bindings survived, the exchange-to-exchange one too.
	_, ch = dialChannel(t, b)
	publish(t, ch, "dx", "k", "via dx")
	publish(t, ch, "dx2", "k", "via dx2")
	waitFor(t, 10*time.Second, func() error {
		if n := queueLen(t, b, "dq"); n != 2 {
			return fmt.Errorf("dq has %d, want 2", n)
		}
		return nil
	})
}

// crashBody is a crash-test message: producer, sequence, padding to 1 KiB.
func crashBody(producer, seq int) []byte {
	b := make([]byte, 1024)
	binary.BigEndian.PutUint32(b, uint32(producer))
	binary.BigEndian.PutUint32(b[4:], uint32(seq))
	return b
}

func TestCrashLosesNoConfirmedMessage(t *testing.T) {
	bin := fastBroker(t)
	for round, killAt := range []int{3000, 15000, 31000} {
		t.Run(fmt.Sprintf("kill after %d confirms", killAt), func(t *testing.T) {
			// A random point near killAt, different in every run.
			killAt += rand.IntN(2000)
			b := startBinary(t, bin, t.TempDir(), "127.0.0.1:0")
			_, ch := dialChannel(t, b)
			if _, err := ch.QueueDeclare("crash", true, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			const producers, perProducer = 2, 20000
			var mu sync.Mutex
			confirmed := map[uint64]bool{}
			total := 0
			killed := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := amqp091.Dial(b.URL())
					if err != nil {
						return
					}
					defer conn.Close()
					ch, err := conn.Channel()
					if err != nil || ch.Confirm(false) != nil {
						return
					}
					acks := ch.NotifyPublish(make(chan amqp091.Confirmation, perProducer))
					window := make(chan struct{}, 100)
					gone := make(chan struct{}) // the broker died: stop publishing
					go func() {
						defer close(gone)
						for c := range acks {
							if c.Ack {
								mu.Lock()
								confirmed[uint64(p)<<32|(c.DeliveryTag-1)] = true
								total++
								if total >= killAt {
									once.Do(func() { close(killed) })
								}
								mu.Unlock()
							}
							<-window
						}
					}()
					for seq := range perProducer {
						select {
						case window <- struct{}{}:
						case <-gone:
							return
						}
						if ch.Publish("", "crash", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: crashBody(p, seq)}) != nil {
							return
						}
					}
				}()
			}
			select {
			case <-killed:
			case <-time.After(60 * time.Second):
				t.Fatal("the kill point was not reached within 60s")
			}
			b.Kill()
			wg.Wait()
			mu.Lock()
			want := len(confirmed)
			mu.Unlock()

			b.Start()
			conn, ch := dialChannel(t, b)
			q, err := ch.QueueDeclarePassive("crash", true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := ch.Qos(1000, 0, false); err != nil {
				t.Fatal(err)
			}
			msgs, err := ch.Consume("crash", "", true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[uint64]int{}
			for range q.Messages {
				d := receive(t, msgs)
				id := uint64(binary.BigEndian.Uint32(d.Body))<<32 | uint64(binary.BigEndian.Uint32(d.Body[4:]))
				seen[id]++
			}
			conn.Close()
			lost, dups := 0, 0
			for id := range confirmed {
				if seen[id] == 0 {
					lost++
				}
			}
			for _, n := range seen {
				dups += n - 1
			}
			t.Logf("round %d: killed after %d confirms; confirmed %d, recovered %d, duplicates %d, lost %d",
				round+1, killAt, want, len(seen), dups, lost)
			if lost > 0 {
				t.Fatalf("%d confirmed messages lost", lost)
			}
			if dups > 0 {
				t.Fatalf("%d duplicates", dups)
			}
		})
	}
}
