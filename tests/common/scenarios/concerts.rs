//! Concerts, the queue and reservations (API.md "Concerts", "Queue",
//! "Reservations"): holds all or nothing, payment with a coupon once, a
//! refund on cancel, a hold that runs out on its own.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::super::active_queue_token;
use super::super::{code_of, Client};
use super::coupons::coupons;
use super::Cast;

pub async fn concerts_and_reservations(c: &Client, admin: &str, cast: &Cast) {
    let Cast {
        fan_id, fan, rival, ..
    } = cast.clone();
    // --- concerts and the queue
    let denied = c.post("/v1/concerts", &fan, json!({"name": "x"})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let concert = c
        .post("/v1/concerts", admin, json!({"name": "Winter Live"}))
        .await;
    assert_eq!(concert.status, StatusCode::CREATED, "{}", concert.body);
    let cid = concert.body["concert_id"].as_str().unwrap().to_owned();
    let seats: Vec<Value> = (1..=4)
        .map(|n| json!({"seat_no": n, "price": 1000}))
        .collect();
    let s = c
        .post(
            &format!("/v1/concerts/{cid}/schedules"),
            admin,
            json!({"starts_at": "2026-12-24T19:00:00Z", "seats": seats}),
        )
        .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
    let sid = s.body["schedule_id"].as_str().unwrap().to_owned();
    c.call(
        Method::POST,
        &format!("/v1/concerts/{cid}/schedules"),
        Some(admin),
        Some(json!({"starts_at": "2027-01-10T19:00:00Z", "seats": [{"seat_no": 1, "price": 5}]})),
    )
    .await;
    let december = c
        .get_until(
            &format!(
                "/v1/concerts/{cid}/schedules?from=2026-12-01T00:00:00Z&to=2027-01-01T00:00:00Z"
            ),
            &fan,
            "the December schedule is in the calendar",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await;
    assert_eq!(december["items"][0]["schedule_id"], sid.as_str());
    assert_eq!(december["items"][0]["available_seats"], 4);
    c.get_until(
        &format!("/v1/concerts/{cid}/schedules"),
        &fan,
        "both schedules, by start",
        |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
                && b["items"][1]["starts_at"] == "2027-01-10T19:00:00Z"
        },
    )
    .await;
    c.refuses(
        Method::POST,
        "/v1/reservations",
        &fan,
        Some(json!({"schedule_id": sid, "seat_nos": [1]})),
        (StatusCode::UNAUTHORIZED, "queue_token_required"),
    )
    .await;
    let fan_q = active_queue_token(c, &fan, &cid).await;
    let rival_q = active_queue_token(c, &rival, &cid).await;
    // one place per user and concert: asking again answers the same one
    let again = c
        .post("/v1/queue/tokens", &fan, json!({ "concert_id": cid }))
        .await;
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{}",
        again.body
    );
    let first = c
        .queued(Method::GET, "/v1/queue/status", &fan, &fan_q, None)
        .await;
    assert_eq!(again.body["position"], first.body["position"]);
    // an active token is extended twice at the most
    for _ in 0..2 {
        let extended = c
            .queued(Method::POST, "/v1/queue/extend", &fan, &fan_q, None)
            .await;
        assert_eq!(extended.status, StatusCode::OK, "{}", extended.body);
        assert!(extended.body["token"].is_string() && extended.body["expires_at"].is_string());
    }
    let refused = c
        .queued(Method::POST, "/v1/queue/extend", &fan, &fan_q, None)
        .await;
    assert_eq!(
        (refused.status, code_of(&refused)),
        (StatusCode::CONFLICT, "extension_limit"),
        "{}",
        refused.body
    );
    let map = c
        .queued(
            Method::GET,
            &format!("/v1/schedules/{sid}/seats?min_version=1"),
            &fan,
            &fan_q,
            None,
        )
        .await;
    assert_eq!(map.status, StatusCode::OK, "{}", map.body);
    assert!(map.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["available"] == true));
    // once the map is there, someone else's token is refused
    let wrong_user = c
        .queued(
            Method::GET,
            &format!("/v1/schedules/{sid}/seats"),
            &rival,
            &fan_q,
            None,
        )
        .await;
    assert_eq!(wrong_user.status, StatusCode::FORBIDDEN);

    // the campaign first: a hold lasts seconds here, and the campaign's
    // reads wait for a projection (on a slow machine the hold expired
    // before the payment when the campaign came between them)
    let kid = coupons(c, admin, cast).await;

    // --- holds: all or nothing
    c.call(
        Method::POST,
        "/v1/accounts/me/charge",
        Some(&fan),
        Some(json!({"amount": 5000, "idempotency_key": "fan-1"})),
    )
    .await;
    let hold = c
        .queued(
            Method::POST,
            "/v1/reservations",
            &fan,
            &fan_q,
            Some(json!({"schedule_id": sid, "seat_nos": [1, 2]})),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    assert_eq!(
        (hold.body["status"].as_str(), hold.body["amount"].as_i64()),
        (Some("held"), Some(2000))
    );
    let rid = hold.body["reservation_id"].as_str().unwrap().to_owned();
    let clash = c
        .queued(
            Method::POST,
            "/v1/reservations",
            &rival,
            &rival_q,
            Some(json!({"schedule_id": sid, "seat_nos": [2, 3]})),
        )
        .await;
    assert_eq!(
        (clash.status, code_of(&clash)),
        (StatusCode::CONFLICT, "seat_unavailable")
    );

    // --- payment with the coupon, once
    let pay = json!({"coupon_id": kid});
    let paid = c
        .queued(
            Method::POST,
            &format!("/v1/reservations/{rid}/payment"),
            &fan,
            &fan_q,
            Some(pay.clone()),
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);
    assert_eq!(
        paid.body,
        json!({"reservation_id": rid, "status": "paid", "paid_amount": 1500, "balance": 3500})
    );
    let again = c
        .queued(
            Method::POST,
            &format!("/v1/reservations/{rid}/payment"),
            &fan,
            &fan_q,
            Some(pay),
        )
        .await;
    assert_eq!(
        again.body, paid.body,
        "paying again answers the same and pays once"
    );
    let status = c
        .queued(Method::GET, "/v1/queue/status", &fan, &fan_q, None)
        .await;
    assert_eq!(
        status.body["status"], "expired",
        "the token ended at payment"
    );
    let mine = c
        .get_until(
            &format!("/v1/reservations/{rid}"),
            &fan,
            "the reservation reads paid",
            |b| b["status"] == "paid",
        )
        .await;
    assert_eq!(mine["seat_nos"], json!([1, 2]));
    let others = c.get(&format!("/v1/reservations/{rid}"), &rival).await;
    assert_eq!(others.status, StatusCode::FORBIDDEN);
    c.get_until(
        "/v1/me/reservations",
        &fan,
        "listed among the fan's reservations",
        |b| b["items"][0]["reservation_id"] == rid.as_str(),
    )
    .await;
    c.get_until("/v1/me/coupons", &fan, "the coupon reads used", |b| {
        b["items"][0]["used"] == true
    })
    .await;
    let history = c
        .get_until(
            "/v1/accounts/me/history",
            &fan,
            "the payment is in the history",
            |b| b["items"][0]["kind"] == "use",
        )
        .await;
    assert_eq!(history["items"][0]["amount"], -1500);

    // --- cancelling a paid reservation refunds it and frees the seats
    let cancelled = c
        .send(
            Method::DELETE,
            &format!("/v1/reservations/{rid}"),
            &fan,
            None,
        )
        .await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{}",
        cancelled.body
    );
    let me = c
        .get_until("/v1/accounts/me", &fan, "the refund", |b| {
            b["balance"] == 5000
        })
        .await;
    assert_eq!(me["account_id"], fan_id.as_str());
    c.get_until("/v1/me/coupons", &fan, "the coupon comes back", |b| {
        b["items"][0]["used"] == false
    })
    .await;

    // --- not enough points: refused, and the hold runs out on its own
    let rival_hold = c
        .queued(
            Method::POST,
            "/v1/reservations",
            &rival,
            &rival_q,
            Some(json!({"schedule_id": sid, "seat_nos": [1, 3]})),
        )
        .await;
    assert_eq!(
        rival_hold.status,
        StatusCode::CREATED,
        "seats of a cancelled reservation are free: {}",
        rival_hold.body
    );
    let rival_rid = rival_hold.body["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let broke = c
        .queued(
            Method::POST,
            &format!("/v1/reservations/{rival_rid}/payment"),
            &rival,
            &rival_q,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (broke.status, code_of(&broke)),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_points")
    );
    c.get_until(
        &format!("/v1/reservations/{rival_rid}"),
        &rival,
        "the sweeper expires the hold",
        |b| b["status"] == "expired",
    )
    .await;
    let late = c
        .queued(
            Method::POST,
            &format!("/v1/reservations/{rival_rid}/payment"),
            &rival,
            &rival_q,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        late.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        late.body
    );
    assert_eq!(code_of(&late), "hold_expired");
    let map = c
        .queued(
            Method::GET,
            &format!("/v1/schedules/{sid}/seats"),
            &rival,
            &rival_q,
            None,
        )
        .await;
    assert!(
        map.body["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["available"] == true),
        "{}",
        map.body
    );
}
