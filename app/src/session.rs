//! Who is signed in, as the pages see it.
//!
//! The server resolves the session cookie once per request (in its auth layer) and
//! puts the user into the request's extensions as [`SessionUser`]. During SSR the
//! `whoami` server function reads it from there; the result is serialised into the
//! page so hydration starts with the same answer without a second request.

use crate::wire::UserView;
use leptos::prelude::*;

/// The signed-in user for this request, inserted by the server's auth layer.
#[derive(Debug, Clone)]
pub struct SessionUser(pub UserView);

#[server(endpoint = "session/whoami")]
pub async fn whoami() -> Result<Option<UserView>, ServerFnError> {
    let parts = use_context::<http::request::Parts>();
    Ok(parts.and_then(|p| p.extensions.get::<SessionUser>().map(|s| s.0.clone())))
}

/// The OAuth providers this server offers, inserted by the server for pages.
#[derive(Debug, Clone, Default)]
pub struct OAuthOptions(pub std::sync::Arc<Vec<crate::wire::OAuthButton>>);

#[server(endpoint = "session/sign_in_options")]
pub async fn sign_in_options() -> Result<Vec<crate::wire::OAuthButton>, ServerFnError> {
    let parts = use_context::<http::request::Parts>();
    Ok(parts
        .and_then(|p| {
            p.extensions
                .get::<OAuthOptions>()
                .map(|o| o.0.as_ref().clone())
        })
        .unwrap_or_default())
}

/// The current user, available to every component under `App`.
pub type CurrentUser = OnceResource<Result<Option<UserView>, ServerFnError>>;
