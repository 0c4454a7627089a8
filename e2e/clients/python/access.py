"""Access-control scenarios driven through pika's BlockingConnection.

Usage: access.py USER/OPERATION ...

For each scenario, connects to AMQP_HOST:AMQP_PORT as USER (whose
password is its name) to the vhost "/", opens a channel, runs OPERATION
on the objects e2e/access_test.go sets up, and prints one line:
"USER/OPERATION: OK", or "USER/OPERATION: CODE TEXT" with the code and
text of the channel or connection close the broker answered with. Exits 1
on an unknown operation or an unexpected failure.
"""
import os
import re
import signal
import sys

import pika
from pika.exceptions import (AMQPChannelError, AMQPConnectionError,
                             ChannelClosedByBroker, ConnectionClosedByBroker,
                             ProbableAccessDeniedError)

WATCHDOG_SECONDS = 60


def connect(user):
    params = pika.ConnectionParameters(
        host=os.environ["AMQP_HOST"], port=int(os.environ["AMQP_PORT"]),
        virtual_host="/", credentials=pika.PlainCredentials(user, user),
        connection_attempts=1, socket_timeout=5, stack_timeout=10,
        blocked_connection_timeout=10)
    return pika.BlockingConnection(params)


def publish(exchange, key):
    """Publishes in confirm mode, so that a refusal (a channel close that
    comes after the publish) is raised by basic_publish."""
    def op(ch):
        ch.confirm_delivery()
        ch.basic_publish(exchange, key, b"access")
    return op


def consume(ch):
    tag = ch.basic_consume("acc-q", lambda *args: None, consumer_tag="acc-tag")
    ch.basic_cancel(tag)


OPERATIONS = {
    "queue.declare": lambda ch: ch.queue_declare("acc-q", durable=True),
    "queue.declare-passive": lambda ch: ch.queue_declare("acc-q", passive=True),
    "exchange.declare": lambda ch: ch.exchange_declare("acc-x", "direct", durable=True),
    "queue.delete": lambda ch: ch.queue_delete("acc-q"),
    "exchange.delete": lambda ch: ch.exchange_delete("acc-x"),
    "queue.delete-own": lambda ch: ch.queue_delete("acc-del-py"),
    "queue.bind": lambda ch: ch.queue_bind("acc-q", "acc-x", routing_key="k"),
    "queue.purge": lambda ch: ch.queue_purge("acc-q"),
    "basic.consume": consume,
    # Unacked: the message goes back when the connection closes.
    "basic.get": lambda ch: ch.basic_get("acc-q", auto_ack=False),
    "basic.publish": publish("acc-x", "k"),
    "basic.publish-default": publish("", "acc-q"),
    "topic.publish-other": publish("amq.topic", "other.x"),
    "topic.publish-own": publish("amq.topic", "acc-topic.x"),
    "topic.bind-other": lambda ch: ch.queue_bind("acc-tq", "amq.topic", routing_key="other.#"),
    "topic.bind-own": lambda ch: ch.queue_bind("acc-tq", "amq.topic", routing_key="acc-topic.#"),
    "connection.open": lambda ch: None,
}


def run(scenario):
    user, _, name = scenario.partition("/")
    op = OPERATIONS[name]
    try:
        conn = connect(user)
    except ProbableAccessDeniedError as e:
        # pika reports a connection.close answering connection.open so,
        # with the broker's close described in its message:
        # 'ConnectionClosedByBroker: (530) "NOT_ALLOWED - ..."'.
        m = re.search(r'\((\d+)\) "(.*)"$', str(e.args[0]) if e.args else "")
        return "%s %s" % m.groups() if m else "refused %r" % (e.args,)
    except ConnectionClosedByBroker as e:
        return "%d %s" % (e.reply_code, e.reply_text)
    try:
        ch = conn.channel()
        op(ch)
        return "OK"
    except ChannelClosedByBroker as e:
        return "%d %s" % (e.reply_code, e.reply_text)
    finally:
        if conn.is_open:
            conn.close()


def main():
    signal.alarm(WATCHDOG_SECONDS)
    for scenario in sys.argv[1:]:
        try:
            print("%s: %s" % (scenario, run(scenario)), flush=True)
        except (AMQPChannelError, AMQPConnectionError) as e:
            print("%s: unexpected %r" % (scenario, e), flush=True)


if __name__ == "__main__":
    main()
