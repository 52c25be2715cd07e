//! Sign-in through OAuth providers, against `calos mock-oauth` over real HTTP:
//! the success paths (Google, GitHub, Apple) and every rejection SECURITY.md §4.25
//! lists.

use crate::helpers::{error_code, location, ok_json, unique, Backend, TestApp};
use app::wire::UserView;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Client, Response};
use serde_json::{json, Value};
use server::emulators::mock_oauth::{MockOAuthArgs, MockOAuthServer};

const CLIENT_ID: &str = "calos-test-client";
const CLIENT_SECRET: &str = "calos-test-secret";

/// calos with all three providers pointed at one emulator.
struct World {
    app: TestApp,
    idp: MockOAuthServer,
    /// Follows nothing, keeps no cookies: each step is explicit.
    browser: Client,
}

/// An Apple-style P-256 key pair (PKCS#8 PEM private, SPKI PEM public) from openssl.
fn apple_key() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("key.p8");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&private)
        .output()
        .expect("openssl is installed");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .unwrap();
    (
        std::fs::read_to_string(&private).unwrap(),
        String::from_utf8(public.stdout).unwrap(),
    )
}

async fn world(backend: Backend) -> World {
    world_with(backend, &[]).await
}

/// [`world`] with more server arguments.
async fn world_with(backend: Backend, extra: &[&str]) -> World {
    let (apple_private, apple_public) = apple_key();
    let idp = server::emulators::mock_oauth::spawn(&MockOAuthArgs {
        port: 0,
        host: [127, 0, 0, 1].into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        apple_team_id: "TEAM123456".into(),
        apple_public_key: Some(apple_public),
    })
    .await
    .unwrap();
    let google = idp.issuer("google");
    let apple = idp.issuer("apple");
    let github = format!("{}/github", idp.url());
    let github_api = format!("{}/github/api", idp.url());
    // `=` form: the PEM starts with dashes, which would read as a flag.
    let apple_key_arg = format!("--apple-private-key={apple_private}");
    let mut args = vec![
        "--google-client-id",
        CLIENT_ID,
        "--google-client-secret",
        CLIENT_SECRET,
        "--google-issuer",
        &google,
        "--github-client-id",
        CLIENT_ID,
        "--github-client-secret",
        CLIENT_SECRET,
        "--github-url",
        &github,
        "--github-api-url",
        &github_api,
        "--apple-client-id",
        CLIENT_ID,
        "--apple-team-id",
        "TEAM123456",
        "--apple-key-id",
        "KEY1234567",
        &apple_key_arg,
        "--apple-issuer",
        &apple,
    ];
    args.extend_from_slice(extra);
    let app = TestApp::spawn_with(backend, &args).await;
    let browser = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    World { app, idp, browser }
}

/// The value a response sets for cookie `name`.
fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// A sign-in begun at calos and approved at the provider, not yet returned:
/// the callback URL and the browser's flow cookie.
struct Approved {
    callback: String,
    flow_cookie: String,
}

impl World {
    /// Starts a sign-in (`query` like `?next=/x`); returns the provider URL and cookie.
    async fn start(&self, provider: &str, query: &str, session: Option<&str>) -> (String, String) {
        let mut request = self
            .browser
            .get(self.app.url(&format!("/api/auth/oauth/{provider}{query}")));
        if let Some(token) = session {
            request = request.header(COOKIE, format!("calos_session={token}"));
        }
        let started = request.send().await.unwrap();
        assert_eq!(started.status(), 303, "{:?}", started.text().await);
        let cookie = set_cookie(&started, "calos_oauth").expect("flow cookie");
        (location(&started), cookie)
    }

