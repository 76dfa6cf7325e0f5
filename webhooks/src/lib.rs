//! Outbound webhooks (API.md "Webhooks", DESIGN.md §10): operators register
//! a URL for some event types; every matching event committed afterwards is
//! POSTed there as its envelope, signed with HMAC-SHA256, at least once and
//! in order per aggregate, retried with backoff and jitter, and
//! dead-lettered when it keeps failing.
//!
//! - [`signature`]: the signature (pure);
//! - [`target`]: the guard against server-side request forgery;
//! - [`store`]: the port keeping webhooks, checkpoints and dead letters,
//!   with its PostgreSQL and SQLite adapters;
//! - [`send`]: one signed delivery;
//! - [`deliver`]: the deliverer, a consumer of the committed log run by the
//!   relay role and `serve`;
//! - [`http`]: the admin routes.

pub mod deliver;
pub mod http;
pub mod send;
pub mod signature;
pub mod store;
pub mod target;

pub use deliver::{retry_letter, DeliverError, Deliverer, DeliveryConfig};
pub use send::{Refused, Sender};
pub use store::{DeadLetter, Webhook, WebhookStore};
pub use target::UrlPolicy;
