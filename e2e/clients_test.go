package e2e

import (
	"strings"
	"testing"
	"time"
)

// clientPatterns are the usage patterns that e2e/clients/python/patterns.py
// and e2e/clients/node/patterns.js each implement; the scripts take the name
// as their argument and print "<client> <name>: ok - ..." on success.
var clientPatterns = []string{
	"work-queue",             // prefetch 1, fair dispatch across a slow and a fast worker
	"fanout",                 // server-named exclusive queues each get every message
	"direct",                 // routing by exact key, one key bound to two queues
	"topic",                  // the tutorial's *.orange.*, *.*.rabbit and lazy.#
	"rpc",                    // reply_to and correlation_id over an exclusive callback queue
	"rpc-direct-reply-to",    // amq.rabbitmq.reply-to consumed no-ack on the publishing channel
	"direct-reply-to-rules",  // passive declare, ack mode, second consumer, publish after cancel
	"confirms",               // all acked; nack from a full x-overflow reject-publish queue
	"mandatory",              // basic.return 312 NO_ROUTE
	"redelivery",             // unacked message redelivered after close and after a killed consumer
	"transactions",           // tx rollback and commit of publishes and acks
	"exclusive-queue",        // 405 RESOURCE_LOCKED for others (declare, consume, purge, bind, delete, get), gone with its connection
	"crossing-close",         // client and broker close a channel at once; the connection lives on
	"retry-dlq",              // the seed's retry pattern: reject, TTL retry queue, x-death counts, DLQ
	"auto-delete-queue",      // lives until its last consumer cancels
	"consumer-priority",      // x-priority: higher consumer first while it has credit
	"single-active-consumer", // x-single-active-consumer: failover on cancel and disconnect
}

// TestClients runs every pattern with pika and with amqplib against one
// broker. The scripts use unique names, so the subtests run in parallel.
func TestClients(t *testing.T) {
	b := startBroker(t)
	clients := []struct{ name, script string }{
		{"pika", "python/patterns.py"},
		{"amqplib", "node/patterns.js"},
	}
	for _, c := range clients {
		for _, p := range clientPatterns {
			t.Run(c.name+"/"+p, func(t *testing.T) {
				t.Parallel()
				out := clientScript(t, b, time.Minute, c.script, p)
				if want := c.name + " " + p + ": ok"; !strings.Contains(out, want) {
					t.Fatalf("no %q in output:\n%s", want, out)
				}
			})
		}
	}
}
