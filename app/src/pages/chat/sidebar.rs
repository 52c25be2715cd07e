//! The list of the user's conversations beside the chat: a new chat, a
//! search by title, and a link per conversation (real links, so the list
//! works before the WASM and opens in a new tab). On a phone's width it
//! folds away behind a button.

use crate::wire::ConversationView;
use leptos::prelude::*;

/// Whether a conversation's title matches the search (any case).
pub fn matches(title: &str, search: &str) -> bool {
    let search = search.trim().to_lowercase();
    search.is_empty() || title.to_lowercase().contains(&search)
}

#[component]
pub fn Sidebar(
    conversations: RwSignal<Vec<ConversationView>>,
    current: RwSignal<Option<String>>,
    open: RwSignal<bool>,
) -> impl IntoView {
    let search = RwSignal::new(String::new());
    let shown = move || {
        let search = search.get();
        conversations
            .get()
            .into_iter()
            .filter(|c| matches(&c.title, &search))
            .collect::<Vec<_>>()
    };
    view! {
        <nav class="sidebar" class:open=move || open.get() aria-label="Conversations">
            // A full load: `/` starts afresh, whatever the page held.
            <a class="button new-chat" href="/" rel="external">"New chat"</a>
            <input type="search" class="search" aria-label="Search conversations" placeholder="Search titles…"
                bind:value=search/>
            <ul class="conversations">
                <For each=shown key=|c| (c.id.clone(), c.title.clone()) let:c>
                    {
                        let id = c.id.clone();
                        let is_current = move || current.get().as_deref() == Some(id.as_str());
                        view! {
                            <li class:current=is_current>
                                <a href=format!("/c/{}", c.id) rel="external" data-conversation=c.id.clone()>{c.title.clone()}</a>
                            </li>
                        }
                    }
                </For>
            </ul>
            <Show when=move || conversations.with(Vec::is_empty)>
                <p class="muted">"No conversations yet."</p>
            </Show>
        </nav>
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn the_search_matches_any_part_of_a_title_in_any_case() {
        assert!(matches("Plan a trip to Lisbon", "LISBON"));
        assert!(matches("anything", "  "));
        assert!(!matches("Plan a trip", "porto"));
    }
}
