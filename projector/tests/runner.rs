//! The projector runner on a real MongoDB-protocol server: duplicates,
//! gaps, poison events, fan-out and two instances writing one document.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tessera_documents::documents::{collections, AccountDoc, DeadLetterDoc, UserGuildsDoc};
use tessera_documents::store::mongo::MongoStore;
use tessera_documents::store::DocumentStore;
use tessera_events::{AccountEvent, Envelope, EventKind, GuildEvent, LogPosition};
use tessera_projector::feed::{Delivery, EventFeed, FeedError};
use tessera_projector::projection::{Accounts, Projection, UserGuilds};
use tessera_projector::runner::{Projector, ProjectorError, RetryPolicy, Step};
use tessera_testkit::MongoDatabase;

/// Hands out scripted batches; remembers how far it was committed.
struct Scripted {
    batches: VecDeque<Vec<Delivery>>,
    commits: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl EventFeed for Scripted {
    async fn next_batch(&mut self, _max: usize) -> Result<Vec<Delivery>, FeedError> {
        Ok(self.batches.pop_front().unwrap_or_default())
    }

    async fn commit(&mut self) -> Result<(), FeedError> {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn position(&self) -> Option<LogPosition> {
        None
    }
}

fn envelope<E: EventKind + serde::Serialize>(id: &str, sequence: u64, event: &E) -> Envelope {
    let position = i64::try_from(sequence).unwrap();
    Envelope::fresh(id, sequence, position, event, chrono::Utc::now()).unwrap()
}

fn account(id: &str, sequence: u64) -> Delivery {
    let event = AccountEvent::charging(id, sequence, 10);
    Delivery::Event(envelope(id, sequence, &event))
}

#[allow(clippy::needless_pass_by_value)] // reads better at the call sites
fn guild(id: &str, sequence: u64, event: GuildEvent) -> Delivery {
    Delivery::Event(envelope(id, sequence, &event))
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: tessera_runtime::Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(20),
            tessera_runtime::Jitter::Equal,
        ),
    }
}

async fn store() -> (Arc<dyn DocumentStore>, MongoDatabase) {
    let db = MongoDatabase::create();
    let s = MongoStore::connect(&db.uri, &db.name).await.unwrap();
    (Arc::new(s), db)
}

async fn run(
    projection: Arc<dyn Projection>,
    docs: &Arc<dyn DocumentStore>,
    batches: Vec<Vec<Delivery>>,
) -> Vec<Step> {
    let feed = Scripted {
        batches: batches.into(),
        commits: Arc::default(),
    };
    let mut p = Projector::new(projection, Arc::clone(docs), Box::new(feed), fast());
    p.prepare().await.unwrap();
    let mut steps = Vec::new();
    loop {
        // like `Projector::run`: contention is retried with the batch in hand
        let step = match p.project_next().await {
            Ok(step) => step,
            Err(ProjectorError::Contended(_)) => continue,
            Err(e) => panic!("{e}"),
        };
        if step == Step::Idle {
            return steps;
        }
        steps.push(step);
    }
}

async fn doc<T: serde::de::DeserializeOwned>(
    docs: &Arc<dyn DocumentStore>,
    coll: &str,
    id: &str,
) -> Option<T> {
    docs.get(coll, id)
        .await
        .unwrap()
        .map(|d| serde_json::from_value(d.body).unwrap())
}

async fn dead_letters(docs: &Arc<dyn DocumentStore>, projection: &str) -> Vec<DeadLetterDoc> {
    let ids = docs
        .find_ids(collections::DEAD_LETTERS, "pending_for", projection)
        .await
        .unwrap();
    let mut letters: Vec<DeadLetterDoc> = docs
        .get_many(collections::DEAD_LETTERS, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|d| serde_json::from_value(d.body).unwrap())
        .collect();
    letters.sort_by_key(|l| (l.aggregate_id.clone(), l.sequence));
    letters
}

#[tokio::test]
async fn delivering_everything_twice_applies_it_once() {
    let (docs, _db) = store().await;
    let events: Vec<_> = (1..=6).map(|s| account("a", s)).collect();
    let mut again = events.clone();
    again.reverse(); // even out of order, duplicates are skipped
    run(
        Arc::new(Accounts),
        &docs,
        vec![events.clone(), again, events],
    )
    .await;
    let a: AccountDoc = doc(&docs, collections::ACCOUNTS, "a").await.unwrap();
    assert_eq!((a.version, a.balance), (6, 50));
    assert!(dead_letters(&docs, "accounts").await.is_empty());
}

#[tokio::test]
async fn a_gap_is_dead_lettered_after_retries_and_later_events_wait_behind_it() {
    let (docs, _db) = store().await;
    let batch = vec![
        account("a", 1),
        account("a", 3), // 2 is missing
        account("b", 1),
        account("a", 4),
        account("b", 2),
    ];
    let steps = run(Arc::new(Accounts), &docs, vec![batch]).await;
    assert_eq!(
        steps,
        [Step::Processed {
            events: 5,
            dead_lettered: 2
        }]
    );
    let a: AccountDoc = doc(&docs, collections::ACCOUNTS, "a").await.unwrap();
    assert_eq!(a.version, 1, "nothing after the gap was applied");
    let b: AccountDoc = doc(&docs, collections::ACCOUNTS, "b").await.unwrap();
    assert_eq!(b.version, 2, "other aggregates carry on");
    let letters = dead_letters(&docs, "accounts").await;
    assert_eq!(letters.len(), 2);
    assert_eq!((letters[0].sequence, letters[0].attempts), (3, 3));
    assert!(
        letters[0].error.contains("expected sequence 2"),
        "{}",
        letters[0].error
    );
    assert_eq!((letters[1].sequence, letters[1].attempts), (4, 0));
    assert!(letters[1].error.contains("waiting behind"));
    assert_eq!(letters[1].envelope.as_ref().unwrap().sequence, 4);

    // a later batch: the aggregate stays parked, others still flow
    run(
        Arc::new(Accounts),
        &docs,
        vec![vec![account("a", 5), account("b", 3)]],
    )
    .await;
    assert_eq!(dead_letters(&docs, "accounts").await.len(), 3);
    let b: AccountDoc = doc(&docs, collections::ACCOUNTS, "b").await.unwrap();
    assert_eq!(b.version, 3);
}

