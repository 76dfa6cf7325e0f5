//! The board (API.md "Board"): posts, comments, reactions, a nickname
//! change reaching what shows it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::super::{code_of, Client};
use super::Cast;

pub async fn board(c: &Client, cast: &Cast) {
    let Cast {
        poster, fan, rival, ..
    } = cast.clone();
    let gid = c.new_guild(&poster, "Forum").await;
    let forum = c.new_channel(&poster, &gid, "forum", "forum").await;
    let text = c.new_channel(&poster, &gid, "chat", "text").await;
    c.join(&fan, &gid).await;
    let post_body = json!({"title": "Setlist?", "content": "What did they play?"});
    let p = c
        .post(
            &format!("/v1/channels/{forum}/posts"),
            &fan,
            post_body.clone(),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let pid = p.body["post_id"].as_str().unwrap().to_owned();
    c.refuses(
        Method::POST,
        &format!("/v1/channels/{text}/posts"),
        &fan,
        Some(post_body.clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_a_forum_channel"),
    )
    .await;
    c.refuses(
        Method::POST,
        &format!("/v1/channels/{forum}/posts"),
        &rival,
        Some(post_body.clone()),
        (StatusCode::FORBIDDEN, "not_member"),
    )
    .await;
    let refused = c
        .post("/v1/channels/no-such-channel/posts", &fan, post_body)
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let cm = c
        .post(
            &format!("/v1/posts/{pid}/comments"),
            &poster,
            json!({"content": "All the hits"}),
        )
        .await;
    assert_eq!(cm.status, StatusCode::CREATED, "{}", cm.body);
    let emoji = "%F0%9F%91%8D"; // 👍
    let r1 = c
        .send(
            Method::PUT,
            &format!("/v1/posts/{pid}/reactions/{emoji}"),
            &fan,
            None,
        )
        .await;
    let r2 = c
        .send(
            Method::PUT,
            &format!("/v1/posts/{pid}/reactions/{emoji}"),
            &fan,
            None,
        )
        .await;
    assert_eq!(
        r1.body["version"], r2.body["version"],
        "reacting twice changes nothing"
    );
    let r3 = c
        .send(
            Method::PUT,
            &format!("/v1/posts/{pid}/reactions/{emoji}"),
            &poster,
            None,
        )
        .await;
    let v = r3.body["version"].as_u64().unwrap();
    let read = c
        .get(&format!("/v1/posts/{pid}?min_version={v}"), &fan)
        .await;
    assert_eq!(
        (read.status, read.stale),
        (StatusCode::OK, false),
        "{}",
        read.body
    );
    assert_eq!(read.body["author_nickname"], "fan");
    assert_eq!(read.body["reactions"]["👍"], 2);
    assert_eq!(read.body["comments"][0]["author_nickname"], "poster");
    // guild content is for its members (API.md "Read access")
    for path in [
        format!("/v1/posts/{pid}"),
        format!("/v1/channels/{forum}/posts"),
        format!("/v1/guilds/{gid}/members"),
    ] {
        let refused = c.get(&path, &rival).await;
        assert_eq!(
            (refused.status, code_of(&refused)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}: {}",
            refused.body
        );
    }
    let forbidden = c
        .send(
            Method::PATCH,
            &format!("/v1/posts/{pid}"),
            &poster,
            Some(json!({"title": "mine"})),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    // a nickname change reaches the post and the comment that show it
    c.call(
        Method::PUT,
        &format!("/v1/guilds/{gid}/members/me/nickname"),
        Some(&fan),
        Some(json!({"nickname": "superfan"})),
    )
    .await;
    c.call(
        Method::PUT,
        &format!("/v1/guilds/{gid}/members/me/nickname"),
        Some(&poster),
        Some(json!({"nickname": "host"})),
    )
    .await;
    c.get_until(
        &format!("/v1/posts/{pid}"),
        &fan,
        "the nicknames reach the post",
        |b| b["author_nickname"] == "superfan" && b["comments"][0]["author_nickname"] == "host",
    )
    .await;
    let list = c
        .get_until(
            &format!("/v1/channels/{forum}/posts"),
            &fan,
            "the post is listed with its comment",
            |b| {
                b["items"][0]["comment_count"] == 1
                    && b["items"][0]["author_nickname"] == "superfan"
            },
        )
        .await;
    assert_eq!(list["items"][0]["reactions"]["👍"], 2);
    let del = c
        .send(Method::DELETE, &format!("/v1/posts/{pid}"), &poster, None)
        .await;
    assert_eq!(
        del.status,
        StatusCode::OK,
        "the guild owner may delete: {}",
        del.body
    );
    let v = del.body["version"].as_u64().unwrap();
    let gone = c
        .get(&format!("/v1/posts/{pid}?min_version={v}"), &fan)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    c.get_until(
        &format!("/v1/channels/{forum}/posts"),
        &fan,
        "the deleted post leaves the list",
        |b| b["items"].as_array().is_some_and(Vec::is_empty),
    )
    .await;

    // deleting a channel takes what lives in it out of every read, and its
    // posts take no more commands (API.md "Read access")
    let kept = c
        .post(
            &format!("/v1/channels/{forum}/posts"),
            &fan,
            json!({"title": "Encore?", "content": "Which song?"}),
        )
        .await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.body);
    let kept = kept.body["post_id"].as_str().unwrap().to_owned();
    let del = c
        .send(
            Method::DELETE,
            &format!("/v1/guilds/{gid}/channels/{forum}"),
            &poster,
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    c.refuses(
        Method::POST,
        &format!("/v1/posts/{kept}/comments"),
        &fan,
        Some(json!({"content": "hello?"})),
        (StatusCode::GONE, "gone"),
    )
    .await;
    c.refuses(
        Method::POST,
        &format!("/v1/channels/{forum}/posts"),
        &fan,
        Some(json!({"title": "t", "content": "c"})),
        (StatusCode::GONE, "gone"),
    )
    .await;
    for path in [
        format!("/v1/posts/{kept}"),
        format!("/v1/channels/{forum}/posts"),
    ] {
        c.get_status_until(&path, &fan, StatusCode::GONE).await;
    }
    // and deleting the guild does the same for every channel of it
    let del = c
        .send(Method::DELETE, &format!("/v1/guilds/{gid}"), &poster, None)
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    c.get_status_until(
        &format!("/v1/channels/{text}/posts"),
        &fan,
        StatusCode::GONE,
    )
    .await;
    c.get_status_until(&format!("/v1/guilds/{gid}/members"), &fan, StatusCode::GONE)
        .await;
}
