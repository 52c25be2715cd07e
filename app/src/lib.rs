//! calos pages: the Leptos components rendered on the server and hydrated in the
//! browser (the `frontend` crate is only the WASM entry point), plus the wire types
//! the pages share with the API.
//!
//! Pages are plain HTML forms first: every action works before (or without) the
//! WASM bundle, and hydration upgrades them to in-place JSON calls against the same
//! REST API that curl and the CLI use.

#[cfg(feature = "hydrate")]
mod browser;
#[cfg(feature = "hydrate")]
mod browser_key;
pub mod history;
pub mod markdown;
pub mod pages;
pub mod session;
pub mod sse;
pub mod verdict;
pub mod wire;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    ParamSegment, StaticSegment,
};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let user: session::CurrentUser = OnceResource::new_blocking(session::whoami());
    provide_context(user);

    view! {
        <Stylesheet id="leptos" href="/pkg/calos.css"/>
        <Title text="calos"/>
        <Router>
            <Routes fallback=|| view! { <pages::NotFound/> }>
                <Route path=StaticSegment("") view=pages::ChatPage/>
                <Route path=(StaticSegment("c"), ParamSegment("id")) view=pages::ChatPage/>
                <Route path=StaticSegment("login") view=pages::LoginPage/>
                <Route path=StaticSegment("keys") view=pages::KeysPage/>
                <Route path=StaticSegment("usage") view=pages::UsagePage/>
                <Route path=StaticSegment("dashboard") view=pages::DashboardPage/>
                <Route path=StaticSegment("dashboard.html") view=pages::DashboardPage/>
            </Routes>
        </Router>
    }
}
