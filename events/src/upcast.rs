use serde_json::Value;

use crate::Envelope;

/// Turns payloads of an older version of one event type into the next shape.
///
/// `to_version` is the version the payload has after this step; a payload is
/// upcast when its version is older than that. Steps are applied in the order
/// of [`UPCASTERS`], so a v1 payload walks through v2 to v3.
#[derive(Debug)]
pub struct Upcaster {
    pub aggregate_type: &'static str,
    pub event_type: &'static str,
    pub to_version: &'static str,
    pub upcast: fn(Value) -> Value,
}

/// Every upcaster of every aggregate, oldest step first.
///
/// A shape change adds the new version to the event's `event_version()` and
/// a step here.
pub const UPCASTERS: &[Upcaster] = &[
    Upcaster {
        aggregate_type: crate::aggregate::POST,
        event_type: "CommentAdded",
        to_version: "1.1",
        upcast: no_post_author,
    },
    Upcaster {
        aggregate_type: crate::aggregate::POST,
        event_type: "ReactionAdded",
        to_version: "1.1",
        upcast: no_post_author,
    },
    Upcaster {
        aggregate_type: crate::aggregate::ORDER,
        event_type: "OrderPaid",
        to_version: "1.1",
        upcast: no_recipients,
    },
];

/// Post events before 1.1 did not name the post's author: they notify no one.
fn no_post_author(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.entry("post_author_id").or_insert(Value::Null);
    }
    v
}

/// Payments before 1.1 did not name the buyer and sellers: they notify no one.
fn no_recipients(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.entry("buyer_id").or_insert(Value::Null);
        o.entry("seller_ids").or_insert(Value::Array(Vec::new()));
    }
    v
}

/// Brings an envelope's payload to the current shape using `upcasters`
/// (normally [`UPCASTERS`]).
pub fn upcast(envelope: &mut Envelope, upcasters: &[Upcaster]) {
    upcast_parts(
        &envelope.aggregate_type,
        &envelope.event_type,
        &mut envelope.event_version,
        &mut envelope.payload,
        upcasters,
    );
}

/// [`upcast`] on the parts of a stored event, for readers that have not
/// built an envelope yet.
pub fn upcast_parts(
    aggregate_type: &str,
    event_type: &str,
    event_version: &mut String,
    payload: &mut Value,
    upcasters: &[Upcaster],
) {
    for step in upcasters {
        if step.aggregate_type == aggregate_type
            && step.event_type == event_type
            && older(event_version, step.to_version)
        {
            let old = std::mem::take(payload);
            *payload = (step.upcast)(old);
            step.to_version.clone_into(event_version);
        }
    }
}

/// `a < b` as semantic versions ("1", "1.2", "1.2.3"); an unparsable version
/// is never upcast.
fn older(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

fn parse(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;
    use serde_json::json;

    fn envelope(version: &str, payload: Value) -> Envelope {
        Envelope {
            event_id: uuid::Uuid::nil(),
            aggregate_type: "account".into(),
            aggregate_id: "a".into(),
            sequence: 1,
            global_position: 1,
            event_type: "ProfileUpdated".into(),
            event_version: version.into(),
            payload,
            metadata: Metadata::from_stored(&json!({})),
            recorded_at: chrono::Utc::now(),
        }
    }

    fn add_image(mut v: Value) -> Value {
        v["profile_image"] = Value::Null;
        v
    }

    fn rename_nick(mut v: Value) -> Value {
        if let Some(n) = v.as_object_mut().and_then(|o| o.remove("nick")) {
            v["nickname"] = n;
        }
        v
    }

    const STEPS: &[Upcaster] = &[
        Upcaster {
            aggregate_type: "account",
            event_type: "ProfileUpdated",
            to_version: "1.1",
            upcast: rename_nick,
        },
        Upcaster {
            aggregate_type: "account",
            event_type: "ProfileUpdated",
            to_version: "2.0",
            upcast: add_image,
        },
    ];

    #[test]
    fn an_old_payload_walks_through_every_later_step() {
        let mut e = envelope("1.0", json!({"type": "ProfileUpdated", "nick": "kim"}));
        upcast(&mut e, STEPS);
        assert_eq!(e.event_version, "2.0");
        assert_eq!(
            e.payload,
            json!({"type": "ProfileUpdated", "nickname": "kim", "profile_image": null})
        );
    }

    #[test]
    fn a_current_payload_is_left_alone() {
        let payload = json!({"type": "ProfileUpdated", "nickname": "kim", "profile_image": "x"});
        let mut e = envelope("2.0", payload.clone());
        upcast(&mut e, STEPS);
        assert_eq!(e.payload, payload);
        assert_eq!(e.event_version, "2.0");
    }

    #[test]
    fn an_intermediate_payload_takes_only_the_later_steps() {
        let mut e = envelope("1.1", json!({"type": "ProfileUpdated", "nickname": "kim"}));
        upcast(&mut e, STEPS);
        assert_eq!(e.event_version, "2.0");
        assert_eq!(e.payload["nickname"], "kim");
        assert!(e.payload.get("nick").is_none());
    }

    #[test]
    fn events_of_before_notifications_read_as_notifying_no_one() {
        let mut comment = envelope(
            "1.0",
            json!({"type": "CommentAdded", "comment_id": "c", "author_id": "a",
                   "author_nickname": "A", "guild_version": 1, "content": "x"}),
        );
        comment.aggregate_type = "post".into();
        comment.event_type = "CommentAdded".into();
        upcast(&mut comment, UPCASTERS);
        assert_eq!(comment.event_version, "1.1");
        assert_eq!(comment.payload["post_author_id"], Value::Null);
        assert!(matches!(
            crate::DomainEvent::decode(&comment),
            Ok(crate::DomainEvent::Post(crate::PostEvent::CommentAdded {
                post_author_id: None,
                ..
            }))
        ));
        let mut paid = envelope(
            "1.0",
            json!({"type": "OrderPaid", "paid_amount": 5, "paid_at": "2026-01-01T00:00:00Z"}),
        );
        paid.aggregate_type = "order".into();
        paid.event_type = "OrderPaid".into();
        upcast(&mut paid, UPCASTERS);
        assert!(matches!(
            crate::DomainEvent::decode(&paid),
            Ok(crate::DomainEvent::Order(crate::OrderEvent::OrderPaid { buyer_id: None, ref seller_ids, .. })) if seller_ids.is_empty()
        ));
        // a post's other events keep the version they were written at
        let mut created = envelope("1.0", json!({"type": "PostCreated"}));
        created.aggregate_type = "post".into();
        created.event_type = "PostCreated".into();
        upcast(&mut created, UPCASTERS);
        assert_eq!(created.event_version, "1.0");
    }

    #[test]
    fn versions_compare_semantically() {
        assert!(older("1", "1.1"));
        assert!(older("1.9", "1.10"));
        assert!(!older("2.0", "1.10"));
        assert!(!older("garbage", "2.0"));
    }
}
