// Users, virtual hosts, permissions and policies: lists with add, edit and
// delete.

import { get, put, del, path, query } from '../api.js';
import { h, fill, field, select, listView, jsonObject, ask, attempt, toast, vhostSelect } from '../ui.js';

/** A Delete button that asks first, then calls url and redraws list. */
function deleteButton(what, url, list) {
  return h('button', {
    type: 'button', class: 'danger', 'aria-label': `Delete ${what}`,
    onclick: async () => {
      if (!(await ask(`Delete ${what}?`, { confirm: 'Delete', danger: true }))) return;
      await attempt(() => del(url), `Deleted ${what}.`);
      list.update();
    },
  }, 'Delete');
}

/** An Edit button that fills a form from an object. */
function editButton(what, fn) {
  return h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${what}`, onclick: fn }, 'Edit');
}

/** A form: title, fields, submit label, and what submitting does (true: done). */
function form(id, title, fields, submit, run) {
  return h('form', {
    class: 'panel', 'aria-labelledby': id,
    onsubmit: async (e) => {
      e.preventDefault();
      await run();
    },
  }, h('h2', { id }, title), h('div', { class: 'fields' }, fields), h('button', { type: 'submit' }, submit));
}

export async function users(main) {
  const list = listView({
    url: '/api/users',
    columns: [
      { label: 'Name', key: 'name' },
      { label: 'Tags', key: 'tags', render: (u) => (u.tags || []).join(', ') },
      { label: 'Can log in with a password', key: 'password_hash', render: (u) => (u.password_hash ? 'yes' : 'no') },
      { label: 'Actions', fields: ['name', 'tags', 'password_hash', 'hashing_algorithm'], render: (u) => h('div', { class: 'actions' },
        editButton(`user ${u.name}`, () => { name.value = u.name; tags.value = (u.tags || []).join(', '); password.value = ''; name.focus(); }),
        deleteButton(`user ${u.name}`, path`/api/users/${u.name}`, list)) },
    ],
  });
  const name = h('input', { type: 'text', name: 'name', required: true, autocomplete: 'off' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password' });
  const tags = h('input', { type: 'text', name: 'tags', list: 'known-tags' });
  const known = h('datalist', { id: 'known-tags' }, ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'].map((t) => h('option', { value: t })));
  const f = form('user-title', 'Add or change a user', [
    field('Name', name), field('Password', password, { hint: 'blank for a user that exists: unchanged' }),
    field('Tags', tags, { hint: 'comma-separated: administrator, monitoring, policymaker, management' }), known,
  ], 'Save user', async () => {
    const body = { tags: tags.value };
    if (password.value) body.password = password.value;
    else {
      // An existing user keeps its password; only "no such user" makes
      // one without.
      let old = null;
      try {
        old = await get(query(path`/api/users`, { name: name.value, columns: 'name,password_hash,hashing_algorithm' }));
      } catch (e) {
        toast(e.message, true);
        return;
      }
      const same = old.find((x) => x.name === name.value);
      if (same) { body.password_hash = same.password_hash; body.hashing_algorithm = same.hashing_algorithm; }
    }
    if (await attempt(async () => { await put(path`/api/users/${name.value}`, body); return true; }, `User ${name.value} saved.`)) {
      password.value = '';
      list.update();
    }
  });
  fill(main, h('h1', {}, 'Users'), list.el, f);
  await list.update();
  return list.refresh;
}

export async function vhosts(main) {
  const list = listView({
    url: '/api/vhosts',
    columns: [
      { label: 'Name', key: 'name' },
      { label: 'Description', key: 'description' },
      { label: 'Default queue type', key: 'default_queue_type' },
      { label: 'Ready', key: 'messages_ready', num: true },
      { label: 'Unacked', key: 'messages_unacknowledged', num: true },
      { label: 'Actions', fields: ['name', 'description', 'default_queue_type'], render: (v) => h('div', { class: 'actions' },
        editButton(`virtual host ${v.name}`, () => { name.value = v.name; desc.value = v.description || ''; dqt.value = v.default_queue_type === 'quorum' ? 'quorum' : 'classic'; name.focus(); }),
        deleteButton(`virtual host ${v.name}`, path`/api/vhosts/${v.name}`, list)) },
    ],
  });
  const name = h('input', { type: 'text', name: 'name', required: true });
  const desc = h('input', { type: 'text', name: 'description' });
  const dqt = select('default_queue_type', [['classic', 'Classic'], ['quorum', 'Quorum']], 'classic');
  const f = form('vhost-title', 'Add or change a virtual host', [field('Name', name), field('Description', desc), field('Default queue type', dqt)],
    'Save virtual host', async () => {
      if (await attempt(async () => { await put(path`/api/vhosts/${name.value}`, { description: desc.value, default_queue_type: dqt.value }); return true; },
        `Virtual host ${name.value} saved.`)) list.update();
    });
  fill(main, h('h1', {}, 'Virtual hosts'), list.el, f);
  await list.update();
  return list.refresh;
}

export async function permissions(main) {
  const list = listView({
    url: '/api/permissions',
    sort: 'user',
    filter: false,
    columns: [
      { label: 'User', key: 'user' },
      { label: 'Virtual host', key: 'vhost' },
      { label: 'Configure', key: 'configure' },
      { label: 'Write', key: 'write' },
      { label: 'Read', key: 'read' },
      { label: 'Actions', render: (p) => h('div', { class: 'actions' },
        editButton(`permissions of ${p.user} in ${p.vhost}`, () => {
          user.value = p.user; vhost.value = p.vhost; conf.value = p.configure; write.value = p.write; read.value = p.read; user.focus();
        }),
        deleteButton(`permissions of ${p.user} in ${p.vhost}`, path`/api/permissions/${p.vhost}/${p.user}`, list)) },
    ],
  });
  const us = await get('/api/users?columns=name');
  const user = select('user', us.map((u) => u.name), us.length ? us[0].name : '');
  const vhost = await vhostSelect();
  const conf = h('input', { type: 'text', name: 'configure', value: '.*' });
  const write = h('input', { type: 'text', name: 'write', value: '.*' });
  const read = h('input', { type: 'text', name: 'read', value: '.*' });
  const f = form('perm-title', 'Set permissions', [field('User', user), field('Virtual host', vhost),
    field('Configure (regular expression)', conf), field('Write (regular expression)', write), field('Read (regular expression)', read)],
  'Set permissions', async () => {
    if (await attempt(async () => {
      await put(path`/api/permissions/${vhost.value}/${user.value}`, { configure: conf.value, write: write.value, read: read.value });
      return true;
    }, `Permissions of ${user.value} in ${vhost.value} set.`)) list.update();
  });
  fill(main, h('h1', {}, 'Permissions'), list.el, f);
  await list.update();
  return list.refresh;
}

export async function policies(main) {
  const list = listView({
    url: '/api/policies',
    columns: [
      { label: 'Name', key: 'name' },
      { label: 'Virtual host', key: 'vhost' },
      { label: 'Pattern', key: 'pattern' },
      { label: 'Applies to', key: 'apply-to' },
      { label: 'Definition', key: 'definition', render: (p) => JSON.stringify(p.definition) },
      { label: 'Priority', key: 'priority', num: true },
      { label: 'Actions', fields: ['name', 'vhost'], render: (p) => h('div', { class: 'actions' },
        editButton(`policy ${p.name}`, () => {
          name.value = p.name; vhost.value = p.vhost; pattern.value = p.pattern; applyTo.value = p['apply-to'];
          priority.value = String(p.priority); def.value = JSON.stringify(p.definition, null, 1); name.focus();
        }),
        deleteButton(`policy ${p.name} in ${p.vhost}`, path`/api/policies/${p.vhost}/${p.name}`, list)) },
    ],
  });
  const vhost = await vhostSelect();
  const name = h('input', { type: 'text', name: 'name', required: true });
  const pattern = h('input', { type: 'text', name: 'pattern', required: true, value: '.*' });
  const applyTo = select('apply-to', [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['classic_queues', 'Classic queues'],
    ['quorum_queues', 'Quorum queues'], ['exchanges', 'Exchanges']], 'all');
  const priority = h('input', { type: 'number', name: 'priority', value: '0' });
  const def = h('textarea', { name: 'definition', required: true, placeholder: '{"max-length": 10000, "dead-letter-exchange": "dlx"}' });
  const f = form('policy-title', 'Add or change a policy', [field('Virtual host', vhost), field('Name', name), field('Pattern', pattern),
    field('Applies to', applyTo), field('Priority', priority), field('Definition (JSON)', def)],
  'Save policy', async () => {
    if (await attempt(async () => {
      await put(path`/api/policies/${vhost.value}/${name.value}`, {
        pattern: pattern.value, 'apply-to': applyTo.value, priority: Number(priority.value), definition: jsonObject(def.value, 'Definition'),
      });
      return true;
    }, `Policy ${name.value} saved.`)) list.update();
  });
  fill(main, h('h1', {}, 'Policies'), list.el, f);
  await list.update();
  return list.refresh;
}

