use tessera_documents::documents::{collections, ConcertDoc};
use tessera_events::{aggregate, ConcertEvent, DomainEvent, Envelope};

use super::{follow, Fold, FoldError, Outcome, Step, Targets};

/// `concerts`: one document per concert.
pub struct Concerts;

impl Fold for Concerts {
    type Doc = ConcertDoc;
    const NAME: &'static str = collections::CONCERTS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::CONCERT];

    fn targets(&self, envelope: &Envelope, _: &DomainEvent) -> Targets {
        Targets::Ids(vec![envelope.aggregate_id.clone()])
    }

    fn fold(
        &self,
        doc: Option<ConcertDoc>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Result<Outcome<ConcertDoc>, FoldError> {
        let DomainEvent::Concert(ConcertEvent::ConcertCreated { name }) = event else {
            return Ok(Outcome::Unchanged);
        };
        match doc {
            Some(d) if follow(d.version, envelope.sequence)? == Step::Duplicate => {
                Ok(Outcome::Unchanged)
            }
            Some(_) => Err(FoldError::Inapplicable("concert created twice".into())),
            None if envelope.sequence == 1 => Ok(Outcome::Put(ConcertDoc {
                concert_id: envelope.aggregate_id.clone(),
                name: name.clone(),
                created_at: envelope.metadata.occurred_at,
                version: 1,
            })),
            None => Err(FoldError::Gap {
                expected: 1,
                got: envelope.sequence,
            }),
        }
    }
}
