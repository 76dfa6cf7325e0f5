//! Notifications (API.md "Live stream and notifications"): every kind made
//! by the events that concern a user — a comment and a reaction on their
//! post, a coupon issued to them, their hold run out, their order paid,
//! their product sold, a DM — listed newest first, and marked read up to
//! one with the unread count. Expects the hold TTL to be a few seconds.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::super::{active_queue_token, Client};

fn str_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_owned()
}

/// `(kind, subject, actor_id)` of each of the caller's notifications,
/// newest first, once there are `n`.
async fn notified(c: &Client, token: &str, n: usize, what: &str) -> Vec<(String, String, String)> {
    let page = c
        .get_until("/v1/me/notifications", token, what, |b| {
            b["items"].as_array().is_some_and(|i| i.len() == n)
        })
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                str_of(n, "kind"),
                str_of(n, "subject"),
                str_of(n, "actor_id"),
            )
        })
        .collect()
}

pub async fn notifications(c: &Client, admin: &str) {
    let (ann_id, ann) = c.register("notified-ann@example.com", "ann").await;
    let (bob_id, bob) = c.register("notified-bob@example.com", "bob").await;

    // a comment and a reaction on ann's post; her own comment tells no one
    let guild = c.new_guild(&ann, "Notified").await;
    let forum = c.new_channel(&ann, &guild, "forum", "forum").await;
    c.join(&bob, &guild).await;
    let post = c
        .post(
            &format!("/v1/channels/{forum}/posts"),
            &ann,
            json!({"title": "Mine", "content": "x"}),
        )
        .await
        .id("post_id");
    for (who, path, body) in [
        (
            &bob,
            format!("/v1/posts/{post}/comments"),
            Some(json!({"content": "nice"})),
        ),
        (
            &ann,
            format!("/v1/posts/{post}/comments"),
            Some(json!({"content": "thanks"})),
        ),
    ] {
        let a = c.send(Method::POST, &path, who, body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let reacted = c
        .send(
            Method::PUT,
            &format!("/v1/posts/{post}/reactions/%F0%9F%91%8D"),
            &bob,
            None,
        )
        .await;
    assert_eq!(reacted.status, StatusCode::OK, "{}", reacted.body);

    // a coupon issued to ann
    let coupon = c
        .post(
            "/v1/coupons",
            admin,
            json!({"name": "Hello", "total_quantity": 5, "discount_amount": 1}),
        )
        .await
        .id("coupon_id");
    let issued = c
        .send(
            Method::POST,
            &format!("/v1/coupons/{coupon}/issue"),
            &ann,
            None,
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);

    // ann's hold runs out
    let concert = c
        .post("/v1/concerts", admin, json!({"name": "Notified"}))
        .await
        .id("concert_id");
    let schedule = c
        .post(
            &format!("/v1/concerts/{concert}/schedules"),
            admin,
            json!({"starts_at": "2031-01-01T19:00:00Z", "seats": [{"seat_no": 1, "price": 10}]}),
        )
        .await
        .id("schedule_id");
    let queue = active_queue_token(c, &ann, &concert).await;
    let hold = c
        .queued(
            Method::POST,
            "/v1/reservations",
            &ann,
            &queue,
            Some(json!({"schedule_id": schedule, "seat_nos": [1]})),
        )
        .await;
    let reservation = hold.id("reservation_id");

    // bob buys ann's product
    let product = c
        .post(
            "/v1/products",
            &ann,
            json!({"name": "Notified lamp", "price": 5, "stock": 3}),
        )
        .await
        .id("product_id");
    let charged = c
        .post(
            "/v1/accounts/me/charge",
            &bob,
            json!({"amount": 50, "idempotency_key": "notified"}),
        )
        .await;
    assert_eq!(charged.status, StatusCode::OK, "{}", charged.body);
    let order = c
        .post(
            "/v1/orders",
            &bob,
            json!({"items": [{"product_id": product, "quantity": 1}], "idempotency_key": "n"}),
        )
        .await
        .id("order_id");
    let paid = c
        .post(&format!("/v1/orders/{order}/payment"), &bob, json!({}))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);

    // bob writes to ann
    let room = c
        .post("/v1/dm/rooms", &bob, json!({"user_ids": [ann_id]}))
        .await
        .id("room_id");
    let said = c
        .post(
            &format!("/v1/dm/rooms/{room}/messages"),
            &bob,
            json!({"content": "sold!"}),
        )
        .await;
    assert_eq!(said.status, StatusCode::CREATED, "{}", said.body);

    // the hold ran out meanwhile, or does soon; its notice is the newest
    // or comes among the others: compare as a set, then the order of the rest
    let mut got = notified(c, &ann, 6, "ann's six notifications").await;
    let expired = (
        "reservation_expired".to_owned(),
        reservation.clone(),
        "system".to_owned(),
    );
    assert!(got.contains(&expired), "{got:?}");
    got.retain(|n| *n != expired);
    let s = |v: &str| v.to_owned();
    assert_eq!(
        got,
        vec![
            (s("dm_message"), room.clone(), bob_id.clone()),
            (s("product_sold"), order.clone(), bob_id.clone()),
            (s("coupon_issued"), coupon.clone(), ann_id.clone()),
            (s("reaction_on_your_post"), post.clone(), bob_id.clone()),
            (s("comment_on_your_post"), post.clone(), bob_id.clone()),
        ]
    );
    let bobs = notified(c, &bob, 1, "bob's payment notice").await;
    assert_eq!(bobs, vec![(s("order_paid"), order, bob_id)]);

    // marked read up to the second newest: one left unread
    let page = c.get("/v1/me/notifications", &ann).await;
    let items = page.body["items"].as_array().unwrap().clone();
    assert!(items.iter().all(|n| n["read"] == false), "{}", page.body);
    let second = str_of(&items[1], "notification_id");
    let marked = c
        .post("/v1/me/notifications/read", &ann, json!({"up_to": second}))
        .await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.body);
    assert_eq!(marked.body["unread"], 1, "{}", marked.body);
    let version = marked.body["version"].as_u64().unwrap();
    let after = c
        .get_until("/v1/me/notifications", &ann, "the read marks", |b| {
            b["items"][1]["read"] == true
        })
        .await;
    let read: Vec<bool> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["read"].as_bool().unwrap())
        .collect();
    assert_eq!(read, [false, true, true, true, true, true]);
    // an older mark changes nothing
    let older = c
        .post(
            "/v1/me/notifications/read",
            &ann,
            json!({"up_to": str_of(&items[4], "notification_id")}),
        )
        .await;
    assert_eq!(
        (
            older.status,
            older.body["unread"].as_u64(),
            older.body["version"].as_u64()
        ),
        (StatusCode::OK, Some(1), Some(version)),
        "{}",
        older.body
    );
    for bad in [
        json!({"up_to": ""}),
        json!({"up_to": "x".repeat(65)}),
        json!({}),
    ] {
        c.refuses(
            Method::POST,
            "/v1/me/notifications/read",
            &ann,
            Some(bad),
            (StatusCode::BAD_REQUEST, "invalid_input"),
        )
        .await;
    }
    // pages of one, newest first
    let one = c.get("/v1/me/notifications?limit=1", &ann).await;
    assert_eq!(one.body["items"][0], after["items"][0]);
    let next = c
        .get(
            &format!(
                "/v1/me/notifications?limit=1&cursor={}",
                str_of(&one.body, "next_cursor")
            ),
            &ann,
        )
        .await;
    assert_eq!(next.body["items"][0], after["items"][1], "{}", next.body);
}
