// The REST API, called with the user token kept in sessionStorage (it lasts as long as
// the tab and is never sent anywhere but this server's API).

const TOKEN_KEY = 'phoenix.token';

/** Base of the REST API, relative to the page (works when the server is nested). */
export const apiBase = new URL('../api/v1/', document.baseURI);

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(secret) {
  sessionStorage.setItem(TOKEN_KEY, secret);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Who is signed in ({name, role}, from `GET whoami`); views read it for operator actions. */
export const me = { name: null, role: null };

export function canOperate() {
  return me.role === 'operator' || me.role === 'admin';
}

/** An API failure with the server's error object. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    const fields = (e.details && e.details.fields) || [];
    this.details = fields.map((f) => ({ field: f.path, message: f.message }));
    if (e.details && e.details.phase) this.details.push({ message: `current phase: ${e.details.phase}` });
  }
}

let onUnauthenticated = () => {};
/** Called when the server refuses the token (401). */
export function whenUnauthenticated(fn) {
  onUnauthenticated = fn;
}

/** `path` relative to `/api/v1/`; `query` values may be arrays (repeated parameters). */
export async function api(method, path, { query, body, signal } = {}) {
  const url = new URL(path, apiBase);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === '') continue;
    for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(item));
  }
  const headers = { Accept: 'application/json' };
  const secret = token();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  const init = { method, headers, signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { error: { message: `cannot reach the server (${e.message})` } });
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, data);
    if (resp.status === 401) onUnauthenticated(err);
    throw err;
  }
  return data;
}

export const get = (path, query, signal) => api('GET', path, { query, signal });
export const post = (path, body) => api('POST', path, { body: body ?? {} });

/** Every page of a cursor-paginated list (bounded: at most `max` items). */
export async function all(path, query = {}, max = 2000) {
  const items = [];
  let cursor;
  do {
    const page = await get(path, { ...query, cursor, limit: 200 });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
