//! `ApiJson<T>`: the JSON body extractor every API route uses.
//!
//! Unlike axum's `Json`, it does not insist on `Content-Type: application/json`
//! from callers with a bearer token: Apache Bench sends JSON labelled
//! `text/plain`, and the original guide's `ab -p file.json` commands must work.
//! Without a bearer token the labels a cross-site HTML form can send
//! (`text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`)
//! are refused with 415: otherwise another site's form could post JSON to
//! `/api/auth/login` and sign a visitor into the attacker's account. No label
//! at all is fine (browsers always send one). Every other failure uses the API
//! error shape: 400 with the serde message (which names the field), 413 past
//! the body limit (including chunked bodies without a length).

use crate::http::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

pub struct ApiJson<T>(pub T);

/// Largest request body the API accepts, in bytes (documented in the README).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if is_form_label(req.headers()) && !crate::http::extract::has_bearer(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse(&bytes).map(ApiJson)
    }
}

/// The content types an HTML form (or a `no-cors` fetch) can send across sites
/// without a CORS preflight.
fn is_form_label(headers: &HeaderMap) -> bool {
    let Some(label) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = label.split(';').next().unwrap_or("").trim();
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ]
    .iter()
    .any(|form| essence.eq_ignore_ascii_case(form))
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        }
    } else {
        ApiError::bad_request("invalid_body", "Could not read the request body.")
    }
}

/// Parses a JSON body into `T`, mapping serde's errors to a 400 that says where.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The request body is empty; send a JSON object.",
        ));
    }
    // serde would also build a struct from a JSON array; the API takes objects only.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The request body must be a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut de).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::bad_request("invalid_field", e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request("invalid_json", format!("Malformed JSON: {e}"))
            }
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("invalid_json", format!("Malformed JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::wire::LoginRequest;

    #[test]
    fn malformed_json_is_a_400_naming_the_problem() {
        let err = parse::<LoginRequest>(br#"{"email": "a@example.com", "password": }"#).err();
        assert!(matches!(
            err,
            Some(ApiError::BadRequest {
                code: "invalid_json",
                ..
            })
        ));
    }

    #[test]
    fn a_missing_field_is_reported_by_name() {
        let err = parse::<LoginRequest>(br#"{"email":"a@example.com"}"#).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("password"), "{message}");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(parse::<LoginRequest>(br#"{"password":"x"} junk"#).is_err());
    }
}
