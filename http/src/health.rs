//! Readiness: whether the dependencies a process needs are reachable.

use std::sync::Arc;

use async_trait::async_trait;

/// One dependency's answer to a readiness probe.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub result: Result<(), String>,
}

/// What a process needs reachable to serve (its stores, its broker).
#[async_trait]
pub trait Readiness: Send + Sync {
    async fn check(&self) -> Vec<Check>;

    /// What to call this source when it does not answer at all.
    fn label(&self) -> &'static str {
        "dependency"
    }
}

/// How long one readiness source may take: `/readyz` answers within a
/// second even when a dependency hangs.
pub const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// Several readiness sources as one, asked at once, each bounded by
/// [`CHECK_TIMEOUT`].
pub struct AllOf(pub Vec<Arc<dyn Readiness>>);

#[async_trait]
impl Readiness for AllOf {
    async fn check(&self) -> Vec<Check> {
        let checks = self.0.iter().map(|r| async move {
            match tokio::time::timeout(CHECK_TIMEOUT, r.check()).await {
                Ok(checks) => checks,
                Err(_) => vec![Check {
                    name: r.label(),
                    result: Err(format!("did not answer within {CHECK_TIMEOUT:?}")),
                }],
            }
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}
