// A first-come-first-served drop (seed 003): UNITS units of one product,
// BUYERS buyers (ten times more) each creating an order of one unit and
// paying it, all at one instant. Exactly UNITS payments succeed; every
// other one is 409 `out_of_stock`, and no loser's points move.
//
// How: as in coupons.js, VUS virtual users share the buyers; each first
// creates its buyers' orders (before the start instant: creating takes no
// stock), then fires their payments with http.batch at the common start.
//
// Correctness: counters on the answers (UNITS 200s, nothing but 200 and
// 409 out_of_stock), then in teardown the read model (`GET
// /v1/products/{id}`: sold = UNITS, stock 0), the event log (the units
// taken less given back are UNITS, no order holds two) and every buyer's
// account (UNITS debits in all, none twice, no refund: no loser's points move).
//
// Settings: UNITS (100 × SCALE), BUYERS (10 × UNITS), VUS (min(BUYERS, 100)),
// PREP_SECONDS (20 + BUYERS/100).

import exec from 'k6/execution';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import {
    ADMIN_TOKEN, adminEvents, baseOptions, envInt, errorCode, fundedAccounts, invariantThresholds, json, must, post,
    readUntil, req, requireAdmin, runId, scaled, sleepUntil, summary, verify, verifying,
} from './lib.js';

const UNITS = envInt('UNITS', scaled(100));
const BUYERS = envInt('BUYERS', 10 * UNITS);
const VUS = Math.min(BUYERS, envInt('VUS', 100));
const PREP = envInt('PREP_SECONDS', 20 + Math.ceil(BUYERS / 100));
const PRICE = 100;
const FUNDS = 1_000;
const PER_VU = Math.ceil(BUYERS / VUS);

const sold = new Counter('invariant_drop_sold');
const unexpected = new Counter('invariant_drop_unexpected_answers');
const outOfStock = new Counter('drop_out_of_stock');
const late = new Counter('drop_late_buyers');
const answered = new Trend('drop_all_answered_ms', true);
const payMs = new Trend('drop_pay_ms', true);

const CHECKS = ['read_model_exact', 'event_log_exact', 'losers_untouched'];

export const options = Object.assign({}, baseOptions, {
    batch: PER_VU,
    batchPerHost: PER_VU,
    scenarios: {
        drop: { executor: 'per-vu-iterations', vus: VUS, iterations: 1, maxDuration: `${PREP + 300}s` },
    },
    thresholds: Object.assign(invariantThresholds(CHECKS), {
        invariant_drop_sold: [`count==${UNITS}`],
        invariant_drop_unexpected_answers: ['count==0'],
        drop_late_buyers: ['count==0'],
    }),
});

export function setup() {
    requireAdmin();
    const run = runId();
    const seller = fundedAccounts(`dropper-${run}`, 0, 1, 1)[0];
    const p = must(post('/v1/products', { name: `Drop ${run}`, price: PRICE, stock: UNITS }, seller.token), 201, 'list the drop');
    const buyers = fundedAccounts(`drop-${run}`, 0, BUYERS, FUNDS);
    return { run, productId: p.product_id, buyers, startAt: Date.now() + PREP * 1000 };
}

export default function (data) {
    const vu = exec.vu.idInTest;
    const mine = data.buyers.slice((vu - 1) * PER_VU, vu * PER_VU);
    const created = http.batch(mine.map((b) => req('POST', '/v1/orders',
        { items: [{ product_id: data.productId, quantity: 1 }], idempotency_key: `drop-${data.run}` }, b.token,
        { name: 'POST /v1/orders' })));
    const payments = [];
    created.forEach((res, k) => {
        if (res.status !== 201) {
            unexpected.add(1);
            console.error(`order of ${mine[k].email}: ${res.status} ${res.body}`);
            return;
        }
        payments.push(req('POST', `/v1/orders/${json(res).order_id}/payment`, {}, mine[k].token,
            { name: 'POST /v1/orders/{id}/payment', expect: [200, 409], timeout: '300s' }));
    });
    if (Date.now() > data.startAt) late.add(payments.length);
    sleepUntil(data.startAt);
    const answers = http.batch(payments);
    answered.add(Date.now() - data.startAt);
    let shown = 0;
    for (const res of answers) {
        payMs.add(res.timings.duration);
        if (res.status === 200) sold.add(1);
        else if (res.status === 409 && errorCode(json(res)) === 'out_of_stock') outOfStock.add(1);
        else {
            unexpected.add(1);
            if (shown++ < 3) console.error(`unexpected payment answer: ${res.status} ${res.body}`);
        }
    }
}

export function teardown(data) {
    verifying('read_model_exact', () => {
        const r = readUntil(`/v1/products/${data.productId}`, ADMIN_TOKEN, (b) => b.sold === UNITS && b.stock === 0, { timeout: 60 });
        return verify('read_model_exact', r.ok, `${r.answer.status} ${r.answer.res.body}`);
    });
    verifying('event_log_exact', () => {
        const held = {};
        for (const e of adminEvents('product', data.productId)) {
            const sign = e.event_type === 'StockTaken' ? 1 : e.event_type === 'StockReturned' ? -1 : 0;
            if (sign) held[e.payload.order_id] = (held[e.payload.order_id] || 0) + sign * e.payload.quantity;
        }
        const units = Object.values(held).reduce((a, b) => a + b, 0);
        const twice = Object.values(held).filter((h) => h !== 0 && h !== 1).length;
        const winners = Object.keys(held).filter((o) => held[o] === 1);
        return verify('event_log_exact', units === UNITS && twice === 0,
            `${units} units held by orders (${winners.length} orders), ${twice} orders holding other than 0 or 1`);
    });
    verifying('losers_untouched', () => {
        const wrong = [];
        let debits = 0;
        for (const b of data.buyers) {
            const events = adminEvents('account', b.id).map((e) => e.event_type);
            const used = events.filter((e) => e === 'PointsUsed').length;
            const refunded = events.filter((e) => e === 'PointsRefunded').length;
            debits += used;
            if (used > 1 || refunded > 0) wrong.push(`${b.email}: ${used} debits, ${refunded} refunds`);
        }
        return verify('losers_untouched', wrong.length === 0 && debits === UNITS,
            wrong.length ? wrong.slice(0, 5).join('; ')
                : `${debits} debits over ${data.buyers.length} buyers, one per unit sold, no refund: no loser's points moved`);
    });
}

export const handleSummary = summary('drop', `${BUYERS} buyers for a drop of ${UNITS} units; exactly ${UNITS} sold`,
    (m) => ({
        payments: BUYERS,
        all_answered_ms: m.drop_all_answered_ms ? m.drop_all_answered_ms.values.max : null,
        pay_p95_ms: m.drop_pay_ms ? m.drop_pay_ms.values['p(95)'] : null,
    }));
