// A publisher sees connection.blocked and connection.unblocked through
// amqplib's events: the script sets the memory watermark to 0 through the
// management API (every publisher blocks), publishes, waits for 'blocked',
// restores the watermark and waits for 'unblocked'.
const amqp = require('amqplib');
const http = require('http');

function api(method, path, body) {
  return new Promise((resolve, reject) => {
    const url = new URL(process.env.MGMT_URL + path);
    const data = body === undefined ? null : JSON.stringify(body);
    const req = http.request(url, { method, auth: 'guest:guest', headers: { 'Content-Type': 'application/json' } }, (res) => {
      let raw = '';
      res.on('data', (c) => { raw += c; });
      res.on('end', () => (res.statusCode >= 300 ? reject(new Error(`${method} ${path}: ${res.statusCode} ${raw}`)) : resolve(raw ? JSON.parse(raw) : null)));
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function once(emitter, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within 20s`)), 20000);
    emitter.once(event, (arg) => { clearTimeout(timer); resolve(arg); });
  });
}

(async () => {
  const node = (await api('GET', '/api/overview')).node;
  const conn = await amqp.connect(process.env.AMQP_URL);
  const ch = await conn.createChannel();
  await ch.assertQueue('amqplib.blocked', { autoDelete: true });
  ch.sendToQueue('amqplib.blocked', Buffer.from('first'));
  const blocked = once(conn, 'blocked');
  await api('PUT', `/api/nodes/${node}/vm-memory-high-watermark`, { relative: 0 });
  const reason = await blocked;
  const unblocked = once(conn, 'unblocked');
  await api('PUT', `/api/nodes/${node}/vm-memory-high-watermark`, { relative: 0.6 });
  await unblocked;
  ch.sendToQueue('amqplib.blocked', Buffer.from('second'));
  const { messageCount } = await ch.checkQueue('amqplib.blocked');
  await conn.close();
  console.log(`amqplib: blocked ${reason}; unblocked; ${messageCount} messages queued`);
})().catch((err) => { console.error(err); process.exit(1); });
