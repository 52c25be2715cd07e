//! API keys: long-lived secrets a person makes for scripts and SDKs, used
//! wherever a bearer token works for chat (`/v1/*`, `/api/llm/complete`), also
//! as `x-api-key`. A key never manages accounts or keys: that needs a session.
//!
//! The secret is `calos_sk_` and 40 random base62 characters (about 238
//! bits). It is shown once, when made; the database keeps its SHA-256. A slow
//! password hash (Argon2) protects secrets people choose, which can be
//! guessed; nobody can guess or search 2^238 values from a hash, so a fast
//! hash is as safe here, and it keeps a key check to microseconds.
//!
//! Checked keys are remembered for `CALOS_SESSION_CACHE_TTL`, as accounts
//! are: revoking a key in this process forgets it at once; a revocation made
//! elsewhere (the CLI, another replica) holds within that time.

use crate::db::api_keys::{self, KeyRow, NewKey};
use crate::db::users;
use crate::db::Db;
use crate::llm::router::glob_match;
use crate::usage::limits::Limits;
use app::wire::UserView;
use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What every key starts with: tells a key from a session token at a glance
/// (and lets secret scanners find leaked ones).
pub const KEY_PREFIX: &str = "calos_sk_";
/// Random characters after the prefix: 40 × log2(62) ≈ 238 bits.
const SECRET_CHARS: usize = 40;
/// How much of the secret the key list shows.
const SHOWN_CHARS: usize = 12;
/// Keys one account may have.
pub const MAX_KEYS_PER_USER: i64 = 100;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_MODEL_GLOBS: usize = 32;
const MAX_GLOB_CHARS: usize = 128;
/// `last_used_at` is written at most this often per key, off the request path.
const TOUCH_EVERY_SECS: i64 = 60;
/// Checked keys remembered at once.
const CACHE_CAPACITY: u64 = 10_000;

/// Whether a bearer value is an API key rather than a session token.
pub fn is_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

/// The hash a key is stored and found by.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("name must be 1-{MAX_NAME_CHARS} characters without control characters")]
    BadName,
    #[error("models must be 1-{MAX_MODEL_GLOBS} model names or globs (`gpt-*`) of at most {MAX_GLOB_CHARS} characters, without spaces: {0}")]
    BadModels(String),
    #[error("expiresAt must be a time in the future, RFC 3339 (e.g. 2027-01-31T00:00:00Z)")]
    BadExpiry,
    #[error("an account can have at most {MAX_KEYS_PER_USER} API keys; revoke one first")]
    TooMany,
    /// Unknown or revoked (one answer for both).
    #[error("The API key is invalid or was revoked.")]
    Invalid,
    #[error("The API key has expired; make a new one.")]
    Expired,
    #[error(transparent)]
    Limits(#[from] crate::usage::limits::LimitError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What a checked key allows: whose it is and which models it may use.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub key_id: String,
    pub user: UserView,
    /// `None`: every model.
    pub models: Option<Arc<[String]>>,
    /// The key's own rate limits and budget (its owner's apply too).
    pub limits: Limits,
}

/// A remembered key.
struct Entry {
    grant: KeyGrant,
    expires_at: Option<i64>,
    /// Unix seconds of the last `last_used_at` write.
    touched: AtomicI64,
}

/// The keys service. Cheap to clone: handles only.
#[derive(Clone)]
pub struct ApiKeys {
    db: Db,
    /// `None` when the session cache TTL is 0: every check reads the database.
    cache: Option<moka::sync::Cache<String, Arc<Entry>>>,
}

/// A key just made: its row and the secret, which exists nowhere else.
pub struct IssuedKey {
    pub row: KeyRow,
    pub secret: String,
}

fn valid_name(name: &str) -> Result<&str, KeyError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(KeyError::BadName);
    }
    Ok(name)
}

