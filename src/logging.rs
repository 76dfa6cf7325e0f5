//! Structured logs: one JSON object per line (or text for humans), with the
//! service name and the request span (request id, user id, method, path).

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Logs to standard output for the servers; the CLI commands pass
/// `to_stderr`, keeping their standard output for what they print (JSON
/// reports, exports).
pub fn init(filter: &str, format: &str, to_stderr: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let writer = if to_stderr {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        BoxMakeWriter::new(std::io::stdout)
    };
    let result = if format == "text" {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_target(true)
                    .with_writer(writer),
            )
            .try_init()
    };
    if let Err(e) = result {
        eprintln!("tessera: logging already initialized: {e}");
    }
}
