//! The `coupon` aggregate: a first-come-first-served campaign. Issuing is
//! decided here, so however many requests and write-side instances race,
//! no more than `total_quantity` are issued and nobody gets two.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, CouponEvent};

use super::{impl_aggregate, name_ok, DomainError, ErrorKind};

super::named!(CouponCommand {
    Create,
    Issue,
    Use,
    Release
});

pub const NAME: (usize, usize) = (1, 100);
pub const QUANTITY: (u32, u32) = (1, 1_000_000);
pub const DISCOUNT: (i64, i64) = (1, 1_000_000);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponCommand {
    Create {
        name: String,
        total_quantity: u32,
        discount_amount: i64,
    },
    Issue {
        user_id: String,
    },
    /// Spends the user's coupon on a reservation (same reservation again:
    /// no-op, so a retried payment uses it once).
    Use {
        user_id: String,
        reservation_id: String,
    },
    /// Gives a use back (compensation; no-op if not used for it).
    Release {
        user_id: String,
        reservation_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CouponError {
    #[error("coupon not found")]
    NotFound,
    #[error("coupon already exists")]
    AlreadyExists,
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
    #[error("all coupons have been issued")]
    SoldOut,
    #[error("this user already has this coupon")]
    AlreadyIssued,
    #[error("this user has no such coupon")]
    NotIssued,
    #[error("the coupon was already used")]
    AlreadyUsed,
}

impl DomainError for CouponError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyExists | Self::SoldOut | Self::AlreadyIssued => ErrorKind::Conflict,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::NotIssued | Self::AlreadyUsed => ErrorKind::Unprocessable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "conflict",
            Self::Invalid { .. } => "invalid_input",
            Self::SoldOut => "sold_out",
            Self::AlreadyIssued => "already_issued",
            Self::NotIssued => "coupon_not_issued",
            Self::AlreadyUsed => "coupon_already_used",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            _ => serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    created: bool,
    name: String,
    total_quantity: u32,
    discount_amount: i64,
    /// user -> the reservation the coupon was used for, if any
    holders: HashMap<String, Option<String>>,
}

impl Coupon {
    pub fn exists(&self) -> bool {
        self.created
    }

    pub fn discount_amount(&self) -> i64 {
        self.discount_amount
    }

    pub fn issued(&self) -> u32 {
        u32::try_from(self.holders.len()).unwrap_or(u32::MAX)
    }

    fn decide(&self, command: CouponCommand) -> Result<Option<CouponEvent>, CouponError> {
        if let CouponCommand::Create {
            name,
            total_quantity,
            discount_amount,
        } = command
        {
            if self.created {
                return Err(CouponError::AlreadyExists);
            }
            if !name_ok(&name, NAME.0, NAME.1) {
                return Err(CouponError::Invalid { field: "name" });
            }
            if !(QUANTITY.0..=QUANTITY.1).contains(&total_quantity) {
                return Err(CouponError::Invalid {
                    field: "total_quantity",
                });
            }
            if !(DISCOUNT.0..=DISCOUNT.1).contains(&discount_amount) {
                return Err(CouponError::Invalid {
                    field: "discount_amount",
                });
            }
            return Ok(Some(CouponEvent::CouponCreated {
                name,
                total_quantity,
                discount_amount,
            }));
        }
        if !self.created {
            return Err(CouponError::NotFound);
        }
        let event = match command {
            CouponCommand::Create { .. } => return Err(CouponError::AlreadyExists),
            CouponCommand::Issue { user_id } => {
                if self.holders.contains_key(&user_id) {
                    return Err(CouponError::AlreadyIssued);
                }
                if self.issued() >= self.total_quantity {
                    return Err(CouponError::SoldOut);
                }
                CouponEvent::CouponIssued {
                    user_id,
                    issued: self.issued() + 1,
                    name: self.name.clone(),
                    discount_amount: self.discount_amount,
                }
            }
            CouponCommand::Use {
                user_id,
                reservation_id,
            } => match self.holders.get(&user_id) {
                None => return Err(CouponError::NotIssued),
                Some(Some(used_for)) if *used_for == reservation_id => return Ok(None),
                Some(Some(_)) => return Err(CouponError::AlreadyUsed),
                Some(None) => CouponEvent::CouponUsed {
                    user_id,
                    reservation_id,
                },
            },
            CouponCommand::Release {
                user_id,
                reservation_id,
            } => match self.holders.get(&user_id) {
                Some(Some(used_for)) if *used_for == reservation_id => {
                    CouponEvent::CouponReleased {
                        user_id,
                        reservation_id,
                    }
                }
                _ => return Ok(None),
            },
        };
        Ok(Some(event))
    }
}

impl_aggregate!(Coupon: aggregate::COUPON, CouponCommand => CouponEvent, CouponError);

impl Coupon {
    fn evolve(&mut self, event: CouponEvent) {
        match event {
            CouponEvent::CouponCreated {
                name,
                total_quantity,
                discount_amount,
            } => {
                self.created = true;
                self.name = name;
                self.total_quantity = total_quantity;
                self.discount_amount = discount_amount;
            }
            CouponEvent::CouponIssued { user_id, .. } => {
                self.holders.insert(user_id, None);
            }
            CouponEvent::CouponUsed {
                user_id,
                reservation_id,
            } => {
                self.holders.insert(user_id, Some(reservation_id));
            }
            CouponEvent::CouponReleased { user_id, .. } => {
                self.holders.insert(user_id, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::domain::testkit;
    use crate::domain::Recorded;

    fn given(events: Vec<CouponEvent>) -> cqrs_es::test::AggregateTestExecutor<Coupon> {
        testkit::given((), events)
    }

    fn created(total: u32) -> CouponEvent {
        CouponEvent::CouponCreated {
            name: "Welcome".into(),
            total_quantity: total,
            discount_amount: 500,
        }
    }

    fn issued(user: &str, n: u32) -> CouponEvent {
        CouponEvent::CouponIssued {
            user_id: user.into(),
            issued: n,
            name: "Welcome".into(),
            discount_amount: 500,
        }
    }

    fn issue(user: &str) -> CouponCommand {
        CouponCommand::Issue {
            user_id: user.into(),
        }
    }

    #[test]
    fn coupons_are_issued_until_sold_out_and_once_per_user() {
        given(vec![created(2)])
            .when(issue("a"))
            .then_expect_events(vec![Recorded(issued("a", 1))]);
        given(vec![created(2), issued("a", 1)])
            .when(issue("a"))
            .then_expect_error(CouponError::AlreadyIssued);
        given(vec![created(2), issued("a", 1), issued("b", 2)])
            .when(issue("c"))
            .then_expect_error(CouponError::SoldOut);
        given(vec![])
            .when(issue("a"))
            .then_expect_error(CouponError::NotFound);
    }

    #[test]
    fn a_campaign_has_a_name_a_quantity_and_a_discount_in_range() {
        for (name, total, discount, field) in [
            ("", 1, 1, "name"),
            ("n", 0, 1, "total_quantity"),
            ("n", 1, 0, "discount_amount"),
            ("n", 1, 1_000_001, "discount_amount"),
        ] {
            given(vec![])
                .when(CouponCommand::Create {
                    name: name.into(),
                    total_quantity: total,
                    discount_amount: discount,
                })
                .then_expect_error(CouponError::Invalid { field });
        }
    }

    #[test]
    fn a_coupon_is_used_once_and_can_be_given_back() {
        let used = CouponEvent::CouponUsed {
            user_id: "a".into(),
            reservation_id: "r1".into(),
        };
        let use_for = |r: &str| CouponCommand::Use {
            user_id: "a".into(),
            reservation_id: r.into(),
        };
        given(vec![created(5), issued("a", 1)])
            .when(use_for("r1"))
            .then_expect_events(vec![Recorded(used.clone())]);
        given(vec![created(5)])
            .when(use_for("r1"))
            .then_expect_error(CouponError::NotIssued);
        given(vec![created(5), issued("a", 1), used.clone()])
            .when(use_for("r1"))
            .then_expect_events(vec![]);
        given(vec![created(5), issued("a", 1), used.clone()])
            .when(use_for("r2"))
            .then_expect_error(CouponError::AlreadyUsed);
        let release = CouponCommand::Release {
            user_id: "a".into(),
            reservation_id: "r1".into(),
        };
        given(vec![created(5), issued("a", 1), used])
            .when(release.clone())
            .then_expect_events(vec![Recorded(CouponEvent::CouponReleased {
                user_id: "a".into(),
                reservation_id: "r1".into(),
            })]);
        given(vec![created(5), issued("a", 1)])
            .when(release)
            .then_expect_events(vec![]);
    }
}
