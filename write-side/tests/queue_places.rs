//! Places in line given in batches: both state stores write a batch in one
//! transaction, and what they answer must be what one place after another
//! answers (the store port's default).

use tessera_queue::{PlaceRequest, Placed, QueueStore};
use tessera_testkit::PgDatabase;
use tessera_write_side::store::state::{PgState, SqliteState};
use tessera_write_side::store::{postgres, sqlite};

async fn sqlite_state(dir: &tempfile::TempDir, name: &str) -> SqliteState {
    let pool = sqlite::open(&dir.path().join(name), 2).await.unwrap();
    SqliteState::new(pool).await.unwrap()
}

fn ask(concert_id: &str, user_id: &str, stale: Option<u64>) -> PlaceRequest {
    PlaceRequest {
        concert_id: concert_id.to_owned(),
        user_id: user_id.to_owned(),
        stale,
    }
}

/// Requests with everything a batch meets: two queues, a user asking
/// twice in one batch, a holder asking again, a holder whose place ended
/// (stale), a stale position that is not the one held.
fn batches() -> Vec<Vec<PlaceRequest>> {
    vec![
        vec![ask("a", "u1", None), ask("a", "u2", None)],
        vec![
            ask("a", "u3", None),
            ask("b", "u1", None),
            ask("a", "u3", None),
            ask("a", "u1", None),
            ask("b", "u4", None),
        ],
        vec![
            ask("a", "u2", Some(2)),
            ask("a", "u1", Some(99)),
            ask("a", "u2", Some(2)),
            ask("a", "u5", None),
            ask("b", "u1", Some(1)),
        ],
    ]
}

/// The answers, and then every user's holder, of each batch given at once.
async fn placed_in_batches(store: &dyn QueueStore) -> (Vec<Vec<Placed>>, Vec<Option<u64>>) {
    let mut answers = Vec::new();
    for batch in batches() {
        answers.push(store.place_many(&batch).await.unwrap());
    }
    (answers, holders(store).await)
}

/// The same, one place after another.
async fn placed_one_by_one(store: &dyn QueueStore) -> (Vec<Vec<Placed>>, Vec<Option<u64>>) {
    let mut answers = Vec::new();
    for batch in batches() {
        let mut placed = Vec::new();
        for r in &batch {
            placed.push(
                store
                    .place(&r.concert_id, &r.user_id, r.stale)
                    .await
                    .unwrap(),
            );
        }
        answers.push(placed);
    }
    (answers, holders(store).await)
}

async fn holders(store: &dyn QueueStore) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for concert in ["a", "b"] {
        for user in ["u1", "u2", "u3", "u4", "u5"] {
            out.push(
                store
                    .holder(concert, user)
                    .await
                    .unwrap()
                    .map(|h| h.position),
            );
        }
    }
    out
}

#[tokio::test]
async fn a_batch_on_sqlite_answers_what_one_place_after_another_answers() {
    let dir = tempfile::tempdir().unwrap();
    let batched = placed_in_batches(&sqlite_state(&dir, "batched.db").await).await;
    let one_by_one = placed_one_by_one(&sqlite_state(&dir, "one.db").await).await;
    assert_eq!(batched, one_by_one);
    // and what that is, spelled out for the first two batches
    use Placed::{Held, New};
    assert_eq!(batched.0[0], vec![New(1), New(2)]);
    assert_eq!(batched.0[1], vec![New(3), New(1), Held(3), Held(1), New(2)]);
    assert_eq!(
        batched.0[2],
        vec![New(4), Held(1), Held(4), New(5), New(3)],
        "a stale place is replaced once, a stale number not held changes nothing"
    );
}

#[tokio::test]
async fn postgres_and_sqlite_place_the_same_batches_alike() {
    let db = PgDatabase::create().await;
    let pool = db.pool(2).await;
    postgres::migrate(&pool).await.unwrap();
    let pg = PgState::new(pool);
    let dir = tempfile::tempdir().unwrap();
    let on_pg = placed_in_batches(&pg).await;
    let on_sqlite = placed_in_batches(&sqlite_state(&dir, "state.db").await).await;
    assert_eq!(on_pg, on_sqlite);
}

/// 100 batches of 20 at once, every user asking twice (in two batches,
/// one of them in reverse order: batches that locked rows in the order
/// asked would wait on each other in a circle).
async fn a_thousand_users_in_overlapping_batches(store: std::sync::Arc<dyn QueueStore>) {
    let asks = (0..100).map(|b| {
        let store = std::sync::Arc::clone(&store);
        async move {
            let mut batch: Vec<PlaceRequest> = (0..20)
                .map(|i| ask("c", &format!("u{}", (b * 10 + i) % 1000), None))
                .collect();
            if b % 2 == 1 {
                batch.reverse();
            }
            store.place_many(&batch).await.unwrap()
        }
    });
    let answers: Vec<Placed> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut new: Vec<u64> = answers
        .iter()
        .filter_map(|p| match p {
            Placed::New(n) => Some(*n),
            Placed::Held(_) => None,
        })
        .collect();
    let held = answers.len() - new.len();
    new.sort_unstable();
    assert_eq!(
        new,
        (1..=1000).collect::<Vec<u64>>(),
        "every user one new place, positions 1..=1000 each once"
    );
    assert_eq!(held, 1000, "the second asks held");
}

#[tokio::test]
async fn a_thousand_users_asking_in_batches_at_once_take_one_place_each_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_thousand_users_in_overlapping_batches(std::sync::Arc::new(
        sqlite_state(&dir, "state.db").await,
    ))
    .await;
}

#[tokio::test]
async fn a_thousand_users_asking_in_batches_at_once_take_one_place_each_on_postgres() {
    let db = PgDatabase::create().await;
    let pool = db.pool(8).await;
    postgres::migrate(&pool).await.unwrap();
    a_thousand_users_in_overlapping_batches(std::sync::Arc::new(PgState::new(pool))).await;
}

#[tokio::test]
async fn ended_tokens_are_read_in_one_query_on_both_stores() {
    let db = PgDatabase::create().await;
    let pool = db.pool(2).await;
    postgres::migrate(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Box<dyn QueueStore>> = vec![
        Box::new(PgState::new(pool)),
        Box::new(sqlite_state(&dir, "state.db").await),
    ];
    let until = chrono::Utc::now() + chrono::Duration::minutes(5);
    for store in stores {
        store.revoke("j1", until).await.unwrap();
        store.revoke("j3", until).await.unwrap();
        let asked: Vec<String> = ["j1", "j2", "j3", "j1", "j4"]
            .iter()
            .map(|j| (*j).to_owned())
            .collect();
        assert_eq!(
            store.revoked_among(&asked).await.unwrap(),
            vec![true, false, true, true, false]
        );
        assert!(store.revoked_among(&[]).await.unwrap().is_empty());
    }
}
