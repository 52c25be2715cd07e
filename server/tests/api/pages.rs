//! The pages as a browser without JavaScript sees them: guards and form posts.

use crate::helpers::{unique, Backend, TestApp};

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn the_chat_page_sends_signed_out_visitors_to_login() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(location(&response), "/login");
    let login = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let html = login.text().await.unwrap();
    assert!(
        html.contains(r#"action="/login""#) && html.contains(r#"action="/register""#),
        "{html}"
    );
    assert!(html.contains(r#"data-hydrated="false""#));
}

#[tokio::test]
async fn the_plain_form_signs_in_and_the_chat_page_shows_who() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let username = unique("form");
    app.token_for(&username, "form-password").await;

    let wrong = app
        .client
        .post(app.url("/login"))
        .form(&[("login", username.as_str()), ("password", "nope-nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&wrong),
        "/login?error=invalid_credentials&form=login"
    );
    let page = app
        .client
        .get(app.url("/login?error=invalid_credentials&form=login"))
        .send()
        .await
        .unwrap();
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Invalid email/username or password."));

    let ok = app
        .client
        .post(app.url("/login"))
        .form(&[("login", username.as_str()), ("password", "form-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&ok), "/");
    let cookie = ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let chat = app
        .client
        .get(app.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let html = chat.text().await.unwrap();
    assert!(
        html.contains("Signed in as") && html.contains(&username),
        "{html}"
    );
    // Signed in, /login goes to the chat.
    let login = app
        .client
        .get(app.url("/login"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&login), "/");

    let out = app
        .client
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&out), "/login");
    let after = app
        .client
        .get(app.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&after), "/login", "the old cookie no longer works");
}

#[tokio::test]
async fn unknown_error_codes_in_the_url_are_not_echoed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let html = app
        .client
        .get(app.url("/login?error=%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
}

/// Starting a server walks the app's routes, which in leptos_server stops every
/// resource in the process from loading while it runs (leptos-rs/leptos#4773).
/// Pages rendered by one server while others start must still finish; before the
/// route list was walked once per process, some of these hung until the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_while_other_servers_start() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let starting = tokio::spawn(async {
        let mut others = Vec::new();
        for _ in 0..6 {
            others.push(TestApp::spawn(Backend::Sqlite).await);
        }
        others.len()
    });
    let mut rendered = 0;
    while !starting.is_finished() || rendered < 20 {
        let page = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            app.client.get(app.url("/login")).send(),
        )
        .await
        .expect("the login page answers while other servers start")
        .unwrap();
        assert_eq!(page.status(), 200);
        let html = tokio::time::timeout(std::time::Duration::from_secs(10), page.text())
            .await
            .expect("the login page's body completes")
            .unwrap();
        assert!(html.contains("</html>"), "{html}");
        rendered += 1;
    }
    assert_eq!(starting.await.unwrap(), 6);
}
