//! The toolbox's HTTP side: one tuned client, signing in (timed), the two chat
//! APIs' request shapes, and the accounts `calos load --ephemeral-users` makes
//! and removes.

use super::figures::ServerFigures;
use super::ToolError;
use app::wire::{
    AuthResponse, ChatCompletion, ChatCompletionRequest, ChatMessageIn, CompleteRequest,
    CompleteResponse, DeleteAccountRequest, ErrorResponse, LoginRequest, OpenAiError,
    RegisterRequest, RequestMessage, StreamOptions,
};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
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

/// Which calos to ask, as whom, and what: shared by `calos perf` and
/// `calos diag all`, which time the same chat.
#[derive(Debug, Clone, Args)]
pub struct ChatTargetArgs {
    /// The calos to measure.
    #[arg(long, env = "CALOS_URL", default_value = "http://localhost:5001")]
    pub url: String,
    #[command(flatten)]
    pub sign_in: SignInArgs,
    /// Model to ask.
    #[arg(long, default_value = "llama3.2")]
    pub model: String,
    /// What to ask.
    #[arg(long, default_value = "Write a haiku about code")]
    pub prompt: String,
}

/// Who to sign in as, resolved from [`SignInArgs`].
#[derive(Debug, Clone)]
pub enum Credentials {
    /// No Authorization header (an upstream such as `calos mock-llm`).
    Anonymous,
    Token(String),
    Login {
        by: LoginBy,
        identifier: String,
        password: String,
    },
}

/// Which of the login body's fields `identifier` goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginBy {
    Email,
    Username,
}

impl LoginBy {
    /// The flag (and login field) name, for messages.
    pub fn field(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Username => "username",
        }
    }

    fn request(self, identifier: &str, password: &str) -> LoginRequest {
        let identifier = Some(identifier.to_string());
        let (email, username) = match self {
            Self::Email => (identifier, None),
            Self::Username => (None, identifier),
        };
        LoginRequest {
            email,
            username,
            password: password.to_string(),
        }
    }
}

impl SignInArgs {
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        if let Some(token) = self.token.clone().filter(|t| !t.is_empty()) {
            return Ok(Credentials::Token(token));
        }
        let (by, identifier) = match (&self.email, &self.username) {
            (Some(e), _) => (LoginBy::Email, e.clone()),
            (None, Some(u)) => (LoginBy::Username, u.clone()),
            (None, None) => return Ok(Credentials::Anonymous),
        };
        let password = if self.password_stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        } else {
            self.password.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "--{} needs a password: --password-stdin, CALOS_PASSWORD or --password",
                    by.field()
                )
            })?
        };
        Ok(Credentials::Login {
            by,
            identifier,
            password,
        })
    }
}

/// Which chat API to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
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

    /// The request body; calos's API is asked for its timings, a stream on
    /// `/v1` for its usage chunk (the only place it tells the token count).
    pub fn body(self, model: &str, prompt: &str, stream: bool) -> ChatBody {
        match self {
            Self::Calos => ChatBody::Calos(CompleteRequest {
                model: model.to_string(),
                messages: vec![ChatMessageIn {
                    role: "user".into(),
                    content: prompt.to_string(),
                }],
                stream,
                temperature: None,
                max_tokens: None,
                include_timings: true,
                conversation_id: None,
                regenerate: false,
            }),
            Self::Openai => {
                let message = RequestMessage::text("user", prompt);
                let mut request = ChatCompletionRequest::new(model, vec![message], stream);
                if stream {
                    request.stream_options = Some(StreamOptions {
                        include_usage: true,
                    });
                }
                ChatBody::Openai(request)
            }
        }
    }

    /// Reads a whole (not streamed) answer of this API: the output token count
    /// and, from calos's API, the server's breakdown (`/v1` leaves it to the
    /// `Server-Timing` header).
    pub fn read_reply(self, body: &[u8]) -> Result<Reply, serde_json::Error> {
        Ok(match self {
            Self::Calos => {
                let answer: CompleteResponse = serde_json::from_slice(body)?;
                Reply {
                    completion_tokens: Some(answer.usage.completion_tokens),
                    figures: answer.timings.as_ref().map(ServerFigures::from_timings),
                }
            }
            Self::Openai => {
                let answer: ChatCompletion = serde_json::from_slice(body)?;
                Reply {
                    completion_tokens: Some(answer.usage.completion_tokens),
                    figures: None,
                }
            }
        })
    }
}

