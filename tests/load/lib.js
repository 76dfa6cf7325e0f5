// Shared helpers of Tessera's k6 load scenarios (tests/load/*.js).
//
// Settings (all optional; scripts/load sets them):
//   WRITE_URL     the write API (commands)           default http://127.0.0.1:8080
//   READ_URL      the read API (GETs)                default WRITE_URL (all-in-one mode)
//   ADMIN_TOKEN   a token with the admin role        (`tessera admin token --user load-admin --role admin`)
//   JWT_SECRET    the deployment's HS256 secret: lets a scenario mint access tokens for
//                 synthetic users instead of registering accounts (argon2 makes
//                 registration cost ~2 password hashes per user)
//   JWT_ISSUER / JWT_AUDIENCE                        default tessera / tessera-api
//   SCALE         multiplies a scenario's sizes and rates (0.01 for a smoke run)
//   SUMMARY_JSON  where handleSummary writes the machine-readable summary
//   MODE          embedded | distributed (recorded in the summary)

import http from 'k6/http';
import { sleep } from 'k6';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { Counter, Rate } from 'k6/metrics';

export const WRITE_URL = (__ENV.WRITE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const READ_URL = (__ENV.READ_URL || WRITE_URL).replace(/\/+$/, '');
export const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || '';
export const SCALE = Number(__ENV.SCALE || '1');
export const PASSWORD = 'load-test-password';

/** An integer setting from the environment. */
export function envInt(name, def) {
    const v = __ENV[name];
    if (v === undefined || v === '') return def;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`);
    return Math.round(n);
}

/** `n` multiplied by SCALE, at least `min`. */
export function scaled(n, min = 1) {
    return Math.max(min, Math.round(n * SCALE));
}

/** A duration setting in seconds, scaled, as k6 wants it ("12s"). */
export function scaledSeconds(seconds, min = 1) {
    return `${Math.max(min, Math.round(seconds * SCALE))}s`;
}

/** A short id, unique enough to keep the runs on one deployment apart. */
export function runId() {
    return `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

export function requireAdmin() {
    if (!ADMIN_TOKEN) throw new Error('ADMIN_TOKEN is not set (tessera admin token --user load-admin --role admin)');
}

// ---------------------------------------------------------------- HTTP

/** Request parameters: bearer token, queue token, a `name` tag for the URL, expected statuses. */
export function params(token, opts = {}) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (opts.queue) headers['X-Queue-Token'] = opts.queue;
    const p = { headers, tags: Object.assign({}, opts.tags || {}) };
    if (opts.name) p.tags.name = opts.name;
    if (opts.expect) p.responseCallback = http.expectedStatuses(...opts.expect);
    if (opts.timeout) p.timeout = opts.timeout;
    return p;
}

function baseOf(method) {
    return method === 'GET' ? READ_URL : WRITE_URL;
}

/** A batch entry for http.batch: GETs go to the read API, the rest to the write API. */
export function req(method, path, body, token, opts = {}) {
    return {
        method,
        url: baseOf(method) + path,
        body: body === undefined || body === null ? null : JSON.stringify(body),
        params: params(token, opts),
    };
}

/** Parses a response body; null when it is not JSON. */
export function json(res) {
    try {
        return res.json();
    } catch (_) {
        return null;
    }
}

/** One call: `{status, body, res}`. */
export function call(method, path, body, token, opts = {}) {
    const r = req(method, path, body, token, opts);
    const res = http.request(r.method, r.url, r.body, r.params);
    return { status: res.status, body: json(res), res };
}

export const get = (path, token, opts) => call('GET', path, null, token, opts);
export const post = (path, body, token, opts) => call('POST', path, body, token, opts);

/** `body.error.code` of an error answer. */
export function errorCode(body) {
    return (body && body.error && body.error.code) || '';
}

/** Asserts a status during setup, with the answer in the message. */
export function must(answer, status, what) {
    if (answer.status !== status) {
        throw new Error(`${what}: expected ${status}, got ${answer.status}: ${answer.res.body}`);
    }
    return answer.body;
}

/** http.batch in chunks of `size` (k6 sends one chunk's requests in parallel). */
export function batched(requests, size = 100) {
    const out = [];
    for (let i = 0; i < requests.length; i += size) {
        const chunk = http.batch(requests.slice(i, i + size));
        for (const res of chunk) out.push(res);
    }
    return out;
}

// ---------------------------------------------------------------- users

function b64url(s) {
    return encoding.b64encode(s, 'rawurl');
}

/** An HS256 access token for `userId`, as the server would issue it (needs JWT_SECRET). */
export function mintToken(userId, role = 'user', ttlSeconds = 4 * 3600) {
    const secret = __ENV.JWT_SECRET;
    if (!secret) throw new Error('JWT_SECRET is not set');
    const now = Math.floor(Date.now() / 1000);
    const claims = {
        sub: userId,
        role,
        iss: __ENV.JWT_ISSUER || 'tessera',
        aud: __ENV.JWT_AUDIENCE || 'tessera-api',
        iat: now,
        exp: now + ttlSeconds,
        jti: `${userId}-${now}-${Math.floor(Math.random() * 1e9)}`,
    };
    const data = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
    return `${data}.${crypto.hmac('sha256', secret, data, 'base64rawurl')}`;
}

export function canMint() {
    return !!__ENV.JWT_SECRET;
}

/**
 * Registers accounts `${prefix}-${i}@load.test` for i in [from, to) and logs
 * them in, `parallel` at a time: [{id, email, token}].
 */
export function registerAccounts(prefix, from, to, parallel = 16) {
    const emails = [];
    for (let i = from; i < to; i++) emails.push(`${prefix}-${i}@load.test`);
    const ids = batched(
        emails.map((email, k) =>
            req('POST', '/v1/accounts', { email, password: PASSWORD, nickname: `u${from + k}` }, null, {
                name: 'POST /v1/accounts',
            }),
        ),
        parallel,
    );
    const tokens = batched(
        emails.map((email) =>
            req('POST', '/v1/auth/token', { email, password: PASSWORD }, null, { name: 'POST /v1/auth/token' }),
        ),
        parallel,
    );
    return emails.map((email, k) => {
        if (ids[k].status !== 201) throw new Error(`register ${email}: ${ids[k].status} ${ids[k].body}`);
        if (tokens[k].status !== 200) throw new Error(`login ${email}: ${tokens[k].status} ${tokens[k].body}`);
        return { id: json(ids[k]).account_id, email, token: json(tokens[k]).access_token };
    });
}

/**
 * Accounts `${prefix}-${i}@load.test` for i in [from, to), each charged
 * `amount` points (key `seed`): [{id, email, token}]. Tokens are minted
 * when JWT_SECRET is known (one password hash per account), else logged in.
 */
export function fundedAccounts(prefix, from, to, amount, parallel = 16) {
    let accounts;
    if (canMint()) {
        const emails = [];
        for (let i = from; i < to; i++) emails.push(`${prefix}-${i}@load.test`);
        const made = batched(
            emails.map((email, k) =>
                req('POST', '/v1/accounts', { email, password: PASSWORD, nickname: `u${from + k}` }, null, {
                    name: 'POST /v1/accounts',
                }),
            ),
            parallel,
        );
        accounts = emails.map((email, k) => {
            if (made[k].status !== 201) throw new Error(`register ${email}: ${made[k].status} ${made[k].body}`);
            const id = json(made[k]).account_id;
            return { id, email, token: mintToken(id) };
        });
    } else {
        accounts = registerAccounts(prefix, from, to, parallel);
    }
    const charged = batched(
        accounts.map((a) =>
            req('POST', '/v1/accounts/me/charge', { amount, idempotency_key: 'seed' }, a.token, {
                name: 'POST /v1/accounts/me/charge',
            }),
        ),
        parallel,
    );
    charged.forEach((r, k) => {
        if (r.status !== 200) throw new Error(`charge ${accounts[k].email}: ${r.status} ${r.body}`);
    });
    return accounts;
}

/**
 * Users number [from, to) of a run: distinct synthetic user ids with minted
 * tokens when JWT_SECRET is known (USER_MODE=mint, the default then), else
 * registered accounts (USER_MODE=register).
 */
export function users(prefix, from, to) {
    const mode = __ENV.USER_MODE || (canMint() ? 'mint' : 'register');
    if (mode === 'mint') {
        const out = [];
        for (let i = from; i < to; i++) {
            const id = `${prefix}-${i}`;
            out.push({ id, token: mintToken(id) });
        }
        return out;
    }
    return registerAccounts(prefix, from, to);
}

// ---------------------------------------------------------------- waiting

/** Sleeps until the epoch time `at` (ms). */
export function sleepUntil(at) {
    const ms = at - Date.now();
    if (ms > 0) sleep(ms / 1000);
}

/**
 * Calls `probe()` until it answers something truthy or `timeoutSeconds` pass;
 * answers the last value (falsy at the deadline).
 */
export function waitUntil(probe, timeoutSeconds = 30, intervalSeconds = 0.2) {
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (;;) {
        const v = probe();
        if (v || Date.now() >= deadline) return v;
        sleep(intervalSeconds);
    }
}

/**
 * Reads a document until `accept(body)` holds, with `?min_version=` when
 * given (the server then waits for the projection itself), until the
 * deadline: the last answer, with `ok`.
 */
export function readUntil(path, token, accept, { minVersion, timeout = 60, opts = {} } = {}) {
    let url = path;
    if (minVersion !== undefined && minVersion !== null) {
        url += (path.includes('?') ? '&' : '?') + `min_version=${minVersion}`;
    }
    let last = null;
    const ok = waitUntil(() => {
        last = get(url, token, opts);
        return last.status === 200 && accept(last.body, last);
    }, timeout);
    return { ok: !!ok, answer: last };
}

/** Every page of a paginated list (limit 100). */
export function allPages(path, token, opts = {}) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < 10000; page++) {
        const sep = path.includes('?') ? '&' : '?';
        const url = `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const a = get(url, token, opts);
        if (a.status !== 200) throw new Error(`GET ${url}: ${a.status} ${a.res.body}`);
        for (const it of a.body.items) items.push(it);
        cursor = a.body.next_cursor;
        if (!cursor) break;
    }
    return items;
}

/** Every event of one aggregate (or type) in the event log, by the admin audit view. */
export function adminEvents(aggregateType, aggregateId) {
    requireAdmin();
    const items = [];
    let cursor = null;
    for (let page = 0; page < 100000; page++) {
        let url = `/v1/admin/events?limit=1000&aggregate_type=${encodeURIComponent(aggregateType)}`;
        if (aggregateId) url += `&aggregate_id=${encodeURIComponent(aggregateId)}`;
        if (cursor) url += `&cursor=${encodeURIComponent(cursor)}`;
        const a = get(url, ADMIN_TOKEN, { name: 'GET /v1/admin/events' });
        if (a.status !== 200) throw new Error(`GET ${url}: ${a.status} ${a.res.body}`);
        for (const it of a.body.items) items.push(it);
        cursor = a.body.next_cursor;
        if (!cursor) break;
    }
    return items;
}

// ---------------------------------------------------------------- concerts and the queue

/** A concert with schedules [{starts_at, seats: [{seat_no, price}]}]: {concertId, scheduleIds}. */
export function createConcert(name, schedules) {
    requireAdmin();
    const c = must(post('/v1/concerts', { name }, ADMIN_TOKEN), 201, 'create a concert');
    const scheduleIds = [];
    const answers = batched(
        schedules.map((s) => req('POST', `/v1/concerts/${c.concert_id}/schedules`, s, ADMIN_TOKEN)),
        8,
    );
    answers.forEach((res, i) => {
        if (res.status !== 201) throw new Error(`create schedule ${i}: ${res.status} ${res.body}`);
        scheduleIds.push(json(res).schedule_id);
    });
    return { concertId: c.concert_id, scheduleIds };
}

/** A seat layout of `n` seats at `price`. */
export function seats(n, price) {
    const out = [];
    for (let i = 1; i <= n; i++) out.push({ seat_no: i, price });
    return out;
}

/** Queue tokens of many users for a concert, `parallel` at a time: [{token, position, status}]. */
export function queueTokens(userTokens, concertId, parallel = 100) {
    return batched(
        userTokens.map((t) =>
            req('POST', '/v1/queue/tokens', { concert_id: concertId }, t, { name: 'POST /v1/queue/tokens' }),
        ),
        parallel,
    ).map((res) => {
        if (res.status !== 201) throw new Error(`queue token: ${res.status} ${res.body}`);
        return json(res);
    });
}

/** The status of one queue token (`{status, position, ahead, ...}`), or null. */
export function queueStatus(userToken, queueToken) {
    const a = get('/v1/queue/status', userToken, { queue: queueToken, name: 'GET /v1/queue/status' });
    return a.status === 200 ? a.body : null;
}

/** Waits until a queue token is active; true when it is. */
export function waitActive(userToken, queueToken, timeoutSeconds = 60) {
    return !!waitUntil(() => {
        const s = queueStatus(userToken, queueToken);
        return s && s.status === 'active';
    }, timeoutSeconds, 0.1);
}

// ---------------------------------------------------------------- correctness

// Every scenario ends with a correctness check (in teardown). Each named
// invariant records one sample of `invariant_ok{check:<name>}`; the
// thresholds need every named invariant to have been checked and to hold,
// so a teardown that throws or never runs fails the run too. Counters whose
// names start with `invariant_` carry the checks made on the answers during
// the run (e.g. `invariant_holds_won` must count exactly 1).
export const invariantOk = new Rate('invariant_ok');
export const invariantChecks = new Counter('invariant_checks');
const checked = {};

/** Thresholds for the named end-of-run invariants. */
export function invariantThresholds(names) {
    const t = { invariant_ok: ['rate==1'], invariant_checks: [`count==${names.length}`] };
    for (const n of names) t[`invariant_ok{check:${n}}`] = ['rate==1'];
    return t;
}

/** Records one invariant's verdict (once per name) and logs it. */
export function verify(name, ok, detail) {
    const line = `invariant ${name}: ${ok ? 'holds' : 'VIOLATED'}${detail ? ` — ${detail}` : ''}`;
    if (ok) console.log(line);
    else console.error(line);
    invariantOk.add(!!ok, { check: name });
    if (!checked[name]) {
        checked[name] = true;
        invariantChecks.add(1);
    }
    return !!ok;
}

/** Runs `fn`; an exception counts as the named invariant failing. */
export function verifying(name, fn) {
    try {
        return fn();
    } catch (e) {
        return verify(name, false, `check threw: ${e}`);
    }
}

// ---------------------------------------------------------------- summary

function metricValues(m) {
    return m ? m.values : null;
}

function round(x, digits = 2) {
    if (typeof x !== 'number' || !Number.isFinite(x)) return x;
    const f = 10 ** digits;
    return Math.round(x * f) / f;
}

/**
 * A handleSummary for a scenario: writes SUMMARY_JSON (rps, latency
 * percentiles, errors, thresholds, the correctness verdict, the custom
 * metrics and the scenario's own `figures`, computed by `extra(metrics)`)
 * and prints a short text summary.
 */
export function summary(scenario, describe, extra) {
    return function handleSummary(data) {
        const m = data.metrics;
        const dur = metricValues(m.http_req_duration) || {};
        const reqs = metricValues(m.http_reqs) || { count: 0, rate: 0 };
        const failed = metricValues(m.http_req_failed) || { passes: 0, fails: 0, rate: 0 };
        const thresholds = {};
        const correctness = {};
        let allOk = true;
        let correct = true;
        for (const [name, metric] of Object.entries(m)) {
            if (!metric.thresholds) continue;
            for (const [expr, r] of Object.entries(metric.thresholds)) {
                const entry = { metric: name, threshold: expr, ok: r.ok, values: metric.values };
                if (name.startsWith('invariant')) {
                    correctness[`${name} ${expr}`] = entry;
                    if (!r.ok) correct = false;
                } else {
                    thresholds[`${name} ${expr}`] = entry;
                }
                if (!r.ok) allOk = false;
            }
        }
        const custom = {};
        const builtin = /^(http_|iteration|iterations|data_|vus|checks|group_duration|dropped_iterations)/;
        for (const [name, metric] of Object.entries(m)) {
            if (!builtin.test(name) && !name.includes('{')) custom[name] = metric.values;
        }
        const out = {
            scenario,
            description: describe || '',
            mode: __ENV.MODE || 'unknown',
            scale: SCALE,
            write_url: WRITE_URL,
            read_url: READ_URL,
            started_at: data.state && data.state.testRunDurationMs
                ? new Date(Date.now() - data.state.testRunDurationMs).toISOString() : null,
            duration_s: data.state ? round(data.state.testRunDurationMs / 1000) : null,
            requests: reqs.count,
            rps: round(reqs.rate),
            latency_ms: {
                avg: round(dur.avg), p50: round(dur.med), p90: round(dur['p(90)']),
                p95: round(dur['p(95)']), p99: round(dur['p(99)']), max: round(dur.max),
            },
            errors: { count: failed.passes, rate: round(failed.rate, 5) },
            iterations: metricValues(m.iterations),
            dropped_iterations: metricValues(m.dropped_iterations),
            vus_max: (metricValues(m.vus_max) || {}).max,
            correctness: { passed: correct && Object.keys(correctness).length > 0, checks: correctness },
            thresholds_passed: allOk,
            thresholds,
            custom_metrics: custom,
            figures: extra ? extra(m) : {},
        };
        const lines = [
            `${scenario} (${out.mode}, scale ${SCALE}): ${out.requests} requests in ${out.duration_s} s, ${out.rps} req/s`,
            `  latency ms: p50 ${out.latency_ms.p50}  p95 ${out.latency_ms.p95}  p99 ${out.latency_ms.p99}  max ${out.latency_ms.max}`,
            `  unexpected answers: ${out.errors.count} (${round(out.errors.rate * 100, 3)} %)`,
        ];
        for (const [k, v] of Object.entries(out.figures)) lines.push(`  ${k}: ${typeof v === 'number' ? round(v) : v}`);
        for (const [k, v] of Object.entries(custom)) {
            const shown = Object.entries(v).map(([a, b]) => `${a}=${round(b)}`).join(' ');
            lines.push(`  ${k}: ${shown}`);
        }
        for (const [k, v] of Object.entries(thresholds)) lines.push(`  threshold ${k}: ${v.ok ? 'ok' : 'FAILED'}`);
        for (const [k, v] of Object.entries(correctness)) lines.push(`  correctness ${k}: ${v.ok ? 'ok' : 'FAILED'}`);
        lines.push(`  correctness: ${out.correctness.passed ? 'PASSED' : 'FAILED'}`);
        const files = { stdout: lines.join('\n') + '\n' };
        if (__ENV.SUMMARY_JSON) files[__ENV.SUMMARY_JSON] = JSON.stringify(out, null, 2) + '\n';
        return files;
    };
}

/** Options every scenario shares: percentiles for the summary, no per-URL series blow-up. */
export const baseOptions = {
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
    setupTimeout: __ENV.SETUP_TIMEOUT || '600s',
    teardownTimeout: __ENV.TEARDOWN_TIMEOUT || '300s',
    discardResponseBodies: false,
    batch: 1000,
    batchPerHost: 1000,
    noConnectionReuse: false,
};
