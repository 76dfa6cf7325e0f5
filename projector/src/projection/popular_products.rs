use tessera_documents::documents::collections;
use tessera_documents::shop::{day_id, PopularDayDoc};
use tessera_events::ProductEvent;

use super::{monotonic, At, Fold, Folded, Outcome, Step, Targets};

/// `popular_products`: per UTC day, the units each product sold and in how
/// many orders — counted when a payment takes the stock, and taken off the
/// day it was taken when it is given back (a refused payment, a cancelled
/// paid order). "Most sold over the last D days" reads D small documents,
/// always fresh, instead of scanning orders; a document holds one entry
/// per product sold that day.
///
/// Fed by the product aggregate, whose take and return decisions are the
/// sales, so every count is exact: a duplicate is known by the product's
/// sequence, kept per product in the document.
pub struct PopularProducts;

fn day_of(event: &ProductEvent) -> Option<String> {
    match event {
        ProductEvent::StockTaken { at, .. } => Some(day_id(at.date_naive())),
        ProductEvent::StockReturned { taken_at, .. } => Some(day_id(taken_at.date_naive())),
        _ => None,
    }
}

impl Fold for PopularProducts {
    type Doc = PopularDayDoc;
    type Event = ProductEvent;
    const NAME: &'static str = collections::POPULAR_PRODUCTS;
    const SINGLE_SOURCE: bool = false;

    fn touches(&self, at: At<ProductEvent>) -> Targets {
        day_of(at.event).map_or(Targets::None, |d| Targets::Ids(vec![d]))
    }

    fn fold_in(&self, doc: Option<PopularDayDoc>, at: At<ProductEvent>) -> Folded<PopularDayDoc> {
        let product_id = &at.aggregate_id;
        let mut doc = doc.unwrap_or_default();
        if monotonic(doc.seqs.get(product_id).copied(), at.sequence) == Step::Duplicate {
            return Ok(Outcome::Unchanged);
        }
        match at.event {
            ProductEvent::StockTaken { quantity, at, .. } => {
                doc.day = Some(at.date_naive());
                let sales = doc.products.entry(product_id.clone()).or_default();
                sales.quantity += u64::from(*quantity);
                sales.orders += 1;
            }
            ProductEvent::StockReturned {
                quantity, taken_at, ..
            } => {
                doc.day = Some(taken_at.date_naive());
                let sales = doc.products.entry(product_id.clone()).or_default();
                sales.quantity = sales.quantity.saturating_sub(u64::from(*quantity));
                sales.orders = sales.orders.saturating_sub(1);
                if sales.quantity == 0 {
                    doc.products.remove(product_id);
                }
            }
            _ => return Ok(Outcome::Unchanged),
        }
        doc.seqs.insert(product_id.clone(), at.sequence);
        Ok(Outcome::Put(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::{at, product};

    #[test]
    fn a_day_counts_what_was_taken_that_day_and_loses_what_was_given_back() {
        let take = |order: &str, quantity: u32| ProductEvent::StockTaken {
            order_id: order.into(),
            quantity,
            stock: 0,
            at: at(1),
        };
        let (e1, v1) = product("p", 2, take("o1", 3));
        let (e2, v2) = product("p", 3, take("o2", 1));
        let (e3, v3) = product("q", 2, take("o2", 5));
        assert_eq!(
            PopularProducts.targets(&e1, &v1),
            Targets::Ids(vec!["2026-01-01".into()])
        );
        let mut doc = None;
        for (e, v) in [(&e1, &v1), (&e2, &v2), (&e3, &v3)] {
            let Outcome::Put(d) = PopularProducts.fold(doc, e, v).unwrap() else {
                panic!()
            };
            doc = Some(d);
        }
        let doc = doc.unwrap();
        assert_eq!(
            (doc.products["p"].quantity, doc.products["p"].orders),
            (4, 2)
        );
        // a duplicate changes nothing
        assert_eq!(
            PopularProducts.fold(Some(doc.clone()), &e2, &v2),
            Ok(Outcome::Unchanged)
        );
        let (e4, v4) = product(
            "p",
            4,
            ProductEvent::StockReturned {
                order_id: "o1".into(),
                quantity: 3,
                stock: 3,
                taken_at: at(1),
            },
        );
        let Outcome::Put(doc) = PopularProducts.fold(Some(doc), &e4, &v4).unwrap() else {
            panic!()
        };
        assert_eq!(
            (doc.products["p"].quantity, doc.products["p"].orders),
            (1, 1)
        );
        assert_eq!(doc.products["q"].quantity, 5);
    }
}
