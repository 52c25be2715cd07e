//! `/login`: sign in or create an account.
//!
//! Both forms are ordinary HTML forms posting to `/login` and `/register`, so they
//! work before the WASM bundle arrives; errors then come back as `?error=CODE`.
//! Once hydrated, submit handlers validate fields in place and call the JSON API
//! (`/api/auth/login`, `/api/auth/register`) directly, showing field errors
//! without a reload. Either way the server sets the HttpOnly session cookie.

use super::hydration_flag;
use crate::wire::{login_error_message, ErrorDetail};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// Which form an error from the URL belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Login,
    Register,
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let hydrated = hydration_flag();
    let query = use_query_map();
    let from_url = move |form: Form| {
        let q = query.get_untracked();
        let which = match q.get("form").as_deref() {
            Some("register") => Form::Register,
            _ => Form::Login,
        };
        let code = q.get("error")?;
        let message = login_error_message(&code)?;
        (which == form).then(|| ErrorDetail {
            code: code.clone(),
            message: message.to_string(),
            field: None,
        })
    };
    let login_error = RwSignal::new(from_url(Form::Login));
    let register_error = RwSignal::new(from_url(Form::Register));
    let pending = RwSignal::new(false);

    let providers = OnceResource::new_blocking(crate::session::sign_in_options());
    // Shown once hydrated, and only where WebCrypto does Ed25519.
    let key_supported = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async move {
        key_supported.set(crate::browser_key::supported().await);
    });
    let on_key = move |_| key_login(login_error, pending);
    let on_login = move |ev: SubmitEvent| submit_login(ev, login_error, pending);
    let on_register = move |ev: SubmitEvent| submit_register(ev, register_error, pending);

    view! {
        <header class="topbar">
            <a class="brand" href="/">"calos"</a>
            <span class="tagline">"where every millisecond of a chat reply goes"</span>
        </header>
        <main class="page auth" data-hydrated=move || hydrated.get().to_string()>
            <section class="card" aria-labelledby="signin-title">
                <h2 id="signin-title">"Sign in"</h2>
                <form method="post" action="/login" on:submit=on_login novalidate=true>
                    <FormError error=login_error field=None/>
                    <label>"Email or username"
                        <input name="login" autocomplete="username" required=true/>
                    </label>
                    <FormError error=login_error field=Some("login")/>
                    <label>"Password"
                        <input name="password" type="password" autocomplete="current-password" required=true/>
                    </label>
                    <FormError error=login_error field=Some("password")/>
                    <button type="submit" disabled=move || pending.get()>"Sign in"</button>
                </form>
                <Show when=move || key_supported.get()>
                    <div class="oauth">
                        <button type="button" class="key" data-testid="key-login"
                            on:click=on_key disabled=move || pending.get()>
                            "Sign in with this browser's key"
                        </button>
                    </div>
                </Show>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        let list = providers.await.unwrap_or_default();
                        (!list.is_empty()).then(|| view! {
                            <div class="oauth" data-testid="oauth-buttons">
                                <p class="muted">"or continue with"</p>
                                {list.into_iter().map(|p| view! {
                                    // rel=external: a full navigation to the server, not a client-side route.
                                    <a class="button secondary" href=p.url rel="external" data-provider=p.name.clone()>
                                        {p.label}
                                    </a>
                                }).collect_view()}
                            </div>
                        })
                    })}
                </Suspense>
            </section>
            <section class="card" aria-labelledby="register-title">
                <h2 id="register-title">"Create account"</h2>
                <form method="post" action="/register" on:submit=on_register novalidate=true>
                    <FormError error=register_error field=None/>
                    <label>"Username"
                        <input name="username" autocomplete="username" required=true/>
                    </label>
                    <FormError error=register_error field=Some("username")/>
                    <label>"Email (optional)"
                        <input name="email" type="email" autocomplete="email"/>
                    </label>
                    <FormError error=register_error field=Some("email")/>
                    <label>"Password"
                        <input name="password" type="password" autocomplete="new-password" required=true/>
                    </label>
                    <FormError error=register_error field=Some("password")/>
                    <button type="submit" disabled=move || pending.get()>"Create account"</button>
                </form>
            </section>
        </main>
    }
}

