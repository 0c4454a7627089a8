package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// seedPrograms are the seed's example programs, copied verbatim into
// testdata/seed (see its README.md), with their SHA-256.
var seedPrograms = map[string]string{
	"task_consumer.py":  "cd230cd159eb6feadbe21b771654189ad741dc4d04afc05498999d91c0dba79a",
	"task_publisher.js": "66c025ca9170f89865cc50ef8438b65a0fde87044fc8d90ee2720edea4eff26e",
}

// seedPort is where the seed programs expect the broker: they connect to
// amqp://localhost with the default port.
const seedPort = "5672"

// TestSeed runs the seed's two programs unmodified against Warren on
// localhost:5672: the pika consumer (durable topic exchange and queue,
// prefetch 1, manual acks) and the amqplib publisher (persistent message
// with a message id). The consumer must process and complete the task.
func TestSeed(t *testing.T) {
	dir := filepath.Join(repoRoot, "e2e", "testdata", "seed")
	for name, want := range seedPrograms {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want {
			t.Fatalf("testdata/seed/%s is not the seed's program (sha256 %x, want %s); it must run unmodified", name, sum, want)
		}
	}
	checkPortFree(t, seedPort)
	b := startBrokerIn(t, t.TempDir(), net.JoinHostPort("127.0.0.1", seedPort))

	consumer := startSeedConsumer(t, dir)
	waitFor(t, 20*time.Second, consumer.expect("[*] Waiting for tasks"))

	publish := func(id string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "task_publisher.js", id, `{"job":"pdf-convert"}`)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(repoRoot, "node_modules"))
		out, err := cmd.CombinedOutput()
		if err != nil || ctx.Err() != nil {
			t.Fatalf("task_publisher.js %s: %v (%v)\n%s", id, err, ctx.Err(), out)
		}
		// The publisher logs its errors and still exits 0.
		if !strings.Contains(string(out), "Task "+id+" published to exchange.") || strings.Contains(string(out), "Error") {
			t.Fatalf("task_publisher.js %s output:\n%s", id, out)
		}
	}
	publish("task-42")
	waitFor(t, 20*time.Second, consumer.expect(" [x] Processing task task-42 on thread", " [x] Task task-42 complete"))

	// The consumer prints "complete" before it acks, so stopping it right
	// after that line would race with its ack. pika runs callbacks one at a
	// time, so once it prints that it is processing a second task, the
	// first callback, basic_ack included, has returned. Then the consumer
	// is interrupted in the middle of the second task, which must come back
	// to the queue, redelivered, while task-42 must not.
	publish("task-43")
	waitFor(t, 20*time.Second, consumer.expect(" [x] Processing task task-43 on thread"))
	consumer.interrupt()
	if out := consumer.out.String(); strings.Contains(out, "Error processing task") || !strings.Contains(out, "Exiting consumer.") {
		t.Fatalf("consumer output:\n%s", out)
	}

	conn, err := amqp091.Dial(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	inspect := func() amqp091.Queue {
		t.Helper()
		q, err := ch.QueueDeclarePassive("high-priority-jobs", true, false, false, false, nil)
		if err != nil {
			t.Fatalf("passive declare of the seed's queue: %v", err)
		}
		return q
	}
	// The broker requeues the interrupted task once it sees the
	// connection go.
	waitFor(t, 10*time.Second, func() error {
		if q := inspect(); q.Messages != 1 || q.Consumers != 0 {
			return fmt.Errorf("queue has %d messages and %d consumers, want the interrupted task and none", q.Messages, q.Consumers)
		}
		return nil
	})
	d, ok, err := ch.Get("high-priority-jobs", false)
	if err != nil || !ok {
		t.Fatalf("basic.get: ok %v, err %v", ok, err)
	}
	if d.MessageId != "task-43" || !d.Redelivered || d.DeliveryMode != amqp091.Persistent ||
		d.Exchange != "tasks-exchange" || d.RoutingKey != "tasks.priority.high" || string(d.Body) != `{"job":"pdf-convert"}` {
		t.Fatalf("left in the queue: id %q redelivered %v mode %d exchange %q key %q body %s; want only task-43, redelivered",
			d.MessageId, d.Redelivered, d.DeliveryMode, d.Exchange, d.RoutingKey, d.Body)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if q := inspect(); q.Messages != 0 {
		t.Fatalf("queue has %d messages after the last ack, want 0", q.Messages)
	}
}

// checkPortFree fails the test when something already listens on port on
// the loopback addresses that "localhost" may resolve to: the seed programs
// would talk to it instead of Warren.
func checkPortFree(t *testing.T, port string) {
	t.Helper()
	for _, host := range []string{"127.0.0.1", "::1"} {
		l, err := net.Listen("tcp", net.JoinHostPort(host, port))
		if err == nil {
			l.Close()
			continue
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("port %s on %s is taken by another process; the seed programs hardcode localhost:%s, so stop whatever listens there (a local RabbitMQ?) to run this test: %v",
				port, host, port, err)
		}
		if host == "127.0.0.1" {
			t.Fatalf("cannot check that %s:%s is free: %v", host, port, err)
		}
		// No IPv6 loopback here: nothing can listen on it either.
	}
}

// seedConsumer is the running task_consumer.py.
type seedConsumer struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *logBuffer
	exited chan struct{}
	err    error
}

func startSeedConsumer(t *testing.T, dir string) *seedConsumer {
	t.Helper()
	c := &seedConsumer{t: t, out: &logBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command("/usr/bin/python3", "-u", "task_consumer.py")
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("task_consumer.py output:\n%s", c.out.String())
		}
	})
	return c
}

// expect returns a waitFor condition: the consumer has printed every line,
// and is still running.
func (c *seedConsumer) expect(lines ...string) func() error {
	return func() error {
		out := c.out.String()
		for _, l := range lines {
			if !strings.Contains(out, l) {
				select {
				case <-c.exited:
					c.t.Fatalf("task_consumer.py exited (%v) before printing %q:\n%s", c.err, l, out)
				default:
				}
				return fmt.Errorf("task_consumer.py has not printed %q; output so far:\n%s", l, out)
			}
		}
		return nil
	}
}

// interrupt sends SIGINT, as Ctrl+C would, and waits for the consumer to
// exit cleanly.
func (c *seedConsumer) interrupt() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
		c.t.Fatal(err)
	}
	select {
	case <-c.exited:
		if c.err != nil {
			c.t.Fatalf("task_consumer.py exited with %v after SIGINT:\n%s", c.err, c.out.String())
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("task_consumer.py still running 10s after SIGINT:\n%s", c.out.String())
	}
}
