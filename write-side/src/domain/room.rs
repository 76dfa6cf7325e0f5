//! The `dm_room` aggregate: a direct-message room of 2..=10 people, its
//! members fixed when it is made. A 1:1 room between two people is unique:
//! its id is derived from the pair, so making it again finds it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_events::{aggregate, RoomEvent};

use super::guild::GuildServicesRef;
use super::{impl_aggregate, DomainError, ErrorKind, FactUnavailable};

super::named!(RoomCommand { Create });

/// Limits of the contract (API.md, Chat).
pub mod limits {
    /// Others than the creator.
    pub const OTHERS: (usize, usize) = (1, 9);
    /// Longer ids name no account.
    pub const USER_ID: (usize, usize) = (1, 64);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomCommand {
    Create {
        creator: String,
        others: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("the room exists with other members")]
    AlreadyExists,
    #[error("no account {user_id}")]
    UnknownUser { user_id: String },
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
    #[error(transparent)]
    Unavailable(FactUnavailable),
}

impl DomainError for RoomError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::AlreadyExists => ErrorKind::Conflict,
            Self::UnknownUser { .. } => ErrorKind::NotFound,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::AlreadyExists => "conflict",
            Self::UnknownUser { .. } => "user_not_found",
            Self::Invalid { .. } => "invalid_input",
            Self::Unavailable(_) => "unavailable",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            Self::UnknownUser { user_id } => serde_json::json!({ "user_id": user_id }),
            _ => serde_json::Value::Null,
        }
    }
}

/// The id of the 1:1 room of two people, whichever of them makes it: a
/// UUID (version 8) of a hash of the pair.
pub fn one_to_one_id(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let mut hash = Sha256::new();
    hash.update(b"tessera dm room 1:1\0");
    hash.update(first.as_bytes());
    hash.update(b"\0");
    hash.update(second.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Sorted; empty until the room is made.
    members: Vec<String>,
}

impl Room {
    pub fn exists(&self) -> bool {
        !self.members.is_empty()
    }

    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The members a request asks for, checked: 1..=9 others, each once,
    /// the creator not among them. Sorted, the creator included.
    pub fn members_of(creator: &str, others: &[String]) -> Result<Vec<String>, RoomError> {
        let invalid = RoomError::Invalid { field: "user_ids" };
        if !(limits::OTHERS.0..=limits::OTHERS.1).contains(&others.len()) {
            return Err(invalid);
        }
        if others.iter().any(|u| u == creator) {
            return Err(invalid);
        }
        let mut members: Vec<String> = others.to_vec();
        members.push(creator.to_owned());
        members.sort_unstable();
        members.dedup();
        if members.len() != others.len() + 1 {
            return Err(invalid);
        }
        Ok(members)
    }

    async fn decide(
        &self,
        command: RoomCommand,
        accounts: &GuildServicesRef,
    ) -> Result<Option<RoomEvent>, RoomError> {
        let RoomCommand::Create { creator, others } = command;
        let members = Self::members_of(&creator, &others)?;
        if self.exists() {
            // a 1:1 room asked for again, by either of the two
            return if self.members == members {
                Ok(None)
            } else {
                Err(RoomError::AlreadyExists)
            };
        }
        let (min, max) = limits::USER_ID;
        for user_id in &others {
            // an id no account can have is not looked up (PostgreSQL refuses
            // a NUL in text: found by fuzzing the distributed write API)
            let plausible = (min..=max).contains(&user_id.chars().count())
                && !user_id.chars().any(char::is_control);
            let known = if plausible {
                accounts
                    .account_nickname(user_id)
                    .await
                    .map_err(RoomError::Unavailable)?
            } else {
                None
            };
            if known.is_none() {
                return Err(RoomError::UnknownUser {
                    user_id: user_id.clone(),
                });
            }
        }
        Ok(Some(RoomEvent::RoomCreated {
            created_by: creator,
            members,
        }))
    }

    fn evolve(&mut self, event: RoomEvent) {
        match event {
            RoomEvent::RoomCreated { members, .. } => self.members = members,
        }
    }
}

impl_aggregate!(Room: aggregate::DM_ROOM, RoomCommand => RoomEvent, RoomError, services GuildServicesRef);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::domain::guild::GuildServices;
    use crate::domain::testkit;
    use crate::domain::Recorded;

    /// Accounts ann, bob and cy.
    struct Accounts;

    #[async_trait]
    impl GuildServices for Accounts {
        async fn account_nickname(&self, user_id: &str) -> Result<Option<String>, FactUnavailable> {
            Ok(["ann", "bob", "cy"]
                .contains(&user_id)
                .then(|| user_id.to_uppercase()))
        }
    }

    fn given(events: Vec<RoomEvent>) -> cqrs_es::test::AggregateTestExecutor<Room> {
        let accounts: GuildServicesRef = Arc::new(Accounts);
        testkit::given(accounts, events)
    }

    fn create(creator: &str, others: &[&str]) -> RoomCommand {
        RoomCommand::Create {
            creator: creator.into(),
            others: others.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    fn created(by: &str, members: &[&str]) -> RoomEvent {
        RoomEvent::RoomCreated {
            created_by: by.into(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    #[test]
    fn a_room_holds_its_creator_and_the_others_sorted() {
        given(vec![])
            .when(create("cy", &["ann", "bob"]))
            .then_expect_events(vec![Recorded(created("cy", &["ann", "bob", "cy"]))]);
    }

    #[test]
    fn the_one_to_one_room_asked_for_again_by_either_is_the_same_and_unchanged() {
        assert_eq!(one_to_one_id("ann", "bob"), one_to_one_id("bob", "ann"));
        assert_ne!(one_to_one_id("ann", "bob"), one_to_one_id("ann", "cy"));
        assert_eq!(
            uuid::Uuid::parse_str(&one_to_one_id("ann", "bob"))
                .unwrap()
                .get_version_num(),
            8
        );
        given(vec![created("ann", &["ann", "bob"])])
            .when(create("bob", &["ann"]))
            .then_expect_events(vec![]);
        given(vec![created("ann", &["ann", "bob"])])
            .when(create("ann", &["cy"]))
            .then_expect_error(RoomError::AlreadyExists);
    }

    #[test]
    fn one_to_nine_others_each_once_and_never_the_creator() {
        let ten: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
        let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
        for others in [&[][..], &ten[..], &["bob", "bob"][..], &["ann"][..]] {
            given(vec![])
                .when(create("ann", others))
                .then_expect_error(RoomError::Invalid { field: "user_ids" });
        }
    }

    #[test]
    fn every_other_member_must_have_an_account() {
        let too_long = "x".repeat(65);
        for ghost in ["ghost", "", &too_long, "nul\u{0}in"] {
            given(vec![])
                .when(create("ann", &["bob", ghost]))
                .then_expect_error(RoomError::UnknownUser {
                    user_id: ghost.into(),
                });
        }
    }
}
