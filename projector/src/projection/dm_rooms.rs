use tessera_documents::chat::{room_listed, DmRoomDoc, LastMessageDoc, UNREAD_CAP};
use tessera_documents::documents::{collections, pair_id};
use tessera_events::{aggregate, DomainEvent, MessageEvent, MessagePlace, RoomEvent};

use super::{At, Fold, FoldError, Folded, Outcome, Targets};

/// `dm_rooms`: each member's view of a DM room (id = `user_id:room_id`):
/// its members, last message, unread count and activity, listed by
/// activity. Fed by two kinds of stream (the room's and each message's),
/// which reach the projector in any order relative to each other, so every
/// fold is a merge that the order and repeats of events do not change:
/// positions only grow, unread is a set of positions.
pub struct DmRooms;

/// The room an event is about, and its members.
fn place(at: At<'_, DomainEvent>) -> Option<(&str, &[String])> {
    match at.event {
        DomainEvent::Room(RoomEvent::RoomCreated { members, .. }) => {
            Some((at.envelope.aggregate_id.as_str(), members))
        }
        DomainEvent::Message(MessageEvent::MessagePosted {
            place: MessagePlace::Room { room_id, members },
            ..
        }) => Some((room_id, members)),
        _ => None,
    }
}

impl Fold for DmRooms {
    type Doc = DmRoomDoc;
    type Event = DomainEvent;
    const NAME: &'static str = collections::DM_ROOMS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::DM_ROOM, aggregate::MESSAGE];
    const INDEXES: &'static [&'static str] = &["listed"];
    const SINGLE_SOURCE: bool = false;

    fn touches(&self, at: At<DomainEvent>) -> Targets {
        place(at).map_or(Targets::None, |(room_id, members)| {
            Targets::Ids(members.iter().map(|u| pair_id(u, room_id)).collect())
        })
    }

    fn fold_in(&self, _: Option<DmRoomDoc>, _: At<DomainEvent>) -> Folded<DmRoomDoc> {
        Err(FoldError::Inapplicable(
            "a member's room is folded knowing its id".into(),
        ))
    }

    fn fold_in_at(
        &self,
        id: &str,
        doc: Option<DmRoomDoc>,
        at: At<DomainEvent>,
    ) -> Folded<DmRoomDoc> {
        let Some((room_id, members)) = place(at) else {
            return Ok(Outcome::Unchanged);
        };
        let Some(user_id) = id.strip_suffix(room_id).and_then(|u| u.strip_suffix(':')) else {
            return Err(FoldError::Inapplicable(format!(
                "{id} is not a member's view of room {room_id}"
            )));
        };
        let position = at.global_position;
        let before = doc.clone();
        let mut doc = doc.unwrap_or_else(|| DmRoomDoc {
            room_id: room_id.to_owned(),
            user_id: user_id.to_owned(),
            members: members.to_vec(),
            created_at: None,
            last_message: None,
            unread: Vec::new(),
            last_own: 0,
            activity: 0,
            listed: String::new(),
        });
        match at.event {
            DomainEvent::Room(RoomEvent::RoomCreated { .. }) => {
                doc.created_at = Some(at.metadata.occurred_at);
            }
            DomainEvent::Message(MessageEvent::MessagePosted {
                author_id,
                author_nickname,
                content,
                ..
            }) => {
                if doc
                    .last_message
                    .as_ref()
                    .is_none_or(|m| m.position < position)
                {
                    doc.last_message = Some(LastMessageDoc {
                        message_id: at.aggregate_id.clone(),
                        author_id: author_id.clone(),
                        author_nickname: author_nickname.clone(),
                        content: content.clone(),
                        created_at: at.metadata.occurred_at,
                        position,
                    });
                }
                if author_id == user_id {
                    // writing in a room reads what came before
                    doc.last_own = doc.last_own.max(position);
                    let last_own = doc.last_own;
                    doc.unread.retain(|&p| p > last_own);
                } else {
                    unread(&mut doc, position);
                }
            }
            _ => {}
        }
        doc.activity = doc.activity.max(position);
        doc.listed = room_listed(&doc.user_id, doc.activity);
        Ok(if before.as_ref() == Some(&doc) {
            Outcome::Unchanged
        } else {
            Outcome::Put(doc)
        })
    }
}

