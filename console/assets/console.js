// Tessera console: a page over the admin routes. No framework, no build
// step. Every value that comes from the server is written with
// textContent (never as markup), so an event payload cannot inject HTML.
'use strict';

const TOKEN_KEY = 'tessera.console.token';
const AGGREGATE_TYPES = ['account', 'guild', 'post', 'concert', 'schedule', 'coupon', 'product', 'order', 'message', 'dm_room'];
const SVG = 'http://www.w3.org/2000/svg';

const $ = (sel) => document.querySelector(sel);

// ---------------------------------------------------------------- helpers

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

function short(id) {
  const s = String(id);
  return s.length > 13 ? s.slice(0, 8) + '…' + s.slice(-4) : s;
}

function compact(value) {
  const text = JSON.stringify(value);
  return text === undefined ? '' : text;
}

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------- session

let token = sessionStorage.getItem(TOKEN_KEY);

function claims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

async function api(path, options = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method: options.method || 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await res.json().catch(() => null);
  if (res.status === 401 && !options.signingIn) {
    signOut('Your session is over (the server answered 401): sign in again.');
    throw new ApiFailure(401, 'unauthorized', 'signed out');
  }
  if (!res.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiFailure(res.status, err.code, err.message);
  }
  return body;
}

function flash(message) {
  const f = $('#flash');
  f.textContent = message;
  f.hidden = !message;
}

function failed(err) {
  if (err instanceof ApiFailure && err.status === 401) return;
  flash(err instanceof ApiFailure ? `${err.status} ${err.code || ''}: ${err.message}` : String(err));
}

function signOut(why) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  stopTimers();
  $('#nav').hidden = true;
  $('#who').hidden = true;
  showSignin(why);
}

function showSignin(why) {
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-signin';
  flash('');
  const e = $('#signin-error');
  e.textContent = why || '';
  e.hidden = !why;
}

/** Tries `candidate` on an admin route; keeps it when it is an admin's. */
async function adopt(candidate) {
  const previous = token;
  token = candidate;
  try {
    await api('/v1/admin/projections', { signingIn: true });
  } catch (err) {
    token = previous;
    if (err.status === 401) throw new Error('That token was refused (expired, or signed with another secret).');
    if (err.status === 403) throw new Error('That token has no admin role: the console needs one.');
    throw err;
  }
  sessionStorage.setItem(TOKEN_KEY, candidate);
  signedIn();
}

function signedIn() {
  $('#nav').hidden = false;
  $('#who').hidden = false;
  const c = claims(token);
  $('#who-name').textContent = `${c.sub ? short(c.sub) : 'admin'} · ${c.role || 'admin'}`;
  if (!location.hash || location.hash === '#/' || location.hash === '#/signin') location.hash = '#/events';
  route();
}

/** Event type names for the filter's suggestions, from the event contract. */
async function suggestEventTypes() {
  try {
    const doc = await (await fetch('/asyncapi.json')).json();
    const names = new Set(Object.values((doc.components || {}).messages || {}).map((m) => m.name));
    const list = clear($('#event-types'));
    for (const n of [...names].sort()) list.append(el('option', { value: n }));
  } catch {
    // suggestions only
  }
}

async function offerPassword() {
  // the password sign-in exists where the process serves the write API
  try {
    const doc = await (await fetch('/openapi.json')).json();
    $('#password-form').hidden = !(doc.paths && doc.paths['/v1/auth/token']);
  } catch {
    $('#password-form').hidden = true;
  }
}

// ---------------------------------------------------------------- routing

let timers = [];
function every(ms, fn) {
  timers.push(setInterval(fn, ms));
}
function stopTimers() {
  for (const t of timers) clearInterval(t);
  timers = [];
}

const views = {
  events: showEvents,
  aggregate: showAggregate,
  projections: showProjections,
  letters: showLetters,
  webhooks: showWebhooks,
  tail: showTail,
};

function route() {
  if (!token) return showSignin();
  stopTimers();
  flash('');
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const name = views[parts[0]] ? parts[0] : 'events';
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === name);
  views[name](parts.slice(1)).catch(failed);
  refreshLetterCount();
}

