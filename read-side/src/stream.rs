//! `GET /v1/stream`: Server-Sent Events of the caller's notifications and
//! of the documents and messages of the topics they may read (DESIGN.md
//! §10). Every topic is checked against read access before the stream
//! starts; then the stream follows the change feed the projectors announce
//! on, reading each changed document once it is readable.
//!
//! Every event carries an `id:`: the newest notification id the stream has
//! sent. A client that reconnects with it as `Last-Event-ID` gets every
//! notification after it first, so none is lost across reconnects or
//! restarts of any process (notifications are a projection, read again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::Utc;
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_documents::changes::{Announce, Broadcast, Change, Heard};
use tessera_documents::documents::{collections, member_id, pair_id, GuildMemberDoc, PostDoc};
use tessera_documents::notifications::NotificationDoc;
use tessera_documents::store::{ListQuery, Order};
use tessera_http::auth::Principal;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiQuery;
use tokio::sync::{broadcast, watch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::Access;
use crate::chat::{my_room, MessageView};
use crate::notifications::NotificationView;
use crate::presence::{lease, Presence};
use crate::query::{store_failed, typed};
use crate::reader::Reader;
use crate::stream_limit::{StreamLimit, StreamSlot};
use crate::{ReadSide, ReadState};

/// How often an idle stream says it is alive (a comment line).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Most topics one stream follows.
const MAX_TOPICS: usize = 50;

/// Most notifications a reconnect catches up on at once (the rest follow,
/// page after page).
const CATCH_UP: usize = 100;

/// Notification ids a stream remembers having sent, to send each once.
const REMEMBERED: usize = 1000;

/// How far before its `Last-Event-ID` a resumed stream looks again. In the
/// distributed mode the projector folds the partitions of the log side by
/// side, so a notification can become readable after one with a higher id
/// (a later log position): a client that got the higher one and then
/// reconnected would otherwise never get the lower one (measured: 1 in 3
/// runs of the reconnect test in `tests/live.rs` lost one).
const RESUME_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// The change feed a read API's streams follow, where it tells every read
/// API who came online or went offline, and the signal that ends its
/// streams when the process shuts down.
#[derive(Clone)]
pub struct LiveFeed {
    pub changes: Broadcast,
    pub presence: Arc<dyn Announce>,
    pub closing: watch::Receiver<bool>,
    /// Open streams per user on this process, at most.
    pub limit: Arc<StreamLimit>,
}

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// `?topics=`
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Up to 50 comma-separated topics `kind:id`, kinds `post`, `guild`,
    /// `channel`, `schedule`, `product` and `dm`.
    #[param(
        max_length = 3300,
        pattern = r"^((post|guild|channel|schedule|product|dm):[^,:]{1,64})(,(post|guild|channel|schedule|product|dm):[^,:]{1,64}){0,49}$"
    )]
    pub topics: Option<String>,
}

