//! Password hashing: Argon2id with OWASP's parameters (m=19 MiB, t=2, p=1).
//!
//! Hashing is deliberately slow (tens of ms of CPU), so it runs on the blocking
//! pool behind a semaphore sized to the CPU count: a login flood queues here
//! instead of starving the async runtime that serves everyone else.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// OWASP Password Storage Cheat Sheet, current minimum for Argon2id.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;
/// A hash request that cannot start within this time gets a 503 instead of waiting forever.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing is saturated")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so an unknown user costs
    /// the same time as a wrong password (no enumeration by timing).
    dummy_hash: Arc<str>,
}

/// Checked when compiling (`Params::new` is a `const fn`): parameters it
/// refused would stop the build, never weaken hashes at run time.
const PARAMS: Params = match Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None) {
    Ok(params) => params,
    Err(_) => panic!("the Argon2 parameters above are out of range"),
};

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, PARAMS)
}

fn hash_now(password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Failed(e.to_string()))
}

fn verify_now(password: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

impl Passwords {
    pub fn new() -> Result<Self, PasswordError> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let mut random = [0u8; 32];
        rand::RngCore::fill_bytes(&mut OsRng, &mut random);
        Ok(Self {
            permits: Arc::new(Semaphore::new(cpus)),
            dummy_hash: hash_now(&random)?.into(),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_now(password.as_bytes())).await?
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is
    /// no account (the answer is then always false, after the same work).
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let dummy = self.dummy_hash.clone();
        self.run(move || match phc {
            Some(phc) => verify_now(password.as_bytes(), &phc),
            None => {
                let _ = verify_now(password.as_bytes(), &dummy);
                false
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = tokio::time::timeout(QUEUE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| PasswordError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let passwords = match Passwords::new() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let hash = passwords
            .hash("correct horse".into())
            .await
            .unwrap_or_default();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(matches!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await,
            Ok(true)
        ));
        assert!(matches!(
            passwords.verify("correct horsE".into(), Some(hash)).await,
            Ok(false)
        ));
        assert!(matches!(
            passwords.verify("anything".into(), None).await,
            Ok(false)
        ));
    }
}
