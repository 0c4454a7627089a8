// The overview: what is wrong first, then message rates, totals, nodes
// and listeners.

import { get, query } from '../api.js';
import { h, fill, num, rate, bytes, duration, badge, table, lineChart } from '../ui.js';

// How long a channel's unacknowledged messages must stay near its
// prefetch before the overview names it, and how near is near.
const stuckAfterMs = 30000;
const nearPrefetch = 0.9;
// Channels seen near their prefetch, by name: since when. Kept across
// page changes, so the overview remembers what it watched.
const nearSince = new Map();

/** Whether the user's tags let it read what monitoring users read. */
export const monitors = (me) => (me.tags || []).some((t) => t === 'administrator' || t === 'monitoring');

/** Finds what needs an operator's attention; each item is [severity, text, link]. */
async function problems(me) {
  const out = [];
  const now = Date.now();
  const tasks = [];
  if (monitors(me)) {
    tasks.push(get('/api/nodes?columns=name,mem_alarm,disk_free_alarm,mem_used,mem_limit,disk_free,disk_free_limit').then((nodes) => {
      for (const n of nodes) {
        if (n.mem_alarm) out.push(['bad', `Memory alarm on ${n.name}: ${bytes(n.mem_used)} used of ${bytes(n.mem_limit)}; publishers are blocked.`, '#/']);
        if (n.disk_free_alarm) out.push(['bad', `Disk alarm on ${n.name}: ${bytes(n.disk_free)} free, limit ${bytes(n.disk_free_limit)}; publishers are blocked.`, '#/']);
      }
    }));
  }
  tasks.push(get('/api/connections?columns=name,state,user,vhost').then((conns) => {
    const blocked = conns.filter((c) => c.state === 'blocked' || c.state === 'blocking');
    for (const c of blocked.slice(0, 5)) out.push(['bad', `Connection ${c.name} (user ${c.user}) is ${c.state}.`, '#/connections']);
    if (blocked.length > 5) out.push(['bad', `${blocked.length - 5} more connections are blocked.`, '#/connections']);
  }));
  tasks.push(get(query('/api/queues', {
    page: 1, page_size: 5, sort: 'messages_details.rate', sort_reverse: 'true',
    columns: 'name,vhost,messages,messages_details.rate,consumers',
  })).then((res) => {
    for (const q of res.items.filter((x) => x.messages_details && x.messages_details.rate > 0)) {
      out.push(['warn', `Queue ${q.name} (vhost ${q.vhost}) grows by ${rate(q.messages_details.rate)}: ${num(q.messages)} messages, ${num(q.consumers)} consumers.`,
        `#/queue/${encodeURIComponent(q.vhost)}/${encodeURIComponent(q.name)}`]);
    }
  }));
  tasks.push(get('/api/channels?columns=name,prefetch_count,messages_unacknowledged,consumer_count,user').then((chans) => {
    const seen = new Set();
    for (const c of chans) {
      if (c.prefetch_count > 0 && c.consumer_count > 0 && c.messages_unacknowledged >= c.prefetch_count * nearPrefetch) {
        seen.add(c.name);
        if (!nearSince.has(c.name)) nearSince.set(c.name, now);
        const since = nearSince.get(c.name);
        if (now - since >= stuckAfterMs) {
          out.push(['warn', `Channel ${c.name} (user ${c.user}) has held ${num(c.messages_unacknowledged)} unacknowledged messages, at its prefetch of ${num(c.prefetch_count)}, for ${duration(now - since)}: a slow or stuck consumer.`, '#/channels']);
        }
      }
    }
    for (const name of nearSince.keys()) if (!seen.has(name)) nearSince.delete(name);
  }));
  await Promise.all(tasks);
  const order = { bad: 0, warn: 1 };
  return out.sort((a, b) => order[a[0]] - order[b[0]]);
}

export async function overview(main, _args, me) {
  const strip = h('section', { class: 'problems', 'aria-labelledby': 'problems-title', 'aria-live': 'polite' });
  const chart = lineChart('overview-rates', 'Message rates', [
    { key: 'publish', label: 'Publish', color: '#0b5cad' },
    { key: 'deliver', label: 'Deliver and get', color: '#1e6b2e' },
    { key: 'ack', label: 'Acknowledge', color: '#7a4d00' },
    { key: 'redeliver', label: 'Redeliver', color: '#a4161a' },
  ], rate);
  const totals = h('div', { class: 'cards' });
  const nodes = h('div');
  const listeners = h('div');
  fill(main, h('h1', {}, 'Overview'),
    strip,
    chart.el,
    h('h2', {}, 'Totals'), totals,
    h('h2', {}, 'Nodes'), nodes,
    h('h2', {}, 'Listeners'), listeners);

  let shownProblems = '';
  async function refresh() {
    const [ov, found] = await Promise.all([get('/api/overview'), problems(me)]);
    // The strip is a live region: it is redrawn only when what it says
    // changes, so that a screen reader does not read it every 5 s.
    const said = JSON.stringify(found);
    if (said !== shownProblems) {
      shownProblems = said;
      fill(strip, h('h2', { id: 'problems-title' }, 'What is wrong'),
        found.length ? h('ul', {}, found.map(([kind, text, link]) => h('li', { class: kind }, h('a', { href: link }, text))))
          : h('p', {}, 'Nothing: no alarms, no blocked connections, no growing backlog, no consumer stuck at its prefetch.'));
      strip.className = `problems ${found.length ? 'some' : 'none'}`;
    }
    const ms = ov.message_stats || {};
    const r = (k) => (ms[`${k}_details`] ? ms[`${k}_details`].rate : 0);
    chart.push({ publish: r('publish'), deliver: r('deliver_get'), ack: r('ack'), redeliver: r('redeliver') });
    const qt = ov.queue_totals || {};
    const ot = ov.object_totals || {};
    const card = (label, value) => h('div', { class: 'card' }, h('div', { class: 'value' }, num(value)), h('div', { class: 'label' }, label));
    fill(totals, card('Messages', qt.messages), card('Ready', qt.messages_ready), card('Unacknowledged', qt.messages_unacknowledged),
      card('Connections', ot.connections), card('Channels', ot.channels), card('Consumers', ot.consumers),
      card('Exchanges', ot.exchanges), card('Queues', ot.queues));
    fill(listeners, table([
      { label: 'Protocol', key: 'protocol' }, { label: 'Node', key: 'node' },
      { label: 'Address', key: 'ip_address' }, { label: 'Port', key: 'port', render: (l) => String(l.port) },
    ], ov.listeners || []));
    if (monitors(me)) {
      const ns = await get('/api/nodes');
      fill(nodes, table([
        { label: 'Name', key: 'name' },
        { label: 'Running', render: (n) => (n.running ? badge('running', 'ok') : badge('down', 'bad')) },
        { label: 'Memory', render: (n) => [`${bytes(n.mem_used)} of ${bytes(n.mem_limit)} `, n.mem_alarm ? badge('alarm', 'bad') : null] },
        { label: 'Disk free', render: (n) => [`${bytes(n.disk_free)}, limit ${bytes(n.disk_free_limit)} `, n.disk_free_alarm ? badge('alarm', 'bad') : null] },
        { label: 'Uptime', render: (n) => (n.uptime ? duration(n.uptime) : '') },
      ], ns));
    } else {
      fill(nodes, h('p', { class: 'muted' }, 'Nodes are shown to monitoring and administrator users.'));
    }
  }
  await refresh();
  return refresh;
}
