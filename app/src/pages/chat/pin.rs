//! "Pin as baseline" under each reply's timings: the pinned reply's
//! [`Components`] live in one signal for the whole page (given by context, so
//! every turn sees the same pin) and in `localStorage`, so a pin outlives a
//! reload and a move to another conversation. Every other reply with timings
//! then shows its difference per component ([`super::baseline::compare`]).
//!
//! The server cannot read `localStorage`, so the page renders unpinned on
//! both sides and the saved pin is restored once hydrated; rendering it on
//! the server would make the two disagree.

use super::baseline::{compare, signed_ms, Comparison, Pin, PinKey};
use crate::verdict::{Component, Components};
use leptos::prelude::*;

/// The page's pinned reply.
#[derive(Clone, Copy)]
pub struct Baseline {
    pin: RwSignal<Option<Pin>>,
    /// The open conversation: half of what names a reply.
    conversation: RwSignal<Option<String>>,
}

impl Baseline {
    /// Gives the page its baseline, restored from the browser once hydrated.
    pub fn provide(conversation: RwSignal<Option<String>>) {
        let pin = RwSignal::new(None);
        Effect::new(move |_| pin.set(storage::load()));
        provide_context(Self { pin, conversation });
    }

    fn set(self, pin: Option<Pin>) {
        storage::save(pin.as_ref());
        self.pin.set(pin);
    }
}

/// The pin controls and, against another reply's pin, the differences.
#[component]
pub fn BaselinePin(
    /// The turn's number on the page.
    turn: usize,
    components: Components,
    model: Option<String>,
) -> impl IntoView {
    let Some(baseline) = use_context::<Baseline>() else {
        return ().into_any();
    };
    let key = PinKey {
        conversation: baseline.conversation.get_untracked(),
        turn,
        model_ms: components.llm(),
    };
    let label = model.unwrap_or_else(|| "reply".into());
    let pinned_key = key.clone();
    let pin_this = move |_| {
        baseline.set(Some(Pin {
            components,
            label: format!("{label}, {}", storage::time_now()),
            key: pinned_key.clone(),
        }))
    };
    let view = move || {
        match baseline.pin.get() {
        Some(pin) if pin.key.same_reply(&key) => view! {
            <div class="baseline-controls">
                <span class="baseline-tag" title=pin.label>"Baseline"</span>
                <button type="button" class="link" on:click=move |_| baseline.set(None)>"Unpin"</button>
            </div>
        }
        .into_any(),
        other => view! {
            <div class="baseline-controls">
                <button type="button" class="link" on:click=pin_this.clone()>"Pin as baseline"</button>
            </div>
            {other.map(|pin| view! { <Differences label=pin.label comparison=compare(&pin.components, &components)/> })}
        }
        .into_any(),
    }
    };
    view! { <div class="baseline" data-testid="baseline">{view}</div> }.into_any()
}

/// One line per component, the part that grew the most highlighted, and
/// what the numbers can and cannot say.
#[component]
fn Differences(label: String, comparison: Comparison) -> impl IntoView {
    let named = comparison.named();
    let rows = comparison
        .deltas
        .iter()
        .map(|d| {
            let mut class = String::from("delta");
            if d.component == Component::Total {
                class.push_str(" delta-total");
            }
            if Some(d.component) == named {
                class.push_str(" delta-named");
            }
            view! {
                <li class=class data-component=d.component.key()>
                    {d.component.label()}" "<strong>{signed_ms(d.ms)}</strong>
                </li>
            }
        })
        .collect_view();
    view! {
        <div class="baseline-delta" data-testid="baseline-delta">
            <p class="baseline-summary">"Against the baseline ("{label}"): "{comparison.summary()}</p>
            <ul class="deltas">{rows}</ul>
            <p class="baseline-caveat">
                "One reply against one reply is an indication, not a verdict: "
                <code>"calos perf --runs N --baseline FILE"</code>
                " compares many requests and says what moved beyond the noise."
            </p>
        </div>
    }
}

/// `localStorage`, reached by reflection: web-sys's `Storage` binding is not
/// among the features the workspace enables.
#[cfg(feature = "hydrate")]
mod storage {
    use super::Pin;
    use wasm_bindgen::{JsCast, JsValue};

    /// Where the pin is kept: JSON of [`Pin`].
    const STORAGE_KEY: &str = "calos.timingBaseline";

    /// `window.localStorage`; reading it throws where storage is disabled,
    /// and then there is simply no pin.
    fn local_storage() -> Option<JsValue> {
        let window = web_sys::window()?;
        js_sys::Reflect::get(&window, &JsValue::from_str("localStorage"))
            .ok()
            .filter(|s| !s.is_null() && !s.is_undefined())
    }

    fn call(name: &str, args: &[JsValue]) -> Option<JsValue> {
        let storage = local_storage()?;
        let method: js_sys::Function = js_sys::Reflect::get(&storage, &JsValue::from_str(name))
            .ok()?
            .dyn_into()
            .ok()?;
        let args: js_sys::Array = args.iter().collect();
        method.apply(&storage, &args).ok()
    }

    /// The saved pin; one this page cannot read (an older shape) is none.
    pub fn load() -> Option<Pin> {
        let json = call("getItem", &[JsValue::from_str(STORAGE_KEY)])?.as_string()?;
        serde_json::from_str(&json).ok()
    }

    pub fn save(pin: Option<&Pin>) {
        let key = JsValue::from_str(STORAGE_KEY);
        match pin.and_then(|p| serde_json::to_string(p).ok()) {
            Some(json) => call("setItem", &[key, JsValue::from_str(&json)]),
            None => call("removeItem", &[key]),
        };
    }

    /// The local time of day, for the pin's label.
    pub fn time_now() -> String {
        js_sys::Date::new_0().to_locale_time_string("en-GB").into()
    }
}

/// On the server nothing is pinned and nothing is clicked.
#[cfg(not(feature = "hydrate"))]
mod storage {
    use super::Pin;

    pub fn load() -> Option<Pin> {
        None
    }
    pub fn save(_: Option<&Pin>) {}
    pub fn time_now() -> String {
        String::new()
    }
}
