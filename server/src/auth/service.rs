//! Account flows: register, sign in, sign out, and resolving a token to a user.
//! No HTTP types here; routes map [`AuthError`] onto the API error.

use super::invites::{self, InviteError, IssuedInvite, Registration, RegistrationPolicy};
use super::jwt::{JwtKeys, TokenError};
use super::password::{PasswordError, Passwords};
use super::sessions::{AccountCache, CachedAccount};
use super::soulfra::{Challenge, Challenges, MalformedProof, ProofRejected};
use super::throttle::LoginThrottle;
use super::validate::{self, FieldError};
use crate::db::identities::{self, Identity};
use crate::db::invites as invite_rows;
use crate::db::users::{self, InsertError, NewUser, Taken, UserRow};
use crate::db::{Db, Tx};
use app::wire::{LoginRequest, RegisterRequest, Role, UserView};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("send either `email` or `username`, not both")]
    AmbiguousLogin,
    #[error("`email` or `username` is required")]
    MissingLogin,
    /// One answer for an unknown account and a wrong password.
    #[error("Invalid email/username or password.")]
    InvalidCredentials,
    #[error("Too many failed sign-ins. Try again in {} seconds.", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("Too many new accounts from this address. Try again in {} seconds.", .0.as_secs().max(1))]
    SignupThrottled(Duration),
    #[error("{0:?} taken")]
    Taken(Taken),
    /// Missing, malformed, expired, revoked, or for a deleted account.
    #[error("invalid or expired token")]
    InvalidToken,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("could not issue a token: {0}")]
    Token(String),
    #[error(transparent)]
    MalformedProof(#[from] MalformedProof),
    /// An OAuth sign-in whose verified email already belongs to an account that
    /// has not linked this provider: never merged silently (ASVS 10.5.2).
    #[error("An account with this email already exists. Sign in to it first, then link {0}.")]
    OAuthAccountExists(&'static str),
    /// Linking needs the provider to vouch for the email.
    #[error("{0} has not verified this account's email address, so it cannot be linked.")]
    OAuthEmailUnverified(&'static str),
    /// `CALOS_REGISTRATION=closed`: accounts are made by administrators only.
    #[error("This gateway does not take sign-ups; ask an administrator for an account.")]
    RegistrationClosed,
    /// `CALOS_REGISTRATION=invite` and no invite came with the sign-up.
    #[error("Sign-ups here need an invite link; ask an administrator for one.")]
    InviteRequired,
    /// The invite is unknown, used, revoked or expired (one answer for all).
    #[error(
        "This invite link is not valid: it was used, revoked or has expired. Ask for a new one."
    )]
    InviteInvalid,
    /// An Ed25519 proof that proves nothing (the reason is logged, not told).
    #[error("The signature does not prove this key: ask for a new challenge and sign it.")]
    ProofRejected(ProofRejected),
    /// Sign-in state cannot be kept or read right now (Redis is down, or too
    /// many sign-ins wait at once).
    #[error("Sign-in is unavailable for a moment: {0}")]
    SignInBusy(String),
}

impl From<crate::cluster::one_time::OneTimeError> for AuthError {
    fn from(e: crate::cluster::one_time::OneTimeError) -> Self {
        Self::SignInBusy(e.to_string())
    }
}

impl From<crate::cluster::Unavailable> for AuthError {
    fn from(e: crate::cluster::Unavailable) -> Self {
        Self::SignInBusy(e.to_string())
    }
}

/// A successfully authenticated request's user, as of this request.
#[derive(Debug, Clone)]
pub struct AuthedUser {
    pub user: UserView,
    /// Checking the token's signature and claims.
    pub verify_time: std::time::Duration,
    /// Loading the account it names.
    pub db_time: std::time::Duration,
    /// When the check began (the lookup follows the verification): where
    /// the trace's auth and database spans start.
    pub started: std::time::Instant,
}

