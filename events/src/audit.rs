//! The audit trail's hash chain: every exported record carries the hash of
//! the record before it, so an edit, a deletion, an insertion or a
//! reordering shows. Pure computation; the export and the check that read
//! and write files live in the binary.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Envelope;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// JSON with object keys sorted at every level and no insignificant
/// whitespace: one text per value, whatever map order a serializer used.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// SHA-256 over the previous hash and the envelope's canonical JSON, hex.
pub fn chain_hash(prev_hash: &str, envelope: &Envelope) -> String {
    let value = serde_json::to_value(envelope).unwrap_or(Value::Null);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical_json(&value).as_bytes());
    hex::encode(h.finalize())
}

/// One exported event: the envelope and its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub prev_hash: String,
    pub hash: String,
}

/// The last line of an export: how many records, and the last hash. Without
/// it, records cut off the end would go unnoticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub record_type: String,
    pub count: u64,
    pub head: String,
}

impl Trailer {
    pub const TYPE: &'static str = "trailer";

    pub fn new(count: u64, head: String) -> Self {
        Self {
            record_type: Self::TYPE.into(),
            count,
            head,
        }
    }
}

/// Chains envelopes as they stream out (constant memory).
#[derive(Debug)]
pub struct Chain {
    prev: String,
    count: u64,
}

impl Default for Chain {
    fn default() -> Self {
        Self {
            prev: GENESIS.to_owned(),
            count: 0,
        }
    }
}

impl Chain {
    pub fn link(&mut self, envelope: Envelope) -> AuditRecord {
        let hash = chain_hash(&self.prev, &envelope);
        let record = AuditRecord {
            envelope,
            prev_hash: std::mem::replace(&mut self.prev, hash.clone()),
            hash,
        };
        self.count += 1;
        record
    }

    pub fn trailer(&self) -> Trailer {
        Trailer::new(self.count, self.prev.clone())
    }
}

/// What is wrong with an export, naming the record (1-based, in file order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("record {record} (event {event_id}) was edited: its hash does not match its content")]
    Edited { record: u64, event_id: String },
    #[error("record {record} (event {event_id}) was inserted: the record after it follows the one before it")]
    Inserted { record: u64, event_id: String },
    #[error(
        "record {record} (event {event_id}) is out of order: it belongs after record {follows}"
    )]
    Reordered {
        record: u64,
        event_id: String,
        follows: u64,
    },
    #[error("records are missing before record {record} (event {event_id}): they were deleted")]
    Deleted { record: u64, event_id: String },
    #[error("the trailer does not match the records: it counts {expected} ending at its head hash, the file has {found}")]
    Truncated { expected: u64, found: u64 },
    #[error("the trailer is missing: the end of the export cannot be checked")]
    NoTrailer,
    #[error("line {line} cannot be read: {reason}")]
    Unreadable { line: u64, reason: String },
}

/// What the check needs of each record.
#[derive(Debug, Clone)]
pub struct Link {
    pub event_id: String,
    pub prev_hash: String,
    pub hash: String,
    /// The stored hash is the hash of the record's content and `prev_hash`.
    pub intact: bool,
}

impl Link {
    pub fn of(record: &AuditRecord) -> Self {
        Self {
            event_id: record.envelope.event_id.to_string(),
            prev_hash: record.prev_hash.clone(),
            hash: record.hash.clone(),
            intact: chain_hash(&record.prev_hash, &record.envelope) == record.hash,
        }
    }
}

