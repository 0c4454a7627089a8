// RabbitMQ usage patterns driven through amqplib's promise API.
//
// Usage: node patterns.js PATTERN (one of the names in PATTERNS at the bottom).
//
// Connects to AMQP_URL. On success prints "amqplib PATTERN: ok - DETAILS"
// and exits 0; on any failure prints "amqplib PATTERN: FAIL - WHY" to stderr
// and exits 1. A watchdog timer ends a stuck run; every wait has its own
// deadline. Names are unique per run, so many runs can share one broker.
'use strict';

const amqp = require('amqplib');
const defs = require('amqplib/lib/defs');
const crypto = require('crypto');
const readline = require('readline');
const { spawn } = require('child_process');

const URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/';
const WATCHDOG_MS = 40000;
const WAIT_MS = 10000;

let patternName = process.argv[2];

function fail(err) {
  console.error(err && err.stack ? err.stack : err);
  console.error(`amqplib ${patternName}: FAIL - ${err && err.message ? err.message : err}`);
  process.exit(1);
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const fmt = (v) => JSON.stringify(v);

function uniq(kind) {
  return `e2e.amqplib.${kind}.${crypto.randomBytes(6).toString('hex')}`;
}

const connect = () => amqp.connect(URL);

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

// Polls cond (which may be async) until it is true; fails after ms.
async function waitUntil(what, cond, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await tick();
  }
}

// A channel whose closing by the broker is expected: its 'error' event is
// only recorded.
async function channelFor(conn) {
  const ch = await conn.createChannel();
  ch.on('error', (err) => { ch.lastError = err; });
  return ch;
}

// Runs fn(ch) on a fresh channel; the broker must close that channel with
// code and a reply text starting with textPrefix.
async function expectChannelError(conn, code, textPrefix, fn) {
  const ch = await channelFor(conn);
  try {
    await fn(ch);
  } catch (rejection) {
    // Some operations (basic.get) are rejected with a bare "channel
    // closed"; the broker's close then arrives as the channel's error.
    let err = rejection;
    if (err.code === undefined) {
      await waitUntil('the channel error', () => ch.lastError !== undefined);
      err = ch.lastError;
    }
    check(err.code === code, `want channel error ${code}, got ${err.code}: ${err.message}`);
    check(err.message.includes(`with message "${textPrefix}`), `error ${fmt(err.message)} does not carry ${fmt(textPrefix)}`);
    return;
  }
  throw new Error(`want channel error ${code} ${textPrefix}, got none`);
}

// Ready messages and consumers of queue, from a passive declare.
async function inspect(conn, queue) {
  const ch = await conn.createChannel();
  const ok = await ch.checkQueue(queue);
  await ch.close();
  return ok;
}

// Polls a passive declare until the broker answers 404 NOT_FOUND.
async function waitQueueGone(conn, queue, what) {
  const want = `NOT_FOUND - no queue '${queue}' in vhost '/'`;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const ch = await channelFor(conn);
    try {
      await ch.checkQueue(queue);
    } catch (err) {
      check(err.code === 404 && err.message.includes(`"${want}"`), `passive declare of ${what}: ${err.message}`);
      return;
    }
    await ch.close();
    if (Date.now() > deadline) throw new Error(`${what} still exists ${WAIT_MS}ms later`);
    await tick();
  }
}

// Wraps a consume callback: amqplib calls it with null when the broker
// cancels the consumer, as it does when a test deletes its queue at the end.
function onMessage(fn) {
  return (msg) => {
    if (msg !== null) fn(msg);
  };
}

async function workQueue() {
  // The RabbitMQ tutorial's "fair dispatch": with prefetch 1 a worker that
  // is still busy with (holding) one message gets no more, so the fast
  // worker drains everything else.
  const setup = await connect();
  const ch = await setup.createChannel();
  const q = uniq('tasks');
  await ch.assertQueue(q, { durable: true });
  const slowConn = await connect();
  const fastConn = await connect();
  const slowCh = await slowConn.createChannel();
  const fastCh = await fastConn.createChannel();
  await slowCh.prefetch(1);
  await fastCh.prefetch(1);
  const slow = [];
  const fast = [];
  await slowCh.consume(q, onMessage((msg) => { slow.push(msg); })); // busy: holds it, no ack yet
  await fastCh.consume(q, onMessage((msg) => {
    fast.push(msg.content.toString());
    fastCh.ack(msg);
  }));
  const n = 20;
  const tasks = Array.from({ length: n }, (_, i) => `task-${i}`);
  for (const t of tasks) ch.sendToQueue(q, Buffer.from(t), { persistent: true });
  await waitUntil(`${n} deliveries`, () => slow.length + fast.length >= n);
  check(slow.length === 1, `slow worker got ${slow.length} messages while holding one unacked (want 1)`);
  const all = fast.concat([slow[0].content.toString()]).sort();
  check(fmt(all) === fmt(tasks.slice().sort()), `deliveries ${fmt(all)} are not the ${n} tasks`);
  // The slow worker finishes; the next task goes to whichever is free.
  slowCh.ack(slow[0]);
  ch.sendToQueue(q, Buffer.from('after-slow-ack'));
  await waitUntil('the task published after the slow ack', () => slow.length + fast.length === n + 1);
  if (slow.length === 2) slowCh.ack(slow[1]);
  check((await inspect(setup, q)).messageCount === 0, 'queue not empty after all acks');
  await ch.deleteQueue(q);
  await slowConn.close();
  await fastConn.close();
  await setup.close();
  return `fast worker got ${n - 1}, slow worker held 1`;
}

