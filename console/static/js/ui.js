// Building blocks of the console's pages: elements, formats, messages,
// dialogs, form fields, paginated tables over the API's list parameters,
// and line charts. Text goes in as text, never as HTML.

import { get, query } from './api.js';

/**
 * Makes an element: tag, attributes (on* are listeners, "class" and
 * boolean values as expected) and children (strings become text).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Through the CSSOM: the page's policy refuses style attributes.
    else if (k === 'style') el.style.cssText = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const nf = new Intl.NumberFormat('en');
/** A count, with thousands separators. */
export const num = (n) => (n === undefined || n === null ? '' : nf.format(n));
/** A rate per second. */
export const rate = (r) => (r === undefined || r === null ? '' : `${(Math.round(r * 10) / 10).toLocaleString('en')}/s`);
/** A byte size. */
export function bytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
/** A duration in milliseconds, shortly. */
export function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
/** A dotted field of an API object. */
export function pick(o, dotted) {
  return dotted.split('.').reduce((v, k) => (v === undefined || v === null ? undefined : v[k]), o);
}
/** A badge: kind is ok, warn or bad. */
export const badge = (text, kind) => h('span', { class: `badge ${kind}` }, text);
/** Arguments (or a policy's definition) shortly, "" for none. */
export const argsText = (a) => (a && Object.keys(a).length ? JSON.stringify(a) : '');
/** Yes or no. */
export const yesNo = (b) => (b ? 'yes' : 'no');

/** Shows a passing message (an error in red). */
export function toast(text, error = false) {
  const box = document.getElementById('toast');
  const p = h('p', { class: error ? 'error' : '' }, text);
  box.append(p);
  setTimeout(() => p.remove(), error ? 8000 : 4000);
}

/** Runs an action, showing its error, if any, as a message. */
export async function attempt(fn, done) {
  try {
    const r = await fn();
    if (done) toast(done);
    return r;
  } catch (e) {
    toast(e.message || String(e), true);
    return undefined;
  }
}

let ids = 0;
/** A fresh element id. */
export const newID = (prefix = 'f') => `${prefix}-${++ids}`;

/** A labelled form field around a control. */
export function field(label, control, { inline = false, hint } = {}) {
  if (!control.id) control.id = newID();
  const hintEl = hint ? h('span', { class: 'muted', id: newID('hint') }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  const l = h('label', { for: control.id }, label);
  return inline ? h('div', { class: 'field inline' }, control, l, hintEl) : h('div', { class: 'field' }, l, control, hintEl);
}

/** A select of options: [value, text] pairs or plain values. */
export function select(name, options, value) {
  return h('select', { name }, options.map((o) => {
    const [v, t] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === value }, t);
  }));
}

