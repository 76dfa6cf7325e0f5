//! The reference the live documents must equal: every projection folded
//! from nothing over the whole log, in log order, one event at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_documents::live;
use tessera_documents::store::{index_values, DocumentStore, ListQuery, Order};
use tessera_events::{DomainEvent, EventLog, LogPosition};
use tessera_projector::projection::{self, Outcome, Targets};

/// Every projection folded from nothing over the whole log, in log order,
/// one event at a time: the reference the live documents must equal.
pub async fn fold_from_scratch(
    log: &dyn EventLog,
) -> BTreeMap<&'static str, BTreeMap<String, Value>> {
    let projections = projection::all();
    let mut out: BTreeMap<&'static str, BTreeMap<String, Value>> = projections
        .iter()
        .map(|p| (p.name(), BTreeMap::new()))
        .collect();
    let mut at = LogPosition::START;
    loop {
        let page = log.read_after(at, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        at = last.at;
        for record in &page {
            let envelope = &record.envelope;
            let event = DomainEvent::decode(envelope).unwrap();
            for p in &projections {
                if !p
                    .aggregate_types()
                    .contains(&envelope.aggregate_type.as_str())
                {
                    continue;
                }
                let docs = out.get_mut(p.name()).unwrap();
                let ids = match p.targets(envelope, &event) {
                    Targets::None => Vec::new(),
                    Targets::Ids(ids) => ids,
                    Targets::Where { field, value } => docs
                        .iter()
                        .filter(|(_, d)| index_values(d, field).contains(&value))
                        .map(|(id, _)| id.clone())
                        .collect(),
                };
                for id in ids {
                    match p.apply(&id, docs.get(&id), envelope, &event) {
                        Ok(Outcome::Unchanged) => {}
                        Ok(Outcome::Put(d)) => {
                            docs.insert(id, d);
                        }
                        Ok(Outcome::Delete) => {
                            docs.remove(&id);
                        }
                        Err(e) => panic!(
                            "{} cannot fold {} {}#{}: {e}",
                            p.name(),
                            envelope.event_type,
                            envelope.aggregate_id,
                            envelope.sequence
                        ),
                    }
                }
            }
        }
    }
    out
}

/// Every document of a collection, by id.
pub async fn all_documents(docs: &dyn DocumentStore, collection: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    loop {
        let after = out.keys().next_back().cloned();
        let page = docs
            .list(
                collection,
                ListQuery {
                    filter: None,
                    order: Order::Asc,
                    after: after.as_deref(),
                    limit: 500,
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        for d in page {
            out.insert(d.id, d.body);
        }
    }
}

/// Asserts that a projection's `documents` are exactly the `expected` ones
/// of a fold from scratch: none missing, none extra, each equal. Answers
/// how many were compared.
pub fn assert_same_documents(
    name: &str,
    documents: &BTreeMap<String, Value>,
    expected: &BTreeMap<String, Value>,
) -> usize {
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !documents.contains_key(*k))
        .collect();
    let extra: Vec<_> = documents
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: missing {missing:?}, extra {extra:?}"
    );
    for (id, doc) in expected {
        assert_eq!(&documents[id], doc, "{name}/{id} differs from the fold");
    }
    expected.len()
}

/// Waits, up to `within`, until every projection's live documents equal a
/// fold of the whole log from scratch, then asserts it; answers how many
/// documents were compared. Both sides are read again on each try: the
/// projectors may still be applying the last events (with several
/// instances the reported lag is the leading one's), and PostgreSQL shows
/// the fold a commit only once every older transaction on the server has
/// ended, so a neighbour test's open transaction can hide the newest rows.
pub async fn until_live_equals_a_fold(
    log: &dyn EventLog,
    docs: &dyn DocumentStore,
    within: Duration,
) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let reference = fold_from_scratch(log).await;
        let mut live_documents = BTreeMap::new();
        for p in projection::all() {
            let collection = live::live(docs, p.name()).await.unwrap();
            live_documents.insert(p.name(), all_documents(docs, &collection).await);
        }
        let same = reference
            .iter()
            .all(|(name, expected)| live_documents.get(name) == Some(expected));
        if same || Instant::now() >= deadline {
            return reference
                .iter()
                .map(|(name, expected)| {
                    assert_same_documents(name, &live_documents[name], expected)
                })
                .sum();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
