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

/// What the login page offers: the configured OAuth providers and who may
/// sign up (`open`, `invite` or `closed`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignInSettings {
    pub providers: Vec<crate::wire::OAuthButton>,
    pub registration: String,
}

/// [`SignInSettings`], inserted by the server into each page request (an `Arc`:
/// the layer clones it into every request).
#[derive(Debug, Clone, Default)]
pub struct SignInChoices(pub std::sync::Arc<SignInSettings>);

#[server(endpoint = "session/sign_in_options")]
pub async fn sign_in_options() -> Result<SignInSettings, ServerFnError> {
    let parts = use_context::<http::request::Parts>();
    Ok(parts
        .and_then(|p| {
            p.extensions
                .get::<SignInChoices>()
                .map(|o| o.0.as_ref().clone())
        })
        .unwrap_or_default())
}

/// The current user, available to every component under `App`.
pub type CurrentUser = OnceResource<Result<Option<UserView>, ServerFnError>>;
