// The cluster: its members, and where the quorum queues' leaders are.

import { get } from '../api.js';
import { h, fill, table, badge, yesNo, objectLink } from '../ui.js';

// Quorum queues listed on the page at most; the leader counts cover all.
const maxListed = 500;

export async function cluster(main) {
  const members = h('div');
  const spread = h('div');
  const leaders = h('div');
  fill(main, h('h1', {}, 'Cluster'), h('h2', {}, 'Members'), members,
    h('h2', {}, 'Quorum queue leaders per node'), spread, h('h2', {}, 'Quorum queues'), leaders);

  async function refresh() {
    const [c, qs] = await Promise.all([get('/api/cluster'), get('/api/queues?columns=name,vhost,type,leader,members,online,state')]);
    fill(members, h('p', {}, `Cluster ${c.cluster_name}; this console talks to ${c.node}.`), table([
      { label: 'Node', key: 'name' },
      { label: 'Cluster address', key: 'address' },
      { label: 'Running', render: (n) => (n.running ? badge('running', 'ok') : badge('down', 'bad')) },
      { label: 'Voter', render: (n) => yesNo(n.voter) },
      { label: 'Definitions leader', render: (n) => yesNo(n.leader) },
    ], c.nodes));
    const quorum = qs.filter((q) => q.type === 'quorum');
    const per = new Map(c.nodes.map((n) => [n.name, 0]));
    let leaderless = 0;
    for (const q of quorum) {
      if (q.leader) per.set(q.leader, (per.get(q.leader) || 0) + 1); else leaderless++;
    }
    fill(spread, table([{ label: 'Node', key: 'node' }, { label: 'Leaders', key: 'n', num: true }],
      [...per].map(([node, n]) => ({ node, n }))),
    leaderless ? h('p', { class: 'error' }, `${leaderless} quorum queues have no leader: fewer than a majority of their members are up.`) : null);
    const under = (q) => (q.online || []).length < (q.members || []).length;
    quorum.sort((a, b) => Number(under(b)) - Number(under(a)) || a.name.localeCompare(b.name));
    fill(leaders, table([
      { label: 'Queue', render: (q) => objectLink('queue', q.vhost, q.name) },
      { label: 'Virtual host', key: 'vhost' },
      { label: 'Leader', render: (q) => q.leader || badge('none', 'bad') },
      { label: 'Members', render: (q) => (q.members || []).join(', ') },
      { label: 'Online', render: (q) => [(q.online || []).join(', '), under(q) ? [' ', badge(`${(q.online || []).length} of ${(q.members || []).length}`, 'warn')] : null] },
    ], quorum.slice(0, maxListed), {
      caption: quorum.length > maxListed ? `The first ${maxListed} of ${quorum.length}, those missing members first.` : 'Those missing members first.',
      empty: 'No quorum queues.',
    }));
  }
  await refresh();
  return refresh;
}