    /// The person at the provider approves as `sub` with `email`.
    async fn approve(&self, authorize_url: &str, sub: &str, email: &str, verified: bool) -> String {
        let page = self.browser.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("Approve"));
        let mut form = vec![
            ("sub", sub.to_string()),
            ("email", email.to_string()),
            ("name", "Emulated Person".to_string()),
            ("decision", "approve".to_string()),
        ];
        if verified {
            form.push(("email_verified", "true".into()));
        }
        let back = self
            .browser
            .post(authorize_url)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 303);
        location(&back)
    }

    async fn approved(&self, provider: &str, sub: &str, email: &str) -> Approved {
        let (authorize, flow_cookie) = self.start(provider, "", None).await;
        let callback = self.approve(&authorize, sub, email, true).await;
        Approved {
            callback,
            flow_cookie,
        }
    }

    async fn callback(&self, url: &str, flow_cookie: Option<&str>) -> Response {
        let mut request = self.browser.get(url);
        if let Some(cookie) = flow_cookie {
            request = request.header(COOKIE, format!("calos_oauth={cookie}"));
        }
        request.send().await.unwrap()
    }

    /// Finishes a sign-in; returns the session token.
    async fn signed_in(&self, approved: &Approved) -> String {
        let done = self
            .callback(&approved.callback, Some(&approved.flow_cookie))
            .await;
        assert_eq!(done.status(), 303, "{:?}", done.text().await);
        set_cookie(&done, "calos_session").expect("session cookie")
    }

    async fn user(&self, token: &str) -> UserView {
        self.app.me_as(token).await
    }

    async fn spoil(&self, how: Value) {
        let set = self
            .browser
            .post(format!("{}/_emulator/next-id-token", self.idp.url()))
            .json(&how)
            .send()
            .await
            .unwrap();
        assert_eq!(set.status(), 204);
    }
}

/// Replaces (or adds) one query parameter of a URL.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(name, value);
    parsed.to_string()
}

fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_signs_in_with_state_pkce_and_nonce_and_keys_accounts_by_subject() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let w = world(backend).await;
        let (authorize, cookie) = w.start("google", "?next=/chat%3Fx%3D1", None).await;
        for needed in ["state", "code_challenge", "nonce", "redirect_uri"] {
            assert!(
                param(&authorize, needed).is_some(),
                "{needed} in {authorize}"
            );
        }
        assert_eq!(
            param(&authorize, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert_eq!(
            param(&authorize, "redirect_uri").unwrap(),
            format!(
                "http://localhost:{}/api/auth/oauth/google/callback",
                w.app.addr.port()
            )
        );
        let sub = unique("google-sub");
        let callback = w.approve(&authorize, &sub, "first@example.com", true).await;
        assert!(param(&callback, "iss").is_some(), "RFC 9207 iss");
        let done = w.callback(&callback, Some(&cookie)).await;
        assert_eq!(done.status(), 303);
        assert_eq!(location(&done), "/chat?x=1");
        assert_eq!(
            set_cookie(&done, "calos_oauth").as_deref(),
            Some(""),
            "flow cookie cleared"
        );
        let token = set_cookie(&done, "calos_session").unwrap();
        let user = w.user(&token).await;
        assert_eq!(user.email.as_deref(), Some("first@example.com"));

        // Same subject, new email at the provider: the same account.
        let again = w.approved("google", &sub, "renamed@example.com").await;
        let token = w.signed_in(&again).await;
        assert_eq!(w.user(&token).await.user_id, user.user_id);

        // Another subject claiming the first account's (verified) email is not
        // merged into it silently.
        let squatter = w
            .approved("google", &unique("other-sub"), "first@example.com")
            .await;
        let refused = w
            .callback(&squatter.callback, Some(&squatter.flow_cookie))
            .await;
        assert_eq!(
            error_code(refused).await,
            (409, "oauth_account_exists".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_and_apple_sign_in() {
    let w = world(Backend::Sqlite).await;
    let github = w.approved("github", "424242", "octo@example.com").await;
    assert!(
        param(&github.callback, "iss").is_none(),
        "GitHub sends no iss"
    );
    let token = w.signed_in(&github).await;
    let user = w.user(&token).await;
    assert_eq!(user.email.as_deref(), Some("octo@example.com"));
    let again = w.approved("github", "424242", "octo@example.com").await;
    assert_eq!(
        w.user(&w.signed_in(&again).await).await.user_id,
        user.user_id
    );

    // Apple: calos signs its ES256 client secret; the emulator verifies it.
    let apple = w.approved("apple", &unique("apple-sub"), "").await;
    let token = w.signed_in(&apple).await;
    assert_eq!(w.user(&token).await.email, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_without_this_browsers_state_are_rejected() {
    let w = world(Backend::Sqlite).await;
    let a = w.approved("google", &unique("sub"), "a@example.com").await;

    // No state, or a made-up one.
    let no_state = a.callback.replace("state=", "nostate=");
    assert_eq!(
        error_code(w.callback(&no_state, Some(&a.flow_cookie)).await).await,
        (400, "oauth_state_mismatch".into())
    );
    let forged = with_param(&a.callback, "state", "forged-state");
    assert_eq!(
        error_code(w.callback(&forged, Some(&a.flow_cookie)).await).await,
        (400, "oauth_state_mismatch".into())
    );
    // The right state from another browser (no cookie, or another flow's).
    let (_, other_cookie) = w.start("google", "", None).await;
    assert_eq!(
        error_code(w.callback(&a.callback, None).await).await,
        (400, "oauth_state_mismatch".into())
    );
    assert_eq!(
        error_code(w.callback(&a.callback, Some(&other_cookie)).await).await,
        (400, "oauth_state_mismatch".into())
    );
    // A Google flow's callback delivered to the GitHub callback (mix-up).
    let mixed = a.callback.replace("/oauth/google/", "/oauth/github/");
    assert_eq!(
        error_code(w.callback(&mixed, Some(&a.flow_cookie)).await).await,
        (400, "oauth_state_mismatch".into())
    );
    // None of that used the flow up: the real browser still signs in, once.
    w.signed_in(&a).await;
    assert_eq!(
        error_code(w.callback(&a.callback, Some(&a.flow_cookie)).await).await,
        (400, "oauth_state_mismatch".into()),
        "a replayed callback"
    );
    // A browser is sent back to the login page with the reason.
    let browser = w
        .browser
        .get(&a.callback)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 303);
    assert_eq!(
        location(&browser),
        "/login?error=oauth_state_mismatch&form=oauth"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_codes_wrong_verifiers_and_foreign_issuers_are_rejected() {
    let w = world(Backend::Sqlite).await;
    // A code already redeemed, brought back under a fresh flow of this browser.
    let a = w.approved("google", &unique("sub"), "").await;
    w.signed_in(&a).await;
    let (authorize_b, cookie_b) = w.start("google", "", None).await;
    let state_b = param(&authorize_b, "state").unwrap();
    let replay = with_param(&a.callback, "state", &state_b);
    assert_eq!(
        error_code(w.callback(&replay, Some(&cookie_b)).await).await,
        (401, "oauth_code_rejected".into())
    );
    // A fresh code injected into another flow: its PKCE verifier does not match.
    let c = w.approved("google", &unique("sub"), "").await;
    let (authorize_d, cookie_d) = w.start("google", "", None).await;
    let injected = with_param(&c.callback, "state", &param(&authorize_d, "state").unwrap());
    assert_eq!(
        error_code(w.callback(&injected, Some(&cookie_d)).await).await,
        (401, "oauth_code_rejected".into())
    );
    // The callback names another issuer (RFC 9207 mix-up defence).
    let e = w.approved("google", &unique("sub"), "").await;
    let foreign = with_param(&e.callback, "iss", &w.idp.issuer("apple"));
    assert_eq!(
        error_code(w.callback(&foreign, Some(&e.flow_cookie)).await).await,
        (400, "oauth_issuer_mismatch".into())
    );
    // The person declined.
    let (authorize, cookie) = w.start("google", "", None).await;
    let declined = w
        .browser
        .post(&authorize)
        .form(&[("decision", "deny")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(w.callback(&location(&declined), Some(&cookie)).await).await,
        (400, "oauth_denied".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_with_the_wrong_issuer_audience_nonce_key_or_age_are_rejected() {
    let w = world(Backend::Sqlite).await;
    for spoil in [
        json!({ "iss": "https://accounts.example.com" }),
        json!({ "aud": "another-client" }),
        json!({ "nonce": "a-nonce-from-another-sign-in" }),
        json!({ "exp_offset_secs": -3600 }),
        json!({ "unknown_key": true }),
        json!({ "omit": true }),
    ] {
        let approved = w.approved("google", &unique("sub"), "").await;
        w.spoil(spoil.clone()).await;
        let refused = w
            .callback(&approved.callback, Some(&approved.flow_cookie))
            .await;
        assert_eq!(
            error_code(refused).await,
            (401, "oauth_id_token_invalid".into()),
            "{spoil}"
        );
    }
    // And afterwards an honest token still works.
    let fine = w.approved("google", &unique("sub"), "").await;
    w.signed_in(&fine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_never_leaves_the_site_and_unknown_providers_are_404() {
    let w = world(Backend::Sqlite).await;
    for hostile in [
        "https://evil.example.com/",
        "//evil.example.com",
        "/\\evil.example.com",
    ] {
        let query = format!("?next={}", urlencode(hostile));
        let (authorize, cookie) = w.start("google", &query, None).await;
        let callback = w.approve(&authorize, &unique("sub"), "", true).await;
        let done = w.callback(&callback, Some(&cookie)).await;
        assert_eq!(location(&done), "/", "{hostile}");
    }
    let plain = TestApp::spawn(Backend::Sqlite).await;
    let response = plain.get("/api/auth/oauth/google", None).await;
    assert_eq!(error_code(response).await, (404, "not_found".into()));
    assert_eq!(providers(&plain).await, json!([]));
    let listed = providers(&w.app).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["google", "github", "apple"]);
}

/// The providers calos lists for its login page.
async fn providers(app: &TestApp) -> Value {
    let listed: Value = ok_json(app.get("/api/auth/oauth/providers", None).await).await;
    listed["providers"].clone()
}

fn urlencode(text: &str) -> String {
    oauth2::url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_is_explicit_and_needs_a_verified_email() {
    let w = world(Backend::Sqlite).await;
    let name = unique("linker");
    let token = w.app.token_for(&name, "linker-password").await;
    let me = w.user(&token).await;

    // Unverified email at the provider: refused.
    let (authorize, cookie) = w.start("github", "?link=true", Some(&token)).await;
    let callback = w
        .approve(&authorize, "777001", "linker@example.com", false)
        .await;
    assert_eq!(
        error_code(w.callback(&callback, Some(&cookie)).await).await,
        (403, "forbidden".into())
    );
    // Verified: linked, and the provider now signs in to the same account.
    let (authorize, cookie) = w.start("github", "?link=true", Some(&token)).await;
    let callback = w
        .approve(&authorize, "777001", "linker@example.com", true)
        .await;
    let done = w.callback(&callback, Some(&cookie)).await;
    assert_eq!(done.status(), 303);
    let later = w.approved("github", "777001", "linker@example.com").await;
    assert_eq!(w.user(&w.signed_in(&later).await).await.user_id, me.user_id);

    // Linking needs a signed-in session.
    let anonymous = w
        .browser
        .get(w.app.url("/api/auth/oauth/github?link=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(anonymous).await, (401, "invalid_token".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_invite_only_sign_ups_a_new_oauth_account_needs_the_invite_it_started_with() {
    let w = world_with(Backend::Sqlite, &["--registration", "invite"]).await;
    let sub = unique("invited-sub");
    let uninvited = w.approved("google", &sub, "invitee@example.com").await;
    let refused = w
        .callback(&uninvited.callback, Some(&uninvited.flow_cookie))
        .await;
    assert_eq!(error_code(refused).await, (403, "invite_required".into()));

    let invite = w.app.invite_token(1).await;
    let (authorize, flow_cookie) = w.start("google", &format!("?invite={invite}"), None).await;
    let callback = w
        .approve(&authorize, &sub, "invitee@example.com", true)
        .await;
    let invited = Approved {
        callback,
        flow_cookie,
    };
    let token = w.signed_in(&invited).await;
    let user = w.user(&token).await;

    // The account exists now: later sign-ins need no invite.
    let again = w.approved("google", &sub, "invitee@example.com").await;
    assert_eq!(
        w.user(&w.signed_in(&again).await).await.user_id,
        user.user_id
    );
    // And the invite is spent.
    let other = unique("other-sub");
    let (authorize, flow_cookie) = w.start("google", &format!("?invite={invite}"), None).await;
    let callback = w
        .approve(&authorize, &other, "other@example.com", true)
        .await;
    let reused = w.callback(&callback, Some(&flow_cookie)).await;
    assert_eq!(error_code(reused).await, (403, "invite_invalid".into()));
}
