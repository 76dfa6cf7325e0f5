//! `tessera serve` end to end: all in one process on embedded storage,
//! surviving a restart.

use crate::common;

use std::sync::Arc;

use common::stack::Stack;
use common::{accounts_and_guilds, board_and_commerce, Client};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn serve_runs_the_whole_contract_and_survives_a_restart() {
    let mut stack = Stack::embedded(&[]).await;
    let dir = std::path::PathBuf::from(stack.setting("TESSERA_DATA_DIR").unwrap());
    let c = Arc::clone(&stack.client);
    let ready = c.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    let doc = c.call(Method::GET, "/openapi.json", None, None).await;
    assert!(doc.body["paths"]["/v1/accounts"]["post"].is_object());
    assert!(
        doc.body["paths"]["/v1/guilds/{guild_id}"]["get"].is_object(),
        "both APIs in one document"
    );
    let outcome = accounts_and_guilds(&c).await;
    board_and_commerce(&c, &stack.admin).await;

    stack.writers[0].terminate(); // graceful: SIGTERM, clean exit
    assert!(
        dir.as_path().join("jwt_secret").exists(),
        "the generated secret is kept"
    );
    stack.writers[0].respawn().await;
    let c = Client::new(&stack.write().addr, &stack.read().addr);
    // tokens issued before the restart still work: the secret was kept
    let me = c.get("/v1/accounts/me", &outcome.owner_token).await;
    assert_eq!(
        (me.status, me.body["balance"].as_i64()),
        (StatusCode::OK, Some(outcome.balance))
    );
    let gone = c
        .get(
            &format!("/v1/guilds/{}", outcome.guild_id),
            &outcome.ann_token,
        )
        .await;
    assert_eq!(gone.status, StatusCode::GONE);
    // writes continue at the right versions after the restart
    let charge = c
        .post(
            "/v1/accounts/me/charge",
            &outcome.owner_token,
            json!({"amount": 1, "idempotency_key": "after-restart"}),
        )
        .await;
    assert_eq!(charge.body, json!({"balance": 501, "version": 4}));
    let me = c
        .get("/v1/accounts/me?min_version=4", &outcome.owner_token)
        .await;
    assert_eq!((me.stale, me.body["balance"].as_i64()), (false, Some(501)));

    // an operator token minted by the CLI is accepted by the server
    let data_dir = ("TESSERA_DATA_DIR", dir.display().to_string());
    let token = common::mint_token(&[data_dir], "operator-1", "admin");
    let me = c.get("/v1/accounts/me", token.trim()).await;
    assert_eq!(
        me.status,
        StatusCode::NOT_FOUND,
        "authenticated (no account behind it), not 401"
    );
}

/// The OpenAPI document and the router are one list (utoipa-axum), and this
/// checks it from outside: every documented operation is routed (the
/// answer is never the router's own "route not found" or 405), and every
/// method a documented path does not list is refused with 405.
#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let stack = Stack::embedded(&[]).await;
    let c = &stack.client;
    let doc = c.call(Method::GET, "/openapi.json", None, None).await;
    let paths = doc.body["paths"].as_object().expect("paths").clone();
    assert!(paths.len() >= 30, "{} paths", paths.len());
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut operations = 0;
    for (path, item) in &paths {
        let concrete: String = path
            .split('/')
            .map(|part| if part.starts_with('{') { "x" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for method in &methods {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            let answer = c.call(method.clone(), &concrete, None, None).await;
            let unrouted = answer.status == StatusCode::NOT_FOUND
                && answer.body["error"]["message"] == "route not found";
            if documented {
                operations += 1;
                assert!(
                    !unrouted && answer.status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but not served: {} {}",
                    answer.status,
                    answer.body
                );
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented: {}",
                    answer.body
                );
            }
        }
    }
    assert!(operations >= 47, "{operations} operations");
}

