//! What Tessera's Kafka clients (the relay's producer, the projector's
//! consumers) share.
//!
//! - [`EPOCH_HEADER`]: the header naming the topic epoch a message was
//!   published in (see the relay);
//! - [`Context`]: the librdkafka client context. It logs librdkafka's lines
//!   through `tracing` with connection trouble at `warn`, not `error` (a
//!   broker that restarts is weather, not a failure of Tessera);
//! - [`watch_brokers`]: tells at once when a broker's process goes away, so a
//!   consumer can stop fetching before the broker is back (see the
//!   projector's Kafka feed for why that matters on tansu).

mod watch;

pub use watch::watch_brokers;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The header the relay puts the topic epoch in.
pub const EPOCH_HEADER: &str = "tessera-epoch";

/// At most this many messages go into one producer batch (the relay's
/// `batch.num.messages`).
///
/// tansu (the Kafka-protocol broker these machines test with) answers a
/// fetch from an offset inside a batch with the batches that *start* after
/// it, silently skipping the rest of the batch, and reports a partition's
/// end as its last batch's first offset plus one. So a consumer that starts
/// a partition at a stored offset reads from up to this many messages
/// before it (and skips what it already had), and every comparison with a
/// partition's end allows this much. One message per batch would need no
/// margin but publishes about 20 messages a second on tansu.
pub const MESSAGES_PER_BATCH: usize = 100;

/// The client context of every Tessera Kafka client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context;

fn is_connection_trouble(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve
    )
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            // FAIL, ERROR: connection trouble, reported (and healed) above
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{log_message}");
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{log_message}");
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{log_message}");
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error
            .rdkafka_error_code()
            .is_some_and(is_connection_trouble)
        {
            tracing::warn!(target: "librdkafka", %error, reason, "broker connection trouble");
        } else {
            tracing::error!(target: "librdkafka", %error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for Context {}
