// amqplib over TLS (amqps:// with ca, cert and key): without a client
// certificate and with one, logging in with PLAIN, then with EXTERNAL as
// the user the certificate names. Arguments: CA file, client certificate,
// client key.
const amqp = require('amqplib');
const fs = require('fs');

const [ca, cert, key] = process.argv.slice(2);
const url = `amqps://guest:guest@localhost:${process.env.AMQPS_PORT}`;

async function roundTrip(options, queue, credentials) {
  const conn = await amqp.connect(credentials ? `amqps://localhost:${process.env.AMQPS_PORT}` : url,
    { ...options, ...(credentials ? { credentials } : {}) });
  const ch = await conn.createChannel();
  await ch.assertQueue(queue, { autoDelete: true });
  ch.sendToQueue(queue, Buffer.from('over tls'));
  for (let i = 0; i < 100; i++) {
    const m = await ch.get(queue, { noAck: true });
    if (m) {
      if (m.content.toString() !== 'over tls') throw new Error(`got ${m.content}`);
      await conn.close();
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no message back from ${queue}`);
}

(async () => {
  const tlsOnly = { ca: [fs.readFileSync(ca)] };
  const withCert = { ...tlsOnly, cert: fs.readFileSync(cert), key: fs.readFileSync(key) };
  await roundTrip(tlsOnly, 'amqplib.tls.nocert');
  await roundTrip(withCert, 'amqplib.tls.cert');
  await roundTrip(withCert, 'amqplib.tls.external', amqp.credentials.external());
  console.log('ok');
})().catch((e) => { console.error(e); process.exit(1); });
