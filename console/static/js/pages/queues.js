// Queues: the list with a form to add one, and a queue's page: depth over
// time, consumers, bindings, get messages, move messages to an exchange
// (the way out of a dead-letter queue), purge and delete.

import { get, put, post, del, path, query } from '../api.js';
import { h, fill, argsText, field, select, listView, table, props, num, rate, badge, yesNo, jsonObject, ask, attempt, toast, vhostSelect, objectLink, lineChart, pick } from '../ui.js';
import { bindForm, bindingsTable } from './exchanges.js';

const stateBadge = (s) => badge(s, s === 'running' ? 'ok' : 'bad');

export async function queues(main) {
  const list = listView({
    url: '/api/queues',
    columns: [
      { label: 'Name', key: 'name', fields: ['name', 'vhost'], render: (q) => objectLink('queue', q.vhost, q.name) },
      { label: 'Virtual host', key: 'vhost' },
      { label: 'Type', key: 'type' },
      { label: 'State', key: 'state', render: (q) => stateBadge(q.state) },
      { label: 'Node', key: 'node' },
      { label: 'Ready', key: 'messages_ready', num: true },
      { label: 'Unacked', key: 'messages_unacknowledged', num: true },
      { label: 'Total', key: 'messages', num: true },
      { label: 'Growth', key: 'messages_details.rate', num: true, render: (q) => rate(pick(q, 'messages_details.rate')) },
      { label: 'Incoming', key: 'message_stats.publish_details.rate', num: true, render: (q) => rate(pick(q, 'message_stats.publish_details.rate')) },
      { label: 'Deliver / get', key: 'message_stats.deliver_get_details.rate', num: true, render: (q) => rate(pick(q, 'message_stats.deliver_get_details.rate')) },
      { label: 'Consumers', key: 'consumers', num: true },
    ],
  });
  const vhost = await vhostSelect();
  const name = h('input', { type: 'text', name: 'name', required: true });
  const type = select('type', [['classic', 'Classic'], ['quorum', 'Quorum']], 'classic');
  const durable = h('input', { type: 'checkbox', name: 'durable', checked: true });
  const autoDelete = h('input', { type: 'checkbox', name: 'auto_delete' });
  const args = h('textarea', { name: 'arguments', placeholder: '{"x-message-ttl": 60000, "x-dead-letter-exchange": "dlx"}' });
  const form = h('form', {
    class: 'panel', 'aria-labelledby': 'add-queue',
    onsubmit: async (e) => {
      e.preventDefault();
      const ok = await attempt(async () => {
        const a = jsonObject(args.value, 'Arguments');
        a['x-queue-type'] = type.value;
        await put(path`/api/queues/${vhost.value}/${name.value}`, { durable: durable.checked, auto_delete: autoDelete.checked, arguments: a });
        return true;
      }, `Queue ${name.value} declared.`);
      if (ok) { name.value = ''; list.update(); }
    },
  }, h('h2', { id: 'add-queue' }, 'Add a queue'),
  h('div', { class: 'fields' }, field('Virtual host', vhost), field('Name', name), field('Type', type)),
  h('div', { class: 'fields' }, field('Durable', durable, { inline: true }), field('Auto-delete', autoDelete, { inline: true })),
  field('Arguments (JSON)', args), h('button', { type: 'submit' }, 'Add queue'));
  fill(main, h('h1', {}, 'Queues'), list.el, form);
  await list.update();
  return list.refresh;
}

/** Renders messages as the get endpoint returns them. */
function messagesList(msgs) {
  if (!msgs.length) return h('p', {}, 'The queue is empty.');
  return h('ol', { class: 'messages' }, msgs.map((m) => h('li', {}, props([
    ['Exchange', m.exchange === '' ? '(AMQP default)' : m.exchange],
    ['Routing key', m.routing_key],
    ['Redelivered', yesNo(m.redelivered)],
    ['Properties', h('pre', {}, JSON.stringify(m.properties, null, 1))],
    ['Payload', [h('span', { class: 'muted' }, `${num(m.payload_bytes)} bytes, ${m.payload_encoding}`), h('pre', { class: 'payload' }, m.payload)]],
  ]))));
}

