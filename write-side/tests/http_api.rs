//! The command API's contract (API.md), driven through the router with
//! `oneshot` on the embedded store: status codes, the error shape, and that
//! a rejected command writes nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::SqlitePool;
use tessera_http::auth::{Authenticator, Role};
use tessera_http::layers::with_common_layers;
use tessera_queue::{QueueConfig, QueueGate};
use tessera_write_side::app::{Parts, WriteSide, WriteState};
use tessera_write_side::bus::BusConfig;
use tessera_write_side::health::SqlReady;
use tessera_write_side::store::credentials::SqliteCredentials;
use tessera_write_side::store::state::SqliteState;
use tessera_write_side::store::{sqlite, Store};
use tower::ServiceExt;

const SECRET: [u8; 32] = [42; 32];

struct Api {
    app: Router,
    events: SqlitePool,
    auth: Arc<Authenticator>,
    state: Arc<SqliteState>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let events = sqlite::open(&dir.path().join("events.db"), 4)
        .await
        .unwrap();
    sqlite::migrate(&events).await.unwrap();
    let creds = sqlite::open(&dir.path().join("credentials.db"), 2)
        .await
        .unwrap();
    let creds = Arc::new(SqliteCredentials::new(creds).await.unwrap());
    let auth = Arc::new(
        Authenticator::hs256(&SECRET, "tessera", "tessera-api", Duration::from_secs(600)).unwrap(),
    );
    let readiness = Arc::new(SqlReady::Sqlite("event_store", events.clone()));
    let state = sqlite::open(&dir.path().join("state.db"), 2).await.unwrap();
    let state = Arc::new(SqliteState::new(state).await.unwrap());
    let ws = WriteSide::new(Parts {
        store: Store::new(sqlite::repo(events.clone())),
        credentials: creds,
        auth: Arc::clone(&auth),
        readiness: readiness.clone(),
        directory: state.clone(),
        queue: Arc::new(QueueGate::new(
            state.clone(),
            &SECRET,
            QueueConfig::default(),
        )),
        bus: BusConfig::default(),
        hold_ttl: Duration::from_secs(300),
        order_ttl: Duration::from_secs(900),
        unread: None,
    });
    let app = with_common_layers(
        Router::new()
            .merge(tessera_write_side::http::router(WriteState(Arc::new(ws))))
            .merge(tessera_http::ops::router(
                readiness,
                tessera_http::ops::ApiDocs {
                    openapi: Some(
                        serde_json::to_value(tessera_write_side::http::openapi()).unwrap(),
                    ),
                    asyncapi: None,
                    console: false,
                },
                None,
            )),
    );
    Api {
        app,
        events,
        auth,
        state,
        _dir: dir,
    }
}

impl Api {
    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            // every error answers in the one documented shape
            let e = &body["error"];
            assert!(
                e["code"].is_string() && e["message"].is_string() && e["details"].is_object(),
                "{status}: {body}"
            );
        }
        (status, body)
    }

    async fn send(&self, req: Req<'_>) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(req.method).uri(req.path);
        if let Some(t) = req.token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        if let Some(q) = req.queue {
            builder = builder.header("x-queue-token", q);
        }
        let req = match req.body {
            Some(b) => builder
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => builder.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.events)
            .await
            .unwrap()
    }

    /// Registers and logs in; returns (account id, token).
    async fn user(&self, email: &str, nickname: &str) -> (String, String) {
        let account = json!({"email": email, "password": "password123", "nickname": nickname});
        let (s, b) = self.send(post("/v1/accounts", None, Some(account))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let id = b["account_id"].as_str().unwrap().to_owned();
        let login = json!({"email": email, "password": "password123"});
        let (s, b) = self.send(post("/v1/auth/token", None, Some(login))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["token_type"], "Bearer");
        (id, b["access_token"].as_str().unwrap().to_owned())
    }
}

/// A request: method, path, bearer token, JSON body, and the queue token
/// that a seat hold and its payment carry.
struct Req<'a> {
    method: &'static str,
    path: &'a str,
    token: Option<&'a str>,
    body: Option<Value>,
    queue: Option<&'a str>,
}

fn get<'a>(path: &'a str, token: Option<&'a str>) -> Req<'a> {
    Req {
        method: "GET",
        path,
        token,
        body: None,
        queue: None,
    }
}

fn delete<'a>(path: &'a str, token: Option<&'a str>) -> Req<'a> {
    Req {
        method: "DELETE",
        ..get(path, token)
    }
}

fn post<'a>(path: &'a str, token: Option<&'a str>, body: Option<Value>) -> Req<'a> {
    Req {
        method: "POST",
        body,
        ..get(path, token)
    }
}

