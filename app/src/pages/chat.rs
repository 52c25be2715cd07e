//! `/`: the chat page. The server only renders it for signed-in users (others
//! are redirected to `/login`). Pick a model from `/v1/models`, send, and the
//! reply streams in token by token from `/api/llm/complete`; Stop aborts the
//! request (which cancels the upstream call). Under each reply: its timing
//! breakdown, with the network share measured by this browser.

use super::breakdown::Breakdown;
use super::{hydration_flag, Header};
use crate::markdown::to_safe_html;
use crate::wire::Breakdown as Timings;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// One message on the page.
#[derive(Clone)]
pub struct Turn {
    pub id: usize,
    pub role: &'static str,
    pub text: RwSignal<String>,
    /// The server's breakdown and the browser's own total, once the reply is done.
    pub timings: RwSignal<Option<(Timings, f64)>>,
    pub error: RwSignal<Option<String>>,
    pub streaming: RwSignal<bool>,
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
impl Turn {
    fn new(id: usize, role: &'static str, text: String) -> Self {
        Self {
            id,
            role,
            text: RwSignal::new(text),
            timings: RwSignal::new(None),
            error: RwSignal::new(None),
            streaming: RwSignal::new(false),
        }
    }
}

#[component]
pub fn ChatPage() -> impl IntoView {
    let hydrated = hydration_flag();
    let models = RwSignal::new(Vec::<String>::new());
    let model = RwSignal::new(String::new());
    let draft = RwSignal::new(String::new());
    let turns = RwSignal::new(Vec::<Turn>::new());
    let busy = RwSignal::new(false);
    let notice = RwSignal::new(None::<String>);
    let controls = Controls::new();

    Effect::new(move |_| load_models(models, model, notice));

    let on_send = move |ev: SubmitEvent| {
        ev.prevent_default();
        let prompt = draft.get_untracked();
        if prompt.trim().is_empty() || busy.get_untracked() || model.get_untracked().is_empty() {
            return;
        }
        draft.set(String::new());
        send(controls, turns, busy, model.get_untracked(), prompt);
    };

    view! {
        <Header/>
        <main class="page chat" data-hydrated=move || hydrated.get().to_string()>
            <section class="conversation" aria-label="Conversation">
                <Show when=move || turns.with(Vec::is_empty)>
                    <p class="empty">"No messages yet. Pick a model and say hello."</p>
                </Show>
                <For each=move || turns.get() key=|turn| turn.id let:turn>
                    <TurnView turn/>
                </For>
            </section>
            {move || notice.get().map(|n| view! { <p class="form-error" role="alert">{n}</p> })}
            <form class="composer" aria-label="Message composer" on:submit=on_send>
                <select name="model" aria-label="Model" on:change:target=move |ev| model.set(ev.target().value())
                    prop:value=move || model.get()>
                    {move || models.get().into_iter().map(|m| {
                        let label = if m == "sim" { format!("{m} (simulated)") } else { m.clone() };
                        view! { <option value=m.clone()>{label}</option> }
                    }).collect_view()}
                </select>
                <textarea name="prompt" rows="3" aria-label="Message" placeholder="Ask something…" bind:value=draft></textarea>
                <button type="submit" disabled=move || busy.get() || !hydrated.get() || model.get().is_empty()>"Send"</button>
                <button type="button" class="secondary" disabled=move || !busy.get() on:click=move |_| controls.stop()>"Stop"</button>
            </form>
        </main>
    }
}

#[component]
fn TurnView(turn: Turn) -> impl IntoView {
    let Turn {
        role,
        text,
        timings,
        error,
        streaming,
        ..
    } = turn;
    let body = if role == "assistant" {
        view! { <div class="content" inner_html=move || to_safe_html(&text.get())></div> }
            .into_any()
    } else {
        view! { <div class="content">{move || text.get()}</div> }.into_any()
    };
    view! {
        <article class=format!("turn {role}") data-role=role data-streaming=move || streaming.get().to_string()>
            <span class="who">{if role == "assistant" { "calos" } else { "you" }}</span>
            {body}
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            {move || timings.get().map(|(t, client)| view! { <Breakdown timings=t client_total_ms=client/> })}
        </article>
    }
}

/// The in-flight request's abort handle (browser only).
#[derive(Clone, Copy)]
struct Controls {
    #[cfg(feature = "hydrate")]
    abort: StoredValue<Option<web_sys::AbortController>, LocalStorage>,
}

impl Controls {
    fn new() -> Self {
        Self {
            #[cfg(feature = "hydrate")]
            abort: StoredValue::new_local(None),
        }
    }

