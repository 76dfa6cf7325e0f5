//! What a gate remembers of each queue's admission ticks, so that checking
//! an admitted token reads nothing from the store.
//!
//! Ticks are only ever added: the cursor and its tick move in one
//! transaction and neither goes back. So a position once found admitted
//! stays admitted, at the same instant, and the remembered ticks answer
//! for it exactly; only a position past them asks the store, for the
//! ticks after the last one remembered. Before this, every hold and
//! payment read the cursor and its tick (two of the three state-store
//! reads of a hold).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::store::Tick;

/// Queues remembered before the memory starts over (it is only a cache).
const MAX_QUEUES: usize = 4096;

/// Where a position stands against the remembered ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Admitted; when (`None` only for a position no tick covers, 0).
    Admitted(Option<DateTime<Utc>>),
    /// Past the last remembered tick, which admitted up to this position.
    Beyond(u64),
}

#[derive(Debug, Default)]
pub(crate) struct Admissions {
    queues: Mutex<HashMap<String, Vec<Tick>>>,
}

impl Admissions {
    pub(crate) fn standing(&self, concert_id: &str, position: u64) -> Standing {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let ticks = queues.get(concert_id).map_or(&[][..], Vec::as_slice);
        standing_in(ticks, position)
    }

    /// How far the remembered ticks of a queue reach (0: none).
    pub(crate) fn reach(&self, concert_id: &str) -> u64 {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .get(concert_id)
            .and_then(|ticks| ticks.last())
            .map_or(0, |t| t.admitted_up_to)
    }

    /// Adds ticks the store answered (oldest first); ones already known,
    /// from a concurrent caller, are skipped.
    pub(crate) fn learn(&self, concert_id: &str, newer: Vec<Tick>) {
        if newer.is_empty() {
            return;
        }
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if queues.len() >= MAX_QUEUES && !queues.contains_key(concert_id) {
            queues.clear();
        }
        let ticks = queues.entry(concert_id.to_owned()).or_default();
        for tick in newer {
            if ticks
                .last()
                .is_none_or(|t| t.admitted_up_to < tick.admitted_up_to)
            {
                ticks.push(tick);
            }
        }
    }
}

/// The first tick that admitted `position` (as the store would answer
/// it), or how far the ticks reach.
fn standing_in(ticks: &[Tick], position: u64) -> Standing {
    let reach = ticks.last().map_or(0, |t| t.admitted_up_to);
    if position > reach {
        return Standing::Beyond(reach);
    }
    let first = ticks.partition_point(|t| t.admitted_up_to < position);
    Standing::Admitted(ticks.get(first).map(|t| t.at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(admitted_up_to: u64, secs: i64) -> Tick {
        Tick {
            admitted_up_to,
            at: DateTime::from_timestamp(secs, 0).unwrap(),
        }
    }

    #[test]
    fn a_position_is_admitted_at_the_first_tick_that_reached_it() {
        let admissions = Admissions::default();
        admissions.learn("c", vec![tick(100, 10), tick(200, 11)]);
        assert_eq!(
            admissions.standing("c", 1),
            Standing::Admitted(Some(tick(0, 10).at))
        );
        assert_eq!(
            admissions.standing("c", 100),
            Standing::Admitted(Some(tick(0, 10).at))
        );
        assert_eq!(
            admissions.standing("c", 101),
            Standing::Admitted(Some(tick(0, 11).at))
        );
        assert_eq!(admissions.standing("c", 201), Standing::Beyond(200));
        assert_eq!(admissions.standing("other", 1), Standing::Beyond(0));
    }

    #[test]
    fn ticks_learnt_twice_are_kept_once_and_in_order() {
        let admissions = Admissions::default();
        admissions.learn("c", vec![tick(100, 10)]);
        admissions.learn("c", vec![tick(100, 10), tick(150, 12)]);
        admissions.learn("c", vec![tick(120, 11)]);
        let queues = admissions.queues.lock().unwrap();
        assert_eq!(queues["c"], vec![tick(100, 10), tick(150, 12)]);
    }

    #[test]
    fn position_zero_of_an_unadmitted_queue_counts_as_admitted_with_no_tick() {
        assert_eq!(standing_in(&[], 0), Standing::Admitted(None));
        assert_eq!(standing_in(&[], 1), Standing::Beyond(0));
    }
}
