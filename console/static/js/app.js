// The console's shell: login, the page navigation (routes in the URL's
// hash, so that every page can be bookmarked and reloaded) and the
// refresh of the page shown every five seconds.

import { call, get, setCSRF, whenLoggedOut } from './api.js';
import { h, fill, field, toast } from './ui.js';
import { overview } from './pages/overview.js';
import { connections, channels } from './pages/connections.js';
import { exchanges, exchange } from './pages/exchanges.js';
import { queues, queue } from './pages/queues.js';
import { users, vhosts, permissions, policies } from './pages/admin.js';
import { cluster } from './pages/cluster.js';
import { definitions } from './pages/definitions.js';

const refreshEvery = 5000;

// Routes: a hash path's first segment, and the page that draws it. A page
// is a function(main, args, me) that fills main and returns a refresh
// function (or nothing).
const routes = {
  '': overview,
  connections,
  channels,
  exchanges,
  exchange,
  queues,
  queue,
  users,
  vhosts,
  permissions,
  policies,
  cluster,
  definitions,
};

let me = null;
let timer = null;
let shown = null;

function main() { return document.getElementById('main'); }

function loginPage(message) {
  clearInterval(timer);
  me = null;
  shown = null;
  document.getElementById('nav').hidden = true;
  fill(document.getElementById('whoami'));
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const err = h('p', { class: 'error', role: 'alert' }, message || '');
  const form = h('form', {
    class: 'panel login', 'aria-labelledby': 'login-title',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        start(await call('POST', '/api/session', { username: user.value, password: pass.value }));
      } catch (ex) {
        fill(err, ex.status === 401 ? 'Wrong user name or password.' : ex.message);
        pass.value = '';
        pass.focus();
      }
    },
  }, h('h1', { id: 'login-title' }, 'Log in to Warren'), field('User name', user), field('Password', pass),
  h('button', { type: 'submit' }, 'Log in'), err);
  fill(main(), form);
  user.focus();
}

async function logout() {
  try { await call('DELETE', '/api/session'); } catch { /* the session is gone either way */ }
  loginPage('Logged out.');
}

function start(session) {
  me = session;
  setCSRF(session.csrf_token);
  const nav = document.getElementById('nav');
  const tags = me.tags || [];
  const admin = tags.includes('administrator');
  for (const li of nav.querySelectorAll('li[data-tag]')) {
    li.hidden = !(admin || tags.includes(li.dataset.tag));
  }
  nav.hidden = false;
  fill(document.getElementById('whoami'), `User ${me.name}`,
    h('button', { type: 'button', class: 'secondary', onclick: logout }, 'Log out'));
  get('/api/cluster-name').then((c) => fill(document.getElementById('cluster-name'), `Cluster ${c.name}`)).catch(() => {});
  shown = null;
  route();
}

/** Shows the page the hash names. */
async function route() {
  if (!me) return;
  const hash = location.hash.replace(/^#\/?/, '');
  if (hash === shown) return;
  shown = hash;
  const parts = hash.split('/').map(decodeURIComponent);
  const page = routes[parts[0]];
  clearInterval(timer);
  for (const a of document.querySelectorAll('nav a')) {
    const target = a.getAttribute('href').replace(/^#\/?/, '');
    const current = target === parts[0] || (target === `${parts[0]}s` && parts.length > 1);
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const el = main();
  fill(el);
  fill(document.getElementById('toast'));
  if (!page) {
    fill(el, h('h1', {}, 'Not found'), h('p', {}, 'No such page. '), h('a', { href: '#/' }, 'Back to the overview'));
    return;
  }
  let refresh;
  try {
    refresh = await page(el, parts.slice(1), me);
  } catch (e) {
    fill(el, h('h1', {}, 'Error'), h('p', { class: 'error' }, e.message));
    return;
  }
  document.title = `${el.querySelector('h1')?.textContent || 'Warren'} · Warren`;
  if (refresh) {
    timer = setInterval(() => { if (!document.hidden) refresh(); }, refreshEvery);
  }
}

whenLoggedOut(() => { if (me) loginPage('Your session ended: log in again.'); });
window.addEventListener('hashchange', route);
window.addEventListener('unhandledrejection', (e) => { toast(e.reason?.message || String(e.reason), true); });

(async () => {
  let session = null;
  try { session = await get('/api/session'); } catch { /* shown as the login page */ }
  if (session) start(session); else loginPage();
})();
