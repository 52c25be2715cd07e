//! The pages calos serves (chat and login on the main port, Mission Control on
//! the dashboard port), and the pieces they share.

mod breakdown;
mod chat;
mod dashboard;
mod header;
mod invites;
mod keys;
mod login;
mod usage;
mod what_changed;

pub use chat::ChatPage;
pub use dashboard::DashboardPage;
pub use header::Header;
pub use keys::KeysPage;
pub use login::LoginPage;
pub use usage::UsagePage;

use leptos::prelude::*;

/// A signal that turns true once the page has hydrated. Effects never run during
/// SSR, so the `data-hydrated` attribute it drives is the browser tests' cue that
/// the WASM handlers are attached.
pub fn hydration_flag() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    hydrated
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <main class="page narrow">
            <h1>"Not found"</h1>
            <p>"There is no page at this address. "<a href="/">"Back to chat"</a></p>
        </main>
    }
}
