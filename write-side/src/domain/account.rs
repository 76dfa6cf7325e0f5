//! The `account` aggregate: a user's profile and point balance.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, AccountEvent};

use super::{image_ok, impl_aggregate, limits, name_ok, DomainError, ErrorKind};

super::named!(AccountCommand {
    Register,
    UpdateProfile,
    Charge,
    Use,
    Refund,
    MarkNotificationsRead,
});

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Register {
        email: String,
        nickname: String,
    },
    /// `None` leaves a field as it is; `Some(None)` clears the image.
    UpdateProfile {
        nickname: Option<String>,
        profile_image: Option<Option<String>>,
    },
    Charge {
        amount: i64,
        idempotency_key: String,
    },
    /// Spends points for something identified by `reference` (a payment).
    /// The same reference again is a no-op: a retried saga step spends once.
    Use {
        amount: i64,
        reference: String,
    },
    /// Gives back the points spent under `reference` (compensation).
    Refund {
        reference: String,
    },
    /// Marks the account's notifications up to `up_to` (a notification id)
    /// read. Ids sort by age: an older mark than the last changes nothing.
    MarkNotificationsRead {
        up_to: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("account already registered")]
    AlreadyRegistered,
    #[error("account not found")]
    NotFound,
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
    #[error("the balance would exceed {}", limits::MAX_BALANCE)]
    BalanceLimitExceeded,
    #[error("insufficient points: balance {balance}, needed {needed}")]
    InsufficientPoints { balance: i64, needed: i64 },
    #[error("idempotency key was already used for a different amount")]
    IdempotencyKeyReused,
    #[error("reference was already used for a different amount")]
    ReferenceReused,
    #[error("nothing was spent under this reference")]
    UnknownReference,
}

impl DomainError for AccountError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::AlreadyRegistered => ErrorKind::Conflict,
            Self::NotFound | Self::UnknownReference => ErrorKind::NotFound,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::BalanceLimitExceeded
            | Self::InsufficientPoints { .. }
            | Self::IdempotencyKeyReused
            | Self::ReferenceReused => ErrorKind::Unprocessable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::AlreadyRegistered => "already_registered",
            Self::NotFound => "not_found",
            Self::Invalid { .. } => "invalid_input",
            Self::BalanceLimitExceeded => "balance_limit_exceeded",
            Self::InsufficientPoints { .. } => "insufficient_points",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::ReferenceReused => "reference_reused",
            Self::UnknownReference => "unknown_reference",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            Self::InsufficientPoints { balance, needed } => {
                serde_json::json!({ "balance": balance, "needed": needed })
            }
            _ => serde_json::Value::Null,
        }
    }
}

/// What a charge answered, kept so the same idempotency key answers the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeReceipt {
    pub amount: i64,
    pub balance: i64,
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Spend {
    amount: i64,
    /// The balance this spend left, for answering a repeated payment.
    balance: i64,
    refunded: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    registered: bool,
    nickname: String,
    profile_image: Option<String>,
    balance: i64,
    /// Number of events applied: the aggregate's sequence.
    version: u64,
    charges: HashMap<String, ChargeReceipt>,
    spends: HashMap<String, Spend>,
    /// The newest notification marked read.
    read_up_to: Option<String>,
}

impl Account {
    pub fn exists(&self) -> bool {
        self.registered
    }

    pub fn nickname(&self) -> &str {
        &self.nickname
    }

    /// The balance right after the spend recorded under `reference`.
    pub fn balance_after_spend(&self, reference: &str) -> Option<i64> {
        self.spends.get(reference).map(|s| s.balance)
    }