#[tokio::test]
async fn poison_payloads_and_foreign_bytes_are_dead_lettered_without_stopping_the_feed() {
    let (docs, _db) = store().await;
    let mut poison = envelope(
        "p",
        1,
        &AccountEvent::AccountRegistered {
            email: "e".into(),
            nickname: "n".into(),
        },
    );
    poison.payload = json!({"type": "AccountRegistered", "email": 42});
    let garbage = Delivery::Undecodable {
        source: "topic/0/17".into(),
        raw: "not json".into(),
        error: "expected value".into(),
    };
    let steps = run(
        Arc::new(Accounts),
        &docs,
        vec![vec![Delivery::Event(poison), garbage, account("ok", 1)]],
    )
    .await;
    assert_eq!(
        steps,
        [Step::Processed {
            events: 3,
            dead_lettered: 2
        }]
    );
    assert!(doc::<AccountDoc>(&docs, collections::ACCOUNTS, "ok")
        .await
        .is_some());
    let letters = dead_letters(&docs, "accounts").await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].error.contains("cannot be decoded"),
        "{}",
        letters[0].error
    );
    let raw: Value = docs
        .get(collections::DEAD_LETTERS, "accounts:raw:topic/0/17")
        .await
        .unwrap()
        .unwrap()
        .body;
    assert_eq!(raw["raw"], "not json");
}

fn joined(user: &str, nickname: &str) -> GuildEvent {
    GuildEvent::MemberJoined {
        user_id: user.into(),
        nickname: nickname.into(),
        guild_name: "Crabs".into(),
        guild_profile_image: None,
    }
}

#[tokio::test]
async fn a_guild_rename_reaches_every_members_guild_list() {
    let (docs, _db) = store().await;
    let created = GuildEvent::GuildCreated {
        name: "Crabs".into(),
        profile_image: None,
        owner_id: "owner".into(),
        owner_nickname: "O".into(),
    };
    let mut batch = vec![guild("g", 1, created)];
    for (i, u) in ["u1", "u2", "u3"].iter().enumerate() {
        batch.push(guild("g", i as u64 + 2, joined(u, u)));
    }
    // the rename is in the same batch as the joins it must see
    batch.push(guild(
        "g",
        5,
        GuildEvent::GuildUpdated {
            name: "Lobsters".into(),
            profile_image: Some("img".into()),
        },
    ));
    batch.push(guild(
        "g",
        6,
        GuildEvent::MemberLeft {
            user_id: "u3".into(),
        },
    ));
    run(Arc::new(UserGuilds), &docs, vec![batch]).await;
    for u in ["owner", "u1", "u2"] {
        let d: UserGuildsDoc = doc(&docs, collections::USER_GUILDS, u).await.unwrap();
        assert_eq!(d.guilds.len(), 1, "{u}");
        assert_eq!(d.guilds[0].name, "Lobsters", "{u}");
    }
    let u3: UserGuildsDoc = doc(&docs, collections::USER_GUILDS, "u3").await.unwrap();
    assert!(u3.guilds.is_empty());
    run(
        Arc::new(UserGuilds),
        &docs,
        vec![vec![guild("g", 7, GuildEvent::GuildDeleted)]],
    )
    .await;
    for u in ["owner", "u1", "u2"] {
        let d: UserGuildsDoc = doc(&docs, collections::USER_GUILDS, u).await.unwrap();
        assert!(d.guilds.is_empty(), "{u} still lists a deleted guild");
    }
}

/// Two projector instances fold different guilds' events into the same
/// user's document at the same time (as two partitions would): the
/// compare-and-set writes make sure neither update is lost.
#[tokio::test]
async fn two_instances_writing_one_document_lose_nothing() {
    let (docs, _db) = store().await;
    let guilds = 30;
    let mut feeds: Vec<Vec<Vec<Delivery>>> = vec![Vec::new(), Vec::new()];
    for g in 0..guilds {
        let id = format!("g{g:02}");
        let created = GuildEvent::GuildCreated {
            name: id.clone(),
            profile_image: None,
            owner_id: format!("owner{g}"),
            owner_nickname: "O".into(),
        };
        // one event per batch, so the two instances interleave a lot
        feeds[g % 2].push(vec![guild(&id, 1, created)]);
        feeds[g % 2].push(vec![guild(&id, 2, joined("shared", "S"))]);
    }
    let [a, b]: [Vec<Vec<Delivery>>; 2] = feeds.try_into().unwrap();
    let (ra, rb) = tokio::join!(
        run(Arc::new(UserGuilds), &docs, a),
        run(Arc::new(UserGuilds), &docs, b)
    );
    assert_eq!(ra.len() + rb.len(), guilds * 2);
    let shared: UserGuildsDoc = doc(&docs, collections::USER_GUILDS, "shared")
        .await
        .unwrap();
    let mut ids = shared.guild_ids.clone();
    ids.sort();
    assert_eq!(ids.len(), guilds, "every join is in the shared user's list");
    ids.dedup();
    assert_eq!(ids.len(), guilds);
}
