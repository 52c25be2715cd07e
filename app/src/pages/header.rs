//! The top bar: the product name, who is signed in, links to their API keys
//! and usage, and a sign-out button.
//!
//! Sign-out is a plain form post to `/logout`, which ends the session on the
//! server (the token stops working everywhere), so it needs no JavaScript.

use crate::session::CurrentUser;
use leptos::prelude::*;

#[component]
pub fn Header() -> impl IntoView {
    let user = use_context::<CurrentUser>();
    view! {
        <header class="topbar">
            <a class="brand" href="/">"calos"</a>
            <span class="tagline">"where every millisecond of a chat reply goes"</span>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let signed_in = match user {
                        Some(user) => user.await.ok().flatten(),
                        None => None,
                    };
                    signed_in.map(|u| view! {
                        <div class="session">
                            <span class="who" data-testid="signed-in-as">
                                "Signed in as "<strong>{u.username.clone()}</strong>
                            </span>
                            // rel=external: a full page load, so the page's data is server-rendered.
                            <a href="/keys" rel="external" data-testid="keys-link">"API keys"</a>
                            <a href="/usage" rel="external" data-testid="usage-link">"Usage"</a>
                            <form method="post" action="/logout" class="inline">
                                <button type="submit" class="secondary">"Sign out"</button>
                            </form>
                        </div>
                    })
                })}
            </Suspense>
        </header>
    }
}