    pub fn balance(&self) -> i64 {
        self.balance
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The newest notification marked read, if any.
    pub fn notifications_read_up_to(&self) -> Option<&str> {
        self.read_up_to.as_deref()
    }

    /// The answer given to a charge with this key, if there was one.
    pub fn charge_receipt(&self, idempotency_key: &str) -> Option<ChargeReceipt> {
        self.charges.get(idempotency_key).copied()
    }

    fn check_nickname(nickname: &str) -> Result<(), AccountError> {
        let (min, max) = limits::NICKNAME;
        if name_ok(nickname, min, max) {
            Ok(())
        } else {
            Err(AccountError::Invalid { field: "nickname" })
        }
    }

    fn check_points(amount: i64) -> Result<(), AccountError> {
        if amount > 0 && amount <= limits::MAX_BALANCE {
            Ok(())
        } else {
            Err(AccountError::Invalid { field: "amount" })
        }
    }

    /// The event a command leads to, if any. `Ok(None)` means the command is
    /// accepted and changes nothing (a repeated idempotent request).
    fn decide(&self, command: AccountCommand) -> Result<Option<AccountEvent>, AccountError> {
        let event = match command {
            AccountCommand::Register { email, nickname } => {
                if self.registered {
                    return Err(AccountError::AlreadyRegistered);
                }
                Self::check_nickname(&nickname)?;
                AccountEvent::AccountRegistered { email, nickname }
            }
            _ if !self.registered => return Err(AccountError::NotFound),
            AccountCommand::UpdateProfile {
                nickname,
                profile_image,
            } => {
                let nickname = nickname.unwrap_or_else(|| self.nickname.clone());
                Self::check_nickname(&nickname)?;
                let profile_image = profile_image.unwrap_or_else(|| self.profile_image.clone());
                if !image_ok(profile_image.as_deref()) {
                    return Err(AccountError::Invalid {
                        field: "profile_image",
                    });
                }
                if nickname == self.nickname && profile_image == self.profile_image {
                    return Ok(None);
                }
                AccountEvent::ProfileUpdated {
                    nickname,
                    profile_image,
                }
            }
            AccountCommand::Charge {
                amount,
                idempotency_key,
            } => {
                let (min, max) = limits::CHARGE_AMOUNT;
                if !(min..=max).contains(&amount) {
                    return Err(AccountError::Invalid { field: "amount" });
                }
                if let Some(receipt) = self.charges.get(&idempotency_key) {
                    // already charged: the caller answers from the receipt
                    return if receipt.amount == amount {
                        Ok(None)
                    } else {
                        Err(AccountError::IdempotencyKeyReused)
                    };
                }
                let balance = self.balance + amount;
                if balance > limits::MAX_BALANCE {
                    return Err(AccountError::BalanceLimitExceeded);
                }
                AccountEvent::PointsCharged {
                    amount,
                    balance,
                    idempotency_key,
                }
            }
            AccountCommand::Use { amount, reference } => {
                Self::check_points(amount)?;
                if let Some(spend) = self.spends.get(&reference) {
                    // a refunded spend is over: paying under it again would
                    // look paid without taking anything
                    return if spend.amount == amount && !spend.refunded {
                        Ok(None)
                    } else {
                        Err(AccountError::ReferenceReused)
                    };
                }
                if self.balance < amount {
                    return Err(AccountError::InsufficientPoints {
                        balance: self.balance,
                        needed: amount,
                    });
                }
                AccountEvent::PointsUsed {
                    amount,
                    balance: self.balance - amount,
                    reference,
                }
            }
            AccountCommand::Refund { reference } => {
                let Some(spend) = self.spends.get(&reference) else {
                    return Err(AccountError::UnknownReference);
                };
                if spend.refunded {
                    return Ok(None); // compensation may be retried; it refunds once
                }
                AccountEvent::PointsRefunded {
                    amount: spend.amount,
                    balance: self.balance + spend.amount,
                    reference,
                }
            }
            AccountCommand::MarkNotificationsRead { up_to } => {
                let (min, max) = limits::NOTIFICATION_ID;
                if !name_ok(&up_to, min, max) {
                    return Err(AccountError::Invalid { field: "up_to" });
                }
                if self.read_up_to.as_ref().is_some_and(|r| *r >= up_to) {
                    return Ok(None);
                }
                AccountEvent::NotificationsRead { up_to }
            }
        };
        Ok(Some(event))
    }
}

impl_aggregate!(Account: aggregate::ACCOUNT, AccountCommand => AccountEvent, AccountError);

impl Account {
    fn evolve(&mut self, event: AccountEvent) {
        self.version += 1;
        match event {
            AccountEvent::AccountRegistered { nickname, .. } => {
                self.registered = true;
                self.nickname = nickname;
            }
            AccountEvent::ProfileUpdated {
                nickname,
                profile_image,
            } => {
                self.nickname = nickname;
                self.profile_image = profile_image;
            }
            AccountEvent::PointsCharged {
                amount,
                balance,
                idempotency_key,
            } => {
                self.balance = balance;
                self.charges.insert(
                    idempotency_key,
                    ChargeReceipt {
                        amount,
                        balance,
                        version: self.version,
                    },
                );
            }
            AccountEvent::PointsUsed {
                amount,
                balance,
                reference,
            } => {
                self.balance = balance;
                self.spends.insert(
                    reference,
                    Spend {
                        amount,
                        balance,
                        refunded: false,
                    },
                );
            }
            AccountEvent::PointsRefunded {
                balance, reference, ..
            } => {
                self.balance = balance;
                if let Some(spend) = self.spends.get_mut(&reference) {
                    spend.refunded = true;
                }
            }
            AccountEvent::NotificationsRead { up_to } => self.read_up_to = Some(up_to),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::domain::Recorded;

    type AccountTest = TestFramework<Account>;

    fn registered() -> Recorded<AccountEvent> {
        Recorded(AccountEvent::AccountRegistered {
            email: "kim@example.com".into(),
            nickname: "kim".into(),
        })
    }

    fn charged(amount: i64, balance: i64, key: &str) -> Recorded<AccountEvent> {
        Recorded(AccountEvent::PointsCharged {
            amount,
            balance,
            idempotency_key: key.into(),
        })
    }

    fn used(amount: i64, balance: i64, reference: &str) -> Recorded<AccountEvent> {
        Recorded(AccountEvent::PointsUsed {
            amount,
            balance,
            reference: reference.into(),
        })
    }

    #[test]
    fn registering_records_the_account() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::Register {
                email: "kim@example.com".into(),
                nickname: "kim".into(),
            })
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn registering_twice_is_rejected() {
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::Register {
                email: "kim@example.com".into(),
                nickname: "kim".into(),
            })
            .then_expect_error(AccountError::AlreadyRegistered);
    }

