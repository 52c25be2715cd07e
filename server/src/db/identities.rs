//! Queries on the sign-in identities that are not passwords: Ed25519 public keys
//! and OAuth (provider, subject) pairs. Each belongs to exactly one account.
//! Queries take an [`Exec`], so an account and its identity can be created in
//! one transaction (see `AuthService`).

use super::users::{UserRow, COLUMNS};
use super::{is_unique_violation, Exec, InsertError, Taken};
use crate::with_exec;
use chrono::Utc;

/// A way to sign in that names an account without a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity<'a> {
    /// The key, 32 bytes as lower-case hex.
    Ed25519 { public_key: &'a str },
    /// The provider's stable subject identifier (`sub`, GitHub's numeric id).
    OAuth {
        provider: &'a str,
        subject: &'a str,
        email: Option<&'a str>,
    },
}

impl Identity<'_> {
    /// The insert, with the owner as `$1`, the time as `$2`, then [`Self::values`].
    pub(super) fn insert_sql(&self) -> &'static str {
        match self {
            Self::Ed25519 { .. } => {
                "insert into ed25519_identities (user_id, created_at, public_key) values ($1, $2, $3)"
            }
            Self::OAuth { .. } => {
                "insert into oauth_identities (user_id, created_at, provider, subject, email) values ($1, $2, $3, $4, $5)"
            }
        }
    }

    pub(super) fn values(&self) -> Vec<Option<&str>> {
        match self {
            Self::Ed25519 { public_key } => vec![Some(public_key)],
            Self::OAuth {
                provider,
                subject,
                email,
            } => vec![Some(provider), Some(subject), *email],
        }
    }
}

/// The account this identity signs in to, if it has one.
pub async fn find_user<'e>(
    ex: impl Into<Exec<'e>>,
    identity: &Identity<'_>,
) -> Result<Option<UserRow>, sqlx::Error> {
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (table, filter) = match identity {
        Identity::Ed25519 { .. } => ("ed25519_identities", "i.public_key = $1"),
        Identity::OAuth { .. } => ("oauth_identities", "i.provider = $1 and i.subject = $2"),
    };
    let sql = format!(
        "select {columns} from {table} i join users u on u.user_id = i.user_id where {filter}"
    );
    with_exec!(ex.into(), exec => {
        let mut query = sqlx::query_as::<_, UserRow>(&sql);
        for value in identity.values().into_iter().take(filter.matches('$').count()) {
            query = query.bind(value);
        }
        query.fetch_optional(exec).await
    })
}

/// Attaches the identity to an account: a new one (in the transaction that
/// created it) or an existing one (explicit linking). The identity is the
/// table's only unique key, so a violation means another account has it:
/// [`Taken::Identity`].
pub async fn link<'e>(
    ex: impl Into<Exec<'e>>,
    user_id: &str,
    identity: &Identity<'_>,
) -> Result<(), InsertError> {
    let now = Utc::now();
    let result = with_exec!(ex.into(), exec => {
        let mut query = sqlx::query(identity.insert_sql()).bind(user_id).bind(now);
        for value in identity.values() {
            query = query.bind(value);
        }
        query.execute(exec).await.map(|_| ())
    });
    result.map_err(|e| {
        if is_unique_violation(&e) {
            InsertError::Taken(Taken::Identity)
        } else {
            InsertError::Db(e)
        }
    })
}

/// Records the email the provider reported at this sign-in (display only).
pub async fn touch_oauth_email<'e>(
    ex: impl Into<Exec<'e>>,
    provider: &str,
    subject: &str,
    email: Option<&str>,
) -> Result<(), sqlx::Error> {
    with_exec!(ex.into(), exec => sqlx::query("update oauth_identities set email = $3 where provider = $1 and subject = $2")
        .bind(provider).bind(subject).bind(email).execute(exec).await.map(|_| ()))
}