/// Cheap to clone (axum clones the state for every request): every field is a
/// handle, and the JWT keys, which own their key bytes and validation sets,
/// are shared behind an `Arc`.
#[derive(Clone)]
pub struct AuthService {
    db: Db,
    passwords: Passwords,
    jwt: Arc<JwtKeys>,
    throttle: LoginThrottle,
    challenges: Challenges,
    /// Accounts behind recently checked tokens (`sessions`).
    accounts: AccountCache,
    /// Who may create an account.
    registration: RegistrationPolicy,
    /// This server's public URL, for invite links.
    origin: Arc<str>,
}

/// A fresh session: the token and who it is for.
pub struct Session {
    pub token: String,
    pub user: UserView,
}

/// An account that signs in only through an identity (no password).
fn passwordless<'a>(username: &'a str, email: Option<&'a str>) -> NewUser<'a> {
    NewUser {
        username,
        email,
        password_hash: None,
        role: Role::User,
        persistent: false,
    }
}

/// A username for a new OAuth account: the provider's login or name, else the
/// email's local part, reduced to the allowed characters; else `github-user`.
fn oauth_username(provider: &str, name: Option<&str>, email: Option<&str>) -> String {
    let local = email.and_then(|e| e.split('@').next());
    let cleaned: String = name
        .into_iter()
        .chain(local)
        .map(|candidate| {
            candidate
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
                .trim_matches('-')
                .chars()
                .take(48)
                .collect::<String>()
        })
        .find(|c| c.len() >= 3)
        .unwrap_or_else(|| format!("{provider}-user"));
    cleaned
}

impl AuthService {
    /// `origin` is this server's public URL, written into Ed25519 challenges.
    pub fn new(
        db: Db,
        passwords: Passwords,
        jwt: JwtKeys,
        throttle: LoginThrottle,
        origin: &str,
        accounts: AccountCache,
        registration: RegistrationPolicy,
    ) -> Self {
        Self {
            db,
            passwords,
            jwt: Arc::new(jwt),
            throttle,
            challenges: Challenges::new(origin, None),
            accounts,
            registration,
            origin: Arc::from(origin.trim_end_matches('/')),
        }
    }

    pub fn registration(&self) -> Registration {
        self.registration.mode
    }

    /// A new invite from `admin` (see [`invites::issue`]).
    pub async fn issue_invite(
        &self,
        admin: &UserView,
        note: Option<&str>,
        hours: u32,
    ) -> Result<IssuedInvite, InviteError> {
        let issued = invites::issue(
            &self.db,
            Some(&admin.user_id),
            note,
            hours,
            self.registration.max_open_invites,
        )
        .await?;
        tracing::info!(user_id = %admin.user_id, invite_id = %issued.row.invite_id, hours, "invite created");
        Ok(issued)
    }

    /// The newest invites, for the dashboard.
    pub async fn invites(&self) -> Result<Vec<crate::db::invites::InviteRow>, sqlx::Error> {
        invite_rows::list(&self.db, invites::LIST_LIMIT).await
    }

    /// Withdraws an unused invite; `false` when there is none with this id.
    pub async fn revoke_invite(
        &self,
        admin: &UserView,
        invite_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let revoked = invite_rows::revoke(&self.db, invite_id).await?;
        if revoked {
            tracing::info!(user_id = %admin.user_id, %invite_id, "invite revoked");
        }
        Ok(revoked)
    }

    /// The full sign-up link for an invite's secret.
    pub fn invite_link(&self, token: &str) -> String {
        format!("{}{}", self.origin, invites::link_path(token))
    }

    /// Whether a new account may be made under the registration policy. With
    /// invites, the answer is the invite's hash, which the caller redeems in
    /// the transaction that creates the account ([`Self::redeem`]); checking it
    /// here too makes a bad link fail before any password is hashed.
    async fn admit_new_account(&self, invite: Option<&str>) -> Result<Option<String>, AuthError> {
        match self.registration.mode {
            Registration::Open => Ok(None),
            Registration::Closed => Err(AuthError::RegistrationClosed),
            Registration::Invite => {
                let token = invite
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or(AuthError::InviteRequired)?;
                // Invites are 43 characters; anything much longer is not one.
                if token.len() > 128 {
                    return Err(AuthError::InviteInvalid);
                }
                let hash = invites::token_hash(token);
                if !invite_rows::is_open(&self.db, &hash, chrono::Utc::now().timestamp()).await? {
                    return Err(AuthError::InviteInvalid);
                }
                Ok(Some(hash))
            }
        }
    }