// Consumes queues no-ack into received[queue] until each has seen the end
// marker once; removes the marker.
async function drainUntilEnd(queues, received) {
  await waitUntil('the end marker on every queue', () => queues.every((q) => received[q].some((m) => m.body === 'end')));
  for (const q of queues) {
    const ends = received[q].filter((m) => m.body === 'end').length;
    check(ends === 1, `queue ${q} got the end marker ${ends} times`);
    received[q] = received[q].filter((m) => m.body !== 'end');
  }
}

async function fanout() {
  let conn = await connect();
  const ch = await conn.createChannel();
  const ex = uniq('logs');
  await ch.assertExchange(ex, 'fanout', { durable: false, autoDelete: true });
  const queues = [];
  const received = {};
  for (let i = 0; i < 3; i++) {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    check(queue.startsWith('amq.gen-'), `server-named queue ${queue} does not start with amq.gen-`);
    await ch.bindQueue(queue, ex, '');
    queues.push(queue);
    received[queue] = [];
    await ch.consume(queue, onMessage((msg) => received[queue].push({ body: msg.content.toString() })), { noAck: true });
  }
  check(new Set(queues).size === 3, `server-named queues not distinct: ${fmt(queues)}`);
  const logs = Array.from({ length: 5 }, (_, i) => `log-${i}`);
  for (const body of logs.concat(['end'])) ch.publish(ex, 'ignored-key', Buffer.from(body));
  await drainUntilEnd(queues, received);
  for (const q of queues) {
    const got = received[q].map((m) => m.body);
    check(fmt(got) === fmt(logs), `queue ${q} got ${fmt(got)}, want ${fmt(logs)}`);
  }
  await conn.close();
  // Exclusive queues go with their connection.
  conn = await connect();
  for (const q of queues) await waitQueueGone(conn, q, `exclusive queue ${q}`);
  await conn.close();
  return `3 server-named queues each got all ${logs.length} messages`;
}

// Declares an exchange with queues bound per bindings ({label: [keys]}),
// publishes [routingKey, body] pairs, then an end marker with endKey (which
// must route to every queue), and returns each label's received bodies.
async function routed(type, bindings, publishes, endKey) {
  const conn = await connect();
  const ch = await conn.createChannel();
  const ex = uniq(type);
  await ch.assertExchange(ex, type, { durable: false, autoDelete: true });
  const names = {};
  const received = {};
  for (const [label, keys] of Object.entries(bindings)) {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    names[label] = queue;
    received[queue] = [];
    for (const k of keys) await ch.bindQueue(queue, ex, k);
    await ch.consume(queue, onMessage((msg) => {
      received[queue].push({ body: msg.content.toString(), key: msg.fields.routingKey, exchange: msg.fields.exchange });
    }), { noAck: true });
  }
  for (const [key, body] of publishes.concat([[endKey, 'end']])) ch.publish(ex, key, Buffer.from(body));
  await drainUntilEnd(Object.values(names), received);
  await conn.close();
  const keyOf = new Map(publishes.map(([k, b]) => [b, k]));
  const out = {};
  for (const [label, q] of Object.entries(names)) {
    for (const m of received[q]) {
      check(m.exchange === ex && m.key === keyOf.get(m.body), `delivery ${fmt(m)} has the wrong exchange or routing key`);
    }
    out[label] = received[q].map((m) => m.body);
  }
  return out;
}

async function direct() {
  const got = await routed('direct',
    { errors: ['error'], all: ['info', 'warning', 'error'] },
    [['info', 'i1'], ['warning', 'w1'], ['error', 'e1'], ['debug', 'd1'], ['info', 'i2'], ['error', 'e2']],
    'error');
  check(fmt(got.errors) === fmt(['e1', 'e2']), `queue bound to 'error' got ${fmt(got.errors)}`);
  check(fmt(got.all) === fmt(['i1', 'w1', 'e1', 'i2', 'e2']), `queue bound to info/warning/error got ${fmt(got.all)}`);
  return 'error -> both queues, info/warning -> one, debug -> none';
}