fn patch<'a>(path: &'a str, token: Option<&'a str>, body: Option<Value>) -> Req<'a> {
    Req {
        method: "PATCH",
        ..post(path, token, body)
    }
}

fn put<'a>(path: &'a str, token: Option<&'a str>, body: Option<Value>) -> Req<'a> {
    Req {
        method: "PUT",
        ..post(path, token, body)
    }
}

/// A hold on `seats` of the schedule `schedule`.
fn hold<'a>(schedule: &str, token: &'a str, queue: Option<&'a str>, seats: &Value) -> Req<'a> {
    let body = json!({"schedule_id": schedule, "seat_nos": seats});
    post("/v1/reservations", Some(token), Some(body)).queued(queue)
}

impl<'a> Req<'a> {
    fn queued(self, queue: Option<&'a str>) -> Self {
        Self { queue, ..self }
    }

    /// This request in a rule table, with the answer it must get.
    fn gets(self, status: StatusCode, want: Want) -> Case<'a> {
        Case {
            req: self,
            status,
            want,
        }
    }
}

/// What an answer must carry besides its status.
enum Want {
    /// The error code.
    Code(&'static str),
    /// The field an `invalid_input` names.
    Field(&'static str),
    /// Only the status.
    Any,
}

use Want::{Any, Code, Field};

/// A request and the answer it must get.
struct Case<'a> {
    req: Req<'a>,
    status: StatusCode,
    want: Want,
}

impl Api {
    /// Sends each request in turn, checking its answer: a rule table.
    async fn answers(&self, cases: Vec<Case<'_>>) {
        for Case { req, status, want } in cases {
            let (method, path) = (req.method, req.path);
            let (s, b) = self.send(req).await;
            let (got, wanted) = match want {
                Code(w) => (code(&b), w),
                Field(w) => (field(&b), w),
                Any => ("", ""),
            };
            assert_eq!((s, got), (status, wanted), "{method} {path}: {b}");
        }
    }
}

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or_default()
}

fn field(b: &Value) -> &str {
    b["error"]["details"]["field"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn registration_validates_every_field_and_takes_each_email_once() {
    let api = api().await;
    let (s, b) = api
        .send(post(
            "/v1/accounts",
            None,
            Some(json!({"email": "Kim@Example.com", "password": "password123", "nickname": "kim"})),
        ))
        .await;
    assert_eq!((s, b["version"].as_u64()), (StatusCode::CREATED, Some(1)));
    let (s, b) = api
        .send(post(
            "/v1/accounts",
            None,
            Some(json!({"email": "kim@example.COM", "password": "password123", "nickname": "k2"})),
        ))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "email_taken"));
    for (body, bad) in [
        (
            json!({"email": "no-at-sign", "password": "password123", "nickname": "n"}),
            "email",
        ),
        (
            json!({"email": "a@b.c", "password": "short", "nickname": "n"}),
            "password",
        ),
        (
            json!({"email": "a@b.c", "password": "x".repeat(129), "nickname": "n"}),
            "password",
        ),
        (
            json!({"email": "a@b.c", "password": "password123", "nickname": ""}),
            "nickname",
        ),
        (
            json!({"email": "a@b.c", "password": "password123", "nickname": "n".repeat(33)}),
            "nickname",
        ),
        (
            json!({"email": "a@b.c", "password": "password123", "nickname": 7}),
            "nickname",
        ),
        (
            json!({"email": "a@b.c", "password": "password123"}),
            "nickname",
        ),
        (
            json!({"email": "a@b.c", "password": "password123", "nickname": "n", "admin": true}),
            "admin",
        ),
    ] {
        let (s, b) = api.send(post("/v1/accounts", None, Some(body))).await;
        assert_eq!(
            (s, code(&b), field(&b)),
            (StatusCode::BAD_REQUEST, "invalid_input", bad),
            "{b}"
        );
    }
    assert_eq!(
        api.event_count().await,
        1,
        "rejected registrations wrote nothing"
    );
}