async function refreshLetterCount() {
  try {
    const letters = await api('/v1/admin/dead-letters');
    const badge = $('#letter-count');
    badge.textContent = String(letters.items.length);
    badge.hidden = letters.items.length === 0;
  } catch {
    // the badge is a hint; the view itself reports failures
  }
}

// ---------------------------------------------------------------- json

/** `value` as coloured text; parts that differ from `before` are marked. */
function renderJson(value, before, compare, indent = '') {
  const frag = document.createDocumentFragment();
  const changed = compare && JSON.stringify(value) !== JSON.stringify(before);
  if (value !== null && typeof value === 'object') {
    const isArray = Array.isArray(value);
    const keys = isArray ? value.map((_, i) => i) : Object.keys(value).sort();
    if (keys.length === 0) {
      frag.append(el('span', { class: changed ? 'j-changed' : '' }, isArray ? '[]' : '{}'));
      return frag;
    }
    frag.append(isArray ? '[\n' : '{\n');
    keys.forEach((k, i) => {
      frag.append(indent + '  ');
      if (!isArray) frag.append(el('span', { class: 'j-key' }, JSON.stringify(String(k))), ': ');
      const prev = before !== null && typeof before === 'object' ? before[k] : undefined;
      frag.append(renderJson(value[k], prev, compare, indent + '  '));
      frag.append(i < keys.length - 1 ? ',\n' : '\n');
    });
    frag.append(indent + (isArray ? ']' : '}'));
    return frag;
  }
  const kind = typeof value === 'string' ? 'j-str' : typeof value === 'number' ? 'j-num' : 'j-lit';
  frag.append(el('span', { class: kind + (changed ? ' j-changed' : '') }, JSON.stringify(value)));
  return frag;
}

function showJson(pre, value, before, compare) {
  clear(pre).append(renderJson(value, before, compare));
  pre.dataset.json = JSON.stringify(value);
}

// ---------------------------------------------------------------- events

function aggregateLink(type, id) {
  return el('a', { class: 'agg', href: `#/aggregate/${encodeURIComponent(type)}/${encodeURIComponent(id)}`, title: `${type} ${id}` },
    `${type}:${short(id)}`);
}

function eventRow(e, fresh) {
  const payload = el('td', { class: 'payload', title: 'click to expand' }, compact(e.payload));
  payload.addEventListener('click', () => {
    payload.classList.toggle('open');
    payload.textContent = payload.classList.contains('open') ? JSON.stringify(e.payload, null, 2) : compact(e.payload);
  });
  return el('tr', { class: fresh ? 'fresh' : '', 'data-position': e.global_position },
    el('td', { class: 'num' }, e.global_position),
    el('td', {}, time(e.recorded_at)),
    el('td', {}, aggregateLink(e.aggregate_type, e.aggregate_id)),
    el('td', { class: 'num' }, e.sequence),
    el('td', {}, el('span', { class: 'tag' }, e.event_type)),
    payload);
}

let nextCursor = null;

function eventQuery() {
  const q = new URLSearchParams();
  const set = (k, v) => { if (v !== '' && v !== null && v !== undefined) q.set(k, v); };
  set('aggregate_type', $('#ev-aggregate-type').value);
  set('aggregate_id', $('#ev-aggregate-id').value.trim());
  set('event_type', $('#ev-event-type').value.trim());
  const iso = (input) => (input.value ? new Date(input.value).toISOString() : '');
  set('since', iso($('#ev-since')));
  set('until', iso($('#ev-until')));
  set('after_position', $('#ev-after').value);
  set('limit', $('#ev-limit').value);
  return q;
}

