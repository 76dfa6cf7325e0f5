use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The actor recorded on events that no user caused (sweepers, sagas).
pub const SYSTEM_ACTOR: &str = "system";

/// Who caused an event, when, and as part of what.
///
/// Stored as a flat JSON object of strings (the shape cqrs-es keeps per
/// event), so it converts losslessly to and from `HashMap<String, String>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Metadata {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The user id that issued the command, or [`SYSTEM_ACTOR`].
    pub actor: String,
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The W3C trace context of the request that caused the event
    /// (`00-{trace id}-{span id}-{flags}`): the relay puts it on the Kafka
    /// message's `traceparent` header and the projectors continue the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Metadata {
    /// The flat string map cqrs-es stores beside each event.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::with_capacity(6);
        map.insert("event_id".into(), self.event_id.to_string());
        map.insert(
            "occurred_at".into(),
            self.occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        );
        map.insert("actor".into(), self.actor.clone());
        map.insert("correlation_id".into(), self.correlation_id.clone());
        if let Some(c) = &self.causation_id {
            map.insert("causation_id".into(), c.clone());
        }
        if let Some(r) = &self.request_id {
            map.insert("request_id".into(), r.clone());
        }
        if let Some(t) = &self.traceparent {
            map.insert("traceparent".into(), t.clone());
        }
        map
    }

    /// Reads metadata back from the stored JSON. Rows written without
    /// metadata (by hand, or by another tool) still load: missing fields get
    /// neutral values instead of failing the whole read.
    pub fn from_stored(value: &Value) -> Self {
        let get = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
        Self {
            event_id: get("event_id")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(Uuid::nil),
            occurred_at: get("occurred_at")
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            actor: get("actor").unwrap_or_else(|| SYSTEM_ACTOR.to_owned()),
            correlation_id: get("correlation_id").unwrap_or_default(),
            causation_id: get("causation_id"),
            request_id: get("request_id"),
            traceparent: get("traceparent"),
        }
    }
}

/// An event as it leaves the log: on Kafka, in exports, in dead letters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Envelope {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Position of the event in its aggregate's stream, from 1 without gaps.
    pub sequence: u64,
    /// Position in the whole log (insert order; see DESIGN.md §3 for why the
    /// relay orders by transaction first).
    pub global_position: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Metadata,
    pub recorded_at: DateTime<Utc>,
}

impl Envelope {
    /// `event` as the `sequence`th event of aggregate `aggregate_id`, at
    /// `global_position` in the log, occurred and recorded at `at`, with a
    /// fresh id and neutral metadata: what tests, benches and fixtures feed
    /// the folds, feeds and relays without going through an event store.
    pub fn fresh<E: crate::EventKind + Serialize>(
        aggregate_id: &str,
        sequence: u64,
        global_position: i64,
        event: &E,
        at: DateTime<Utc>,
    ) -> Result<Self, serde_json::Error> {
        let mut metadata = Metadata::from_stored(&Value::Null);
        metadata.occurred_at = at;
        Ok(Self {
            event_id: Uuid::now_v7(),
            aggregate_type: E::AGGREGATE_TYPE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            sequence,
            global_position,
            event_type: event.event_type().to_owned(),
            event_version: event.event_version().to_owned(),
            payload: serde_json::to_value(event)?,
            metadata,
            recorded_at: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_the_stored_map() {
        let m = Metadata {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            actor: "u1".into(),
            correlation_id: "c1".into(),
            causation_id: None,
            request_id: Some("r1".into()),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        };
        let stored = serde_json::to_value(m.to_map()).unwrap();
        let back = Metadata::from_stored(&stored);
        assert_eq!(back.event_id, m.event_id);
        assert_eq!(back.actor, "u1");
        assert_eq!(back.request_id.as_deref(), Some("r1"));
        assert_eq!(back.traceparent, m.traceparent);
        assert_eq!(back.causation_id, None);
        // microsecond precision survives the text form
        assert_eq!(
            back.occurred_at.timestamp_micros(),
            m.occurred_at.timestamp_micros()
        );
    }

    #[test]
    fn a_fresh_envelope_names_its_event_and_aggregate() {
        let at = Utc::now();
        let event = crate::AccountEvent::AccountRegistered {
            email: "a@x.y".into(),
            nickname: "a".into(),
        };
        let e = Envelope::fresh("a1", 1, 7, &event, at).unwrap();
        assert_eq!(
            (
                e.aggregate_type.as_str(),
                e.aggregate_id.as_str(),
                e.sequence,
                e.global_position
            ),
            ("account", "a1", 1, 7)
        );
        assert_eq!(
            (e.event_type.as_str(), e.recorded_at),
            ("AccountRegistered", at)
        );
        assert_eq!(e.metadata.occurred_at, at);
        assert_eq!(e.payload, serde_json::to_value(&event).unwrap());
        assert_ne!(
            e.event_id,
            Envelope::fresh("a1", 1, 7, &event, at).unwrap().event_id
        );
    }

    #[test]
    fn metadata_of_a_foreign_row_loads_with_neutral_values() {
        let back = Metadata::from_stored(&serde_json::json!({}));
        assert_eq!(back.actor, SYSTEM_ACTOR);
        assert!(back.event_id.is_nil());
    }
}