/** Parses a JSON object typed in a text area ("" is {}). */
export function jsonObject(text, what) {
  if (!text.trim()) return {};
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error(`${what}: not valid JSON (${e.message})`); }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: must be a JSON object`);
  return v;
}

/**
 * Asks a question in a modal dialog. With input set, the dialog has a text
 * field of that label and resolves to its text; otherwise to true. It
 * resolves to null when cancelled.
 */
export function ask(question, { confirm = 'OK', input, danger = false } = {}) {
  return new Promise((resolve) => {
    const text = input ? h('input', { type: 'text', name: 'answer' }) : null;
    const title = h('p', { id: newID('dlg') }, question);
    const dlg = h('dialog', { 'aria-labelledby': title.id });
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    const form = h('form', { method: 'dialog', onsubmit: (e) => { e.preventDefault(); done(text ? text.value : true); } },
      title, text ? field(input, text) : null,
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: danger ? 'danger' : '' }, confirm),
        h('button', { type: 'button', class: 'secondary', onclick: () => done(null) }, 'Cancel')));
    dlg.append(form);
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(null); });
    document.body.append(dlg);
    dlg.showModal();
    (text || form.querySelector('button')).focus();
  });
}

/**
 * A table over one of the API's lists, paginated, sorted and filtered by
 * the API (page, page_size, sort, sort_reverse, name, use_regex), fetching
 * only the columns it shows: it stays quick with tens of thousands of
 * objects. columns: [{label, key (sort key and default cell), fields
 * (the dotted fields the cell needs, default [key]), num, render(o)}].
 */
export function listView({ url, columns, caption, sort = 'name', pageSize = 50, filter = true, empty = 'None.' }) {
  const st = { page: 1, size: pageSize, sort, reverse: false, name: '', regex: false };
  const fields = [...new Set(columns.flatMap((c) => c.fields || (c.key ? [c.key] : [])))];
  const status = h('span', { class: 'muted', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'secondary', onclick: () => { st.page--; update(); } }, 'Previous page');
  const next = h('button', { type: 'button', class: 'secondary', onclick: () => { st.page++; update(); } }, 'Next page');
  const size = select('page_size', ['20', '50', '100', '500'], String(pageSize));
  size.addEventListener('change', () => { st.size = Number(size.value); st.page = 1; update(); });
  const nameInput = h('input', { type: 'search', name: 'filter' });
  const regexBox = h('input', { type: 'checkbox', name: 'regex' });
  let typing;
  nameInput.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => { st.name = nameInput.value; st.page = 1; update(); }, 300);
  });
  regexBox.addEventListener('change', () => { st.regex = regexBox.checked; st.page = 1; update(); });
  const head = h('tr');
  const body = h('tbody');
  const table = h('table', {}, caption ? h('caption', {}, caption) : null, h('thead', {}, head), body);
  const el = h('div', { class: 'list' },
    h('div', { class: 'toolbar' },
      filter ? field('Filter by name', nameInput) : null,
      filter ? field('Regular expression', regexBox, { inline: true }) : null,
      field('Rows per page', size),
      h('div', { class: 'pager' }, prev, next, status)),
    table);

  let headFor = null; // the sort the header shows
  function renderHead() {
    const now = `${st.sort}/${st.reverse}`;
    if (now === headFor) return;
    const focused = head.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    headFor = now;
    fill(head, columns.map((c) => {
      const sorted = c.key && st.sort === c.key;
      const th = h('th', { scope: 'col', class: c.num ? 'num' : '', 'aria-sort': sorted ? (st.reverse ? 'descending' : 'ascending') : null });
      if (!c.key || c.sortable === false) return fill(th, c.label);
      return fill(th, h('button', {
        type: 'button', class: 'sort', 'data-key': c.key,
        onclick: () => {
          if (st.sort === c.key) st.reverse = !st.reverse; else { st.sort = c.key; st.reverse = !!c.num; }
          st.page = 1;
          update();
        },
      }, c.label, sorted ? (st.reverse ? ' ▼' : ' ▲') : ''));
    }));
    if (focused) head.querySelector(`button[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  let asked = 0; // requests made: an answer to an older one is dropped
  let shownStatus = '';
  async function update(auto = false) {
    // A refresh does not redraw rows under the user's hands (a focused
    // button in the table); it draws them once the focus has left.
    if (auto && body.contains(document.activeElement)) return;
    renderHead();
    const mine = ++asked;
    let res;
    try {
      res = await get(query(url, {
        page: st.page, page_size: st.size, sort: st.sort, sort_reverse: st.reverse ? 'true' : '',
        name: st.name, use_regex: st.name && st.regex ? 'true' : '', columns: fields.join(','),
      }));
    } catch (e) {
      if (mine !== asked) return;
      if (e.status === 400 && st.page > 1) { st.page = 1; return update(auto); }
      fill(status, h('span', { class: 'error' }, e.message));
      shownStatus = '';
      return;
    }
    if (mine !== asked) return;
    const items = res.items || [];
    fill(body, bodyRows(columns, items, empty));
    prev.disabled = st.page <= 1;
    next.disabled = st.page >= res.page_count;
    const filtered = res.filtered_count !== res.total_count ? ` (${num(res.filtered_count)} match of ${num(res.total_count)})` : ` (${num(res.total_count)} in all)`;
    // The status is a live region: it changes only when its text does.
    const text = `Page ${res.page} of ${res.page_count}${filtered}`;
    if (text !== shownStatus) {
      fill(status, text);
      shownStatus = text;
    }
  }
  return { el, update: () => update(false), refresh: () => update(true) };
}

