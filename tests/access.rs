//! The authorization matrix: every operation of the OpenAPI documents (both
//! APIs, as `tessera serve` serves them) asked by an anonymous caller,
//! another user, a guild member, the guild's owner and an admin, each
//! answer checked against the table below. A route added to a document
//! without a row here fails the test, as does a row for no route.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::stack::Stack;
use common::{active_queue_token, mint_token, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Who asks, in the order every row is asked.
const WHO: [&str; 5] = ["anonymous", "other", "member", "owner", "admin"];

/// One operation and the status each of [`WHO`] must get, in that order.
/// `path` is the document's template; `{...}` are filled from the fixture,
/// and `{who}` in a body from the caller's name.
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    want: [u16; 5],
}

fn row(method: &'static str, path: &'static str, body: Option<Value>, want: [u16; 5]) -> Row {
    Row {
        method,
        path,
        body,
        want,
    }
}

/// The matrix. Reads first; the rows that change membership or delete
/// work on resources of their own (`join_guild`, `doomed_guild`,
/// `doomed_channel`, `doomed_post`, `doomed_comment`), so the rows after
/// them see the same fixture.
fn matrix() -> Vec<Row> {
    let name = || Some(json!({"name": "{who}'s"}));
    vec![
        // reads
        row("GET", "/v1/accounts/me", None, [401, 200, 200, 200, 200]),
        row(
            "GET",
            "/v1/accounts/me/history",
            None,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/guilds/{guild_id}",
            None,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/guilds/{guild_id}/members",
            None,
            [401, 403, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/guilds/{guild_id}/presence",
            None,
            [401, 403, 200, 200, 200],
        ),
        row("GET", "/v1/me/guilds", None, [401, 200, 200, 200, 200]),
        row(
            "GET",
            "/v1/posts/{post_id}",
            None,
            [401, 403, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/channels/{channel_id}/posts",
            None,
            [401, 403, 200, 200, 200],
        ),
        // the member wrote in the text channel; the room is the member's and the owner's
        row(
            "GET",
            "/v1/channels/{text_channel}/messages",
            None,
            [401, 403, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/dm/rooms/{room_id}/messages",
            None,
            [401, 404, 200, 200, 404],
        ),
        row("GET", "/v1/me/dm/rooms", None, [401, 200, 200, 200, 200]),
        // a stream: only its status is read (an accepted one never ends)
        row(
            "GET",
            "/v1/stream?topics=guild:{guild_id},channel:{text_channel}",
            None,
            [401, 403, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/me/notifications",
            None,
            [401, 200, 200, 200, 200],
        ),
        row("GET", "/v1/concerts", None, [401, 200, 200, 200, 200]),
        row(
            "GET",
            "/v1/concerts/{concert_id}",
            None,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/concerts/{concert_id}/schedules",
            None,
            [401, 200, 200, 200, 200],
        ),
        // without an `X-Queue-Token`
        row("GET", "/v1/queue/status", None, [401, 401, 401, 401, 401]),
        row(
            "GET",
            "/v1/schedules/{schedule_id}/seats",
            None,
            [401, 401, 401, 401, 401],
        ),
        row(
            "GET",
            "/v1/reservations/{reservation_id}",
            None,
            [401, 403, 200, 403, 200],
        ),
        row(
            "GET",
            "/v1/me/reservations",
            None,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/coupons/{coupon_id}",
            None,
            [401, 200, 200, 200, 200],
        ),
        row("GET", "/v1/me/coupons", None, [401, 200, 200, 200, 200]),
        row("GET", "/v1/products", None, [401, 200, 200, 200, 200]),
        row(
            "GET",
            "/v1/products/{product_id}",
            None,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/products/popular",
            None,
            [401, 200, 200, 200, 200],
        ),
        // the member bought the owner's product
        row(
            "GET",
            "/v1/orders/{order_id}",
            None,
            [401, 403, 200, 200, 200],
        ),
        row(
            "GET",
            "/v1/orders?ids={order_id}",
            None,
            [401, 200, 200, 200, 200],
        ),
        row("GET", "/v1/me/orders", None, [401, 200, 200, 200, 200]),
        row("GET", "/v1/me/sales", None, [401, 200, 200, 200, 200]),
        row("GET", "/v1/admin/orders", None, [401, 403, 403, 403, 200]),
        row("GET", "/v1/admin/events", None, [401, 403, 403, 403, 200]),
        row(
            "GET",
            "/v1/admin/projections",
            None,
            [401, 403, 403, 403, 200],
        ),
        row("GET", "/v1/admin/webhooks", None, [401, 403, 403, 403, 200]),
        row(
            "GET",
            "/v1/admin/webhooks/{webhook_id}/deliveries",
            None,
            [401, 403, 403, 403, 200],
        ),
        row(
            "GET",
            "/v1/admin/dead-letters",
            None,
            [401, 403, 403, 403, 200],
        ),
        row(
            "POST",
            "/v1/admin/dead-letters/{letter_id}/retry",
            None,
            [401, 403, 403, 403, 404],
        ),
        row(
            "DELETE",
            "/v1/admin/dead-letters/{letter_id}",
            None,
            [401, 403, 403, 403, 404],
        ),
        row(
            "GET",
            "/v1/admin/aggregates/{aggregate_type}/{aggregate_id}/state",
            None,
            [401, 403, 403, 403, 200],
        ),
        row(
            "GET",
            "/v1/admin/projections/history",
            None,
            [401, 403, 403, 403, 200],
        ),
        row(
            "POST",
            "/v1/admin/webhooks",
            Some(
                json!({"url": "http://127.0.0.1:9/{who}", "event_types": ["OrderPaid"], "secret": "s"}),
            ),
            [401, 403, 403, 403, 201],
        ),
        row(
            "DELETE",
            "/v1/admin/webhooks/{webhook_id}",
            None,
            [401, 403, 403, 403, 200],
        ),
        // accounts
        row(
            "POST",
            "/v1/accounts",
            Some(
                json!({"email": "{who}-new@example.com", "password": "password123", "nickname": "n"}),
            ),
            [201, 201, 201, 201, 201],
        ),
        row(
            "POST",
            "/v1/auth/token",
            Some(json!({"email": "owner@example.com", "password": "password123"})),
            [200, 200, 200, 200, 200],
        ),
        row(
            "PATCH",
            "/v1/accounts/me",
            Some(json!({"nickname": "{who}"})),
            [401, 200, 200, 200, 200],
        ),
        row(
            "POST",
            "/v1/accounts/me/charge",
            Some(json!({"amount": 1, "idempotency_key": "matrix-{who}"})),
            [401, 200, 200, 200, 200],
        ),
        // guilds
        row("POST", "/v1/guilds", name(), [401, 201, 201, 201, 201]),
        row(
            "PATCH",
            "/v1/guilds/{guild_id}",
            name(),
            [401, 403, 403, 200, 403],
        ),
        row(
            "POST",
            "/v1/guilds/{guild_id}/categories",
            name(),
            [401, 403, 403, 201, 403],
        ),
        row(
            "POST",
            "/v1/guilds/{guild_id}/channels",
            Some(json!({"name": "{who}", "kind": "text"})),
            [401, 403, 403, 201, 403],
        ),
        row(
            "PUT",
            "/v1/guilds/{guild_id}/members/me/nickname",
            Some(json!({"nickname": "{who}"})),
            [401, 403, 200, 200, 403],
        ),
        row(
            "POST",
            "/v1/guilds/{join_guild}/members",
            None,
            [401, 201, 201, 409, 201],
        ),
        row(
            "DELETE",
            "/v1/guilds/{join_guild}/members/me",
            None,
            [401, 200, 200, 409, 200],
        ),
        row(
            "DELETE",
            "/v1/guilds/{guild_id}/channels/{doomed_channel}",
            None,
            [401, 403, 403, 200, 403],
        ),
        row(
            "DELETE",
            "/v1/guilds/{doomed_guild}",
            None,
            [401, 403, 403, 200, 410],
        ),
        // board
        row(
            "POST",
            "/v1/channels/{channel_id}/posts",
            Some(json!({"title": "by {who}", "content": "hello"})),
            [401, 403, 201, 201, 403],
        ),
        row(
            "PATCH",
            "/v1/posts/{post_id}",
            Some(json!({"title": "{who}"})),
            [401, 403, 200, 403, 403],
        ),
        row(
            "POST",
            "/v1/posts/{post_id}/comments",
            Some(json!({"content": "{who} says hi"})),
            [401, 403, 201, 201, 403],
        ),
        row(
            "PATCH",
            "/v1/posts/{post_id}/comments/{comment_id}",
            Some(json!({"content": "{who}"})),
            [401, 403, 200, 403, 403],
        ),
        row(
            "PUT",
            "/v1/posts/{post_id}/reactions/{emoji}",
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            "DELETE",
            "/v1/posts/{post_id}/reactions/{emoji}",
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            "DELETE",
            "/v1/posts/{post_id}/comments/{doomed_comment}",
            None,
            [401, 403, 200, 404, 404],
        ),
        row(
            "DELETE",
            "/v1/posts/{doomed_post}",
            None,
            [401, 403, 200, 410, 410],
        ),
        // chat
        row(
            "POST",
            "/v1/channels/{text_channel}/messages",
            Some(json!({"content": "{who} says hi"})),
            [401, 403, 201, 201, 403],
        ),
        row(
            "PATCH",
            "/v1/channels/{text_channel}/messages/{message_id}",
            Some(json!({"content": "{who} was here"})),
            [401, 403, 200, 403, 403],
        ),
        row(
            "DELETE",
            "/v1/channels/{text_channel}/messages/{doomed_message}",
            None,
            [401, 403, 200, 410, 410],
        ),
        // with the member: a new 1:1 room, not with oneself, the owner's again
        row(
            "POST",
            "/v1/dm/rooms",
            Some(json!({"user_ids": ["{member_id}"]})),
            [401, 201, 400, 200, 201],
        ),
        row(
            "POST",
            "/v1/dm/rooms/{room_id}/messages",
            Some(json!({"content": "{who} says hi"})),
            [401, 403, 201, 201, 403],
        ),
        row(
            "POST",
            "/v1/me/notifications/read",
            Some(json!({"up_to": "0000000000000000001-order_paid"})),
            [401, 200, 200, 200, 200],
        ),
        // concerts, queue and reservations
        row("POST", "/v1/concerts", name(), [401, 403, 403, 403, 201]),
        row(
            "POST",
            "/v1/concerts/{concert_id}/schedules",
            Some(
                json!({"starts_at": "2031-01-01T19:00:00Z", "seats": [{"seat_no": 1, "price": 10}]}),
            ),
            [401, 403, 403, 403, 201],
        ),
        row(
            "POST",
            "/v1/queue/tokens",
            Some(json!({"concert_id": "{concert_id}"})),
            [401, 201, 200, 201, 201],
        ),
        // without an `X-Queue-Token`
        row("POST", "/v1/queue/extend", None, [401, 401, 401, 401, 401]),
        row(
            "POST",
            "/v1/reservations",
            Some(json!({"schedule_id": "{schedule_id}", "seat_nos": [2]})),
            [401, 401, 401, 401, 401],
        ),
        row(
            "POST",
            "/v1/reservations/{reservation_id}/payment",
            Some(json!({})),
            [401, 401, 401, 401, 401],
        ),
        row(
            "DELETE",
            "/v1/reservations/{reservation_id}",
            None,
            [401, 403, 200, 403, 200],
        ),
        // coupons
        row(
            "POST",
            "/v1/coupons",
            Some(json!({"name": "{who}", "total_quantity": 10, "discount_amount": 1})),
            [401, 403, 403, 403, 201],
        ),
        row(
            "POST",
            "/v1/coupons/{coupon_id}/issue",
            None,
            [401, 201, 201, 201, 201],
        ),
        // shop: the owner sells, the member bought
        row(
            "POST",
            "/v1/products",
            Some(json!({"name": "{who}'s", "price": 1, "stock": 1})),
            [401, 201, 201, 201, 201],
        ),
        row(
            "PATCH",
            "/v1/products/{product_id}",
            Some(json!({"description": "by {who}"})),
            [401, 403, 403, 200, 403],
        ),
        row(
            "POST",
            "/v1/products/{product_id}/restock",
            Some(json!({"quantity": 1})),
            [401, 403, 403, 200, 403],
        ),
        row(
            "POST",
            "/v1/orders",
            Some(
                json!({"items": [{"product_id": "{product_id}", "quantity": 1}], "idempotency_key": "{who}"}),
            ),
            [401, 201, 201, 201, 201],
        ),
        row(
            "POST",
            "/v1/orders/{order_id}/payment",
            Some(json!({})),
            [401, 403, 200, 403, 403],
        ),
        row(
            "POST",
            "/v1/orders/{order_id}/cancel",
            None,
            [401, 403, 200, 403, 200],
        ),
    ]
}

/// The status a stream answers (and its error body), without reading an
/// accepted stream's endless body.
async fn stream_status(stack: &Stack, path: &str, token: Option<&str>) -> common::Answer {
    let mut req = reqwest::Client::new().get(format!("{}{path}", stack.read().addr));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("the read API answers");
    let status = res.status();
    let body = if status == StatusCode::OK {
        Value::Null
    } else {
        res.json().await.unwrap_or(Value::Null)
    };
    common::Answer {
        status,
        stale: false,
        body,
    }
}

/// Replaces every `{key}` of `text` from `values`.
fn fill(text: &str, values: &BTreeMap<&str, String>) -> String {
    values.iter().fold(text.to_owned(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

fn fill_json(v: &Value, values: &BTreeMap<&str, String>) -> Value {
    serde_json::from_str(&fill(&v.to_string(), values)).unwrap()
}

fn id(a: &common::Answer, field: &str) -> String {
    assert!(a.status.is_success(), "{field}: {} {}", a.status, a.body);
    a.body[field].as_str().unwrap().to_owned()
}

/// The fixture: the guild `guild_id` of `owner` with `member` in it, a
/// forum channel and a post of the member's with a comment of theirs; the
/// member's reservation; a concert, a schedule and a coupon of the admin's;
/// a product of the owner's and the member's order of it; the member's
/// messages in a text channel and the owner's DM room with the member.
async fn fixture(
    stack: &Stack,
) -> (
    BTreeMap<&'static str, String>,
    BTreeMap<&'static str, String>,
) {
    let c: &Client = &stack.client;
    let mut tokens = BTreeMap::new();
    let mut accounts = BTreeMap::new();
    for who in ["other", "member", "owner", "admin"] {
        let (account, token) = c.register(&format!("{who}@example.com"), who).await;
        accounts.insert(who, account.clone());
        let token = if who == "admin" {
            mint_token(&stack.env, &account, "admin")
        } else {
            token
        };
        tokens.insert(who, token);
    }
    let (owner, member, admin) = (&tokens["owner"], &tokens["member"], &tokens["admin"]);
    let mut ids = BTreeMap::new();
    let guild = |name: &'static str| async move {
        id(
            &c.post("/v1/guilds", owner, json!({ "name": name })).await,
            "guild_id",
        )
    };
    let gid = guild("Matrix").await;
    ids.insert("guild_id", gid.clone());
    ids.insert("doomed_guild", guild("Doomed").await);
    ids.insert("join_guild", guild("Join").await);
    let joined = c
        .send(
            Method::POST,
            &format!("/v1/guilds/{gid}/members"),
            member,
            None,
        )
        .await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    let channel = |name: &'static str| {
        let path = format!("/v1/guilds/{gid}/channels");
        async move {
            id(
                &c.post(&path, owner, json!({"name": name, "kind": "forum"}))
                    .await,
                "channel_id",
            )
        }
    };
    let forum = channel("forum").await;
    ids.insert("doomed_channel", channel("doomed").await);
    let post = |title: &'static str| {
        let path = format!("/v1/channels/{forum}/posts");
        async move {
            id(
                &c.post(&path, member, json!({"title": title, "content": "x"}))
                    .await,
                "post_id",
            )
        }
    };
    let pid = post("kept").await;
    ids.insert("doomed_post", post("doomed").await);
    let comment = || {
        let path = format!("/v1/posts/{pid}/comments");
        async move {
            id(
                &c.post(&path, member, json!({"content": "x"})).await,
                "comment_id",
            )
        }
    };
    ids.insert("comment_id", comment().await);
    ids.insert("doomed_comment", comment().await);
    ids.insert("channel_id", forum);
    ids.insert("post_id", pid);
    ids.insert("emoji", "👍".to_owned());

    let text = id(
        &c.post(
            &format!("/v1/guilds/{gid}/channels"),
            owner,
            json!({"name": "chat", "kind": "text"}),
        )
        .await,
        "channel_id",
    );
    let message = || {
        let path = format!("/v1/channels/{text}/messages");
        async move {
            id(
                &c.post(&path, member, json!({"content": "x"})).await,
                "message_id",
            )
        }
    };
    ids.insert("message_id", message().await);
    ids.insert("doomed_message", message().await);
    ids.insert("text_channel", text);
    let room = c
        .post(
            "/v1/dm/rooms",
            owner,
            json!({"user_ids": [accounts["member"]]}),
        )
        .await;
    assert_eq!(room.status, StatusCode::CREATED, "{}", room.body);
    ids.insert("room_id", id(&room, "room_id"));
    ids.insert("member_id", accounts["member"].clone());
    ids.insert("aggregate_type", "account".to_owned());
    ids.insert("aggregate_id", accounts["member"].clone());
    // no letter is pending: an admin is told so
    ids.insert("letter_id", "accounts:account:none:1".to_owned());

    let concert = id(
        &c.post("/v1/concerts", admin, json!({"name": "Matrix"}))
            .await,
        "concert_id",
    );
    let seats: Vec<Value> = (1..=4)
        .map(|n| json!({"seat_no": n, "price": 10}))
        .collect();
    let schedule = id(
        &c.post(
            &format!("/v1/concerts/{concert}/schedules"),
            admin,
            json!({"starts_at": "2030-01-01T19:00:00Z", "seats": seats}),
        )
        .await,
        "schedule_id",
    );
    let queue = active_queue_token(c, member, &concert).await;
    let hold = c
        .queued(
            Method::POST,
            "/v1/reservations",
            member,
            &queue,
            Some(json!({"schedule_id": schedule, "seat_nos": [1]})),
        )
        .await;
    ids.insert("reservation_id", id(&hold, "reservation_id"));
    ids.insert("concert_id", concert);
    ids.insert("schedule_id", schedule);
    ids.insert(
        "coupon_id",
        id(
            &c.post(
                "/v1/coupons",
                admin,
                json!({"name": "Matrix", "total_quantity": 10, "discount_amount": 1}),
            )
            .await,
            "coupon_id",
        ),
    );
    let product = id(
        &c.post(
            "/v1/products",
            owner,
            json!({"name": "Matrix lamp", "price": 1, "stock": 100}),
        )
        .await,
        "product_id",
    );
    let order = c
        .post(
            "/v1/orders",
            member,
            json!({"items": [{"product_id": product, "quantity": 1}], "idempotency_key": "matrix"}),
        )
        .await;
    ids.insert("order_id", id(&order, "order_id"));
    ids.insert("product_id", product);
    let webhook = c
        .post(
            "/v1/admin/webhooks",
            admin,
            json!({"url": "http://127.0.0.1:9/matrix", "event_types": ["OrderPaid"], "secret": "s"}),
        )
        .await;
    ids.insert("webhook_id", id(&webhook, "webhook_id"));
    (tokens, ids)
}

#[tokio::test]
async fn every_operation_answers_each_kind_of_caller_as_documented() {
    // webhooks of the matrix point at loopback; the fixture's hold and
    // order must outlive the matrix, which asks who may cancel or pay them,
    // not when they expire (a hold of the scenarios' 3 s expired before
    // the matrix reached its cancel rows once, three tests on two cores)
    let stack = Stack::embedded(&[
        ("TESSERA_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("TESSERA_HOLD_TTL_SECONDS", "300"),
        ("TESSERA_ORDER_TTL_SECONDS", "300"),
    ])
    .await;
    let c = &stack.client;
    let (tokens, ids) = fixture(&stack).await;
    stack.wait_caught_up().await;

    let doc = c.call(Method::GET, "/openapi.json", None, None).await;
    let documented: BTreeSet<(String, String)> = doc.body["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let rows = matrix();
    // the rows name the document's templates; a fixture key stands for its parameter
    let template = |path: &str| {
        path.replace("{join_guild}", "{guild_id}")
            .replace("{doomed_guild}", "{guild_id}")
            .replace("{doomed_channel}", "{channel_id}")
            .replace("{doomed_post}", "{post_id}")
            .replace("{doomed_comment}", "{comment_id}")
            .replace("{text_channel}", "{channel_id}")
            .replace("{doomed_message}", "{message_id}")
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let covered: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_owned(), template(r.path)))
        .collect();
    assert_eq!(
        documented.difference(&covered).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "operations without a row in the matrix"
    );
    assert_eq!(
        covered.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "rows for operations the documents do not have"
    );

    let mut wrong = Vec::new();
    let mut cells = 0;
    for r in &rows {
        let path = fill(r.path, &ids);
        for (who, want) in WHO.iter().zip(r.want) {
            let mut values = ids.clone();
            values.insert("who", (*who).to_owned());
            let body = r.body.as_ref().map(|b| fill_json(b, &values));
            let method = Method::from_bytes(r.method.as_bytes()).unwrap();
            let token = tokens.get(who).map(String::as_str);
            let answer = if path.starts_with("/v1/stream") {
                stream_status(&stack, &path, token).await
            } else {
                c.call(method, &path, token, body).await
            };
            cells += 1;
            if answer.status.as_u16() != want {
                wrong.push(format!(
                    "{} {} as {who}: {} (want {want}) {}",
                    r.method, r.path, answer.status, answer.body
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {cells} answers are not the documented ones:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    eprintln!(
        "authorization matrix: {} operations x {} callers = {cells} answers",
        rows.len(),
        WHO.len()
    );
}
