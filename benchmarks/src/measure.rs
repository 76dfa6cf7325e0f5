//! Closed-loop load: a fixed number of workers, each sending its next
//! operation as soon as the last one answered, for a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What one operation did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Done {
    /// Events it appended.
    pub events: u64,
    /// Optimistic conflicts it retried.
    pub retries: u64,
}

/// The outcome of one timed run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub operations: u64,
    pub events: u64,
    pub failed: u64,
    pub retries: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub events_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The first failure, to say why a run went wrong.
    pub first_error: Option<String>,
}

impl Run {
    fn new(mut latencies: Vec<Duration>, done: &[Done], errors: Vec<String>, seconds: f64) -> Self {
        latencies.sort_unstable();
        let pct = |p: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            // nearest rank
            let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1].as_secs_f64() * 1000.0
        };
        let operations = done.len() as u64;
        let events: u64 = done.iter().map(|d| d.events).sum();
        Self {
            operations,
            events,
            failed: errors.len() as u64,
            retries: done.iter().map(|d| d.retries).sum(),
            seconds,
            per_second: operations as f64 / seconds,
            events_per_second: events as f64 / seconds,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            first_error: errors.into_iter().next(),
        }
    }
}

/// Runs `op(worker, n)` on `workers` concurrent workers for `duration`;
/// `n` counts each worker's operations from 0.
pub async fn closed_loop<F, Fut>(workers: usize, duration: Duration, op: F) -> Run
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Done, String>> + Send + 'static,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let op = Arc::clone(&op);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut done = Vec::new();
                let mut errors = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match op(worker, n).await {
                        Ok(d) => {
                            latencies.push(t.elapsed());
                            done.push(d);
                        }
                        Err(e) => errors.push(e),
                    }
                    n += 1;
                }
                (latencies, done, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        let (l, d, e) = task.await.expect("a benchmark worker panicked");
        latencies.extend(l);
        done.extend(d);
        errors.extend(e);
    }
    // the last operations end after the deadline: count the time they took
    Run::new(latencies, &done, errors, started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_operations_events_and_failures() {
        let run = closed_loop(3, Duration::from_millis(50), |worker, n| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if worker == 0 && n == 0 {
                Err("first".to_owned())
            } else {
                Ok(Done {
                    events: 2,
                    retries: 1,
                })
            }
        })
        .await;
        assert_eq!(run.failed, 1);
        assert_eq!(run.first_error.as_deref(), Some("first"));
        assert!(run.operations >= 3, "{run:?}");
        assert_eq!(run.events, run.operations * 2);
        assert_eq!(run.retries, run.operations);
        assert!(run.p50_ms >= 1.0 && run.p99_ms >= run.p50_ms, "{run:?}");
        assert!(run.seconds >= 0.05);
    }
}
