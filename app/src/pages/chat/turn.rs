//! One message on the chat page: who said it, the text (a reply rendered as
//! safe Markdown, with a copy button on it and on each code block), the model
//! that answered, how it ended, and its timing breakdown, live or stored,
//! with the controls to pin it as the baseline other replies are read against.

use super::pin::BaselinePin;
use crate::markdown::to_safe_html;
use crate::pages::breakdown::Breakdown;
use crate::verdict::Components;
use crate::wire::{Breakdown as Timings, MessageStatus, MessageView};
use leptos::prelude::*;

/// One message on the page.
#[derive(Clone)]
pub struct Turn {
    pub id: usize,
    pub role: &'static str,
    pub text: RwSignal<String>,
    /// The model that answered (replies).
    pub model: RwSignal<Option<String>>,
    /// The server's breakdown and the browser's own total, once the reply is
    /// done (a stored reply's browser total is its server total: the network
    /// share of a past request is not known).
    pub timings: RwSignal<Option<(Timings, f64)>>,
    pub error: RwSignal<Option<String>>,
    pub streaming: RwSignal<bool>,
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
impl Turn {
    pub fn new(id: usize, role: &'static str, text: String) -> Self {
        Self {
            id,
            role,
            text: RwSignal::new(text),
            model: RwSignal::new(None),
            timings: RwSignal::new(None),
            error: RwSignal::new(None),
            streaming: RwSignal::new(false),
        }
    }

    /// A stored message as the page shows it.
    pub fn stored(id: usize, message: &MessageView) -> Self {
        let role = match message.role.as_str() {
            "assistant" => "assistant",
            "system" => "system",
            _ => "user",
        };
        let turn = Self::new(id, role, message.content.clone());
        turn.model.set(message.model.clone());
        turn.timings
            .set(message.timings.clone().map(|t| (t.clone(), t.total)));
        turn.error.set(match message.status {
            MessageStatus::Complete => None,
            MessageStatus::Stopped => Some("Stopped.".into()),
            MessageStatus::Failed => Some(format!(
                "Failed ({}).",
                message.error_code.as_deref().unwrap_or("error")
            )),
        });
        turn
    }
}

#[component]
pub fn TurnView(turn: Turn) -> impl IntoView {
    let Turn {
        id,
        role,
        text,
        model,
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
    let who = match role {
        "assistant" => "calos",
        "system" => "system",
        _ => "you",
    };
    view! {
        <article class=format!("turn {role}") data-role=role data-streaming=move || streaming.get().to_string()>
            <span class="who">
                {who}
                {move || model.get().map(|m| view! { <span class="model">" · "{m}</span> })}
            </span>
            {body}
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            {move || timings.get().map(|(t, client)| {
                let components = Components::from_breakdown(&t, Some(client));
                view! {
                    <div class="timing">
                        <Breakdown timings=t client_total_ms=client/>
                        <BaselinePin turn=id components model=model.get_untracked()/>
                    </div>
                }
            })}
            <Show when=move || role == "assistant" && !streaming.get()>
                <button type="button" class="link copy-reply" title="Copy this reply"
                    on:click=move |_| super::actions::copy(&text.get_untracked())>"Copy"</button>
            </Show>
        </article>
    }
}
