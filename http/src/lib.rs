//! What every Tessera HTTP process shares, so that each links only this and
//! its own stores: the one error shape ([`error::ApiError`]), extractors
//! that answer bad input in it, bearer-token authentication, the common
//! layers (request ids, limits, tracing, metrics, panics), the ops routes
//! (`/healthz`, `/readyz`, `/metrics`), the readiness port behind them and
//! the abuse limits of the command routes.

pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod layers;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod path;

pub use path::ApiPath;
