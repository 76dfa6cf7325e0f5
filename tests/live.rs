//! The live stream (API.md "Live stream and notifications") over real
//! HTTP: topics checked before the stream starts, a document change, a
//! channel message and a notification pushed as they happen, a reconnect
//! with `Last-Event-ID` that gets every notification it missed, presence
//! while a stream is open (shared by the read APIs through Redis), and the
//! streams ended cleanly when the process stops.

use crate::common;

use std::time::Duration;

use common::sse::{self, SseEvent};
use common::stack::Stack;
use common::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Generous: a push is within a second (measured by the load scenario);
/// this only bounds a test that would otherwise hang.
const WAIT: Duration = Duration::from_secs(20);

struct World {
    ann_id: String,
    ann: String,
    bob: String,
    stranger: String,
    post: String,
    text: String,
    room: String,
}

/// Bob's post in a guild of Ann's (both members), a text channel, and a
/// DM room of the two.
async fn world(c: &Client) -> World {
    let (ann_id, ann) = c.register("live-ann@example.com", "ann").await;
    let (bob_id, bob) = c.register("live-bob@example.com", "bob").await;
    let (_, stranger) = c.register("live-stranger@example.com", "stranger").await;
    let guild = c.new_guild(&ann, "Live").await;
    let forum = c.new_channel(&ann, &guild, "forum", "forum").await;
    let text = c.new_channel(&ann, &guild, "chat", "text").await;
    c.join(&bob, &guild).await;
    let post = c
        .post(
            &format!("/v1/channels/{forum}/posts"),
            &bob,
            json!({"title": "Live", "content": "x"}),
        )
        .await
        .id("post_id");
    let room = c
        .post("/v1/dm/rooms", &ann, json!({"user_ids": [bob_id]}))
        .await
        .id("room_id");
    // read access is checked from the read models: wait for them
    c.get_until(&format!("/v1/posts/{post}"), &bob, "bob's post", |_| true)
        .await;
    c.get_until(
        &format!("/v1/dm/rooms/{room}/messages"),
        &bob,
        "the room",
        |_| true,
    )
    .await;
    World {
        ann_id,
        ann,
        bob,
        stranger,
        post,
        text,
        room,
    }
}

fn is(kind: &'static str) -> impl Fn(&SseEvent) -> bool {
    move |e| e.event == kind
}

