// The read path at the highest rate the stack holds (seeds 002 and 004):
// a post with its comments (the `posts` document) and a concert's
// schedules of one month (the calendar's date-range query), half and half,
// under a ramping arrival rate: from 10/s up to RATE/s over RAMP_SECONDS,
// then RATE/s for HOLD_SECONDS. Where the stack stops keeping up, k6
// reports dropped iterations: the rate reached is `rps` in the summary.
//
// Setup: a concert with one schedule a day through 2027 (SCHEDULES days),
// a guild with a forum post carrying COMMENTS comments and 3 reactions;
// waits (with min_version, and a deadline for the lists) until the read
// side has them all.
//
// Correctness: every 200 answer must be the whole document — the post at
// its final version with all its comments, the month with exactly its
// days' schedules in start order (`invariant_reads_wrong` must stay 0); and
// teardown reads both again.
//
// Settings: RATE (2000 × SCALE), RAMP_SECONDS (30), HOLD_SECONDS (30),
// VUS (100, preallocated), MAX_VUS (600), SCHEDULES (365), COMMENTS (50),
// P95_MS (500).

import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import {
    baseOptions, batched, createConcert, envInt, get, invariantThresholds, must, post, readUntil,
    registerAccounts, req, requireAdmin, runId, scaled, seats, summary, verify, verifying,
} from './lib.js';

const RATE = envInt('RATE', scaled(2000));
const RAMP = envInt('RAMP_SECONDS', 30);
const HOLD = envInt('HOLD_SECONDS', 30);
const SCHEDULES = Math.min(365, envInt('SCHEDULES', 365));
const COMMENTS = envInt('COMMENTS', 50);
const EMOJI = ['👍', '🎉', 'crab'];

const wrong = new Counter('invariant_reads_wrong');
const postReads = new Counter('reads_post');
const monthReads = new Counter('reads_month');
const atTarget = new Counter('reads_at_target');
const atTargetMs = new Trend('reads_at_target_ms', true);

const CHECKS = ['documents_intact'];

export const options = Object.assign({}, baseOptions, {
    scenarios: {
        reads: {
            executor: 'ramping-arrival-rate',
            startRate: Math.min(10, RATE),
            timeUnit: '1s',
            preAllocatedVUs: envInt('VUS', 100),
            maxVUs: envInt('MAX_VUS', 600),
            stages: [
                { duration: `${RAMP}s`, target: RATE },
                { duration: `${HOLD}s`, target: RATE },
            ],
        },
    },
    thresholds: Object.assign(invariantThresholds(CHECKS), {
        invariant_reads_wrong: ['count==0'],
        http_req_failed: ['rate<0.01'],
        http_req_duration: [`p(95)<${envInt('P95_MS', 500)}`],
    }),
});

const DAY = 24 * 3600 * 1000;
const YEAR_START = Date.UTC(2027, 0, 1, 19);

/** Days of 2027 month m (0-based) that have a schedule. */
function daysWithSchedules(m) {
    let n = 0;
    for (let d = 0; d < SCHEDULES; d++) if (new Date(YEAR_START + d * DAY).getUTCMonth() === m) n++;
    return n;
}

function monthRange(m) {
    const from = new Date(Date.UTC(2027, m, 1)).toISOString();
    const to = new Date(Date.UTC(2027, m + 1, 1)).toISOString();
    return { from, to };
}