/// What a stream follows.
#[derive(Default)]
struct Follows {
    /// `(projection, id)` → topic: documents pushed as `document`.
    docs: HashMap<(&'static str, String), String>,
    /// A channel or room id → topic: its messages pushed as `message`.
    places: HashMap<String, String>,
    /// A followed guild's id → its topic: its members' presence pushed.
    guilds: HashMap<String, String>,
    /// A followed room's id → its topic and members: their presence pushed.
    rooms: HashMap<String, (String, Vec<String>)>,
}

fn bad_topics(reason: &str) -> ApiError {
    ApiError::invalid("topics", reason)
}

/// Parses the topics and checks that the caller may read each one.
async fn follows(rs: &ReadSide, user: &Principal, topics: &str) -> Result<Follows, ApiError> {
    let mut f = Follows::default();
    let mut seen = HashSet::new();
    for topic in topics.split(',') {
        let (kind, id) = topic
            .split_once(':')
            .filter(|(_, id)| (1..=64).contains(&id.chars().count()) && !id.contains(':'))
            .ok_or_else(|| bad_topics("each topic is kind:id"))?;
        if !seen.insert(topic) {
            continue;
        }
        let id = id.to_owned();
        match kind {
            "post" => {
                let post: PostDoc = rs
                    .docs
                    .get(&rs.live(collections::POSTS).await?, &id)
                    .await
                    .map_err(|e| store_failed(&e))?
                    .map(typed)
                    .transpose()?
                    .ok_or_else(|| ApiError::not_found("post"))?;
                Access::new(rs, user, None)
                    .channel(&post.channel_id)
                    .await?;
                f.docs.insert((collections::POSTS, id), topic.to_owned());
            }
            "guild" => {
                Access::new(rs, user, None).guild(&id).await?;
                f.guilds.insert(id.clone(), topic.to_owned());
                f.docs.insert((collections::GUILDS, id), topic.to_owned());
            }
            "channel" => {
                Access::new(rs, user, None).channel(&id).await?;
                f.places.insert(id, topic.to_owned());
            }
            "schedule" => {
                f.docs
                    .insert((collections::SCHEDULES, id), topic.to_owned());
            }
            "product" => {
                f.docs.insert((collections::PRODUCTS, id), topic.to_owned());
            }
            "dm" => {
                let room = my_room(rs, &user.user_id, &id)
                    .await
                    .map_err(|_| ApiError::forbidden("only the room's members follow it"))?;
                // a room's members never change
                f.rooms.insert(id.clone(), (topic.to_owned(), room.members));
                f.places.insert(id, topic.to_owned());
            }
            _ => return Err(bad_topics(&format!("unknown topic kind {kind:?}"))),
        }
    }
    if seen.len() > MAX_TOPICS {
        return Err(bad_topics("at most 50 topics"));
    }
    Ok(f)
}

/// One open stream.
struct Open {
    rs: ReadState,
    user_id: String,
    follows: Follows,
    changes: broadcast::Receiver<Arc<Heard>>,
    closing: watch::Receiver<bool>,
    /// Events ready to send, oldest first.
    ready: VecDeque<Event>,
    /// The newest notification sent (or known at connect): every event's id.
    last: String,
    /// The notifications sent, newest last (at most [`REMEMBERED`]).
    sent: VecDeque<String>,
    /// Renews the stream's presence lease.
    heartbeat: tokio::time::Interval,
    lease: Lease,
    _open: OpenGauge,
    _slot: StreamSlot,
}

/// An open stream's presence: held while it lives, cut to the grace period
/// when it is dropped.
struct Lease {
    presence: Arc<dyn Presence>,
    announce: Arc<dyn Announce>,
    user_id: String,
    stream_id: String,
    ttl: Duration,
    grace: Duration,
}

/// Whether `user_id` is online now (a failing store says no).
async fn is_online(presence: &dyn Presence, user_id: &str) -> bool {
    presence
        .online(&[user_id.to_owned()], Utc::now())
        .await
        .is_ok_and(|online| online.contains(user_id))
}

impl Lease {
    /// Takes the lease, telling every read API if the user just came online.
    async fn open(&self) {
        let was_online = is_online(&*self.presence, &self.user_id).await;
        self.renew().await;
        if !was_online {
            self.announce
                .announce(vec![Change::presence(&self.user_id, true)]);
        }
    }

    async fn renew(&self) {
        let until = Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or_default();
        if let Err(error) = self
            .presence
            .hold(&self.user_id, &self.stream_id, until)
            .await
        {
            tracing::warn!(%error, user_id = %self.user_id, "renewing a presence lease failed");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (presence, announce, user_id, stream_id) = (
            Arc::clone(&self.presence),
            Arc::clone(&self.announce),
            std::mem::take(&mut self.user_id),
            std::mem::take(&mut self.stream_id),
        );
        let grace = self.grace;
        let until = Utc::now() + chrono::Duration::from_std(grace).unwrap_or_default();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = presence.hold(&user_id, &stream_id, until).await {
                    tracing::warn!(%error, %user_id, "ending a presence lease failed");
                }
                // once the grace period is over, and no other stream of
                // theirs (on any read API) holds a lease, they went offline
                tokio::time::sleep(grace + Duration::from_millis(50)).await;
                if !is_online(&*presence, &user_id).await {
                    announce.announce(vec![Change::presence(&user_id, false)]);
                }
            });
        }
    }
}

