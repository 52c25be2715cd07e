//! What the chat page does in the browser: load the models, send a message
//! (starting a conversation on the first one), regenerate, rename, delete,
//! copy, and keep the newest text in view. Each is a no-op when rendered on
//! the server, where nothing is clicked.

use super::ChatState;
use leptos::prelude::*;

/// The in-flight request's abort handle (browser only).
#[derive(Clone, Copy)]
pub struct Controls {
    #[cfg(feature = "hydrate")]
    abort: StoredValue<Option<web_sys::AbortController>, LocalStorage>,
}

impl Controls {
    pub fn new() -> Self {
        Self {
            #[cfg(feature = "hydrate")]
            abort: StoredValue::new_local(None),
        }
    }

    pub fn stop(&self) {
        #[cfg(feature = "hydrate")]
        self.abort.with_value(|c| {
            if let Some(c) = c {
                c.abort();
            }
        });
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::*;
    use crate::browser::{
        delete as http_delete, get_json_for, now_ms, post_json_for, stream_chat, StreamEvent,
    };
    use crate::pages::chat::Turn;
    use crate::wire::{
        ChatMessageIn, CompleteRequest, ConversationList, ConversationView,
        CreateConversationRequest, ErrorDetail,
    };
    use wasm_bindgen::JsCast;

    pub fn load_models(models: RwSignal<Vec<String>>, state: ChatState) {
        leptos::task::spawn_local(async move {
            match crate::browser::models().await {
                Ok(list) => {
                    let stored = state.model.get_untracked();
                    if stored.is_empty() || !list.contains(&stored) {
                        let preferred = if list.iter().any(|m| m == "sim") {
                            "sim".to_string()
                        } else {
                            list.first().cloned().unwrap_or_default()
                        };
                        state.model.set(preferred);
                    }
                    models.set(list);
                }
                Err(e) => state.notice.set(Some(e.message)),
            }
        });
    }

    /// Whether the conversation is scrolled to (near) its end: only then
    /// does new text pull the view along.
    fn at_end(log: NodeRef<leptos::html::Section>) -> bool {
        log.get_untracked().is_none_or(|el| {
            let el: &web_sys::Element = &el;
            el.scroll_top() + el.client_height() >= el.scroll_height() - 40
        })
    }

    pub fn scroll_to_end(log: NodeRef<leptos::html::Section>) {
        if let Some(el) = log.get_untracked() {
            let el: &web_sys::Element = &el;
            el.set_scroll_top(el.scroll_height());
        }
    }

    /// The conversation to send into: the open one, or a new one (then the
    /// address becomes `/c/{id}` without a reload, and it joins the list).
    async fn conversation(state: ChatState) -> Result<String, ErrorDetail> {
        if let Some(id) = state.current.get_untracked() {
            return Ok(id);
        }
        let made: ConversationView = post_json_for(
            "/api/conversations",
            &CreateConversationRequest {
                title: None,
                model: Some(state.model.get_untracked()),
            },
        )
        .await?;
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = history.replace_state_with_url(
                &wasm_bindgen::JsValue::NULL,
                "",
                Some(&format!("/c/{}", made.id)),
            );
        }
        state.current.set(Some(made.id.clone()));
        state
            .conversations
            .update(|list| list.insert(0, made.clone()));
        Ok(made.id)
    }

    /// The titles the server gave (a first message names its conversation).
    async fn refresh_list(state: ChatState) {
        let url = format!("/api/conversations?limit={}", crate::history::SIDEBAR_PAGE);
        if let Ok(page) = get_json_for::<ConversationList>(&url).await {
            if let Some(id) = state.current.get_untracked() {
                if let Some(c) = page.conversations.iter().find(|c| c.id == id) {
                    state.title.set(c.title.clone());
                }
            }
            state.conversations.set(page.conversations);
        }
    }

    pub fn send(state: ChatState, prompt: String) {
        let next = state
            .turns
            .with_untracked(|t| t.last().map_or(0, |t| t.id + 1));
        let reply = Turn::new(next + 1, "assistant", String::new());
        state.turns.update(|t| {
            t.push(Turn::new(next, "user", prompt.clone()));
            t.push(reply.clone());
        });
        scroll_to_end(state.log);
        let messages = vec![ChatMessageIn {
            role: "user".into(),
            content: prompt,
        }];
        answer(state, reply, messages, false);
    }

    pub fn regenerate(state: ChatState) {
        let Some(reply) = state.turns.with_untracked(|t| t.last().cloned()) else {
            return;
        };
        if reply.role != "assistant" {
            return;
        }
        reply.text.set(String::new());
        reply.timings.set(None);
        reply.error.set(None);
        answer(state, reply, Vec::new(), true);
    }