    /// Uses up the invite admitted by [`Self::admit_new_account`] for the
    /// account just made in `tx`; someone else redeeming it first (or it
    /// expiring or being revoked meanwhile) is [`AuthError::InviteInvalid`],
    /// and the caller's transaction, account included, rolls back.
    async fn redeem(
        &self,
        tx: &mut Tx,
        invite: Option<&str>,
        user_id: &str,
    ) -> Result<(), AuthError> {
        let Some(hash) = invite else { return Ok(()) };
        if invite_rows::redeem(&mut *tx, hash, user_id, chrono::Utc::now()).await? {
            tracing::info!(%user_id, "invite redeemed");
            Ok(())
        } else {
            Err(AuthError::InviteInvalid)
        }
    }

    /// The accounts behind recently checked tokens (kept current by
    /// `sessions::follow_account_changes` on PostgreSQL).
    pub fn accounts(&self) -> &AccountCache {
        &self.accounts
    }

    pub fn jwt(&self) -> &JwtKeys {
        &self.jwt
    }

    /// A single-use challenge for an Ed25519 key to sign.
    pub async fn soulfra_challenge(&self, public_key: &str) -> Result<Challenge, AuthError> {
        self.challenges.issue(public_key).await
    }

    /// Keeps Ed25519 challenges in Redis, so any replica can check a proof of
    /// a challenge another issued (still once only).
    pub fn sharing_challenges(mut self, shared: Option<crate::cluster::SharedState>) -> Self {
        self.challenges = Challenges::new(&self.origin, shared);
        self
    }

    /// Signs in the holder of an Ed25519 key: the first valid proof creates the
    /// account (named `username` when given and free, else after the key).
    pub async fn soulfra_verify(
        &self,
        public_key: &str,
        challenge: &str,
        signature: &str,
        username: Option<&str>,
        invite: Option<&str>,
        ip: IpAddr,
    ) -> Result<(Session, bool), AuthError> {
        let key = match self
            .challenges
            .verify(public_key, challenge, signature)
            .await?
        {
            Ok(key) => key,
            Err(why) => {
                tracing::info!(reason = %why, "ed25519 sign-in refused");
                return Err(AuthError::ProofRejected(why));
            }
        };
        let wanted = match username.map(str::trim).filter(|u| !u.is_empty()) {
            Some(name) => Some(validate::username(name)?.to_string()),
            None => None,
        };
        let identity = Identity::Ed25519 { public_key: &key };
        // A key's first proof creates an account: a sign-up like any other.
        if identities::find_user(&self.db, &identity).await?.is_none() {
            self.admit_new_account(invite).await?;
            self.throttle
                .admit_signup(ip)
                .map_err(AuthError::SignupThrottled)?;
        }
        let generated = format!("key-{}", &key[..12]);
        let (row, created) = self
            .user_for_identity(
                &identity,
                wanted.as_deref().unwrap_or(&generated),
                None,
                invite,
            )
            .await?;
        tracing::info!(user_id = %row.user_id, created, "ed25519 sign-in succeeded");
        Ok((self.session_for(&row)?, created))
    }

    /// The account behind an identity, created on first use (if the
    /// registration policy and `invite` allow). A race between two first
    /// sign-ins is settled by the identity's primary key: the loser reads the
    /// winner's account.
    pub async fn user_for_identity(
        &self,
        identity: &Identity<'_>,
        username: &str,
        email: Option<&str>,
        invite: Option<&str>,
    ) -> Result<(UserRow, bool), AuthError> {
        if let Some(row) = identities::find_user(&self.db, identity).await? {
            return Ok((row, false));
        }
        let invite = self.admit_new_account(invite).await?;
        let invite = invite.as_deref();
        let mut candidate = username.to_string();
        let mut attempt = self
            .insert_with_identity(passwordless(&candidate, email), identity, invite)
            .await;
        for _ in 0..3 {
            if !matches!(
                attempt,
                Err(IdentityInsertError::Insert(InsertError::Taken(
                    Taken::Username
                )))
            ) {
                break;
            }
            // Generated and asked-for names can collide; a short random suffix
            // keeps the sign-in working (the name can be changed later).
            let suffix: u32 = rand::random();
            let base = &username[..username.len().min(54)];
            candidate = format!("{base}-{:06x}", suffix & 0xff_ffff);
            attempt = self
                .insert_with_identity(passwordless(&candidate, email), identity, invite)
                .await;
        }
        match attempt {
            Ok(row) => Ok((row, true)),
            Err(IdentityInsertError::Invite(e)) => Err(e),
            Err(IdentityInsertError::Insert(InsertError::Taken(Taken::Identity))) => {
                identities::find_user(&self.db, identity)
                    .await?
                    .map(|row| (row, false))
                    .ok_or(AuthError::InvalidToken)
            }
            Err(IdentityInsertError::Insert(InsertError::Taken(which))) => {
                Err(AuthError::Taken(which))
            }
            Err(IdentityInsertError::Insert(InsertError::Db(e))) => Err(AuthError::Db(e)),
        }
    }

