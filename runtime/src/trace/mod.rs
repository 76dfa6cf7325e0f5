//! Traces: every span gets a W3C trace context ([`TraceLayer`]), work that
//! crosses a process carries it as a `traceparent` (HTTP header, event
//! metadata, Kafka header) and continues it there, and the logs print it.

mod context;
mod fields;
mod layer;

pub use context::{SpanId, TraceId, TraceParent};
pub use fields::JsonFields;
pub use layer::{
    exporting, take_dropped, FinishedSpan, SpanFields, SpanTrace, TraceLayer, REMOTE_PARENT,
};

use tracing_subscriber::registry::{LookupSpan, Registry};

/// The trace context of the current span, if the trace layer gave it one.
pub fn current() -> Option<TraceParent> {
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            let span = registry.span(id)?;
            let context = span.extensions().get::<SpanTrace>().map(|t| t.context);
            context
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn spans_inherit_their_parents_trace_and_a_remote_parent_starts_from_the_header() {
        let (sink, mut finished) = tokio::sync::mpsc::channel(16);
        let subscriber = tracing_subscriber::registry().with(TraceLayer::new(Some(sink)));
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(current(), None, "no span, no trace");
            let outer = tracing::info_span!("outer");
            let outer_trace = outer.in_scope(current).unwrap();
            let inner_trace = outer.in_scope(|| tracing::info_span!("inner").in_scope(current));
            let inner_trace = inner_trace.unwrap();
            assert_eq!(inner_trace.trace_id, outer_trace.trace_id);
            assert_ne!(inner_trace.span_id, outer_trace.span_id);

            let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let remote = tracing::info_span!("remote", traceparent = header, user = "u1");
            let remote_trace = remote.in_scope(current).unwrap();
            assert_eq!(
                remote_trace.trace_id.to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            drop(remote);
            let bad = tracing::info_span!("bad", traceparent = "nonsense");
            let bad_trace = bad.in_scope(current).unwrap();
            assert_ne!(bad_trace.trace_id, remote_trace.trace_id);
        });
        let mut names = Vec::new();
        while let Ok(span) = finished.try_recv() {
            if span.name == "remote" {
                assert_eq!(span.parent.unwrap().to_string(), "00f067aa0ba902b7");
                assert_eq!(span.fields["user"], "u1");
                assert!(!span.fields.contains_key(REMOTE_PARENT));
                assert!(span.ended >= span.started);
            }
            names.push(span.name);
        }
        names.sort_unstable();
        assert_eq!(names, ["bad", "inner", "outer", "remote"]);
    }
}