/// Counts another member's message at `position` as unread, once, unless
/// this member wrote after it or it is older than every one counted at
/// the cap.
fn unread(doc: &mut DmRoomDoc, position: i64) {
    if position <= doc.last_own {
        return;
    }
    if let Err(at) = doc.unread.binary_search(&position) {
        if doc.unread.len() >= UNREAD_CAP && at == 0 {
            return;
        }
        doc.unread.insert(at, position);
        if doc.unread.len() > UNREAD_CAP {
            doc.unread.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::{message, room};
    use tessera_events::Envelope;

    fn created() -> (Envelope, DomainEvent) {
        room(
            "r",
            1,
            RoomEvent::RoomCreated {
                created_by: "ann".into(),
                members: vec!["ann".into(), "bob".into()],
            },
        )
    }

    fn said(id: &str, by: &str, position: i64) -> (Envelope, DomainEvent) {
        let (mut env, ev) = message(
            id,
            1,
            MessageEvent::MessagePosted {
                place: MessagePlace::Room {
                    room_id: "r".into(),
                    members: vec!["ann".into(), "bob".into()],
                },
                author_id: by.into(),
                author_nickname: by.to_uppercase(),
                content: format!("{id} from {by}"),
            },
        );
        env.global_position = position;
        (env, ev)
    }

    fn with_position(
        (mut env, ev): (Envelope, DomainEvent),
        position: i64,
    ) -> (Envelope, DomainEvent) {
        env.global_position = position;
        (env, ev)
    }

    /// Folds the events into `user`'s view of room "r".
    fn view(user: &str, events: &[(Envelope, DomainEvent)]) -> DmRoomDoc {
        let id = pair_id(user, "r");
        let mut doc = None;
        for (env, ev) in events {
            match &DmRooms.targets(env, ev) {
                Targets::Ids(ids) => assert!(ids.contains(&id), "{ids:?}"),
                other => panic!("{other:?}"),
            }
            if let Outcome::Put(d) = DmRooms.fold_at(&id, doc.clone(), env, ev).unwrap() {
                doc = Some(d);
            }
        }
        doc.unwrap()
    }

    #[test]
    fn the_others_messages_since_my_last_one_are_unread_and_the_last_one_shows() {
        let events = [
            with_position(created(), 10),
            said("m1", "bob", 11),
            said("m2", "bob", 12),
            said("m3", "ann", 13),
            said("m4", "bob", 14),
        ];
        let ann = view("ann", &events);
        assert_eq!(ann.unread, [14]);
        assert_eq!(ann.last_message.as_ref().unwrap().message_id, "m4");
        assert_eq!(ann.activity, 14);
        assert_eq!(ann.members, ["ann", "bob"]);
        assert!(ann.created_at.is_some());
        // bob wrote after ann's message: he has read it
        let bob = view("bob", &events);
        assert_eq!((bob.unread.len(), bob.last_own), (0, 14));
        assert!(
            room_listed("ann", 14) < room_listed("ann", 13),
            "newest first"
        );
    }

    #[test]
    fn any_order_and_any_repeat_of_the_events_make_the_same_view() {
        let events = vec![
            with_position(created(), 10),
            said("m1", "bob", 11),
            said("m2", "ann", 12),
            said("m3", "bob", 13),
            said("m4", "bob", 14),
        ];
        let expected = view("ann", &events);
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(view("ann", &reversed), expected);
        let mut repeated = events.clone();
        repeated.extend(events.iter().cloned());
        repeated.insert(2, events[3].clone());
        assert_eq!(view("ann", &repeated), expected);
        assert_eq!(expected.unread, [13, 14]);
    }

    #[test]
    fn unread_counts_up_to_the_cap_keeping_the_newest() {
        let mut events = vec![with_position(created(), 1)];
        for i in 0..(UNREAD_CAP as i64 + 20) {
            events.push(said(&format!("m{i}"), "bob", 100 + i));
        }
        let ann = view("ann", &events);
        assert_eq!(ann.unread.len(), UNREAD_CAP);
        assert_eq!(ann.unread[0], 120);
        // an evicted one delivered again is not counted back in
        let again = view("ann", &[events.clone(), vec![events[1].clone()]].concat());
        assert_eq!(again, ann);
    }
}
