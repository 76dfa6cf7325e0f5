use tessera_documents::documents::collections;
use tessera_documents::shop::{name_grams, ProductDoc};
use tessera_events::ProductEvent;

use super::{open, At, Fold, FoldError, Folded, Live, Outcome};

/// `products`: a product with its stock and the units sold, searchable by
/// seller and by a piece of its name.
pub struct Products;

impl Fold for Products {
    type Doc = ProductDoc;
    type Event = ProductEvent;
    const NAME: &'static str = collections::PRODUCTS;
    const LIVE: Live = Live::ById;
    const INDEXES: &'static [&'static str] = &["seller_id", "name_grams"];

    fn fold_in(&self, doc: Option<ProductDoc>, at: At<ProductEvent>) -> Folded<ProductDoc> {
        let listed = || match at.event {
            ProductEvent::ProductListed {
                seller_id,
                name,
                description,
                price,
                stock,
            } => Some(ProductDoc {
                product_id: at.aggregate_id.clone(),
                seller_id: seller_id.clone(),
                name: name.clone(),
                description: description.clone(),
                price: *price,
                stock: *stock,
                sold: 0,
                name_grams: name_grams(name),
                version: 1,
            }),
            _ => None,
        };
        open(doc, |d| d.version, at.sequence, listed)?.then(|mut doc| {
            match at.event {
                ProductEvent::ProductListed { .. } => {
                    return Err(FoldError::Inapplicable("product listed twice".into()))
                }
                ProductEvent::ProductEdited {
                    name,
                    description,
                    price,
                } => {
                    doc.name_grams = name_grams(name);
                    doc.name.clone_from(name);
                    doc.description.clone_from(description);
                    doc.price = *price;
                }
                ProductEvent::ProductRestocked { stock, .. } => doc.stock = *stock,
                ProductEvent::StockTaken {
                    quantity, stock, ..
                } => {
                    doc.stock = *stock;
                    doc.sold += u64::from(*quantity);
                }
                ProductEvent::StockReturned {
                    quantity, stock, ..
                } => {
                    doc.stock = *stock;
                    doc.sold = doc.sold.saturating_sub(u64::from(*quantity));
                }
            }
            doc.version = at.sequence;
            Ok(Outcome::Put(doc))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::{at, product};

    #[test]
    fn a_product_counts_what_payments_took_and_gave_back() {
        let events = [
            ProductEvent::ProductListed {
                seller_id: "sam".into(),
                name: "Desk Lamp".into(),
                description: None,
                price: 1200,
                stock: 5,
            },
            ProductEvent::StockTaken {
                order_id: "o1".into(),
                quantity: 2,
                stock: 3,
                at: at(1),
            },
            ProductEvent::StockTaken {
                order_id: "o2".into(),
                quantity: 1,
                stock: 2,
                at: at(2),
            },
            ProductEvent::StockReturned {
                order_id: "o1".into(),
                quantity: 2,
                stock: 4,
                taken_at: at(1),
            },
            ProductEvent::ProductEdited {
                name: "Floor Lamp".into(),
                description: Some("tall".into()),
                price: 1500,
            },
        ];
        let mut doc = None;
        for (i, e) in events.into_iter().enumerate() {
            let (env, ev) = product("p", i as u64 + 1, e);
            match Products.fold(doc.clone(), &env, &ev).unwrap() {
                Outcome::Put(d) => doc = Some(d),
                other => panic!("{other:?}"),
            }
        }
        let doc = doc.unwrap();
        assert_eq!((doc.stock, doc.sold, doc.price), (4, 1, 1500));
        assert!(doc.name_grams.contains(&"flo".to_owned()));
        assert!(!doc.name_grams.contains(&"des".to_owned()));
        // a duplicate changes nothing, a gap is refused
        let (env, ev) = product(
            "p",
            5,
            ProductEvent::ProductRestocked {
                quantity: 1,
                stock: 5,
            },
        );
        assert_eq!(
            Products.fold(Some(doc.clone()), &env, &ev),
            Ok(Outcome::Unchanged)
        );
        let (env, ev) = product(
            "p",
            7,
            ProductEvent::ProductRestocked {
                quantity: 1,
                stock: 5,
            },
        );
        assert!(matches!(
            Products.fold(Some(doc), &env, &ev),
            Err(FoldError::Gap { .. })
        ));
    }
}
