//! Soulfra in the page: sign in with an Ed25519 key this browser keeps.
//!
//! The key pair is made by WebCrypto with a non-extractable private key and kept
//! in IndexedDB (which stores `CryptoKey` objects as they are), so page scripts
//! can use it to sign but never read it out. Sign-in is the same challenge and
//! proof as `calos identity login`: the challenge's UTF-8 bytes, signed.

use crate::wire::{ChallengeRequest, ChallengeResponse, ErrorDetail, VerifyRequest};
use js_sys::{Array, Promise, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, CryptoKeyPair, IdbDatabase, IdbRequest, IdbTransactionMode};

const DATABASE: &str = "calos";
const STORE: &str = "identity";
const ENTRY: &str = "ed25519";
const ALGORITHM: &str = "Ed25519";

fn subtle() -> Result<web_sys::SubtleCrypto, JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    Ok(window.crypto()?.subtle())
}

/// A fresh key pair; the private half can sign but not be exported.
async fn generate() -> Result<CryptoKeyPair, JsValue> {
    let usages = Array::of2(&"sign".into(), &"verify".into());
    let made = subtle()?.generate_key_with_str(ALGORITHM, false, &usages)?;
    Ok(JsFuture::from(made).await?.unchecked_into())
}

/// Whether this browser's WebCrypto does Ed25519 (Chromium 137+, Firefox 129+,
/// Safari 17+).
pub async fn supported() -> bool {
    generate().await.is_ok()
}

/// An IndexedDB request as a future of its result.
fn settled(request: &IdbRequest) -> JsFuture {
    let promise = Promise::new(&mut |resolve, reject| {
        let done = request.clone();
        let on_success = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = resolve.call1(&JsValue::NULL, &done.result().unwrap_or(JsValue::UNDEFINED));
        });
        let failed = request.clone();
        let on_error = Closure::once_into_js(move |_: web_sys::Event| {
            let error = failed.error().ok().flatten().map(JsValue::from);
            let _ = reject.call1(&JsValue::NULL, &error.unwrap_or(JsValue::UNDEFINED));
        });
        request.set_onsuccess(Some(on_success.unchecked_ref()));
        request.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(promise)
}

async fn open() -> Result<IdbDatabase, JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    let factory = window.indexed_db()?.ok_or("IndexedDB is not available")?;
    let request = factory.open_with_u32(DATABASE, 1)?;
    let upgrading = request.clone();
    let on_upgrade = Closure::once_into_js(move |_: web_sys::Event| {
        if let Ok(db) = upgrading.result() {
            let _ = db
                .unchecked_into::<IdbDatabase>()
                .create_object_store(STORE);
        }
    });
    request.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
    Ok(settled(&request).await?.unchecked_into())
}

/// This browser's key pair, made and stored on first use.
async fn key_pair() -> Result<CryptoKeyPair, JsValue> {
    let db = open().await?;
    let stored = settled(
        &db.transaction_with_str(STORE)?
            .object_store(STORE)?
            .get(&ENTRY.into())?,
    )
    .await?;
    if !stored.is_undefined() && !stored.is_null() {
        return Ok(stored.unchecked_into());
    }
    let pair = generate().await?;
    settled(
        &db.transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)?
            .object_store(STORE)?
            .put_with_key(&pair, &ENTRY.into())?,
    )
    .await?;
    Ok(pair)
}

async fn public_key_hex(key: &CryptoKey) -> Result<String, JsValue> {
    let raw = JsFuture::from(subtle()?.export_key("raw", key)?).await?;
    Ok(hex(&Uint8Array::new(&raw).to_vec()))
}

async fn sign(key: &CryptoKey, text: &str) -> Result<String, JsValue> {
    let signed = subtle()?.sign_with_str_and_u8_array(ALGORITHM, key, text.as_bytes())?;
    Ok(hex(
        &Uint8Array::new(&JsFuture::from(signed).await?).to_vec()
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn browser_error(what: &str, e: JsValue) -> ErrorDetail {
    let detail = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_default();
    ErrorDetail {
        kind: None,
        code: "browser_key".into(),
        message: format!("This browser could not {what} ({detail})."),
        field: None,
    }
}

/// Challenge, sign, verify; on success the server has set the session cookie.
/// `invite`: from the page's invite link, used if this key creates the account.
pub async fn sign_in(invite: Option<String>) -> Result<(), ErrorDetail> {
    let pair = key_pair()
        .await
        .map_err(|e| browser_error("use its key", e))?;
    let public_key = public_key_hex(&pair.get_public_key())
        .await
        .map_err(|e| browser_error("read its public key", e))?;
    let challenge: ChallengeResponse = crate::browser::post_json_for(
        "/api/auth/soulfra/challenge",
        &ChallengeRequest {
            public_key: public_key.clone(),
        },
    )
    .await?;
    let signature = sign(&pair.get_private_key(), &challenge.challenge)
        .await
        .map_err(|e| browser_error("sign the challenge", e))?;
    crate::browser::post_json(
        "/api/auth/soulfra/verify",
        &VerifyRequest {
            public_key,
            challenge: challenge.challenge,
            signature,
            username: None,
            invite,
        },
    )
    .await
}
