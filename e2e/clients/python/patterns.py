"""RabbitMQ usage patterns driven through pika's BlockingConnection.

Usage: patterns.py PATTERN (one of the names in PATTERNS at the bottom).

Connects to AMQP_HOST:AMQP_PORT as guest. On success prints
"pika PATTERN: ok - DETAILS" and exits 0; on any failure prints
"pika PATTERN: FAIL - WHY" to stderr and exits 1. A watchdog alarm ends a
stuck run; every wait has its own deadline. Names are unique per run, so
many runs can share one broker.
"""
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid

import pika
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError

WATCHDOG_SECONDS = 40
WAIT_SECONDS = 10


class Failure(Exception):
    """A check failed."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def connect():
    params = pika.ConnectionParameters(
        host=os.environ.get("AMQP_HOST", "127.0.0.1"),
        port=int(os.environ.get("AMQP_PORT", "5672")),
        socket_timeout=5, stack_timeout=10, blocked_connection_timeout=10)
    return pika.BlockingConnection(params)


def uniq(kind):
    return "e2e.pika.%s.%s" % (kind, uuid.uuid4().hex[:12])


def pump(conns, cond, what, timeout=WAIT_SECONDS):
    """Processes I/O on conns until cond() holds; fails after timeout."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise Failure("timed out after %ss waiting for %s" % (timeout, what))
        for c in conns:
            c.process_data_events(time_limit=0.005)


def message_count(conn, queue):
    """Ready messages in queue, from a passive declare on a fresh channel."""
    ch = conn.channel()
    n = ch.queue_declare(queue, passive=True).method.message_count
    ch.close()
    return n


def consumer_count(conn, queue):
    ch = conn.channel()
    n = ch.queue_declare(queue, passive=True).method.consumer_count
    ch.close()
    return n


def expect_channel_error(code, text_prefix, fn):
    """Runs fn, which must make the broker close the channel with code."""
    try:
        fn()
    except ChannelClosedByBroker as e:
        check(e.reply_code == code, "want channel error %d, got %d %s" % (code, e.reply_code, e.reply_text))
        check(e.reply_text.startswith(text_prefix),
              "reply text %r does not start with %r" % (e.reply_text, text_prefix))
        return e
    raise Failure("want channel error %d %s, got none" % (code, text_prefix))


