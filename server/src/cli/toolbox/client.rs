//! The toolbox's HTTP side: one tuned client, signing in (timed), the two chat
//! APIs' request shapes, and the accounts `calos load --ephemeral-users` makes
//! and removes.

use super::ToolError;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::io::BufRead;
use std::time::{Duration, Instant};

/// How the toolbox signs in. Passwords can come from stdin or `CALOS_PASSWORD`
/// so they stay out of shell history.
#[derive(Debug, Clone, Default, Args)]
pub struct SignInArgs {
    /// Sign in with this email.
    #[arg(long, env = "CALOS_EMAIL")]
    pub email: Option<String>,
    /// Sign in with this username (instead of --email).
    #[arg(long, env = "CALOS_USERNAME", conflicts_with = "email")]
    pub username: Option<String>,
    /// The password (prefer --password-stdin or CALOS_PASSWORD).
    #[arg(long, env = "CALOS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// Use this bearer token instead of signing in.
    #[arg(long, env = "CALOS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Who to sign in as, resolved from [`SignInArgs`].
#[derive(Debug, Clone)]
pub enum Credentials {
    /// No Authorization header (an upstream such as `calos mock-llm`).
    Anonymous,
    Token(String),
    Login {
        /// `("email" | "username", value)`, the login body's field.
        field: &'static str,
        identifier: String,
        password: String,
    },
}

impl SignInArgs {
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        if let Some(token) = self.token.clone().filter(|t| !t.is_empty()) {
            return Ok(Credentials::Token(token));
        }
        let (field, identifier) = match (&self.email, &self.username) {
            (Some(e), _) => ("email", e.clone()),
            (None, Some(u)) => ("username", u.clone()),
            (None, None) => return Ok(Credentials::Anonymous),
        };
        let password = if self.password_stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        } else {
            self.password.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "--{field} needs a password: --password-stdin, CALOS_PASSWORD or --password"
                )
            })?
        };
        Ok(Credentials::Login {
            field,
            identifier,
            password,
        })
    }
}

/// Which chat API to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatApi {
    /// calos's `POST /api/llm/complete` (with its timing breakdown).
    Calos,
    /// `POST /v1/chat/completions` on calos or any OpenAI-compatible server.
    Openai,
}

impl ChatApi {
    pub fn path(self) -> &'static str {
        match self {
            Self::Calos => "/api/llm/complete",
            Self::Openai => "/v1/chat/completions",
        }
    }

    /// The request body; calos's API is asked for its timings.
    pub fn body(self, model: &str, prompt: &str, stream: bool) -> Value {
        let messages = json!([{ "role": "user", "content": prompt }]);
        match self {
            Self::Calos => json!({
                "model": model, "messages": messages, "stream": stream, "includeTimings": true,
            }),
            Self::Openai if stream => json!({
                "model": model, "messages": messages, "stream": true,
                "stream_options": { "include_usage": true },
            }),
            Self::Openai => json!({ "model": model, "messages": messages, "stream": false }),
        }
    }
}

