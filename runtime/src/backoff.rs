use std::time::Duration;

use rand::Rng;

/// How much of the exponential ceiling a delay is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Anywhere in `[0, ceiling]`: spreads out contenders that collided
    /// (optimistic conflicts), at the price of sometimes retrying at once.
    Full,
    /// In `[ceiling / 2, ceiling]`: never retries at once, still spreads out.
    Equal,
    /// Exactly the ceiling (tests, and loops with a single contender).
    None,
}

/// Exponential backoff with jitter: attempt `n` (from 1) waits up to
/// `base * 2^(n-1)`, capped at `max`, drawn as [`Jitter`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration, jitter: Jitter) -> Self {
        Self { base, max, jitter }
    }

    /// The delay before retry number `attempt` (1 is the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let drawn = match self.jitter {
            Jitter::None => ms,
            Jitter::Full => rand::rng().random_range(0..=ms),
            Jitter::Equal => rand::rng().random_range(ms / 2..=ms),
        };
        Duration::from_millis(drawn)
    }

    /// The upper bound of [`delay`](Self::delay) for `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceilings_double_from_the_base_and_stop_at_the_cap() {
        let b = Backoff::new(25 * MS, 1000 * MS, Jitter::None);
        let ceilings: Vec<_> = (1..=7).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [25, 50, 100, 200, 400, 800, 1000]);
        assert_eq!(b.ceiling(u32::MAX), 1000 * MS);
        assert_eq!(b.delay(3), 100 * MS);
    }

    #[test]
    fn jittered_delays_stay_in_their_band() {
        let full = Backoff::new(10 * MS, 200 * MS, Jitter::Full);
        let equal = Backoff::new(10 * MS, 200 * MS, Jitter::Equal);
        for attempt in 1..40 {
            for _ in 0..20 {
                assert!(full.delay(attempt) <= full.ceiling(attempt));
                let d = equal.delay(attempt);
                assert!(d <= equal.ceiling(attempt) && d >= equal.ceiling(attempt) / 2);
            }
        }
    }
}
