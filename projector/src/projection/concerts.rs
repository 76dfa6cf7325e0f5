use tessera_documents::documents::{collections, ConcertDoc};
use tessera_events::ConcertEvent;

use super::{open, At, Fold, FoldError, Folded};

/// `concerts`: one document per concert.
pub struct Concerts;

impl Fold for Concerts {
    type Doc = ConcertDoc;
    type Event = ConcertEvent;
    const NAME: &'static str = collections::CONCERTS;

    fn fold_in(&self, doc: Option<ConcertDoc>, at: At<ConcertEvent>) -> Folded<ConcertDoc> {
        let ConcertEvent::ConcertCreated { name } = at.event;
        let created = || {
            Some(ConcertDoc {
                concert_id: at.aggregate_id.clone(),
                name: name.clone(),
                created_at: at.metadata.occurred_at,
                version: 1,
            })
        };
        open(doc, |d| d.version, at.sequence, created)?
            .then(|_| Err(FoldError::Inapplicable("concert created twice".into())))
    }
}