async function topic() {
  const keys = ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox', 'lazy.brown.fox',
    'lazy.pink.rabbit', 'quick.brown.fox', 'orange', 'quick.orange.male.rabbit',
    'lazy.orange.male.rabbit', 'lazy'];
  const got = await routed('topic',
    { Q1: ['*.orange.*'], Q2: ['*.*.rabbit', 'lazy.#'] },
    keys.map((k) => [k, k]),
    'end.orange.rabbit');
  const want1 = ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox'];
  const want2 = ['quick.orange.rabbit', 'lazy.orange.elephant', 'lazy.brown.fox', 'lazy.pink.rabbit',
    'lazy.orange.male.rabbit', 'lazy'];
  check(fmt(got.Q1) === fmt(want1), `Q1 (*.orange.*) got ${fmt(got.Q1)}, want ${fmt(want1)}`);
  check(fmt(got.Q2) === fmt(want2), `Q2 (*.*.rabbit, lazy.#) got ${fmt(got.Q2)}, want ${fmt(want2)}`);
  return 'tutorial keys routed as in RabbitMQ (lazy.pink.rabbit once)';
}

function fib(n) {
  let [a, b] = [0, 1];
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

// Serves fib(n) on queue: replies to replyTo with the request's correlationId.
async function rpcServer(conn, queue, seenReplyTo) {
  const ch = await conn.createChannel();
  await ch.assertQueue(queue, { durable: false, autoDelete: true });
  await ch.prefetch(1);
  await ch.consume(queue, onMessage((msg) => {
    seenReplyTo.push(msg.properties.replyTo);
    const n = parseInt(msg.content.toString(), 10);
    ch.sendToQueue(msg.properties.replyTo, Buffer.from(String(fib(n))), { correlationId: msg.properties.correlationId });
    ch.ack(msg);
  }));
}

// Sends fib requests, all at once, and checks the answers.
async function rpcCalls(ch, rpcQueue, replyTo, responses) {
  const ns = [0, 1, 10, 20, 30];
  const calls = new Map();
  for (const n of ns) {
    const corr = crypto.randomUUID();
    calls.set(corr, n);
    ch.sendToQueue(rpcQueue, Buffer.from(String(n)), { replyTo, correlationId: corr });
  }
  await waitUntil(`${ns.length} RPC responses`, () => responses.length >= ns.length);
  check(responses.length === ns.length, `got ${responses.length} responses, want ${ns.length}`);
  for (const msg of responses) {
    const corr = msg.properties.correlationId;
    check(calls.has(corr), `response with unknown correlationId ${corr}`);
    check(msg.content.toString() === String(fib(calls.get(corr))), `wrong answer ${msg.content}`);
    calls.delete(corr);
  }
  check(calls.size === 0, `no response for ${fmt([...calls.values()])}`);
  return ns.length;
}

async function rpc() {
  const serverConn = await connect();
  const clientConn = await connect();
  const rpcQueue = uniq('rpc');
  const seen = [];
  await rpcServer(serverConn, rpcQueue, seen);
  const ch = await clientConn.createChannel();
  const { queue: callback } = await ch.assertQueue('', { exclusive: true });
  const responses = [];
  await ch.consume(callback, onMessage((msg) => responses.push(msg)), { noAck: true });
  const n = await rpcCalls(ch, rpcQueue, callback, responses);
  check(seen.every((r) => r === callback), `server saw reply_to ${fmt(seen)}, want ${callback}`);
  await clientConn.close();
  await serverConn.close();
  return `${n} calls answered over exclusive callback queue`;
}

async function rpcDirectReplyTo() {
  const serverConn = await connect();
  const clientConn = await connect();
  const rpcQueue = uniq('rpc');
  const seen = [];
  await rpcServer(serverConn, rpcQueue, seen);
  const ch = await clientConn.createChannel();
  const responses = [];
  // Consume the pseudo-queue no-ack, then publish on the same channel.
  await ch.consume('amq.rabbitmq.reply-to', onMessage((msg) => responses.push(msg)), { noAck: true });
  const n = await rpcCalls(ch, rpcQueue, 'amq.rabbitmq.reply-to', responses);
  const prefix = 'amq.rabbitmq.reply-to.';
  check(new Set(seen).size === 1, `server saw several reply_to values: ${fmt(seen)}`);
  check(seen[0].startsWith(prefix) && seen[0].length > prefix.length, `server saw reply_to ${seen[0]}, want ${prefix}<suffix>`);
  for (const msg of responses) {
    const f = msg.fields;
    check(f.exchange === '' && f.routingKey === seen[0] && !f.redelivered, `reply delivered with ${fmt(f)}`);
  }
  // Publishing with replyTo amq.rabbitmq.reply-to on a channel that does
  // not consume it is a channel error.
  await expectChannelError(clientConn, 406, 'PRECONDITION_FAILED - fast reply consumer does not exist', async (other) => {
    other.sendToQueue(rpcQueue, Buffer.from('1'), { replyTo: 'amq.rabbitmq.reply-to' });
    await other.checkQueue(rpcQueue); // round trip: the error arrives before its ok
  });
  await clientConn.close();
  await serverConn.close();
  return `${n} calls answered via direct reply-to`;
}

// RabbitMQ's rules for the amq.rabbitmq.reply-to pseudo-queue, each checked
// on its own so that one report lists every difference.
async function directReplyToRules() {
  const conn = await connect();
  const problems = [];
  const soft = async (what, fn) => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${err.message}`);
    }
  };
  await soft('passive declare of amq.rabbitmq.reply-to', async () => {
    // How clients detect support (Spring AMQP's RabbitTemplate does this).
    const ch = await channelFor(conn);
    const ok = await ch.checkQueue('amq.rabbitmq.reply-to');
    check(ok.queue === 'amq.rabbitmq.reply-to' && ok.messageCount === 0, `declare-ok ${fmt(ok)}`);
  });
  await soft('consume with acks', () => expectChannelError(conn, 406, 'PRECONDITION_FAILED - reply consumer cannot acknowledge',
    (ch) => ch.consume('amq.rabbitmq.reply-to', () => {}, { noAck: false })));
  await soft('second consume on a channel', () => expectChannelError(conn, 406, 'PRECONDITION_FAILED - reply consumer already set',
    async (ch) => {
      await ch.consume('amq.rabbitmq.reply-to', () => {}, { noAck: true });
      await ch.consume('amq.rabbitmq.reply-to', () => {}, { noAck: true });
    }));
  await soft('cancel, consume again, cancel and publish', async () => {
    const ch = await conn.createChannel();
    const { queue: q } = await ch.assertQueue('', { exclusive: true });
    const got = [];
    // The request goes to our own queue; we answer it as a server would.
    const roundTrip = async (body) => {
      ch.sendToQueue(q, Buffer.from('request'), { replyTo: 'amq.rabbitmq.reply-to' });
      const req = await ch.get(q, { noAck: true });
      check(req, 'request not in queue');
      ch.sendToQueue(req.properties.replyTo, Buffer.from(body));
      await waitUntil(`the reply ${body}`, () => got.includes(body));
      return req.properties.replyTo;
    };
    const { consumerTag } = await ch.consume('amq.rabbitmq.reply-to', onMessage((m) => got.push(m.content.toString())), { noAck: true });
    const first = await roundTrip('reply-1');
    await ch.cancel(consumerTag);
    // Consuming again works and gets a new name.
    await ch.consume('amq.rabbitmq.reply-to', onMessage((m) => got.push(m.content.toString())), { noAck: true });
    const second = await roundTrip('reply-2');
    check(first !== second, `same reply-to name ${first} after cancel and consume`);
    // Once cancelled, publishing with replyTo amq.rabbitmq.reply-to fails.
    await expectChannelError(conn, 406, 'PRECONDITION_FAILED - fast reply consumer does not exist', async (ch2) => {
      const c = await ch2.consume('amq.rabbitmq.reply-to', () => {}, { noAck: true });
      await ch2.cancel(c.consumerTag);
      ch2.sendToQueue(q, Buffer.from('request'), { replyTo: 'amq.rabbitmq.reply-to' });
      await ch2.checkQueue(q); // round trip
    });
  });
  await conn.close();
  check(problems.length === 0, problems.join('; '));
  return 'passive declare, ack mode, second consumer, cancel: all as RabbitMQ';
}

// Publishes on a confirm channel; resolves to null on ack, the error on nack.
function confirmPublish(ch, exchange, key, body, options) {
  return new Promise((resolve) => {
    ch.publish(exchange, key, Buffer.from(body), options || {}, (err) => resolve(err));
  });
}

async function confirms() {
  const conn = await connect();
  const ch = await conn.createConfirmChannel();
  const q = uniq('confirmed');
  await ch.assertQueue(q, { durable: false });
  const n = 50;
  const acks = [];
  for (let i = 0; i < n; i++) acks.push(confirmPublish(ch, '', q, `m${i}`, { persistent: true, mandatory: true }));
  await ch.waitForConfirms();
  const results = await Promise.all(acks);
  check(results.every((e) => e === null), `some publishes were nacked: ${fmt(results)}`);
  check((await inspect(conn, q)).messageCount === n, `queue does not hold ${n} messages`);
  const limited = uniq('limited');
  await ch.assertQueue(limited, { durable: false, maxLength: 1, overflow: 'reject-publish' });
  const first = confirmPublish(ch, '', limited, 'first');
  const second = confirmPublish(ch, '', limited, 'second');
  check((await first) === null, `first publish to the limited queue nacked: ${await first}`);
  const err = await second;
  check(err instanceof Error, 'second publish to a full reject-publish queue was acked, want nack');
  const third = confirmPublish(ch, '', limited, 'third');
  let waitErr = null;
  await ch.waitForConfirms().catch((e) => { waitErr = e; });
  check(waitErr instanceof Error, 'waitForConfirms resolved although a publish was nacked');
  check((await third) instanceof Error, 'third publish to the full queue was acked, want nack');
  // The channel stays open and confirms go on.
  check((await confirmPublish(ch, '', q, 'after-nack')) === null, 'publish after the nack was nacked');
  check((await inspect(conn, limited)).messageCount === 1, 'full queue does not hold exactly 1');
  const got = await ch.get(limited, { noAck: true });
  check(got && got.content.toString() === 'first', `full queue's message is ${got && got.content}, want first`);
  check((await inspect(conn, q)).messageCount === n + 1, `queue does not hold ${n + 1}`);
  await ch.deleteQueue(q);
  await ch.deleteQueue(limited);
  await conn.close();
  return `${n + 2} publishes acked, 2 publishes to full reject-publish queue nacked (callback error)`;
}

async function mandatory() {
  const conn = await connect();
  const ch = await conn.createChannel();
  const ex = uniq('nowhere');
  await ch.assertExchange(ex, 'direct', { durable: false, autoDelete: true });
  const { queue: q } = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(q, ex, 'bound');
  const returned = [];
  ch.on('return', (msg) => returned.push(msg));
  ch.publish(ex, 'unbound', Buffer.from('dropped')); // not mandatory: silently dropped
  ch.publish(ex, 'bound', Buffer.from('routed'), { mandatory: true });
  ch.publish(ex, 'unbound', Buffer.from('comes-back'), { mandatory: true, messageId: 'm-1' });
  ch.publish('', uniq('no-such-queue'), Buffer.from('comes-back-too'), { mandatory: true });
  await waitUntil('two basic.return', () => returned.length >= 2);
  // A round trip on the channel: any further return would have come first.
  const { messageCount } = await ch.checkQueue(q);
  check(returned.length === 2, `got ${returned.length} returns, want 2`);
  const [r1, r2] = returned;
  check(r1.fields.replyCode === 312 && r1.fields.replyText === 'NO_ROUTE',
    `return is ${r1.fields.replyCode} ${r1.fields.replyText}, want 312 NO_ROUTE`);
  check(r1.fields.exchange === ex && r1.fields.routingKey === 'unbound' && r1.content.toString() === 'comes-back' &&
    r1.properties.messageId === 'm-1', `returned ${fmt(r1.fields)} ${r1.content} ${r1.properties.messageId}`);
  check(r2.fields.replyCode === 312 && r2.fields.exchange === '' && r2.content.toString() === 'comes-back-too',
    `second return ${fmt(r2.fields)} ${r2.content}`);
  check(messageCount === 1, `bound queue holds ${messageCount}, want 1`);
  // On a confirm channel the return comes first, then the ack.
  const cch = await conn.createConfirmChannel();
  const creturned = [];
  cch.on('return', (msg) => creturned.push(msg));
  const err = await confirmPublish(cch, ex, 'unbound', 'unroutable', { mandatory: true });
  check(err === null, `unroutable mandatory publish nacked: ${err}`);
  check(creturned.length === 1 && creturned[0].fields.replyCode === 312, `confirm channel returns: ${creturned.length}`);
  await conn.close();
  return 'unroutable mandatory publishes returned 312 NO_ROUTE (before the confirm on a confirm channel)';
}

// Child process for redelivery: consumes one message without acking, says
// so, and waits to be killed.
async function hold(queue) {
  const conn = await connect();
  const ch = await conn.createChannel();
  await ch.consume(queue, onMessage((msg) => {
    console.log(`holding ${msg.content} redelivered=${msg.fields.redelivered}`);
  }));
  setTimeout(() => process.exit(3), WATCHDOG_MS);
}

async function redelivery() {
  const conn = await connect();
  const ch = await conn.createChannel();
  const q = uniq('redeliver');
  await ch.assertQueue(q, { durable: false });
  // 1. The consumer's connection closes cleanly with the message unacked.
  ch.sendToQueue(q, Buffer.from('m1'));
  const a = await connect();
  const aCh = await a.createChannel();
  const gotA = [];
  await aCh.consume(q, onMessage((msg) => gotA.push([msg.content.toString(), msg.fields.redelivered])));
  await waitUntil('first delivery', () => gotA.length > 0);
  check(fmt(gotA) === fmt([['m1', false]]), `first consumer got ${fmt(gotA)}`);
  const b = await connect();
  const bCh = await b.createChannel();
  await bCh.prefetch(10);
  const gotB = [];
  const onB = (msg) => {
    gotB.push([msg.content.toString(), msg.fields.redelivered]);
    bCh.ack(msg);
  };
  const { consumerTag } = await bCh.consume(q, onMessage(onB));
  await a.close();
  await waitUntil('redelivery after clean close', () => gotB.length > 0);
  check(fmt(gotB) === fmt([['m1', true]]), `second consumer got ${fmt(gotB)}, want m1 redelivered`);
  // 2. The consumer's process dies (SIGKILL) with the message unacked.
  await bCh.cancel(consumerTag);
  ch.sendToQueue(q, Buffer.from('m2'));
  const child = spawn(process.execPath, [__filename, '_hold', q], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise((resolve, reject) => {
      const rl = readline.createInterface({ input: child.stdout });
      rl.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`child consumer exited with ${code} before a delivery`)));
    });
    check(line === 'holding m2 redelivered=false', `child consumer said ${fmt(line)}`);
    await bCh.consume(q, onMessage(onB));
  } finally {
    child.kill('SIGKILL');
  }
  await waitUntil('redelivery after the consumer process was killed', () => gotB.length >= 2);
  check(fmt(gotB) === fmt([['m1', true], ['m2', true]]), `second consumer got ${fmt(gotB)}`);
  check((await inspect(conn, q)).messageCount === 0, 'queue not empty after acks');
  await ch.deleteQueue(q);
  await b.close();
  await conn.close();
  return 'unacked message redelivered with redelivered=true after close and after kill';
}

