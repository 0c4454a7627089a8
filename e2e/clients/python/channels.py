# Opens a connection, opens and closes 100 channels, closes the connection.
import os
import pika

params = pika.ConnectionParameters(host=os.environ["AMQP_HOST"], port=int(os.environ["AMQP_PORT"]))
conn = pika.BlockingConnection(params)
channels = [conn.channel() for _ in range(100)]
assert len({ch.channel_number for ch in channels}) == 100
for ch in channels:
    ch.close()
    assert ch.is_closed
conn.close()
assert conn.is_closed
print("pika: 100 channels opened and closed")
