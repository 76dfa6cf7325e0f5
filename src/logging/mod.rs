//! Logs and traces. Servers log one JSON object per line with ECS field
//! names (`@timestamp`, `log.level`, `service.name`, `trace.id`, ...), or
//! text for humans; every span has a W3C trace context, and finished spans
//! go to an OpenTelemetry collector over OTLP when one is configured.

mod ecs;
mod otlp;

use tessera_runtime::trace::TraceLayer;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, Targets};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::Settings;

pub use otlp::Exporter;

/// How a process logs.
#[derive(Debug)]
pub struct Logging<'a> {
    pub filter: &'a str,
    pub format: &'a str,
    /// The CLI commands log to standard error, keeping standard output for
    /// what they print (JSON reports, exports).
    pub to_stderr: bool,
    /// `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
    pub role: &'a str,
}

/// Installs the logs and the trace layer; the exporter (if any) sends what
/// is left when the returned guard is dropped.
pub fn init(logging: &Logging<'_>, s: &Settings) -> Option<Exporter> {
    let service = s
        .otel_service_name
        .clone()
        .unwrap_or_else(|| format!("tessera-{}", logging.role));
    let targets: Targets = logging.filter.parse().unwrap_or_else(|_| {
        eprintln!(
            "tessera: the log filter {:?} does not parse; logging at info",
            logging.filter
        );
        Targets::new().with_default(Level::INFO)
    });
    let writer = || {
        if logging.to_stderr {
            BoxMakeWriter::new(std::io::stderr)
        } else {
            BoxMakeWriter::new(std::io::stdout)
        }
    };
    let (sink, exporter) = match &s.otel_exporter_otlp_endpoint {
        Some(endpoint) => {
            let (sink, exporter) = otlp::start(otlp::Config::new(endpoint, s, &service));
            (Some(sink), Some(exporter))
        }
        None => (None, None),
    };
    // Spans are traced whatever the log filter says (a quiet log must not
    // break a trace), but only Tessera's own: a library's inner spans would
    // cost every request and tell an operator nothing. One global filter:
    // (per-layer filters, tried first, lost the request span of write-api
    // at `info` while serve kept it)
    let filter = filter_fn(move |m| tessera_span(m) || targets.would_enable(m.target(), m.level()));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(TraceLayer::new(sink));
    let result = if logging.format == "text" {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(writer()),
            )
            .try_init()
    } else {
        registry
            .with(ecs::EcsLayer::new(service, writer()))
            .try_init()
    };
    if let Err(e) = result {
        eprintln!("tessera: logging already initialized: {e}");
    }
    exporter
}

fn tessera_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span()
        && *metadata.level() <= Level::INFO
        && metadata.target().starts_with("tessera")
}