async function transactions() {
  // amqplib has no tx API; its channel's rpc sends tx.select and friends
  // the way it sends confirm.select.
  const conn = await connect();
  const ch = await conn.createChannel();
  const tx = {
    select: () => ch.rpc(defs.TxSelect, {}, defs.TxSelectOk),
    commit: () => ch.rpc(defs.TxCommit, {}, defs.TxCommitOk),
    rollback: () => ch.rpc(defs.TxRollback, {}, defs.TxRollbackOk),
  };
  const q = uniq('tx');
  await ch.assertQueue(q, { durable: false });
  await tx.select();
  ch.sendToQueue(q, Buffer.from('rolled-back'));
  // The same channel's passive declare is a round trip after the publish.
  check((await ch.checkQueue(q)).messageCount === 0, 'uncommitted publish is visible');
  await tx.rollback();
  check((await inspect(conn, q)).messageCount === 0, 'rolled back publish reached the queue');
  ch.sendToQueue(q, Buffer.from('committed'));
  check((await ch.checkQueue(q)).messageCount === 0, 'uncommitted publish is visible');
  await tx.commit();
  check((await inspect(conn, q)).messageCount === 1, 'after commit the queue does not hold 1');
  // Acks are transactional too: rolled back, the message stays unacked
  // (RabbitMQ does not requeue it); committed, it is gone.
  const msg = await ch.get(q);
  check(msg && msg.content.toString() === 'committed', `got ${msg && msg.content}, want committed`);
  ch.ack(msg);
  await tx.rollback();
  ch.ack(msg);
  await tx.commit();
  await ch.recover(); // would bring back an unacked message
  check((await inspect(conn, q)).messageCount === 0, 'acked and committed message still in queue');
  await ch.deleteQueue(q);
  await conn.close();
  return 'rollback discarded the publish, commit delivered it';
}

