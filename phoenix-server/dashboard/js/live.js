// Live updates over the WebSocket `/api/v1/ws`. Browsers cannot set headers on a
// WebSocket, and a token in the URL would end up in logs, so the token goes as the
// subprotocol `phoenix.bearer.<base64url>` beside `phoenix.v1`, which the server selects
// (see docs/websocket.md). Reconnects with
// the shared backoff (backoff.js: core's `Backoff::default()`, 500 ms doubling to 30 s,
// equal jitter; twice that after a refused credential); after a reconnect or a `lagged` message, listeners get `resync` and re-read
// state over REST.

import { token } from './api.js';
import { delay as backoff } from './backoff.js';

const listeners = new Map(); // type -> Set<fn>
let socket = null;
let attempt = 0; // failures since the last `hello`
let retryTimer = null;
let wanted = false;
let everConnected = false;

function emit(type, msg) {
  for (const fn of listeners.get(type) || []) {
    try {
      fn(msg);
    } catch (e) {
      console.error(e);
    }
  }
  if (type !== '*') emit('*', msg);
}

/** Subscribes to a message type (`experiment.phase_changed`, ..., `resync`, `status`). */
export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type).delete(fn);
}

/** The token as unpadded base64url (subprotocol names allow only token characters). */
function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function status(state) {
  emit('status', { type: 'status', state });
}

export function connect() {
  wanted = true;
  if (socket || !token()) return;
  const url = new URL('../api/v1/ws', document.baseURI);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url, ['phoenix.v1', 'phoenix.bearer.' + base64url(token())]);
  socket = ws;
  status('connecting');
  ws.addEventListener('message', (ev) => {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (msg.type === 'hello') {
      attempt = 0;
      ws.send(JSON.stringify({ type: 'subscribe', topics: ['experiments', 'agents', 'deployments'] }));
      status('live');
      if (everConnected) emit('resync', { type: 'resync' });
      everConnected = true;
    } else if (msg.type === 'lagged') {
      emit('resync', { type: 'resync' });
    } else {
      emit(msg.type, msg);
    }
  });
  ws.addEventListener('close', (ev) => {
    if (socket === ws) socket = null;
    if (!wanted) {
      status('offline');
      return;
    }
    status('retry');
    // 1008 with a refused credential never heals by retrying fast.
    attempt += 1;
    const delay = backoff(attempt) * (ev.code === 1008 ? 2 : 1);
    retryTimer = setTimeout(connect, delay);
  });
}

export function disconnect() {
  wanted = false;
  clearTimeout(retryTimer);
  if (socket) socket.close(1000);
  socket = null;
  everConnected = false;
}
