//! Abuse limits at the door: requests per caller and class of route, a
//! refusal answered `429 rate_limited` with `Retry-After`; and a bound on
//! how long any request may take.
//!
//! - `auth`: registrations and token issuance, per client IP (each costs an
//!   argon2 hash);
//! - `queue`: queue tokens, per bearer token;
//! - `commands`: every other command (POST, PUT, PATCH, DELETE), per bearer
//!   token.
//!
//! Reads are not limited here. The defaults are generous (a person never
//! meets them; a script that floods does); `0` turns a class off. The
//! client IP is the peer address: behind a proxy, limit there.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;

/// Requests per second and burst of one class (`per_second: 0`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// The limits, as the settings give them.
#[derive(Debug, Clone, Copy)]
pub struct AbuseLimits {
    pub auth: Rate,
    pub queue: Rate,
    pub commands: Rate,
    /// How long a request may take before it is answered 503.
    pub request_timeout: Duration,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self {
            auth: Rate {
                per_second: 50,
                burst: 1000,
            },
            queue: Rate {
                per_second: 20,
                burst: 40,
            },
            commands: Rate {
                per_second: 200,
                burst: 1000,
            },
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Auth,
    Queue,
    Commands,
}

fn class(method: &Method, path: &str) -> Option<Class> {
    match (method, path) {
        (&Method::GET | &Method::HEAD | &Method::OPTIONS, _) => None,
        (&Method::POST, "/v1/auth/token" | "/v1/accounts") => Some(Class::Auth),
        (&Method::POST, "/v1/queue/tokens") => Some(Class::Queue),
        (_, p) if p.starts_with("/v1/") => Some(Class::Commands),
        _ => None,
    }
}

fn limiter(rate: Rate) -> Option<DefaultKeyedRateLimiter<String>> {
    let per_second = NonZeroU32::new(rate.per_second)?;
    let burst = NonZeroU32::new(rate.burst.max(rate.per_second)).unwrap_or(per_second);
    Some(DefaultKeyedRateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

struct Limiters {
    auth: Option<DefaultKeyedRateLimiter<String>>,
    queue: Option<DefaultKeyedRateLimiter<String>>,
    commands: Option<DefaultKeyedRateLimiter<String>>,
    timeout: Duration,
}

impl Limiters {
    fn of(&self, class: Class) -> Option<&DefaultKeyedRateLimiter<String>> {
        match class {
            Class::Auth => self.auth.as_ref(),
            Class::Queue => self.queue.as_ref(),
            Class::Commands => self.commands.as_ref(),
        }
    }

    fn forget_idle(&self) {
        for l in [&self.auth, &self.queue, &self.commands]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn rate_limited(retry_after: Duration) -> Response {
    let secs = retry_after.as_secs_f64().ceil().max(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // whole, positive, small
    let secs = secs as u64;
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests; try again after the time in Retry-After",
    )
    .retry_after(secs)
    .into_response()
}

async fn guard(limits: Arc<Limiters>, req: Request, next: Next) -> Response {
    if let Some(class) = class(req.method(), req.uri().path()) {
        if let Some(limiter) = limits.of(class) {
            let key = match class {
                Class::Auth => req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map_or_else(String::new, |c| c.0.ip().to_string()),
                Class::Queue | Class::Commands => req
                    .headers()
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            };
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                tracing::info!(?class, "rate limited");
                return rate_limited(wait);
            }
        }
    }
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long; try again shortly",
        )
        .retry_after(1)
        .into_response(),
    }
}

/// Wraps a command API with the abuse limits (apply before the common
/// layers, so refusals are logged and counted like every answer).
pub fn with_abuse_limits(router: Router, limits: &AbuseLimits) -> Router {
    let limiters = Arc::new(Limiters {
        auth: limiter(limits.auth),
        queue: limiter(limits.queue),
        commands: limiter(limits.commands),
        timeout: limits.request_timeout,
    });
    // idle callers' buckets are dropped, so memory follows the active ones
    let sweeper = Arc::downgrade(&limiters);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limiters) = sweeper.upgrade() else {
                    return;
                };
                limiters.forget_idle();
            }
        });
    }
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        guard(Arc::clone(&limiters), req, next)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_in_their_class() {
        assert_eq!(class(&Method::POST, "/v1/auth/token"), Some(Class::Auth));
        assert_eq!(class(&Method::POST, "/v1/accounts"), Some(Class::Auth));
        assert_eq!(class(&Method::POST, "/v1/queue/tokens"), Some(Class::Queue));
        assert_eq!(
            class(&Method::PATCH, "/v1/accounts/me"),
            Some(Class::Commands)
        );
        assert_eq!(
            class(&Method::DELETE, "/v1/guilds/g"),
            Some(Class::Commands)
        );
        assert_eq!(class(&Method::GET, "/v1/accounts/me"), None);
        assert_eq!(class(&Method::POST, "/metrics"), None);
    }

    #[test]
    fn a_burst_passes_and_the_next_request_waits() {
        let l = limiter(Rate {
            per_second: 1,
            burst: 3,
        })
        .unwrap();
        let key = "caller".to_owned();
        for _ in 0..3 {
            assert!(l.check_key(&key).is_ok());
        }
        let refused = l.check_key(&key).unwrap_err();
        let wait = refused.wait_time_from(DefaultClock::default().now());
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(l.check_key(&"another".to_owned()).is_ok(), "per caller");
        assert!(
            limiter(Rate {
                per_second: 0,
                burst: 10
            })
            .is_none(),
            "0 is off"
        );
    }
}
