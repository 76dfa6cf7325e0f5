// Seat contention (seed 004): USERS distinct users, each with an active queue
// token, try to hold the same 2 seats at the same instant. Exactly one hold
// wins (201); every other answer is 409 `seat_unavailable`. The seed's
// figures: 1,000 / 10,000 / 20,000 users answered in 1.3 s / 7.1 s / 15.8 s.
//
// How: VUS virtual users share the racers (each fires its share at once
// with http.batch) so that 20,000 racers do not need 20,000 VUs. Each VU
// first gets its racers' queue tokens and waits until they are admitted,
// then all VUs sleep until one common start instant and fire.
// `seats_all_answered_ms` (its max) is the time from that instant until
// the last answer arrived.
//
// Correctness: counters on the answers (one 201, USERS-1 409s, nothing
// else), and in teardown the event log (one SeatsHeld for the schedule,
// for seats [1, 2]), the reservation read model (held, seats 1 and 2) and
// the calendar (available seats = SEATS - 2).
//
// Settings: USERS (1000), VUS (min(USERS, 200)), SEATS (10),
// PREP_SECONDS (time for the VUs to get admitted before the start;
// default 10 + USERS/500), USER_MODE (mint | register; see lib.js).

import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import {
    ADMIN_TOKEN, adminEvents, baseOptions, createConcert, envInt, errorCode, invariantThresholds, json,
    queueStatus, queueTokens, readUntil, req, requireAdmin, runId, seats, sleepUntil, summary, users,
    verify, verifying, waitUntil,
} from './lib.js';
import http from 'k6/http';

const USERS = envInt('USERS', 1000);
const VUS = Math.min(USERS, envInt('VUS', 200));
const SEATS = envInt('SEATS', 10);
const PREP = envInt('PREP_SECONDS', 10 + Math.ceil(USERS / 500));
// open connections at once, over all VUs (each request of a batch uses its
// own; the file descriptor limit, often 20,000 in containers, bounds it)
const INFLIGHT = Math.max(VUS, envInt('MAX_INFLIGHT', 15000));
const PER_VU = Math.max(1, Math.floor(INFLIGHT / VUS));
const RACED = [1, 2];

const won = new Counter('invariant_holds_won');
const lost = new Counter('invariant_holds_lost');
const other = new Counter('invariant_holds_other');
const late = new Counter('seats_late_racers');
const answered = new Trend('seats_all_answered_ms', true);
const prep = new Trend('seats_prep_ms', true);
const holdMs = new Trend('seats_hold_ms', true);

const CHECKS = ['one_hold_in_log', 'reservation_read_model', 'calendar_read_model'];

export const options = Object.assign({}, baseOptions, {
    batch: PER_VU,
    batchPerHost: PER_VU,
    scenarios: {
        race: {
            executor: 'per-vu-iterations',
            vus: VUS,
            iterations: 1,
            maxDuration: `${PREP + 300}s`,
        },
    },
    thresholds: Object.assign(invariantThresholds(CHECKS), {
        invariant_holds_won: ['count==1'],
        invariant_holds_lost: [`count==${USERS - 1}`],
        invariant_holds_other: ['count==0'],
        seats_late_racers: ['count==0'],
    }),
});

export function setup() {
    requireAdmin();
    const run = runId();
    const { concertId, scheduleIds } = createConcert(`seats-${run}`, [
        { starts_at: '2027-03-01T19:00:00Z', seats: seats(SEATS, 1000) },
    ]);
    return { run, concertId, scheduleId: scheduleIds[0], startAt: Date.now() + PREP * 1000 };
}

export default function (data) {
    const vu = exec.vu.idInTest; // 1..VUS
    const t0 = Date.now();
    // this VU's racers: a block of the user numbers 0..USERS-1
    const per = Math.ceil(USERS / VUS);
    const from = Math.min(USERS, (vu - 1) * per);
    const racers = users(`racer-${data.run}`, from, Math.min(USERS, from + per));
    if (racers.length === 0) return;
    const tickets = queueTokens(racers.map((r) => r.token), data.concertId, 50);
    // positions are admitted in order: once the highest is active, all are
    let last = 0;
    tickets.forEach((t, k) => {
        if (t.position > tickets[last].position) last = k;
    });
    const admitted = waitUntil(() => {
        const s = queueStatus(racers[last].token, tickets[last].token);
        return s && s.status === 'active';
    }, Math.max(5, (data.startAt - Date.now()) / 1000 + 60), 0.1);
    prep.add(Date.now() - t0);
    if (!admitted) console.error(`VU ${vu}: its queue tokens were not admitted`);
    if (Date.now() > data.startAt) late.add(racers.length);
    sleepUntil(data.startAt);

    const holds = racers.map((r, k) =>
        req('POST', '/v1/reservations', { schedule_id: data.scheduleId, seat_nos: RACED }, r.token, {
            queue: tickets[k].token,
            name: 'POST /v1/reservations',
            expect: [201, 409],
            timeout: '300s',
        }),
    );
    const answers = http.batch(holds);
    answered.add(Date.now() - data.startAt);
    let shown = 0;
    for (const res of answers) {
        holdMs.add(res.timings.duration);
        const body = json(res);
        if (res.status === 201) won.add(1);
        else if (res.status === 409 && errorCode(body) === 'seat_unavailable') lost.add(1);
        else {
            other.add(1);
            if (shown++ < 3) console.error(`unexpected hold answer: ${res.status} ${res.body}`);
        }
    }
}

export function teardown(data) {
    let reservationId = null;
    verifying('one_hold_in_log', () => {
        const held = adminEvents('schedule', data.scheduleId).filter((e) => e.event_type === 'SeatsHeld');
        const ok = held.length === 1 && JSON.stringify(held[0].payload.seat_nos) === JSON.stringify(RACED);
        if (held.length > 0) reservationId = held[0].payload.reservation_id;
        return verify('one_hold_in_log', ok,
            `${held.length} SeatsHeld event(s): ${held.map((e) => JSON.stringify(e.payload.seat_nos)).join(' ')}`);
    });
    verifying('reservation_read_model', () => {
        if (!reservationId) return verify('reservation_read_model', false, 'no reservation to read');
        const r = readUntil(`/v1/reservations/${reservationId}`, ADMIN_TOKEN, (b) => b.status === 'held', {
            timeout: 60,
        });
        const b = r.answer.body || {};
        return verify('reservation_read_model',
            r.ok && JSON.stringify(b.seat_nos) === JSON.stringify(RACED),
            `reservation ${reservationId}: ${r.answer.status} ${r.answer.res.body}`);
    });
    verifying('calendar_read_model', () => {
        const r = readUntil(`/v1/concerts/${data.concertId}/schedules`, ADMIN_TOKEN,
            (b) => b.items.length === 1 && b.items[0].available_seats === SEATS - RACED.length, { timeout: 60 });
        return verify('calendar_read_model', r.ok,
            `expected ${SEATS - RACED.length} available seats: ${r.answer.status} ${r.answer.res.body}`);
    });
}

export const handleSummary = summary('seats', `${USERS} users race for the same ${RACED.length} seats; exactly one hold wins`,
    (m) => ({
        users: USERS,
        // from the common start instant until the last hold was answered
        all_answered_ms: m.seats_all_answered_ms ? m.seats_all_answered_ms.values.max : null,
        hold_p95_ms: m.seats_hold_ms ? m.seats_hold_ms.values['p(95)'] : null,
        concurrent_connections: Math.min(USERS, PER_VU * VUS),
    }));
