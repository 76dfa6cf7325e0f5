//! An aggregate's state after any of its events (the console's time
//! travel): its own events folded from the first with the aggregate's real
//! `apply`, the same fold a command's load runs, and the state as JSON.

use cqrs_es::Aggregate;
use serde_json::Value;
use tessera_events::{aggregate, Envelope};

use super::account::Account;
use super::concert::Concert;
use super::coupon::Coupon;
use super::guild::Guild;
use super::message::Message;
use super::order::Order;
use super::post::Post;
use super::product::Product;
use super::room::Room;
use super::schedule::Schedule;

/// Why a state could not be folded.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("no aggregate type {0:?}")]
    UnknownType(String),
    #[error("event {sequence} of the aggregate is missing (got {got})")]
    Gap { sequence: u64, got: u64 },
    #[error("event {sequence} ({event_type}) is not an event of this aggregate")]
    Unreadable {
        sequence: u64,
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the state cannot be shown as JSON")]
    Unshowable(#[source] serde_json::Error),
}

/// Every aggregate type there is.
pub const TYPES: [&str; 10] = [
    aggregate::ACCOUNT,
    aggregate::GUILD,
    aggregate::POST,
    aggregate::CONCERT,
    aggregate::SCHEDULE,
    aggregate::COUPON,
    aggregate::PRODUCT,
    aggregate::ORDER,
    aggregate::MESSAGE,
    aggregate::DM_ROOM,
];

/// The state of an aggregate of `aggregate_type` after `events`, which are
/// its events from sequence 1 on, in order and without a gap.
pub fn state_after(aggregate_type: &str, events: &[Envelope]) -> Result<Value, HistoryError> {
    match aggregate_type {
        aggregate::ACCOUNT => fold::<Account>(events),
        aggregate::GUILD => fold::<Guild>(events),
        aggregate::POST => fold::<Post>(events),
        aggregate::CONCERT => fold::<Concert>(events),
        aggregate::SCHEDULE => fold::<Schedule>(events),
        aggregate::COUPON => fold::<Coupon>(events),
        aggregate::PRODUCT => fold::<Product>(events),
        aggregate::ORDER => fold::<Order>(events),
        aggregate::MESSAGE => fold::<Message>(events),
        aggregate::DM_ROOM => fold::<Room>(events),
        other => Err(HistoryError::UnknownType(other.to_owned())),
    }
}

fn fold<A: Aggregate>(events: &[Envelope]) -> Result<Value, HistoryError> {
    let mut state = A::default();
    for (expected, e) in (1..).zip(events) {
        if e.sequence != expected {
            return Err(HistoryError::Gap {
                sequence: expected,
                got: e.sequence,
            });
        }
        let event: A::Event = serde_json::from_value(e.payload.clone()).map_err(|source| {
            HistoryError::Unreadable {
                sequence: e.sequence,
                event_type: e.event_type.clone(),
                source,
            }
        })?;
        state.apply(event);
    }
    serde_json::to_value(&state).map_err(HistoryError::Unshowable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;
    use tessera_events::{AccountEvent, Metadata};
    use uuid::Uuid;

    fn envelope(sequence: u64, event: &AccountEvent) -> Envelope {
        use tessera_events::EventKind;
        Envelope {
            event_id: Uuid::now_v7(),
            aggregate_type: aggregate::ACCOUNT.into(),
            aggregate_id: "a1".into(),
            sequence,
            global_position: i64::try_from(sequence).unwrap(),
            event_type: event.event_type().into(),
            event_version: event.event_version().into(),
            payload: serde_json::to_value(event).unwrap(),
            metadata: Metadata::from_stored(&json!({})),
            recorded_at: Utc::now(),
        }
    }

    fn history() -> Vec<Envelope> {
        let registered: AccountEvent = serde_json::from_value(json!({
            "type": "AccountRegistered", "email": "kim@example.com", "nickname": "kim"
        }))
        .unwrap();
        let mut out = vec![envelope(1, &registered)];
        for (n, key) in [(2, "a"), (3, "b")] {
            let charged: AccountEvent = serde_json::from_value(json!({
                "type": "PointsCharged", "amount": 10, "idempotency_key": key, "balance": 10 * (n - 1)
            }))
            .unwrap();
            out.push(envelope(n, &charged));
        }
        out
    }

    #[test]
    fn each_prefix_of_the_history_folds_to_the_state_after_its_last_event() {
        let all = history();
        let balances: Vec<_> = (1..=all.len())
            .map(|n| state_after("account", &all[..n]).unwrap())
            .map(|s| (s["balance"].as_i64(), s["version"].as_u64()))
            .collect();
        assert_eq!(
            balances,
            [(Some(0), Some(1)), (Some(10), Some(2)), (Some(20), Some(3))]
        );
    }

    #[test]
    fn a_gap_an_unknown_type_and_a_foreign_event_are_refused() {
        let all = history();
        let gapped = [all[0].clone(), all[2].clone()];
        assert!(matches!(
            state_after("account", &gapped),
            Err(HistoryError::Gap {
                sequence: 2,
                got: 3
            })
        ));
        assert!(matches!(
            state_after("spaceship", &all),
            Err(HistoryError::UnknownType(_))
        ));
        assert!(matches!(
            state_after("coupon", &all),
            Err(HistoryError::Unreadable { sequence: 1, .. })
        ));
    }
}
