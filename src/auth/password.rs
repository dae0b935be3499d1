//! argon2id hashing (OWASP baseline by default: m=19 MiB, t=2, p=1). Hashing is CPU-bound for
//! tens of milliseconds, so it runs on the blocking pool, never on an async worker.
//!
//! Each hash holds `memory_kib` while it runs, and registering or logging in needs no account,
//! so hashing is gated: at most `CONCLAVE_ARGON2_CONCURRENCY` hashes at once (one per core by
//! default), at most `CONCLAVE_ARGON2_QUEUE` more waiting, and anything beyond is answered at
//! once with 503 `unavailable` and `Retry-After`. A burst of strangers then costs a bounded
//! amount of memory instead of one hash's worth per request.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use argon2::password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Argon2Settings;
use crate::domain::Password;
use crate::error::{AppError, AppResult};
use crate::ops::metrics as metric;

/// Makes the allocator give a hash's memory back to the system as soon as the hash is done.
///
/// glibc serves allocations above its mmap threshold with their own mapping, released on free,
/// but raises that threshold to the size of any such block freed (up to 32 MiB). After the first
/// hash, each 19 MiB block then comes from the arena of whichever blocking thread ran it and
/// stays there: a burst left hundreds of MB resident long after it ended. A fixed threshold
/// keeps large blocks as mappings. Call once, before any thread starts.
pub fn release_large_blocks_at_once() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    /// A real hash verified when the user does not exist, so an unknown username costs the same
    /// time as a wrong password and cannot be told apart.
    dummy_hash: Arc<String>,
    /// Admission: running plus waiting hashes.
    admitted: Arc<Semaphore>,
    /// Turns: running hashes.
    running: Arc<Semaphore>,
}

/// What a refused hash tells the client: come back in a second (a hash takes tens of ms).
const BUSY_RETRY: Duration = Duration::from_secs(1);

impl PasswordHasher {
    pub fn new(s: Argon2Settings) -> anyhow::Result<Self> {
        let params = Params::new(s.memory_kib, s.iterations, s.parallelism, None)
            .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon
            .hash_password(b"conclave-dummy-password", &salt)
            .map_err(|e| anyhow!("argon2: {e}"))?
            .to_string();
        metrics::counter!(metric::RATE_LIMITED, "limit" => "password_hashing").increment(0);
        Ok(Self {
            argon: Arc::new(argon),
            dummy_hash: Arc::new(dummy),
            admitted: Arc::new(Semaphore::new((s.concurrency + s.queue) as usize)),
            running: Arc::new(Semaphore::new(s.concurrency as usize)),
        })
    }

    /// A turn to hash: admitted at once or refused (busy), then waits for a running slot.
    async fn turn(&self) -> AppResult<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!(metric::RATE_LIMITED, "limit" => "password_hashing").increment(1);
            AppError::Busy {
                retry_after: BUSY_RETRY,
            }
        })?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| AppError::Internal(anyhow!("hash gate: {e}")))?;
        Ok((admitted, running))
    }

    pub async fn hash(&self, password: &Password) -> AppResult<String> {
        let argon = self.argon.clone();
        let pw = password.clone();
        let turn = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(pw.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AppError::Internal(anyhow!("argon2: {e}")))
        })
        .await
        .map_err(|e| AppError::Internal(anyhow!("hash task: {e}")))?
    }

    /// Verifies against `hash`, or against the dummy hash when `hash` is `None`, returning false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> AppResult<bool> {
        let argon = self.argon.clone();
        let known = hash.is_some();
        let hash = hash
            .map(str::to_owned)
            .unwrap_or_else(|| self.dummy_hash.as_str().to_owned());
        let pw = password.to_owned();
        let turn = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            // The parameters come from the stored hash, so hashes made under older settings
            // still verify after the settings change.
            let parsed = PasswordHash::new(&hash)
                .map_err(|e| AppError::Internal(anyhow!("stored hash: {e}")))?;
            Ok(argon.verify_password(pw.as_bytes(), &parsed).is_ok() && known)
        })
        .await
        .map_err(|e| AppError::Internal(anyhow!("verify task: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordHasher {
        PasswordHasher::new(Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            concurrency: 2,
            queue: 2,
        })
        .unwrap()
    }

    /// Beyond the running and queued hashes, a hash is refused at once as busy; the queued
    /// ones go on as soon as the running ones give their turns back.
    #[tokio::test]
    async fn hashes_beyond_the_queue_are_refused_as_busy_until_turns_free() {
        let h = fast(); // 2 running, 2 queued
        let running = (h.turn().await.unwrap(), h.turn().await.unwrap());
        let pw = Password::parse("correct horse").unwrap();
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let (h, pw) = (h.clone(), pw.clone());
                tokio::spawn(async move { h.hash(&pw).await })
            })
            .collect();
        while h.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = h.hash(&pw).await.unwrap_err();
        assert!(matches!(refused, AppError::Busy { .. }), "{refused:?}");
        assert_eq!((refused.status(), refused.code()), (503, "unavailable"));
        assert_eq!(refused.retry_after(), Some(BUSY_RETRY));
        drop(running);
        for q in queued {
            assert!(q.await.unwrap().is_ok());
        }
        assert!(h.hash(&pw).await.is_ok(), "the gate is open again");
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let h = fast();
        let pw = Password::parse("correct horse").unwrap();
        let a = h.hash(&pw).await.unwrap();
        let b = h.hash(&pw).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salts differ");
        assert!(h.verify("correct horse", Some(&a)).await.unwrap());
        assert!(!h.verify("wrong horse", Some(&a)).await.unwrap());
        assert!(!h.verify("conclave-dummy-password", None).await.unwrap());
    }

    #[test]
    fn default_parameters_are_the_owasp_baseline() {
        let s = crate::config::Settings::from_map(&Default::default())
            .unwrap()
            .argon2;
        assert_eq!((s.memory_kib, s.iterations, s.parallelism), (19_456, 2, 1));
    }
}
