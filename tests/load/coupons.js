// First-come-first-served coupons (seed 003): ten times more issuers than
// coupons ask at the same instant; DUPLICATES of them ask twice at once.
// Exactly QUANTITY coupons are issued, to QUANTITY different users; every
// other answer is 409 `sold_out` or `already_issued`.
//
// How: as in seats.js, VUS virtual users share the issuers and fire their
// share with http.batch at one common start instant.
//
// Correctness: counters on the answers (QUANTITY 201s, no answer other
// than 201/409 sold_out/already_issued), then in teardown the read model
// (`GET /v1/coupons/{id}` at min_version QUANTITY+1 says issued = total,
// remaining 0, and stays so), the event log (QUANTITY CouponIssued events,
// distinct users, running count 1..QUANTITY) and a sample of the winners'
// coupon lists (eventually consistent: polled with a deadline).
//
// Settings: QUANTITY (100 × SCALE), ISSUERS (10 × QUANTITY), DUPLICATES
// (ISSUERS / 5), VUS (min(ISSUERS, 200)), PREP_SECONDS (10 + ISSUERS/1000).

import exec from 'k6/execution';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import {
    ADMIN_TOKEN, adminEvents, allPages, baseOptions, canMint, envInt, errorCode, invariantThresholds, json,
    mintToken, must, post, readUntil, req, requireAdmin, runId, scaled, sleepUntil, summary, users, verify,
    verifying, waitUntil,
} from './lib.js';

const QUANTITY = envInt('QUANTITY', scaled(100));
const ISSUERS = envInt('ISSUERS', 10 * QUANTITY);
const DUPLICATES = Math.min(ISSUERS, envInt('DUPLICATES', Math.floor(ISSUERS / 5)));
const VUS = Math.min(ISSUERS, envInt('VUS', 200));
const PREP = envInt('PREP_SECONDS', 10 + Math.ceil(ISSUERS / 1000));
// open connections at once, over all VUs (see seats.js)
const INFLIGHT = Math.max(VUS, envInt('MAX_INFLIGHT', 15000));
const PER_VU = Math.max(1, Math.floor(INFLIGHT / VUS));

const issued = new Counter('invariant_coupons_issued');
const unexpected = new Counter('invariant_coupons_unexpected_answers');
const soldOut = new Counter('coupons_sold_out');
const already = new Counter('coupons_already_issued');
const late = new Counter('coupons_late_issuers');
const answered = new Trend('coupons_all_answered_ms', true);
const issueMs = new Trend('coupons_issue_ms', true);

const CHECKS = ['read_model_exact', 'event_log_exact', 'winners_lists'];

export const options = Object.assign({}, baseOptions, {
    batch: PER_VU,
    batchPerHost: PER_VU,
    scenarios: {
        rush: { executor: 'per-vu-iterations', vus: VUS, iterations: 1, maxDuration: `${PREP + 300}s` },
    },
    thresholds: Object.assign(invariantThresholds(CHECKS), {
        invariant_coupons_issued: [`count==${QUANTITY}`],
        invariant_coupons_unexpected_answers: ['count==0'],
        coupons_late_issuers: ['count==0'],
    }),
});

export function setup() {
    requireAdmin();
    const run = runId();
    const c = must(post('/v1/coupons', { name: `rush-${run}`, total_quantity: QUANTITY, discount_amount: 100 },
        ADMIN_TOKEN), 201, 'create the coupon');
    return { run, couponId: c.coupon_id, startAt: Date.now() + PREP * 1000 };
}

export default function (data) {
    const vu = exec.vu.idInTest;
    const per = Math.ceil(ISSUERS / VUS);
    const from = Math.min(ISSUERS, (vu - 1) * per);
    const mine = users(`fan-${data.run}`, from, Math.min(ISSUERS, from + per));
    const path = `/v1/coupons/${data.couponId}/issue`;
    const opts = { name: 'POST /v1/coupons/{id}/issue', expect: [201, 409], timeout: '300s' };
    const requests = [];
    mine.forEach((u, k) => {
        requests.push(req('POST', path, null, u.token, opts));
        if (from + k < DUPLICATES) requests.push(req('POST', path, null, u.token, opts));
    });
    if (Date.now() > data.startAt) late.add(requests.length);
    sleepUntil(data.startAt);
    const answers = http.batch(requests);
    answered.add(Date.now() - data.startAt);
    let shown = 0;
    for (const res of answers) {
        issueMs.add(res.timings.duration);
        const code = errorCode(json(res));
        if (res.status === 201) issued.add(1);
        else if (res.status === 409 && code === 'sold_out') soldOut.add(1);
        else if (res.status === 409 && code === 'already_issued') already.add(1);
        else {
            unexpected.add(1);
            if (shown++ < 3) console.error(`unexpected issue answer: ${res.status} ${res.body}`);
        }
    }
}

export function teardown(data) {
    const path = `/v1/coupons/${data.couponId}`;
    verifying('read_model_exact', () => {
        // version 1 is the campaign, then one per coupon issued
        const r = readUntil(path, ADMIN_TOKEN, (b) => b.version >= QUANTITY + 1, { minVersion: QUANTITY + 1, timeout: 60 });
        const b = r.answer.body || {};
        let ok = r.ok && b.issued === QUANTITY && b.remaining === 0 && b.total_quantity === QUANTITY
            && b.version === QUANTITY + 1;
        // and nothing more shows up later
        const again = readUntil(path, ADMIN_TOKEN, () => true, { timeout: 5 });
        ok = ok && again.answer.body.issued === QUANTITY && again.answer.body.version === QUANTITY + 1;
        return verify('read_model_exact', ok, `${r.answer.status} ${r.answer.res.body}`);
    });
    let winners = [];
    verifying('event_log_exact', () => {
        const events = adminEvents('coupon', data.couponId).filter((e) => e.event_type === 'CouponIssued');
        winners = events.map((e) => e.payload.user_id);
        const distinct = new Set(winners).size;
        const counts = events.map((e) => e.payload.issued).sort((a, b) => a - b);
        const dense = counts.every((c, i) => c === i + 1);
        return verify('event_log_exact', events.length === QUANTITY && distinct === QUANTITY && dense,
            `${events.length} CouponIssued events, ${distinct} distinct users, running count ${dense ? '1..n' : 'has gaps or repeats'}`);
    });
    verifying('winners_lists', () => {
        if (!canMint()) return verify('winners_lists', true, 'skipped: needs JWT_SECRET to act as the winners');
        const sample = winners.slice(0, 20);
        const missing = sample.filter((u) => {
            const token = mintToken(u);
            return !waitUntil(() => allPages('/v1/me/coupons', token).some((c) => c.coupon_id === data.couponId), 60);
        });
        return verify('winners_lists', sample.length > 0 && missing.length === 0,
            `${sample.length - missing.length}/${sample.length} sampled winners list the coupon`);
    });
}

export const handleSummary = summary('coupons', `${ISSUERS} issuers (${DUPLICATES} asking twice) for ${QUANTITY} coupons; exactly ${QUANTITY} issued`,
    (m) => ({
        requests: ISSUERS + DUPLICATES,
        all_answered_ms: m.coupons_all_answered_ms ? m.coupons_all_answered_ms.values.max : null,
        issue_p95_ms: m.coupons_issue_ms ? m.coupons_issue_ms.values['p(95)'] : null,
    }));