async function exclusiveQueue() {
  const owner = await connect();
  const q = uniq('exclusive');
  await (await owner.createChannel()).assertQueue(q, { exclusive: true });
  const other = await connect();
  const locked = `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${q}' in vhost '/'`;
  await expectChannelError(other, 405, locked, (ch) => ch.assertQueue(q, { exclusive: true }));
  await expectChannelError(other, 405, locked, (ch) => ch.assertQueue(q));
  await expectChannelError(other, 405, locked, (ch) => ch.checkQueue(q));
  await expectChannelError(other, 405, locked, (ch) => ch.consume(q, () => {}));
  await expectChannelError(other, 405, locked, (ch) => ch.purgeQueue(q));
  await expectChannelError(other, 405, locked, (ch) => ch.bindQueue(q, 'amq.direct', 'k'));
  await expectChannelError(other, 405, locked, (ch) => ch.deleteQueue(q));
  await expectChannelError(other, 405, locked, (ch) => ch.get(q));
  await owner.close();
  await waitQueueGone(other, q, 'exclusive queue after its owner disconnected');
  await other.close();
  return '405 RESOURCE_LOCKED for another connection, 404 after the owner left';
}

// amqp091-go's "issue 43": the client closes a channel just as the broker
// closes it for an error. The connection and its other channels live on.
async function crossingClose() {
  const conn = await connect();
  let connError = null;
  conn.on('error', (err) => { connError = err; });
  const rounds = 10;
  for (let i = 0; i < rounds; i++) {
    const ch1 = await channelFor(conn);
    const ch2 = await conn.createChannel();
    ch1.publish(uniq('missing'), 'k', Buffer.from('x')); // the broker will close ch1 with 404
    await ch1.close().catch(() => {}); // amqplib may report the broker's close instead
    await ch2.assertExchange(uniq('crossing'), 'direct', { autoDelete: true });
    await ch2.close();
  }
  check(connError === null, `connection error: ${connError && connError.message}`);
  await conn.close();
  return `${rounds} crossing closes, the other channel declared every time`;
}

