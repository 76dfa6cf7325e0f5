//! A product (seeds 001 and 003): listed by any user, who is its seller;
//! edited and restocked by the seller only; its stock taken by orders at
//! payment and given back once when a payment is refused or a paid order is
//! cancelled. Stock never goes below zero and a unit is never sold twice:
//! every take is decided here, against the stock, one command after the
//! other (the bus serializes the aggregate's commands).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, ProductEvent};

use super::{impl_aggregate, name_ok, text_ok, DomainError, ErrorKind};

/// Limits of the contract (API.md "Shop").
pub mod limits {
    pub const NAME: (usize, usize) = (1, 100);
    pub const DESCRIPTION: (usize, usize) = (1, 2000);
    pub const PRICE: (i64, i64) = (1, 10_000_000);
    pub const STOCK: (u32, u32) = (0, 1_000_000);
    /// Units of one product in one order.
    pub const QUANTITY: (u32, u32) = (1, 100);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    List {
        seller_id: String,
        name: String,
        description: Option<String>,
        price: i64,
        stock: u32,
    },
    /// `None` keeps a field; `Some(None)` removes the description.
    Edit {
        actor: String,
        name: Option<String>,
        description: Option<Option<String>>,
        price: Option<i64>,
    },
    Restock {
        actor: String,
        quantity: u32,
    },
    /// Takes an order's units; taking again for the same order changes
    /// nothing (a retried payment step).
    Take {
        order_id: String,
        quantity: u32,
        at: DateTime<Utc>,
    },
    /// Gives an order's units back, once; nothing for an order that took
    /// none (a compensation that runs before or without its take).
    Return {
        order_id: String,
    },
}

super::named!(ProductCommand {
    List,
    Edit,
    Restock,
    Take,
    Return
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("product not found")]
    NotFound,
    #[error("product already exists")]
    AlreadyExists,
    #[error("only the seller may do this")]
    NotSeller,
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
    #[error("only {available} left in stock")]
    OutOfStock { available: u32 },
    #[error("the stock would pass {}", limits::STOCK.1)]
    StockFull,
}

impl DomainError for ProductError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyExists | Self::OutOfStock { .. } => ErrorKind::Conflict,
            Self::NotSeller => ErrorKind::Forbidden,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::StockFull => ErrorKind::Unprocessable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "conflict",
            Self::NotSeller => "forbidden",
            Self::Invalid { .. } => "invalid_input",
            Self::OutOfStock { .. } => "out_of_stock",
            Self::StockFull => "stock_full",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            Self::OutOfStock { available } => serde_json::json!({ "available": available }),
            _ => serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    listed: bool,
    seller_id: String,
    name: String,
    description: Option<String>,
    price: i64,
    stock: u32,
    /// Units each order holds, until given back.
    taken: BTreeMap<String, Taken>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Taken {
    quantity: u32,
    at: DateTime<Utc>,
}

fn check_name(name: &str) -> Result<(), ProductError> {
    let (min, max) = limits::NAME;
    if name_ok(name, min, max) {
        Ok(())
    } else {
        Err(ProductError::Invalid { field: "name" })
    }
}

fn check_description(description: Option<&str>) -> Result<(), ProductError> {
    let (min, max) = limits::DESCRIPTION;
    if description.is_none_or(|d| text_ok(d, min, max)) {
        Ok(())
    } else {
        Err(ProductError::Invalid {
            field: "description",
        })
    }
}

fn check_price(price: i64) -> Result<(), ProductError> {
    if (limits::PRICE.0..=limits::PRICE.1).contains(&price) {
        Ok(())
    } else {
        Err(ProductError::Invalid { field: "price" })
    }
}

impl Product {
    pub fn exists(&self) -> bool {
        self.listed
    }

