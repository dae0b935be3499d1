//! argon2id hashing (OWASP baseline by default: m=19 MiB, t=2, p=1). Hashing is CPU-bound for
//! tens of milliseconds, so it runs on the blocking pool, never on an async worker.

use std::sync::Arc;

use anyhow::anyhow;
use argon2::password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::Argon2Settings;
use crate::domain::Password;
use crate::error::{AppError, AppResult};

#[derive(Clone)]
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    /// A real hash verified when the user does not exist, so an unknown username costs the same
    /// time as a wrong password and cannot be told apart.
    dummy_hash: Arc<String>,
}

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
        Ok(Self {
            argon: Arc::new(argon),
            dummy_hash: Arc::new(dummy),
        })
    }

    pub async fn hash(&self, password: &Password) -> AppResult<String> {
        let argon = self.argon.clone();
        let pw = password.clone();
        tokio::task::spawn_blocking(move || {
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
        tokio::task::spawn_blocking(move || {
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
        })
        .unwrap()
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
