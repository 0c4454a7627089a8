# A publisher sees connection.blocked and connection.unblocked through
# pika's callbacks: the script sets the memory watermark to 0 through the
# management API (every publisher blocks), publishes, waits for the
# blocked callback, restores the watermark and waits for the unblocked one.
import base64
import json
import os
import time
import urllib.request

import pika

MGMT = os.environ["MGMT_URL"]
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(MGMT + path, data=data, method=method,
                                 headers={"Authorization": AUTH, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


node = api("GET", "/api/overview")["node"]
events = []
params = pika.ConnectionParameters(host=os.environ["AMQP_HOST"], port=int(os.environ["AMQP_PORT"]))
conn = pika.BlockingConnection(params)
conn.add_on_connection_blocked_callback(lambda _c, m: events.append("blocked " + m.method.reason))
conn.add_on_connection_unblocked_callback(lambda _c, m: events.append("unblocked"))
ch = conn.channel()
ch.queue_declare("pika.blocked", auto_delete=True)
ch.basic_publish("", "pika.blocked", b"first")


def wait_for(n, what):
    deadline = time.monotonic() + 20
    while len(events) < n:
        if time.monotonic() > deadline:
            raise SystemExit("no %s within 20s; events: %r" % (what, events))
        conn.process_data_events(time_limit=0.05)


api("PUT", "/api/nodes/%s/vm-memory-high-watermark" % node, {"relative": 0})
wait_for(1, "blocked callback")
api("PUT", "/api/nodes/%s/vm-memory-high-watermark" % node, {"relative": 0.6})
wait_for(2, "unblocked callback")
ch.basic_publish("", "pika.blocked", b"second")
count = ch.queue_declare("pika.blocked", passive=True).method.message_count
conn.close()
print("pika: %s; %d messages queued" % ("; ".join(events), count))