/** A table of objects held in the page (short lists). */
export function table(columns, rows, { caption, empty = 'None.' } = {}) {
  return h('table', {}, caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.label)))),
    h('tbody', {}, bodyRows(columns, rows, empty)));
}

/** A table's rows: a cell per column (its render, else its key's field), or one saying empty. */
function bodyRows(columns, rows, empty) {
  if (!rows.length) return h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, empty));
  return rows.map((o) => h('tr', {}, columns.map((c) => {
    const v = c.render ? c.render(o) : pick(o, c.key);
    return h('td', { class: c.num ? 'num' : '' }, c.num && typeof v === 'number' ? num(v) : v);
  })));
}

/** Properties as a definition list. */
export function props(pairs) {
  return h('dl', { class: 'props' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? '—' : v)]));
}

// Chart histories outlive a page: going back to one shows what it saw.
const histories = new Map();
const maxPoints = 120;
const maxCharts = 50;

/**
 * A line chart of series over time, sampled by the page: push({key:
 * value}) adds a point. id keeps its history across page changes. The
 * chart's text alternative names the latest values.
 */
export function lineChart(id, title, series, format = num) {
  const hist = histories.get(id) || [];
  // The most recently shown charts are kept, a few dozen at most.
  histories.delete(id);
  histories.set(id, hist);
  while (histories.size > maxCharts) histories.delete(histories.keys().next().value);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 600 160');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  const titleID = newID('chart');
  const latest = h('p', { class: 'muted', id: titleID });
  svg.setAttribute('aria-labelledby', titleID);
  const el = h('figure', { class: 'chart' }, h('figcaption', {}, h('strong', {}, title)), svg,
    h('ul', { class: 'legend' }, series.map((s) => h('li', {}, h('span', { class: 'swatch', style: `background:${s.color}` }), s.label))),
    latest);
  const svgEl = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  function draw() {
    svg.replaceChildren();
    const top = Math.max(1, ...hist.flatMap((p) => series.map((s) => p[s.key] || 0)));
    const y = (v) => 150 - (v / top) * 140;
    for (const frac of [0, 0.5, 1]) {
      svg.append(svgEl('line', { x1: 0, x2: 600, y1: y(top * frac), y2: y(top * frac), stroke: '#c9d0d8', 'stroke-width': 1 }));
    }
    if (hist.length > 1) {
      const x = (i) => (i / (maxPoints - 1)) * 600;
      const off = maxPoints - hist.length;
      for (const s of series) {
        const pts = hist.map((p, i) => `${x(i + off).toFixed(1)},${y(p[s.key] || 0).toFixed(1)}`).join(' ');
        svg.append(svgEl('polyline', { points: pts, fill: 'none', stroke: s.color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' }));
      }
    }
    const last = hist[hist.length - 1] || {};
    fill(latest, `${title}, latest: ` + series.map((s) => `${s.label} ${format(last[s.key] || 0)}`).join(', ') +
      `; scale to ${format(top)}; ${hist.length} samples.`);
  }
  draw();
  return {
    el,
    push(point) {
      hist.push(point);
      if (hist.length > maxPoints) hist.splice(0, hist.length - maxPoints);
      draw();
    },
  };
}

/** A select of the virtual hosts the user may see. */
export async function vhostSelect(name = 'vhost', value = '/') {
  const vs = await get('/api/vhosts?columns=name');
  return select(name, vs.map((v) => v.name), value);
}

/** The console's path of an exchange's or a queue's page. */
export function objectLink(kind, vhost, name) {
  const shown = kind === 'exchange' && name === '' ? '(AMQP default)' : name;
  const key = kind === 'exchange' && name === '' ? 'amq.default' : name;
  return h('a', { href: `#/${kind}/${encodeURIComponent(vhost)}/${encodeURIComponent(key)}` }, shown);
}
