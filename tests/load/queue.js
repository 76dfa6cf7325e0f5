// Waiting-queue tokens under a crowd (seed 004's k6 test): virtual users
// ramp from 1 to 1,000 over 30 s, stay 30 s, ramp down over 30 s; each
// takes a queue token for one concert and reads its status.
//
// Correctness: every position handed out is unique and none is skipped.
// Positions of a concert come from one sequence, so setup takes position 1,
// the run takes 2..P-1 and teardown's token takes P. Each token adds 1, p
// and p² to three counters; teardown subtracts what positions 2..P-1 add up
// to; the counters must end at 0 (a duplicate or a gap leaves a remainder).
// Every status answer must name the token's position and a consistent
// state (active: nothing ahead; waiting: `ahead` = positions before it).
//
// Settings: VUS (1000 × SCALE), RAMP_SECONDS (30), HOLD_SECONDS (30),
// THINK_SECONDS (1, pause per iteration), P95_MS (500).

import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
    baseOptions, createConcert, envInt, invariantThresholds, post, get, mintToken, canMint,
    registerAccounts, runId, summary, verify, verifying, ADMIN_TOKEN, requireAdmin,
} from './lib.js';

const VUS = envInt('VUS', Math.max(1, Math.round(1000 * Number(__ENV.SCALE || 1))));
const RAMP = envInt('RAMP_SECONDS', 30);
const HOLD = envInt('HOLD_SECONDS', 30);
const THINK = Number(__ENV.THINK_SECONDS || 1);

const positions = new Counter('invariant_queue_positions_left');
const positionSum = new Counter('invariant_queue_position_sum_left');
const positionSquares = new Counter('invariant_queue_position_squares_left');
const wrongStatus = new Counter('invariant_queue_wrong_status');
const issued = new Counter('queue_tokens_issued');
const active = new Counter('queue_status_active');
const waiting = new Counter('queue_status_waiting');

const CHECKS = ['final_token'];

export const options = Object.assign({}, baseOptions, {
    scenarios: {
        queue: {
            executor: 'ramping-vus',
            startVUs: 1,
            stages: [
                { duration: `${RAMP}s`, target: VUS },
                { duration: `${HOLD}s`, target: VUS },
                { duration: `${RAMP}s`, target: 0 },
            ],
            gracefulRampDown: '10s',
        },
    },
    thresholds: Object.assign(invariantThresholds(CHECKS), {
        invariant_queue_positions_left: ['count==0'],
        invariant_queue_position_sum_left: ['count==0'],
        invariant_queue_position_squares_left: ['count==0'],
        invariant_queue_wrong_status: ['count==0'],
        http_req_failed: ['rate<0.01'],
        http_req_duration: [`p(95)<${envInt('P95_MS', 500)}`],
    }),
});

export function setup() {
    requireAdmin();
    const run = runId();
    const { concertId } = createConcert(`queue-${run}`, []);
    const first = post('/v1/queue/tokens', { concert_id: concertId }, ADMIN_TOKEN);
    if (first.status !== 201 || first.body.position !== 1) {
        throw new Error(`the first token of a new concert should take position 1: ${first.res.body}`);
    }
    // without JWT_SECRET every VU needs an account: register them up front
    const accounts = canMint() ? null : registerAccounts(`queue-${run}`, 0, VUS).map((a) => a.token);
    return { run, concertId, accounts };
}

let me = null;

function record(position) {
    positions.add(1);
    positionSum.add(position);
    positionSquares.add(position * position);
}

export default function (data) {
    if (!me) {
        const vu = exec.vu.idInTest;
        me = data.accounts ? data.accounts[(vu - 1) % data.accounts.length] : mintToken(`queue-${data.run}-${vu}`);
    }
    const t = post('/v1/queue/tokens', { concert_id: data.concertId }, me, { name: 'POST /v1/queue/tokens' });
    if (t.status === 201 && t.body && Number.isInteger(t.body.position)) {
        issued.add(1);
        record(t.body.position);
        const s = get('/v1/queue/status', me, { queue: t.body.token, name: 'GET /v1/queue/status' });
        const b = s.body || {};
        let ok = s.status === 200 && b.position === t.body.position;
        if (ok && b.status === 'active') {
            active.add(1);
            ok = b.ahead === 0;
        } else if (ok && b.status === 'waiting') {
            waiting.add(1);
            ok = Number.isInteger(b.ahead) && b.ahead >= 0 && b.ahead < b.position;
        } else {
            ok = false;
        }
        if (!ok) {
            wrongStatus.add(1);
            console.error(`wrong status for position ${t.body.position}: ${s.status} ${s.res.body}`);
        }
    }
    if (THINK > 0) sleep(THINK);
}

export function teardown(data) {
    verifying('final_token', () => {
        const last = post('/v1/queue/tokens', { concert_id: data.concertId }, ADMIN_TOKEN);
        if (last.status !== 201) return verify('final_token', false, `${last.status} ${last.res.body}`);
        const p = last.body.position;
        // the run's tokens took positions 2..p-1
        const n = p - 2;
        const sum = (n * (p + 1)) / 2; // 2 + ... + (p-1)
        const squares = ((p - 1) * p * (2 * p - 1)) / 6 - 1;
        positions.add(-n);
        positionSum.add(-sum);
        positionSquares.add(-squares);
        const s = get('/v1/queue/status', ADMIN_TOKEN, { queue: last.body.token });
        return verify(
            'final_token',
            s.status === 200 && s.body.position === p && ['waiting', 'active'].includes(s.body.status),
            `last position ${p}, so ${n} positions were handed out during the run; status ${s.status} ${s.res.body}`,
        );
    });
}

export const handleSummary = summary('queue', `queue tokens: 1 → ${VUS} VUs over ${RAMP} s, ${HOLD} s held, ramp down; positions unique and dense`);
