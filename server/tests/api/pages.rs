//! The pages as a browser without JavaScript sees them: guards and form posts,
//! on both databases.

use crate::helpers::{location, on_both_databases, set_cookie_pair, TestApp};

on_both_databases! {
    async fn the_chat_page_sends_signed_out_visitors_to_login(app) {
        let response = app.get("/", None).await;
        assert!(response.status().is_redirection());
        assert_eq!(location(&response), "/login");
        let login = app.get("/login", None).await;
        assert_eq!(login.status(), 200);
        let html = login.text().await.unwrap();
        assert!(html.contains(r#"action="/login""#) && html.contains(r#"action="/register""#), "{html}");
        assert!(html.contains(r#"data-hydrated="false""#));
    }

    async fn the_plain_form_signs_in_and_the_chat_page_shows_who(app) {
        let user = app.new_user("form").await;
        let form = |password: &'static str| {
            let fields = [("login", user.username.clone()), ("password", password.to_string())];
            app.client.post(app.url("/login")).form(&fields).send()
        };
        let wrong = form("nope-nope").await.unwrap();
        assert_eq!(location(&wrong), "/login?error=invalid_credentials&form=login");
        let page = app.get("/login?error=invalid_credentials&form=login", None).await;
        assert!(page.text().await.unwrap().contains("Invalid email/username or password."));

        let ok = form("form-password").await.unwrap();
        assert_eq!(location(&ok), "/");
        let cookie = set_cookie_pair(&ok);
        let with_cookie = |method: reqwest::Method, path: &str| {
            app.request(method, path, None).header("cookie", &cookie).send()
        };
        let chat = with_cookie(reqwest::Method::GET, "/").await.unwrap();
        assert_eq!(chat.status(), 200);
        let html = chat.text().await.unwrap();
        assert!(html.contains("Signed in as") && html.contains(&user.username), "{html}");
        // Signed in, /login goes to the chat.
        let login = with_cookie(reqwest::Method::GET, "/login").await.unwrap();
        assert_eq!(location(&login), "/");

        let out = with_cookie(reqwest::Method::POST, "/logout").await.unwrap();
        assert_eq!(location(&out), "/login");
        let after = with_cookie(reqwest::Method::GET, "/").await.unwrap();
        assert_eq!(location(&after), "/login", "the old cookie no longer works");
    }

    async fn unknown_error_codes_in_the_url_are_not_echoed(app) {
        let page = app.get("/login?error=%3Cscript%3Ealert(1)%3C/script%3E", None).await;
        let html = page.text().await.unwrap();
        assert!(!html.contains("<script>alert(1)"), "{html}");
    }

    /// Starting a server walks the app's routes, which in leptos_server stops every
    /// resource in the process from loading while it runs (leptos-rs/leptos#4773).
    /// Pages rendered by one server while others start must still finish; before the
    /// route list was walked once per process, some of these hung until the timeout.
    async fn pages_render_while_other_servers_start(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let starting = tokio::spawn(async move {
            let mut others = Vec::new();
            for _ in 0..6 {
                others.push(TestApp::spawn(backend).await);
            }
            others.len()
        });
        let mut rendered = 0;
        while !starting.is_finished() || rendered < 20 {
            let page = tokio::time::timeout(std::time::Duration::from_secs(10), app.client.get(app.url("/login")).send())
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
}
