//! Browser-only helpers for hydrated pages: reading form fields, calling the
//! JSON API, and navigating. Compiled into the WASM bundle only.

use crate::wire::{CompleteEvent, ErrorDetail, ErrorResponse};
use futures::StreamExt;
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
        kind: None,
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
    answer(response).await
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

/// PATCHes `body` as JSON and reads the answer as `R`.
pub async fn patch_json_for<T: serde::Serialize, R: serde::de::DeserializeOwned>(
    url: &str,
    body: &T,
) -> Result<R, ErrorDetail> {
    let response = gloo_net::http::Request::patch(url)
        .json(body)
        .map_err(network_error)?
        .send()
        .await
        .map_err(network_error)?;
    read(response).await
}

/// Reads a GET answer as `R`; a non-2xx answer becomes the API's error.
pub async fn get_json_for<R: serde::de::DeserializeOwned>(url: &str) -> Result<R, ErrorDetail> {
    let response = gloo_net::http::Request::get(url)
        .send()
        .await
        .map_err(network_error)?;
    read(response).await
}

/// Sends a DELETE; a non-2xx answer becomes the API's error.
pub async fn delete(url: &str) -> Result<(), ErrorDetail> {
    let response = gloo_net::http::Request::delete(url)
        .send()
        .await
        .map_err(network_error)?;
    answer(response).await.map(|_| ())
}

/// A success's body as `R`, else the API's error.
async fn read<R: serde::de::DeserializeOwned>(
    response: gloo_net::http::Response,
) -> Result<R, ErrorDetail> {
    answer(response)
        .await?
        .json::<R>()
        .await
        .map_err(network_error)
}

/// The response when it is a success, else the API's error from its body.
async fn answer(
    response: gloo_net::http::Response,
) -> Result<gloo_net::http::Response, ErrorDetail> {
    if response.ok() {
        return Ok(response);
    }
    match response.json::<ErrorResponse>().await {
        Ok(body) => Err(body.error),
        Err(e) => Err(network_error(e)),
    }
}

pub fn navigate(path: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_href(path);
    }
}

/// What a chat stream says, event by event.
pub enum StreamEvent {
    Delta(String),
    // Boxed: the breakdown (with its attempts) dwarfs the other variants.
    Done(Box<crate::wire::Breakdown>),
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
        kind: None,
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
            kind: None,
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
        kind: None,
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
    let mut events = std::pin::pin!(crate::sse::decode(body_chunks(reader)));
    while let Some(data) = events.next().await {
        let data = data.map_err(|_| failed())?;
        // An event this page does not know is skipped, as before.
        let Ok(event) = CompleteEvent::parse(&data) else {
            continue;
        };
        on_event(match event {
            CompleteEvent::Delta { delta } => StreamEvent::Delta(delta),
            CompleteEvent::Done(done) => StreamEvent::Done(Box::new(done.timings)),
            CompleteEvent::Error { error } => StreamEvent::Error(error.message),
        });
    }
    Ok(())
}

/// The fetch body's chunks as a `Stream` of bytes, for the shared SSE decoder.
/// Ends when the body does; a failed read is the stream's error.
fn body_chunks(
    reader: web_sys::ReadableStreamDefaultReader,
) -> impl futures::Stream<Item = Result<Vec<u8>, String>> {
    futures::stream::unfold(Some(reader), |reader| async move {
        let reader = reader?;
        let chunk = match wasm_bindgen_futures::JsFuture::from(reader.read()).await {
            Ok(chunk) => chunk,
            Err(_) => return Some((Err("the body could not be read".to_string()), None)),
        };
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if done {
            return None;
        }
        let bytes = js_sys::Reflect::get(&chunk, &"value".into())
            .ok()
            .filter(|v| !v.is_undefined())
            .map(|v| js_sys::Uint8Array::new(&v).to_vec())
            .unwrap_or_default();
        Some((Ok(bytes), Some(reader)))
    })
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
