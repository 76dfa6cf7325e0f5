use tessera_documents::documents::{collections, pair_id};
use tessera_documents::notifications::{notification_id, NotificationDoc};
use tessera_events::{
    aggregate, CouponEvent, DomainEvent, Envelope, MessageEvent, MessagePlace, OrderEvent,
    PostEvent, ScheduleEvent, SYSTEM_ACTOR,
};

use super::{At, Fold, FoldError, Folded, Live, Outcome, Targets};

/// `notifications`: what concerns each user, derived from the events that
/// name them (id = `user_id:notification_id`, listed by `user_id` newest
/// first). A notification is made once and never changes: its id comes
/// from the event's log position, so a repeat finds it there.
pub struct Notifications;

/// One notification an event makes: for whom, what kind, about what, by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice<'a> {
    pub user_id: &'a str,
    pub kind: &'static str,
    pub subject: &'a str,
    pub actor_id: &'a str,
}

/// The notifications an event makes. Nobody is told of what they did to
/// others' things (their own comment, reaction, message, purchase of their
/// own product); what happened to them is told whoever caused it (a coupon
/// they won, an order they paid, a hold that ran out).
pub fn notices<'a>(envelope: &'a Envelope, event: &'a DomainEvent) -> Vec<Notice<'a>> {
    let subject = envelope.aggregate_id.as_str();
    // whoever caused the event, as its metadata names them
    let caused_by = if envelope.metadata.actor.is_empty() {
        SYSTEM_ACTOR
    } else {
        envelope.metadata.actor.as_str()
    };
    let notice = |user_id: &'a str, kind, subject: &'a str, actor_id: &'a str| Notice {
        user_id,
        kind,
        subject,
        actor_id,
    };
    match event {
        DomainEvent::Post(PostEvent::CommentAdded {
            author_id,
            post_author_id: Some(to),
            ..
        }) if to != author_id => vec![notice(to, "comment_on_your_post", subject, author_id)],
        DomainEvent::Post(PostEvent::ReactionAdded {
            user_id,
            post_author_id: Some(to),
            ..
        }) if to != user_id => vec![notice(to, "reaction_on_your_post", subject, user_id)],
        DomainEvent::Coupon(CouponEvent::CouponIssued { user_id, .. }) => {
            vec![notice(user_id, "coupon_issued", subject, caused_by)]
        }
        DomainEvent::Schedule(ScheduleEvent::HoldExpired {
            reservation_id,
            user_id,
            ..
        }) => vec![notice(
            user_id,
            "reservation_expired",
            reservation_id,
            caused_by,
        )],
        DomainEvent::Order(OrderEvent::OrderPaid {
            buyer_id: Some(buyer),
            seller_ids,
            ..
        }) => std::iter::once(notice(buyer, "order_paid", subject, caused_by))
            .chain(
                seller_ids
                    .iter()
                    .filter(|s| *s != buyer)
                    .map(|s| notice(s, "product_sold", subject, buyer)),
            )
            .collect(),
        DomainEvent::Message(MessageEvent::MessagePosted {
            place: MessagePlace::Room { room_id, members },
            author_id,
            ..
        }) => members
            .iter()
            .filter(|m| *m != author_id)
            .map(|m| notice(m, "dm_message", room_id, author_id))
            .collect(),
        _ => Vec::new(),
    }
}

