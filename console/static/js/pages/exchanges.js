// Exchanges: the list with a form to add one, and an exchange's page with
// its bindings (add and remove), a form to publish a message, and delete.

import { get, put, post, del, path } from '../api.js';
import { h, fill, argsText, field, select, listView, table, props, yesNo, rate, jsonObject, ask, attempt, toast, vhostSelect, objectLink, pick } from '../ui.js';

const types = ['direct', 'fanout', 'topic', 'headers', 'x-consistent-hash', 'x-delayed-message', 'x-message-deduplication'];


export async function exchanges(main) {
  const list = listView({
    url: '/api/exchanges',
    columns: [
      { label: 'Name', key: 'name', fields: ['name', 'vhost'], render: (x) => objectLink('exchange', x.vhost, x.name) },
      { label: 'Virtual host', key: 'vhost' },
      { label: 'Type', key: 'type' },
      { label: 'Durable', key: 'durable', render: (x) => yesNo(x.durable) },
      { label: 'Auto-delete', key: 'auto_delete', render: (x) => yesNo(x.auto_delete) },
      { label: 'Internal', key: 'internal', render: (x) => yesNo(x.internal) },
      { label: 'Arguments', key: 'arguments', sortable: false, render: (x) => argsText(x.arguments) },
      { label: 'Rate in', key: 'message_stats.publish_in_details.rate', num: true, render: (x) => rate(pick(x, 'message_stats.publish_in_details.rate')) },
      { label: 'Rate out', key: 'message_stats.publish_out_details.rate', num: true, render: (x) => rate(pick(x, 'message_stats.publish_out_details.rate')) },
    ],
  });
  const vhost = await vhostSelect();
  const name = h('input', { type: 'text', name: 'name', required: true });
  const type = select('type', types, 'direct');
  const durable = h('input', { type: 'checkbox', name: 'durable', checked: true });
  const autoDelete = h('input', { type: 'checkbox', name: 'auto_delete' });
  const internal = h('input', { type: 'checkbox', name: 'internal' });
  const args = h('textarea', { name: 'arguments', placeholder: '{"alternate-exchange": "unrouted"}' });
  const form = h('form', {
    class: 'panel', 'aria-labelledby': 'add-exchange',
    onsubmit: async (e) => {
      e.preventDefault();
      const ok = await attempt(async () => {
        await put(path`/api/exchanges/${vhost.value}/${name.value}`, {
          type: type.value, durable: durable.checked, auto_delete: autoDelete.checked, internal: internal.checked,
          arguments: jsonObject(args.value, 'Arguments'),
        });
        return true;
      }, `Exchange ${name.value} declared.`);
      if (ok) { name.value = ''; list.update(); }
    },
  }, h('h2', { id: 'add-exchange' }, 'Add an exchange'),
  h('div', { class: 'fields' }, field('Virtual host', vhost), field('Name', name), field('Type', type)),
  h('div', { class: 'fields' }, field('Durable', durable, { inline: true }), field('Auto-delete', autoDelete, { inline: true }),
    field('Internal', internal, { inline: true })),
  field('Arguments (JSON)', args), h('button', { type: 'submit' }, 'Add exchange'));
  fill(main, h('h1', {}, 'Exchanges'), list.el, form);
  await list.update();
  return list.refresh;
}

/**
 * The form that adds a binding: on an exchange's page the source is the
 * exchange (source set), on a queue's the destination is the queue
 * (destination set); the other end is typed in.
 */
export function bindForm({ vhost, source, destination, destinationType, done }) {
  const src = h('input', { type: 'text', name: 'source', value: source || '', required: true });
  const destType = select('destination_type', [['q', 'Queue'], ['e', 'Exchange']], destinationType || 'q');
  const dest = h('input', { type: 'text', name: 'destination', value: destination || '', required: true });
  const key = h('input', { type: 'text', name: 'routing_key' });
  const args = h('textarea', { name: 'arguments', placeholder: '{"x-match": "all"}' });
  const id = 'bind-title';
  return h('form', {
    class: 'panel', 'aria-labelledby': id,
    onsubmit: async (e) => {
      e.preventDefault();
      const ok = await attempt(async () => {
        await post(`/api/bindings/${encodeURIComponent(vhost)}/e/${encodeURIComponent(src.value)}/${destType.value}/${encodeURIComponent(dest.value)}`,
          { routing_key: key.value, arguments: jsonObject(args.value, 'Arguments') });
        return true;
      }, 'Binding added.');
      if (ok) done();
    },
  }, h('h2', { id }, 'Add a binding'),
  h('div', { class: 'fields' },
    source === undefined ? field('From exchange', src) : null,
    destination === undefined ? [field('Destination type', destType), field('Destination', dest)] : null,
    field('Routing key', key)),
  field('Arguments (JSON)', args), h('button', { type: 'submit' }, 'Bind'));
}

