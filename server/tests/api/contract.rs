//! The published API contract (`/api/openapi.json`) covers every API route the
//! code declares, is served by both listeners, and `/docs` renders it from the
//! site's own files. (The contract is fuzzed against a live calos by
//! `server/tests/contract.sh`, which `./dev test` runs.)

use crate::helpers::{Backend, TestApp};
use crate::public_routes::declared_routes;
use serde_json::Value;

/// The routes that are not part of the API: the pages' form posts and the
/// page that renders the contract.
const NOT_API: &[(&str, &str)] = &[
    ("POST", "/login"),
    ("POST", "/register"),
    ("POST", "/logout"),
    ("GET", "/docs"),
];

#[tokio::test]
async fn every_declared_api_route_is_in_a_published_document() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let main: Value = app
        .get(&app.url("/api/openapi.json"), None)
        .await
        .json()
        .await
        .unwrap();
    let dashboard: Value = app
        .get(&app.dashboard_url("/api/openapi.json"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(main["openapi"], "3.1.0");
    let documented = |document: &Value, method: &str, path: &str| {
        document["paths"][path][method.to_lowercase()].is_object()
    };
    let routes = declared_routes();
    let mut checked = 0;
    for (method, path) in &routes {
        if NOT_API.contains(&(method.as_str(), path.as_str())) {
            continue;
        }
        let document = if path.starts_with("/api/monitor") || path == "/metrics" {
            &dashboard
        } else {
            &main
        };
        assert!(
            documented(document, method, path),
            "{method} {path} is not in the contract"
        );
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} routes checked: {routes:?}");
    // Nothing documented that the code does not declare.
    for document in [&main, &dashboard] {
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let method = method.to_uppercase();
                assert!(
                    routes.iter().any(|(m, p)| *m == method && p == path),
                    "{method} {path} is documented but not declared"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_docs_page_renders_the_contract_without_a_cdn() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for url in [app.url("/docs"), app.dashboard_url("/docs")] {
        let page = app.get(&url, None).await;
        assert_eq!(page.status(), 200, "{url}");
        let html = page.text().await.unwrap();
        assert!(html.contains("/api/openapi.json"), "{html}");
        // Every script and stylesheet is the site's own.
        for reference in html
            .split(['"', '\''])
            .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        {
            assert!(
                reference.starts_with("/docs-ui/"),
                "{reference} is not served by calos"
            );
        }
        assert!(
            !html.contains("//cdn") && !html.contains("https://"),
            "{html}"
        );
    }
}
