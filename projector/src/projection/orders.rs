use tessera_documents::documents::{collections, pair_id};
use tessera_documents::shop::OrderDoc;
use tessera_events::OrderEvent;

use super::{open, At, Fold, FoldError, Folded, Outcome};

/// `orders`: every order (id = order id), for its buyer, its sellers and
/// admins; listed newest first by status.
pub struct Orders;

/// `user_orders`: the same documents indexed for a buyer's history (by
/// `buyer_id`, and by status through `buyer_status`). Order ids are
/// time-ordered (UUIDv7), so a buyer's ids in descending order are newest
/// first.
pub struct UserOrders;

/// The status an order event leaves, as the API names it.
pub(super) fn status_after(event: &OrderEvent) -> &'static str {
    match event {
        OrderEvent::OrderCreated { .. } | OrderEvent::PaymentAborted { .. } => "created",
        OrderEvent::PaymentStarted { .. } => "paying",
        OrderEvent::OrderPaid { .. } => "paid",
        OrderEvent::OrderCancelled { .. } => "cancelled",
        OrderEvent::OrderExpired => "expired",
    }
}

/// The fold both order collections share.
fn fold_order(doc: Option<OrderDoc>, at: At<OrderEvent>) -> Folded<OrderDoc> {
    let created = || match at.event {
        OrderEvent::OrderCreated {
            buyer_id,
            lines,
            amount,
            expires_at,
            ..
        } => {
            let mut seller_ids: Vec<String> = lines.iter().map(|l| l.seller_id.clone()).collect();
            seller_ids.sort_unstable();
            seller_ids.dedup();
            Some(OrderDoc {
                order_id: at.aggregate_id.clone(),
                buyer_id: buyer_id.clone(),
                items: lines.clone(),
                seller_ids,
                status: "created".into(),
                buyer_status: pair_id(buyer_id, "created"),
                amount: *amount,
                paid_amount: None,
                coupon_id: None,
                created_at: at.metadata.occurred_at,
                expires_at: *expires_at,
                paid_at: None,
                cancelled_at: None,
                version: 1,
            })
        }
        _ => None,
    };
    open(doc, |d| d.version, at.sequence, created)?.then(|mut doc| {
        match at.event {
            OrderEvent::OrderCreated { .. } => {
                return Err(FoldError::Inapplicable("order created twice".into()))
            }
            OrderEvent::PaymentStarted { coupon_id, .. } => doc.coupon_id.clone_from(coupon_id),
            OrderEvent::PaymentAborted { .. } => doc.coupon_id = None,
            OrderEvent::OrderPaid {
                paid_amount,
                paid_at,
                ..
            } => {
                doc.paid_amount = Some(*paid_amount);
                doc.paid_at = Some(*paid_at);
            }
            OrderEvent::OrderCancelled { .. } => {
                doc.cancelled_at = Some(at.metadata.occurred_at);
            }
            OrderEvent::OrderExpired => {}
        }
        doc.status = status_after(at.event).into();
        doc.buyer_status = pair_id(&doc.buyer_id, &doc.status);
        doc.version = at.sequence;
        Ok(Outcome::Put(doc))
    })
}

/// Both collections hold the same documents, indexed for their lists.
macro_rules! order_collection {
    ($name:ident, $collection:expr, $indexes:expr) => {
        impl Fold for $name {
            type Doc = OrderDoc;
            type Event = OrderEvent;
            const NAME: &'static str = $collection;
            const INDEXES: &'static [&'static str] = &$indexes;

            fn fold_in(&self, doc: Option<OrderDoc>, at: At<OrderEvent>) -> Folded<OrderDoc> {
                fold_order(doc, at)
            }
        }
    };
}

order_collection!(Orders, collections::ORDERS, ["status"]);
order_collection!(
    UserOrders,
    collections::USER_ORDERS,
    ["buyer_id", "buyer_status"]
);

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::projection::testing::{at, order};
    use crate::projection::Targets;
    use tessera_events::OrderLine;

    pub(crate) fn created() -> OrderEvent {
        OrderEvent::OrderCreated {
            buyer_id: "bo".into(),
            lines: vec![
                OrderLine {
                    product_id: "p1".into(),
                    seller_id: "sam".into(),
                    name: "Lamp".into(),
                    price: 500,
                    quantity: 2,
                },
                OrderLine {
                    product_id: "p2".into(),
                    seller_id: "sue".into(),
                    name: "Desk".into(),
                    price: 300,
                    quantity: 1,
                },
            ],
            amount: 1300,
            idempotency_key: "k".into(),
            expires_at: at(15),
        }
    }

    #[test]
    fn an_order_follows_its_payment_and_is_listed_under_its_buyer_and_status() {
        let events = [
            created(),
            OrderEvent::PaymentStarted {
                attempt: "a".into(),
                coupon_id: Some("c".into()),
                started_at: at(1),
            },
            OrderEvent::OrderPaid {
                paid_amount: 1200,
                paid_at: at(2),
                buyer_id: Some("ann".into()),
                seller_ids: vec!["sam".into()],
            },
        ];
        let mut doc = None;
        for (i, e) in events.into_iter().enumerate() {
            let (env, ev) = order("o1", i as u64 + 1, e);
            assert_eq!(
                UserOrders.targets(&env, &ev),
                Targets::Ids(vec!["o1".into()])
            );
            match Orders.fold(doc.clone(), &env, &ev).unwrap() {
                Outcome::Put(d) => doc = Some(d),
                other => panic!("{other:?}"),
            }
        }
        let doc = doc.unwrap();
        assert_eq!(doc.status, "paid");
        assert_eq!(doc.buyer_status, "bo:paid");
        assert_eq!(doc.seller_ids, ["sam", "sue"]);
        assert_eq!(
            (doc.paid_amount, doc.coupon_id.as_deref()),
            (Some(1200), Some("c"))
        );
        let (env, ev) = order(
            "o1",
            4,
            OrderEvent::OrderCancelled {
                by: "bo".into(),
                refund: Some(1200),
            },
        );
        let Outcome::Put(doc) = Orders.fold(Some(doc), &env, &ev).unwrap() else {
            panic!()
        };
        assert_eq!((doc.status.as_str(), doc.version), ("cancelled", 4));
        assert!(doc.cancelled_at.is_some());
    }
}
