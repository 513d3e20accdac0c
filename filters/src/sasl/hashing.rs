//! Password hashing off the async workers, bounded.
//!
//! Checking a PLAIN password against a stored SCRAM credential is PBKDF2 with thousands of iterations (about
//! 3 ms of CPU at 4096 iterations of SHA-512). Run on a tokio worker, a flood of failed logins would stall
//! every session sharing that worker; run on `spawn_blocking` without a bound, it would grow up to 512
//! blocking threads. So a check waits for one of a few permits (one per core by default) and then hashes on a
//! blocking thread; at most `max_waiting` checks queue for a permit, and beyond that a login is refused at
//! once without hashing. A flood thus costs the gateway at most its cores, and costs the attacker the wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use franzgate_auth::scram::ScramCredential;
use tokio::sync::Semaphore;

/// Why a check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashRefused {
    /// Too many checks are already waiting.
    Busy,
    /// The blocking thread did not return (it panicked, or the runtime is shutting down).
    Lost,
}

/// The bounded pool every session's PLAIN checks go through; one per gateway.
#[derive(Debug)]
pub struct PasswordHasher {
    /// One permit per check allowed to hash at the same time.
    permits: Arc<Semaphore>,
    /// Checks waiting for a permit now.
    waiting: AtomicUsize,
    /// Beyond this many waiting, a check is refused.
    max_waiting: usize,
    /// PBKDF2 iterations run so far: the work done, whatever the machine's speed.
    iterations: AtomicU64,
}

// === impl PasswordHasher ===

impl PasswordHasher {
    /// A pool hashing at most `concurrent` passwords at a time, with at most `max_waiting` checks queued.
    pub fn new(concurrent: usize, max_waiting: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            iterations: AtomicU64::new(0),
        }
    }

    /// One hashing thread per core, and a queue of 64 checks per core: at 4096 iterations that queue drains in
    /// about 0.2 s, so a queued client waits less than its failure delay twice over.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores, 64 * cores)
    }

    /// Whether `password` derives `credential`'s keys, checked on a blocking thread once a permit is free.
    pub async fn verify(&self, credential: ScramCredential, password: String) -> Result<bool, HashRefused> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(HashRefused::Busy);
                }
                let permit = self.permits.clone().acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                permit.map_err(|_| HashRefused::Lost)?
            }
        };
        self.iterations.fetch_add(u64::from(credential.iterations), Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            credential.verify_password(&password)
        })
        .await
        .map_err(|_| HashRefused::Lost)
    }

    /// PBKDF2 iterations run so far.
    pub fn iterations(&self) -> u64 {
        self.iterations.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use franzgate_auth::scram::ScramMechanism;

    use super::*;

    #[tokio::test]
    async fn checks_beyond_the_permits_and_the_queue_are_refused_without_hashing() {
        let hasher = Arc::new(PasswordHasher::new(1, 1));
        let credential = ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"salt", 4096);
        // Hold the only permit, as a running check would.
        let held = hasher.permits.clone().try_acquire_owned().expect("free");
        let queued = tokio::spawn({
            let (hasher, credential) = (hasher.clone(), credential.clone());
            async move { hasher.verify(credential, "pw".into()).await }
        });
        while hasher.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(hasher.verify(credential.clone(), "pw".into()).await, Err(HashRefused::Busy));
        assert_eq!(hasher.iterations(), 0, "nothing hashed while the permit is held");
        drop(held);
        assert_eq!(queued.await.expect("joined"), Ok(true), "the queued check ran once a permit was free");
        assert_eq!(hasher.verify(credential, "wrong".into()).await, Ok(false));
        assert_eq!(hasher.iterations(), 2 * 4096);
    }
}