    /// Creates the account and the sign-in identity it is for in one
    /// transaction, so there is never an account nobody can sign in to, nor two
    /// accounts for one identity (the identity's key decides a race:
    /// [`Taken::Identity`], and the account is rolled back with it).
    async fn insert_with_identity(
        &self,
        user: NewUser<'_>,
        identity: &Identity<'_>,
        invite: Option<&str>,
    ) -> Result<UserRow, IdentityInsertError> {
        let mut tx = self.db.begin().await.map_err(InsertError::from)?;
        let row = users::insert(&mut tx, user).await?;
        identities::link(&mut tx, &row.user_id, identity).await?;
        self.redeem(&mut tx, invite, &row.user_id)
            .await
            .map_err(IdentityInsertError::Invite)?;
        tx.commit().await.map_err(InsertError::from)?;
        Ok(row)
    }

    /// Turns a provider-verified identity into a session: its account when it
    /// has one; else, with `link_user`, attaches it to that (signed-in) account;
    /// else a new account. Accounts are found by (provider, subject) only.
    pub async fn oauth_sign_in(
        &self,
        found: &crate::auth::oauth::VerifiedIdentity,
        link_user: Option<&str>,
        invite: Option<&str>,
    ) -> Result<Session, AuthError> {
        let provider = found.provider;
        let verified_email = found
            .email
            .as_deref()
            .filter(|_| found.email_verified)
            .and_then(|e| validate::email(e).ok());
        let verified_email = verified_email.as_deref();
        let identity = Identity::OAuth {
            provider: provider.name(),
            subject: &found.subject,
            email: found.email.as_deref(),
        };
        if let Some(user_id) = link_user {
            if verified_email.is_none() {
                return Err(AuthError::OAuthEmailUnverified(provider.label()));
            }
            match identities::link(&self.db, user_id, &identity).await {
                Ok(()) => {}
                // Linking twice to the same account is fine; to another is not.
                Err(InsertError::Taken(Taken::Identity)) => {
                    let owner = identities::find_user(&self.db, &identity).await?;
                    if owner.as_ref().map(|o| o.user_id.as_str()) != Some(user_id) {
                        return Err(AuthError::Taken(Taken::Identity));
                    }
                }
                Err(InsertError::Taken(which)) => return Err(AuthError::Taken(which)),
                Err(InsertError::Db(e)) => return Err(AuthError::Db(e)),
            }
            let row = users::find_by_id(&self.db, user_id)
                .await?
                .ok_or(AuthError::InvalidToken)?;
            tracing::info!(user_id = %row.user_id, provider = provider.name(), "oauth identity linked");
            return self.session_for(&row);
        }
        if let Some(row) = identities::find_user(&self.db, &identity).await? {
            identities::touch_oauth_email(
                &self.db,
                provider.name(),
                &found.subject,
                found.email.as_deref(),
            )
            .await?;
            tracing::info!(user_id = %row.user_id, provider = provider.name(), "oauth sign-in succeeded");
            return self.session_for(&row);
        }
        if let Some(email) = verified_email {
            if users::find_by_email(&self.db, email).await?.is_some() {
                return Err(AuthError::OAuthAccountExists(provider.label()));
            }
        }
        let username = oauth_username(provider.name(), found.name_hint.as_deref(), verified_email);
        let (row, _) = self
            .user_for_identity(&identity, &username, verified_email, invite)
            .await?;
        tracing::info!(user_id = %row.user_id, provider = provider.name(), "oauth account created");
        self.session_for(&row)
    }

