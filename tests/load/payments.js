// Point charges and payments with duplicated idempotency keys (seeds 001
// and 004). ITERATIONS iterations are shared by the VUs; iteration i works
// on account i mod ACCOUNTS:
//   1. charges amount(i) with key `k-<i>`, sending DUPLICATES copies at once,
//      then the same key once more later: every answer must equal the first;
//   2. every PAY_EVERY-th iteration also takes a queue token, holds seat
//      i/PAY_EVERY+1 and pays it (PRICE points), DUPLICATES payments at once,
//      then once more: every answer is the same `paid` answer with the same
//      balance, the last one too. A concurrent copy must not be refused
//      because the first payment ended the queue token under it
//      (`invariant_payment_copy_refused`), and a repeat carries the balance
//      the payment left (`invariant_payment_balance_differs`).
// Iteration numbers decide every amount, key and seat, so teardown knows
// what each account must hold.
//
// Correctness: in teardown every account's read model, read at the version
// it must have reached (1 + keys + payments), shows exactly
// Σ amount(keys) − PRICE × payments; the event log holds one PointsCharged
// per key and one PointsUsed per payment. During the run: no charge answer
// differs from its key's first answer, every payment succeeds, and every
// iteration ran (`invariant_payments_iterations` = ITERATIONS).
//
// Settings: ACCOUNTS (50 × SCALE, at least 2), ITERATIONS (10000 × SCALE),
// VUS (50 × SCALE), DUPLICATES (3), PAY_EVERY (10), PRICE (100).

import exec from 'k6/execution';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import {
    adminEvents, baseOptions, createConcert, envInt, errorCode, invariantThresholds, json, post, readUntil,
    registerAccounts, req, requireAdmin, runId, scaled, seats, summary, verify, verifying, waitActive,
} from './lib.js';

const ACCOUNTS = envInt('ACCOUNTS', scaled(50, 2));
const ITERATIONS = envInt('ITERATIONS', scaled(10000));
const VUS = Math.min(ITERATIONS, envInt('VUS', scaled(50)));
const DUPLICATES = Math.max(1, envInt('DUPLICATES', 3));
const PAY_EVERY = Math.max(1, envInt('PAY_EVERY', 10));
const PRICE = envInt('PRICE', 100);

const amountOf = (i) => PRICE + (i % 37) * 10; // ≥ PRICE: each payment is covered by its own charge
const pays = (i) => i % PAY_EVERY === 0;
const seatOf = (i) => Math.floor(i / PAY_EVERY) + 1;

const iterationsDone = new Counter('invariant_payments_iterations');
const chargeMismatch = new Counter('invariant_charge_answers_differ');
const chargeFailed = new Counter('invariant_charges_failed');
const paymentFailed = new Counter('invariant_payments_failed');
const charged = new Counter('points_charged');
const paid = new Counter('points_paid');
const duplicateRefused = new Counter('invariant_payment_copy_refused');
const replayBalance = new Counter('invariant_payment_balance_differs');

const CHECKS = ['balances_exact', 'event_log_once_per_key'];

export const options = Object.assign({}, baseOptions, {
    scenarios: {
        payments: {
            executor: 'shared-iterations',
            vus: VUS,
            iterations: ITERATIONS,
            maxDuration: __ENV.MAX_DURATION || '30m',
        },
    },
    thresholds: Object.assign(invariantThresholds(CHECKS), {
        invariant_payments_iterations: [`count==${ITERATIONS}`],
        invariant_charge_answers_differ: ['count==0'],
        invariant_charges_failed: ['count==0'],
        invariant_payments_failed: ['count==0'],
        invariant_payment_copy_refused: ['count==0'],
        invariant_payment_balance_differs: ['count==0'],
        http_req_failed: ['rate<0.01'],
        http_req_duration: [`p(95)<${envInt('P95_MS', 1000)}`],
    }),
});

export function setup() {
    requireAdmin();
    const run = runId();
    const accounts = registerAccounts(`payer-${run}`, 0, ACCOUNTS);
    const { concertId, scheduleIds } = createConcert(`payments-${run}`, [
        { starts_at: '2027-04-01T19:00:00Z', seats: seats(Math.ceil(ITERATIONS / PAY_EVERY), PRICE) },
    ]);
    return { run, accounts, concertId, scheduleId: scheduleIds[0] };
}

function sameAnswer(a, b) {
    return a.status === b.status && a.body === b.body;
}