/// What the fuzzer found at the door, each answered with a clear 400/401
/// and nothing written.
#[tokio::test]
async fn hostile_input_is_refused_at_the_door() {
    let stack = Stack::embedded(&[]).await;
    let c = &stack.client;
    let (_, ann) = c.register("ann@example.com", "ann").await;
    let (_, bob) = c.register("bob@example.com", "bob").await;
    // a body of another JSON kind than an object is no profile change
    for body in [json!(["hacked-nick"]), json!("x"), json!(1), json!(null)] {
        c.refuses(
            Method::PATCH,
            "/v1/accounts/me",
            &ann,
            Some(body),
            (StatusCode::BAD_REQUEST, "invalid_input"),
        )
        .await;
    }
    let me = c.get("/v1/accounts/me?min_version=1", &ann).await;
    assert_eq!(
        (me.body["nickname"].as_str(), me.body["version"].as_u64()),
        (Some("ann"), Some(1))
    );
    // a well-signed token of an account that does not exist (Tessera deletes
    // no accounts: this is what a token outliving its account would meet)
    // reads nothing and commands nothing, on both sides
    let ghost = common::mint_token(&stack.env, "01a00000-0000-7000-8000-000000000000", "user");
    let read = c.get("/v1/accounts/me", &ghost).await;
    assert_eq!(
        (read.status, common::code_of(&read)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{}",
        read.body
    );
    c.refuses(
        Method::POST,
        "/v1/guilds",
        &ghost,
        Some(json!({"name": "g"})),
        (StatusCode::NOT_FOUND, "account_not_found"),
    )
    .await;
    c.refuses(
        Method::POST,
        "/v1/accounts/me/charge",
        &ghost,
        Some(json!({"amount": 10, "idempotency_key": "ghost"})),
        (StatusCode::NOT_FOUND, "not_found"),
    )
    .await;
    // control characters in names
    for name in ["a\u{0}b", "tab\there", "esc\u{1b}[31m", "\u{7f}"] {
        c.refuses(
            Method::POST,
            "/v1/guilds",
            &ann,
            Some(json!({ "name": name })),
            (StatusCode::BAD_REQUEST, "invalid_input"),
        )
        .await;
    }
    // the queue token is checked before anything is looked up
    c.refuses(
        Method::POST,
        "/v1/reservations",
        &ann,
        Some(json!({"schedule_id": "", "seat_nos": [1]})),
        (StatusCode::UNAUTHORIZED, "queue_token_required"),
    )
    .await;
    // cursors: only the list and the caller they were handed to
    for name in ["One", "Two", "Three"] {
        let g = c.post("/v1/guilds", &ann, json!({ "name": name })).await;
        assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    }
    let page = c
        .try_get_until(
            "/v1/me/guilds?limit=1",
            &ann,
            std::time::Duration::from_secs(10),
            |b| b["next_cursor"].is_string(),
        )
        .await
        .expect("a first page with a cursor");
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = c
        .get(&format!("/v1/me/guilds?limit=1&cursor={cursor}"), &ann)
        .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_ne!(next.body["items"][0], page["items"][0]);
    let forged = base64_of(page["items"][0]["guild_id"].as_str().unwrap());
    for (token, cursor) in [
        (&bob, cursor.to_owned()),
        (&ann, forged.clone()),
        (&ann, format!("{forged}.AAAAAAAAAAAAAAAAAAAAAA")),
        (&ann, String::new()),
    ] {
        let refused = c
            .get(&format!("/v1/me/guilds?limit=1&cursor={cursor}"), token)
            .await;
        assert_eq!(
            (
                refused.status,
                refused.body["error"]["details"]["field"].as_str()
            ),
            (StatusCode::BAD_REQUEST, Some("cursor")),
            "{cursor}: {}",
            refused.body
        );
    }
    let elsewhere = c
        .get(&format!("/v1/concerts?limit=1&cursor={cursor}"), &ann)
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::BAD_REQUEST,
        "another list's cursor"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// Abuse limits: past its burst a caller is answered 429 with
/// `Retry-After`, per IP for sign-ins and per caller for commands, while
/// others go on; after the wait the caller goes on too.
#[tokio::test]
async fn a_flood_is_answered_429_with_retry_after_and_others_go_on() {
    let stack = Stack::embedded(&[
        ("TESSERA_RATE_LIMIT_AUTH_PER_SECOND", "1"),
        ("TESSERA_RATE_LIMIT_AUTH_BURST", "6"),
        ("TESSERA_RATE_LIMIT_COMMANDS_PER_SECOND", "1"),
        ("TESSERA_RATE_LIMIT_COMMANDS_BURST", "3"),
    ])
    .await;
    let c = &stack.client;
    // the buckets refill while the test runs (a debug build's password
    // hashing on a busy machine can take most of a second): what may pass
    // is the burst plus one a second since the first request
    let started = std::time::Instant::now();
    let refills = || started.elapsed().as_secs() as usize + 1;
    let (_, ann) = c.register("ann@example.com", "ann").await;
    let (_, bob) = c.register("bob@example.com", "bob").await;
    let http = reqwest::Client::new();
    let sign_in = || {
        http.post(format!("{}/v1/auth/token", stack.write().addr))
            .json(&json!({"email": "ann@example.com", "password": "password123"}))
            .send()
    };
    // two registrations with their sign-ins use 4 of the burst of 6
    let mut passed = 0;
    let refused = loop {
        let answer = sign_in().await.unwrap();
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            break answer;
        }
        assert_eq!(answer.status(), StatusCode::OK);
        passed += 1;
        assert!(
            passed <= 2 + refills(),
            "{passed} sign-ins passed the limit"
        );
    };
    assert!(
        passed >= 2,
        "the burst of 6 let {passed} more sign-ins through"
    );
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // commands: per caller, so bob is not held back by ann's flood
    let started = std::time::Instant::now();
    let mut charged = 0;
    while charge(c, &ann, &format!("a{charged}")).await == StatusCode::OK {
        charged += 1;
        assert!(
            charged <= 3 + refills(),
            "{charged} charges passed the limit"
        );
    }
    assert!(
        (3..=3 + started.elapsed().as_secs() as usize).contains(&charged),
        "a burst of 3 let {charged} charges through"
    );
    assert_eq!(charge(c, &bob, "b0").await, StatusCode::OK);
    // reads are not limited
    for _ in 0..5 {
        assert_eq!(c.get("/v1/accounts/me", &ann).await.status, StatusCode::OK);
    }
    // the bucket refills at one a second: the wait Retry-After named
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(charge(c, &ann, "a-later").await, StatusCode::OK);
    // what was refused wrote nothing: ann's charges that passed, and one later
    let balance = charged + 1;
    c.get_until("/v1/accounts/me", &ann, "the charges that passed", |b| {
        b["balance"] == balance
    })
    .await;
}

async fn charge(c: &Client, token: &str, key: &str) -> StatusCode {
    c.post(
        "/v1/accounts/me/charge",
        token,
        json!({"amount": 1, "idempotency_key": key}),
    )
    .await
    .status
}

/// A person who opens the address in a browser finds a page that links
/// what the process serves, and the Swagger UI works with no network: its
/// assets come from the binary.
#[tokio::test]
async fn the_root_page_links_the_docs_and_the_swagger_ui_is_served_offline() {
    let stack = Stack::embedded(&[]).await;
    let base = &stack.write().addr;
    let get = |path: &str| reqwest::get(format!("{base}{path}"));
    let content_type = |r: &reqwest::Response| {
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let root = get("/").await.unwrap();
    assert_eq!(root.status(), StatusCode::OK);
    assert!(content_type(&root).starts_with("text/html"));
    let page = root.text().await.unwrap();
    for link in ["/docs", "/openapi.json", "/asyncapi.json", "/metrics"] {
        assert!(
            page.contains(&format!("href=\"{link}\"")),
            "{link} in {page}"
        );
        let answer = get(link).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{link}");
    }
    let ui = get("/docs/").await.unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(content_type(&ui).starts_with("text/html"));
    assert!(ui.text().await.unwrap().contains("swagger-ui"));
    let init = get("/docs/swagger-initializer.js").await.unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    assert!(
        init.text().await.unwrap().contains("/openapi.json"),
        "the UI loads the document this process serves"
    );
    for (asset, kind) in [
        ("/docs/swagger-ui.css", "text/css"),
        ("/docs/swagger-ui-bundle.js", "javascript"),
    ] {
        let r = get(asset).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        assert!(
            content_type(&r).contains(kind),
            "{asset}: {}",
            content_type(&r)
        );
        assert!(
            r.bytes().await.unwrap().len() > 10_000,
            "{asset} is the real file"
        );
    }
    let openapi: serde_json::Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert_eq!(
        openapi["info"]["title"], "Tessera API (commands and queries)",
        "the UI's heading names what serve answers"
    );
    let asyncapi: serde_json::Value = get("/asyncapi.json").await.unwrap().json().await.unwrap();
    assert_eq!(asyncapi["asyncapi"], "2.6.0");
    assert!(
        asyncapi["channels"]["tessera.events"].is_object(),
        "the configured topic: {}",
        asyncapi["channels"]
    );
}

/// Every operation of the served document says how it fails, each error
/// answer with an example body, and shows an example of what it takes.
#[tokio::test]
async fn every_operation_documents_its_errors_with_examples() {
    let stack = Stack::embedded(&[]).await;
    let doc = stack
        .client
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if !responses.keys().any(|s| s.starts_with('4')) {
                problems.push(format!("{method} {path}: no 4xx answer"));
            }
            if let Some(body) = op.get("requestBody") {
                let schema = &body["content"]["application/json"]["schema"];
                let named = schema["$ref"]
                    .as_str()
                    .and_then(|r| doc.pointer(r.trim_start_matches('#')));
                if named.unwrap_or(schema).get("example").is_none() {
                    problems.push(format!("{method} {path}: no example request body"));
                }
            }
            for (status, r) in responses.iter().filter(|(s, _)| s.as_str() >= "400") {
                let example = &r["content"]["application/json"]["example"];
                if example["error"]["code"].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("{method} {path} {status}: no example error body"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