/** The table of bindings, each with an Unbind button. */
export function bindingsTable(bindings, caption, done) {
  return table([
    { label: 'From', render: (b) => objectLink('exchange', b.vhost, b.source) },
    { label: 'To', render: (b) => (b.destination_type === 'queue' ? objectLink('queue', b.vhost, b.destination) : objectLink('exchange', b.vhost, b.destination)) },
    { label: 'Routing key', key: 'routing_key' },
    { label: 'Arguments', render: (b) => argsText(b.arguments) },
    { label: 'Actions', render: (b) => (b.source === '' ? h('span', { class: 'muted' }, 'default binding') : h('button', {
      type: 'button', class: 'secondary', 'aria-label': `Unbind ${b.destination} from ${b.source} with key ${b.routing_key}`,
      onclick: async () => {
        const d = b.destination_type === 'queue' ? 'q' : 'e';
        await attempt(() => del(`/api/bindings/${encodeURIComponent(b.vhost)}/e/${encodeURIComponent(b.source)}/${d}/${encodeURIComponent(b.destination)}/${encodeURIComponent(b.properties_key)}`), 'Binding removed.');
        done();
      },
    }, 'Unbind')) },
  ], bindings, { caption });
}

export async function exchange(main, [vhost, name]) {
  const base = path`/api/exchanges/${vhost}/${name}`;
  const x = await get(base);
  const shownName = x.name === '' ? '(AMQP default)' : x.name;
  const info = h('div');
  const bindings = h('div');
  async function refresh() {
    // The default exchange's bindings are every queue's: not fetched.
    const isDefault = x.name === '';
    const [ex, from, to] = await Promise.all([get(base), isDefault ? [] : get(`${base}/bindings/source`),
      isDefault ? [] : get(`${base}/bindings/destination`)]);
    fill(info, props([
      ['Virtual host', ex.vhost], ['Type', ex.type], ['Durable', yesNo(ex.durable)], ['Auto-delete', yesNo(ex.auto_delete)],
      ['Internal', yesNo(ex.internal)], ['Arguments', argsText(ex.arguments)], ['Policy', ex.policy],
      ['Publish rate in', rate(pick(ex, 'message_stats.publish_in_details.rate'))],
      ['Publish rate out', rate(pick(ex, 'message_stats.publish_out_details.rate'))],
    ]));
    fill(bindings, x.name === '' ? h('p', { class: 'muted' }, 'The default exchange routes to the queue named by the routing key.')
      : [bindingsTable(from, 'Bindings from this exchange', refresh), to.length ? bindingsTable(to, 'Bindings to this exchange', refresh) : null]);
  }

  const key = h('input', { type: 'text', name: 'routing_key' });
  const mode = select('delivery_mode', [['1', 'Non-persistent (1)'], ['2', 'Persistent (2)']], '2');
  const headers = h('textarea', { name: 'headers', placeholder: '{"x-retries": 1}' });
  const properties = h('textarea', { name: 'properties', placeholder: '{"content_type": "application/json", "message_id": "m-1"}' });
  const payload = h('textarea', { name: 'payload' });
  const encoding = select('payload_encoding', [['string', 'String'], ['base64', 'Base64']], 'string');
  const result = h('p', { role: 'status', id: 'publish-result' });
  const publishForm = h('form', {
    class: 'panel', 'aria-labelledby': 'publish-title',
    onsubmit: async (e) => {
      e.preventDefault();
      fill(result);
      const r = await attempt(() => {
        const p = jsonObject(properties.value, 'Properties');
        p.delivery_mode = Number(mode.value);
        const hs = jsonObject(headers.value, 'Headers');
        if (Object.keys(hs).length) p.headers = hs;
        return post(`${base}/publish`, { routing_key: key.value, payload: payload.value, payload_encoding: encoding.value, properties: p });
      });
      if (r) fill(result, r.routed ? 'Message published and routed.' : 'Message published, but not routed: no queue is bound for it.');
    },
  }, h('h2', { id: 'publish-title' }, 'Publish a message'),
  h('div', { class: 'fields' }, field('Routing key', key), field('Delivery mode', mode), field('Payload encoding', encoding)),
  h('div', { class: 'fields' }, field('Headers (JSON)', headers), field('Other properties (JSON)', properties)),
  field('Payload', payload), h('button', { type: 'submit' }, 'Publish message'), result);

  const deleteButton = h('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      if (!(await ask(`Delete exchange ${shownName} and its bindings?`, { confirm: 'Delete', danger: true }))) return;
      if (await attempt(async () => { await del(base); return true; })) {
        toast(`Exchange ${shownName} deleted.`);
        location.hash = '#/exchanges';
      }
    },
  }, 'Delete this exchange');

  fill(main, h('h1', {}, `Exchange ${shownName}`), info,
    h('h2', {}, 'Bindings'), bindings,
    x.name === '' ? null : bindForm({ vhost, source: x.name, done: refresh }),
    publishForm,
    x.name === '' || x.name.startsWith('amq.') ? null : h('section', { class: 'panel', 'aria-label': 'Delete' }, deleteButton));
  await refresh();
  return refresh;
}