def wait_queue_gone(conn, queue, what):
    """Polls a passive declare until the broker answers 404 NOT_FOUND. An
    exclusive queue whose owner is going answers 405 RESOURCE_LOCKED until
    it is deleted: that is still there."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        ch = conn.channel()
        try:
            ch.queue_declare(queue, passive=True)
            ch.close()
        except ChannelClosedByBroker as e:
            if e.reply_code != 405:
                want = "NOT_FOUND - no queue '%s' in vhost '/'" % queue
                check(e.reply_code == 404 and e.reply_text == want,
                      "passive declare of %s: got %d %r, want 404 %r" % (what, e.reply_code, e.reply_text, want))
                return
        if time.monotonic() > deadline:
            raise Failure("%s still exists %ss later" % (what, WAIT_SECONDS))
        time.sleep(0.005)


def drain_until_end(conns, queues, received, end=b"end"):
    """Waits until every queue in queues has seen the end marker in received."""
    pump(conns, lambda: all(end in received[q] for q in queues), "the end marker on every queue")
    for q in queues:
        check(received[q].count(end) == 1, "queue %s got the end marker %d times" % (q, received[q].count(end)))
        received[q].remove(end)


def work_queue():
    # The RabbitMQ tutorial's "fair dispatch": with prefetch 1 a worker
    # that is still busy with (holding) one message gets no more, so the
    # fast worker drains everything else.
    setup = connect()
    slow_conn, fast_conn = connect(), connect()
    ch = setup.channel()
    q = uniq("tasks")
    ch.queue_declare(q, durable=True)
    slow_ch, fast_ch = slow_conn.channel(), fast_conn.channel()
    slow_ch.basic_qos(prefetch_count=1)
    fast_ch.basic_qos(prefetch_count=1)
    slow, fast = [], []

    def on_slow(c, method, props, body):
        slow.append((method.delivery_tag, body))  # busy: holds it, no ack yet

    def on_fast(c, method, props, body):
        fast.append(body)
        c.basic_ack(method.delivery_tag)

    slow_ch.basic_consume(q, on_slow)
    fast_ch.basic_consume(q, on_fast)
    n = 20
    tasks = [("task-%d" % i).encode() for i in range(n)]
    for body in tasks:
        ch.basic_publish("", q, body, pika.BasicProperties(delivery_mode=2))
    conns = [slow_conn, fast_conn]
    pump(conns, lambda: len(slow) + len(fast) >= n, "%d deliveries" % n)
    check(len(slow) == 1, "slow worker got %d messages while holding one unacked (want 1): %r" % (len(slow), slow))
    check(sorted(fast + [slow[0][1]]) == sorted(tasks), "deliveries %r + %r are not the %d tasks" % (fast, slow, n))
    check(len(set(fast)) == len(fast), "fast worker got duplicates: %r" % fast)
    # The slow worker finishes; the next task goes to whichever is free.
    slow_ch.basic_ack(slow[0][0])
    extra = b"after-slow-ack"
    ch.basic_publish("", q, extra)
    pump(conns, lambda: len(slow) + len(fast) == n + 1, "the task published after the slow ack")
    check(len(slow) + len(fast) == n + 1, "got %d deliveries, want %d" % (len(slow) + len(fast), n + 1))
    if len(slow) == 2:
        slow_ch.basic_ack(slow[1][0])
    check(message_count(setup, q) == 0, "queue not empty after all acks")
    ch.queue_delete(q)
    for c in (slow_conn, fast_conn, setup):
        c.close()
    return "fast worker got %d, slow worker held 1" % (n - 1)


def fanout():
    conn = connect()
    ch = conn.channel()
    ex = uniq("logs")
    ch.exchange_declare(ex, "fanout", auto_delete=True)
    queues = []
    for _ in range(3):
        q = ch.queue_declare("", exclusive=True).method.queue
        check(q.startswith("amq.gen-"), "server-named queue %r does not start with amq.gen-" % q)
        ch.queue_bind(q, ex)
        queues.append(q)
    check(len(set(queues)) == 3, "server-named queues not distinct: %r" % queues)
    received = {q: [] for q in queues}
    for q in queues:
        ch.basic_consume(q, lambda c, m, p, body, q=q: received[q].append(body), auto_ack=True)
    logs = [("log-%d" % i).encode() for i in range(5)]
    for body in logs + [b"end"]:
        ch.basic_publish(ex, "ignored-key", body)
    drain_until_end([conn], queues, received)
    for q in queues:
        check(received[q] == logs, "queue %s got %r, want %r" % (q, received[q], logs))
    conn.close()
    # Exclusive queues go with their connection; the auto-delete exchange
    # with its last binding.
    conn = connect()
    for q in queues:
        wait_queue_gone(conn, q, "exclusive queue %s" % q)
    conn.close()
    return "3 server-named queues each got all %d messages" % len(logs)


def routed(exchange_type, bindings, publishes, end_key):
    """Declares an exchange with two queues bound per bindings, publishes
    (routing key, body) pairs, then an end marker with end_key (which must
    route to both queues), and returns what each queue received."""
    conn = connect()
    ch = conn.channel()
    ex = uniq(exchange_type)
    ch.exchange_declare(ex, exchange_type, auto_delete=True)
    names = {}
    for label, keys in bindings.items():
        q = ch.queue_declare("", exclusive=True).method.queue
        names[label] = q
        for k in keys:
            ch.queue_bind(q, ex, routing_key=k)
    received = {q: [] for q in names.values()}
    keys = {q: [] for q in names.values()}

    def collect(q):
        def on_message(c, method, props, body):
            received[q].append(body)
            if body != b"end":
                keys[q].append(method.routing_key)
            check(method.exchange == ex, "delivery's exchange %r, want %r" % (method.exchange, ex))
        return on_message

    for q in names.values():
        ch.basic_consume(q, collect(q), auto_ack=True)
    for key, body in publishes + [(end_key, "end")]:
        ch.basic_publish(ex, key, body.encode())
    drain_until_end([conn], names.values(), received)
    conn.close()
    key_of = dict((b, k) for k, b in publishes)
    out = {}
    for label, q in names.items():
        out[label] = [b.decode() for b in received[q]]
        check(keys[q] == [key_of[b] for b in out[label]],
              "routing keys %r do not match bodies %r" % (keys[q], out[label]))
    return out


def direct():
    got = routed("direct",
                 {"errors": ["error"], "all": ["info", "warning", "error"]},
                 [("info", "i1"), ("warning", "w1"), ("error", "e1"), ("debug", "d1"), ("info", "i2"), ("error", "e2")],
                 "error")
    check(got["errors"] == ["e1", "e2"], "queue bound to 'error' got %r" % got["errors"])
    check(got["all"] == ["i1", "w1", "e1", "i2", "e2"], "queue bound to info/warning/error got %r" % got["all"])
    return "error -> both queues, info/warning -> one, debug -> none"


def topic():
    keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
            "lazy.pink.rabbit", "quick.brown.fox", "orange", "quick.orange.male.rabbit",
            "lazy.orange.male.rabbit", "lazy"]
    got = routed("topic",
                 {"Q1": ["*.orange.*"], "Q2": ["*.*.rabbit", "lazy.#"]},
                 [(k, k) for k in keys],
                 "end.orange.rabbit")
    want1 = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]
    want2 = ["quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox", "lazy.pink.rabbit",
             "lazy.orange.male.rabbit", "lazy"]
    check(got["Q1"] == want1, "Q1 (*.orange.*) got %r, want %r" % (got["Q1"], want1))
    check(got["Q2"] == want2, "Q2 (*.*.rabbit, lazy.#) got %r, want %r" % (got["Q2"], want2))
    return "tutorial keys routed as in RabbitMQ (lazy.pink.rabbit once)"


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def rpc_server(conn, queue, seen_reply_to):
    """Serves fib(n) on queue: replies to reply_to with the request's correlation_id."""
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=True)
    ch.basic_qos(prefetch_count=1)

    def on_request(c, method, props, body):
        seen_reply_to.append(props.reply_to)
        c.basic_publish("", props.reply_to, str(fib(int(body))).encode(),
                        pika.BasicProperties(correlation_id=props.correlation_id))
        c.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_request)
    return ch


