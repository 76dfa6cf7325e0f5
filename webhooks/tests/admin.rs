//! The admin routes, called with `oneshot` on the embedded store (a real
//! SQLite event store file): who may call them, what is refused, the guard
//! against internal URLs, and that a secret is never listed back.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tessera_http::auth::{Authenticator, Role};
use tessera_webhooks::http::{router, Half, WebhookAdmin};
use tessera_webhooks::store::sqlite::SqliteWebhooks;
use tessera_webhooks::UrlPolicy;
use tessera_write_side::store::sqlite::{self, SqliteEventLog};
use tower::ServiceExt as _;

struct Api {
    app: Router,
    admin: String,
    user: String,
    _dir: tempfile::TempDir,
}

async fn api(allow_private: bool) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite::open(&dir.path().join("events.db"), 2)
        .await
        .unwrap();
    sqlite::migrate(&pool).await.unwrap();
    let auth = Arc::new(
        Authenticator::hs256(&[7; 32], "tessera", "tessera", Duration::from_secs(60)).unwrap(),
    );
    let state = WebhookAdmin {
        store: Arc::new(SqliteWebhooks::new(pool.clone())),
        log: Arc::new(SqliteEventLog::new(pool)),
        auth: Arc::clone(&auth),
        policy: UrlPolicy { allow_private },
    };
    Api {
        app: router(state.clone(), Half::Commands).merge(router(state, Half::Reads)),
        admin: auth.issue("ops", Role::Admin).access_token,
        user: auth.issue("someone", Role::User).access_token,
        _dir: dir,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_owned())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn register(&self, body: &Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/v1/admin/webhooks",
            Some(&self.admin),
            Some(&body.to_string()),
        )
        .await
    }

    async fn listed(&self) -> Value {
        let (status, body) = self
            .call("GET", "/v1/admin/webhooks", Some(&self.admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn hook(url: &str) -> Value {
    json!({"url": url, "event_types": ["OrderPaid"], "secret": "s3cret-of-the-receiver"})
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn internal_addresses_are_refused_and_nothing_is_kept() {
    let api = api(false).await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://2130706433/hook",
        "http://0.0.0.0/hook",
    ] {
        let (status, body) = api.register(&hook(url)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "url_not_allowed"),
            "{url}: {body}"
        );
        assert_eq!(body["error"]["details"]["field"], "url");
    }
    let (status, body) = api.register(&hook("gopher://example.com/")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "url_not_allowed"),
        "{body}"
    );
    assert_eq!(api.listed().await, json!([]));
}

#[tokio::test]
async fn only_admins_register_and_bad_input_is_a_clear_400() {
    let api = api(true).await;
    let body = hook("http://127.0.0.1:9/hook").to_string();
    let (status, _) = api
        .call("POST", "/v1/admin/webhooks", None, Some(&body))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, b) = api
        .call("POST", "/v1/admin/webhooks", Some(&api.user), Some(&body))
        .await;
    assert_eq!((status, code(&b)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, _) = api
        .call("GET", "/v1/admin/webhooks", Some(&api.user), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for (bad, field) in [
        (
            json!({"url": "http://127.0.0.1:9/", "event_types": [], "secret": "x"}),
            "event_types",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "event_types": ["OrderPayed"], "secret": "x"}),
            "event_types",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "event_types": ["OrderPaid"], "secret": ""}),
            "secret",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "event_types": ["OrderPaid"], "secret": "x".repeat(1025)}),
            "secret",
        ),
        (
            json!({"url": "", "event_types": ["OrderPaid"], "secret": "x"}),
            "url",
        ),
        (
            json!({"url": "not a url", "event_types": ["OrderPaid"], "secret": "x"}),
            "url",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "event_types": ["OrderPaid"], "secret": "x", "extra": 1}),
            "extra",
        ),
    ] {
        let (status, b) = api.register(&bad).await;
        assert_eq!(
            (status, code(&b)),
            (StatusCode::BAD_REQUEST, "invalid_input"),
            "{bad}: {b}"
        );
        assert_eq!(b["error"]["details"]["field"], field, "{b}");
    }
    let (status, _) = api
        .call("POST", "/v1/admin/webhooks", Some(&api.admin), Some("[1]"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(api.listed().await, json!([]));
}

#[tokio::test]
async fn a_registered_webhook_is_listed_without_its_secret_and_deleted_once() {
    let api = api(true).await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["OrderPaid", "StockTaken", "OrderPaid"], "secret": "s3cret-of-the-receiver"});
    let (status, created) = api.register(&body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["webhook_id"].as_str().unwrap().to_owned();
    let listed = api.listed().await;
    assert!(!listed.to_string().contains("s3cret"), "{listed}");
    assert_eq!(listed[0]["webhook_id"], id.as_str());
    assert_eq!(
        listed[0]["event_types"],
        json!(["OrderPaid", "StockTaken"]),
        "duplicates dropped"
    );
    assert_eq!(
        (
            &listed[0]["delivered"],
            &listed[0]["pending"],
            &listed[0]["failed"],
            &listed[0]["last_error"]
        ),
        (&json!(0), &json!(0), &json!(0), &Value::Null)
    );
    let path = format!("/v1/admin/webhooks/{id}");
    let (status, b) = api.call("DELETE", &path, Some(&api.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let (status, b) = api.call("DELETE", &path, Some(&api.admin), None).await;
    assert_eq!((status, code(&b)), (StatusCode::NOT_FOUND, "not_found"));
    // a malformed id is one that does not exist, as everywhere in the API
    let (status, _) = api
        .call(
            "DELETE",
            "/v1/admin/webhooks/not-a-uuid",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api.listed().await, json!([]));
}
