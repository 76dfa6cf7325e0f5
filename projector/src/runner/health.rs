//! Whether each projection keeps up: its lag as its feed measures it, and
//! since when it has had events waiting without handling any. Shared by the
//! runners of one process and its `/readyz`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct ProjectionHealth {
    lag: Option<u64>,
    /// Since when events have waited and none were handled.
    behind_since: Option<Instant>,
    last_error: Option<String>,
}

/// The health of a process's projections.
#[derive(Debug)]
pub struct Health {
    stall_after: Duration,
    projections: Mutex<BTreeMap<&'static str, ProjectionHealth>>,
}

impl Health {
    /// A projection with events waiting and none handled for `stall_after`
    /// is stalled.
    pub fn new(stall_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            stall_after,
            projections: Mutex::default(),
        })
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut ProjectionHealth)) {
        let mut all = self.projections.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(name).or_default());
    }

    /// After a step: `handled` events went into the documents; the feed
    /// says `lag` more are waiting.
    pub fn stepped(&self, name: &'static str, handled: usize, lag: Option<u64>) {
        self.update(name, |h| {
            h.lag = lag;
            if handled > 0 || lag == Some(0) {
                h.behind_since = None;
                h.last_error = None;
            } else if lag.is_some_and(|l| l > 0) && h.behind_since.is_none() {
                h.behind_since = Some(Instant::now());
            }
        });
        if let Some(lag) = lag {
            metrics::gauge!("tessera_projector_lag_events", "projection" => name).set(lag as f64);
        }
    }

    /// A step failed.
    pub fn failed(&self, name: &'static str, error: &str) {
        self.update(name, |h| {
            h.last_error = Some(error.to_owned());
            h.behind_since.get_or_insert_with(Instant::now);
        });
    }

    /// The stalled projections and why.
    pub fn stalled(&self) -> Vec<(&'static str, String)> {
        let all = self.projections.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter_map(|(name, h)| {
                let since = h.behind_since?;
                (since.elapsed() >= self.stall_after).then(|| {
                    let lag = h
                        .lag
                        .map_or_else(|| "events".to_owned(), |l| format!("{l} events"));
                    let error = h
                        .last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    (
                        *name,
                        format!(
                            "{lag} waiting, none handled for {} s{error}",
                            since.elapsed().as_secs()
                        ),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projection_with_waiting_events_and_no_progress_is_stalled() {
        let h = Health::new(Duration::ZERO);
        h.stepped("accounts", 0, Some(0));
        h.stepped("guilds", 0, Some(12));
        h.stepped("posts", 3, Some(40));
        let stalled = h.stalled();
        assert_eq!(stalled.len(), 1, "{stalled:?}");
        assert_eq!(stalled[0].0, "guilds");
        assert!(stalled[0].1.contains("12 events"), "{}", stalled[0].1);
        h.stepped("guilds", 5, Some(7));
        assert!(h.stalled().is_empty(), "progress clears it");
    }

    #[test]
    fn a_fresh_stall_is_not_reported_before_its_bound() {
        let h = Health::new(Duration::from_secs(60));
        h.failed("accounts", "store down");
        assert!(h.stalled().is_empty());
    }
}