fn valid_models(models: &[String]) -> Result<String, KeyError> {
    if models.is_empty() || models.len() > MAX_MODEL_GLOBS {
        return Err(KeyError::BadModels(format!("{} given", models.len())));
    }
    let mut globs = Vec::with_capacity(models.len());
    for glob in models {
        let glob = glob.trim();
        let fine = !glob.is_empty()
            && glob.chars().count() <= MAX_GLOB_CHARS
            && !glob.chars().any(|c| c.is_whitespace() || c.is_control());
        if !fine {
            return Err(KeyError::BadModels(format!("{glob:?}")));
        }
        globs.push(glob);
    }
    Ok(globs.join("\n"))
}

/// The globs a stored `models` column holds.
pub fn models_of(row: &KeyRow) -> Option<Vec<String>> {
    row.models
        .as_deref()
        .map(|m| m.lines().map(str::to_string).collect())
}

/// Whether a key limited to `models` (`None`: every model) may use `model`.
/// Globs as in routing rules: `*` any run of characters, case-insensitive.
pub fn allows(models: Option<&[String]>, model: &str) -> bool {
    models.is_none_or(|globs| globs.iter().any(|g| glob_match(g, model)))
}

impl KeyGrant {
    pub fn allows(&self, model: &str) -> bool {
        allows(self.models.as_deref(), model)
    }
}