    /// The price an order fixes at its creation.
    pub fn price(&self) -> i64 {
        self.price
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stock(&self) -> u32 {
        self.stock
    }

    pub fn seller_id(&self) -> &str {
        &self.seller_id
    }

    fn seller(&self, actor: &str) -> Result<(), ProductError> {
        if !self.listed {
            Err(ProductError::NotFound)
        } else if actor != self.seller_id {
            Err(ProductError::NotSeller)
        } else {
            Ok(())
        }
    }

    fn decide(&self, command: ProductCommand) -> Result<Option<ProductEvent>, ProductError> {
        if let ProductCommand::List {
            seller_id,
            name,
            description,
            price,
            stock,
        } = command
        {
            if self.listed {
                return Err(ProductError::AlreadyExists);
            }
            check_name(&name)?;
            check_description(description.as_deref())?;
            check_price(price)?;
            if stock > limits::STOCK.1 {
                return Err(ProductError::Invalid { field: "stock" });
            }
            return Ok(Some(ProductEvent::ProductListed {
                seller_id,
                name,
                description,
                price,
                stock,
            }));
        }
        if !self.listed {
            return Err(ProductError::NotFound);
        }
        let event = match command {
            ProductCommand::List { .. } => return Err(ProductError::AlreadyExists),
            ProductCommand::Edit {
                actor,
                name,
                description,
                price,
            } => {
                self.seller(&actor)?;
                let name = name.unwrap_or_else(|| self.name.clone());
                let description = description.unwrap_or_else(|| self.description.clone());
                let price = price.unwrap_or(self.price);
                check_name(&name)?;
                check_description(description.as_deref())?;
                check_price(price)?;
                if (&name, &description, price) == (&self.name, &self.description, self.price) {
                    return Ok(None);
                }
                ProductEvent::ProductEdited {
                    name,
                    description,
                    price,
                }
            }
            ProductCommand::Restock { actor, quantity } => {
                self.seller(&actor)?;
                if quantity == 0 || quantity > limits::STOCK.1 {
                    return Err(ProductError::Invalid { field: "quantity" });
                }
                let stock = self
                    .stock
                    .checked_add(quantity)
                    .filter(|s| *s <= limits::STOCK.1)
                    .ok_or(ProductError::StockFull)?;
                ProductEvent::ProductRestocked { quantity, stock }
            }
            ProductCommand::Take {
                order_id,
                quantity,
                at,
            } => {
                if !(limits::QUANTITY.0..=limits::QUANTITY.1).contains(&quantity) {
                    return Err(ProductError::Invalid { field: "quantity" });
                }
                if self.taken.contains_key(&order_id) {
                    return Ok(None); // this order's units are taken already
                }
                if quantity > self.stock {
                    return Err(ProductError::OutOfStock {
                        available: self.stock,
                    });
                }
                ProductEvent::StockTaken {
                    order_id,
                    quantity,
                    stock: self.stock - quantity,
                    at,
                }
            }
            ProductCommand::Return { order_id } => {
                let Some(&Taken { quantity, at }) = self.taken.get(&order_id) else {
                    return Ok(None); // nothing taken, or given back already
                };
                ProductEvent::StockReturned {
                    order_id,
                    quantity,
                    stock: self.stock + quantity,
                    taken_at: at,
                }
            }
        };
        Ok(Some(event))
    }

    fn evolve(&mut self, event: ProductEvent) {
        match event {
            ProductEvent::ProductListed {
                seller_id,
                name,
                description,
                price,
                stock,
            } => {
                self.listed = true;
                self.seller_id = seller_id;
                self.name = name;
                self.description = description;
                self.price = price;
                self.stock = stock;
            }
            ProductEvent::ProductEdited {
                name,
                description,
                price,
            } => {
                self.name = name;
                self.description = description;
                self.price = price;
            }
            ProductEvent::ProductRestocked { stock, .. } => self.stock = stock,
            ProductEvent::StockTaken {
                order_id,
                quantity,
                stock,
                at,
            } => {
                self.taken.insert(order_id, Taken { quantity, at });
                self.stock = stock;
            }
            ProductEvent::StockReturned {
                order_id, stock, ..
            } => {
                self.taken.remove(&order_id);
                self.stock = stock;
            }
        }
    }
}

impl_aggregate!(Product: aggregate::PRODUCT, ProductCommand => ProductEvent, ProductError);

#[cfg(test)]
mod tests {

    use super::*;
    use crate::domain::testkit::{self, recorded as expect};

    fn given(events: Vec<ProductEvent>) -> cqrs_es::test::AggregateTestExecutor<Product> {
        testkit::given((), events)
    }

    fn listed(stock: u32) -> ProductEvent {
        ProductEvent::ProductListed {
            seller_id: "sam".into(),
            name: "Lamp".into(),
            description: None,
            price: 1200,
            stock,
        }
    }

    fn noon() -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    fn take(order: &str, quantity: u32) -> ProductCommand {
        ProductCommand::Take {
            order_id: order.into(),
            quantity,
            at: noon(),
        }
    }