async function autoDeleteQueue() {
  const q = uniq('autodelete');
  const declarer = await connect();
  await (await declarer.createChannel()).assertQueue(q, { durable: false, autoDelete: true });
  await declarer.close();
  const conn = await connect();
  check((await inspect(conn, q)).consumerCount === 0, 'auto-delete queue has consumers'); // still there
  const ch1 = await conn.createChannel();
  const ch2 = await conn.createChannel();
  const c1 = await ch1.consume(q, () => {});
  const c2 = await ch2.consume(q, () => {});
  check((await inspect(conn, q)).consumerCount === 2, 'want 2 consumers');
  await ch1.cancel(c1.consumerTag);
  check((await inspect(conn, q)).consumerCount === 1, 'wrong consumer count after first of two cancels');
  await ch2.cancel(c2.consumerTag);
  await waitQueueGone(conn, q, 'auto-delete queue after its last consumer cancelled');
  await conn.close();
  return 'survived with no consumer ever, deleted after the last cancel';
}

// The seed's retry pattern: a failed message waits in a retry queue whose
// TTL sends it back to the work queue; after three retries, counted from
// x-death, the consumer parks it in a DLQ.
async function retryDlq() {
  const conn = await connect();
  const ch = await conn.createChannel();
  const base = uniq('retry');
  const workX = `${base}.work-x`, retryX = `${base}.retry-x`;
  const work = `${base}.work`, retry = `${base}.retry`, dlq = `${base}.dlq`;
  await ch.assertExchange(workX, 'direct', { durable: false });
  await ch.assertExchange(retryX, 'fanout', { durable: false });
  await ch.assertQueue(work, { durable: false, deadLetterExchange: retryX });
  await ch.assertQueue(retry, { durable: false, messageTtl: 50, deadLetterExchange: workX });
  await ch.assertQueue(dlq, { durable: false });
  await ch.bindQueue(work, workX, 'job');
  await ch.bindQueue(retry, retryX, '');
  ch.publish(workX, 'job', Buffer.from('task'), { persistent: true, messageId: 'j1' });
  const seen = [];
  await ch.consume(work, onMessage((msg) => {
    const headers = msg.properties.headers || {};
    const death = (headers['x-death'] || []).find((d) => d.queue === work && d.reason === 'rejected');
    const rejected = death ? Number(death.count) : 0;
    seen.push({ rejected, headers });
    if (rejected >= 3) {
      ch.sendToQueue(dlq, msg.content, { headers, messageId: msg.properties.messageId, persistent: true });
      ch.ack(msg);
    } else {
      ch.reject(msg, false);
    }
  }));
  await waitUntil('four deliveries', () => seen.length >= 4);
  check(fmt(seen.map((s) => s.rejected)) === fmt([0, 1, 2, 3]), `rejection counts by delivery ${fmt(seen.map((s) => s.rejected))}`);
  const headers = seen[3].headers;
  const deaths = headers['x-death'];
  check(deaths.length === 2, `x-death has ${deaths.length} entries: ${fmt(deaths)}`);
  const want = [
    { count: 3, reason: 'expired', queue: retry, exchange: retryX, 'routing-keys': ['job'] },
    { count: 3, reason: 'rejected', queue: work, exchange: workX, 'routing-keys': ['job'] },
  ];
  want.forEach((w, i) => {
    const got = deaths[i];
    check(fmt(Object.keys(got).sort()) === fmt([...Object.keys(w), 'time'].sort()), `x-death[${i}] fields ${fmt(Object.keys(got))}`);
    for (const [k, v] of Object.entries(w)) {
      const g = k === 'count' ? Number(got[k]) : got[k];
      check(fmt(g) === fmt(v), `x-death[${i}][${k}] = ${fmt(got[k])}, want ${fmt(v)}`);
    }
    check(got.time !== undefined && got.time !== null, `x-death[${i}] has no time`);
  });
  const wantHeaders = {
    'x-first-death-queue': work, 'x-first-death-reason': 'rejected', 'x-first-death-exchange': workX,
    'x-last-death-queue': retry, 'x-last-death-reason': 'expired', 'x-last-death-exchange': retryX,
  };
  for (const [k, v] of Object.entries(wantHeaders)) {
    check(headers[k] === v, `${k} = ${fmt(headers[k])}, want ${fmt(v)}`);
  }
  let parked = false;
  await waitUntil('the DLQ to hold the message', async () => {
    const got = await ch.get(dlq, { noAck: true });
    if (got) {
      check(got.content.toString() === 'task' && got.properties.headers['x-death'].length === 2, `DLQ holds ${got.content}`);
      parked = true;
    }
    return parked;
  });
  check((await inspect(conn, work)).messageCount === 0 && (await inspect(conn, retry)).messageCount === 0, 'work or retry not empty');
  for (const q of [work, retry, dlq]) await ch.deleteQueue(q);
  for (const x of [workX, retryX]) await ch.deleteExchange(x);
  await conn.close();
  return 'three retries through a TTL queue counted from x-death, then the DLQ';
}

