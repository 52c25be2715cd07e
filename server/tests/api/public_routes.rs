//! Authenticated by default: every route declared under `src/http/routes` is
//! either listed in `PUBLIC_ROUTES` or refuses a caller without credentials.
//! The routes are read from the source, so a new route cannot slip past.

use crate::helpers::{Backend, TestApp};
use server::http::routes::PUBLIC_ROUTES;
use std::path::Path;

/// Every `(method, path)` declared with `.route("PATH", get(..).post(..))`.
pub fn declared_routes() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/routes");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // rustfmt may put the path on the line after `.route(`.
        for declaration in source.split(".route(").skip(1) {
            let Some(declaration) = declaration.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some((path, rest)) = declaration.split_once('"') else {
                continue;
            };
            // The method router runs to the end of the `.route(` call.
            let call = rest.split(")\n").next().unwrap_or_default();
            for method in ["get", "post", "patch", "delete", "put"] {
                let direct =
                    call.contains(&format!(" {method}(")) || call.contains(&format!("({method}("));
                if direct || call.contains(&format!(".{method}(")) {
                    routes.push((method.to_uppercase(), path.to_string()));
                }
            }
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

#[tokio::test]
async fn every_route_outside_the_public_list_answers_401_without_credentials() {
    let routes = declared_routes();
    assert!(
        routes.len() >= 25,
        "the route scan found too little: {routes:?}"
    );
    for public in PUBLIC_ROUTES {
        assert!(
            routes
                .iter()
                .any(|(m, p)| (m.as_str(), p.as_str()) == *public),
            "{public:?} is listed as public but no longer declared"
        );
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut checked = 0;
    for (method, path) in &routes {
        if PUBLIC_ROUTES.contains(&(method.as_str(), path.as_str())) {
            continue;
        }
        let concrete = path
            .replace("{name}", "x")
            .replace("{action}", "restart")
            .replace("{provider}", "google");
        // Mission Control's data lives on the dashboard listener.
        let url = if path.starts_with("/api/monitor") {
            app.dashboard_url(&concrete)
        } else {
            app.url(&concrete)
        };
        let request = app
            .request(method.parse().unwrap(), &url, None)
            .header("content-type", "application/json")
            .body("{}");
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            401,
            "{method} {path} without credentials"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["success"], false, "{method} {path}: {body}");
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} protected routes checked");
}

#[tokio::test]
async fn the_public_routes_answer_without_credentials() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in [
        app.url("/api/health"),
        app.url("/api/auth/oauth/providers"),
        app.dashboard_url("/metrics"),
    ] {
        assert_eq!(app.get(&path, None).await.status(), 200, "GET {path}");
    }
    // A sign-in attempt is judged on its merits (401 for a wrong password),
    // not refused for lacking a session.
    let login = app
        .post_json(
            "/api/auth/login",
            &serde_json::json!({"username": "nobody", "password": "wrong-password"}),
        )
        .await;
    let body: serde_json::Value = login.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_credentials", "{body}");
}
