//! Accounts and sessions: password hashing, tokens, brute-force throttling, the
//! account flows, and the extractors that authenticate requests.

pub mod api_keys;
pub mod invites;
pub mod jwt;
pub mod oauth;
pub mod password;
pub mod service;
pub mod sessions;
pub mod soulfra;
pub mod throttle;
pub mod validate;

pub use service::{AuthError, AuthService, AuthedUser};
