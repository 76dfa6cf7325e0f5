use tessera_events::CouponEvent;

use super::{monotonic, open, At, Fold, FoldError, Folded, Outcome, Step, Targets};
use tessera_documents::documents::{collections, pair_id, CouponDoc, UserCouponDoc};

/// `coupons`: a campaign with how many are issued and remain.
pub struct Coupons;

impl Fold for Coupons {
    type Doc = CouponDoc;
    type Event = CouponEvent;
    const NAME: &'static str = collections::COUPONS;

    fn fold_in(&self, doc: Option<CouponDoc>, at: At<CouponEvent>) -> Folded<CouponDoc> {
        let created = || match at.event {
            CouponEvent::CouponCreated {
                name,
                total_quantity,
                discount_amount,
            } => Some(CouponDoc {
                coupon_id: at.aggregate_id.clone(),
                name: name.clone(),
                total_quantity: *total_quantity,
                issued: 0,
                remaining: *total_quantity,
                discount_amount: *discount_amount,
                version: 1,
            }),
            _ => None,
        };
        open(doc, |d| d.version, at.sequence, created)?.then(|mut doc| {
            match at.event {
                CouponEvent::CouponCreated { .. } => {
                    return Err(FoldError::Inapplicable("coupon created twice".into()))
                }
                CouponEvent::CouponIssued { issued, .. } => {
                    doc.issued = *issued;
                    doc.remaining = doc.total_quantity.saturating_sub(*issued);
                }
                CouponEvent::CouponUsed { .. } | CouponEvent::CouponReleased { .. } => {}
            }
            doc.version = at.sequence;
            Ok(Outcome::Put(doc))
        })
    }
}

/// `user_coupons`: the coupons a user holds (id `{user_id}:{coupon_id}`).
pub struct UserCoupons;

fn holder(event: &CouponEvent) -> Option<&str> {
    match event {
        CouponEvent::CouponIssued { user_id, .. }
        | CouponEvent::CouponUsed { user_id, .. }
        | CouponEvent::CouponReleased { user_id, .. } => Some(user_id),
        CouponEvent::CouponCreated { .. } => None,
    }
}

impl Fold for UserCoupons {
    type Doc = UserCouponDoc;
    type Event = CouponEvent;
    const NAME: &'static str = collections::USER_COUPONS;
    const INDEXES: &'static [&'static str] = &["user_id"];

    fn touches(&self, at: At<CouponEvent>) -> Targets {
        holder(at.event).map_or(Targets::None, |user| {
            Targets::Ids(vec![pair_id(user, &at.aggregate_id)])
        })
    }

    fn fold_in(&self, doc: Option<UserCouponDoc>, at: At<CouponEvent>) -> Folded<UserCouponDoc> {
        if monotonic(doc.as_ref().map(|d| d.version), at.sequence) == Step::Duplicate {
            return Ok(Outcome::Unchanged);
        }
        let mut doc = match (doc, at.event) {
            (
                _,
                CouponEvent::CouponIssued {
                    user_id,
                    name,
                    discount_amount,
                    ..
                },
            ) => UserCouponDoc {
                user_id: user_id.clone(),
                coupon_id: at.aggregate_id.clone(),
                name: name.clone(),
                discount_amount: *discount_amount,
                used: false,
                reservation_id: None,
                version: 0,
            },
            (Some(mut d), CouponEvent::CouponUsed { reservation_id, .. }) => {
                d.used = true;
                d.reservation_id = Some(reservation_id.clone());
                d
            }
            (Some(mut d), CouponEvent::CouponReleased { .. }) => {
                d.used = false;
                d.reservation_id = None;
                d
            }
            (None, _) => {
                return Err(FoldError::Inapplicable(
                    "a use of a coupon that was never issued".into(),
                ))
            }
            (Some(_), CouponEvent::CouponCreated { .. }) => return Ok(Outcome::Unchanged),
        };
        doc.version = at.sequence;
        Ok(Outcome::Put(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::coupon;

    #[test]
    fn a_campaign_counts_what_is_issued_and_a_holder_sees_use_and_release() {
        let created = CouponEvent::CouponCreated {
            name: "W".into(),
            total_quantity: 2,
            discount_amount: 50,
        };
        let issued = CouponEvent::CouponIssued {
            user_id: "ann".into(),
            issued: 1,
            name: "W".into(),
            discount_amount: 50,
        };
        let (e1, v1) = coupon("k", 1, created);
        let Outcome::Put(doc) = Coupons.fold(None, &e1, &v1).unwrap() else {
            panic!()
        };
        let (e2, v2) = coupon("k", 2, issued);
        let Outcome::Put(doc) = Coupons.fold(Some(doc), &e2, &v2).unwrap() else {
            panic!()
        };
        assert_eq!((doc.issued, doc.remaining), (1, 1));
        assert_eq!(
            UserCoupons.targets(&e2, &v2),
            Targets::Ids(vec!["ann:k".into()])
        );
        let Outcome::Put(mine) = UserCoupons.fold(None, &e2, &v2).unwrap() else {
            panic!()
        };
        let (e3, v3) = coupon(
            "k",
            3,
            CouponEvent::CouponUsed {
                user_id: "ann".into(),
                reservation_id: "r".into(),
            },
        );
        let Outcome::Put(mine) = UserCoupons.fold(Some(mine), &e3, &v3).unwrap() else {
            panic!()
        };
        assert!(mine.used);
        assert_eq!(
            UserCoupons.fold(Some(mine), &e2, &v2),
            Ok(Outcome::Unchanged)
        );
    }
}
