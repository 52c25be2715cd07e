//! `/` and `/c/{id}`: the chat page. The server only renders it for signed-in
//! users (others are redirected to `/login`), with the user's conversations
//! in a sidebar and the open one's messages, so both are there before the
//! WASM is. Pick a model, type, press Enter (Shift+Enter for a new line): the
//! first message on `/` starts a conversation and the address becomes
//! `/c/{id}`; the server stores every message and reply, and sends the
//! history to the model itself. The reply streams in from
//! `/api/llm/complete`; Stop aborts it (the server keeps what arrived), and
//! the last reply can be regenerated. Under each reply: its model and timing
//! breakdown, with the network share measured by this browser; one reply can
//! be pinned as the baseline the others show their differences against.

mod actions;
mod baseline;
mod pin;
mod sidebar;
mod turn;

use super::{hydration_flag, Header};
use crate::history::{chat_history, ChatStart};
use crate::wire::ConversationView;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use sidebar::Sidebar;
pub use turn::Turn;
use turn::TurnView;

/// Whether a key press in the message box sends: Enter alone, and not while
/// an input method is composing a character (Enter then picks the character).
pub fn sends_on(key: &str, shift: bool, composing: bool) -> bool {
    key == "Enter" && !shift && !composing
}

#[component]
pub fn ChatPage() -> impl IntoView {
    let id = use_params_map().with_untracked(|p| p.get("id"));
    let start = OnceResource::new_blocking(chat_history(id));
    view! {
        <Header/>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let start = start.await.unwrap_or_default();
                view! { <ChatView start/> }
            })}
        </Suspense>
    }
}

/// Everything the page holds, shared by its parts.
#[derive(Clone, Copy)]
pub struct ChatState {
    pub conversations: RwSignal<Vec<ConversationView>>,
    /// The open conversation; `None` on `/` until the first message.
    pub current: RwSignal<Option<String>>,
    pub title: RwSignal<String>,
    pub turns: RwSignal<Vec<Turn>>,
    pub model: RwSignal<String>,
    pub busy: RwSignal<bool>,
    pub notice: RwSignal<Option<String>>,
    pub log: NodeRef<leptos::html::Section>,
    pub controls: actions::Controls,
}

#[component]
fn ChatView(start: ChatStart) -> impl IntoView {
    let hydrated = hydration_flag();
    if start.not_found {
        #[cfg(feature = "ssr")]
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    let open = start.open.clone();
    let state = ChatState {
        conversations: RwSignal::new(start.conversations.clone()),
        current: RwSignal::new(open.as_ref().map(|d| d.conversation.id.clone())),
        title: RwSignal::new(
            open.as_ref()
                .map(|d| d.conversation.title.clone())
                .unwrap_or_default(),
        ),
        turns: RwSignal::new(
            open.as_ref()
                .map(|d| {
                    d.messages
                        .iter()
                        .enumerate()
                        .map(|(i, m)| Turn::stored(i, m))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        model: RwSignal::new(
            open.as_ref()
                .and_then(|d| d.conversation.model.clone())
                .unwrap_or_default(),
        ),
        busy: RwSignal::new(false),
        notice: RwSignal::new(
            start
                .not_found
                .then(|| "There is no conversation at this address.".to_string()),
        ),
        log: NodeRef::new(),
        controls: actions::Controls::new(),
    };
    pin::Baseline::provide(state.current);
    let models = RwSignal::new(Vec::<String>::new());
    let draft = RwSignal::new(String::new());
    let sidebar_open = RwSignal::new(false);

    Effect::new(move |_| actions::load_models(models, state));
    Effect::new(move |_| actions::scroll_to_end(state.log));

    let send_draft = move || {
        let prompt = draft.get_untracked();
        if prompt.trim().is_empty()
            || state.busy.get_untracked()
            || state.model.get_untracked().is_empty()
        {
            return;
        }
        draft.set(String::new());
        actions::send(state, prompt);
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        send_draft();
    };
    let on_key = move |ev: KeyboardEvent| {
        if sends_on(&ev.key(), ev.shift_key(), ev.is_composing()) {
            ev.prevent_default();
            send_draft();
        }
    };
    let can_regenerate = move || {
        !state.busy.get()
            && state.current.get().is_some()
            && state
                .turns
                .with(|t| t.last().is_some_and(|t| t.role == "assistant"))
    };

    view! {
        <div class="chat-layout">
            <Sidebar conversations=state.conversations current=state.current open=sidebar_open/>
            <main class="page chat" data-hydrated=move || hydrated.get().to_string()>
                <div class="chat-bar">
                    <button type="button" class="secondary sidebar-toggle" aria-label="Show conversations"
                        aria-expanded=move || sidebar_open.get().to_string()
                        on:click=move |_| sidebar_open.update(|o| *o = !*o)>"☰ Chats"</button>
                    <h1 class="chat-title">{move || {
                        let title = state.title.get();
                        if title.is_empty() { "New chat".to_string() } else { title }
                    }}</h1>
                    {move || state.current.get().map(|id| view! {
                        <div class="chat-actions">
                            <button type="button" class="link" on:click=move |_| actions::rename(state)>"Rename"</button>
                            <button type="button" class="link danger" on:click=move |_| actions::delete(state)>"Delete"</button>
                            <a class="link" href=format!("/api/conversations/{id}/export?format=markdown") download rel="external">"Export Markdown"</a>
                            <a class="link" href=format!("/api/conversations/{id}/export?format=json") download rel="external">"Export JSON"</a>
                        </div>
                    })}
                </div>
                <section class="conversation" aria-label="Conversation" node_ref=state.log
                    on:click=move |ev| actions::copy_code_block(&ev)>
                    <Show when=move || state.turns.with(Vec::is_empty)>
                        <p class="empty">"No messages yet. Pick a model and say hello."</p>
                    </Show>
                    <For each=move || state.turns.get() key=|turn| turn.id let:turn>
                        <TurnView turn/>
                    </For>
                </section>
                {move || state.notice.get().map(|n| view! { <p class="form-error" role="alert">{n}</p> })}
                <form class="composer" aria-label="Message composer" on:submit=on_submit>
                    <select name="model" aria-label="Model" on:change:target=move |ev| state.model.set(ev.target().value())
                        prop:value=move || state.model.get()>
                        {move || models.get().into_iter().map(|m| {
                            let label = if m == "sim" { format!("{m} (simulated)") } else { m.clone() };
                            view! { <option value=m.clone()>{label}</option> }
                        }).collect_view()}
                    </select>
                    <textarea name="prompt" rows="3" aria-label="Message" placeholder="Ask something… (Enter sends, Shift+Enter for a new line)"
                        bind:value=draft on:keydown=on_key></textarea>
                    <button type="submit" disabled=move || state.busy.get() || !hydrated.get() || state.model.get().is_empty()>"Send"</button>
                    <button type="button" class="secondary" disabled=move || !state.busy.get() on:click=move |_| state.controls.stop()>"Stop"</button>
                    <button type="button" class="secondary" disabled=move || !can_regenerate()
                        on:click=move |_| actions::regenerate(state)>"Regenerate"</button>
                </form>
            </main>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::sends_on;

    #[test]
    fn enter_sends_and_shift_enter_or_composing_does_not() {
        assert!(sends_on("Enter", false, false));
        assert!(!sends_on("Enter", true, false));
        assert!(!sends_on("Enter", false, true));
        assert!(!sends_on("a", false, false));
    }
}
