//! Who may sign up (`CALOS_REGISTRATION=open|invite|closed`) and the
//! single-use, expiring invites administrators make: every way of creating an
//! account (password, form, Ed25519 key) follows the policy, an invite lets in
//! exactly one account even when many race for it, and open invites are
//! bounded.

use crate::helpers::*;
use app::wire::{CreatedInviteResponse, InvitesResponse};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_calos");

async fn register_with(app: &TestApp, username: &str, invite: Option<&str>) -> reqwest::Response {
    let mut body = json!({ "username": username, "password": "pass-word-1" });
    if let Some(invite) = invite {
        body["invite"] = json!(invite);
    }
    app.post_json("/api/auth/register", &body).await
}

async fn make_invite(app: &TestApp, admin: &str, body: &Value) -> reqwest::Response {
    app.request(
        reqwest::Method::POST,
        &app.dashboard_url("/api/monitor/invites"),
        Some(admin),
    )
    .json(body)
    .send()
    .await
    .unwrap()
}

async fn invite(app: &TestApp, admin: &str, note: &str) -> CreatedInviteResponse {
    let made = make_invite(app, admin, &json!({ "note": note, "expiresInHours": 1 })).await;
    assert_eq!(made.status(), 201);
    made.json().await.unwrap()
}

async fn invites(app: &TestApp, admin: &str) -> (InvitesResponse, String) {
    let response = app.dashboard_get("/api/monitor/invites", admin).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

async fn revoke(app: &TestApp, admin: &str, invite_id: &str) -> reqwest::Response {
    app.request(
        reqwest::Method::DELETE,
        &app.dashboard_url(&format!("/api/monitor/invites/{invite_id}")),
        Some(admin),
    )
    .send()
    .await
    .unwrap()
}

/// An Ed25519 key's first sign-in, as `calos identity login` makes it.
async fn key_sign_in(
    app: &TestApp,
    invite: Option<&str>,
) -> anyhow::Result<app::wire::AuthResponse> {
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    server::cli::identity::login(&format!("http://{}", app.addr), &key, None, invite).await
}

on_both_databases! {
    async fn invite_mode_lets_in_exactly_the_holders_of_open_invites(backend: Backend) {
        let app = TestApp::spawn_with(backend, &["--registration", "invite"]).await;
        let admin = app.invited_admin().await;

        let (status, code) = error_code(register_with(&app, &unique("walk-in"), None).await).await;
        assert_eq!((status, code.as_str()), (403, "invite_required"));
        let (status, code) =
            error_code(register_with(&app, &unique("guess"), Some("not-an-invite")).await).await;
        assert_eq!((status, code.as_str()), (403, "invite_invalid"));

        let made = invite(&app, &admin.token, "for the new hire").await;
        assert!(made.url.starts_with("http://"), "{}", made.url);
        assert!(made.url.ends_with(&format!("/login?form=register&invite={}", made.token)));
        assert_eq!(made.invite.state, "open");
        let (listed, text) = invites(&app, &admin.token).await;
        assert_eq!(listed.registration, "invite");
        assert!(!text.contains(&made.token), "the list never shows a secret");

        let newcomer = unique("newcomer");
        assert_eq!(register_with(&app, &newcomer, Some(&made.token)).await.status(), 201);
        let (listed, _) = invites(&app, &admin.token).await;
        let used = listed.invites.iter().find(|i| i.invite_id == made.invite.invite_id).unwrap();
        assert_eq!(used.state, "used");
        assert_eq!(used.used_by.as_deref(), Some(newcomer.as_str()));
        let (status, code) =
            error_code(register_with(&app, &unique("second"), Some(&made.token)).await).await;
        assert_eq!((status, code.as_str()), (403, "invite_invalid"), "single use");
        // A used invite is the record of who let whom in: it cannot be withdrawn.
        assert_eq!(revoke(&app, &admin.token, &made.invite.invite_id).await.status(), 404);

        // Ten people racing with one link: one account.
        let shared = invite(&app, &admin.token, "raced").await;
        let names: Vec<String> = (0..10).map(|_| unique("racer")).collect();
        let attempts = names
            .iter()
            .map(|name| register_with(&app, name, Some(&shared.token)));
        let statuses: Vec<u16> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.status().as_u16())
            .collect();
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 403), "{statuses:?}");

        // Withdrawn before use: dead.
        let withdrawn = invite(&app, &admin.token, "changed my mind").await;
        assert_eq!(revoke(&app, &admin.token, &withdrawn.invite.invite_id).await.status(), 200);
        let (status, code) =
            error_code(register_with(&app, &unique("late"), Some(&withdrawn.token)).await).await;
        assert_eq!((status, code.as_str()), (403, "invite_invalid"));

        // An Ed25519 key's first proof is a sign-up too.
        let refused = key_sign_in(&app, None).await.unwrap_err();
        assert!(refused.to_string().contains("invite"), "{refused}");
        let key_invite = invite(&app, &admin.token, "a key").await;
        key_sign_in(&app, Some(&key_invite.token)).await.expect("invited key signs up");

        // Accounts that exist sign in whatever the policy.
        assert_eq!(app.login(&admin.username, &admin.password).await.status(), 200);
    }

    async fn an_expired_invite_creates_nothing(backend: Backend) {
        let app = TestApp::spawn_with(backend, &["--registration", "invite"]).await;
        let target = server::db::DbTarget::resolve(app.database_url.as_deref(), &app.data_dir);
        let db = server::db::Db::connect(&target, 1).await.unwrap();
        let token = "an-invite-that-expired-a-second-ago";
        server::db::invites::insert(
            &db,
            server::db::invites::NewInvite {
                token_hash: &server::auth::invites::token_hash(token),
                created_by: None,
                note: None,
                expires_at: chrono::Utc::now().timestamp() - 1,
            },
        )
        .await
        .unwrap();
        db.close().await;
        let (status, code) = error_code(register_with(&app, &unique("tardy"), Some(token)).await).await;
        assert_eq!((status, code.as_str()), (403, "invite_invalid"));
    }

    async fn closed_registration_refuses_every_way_of_signing_up(backend: Backend) {
        let app = TestApp::spawn_with(backend, &["--registration", "closed"]).await;
        let invite = app.invite_token(1).await;
        let (status, code) = error_code(register_with(&app, &unique("walk-in"), Some(&invite)).await).await;
        assert_eq!((status, code.as_str()), (403, "registration_closed"), "invites do not open a closed gateway");
        let refused = key_sign_in(&app, Some(&invite)).await.unwrap_err();
        assert!(refused.to_string().contains("sign-ups"), "{refused}");

        let form = app
            .client
            .post(app.url("/register"))
            .header("origin", format!("http://{}", app.addr))
            .form(&[("username", unique("form").as_str()), ("password", "pass-word-1")])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 303);
        assert_eq!(location(&form), "/login?error=registration_closed&form=register");
        let page = app.get("/login", None).await.text().await.unwrap();
        assert!(page.contains("does not take sign-ups"), "the page says so instead of offering a form");
        assert!(!page.contains(r#"action="/register""#));
    }

    async fn open_invites_are_bounded_and_checked(backend: Backend) {
        let app = TestApp::spawn_with(backend, &["--max-open-invites", "2"]).await;
        let admin = app.admin().await;
        let first = invite(&app, &admin.token, "one").await;
        invite(&app, &admin.token, "two").await;
        let (status, code) = error_code(make_invite(&app, &admin.token, &json!({})).await).await;
        assert_eq!((status, code.as_str()), (409, "too_many_invites"));
        assert_eq!(revoke(&app, &admin.token, &first.invite.invite_id).await.status(), 200);
        assert_eq!(make_invite(&app, &admin.token, &json!({})).await.status(), 201, "room again");

        for bad in [
            json!({ "expiresInHours": 0 }),
            json!({ "expiresInHours": 721 }),
            json!({ "note": "n".repeat(201) }),
            json!({ "note": "line\nbreak" }),
            json!({ "expires": 3 }),
        ] {
            let (status, _) = error_code(make_invite(&app, &admin.token, &bad).await).await;
            assert_eq!(status, 400, "{bad}");
        }
        let member = app.new_user("member").await;
        let (status, _) = error_code(make_invite(&app, &member.token, &json!({})).await).await;
        assert_eq!(status, 403, "members cannot hand out accounts");
        assert_eq!(app.dashboard_get("/api/monitor/invites", &member.token).await.status(), 403);
        // Open registration ignores invites entirely.
        assert_eq!(register_with(&app, &unique("open"), Some("whatever")).await.status(), 201);
    }

    async fn an_invite_link_opens_the_sign_up_form_and_the_form_redeems_it(backend: Backend) {
        let app = TestApp::spawn_with(backend, &["--registration", "invite"]).await;
        let page = app.get("/login", None).await.text().await.unwrap();
        assert!(page.contains("by invitation"), "no link, no form");
        assert!(!page.contains(r#"action="/register""#));

        let token = app.invite_token(1).await;
        let link = format!("/login?form=register&invite={token}");
        let page = app.get(&link, None).await.text().await.unwrap();
        assert!(page.contains(r#"action="/register""#));
        assert!(page.contains(&format!(r#"value="{token}""#)), "the form carries the invite");

        let origin = format!("http://{}", app.addr);
        let post = |username: String, password: &'static str| {
            app.client
                .post(app.url("/register"))
                .header("origin", origin.clone())
                .form(&[
                    ("username", username),
                    ("password", password.to_string()),
                    ("invite", token.clone()),
                ])
                .send()
        };
        // A mistake keeps the invite in the page's address, so a retry works.
        let short = post(unique("form"), "short").await.unwrap();
        assert_eq!(short.status(), 303);
        assert_eq!(
            location(&short),
            format!("/login?error=password_too_short&form=register&invite={token}")
        );
        let done = post(unique("form"), "pass-word-1").await.unwrap();
        assert_eq!(done.status(), 303);
        assert_eq!(location(&done), "/");
        assert!(set_cookie_pair(&done).starts_with("calos_session="));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calos_users_invite_prints_a_link_that_signs_up_once() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--registration", "invite"]).await;
    let data_dir = app.data_dir.display().to_string();
    let output = std::process::Command::new(BIN)
        .args([
            "users",
            "--data-dir",
            &data_dir,
            "invite",
            "--hours",
            "2",
            "--note",
            "from the command line",
            "--url",
            "https://calos.example.com/",
        ])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let link = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let token = link
        .strip_prefix("https://calos.example.com/login?form=register&invite=")
        .unwrap_or_else(|| panic!("link: {link}"));
    assert_eq!(token.len(), 43, "32 random bytes, base64url");
    assert_eq!(
        register_with(&app, &unique("cli"), Some(token))
            .await
            .status(),
        201
    );
    assert_eq!(
        register_with(&app, &unique("cli"), Some(token))
            .await
            .status(),
        403
    );

    let bad = std::process::Command::new(BIN)
        .args(["users", "--data-dir", &data_dir, "invite", "--hours", "0"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1-720"));
}
