//! Chat (API.md "Chat"): messages in a guild's text channels for its
//! members, edited by their author and deleted by the author or the owner,
//! history newest first with `before=` and cursors; DM rooms (the 1:1 room
//! unique, up to ten members) with their messages, unread counts and the
//! caller's rooms by most recent activity.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::super::Client;

fn str_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| str_of(m, "message_id"))
        .collect()
}

async fn say(c: &Client, path: &str, token: &str, content: &str) -> String {
    let a = c.post(path, token, json!({ "content": content })).await;
    assert_eq!(a.status, StatusCode::CREATED, "{path}: {}", a.body);
    assert_eq!(a.body["version"], 1);
    str_of(&a.body, "message_id")
}

pub async fn chat(c: &Client) {
    let (_, owner) = c.register("chat-owner@example.com", "chat owner").await;
    let (ann_id, ann) = c.register("chat-ann@example.com", "ann").await;
    let (bob_id, bob) = c.register("chat-bob@example.com", "bob").await;
    let (cy_id, cy) = c.register("chat-cy@example.com", "cy").await;
    channels(c, &owner, &ann, &cy).await;
    rooms(c, (&ann_id, &ann), (&bob_id, &bob), (&cy_id, &cy)).await;
}

/// Text channels: members write, the author edits, the author or the owner
/// deletes, strangers neither read nor write, a forum takes no messages.
async fn channels(c: &Client, owner: &str, ann: &str, stranger: &str) {
    let guild = c.new_guild(owner, "Chatters").await;
    let text = c.new_channel(owner, &guild, "general", "text").await;
    let forum = c.new_channel(owner, &guild, "forum", "forum").await;
    c.join(ann, &guild).await;

    let messages = format!("/v1/channels/{text}/messages");
    let first = say(c, &messages, ann, "first").await;
    let second = say(c, &messages, owner, "second").await;
    let third = say(c, &messages, ann, "third\nwith a second line").await;
    let fourth = say(c, &messages, ann, "fourth").await;

    for (body, status, code) in [
        (
            json!({"content": ""}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"content": " \n "}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"content": "a\u{0}b"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"content": "x".repeat(4_001)}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"content": "x", "pinned": true}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (json!(["x"]), StatusCode::BAD_REQUEST, "invalid_input"),
    ] {
        c.refuses(Method::POST, &messages, ann, Some(body), (status, code))
            .await;
    }
    let hi = Some(json!({"content": "hi"}));
    c.refuses(
        Method::POST,
        &messages,
        stranger,
        hi.clone(),
        (StatusCode::FORBIDDEN, "not_member"),
    )
    .await;
    c.refuses(
        Method::POST,
        &format!("/v1/channels/{forum}/messages"),
        ann,
        hi.clone(),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_a_text_channel"),
    )
    .await;
    c.refuses(
        Method::POST,
        "/v1/channels/no-such-channel/messages",
        ann,
        hi.clone(),
        (StatusCode::NOT_FOUND, "channel_not_found"),
    )
    .await;

    // --- history: newest first, in pages, before a message
    let page = c
        .get_until(&messages, ann, "the channel's four messages", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 4)
        })
        .await;
    assert_eq!(ids(&page), [&*fourth, &*third, &*second, &*first]);
    let newest = &page["items"][0];
    assert_eq!(newest["author_nickname"], "ann");
    assert_eq!(newest["content"], "fourth");
    assert!(newest["edited_at"].is_null());
    assert!(page["next_cursor"].is_null());
    let one = c.get(&format!("{messages}?limit=3"), ann).await;
    assert_eq!(ids(&one.body), [&*fourth, &*third, &*second]);
    let cursor = str_of(&one.body, "next_cursor");
    let two = c
        .get(&format!("{messages}?limit=3&cursor={cursor}"), ann)
        .await;
    assert_eq!(ids(&two.body), [&*first]);
    assert!(two.body["next_cursor"].is_null());
    let before = c.get(&format!("{messages}?before={third}"), ann).await;
    assert_eq!(ids(&before.body), [&*second, &*first]);
    // a cursor is the caller's own
    let borrowed = c
        .get(&format!("{messages}?limit=3&cursor={cursor}"), owner)
        .await;
    assert_eq!(
        borrowed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        borrowed.body
    );
    c.get_status_until(&messages, stranger, StatusCode::FORBIDDEN)
        .await;
    // the forum's channel document may still be on its way (each
    // projection reads the log at its own pace): 404 until it is there
    let forum_messages = format!("/v1/channels/{forum}/messages");
    c.get_status_until(&forum_messages, ann, StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    let forum_read = c.get(&forum_messages, ann).await;
    assert_eq!(
        forum_read.body["error"]["code"], "not_a_text_channel",
        "{}",
        forum_read.body
    );

    // --- the author edits, the author or the owner deletes
    let of = |m: &str| format!("{messages}/{m}");
    let edited = c
        .send(
            Method::PATCH,
            &of(&first),
            ann,
            Some(json!({"content": "first, edited"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["version"], 2);
    c.refuses(
        Method::PATCH,
        &of(&first),
        owner,
        Some(json!({"content": "not mine"})),
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;
    c.refuses(
        Method::PATCH,
        &format!("/v1/channels/{forum}/messages/{first}"),
        ann,
        Some(json!({"content": "elsewhere"})),
        (StatusCode::NOT_FOUND, "not_found"),
    )
    .await;
    let deleted = c.send(Method::DELETE, &of(&third), owner, None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    c.refuses(
        Method::DELETE,
        &of(&third),
        ann,
        None,
        (StatusCode::GONE, "gone"),
    )
    .await;
    let page = c
        .get_until(&messages, ann, "the edit and the deletion", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 3)
                && b["items"][2]["content"] == "first, edited"
        })
        .await;
    assert_eq!(ids(&page), [&*fourth, &*second, &*first]);
    assert!(page["items"][2]["edited_at"].is_string());

    // --- a new guild nickname reaches the author's messages
    let renamed = c
        .send(
            Method::PUT,
            &format!("/v1/guilds/{guild}/members/me/nickname"),
            ann,
            Some(json!({"nickname": "Annie"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    c.get_until(
        &messages,
        ann,
        "ann's guild nickname on her messages",
        |b| {
            b["items"][0]["author_nickname"] == "Annie"
                && b["items"][1]["author_nickname"] == "chat owner"
        },
    )
    .await;

    // --- a deleted channel is gone for reads and commands
    let gone = c
        .send(
            Method::DELETE,
            &format!("/v1/guilds/{guild}/channels/{text}"),
            owner,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    c.refuses(Method::POST, &messages, ann, hi, (StatusCode::GONE, "gone"))
        .await;
    c.refuses(
        Method::DELETE,
        &of(&fourth),
        ann,
        None,
        (StatusCode::GONE, "gone"),
    )
    .await;
    c.get_status_until(&messages, ann, StatusCode::GONE).await;
}

/// DM rooms: the 1:1 room is unique, groups hold up to ten, members write
/// and read, the caller's rooms come most recently active first with the
/// last message and the others' messages since their own last one.
async fn rooms(c: &Client, ann: (&str, &str), bob: (&str, &str), cy: (&str, &str)) {
    let ((ann_id, ann), (bob_id, bob), (cy_id, cy)) = (ann, bob, cy);
    let made = c
        .post("/v1/dm/rooms", ann, json!({"user_ids": [bob_id]}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let pair = str_of(&made.body, "room_id");
    let again = c
        .post("/v1/dm/rooms", bob, json!({"user_ids": [ann_id]}))
        .await;
    assert_eq!(
        (again.status, str_of(&again.body, "room_id")),
        (StatusCode::OK, pair.clone()),
        "{}",
        again.body
    );
    let group = c
        .post("/v1/dm/rooms", ann, json!({"user_ids": [bob_id, cy_id]}))
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.body);
    let group = str_of(&group.body, "room_id");
    let ten: Vec<String> = (0..10).map(|i| format!("someone-{i}")).collect();
    for (body, status, code) in [
        (
            json!({"user_ids": []}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"user_ids": ten}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"user_ids": [ann_id]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"user_ids": [bob_id, bob_id]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"user_ids": "bob"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"user_ids": [bob_id, "nobody-at-all"]}),
            StatusCode::NOT_FOUND,
            "user_not_found",
        ),
    ] {
        c.refuses(
            Method::POST,
            "/v1/dm/rooms",
            ann,
            Some(body),
            (status, code),
        )
        .await;
    }

    let in_pair = format!("/v1/dm/rooms/{pair}/messages");
    let in_group = format!("/v1/dm/rooms/{group}/messages");
    let hello = say(c, &in_group, cy, "hello all").await;
    let a1 = say(c, &in_pair, ann, "hi bob").await;
    let a2 = say(c, &in_pair, ann, "are you there?").await;
    c.refuses(
        Method::POST,
        &in_pair,
        cy,
        Some(json!({"content": "let me in"})),
        (StatusCode::FORBIDDEN, "not_member"),
    )
    .await;
    c.refuses(
        Method::POST,
        "/v1/dm/rooms/no-such-room/messages",
        ann,
        Some(json!({"content": "hello?"})),
        (StatusCode::NOT_FOUND, "room_not_found"),
    )
    .await;

    // bob's rooms: the pair first (its messages are the latest), two unread
    // there, one in the group (the rooms' documents catch up each at its own
    // pace: with two projectors they may be on different partitions)
    let rooms = c
        .get_until("/v1/me/dm/rooms", bob, "bob's two rooms", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
                && b["items"][0]["unread"] == 2
                && b["items"][1]["unread"] == 1
        })
        .await;
    let first = &rooms["items"][0];
    assert_eq!(first["room_id"], pair.as_str());
    assert_eq!(first["last_message"]["message_id"], a2.as_str());
    assert_eq!(first["last_message"]["author_nickname"], "ann");
    let members: Vec<(String, String)> = first["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (str_of(m, "user_id"), str_of(m, "nickname")))
        .collect();
    let mut want = vec![
        (ann_id.to_owned(), "ann".to_owned()),
        (bob_id.to_owned(), "bob".to_owned()),
    ];
    want.sort();
    assert_eq!(members, want);
    assert_eq!(rooms["items"][1]["room_id"], group.as_str());
    assert_eq!(rooms["items"][1]["unread"], 1);
    assert_eq!(rooms["items"][1]["members"].as_array().unwrap().len(), 3);

    // bob answers: nothing unread for him there, one for ann
    let b1 = say(c, &in_pair, bob, "here!").await;
    c.get_until("/v1/me/dm/rooms", bob, "bob read the pair", |b| {
        b["items"][0]["unread"] == 0 && b["items"][0]["last_message"]["message_id"] == b1.as_str()
    })
    .await;
    c.get_until("/v1/me/dm/rooms", ann, "ann's unread answer", |b| {
        b["items"][0]["room_id"] == pair.as_str() && b["items"][0]["unread"] == 1
    })
    .await;
    // the group moves up when it is the latest
    let cy2 = say(c, &in_group, cy, "anyone?").await;
    let pages = c
        .get_until("/v1/me/dm/rooms?limit=1", ann, "the group on top", |b| {
            b["items"][0]["room_id"] == group.as_str()
        })
        .await;
    let next = c
        .get(
            &format!(
                "/v1/me/dm/rooms?limit=1&cursor={}",
                str_of(&pages, "next_cursor")
            ),
            ann,
        )
        .await;
    assert_eq!(
        next.body["items"][0]["room_id"],
        pair.as_str(),
        "{}",
        next.body
    );
    assert!(next.body["next_cursor"].is_null(), "{}", next.body);

    // a room's messages, newest first, for its members only
    let history = c
        .get_until(&in_pair, bob, "the pair's three messages", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 3)
        })
        .await;
    assert_eq!(ids(&history), [&*b1, &*a2, &*a1]);
    let group_history = c
        .get_until(&in_group, ann, "the group's two messages", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    assert_eq!(ids(&group_history), [&*cy2, &*hello]);
    let hidden = c.get(&in_pair, cy).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.body);
    let older = c.get(&format!("{in_pair}?before={a2}"), ann).await;
    assert_eq!(ids(&older.body), [&*a1]);
}