/// Counts open streams for `/metrics` while it lives.
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics::gauge!("tessera_streams_open").increment(1.0);
        Self
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("tessera_streams_open").decrement(1.0);
    }
}

impl Open {
    /// The caller's notifications after `self.last`, oldest first, queued.
    async fn catch_up(&mut self) -> Result<(), ApiError> {
        let after = (!self.last.is_empty()).then_some(self.last.as_str());
        for n in notifications(&self.rs, &self.user_id, Order::Asc, after, CATCH_UP).await? {
            self.notification(n);
        }
        Ok(())
    }

    /// After the stream may have missed changes: what it must not miss,
    /// read again.
    async fn resync(&mut self) -> Result<(), ApiError> {
        self.look_back().await?;
        self.catch_up().await
    }

    /// Sends the notifications of the `RESUME_LOOKBACK` before `self.last`
    /// again (some may have become readable only after the client saw a
    /// newer one; the client tells repeats by `notification_id`).
    async fn look_back(&mut self) -> Result<(), ApiError> {
        let at = pair_id(&self.user_id, &self.last);
        let Some(newest) = self.get(collections::NOTIFICATIONS, &at).await? else {
            return Ok(());
        };
        let newest: NotificationDoc = serde_json::from_value(newest).map_err(ApiError::internal)?;
        let since = newest.created_at - RESUME_LOOKBACK;
        let before = notifications(
            &self.rs,
            &self.user_id,
            Order::Desc,
            Some(&self.last),
            CATCH_UP,
        )
        .await?;
        let again: Vec<NotificationDoc> = before
            .into_iter()
            .take_while(|n| n.created_at >= since)
            .collect();
        for n in again.into_iter().rev() {
            self.notification(n);
        }
        Ok(())
    }

    fn notification(&mut self, n: NotificationDoc) {
        if self.sent.contains(&n.notification_id) {
            return; // sent already (a catch-up and the feed overlap)
        }
        if self.sent.len() >= REMEMBERED {
            self.sent.pop_front();
        }
        self.sent.push_back(n.notification_id.clone());
        if n.notification_id > self.last {
            self.last.clone_from(&n.notification_id);
        }
        let view = NotificationView {
            notification_id: n.notification_id,
            kind: n.kind,
            subject: n.subject,
            actor_id: n.actor_id,
            created_at: n.created_at,
            read: false,
        };
        self.push("notification", &json!(view));
    }

    fn push(&mut self, kind: &str, data: &Value) {
        let event = Event::default()
            .event(kind)
            .id(self.last.clone())
            .data(data.to_string());
        self.ready.push_back(event);
    }

    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ApiError> {
        let collection = self.rs.live(projection).await?;
        Ok(self
            .rs
            .docs
            .get(&collection, id)
            .await
            .map_err(|e| store_failed(&e))?
            .map(|d| d.body))
    }

    /// Queues `event: presence` for each followed guild and room the user
    /// is a member of (the caller's own presence is not told to them).
    async fn presence(&mut self, user_id: &str, online: bool) -> Result<(), ApiError> {
        if user_id == self.user_id {
            return Ok(());
        }
        let mut topics: Vec<String> = self
            .follows
            .rooms
            .values()
            .filter(|(_, members)| members.iter().any(|m| m == user_id))
            .map(|(topic, _)| topic.clone())
            .collect();
        let guilds: Vec<(String, String)> = self
            .follows
            .guilds
            .iter()
            .map(|(g, t)| (g.clone(), t.clone()))
            .collect();
        for (guild_id, topic) in guilds {
            let member = self
                .get(collections::GUILD_MEMBERS, &member_id(&guild_id, user_id))
                .await?
                .and_then(|doc| serde_json::from_value::<GuildMemberDoc>(doc).ok());
            if member.is_some_and(|m| m.member_of.as_deref() == Some(guild_id.as_str())) {
                topics.push(topic);
            }
        }
        topics.sort();
        for topic in topics {
            self.push(
                "presence",
                &json!({"topic": topic, "user_id": user_id, "online": online}),
            );
        }
        Ok(())
    }

