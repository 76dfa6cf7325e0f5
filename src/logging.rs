//! Structured logs: one JSON object per line (or text for humans), with the
//! service name and the request span (request id, user id, method, path).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn init(filter: &str, format: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if format == "text" {
        registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_target(true),
            )
            .try_init()
    };
    if let Err(e) = result {
        eprintln!("tessera: logging already initialized: {e}");
    }
}