/// A chat request for either API, serialised as that API's body.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ChatBody {
    Calos(CompleteRequest),
    Openai(ChatCompletionRequest),
}

/// What the toolbox reads from a whole answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reply {
    pub completion_tokens: Option<u32>,
    pub figures: Option<ServerFigures>,
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

/// Some OpenAI-compatible servers send the error as a bare string.
#[derive(Deserialize)]
struct BareError {
    error: String,
}

/// The error message in a calos error body ([`ErrorResponse`]), an OpenAI one
/// (the toolbox also targets other servers), or else the body's start.
pub fn error_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<ErrorResponse>(body)
        .map(|e| e.error.message)
        .or_else(|_| serde_json::from_slice::<OpenAiError>(body).map(|e| e.error.message))
        .or_else(|_| serde_json::from_slice::<BareError>(body).map(|e| e.error))
        .ok()
        .filter(|m| !m.is_empty());
    message.unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
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

    async fn post_json(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(u16, Vec<u8>), ToolError> {
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
        let (by, identifier, password) = match credentials {
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
                by,
                identifier,
                password,
            } => (*by, identifier, password),
        };
        // Built before the clock starts: only the exchange is timed.
        let body = by.request(identifier, password);
        let started = Instant::now();
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
        let body = RegisterRequest {
            username: username.to_string(),
            password: password.to_string(),
            email: None,
            invite: None,
        };
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
            .json(&DeleteAccountRequest {
                password: password.to_string(),
            })
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
    serde_json::from_slice::<AuthResponse>(body)
        .map(|answer| answer.token)
        .map_err(|e| ToolError::Refused(format!("the sign-in answer is not calos's: {e}")))
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
        let ChatBody::Calos(calos) = ChatApi::Calos.body("m", "hi", false) else {
            panic!("not calos's body")
        };
        assert!(calos.include_timings && !calos.stream);
        let ChatBody::Openai(openai) = ChatApi::Openai.body("m", "hi", true) else {
            panic!("not an OpenAI body")
        };
        assert!(openai.stream_options.is_some_and(|o| o.include_usage));
        let whole = ChatApi::Openai.body("m", "hi", false);
        let text = serde_json::to_string(&whole).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#
        );
        let text = serde_json::to_string(&ChatApi::Calos.body("m", "hi", true)).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"includeTimings":true}"#
        );
    }

    #[test]
    fn replies_give_tokens_and_calos_its_breakdown() {
        let calos = br#"{"model":"m","provider":"p","success":true,"text":"t","timings":{"auth":1,"database":2,"queue":0,"cache":0,"cacheStatus":"miss","total":9,"attempts":1},"usage":{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10}}"#;
        let reply = ChatApi::Calos.read_reply(calos).ok().unwrap_or_default();
        assert_eq!(reply.completion_tokens, Some(7));
        assert_eq!(reply.figures.and_then(|f| f.total), Some(9.0));
        let openai = br#"{"id":"mock","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"t"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}"#;
        let reply = ChatApi::Openai.read_reply(openai).ok().unwrap_or_default();
        assert_eq!((reply.completion_tokens, reply.figures), (Some(4), None));
        assert!(ChatApi::Calos.read_reply(b"{not json").is_err());
    }

    #[test]
    fn error_messages_come_from_either_error_shape() {
        assert_eq!(
            error_message(br#"{"success":false,"error":{"code":"x","message":"nope"}}"#),
            "nope"
        );
        assert_eq!(
            error_message(
                br#"{"error":{"message":"overloaded","type":"server_error","code":null}}"#
            ),
            "overloaded"
        );
        assert_eq!(error_message(br#"{"error":"bare"}"#), "bare");
        assert_eq!(error_message(b"plain"), "plain");
    }
}