def rpc_calls(server_conn, client_conn, client_ch, rpc_queue, reply_to, responses):
    """Sends fib requests, some of them concurrently, and checks the answers."""
    ns = [0, 1, 10, 20, 30]
    calls = {}
    for n in ns:
        corr = str(uuid.uuid4())
        calls[corr] = n
        client_ch.basic_publish("", rpc_queue, str(n).encode(),
                                pika.BasicProperties(reply_to=reply_to, correlation_id=corr))
    pump([server_conn, client_conn], lambda: len(responses) >= len(ns), "%d RPC responses" % len(ns))
    check(len(responses) == len(ns), "got %d responses, want %d" % (len(responses), len(ns)))
    for corr, body in responses:
        check(corr in calls, "response with unknown correlation_id %r" % corr)
        check(body == str(fib(calls.pop(corr))).encode(), "wrong answer %r" % body)
    check(not calls, "no response for %r" % calls)
    return len(ns)


def rpc():
    server_conn, client_conn = connect(), connect()
    rpc_queue = uniq("rpc")
    seen = []
    rpc_server(server_conn, rpc_queue, seen)
    ch = client_conn.channel()
    callback = ch.queue_declare("", exclusive=True).method.queue
    responses = []
    ch.basic_consume(callback, lambda c, m, p, body: responses.append((p.correlation_id, body)), auto_ack=True)
    n = rpc_calls(server_conn, client_conn, ch, rpc_queue, callback, responses)
    check(set(seen) == {callback}, "server saw reply_to %r, want %r" % (set(seen), callback))
    client_conn.close()
    server_conn.close()
    return "%d calls answered over exclusive callback queue" % n


