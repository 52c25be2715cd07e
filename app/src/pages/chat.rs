//! `/`: the chat page. The server only renders it for signed-in users (it
//! redirects everyone else to `/login`). This issue provides the shell: the
//! conversation area and composer are wired to models by the provider router.

use super::{hydration_flag, Header};
use leptos::prelude::*;

#[component]
pub fn ChatPage() -> impl IntoView {
    let hydrated = hydration_flag();
    view! {
        <Header/>
        <main class="page chat" data-hydrated=move || hydrated.get().to_string()>
            <section class="conversation" aria-label="Conversation">
                <p class="empty">"No messages yet."</p>
            </section>
            <form class="composer" aria-label="Message composer">
                <textarea name="prompt" rows="3" placeholder="No model is connected yet" disabled=true></textarea>
                <button type="submit" disabled=true>"Send"</button>
            </form>
        </main>
    }
}
