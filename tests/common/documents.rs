//! Reaching into a stack's live documents behind the projector's back, to
//! damage one (and so make a dead letter) or to look at one.

use serde_json::Value;
use tessera_documents::live;
use tessera_documents::store::{DocumentStore, Write, Written};

/// Replaces a live document's body behind the projector's back.
pub async fn overwrite(docs: &dyn DocumentStore, projection: &str, id: &str, body: Value) {
    let collection = live::live(docs, projection).await.unwrap();
    let current = docs
        .get(&collection, id)
        .await
        .unwrap()
        .expect("the document exists");
    let written = docs
        .write(
            &collection,
            vec![Write::Put {
                id: id.to_owned(),
                expected_rev: Some(current.rev),
                body,
            }],
        )
        .await
        .unwrap();
    assert!(matches!(written[0], Written::Ok(_)), "{written:?}");
}

/// A live document's body.
pub async fn live_body(docs: &dyn DocumentStore, projection: &str, id: &str) -> Option<Value> {
    let collection = live::live(docs, projection).await.unwrap();
    docs.get(&collection, id).await.unwrap().map(|d| d.body)
}

/// The dead letters of one aggregate in a listing (the CLI's or the route's).
pub fn letters_of_aggregate(letters: &Value, aggregate_id: &str) -> Vec<Value> {
    letters
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["aggregate_id"] == aggregate_id)
        .cloned()
        .collect()
}
