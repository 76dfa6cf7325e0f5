//! Requests that arrive together answered by one call to the state store,
//! the way group commit writes the event store (DESIGN.md §9).
//!
//! Each caller hands over its request and waits; a task takes everything
//! waiting (up to [`MAX_BATCH`]), answers it with one call and hands each
//! caller its answer. Nothing waits on purpose: at low load a batch is the
//! one request that is there; under load the requests that arrive while a
//! batch runs form the next.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::store::StateError;

/// Requests answered by one call at the most.
const MAX_BATCH: usize = 512;

/// What answers a batch: one answer per request, in order.
pub(crate) type Answer<R, A> = Arc<
    dyn Fn(Vec<R>) -> Pin<Box<dyn Future<Output = Result<Vec<A>, StateError>> + Send>>
        + Send
        + Sync,
>;

struct Pending<R, A> {
    request: R,
    done: oneshot::Sender<Result<A, StateError>>,
}

struct Queue<R, A> {
    pending: Vec<Pending<R, A>>,
    /// A batch is running; new requests wait for the next one.
    running: bool,
}

struct Inner<R, A> {
    answer: Answer<R, A>,
    queue: Mutex<Queue<R, A>>,
}

pub(crate) struct Batcher<R, A> {
    inner: Arc<Inner<R, A>>,
}

impl<R: Send + 'static, A: Send + 'static> Batcher<R, A> {
    pub(crate) fn new(answer: Answer<R, A>) -> Self {
        Self {
            inner: Arc::new(Inner {
                answer,
                queue: Mutex::new(Queue {
                    pending: Vec::new(),
                    running: false,
                }),
            }),
        }
    }

    /// Answers `request` in the next batch.
    ///
    /// The batch runs in a task of its own: a caller that goes away (a
    /// client hanging up) neither cancels its neighbours' answers nor
    /// leaves the queue without a runner.
    pub(crate) async fn ask(&self, request: R) -> Result<A, StateError> {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut queue = self.inner.lock();
            queue.pending.push(Pending { request, done });
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(run_while_pending(Arc::clone(&self.inner)));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StateError::new("the batch ended without an answer")))
    }
}

impl<R, A> Inner<R, A> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<R, A>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next batch, or `None` (and no runner) when nothing waits.
    fn next_batch(&self) -> Option<Vec<Pending<R, A>>> {
        let mut queue = self.lock();
        if queue.pending.is_empty() {
            queue.running = false;
            return None;
        }
        let take = queue.pending.len().min(MAX_BATCH);
        Some(queue.pending.drain(..take).collect())
    }
}

/// Gives the queue back a runner if this one dies mid-batch (a panic in a
/// driver), so later requests are not left waiting forever.
struct RunnerGuard<R, A>(Arc<Inner<R, A>>);

impl<R, A> Drop for RunnerGuard<R, A> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().running = false;
        }
    }
}

async fn run_while_pending<R, A>(inner: Arc<Inner<R, A>>) {
    let _guard = RunnerGuard(Arc::clone(&inner));
    while let Some(batch) = inner.next_batch() {
        let (requests, waiters): (Vec<R>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.done)).unzip();
        let asked = waiters.len();
        match (inner.answer)(requests).await {
            Ok(answers) if answers.len() == asked => {
                for (done, answer) in waiters.into_iter().zip(answers) {
                    let _ = done.send(Ok(answer));
                }
            }
            Ok(answers) => {
                let e = StateError::new(format!("{} answers for {asked} requests", answers.len()));
                answer_all(waiters, e);
            }
            Err(e) => answer_all(waiters, e),
        }
    }
}

fn answer_all<A>(waiters: Vec<oneshot::Sender<Result<A, StateError>>>, e: StateError) {
    tracing::warn!(error = %e, requests = waiters.len(), "a batch of queue requests failed");
    let shared = Arc::new(e);
    for done in waiters {
        let _ = done.send(Err(StateError::new(Shared(Arc::clone(&shared)))));
    }
}

/// One batch's failure, answered to each of its callers.
#[derive(Debug)]
struct Shared(Arc<StateError>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the calls; answers each request doubled, after a pause that
    /// lets the next requests gather.
    fn doubling(calls: Arc<AtomicUsize>) -> Batcher<u32, u32> {
        Batcher::new(Arc::new(move |requests: Vec<u32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::task::yield_now().await;
                if requests.contains(&13) {
                    return Err(StateError::new("unlucky"));
                }
                Ok(requests.into_iter().map(|r| r * 2).collect())
            })
        }))
    }

    #[tokio::test]
    async fn requests_asked_together_share_calls_and_each_gets_its_own_answer() {
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher = doubling(Arc::clone(&calls));
        let answers = futures::future::join_all((0..1000).map(|i| batcher.ask(100 + i))).await;
        for (i, a) in answers.into_iter().enumerate() {
            assert_eq!(a.unwrap(), (100 + i as u32) * 2);
        }
        let calls = calls.load(Ordering::SeqCst);
        assert!(
            (2..=10).contains(&calls),
            "1000 requests in a few batches, not one by one ({calls} calls)"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_its_requests_and_the_next_batch_runs() {
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher = doubling(Arc::clone(&calls));
        let failed = batcher.ask(13).await;
        assert!(failed.unwrap_err().to_string().contains("unlucky"));
        assert_eq!(batcher.ask(4).await.unwrap(), 8);
    }
}
