//! `/keys`: a signed-in person makes API keys for scripts and SDKs (the secret
//! shown once, to copy), sees which models each may use and when it was last
//! used, and revokes them. It talks to `/api/keys` once hydrated.

use super::{hydration_flag, Header};
use crate::wire::{ErrorDetail, KeyView};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

#[derive(Clone, Copy)]
struct Keyring {
    keys: RwSignal<Vec<KeyView>>,
    fresh: RwSignal<Option<String>>,
    error: RwSignal<Option<ErrorDetail>>,
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
/// The models field as the API wants it: comma- or space-separated globs;
/// empty means every model.
fn models_field(text: &str) -> Option<Vec<String>> {
    let globs: Vec<String> = text
        .split([',', ' '])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    (!globs.is_empty()).then_some(globs)
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
/// A number input's value; empty (or not a whole number): no limit.
fn number_field(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
/// A date input's `YYYY-MM-DD` as the end of that day, UTC.
fn expiry_field(date: &str) -> Option<String> {
    let date = date.trim();
    (!date.is_empty()).then(|| format!("{date}T23:59:59Z"))
}

#[component]
pub fn KeysPage() -> impl IntoView {
    let hydrated = hydration_flag();
    let ring = Keyring {
        keys: RwSignal::new(Vec::new()),
        fresh: RwSignal::new(None),
        error: RwSignal::new(None),
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| reload(ring));
    let on_create = move |ev: SubmitEvent| create(ev, ring);
    view! {
        <Header/>
        <main class="page keys" data-hydrated=move || hydrated.get().to_string()>
            <h1>"API keys"</h1>
            <p class="muted">"A key chats for you from scripts and SDKs: "
                <code>"Authorization: Bearer calos_sk_…"</code>", "<code>"x-api-key"</code>
                ", or an OpenAI SDK's "<code>"api_key"</code>" with "<code>"base_url"</code>" set to this server's "<code>"/v1"</code>
                ". It cannot change your account or make more keys."</p>
            <form class="inline" on:submit=on_create data-testid="key-form">
                <label>"Name "<input name="name" required=true maxlength="100" data-testid="key-name"/></label>
                <label>"Models "<input name="models" placeholder="all, or e.g. gpt-4o*, llama3" data-testid="key-models"/></label>
                <label>"Expires "<input name="expires" type="date" data-testid="key-expires"/></label>
                <label>"Requests/min "<input name="rpm" type="number" min="1" size="6" data-testid="key-rpm"/></label>
                <label>"Tokens/min "<input name="tpm" type="number" min="1" size="8" data-testid="key-tpm"/></label>
                <button type="submit" data-testid="key-create">"Make key"</button>
            </form>
            {move || ring.error.get().map(|e| view! { <p class="form-error" role="alert">{e.message}</p> })}
            {move || ring.fresh.get().map(|secret| view! {
                <p class="fresh-invite">"Copy this key now; it is not shown again: "
                    <input readonly=true value=secret data-testid="new-key" size="56"/>
                </p>
            })}
            <table data-testid="key-list">
                <thead><tr><th>"name"</th><th>"key"</th><th>"models"</th><th>"expires"</th><th>"limits"</th><th>"last used"</th><th></th></tr></thead>
                <tbody>
                    {move || ring.keys.get().into_iter().map(|key| {
                        let id = key.id.clone();
                        let name = key.name.clone();
                        let limits = match key.limits.describe() {
                            none if none.is_empty() => "owner's".to_string(),
                            some => some,
                        };
                        view! {
                            <tr data-name=name>
                                <td>{key.name}</td>
                                <td><code>{key.prefix}"…"</code></td>
                                <td>{key.models.map_or("all".to_string(), |m| m.join(", "))}</td>
                                <td>{key.expires_at.unwrap_or_else(|| "never".into())}</td>
                                <td>{limits}</td>
                                <td>{key.last_used_at.unwrap_or_else(|| "never".into())}</td>
                                <td><button class="secondary" on:click=move |_| revoke(ring, id.clone())>"Revoke"</button></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </main>
    }
}

#[cfg(feature = "hydrate")]
fn reload(ring: Keyring) {
    leptos::task::spawn_local(async move {
        match crate::browser::get_json_for::<crate::wire::KeysResponse>("/api/keys").await {
            Ok(list) => ring.keys.set(list.keys),
            Err(e) => ring.error.set(Some(e)),
        }
    });
}

#[cfg(feature = "hydrate")]
fn create(ev: SubmitEvent, ring: Keyring) {
    ev.prevent_default();
    let Some(form) = crate::browser::FormFields::from_event(&ev) else {
        return;
    };
    let request = crate::wire::CreateKeyRequest {
        name: form.get("name").trim().to_string(),
        models: models_field(&form.get("models")),
        expires_at: expiry_field(&form.get("expires")),
        rpm: number_field(&form.get("rpm")),
        tpm: number_field(&form.get("tpm")),
        ..Default::default()
    };
    ring.error.set(None);
    leptos::task::spawn_local(async move {
        match crate::browser::post_json_for::<_, crate::wire::CreatedKeyResponse>(
            "/api/keys",
            &request,
        )
        .await
        {
            Ok(made) => {
                ring.fresh.set(Some(made.key));
                reload(ring);
            }
            Err(e) => ring.error.set(Some(e)),
        }
    });
}

#[cfg(feature = "hydrate")]
fn revoke(ring: Keyring, id: String) {
    ring.error.set(None);
    leptos::task::spawn_local(async move {
        match crate::browser::delete(&format!("/api/keys/{id}")).await {
            Ok(()) => reload(ring),
            Err(e) => ring.error.set(Some(e)),
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn create(_: SubmitEvent, _: Keyring) {}

#[cfg(not(feature = "hydrate"))]
fn revoke(_: Keyring, _: String) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_fields_become_what_the_api_takes() {
        assert_eq!(models_field(""), None);
        assert_eq!(
            models_field(" gpt-4o*, llama3 "),
            Some(vec!["gpt-4o*".to_string(), "llama3".to_string()])
        );
        assert_eq!(expiry_field(""), None);
        assert_eq!(
            expiry_field("2027-01-31").as_deref(),
            Some("2027-01-31T23:59:59Z")
        );
    }
}
