use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Backoff;

/// What one step of a loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stepped {
    /// It did something; step again at once.
    Worked,
    /// Nothing to do; the step already waited for work (or a short while).
    Idle,
}

/// A loop's body: one step at a time. Implemented by the relay, the
/// projector and the background loops; tests call `step` directly.
pub trait Step: Send {
    type Error: Display + Send;

    fn step(&mut self) -> impl Future<Output = Result<Stepped, Self::Error>> + Send;
}

/// Sleeps for `pause`; returns early (with `false`) on shutdown.
pub async fn sleep_or_shutdown(pause: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(pause) => true,
    }
}

/// Runs `step` until `shutdown`. A failed step is logged (as `name`) and
/// retried after `backoff.delay(failures)`; a step in hand is always
/// finished, shutdown is only looked at between steps and during pauses.
/// Returns how many steps had failed in a row when it stopped.
pub async fn drive<S: Step>(
    name: &str,
    step: &mut S,
    backoff: Backoff,
    shutdown: &CancellationToken,
) -> u32 {
    let mut failures: u32 = 0;
    while !shutdown.is_cancelled() {
        match step.step().await {
            Ok(_) => failures = 0,
            Err(error) => {
                failures = failures.saturating_add(1);
                let pause = backoff.delay(failures);
                tracing::warn!(task = name, %error, failures, pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "step failed, retrying");
                sleep_or_shutdown(pause, shutdown).await;
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Jitter;

    struct Script {
        calls: u32,
        stop: CancellationToken,
    }

    impl Step for Script {
        type Error = &'static str;

        async fn step(&mut self) -> Result<Stepped, &'static str> {
            self.calls += 1;
            match self.calls {
                1 | 2 => Err("boom"),
                3 => Ok(Stepped::Worked),
                _ => {
                    self.stop.cancel();
                    Err("last")
                }
            }
        }
    }

    #[tokio::test]
    async fn failures_are_retried_and_the_loop_ends_on_shutdown() {
        let shutdown = CancellationToken::new();
        let mut script = Script {
            calls: 0,
            stop: shutdown.clone(),
        };
        let backoff = Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(2),
            Jitter::None,
        );
        let failures = drive("test", &mut script, backoff, &shutdown).await;
        assert_eq!(
            script.calls, 4,
            "two failures retried, one success, then the last step"
        );
        assert_eq!(failures, 1, "the step that failed as shutdown came");
    }
}
