use tessera_documents::documents::{collections, pair_id};
use tessera_documents::shop::SaleDoc;
use tessera_events::OrderEvent;

use super::orders::status_after;
use super::{open, At, Fold, FoldError, Folded, Outcome, Targets};

/// `seller_sales`: each seller's lines of an order (id
/// `{seller_id}:{order_id}`), following the order's status; a seller's
/// sales newest first through the `seller_id` index.
pub struct SellerSales;

impl Fold for SellerSales {
    type Doc = SaleDoc;
    type Event = OrderEvent;
    const NAME: &'static str = collections::SELLER_SALES;
    const INDEXES: &'static [&'static str] = &["seller_id", "order_id"];

    fn touches(&self, at: At<OrderEvent>) -> Targets {
        let order = &at.aggregate_id;
        if let OrderEvent::OrderCreated { lines, .. } = at.event {
            let mut ids: Vec<String> = lines.iter().map(|l| pair_id(&l.seller_id, order)).collect();
            ids.sort_unstable();
            ids.dedup();
            return Targets::Ids(ids);
        }
        Targets::Where {
            field: "order_id",
            value: order.clone(),
        }
    }

    fn fold_in(&self, _: Option<SaleDoc>, _: At<OrderEvent>) -> Folded<SaleDoc> {
        Err(FoldError::Inapplicable(
            "a seller's lines are folded by their id".into(),
        ))
    }

    fn fold_in_at(&self, id: &str, doc: Option<SaleDoc>, at: At<OrderEvent>) -> Folded<SaleDoc> {
        let created = || match at.event {
            OrderEvent::OrderCreated {
                buyer_id, lines, ..
            } => {
                let (seller_id, _) = id.split_once(':')?;
                let items: Vec<_> = lines
                    .iter()
                    .filter(|l| l.seller_id == seller_id)
                    .cloned()
                    .collect();
                Some(SaleDoc {
                    seller_id: seller_id.to_owned(),
                    order_id: at.aggregate_id.clone(),
                    buyer_id: buyer_id.clone(),
                    amount: items.iter().map(|l| l.price * i64::from(l.quantity)).sum(),
                    items,
                    status: "created".into(),
                    created_at: at.metadata.occurred_at,
                    paid_at: None,
                    version: 1,
                })
            }
            _ => None,
        };
        open(doc, |d| d.version, at.sequence, created)?.then(|mut doc| {
            if let OrderEvent::OrderPaid { paid_at, .. } = at.event {
                doc.paid_at = Some(*paid_at);
            }
            if matches!(at.event, OrderEvent::OrderCreated { .. }) {
                return Err(FoldError::Inapplicable("order created twice".into()));
            }
            doc.status = status_after(at.event).into();
            doc.version = at.sequence;
            Ok(Outcome::Put(doc))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::{at, order};

    #[test]
    fn each_seller_sees_their_own_lines_of_an_order() {
        let (env, ev) = order("o1", 1, super::super::orders::tests::created());
        let Targets::Ids(ids) = SellerSales.targets(&env, &ev) else {
            panic!()
        };
        assert_eq!(ids, ["sam:o1", "sue:o1"]);
        let Outcome::Put(sam) = SellerSales.fold_at("sam:o1", None, &env, &ev).unwrap() else {
            panic!()
        };
        assert_eq!((sam.items.len(), sam.amount), (1, 1000));
        let (env, ev) = order(
            "o1",
            2,
            OrderEvent::PaymentStarted {
                attempt: "a".into(),
                coupon_id: None,
                started_at: at(1),
            },
        );
        assert_eq!(
            SellerSales.targets(&env, &ev),
            Targets::Where {
                field: "order_id",
                value: "o1".into()
            }
        );
        let (env3, ev3) = order(
            "o1",
            3,
            OrderEvent::OrderPaid {
                paid_amount: 1300,
                paid_at: at(2),
                buyer_id: Some("ann".into()),
                seller_ids: vec!["sam".into()],
            },
        );
        // an event past the next one is a gap
        assert!(SellerSales
            .fold_at("sam:o1", Some(sam.clone()), &env3, &ev3)
            .is_err());
        let Outcome::Put(sam) = SellerSales.fold_at("sam:o1", Some(sam), &env, &ev).unwrap() else {
            panic!()
        };
        let Outcome::Put(sam) = SellerSales
            .fold_at("sam:o1", Some(sam), &env3, &ev3)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((sam.status.as_str(), sam.paid_at), ("paid", Some(at(2))));
    }
}