async function loadEvents(cursor) {
  const q = eventQuery();
  if (cursor) {
    q.delete('after_position');
    q.set('cursor', cursor);
  }
  const page = await api(`/v1/admin/events?${q}`);
  const body = $('#ev-table tbody');
  if (!cursor) clear(body);
  for (const e of page.items) body.append(eventRow(e, false));
  nextCursor = page.next_cursor;
  $('#ev-next').hidden = !nextCursor;
  const shown = body.children.length;
  $('#ev-summary').textContent = shown === 0 ? 'No event matches.' : `${shown} event${shown === 1 ? '' : 's'} shown, oldest first${nextCursor ? '; more on the next page' : ''}.`;
}

async function showEvents() {
  await loadEvents(null);
}

// ---------------------------------------------------------------- aggregate

const agg = { type: null, id: null, events: [], states: new Map(), current: 0 };

async function showAggregate(parts) {
  const [type, id, seq] = parts;
  if (!type || !id) {
    $('#agg-body').hidden = true;
    return;
  }
  $('#agg-type').value = type;
  $('#agg-id').value = id;
  if (agg.type !== type || agg.id !== id) await openAggregate(type, id);
  const last = agg.events.length;
  const wanted = Math.min(Math.max(parseInt(seq, 10) || last, 1), last);
  await step(wanted);
}

async function openAggregate(type, id) {
  const events = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ aggregate_type: type, aggregate_id: id, limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/v1/admin/events?${q}`);
    events.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  events.sort((a, b) => a.sequence - b.sequence);
  Object.assign(agg, { type, id, events, states: new Map(), current: 0 });
  if (events.length === 0) {
    $('#agg-body').hidden = true;
    throw new ApiFailure(404, 'not_found', `no event of ${type} ${id} in the log`);
  }
  $('#agg-body').hidden = false;
  $('#state-last').textContent = String(events.length);
  const range = $('#step-range');
  range.max = String(events.length);
  const list = clear($('#agg-events'));
  for (const e of events) {
    list.append(el('li', { 'data-seq': e.sequence, onclick: () => go(e.sequence) },
      el('span', { class: 'seq' }, `#${e.sequence}`),
      el('span', { class: 'type' }, e.event_type),
      el('span', { class: 'time' }, time(e.recorded_at))));
  }
}

async function stateAfter(seq) {
  if (!agg.states.has(seq)) {
    const path = `/v1/admin/aggregates/${encodeURIComponent(agg.type)}/${encodeURIComponent(agg.id)}/state?sequence=${seq}`;
    agg.states.set(seq, await api(path));
  }
  return agg.states.get(seq);
}

function go(seq) {
  location.hash = `#/aggregate/${encodeURIComponent(agg.type)}/${encodeURIComponent(agg.id)}/${seq}`;
}

async function step(seq) {
  const now = await stateAfter(seq);
  const before = seq > 1 ? await stateAfter(seq - 1) : null;
  agg.current = seq;
  $('#state-seq').textContent = String(seq);
  $('#step-range').value = String(seq);
  $('#step-first').disabled = $('#step-prev').disabled = seq <= 1;
  $('#step-last').disabled = $('#step-next').disabled = seq >= agg.events.length;
  for (const li of document.querySelectorAll('#agg-events li')) {
    const n = Number(li.dataset.seq);
    li.classList.toggle('current', n === seq);
    li.classList.toggle('future', n > seq);
  }
  const current = document.querySelector('#agg-events li.current');
  if (current) current.scrollIntoView({ block: 'nearest' });
  const e = agg.events[seq - 1];
  $('#step-event-type').textContent = now.event.event_type;
  const meta = clear($('#step-meta'));
  const row = (k, v) => meta.append(el('dt', {}, k), el('dd', {}, v));
  row('sequence', `${seq} of ${now.last_sequence}`);
  row('position', now.event.global_position);
  row('recorded', time(now.event.recorded_at));
  row('version', now.event.event_version);
  if (e && e.metadata) {
    row('actor', e.metadata.actor || '–');
    row('request', e.metadata.request_id || '–');
  }
  showJson($('#step-payload'), now.event.payload, null, false);
  showJson($('#state-json'), now.state, before ? before.state : null, before !== null);
}

// ---------------------------------------------------------------- charts

