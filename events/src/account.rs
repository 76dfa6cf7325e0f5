use serde::{Deserialize, Serialize};

use crate::{aggregate, event_kind};

/// Events of the `account` aggregate. Points are whole units (`i64`); every
/// event that moves points carries the balance it leaves, so a reader never
/// has to recompute it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum AccountEvent {
    AccountRegistered {
        email: String,
        nickname: String,
    },
    /// The whole new profile, not a patch: a reader needs no earlier state.
    ProfileUpdated {
        nickname: String,
        profile_image: Option<String>,
    },
    PointsCharged {
        amount: i64,
        balance: i64,
        idempotency_key: String,
    },
    PointsUsed {
        amount: i64,
        balance: i64,
        reference: String,
    },
    PointsRefunded {
        amount: i64,
        balance: i64,
        reference: String,
    },
    /// The account's notifications up to this one (by id) are read.
    NotificationsRead {
        up_to: String,
    },
}

event_kind!(AccountEvent: aggregate::ACCOUNT, version "1.0" {
    AccountRegistered,
    ProfileUpdated,
    PointsCharged,
    PointsUsed,
    PointsRefunded,
    NotificationsRead,
});
