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

fn network_error<E>(_: E) -> ErrorDetail {
    ErrorDetail {
        code: "network".into(),
        message: "Could not reach the server. Check your connection and try again.".into(),
        field: None,
    }
}

/// POSTs `body` as JSON; a non-2xx answer becomes the API's error.
async fn post<T: serde::Serialize>(
    url: &str,
    body: &T,
) -> Result<gloo_net::http::Response, ErrorDetail> {
    let response = gloo_net::http::Request::post(url)
        .json(body)
        .map_err(network_error)?
        .send()
        .await
        .map_err(network_error)?;
    if response.ok() {
        return Ok(response);
    }
    match response.json::<ErrorResponse>().await {
        Ok(body) => Err(body.error),
        Err(e) => Err(network_error(e)),
    }
}

/// POSTs `body` as JSON; maps any failure to the API's error shape.
pub async fn post_json<T: serde::Serialize>(url: &str, body: &T) -> Result<(), ErrorDetail> {
    post(url, body).await.map(|_| ())
}

/// POSTs `body` as JSON and reads the answer as `R`.
pub async fn post_json_for<T: serde::Serialize, R: serde::de::DeserializeOwned>(
    url: &str,
    body: &T,
) -> Result<R, ErrorDetail> {
    post(url, body)
        .await?
        .json::<R>()
        .await
        .map_err(network_error)
}

pub fn navigate(path: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_href(path);
    }
}

/// What a chat stream says, event by event.
pub enum StreamEvent {
    Delta(String),
    Done(crate::wire::Breakdown),
    Error(String),
}

fn perf_now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}

/// Milliseconds on the browser's monotonic clock.
pub fn now_ms() -> f64 {
    perf_now()
}

/// Reads the models this user can chat with (`GET /v1/models`, cookie auth).
pub async fn models() -> Result<Vec<String>, ErrorDetail> {
    let failed = |_| ErrorDetail {
        code: "network".into(),
        message: "Could not load the model list.".into(),
        field: None,
    };
    let response = gloo_net::http::Request::get("/v1/models")
        .send()
        .await
        .map_err(failed)?;
    if !response.ok() {
        return Err(ErrorDetail {
            code: "models".into(),
            message: format!("Could not load models (HTTP {}).", response.status()),
            field: None,
        });
    }
    let list: crate::wire::ModelList = response.json().await.map_err(failed)?;
    Ok(list.data.into_iter().map(|m| m.id).collect())
}

/// Streams `POST /api/llm/complete`, calling `on_event` for each SSE event as it
/// is parsed (not per network read). Aborting `signal` stops the request, which
/// closes the connection and so cancels the upstream call on the server.
pub async fn stream_chat(
    body: &crate::wire::CompleteRequest,
    signal: &web_sys::AbortSignal,
    mut on_event: impl FnMut(StreamEvent),
) -> Result<(), ErrorDetail> {
    let failed = || ErrorDetail {
        code: "network".into(),
        message: "The connection to calos failed.".into(),
        field: None,
    };
    let network = |_: gloo_net::Error| failed();
    let response = gloo_net::http::Request::post("/api/llm/complete")
        .abort_signal(Some(signal))
        .json(body)
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    if !response.ok() {
        return match response.json::<ErrorResponse>().await {
            Ok(body) => Err(body.error),
            Err(e) => Err(network(e)),
        };
    }
    let Some(stream) = response.body() else {
        return Err(failed());
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = wasm_bindgen_futures::JsFuture::from(reader.read())
            .await
            .map_err(|_| failed())?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if let Ok(value) = js_sys::Reflect::get(&chunk, &"value".into()) {
            if !value.is_undefined() {
                buffer.extend(js_sys::Uint8Array::new(&value).to_vec());
            }
        }
        // Events end with a blank line; a multi-byte character never spans one.
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            for line in String::from_utf8_lossy(&event).lines() {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                    continue;
                };
                if let Some(delta) = value.get("delta").and_then(|d| d.as_str()) {
                    on_event(StreamEvent::Delta(delta.to_string()));
                } else if value.get("done").is_some() {
                    let timings =
                        serde_json::from_value(value["timings"].clone()).unwrap_or_default();
                    on_event(StreamEvent::Done(timings));
                } else if let Some(message) =
                    value.pointer("/error/message").and_then(|m| m.as_str())
                {
                    on_event(StreamEvent::Error(message.to_string()));
                }
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// Opens the Mission Control feed on this page's own host and calls `on_text`
/// with each message, `on_open(true/false)` as the socket opens and closes;
/// reconnects two seconds after a close. The closures live as long as the page.
pub fn monitor_feed(on_text: impl Fn(String) + 'static, on_open: impl Fn(bool) + 'static) {
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;
    let on_text: Rc<dyn Fn(String)> = Rc::new(on_text);
    let on_open: Rc<dyn Fn(bool)> = Rc::new(on_open);
    fn connect(on_text: Rc<dyn Fn(String)>, on_open: Rc<dyn Fn(bool)>) {
        let Some(location) = web_sys::window().map(|w| w.location()) else {
            return;
        };
        let scheme = match location.protocol().as_deref() {
            Ok("https:") => "wss:",
            _ => "ws:",
        };
        let host = location.host().unwrap_or_default();
        let Ok(socket) = web_sys::WebSocket::new(&format!("{scheme}//{host}/api/monitor/ws"))
        else {
            return;
        };
        let text = on_text.clone();
        let message =
            Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
                if let Some(s) = ev.data().as_string() {
                    text(s);
                }
            });
        socket.set_onmessage(Some(message.as_ref().unchecked_ref()));
        message.forget();
        let opened = on_open.clone();
        let open = Closure::<dyn Fn()>::new(move || opened(true));
        socket.set_onopen(Some(open.as_ref().unchecked_ref()));
        open.forget();
        let close = Closure::<dyn Fn()>::new(move || {
            on_open(false);
            let (text, open) = (on_text.clone(), on_open.clone());
            let retry = Closure::once_into_js(move || connect(text, open));
            if let Some(window) = web_sys::window() {
                let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                    retry.unchecked_ref(),
                    2_000,
                );
            }
        });
        socket.set_onclose(Some(close.as_ref().unchecked_ref()));
        close.forget();
    }
    connect(on_text, on_open);
}
