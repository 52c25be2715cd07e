//! `/login`: sign in or create an account.
//!
//! Both forms are ordinary HTML forms posting to `/login` and `/register`, so they
//! work before the WASM bundle arrives; errors then come back as `?error=CODE`.
//! Once hydrated, submit handlers validate fields in place and call the JSON API
//! (`/api/auth/login`, `/api/auth/register`) directly, showing field errors
//! without a reload. Either way the server sets the HttpOnly session cookie.
//!
//! Sign-up follows the server's policy: open to anyone, only with an invite
//! link (`/login?form=register&invite=…`, whose secret every way of signing up
//! carries along), or closed.

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
            kind: None,
            code: code.clone(),
            message: message.to_string(),
            field: None,
        })
    };
    let login_error = RwSignal::new(from_url(Form::Login));
    let register_error = RwSignal::new(from_url(Form::Register));
    let pending = RwSignal::new(false);
    let invite = query
        .get_untracked()
        .get("invite")
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty());

    let options = OnceResource::new_blocking(crate::session::sign_in_options());
    // Shown once hydrated, and only where WebCrypto does Ed25519.
    let key_supported = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async move {
        key_supported.set(crate::browser_key::supported().await);
    });
    // Copy, so the key button's closure can be rebuilt whenever it shows.
    let key_invite = StoredValue::new(invite.clone());
    let on_key = move |_| key_login(login_error, pending, key_invite.get_value());
    let on_login = move |ev: SubmitEvent| submit_login(ev, login_error, pending);
    let on_register = move |ev: SubmitEvent| submit_register(ev, register_error, pending);
    let button_invite = invite.clone();

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
                    {move || {
                        let invite = button_invite.clone();
                        Suspend::new(async move {
                        let list = options.await.unwrap_or_default().providers;
                        (!list.is_empty()).then(|| view! {
                            <div class="oauth" data-testid="oauth-buttons">
                                <p class="muted">"or continue with"</p>
                                {list.into_iter().map(|p| {
                                    let href = match &invite {
                                        Some(invite) => format!("{}?invite={}", p.url, query_value(invite)),
                                        None => p.url,
                                    };
                                    view! {
                                        // rel=external: a full navigation to the server, not a client-side route.
                                        <a class="button secondary" href=href rel="external" data-provider=p.name.clone()>
                                            {p.label}
                                        </a>
                                    }
                                }).collect_view()}
                            </div>
                        })
                    })}}
                </Suspense>
            </section>
            <Suspense fallback=|| ()>
                {move || {
                    let invite = invite.clone();
                    Suspend::new(async move {
                        let registration = options.await.unwrap_or_default().registration;
                        match sign_up_offer(&registration, invite.is_some()) {
                            SignUpOffer::Form => view! {
                                <RegisterCard error=register_error pending=pending invite=invite on_register=on_register/>
                            }.into_any(),
                            SignUpOffer::AskForInvite => view! {
                                <section class="card" aria-labelledby="register-title" data-testid="sign-up-closed">
                                    <h2 id="register-title">"Create account"</h2>
                                    <FormError error=register_error field=None/>
                                    <p class="muted">"Sign-ups here are by invitation. Ask an administrator for an invite link."</p>
                                </section>
                            }.into_any(),
                            SignUpOffer::Closed => view! {
                                <section class="card" aria-labelledby="register-title" data-testid="sign-up-closed">
                                    <h2 id="register-title">"Create account"</h2>
                                    <p class="muted">"This gateway does not take sign-ups. Ask an administrator for an account."</p>
                                </section>
                            }.into_any(),
                        }
                    })
                }}
            </Suspense>
        </main>
    }
}

/// What the sign-up side of the page shows.
#[derive(Debug, PartialEq, Eq)]
enum SignUpOffer {
    Form,
    AskForInvite,
    Closed,
}

/// The policy as the server reports it (an unknown or missing one, from a
/// listener that does not say, shows the form and lets the server decide).
fn sign_up_offer(registration: &str, has_invite: bool) -> SignUpOffer {
    match registration {
        "closed" => SignUpOffer::Closed,
        "invite" if !has_invite => SignUpOffer::AskForInvite,
        _ => SignUpOffer::Form,
    }
}

/// An invite as a query value: the secret is base64url, so anything else is
/// dropped rather than escaped.
fn query_value(invite: &str) -> String {
    invite
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[component]
fn RegisterCard(
    error: RwSignal<Option<ErrorDetail>>,
    pending: RwSignal<bool>,
    invite: Option<String>,
    on_register: impl Fn(SubmitEvent) + 'static,
) -> impl IntoView {
    let register_error = error;
    view! {
            <section class="card" aria-labelledby="register-title">
                <h2 id="register-title">"Create account"</h2>
                {invite.is_some().then(|| view! {
                    <p class="muted" data-testid="invited">"You were invited: this link creates one account."</p>
                })}
                <form method="post" action="/register" on:submit=on_register novalidate=true>
                    <input type="hidden" name="invite" value=invite.unwrap_or_default()/>
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
    let invite = form.get("invite").trim().to_string();
    send(
        error,
        pending,
        "/api/auth/register",
        RegisterRequest {
            username,
            password,
            email,
            invite: (!invite.is_empty()).then_some(invite),
        },
    );
}

#[cfg(feature = "hydrate")]
fn field_error(field: &str, message: &str) -> ErrorDetail {
    ErrorDetail {
        kind: None,
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
fn key_login(
    error: RwSignal<Option<ErrorDetail>>,
    pending: RwSignal<bool>,
    invite: Option<String>,
) {
    error.set(None);
    pending.set(true);
    leptos::task::spawn_local(async move {
        match crate::browser_key::sign_in(invite).await {
            Ok(()) => crate::browser::navigate("/"),
            Err(e) => {
                error.set(Some(e));
                pending.set(false);
            }
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn key_login(_: RwSignal<Option<ErrorDetail>>, _: RwSignal<bool>, _: Option<String>) {}

#[cfg(not(feature = "hydrate"))]
fn submit_login(_: SubmitEvent, _: RwSignal<Option<ErrorDetail>>, _: RwSignal<bool>) {}

#[cfg(not(feature = "hydrate"))]
fn submit_register(_: SubmitEvent, _: RwSignal<Option<ErrorDetail>>, _: RwSignal<bool>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_up_side_follows_the_policy() {
        assert_eq!(sign_up_offer("open", false), SignUpOffer::Form);
        assert_eq!(sign_up_offer("", false), SignUpOffer::Form);
        assert_eq!(sign_up_offer("invite", false), SignUpOffer::AskForInvite);
        assert_eq!(sign_up_offer("invite", true), SignUpOffer::Form);
        assert_eq!(sign_up_offer("closed", true), SignUpOffer::Closed);
    }

    #[test]
    fn only_an_invite_shaped_value_reaches_a_link() {
        assert_eq!(query_value("aB3-_x"), "aB3-_x");
        assert_eq!(
            query_value("a&next=//evil.example.com"),
            "anextevilexamplecom"
        );
    }
}
