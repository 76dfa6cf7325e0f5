//! Places in line handed out in batches: the users who ask at the same
//! time are placed by one [`QueueStore::place_many`], and the admission
//! ticks of their queues are read once for all of them, after the places
//! committed.
//!
//! A place taken one at a time was eight state-store statements (the
//! holder, a transaction of five, the ticks); on the embedded store half
//! the CPU went to handing each statement to SQLite's thread and back, and
//! `scripts/load race queue` placed 1,546 users a second.

use std::sync::Arc;

use crate::admissions::Admissions;
use crate::batch::Batcher;
use crate::store::{PlaceRequest, Placed, QueueStore};

/// Answers [`QueueStore::place`] for each request. When a caller has its
/// answer, the remembered ticks of its queue are as fresh as its place: a
/// new position past them is waiting, without asking the store again.
pub(crate) fn placer(
    store: Arc<dyn QueueStore>,
    admissions: Arc<Admissions>,
) -> Batcher<PlaceRequest, Placed> {
    Batcher::new(Arc::new(move |requests: Vec<PlaceRequest>| {
        let store = Arc::clone(&store);
        let admissions = Arc::clone(&admissions);
        Box::pin(async move {
            let placed = store.place_many(&requests).await?;
            let mut concerts: Vec<&str> = requests.iter().map(|r| r.concert_id.as_str()).collect();
            concerts.sort_unstable();
            concerts.dedup();
            for concert_id in concerts {
                let reach = admissions.reach(concert_id);
                let newer = store.ticks_after(concert_id, reach).await?;
                admissions.learn(concert_id, newer);
            }
            Ok(placed)
        })
    }))
}

/// Answers whether each token id was ended, one [`QueueStore::revoked_among`] a
/// batch: every hold and payment asks, and a crowd racing for seats asks
/// thousands of times a second.
pub(crate) fn revocations(store: Arc<dyn QueueStore>) -> Batcher<String, bool> {
    Batcher::new(Arc::new(move |jtis: Vec<String>| {
        let store = Arc::clone(&store);
        Box::pin(async move { store.revoked_among(&jtis).await })
    }))
}
