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
// Counts navigations: a page that finishes loading after the user went
// elsewhere is dropped, and so is its refresh.
let navigation = 0;

function stopRefresh() {
  clearTimeout(timer);
  timer = null;
}

/** Refreshes the page every refreshEvery, one refresh at a time, while nav is current. */
function scheduleRefresh(refresh, nav) {
  timer = setTimeout(async () => {
    if (nav !== navigation) return;
    if (!document.hidden) {
      // Marked while it runs, for tests that wait for a still page.
      document.documentElement.dataset.refreshing = 'yes';
      try { await refresh(); } catch (e) { toast(e.message || String(e), true); }
      delete document.documentElement.dataset.refreshing;
    }
    if (nav === navigation) scheduleRefresh(refresh, nav);
  }, refreshEvery);
}

function main() { return document.getElementById('main'); }

function loginPage(message) {
  navigation++;
  stopRefresh();
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
  try {
    await call('DELETE', '/api/session');
  } catch (e) {
    toast(`Logging out failed: ${e.message}`, true);
    return;
  }
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

/** Shows the page the hash names ("#/" and a route; other hashes, such as the skip link's, are not routes). */
async function route() {
  if (!me) return;
  if (location.hash !== '' && !location.hash.startsWith('#/')) return;
  const hash = location.hash.replace(/^#\/?/, '');
  if (hash === shown) return;
  shown = hash;
  const nav = ++navigation;
  stopRefresh();
  let parts;
  try { parts = hash.split('/').map(decodeURIComponent); } catch { parts = [null]; }
  const page = Object.hasOwn(routes, parts[0]) ? routes[parts[0]] : null;
  for (const a of document.querySelectorAll('nav a')) {
    const target = a.getAttribute('href').replace(/^#\/?/, '');
    const current = target === parts[0] || (target === `${parts[0]}s` && parts.length > 1);
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  fill(document.getElementById('toast'));
  // The page draws into a container of its own, shown once it is ready
  // and still wanted.
  const el = h('div');
  let refresh;
  if (!page) {
    fill(el, h('h1', {}, 'Not found'), h('p', {}, 'No such page. '), h('a', { href: '#/' }, 'Back to the overview'));
  } else {
    try {
      refresh = await page(el, parts.slice(1), me);
    } catch (e) {
      fill(el, h('h1', {}, 'Error'), h('p', { class: 'error' }, e.message));
    }
  }
  if (nav !== navigation) return;
  fill(main(), el);
  document.title = `${el.querySelector('h1')?.textContent || 'Warren'} · Warren`;
  el.querySelector('h1')?.setAttribute('tabindex', '-1');
  el.querySelector('h1')?.focus({ preventScroll: true });
  if (refresh) scheduleRefresh(refresh, nav);
}

whenLoggedOut(() => { if (me) loginPage('Your session ended: log in again.'); });
window.addEventListener('hashchange', route);
window.addEventListener('unhandledrejection', (e) => { toast(e.reason?.message || String(e.reason), true); });

(async () => {
  let session = null;
  try { session = await get('/api/session'); } catch { /* shown as the login page */ }
  if (session) start(session); else loginPage();
})();