async fn the_stream_contract(stack: &Stack) {
    let c = &stack.client;
    let base = stack.read().addr.clone();
    let w = world(c).await;
    let topics = format!("post:{},channel:{},dm:{}", w.post, w.text, w.room);

    // refusals come before any streaming
    for (topics, token, status) in [
        (topics.as_str(), &w.stranger, StatusCode::FORBIDDEN),
        ("post:no-such-post", &w.bob, StatusCode::NOT_FOUND),
        ("planet:mars", &w.bob, StatusCode::BAD_REQUEST),
        ("post", &w.bob, StatusCode::BAD_REQUEST),
        ("", &w.bob, StatusCode::BAD_REQUEST),
    ] {
        match sse::open(&base, Some(topics), token, None).await {
            Err((s, body)) => {
                assert_eq!(s, status, "{topics}: {body}");
                assert!(body["error"]["code"].is_string(), "{body}");
            }
            Ok(_) => panic!("{topics}: a stream opened"),
        }
    }
    let dm_of_others = format!("dm:{}", w.room);
    let refused = sse::open(&base, Some(&dm_of_others), &w.stranger, None).await;
    assert_eq!(refused.err().map(|e| e.0), Some(StatusCode::FORBIDDEN));

    // bob follows his post, the channel and the room
    let mut stream = sse::open(&base, Some(&topics), &w.bob, None)
        .await
        .expect("bob may read every topic");
    let commented = c
        .post(
            &format!("/v1/posts/{}/comments", w.post),
            &w.ann,
            json!({"content": "nice post"}),
        )
        .await;
    assert_eq!(commented.status, StatusCode::CREATED, "{}", commented.body);
    // the post with the comment and the notice, in whichever order they
    // come (an older change announced late may come too: a stream pushes a
    // document as it is when it hears of it)
    let (mut doc, mut note) = (None, None);
    while doc.is_none() || note.is_none() {
        let e = stream
            .until(WAIT, |e| e.event == "document" || e.event == "notification")
            .await;
        if e.event == "notification" {
            note = Some(e);
        } else if e.data["document"]["comments"][0]["content"] == "nice post" {
            doc = Some(e);
        }
    }
    let (doc, note) = (doc.unwrap(), note.unwrap());
    assert_eq!(doc.data["topic"], format!("post:{}", w.post));
    assert_eq!(doc.data["document"]["comments"][0]["content"], "nice post");
    assert_eq!(doc.data["version"], commented.body["version"]);
    assert_eq!(note.data["kind"], "comment_on_your_post");
    assert_eq!(note.data["subject"], w.post.as_str());
    assert_eq!(note.id, note.data["notification_id"].as_str().unwrap());

    let said = c
        .post(
            &format!("/v1/channels/{}/messages", w.text),
            &w.ann,
            json!({"content": "hello, channel"}),
        )
        .await;
    let message = stream.until(WAIT, is("message")).await;
    assert_eq!(message.data["topic"], format!("channel:{}", w.text));
    assert_eq!(
        message.data["message"]["message_id"],
        said.body["message_id"]
    );
    assert_eq!(
        message.id, note.id,
        "every event carries the newest notification id"
    );
    let last_seen = note.id.clone();
    drop(stream);

    // while bob is away: a reaction and a DM, two notifications
    let reacted = c
        .send(
            Method::PUT,
            &format!("/v1/posts/{}/reactions/%F0%9F%91%8D", w.post),
            &w.ann,
            None,
        )
        .await;
    assert_eq!(reacted.status, StatusCode::OK, "{}", reacted.body);
    let dm = c
        .post(
            &format!("/v1/dm/rooms/{}/messages", w.room),
            &w.ann,
            json!({"content": "did you see?"}),
        )
        .await;
    assert_eq!(dm.status, StatusCode::CREATED, "{}", dm.body);
    c.get_until(
        "/v1/me/notifications",
        &w.bob,
        "bob's three notifications",
        |b| b["items"].as_array().is_some_and(|i| i.len() == 3),
    )
    .await;

    // back with Last-Event-ID: the missed ones first, in order, then live
    let mut again = sse::open(&base, Some(&topics), &w.bob, Some(&last_seen))
        .await
        .expect("bob reconnects");
    let first = again.until(WAIT, is("notification")).await;
    let second = again.until(WAIT, is("notification")).await;
    let kinds: Vec<&Value> = vec![&first.data["kind"], &second.data["kind"]];
    assert_eq!(
        kinds,
        [&json!("reaction_on_your_post"), &json!("dm_message")]
    );
    assert!(last_seen < first.id && first.id < second.id);
    let newer = c
        .post(
            &format!("/v1/dm/rooms/{}/messages", w.room),
            &w.ann,
            json!({"content": "hello?"}),
        )
        .await;
    // the message and its notification, in whichever order they come (an
    // older change announced late may come too: a stream pushes what it hears)
    let want_id = newer.body["message_id"].clone();
    let (mut pushed, mut live) = (None, None);
    while pushed.is_none() || live.is_none() {
        let e = again
            .until(WAIT, |e| e.event == "message" || e.event == "notification")
            .await;
        if e.event == "message" && e.data["message"]["message_id"] == want_id {
            pushed = Some(e);
        } else if e.event == "notification" {
            live = Some(e);
        }
    }
    let (pushed, live) = (pushed.unwrap(), live.unwrap());
    assert_eq!(pushed.data["topic"], format!("dm:{}", w.room));
    assert_eq!(live.data["kind"], "dm_message");
    assert!(second.id < live.id);
    assert_eq!(live.data["actor_id"], w.ann_id.as_str());
}

