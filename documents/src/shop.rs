//! The shop's read models: products, orders (the whole order, a buyer's,
//! a seller's lines of it) and a day's sales per product.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A product as buyers see it (collection `products`, id = product id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDoc {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    pub description: Option<String>,
    pub price: i64,
    pub stock: u32,
    /// Units taken by payments and not given back.
    pub sold: u64,
    /// The lowercase name's three-character pieces: the index a name
    /// search (`?q=`) starts from.
    pub name_grams: Vec<String>,
    pub version: u64,
}

/// The three-character pieces of a name, lowercased, each once: a
/// document whose name contains a query contains the query's first piece.
pub fn name_grams(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.to_lowercase().chars().collect();
    let mut grams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// A line of an order, its price fixed when the order was created: the
/// event's own line, as the order documents keep it.
pub use tessera_events::OrderLine as OrderLineDoc;

/// An order (collection `orders`, id = order id; and `user_orders`, id
/// `{buyer_id}:{order_id}`). Order ids are time-ordered (UUIDv7), so id
/// order is creation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDoc {
    pub order_id: String,
    pub buyer_id: String,
    pub items: Vec<OrderLineDoc>,
    /// Who may read the order besides its buyer.
    pub seller_ids: Vec<String>,
    /// `created`, `paying`, `paid`, `cancelled` or `expired`.
    pub status: String,
    /// `{buyer_id}:{status}`: a buyer's orders of one status.
    pub buyer_status: String,
    pub amount: i64,
    pub paid_amount: Option<i64>,
    pub coupon_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub version: u64,
}

/// A seller's lines of one order (collection `seller_sales`, id
/// `{seller_id}:{order_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleDoc {
    pub seller_id: String,
    pub order_id: String,
    pub buyer_id: String,
    pub items: Vec<OrderLineDoc>,
    /// The price of these lines.
    pub amount: i64,
    /// The order's status.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    /// The order's version this reflects.
    pub version: u64,
}

/// What one product sold on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaySales {
    /// Units taken that day and not given back.
    pub quantity: u64,
    /// Orders that took them.
    pub orders: u64,
}

/// A day's sales per product (collection `popular_products`, id = the UTC
/// day, `YYYY-MM-DD`): "most sold over the last D days" reads D of these,
/// never the orders. As many entries as products sold that day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopularDayDoc {
    pub day: Option<NaiveDate>,
    pub products: BTreeMap<String, DaySales>,
    /// The last sequence folded per product (the document is fed by many
    /// products: a duplicate changes nothing).
    pub seqs: BTreeMap<String, u64>,
}

/// Id of a day's sales document.
pub fn day_id(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_holds_the_first_piece_of_everything_it_contains() {
        let grams = name_grams("Desk Lamp");
        assert!(grams.contains(&"lam".to_owned()));
        assert!(grams.contains(&"k l".to_owned()));
        assert!(name_grams("ab").is_empty());
        assert_eq!(name_grams("aaaa"), ["aaa"]);
    }
}