    /// The changed document, read once for every stream of this process.
    async fn changed(&self, heard: &Heard) -> Result<Option<Value>, ApiError> {
        heard
            .body(|| self.get(&heard.change.projection, &heard.change.id))
            .await
    }

    /// Queues what a change means to this stream, if anything.
    async fn hear(&mut self, heard: &Heard) -> Result<(), ApiError> {
        let change = &heard.change;
        if let Some((user_id, online)) = change.as_presence() {
            return self.presence(user_id, online).await;
        }
        let key = change.key.as_deref();
        match change.projection.as_str() {
            collections::NOTIFICATIONS if key == Some(self.user_id.as_str()) => {
                if let Some(doc) = self.changed(heard).await? {
                    let n: NotificationDoc =
                        serde_json::from_value(doc).map_err(ApiError::internal)?;
                    self.notification(n);
                }
            }
            collections::MESSAGES => {
                let Some(topic) = key.and_then(|k| self.follows.places.get(k)).cloned() else {
                    return Ok(());
                };
                if let Some(doc) = self.changed(heard).await? {
                    let m: MessageView = serde_json::from_value(doc).map_err(ApiError::internal)?;
                    let data = json!({"topic": topic, "message": m});
                    self.push("message", &traced(data, change));
                }
            }
            projection => {
                let followed = (projection_name(projection), change.id.clone());
                let Some(topic) = self.follows.docs.get(&followed).cloned() else {
                    return Ok(());
                };
                if let Some(doc) = self.changed(heard).await? {
                    let version = doc.get("version").cloned().unwrap_or(Value::Null);
                    let data = json!({"topic": topic, "document": doc, "version": version});
                    self.push("document", &traced(data, change));
                }
            }
        }
        Ok(())
    }

    /// The next event to send; `None` ends the stream (shutdown).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let woke = tokio::select! {
                _ = self.closing.wait_for(|closing| *closing) => Woke::Closing,
                _ = self.heartbeat.tick() => Woke::Heartbeat,
                change = self.changes.recv() => Woke::Change(change),
            };
            let change = match woke {
                Woke::Closing => return None,
                Woke::Heartbeat => {
                    self.lease.renew().await;
                    continue;
                }
                Woke::Change(change) => change,
            };
            let heard = match change {
                Ok(heard) if heard.change.is_resync() => self.resync().await,
                Ok(heard) => self.hear(&heard).await,
                // fell behind the feed: what matters to keep, the
                // notifications, is read again from where the stream is
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, user_id = %self.user_id, "a stream fell behind the change feed");
                    self.resync().await
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if let Err(error) = heard {
                tracing::warn!(?error, "a stream could not read a changed document");
            }
        }
    }
}

/// What woke a stream up.
enum Woke {
    Closing,
    Heartbeat,
    Change(Result<Arc<Heard>, broadcast::error::RecvError>),
}

/// The projection names streams follow, as `'static` keys.
fn projection_name(name: &str) -> &'static str {
    [
        collections::POSTS,
        collections::GUILDS,
        collections::SCHEDULES,
        collections::PRODUCTS,
    ]
    .into_iter()
    .find(|p| *p == name)
    .unwrap_or("")
}