function monthPath(concertId, m) {
    const { from, to } = monthRange(m);
    return `/v1/concerts/${concertId}/schedules?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
}

function monthRight(body, m, expected) {
    if (!body || !Array.isArray(body.items) || body.items.length !== expected) return false;
    const from = Date.UTC(2027, m, 1);
    const to = Date.UTC(2027, m + 1, 1);
    let prev = 0;
    for (const s of body.items) {
        const t = Date.parse(s.starts_at);
        if (!(t >= from && t < to && t >= prev)) return false;
        prev = t;
    }
    return true;
}

function postRight(body, version) {
    return !!body && body.version === version && Array.isArray(body.comments) && body.comments.length === COMMENTS
        && EMOJI.every((e) => body.reactions && body.reactions[e] === 1);
}

export function setup() {
    requireAdmin();
    const run = runId();
    const [author] = registerAccounts(`reader-${run}`, 0, 1);
    const schedules = [];
    for (let d = 0; d < SCHEDULES; d++) {
        schedules.push({ starts_at: new Date(YEAR_START + d * DAY).toISOString().replace('.000Z', 'Z'), seats: seats(20, 50) });
    }
    const { concertId } = createConcert(`reads-${run}`, schedules);
    const gid = must(post('/v1/guilds', { name: `readers ${run}` }, author.token), 201, 'guild').guild_id;
    const forum = must(post(`/v1/guilds/${gid}/channels`, { name: 'forum', kind: 'forum' }, author.token), 201, 'forum').channel_id;
    const pid = must(post(`/v1/channels/${forum}/posts`, { title: 'A long thread', content: 'Read me, many times.' },
        author.token), 201, 'post').post_id;
    // comments one by one (each is a new version of the post)
    for (let c = 0; c < COMMENTS; c++) {
        must(post(`/v1/posts/${pid}/comments`, { content: `comment ${c}: ${'lorem ipsum '.repeat(8)}` }, author.token), 201, 'comment');
    }
    for (const e of EMOJI) {
        const r = batched([req('PUT', `/v1/posts/${pid}/reactions/${encodeURIComponent(e)}`, null, author.token)])[0];
        if (r.status !== 200) throw new Error(`react: ${r.status} ${r.body}`);
    }
    const version = 1 + COMMENTS + EMOJI.length;
    const p = readUntil(`/v1/posts/${pid}`, author.token, (b) => postRight(b, version), { minVersion: version, timeout: 120 });
    if (!p.ok) throw new Error(`the post did not reach version ${version}: ${p.answer.res.body}`);
    const months = [];
    for (let m = 0; m < 12; m++) {
        const n = daysWithSchedules(m);
        if (n === 0) continue;
        months.push({ m, n });
        const r = readUntil(monthPath(concertId, m), author.token, (b) => monthRight(b, m, n), { timeout: 120 });
        if (!r.ok) throw new Error(`month ${m + 1} never showed its ${n} schedules: ${r.answer.res.body}`);
    }
    return { token: author.token, concertId, postId: pid, version, months };
}

export default function (data) {
    const holding = Date.now() - exec.scenario.startTime >= RAMP * 1000;
    if (holding) atTarget.add(1);
    let a;
    if (Math.random() < 0.5) {
        a = get(`/v1/posts/${data.postId}`, data.token, { name: 'GET /v1/posts/{id}' });
        postReads.add(1);
        if (a.status === 200 && !postRight(a.body, data.version)) {
            wrong.add(1);
            console.error(`wrong post document: ${a.res.body.slice(0, 300)}`);
        }
    } else {
        const { m, n } = data.months[Math.floor(Math.random() * data.months.length)];
        a = get(monthPath(data.concertId, m), data.token, { name: 'GET /v1/concerts/{id}/schedules?month' });
        monthReads.add(1);
        if (a.status === 200 && !monthRight(a.body, m, n)) {
            wrong.add(1);
            console.error(`wrong month ${m + 1}: ${a.res.body.slice(0, 300)}`);
        }
    }
    if (holding) atTargetMs.add(a.res.timings.duration);
}

export function teardown(data) {
    verifying('documents_intact', () => {
        const p = get(`/v1/posts/${data.postId}`, data.token);
        const bad = data.months.filter(({ m, n }) => !monthRight(get(monthPath(data.concertId, m), data.token).body, m, n));
        return verify('documents_intact', p.status === 200 && postRight(p.body, data.version) && bad.length === 0,
            `post ${p.status} v${p.body && p.body.version}; ${bad.length} month(s) wrong`);
    });
}

export const handleSummary = summary('reads', `post-with-comments and monthly schedules, arrival rate ramping to ${RATE}/s`,
    (m) => {
        const done = (m.reads_at_target && m.reads_at_target.values.count) || 0;
        const lat = (m.reads_at_target_ms && m.reads_at_target_ms.values) || {};
        return {
            target_rps: RATE,
            // requests answered while the target rate was asked for (HOLD_SECONDS)
            achieved_rps_at_target: done / HOLD,
            p95_ms_at_target: lat['p(95)'],
            p99_ms_at_target: lat['p(99)'],
            dropped_iterations: (m.dropped_iterations && m.dropped_iterations.values.count) || 0,
        };
    });