export async function queue(main, [vhost, name]) {
  const base = path`/api/queues/${vhost}/${name}`;
  let q = await get(base);
  const cards = h('div', { class: 'cards', 'aria-live': 'off' });
  const chart = lineChart(`queue:${vhost}/${name}`, 'Queue depth', [
    { key: 'ready', label: 'Ready', color: '#0b5cad' },
    { key: 'unacked', label: 'Unacknowledged', color: '#7a4d00' },
  ]);
  const info = h('div');
  const consumers = h('div');
  const bindings = h('div');

  async function refresh() {
    const [qq, cs, bs] = await Promise.all([get(base), get(query(path`/api/consumers/${vhost}`, { columns: 'consumer_tag,queue,channel_details,ack_required,prefetch_count,exclusive,active,arguments' })),
      get(`${base}/bindings`)]);
    q = qq;
    const card = (label, value, id) => h('div', { class: 'card' }, h('div', { class: 'value', id }, value), h('div', { class: 'label' }, label));
    fill(cards, card('Ready', num(q.messages_ready), 'depth-ready'), card('Unacknowledged', num(q.messages_unacknowledged), 'depth-unacked'),
      card('Total', num(q.messages), 'depth-total'), card('Consumers', num(q.consumers)),
      card('Incoming', rate(pick(q, 'message_stats.publish_details.rate'))), card('Deliver / get', rate(pick(q, 'message_stats.deliver_get_details.rate'))));
    chart.push({ ready: q.messages_ready, unacked: q.messages_unacknowledged });
    fill(info, props([
      ['Type', q.type], ['State', stateBadge(q.state)], ['Virtual host', q.vhost],
      q.leader !== undefined ? ['Leader', q.leader] : ['Node', q.node],
      q.members ? ['Members', q.members.join(', ')] : null,
      q.online ? ['Online', q.online.join(', ')] : null,
      ['Durable', yesNo(q.durable)], ['Auto-delete', yesNo(q.auto_delete)], ['Exclusive', yesNo(q.exclusive)],
      ['Arguments', argsText(q.arguments)], ['Policy', q.policy],
      ['Effective policy', argsText(q.effective_policy_definition)],
    ]));
    const mine = cs.filter((c) => c.queue && c.queue.name === name);
    fill(consumers, table([
      { label: 'Consumer tag', key: 'consumer_tag' },
      { label: 'Channel', key: 'channel_details.name' },
      { label: 'Ack required', render: (c) => yesNo(c.ack_required) },
      { label: 'Prefetch', key: 'prefetch_count', num: true, render: (c) => (c.prefetch_count ? num(c.prefetch_count) : 'none') },
      { label: 'Exclusive', render: (c) => yesNo(c.exclusive) },
      { label: 'Priority', render: (c) => (c.arguments && c.arguments['x-priority'] !== undefined ? String(c.arguments['x-priority']) : '') },
    ], mine, { caption: 'Consumers of this queue', empty: 'No consumers.' }));
    fill(bindings, bindingsTable(bs, 'Bindings to this queue', refresh));
  }

  const count = h('input', { type: 'number', name: 'count', min: 1, max: 10000, value: '1' });
  const ackmode = select('ackmode', [
    ['ack_requeue_true', 'Nack, requeue: the messages stay'],
    ['reject_requeue_true', 'Reject, requeue: the messages stay'],
    ['ack_requeue_false', 'Acknowledge: the messages are removed'],
    ['reject_requeue_false', 'Reject, no requeue: removed or dead-lettered'],
  ], 'ack_requeue_true');
  const encoding = select('encoding', [['auto', 'Automatic string or base64'], ['base64', 'Base64']], 'auto');
  const truncate = h('input', { type: 'number', name: 'truncate', min: 0, value: '50000' });
  const got = h('div', { id: 'got-messages', 'aria-live': 'polite' });
  const getForm = h('form', {
    class: 'panel', 'aria-labelledby': 'get-title',
    onsubmit: async (e) => {
      e.preventDefault();
      const msgs = await attempt(() => post(`${base}/get`, { count: Number(count.value), ackmode: ackmode.value, encoding: encoding.value, truncate: Number(truncate.value) }));
      if (msgs) fill(got, messagesList(msgs));
      refresh();
    },
  }, h('h2', { id: 'get-title' }, 'Get messages'),
  h('div', { class: 'fields' }, field('Count', count), field('Acknowledgement', ackmode), field('Encoding', encoding), field('Truncate payloads at (bytes)', truncate)),
  h('button', { type: 'submit' }, 'Get messages'), got);

  const target = h('input', { type: 'text', name: 'exchange', required: true });
  const moveKey = h('input', { type: 'text', name: 'routing_key' });
  const moveCount = h('input', { type: 'number', name: 'count', min: 1 });
  const moveForm = h('form', {
    class: 'panel', 'aria-labelledby': 'move-title',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { exchange: target.value };
      if (moveKey.value !== '') body.routing_key = moveKey.value;
      if (moveCount.value !== '') body.count = Number(moveCount.value);
      const how = body.count === undefined ? 'all ready messages' : `${num(body.count)} messages`;
      if (!(await ask(`Move ${how} of ${name} to exchange ${target.value}?`, { confirm: 'Move' }))) return;
      const r = await attempt(() => post(`${base}/move`, body));
      if (r) toast(`Moved ${num(r.moved)} messages to ${target.value}.` + (r.reason ? ` Stopped: ${r.reason}` : ''), !!r.reason);
      refresh();
    },
  }, h('h2', { id: 'move-title' }, 'Move messages'),
  h('p', { class: 'muted' }, 'Republishes ready messages, with their properties and headers, to an exchange, and removes each from this queue once its new queues have it: the way to replay a dead-letter queue.'),
  h('div', { class: 'fields' }, field('To exchange', target, { hint: 'amq.default: the default exchange' }), field('Routing key', moveKey, { hint: 'blank: each message keeps its own' }),
    field('How many', moveCount, { hint: 'blank: all ready messages' })),
  h('button', { type: 'submit' }, 'Move messages'));

  const purge = h('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      if (!(await ask(`Purge queue ${name}? Its ready messages are deleted.`, { confirm: 'Purge', danger: true }))) return;
      await attempt(() => del(`${base}/contents`), `Queue ${name} purged.`);
      refresh();
    },
  }, 'Purge messages');
  const ifEmpty = h('input', { type: 'checkbox', name: 'if-empty' });
  const ifUnused = h('input', { type: 'checkbox', name: 'if-unused' });
  const remove = h('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      if (!(await ask(`Delete queue ${name} and its messages?`, { confirm: 'Delete', danger: true }))) return;
      const url = query(base, { 'if-empty': ifEmpty.checked ? 'true' : '', 'if-unused': ifUnused.checked ? 'true' : '' });
      if (await attempt(async () => { await del(url); return true; })) {
        toast(`Queue ${name} deleted.`);
        location.hash = '#/queues';
      }
    },
  }, 'Delete queue');

  fill(main, h('h1', {}, `Queue ${name}`), cards, chart.el, info,
    h('h2', {}, 'Consumers'), consumers,
    h('h2', {}, 'Bindings'), bindings, bindForm({ vhost, destination: name, destinationType: 'q', done: refresh }),
    getForm, moveForm,
    h('section', { class: 'panel', 'aria-labelledby': 'danger-title' }, h('h2', { id: 'danger-title' }, 'Purge or delete'),
      h('div', { class: 'actions' }, purge),
      h('div', { class: 'fields' }, field('Only if empty', ifEmpty, { inline: true }), field('Only if unused', ifUnused, { inline: true })),
      h('div', { class: 'actions' }, remove)));
  await refresh();
  return refresh;
}