function palette(i, n) {
  return `hsl(${Math.round((i * 360) / Math.max(n, 1) + 220) % 360}, 65%, 48%)`;
}

/** A line chart of `series` ([{name, color, points: [[ms, value]]}]). */
function lineChart(host, series, unit) {
  const W = 640, H = 220, L = 48, R = 12, T = 10, B = 24;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': unit });
  const all = series.flatMap((s) => s.points);
  clear(host).append(root);
  if (all.length < 2) {
    const t = svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' });
    t.textContent = 'collecting samples…';
    root.append(t);
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const top = Math.max(1, ...all.map((p) => p[1])) * 1.1;
  const x = (t) => L + ((t - t0) / Math.max(t1 - t0, 1)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    root.append(svg('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    const label = svg('text', { x: L - 6, y: y(v) + 3, 'text-anchor': 'end' });
    label.textContent = v >= 100 ? Math.round(v).toString() : v.toFixed(v >= 10 ? 0 : 1);
    root.append(label);
  }
  root.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const minutes = (t1 - t0) / 60000;
  for (const [t, anchor] of [[t0, 'start'], [t1, 'end']]) {
    const label = svg('text', { x: x(t), y: H - 6, 'text-anchor': anchor });
    label.textContent = t === t1 ? 'now' : `${minutes.toFixed(minutes < 2 ? 1 : 0)} min ago`;
    root.append(label);
  }
  for (const s of series) {
    if (s.points.length < 2) continue;
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    const path = svg('path', { class: s.dashed ? 'series dashed' : 'series', d, stroke: s.color });
    const title = svg('title', {});
    title.textContent = s.name;
    path.append(title);
    root.append(path);
  }
}

function legend(host, series) {
  clear(host);
  for (const s of series) {
    const chip = svg('svg', { viewBox: '0 0 10 10' });
    chip.append(svg('rect', { width: 10, height: 10, rx: 2, fill: s.color }));
    host.append(el('span', {}, chip, s.label || s.name));
  }
}

// ---------------------------------------------------------------- projections

async function drawProjections() {
  const [rows, pulse] = await Promise.all([api('/v1/admin/projections'), api('/v1/admin/projections/history')]);
  const body = clear($('#proj-table tbody'));
  for (const p of rows) {
    body.append(el('tr', { 'data-projection': p.name },
      el('td', {}, el('strong', {}, p.name)),
      el('td', { class: 'mono' }, p.collection),
      el('td', { class: 'num' }, p.last_position),
      el('td', { class: 'num' + (p.lag > 0 ? ' lag-bad' : '') }, p.lag),
      el('td', { class: 'num' }, p.dead_letters > 0 ? el('a', { href: '#/letters' }, p.dead_letters) : '0'),
      el('td', {}, time(p.updated_at))));
  }
  const samples = pulse.samples;
  const names = rows.map((p) => p.name);
  const lag = names.map((name, i) => ({
    name,
    color: palette(i, names.length),
    points: samples.map((s) => [Date.parse(s.at), (s.projections.find((p) => p.name === name) || { lag: 0 }).lag]),
  }));
  lineChart($('#lag-chart'), lag, 'lag in events');
  const peak = (s) => Math.max(0, ...s.points.map((p) => p[1]));
  legend($('#lag-legend'), lag.map((s) => ({ ...s, label: `${s.name} (max ${peak(s)})` })));
  const rate = (pick) => samples.slice(1).map((s, i) => {
    const prev = samples[i];
    const dt = (Date.parse(s.at) - Date.parse(prev.at)) / 1000;
    return [Date.parse(s.at), dt > 0 ? Math.max(0, pick(s) - pick(prev)) / dt : 0];
  });
  const applied = (s) => s.projections.reduce((sum, p) => sum + p.last_position, 0) / Math.max(s.projections.length, 1);
  const rates = [
    { name: 'appended to the log', color: '#3b5bdb', dashed: true, points: rate((s) => s.head_position) },
    { name: 'applied (mean of the projections)', color: '#2b8a3e', points: rate(applied) },
  ];
  lineChart($('#rate-chart'), rates, 'events per second');
  legend($('#rate-legend'), rates);
}

async function showProjections() {
  await drawProjections();
  every(2000, () => drawProjections().catch(failed));
}

// ---------------------------------------------------------------- dead letters

async function drawLetters() {
  const letters = await api('/v1/admin/dead-letters');
  const body = clear($('#letters-table tbody'));
  $('#letters-empty').hidden = letters.items.length > 0;
  for (const l of letters.items) {
    const retry = el('button', { class: 'primary', 'data-action': 'retry', onclick: () => act(l, 'retry') }, 'Retry');
    const discard = el('button', { class: 'danger', 'data-action': 'discard', onclick: () => act(l, 'discard') }, 'Discard');
    body.append(el('tr', { 'data-letter-id': l.letter_id },
      el('td', {}, el('strong', {}, l.projection)),
      el('td', {}, aggregateLink(l.aggregate_type, l.aggregate_id)),
      el('td', { class: 'num' }, l.sequence),
      el('td', {}, l.event_type ? el('span', { class: 'tag' }, l.event_type) : el('em', {}, 'not an event')),
      el('td', { class: 'error' }, l.error),
      el('td', { class: 'num' }, l.attempts),
      el('td', {}, time(l.created_at)),
      el('td', {}, el('div', { class: 'actions' }, retry, discard))));
  }
  const badge = $('#letter-count');
  badge.textContent = String(letters.items.length);
  badge.hidden = letters.items.length === 0;
}

async function act(letter, action) {
  const result = $('#letters-result');
  try {
    if (action === 'discard') {
      if (!confirm(`Discard the letter of ${letter.aggregate_type} ${letter.aggregate_id} #${letter.sequence}? Its event stays in the log, unapplied.`)) return;
      await api(`/v1/admin/dead-letters/${encodeURIComponent(letter.letter_id)}`, { method: 'DELETE' });
      result.textContent = `Discarded ${letter.projection} ${letter.aggregate_type}:${letter.aggregate_id} #${letter.sequence}.`;
      result.className = 'notice';
    } else {
      const r = await api(`/v1/admin/dead-letters/${encodeURIComponent(letter.letter_id)}/retry`, { method: 'POST' });
      const still = r.still_failing.map((f) => `${f.letter_id}: ${f.error}`).join('; ');
      result.textContent = `Retried ${r.retried.length} letter${r.retried.length === 1 ? '' : 's'}` +
        (r.repaired_from_log ? `, ${r.repaired_from_log} missed event(s) applied from the log` : '') +
        (still ? `. Still failing: ${still}` : '.');
      result.className = still ? 'notice bad' : 'notice';
    }
    result.hidden = false;
  } catch (err) {
    failed(err);
  }
  await drawLetters().catch(failed);
}

async function showLetters() {
  $('#letters-result').hidden = true;
  await drawLetters();
  every(3000, () => drawLetters().catch(failed));
}

// ---------------------------------------------------------------- webhooks

async function showWebhooks() {
  const hooks = await api('/v1/admin/webhooks');
  const body = clear($('#hooks-table tbody'));
  $('#hooks-empty').hidden = hooks.length > 0;
  $('#deliveries').hidden = true;
  for (const h of hooks) {
    body.append(el('tr', { 'data-webhook-id': h.webhook_id },
      el('td', { class: 'mono' }, h.url),
      el('td', {}, h.event_types.map((t) => el('span', { class: 'tag' }, t)).flatMap((t) => [t, ' '])),
      el('td', { class: 'num' }, h.delivered),
      el('td', { class: 'num' + (h.failed ? ' lag-bad' : '') }, h.failed),
      el('td', { class: 'num' }, h.pending),
      el('td', { class: 'error' }, h.last_error || ''),
      el('td', {}, el('button', { onclick: () => deliveries(h).catch(failed) }, 'Deliveries'))));
  }
}

async function deliveries(hook) {
  const page = await api(`/v1/admin/webhooks/${encodeURIComponent(hook.webhook_id)}/deliveries?limit=100`);
  $('#deliveries-url').textContent = hook.url;
  const body = clear($('#deliveries-table tbody'));
  for (const d of page.items) {
    body.append(el('tr', {},
      el('td', { class: 'num' }, d.global_position),
      el('td', {}, time(d.recorded_at)),
      el('td', {}, el('span', { class: 'tag' }, d.event_type)),
      el('td', {}, aggregateLink(d.aggregate_type, d.aggregate_id)),
      el('td', { class: `status-${d.status}` }, d.status + (d.attempts ? ` (${d.attempts} attempts)` : '')),
      el('td', { class: 'error' }, d.error || '')));
  }
  if (page.items.length === 0) body.append(el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'No matching event since it was registered.')));
  $('#deliveries').hidden = false;
}

// ---------------------------------------------------------------- live tail

const tail = { after: null, paused: false, busy: false };

async function poll() {
  if (tail.paused || tail.busy) return;
  tail.busy = true;
  try {
    for (;;) {
      const page = await api(`/v1/admin/events?after_position=${tail.after}&limit=200`);
      const body = $('#tail-table tbody');
      for (const e of page.items) {
        body.prepend(eventRow(e, true));
        tail.after = Math.max(tail.after, e.global_position);
      }
      while (body.children.length > 500) body.lastChild.remove();
      $('#tail-empty').hidden = body.children.length > 0;
      if (!page.next_cursor) break;
    }
  } finally {
    tail.busy = false;
  }
}

async function showTail() {
  if (tail.after === null) {
    const pulse = await api('/v1/admin/projections/history');
    tail.after = pulse.head_position;
  }
  await poll();
  every(500, () => poll().catch(failed));
}

function togglePause() {
  tail.paused = !tail.paused;
  $('#tail-pause').textContent = tail.paused ? 'Resume' : 'Pause';
  const state = $('#tail-state');
  state.textContent = tail.paused ? 'paused' : 'live';
  state.className = `tag ${tail.paused ? 'paused' : 'live'}`;
}

// ---------------------------------------------------------------- wiring

function init() {
  for (const t of AGGREGATE_TYPES) {
    $('#ev-aggregate-type').append(el('option', { value: t }, t));
    $('#agg-type').append(el('option', { value: t }, t));
  }
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const candidate = $('#token-input').value.trim();
    if (!candidate) return;
    adopt(candidate).catch((err) => showSignin(err.message));
  });
  $('#password-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const answer = await api('/v1/auth/token', {
        method: 'POST',
        signingIn: true,
        body: { email: $('#email-input').value, password: $('#password-input').value },
      });
      await adopt(answer.access_token);
    } catch (err) {
      showSignin(err.status === 401 ? 'Wrong email or password.' : err.message);
    }
  });
  $('#sign-out').addEventListener('click', () => signOut(''));
  $('#events-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    loadEvents(null).catch(failed);
  });
  $('#ev-reset').addEventListener('click', () => {
    $('#events-form').reset();
    loadEvents(null).catch(failed);
  });
  $('#ev-next').addEventListener('click', () => loadEvents(nextCursor).catch(failed));
  $('#agg-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('#agg-id').value.trim();
    if (!id) return;
    agg.type = null; // open afresh: new events may have come
    const target = `#/aggregate/${encodeURIComponent($('#agg-type').value)}/${encodeURIComponent(id)}`;
    if (location.hash === target) route();
    else location.hash = target;
  });
  $('#step-first').addEventListener('click', () => go(1));
  $('#step-prev').addEventListener('click', () => go(Math.max(1, agg.current - 1)));
  $('#step-next').addEventListener('click', () => go(Math.min(agg.events.length, agg.current + 1)));
  $('#step-last').addEventListener('click', () => go(agg.events.length));
  $('#step-range').addEventListener('change', (ev) => go(Number(ev.target.value)));
  $('#tail-pause').addEventListener('click', togglePause);
  window.addEventListener('hashchange', route);
  offerPassword();
  suggestEventTypes();
  if (token) signedIn();
  else showSignin();
}

init();
