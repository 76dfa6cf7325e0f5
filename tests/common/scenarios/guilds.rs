//! Guilds (API.md "Guilds"): members and their nicknames, pagination, and
//! the fan-out of a rename and a deletion to members' guild lists.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::super::Client;
use super::accounts::People;
use super::Outcome;

pub async fn guilds(c: &Client, people: People) -> Outcome {
    let People {
        owner_id,
        owner,
        ann_id,
        ann,
        bob,
    } = people;
    // a guild, its members and their nicknames
    let g = c.post("/v1/guilds", &owner, json!({"name": "Crabs"})).await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    let gid = g.body["guild_id"].as_str().unwrap().to_owned();
    let guild = |v: u64| format!("/v1/guilds/{gid}?min_version={v}");
    let read = c.get(&guild(1), &ann).await;
    assert_eq!(
        (read.status, read.body["owner_id"].as_str()),
        (StatusCode::OK, Some(owner_id.as_str()))
    );
    for t in [&ann, &bob] {
        let j = c
            .send(Method::POST, &format!("/v1/guilds/{gid}/members"), t, None)
            .await;
        assert_eq!(j.status, StatusCode::CREATED, "{}", j.body);
    }
    let dup = c
        .send(
            Method::POST,
            &format!("/v1/guilds/{gid}/members"),
            &ann,
            None,
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_member"))
    );
    let n = c
        .send(
            Method::PUT,
            &format!("/v1/guilds/{gid}/members/me/nickname"),
            &ann,
            Some(json!({"nickname": "Annie"})),
        )
        .await;
    assert_eq!(n.body["version"], 4);
    let cat = c
        .post(
            &format!("/v1/guilds/{gid}/categories"),
            &owner,
            json!({"name": "Talk"}),
        )
        .await;
    let ch = c
        .post(
            &format!("/v1/guilds/{gid}/channels"),
            &owner,
            json!({"name": "general", "kind": "forum", "category_id": cat.body["category_id"]}),
        )
        .await;
    assert_eq!(
        (ch.status, ch.body["version"].as_u64()),
        (StatusCode::CREATED, Some(6)),
        "{}",
        ch.body
    );
    let read = c.get(&guild(6), &bob).await;
    assert_eq!(read.body["member_count"], 3);
    assert_eq!(read.body["categories"][0]["name"], "Talk");
    assert_eq!(read.body["channels"][0]["kind"], "forum");
    assert_eq!(
        read.body["channels"][0]["category_id"],
        cat.body["category_id"]
    );

    // members, two to a page
    // lists are eventually consistent: wait for the whole expected list
    let ann_key = ann_id.clone();
    let all = c
        .get_until(
            &format!("/v1/guilds/{gid}/members?limit=100"),
            &bob,
            "three members, ann as Annie",
            move |b| {
                b["items"].as_array().is_some_and(|items| {
                    items.len() == 3
                        && items
                            .iter()
                            .any(|m| m["user_id"] == ann_key.as_str() && m["nickname"] == "Annie")
                })
            },
        )
        .await;
    // then page through it, two at a time
    let first = c
        .get(&format!("/v1/guilds/{gid}/members?limit=2"), &bob)
        .await
        .body;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = c
        .get(
            &format!("/v1/guilds/{gid}/members?limit=2&cursor={cursor}"),
            &bob,
        )
        .await;
    assert_eq!(second.body["next_cursor"], Value::Null);
    let mut paged: Vec<Value> = first["items"].as_array().unwrap().clone();
    paged.extend(second.body["items"].as_array().unwrap().clone());
    assert_eq!(
        &paged,
        all["items"].as_array().unwrap(),
        "pages add up to the list"
    );
    let bad = c
        .get(&format!("/v1/guilds/{gid}/members?limit=500"), &bob)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = c
        .get(&format!("/v1/guilds/{gid}/members?cursor=%%%"), &bob)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // a rename reaches every member's guild list; leaving removes it
    let r = c
        .send(
            Method::PATCH,
            &format!("/v1/guilds/{gid}"),
            &owner,
            Some(json!({"name": "Lobsters"})),
        )
        .await;
    assert_eq!(r.body["version"], 7);
    let mine = c
        .get_until(
            "/v1/me/guilds",
            &ann,
            "the rename reaches ann's list",
            |b| b["items"][0]["name"] == "Lobsters",
        )
        .await;
    assert_eq!(mine["items"][0]["nickname"], "Annie");
    let leave = c
        .send(
            Method::DELETE,
            &format!("/v1/guilds/{gid}/members/me"),
            &bob,
            None,
        )
        .await;
    assert_eq!(leave.status, StatusCode::OK);
    c.get_until("/v1/me/guilds", &bob, "bob's list is empty", |b| {
        b["items"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let read = c.get(&guild(8), &ann).await;
    assert_eq!(read.body["member_count"], 2);

    // a version the document never reaches: the wait is bounded and says so
    let stale = c.get(&guild(99), &ann).await;
    assert_eq!((stale.status, stale.stale), (StatusCode::OK, true));

    // deletion: commands and reads answer 410, lists drop it
    let d = c
        .send(Method::DELETE, &format!("/v1/guilds/{gid}"), &owner, None)
        .await;
    assert_eq!(d.body["version"], 9);
    let read = c.get(&guild(9), &ann).await;
    assert_eq!(
        (read.status, read.body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("gone"))
    );
    let late = c
        .send(
            Method::POST,
            &format!("/v1/guilds/{gid}/members"),
            &bob,
            None,
        )
        .await;
    assert_eq!(late.status, StatusCode::GONE);
    c.get_until(
        "/v1/me/guilds",
        &ann,
        "the deleted guild leaves ann's list",
        |b| b["items"].as_array().is_some_and(Vec::is_empty),
    )
    .await;
    let unknown = c.get("/v1/guilds/no-such-guild", &ann).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let anonymous = c.call(Method::GET, "/v1/me/guilds", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    Outcome {
        owner_token: owner,
        ann_token: ann,
        guild_id: gid,
        balance: 500,
    }
}
