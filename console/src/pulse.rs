//! The projections over the last minutes: a sample of every projection's
//! position and lag (and the head of the log) every few seconds, kept in
//! memory by the process that serves the console, so a person who opens it
//! sees the last minutes at once. Throughput is the change of position
//! between two samples.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_documents::documents::collections::PROJECTED;
use tessera_documents::status;
use tessera_documents::store::{DocumentStore, StoreError};
use tessera_events::{EventLog, LogError};
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::AdminUser;
use tessera_runtime::{drive, sleep_or_shutdown, Backoff, Jitter, Step, Stepped};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Console;

pub(crate) fn routes() -> OpenApiRouter<Console> {
    OpenApiRouter::new().routes(routes!(history))
}

/// Time between two samples.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Samples kept: ten minutes.
pub const KEPT: usize = 300;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectionSample {
    pub name: String,
    /// Global position of the last event it applied.
    pub last_position: i64,
    /// Events in the log it has not applied yet.
    pub lag: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// Global position of the last event in the log.
    pub head_position: i64,
    pub projections: Vec<ProjectionSample>,
}

/// The samples of the last minutes, oldest first.
#[derive(Debug, Default)]
pub struct Pulse {
    samples: Mutex<VecDeque<Sample>>,
}

impl Pulse {
    fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    pub fn samples(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.iter().cloned().collect()
    }
}

/// Why a sample could not be taken.
#[derive(Debug, thiserror::Error)]
enum SampleError {
    #[error("reading the head of the log: {0}")]
    Log(#[from] LogError),
    #[error("reading the projections' status: {0}")]
    Store(#[from] StoreError),
}

/// Takes one sample now.
async fn take(docs: &dyn DocumentStore, log: &dyn EventLog) -> Result<Sample, SampleError> {
    let head = log.head().await?;
    let reports = status::report(docs, PROJECTED, head).await?;
    Ok(Sample {
        at: Utc::now(),
        head_position: head.position,
        projections: reports
            .into_iter()
            .map(|r| ProjectionSample {
                name: r.name,
                last_position: r.last_position,
                lag: r.lag,
            })
            .collect(),
    })
}

struct Sampler {
    docs: Arc<dyn DocumentStore>,
    log: Arc<dyn EventLog>,
    pulse: Arc<Pulse>,
    shutdown: CancellationToken,
}

impl Step for Sampler {
    type Error = SampleError;

    async fn step(&mut self) -> Result<Stepped, SampleError> {
        let sample = take(&*self.docs, &*self.log).await?;
        self.pulse.push(sample);
        sleep_or_shutdown(INTERVAL, &self.shutdown).await;
        Ok(Stepped::Idle)
    }
}

/// Samples into `pulse` every [`INTERVAL`] until `shutdown`.
pub fn sample(
    docs: Arc<dyn DocumentStore>,
    log: Arc<dyn EventLog>,
    pulse: Arc<Pulse>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sampler = Sampler {
            docs,
            log,
            pulse,
            shutdown: shutdown.clone(),
        };
        let backoff = Backoff::new(INTERVAL, Duration::from_secs(30), Jitter::Equal);
        drive("console_pulse", &mut sampler, backoff, &shutdown).await;
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"interval_seconds": 2, "head_position": 120, "samples": [{"at": "2026-01-01T12:00:00Z", "head_position": 118, "projections": [{"name": "accounts", "last_position": 118, "lag": 0}]}]}))]
pub struct PulseView {
    /// Time between two samples.
    pub interval_seconds: u64,
    /// The head of the log now (where a live tail starts).
    pub head_position: i64,
    /// Oldest first, the last ten minutes at most.
    pub samples: Vec<Sample>,
}

/// Every projection's position and lag over the last ten minutes, sampled
/// every 2 s by this process, and the head of the log now.
#[utoipa::path(get, path = "/v1/admin/projections/history", tag = "console", security(("bearer" = [])),
    responses((status = 200, body = PulseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn history(
    State(c): State<Console>,
    AdminUser(_): AdminUser,
) -> Result<Json<PulseView>, ApiError> {
    let head = c.log.head().await.map_err(ApiError::unavailable)?;
    Ok(Json(PulseView {
        interval_seconds: INTERVAL.as_secs(),
        head_position: head.position,
        samples: c.pulse.samples(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: i64) -> Sample {
        Sample {
            at: Utc::now(),
            head_position: n,
            projections: Vec::new(),
        }
    }

    #[test]
    fn the_pulse_keeps_the_last_samples_oldest_first() {
        let pulse = Pulse::default();
        for n in 0..(KEPT as i64 + 5) {
            pulse.push(sample(n));
        }
        let kept = pulse.samples();
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept.first().map(|s| s.head_position), Some(5));
        assert_eq!(kept.last().map(|s| s.head_position), Some(KEPT as i64 + 4));
    }
}
