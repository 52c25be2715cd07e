//! Mission Control's invite panel: make a single-use sign-up link (shown once,
//! to copy), see which links are open, used or expired, and withdraw open
//! ones. It talks to `/api/monitor/invites` once hydrated; the server-rendered
//! page shows the empty panel.

use crate::wire::{ErrorDetail, InviteView};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// The panel's state: the list, the policy, the last link made, the last error.
#[derive(Clone, Copy)]
struct Panel {
    invites: RwSignal<Vec<InviteView>>,
    registration: RwSignal<String>,
    fresh_link: RwSignal<Option<String>>,
    error: RwSignal<Option<ErrorDetail>>,
}

/// What the policy line says.
fn policy_text(registration: &str) -> &'static str {
    match registration {
        "invite" => "Sign-ups need an invite link (CALOS_REGISTRATION=invite).",
        "closed" => "Sign-ups are closed (CALOS_REGISTRATION=closed); invites do not open them.",
        "open" => {
            "Anyone can sign up (CALOS_REGISTRATION=open); invites are ready for when that changes."
        }
        _ => "",
    }
}

#[component]
pub fn Invites() -> impl IntoView {
    let panel = Panel {
        invites: RwSignal::new(Vec::new()),
        registration: RwSignal::new(String::new()),
        fresh_link: RwSignal::new(None),
        error: RwSignal::new(None),
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| reload(panel));
    let on_create = move |ev: SubmitEvent| create(ev, panel);
    view! {
        <section class="invites" data-testid="invites">
            <h2>"Invites"</h2>
            <p class="muted" data-testid="registration-policy">{move || policy_text(&panel.registration.get())}</p>
            <form class="inline" on:submit=on_create>
                <label>"For "<input name="note" maxlength="200" placeholder="who it is for" data-testid="invite-note"/></label>
                <label>"Valid for "<input name="hours" type="number" min="1" max="720" value="72" data-testid="invite-hours"/>" h"</label>
                <button type="submit" data-testid="invite-create">"Make invite link"</button>
            </form>
            {move || panel.error.get().map(|e| view! { <p class="form-error" role="alert">{e.message}</p> })}
            {move || panel.fresh_link.get().map(|link| view! {
                <p class="fresh-invite">"Copy this link now; it is not shown again: "
                    <input readonly=true value=link data-testid="invite-link" size="60"/>
                </p>
            })}
            <table data-testid="invite-list">
                <thead><tr><th>"for"</th><th>"state"</th><th>"made"</th><th>"expires"</th><th>"used by"</th><th></th></tr></thead>
                <tbody>
                    {move || panel.invites.get().into_iter().map(|invite| {
                        let id = invite.invite_id.clone();
                        let open = invite.state == "open";
                        let state = invite.state.clone();
                        view! {
                            <tr data-state=state>
                                <td>{invite.note.unwrap_or_default()}</td>
                                <td>{invite.state}</td>
                                <td>{invite.created_at}</td>
                                <td>{invite.expires_at}</td>
                                <td>{invite.used_by.unwrap_or_default()}</td>
                                <td>{open.then(|| view! {
                                    <button class="secondary" on:click=move |_| revoke(panel, id.clone())>"Withdraw"</button>
                                })}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[cfg(feature = "hydrate")]
fn reload(panel: Panel) {
    leptos::task::spawn_local(async move {
        match crate::browser::get_json_for::<crate::wire::InvitesResponse>("/api/monitor/invites")
            .await
        {
            Ok(list) => {
                panel.registration.set(list.registration);
                panel.invites.set(list.invites);
            }
            Err(e) => panel.error.set(Some(e)),
        }
    });
}

#[cfg(feature = "hydrate")]
fn create(ev: SubmitEvent, panel: Panel) {
    ev.prevent_default();
    let Some(form) = crate::browser::FormFields::from_event(&ev) else {
        return;
    };
    let note = form.get("note").trim().to_string();
    let request = crate::wire::CreateInviteRequest {
        note: (!note.is_empty()).then_some(note),
        expires_in_hours: form.get("hours").trim().parse().ok(),
    };
    panel.error.set(None);
    leptos::task::spawn_local(async move {
        match crate::browser::post_json_for::<_, crate::wire::CreatedInviteResponse>(
            "/api/monitor/invites",
            &request,
        )
        .await
        {
            Ok(made) => {
                panel.fresh_link.set(Some(made.url));
                reload(panel);
            }
            Err(e) => panel.error.set(Some(e)),
        }
    });
}

#[cfg(feature = "hydrate")]
fn revoke(panel: Panel, invite_id: String) {
    panel.error.set(None);
    leptos::task::spawn_local(async move {
        match crate::browser::delete(&format!("/api/monitor/invites/{invite_id}")).await {
            Ok(()) => reload(panel),
            Err(e) => panel.error.set(Some(e)),
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn create(_: SubmitEvent, _: Panel) {}

#[cfg(not(feature = "hydrate"))]
fn revoke(_: Panel, _: String) {}

#[cfg(test)]
mod tests {
    use super::policy_text;

    #[test]
    fn each_policy_is_explained() {
        for policy in ["open", "invite", "closed"] {
            assert!(policy_text(policy).contains(policy));
        }
    }
}
