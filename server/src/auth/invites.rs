//! Who may create an account (`CALOS_REGISTRATION`), and the single-use,
//! expiring invite links administrators hand out when the answer is `invite`.
//!
//! An invite's secret is 32 random bytes (base64url), shown once to the admin
//! who made it; the database keeps only its SHA-256. Redeeming it happens in
//! the transaction that creates the account (`db::invites::redeem`), whichever
//! way the person signs up: password, Ed25519 key or OAuth.

use crate::db::invites::{self, InviteRow, NewInvite};
use crate::db::Db;
use base64::Engine;
use chrono::Utc;
use sha2::{Digest, Sha256};

/// `CALOS_REGISTRATION`: whether a stranger who can reach calos may sign up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Registration {
    /// Anyone may create an account (the default: the seed's scripts register
    /// throw-away users). Sign-ups are still throttled per address.
    #[default]
    Open,
    /// Only with an invite link from an administrator.
    Invite,
    /// Nobody: administrators create accounts with `calos users create`.
    Closed,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invite => "invite",
            Self::Closed => "closed",
        }
    }
}

/// The sign-up policy the server runs with.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationPolicy {
    pub mode: Registration,
    /// Open (unused, unexpired) invites allowed at once.
    pub max_open_invites: u32,
}

impl Default for RegistrationPolicy {
    fn default() -> Self {
        Self {
            mode: Registration::Open,
            max_open_invites: DEFAULT_MAX_OPEN_INVITES,
        }
    }
}

/// Open invites allowed at once unless configured.
pub const DEFAULT_MAX_OPEN_INVITES: u32 = 1000;
/// The longest an invite may stay valid.
pub const MAX_INVITE_HOURS: u32 = 30 * 24;
/// How long an invite stays valid when nobody says.
pub const DEFAULT_INVITE_HOURS: u32 = 72;
/// The longest note an invite may carry (who it is for).
pub const MAX_NOTE_CHARS: usize = 200;
/// How many invites the dashboard lists (newest first).
pub const LIST_LIMIT: i64 = 200;

/// Why an invite could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("expires_in_hours must be 1-{MAX_INVITE_HOURS}")]
    BadExpiry,
    #[error("the note can have at most {MAX_NOTE_CHARS} characters and no control characters")]
    BadNote,
    /// Open invites are bounded: each is a standing way in.
    #[error("{0} invites are open already; revoke some or let them expire")]
    TooMany(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A freshly made invite: the stored row and the secret, which exists nowhere
/// else once this is dropped.
pub struct IssuedInvite {
    pub row: InviteRow,
    pub token: String,
}

/// The hash an invite is stored and looked up by.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The path of the sign-up form with the invite filled in.
pub fn link_path(token: &str) -> String {
    format!("/login?form=register&invite={token}")
}

/// Makes an invite valid for `hours`, unless `max_open` invites are open
/// already. Expired, unused invites are cleared out first.
pub async fn issue(
    db: &Db,
    created_by: Option<&str>,
    note: Option<&str>,
    hours: u32,
    max_open: u32,
) -> Result<IssuedInvite, InviteError> {
    if !(1..=MAX_INVITE_HOURS).contains(&hours) {
        return Err(InviteError::BadExpiry);
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS || n.chars().any(char::is_control)) {
        return Err(InviteError::BadNote);
    }
    let now = Utc::now().timestamp();
    invites::prune_expired(db, now).await?;
    let open = invites::count_open(db, now).await?;
    if open >= i64::from(max_open) {
        return Err(InviteError::TooMany(open));
    }
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut secret);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let expires_at = now + i64::from(hours) * 3600;
    let row = invites::insert(
        db,
        NewInvite {
            token_hash: &token_hash(&token),
            created_by,
            note,
            expires_at,
        },
    )
    .await?;
    Ok(IssuedInvite { row, token })
}

/// What the invite list calls an invite's state at `now`.
pub fn state(row: &InviteRow, now: i64) -> &'static str {
    if row.used_at.is_some() {
        "used"
    } else if row.expires_at <= now {
        "expired"
    } else {
        "open"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_hash_is_not_the_secret_and_is_stable() {
        let hash = token_hash("abc");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, token_hash("abc"));
        assert_ne!(hash, token_hash("abd"));
        assert!(!hash.contains("abc"));
    }

    #[test]
    fn a_link_carries_the_secret_to_the_sign_up_form() {
        assert_eq!(link_path("t0k3n"), "/login?form=register&invite=t0k3n");
    }
}