    fn taken(order: &str, quantity: u32, stock: u32) -> ProductEvent {
        ProductEvent::StockTaken {
            order_id: order.into(),
            quantity,
            stock,
            at: noon(),
        }
    }

    #[test]
    fn any_user_lists_a_product_within_the_bounds() {
        given(vec![])
            .when(ProductCommand::List {
                seller_id: "sam".into(),
                name: "Lamp".into(),
                description: None,
                price: 1200,
                stock: 3,
            })
            .then_expect_events(expect(vec![listed(3)]));
        let list = |name: &str, price: i64, stock: u32| ProductCommand::List {
            seller_id: "sam".into(),
            name: name.into(),
            description: None,
            price,
            stock,
        };
        for (command, field) in [
            (list("", 1, 1), "name"),
            (list("a\u{0}b", 1, 1), "name"),
            (list(&"x".repeat(101), 1, 1), "name"),
            (list("Lamp", 0, 1), "price"),
            (list("Lamp", 10_000_001, 1), "price"),
            (list("Lamp", 1, 1_000_001), "stock"),
        ] {
            given(vec![])
                .when(command)
                .then_expect_error(ProductError::Invalid { field });
        }
        given(vec![listed(1)])
            .when(list("Lamp", 1, 1))
            .then_expect_error(ProductError::AlreadyExists);
    }

    #[test]
    fn only_the_seller_edits_and_restocks() {
        let edit = |actor: &str| ProductCommand::Edit {
            actor: actor.into(),
            name: None,
            description: Some(Some("warm light".into())),
            price: Some(1500),
        };
        given(vec![listed(3)])
            .when(edit("sam"))
            .then_expect_events(expect(vec![ProductEvent::ProductEdited {
                name: "Lamp".into(),
                description: Some("warm light".into()),
                price: 1500,
            }]));
        given(vec![listed(3)])
            .when(edit("eve"))
            .then_expect_error(ProductError::NotSeller);
        given(vec![listed(3)])
            .when(ProductCommand::Restock {
                actor: "eve".into(),
                quantity: 5,
            })
            .then_expect_error(ProductError::NotSeller);
        given(vec![listed(3)])
            .when(ProductCommand::Restock {
                actor: "sam".into(),
                quantity: 5,
            })
            .then_expect_events(expect(vec![ProductEvent::ProductRestocked {
                quantity: 5,
                stock: 8,
            }]));
        given(vec![listed(999_999)])
            .when(ProductCommand::Restock {
                actor: "sam".into(),
                quantity: 2,
            })
            .then_expect_error(ProductError::StockFull);
        given(vec![])
            .when(edit("sam"))
            .then_expect_error(ProductError::NotFound);
    }

    #[test]
    fn stock_never_goes_below_zero() {
        given(vec![listed(3)])
            .when(take("o1", 2))
            .then_expect_events(expect(vec![taken("o1", 2, 1)]));
        given(vec![listed(3), taken("o1", 2, 1)])
            .when(take("o2", 2))
            .then_expect_error(ProductError::OutOfStock { available: 1 });
        given(vec![listed(0)])
            .when(take("o1", 1))
            .then_expect_error(ProductError::OutOfStock { available: 0 });
        given(vec![listed(300)])
            .when(take("o1", 101))
            .then_expect_error(ProductError::Invalid { field: "quantity" });
    }

    #[test]
    fn a_take_is_once_per_order_and_a_return_gives_back_exactly_once() {
        given(vec![listed(3), taken("o1", 2, 1)])
            .when(take("o1", 2))
            .then_expect_events(vec![]);
        let back = ProductCommand::Return {
            order_id: "o1".into(),
        };
        given(vec![listed(3), taken("o1", 2, 1)])
            .when(back.clone())
            .then_expect_events(expect(vec![ProductEvent::StockReturned {
                order_id: "o1".into(),
                quantity: 2,
                stock: 3,
                taken_at: noon(),
            }]));
        let returned = ProductEvent::StockReturned {
            order_id: "o1".into(),
            quantity: 2,
            stock: 3,
            taken_at: noon(),
        };
        given(vec![listed(3), taken("o1", 2, 1), returned])
            .when(back.clone())
            .then_expect_events(vec![]);
        given(vec![listed(3)]).when(back).then_expect_events(vec![]);
    }
}
