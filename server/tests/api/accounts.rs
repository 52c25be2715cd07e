//! Registration and sign-in.

use crate::helpers::on_both_databases;
use crate::helpers::{error_code, unique, Backend, TestApp};
use serde_json::{json, Value};

on_both_databases! {
    async fn register_with_username_and_password_returns_201_with_a_greppable_token(app) {
        let username = unique("test-user");
        let response = app.register(&username, "test-password-123").await;
        assert_eq!(response.status(), 201);
        let text = response.text().await.unwrap();
        // The seed extracts the token with grep -o '"token":"[^"]*"'.
        assert!(text.contains(r#""token":"ey"#), "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["success"], json!(true));
        assert_eq!(body["user"]["username"], json!(username));
        assert!(body["user"]["userId"].as_str().is_some_and(|id| id.len() == 36));
        assert!(body["user"].get("passwordHash").is_none() && !text.contains("argon2"));
    }

    async fn login_works_by_email_and_by_username_and_returns_a_fresh_token(app) {
        let username = unique("alice");
        let email = format!("{username}@example.com");
        let created = app.post_json("/api/auth/register", &json!({"username": username, "password": "pass-word-1", "email": email})).await;
        assert_eq!(created.status(), 201);
        let by_email = app.post_json("/api/auth/login", &json!({"email": email.to_uppercase(), "password": "pass-word-1"})).await;
        assert_eq!(by_email.status(), 200);
        let by_email: Value = by_email.json().await.unwrap();
        assert_eq!(by_email["user"]["email"], json!(email));
        let by_name = app.login(&username, "pass-word-1").await;
        let by_name: Value = by_name.json().await.unwrap();
        assert_ne!(by_email["token"], by_name["token"], "each login issues its own token");
        assert_eq!(app.me_as(by_name["token"].as_str().unwrap()).await.username, username);
    }

    async fn unknown_user_and_wrong_password_get_the_same_401(app) {
        let username = unique("bob");
        app.token_for(&username, "right-password").await;
        let wrong = app.login(&username, "wrong-password").await;
        let unknown = app.login(&unique("nobody"), "wrong-password").await;
        let (wrong_status, wrong_body) = (wrong.status(), wrong.text().await.unwrap());
        let (unknown_status, unknown_body) = (unknown.status(), unknown.text().await.unwrap());
        assert_eq!((wrong_status.as_u16(), unknown_status.as_u16()), (401, 401));
        assert_eq!(wrong_body, unknown_body, "no account enumeration through the message");
    }

    async fn duplicate_username_or_email_is_409_whatever_the_case(app) {
        let username = unique("carol");
        let email = format!("{username}@example.com");
        let first = app.post_json("/api/auth/register", &json!({"username": username, "password": "password-1", "email": email})).await;
        assert_eq!(first.status(), 201);
        let same_name = app.register(&username.to_uppercase(), "password-2").await;
        assert_eq!(error_code(same_name).await, (409, "username_taken".into()));
        let same_email = app.post_json("/api/auth/register", &json!({"username": unique("other"), "password": "password-2", "email": email.to_uppercase()})).await;
        assert_eq!(error_code(same_email).await, (409, "email_taken".into()));
    }

    async fn twenty_concurrent_registrations_of_one_name_give_one_201_and_409s(app) {
        let username = unique("race");
        let attempts = (0..20).map(|_| app.register(&username, "race-password"));
        let statuses: Vec<u16> = futures::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");
    }

    async fn passwords_outside_8_to_128_characters_are_refused_before_hashing(app) {
        let short = app.register(&unique("p"), "1234567").await;
        assert_eq!(error_code(short).await, (400, "password_too_short".into()));
        let long = app.register(&unique("p"), &"x".repeat(129)).await;
        assert_eq!(error_code(long).await, (400, "password_too_long".into()));
        assert_eq!(app.register(&unique("p"), &"x".repeat(128)).await.status(), 201);
        let login_huge = app.login("someone", &"y".repeat(100_000)).await;
        assert_eq!(login_huge.status(), 400);
        // An identifier longer than any account's is refused before it is
        // looked up or kept as a throttle key.
        let long_name = app.login(&"n".repeat(257), "some-password").await;
        assert_eq!(error_code(long_name).await, (400, "login_too_long".into()));
        let at_the_limit = app.login(&"n".repeat(256), "some-password").await;
        assert_eq!(at_the_limit.status(), 401);
    }

    async fn one_email_in_many_spellings_registers_once_even_at_the_same_moment(app) {
        let local = unique("émile").replace('-', "");
        let spellings = [
            format!("{local}@example.com"),
            format!("{}@EXAMPLE.com", local.to_uppercase()),
            // Full-width letters and a decomposed é: the same address after NFKC.
            format!("{}@example.com", local.replace('é', "e\u{301}")),
            format!("{}@ｅｘａｍｐｌｅ.com", local),
        ];
        let attempts = spellings.iter().enumerate().map(|(i, email)| {
            let body = json!({"username": unique(&format!("emile{i}")), "password": "pass-word-1", "email": email});
            let app = &app;
            async move { app.post_json("/api/auth/register", &body).await }
        });
        let answers = futures::future::join_all(attempts).await;
        let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409, 409, 409]);
        // Signing in works with any of the spellings.
        for email in &spellings {
            let login = app.post_json("/api/auth/login", &json!({"email": email, "password": "pass-word-1"})).await;
            assert_eq!(login.status(), 200, "{email}");
        }
    }

    async fn repeated_failed_logins_are_throttled_per_account_with_retry_after(app) {
        let username = unique("victim");
        app.token_for(&username, "the-real-password").await;
        for _ in 0..5 {
            let r = app.login(&username, "guess-guess").await;
            assert_eq!(r.status(), 401);
        }
        // The sixth failure empties the bucket; from then on even the right password waits.
        let _ = app.login(&username, "guess-guess").await;
        let blocked = app.login(&username, "the-real-password").await;
        assert_eq!(blocked.status(), 429);
        let retry_after: u64 = blocked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=15).contains(&retry_after), "{retry_after}");
        assert_eq!(error_code(blocked).await.1, "too_many_attempts");
        // A different account from the same client is not locked out by this one.
        let other = unique("bystander");
        app.token_for(&other, "bystander-password").await;
        let ok = app.login(&other, "bystander-password").await;
        assert_eq!(ok.status(), 200);
    }
}

