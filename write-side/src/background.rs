//! Work one write-side process does for all of them, under leadership:
//! queue admission ticks and the sweeper of holds and orders. Each has a
//! step function (`QueueStore::advance`, [`reservations::sweep`],
//! [`orders::sweep`]) that tests call directly; this loop only paces them.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::app::WriteSide;
use crate::leader::Leadership;
use crate::{orders, reservations};

/// Holds (and orders) expired per sweep at most.
pub const SWEEP_LIMIT: usize = 500;

/// How often the loop runs its steps.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How often expired holds are looked for.
    pub sweep_interval: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(1),
        }
    }
}

pub async fn run(
    ws: Arc<WriteSide>,
    leadership: Leadership,
    pace: Pace,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let guard = match leadership.acquire("background", &shutdown).await {
            Ok(Some(guard)) => guard,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot take background leadership, retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        lead(&ws, guard, pace, &shutdown).await;
    }
}

async fn lead(
    ws: &WriteSide,
    mut guard: crate::leader::LeaderGuard,
    pace: Pace,
    shutdown: &CancellationToken,
) {
    let config = ws.queue.config();
    let mut admit = tokio::time::interval(config.admit_interval);
    let mut sweep = tokio::time::interval(pace.sweep_interval);
    admit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = admit.tick() => {
                if let Err(error) = ws.queue.store().advance(config.admit_batch, Utc::now()).await {
                    tracing::warn!(%error, "queue admission tick failed");
                }
            }
            _ = sweep.tick() => {
                if !guard.alive().await {
                    tracing::warn!("background leadership lost");
                    return;
                }
                match reservations::sweep(ws, Utc::now(), SWEEP_LIMIT).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expired holds"),
                    Err(error) => tracing::warn!(%error, "sweeping holds failed"),
                }
                match orders::sweep(ws, Utc::now(), SWEEP_LIMIT).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(settled = n, "settled due orders"),
                    Err(error) => tracing::warn!(%error, "sweeping orders failed"),
                }
            }
        }
    }
}

/// Settles each due item in turn (a hold, an order): a failure is logged
/// and left for the next sweep. Returns how many were settled.
pub(crate) async fn settle_each<'a, T, F>(
    due: &'a [T],
    what: &str,
    id: impl Fn(&T) -> &str,
    settle: impl Fn(&'a T) -> F,
) -> usize
where
    F: std::future::Future<Output = Result<bool, crate::bus::AppError>>,
{
    let mut settled = 0;
    for item in due {
        match settle(item).await {
            Ok(true) => settled += 1,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, id = id(item), what, "settling failed; will retry")
            }
        }
    }
    settled
}

/// Starts the loop on its own task.
pub fn spawn(
    ws: Arc<WriteSide>,
    leadership: Leadership,
    pace: Pace,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(ws, leadership, pace, shutdown))
}
