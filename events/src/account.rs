use serde::{Deserialize, Serialize};

use crate::{aggregate, EventKind};

/// Events of the `account` aggregate. Points are whole units (`i64`); every
/// event that moves points carries the balance it leaves, so a reader never
/// has to recompute it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl EventKind for AccountEvent {
    const AGGREGATE_TYPE: &'static str = aggregate::ACCOUNT;

    fn event_type(&self) -> &'static str {
        match self {
            Self::AccountRegistered { .. } => "AccountRegistered",
            Self::ProfileUpdated { .. } => "ProfileUpdated",
            Self::PointsCharged { .. } => "PointsCharged",
            Self::PointsUsed { .. } => "PointsUsed",
            Self::PointsRefunded { .. } => "PointsRefunded",
        }
    }

    fn event_version(&self) -> &'static str {
        "1.0"
    }
}
