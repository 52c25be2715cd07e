//! Soulfra: signing in with an Ed25519 key, over HTTP and with `calos identity`.

use crate::helpers::on_both_databases;
use crate::helpers::{error_code, unique, TestApp};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_calos");

fn new_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random())
}

fn public(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

fn sign(key: &SigningKey, text: &str) -> String {
    hex::encode(key.sign(text.as_bytes()).to_bytes())
}

async fn challenge(app: &TestApp, public_key: &str) -> String {
    let response = app
        .post_json(
            "/api/auth/soulfra/challenge",
            &json!({ "publicKey": public_key }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'), "{body}");
    body["challenge"].as_str().unwrap().to_string()
}

async fn verify(app: &TestApp, key: &str, challenge: &str, signature: &str) -> reqwest::Response {
    app.post_json(
        "/api/auth/soulfra/verify",
        &json!({ "publicKey": key, "challenge": challenge, "signature": signature }),
    )
    .await
}

on_both_databases! {
    async fn the_first_proof_creates_the_identity_and_later_ones_sign_in(app) {
        let key = new_key();
        let c = challenge(&app, &public(&key)).await;
        assert!(c.contains(&format!("origin=http://localhost:{}", app.addr.port())), "{c}");
        let first = verify(&app, &public(&key), &c, &sign(&key, &c)).await;
        assert_eq!(first.status(), 201);
        assert!(first.headers()["set-cookie"].to_str().unwrap().starts_with("calos_session="));
        let first: Value = first.json().await.unwrap();
        assert_eq!(first["success"], json!(true));
        let user_id = first["user"]["userId"].as_str().unwrap().to_string();
        assert!(first["user"]["username"].as_str().unwrap().starts_with("key-"));
        assert_eq!(first["user"]["email"], Value::Null);

        let c = challenge(&app, &public(&key)).await;
        let again = verify(&app, &public(&key), &c, &sign(&key, &c)).await;
        assert_eq!(again.status(), 200);
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["user"]["userId"], json!(user_id), "the key is the identity");

        // The name can be set later.
        let token = again["token"].as_str().unwrap();
        let name = unique("keyholder");
        let renamed = app
            .request(reqwest::Method::PATCH, "/api/auth/me", Some(token))
            .json(&json!({ "username": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(renamed.status(), 200);
        assert_eq!(app.me_as(token).await.username, name);
    }

    async fn replayed_expired_foreign_and_forged_proofs_get_401(app) {
        let (key, other) = (new_key(), new_key());
        let c = challenge(&app, &public(&key)).await;
        let sig = sign(&key, &c);
        assert_eq!(verify(&app, &public(&key), &c, &sig).await.status(), 201);
        // Replay of the very same proof.
        assert_eq!(error_code(verify(&app, &public(&key), &c, &sig).await).await, (401, "invalid_proof".into()));
        // Another key answering this key's challenge.
        let c = challenge(&app, &public(&key)).await;
        assert_eq!(
            error_code(verify(&app, &public(&other), &c, &sign(&other, &c)).await).await,
            (401, "invalid_proof".into())
        );
        // A signature over a different challenge, or another server's.
        let elsewhere = c.replace("origin=http://localhost", "origin=http://elsewhere.example.com");
        assert_eq!(
            error_code(verify(&app, &public(&key), &c, &sign(&key, &elsewhere)).await).await,
            (401, "invalid_proof".into())
        );
        // A challenge this server never issued.
        assert_eq!(
            error_code(verify(&app, &public(&key), &elsewhere, &sign(&key, &elsewhere)).await).await,
            (401, "invalid_proof".into())
        );
        // The small-order identity point as a key.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let weak = hex::encode(weak);
        let c = challenge(&app, &weak).await;
        assert_eq!(
            error_code(verify(&app, &weak, &c, &"00".repeat(64)).await).await,
            (401, "invalid_proof".into())
        );
    }

    async fn malformed_soulfra_input_gets_400(app) {
        let key = new_key();
        for body in [
            json!({ "publicKey": "abc" }),
            json!({ "publicKey": "zz".repeat(32) }),
            json!({ "publicKey": public(&key), "extra": 1 }),
            json!({}),
        ] {
            let response = app.post_json("/api/auth/soulfra/challenge", &body).await;
            assert_eq!(response.status(), 400, "{body}");
        }
        let c = challenge(&app, &public(&key)).await;
        for (k, sig) in [
            (public(&key), "00".to_string()),
            (public(&key), "not hex".repeat(20)),
            ("12".to_string(), sign(&key, &c)),
        ] {
            let (status, _) = error_code(verify(&app, &k, &c, &sig).await).await;
            assert_eq!(status, 400);
        }
        let (status, _) = error_code(verify(&app, &public(&key), "", &sign(&key, "")).await).await;
        assert_eq!(status, 400);
        // None of that used the challenge up.
        assert_eq!(verify(&app, &public(&key), &c, &sign(&key, &c)).await.status(), 201);
    }
}

/// `calos identity new|show|login` against a running calos.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_a_private_key_file_and_signs_in_with_it() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("me.json");
    let run = |args: Vec<String>| {
        std::process::Command::new(BIN)
            .args(args)
            .env_remove("CALOS_IDENTITY")
            .output()
            .unwrap()
    };
    let path = file.to_str().unwrap().to_string();
    let made = run(vec![
        "identity".into(),
        "new".into(),
        "--out".into(),
        path.clone(),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let public_key = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert_eq!(public_key.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = run(vec![
        "identity".into(),
        "new".into(),
        "--out".into(),
        path.clone(),
    ]);
    assert!(
        !again.status.success(),
        "an existing identity is not overwritten"
    );

    let shown = run(vec![
        "identity".into(),
        "show".into(),
        "--key".into(),
        path.clone(),
    ]);
    assert_eq!(String::from_utf8(shown.stdout).unwrap().trim(), public_key);

    let name = unique("cli-key");
    let login = run(vec![
        "identity".into(),
        "login".into(),
        "--url".into(),
        format!("http://{}", app.addr),
        "--key".into(),
        path.clone(),
        "--username".into(),
        name.clone(),
    ]);
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let token = String::from_utf8(login.stdout).unwrap().trim().to_string();
    assert_eq!(app.me_as(&token).await.username, name);

    let dead = run(vec![
        "identity".into(),
        "login".into(),
        "--url".into(),
        "http://127.0.0.1:9".into(),
        "--key".into(),
        path,
    ]);
    assert!(!dead.status.success());
    assert!(String::from_utf8_lossy(&dead.stderr).contains("cannot reach"));
}
