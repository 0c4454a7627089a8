// Definitions: download the broker's (or one virtual host's) definitions
// as RabbitMQ's JSON, and upload a file of them.

import { get, post, seg } from '../api.js';
import { h, fill, field, select, attempt, toast } from '../ui.js';

export async function definitions(main) {
  const vs = await get('/api/vhosts?columns=name');
  const scope = () => select('scope', [['', 'All virtual hosts'], ...vs.map((v) => [v.name, `Virtual host ${v.name}`])], '');
  const down = scope();
  const link = h('a', { href: '/api/definitions?download=warren-definitions.json', download: 'warren-definitions.json' }, 'Download definitions');
  down.addEventListener('change', () => {
    const file = down.value ? `warren-definitions-${down.value.replace(/[^A-Za-z0-9_.-]/g, '_')}.json` : 'warren-definitions.json';
    link.setAttribute('href', `/api/definitions${down.value ? `/${seg(down.value)}` : ''}?download=${encodeURIComponent(file)}`);
    link.setAttribute('download', file);
  });
  const up = scope();
  const fileInput = h('input', { type: 'file', name: 'file', accept: 'application/json,.json', required: true });
  const result = h('p', { role: 'status' });
  const form = h('form', {
    class: 'panel', 'aria-labelledby': 'upload-title',
    onsubmit: async (e) => {
      e.preventDefault();
      fill(result);
      const f = fileInput.files[0];
      if (!f) return;
      let body;
      try { body = JSON.parse(await f.text()); } catch (ex) { toast(`${f.name} is not JSON: ${ex.message}`, true); return; }
      const url = `/api/definitions${up.value ? `/${seg(up.value)}` : ''}`;
      if (await attempt(async () => { await post(url, body); return true; })) fill(result, `Definitions from ${f.name} imported.`);
    },
  }, h('h2', { id: 'upload-title' }, 'Upload definitions'), field('Apply to', up), field('Definitions file (JSON)', fileInput),
  h('button', { type: 'submit' }, 'Upload'), result);
  fill(main, h('h1', {}, 'Definitions'),
    h('section', { class: 'panel', 'aria-labelledby': 'download-title' }, h('h2', { id: 'download-title' }, 'Download definitions'),
      h('p', {}, 'Users, virtual hosts, permissions, policies, queues, exchanges and bindings, as RabbitMQ writes them.'),
      field('Definitions of', down), link),
    form);
}
