//! Clients choose the `model` string, so it must not choose how much memory
//! calos's metrics take: a flood of invented names stays one `other` series.

use crate::helpers::{ask, mock, unique, Backend, TestApp};
use std::collections::BTreeSet;

/// The distinct `model` label values in a `/metrics` exposition.
fn model_labels(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| line.starts_with("calos_chat_") || line.starts_with("gen_ai_"))
        .filter_map(|line| {
            line.split("model=\"")
                .nth(1)
                .or_else(|| line.split("gen_ai_request_model=\"").nth(1))
        })
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

async fn exposition(app: &TestApp) -> String {
    let response = app.get(&app.dashboard_url("/metrics"), None).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn chat_with_model(app: &TestApp, token: &str, model: &str) -> u16 {
    app.post_chat("/api/llm/complete", token, &ask(model, false))
        .await
        .status()
        .as_u16()
}

mod unknown_model_names_do_not_grow_metrics {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        flood(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        flood(Backend::Postgres).await;
    }
}

async fn flood(backend: Backend) {
    {
        let upstream = mock(0, 0.0, 3).await;
        let ollama = upstream.url();
        let app = TestApp::spawn_with(
            backend,
            &[
                "--ollama-url",
                &ollama,
                "--chat-rate-per-sec",
                "100000",
                "--chat-burst",
                "100000",
                "--upstream-retries",
                "0",
                "--metrics-max-series",
                "5",
            ],
        )
        .await;
        let token = app.token_for(&unique("flood"), "flood-password").await;
        // A model the mock serves gets its own series once it answers.
        assert_eq!(chat_with_model(&app, &token, "mock-llama").await, 200);

        let mut sizes = Vec::new();
        for round in 0..2 {
            for i in 0..500 {
                let status = chat_with_model(&app, &token, &format!("invented-{round}-{i}")).await;
                assert_eq!(status, 404, "the mock does not serve invented models");
            }
            let text = exposition(&app).await;
            sizes.push((text.lines().count(), model_labels(&text)));
        }
        let labels: BTreeSet<String> = ["mock-llama", "other"].map(String::from).into();
        assert_eq!(sizes[0].1, labels, "1,000 invented names are all `other`");
        assert_eq!(
            sizes[0], sizes[1],
            "the second 500 names add no line to /metrics"
        );

        // Mission Control's view is bounded the same way.
        let admin = app.admin_token().await;
        let snapshot: serde_json::Value = app
            .get_as(&app.dashboard_url("/api/monitor/latency"), &admin)
            .await;
        let models: BTreeSet<&str> = snapshot["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["model"].as_str())
            .collect();
        assert_eq!(
            models,
            BTreeSet::from(["mock-llama", "other"]),
            "{snapshot}"
        );
        let other_failures: u64 = snapshot["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["model"] == "other")
            .filter_map(|o| o["count"].as_u64())
            .sum();
        assert_eq!(other_failures, 1_000);
    }
}
