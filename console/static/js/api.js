// The console's calls to the management API. Requests carry the session
// cookie (same origin); those that change something carry the session's
// CSRF token too. X-Requested-With keeps the browser's own basic-auth
// dialog away when a session has ended.

let csrf = '';
let onLoggedOut = () => {};

/** Sets what happens when a call finds the session gone. */
export function whenLoggedOut(fn) { onLoggedOut = fn; }

/** Sets the session's CSRF token. */
export function setCSRF(token) { csrf = token; }

/** An API error: its HTTP status and RabbitMQ's reason. */
export class APIError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

/** Encodes one path segment (the vhost "/" becomes %2F). */
export const seg = (s) => encodeURIComponent(s);

/** Builds a path from literal parts and encoded segments. */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? seg(values[i]) : ''), '');
}

/**
 * Calls the API: method, path (with query), an optional JSON body and
 * extra headers. Resolves to the parsed JSON (null for no content).
 */
export async function call(method, url, body, headers = {}, retried = false) {
  const h = { 'X-Requested-With': 'XMLHttpRequest', ...headers };
  if (method !== 'GET' && method !== 'HEAD') h['X-CSRF-Token'] = csrf;
  const init = { method, headers: h, credentials: 'same-origin' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  if (res.status === 401 && url !== '/api/session') {
    onLoggedOut();
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    const reason = data && data.reason ? data.reason : res.statusText;
    // Another tab logged in since this page learnt its token: learn the
    // session's, once.
    if (res.status === 403 && !retried && reason.includes('X-CSRF-Token')) {
      const session = await call('GET', '/api/session');
      if (session) {
        csrf = session.csrf_token;
        return call(method, url, body, headers, true);
      }
    }
    throw new APIError(res.status, reason);
  }
  return data;
}

export const get = (url) => call('GET', url);
export const put = (url, body) => call('PUT', url, body);
export const post = (url, body) => call('POST', url, body);
export const del = (url, headers) => call('DELETE', url, undefined, headers);

/** Adds query parameters to a path, leaving out empty ones. */
export function query(url, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${url}?${s}` : url;
}