impl ApiKeys {
    pub fn new(db: Db, ttl: Duration) -> Self {
        let cache = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(ttl)
                .build()
        });
        Self { db, cache }
    }

    /// Makes a key for `user`. `models`: the globs it may use (`None`: all).
    pub async fn create(
        &self,
        user: &UserView,
        name: &str,
        models: Option<&[String]>,
        expires_at: Option<&str>,
        limits: Limits,
    ) -> Result<IssuedKey, KeyError> {
        let name = valid_name(name)?;
        let models = models.map(valid_models).transpose()?;
        let expires_at = match expires_at.map(str::trim).filter(|e| !e.is_empty()) {
            Some(text) => {
                let at = DateTime::parse_from_rfc3339(text).map_err(|_| KeyError::BadExpiry)?;
                if at.timestamp() <= Utc::now().timestamp() {
                    return Err(KeyError::BadExpiry);
                }
                Some(at.timestamp())
            }
            None => None,
        };
        // A key narrows what its owner may do, never widens it.
        let owner = crate::db::limits::for_user(&self.db, &user.user_id).await?;
        crate::usage::limits::within_owner(&limits, &owner)?;
        if api_keys::count_for_user(&self.db, &user.user_id).await? >= MAX_KEYS_PER_USER {
            return Err(KeyError::TooMany);
        }
        let secret = format!(
            "{KEY_PREFIX}{}",
            Alphanumeric.sample_string(&mut rand::thread_rng(), SECRET_CHARS)
        );
        let row = api_keys::insert(
            &self.db,
            NewKey {
                user_id: &user.user_id,
                name,
                prefix: &secret[..SHOWN_CHARS],
                secret_hash: &secret_hash(&secret),
                models: models.as_deref(),
                expires_at,
                limits,
            },
        )
        .await?;
        tracing::info!(user_id = %user.user_id, key_id = %row.key_id, "api key created");
        Ok(IssuedKey { row, secret })
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<KeyRow>, sqlx::Error> {
        api_keys::list_for_user(&self.db, user_id).await
    }

    /// Revokes the owner's key; `false` when the owner has no such key (another
    /// account's key id is "no such key" too).
    pub async fn revoke(&self, user_id: &str, key_id: &str) -> Result<bool, sqlx::Error> {
        let Some(hash) = api_keys::delete(&self.db, user_id, key_id).await? else {
            return Ok(false);
        };
        if let Some(cache) = &self.cache {
            cache.invalidate(&hash);
        }
        tracing::info!(%user_id, %key_id, "api key revoked");
        Ok(true)
    }

    /// Forgets every remembered key: an account was deleted (its keys went
    /// with it in the database).
    pub fn forget_all(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    /// Who a key belongs to and what it allows.
    pub async fn authenticate(&self, secret: &str) -> Result<KeyGrant, KeyError> {
        // Longer than any key: not worth hashing.
        if secret.len() > KEY_PREFIX.len() + SECRET_CHARS + 16 {
            return Err(KeyError::Invalid);
        }
        let hash = secret_hash(secret);
        let remembered = self.cache.as_ref().and_then(|c| c.get(&hash));
        let entry = match remembered {
            Some(entry) => entry,
            None => {
                let entry = Arc::new(self.load(&hash).await?);
                if let Some(cache) = &self.cache {
                    cache.insert(hash, Arc::clone(&entry));
                }
                entry
            }
        };
        let now = Utc::now().timestamp();
        if entry.expires_at.is_some_and(|at| at <= now) {
            return Err(KeyError::Expired);
        }
        self.touch(&entry, now);
        Ok(entry.grant.clone())
    }

    async fn load(&self, hash: &str) -> Result<Entry, KeyError> {
        let row = api_keys::find_by_hash(&self.db, hash)
            .await?
            .ok_or(KeyError::Invalid)?;
        let owner = users::find_by_id(&self.db, &row.user_id)
            .await?
            .ok_or(KeyError::Invalid)?;
        Ok(Entry {
            grant: KeyGrant {
                key_id: row.key_id.clone(),
                user: owner.view(),
                models: models_of(&row).map(Arc::from),
                limits: row.limits(),
            },
            expires_at: row.expires_at,
            touched: AtomicI64::new(row.last_used_at.map_or(0, |t| t.timestamp())),
        })
    }

    /// Writes `last_used_at` in the background, at most once a minute per key.
    fn touch(&self, entry: &Entry, now: i64) {
        let last = entry.touched.load(Ordering::Relaxed);
        if now - last < TOUCH_EVERY_SECS
            || entry
                .touched
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let (db, key_id) = (self.db.clone(), entry.grant.key_id.clone());
        tokio::spawn(async move {
            if let Err(e) = api_keys::touch(&db, &key_id, Utc::now()).await {
                tracing::debug!(%key_id, error = %e, "api key: last use not recorded");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(models: Option<&[&str]>) -> KeyGrant {
        KeyGrant {
            key_id: "k".into(),
            user: UserView {
                user_id: "u".into(),
                email: None,
                username: "someone".into(),
                role: app::wire::Role::User,
            },
            models: models.map(|m| m.iter().map(|s| s.to_string()).collect::<Vec<_>>().into()),
            limits: Limits::default(),
        }
    }

    #[test]
    fn a_key_without_models_allows_all_and_one_with_globs_only_those() {
        assert!(grant(None).allows("anything"));
        let narrow = grant(Some(&["gpt-4o*", "mock-llama"]));
        assert!(narrow.allows("gpt-4o-mini"));
        assert!(narrow.allows("mock-llama"));
        assert!(!narrow.allows("mock-gpt"));
        assert!(!narrow.allows("llama3"));
    }

    #[test]
    fn names_and_globs_are_checked() {
        assert!(valid_name("  ci  ").is_ok());
        assert!(valid_name("").is_err());
        assert!(valid_name(&"n".repeat(101)).is_err());
        assert!(valid_name("line\nbreak").is_err());
        assert_eq!(valid_models(&["a*".into(), " b ".into()]).unwrap(), "a*\nb");
        assert!(valid_models(&[]).is_err());
        assert!(valid_models(&["two words".into()]).is_err());
        assert!(valid_models(&vec!["m".to_string(); 33]).is_err());
    }

    #[test]
    fn the_stored_hash_is_not_the_secret() {
        let secret = format!("{KEY_PREFIX}{}", "a".repeat(SECRET_CHARS));
        let hash = secret_hash(&secret);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains("aaaa"));
        assert!(is_key(&secret));
        assert!(!is_key("eyJhbGciOiJIUzI1NiJ9.e30.x"));
    }
}