async function consumerPriority() {
  const pub = await connect();
  const ch = await pub.createChannel();
  const q = uniq('prio');
  await ch.assertQueue(q, { durable: false });
  const cons = await connect();
  const lowCh = await cons.createChannel();
  const highCh = await cons.createChannel();
  await lowCh.prefetch(10);
  await highCh.prefetch(2);
  const low = [];
  const high = [];
  await lowCh.consume(q, onMessage((msg) => { low.push(msg.content.toString()); lowCh.ack(msg); })); // first, priority 0
  await highCh.consume(q, onMessage((msg) => high.push(msg)), { priority: 10 });
  const msgs = Array.from({ length: 6 }, (_, i) => `m${i}`);
  for (const m of msgs) ch.sendToQueue(q, Buffer.from(m));
  await waitUntil(`${msgs.length} deliveries`, () => low.length + high.length >= msgs.length);
  const highBodies = () => high.map((m) => m.content.toString());
  check(fmt(highBodies()) === fmt(msgs.slice(0, 2)), `high-priority consumer (prefetch 2) got ${fmt(highBodies())}`);
  check(fmt(low) === fmt(msgs.slice(2)), `low-priority consumer got ${fmt(low)}`);
  // Credit back: the high-priority consumer gets the next ones. Publishing
  // on its own channel orders the publishes after the acks.
  for (const m of high) highCh.ack(m);
  for (const m of ['m6', 'm7']) highCh.sendToQueue(q, Buffer.from(m));
  await waitUntil('the high-priority consumer to get the next two', () => high.length >= 4);
  check(fmt(highBodies()) === fmt(msgs.slice(0, 2).concat(['m6', 'm7'])) && fmt(low) === fmt(msgs.slice(2)),
    `after acks high got ${fmt(highBodies())}, low got ${fmt(low)}`);
  for (const m of high.slice(2)) highCh.ack(m);
  await ch.deleteQueue(q);
  await cons.close();
  await pub.close();
  return 'x-priority 10 consumer got messages while it had credit, the rest went to priority 0';
}