def rpc_direct_reply_to():
    server_conn, client_conn = connect(), connect()
    rpc_queue = uniq("rpc")
    seen = []
    rpc_server(server_conn, rpc_queue, seen)
    ch = client_conn.channel()
    responses = []
    keys = []

    def on_response(c, method, props, body):
        responses.append((props.correlation_id, body))
        keys.append((method.exchange, method.routing_key, method.redelivered))

    # Consume the pseudo-queue no-ack, then publish on the same channel.
    ch.basic_consume("amq.rabbitmq.reply-to", on_response, auto_ack=True)
    n = rpc_calls(server_conn, client_conn, ch, rpc_queue, "amq.rabbitmq.reply-to", responses)
    prefix = "amq.rabbitmq.reply-to."
    check(len(set(seen)) == 1, "server saw several reply_to values: %r" % seen)
    check(seen[0].startswith(prefix) and len(seen[0]) > len(prefix),
          "server saw reply_to %r, want %s<suffix>" % (seen[0], prefix))
    for exch, key, redelivered in keys:
        check(exch == "" and key == seen[0] and not redelivered,
              "reply delivered with exchange %r routing key %r redelivered %r" % (exch, key, redelivered))
    # Publishing with reply_to amq.rabbitmq.reply-to on a channel that does
    # not consume it is a channel error.
    other = client_conn.channel()

    def publish_without_consumer():
        other.basic_publish("", rpc_queue, b"1", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        other.queue_declare(rpc_queue, passive=True)  # round trip: the error arrives before its ok

    expect_channel_error(406, "PRECONDITION_FAILED - fast reply consumer does not exist", publish_without_consumer)
    client_conn.close()
    server_conn.close()
    return "%d calls answered via direct reply-to" % n


def direct_reply_to_rules():
    # RabbitMQ's rules for the amq.rabbitmq.reply-to pseudo-queue, each
    # checked on its own so that one report lists every difference.
    conn = connect()
    problems = []

    def soft(what, fn):
        try:
            fn()
        except Failure as e:
            problems.append("%s: %s" % (what, e))
        except ChannelClosedByBroker as e:
            problems.append("%s: channel closed %d %s" % (what, e.reply_code, e.reply_text))

    def passive():
        # How clients detect support (Spring AMQP's RabbitTemplate does this).
        ok = conn.channel().queue_declare("amq.rabbitmq.reply-to", passive=True).method
        check(ok.queue == "amq.rabbitmq.reply-to" and ok.message_count == 0, "declare-ok %r" % ok)

    soft("passive declare of amq.rabbitmq.reply-to", passive)
    soft("consume with acks", lambda: expect_channel_error(
        406, "PRECONDITION_FAILED - reply consumer cannot acknowledge",
        lambda: conn.channel().basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False)))

    def consume_twice():
        ch = conn.channel()
        ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
        ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)

    soft("second consume on a channel", lambda: expect_channel_error(
        406, "PRECONDITION_FAILED - reply consumer already set", consume_twice))

    def round_trip(ch, q, got, body):
        # The request goes to our own queue; we answer it as a server would.
        ch.basic_publish("", q, b"request", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        method, props, _ = ch.basic_get(q, auto_ack=True)
        check(method is not None, "request not in queue")
        ch.basic_publish("", props.reply_to, body)
        pump([conn], lambda: body in got, "the reply %r" % body)
        return props.reply_to

    def cancel_then_publish():
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        got = []
        tag = ch.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, body: got.append(body), auto_ack=True)
        first = round_trip(ch, q, got, b"reply-1")
        ch.basic_cancel(tag)
        # Consuming again works and gets a new name.
        ch.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, body: got.append(body), auto_ack=True)
        second = round_trip(ch, q, got, b"reply-2")
        check(first != second, "same reply-to name %r after cancel and consume" % first)
        # Once cancelled, publishing with reply_to amq.rabbitmq.reply-to fails.
        ch2 = conn.channel()
        tag2 = ch2.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
        ch2.basic_cancel(tag2)

        def publish():
            ch2.basic_publish("", q, b"request", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
            ch2.queue_declare(q, passive=True)  # round trip

        expect_channel_error(406, "PRECONDITION_FAILED - fast reply consumer does not exist", publish)

    soft("cancel, consume again, cancel and publish", cancel_then_publish)
    conn.close()
    check(not problems, "; ".join(problems))
    return "passive declare, ack mode, second consumer, cancel: all as RabbitMQ"


def confirms():
    conn = connect()
    ch = conn.channel()
    ch.confirm_delivery()
    q = uniq("confirmed")
    ch.queue_declare(q)
    n = 50
    for i in range(n):
        # Raises NackError or UnroutableError unless the broker acks.
        ch.basic_publish("", q, ("m%d" % i).encode(), pika.BasicProperties(delivery_mode=2), mandatory=True)
    check(message_count(conn, q) == n, "queue holds %d messages, want %d" % (message_count(conn, q), n))
    limited = uniq("limited")
    ch.queue_declare(limited, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.basic_publish("", limited, b"first")
    try:
        ch.basic_publish("", limited, b"second")
        raise Failure("second publish to a full reject-publish queue was acked, want nack")
    except NackError as e:
        check(len(e.messages) == 0, "nack came with returned messages %r" % e.messages)
    # The channel stays open and confirms go on.
    ch.basic_publish("", q, b"after-nack")
    check(message_count(conn, limited) == 1, "full queue holds %d, want 1" % message_count(conn, limited))
    method, _, body = ch.basic_get(limited, auto_ack=True)
    check(method is not None and body == b"first", "full queue's message is %r, want b'first'" % body)
    check(message_count(conn, q) == n + 1, "queue holds %d, want %d" % (message_count(conn, q), n + 1))
    ch.queue_delete(q)
    ch.queue_delete(limited)
    conn.close()
    return "%d publishes acked, publish to full reject-publish queue nacked (NackError)" % (n + 2)


def mandatory():
    conn = connect()
    ch = conn.channel()
    ex = uniq("nowhere")
    ch.exchange_declare(ex, "direct", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, ex, routing_key="bound")
    returned = []
    ch.add_on_return_callback(lambda c, method, props, body: returned.append((method, props, body)))
    ch.basic_publish(ex, "unbound", b"dropped")  # not mandatory: silently dropped
    ch.basic_publish(ex, "bound", b"routed", mandatory=True)
    ch.basic_publish(ex, "unbound", b"comes-back", pika.BasicProperties(message_id="m-1"), mandatory=True)
    ch.basic_publish("", uniq("no-such-queue"), b"comes-back-too", mandatory=True)
    pump([conn], lambda: len(returned) >= 2, "two basic.return")
    # A round trip on the channel: any further return would have come first.
    n = ch.queue_declare(q, passive=True).method.message_count
    check(len(returned) == 2, "got %d returns, want 2: %r" % (len(returned), [r[2] for r in returned]))
    method, props, body = returned[0]
    check((method.reply_code, method.reply_text) == (312, "NO_ROUTE"),
          "return is %d %r, want 312 NO_ROUTE" % (method.reply_code, method.reply_text))
    check((method.exchange, method.routing_key, body, props.message_id) == (ex, "unbound", b"comes-back", "m-1"),
          "returned %r %r %r %r" % (method.exchange, method.routing_key, body, props.message_id))
    check(returned[1][0].reply_code == 312 and returned[1][0].exchange == "" and returned[1][2] == b"comes-back-too",
          "second return %r %r" % (returned[1][0], returned[1][2]))
    check(n == 1, "bound queue holds %d, want 1" % n)
    # In confirm mode pika raises UnroutableError (basic.return then basic.ack).
    cch = conn.channel()
    cch.confirm_delivery()
    try:
        cch.basic_publish(ex, "unbound", b"unroutable", mandatory=True)
        raise Failure("unroutable mandatory publish in confirm mode did not raise UnroutableError")
    except UnroutableError as e:
        check(len(e.messages) == 1 and e.messages[0].method.reply_code == 312 and e.messages[0].body == b"unroutable",
              "UnroutableError messages %r" % e.messages)
    cch.basic_publish(ex, "bound", b"routable", mandatory=True)
    conn.close()
    return "unroutable mandatory publishes returned 312 NO_ROUTE (also as UnroutableError)"


def hold(queue):
    """Child process for redelivery: consumes one message without acking,
    says so, and waits to be killed."""
    conn = connect()
    ch = conn.channel()
    got = []
    ch.basic_consume(queue, lambda c, m, p, body: got.append((body, m.redelivered)))
    pump([conn], lambda: got, "a delivery")
    print("holding %s redelivered=%s" % (got[0][0].decode(), got[0][1]), flush=True)
    pump([conn], lambda: False, "being killed", timeout=WATCHDOG_SECONDS)


def redelivery():
    conn = connect()
    ch = conn.channel()
    q = uniq("redeliver")
    ch.queue_declare(q)
    # 1. The consumer's connection closes cleanly with the message unacked.
    ch.basic_publish("", q, b"m1")
    a = connect()
    a_ch = a.channel()
    got_a = []
    a_ch.basic_consume(q, lambda c, m, p, body: got_a.append((body, m.redelivered)))
    pump([a], lambda: got_a, "first delivery")
    check(got_a == [(b"m1", False)], "first consumer got %r" % got_a)
    b = connect()
    b_ch = b.channel()
    b_ch.basic_qos(prefetch_count=10)
    got_b = []

    def on_b(c, m, p, body):
        got_b.append((body, m.redelivered))
        c.basic_ack(m.delivery_tag)

    b_tag = b_ch.basic_consume(q, on_b)
    a.close()
    pump([b], lambda: got_b, "redelivery after clean close")
    check(got_b == [(b"m1", True)], "second consumer got %r, want m1 redelivered" % got_b)
    # 2. The consumer's process dies (SIGKILL) with the message unacked.
    b_ch.basic_cancel(b_tag)
    ch.basic_publish("", q, b"m2")
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_hold", q],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = child.stdout.readline().decode().strip()
        check(line == "holding m2 redelivered=False", "child consumer said %r" % line)
        b_ch.basic_consume(q, on_b)
    finally:
        child.kill()
        child.wait(timeout=10)
    pump([b], lambda: len(got_b) >= 2, "redelivery after the consumer process was killed")
    check(got_b == [(b"m1", True), (b"m2", True)], "second consumer got %r" % got_b)
    check(message_count(conn, q) == 0, "queue not empty after acks")
    ch.queue_delete(q)
    b.close()
    conn.close()
    return "unacked message redelivered with redelivered=true after close and after kill"


def transactions():
    conn = connect()
    ch = conn.channel()
    q = uniq("tx")
    ch.queue_declare(q)
    ch.tx_select()
    ch.basic_publish("", q, b"rolled-back")
    # The same channel's passive declare is a round trip after the publish.
    check(ch.queue_declare(q, passive=True).method.message_count == 0, "uncommitted publish is visible")
    ch.tx_rollback()
    check(message_count(conn, q) == 0, "rolled back publish reached the queue")
    ch.basic_publish("", q, b"committed")
    check(ch.queue_declare(q, passive=True).method.message_count == 0, "uncommitted publish is visible")
    ch.tx_commit()
    check(message_count(conn, q) == 1, "after commit queue holds %d, want 1" % message_count(conn, q))
    # Acks are transactional too: rolled back, the message stays unacked
    # (RabbitMQ does not requeue it); committed, it is gone.
    method, _, body = ch.basic_get(q)
    check(body == b"committed", "got %r, want b'committed'" % body)
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    ch.basic_ack(method.delivery_tag)
    ch.tx_commit()
    ch.basic_recover(requeue=True)  # would bring back an unacked message
    check(message_count(conn, q) == 0, "acked and committed message still in queue")
    ch.queue_delete(q)
    conn.close()
    return "rollback discarded the publish, commit delivered it"


def exclusive_queue():
    owner = connect()
    q = uniq("exclusive")
    owner.channel().queue_declare(q, exclusive=True)
    other = connect()
    locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'" % q
    expect_channel_error(405, locked, lambda: other.channel().queue_declare(q, exclusive=True))
    expect_channel_error(405, locked, lambda: other.channel().queue_declare(q))
    expect_channel_error(405, locked, lambda: other.channel().queue_declare(q, passive=True))
    expect_channel_error(405, locked, lambda: other.channel().basic_consume(q, lambda *a: None))
    expect_channel_error(405, locked, lambda: other.channel().queue_purge(q))
    expect_channel_error(405, locked, lambda: other.channel().queue_bind(q, "amq.direct", "k"))
    expect_channel_error(405, locked, lambda: other.channel().queue_delete(q))
    expect_channel_error(405, locked, lambda: other.channel().basic_get(q))
    owner.close()
    wait_queue_gone(other, q, "exclusive queue after its owner disconnected")
    other.close()
    return "405 RESOURCE_LOCKED for another connection, 404 after the owner left"


def crossing_close():
    # amqp091-go's "issue 43": the client closes a channel just as the broker
    # closes it for an error. The connection and its other channels live on.
    conn = connect()
    rounds = 10
    for _ in range(rounds):
        ch1, ch2 = conn.channel(), conn.channel()
        ch1.basic_publish(uniq("missing"), "k", b"x")  # the broker will close ch1 with 404
        try:
            ch1.close()
        except ChannelClosedByBroker as e:
            check(e.reply_code == 404, "ch1 closed with %d %s, want 404" % (e.reply_code, e.reply_text))
        ch2.exchange_declare(uniq("crossing"), "direct", auto_delete=True)
        ch2.close()
    check(conn.is_open, "connection closed")
    conn.close()
    return "%d crossing closes, the other channel declared every time" % rounds


def auto_delete_queue():
    q = uniq("autodelete")
    declarer = connect()
    declarer.channel().queue_declare(q, auto_delete=True)
    declarer.close()
    conn = connect()
    check(consumer_count(conn, q) == 0, "auto-delete queue has consumers")  # passive declare: still there
    ch1, ch2 = conn.channel(), conn.channel()
    t1 = ch1.basic_consume(q, lambda *a: None)
    t2 = ch2.basic_consume(q, lambda *a: None)
    check(consumer_count(conn, q) == 2, "want 2 consumers")
    ch1.basic_cancel(t1)
    check(consumer_count(conn, q) == 1, "auto-delete queue gone or wrong consumer count after first of two cancels")
    ch2.basic_cancel(t2)
    wait_queue_gone(conn, q, "auto-delete queue after its last consumer cancelled")
    conn.close()
    return "survived with no consumer ever, deleted after the last cancel"


def retry_dlq():
    # The seed's retry pattern: a failed message waits in a retry queue whose
    # TTL sends it back to the work queue; after three retries, counted from
    # x-death, the consumer parks it in a DLQ.
    conn = connect()
    ch = conn.channel()
    base = uniq("retry")
    work_x, retry_x = base + ".work-x", base + ".retry-x"
    work, retry, dlq = base + ".work", base + ".retry", base + ".dlq"
    ch.exchange_declare(work_x, "direct")
    ch.exchange_declare(retry_x, "fanout")
    ch.queue_declare(work, arguments={"x-dead-letter-exchange": retry_x})
    ch.queue_declare(retry, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": work_x})
    ch.queue_declare(dlq)
    ch.queue_bind(work, work_x, "job")
    ch.queue_bind(retry, retry_x, "")
    ch.basic_publish(work_x, "job", b"task", pika.BasicProperties(delivery_mode=2, message_id="j1"))
    seen = []

    def on_message(c, method, props, body):
        headers = props.headers or {}
        rejected = 0
        for d in headers.get("x-death", []):
            if d.get("queue") == work and d.get("reason") == "rejected":
                rejected = d["count"]
        seen.append((rejected, headers))
        if rejected >= 3:
            c.basic_publish("", dlq, body, pika.BasicProperties(headers=headers, message_id=props.message_id, delivery_mode=2))
            c.basic_ack(method.delivery_tag)
        else:
            c.basic_reject(method.delivery_tag, requeue=False)

    ch.basic_consume(work, on_message)
    pump([conn], lambda: len(seen) >= 4, "four deliveries")
    check([n for n, _ in seen] == [0, 1, 2, 3], "rejection counts by delivery %r" % [n for n, _ in seen])
    headers = seen[3][1]
    deaths = headers["x-death"]
    check(len(deaths) == 2, "x-death has %d entries, want 2: %r" % (len(deaths), deaths))
    want = [
        {"count": 3, "reason": "expired", "queue": retry, "exchange": retry_x, "routing-keys": ["job"]},
        {"count": 3, "reason": "rejected", "queue": work, "exchange": work_x, "routing-keys": ["job"]},
    ]
    for i, (got, w) in enumerate(zip(deaths, want)):
        check(set(got) == set(w) | {"time"}, "x-death[%d] fields %r" % (i, sorted(got)))
        for k, v in w.items():
            check(got[k] == v, "x-death[%d][%s] = %r, want %r" % (i, k, got[k], v))
        check(hasattr(got["time"], "year"), "x-death[%d] time %r is not a timestamp" % (i, got["time"]))
    for k, v in {"x-first-death-queue": work, "x-first-death-reason": "rejected", "x-first-death-exchange": work_x,
                 "x-last-death-queue": retry, "x-last-death-reason": "expired", "x-last-death-exchange": retry_x}.items():
        check(headers.get(k) == v, "%s = %r, want %r" % (k, headers.get(k), v))
    method, props, body = ch.basic_get(dlq, auto_ack=True)
    check(method is not None and body == b"task" and len(props.headers["x-death"]) == 2, "DLQ holds %r" % (body,))
    check(message_count(conn, work) == 0 and message_count(conn, retry) == 0, "work or retry not empty")
    for q in (work, retry, dlq):
        ch.queue_delete(q)
    for x in (work_x, retry_x):
        ch.exchange_delete(x)
    conn.close()
    return "three retries through a TTL queue counted from x-death, then the DLQ"


def consumer_priority():
    pub = connect()
    ch = pub.channel()
    q = uniq("prio")
    ch.queue_declare(q)
    cons = connect()
    low_ch, high_ch = cons.channel(), cons.channel()
    low_ch.basic_qos(prefetch_count=10)
    high_ch.basic_qos(prefetch_count=2)
    low, high = [], []

    def on_low(c, m, p, body):
        low.append(body)
        c.basic_ack(m.delivery_tag)

    low_ch.basic_consume(q, on_low)  # registered first, default priority 0
    high_ch.basic_consume(q, lambda c, m, p, body: high.append((m.delivery_tag, body)), arguments={"x-priority": 10})
    msgs = [("m%d" % i).encode() for i in range(6)]
    for body in msgs:
        ch.basic_publish("", q, body)
    pump([cons], lambda: len(low) + len(high) >= len(msgs), "%d deliveries" % len(msgs))
    check([b for _, b in high] == msgs[:2], "high-priority consumer (prefetch 2) got %r, want %r" % (high, msgs[:2]))
    check(low == msgs[2:], "low-priority consumer got %r, want %r" % (low, msgs[2:]))
    # Credit back: the high-priority consumer gets the next ones. Publishing
    # on its own channel orders the publishes after the acks.
    for tag, _ in high:
        high_ch.basic_ack(tag)
    more = [b"m6", b"m7"]
    for body in more:
        high_ch.basic_publish("", q, body)
    pump([cons], lambda: len(high) >= 4, "the high-priority consumer to get the next two")
    check([b for _, b in high] == msgs[:2] + more and low == msgs[2:],
          "after acks high got %r, low got %r" % ([b for _, b in high], low))
    for tag, _ in high[2:]:
        high_ch.basic_ack(tag)
    ch.queue_delete(q)
    cons.close()
    pub.close()
    return "x-priority 10 consumer got messages while it had credit, the rest went to priority 0"


def single_active_consumer():
    pub = connect()
    ch = pub.channel()
    q = uniq("sac")
    ch.queue_declare(q, arguments={"x-single-active-consumer": True})
    conns = [connect() for _ in range(3)]
    chans = [c.channel() for c in conns]
    got = [[], [], []]
    tags = []

    def consumer(i):
        def on_message(c, m, p, body):
            got[i].append((body.decode(), m.redelivered))
            if body != b"p6":  # the second consumer dies holding p6
                c.basic_ack(m.delivery_tag)
        return on_message

    for i, c in enumerate(chans):
        tags.append(c.basic_consume(q, consumer(i)))

    def publish(*bodies):
        for b in bodies:
            ch.basic_publish("", q, b.encode())

    publish("p1", "p2", "p3")
    pump(conns, lambda: len(got[0]) >= 3, "the first consumer to get p1..p3")
    check(got == [[("p1", False), ("p2", False), ("p3", False)], [], []], "deliveries %r" % got)
    # The active consumer cancels: the next one (in registration order) takes over.
    chans[0].basic_cancel(tags[0])
    publish("p4", "p5", "p6")
    pump(conns[1:], lambda: len(got[1]) >= 3, "the second consumer to get p4..p6")
    check(got[1:] == [[("p4", False), ("p5", False), ("p6", False)], []], "after cancel: %r" % got)
    # The active consumer's connection goes away holding p6: the third takes
    # over and gets p6 again, redelivered.
    conns[1].close()
    deadline = time.monotonic() + WAIT_SECONDS
    while consumer_count(pub, q) != 1:  # the closed connection's consumer goes
        check(time.monotonic() < deadline, "consumer count stays %d" % consumer_count(pub, q))
        time.sleep(0.005)
    publish("p7")
    pump(conns[2:], lambda: len(got[2]) >= 2, "the third consumer to get p6 and p7")
    check(got[2] == [("p6", True), ("p7", False)], "after disconnect the third consumer got %r" % got[2])
    check(len(got[0]) == 3, "cancelled consumer got more: %r" % got[0])
    ch.queue_delete(q)
    for c in (conns[0], conns[2], pub):
        c.close()
    return "only the active consumer received; cancel and disconnect handed over in order"


PATTERNS = {
    "work-queue": work_queue,
    "fanout": fanout,
    "direct": direct,
    "topic": topic,
    "rpc": rpc,
    "rpc-direct-reply-to": rpc_direct_reply_to,
    "direct-reply-to-rules": direct_reply_to_rules,
    "confirms": confirms,
    "mandatory": mandatory,
    "redelivery": redelivery,
    "transactions": transactions,
    "exclusive-queue": exclusive_queue,
    "crossing-close": crossing_close,
    "retry-dlq": retry_dlq,
    "auto-delete-queue": auto_delete_queue,
    "consumer-priority": consumer_priority,
    "single-active-consumer": single_active_consumer,
}


def on_watchdog(signum, frame):
    raise Failure("watchdog: still running after %ds" % WATCHDOG_SECONDS)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "_hold":
        hold(sys.argv[2])
        return
    if len(sys.argv) != 2 or sys.argv[1] not in PATTERNS:
        print("usage: patterns.py %s" % "|".join(PATTERNS), file=sys.stderr)
        sys.exit(2)
    name = sys.argv[1]
    signal.signal(signal.SIGALRM, on_watchdog)
    signal.alarm(WATCHDOG_SECONDS)
    try:
        detail = PATTERNS[name]()
    except Exception as e:  # noqa: BLE001 - any failure ends the run
        traceback.print_exc()
        print("pika %s: FAIL - %s" % (name, e if isinstance(e, Failure) else repr(e)), file=sys.stderr)
        sys.exit(1)
    signal.alarm(0)
    print("pika %s: ok - %s" % (name, detail))


if __name__ == "__main__":
    main()
