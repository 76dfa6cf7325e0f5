use serde::{Deserialize, Serialize};

use crate::{aggregate, event_kind};

/// Events of the `product` aggregate: something a user sells (C2C), its
/// stock, and the units orders took from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ProductEvent {
    ProductListed {
        seller_id: String,
        name: String,
        description: Option<String>,
        price: i64,
        stock: u32,
    },
    /// The whole new name, description and price, not a patch.
    ProductEdited {
        name: String,
        description: Option<String>,
        price: i64,
    },
    /// `stock` is the stock after it.
    ProductRestocked { quantity: u32, stock: u32 },
    /// An order's units, taken at its payment.
    StockTaken {
        order_id: String,
        quantity: u32,
        stock: u32,
    },
    /// The units of an order given back (a refused payment, a cancel).
    StockReturned {
        order_id: String,
        quantity: u32,
        stock: u32,
    },
}

event_kind!(ProductEvent: aggregate::PRODUCT, version "1.0" {
    ProductListed,
    ProductEdited,
    ProductRestocked,
    StockTaken,
    StockReturned,
});