/// Checks a chain; returns every problem found (empty: intact).
pub fn verify(links: &[Link], trailer: Option<&Trailer>) -> Vec<Problem> {
    let index: std::collections::HashMap<&str, usize> = links
        .iter()
        .enumerate()
        .map(|(i, l)| (l.hash.as_str(), i))
        .collect();
    let mut problems = Vec::new();
    for (i, link) in links.iter().enumerate() {
        let record = i as u64 + 1;
        let event_id = link.event_id.clone();
        if !link.intact {
            problems.push(Problem::Edited { record, event_id });
            continue;
        }
        let expected = if i == 0 {
            GENESIS
        } else {
            links[i - 1].hash.as_str()
        };
        if link.prev_hash == expected {
            continue;
        }
        if i >= 2 && link.prev_hash == links[i - 2].hash {
            // this record follows the one two back: the one between was added
            problems.push(Problem::Inserted {
                record: record - 1,
                event_id: links[i - 1].event_id.clone(),
            });
        } else if let Some(&j) = index.get(link.prev_hash.as_str()) {
            problems.push(Problem::Reordered {
                record,
                event_id,
                follows: j as u64 + 1,
            });
        } else {
            problems.push(Problem::Deleted { record, event_id });
        }
    }
    match trailer {
        None => problems.push(Problem::NoTrailer),
        Some(t) => {
            let found = links.len() as u64;
            let head = links.last().map_or(GENESIS, |l| l.hash.as_str());
            if t.count != found || t.head != head {
                problems.push(Problem::Truncated {
                    expected: t.count,
                    found,
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Metadata;

    fn envelope(n: u64) -> Envelope {
        Envelope {
            event_id: uuid::Uuid::from_u128(u128::from(n)),
            aggregate_type: "account".into(),
            aggregate_id: "a".into(),
            sequence: n,
            global_position: i64::try_from(n).unwrap(),
            event_type: "PointsCharged".into(),
            event_version: "1.0".into(),
            payload: json!({"type": "PointsCharged", "amount": n, "balance": n * 10, "idempotency_key": format!("k{n}")}),
            metadata: Metadata::from_stored(&json!({})),
            recorded_at: chrono::DateTime::from_timestamp(
                1_700_000_000 + i64::try_from(n).unwrap(),
                0,
            )
            .unwrap(),
        }
    }

    fn export(n: u64) -> (Vec<AuditRecord>, Trailer) {
        let mut chain = Chain::default();
        let records = (1..=n).map(|i| chain.link(envelope(i))).collect();
        (records, chain.trailer())
    }

    fn check(records: &[AuditRecord], trailer: &Trailer) -> Vec<Problem> {
        verify(
            &records.iter().map(Link::of).collect::<Vec<_>>(),
            Some(trailer),
        )
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"d": [2, {"z": 0, "y": 1}], "c": "x"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"x","d":[2,{"y":1,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn an_intact_export_verifies() {
        let (records, trailer) = export(5);
        assert_eq!(records[0].prev_hash, GENESIS);
        assert_eq!(records[1].prev_hash, records[0].hash);
        assert!(check(&records, &trailer).is_empty());
    }

    #[test]
    fn an_edited_record_is_named() {
        let (mut records, trailer) = export(5);
        records[2].envelope.payload["amount"] = json!(999);
        assert_eq!(
            check(&records, &trailer),
            [Problem::Edited {
                record: 3,
                event_id: records[2].envelope.event_id.to_string()
            }]
        );
    }

    #[test]
    fn a_deleted_record_is_found() {
        let (mut records, trailer) = export(5);
        records.remove(2);
        let problems = check(&records, &trailer);
        assert!(
            matches!(problems[0], Problem::Deleted { record: 3, .. }),
            "{problems:?}"
        );
    }

    #[test]
    fn an_inserted_record_is_found_even_with_a_valid_hash_of_its_own() {
        let (mut records, trailer) = export(5);
        let mut forged = Chain {
            prev: records[1].hash.clone(),
            ..Chain::default()
        };
        let extra = forged.link(envelope(42));
        records.insert(2, extra);
        let problems = check(&records, &trailer);
        assert!(
            matches!(problems[0], Problem::Inserted { record: 3, .. }),
            "{problems:?}"
        );
    }

    #[test]
    fn swapped_records_are_reported_out_of_order() {
        let (mut records, trailer) = export(5);
        records.swap(1, 3);
        let problems = check(&records, &trailer);
        assert!(
            problems
                .iter()
                .any(|p| matches!(p, Problem::Reordered { .. })),
            "{problems:?}"
        );
    }

    #[test]
    fn records_cut_off_the_end_are_found_by_the_trailer() {
        let (mut records, trailer) = export(5);
        records.truncate(3);
        assert_eq!(
            check(&records, &trailer),
            [Problem::Truncated {
                expected: 5,
                found: 3
            }]
        );
        assert_eq!(
            verify(&records.iter().map(Link::of).collect::<Vec<_>>(), None),
            [Problem::NoTrailer]
        );
    }
}
