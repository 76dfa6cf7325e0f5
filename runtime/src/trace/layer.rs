//! The layer that gives every span its place in a trace: a remote parent
//! read from a `traceparent` field, else its parent span's trace, else a new
//! one. Finished spans go to an exporter when one listens.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::context::{SpanId, TraceParent};
use super::fields::JsonFields;

/// The span field that names a remote parent (an HTTP `traceparent`
/// header, an event's metadata).
pub const REMOTE_PARENT: &str = "traceparent";

/// What a span knows of its trace, kept in its extensions.
#[derive(Debug, Clone)]
pub struct SpanTrace {
    /// This span: its trace and its own id.
    pub context: TraceParent,
    pub parent: Option<SpanId>,
    started: SystemTime,
}

/// A span's fields, kept in its extensions for the logs of events inside
/// it and for the exporter.
#[derive(Debug, Default)]
pub struct SpanFields(pub Map<String, Value>);

/// A span that ended, as an exporter sends it.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    pub name: &'static str,
    pub context: TraceParent,
    pub parent: Option<SpanId>,
    pub started: SystemTime,
    pub ended: SystemTime,
    pub fields: Map<String, Value>,
}

/// Assigns trace contexts; sends finished spans to `sink` if there is one.
#[derive(Debug, Default)]
pub struct TraceLayer {
    sink: Option<mpsc::Sender<FinishedSpan>>,
}

impl TraceLayer {
    pub fn new(sink: Option<mpsc::Sender<FinishedSpan>>) -> Self {
        if sink.is_some() {
            EXPORTING.store(true, Ordering::Relaxed);
        }
        Self { sink }
    }
}

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = JsonFields::default();
        attrs.record(&mut fields);
        let remote = fields
            .0
            .remove(REMOTE_PARENT)
            .and_then(|v| v.as_str().and_then(TraceParent::parse));
        let parent = remote.or_else(|| {
            span.parent()
                .and_then(|p| p.extensions().get::<SpanTrace>().map(|t| t.context))
        });
        let trace = SpanTrace {
            context: parent.map_or_else(TraceParent::new_root, |p| p.child()),
            parent: parent.map(|p| p.span_id),
            started: SystemTime::now(),
        };
        let mut extensions = span.extensions_mut();
        extensions.insert(trace);
        extensions.insert(SpanFields(fields.0));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(map)) = extensions.get_mut::<SpanFields>() {
            let mut fields = JsonFields(std::mem::take(map));
            values.record(&mut fields);
            *map = fields.0;
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(sink) = &self.sink else { return };
        let Some(span) = ctx.span(&id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(trace) = extensions.get_mut::<SpanTrace>().cloned() else {
            return;
        };
        let fields = extensions
            .get_mut::<SpanFields>()
            .map(|f| std::mem::take(&mut f.0))
            .unwrap_or_default();
        let finished = FinishedSpan {
            name: span.name(),
            context: trace.context,
            parent: trace.parent,
            started: trace.started,
            ended: SystemTime::now(),
            fields,
        };
        // a full queue (the collector is away) drops spans, never blocks work
        if sink.try_send(finished).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether finished spans go anywhere.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether a span exporter listens: spans made only for it (one per event in
/// the relay and the projectors) are skipped when none does, since they
/// cost each event a span for nobody.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Spans dropped because the exporter's queue was full (counted here: a
/// layer must not log from inside the subscriber).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many spans were dropped since the last call.
pub fn take_dropped() -> u64 {
    DROPPED.swap(0, Ordering::Relaxed)
}