/// Shows the error when it belongs to `field` (`None`: errors tied to no field).
#[component]
fn FormError(error: RwSignal<Option<ErrorDetail>>, field: Option<&'static str>) -> impl IntoView {
    move || {
        error.get().and_then(|e| {
            let here = match (&e.field, field) {
                (Some(f), Some(want)) => f == want,
                (None, None) => true,
                // A field error for a field this form lacks is shown at the top.
                (Some(f), None) => {
                    !["login", "username", "email", "password"].contains(&f.as_str())
                }
                (None, Some(_)) => false,
            };
            here.then(|| view! { <p class="form-error" role="alert">{e.message}</p> })
        })
    }
}

#[cfg(feature = "hydrate")]
fn submit_login(ev: SubmitEvent, error: RwSignal<Option<ErrorDetail>>, pending: RwSignal<bool>) {
    use crate::wire::LoginRequest;
    ev.prevent_default();
    let Some(form) = crate::browser::FormFields::from_event(&ev) else {
        return;
    };
    let login = form.get("login").trim().to_string();
    let password = form.get("password");
    if login.is_empty() {
        return error.set(Some(field_error("login", "Enter your email or username.")));
    }
    if password.is_empty() {
        return error.set(Some(field_error("password", "Enter your password.")));
    }
    let (email, username) = if login.contains('@') {
        (Some(login), None)
    } else {
        (None, Some(login))
    };
    let request = LoginRequest {
        email,
        username,
        password,
    };
    send(error, pending, "/api/auth/login", request);
}

#[cfg(feature = "hydrate")]
fn submit_register(ev: SubmitEvent, error: RwSignal<Option<ErrorDetail>>, pending: RwSignal<bool>) {
    use crate::wire::{RegisterRequest, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};
    ev.prevent_default();
    let Some(form) = crate::browser::FormFields::from_event(&ev) else {
        return;
    };
    let username = form.get("username").trim().to_string();
    let email = form.get("email").trim().to_string();
    let password = form.get("password");
    if username.is_empty() {
        return error.set(Some(field_error("username", "Choose a username.")));
    }
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return error.set(Some(field_error(
            "password",
            "Passwords need at least 8 characters.",
        )));
    }
    if chars > PASSWORD_MAX_CHARS {
        return error.set(Some(field_error(
            "password",
            "Passwords can have at most 128 characters.",
        )));
    }
    let email = (!email.is_empty()).then_some(email);
    send(
        error,
        pending,
        "/api/auth/register",
        RegisterRequest {
            username,
            password,
            email,
        },
    );
}

#[cfg(feature = "hydrate")]
fn field_error(field: &str, message: &str) -> ErrorDetail {
    ErrorDetail {
        code: "invalid_field".into(),
        message: message.into(),
        field: Some(field.into()),
    }
}

/// Posts the form as JSON; on success the server has set the session cookie, so a
/// full navigation to `/` renders the chat page for the new session.
#[cfg(feature = "hydrate")]
fn send<T: serde::Serialize + 'static>(
    error: RwSignal<Option<ErrorDetail>>,
    pending: RwSignal<bool>,
    url: &'static str,
    body: T,
) {
    error.set(None);
    pending.set(true);
    leptos::task::spawn_local(async move {
        match crate::browser::post_json(url, &body).await {
            Ok(()) => crate::browser::navigate("/"),
            Err(e) => {
                error.set(Some(e));
                pending.set(false);
            }
        }
    });
}

/// Soulfra from the page: an Ed25519 key kept by this browser signs a challenge.
#[cfg(feature = "hydrate")]
fn key_login(error: RwSignal<Option<ErrorDetail>>, pending: RwSignal<bool>) {
    error.set(None);
    pending.set(true);
    leptos::task::spawn_local(async move {
        match crate::browser_key::sign_in().await {
            Ok(()) => crate::browser::navigate("/"),
            Err(e) => {
                error.set(Some(e));
                pending.set(false);
            }
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn key_login(_: RwSignal<Option<ErrorDetail>>, _: RwSignal<bool>) {}

#[cfg(not(feature = "hydrate"))]
fn submit_login(_: SubmitEvent, _: RwSignal<Option<ErrorDetail>>, _: RwSignal<bool>) {}

#[cfg(not(feature = "hydrate"))]
fn submit_register(_: SubmitEvent, _: RwSignal<Option<ErrorDetail>>, _: RwSignal<bool>) {}
