//! Account flows: register, sign in, sign out, and resolving a token to a user.
//! No HTTP types here; routes map [`AuthError`] onto the API error.

use super::jwt::{JwtKeys, TokenError};
use super::password::{PasswordError, Passwords};
use super::throttle::LoginThrottle;
use super::validate::{self, FieldError};
use crate::db::users::{self, InsertError, NewUser, Taken, UserRow};
use crate::db::Db;
use app::wire::{LoginRequest, RegisterRequest, Role, UserView};
use std::net::IpAddr;
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
}

/// A successfully authenticated request's user, as of this request.
#[derive(Debug, Clone)]
pub struct AuthedUser {
    pub user: UserView,
    /// Checking the token's signature and claims.
    pub verify_time: std::time::Duration,
    /// Loading the account it names.
    pub db_time: std::time::Duration,
}

#[derive(Clone)]
pub struct AuthService {
    db: Db,
    passwords: Passwords,
    jwt: JwtKeys,
    throttle: LoginThrottle,
}

/// A fresh session: the token and who it is for.
pub struct Session {
    pub token: String,
    pub user: UserView,
}

impl AuthService {
    pub fn new(db: Db, passwords: Passwords, jwt: JwtKeys, throttle: LoginThrottle) -> Self {
        Self {
            db,
            passwords,
            jwt,
            throttle,
        }
    }

    pub fn token_ttl(&self) -> Duration {
        self.jwt.ttl()
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    pub async fn register(&self, req: RegisterRequest) -> Result<Session, AuthError> {
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
            email,
            password_hash: Some(&hash),
            role: Role::User,
            persistent: false,
        };
        let row = users::insert(&self.db, new_user)
            .await
            .map_err(|e| match e {
                InsertError::Taken(which) => AuthError::Taken(which),
                InsertError::Db(e) => AuthError::Db(e),
            })?;
        tracing::info!(user_id = %row.user_id, "account registered");
        self.session_for(&row)
    }

    pub async fn login(&self, req: LoginRequest, ip: IpAddr) -> Result<Session, AuthError> {
        let identifier = match (req.email.as_deref(), req.username.as_deref()) {
            (Some(_), Some(_)) => return Err(AuthError::AmbiguousLogin),
            (Some(e), None) | (None, Some(e)) if !e.trim().is_empty() => e.trim().to_string(),
            _ => return Err(AuthError::MissingLogin),
        };
        if let Some(wait) = self.throttle.blocked_for(&identifier, ip) {
            tracing::warn!(%ip, "sign-in throttled");
            return Err(AuthError::Throttled(wait));
        }
        // Over-long passwords cannot match any stored one; refuse before hashing.
        if req.password.len() > app::wire::PASSWORD_MAX_CHARS * 4 {
            return Err(AuthError::Field(FieldError::PasswordTooLong));
        }
        let row = if req.email.is_some() {
            users::find_by_email(&self.db, &identifier).await?
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
        tracing::info!(user_id = %row.user_id, "account deleted by its owner");
        Ok(())
    }

    /// Resolves a bearer token or cookie value to the user it belongs to, checking
    /// the account still exists and the session was not ended.
    pub async fn authenticate(&self, token: &str) -> Result<AuthedUser, AuthError> {
        let started = std::time::Instant::now();
        let claims = self
            .jwt
            .verify(token)
            .map_err(|_: TokenError| AuthError::InvalidToken)?;
        let verify_time = started.elapsed();
        let looked_up = std::time::Instant::now();
        let row = users::find_by_id(&self.db, &claims.sub)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let db_time = looked_up.elapsed();
        if row.session_epoch != claims.sep {
            return Err(AuthError::InvalidToken);
        }
        Ok(AuthedUser {
            user: row.view(),
            verify_time,
            db_time,
        })
    }

    fn session_for(&self, row: &UserRow) -> Result<Session, AuthError> {
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
