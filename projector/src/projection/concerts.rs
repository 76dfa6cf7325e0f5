use tessera_documents::documents::{collections, ConcertDoc};
use tessera_events::{aggregate, ConcertEvent, DomainEvent, Envelope};

use super::{open, Fold, FoldError, Folded, Outcome};

/// `concerts`: one document per concert.
pub struct Concerts;

impl Fold for Concerts {
    type Doc = ConcertDoc;
    const NAME: &'static str = collections::CONCERTS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::CONCERT];

    fn fold(
        &self,
        doc: Option<ConcertDoc>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Folded<ConcertDoc> {
        let DomainEvent::Concert(ConcertEvent::ConcertCreated { name }) = event else {
            return Ok(Outcome::Unchanged);
        };
        let created = || {
            Some(ConcertDoc {
                concert_id: envelope.aggregate_id.clone(),
                name: name.clone(),
                created_at: envelope.metadata.occurred_at,
                version: 1,
            })
        };
        open(doc, |d| d.version, envelope.sequence, created)?
            .then(|_| Err(FoldError::Inapplicable("concert created twice".into())))
    }
}