async function singleActiveConsumer() {
  const pub = await connect();
  const ch = await pub.createChannel();
  const q = uniq('sac');
  await ch.assertQueue(q, { durable: false, arguments: { 'x-single-active-consumer': true } });
  const conns = [];
  const got = [[], [], []];
  const tags = [];
  for (let i = 0; i < 3; i++) {
    const conn = await connect();
    const c = await conn.createChannel();
    conns.push(conn);
    const { consumerTag } = await c.consume(q, onMessage((msg) => {
      const body = msg.content.toString();
      got[i].push([body, msg.fields.redelivered]);
      if (body !== 'p6') c.ack(msg); // the second consumer dies holding p6
    }));
    tags.push([c, consumerTag]);
  }
  const publish = (...bodies) => bodies.forEach((b) => ch.sendToQueue(q, Buffer.from(b)));
  publish('p1', 'p2', 'p3');
  await waitUntil('the first consumer to get p1..p3', () => got[0].length >= 3);
  check(fmt(got) === fmt([[['p1', false], ['p2', false], ['p3', false]], [], []]), `deliveries ${fmt(got)}`);
  // The active consumer cancels: the next one (in registration order) takes over.
  await tags[0][0].cancel(tags[0][1]);
  publish('p4', 'p5', 'p6');
  await waitUntil('the second consumer to get p4..p6', () => got[1].length >= 3);
  check(fmt(got.slice(1)) === fmt([[['p4', false], ['p5', false], ['p6', false]], []]), `after cancel: ${fmt(got)}`);
  // The active consumer's connection goes away holding p6: the third takes
  // over and gets p6 again, redelivered.
  await conns[1].close();
  await waitUntil('the closed connection\'s consumer to go', async () => (await inspect(pub, q)).consumerCount === 1);
  publish('p7');
  await waitUntil('the third consumer to get p6 and p7', () => got[2].length >= 2);
  check(fmt(got[2]) === fmt([['p6', true], ['p7', false]]), `after disconnect the third consumer got ${fmt(got[2])}`);
  check(got[0].length === 3, `cancelled consumer got more: ${fmt(got[0])}`);
  await ch.deleteQueue(q);
  for (const c of [conns[0], conns[2], pub]) await c.close();
  return 'only the active consumer received; cancel and disconnect handed over in order';
}

const PATTERNS = {
  'work-queue': workQueue,
  fanout,
  direct,
  topic,
  rpc,
  'rpc-direct-reply-to': rpcDirectReplyTo,
  'direct-reply-to-rules': directReplyToRules,
  confirms,
  mandatory,
  redelivery,
  transactions,
  'exclusive-queue': exclusiveQueue,
  'crossing-close': crossingClose,
  'retry-dlq': retryDlq,
  'auto-delete-queue': autoDeleteQueue,
  'consumer-priority': consumerPriority,
  'single-active-consumer': singleActiveConsumer,
};

if (process.argv[2] === '_hold') {
  patternName = 'redelivery (child)';
  hold(process.argv[3]).catch(fail);
} else if (!PATTERNS[patternName]) {
  console.error(`usage: node patterns.js ${Object.keys(PATTERNS).join('|')}`);
  process.exit(2);
} else {
  const watchdog = setTimeout(() => fail(new Error(`watchdog: still running after ${WATCHDOG_MS}ms`)), WATCHDOG_MS);
  PATTERNS[patternName]().then((detail) => {
    clearTimeout(watchdog);
    console.log(`amqplib ${patternName}: ok - ${detail}`);
    process.exit(0);
  }, fail);
}
