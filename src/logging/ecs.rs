//! One JSON object per log line in Elastic Common Schema names, as a
//! Kibana-style pipeline reads them without a mapping of its own.

use std::io::Write;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use tessera_runtime::trace::{JsonFields, SpanFields, SpanTrace};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The ECS version the field names follow.
const ECS_VERSION: &str = "8.11.0";

pub struct EcsLayer {
    service: String,
    writer: BoxMakeWriter,
}

impl EcsLayer {
    pub fn new(service: String, writer: BoxMakeWriter) -> Self {
        Self { service, writer }
    }
}

impl<S> Layer<S> for EcsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "@timestamp".into(),
            Utc::now()
                .to_rfc3339_opts(SecondsFormat::Micros, true)
                .into(),
        );
        line.insert(
            "log.level".into(),
            meta.level().as_str().to_ascii_lowercase().into(),
        );
        line.insert("log.logger".into(), meta.target().into());
        line.insert("service.name".into(), self.service.as_str().into());
        line.insert("ecs.version".into(), ECS_VERSION.into());
        if let Some(scope) = ctx.event_scope(event) {
            let mut leaf = None;
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (key, value) in fields {
                        put(&mut line, key, value.clone());
                    }
                }
                leaf = span.extensions().get::<SpanTrace>().map(|t| t.context);
            }
            if let Some(context) = leaf {
                line.insert("trace.id".into(), context.trace_id.to_string().into());
                line.insert("span.id".into(), context.span_id.to_string().into());
            }
        }
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        for (key, value) in fields.0 {
            put(&mut line, &key, value);
        }
        let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        bytes.push(b'\n');
        // one write per line, so lines of concurrent threads never interleave
        let _ = self.writer.make_writer().write_all(&bytes);
    }
}

/// A field under its ECS name: Tessera's spans and events use ECS names
/// already; what is left are the names libraries and older call sites use.
fn put(line: &mut Map<String, Value>, key: &str, value: Value) {
    let key = match key {
        k if k.starts_with("otel.") => return, // instructions to the exporter
        // a `log` crate record bridged into tracing: its target is the logger
        "log.target" => "log.logger",
        k if k.starts_with("log.") => return,
        "error" => "error.message",
        k => k,
    };
    line.insert(key.to_owned(), value);
}
