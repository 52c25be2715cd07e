//! Browser-only helpers for hydrated pages: reading form fields, calling the
//! JSON API, and navigating. Compiled into the WASM bundle only.

use crate::wire::{ErrorDetail, ErrorResponse};
use leptos::ev::SubmitEvent;
use wasm_bindgen::JsCast;

/// The fields of the form an event was fired on, read from the DOM itself so
/// values typed before hydration are not lost.
pub struct FormFields(web_sys::FormData);

impl FormFields {
    pub fn from_event(ev: &SubmitEvent) -> Option<Self> {
        let form = ev.target()?.dyn_into::<web_sys::HtmlFormElement>().ok()?;
        web_sys::FormData::new_with_form(&form).ok().map(Self)
    }

    pub fn get(&self, name: &str) -> String {
        self.0.get(name).as_string().unwrap_or_default()
    }
}

/// POSTs `body` as JSON; maps any failure to the API's error shape.
pub async fn post_json<T: serde::Serialize>(url: &str, body: &T) -> Result<(), ErrorDetail> {
    let network = |_| ErrorDetail {
        code: "network".into(),
        message: "Could not reach the server. Check your connection and try again.".into(),
        field: None,
    };
    let response = gloo_net::http::Request::post(url)
        .json(body)
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    if response.ok() {
        return Ok(());
    }
    match response.json::<ErrorResponse>().await {
        Ok(body) => Err(body.error),
        Err(e) => Err(network(e)),
    }
}

pub fn navigate(path: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_href(path);
    }
}