    fn stop(&self) {
        #[cfg(feature = "hydrate")]
        self.abort.with_value(|c| {
            if let Some(c) = c {
                c.abort();
            }
        });
    }
}

#[cfg(feature = "hydrate")]
fn load_models(
    models: RwSignal<Vec<String>>,
    model: RwSignal<String>,
    notice: RwSignal<Option<String>>,
) {
    leptos::task::spawn_local(async move {
        match crate::browser::models().await {
            Ok(list) => {
                let preferred = if list.iter().any(|m| m == "sim") {
                    "sim".to_string()
                } else {
                    list.first().cloned().unwrap_or_default()
                };
                model.set(preferred);
                models.set(list);
            }
            Err(e) => notice.set(Some(e.message)),
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn load_models(_: RwSignal<Vec<String>>, _: RwSignal<String>, _: RwSignal<Option<String>>) {}

#[cfg(feature = "hydrate")]
fn send(
    controls: Controls,
    turns: RwSignal<Vec<Turn>>,
    busy: RwSignal<bool>,
    model: String,
    prompt: String,
) {
    use crate::browser::{now_ms, stream_chat, StreamEvent};
    use crate::wire::{ChatMessageIn, CompleteRequest};
    let mut messages: Vec<ChatMessageIn> = turns.with_untracked(|t| {
        t.iter()
            .filter(|turn| turn.error.get_untracked().is_none())
            .map(|turn| ChatMessageIn {
                role: turn.role.to_string(),
                content: turn.text.get_untracked(),
            })
            .collect()
    });
    messages.push(ChatMessageIn {
        role: "user".into(),
        content: prompt.clone(),
    });
    let next = turns.with_untracked(Vec::len);
    let reply = Turn::new(next + 1, "assistant", String::new());
    turns.update(|t| {
        t.push(Turn::new(next, "user", prompt));
        t.push(reply.clone());
    });
    let Ok(controller) = web_sys::AbortController::new() else {
        return;
    };
    let signal = controller.signal();
    controls.abort.set_value(Some(controller));
    busy.set(true);
    reply.streaming.set(true);
    let request = CompleteRequest {
        model,
        messages,
        stream: true,
        temperature: None,
        max_tokens: None,
        include_timings: true,
        conversation_id: None,
        regenerate: false,
    };
    leptos::task::spawn_local(async move {
        let started = now_ms();
        let result = stream_chat(&request, &signal, |event| match event {
            StreamEvent::Delta(delta) => reply.text.update(|t| t.push_str(&delta)),
            StreamEvent::Done(timings) => reply.timings.set(Some((timings, now_ms() - started))),
            StreamEvent::Error(message) => reply.error.set(Some(message)),
        })
        .await;
        if let Err(e) = result {
            let message = if signal.aborted() {
                "Stopped.".to_string()
            } else {
                e.message
            };
            reply.error.set(Some(message));
        }
        reply.streaming.set(false);
        busy.set(false);
        controls.abort.set_value(None);
    });
}

#[cfg(not(feature = "hydrate"))]
fn send(_: Controls, _: RwSignal<Vec<Turn>>, _: RwSignal<bool>, _: String, _: String) {}