    /// Streams the reply to `messages` (or, regenerating, to the stored
    /// history) into `reply`.
    fn answer(state: ChatState, reply: Turn, messages: Vec<ChatMessageIn>, regenerate: bool) {
        let Ok(controller) = web_sys::AbortController::new() else {
            return;
        };
        let signal = controller.signal();
        state.controls.abort.set_value(Some(controller));
        state.busy.set(true);
        state.notice.set(None);
        reply.streaming.set(true);
        let model = state.model.get_untracked();
        reply.model.set(Some(model.clone()));
        leptos::task::spawn_local(async move {
            let started = now_ms();
            let result = match conversation(state).await {
                Ok(id) => {
                    let request = CompleteRequest {
                        model,
                        messages,
                        stream: true,
                        temperature: None,
                        max_tokens: None,
                        include_timings: true,
                        conversation_id: Some(id),
                        regenerate,
                    };
                    stream_chat(&request, &signal, |event| match event {
                        StreamEvent::Delta(delta) => {
                            let follow = at_end(state.log);
                            reply.text.update(|t| t.push_str(&delta));
                            if follow {
                                scroll_to_end(state.log);
                            }
                        }
                        StreamEvent::Done(timings) => {
                            reply.timings.set(Some((*timings, now_ms() - started)))
                        }
                        StreamEvent::Error(message) => reply.error.set(Some(message)),
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            let failed = result.is_err() && !signal.aborted();
            if let Err(e) = result {
                let message = if signal.aborted() {
                    "Stopped.".to_string()
                } else {
                    e.message
                };
                // A failed send is told once, above the composer: the turn
                // it made is about to be replaced by what the server kept.
                // A stop stays on the reply it cut.
                if failed {
                    state.notice.set(Some(message));
                } else {
                    reply.error.set(Some(message));
                }
            }
            reply.streaming.set(false);
            state.busy.set(false);
            state.controls.abort.set_value(None);
            if failed {
                resync(state).await;
            }
            refresh_list(state).await;
        });
    }

    /// After a failure, shows what the server kept: a request refused
    /// before its turn was stored left nothing, one that failed upstream left
    /// the question and a failed reply. Regenerate then answers what is
    /// really there.
    async fn resync(state: ChatState) {
        let Some(id) = state.current.get_untracked() else {
            state.turns.set(Vec::new());
            return;
        };
        let url = format!("/api/conversations/{id}");
        if let Ok(stored) = get_json_for::<crate::wire::ConversationDetail>(&url).await {
            // Fresh ids: the list is keyed by id, and a reused one would keep
            // showing the turn it was first given.
            let base = state
                .turns
                .with_untracked(|t| t.last().map_or(0, |t| t.id + 1));
            state.turns.set(
                stored
                    .messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| Turn::stored(base + i, m))
                    .collect(),
            );
        }
    }

    pub fn rename(state: ChatState) {
        let Some(id) = state.current.get_untracked() else {
            return;
        };
        let Some(window) = web_sys::window() else {
            return;
        };
        let asked = window.prompt_with_message_and_default(
            "Rename this conversation",
            &state.title.get_untracked(),
        );
        let Ok(Some(title)) = asked else {
            return;
        };
        leptos::task::spawn_local(async move {
            let url = format!("/api/conversations/{id}");
            let body = crate::wire::RenameConversationRequest { title };
            match crate::browser::patch_json_for::<_, ConversationView>(&url, &body).await {
                Ok(renamed) => {
                    state.title.set(renamed.title.clone());
                    state.conversations.update(|list| {
                        if let Some(c) = list.iter_mut().find(|c| c.id == renamed.id) {
                            *c = renamed;
                        }
                    });
                }
                Err(e) => state.notice.set(Some(e.message)),
            }
        });
    }

    pub fn delete(state: ChatState) {
        let Some(id) = state.current.get_untracked() else {
            return;
        };
        let confirmed = web_sys::window()
            .and_then(|w| {
                w.confirm_with_message("Delete this conversation and its messages?")
                    .ok()
            })
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        leptos::task::spawn_local(async move {
            match http_delete(&format!("/api/conversations/{id}")).await {
                Ok(()) => crate::browser::navigate("/"),
                Err(e) => state.notice.set(Some(e.message)),
            }
        });
    }

    /// `navigator.clipboard.writeText(text)`, through JS reflection (the
    /// clipboard is not in web-sys's stable API).
    pub fn copy(text: &str) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let get = |target: &wasm_bindgen::JsValue, name: &str| {
            js_sys::Reflect::get(target, &wasm_bindgen::JsValue::from_str(name)).ok()
        };
        let Some(clipboard) = get(&window, "navigator").and_then(|n| get(&n, "clipboard")) else {
            return;
        };
        if let Some(write) =
            get(&clipboard, "writeText").and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        {
            let _ = write.call1(&clipboard, &wasm_bindgen::JsValue::from_str(text));
        }
    }

    /// A click on a code block's copy button (one listener for them all:
    /// the buttons are in the reply's rendered Markdown).
    pub fn copy_code_block(ev: &leptos::ev::MouseEvent) {
        let Some(button) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .filter(|el| el.class_list().contains("copy-code"))
        else {
            return;
        };
        if let Some(code) = button
            .next_element_sibling()
            .and_then(|pre| pre.text_content())
        {
            copy(&code);
        }
    }
}

#[cfg(feature = "hydrate")]
pub use browser::*;

#[cfg(not(feature = "hydrate"))]
mod server {
    use super::*;

    pub fn load_models(_: RwSignal<Vec<String>>, _: ChatState) {}
    pub fn scroll_to_end(_: NodeRef<leptos::html::Section>) {}
    pub fn send(_: ChatState, _: String) {}
    pub fn regenerate(_: ChatState) {}
    pub fn rename(_: ChatState) {}
    pub fn delete(_: ChatState) {}
    pub fn copy(_: &str) {}
    pub fn copy_code_block(_: &leptos::ev::MouseEvent) {}
}

#[cfg(not(feature = "hydrate"))]
pub use server::*;