/// Presence: online while a stream is open (seen from `elsewhere`, another
/// read API where there is one), offline within the grace period after it
/// closes; in guild presence and in a room's member list.
async fn the_presence_contract(stack: &Stack, elsewhere: &Client) {
    let c = &stack.client;
    let (_, owner) = c.register("here-owner@example.com", "owner").await;
    let (ann_id, ann) = c.register("here-ann@example.com", "ann").await;
    let guild = c.new_guild(&owner, "Here").await;
    c.join(&ann, &guild).await;
    let room = c
        .post("/v1/dm/rooms", &owner, json!({"user_ids": [ann_id]}))
        .await
        .id("room_id");
    let presence = format!("/v1/guilds/{guild}/presence");
    let ann_online = |b: &Value, online: bool| {
        b["online"]
            .as_array()
            .is_some_and(|o| o.iter().any(|m| m["user_id"] == ann_id.as_str()) == online)
    };
    let offline = elsewhere
        .get_until(&presence, &owner, "the guild's presence", |b| {
            ann_online(b, false)
        })
        .await;
    assert_eq!(offline["online_count"], 0, "{offline}");
    // the owner watches the guild and the room (once it is readable), on
    // the other read API
    elsewhere
        .get_until("/v1/me/dm/rooms", &owner, "the room is readable", |b| {
            b["items"][0]["room_id"] == room.as_str()
        })
        .await;
    elsewhere
        .get_until(
            &format!("/v1/guilds/{guild}/members"),
            &owner,
            "ann is a member",
            |b| {
                b["items"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["user_id"] == ann_id.as_str()))
            },
        )
        .await;
    let topics = format!("guild:{guild},dm:{room}");
    let mut watching = sse::open(&elsewhere.read, Some(&topics), &owner, None)
        .await
        .expect("the owner watches");
    let base = stack.read().addr.clone();
    let stream = sse::open(&base, None, &ann, None)
        .await
        .expect("ann streams");
    // pushed to the watcher: ann came online, in the guild and in the room
    let presence_of = |online: bool| {
        let ann_id = ann_id.clone();
        move |e: &SseEvent| {
            e.event == "presence"
                && e.data["user_id"] == ann_id.as_str()
                && e.data["online"] == online
        }
    };
    let mut told: Vec<String> = Vec::new();
    for _ in 0..2 {
        let e = watching.until(WAIT, presence_of(true)).await;
        told.push(e.data["topic"].as_str().unwrap_or_default().to_owned());
    }
    told.sort();
    let mut want = vec![format!("dm:{room}"), format!("guild:{guild}")];
    want.sort();
    assert_eq!(
        told, want,
        "ann's presence is pushed for the guild and the room"
    );
    let online = elsewhere
        .get_until(&presence, &owner, "ann online", |b| ann_online(b, true))
        .await;
    // the watching owner is online too
    let nicknames: Vec<&str> = online["online"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["nickname"].as_str())
        .collect();
    assert!(nicknames.contains(&"ann"), "{online}");
    assert_eq!(online["online_count"], 2, "{online}");
    elsewhere
        .get_until("/v1/me/dm/rooms", &owner, "ann online in the room", |b| {
            b["items"][0]["room_id"] == room.as_str()
                && b["items"][0]["members"].as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m["user_id"] == ann_id.as_str() && m["online"] == true)
                })
        })
        .await;
    let stranger = elsewhere
        .get(&presence, &c.register("here-x@example.com", "x").await.1)
        .await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{}", stranger.body);
    drop(stream);
    // the grace period is a second here
    elsewhere
        .get_until(
            &presence,
            &owner,
            "ann offline after the grace period",
            |b| ann_online(b, false),
        )
        .await;
    // and that ann went offline, once the grace period ran out
    let gone = watching.until(WAIT, presence_of(false)).await;
    assert!(gone.data["topic"].is_string(), "{:?}", gone.data);
}