export default function (data) {
    const i = exec.scenario.iterationInTest;
    const account = data.accounts[i % ACCOUNTS];
    const charge = req('POST', '/v1/accounts/me/charge', { amount: amountOf(i), idempotency_key: `k-${i}` },
        account.token, { name: 'POST /v1/accounts/me/charge' });
    const copies = [];
    for (let d = 0; d < DUPLICATES; d++) copies.push(charge);
    const answers = http.batch(copies);
    const first = answers[0];
    if (first.status !== 200) {
        chargeFailed.add(1);
        console.error(`charge k-${i}: ${first.status} ${first.body}`);
    } else {
        charged.add(amountOf(i));
    }
    for (const a of answers) {
        if (!sameAnswer(a, first)) {
            chargeMismatch.add(1);
            console.error(`charge k-${i}: answers differ: ${first.status} ${first.body} vs ${a.status} ${a.body}`);
        }
    }

    if (pays(i)) {
        let ok = false;
        const q = post('/v1/queue/tokens', { concert_id: data.concertId }, account.token, { name: 'POST /v1/queue/tokens' });
        if (q.status === 201 && waitActive(account.token, q.body.token, 60)) {
            const hold = post('/v1/reservations', { schedule_id: data.scheduleId, seat_nos: [seatOf(i)] }, account.token,
                { queue: q.body.token, name: 'POST /v1/reservations' });
            if (hold.status === 201) {
                const pay = req('POST', `/v1/reservations/${hold.body.reservation_id}/payment`, {}, account.token,
                    { queue: q.body.token, name: 'POST /v1/reservations/{id}/payment' });
                const payCopies = [];
                for (let d = 0; d < DUPLICATES; d++) payCopies.push(pay);
                const results = http.batch(payCopies).map((r) => ({ status: r.status, body: json(r), raw: r.body }));
                const wins = results.filter((r) => r.status === 200);
                // a copy that arrives while another one is paying must not be
                // refused because that payment ended the token
                const refused = results.filter((r) => r.status === 401 && errorCode(r.body) === 'queue_token_expired');
                duplicateRefused.add(refused.length);
                const samePayment = (b) => b && b.status === 'paid' && b.paid_amount === PRICE
                    && b.reservation_id === hold.body.reservation_id;
                ok = wins.length === results.length && wins.every((r) => samePayment(r.body));
                // paying again after success answers the same (the token has ended)
                if (ok) {
                    const again = http.request(pay.method, pay.url, pay.body, pay.params);
                    const againBody = json(again);
                    ok = again.status === 200 && samePayment(againBody);
                    if (!ok) console.error(`payment of seat ${seatOf(i)} again: ${again.status} ${again.body} (first: ${wins[0].raw})`);
                    // every answer carries the balance the payment left
                    for (const r of wins.concat(ok ? [{ body: againBody }] : [])) {
                        if (r.body.balance !== wins[0].body.balance) replayBalance.add(1);
                    }
                }
                if (!ok) console.error(`payment of seat ${seatOf(i)}: ${results.map((r) => `${r.status} ${r.raw}`).join(' | ')}`);
            } else {
                console.error(`hold of seat ${seatOf(i)}: ${hold.status} ${hold.res.body}`);
            }
        } else {
            console.error(`queue token for iteration ${i}: ${q.status} ${q.res.body}`);
        }
        if (ok) paid.add(PRICE);
        else paymentFailed.add(1);
    }

    // the same key once more, after everything else: still the first answer
    const late = http.request(charge.method, charge.url, charge.body, charge.params);
    if (!sameAnswer(late, first)) {
        chargeMismatch.add(1);
        console.error(`charge k-${i} replayed: ${first.status} ${first.body} vs ${late.status} ${late.body}`);
    }
    iterationsDone.add(1);
}

function expectations() {
    const e = [];
    for (let a = 0; a < ACCOUNTS; a++) e.push({ balance: 0, keys: 0, payments: 0 });
    for (let i = 0; i < ITERATIONS; i++) {
        const x = e[i % ACCOUNTS];
        x.balance += amountOf(i);
        x.keys += 1;
        if (pays(i)) {
            x.balance -= PRICE;
            x.payments += 1;
        }
    }
    return e;
}

export function teardown(data) {
    const expected = expectations();
    verifying('balances_exact', () => {
        const wrong = [];
        data.accounts.forEach((acc, a) => {
            const x = expected[a];
            const version = 1 + x.keys + x.payments;
            const r = readUntil('/v1/accounts/me', acc.token, (b) => b.version >= version, { minVersion: version, timeout: 60 });
            const b = r.answer.body || {};
            if (!r.ok || b.balance !== x.balance || b.version !== version) {
                wrong.push(`${acc.email}: expected balance ${x.balance} at version ${version}, read ${b.balance} at ${b.version}`);
            }
        });
        return verify('balances_exact', wrong.length === 0,
            wrong.length ? wrong.slice(0, 5).join('; ') : `${ACCOUNTS} accounts hold exactly their charges minus their payments`);
    });
    verifying('event_log_once_per_key', () => {
        const wrong = [];
        data.accounts.forEach((acc, a) => {
            const events = adminEvents('account', acc.id);
            const keys = events.filter((e) => e.event_type === 'PointsCharged').map((e) => e.payload.idempotency_key);
            const used = events.filter((e) => e.event_type === 'PointsUsed').length;
            const refunded = events.filter((e) => e.event_type === 'PointsRefunded').length;
            if (keys.length !== expected[a].keys || new Set(keys).size !== keys.length
                || used !== expected[a].payments || refunded !== 0) {
                wrong.push(`${acc.email}: ${keys.length} charges (${new Set(keys).size} keys), ${used} uses, ${refunded} refunds`);
            }
        });
        return verify('event_log_once_per_key', wrong.length === 0,
            wrong.length ? wrong.slice(0, 5).join('; ') : 'one PointsCharged per key and one PointsUsed per payment');
    });
}

export const handleSummary = summary('payments', `${ITERATIONS} charges (each key sent ${DUPLICATES + 1}×) on ${ACCOUNTS} accounts, a payment every ${PAY_EVERY}`);
