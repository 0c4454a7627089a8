// Connections (with their blocked state; an operator may close one with a
// reason) and channels (prefetch, unacknowledged, confirm mode).

import { del, path } from '../api.js';
import { h, fill, listView, rate, badge, yesNo, ask, attempt, pick } from '../ui.js';

const stateBadge = (s) => badge(s, s === 'running' ? 'ok' : s === 'blocked' || s === 'blocking' ? 'bad' : 'warn');

export async function connections(main) {
  const list = listView({
    url: '/api/connections',
    caption: 'Client connections; blocked ones are held back by an alarm.',
    columns: [
      { label: 'Name', key: 'name' },
      { label: 'User', key: 'user' },
      { label: 'Virtual host', key: 'vhost' },
      { label: 'State', key: 'state', render: (c) => stateBadge(c.state) },
      { label: 'Channels', key: 'channels', num: true },
      { label: 'Client', key: 'client_properties.product', fields: ['client_properties.product', 'client_properties.version'],
        render: (c) => [pick(c, 'client_properties.product'), pick(c, 'client_properties.version')].filter(Boolean).join(' ') },
      { label: 'TLS', key: 'ssl', render: (c) => yesNo(c.ssl) },
      { label: 'From client', key: 'recv_oct_details.rate', num: true, render: (c) => `${rate((c.recv_oct_details || {}).rate)} B` },
      { label: 'To client', key: 'send_oct_details.rate', num: true, render: (c) => `${rate((c.send_oct_details || {}).rate)} B` },
      { label: 'Actions', render: (c) => h('button', {
        type: 'button', class: 'danger', 'aria-label': `Close connection ${c.name}`,
        onclick: async () => {
          const reason = await ask(`Close connection ${c.name}? Its client is told the reason.`, { confirm: 'Close', input: 'Reason', danger: true });
          if (reason === null) return;
          // A header carries Latin-1 at most, and RabbitMQ reads X-Reason
          // as it comes: other characters become "?".
          const ascii = reason.replace(/[^\x20-\x7e]/g, '?');
          await attempt(() => del(path`/api/connections/${c.name}`, ascii ? { 'X-Reason': ascii } : {}), `Closed ${c.name}.`);
          list.update();
        },
      }, 'Close') },
    ],
  });
  fill(main, h('h1', {}, 'Connections'), list.el);
  await list.update();
  return list.refresh;
}

export async function channels(main) {
  const list = listView({
    url: '/api/channels',
    caption: 'Open channels; unacknowledged messages at the prefetch mean a consumer is not keeping up.',
    columns: [
      { label: 'Channel', key: 'name' },
      { label: 'User', key: 'user' },
      { label: 'Virtual host', key: 'vhost' },
      { label: 'Mode', key: 'confirm', fields: ['confirm', 'transactional'],
        render: (c) => (c.confirm ? 'confirm' : c.transactional ? 'transactional' : '—') },
      { label: 'Prefetch', key: 'prefetch_count', num: true, fields: ['prefetch_count', 'global_prefetch_count'],
        render: (c) => (c.prefetch_count ? String(c.prefetch_count) : 'none') + (c.global_prefetch_count ? ` (global ${c.global_prefetch_count})` : '') },
      { label: 'Unacknowledged', key: 'messages_unacknowledged', num: true, fields: ['messages_unacknowledged', 'prefetch_count'],
        render: (c) => [String(c.messages_unacknowledged), c.prefetch_count && c.messages_unacknowledged >= c.prefetch_count ? [' ', badge('at prefetch', 'warn')] : null] },
      { label: 'Unconfirmed', key: 'messages_unconfirmed', num: true },
      { label: 'Consumers', key: 'consumer_count', num: true },
    ],
  });
  fill(main, h('h1', {}, 'Channels'), list.el);
  await list.update();
  return list.refresh;
}