    /// Renames the caller's account.
    pub async fn rename(&self, user: &UserView, username: &str) -> Result<UserView, AuthError> {
        let username = validate::username(username)?;
        let renamed = users::set_username(&self.db, &user.user_id, username).await;
        self.accounts.forget(&user.user_id);
        match renamed {
            Ok(Some(row)) => Ok(row.view()),
            Ok(None) => Err(AuthError::InvalidToken),
            Err(InsertError::Taken(which)) => Err(AuthError::Taken(which)),
            Err(InsertError::Db(e)) => Err(AuthError::Db(e)),
        }
    }

    pub fn token_ttl(&self) -> Duration {
        self.jwt.ttl()
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    pub async fn register(&self, req: RegisterRequest, ip: IpAddr) -> Result<Session, AuthError> {
        let invite = self.admit_new_account(req.invite.as_deref()).await?;
        self.throttle
            .admit_signup(ip)
            .map_err(AuthError::SignupThrottled)?;
        let username = validate::username(&req.username)?;
        let email = match req
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(e) => Some(validate::email(e)?),
            None => None,
        };
        validate::password(&req.password)?;
        let hash = self.passwords.hash(req.password).await?;
        let new_user = NewUser {
            username,
            email: email.as_deref(),
            password_hash: Some(&hash),
            role: Role::User,
            persistent: false,
        };
        let mut tx = self.db.begin().await?;
        let row = users::insert(&mut tx, new_user)
            .await
            .map_err(|e| match e {
                InsertError::Taken(which) => AuthError::Taken(which),
                InsertError::Db(e) => AuthError::Db(e),
            })?;
        self.redeem(&mut tx, invite.as_deref(), &row.user_id)
            .await?;
        tx.commit().await?;
        tracing::info!(user_id = %row.user_id, "account registered");
        self.session_for(&row)
    }

