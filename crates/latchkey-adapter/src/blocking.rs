//! Blocking work (Argon2 password verification) on tokio's blocking pool.

use latchkey_core::user::Blocking;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Runs Argon2 verifications on tokio's blocking pool, at most `permits` at a time, so a
/// burst of password logins can neither stall the async workers (axum's, or actix's
/// single-threaded ones) nor exhaust memory (each verification holds 19 MiB).
#[derive(Clone, Debug)]
pub struct TokioBlocking {
    permits: Arc<Semaphore>,
}

impl TokioBlocking {
    /// Allows `permits` concurrent blocking jobs.
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }
}

impl Default for TokioBlocking {
    /// One job per core, at least two.
    fn default() -> Self {
        Self::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
        )
    }
}

impl Blocking for TokioBlocking {
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let _permit = self.permits.acquire().await.ok()?;
        tokio::task::spawn_blocking(f).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::TokioBlocking;
    use latchkey_core::user::Blocking as _;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_job_holds_its_permit_until_it_returns() {
        let blocking = TokioBlocking::new(1);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let job = tokio::spawn({
            let blocking = blocking.clone();
            async move {
                blocking
                    .run(move || {
                        let _ = started_tx.send(());
                        release_rx.recv().ok();
                        7
                    })
                    .await
            }
        });
        started_rx.await.expect("the job started");
        assert_eq!(blocking.permits.available_permits(), 0);
        release_tx.send(()).expect("the job waits");
        assert_eq!(job.await.expect("job task"), Some(7));
        assert_eq!(blocking.permits.available_permits(), 1);
    }

    #[test]
    fn zero_permits_still_allow_one_job() {
        let blocking = TokioBlocking::new(0);
        assert_eq!(blocking.permits.available_permits(), 1);
    }
}
