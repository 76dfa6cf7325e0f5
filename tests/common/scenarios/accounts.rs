//! Accounts (API.md "Accounts and points"): registration, an idempotent
//! charge read back at its version, a profile change, the point history.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::super::Client;

/// The people of the accounts and guilds scenario.
pub struct People {
    pub owner_id: String,
    pub owner: String,
    pub ann_id: String,
    pub ann: String,
    pub bob: String,
}

pub async fn accounts(c: &Client) -> People {
    let (owner_id, owner) = c.register("owner@example.com", "owner").await;
    let (ann_id, ann) = c.register("ann@example.com", "ann").await;
    let (_, bob) = c.register("bob@example.com", "bob").await;

    // points: idempotent charge, then read it back at that version
    let charge = json!({"amount": 500, "idempotency_key": "first"});
    let a = c
        .post("/v1/accounts/me/charge", &owner, charge.clone())
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (StatusCode::OK, json!({"balance": 500, "version": 2}))
    );
    let again = c.post("/v1/accounts/me/charge", &owner, charge).await;
    assert_eq!(again.body, a.body, "the same key answers the same");
    let me = c.get("/v1/accounts/me?min_version=2", &owner).await;
    assert_eq!(
        (me.status, me.stale),
        (StatusCode::OK, false),
        "{}",
        me.body
    );
    assert_eq!(me.body["balance"], 500);
    assert_eq!(me.body["email"], "owner@example.com");
    let p = c
        .send(
            Method::PATCH,
            "/v1/accounts/me",
            &owner,
            Some(json!({"nickname": "Olive"})),
        )
        .await;
    assert_eq!(p.body["version"], 3);
    let me = c.get("/v1/accounts/me?min_version=3", &owner).await;
    assert_eq!(
        (me.body["nickname"].as_str(), me.body["version"].as_u64()),
        (Some("Olive"), Some(3))
    );
    let history = c
        .get_until(
            "/v1/accounts/me/history",
            &owner,
            "the charge is in the history",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await;
    assert_eq!(history["items"][0]["amount"], 500);
    assert_eq!(history["items"][0]["kind"], "charge");

    People {
        owner_id,
        owner,
        ann_id,
        ann,
        bob,
    }
}
