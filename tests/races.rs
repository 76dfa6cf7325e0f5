//! Concurrency, for real: two `tessera write-api` processes share one
//! PostgreSQL and take hundreds of concurrent requests; the invariants are
//! checked in the event log afterwards.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{cluster, code};
use common::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_users_racing_for_two_seats_leave_exactly_one_reservation() {
    let c = cluster(&[]).await;
    let (cid, sid) = c.schedule(10, 1000).await;
    let users: Vec<String> = (0..1000).map(|i| format!("racer-{i:04}")).collect();
    let queue = c.admitted(&cid, &users).await;
    let started = Instant::now();
    let answers: Vec<(StatusCode, Value)> =
        futures::future::join_all(users.iter().zip(&queue).enumerate().map(|(i, (u, q))| {
            let token = c.token(u);
            let c = &c;
            let sid = &sid;
            async move {
                c.send(
                    i,
                    Method::POST,
                    "/v1/reservations",
                    &token,
                    Some(q),
                    Some(json!({"schedule_id": sid, "seat_nos": [1, 2]})),
                )
                .await
            }
        }))
        .await;
    let elapsed = started.elapsed();
    let won: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .collect();
    let lost = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && code(b) == "seat_unavailable")
        .count();
    assert_eq!(
        won.len(),
        1,
        "exactly one hold: {:?}",
        answers
            .iter()
            .filter(|(s, _)| *s != StatusCode::CONFLICT)
            .take(3)
            .collect::<Vec<_>>()
    );
    assert_eq!(lost, 999, "everyone else is told the seats are taken");
    let held = c.events("schedule", "SeatsHeld").await;
    assert_eq!(held.len(), 1, "the log holds one hold");
    assert_eq!(held[0].1["seat_nos"], json!([1, 2]));
    assert_eq!(held[0].1["reservation_id"], won[0].1["reservation_id"]);
    eprintln!("1,000 holds on 2 seats across 2 write-api processes answered in {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_coupons_for_a_thousand_issuers_are_issued_exactly_once_each() {
    let c = cluster(&[]).await;
    let coupon = c
        .admin(
            "/v1/coupons",
            json!({"name": "First 100", "total_quantity": 100, "discount_amount": 10}),
        )
        .await;
    let kid = coupon["coupon_id"].as_str().unwrap().to_owned();
    let users: Vec<String> = (0..1000).map(|i| format!("fan-{i:04}")).collect();
    // the first 200 users also send a second request at the same time
    let requests: Vec<&String> = users.iter().chain(users.iter().take(200)).collect();
    let started = Instant::now();
    let answers: Vec<(StatusCode, Value)> =
        futures::future::join_all(requests.iter().enumerate().map(|(i, u)| {
            let token = c.token(u);
            let c = &c;
            let path = format!("/v1/coupons/{kid}/issue");
            async move { c.send(i, Method::POST, &path, &token, None, None).await }
        }))
        .await;
    let elapsed = started.elapsed();
    let issued = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let refused: BTreeMap<&str, usize> = answers
        .iter()
        .filter(|(s, _)| *s != StatusCode::CREATED)
        .fold(BTreeMap::new(), |mut m, (s, b)| {
            assert_eq!(*s, StatusCode::CONFLICT, "{b}");
            *m.entry(code(b)).or_default() += 1;
            m
        });
    assert_eq!(
        issued, 100,
        "exactly the quantity is issued; refusals: {refused:?}"
    );
    let events = c.events("coupon", "CouponIssued").await;
    assert_eq!(events.len(), 100);
    let holders: BTreeSet<&str> = events
        .iter()
        .map(|(_, p)| p["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(holders.len(), 100, "nobody got two");
    let counts: BTreeSet<u64> = events
        .iter()
        .map(|(_, p)| p["issued"].as_u64().unwrap())
        .collect();
    assert_eq!(
        counts,
        (1..=100).collect(),
        "the running count never skips or repeats"
    );
    eprintln!("1,200 coupon requests (100 available) across 2 processes answered in {elapsed:?}: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_charges_with_one_idempotency_key_charge_once() {
    let c = cluster(&[]).await;
    let client = Client::new(&c.stack.write().addr, &c.stack.write().addr);
    let (account_id, token) = client.register("payer@example.com", "payer").await;
    let answers: Vec<(StatusCode, Value)> = futures::future::join_all((0..50).map(|i| {
        let c = &c;
        let token = &token;
        async move {
            c.send(
                i,
                Method::POST,
                "/v1/accounts/me/charge",
                token,
                None,
                Some(json!({"amount": 700, "idempotency_key": "once"})),
            )
            .await
        }
    }))
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(
            *body,
            json!({"balance": 700, "version": 2}),
            "every answer is the first answer"
        );
    }
    let charged: Vec<_> = c
        .events("account", "PointsCharged")
        .await
        .into_iter()
        .filter(|(id, _)| *id == account_id)
        .collect();
    assert_eq!(charged.len(), 1, "one charge in the log");
}

/// Payments fired right around each hold's expiry while the sweeper expires
/// holds every 20 ms on whichever process leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_racing_expiry_ends_paid_or_expired_never_both_and_points_add_up() {
    let c = cluster(&[
        ("TESSERA_HOLD_TTL_SECONDS", "1"),
        ("TESSERA_SWEEP_INTERVAL_MS", "20"),
    ])
    .await;
    let holders = 24;
    let price = 100;
    let start_balance = 10_000;
    let (cid, sid) = c.schedule(holders, price).await;
    let users = c.funded("racer", holders, start_balance).await;
    let ids: Vec<String> = users.iter().map(|(id, _)| id.clone()).collect();
    let queue = c.admitted(&cid, &ids).await;
    let paid_answers = AtomicUsize::new(0);
    let outcomes: Vec<(String, String, StatusCode, Value)> =
        futures::future::join_all(users.iter().zip(&queue).enumerate().map(
            |(i, ((id, token), q))| {
                let c = &c;
                let sid = &sid;
                let paid_answers = &paid_answers;
                async move {
                    let hold = c.hold_seat(i, token, q, sid).await;
                    let rid = hold["reservation_id"].as_str().unwrap().to_owned();
                    let expires: chrono::DateTime<chrono::Utc> =
                        hold["expires_at"].as_str().unwrap().parse().unwrap();
                    // aim at the expiry: from 60 ms before to 40 ms after it
                    let offset =
                        chrono::Duration::milliseconds(-60 + (i as i64 * 100 / holders as i64));
                    let wait = (expires + offset - chrono::Utc::now())
                        .to_std()
                        .unwrap_or_default();
                    tokio::time::sleep(wait).await;
                    let (s, body) = c
                        .send(
                            i + 1,
                            Method::POST,
                            &format!("/v1/reservations/{rid}/payment"),
                            token,
                            Some(q),
                            Some(json!({})),
                        )
                        .await;
                    if s == StatusCode::OK {
                        paid_answers.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert_eq!(
                            (s, code(&body)),
                            (StatusCode::UNPROCESSABLE_ENTITY, "hold_expired"),
                            "{body}"
                        );
                    }
                    (id.clone(), rid, s, body)
                }
            },
        ))
        .await;

    // wait until every hold is settled (paid, or expired by the sweeper)
    c.until_none(
        "SELECT count(*) FROM holds WHERE NOT settled",
        "every hold is settled",
    )
    .await;
    let paid: BTreeSet<String> = c
        .events("schedule", "HoldPaid")
        .await
        .iter()
        .map(|(_, p)| p["reservation_id"].as_str().unwrap().to_owned())
        .collect();
    let expired: BTreeSet<String> = c
        .events("schedule", "HoldExpired")
        .await
        .iter()
        .map(|(_, p)| p["reservation_id"].as_str().unwrap().to_owned())
        .collect();
    let used = c.events("account", "PointsUsed").await;
    let refunded = c.events("account", "PointsRefunded").await;
    let net = |rid: &str| -> i64 {
        let out: i64 = used
            .iter()
            .filter(|(_, p)| p["reference"] == rid)
            .map(|(_, p)| p["amount"].as_i64().unwrap())
            .sum();
        let back: i64 = refunded
            .iter()
            .filter(|(_, p)| p["reference"] == rid)
            .map(|(_, p)| p["amount"].as_i64().unwrap())
            .sum();
        out - back
    };
    for (user, rid, status, body) in &outcomes {
        let was_paid = paid.contains(rid);
        assert_ne!(
            was_paid,
            expired.contains(rid),
            "{rid}: exactly one of paid and expired"
        );
        assert_eq!(
            *status == StatusCode::OK,
            was_paid,
            "{rid}: the answer matches the log: {body}"
        );
        assert_eq!(
            net(rid),
            if was_paid { price } else { 0 },
            "{rid}: points taken match the outcome"
        );
        let balance: i64 = sqlx::query_scalar(
            "SELECT (payload->>'balance')::bigint FROM events WHERE aggregate_type = 'account' AND aggregate_id = $1 ORDER BY sequence DESC LIMIT 1",
        )
        .bind(user)
        .fetch_one(&c.pool)
        .await
        .unwrap();
        assert_eq!(
            balance,
            start_balance - if was_paid { price } else { 0 },
            "{user}: balance"
        );
    }
    eprintln!(
        "payment vs expiry: {} paid, {} expired (of {holders})",
        paid_answers.load(Ordering::SeqCst),
        expired.len()
    );
}

#[tokio::test]
async fn copies_of_one_payment_sent_at_once_all_answer_the_same_and_pay_once() {
    let c = cluster(&[]).await;
    let (holders, copies, price) = (10_u32, 12_usize, 100);
    let (cid, sid) = c.schedule(holders, price).await;
    let users = c.funded("payer", holders, 1_000).await;
    let ids: Vec<String> = users.iter().map(|(id, _)| id.clone()).collect();
    let queue = c.admitted(&cid, &ids).await;
    futures::future::join_all(
        users
            .iter()
            .zip(&queue)
            .enumerate()
            .map(|(i, ((_, token), q))| {
                let (c, sid) = (&c, &sid);
                async move {
                    let hold = c.hold_seat(i, token, q, sid).await;
                    let path = format!(
                        "/v1/reservations/{}/payment",
                        hold["reservation_id"].as_str().unwrap()
                    );
                    // the copies race each other on both processes, spread over
                    // the time one payment takes: the first to pay ends the
                    // queue token under those still checking it
                    let answers = futures::future::join_all((0..copies).map(|k| {
                        let path = &path;
                        async move {
                            tokio::time::sleep(Duration::from_millis(k as u64 * 6)).await;
                            c.send(i + k, Method::POST, path, token, Some(q), Some(json!({})))
                                .await
                        }
                    }))
                    .await;
                    let first = &answers[0].1;
                    for (s, body) in &answers {
                        assert_eq!(
                            (*s, body),
                            (StatusCode::OK, first),
                            "every copy answers the same"
                        );
                    }
                    assert_eq!(first["balance"], 1_000 - price, "{first}");
                    let again = c
                        .send(i, Method::POST, &path, token, Some(q), Some(json!({})))
                        .await;
                    assert_eq!(
                        (again.0, &again.1),
                        (StatusCode::OK, first),
                        "and so does a repeat"
                    );
                }
            }),
    )
    .await;
    let used = c.events("account", "PointsUsed").await;
    assert_eq!(used.len(), holders as usize, "one debit per reservation");
    let paid = c.events("schedule", "HoldPaid").await;
    assert_eq!(paid.len(), holders as usize, "{paid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_place_in_line_per_user_however_often_and_wherever_they_ask() {
    let c = cluster(&[]).await;
    let concert = c.admin("/v1/concerts", json!({"name": "Queue"})).await;
    let cid = concert["concert_id"].as_str().unwrap().to_owned();
    // 300 users; each of the first 50 asks ten times at once, through both
    // processes, while the others ask once
    let users: Vec<String> = (0..300).map(|i| format!("q-{i:03}")).collect();
    let requests: Vec<&String> = users
        .iter()
        .chain(users.iter().take(50).cycle().take(450))
        .collect();
    let answers: Vec<(String, StatusCode, Value)> =
        futures::future::join_all(requests.iter().enumerate().map(|(i, u)| {
            let token = c.token(u);
            let c = &c;
            let body = json!({ "concert_id": cid });
            async move {
                let (s, b) = c
                    .send(
                        i,
                        Method::POST,
                        "/v1/queue/tokens",
                        &token,
                        None,
                        Some(body),
                    )
                    .await;
                ((*u).clone(), s, b)
            }
        }))
        .await;
    let mut places: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut new_places = 0;
    for (user, status, body) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "{status} {body}"
        );
        new_places += usize::from(*status == StatusCode::CREATED);
        places
            .entry(user)
            .or_default()
            .insert(body["position"].as_u64().unwrap());
    }
    assert!(
        places.values().all(|p| p.len() == 1),
        "a user holds one position: {:?}",
        places
            .iter()
            .filter(|(_, p)| p.len() > 1)
            .collect::<Vec<_>>()
    );
    assert_eq!(new_places, 300, "one 201 per user, 200 for every repeat");
    let positions: BTreeSet<u64> = places.values().flatten().copied().collect();
    assert_eq!(
        positions,
        (1..=300).collect(),
        "no position skipped or shared"
    );
    let issued: i64 =
        sqlx::query_scalar("SELECT last_issued FROM queue_positions WHERE concert_id = $1")
            .bind(&cid)
            .fetch_one(&c.pool)
            .await
            .unwrap();
    assert_eq!(issued, 300, "the queue handed out one position per user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_one_to_one_room_asked_for_at_once_by_both_on_two_processes_is_made_once() {
    let c = cluster(&[]).await;
    let pair = c.funded("pair", 2, 1).await;
    let ((a, a_token), (b, b_token)) = (&pair[0], &pair[1]);
    // 50 asks each, alternating between the two write APIs
    let asks = (0..100).map(|i| {
        let (token, other) = if i % 2 == 0 {
            (a_token, b)
        } else {
            (b_token, a)
        };
        let c = &c;
        async move {
            c.send(
                i,
                Method::POST,
                "/v1/dm/rooms",
                token,
                None,
                Some(json!({ "user_ids": [other] })),
            )
            .await
        }
    });
    let answers = futures::future::join_all(asks).await;
    let rooms: BTreeSet<String> = answers
        .iter()
        .map(|(s, body)| {
            assert!(
                *s == StatusCode::CREATED || *s == StatusCode::OK,
                "{s} {body}"
            );
            body["room_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(rooms.len(), 1, "every ask answers the same room");
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one ask made it");
    let made = c.events("dm_room", "RoomCreated").await;
    assert_eq!(made.len(), 1, "one RoomCreated in the log: {made:?}");
    assert_eq!(Some(&made[0].0), rooms.iter().next());
}
