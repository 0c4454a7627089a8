# pika over TLS (ssl_options): without a client certificate and with one,
# logging in with PLAIN, then with EXTERNAL as the user the certificate
# names. Arguments: CA file, client certificate, client key, user.
import os
import ssl
import sys

import pika

ca, cert, key, user = sys.argv[1:5]
host, port = os.environ["AMQPS_HOST"], int(os.environ["AMQPS_PORT"])


def options(with_cert):
    ctx = ssl.create_default_context(cafile=ca)
    if with_cert:
        ctx.load_cert_chain(cert, key)
    return pika.SSLOptions(ctx, server_hostname="localhost")


def round_trip(params, queue):
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=True)
    ch.basic_publish("", queue, b"over tls")
    for _ in range(100):
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            assert body == b"over tls", body
            break
        conn.sleep(0.05)
    else:
        raise SystemExit("no message back from " + queue)
    conn.close()


plain = pika.PlainCredentials("guest", "guest")
round_trip(pika.ConnectionParameters(host=host, port=port, credentials=plain, ssl_options=options(False)), "pika.tls.nocert")
round_trip(pika.ConnectionParameters(host=host, port=port, credentials=plain, ssl_options=options(True)), "pika.tls.cert")
round_trip(pika.ConnectionParameters(host=host, port=port, credentials=pika.credentials.ExternalCredentials(),
                                     ssl_options=options(True)), "pika.tls.external")
print("ok")