    pub async fn login(&self, req: LoginRequest, ip: IpAddr) -> Result<Session, AuthError> {
        let identifier = match (req.email.as_deref(), req.username.as_deref()) {
            (Some(_), Some(_)) => return Err(AuthError::AmbiguousLogin),
            (Some(e), None) | (None, Some(e)) if !e.trim().is_empty() => e.trim().to_string(),
            _ => return Err(AuthError::MissingLogin),
        };
        // No account has a longer one; refused before it becomes a lookup or
        // a throttle key (which would otherwise hold up to a whole body).
        if identifier.chars().count() > super::throttle::MAX_IDENTIFIER_CHARS {
            return Err(AuthError::Field(FieldError::LoginTooLong));
        }
        if let Some(wait) = self.throttle.blocked_for(&identifier, ip) {
            tracing::warn!(%ip, "sign-in throttled");
            return Err(AuthError::Throttled(wait));
        }
        // Over-long passwords cannot match any stored one; refuse before hashing.
        if req.password.len() > app::wire::PASSWORD_MAX_CHARS * 4 {
            return Err(AuthError::Field(FieldError::PasswordTooLong));
        }
        let row = if req.email.is_some() {
            users::find_by_email(&self.db, &validate::normalise_email(&identifier)).await?
        } else {
            users::find_by_username(&self.db, &identifier).await?
        };
        let hash = row.as_ref().and_then(|r| r.password_hash.clone());
        let verified = self.passwords.verify(req.password, hash).await?;
        match row {
            Some(row) if verified => {
                tracing::info!(user_id = %row.user_id, %ip, "sign-in succeeded");
                self.session_for(&row)
            }
            known => {
                self.throttle.record_failure(&identifier, ip);
                match known {
                    Some(row) => {
                        tracing::info!(user_id = %row.user_id, %ip, "sign-in failed: wrong password")
                    }
                    None => tracing::info!(%ip, "sign-in failed: unknown account"),
                }
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    /// Ends every session of the user (the per-user epoch moves on).
    pub async fn logout(&self, user: &UserView) -> Result<(), AuthError> {
        users::bump_session_epoch(&self.db, &user.user_id).await?;
        self.accounts.forget(&user.user_id);
        tracing::info!(user_id = %user.user_id, "signed out");
        Ok(())
    }

    /// Deletes the caller's own account after checking its password again. Wrong
    /// passwords count towards the same sign-in throttle as `login`.
    pub async fn delete_account(
        &self,
        user: &UserView,
        password: String,
        ip: IpAddr,
    ) -> Result<(), AuthError> {
        if let Some(wait) = self.throttle.blocked_for(&user.username, ip) {
            return Err(AuthError::Throttled(wait));
        }
        if password.len() > app::wire::PASSWORD_MAX_CHARS * 4 {
            return Err(AuthError::Field(FieldError::PasswordTooLong));
        }
        let row = users::find_by_id(&self.db, &user.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if !self
            .passwords
            .verify(password, row.password_hash.clone())
            .await?
        {
            self.throttle.record_failure(&user.username, ip);
            return Err(AuthError::InvalidCredentials);
        }
        users::delete(&self.db, &row.user_id).await?;
        self.accounts.forget(&row.user_id);
        tracing::info!(user_id = %row.user_id, "account deleted by its owner");
        Ok(())
    }

    /// Resolves a bearer token or cookie value to the user it belongs to, checking
    /// the account still exists and the session was not ended. The account may
    /// come from the cache (see `sessions`): right for every ordinary request.
    pub async fn authenticate(&self, token: &str) -> Result<AuthedUser, AuthError> {
        self.authenticate_from(token, AccountSource::Cache).await
    }

    /// [`authenticate`](Self::authenticate) against the database itself, for
    /// decisions about privilege (operator endpoints, Mission Control, pages).
    /// A change to an account made behind calos's back reaches the cache on
    /// PostgreSQL by a notification, which can arrive a moment after the next
    /// request; a promotion or demotion must hold on that very request. Such
    /// requests are rare, so the round trip costs nothing that matters.
    pub async fn authenticate_fresh(&self, token: &str) -> Result<AuthedUser, AuthError> {
        self.authenticate_from(token, AccountSource::Database).await
    }

    async fn authenticate_from(
        &self,
        token: &str,
        source: AccountSource,
    ) -> Result<AuthedUser, AuthError> {
        let started = std::time::Instant::now();
        let claims = self
            .jwt
            .verify(token)
            .map_err(|_: TokenError| AuthError::InvalidToken)?;
        let verify_time = started.elapsed();
        let looked_up = std::time::Instant::now();
        let cached = match source {
            AccountSource::Cache => self.accounts.get(&claims.sub),
            AccountSource::Database => None,
        };
        let account = match cached {
            Some(account) => account,
            None => {
                let row = users::find_by_id(&self.db, &claims.sub)
                    .await?
                    .ok_or(AuthError::InvalidToken)?;
                let account = Arc::new(CachedAccount {
                    user: row.view(),
                    session_epoch: row.session_epoch,
                });
                self.accounts.remember(CachedAccount::clone(&account));
                account
            }
        };
        let db_time = looked_up.elapsed();
        if account.session_epoch != claims.sep {
            return Err(AuthError::InvalidToken);
        }
        Ok(AuthedUser {
            user: account.user.clone(),
            verify_time,
            db_time,
            started,
        })
    }

    pub fn session_for(&self, row: &UserRow) -> Result<Session, AuthError> {
        let token = self
            .jwt
            .issue(&row.user_id, row.session_epoch)
            .map_err(|e| AuthError::Token(e.to_string()))?;
        Ok(Session {
            token,
            user: row.view(),
        })
    }
}

/// Why an account with an identity was not made: the insert's own refusal, or
/// its invite was taken first.
enum IdentityInsertError {
    Insert(InsertError),
    Invite(AuthError),
}

impl From<InsertError> for IdentityInsertError {
    fn from(e: InsertError) -> Self {
        Self::Insert(e)
    }
}

/// Where [`AuthService::authenticate_from`] reads the account.
#[derive(Clone, Copy)]
enum AccountSource {
    Cache,
    Database,
}