#[tokio::test]
async fn malformed_bodies_get_clear_4xx_answers() {
    let api = api().await;
    let post = |body: Body, content_type: Option<&str>| {
        let mut r = Request::post("/v1/accounts");
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        r.body(body).unwrap()
    };
    let (s, b) = api
        .raw(post(Body::from("{\"email\": "), Some("application/json")))
        .await;
    assert_eq!(
        (s, code(&b), field(&b)),
        (StatusCode::BAD_REQUEST, "invalid_input", "body")
    );
    let (s, b) = api
        .raw(post(Body::from("[1, 2]"), Some("application/json")))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid_input"));
    let (s, b) = api.raw(post(Body::from("{}"), None)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let big = format!("{{\"email\": \"{}\"}}", "x".repeat(70_000));
    let (s, b) = api
        .raw(post(Body::from(big.clone()), Some("application/json")))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // also when the length is not declared up front (chunked)
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let (s, _) = api
        .raw(post(Body::from_stream(stream), Some("application/json")))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    api.answers(vec![
        get("/v1/nowhere", None).gets(StatusCode::NOT_FOUND, Code("not_found")),
        delete("/v1/accounts", None)
            .gets(StatusCode::METHOD_NOT_ALLOWED, Code("method_not_allowed")),
    ])
    .await;
    assert_eq!(api.event_count().await, 0);
}

#[tokio::test]
async fn tokens_are_checked_for_signature_expiry_and_presence() {
    let api = api().await;
    let (_, token) = api.user("t@x.y", "t").await;
    let new_nickname = json!({"nickname": "new"});
    let (s, b) = api
        .send(patch("/v1/accounts/me", None, Some(new_nickname.clone())))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let forged =
        Authenticator::hs256(&[1; 32], "tessera", "tessera-api", Duration::from_secs(60)).unwrap();
    let (s, _) = api
        .send(patch(
            "/v1/accounts/me",
            Some(&forged.issue("x", Role::Admin).access_token),
            Some(new_nickname.clone()),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let now = chrono::Utc::now().timestamp();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "x", "role": "user", "iss": "tessera", "aud": "tessera-api", "iat": now - 100, "exp": now - 60, "jti": "j"}),
        &jsonwebtoken::EncodingKey::from_secret(&SECRET),
    )
    .unwrap();
    let (s, b) = api
        .send(patch(
            "/v1/accounts/me",
            Some(&expired),
            Some(new_nickname.clone()),
        ))
        .await;
    assert_eq!(
        (s, b["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token expired"))
    );
    api.answers(vec![
        post(
            "/v1/auth/token",
            None,
            Some(json!({"email": "t@x.y", "password": "wrong-password"})),
        )
        .gets(StatusCode::UNAUTHORIZED, Code("unauthorized")),
        post(
            "/v1/auth/token",
            None,
            Some(json!({"email": "nobody@x.y", "password": "password123"})),
        )
        .gets(StatusCode::UNAUTHORIZED, Any),
    ])
    .await;
    let (s, b) = api
        .send(patch("/v1/accounts/me", Some(&token), Some(new_nickname)))
        .await;
    assert_eq!((s, b["version"].as_u64()), (StatusCode::OK, Some(2)));
    // a valid token for an account that does not exist
    let ghost = api.auth.issue("ghost", Role::User).access_token;
    let (s, b) = api
        .send(patch(
            "/v1/accounts/me",
            Some(&ghost),
            Some(json!({"nickname": "g"})),
        ))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn charges_are_idempotent_per_key_and_bounded() {
    let api = api().await;
    let (_, t) = api.user("c@x.y", "c").await;
    let charge = |amount: Value, key: &str| json!({"amount": amount, "idempotency_key": key});
    let (s, first) = api
        .send(post(
            "/v1/accounts/me/charge",
            Some(&t),
            Some(charge(json!(300), "k1")),
        ))
        .await;
    assert_eq!(
        (s, first.clone()),
        (StatusCode::OK, json!({"balance": 300, "version": 2}))
    );
    let (_, b) = api
        .send(post(
            "/v1/accounts/me/charge",
            Some(&t),
            Some(charge(json!(200), "k2")),
        ))
        .await;
    assert_eq!(b, json!({"balance": 500, "version": 3}));
    // the first key again: the first answer, no second charge
    let (s, again) = api
        .send(post(
            "/v1/accounts/me/charge",
            Some(&t),
            Some(charge(json!(300), "k1")),
        ))
        .await;
    assert_eq!((s, again), (StatusCode::OK, first));
    let (s, b) = api
        .send(post(
            "/v1/accounts/me/charge",
            Some(&t),
            Some(charge(json!(301), "k1")),
        ))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    for amount in [
        json!(0),
        json!(-1),
        json!(1_000_001),
        json!(1.5),
        json!("10"),
        json!(1e30),
    ] {
        let (s, b) = api
            .send(post(
                "/v1/accounts/me/charge",
                Some(&t),
                Some(charge(amount.clone(), "kx")),
            ))
            .await;
        assert_eq!(
            (s, field(&b)),
            (StatusCode::BAD_REQUEST, "amount"),
            "{amount}: {b}"
        );
    }
    let (s, b) = api
        .send(post(
            "/v1/accounts/me/charge",
            Some(&t),
            Some(charge(json!(1), "")),
        ))
        .await;
    assert_eq!((s, field(&b)), (StatusCode::BAD_REQUEST, "idempotency_key"));
    assert_eq!(api.event_count().await, 3);
}

#[tokio::test]
async fn guild_rules_answer_403_404_409_410_and_422() {
    let api = api().await;
    let (owner_id, owner) = api.user("o@x.y", "owner").await;
    let (_, ann) = api.user("a@x.y", "ann").await;
    let (s, g) = api
        .send(post(
            "/v1/guilds",
            Some(&owner),
            Some(json!({"name": "Crabs"})),
        ))
        .await;
    assert_eq!((s, g["version"].as_u64()), (StatusCode::CREATED, Some(1)));
    let gid = g["guild_id"].as_str().unwrap();
    let path = |p: &str| format!("/v1/guilds/{gid}{p}");

    let (s, b) = api
        .send(patch(&path(""), Some(&ann), Some(json!({"name": "Mine"}))))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, b) = api.send(post(&path("/members"), Some(&ann), None)).await;
    assert_eq!((s, b["version"].as_u64()), (StatusCode::CREATED, Some(2)));
    api.answers(vec![
        post(&path("/members"), Some(&ann), None)
            .gets(StatusCode::CONFLICT, Code("already_member")),
        delete(&path("/members/me"), Some(&owner))
            .gets(StatusCode::CONFLICT, Code("owner_cannot_leave")),
    ])
    .await;
    let (s, b) = api
        .send(put(
            &path("/members/me/nickname"),
            Some(&ann),
            Some(json!({"nickname": "Annie"})),
        ))
        .await;
    assert_eq!((s, b["version"].as_u64()), (StatusCode::OK, Some(3)));
    let (s, b) = api
        .send(put(
            &path("/members/me/nickname"),
            Some(&ann),
            Some(json!({"nickname": ""})),
        ))
        .await;
    assert_eq!((s, field(&b)), (StatusCode::BAD_REQUEST, "nickname"));

    let (s, c) = api
        .send(post(
            &path("/categories"),
            Some(&owner),
            Some(json!({"name": "Talk"})),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = api
        .send(post(
            &path("/categories"),
            Some(&owner),
            Some(json!({"name": "talk"})),
        ))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "name_taken"));
    let channel = |name: &str, kind: &str, cat: Value| json!({"name": name, "kind": kind, "category_id": cat});
    let (s, ch) = api
        .send(post(
            &path("/channels"),
            Some(&owner),
            Some(channel("general", "forum", c["category_id"].clone())),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    api.answers(vec![
        post(
            &path("/channels"),
            Some(owner.as_str()),
            Some(channel("general", "text", Value::Null)),
        )
        .gets(StatusCode::CONFLICT, Code("name_taken")),
        post(
            &path("/channels"),
            Some(owner.as_str()),
            Some(channel("voice", "voice", Value::Null)),
        )
        .gets(StatusCode::BAD_REQUEST, Field("kind")),
        post(
            &path("/channels"),
            Some(owner.as_str()),
            Some(channel("x", "text", json!("nope"))),
        )
        .gets(StatusCode::UNPROCESSABLE_ENTITY, Code("unknown_category")),
        post(
            &path("/channels"),
            Some(ann.as_str()),
            Some(channel("mine", "text", Value::Null)),
        )
        .gets(StatusCode::FORBIDDEN, Code("forbidden")),
    ])
    .await;
    let (s, b) = api
        .send(delete(&path("/channels/unknown"), Some(&owner)))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not_found"));
    let ch_id = ch["channel_id"].as_str().unwrap();
    let (s, _) = api
        .send(delete(&path(&format!("/channels/{ch_id}")), Some(&owner)))
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, b) = api
        .send(post("/v1/guilds/does-not-exist/members", Some(&ann), None))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not_found"));
    let long = "x".repeat(600);
    let (s, _) = api
        .send(post(
            &format!("/v1/guilds/{long}/members"),
            Some(&ann),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let before = api.event_count().await;
    let (s, _) = api.send(delete(&path(""), Some(&ann))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        api.event_count().await,
        before,
        "a refused delete wrote nothing"
    );
    let (s, _) = api.send(delete(&path(""), Some(&owner))).await;
    assert_eq!(s, StatusCode::OK);
    for (method, p, body) in [
        ("POST", "/members", None),
        ("DELETE", "/members/me", None),
        ("PATCH", "", Some(json!({"name": "again"}))),
        ("DELETE", "", None),
        (
            "POST",
            "/channels",
            Some(channel("late", "text", Value::Null)),
        ),
    ] {
        let token = if p.contains("members") { &ann } else { &owner };
        let (s, b) = api
            .send(Req {
                method,
                path: &path(p),
                token: Some(token),
                body,
                queue: None,
            })
            .await;
        assert_eq!((s, code(&b)), (StatusCode::GONE, "gone"), "{method} {p}");
    }
    // an admin token for an id with no account cannot create a guild
    let admin = api.auth.issue("not-an-account", Role::Admin).access_token;
    let (s, b) = api
        .send(post("/v1/guilds", Some(&admin), Some(json!({"name": "x"}))))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "account_not_found"));
    assert!(!owner_id.is_empty());
}

#[tokio::test]
async fn health_readiness_and_the_openapi_document_are_served() {
    let api = api().await;
    let (s, b) = api.send(get("/healthz", None)).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, b) = api.send(get("/readyz", None)).await;
    assert_eq!(
        (s, b["checks"]["event_store"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (s, doc) = api.send(get("/openapi.json", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/v1/accounts", "post"),
        ("/v1/auth/token", "post"),
        ("/v1/accounts/me", "patch"),
        ("/v1/accounts/me/charge", "post"),
        ("/v1/guilds", "post"),
        ("/v1/guilds/{guild_id}", "patch"),
        ("/v1/guilds/{guild_id}", "delete"),
        ("/v1/guilds/{guild_id}/members", "post"),
        ("/v1/guilds/{guild_id}/members/me", "delete"),
        ("/v1/guilds/{guild_id}/members/me/nickname", "put"),
        ("/v1/guilds/{guild_id}/categories", "post"),
        ("/v1/guilds/{guild_id}/channels", "post"),
        ("/v1/guilds/{guild_id}/channels/{channel_id}", "delete"),
        ("/v1/channels/{channel_id}/posts", "post"),
        ("/v1/posts/{post_id}", "patch"),
        ("/v1/posts/{post_id}/comments/{comment_id}", "delete"),
        ("/v1/posts/{post_id}/reactions/{emoji}", "put"),
        ("/v1/concerts", "post"),
        ("/v1/concerts/{concert_id}/schedules", "post"),
        ("/v1/queue/tokens", "post"),
        ("/v1/reservations", "post"),
        ("/v1/reservations/{reservation_id}/payment", "post"),
        ("/v1/reservations/{reservation_id}", "delete"),
        ("/v1/coupons", "post"),
        ("/v1/coupons/{coupon_id}/issue", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn concerts_queue_and_reservations_refuse_what_they_must() {
    use tessera_queue::QueueStore;

    let api = api().await;
    let (_, fan) = api.user("f@x.y", "fan").await;
    let admin = api.auth.issue("root", Role::Admin).access_token;
    let (s, b) = api
        .send(post("/v1/concerts", Some(&fan), Some(json!({"name": "x"}))))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, c) = api
        .send(post(
            "/v1/concerts",
            Some(&admin),
            Some(json!({"name": "Live"})),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let cid = c["concert_id"].as_str().unwrap().to_owned();
    let seats = |n: u32| {
        (1..=n)
            .map(|i| json!({"seat_no": i, "price": 100}))
            .collect::<Vec<_>>()
    };
    let path = format!("/v1/concerts/{cid}/schedules");
    for (body, wanted) in [
        (
            json!({"starts_at": "2026-12-24T19:00:00Z", "seats": []}),
            "seats",
        ),
        (
            json!({"starts_at": "2026-12-24T19:00:00Z", "seats": [{"seat_no": 1, "price": -5}]}),
            "seats",
        ),
        (
            json!({"starts_at": "tomorrow", "seats": seats(2)}),
            "starts_at",
        ),
        (
            json!({"starts_at": "2026-12-24T19:00:00Z", "seats": [{"seat_no": "a", "price": 1}]}),
            "seats[0].seat_no",
        ),
    ] {
        let (s, b) = api.send(post(&path, Some(&admin), Some(body))).await;
        assert_eq!((s, field(&b)), (StatusCode::BAD_REQUEST, wanted), "{b}");
    }
    let (s, b) = api
        .send(post(
            "/v1/concerts/nope/schedules",
            Some(&admin),
            Some(json!({"starts_at": "2026-12-24T19:00:00Z", "seats": seats(1)})),
        ))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "concert_not_found"));
    let (_, sched) = api
        .send(post(
            &path,
            Some(&admin),
            Some(json!({"starts_at": "2026-12-24T19:00:00Z", "seats": seats(4)})),
        ))
        .await;
    let sid = sched["schedule_id"].as_str().unwrap().to_owned();

    let (s, b) = api
        .send(post(
            "/v1/queue/tokens",
            Some(&fan),
            Some(json!({"concert_id": "nope"})),
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, t) = api
        .send(post(
            "/v1/queue/tokens",
            Some(&fan),
            Some(json!({"concert_id": cid})),
        ))
        .await;
    assert_eq!(
        (s, t["status"].as_str(), t["position"].as_u64()),
        (StatusCode::CREATED, Some("waiting"), Some(1))
    );
    let queue = t["token"].as_str().unwrap().to_owned();

    let before = api.event_count().await;
    let (s, b) = api.send(hold(&sid, &fan, None, &json!([1]))).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "queue_token_required")
    );
    let (s, b) = api
        .send(hold(&sid, &fan, Some("garbage"), &json!([1])))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "queue_token_invalid")
    );
    let (s, b) = api.send(hold(&sid, &fan, Some(&queue), &json!([1]))).await;
    assert_eq!((s, code(&b)), (StatusCode::LOCKED, "queue_not_active"));
    assert_eq!(b["error"]["details"]["position"], 1);
    // an access token is not a queue token
    let (s, _) = api.send(hold(&sid, &fan, Some(&fan), &json!([1]))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    api.state.advance(100, chrono::Utc::now()).await.unwrap(); // one admission tick
    let (_, other) = api.user("o@x.y", "other").await;
    let (s, b) = api
        .send(hold(&sid, &other, Some(&queue), &json!([1])))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "someone else's token"
    );
    for (seats, status, expected) in [
        (json!([]), StatusCode::BAD_REQUEST, "invalid_input"),
        (
            json!([1, 2, 3, 4, 1]),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (json!([1, 1]), StatusCode::BAD_REQUEST, "invalid_input"),
        (json!([9]), StatusCode::UNPROCESSABLE_ENTITY, "unknown_seat"),
        (json!(["1"]), StatusCode::BAD_REQUEST, "invalid_input"),
    ] {
        let (s, b) = api.send(hold(&sid, &fan, Some(&queue), &seats)).await;
        assert_eq!((s, code(&b)), (status, expected), "{seats}: {b}");
    }
    assert_eq!(
        api.event_count().await,
        before + 1,
        "only the other user's registration was written"
    );

    let (s, h) = api
        .send(hold(&sid, &fan, Some(&queue), &json!([1, 2])))
        .await;
    assert_eq!(
        (s, h["amount"].as_i64()),
        (StatusCode::CREATED, Some(200)),
        "{h}"
    );
    let rid = h["reservation_id"].as_str().unwrap().to_owned();
    let pay = format!("/v1/reservations/{rid}/payment");
    let (s, b) = api
        .send(post(&pay, Some(&fan), Some(json!({}))).queued(Some(&queue)))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_points")
    );
    let (s, b) = api
        .send(post(&pay, Some(&fan), Some(json!({"coupon_id": "nope"}))).queued(Some(&queue)))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not_found"), "{b}");
    api.answers(vec![
        post("/v1/reservations/nope/payment", Some(&fan), Some(json!({})))
            .queued(Some(&queue))
            .gets(StatusCode::NOT_FOUND, Code("not_found")),
        delete(&format!("/v1/reservations/{rid}"), Some(&other))
            .gets(StatusCode::FORBIDDEN, Code("forbidden")),
    ])
    .await;
    let (s, b) = api
        .send(delete(&format!("/v1/reservations/{rid}"), Some(&admin)))
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "an admin may cancel"
    );

    // coupons
    api.answers(vec![
        post(
            "/v1/coupons",
            Some(&admin),
            Some(json!({"name": "c", "total_quantity": 0, "discount_amount": 1})),
        )
        .gets(StatusCode::BAD_REQUEST, Field("total_quantity")),
        post("/v1/coupons/nope/issue", Some(&fan), None)
            .gets(StatusCode::NOT_FOUND, Code("not_found")),
    ])
    .await;
}

#[tokio::test]
async fn board_commands_refuse_what_they_must() {
    let api = api().await;
    let (_, owner) = api.user("o@x.y", "owner").await;
    let (_, stranger) = api.user("s@x.y", "stranger").await;
    let (_, g) = api
        .send(post("/v1/guilds", Some(&owner), Some(json!({"name": "G"}))))
        .await;
    let gid = g["guild_id"].as_str().unwrap();
    let (_, ch) = api
        .send(post(
            &format!("/v1/guilds/{gid}/channels"),
            Some(&owner),
            Some(json!({"name": "f", "kind": "forum"})),
        ))
        .await;
    let posts = format!("/v1/channels/{}/posts", ch["channel_id"].as_str().unwrap());
    for (body, wanted) in [
        (json!({"title": "", "content": "c"}), "title"),
        (json!({"title": "t".repeat(201), "content": "c"}), "title"),
        (
            json!({"title": "t", "content": "c".repeat(20_001)}),
            "content",
        ),
        (json!({"title": "t"}), "content"),
    ] {
        let (s, b) = api.send(post(&posts, Some(&owner), Some(body))).await;
        assert_eq!((s, field(&b)), (StatusCode::BAD_REQUEST, wanted), "{b}");
    }
    let (s, b) = api
        .send(post(
            &posts,
            Some(&stranger),
            Some(json!({"title": "t", "content": "c"})),
        ))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "not_member"));
    let (s, p) = api
        .send(post(
            &posts,
            Some(&owner),
            Some(json!({"title": "t", "content": "c"})),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let pid = p["post_id"].as_str().unwrap();
    api.answers(vec![
        post(
            &format!("/v1/posts/{pid}/comments"),
            Some(stranger.as_str()),
            Some(json!({"content": "hi"})),
        )
        .gets(StatusCode::FORBIDDEN, Code("not_member")),
        patch(
            &format!("/v1/posts/{pid}/comments/nope"),
            Some(owner.as_str()),
            Some(json!({"content": "x"})),
        )
        .gets(StatusCode::NOT_FOUND, Code("not_found")),
    ])
    .await;
    let long_emoji = "%F0%9F%91%8D".repeat(33);
    let (s, b) = api
        .send(put(
            &format!("/v1/posts/{pid}/reactions/{long_emoji}"),
            Some(&owner),
            None,
        ))
        .await;
    assert_eq!((s, field(&b)), (StatusCode::BAD_REQUEST, "emoji"), "{b}");
    api.answers(vec![
        put("/v1/posts/nope/reactions/x", Some(&owner), None)
            .gets(StatusCode::NOT_FOUND, Code("not_found")),
        delete(&format!("/v1/posts/{pid}"), Some(&owner)).gets(StatusCode::OK, Any),
        post(
            &format!("/v1/posts/{pid}/comments"),
            Some(&owner),
            Some(json!({"content": "late"})),
        )
        .gets(StatusCode::GONE, Code("gone")),
    ])
    .await;
}

#[tokio::test]
async fn one_user_asking_for_a_queue_token_at_once_gets_one_place_on_sqlite() {
    let api = api().await;
    let admin = api.auth.issue("root", Role::Admin).access_token;
    let (s, c) = api
        .send(post(
            "/v1/concerts",
            Some(&admin),
            Some(json!({"name": "Q"})),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let cid = c["concert_id"].as_str().unwrap().to_owned();
    let (_, fan) = api.user("q@x.y", "fan").await;
    let (_, other) = api.user("o@x.y", "other").await;
    let body = json!({ "concert_id": cid });
    let answers = futures::future::join_all((0..40).map(|i| {
        let token = if i % 4 == 0 { &other } else { &fan };
        api.send(post("/v1/queue/tokens", Some(token), Some(body.clone())))
    }))
    .await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let positions: std::collections::BTreeSet<u64> = answers
        .iter()
        .map(|(s, b)| {
            assert!(s.is_success(), "{s} {b}");
            b["position"].as_u64().unwrap()
        })
        .collect();
    assert_eq!((created, positions.len()), (2, 2), "{answers:?}");
}

#[tokio::test]
async fn shop_commands_refuse_bad_input_and_write_nothing_when_they_do() {
    let api = api().await;
    let (_, seller) = api.user("s@x.y", "seller").await;
    let (_, buyer) = api.user("b@x.y", "buyer").await;
    let (_, other) = api.user("o@x.y", "other").await;
    let (s, p) = api
        .send(post(
            "/v1/products",
            Some(&seller),
            Some(json!({"name": "Lamp", "price": 100, "stock": 3})),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let pid = p["product_id"].as_str().unwrap().to_owned();
    let (s, o) = api
        .send(post(
            "/v1/orders",
            Some(&buyer),
            Some(json!({"items": [{"product_id": pid, "quantity": 1}], "idempotency_key": "k"})),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let oid = o["order_id"].as_str().unwrap().to_owned();
    let before = api.event_count().await;
    let product = |body: Value| Some(body);
    let new_product = |body: Value| post("/v1/products", Some(seller.as_str()), Some(body));
    let order = |items: Value, key: &str| Some(json!({"items": items, "idempotency_key": key}));
    let line = |q: u32| json!([{"product_id": pid, "quantity": q}]);
    let p_path = format!("/v1/products/{pid}");
    let r_path = format!("/v1/products/{pid}/restock");
    let pay_path = format!("/v1/orders/{oid}/payment");
    let cancel_path = format!("/v1/orders/{oid}/cancel");
    let long = "x".repeat(101);
    let s = Some(seller.as_str());
    let b = Some(buyer.as_str());
    let bad = StatusCode::BAD_REQUEST;
    api.answers(vec![
        new_product(json!({"name": "", "price": 1, "stock": 1})).gets(bad, Field("name")),
        new_product(json!({"name": long, "price": 1, "stock": 1})).gets(bad, Field("name")),
        new_product(json!({"name": "a\tb", "price": 1, "stock": 1})).gets(bad, Field("name")),
        new_product(json!({"name": "x", "price": 0, "stock": 1})).gets(bad, Field("price")),
        new_product(json!({"name": "x", "price": 10_000_001, "stock": 1}))
            .gets(bad, Field("price")),
        new_product(json!({"name": "x", "price": 1, "stock": 1_000_001})).gets(bad, Field("stock")),
        new_product(json!({"name": "x", "price": 1, "stock": -1})).gets(bad, Code("invalid_input")),
        new_product(json!({"name": "x", "price": 1, "stock": 1, "description": " "}))
            .gets(bad, Field("description")),
        new_product(json!(["x", 1, 1])).gets(bad, Code("invalid_input")),
        patch(&p_path, s, product(json!({"price": 0}))).gets(bad, Field("price")),
        patch(&p_path, b, product(json!({"price": 5})))
            .gets(StatusCode::FORBIDDEN, Code("forbidden")),
        patch("/v1/products/nope", s, product(json!({"price": 5})))
            .gets(StatusCode::NOT_FOUND, Code("not_found")),
        post(&r_path, s, product(json!({"quantity": 0}))).gets(bad, Field("quantity")),
        post(&r_path, s, product(json!({"quantity": 999_998})))
            .gets(StatusCode::UNPROCESSABLE_ENTITY, Code("stock_full")),
        post(&r_path, b, product(json!({"quantity": 1})))
            .gets(StatusCode::FORBIDDEN, Code("forbidden")),
        post("/v1/orders", b, order(json!([]), "k2")).gets(bad, Field("items")),
        post("/v1/orders", b, order(line(0), "k2")).gets(bad, Field("quantity")),
        post("/v1/orders", b, order(line(101), "k2")).gets(bad, Field("quantity")),
        post("/v1/orders", b, order(line(1), "")).gets(bad, Field("idempotency_key")),
        post(
            "/v1/orders",
            b,
            order(json!([{"product_id": "nope", "quantity": 1}]), "k3"),
        )
        .gets(StatusCode::NOT_FOUND, Code("not_found")),
        post(&pay_path, Some(other.as_str()), Some(json!({})))
            .gets(StatusCode::FORBIDDEN, Code("forbidden")),
        post(&pay_path, b, Some(json!({"coupon_id": "none"})))
            .gets(StatusCode::NOT_FOUND, Code("not_found")),
        post(&pay_path, b, Some(json!({}))).gets(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code("insufficient_points"),
        ),
        post(&cancel_path, Some(other.as_str()), None)
            .gets(StatusCode::FORBIDDEN, Code("forbidden")),
        post("/v1/orders/nope/payment", b, Some(json!({})))
            .gets(StatusCode::NOT_FOUND, Code("not_found")),
        post("/v1/orders/nope/cancel", b, None).gets(StatusCode::NOT_FOUND, Code("not_found")),
    ])
    .await;
    // a refused payment leaves its trace (started, taken, given back,
    // aborted) and nothing else: the stock and the points are where they were
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_type, event_type FROM events ORDER BY rowid LIMIT -1 OFFSET $1",
    )
    .bind(before)
    .fetch_all(&api.events)
    .await
    .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
    assert!(
        kinds.iter().all(|k| [
            "PaymentStarted",
            "StockTaken",
            "StockReturned",
            "PaymentAborted"
        ]
        .contains(k)),
        "only the refused payments' own steps: {kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "StockTaken").count(),
        kinds.iter().filter(|k| **k == "StockReturned").count(),
        "every take given back: {kinds:?}"
    );
    assert!(kinds.contains(&"PaymentAborted"), "{kinds:?}");
    // a repeated key answers the order it made, whatever it asks for now
    let (s, again) = api
        .send(post(
            "/v1/orders",
            Some(&buyer),
            Some(
                json!({"items": [{"product_id": "nope", "quantity": 100}], "idempotency_key": "k"}),
            ),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(again["order_id"], oid.as_str());
    assert_eq!(again["amount"], 100);
}
