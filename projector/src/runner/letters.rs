//! Writing dead letters: an event a projection could not apply, or bytes on
//! the feed that are not an event at all.

use tessera_events::Envelope;

use crate::projection::Projection;
use tessera_documents::documents::{collections, dead_letter_id, DeadLetterDoc};
use tessera_documents::store::{DocumentStore, StoreError, Write};

pub(crate) async fn dead_letter(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    envelope: &Envelope,
    error: &str,
    attempts: u32,
) -> Result<(), StoreError> {
    let name = projection.name();
    let letter = DeadLetterDoc {
        projection: name.to_owned(),
        aggregate_type: envelope.aggregate_type.clone(),
        aggregate_id: envelope.aggregate_id.clone(),
        sequence: envelope.sequence,
        global_position: envelope.global_position,
        envelope: Some(envelope.clone()),
        raw: None,
        error: error.to_owned(),
        attempts,
        pending_for: Some(name.to_owned()),
        created_at: chrono::Utc::now(),
        resolution: None,
        resolved_at: None,
    };
    let id = dead_letter_id(
        name,
        &envelope.aggregate_type,
        &envelope.aggregate_id,
        envelope.sequence,
    );
    store_letter(docs, id, &letter).await
}

pub(crate) async fn dead_letter_raw(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    source: &str,
    raw: &str,
    error: &str,
) -> Result<(), StoreError> {
    let name = projection.name();
    let letter = DeadLetterDoc {
        projection: name.to_owned(),
        aggregate_type: String::new(),
        aggregate_id: String::new(),
        sequence: 0,
        global_position: 0,
        envelope: None,
        raw: Some(raw.to_owned()),
        error: format!("not an event envelope: {error}"),
        attempts: 1,
        // nothing can be ordered behind bytes without an aggregate
        pending_for: None,
        created_at: chrono::Utc::now(),
        resolution: None,
        resolved_at: None,
    };
    store_letter(docs, format!("{name}:raw:{source}"), &letter).await
}

async fn store_letter(
    docs: &dyn DocumentStore,
    id: String,
    letter: &DeadLetterDoc,
) -> Result<(), StoreError> {
    let body = serde_json::to_value(letter).map_err(StoreError::new)?;
    // an existing letter for the same event (a batch folded again) is kept
    docs.write(
        collections::DEAD_LETTERS,
        vec![Write::Put {
            id,
            expected_rev: None,
            body,
        }],
    )
    .await
    .map(drop)
}