/// The caller's notifications (always) and the documents and messages of
/// the topics they may read, as Server-Sent Events.
#[utoipa::path(get, path = "/v1/stream", tag = "live", params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "the `id:` of the last event received: notifications after it are sent first")),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "events `notification` (`NotificationView`), `document` (`{topic, document, version}`), `message` (`{topic, message}`) and `presence` (`{topic, user_id, online}`: a member of a followed guild or room came online or went offline), each with an `id:`; a comment line every 15 s"),
        (status = 400, body = ErrorBody, description = "an unknown or malformed topic"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "a topic the caller may not read"),
        (status = 404, body = ErrorBody, description = "an unknown post"),
        (status = 410, body = ErrorBody, description = "a deleted guild or channel"),
        (status = 429, body = ErrorBody, description = "`too_many_streams`: the caller holds `TESSERA_STREAMS_PER_USER` streams on this read API already"),
        (status = 503, body = ErrorBody, description = "this instance has no change feed")))]
pub async fn stream(
    Reader(rs, user): Reader,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Some(feed) = rs.live_feed.clone() else {
        return Err(ApiError::unavailable("this read API has no change feed"));
    };
    let Some(slot) = feed.limit.try_open(&user.user_id) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "at most {} open streams per user; close one first",
                feed.limit.per_user()
            ),
        )
        .retry_after(1));
    };
    let follows = match q.topics.as_deref() {
        None => Follows::default(),
        Some("") => return Err(bad_topics("must not be empty")),
        Some(t) => follows(&rs, &user, t).await?,
    };
    let resume = headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .ok()
        .flatten()
        .filter(|v| (1..=64).contains(&v.len()));
    // subscribed before anything is read, so nothing falls between
    let changes = feed.changes.subscribe();
    let (ttl, every) = lease(rs.presence_grace);
    let lease = Lease {
        presence: Arc::clone(&rs.presence),
        announce: Arc::clone(&feed.presence),
        user_id: user.user_id.clone(),
        stream_id: uuid::Uuid::new_v4().to_string(),
        ttl,
        grace: rs.presence_grace,
    };
    lease.open().await;
    let mut heartbeat = tokio::time::interval(every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset(); // the lease was just given
    let mut open = Open {
        rs: rs.clone(),
        user_id: user.user_id.clone(),
        follows,
        changes,
        closing: feed.closing,
        ready: VecDeque::new(),
        last: String::new(),
        sent: VecDeque::new(),
        heartbeat,
        lease,
        _open: OpenGauge::new(),
        _slot: slot,
    };
    match resume {
        Some(last) => {
            open.last = last;
            open.look_back().await?;
            open.catch_up().await?;
        }
        None => open.last = newest_notification(&rs, &user.user_id).await?,
    }
    let events = futures::stream::unfold(open, |mut open| async move {
        open.next().await.map(|e| (Ok(e), open))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// The id of the caller's newest notification ("" when none).
async fn newest_notification(rs: &ReadSide, user_id: &str) -> Result<String, ApiError> {
    let newest = notifications(rs, user_id, Order::Desc, None, 1).await?;
    Ok(newest
        .into_iter()
        .next()
        .map(|n| n.notification_id)
        .unwrap_or_default())
}

/// Up to `limit` of the user's notifications in `order`, from after the
/// notification id `after` (exclusive).
async fn notifications(
    rs: &ReadSide,
    user_id: &str,
    order: Order,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<NotificationDoc>, ApiError> {
    let after = after.map(|id| pair_id(user_id, id));
    rs.docs
        .list(
            &rs.live(collections::NOTIFICATIONS).await?,
            ListQuery {
                filter: Some(("user_id", user_id)),
                order,
                after: after.as_deref(),
                limit,
            },
        )
        .await
        .map_err(|e| store_failed(&e))?
        .into_iter()
        .map(typed)
        .collect()
}

/// A pushed change names the trace of the command that made it, when the
/// command had one (its `traceparent`, or the one its request was given).
fn traced(mut data: Value, change: &Change) -> Value {
    if let (Some(trace_id), Some(object)) = (&change.trace_id, data.as_object_mut()) {
        object.insert("trace_id".to_owned(), Value::from(trace_id.as_str()));
    }
    data
}