/// A client tuned for measuring: no Nagle delay, no redirects, enough idle
/// connections for every concurrent worker, and no global timeout (each request
/// sets its own).
pub fn http_client(max_idle: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(max_idle)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("calos-toolbox/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Turns a transport error into a sentence naming the address.
pub fn describe_send_error(url: &str, e: &reqwest::Error) -> ToolError {
    let detail = std::error::Error::source(e)
        .map(|s| {
            let mut text = s.to_string();
            let mut next = s.source();
            while let Some(inner) = next {
                text = format!("{text}: {inner}");
                next = inner.source();
            }
            text
        })
        .unwrap_or_else(|| e.to_string());
    if e.is_connect() || e.is_timeout() || e.is_request() {
        ToolError::Unreachable(format!(
            "cannot reach {url} ({detail}); is calos running there? (`calos serve`)"
        ))
    } else {
        ToolError::Refused(format!("{url}: {detail}"))
    }
}

/// The error message in a calos (or OpenAI-style) JSON error body.
pub fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("error")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// One calos gateway, addressed by its base URL.
#[derive(Clone)]
pub struct Gateway {
    pub base: String,
    pub client: reqwest::Client,
}

/// A signed-in session and how long signing in took.
pub struct SignedIn {
    pub token: Option<String>,
    pub took: Option<Duration>,
}

impl Gateway {
    pub fn new(base: &str, client: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<(u16, Vec<u8>), ToolError> {
        let url = self.url(path);
        let response = self
            .client
            .post(&url)
            .json(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| describe_send_error(&url, &e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| describe_send_error(&url, &e))?;
        Ok((status, bytes.to_vec()))
    }

    /// Signs in (timed) per `credentials`; a token or no credentials pass through.
    pub async fn sign_in(&self, credentials: &Credentials) -> Result<SignedIn, ToolError> {
        let (field, identifier, password) = match credentials {
            Credentials::Anonymous => {
                return Ok(SignedIn {
                    token: None,
                    took: None,
                })
            }
            Credentials::Token(t) => {
                return Ok(SignedIn {
                    token: Some(t.clone()),
                    took: None,
                })
            }
            Credentials::Login {
                field,
                identifier,
                password,
            } => (*field, identifier, password),
        };
        let started = Instant::now();
        let body = json!({ field: identifier, "password": password });
        let (status, bytes) = self.post_json("/api/auth/login", &body).await?;
        let took = started.elapsed();
        if status != 200 {
            return Err(ToolError::Refused(format!(
                "sign-in as {identifier} failed ({status}): {}",
                error_message(&bytes)
            )));
        }
        Ok(SignedIn {
            token: Some(token_of(&bytes)?),
            took: Some(took),
        })
    }

    /// Registers an account and returns its token.
    pub async fn register(&self, username: &str, password: &str) -> Result<String, ToolError> {
        let body = json!({ "username": username, "password": password });
        let (status, bytes) = self.post_json("/api/auth/register", &body).await?;
        if status != 201 {
            return Err(ToolError::Refused(format!(
                "registering {username} failed ({status}): {}",
                error_message(&bytes)
            )));
        }
        token_of(&bytes)
    }

    /// Closes the account the token belongs to.
    pub async fn delete_account(&self, token: &str, password: &str) -> Result<(), ToolError> {
        let url = self.url("/api/auth/me");
        let response = self
            .client
            .delete(&url)
            .bearer_auth(token)
            .json(&json!({ "password": password }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| describe_send_error(&url, &e))?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let bytes = response.bytes().await.unwrap_or_default();
        Err(ToolError::Refused(format!(
            "deleting an account failed ({status}): {}",
            error_message(&bytes)
        )))
    }
}

fn token_of(body: &[u8]) -> Result<String, ToolError> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| ToolError::Refused(format!("sign-in answer is not JSON: {e}")))?;
    parsed
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ToolError::Refused("sign-in answer has no token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_wins_over_a_login_and_no_flags_mean_anonymous() {
        let args = SignInArgs {
            email: Some("a@example.com".into()),
            token: Some("t".into()),
            ..Default::default()
        };
        assert!(matches!(args.credentials(), Ok(Credentials::Token(t)) if t == "t"));
        let none = SignInArgs::default();
        assert!(matches!(none.credentials(), Ok(Credentials::Anonymous)));
        let no_password = SignInArgs {
            email: Some("a@example.com".into()),
            ..Default::default()
        };
        assert!(no_password.credentials().is_err());
    }

    #[test]
    fn bodies_ask_for_what_each_api_can_tell() {
        let calos = ChatApi::Calos.body("m", "hi", false);
        assert_eq!(calos["includeTimings"], true);
        let openai = ChatApi::Openai.body("m", "hi", true);
        assert_eq!(openai["stream_options"]["include_usage"], true);
    }

    #[test]
    fn error_messages_come_from_either_error_shape() {
        assert_eq!(
            error_message(br#"{"success":false,"error":{"code":"x","message":"nope"}}"#),
            "nope"
        );
        assert_eq!(error_message(b"plain"), "plain");
    }
}