impl Fold for Notifications {
    type Doc = NotificationDoc;
    type Event = DomainEvent;
    const NAME: &'static str = collections::NOTIFICATIONS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[
        aggregate::POST,
        aggregate::COUPON,
        aggregate::SCHEDULE,
        aggregate::ORDER,
        aggregate::MESSAGE,
    ];
    const INDEXES: &'static [&'static str] = &["user_id"];
    const SINGLE_SOURCE: bool = false;
    const LIVE: Live = Live::ByField("user_id");

    fn touches(&self, at: At<DomainEvent>) -> Targets {
        let position = at.global_position;
        let ids: Vec<String> = notices(at.envelope, at.event)
            .iter()
            .map(|n| pair_id(n.user_id, &notification_id(position, n.kind)))
            .collect();
        if ids.is_empty() {
            Targets::None
        } else {
            Targets::Ids(ids)
        }
    }

    fn fold_in(&self, _: Option<NotificationDoc>, _: At<DomainEvent>) -> Folded<Self::Doc> {
        Err(FoldError::Inapplicable(
            "a notification is folded knowing its id".into(),
        ))
    }

    fn fold_in_at(
        &self,
        id: &str,
        doc: Option<Self::Doc>,
        at: At<DomainEvent>,
    ) -> Folded<Self::Doc> {
        if doc.is_some() {
            return Ok(Outcome::Unchanged); // made once: a repeat of its event
        }
        let position = at.global_position;
        let Some(n) = notices(at.envelope, at.event)
            .into_iter()
            .find(|n| pair_id(n.user_id, &notification_id(position, n.kind)) == id)
        else {
            return Err(FoldError::Inapplicable(format!(
                "the event makes no notification {id}"
            )));
        };
        Ok(Outcome::Put(NotificationDoc {
            notification_id: notification_id(position, n.kind),
            user_id: n.user_id.to_owned(),
            kind: n.kind.to_owned(),
            subject: n.subject.to_owned(),
            actor_id: n.actor_id.to_owned(),
            created_at: at.metadata.occurred_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use tessera_events::RoomEvent;

    use super::*;
    use crate::projection::testing::{coupon, message, order, post, room, schedule};

    fn kinds(events: &[(Envelope, DomainEvent)]) -> Vec<(String, &'static str, String, String)> {
        events
            .iter()
            .flat_map(|(env, ev)| {
                notices(env, ev).into_iter().map(|n| {
                    (
                        n.user_id.to_owned(),
                        n.kind,
                        n.subject.to_owned(),
                        n.actor_id.to_owned(),
                    )
                })
            })
            .collect()
    }

    fn by(mut e: (Envelope, DomainEvent), actor: &str) -> (Envelope, DomainEvent) {
        e.0.metadata.actor = actor.into();
        e
    }

    #[test]
    fn each_kind_goes_to_whom_the_event_concerns_and_never_to_its_author() {
        let comment = |by: &str| PostEvent::CommentAdded {
            comment_id: "c".into(),
            author_id: by.into(),
            author_nickname: by.into(),
            guild_version: 1,
            content: "x".into(),
            post_author_id: Some("ann".into()),
        };
        let events = vec![
            post("p", 2, comment("bob")),
            post("p", 3, comment("ann")),
            post(
                "p",
                4,
                PostEvent::ReactionAdded {
                    user_id: "bob".into(),
                    emoji: "👍".into(),
                    post_author_id: Some("ann".into()),
                },
            ),
            // an old event that did not name the post's author
            post(
                "p",
                5,
                PostEvent::ReactionAdded {
                    user_id: "cy".into(),
                    emoji: "👍".into(),
                    post_author_id: None,
                },
            ),
            by(
                coupon(
                    "k",
                    2,
                    CouponEvent::CouponIssued {
                        user_id: "bob".into(),
                        issued: 1,
                        name: "K".into(),
                        discount_amount: 1,
                    },
                ),
                "bob",
            ),
            by(
                schedule(
                    "s",
                    3,
                    ScheduleEvent::HoldExpired {
                        reservation_id: "r1".into(),
                        user_id: "ann".into(),
                        seat_nos: vec![1],
                    },
                ),
                SYSTEM_ACTOR,
            ),
            by(
                order(
                    "o",
                    3,
                    OrderEvent::OrderPaid {
                        paid_amount: 1,
                        paid_at: crate::projection::testing::at(1),
                        buyer_id: Some("bob".into()),
                        seller_ids: vec!["bob".into(), "sam".into()],
                    },
                ),
                "bob",
            ),
            message(
                "m",
                1,
                MessageEvent::MessagePosted {
                    place: MessagePlace::Room {
                        room_id: "room".into(),
                        members: vec!["ann".into(), "bob".into(), "cy".into()],
                    },
                    author_id: "cy".into(),
                    author_nickname: "Cy".into(),
                    content: "hi".into(),
                },
            ),
            room(
                "room",
                1,
                RoomEvent::RoomCreated {
                    created_by: "cy".into(),
                    members: vec!["ann".into(), "cy".into()],
                },
            ),
        ];
        let s = |v: &str| v.to_owned();
        assert_eq!(
            kinds(&events),
            vec![
                (s("ann"), "comment_on_your_post", s("p"), s("bob")),
                (s("ann"), "reaction_on_your_post", s("p"), s("bob")),
                (s("bob"), "coupon_issued", s("k"), s("bob")),
                (s("ann"), "reservation_expired", s("r1"), s(SYSTEM_ACTOR)),
                // the buyer paid: a notice for them, and one for each other seller
                (s("bob"), "order_paid", s("o"), s("bob")),
                (s("sam"), "product_sold", s("o"), s("bob")),
                (s("ann"), "dm_message", s("room"), s("cy")),
                (s("bob"), "dm_message", s("room"), s("cy")),
            ]
        );
    }

    #[test]
    fn a_notification_is_made_once_under_an_id_of_its_position() {
        let (mut env, ev) = message(
            "m",
            1,
            MessageEvent::MessagePosted {
                place: MessagePlace::Room {
                    room_id: "room".into(),
                    members: vec!["ann".into(), "bob".into()],
                },
                author_id: "bob".into(),
                author_nickname: "Bob".into(),
                content: "hi".into(),
            },
        );
        env.global_position = 42;
        let id = "ann:0000000000000000042-dm_message";
        assert_eq!(
            Notifications.targets(&env, &ev),
            Targets::Ids(vec![id.into()])
        );
        let Ok(Outcome::Put(doc)) = Notifications.fold_at(id, None, &env, &ev) else {
            panic!("a notification is made");
        };
        assert_eq!(
            (
                doc.kind.as_str(),
                doc.subject.as_str(),
                doc.actor_id.as_str()
            ),
            ("dm_message", "room", "bob")
        );
        assert_eq!(
            Notifications.fold_at(id, Some(doc), &env, &ev),
            Ok(Outcome::Unchanged)
        );
        assert!(notification_id(9, "x") < notification_id(10, "x"));
    }
}
