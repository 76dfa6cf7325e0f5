//! Progress of long admin commands: a bar on a terminal, a plain line every
//! few seconds otherwise, nothing with `--json` (the result goes to stdout).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tessera_projector::rebuild::Progress;

pub enum Reporter {
    Bar(ProgressBar),
    Lines {
        label: String,
        started: Instant,
        last: Mutex<Option<Instant>>,
    },
    Silent,
}

impl Reporter {
    pub fn new(label: &str, json: bool) -> Self {
        if json {
            return Self::Silent;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg:>12} [{bar:40}] {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_owned());
            Self::Bar(bar)
        } else {
            Self::Lines {
                label: label.to_owned(),
                started: Instant::now(),
                last: Mutex::new(None),
            }
        }
    }

    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// "ETA 12s" from what was done so far.
fn eta(done: u64, total: u64, elapsed: Duration) -> String {
    if done == 0 || total <= done {
        return "0s".into();
    }
    let rate = done as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    format!("{:.0}s", (total - done) as f64 / rate)
}

impl Progress for Reporter {
    fn update(&self, done: u64, total: u64) {
        match self {
            Self::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Self::Lines {
                label,
                started,
                last,
            } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) && done < total {
                    return;
                }
                *last = Some(Instant::now());
                let elapsed = started.elapsed();
                let rate = done as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
                eprintln!(
                    "{label}: {done}/{total} events, {rate:.0} events/s, ETA {}",
                    eta(done, total, elapsed)
                );
            }
            Self::Silent => {}
        }
    }

    fn message(&self, text: &str) {
        match self {
            Self::Bar(bar) => bar.println(text),
            Self::Lines { label, .. } => eprintln!("{label}: {text}"),
            Self::Silent => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::eta;
    use std::time::Duration;

    #[test]
    fn eta_follows_the_rate_so_far() {
        assert_eq!(eta(100, 300, Duration::from_secs(10)), "20s");
        assert_eq!(eta(0, 300, Duration::from_secs(10)), "0s");
        assert_eq!(eta(300, 300, Duration::from_secs(10)), "0s");
    }
}