#[tokio::test]
async fn the_owner_can_sign_in_again_after_the_cooldown() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--login-failure-burst",
            "2",
            "--login-failure-refill-secs",
            "1",
        ],
    )
    .await;
    let username = unique("owner");
    app.token_for(&username, "owner-password").await;
    for _ in 0..3 {
        app.login(&username, "bad-password").await;
    }
    let blocked = app.login(&username, "owner-password").await;
    assert_eq!(blocked.status(), 429);
    let wait: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    tokio::time::sleep(
        std::time::Duration::from_secs(wait) + std::time::Duration::from_millis(200),
    )
    .await;
    let after = app.login(&username, "owner-password").await;
    assert_eq!(after.status(), 200);
}

/// Registration and an Ed25519 key's first proof share one allowance per
/// client address (seen here through a trusted proxy); loopback is exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_from_one_address_are_throttled_and_local_tools_are_not() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--trusted-proxies",
            "127.0.0.1",
            "--signup-burst",
            "2",
            "--signup-refill-secs",
            "600",
        ],
    )
    .await;
    let register_from = |ip: &'static str| {
        let body = json!({"username": unique("signup"), "password": "pass-word-1"});
        let request = app
            .client
            .post(app.url("/api/auth/register"))
            .header("x-forwarded-for", ip)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(register_from("203.0.113.5").await.status(), 201);
    assert_eq!(register_from("203.0.113.5").await.status(), 201);
    let refused = register_from("203.0.113.5").await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(error_code(refused).await, (429, "too_many_signups".into()));
    // Another address, and the operator's own tools on loopback, go on.
    assert_eq!(register_from("198.51.100.7").await.status(), 201);
    for _ in 0..5 {
        assert_eq!(
            app.register(&unique("local"), "pass-word-1").await.status(),
            201
        );
    }
    // An Ed25519 key's first proof is a sign-up too.
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public_key = hex::encode(key.verifying_key().to_bytes());
    let challenge: Value = app
        .client
        .post(app.url("/api/auth/soulfra/challenge"))
        .header("x-forwarded-for", "203.0.113.5")
        .json(&json!({"publicKey": public_key}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = challenge["challenge"].as_str().unwrap();
    let signature = hex::encode(key.sign(text.as_bytes()).to_bytes());
    let proof = app
        .client
        .post(app.url("/api/auth/soulfra/verify"))
        .header("x-forwarded-for", "203.0.113.5")
        .json(&json!({"publicKey": public_key, "challenge": text, "signature": signature}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(proof).await, (429, "too_many_signups".into()));
}