/// A second of grace, so a test sees a user go offline.
const PRESENCE: (&str, &str) = ("TESSERA_PRESENCE_GRACE_SECONDS", "1");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_streams_changes_and_notifications_and_ends_streams_at_shutdown() {
    let mut stack = Stack::embedded(&[PRESENCE]).await;
    the_stream_contract(&stack).await;
    the_presence_contract(&stack, &stack.client).await;

    // a stream open at SIGTERM ends, and the process exits cleanly
    let c = &stack.client;
    let (_, token) = c.register("live-last@example.com", "last").await;
    let base = stack.read().addr.clone();
    let mut open = sse::open(&base, None, &token, None)
        .await
        .expect("a stream of notifications only");
    let server = &mut stack.writers[0];
    let stopped = tokio::task::block_in_place(|| server.terminate_within(Duration::from_secs(20)));
    let (took, clean) = stopped.expect("serve exits with a stream open");
    assert!(clean, "serve exited cleanly after {took:?}");
    assert!(open.next(WAIT).await.is_none(), "the stream was ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_api_of_the_distributed_stack_streams_every_change() {
    let topology = common::stack::Topology {
        readers: 2,
        ..common::stack::Topology::PIPELINE
    };
    let stack = Stack::distributed(topology, &[PRESENCE]).await;
    the_stream_contract(&stack).await;
    // a stream on one read API, presence read on the other (through Redis)
    let elsewhere = Client::new(&stack.write().addr, &stack.readers[1].addr);
    the_presence_contract(&stack, &elsewhere).await;

    // one change, heard by a stream on each read API
    let c = &stack.client;
    let (_, owner) = c.register("live-owner@example.com", "owner").await;
    let guild = c.new_guild(&owner, "Everywhere").await;
    c.get_until(&format!("/v1/guilds/{guild}"), &owner, "the guild", |_| {
        true
    })
    .await;
    let topic = format!("guild:{guild}");
    let mut streams = Vec::new();
    for reader in &stack.readers {
        streams.push(sse::open_once_allowed(&reader.addr, &topic, &owner, WAIT).await);
    }
    let renamed = c
        .send(
            Method::PATCH,
            &format!("/v1/guilds/{guild}"),
            &owner,
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    // (a change announced before the stream opened may still arrive: a
    // stream pushes a document as it is when it hears of it)
    for (i, s) in streams.iter_mut().enumerate() {
        let e = s
            .until(WAIT, |e| {
                e.event == "document" && e.data["document"]["name"] == "Renamed"
            })
            .await;
        assert_eq!(e.data["version"], renamed.body["version"], "read API {i}");
    }
}

/// Resident memory of a process, in KiB (Linux `/proc`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_streams_on_one_read_api_each_receive_a_broadcast_change() {
    const STREAMS: usize = 500;
    // one user holds them all here
    let stack = Stack::embedded(&[("TESSERA_STREAMS_PER_USER", "1000")]).await;
    let c = &stack.client;
    let (_, owner) = c.register("many@example.com", "many").await;
    let guild = c.new_guild(&owner, "Crowded").await;
    c.get_until(&format!("/v1/guilds/{guild}"), &owner, "the guild", |_| {
        true
    })
    .await;
    let base = stack.read().addr.clone();
    let topic = format!("guild:{guild}");
    let pid = stack.read().pid();
    let before = rss_kib(pid);
    // the owner's membership is readable once one stream opens
    let first = sse::open_once_allowed(&base, &topic, &owner, WAIT).await;
    let opened = futures::future::join_all(
        (1..STREAMS).map(|_| sse::open(&base, Some(&topic), &owner, None)),
    )
    .await;
    let mut streams: Vec<sse::Stream> = std::iter::once(first)
        .chain(opened.into_iter().map(|s| s.expect("every stream opens")))
        .collect();
    let after = rss_kib(pid);
    let renamed = c
        .send(
            Method::PATCH,
            &format!("/v1/guilds/{guild}"),
            &owner,
            Some(json!({"name": "Still crowded"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let started = std::time::Instant::now();
    let heard = futures::future::join_all(streams.iter_mut().map(|s| async {
        s.until(WAIT, |e| {
            e.event == "document" && e.data["document"]["name"] == "Still crowded"
        })
        .await
    }))
    .await;
    assert_eq!(heard.len(), STREAMS, "every stream heard the change");
    assert!(heard
        .iter()
        .all(|e| e.data["version"] == renamed.body["version"]));
    eprintln!(
        "{STREAMS} streams on one read API: {} KiB resident before, {} KiB after ({} KiB per stream); every one heard the change within {:?} of the answer",
        before,
        after,
        after.saturating_sub(before) / STREAMS as u64,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnecting_to_a_killed_and_restarted_read_api_misses_no_notification() {
    let mut stack =
        Stack::distributed(common::stack::Topology::PIPELINE.with_fixed_ports(), &[]).await;
    let c = std::sync::Arc::clone(&stack.client);
    let (_, ann) = c.register("back-ann@example.com", "ann").await;
    let (bob_id, bob) = c.register("back-bob@example.com", "bob").await;
    let room = c
        .post("/v1/dm/rooms", &ann, json!({"user_ids": [bob_id]}))
        .await
        .id("room_id");
    let base = stack.read().addr.clone();
    let say = |text: &'static str| {
        let (c, ann, room) = (std::sync::Arc::clone(&c), ann.clone(), room.clone());
        async move {
            let a = c
                .post(
                    &format!("/v1/dm/rooms/{room}/messages"),
                    &ann,
                    json!({ "content": text }),
                )
                .await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        }
    };
    let mut stream = sse::open(&base, None, &bob, None)
        .await
        .expect("bob streams");
    say("one").await;
    let first = stream.until(WAIT, is("notification")).await;
    drop(stream);

    // the read API dies; two notifications are made while it is away
    stack.readers[0].kill();
    say("two").await;
    say("three").await;
    stack.readers[0].respawn().await;

    // back, from where it was
    let deadline = tessera_testkit::Deadline::new(WAIT, "the read API is back");
    let mut again = loop {
        match sse::open(&base, None, &bob, Some(&first.id)).await {
            Ok(s) => break s,
            Err(_) => deadline.tick().await,
        }
    };
    // both (in either order: the projector folds the log's partitions side
    // by side), then nothing twice
    let mut got: Vec<SseEvent> = Vec::new();
    while got.len() < 2 {
        let Ok(e) = tokio::time::timeout(WAIT, again.until(WAIT * 2, is("notification"))).await
        else {
            let listed = c.get("/v1/me/notifications", &bob).await;
            panic!(
                "only {got:?} after the reconnect; listed now: {}\n{}",
                listed.body,
                stack.logs(40)
            );
        };
        assert!(
            !got.iter()
                .any(|g| g.data["notification_id"] == e.data["notification_id"])
                && e.data["notification_id"] != first.data["notification_id"],
            "a notification came twice: {e:?}"
        );
        got.push(e);
    }
    got.sort_by(|a, b| {
        a.data["notification_id"]
            .as_str()
            .cmp(&b.data["notification_id"].as_str())
    });
    let nid = |e: &SseEvent| {
        e.data["notification_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (second, third) = (&got[0], &got[1]);
    assert!(nid(&first) < nid(second) && nid(second) < nid(third));
    assert_eq!(
        (second.data["kind"].as_str(), third.data["kind"].as_str()),
        (Some("dm_message"), Some("dm_message"))
    );
    let listed = c
        .get_until(
            "/v1/me/notifications",
            &bob,
            "bob's three notifications",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 3),
        )
        .await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|n| n["notification_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [nid(&first), nid(second), nid(third)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_holds_at_most_the_bound_of_open_streams() {
    let stack = Stack::embedded(&[("TESSERA_STREAMS_PER_USER", "3")]).await;
    let c = &stack.client;
    let (_, ann) = c.register("bounded@example.com", "bounded").await;
    let (_, bob) = c.register("unbounded@example.com", "unbounded").await;
    let base = stack.read().addr.clone();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            sse::open(&base, None, &ann, None)
                .await
                .expect("within the bound"),
        );
    }
    let (status, body) = sse::open(&base, None, &ann, None)
        .await
        .err()
        .expect("a fourth stream is refused");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams");
    // another user has a bound of their own
    let _bobs = sse::open(&base, None, &bob, None)
        .await
        .expect("bob streams");
    // a closed stream frees its place (once the server sees it closed)
    drop(open.pop());
    let deadline = tessera_testkit::Deadline::new(WAIT, "a place frees up after a stream closed");
    let _again = loop {
        match sse::open(&base, None, &ann, None).await {
            Ok(s) => break s,
            Err((status, _)) => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                deadline.tick().await;
            }
        }
    };
}
