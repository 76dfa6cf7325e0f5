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

impl AccountEvent {
    /// The `sequence`-th event of an account `id` that registers, then is
    /// charged `amount` points each time: a stream for tests and benches.
    pub fn charging(id: &str, sequence: u64, amount: i64) -> Self {
        if sequence <= 1 {
            return Self::AccountRegistered {
                email: format!("{id}@example.com"),
                nickname: id.to_owned(),
            };
        }
        let charges = i64::try_from(sequence - 1).unwrap_or(i64::MAX);
        Self::PointsCharged {
            amount,
            balance: amount.saturating_mul(charges),
            idempotency_key: format!("k{sequence}"),
        }
    }
}

event_kind!(AccountEvent: aggregate::ACCOUNT, version "1.0" {
    AccountRegistered,
    ProfileUpdated,
    PointsCharged,
    PointsUsed,
    PointsRefunded,
    NotificationsRead,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charging_stream_registers_then_charges_with_the_running_balance() {
        assert!(matches!(
            AccountEvent::charging("a", 1, 5),
            AccountEvent::AccountRegistered { .. }
        ));
        assert_eq!(
            AccountEvent::charging("a", 3, 5),
            AccountEvent::PointsCharged {
                amount: 5,
                balance: 10,
                idempotency_key: "k3".into(),
            }
        );
    }
}
