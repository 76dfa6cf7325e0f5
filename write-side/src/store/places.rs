//! Both state stores place a batch of users in line in one transaction of
//! four statements, whatever the batch's size: the holders the batch
//! names, one counter step per queue, the new holders. What each request
//! gets is planned in memory, as one place after another would give it.
//!
//! Nothing may change those holders between reading and writing them.
//! SQLite has one writer, and `BEGIN IMMEDIATE` takes its lock before the
//! first read. PostgreSQL is shared by several processes: the batch makes
//! sure each holder row exists, then locks them in one order (holders
//! sorted, then each queue's counter), the order a single place takes
//! them in too, so two batches never wait on each other in a circle.

use std::collections::{BTreeMap, HashMap};

use sqlx::{PgPool, Postgres, QueryBuilder, Sqlite, SqlitePool};
use tessera_queue::{PlaceRequest, Placed, StateError};

/// A holder as the batch sees it.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// Held before the batch (0: a row with no place).
    Held(u64),
    /// The `n`th new place of its queue in this batch.
    Taken(u64),
    /// The same, answered to a later request of the same user.
    HeldTaken(u64),
}

/// What a batch does, decided against the holders it read.
struct Plan<'a> {
    answers: Vec<Place>,
    /// How many new places each queue hands out.
    taken: BTreeMap<&'a str, u64>,
    holders: HashMap<(String, String), Place>,
}

/// Each request in order against what the ones before it did.
fn plan(requests: &[PlaceRequest], held: Vec<(String, String, i64)>) -> Plan<'_> {
    let mut holders: HashMap<(String, String), Place> = held
        .into_iter()
        .map(|(c, u, p)| ((c, u), Place::Held(u64::try_from(p).unwrap_or_default())))
        .collect();
    let mut taken: BTreeMap<&str, u64> = BTreeMap::new();
    let mut answers = Vec::with_capacity(requests.len());
    for r in requests {
        let key = (r.concert_id.clone(), r.user_id.clone());
        let answer = match holders.get(&key) {
            Some(&Place::Held(p)) if p > 0 && Some(p) != r.stale => Place::Held(p),
            // taken earlier in this batch: newer than any place the
            // caller could have found ended
            Some(&Place::Taken(n)) => Place::HeldTaken(n),
            _ => {
                let n = taken.entry(&r.concert_id).or_default();
                *n += 1;
                holders.insert(key, Place::Taken(*n));
                Place::Taken(*n)
            }
        };
        answers.push(answer);
    }
    Plan {
        answers,
        taken,
        holders,
    }
}

impl Plan<'_> {
    /// The new holders' rows, once each queue's counter moved: `before`
    /// holds each counter's value before its new places.
    fn new_holders(&self, before: &HashMap<&str, u64>) -> Vec<(String, String, i64)> {
        self.holders
            .iter()
            .filter_map(|((c, u), place)| match place {
                Place::Taken(n) => Some((c.clone(), u.clone(), to_i64(before[c.as_str()] + n))),
                _ => None,
            })
            .collect()
    }

    fn answers(self, requests: &[PlaceRequest], before: &HashMap<&str, u64>) -> Vec<Placed> {
        requests
            .iter()
            .zip(self.answers)
            .map(|(r, answer)| match answer {
                Place::Held(p) => Placed::Held(p),
                Place::Taken(n) => Placed::New(before[r.concert_id.as_str()] + n),
                Place::HeldTaken(n) => Placed::Held(before[r.concert_id.as_str()] + n),
            })
            .collect()
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const HOLDERS: &str =
    "SELECT concert_id, user_id, position FROM queue_holders WHERE (concert_id, user_id) IN (";

const STEP: &str = "INSERT INTO queue_positions (concert_id, last_issued) VALUES ($1, $2)
     ON CONFLICT (concert_id) DO UPDATE SET last_issued = queue_positions.last_issued + $2
     RETURNING last_issued";

const WRITE_HOLDERS: &str =
    "INSERT INTO queue_holders (concert_id, user_id, position, extensions, extended_until_ms) ";

const ON_CONFLICT: &str = " ON CONFLICT (concert_id, user_id) DO UPDATE SET
     position = excluded.position, extensions = 0, extended_until_ms = NULL";

/// One adapter's statements, written once for both databases.
macro_rules! place_many {
    ($(#[$doc:meta])* $name:ident, $db:ty, $pool:ty, $begin:literal, $lock:literal) => {
        $(#[$doc])*
        pub async fn $name(
            pool: &$pool,
            requests: &[PlaceRequest],
        ) -> Result<Vec<Placed>, StateError> {
            if requests.is_empty() {
                return Ok(Vec::new());
            }
            let mut tx = pool.begin_with($begin).await.map_err(StateError::new)?;
            if !$lock.is_empty() {
                // every holder row exists, so that the read below can lock
                // it; inserted in the locking order too (a concurrent
                // insert of the same row waits for this one)
                let mut keys: Vec<(&str, &str)> = requests
                    .iter()
                    .map(|r| (r.concert_id.as_str(), r.user_id.as_str()))
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                let mut rows = QueryBuilder::<$db>::new(WRITE_HOLDERS);
                rows.push_values(keys, |mut row, (concert_id, user_id)| {
                    row.push_bind(concert_id)
                        .push_bind(user_id)
                        .push_bind(0_i64)
                        .push_bind(0_i64)
                        .push_bind(None::<i64>);
                });
                rows.push(" ON CONFLICT DO NOTHING");
                rows.build().execute(&mut *tx).await.map_err(StateError::new)?;
            }
            let mut held = QueryBuilder::<$db>::new(HOLDERS);
            held.push_values(requests, |mut row, r| {
                row.push_bind(&r.concert_id).push_bind(&r.user_id);
            });
            held.push(")").push($lock);
            let rows: Vec<(String, String, i64)> = held
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(StateError::new)?;
            let plan = plan(requests, rows);

            let mut before = HashMap::with_capacity(plan.taken.len());
            for (concert_id, n) in &plan.taken {
                let last: i64 = sqlx::query_scalar(STEP)
                    .bind(concert_id)
                    .bind(to_i64(*n))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StateError::new)?;
                before.insert(*concert_id, u64::try_from(last).unwrap_or_default() - n);
            }
            let news = plan.new_holders(&before);
            if !news.is_empty() {
                let mut write = QueryBuilder::<$db>::new(WRITE_HOLDERS);
                write.push_values(&news, |mut row, (c, u, p)| {
                    row.push_bind(c)
                        .push_bind(u)
                        .push_bind(*p)
                        .push_bind(0_i64)
                        .push_bind(None::<i64>);
                });
                write.push(ON_CONFLICT);
                write.build().execute(&mut *tx).await.map_err(StateError::new)?;
            }
            tx.commit().await.map_err(StateError::new)?;
            Ok(plan.answers(requests, &before))
        }
    };
}

place_many!(
    /// [`tessera_queue::QueueStore::place_many`] on the embedded store.
    on_sqlite,
    Sqlite,
    SqlitePool,
    "BEGIN IMMEDIATE",
    ""
);

place_many!(
    /// [`tessera_queue::QueueStore::place_many`] on PostgreSQL.
    on_postgres,
    Postgres,
    PgPool,
    "BEGIN",
    " ORDER BY concert_id, user_id FOR UPDATE"
);