    #[test]
    fn a_nickname_must_have_1_to_32_characters() {
        for bad in ["", "   ", &"가".repeat(33)] {
            AccountTest::with(())
                .given_no_previous_events()
                .when(AccountCommand::Register {
                    email: "kim@example.com".into(),
                    nickname: bad.into(),
                })
                .then_expect_error(AccountError::Invalid { field: "nickname" });
        }
        // 32 multi-byte characters are fine: the limit counts characters
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::Register {
                email: "kim@example.com".into(),
                nickname: "가".repeat(32),
            })
            .then_expect_events(vec![Recorded(AccountEvent::AccountRegistered {
                email: "kim@example.com".into(),
                nickname: "가".repeat(32),
            })]);
    }

    #[test]
    fn commands_on_an_unregistered_account_are_rejected() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::Charge {
                amount: 10,
                idempotency_key: "k".into(),
            })
            .then_expect_error(AccountError::NotFound);
    }

    #[test]
    fn updating_the_profile_records_the_whole_new_profile() {
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::UpdateProfile {
                nickname: None,
                profile_image: Some(Some("https://img/1.png".into())),
            })
            .then_expect_events(vec![Recorded(AccountEvent::ProfileUpdated {
                nickname: "kim".into(),
                profile_image: Some("https://img/1.png".into()),
            })]);
    }

    #[test]
    fn an_update_that_changes_nothing_records_nothing() {
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::UpdateProfile {
                nickname: Some("kim".into()),
                profile_image: None,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn charging_adds_to_the_balance() {
        AccountTest::with(())
            .given(vec![registered(), charged(100, 100, "a")])
            .when(AccountCommand::Charge {
                amount: 50,
                idempotency_key: "b".into(),
            })
            .then_expect_events(vec![charged(50, 150, "b")]);
    }

    #[test]
    fn the_same_idempotency_key_charges_once() {
        AccountTest::with(())
            .given(vec![registered(), charged(100, 100, "a")])
            .when(AccountCommand::Charge {
                amount: 100,
                idempotency_key: "a".into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_receipt_of_a_charge_answers_its_key_again() {
        let mut account = Account::default();
        for e in [registered(), charged(100, 100, "a"), charged(5, 105, "b")] {
            cqrs_es::Aggregate::apply(&mut account, e);
        }
        assert_eq!(
            account.charge_receipt("a"),
            Some(ChargeReceipt {
                amount: 100,
                balance: 100,
                version: 2
            })
        );
        assert_eq!(account.charge_receipt("zzz"), None);
    }

    #[test]
    fn a_reused_key_with_another_amount_is_rejected() {
        AccountTest::with(())
            .given(vec![registered(), charged(100, 100, "a")])
            .when(AccountCommand::Charge {
                amount: 99,
                idempotency_key: "a".into(),
            })
            .then_expect_error(AccountError::IdempotencyKeyReused);
    }

    #[test]
    fn a_charge_must_be_between_1_and_1_000_000() {
        for amount in [0, -5, 1_000_001] {
            AccountTest::with(())
                .given(vec![registered()])
                .when(AccountCommand::Charge {
                    amount,
                    idempotency_key: "k".into(),
                })
                .then_expect_error(AccountError::Invalid { field: "amount" });
        }
    }

    #[test]
    fn the_balance_is_bounded() {
        AccountTest::with(())
            .given(vec![
                registered(),
                charged(1, limits::MAX_BALANCE, "near-the-top"),
            ])
            .when(AccountCommand::Charge {
                amount: 1,
                idempotency_key: "k".into(),
            })
            .then_expect_error(AccountError::BalanceLimitExceeded);
    }

    #[test]
    fn using_points_never_goes_below_zero() {
        AccountTest::with(())
            .given(vec![registered(), charged(100, 100, "a")])
            .when(AccountCommand::Use {
                amount: 101,
                reference: "order-1".into(),
            })
            .then_expect_error(AccountError::InsufficientPoints {
                balance: 100,
                needed: 101,
            });
        AccountTest::with(())
            .given(vec![registered(), charged(100, 100, "a")])
            .when(AccountCommand::Use {
                amount: 100,
                reference: "order-1".into(),
            })
            .then_expect_events(vec![used(100, 0, "order-1")]);
    }

    #[test]
    fn using_points_twice_under_one_reference_spends_once() {
        AccountTest::with(())
            .given(vec![
                registered(),
                charged(100, 100, "a"),
                used(30, 70, "order-1"),
            ])
            .when(AccountCommand::Use {
                amount: 30,
                reference: "order-1".into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_refund_gives_back_what_was_spent_once() {
        let refunded = Recorded(AccountEvent::PointsRefunded {
            amount: 30,
            balance: 100,
            reference: "order-1".into(),
        });
        AccountTest::with(())
            .given(vec![
                registered(),
                charged(100, 100, "a"),
                used(30, 70, "order-1"),
            ])
            .when(AccountCommand::Refund {
                reference: "order-1".into(),
            })
            .then_expect_events(vec![refunded.clone()]);
        AccountTest::with(())
            .given(vec![
                registered(),
                charged(100, 100, "a"),
                used(30, 70, "order-1"),
                refunded.clone(),
            ])
            .when(AccountCommand::Refund {
                reference: "order-1".into(),
            })
            .then_expect_events(vec![]);
        // and what was refunded is not paid again under the same reference
        AccountTest::with(())
            .given(vec![
                registered(),
                charged(100, 100, "a"),
                used(30, 70, "order-1"),
                refunded,
            ])
            .when(AccountCommand::Use {
                amount: 30,
                reference: "order-1".into(),
            })
            .then_expect_error(AccountError::ReferenceReused);
    }

    #[test]
    fn refunding_an_unknown_reference_is_rejected() {
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::Refund {
                reference: "nope".into(),
            })
            .then_expect_error(AccountError::UnknownReference);
    }

    #[test]
    fn notifications_are_marked_read_forward_only() {
        let read = |up_to: &str| AccountCommand::MarkNotificationsRead {
            up_to: up_to.into(),
        };
        let marked = |up_to: &str| {
            Recorded(AccountEvent::NotificationsRead {
                up_to: up_to.into(),
            })
        };
        AccountTest::with(())
            .given(vec![registered()])
            .when(read("0000000000000000042-order_paid"))
            .then_expect_events(vec![marked("0000000000000000042-order_paid")]);
        for older_or_same in ["0000000000000000041-x", "0000000000000000042-x"] {
            AccountTest::with(())
                .given(vec![registered(), marked("0000000000000000042-x")])
                .when(read(older_or_same))
                .then_expect_events(vec![]);
        }
        for bad in ["", " ", "a\u{0}b", &"9".repeat(65)] {
            AccountTest::with(())
                .given(vec![registered()])
                .when(read(bad))
                .then_expect_error(AccountError::Invalid { field: "up_to" });
        }
        AccountTest::with(())
            .given_no_previous_events()
            .when(read("1"))
            .then_expect_error(AccountError::NotFound);
    }
}
