//! Replicas coming and going: a SIGTERM under load through HAProxy, the
//! managed process's leader moving, and Redis stopping and coming back.

use super::{tools_present, within, Cluster, Plan, BIN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `calos load` through the balancer, in the background: its JSON report.
fn steady_load(cluster: &Cluster, token: &str, seconds: u32) -> std::process::Child {
    std::process::Command::new(BIN)
        .args([
            "load",
            "--url",
            &cluster.balancer,
            "--token",
            token,
            "--model",
            "mock-gpt",
            "--rate",
            "10",
            "--duration",
            &format!("{seconds}s"),
            "--users",
            "1",
            "--no-cache",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("calos load starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_under_load_fails_no_request_and_finishes_its_streams() {
    if !tools_present() {
        return;
    }
    let mut cluster = Cluster::start(Plan {
        env: env(&[
            ("CALOS_DRAIN_SECS", "5"),
            ("CALOS_SHUTDOWN_GRACE_SECS", "10"),
            // Every request is one user's: room for all of them at once.
            ("CALOS_MAX_INFLIGHT_PER_USER", "256"),
        ]),
        // A reply of 8 tokens at 4 a second: two seconds in flight.
        tokens_per_sec: 4.0,
        ..Plan::default()
    })
    .await;
    let (_, token) = cluster.new_user("steady").await;
    let load = steady_load(&cluster, &token, 16);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Two streams in flight on replica 1 when it is told to stop.
    let leaving = cluster.replicas[0].api.clone();
    let streams: Vec<_> = (0..2)
        .map(|n| {
            let client = cluster.client.clone();
            let (url, token) = (format!("{leaving}/api/llm/complete"), token.clone());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({
                        "model": "mock-gpt",
                        "messages": [{ "role": "user", "content": format!("stream {n}") }],
                        "stream": true,
                    }))
                    .send()
                    .await
                    .expect("stream opens");
                assert_eq!(response.status(), 200);
                response.text().await.expect("stream body")
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = Instant::now();
    cluster.replicas[0].terminate();

    for stream in streams {
        let body = stream.await.expect("stream task");
        assert!(body.contains("\"done\""), "the stream finished: {body}");
        assert!(!body.contains("shutting_down"), "{body}");
    }
    let status = cluster.replicas[0].wait(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "replica 1 exits cleanly within drain + grace; log:\n{}",
        cluster.replicas[0].log()
    );
    assert!(stopped.elapsed() < Duration::from_secs(16));

    let report = load.wait_with_output().expect("calos load ends");
    let report: Value = serde_json::from_slice(&report.stdout).expect("a JSON report");
    let requests = &report["requests"];
    assert!(requests["ok"].as_u64().unwrap_or(0) > 100, "{report}");
    eprintln!("under load through HAProxy while replica 1 drained: {requests}");
    assert_eq!(requests["failed"], 0, "no request failed: {requests}");
    let survivor = cluster
        .client
        .get(format!("{}/api/health", cluster.replicas[1].api))
        .send()
        .await
        .unwrap();
    assert_eq!(survivor.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_health_answers_503_while_the_replica_still_serves() {
    if !tools_present() {
        return;
    }
    let cluster = Cluster::start(Plan {
        env: env(&[("CALOS_DRAIN_SECS", "3")]),
        ..Plan::default()
    })
    .await;
    let one = cluster.replicas[0].api.clone();
    cluster.replicas[0].terminate();
    within(Duration::from_secs(2), "health says draining", || async {
        match cluster.client.get(format!("{one}/api/health")).send().await {
            Ok(r) if r.status() == 503 => r
                .json::<Value>()
                .await
                .is_ok_and(|b| b["status"] == "draining"),
            _ => false,
        }
    })
    .await;
    // Still serving while it drains.
    let me = cluster
        .client
        .post(format!("{one}/api/auth/login"))
        .json(&json!({ "username": "nobody", "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
}

/// Which replica's supervisor runs `sleeper`, per the replicas' own views.
async fn runners(cluster: &Cluster, admin: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for replica in &cluster.replicas {
        let Ok(response) = cluster
            .client
            .get(format!("{}/api/monitor/processes", replica.dashboard))
            .bearer_auth(admin)
            .send()
            .await
        else {
            continue;
        };
        let Ok(list) = response.json::<Value>().await else {
            continue;
        };
        if let Some(status) = list[0]["status"].as_str() {
            seen.push((replica.name.clone(), status.to_string()));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_managed_process_runs_on_exactly_one_replica_and_moves_when_it_dies() {
    if !tools_present() {
        return;
    }
    let mut cluster = Cluster::start(Plan {
        config: Some(
            r#"
            [[process]]
            name = "sleeper"
            command = "sleep"
            args = ["600"]
            "#
            .into(),
        ),
        ..Plan::default()
    })
    .await;
    let (name, admin) = cluster.new_user("operator").await;
    cluster.promote(&name).await;
    within(
        Duration::from_secs(10),
        "one replica runs it, the other stands by",
        || async {
            let seen = runners(&cluster, &admin).await;
            let running = seen.iter().filter(|(_, s)| s == "running").count();
            let standby = seen.iter().filter(|(_, s)| s == "standby").count();
            running == 1 && standby == 1
        },
    )
    .await;
    let seen = runners(&cluster, &admin).await;
    let leader = seen
        .iter()
        .find(|(_, s)| s == "running")
        .map(|(n, _)| n.clone())
        .expect("a leader");
    let index = cluster
        .replicas
        .iter()
        .position(|r| r.name == leader)
        .unwrap();
    cluster.replicas[index].kill();
    let took = within(
        Duration::from_secs(10),
        "the other replica takes over",
        || async {
            runners(&cluster, &admin)
                .await
                .iter()
                .any(|(n, s)| *n != leader && s == "running")
        },
    )
    .await;
    eprintln!("failover took {took:?}");
    // The replaced replica comes back as a follower.
    cluster.restart(index);
    within(
        Duration::from_secs(10),
        "the newcomer stands by",
        || async {
            let seen = runners(&cluster, &admin).await;
            seen.len() == 2
                && seen.iter().filter(|(_, s)| s == "running").count() == 1
                && seen.iter().any(|(n, s)| *n == leader && s == "standby")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_limits_follow_each_replicas_policy_and_recover_when_it_returns() {
    if !tools_present() {
        return;
    }
    let mut cluster = Cluster::start(Plan {
        per_replica: vec![
            env(&[("CALOS_REDIS_FAILURE", "closed")]),
            env(&[("CALOS_REDIS_FAILURE", "open")]),
        ],
        ..Plan::default()
    })
    .await;
    let (admin_name, admin) = cluster.new_user("admin").await;
    cluster.promote(&admin_name).await;
    let (_, token) = cluster.new_user("limited").await;
    let user_id = cluster.user_id(&token).await;
    let set = cluster
        .client
        .put(cluster.url(&format!("/api/admin/users/{user_id}/limits")))
        .bearer_auth(&admin)
        .json(&json!({ "rpm": 1000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let [closed, open] = [
        cluster.replicas[0].api.clone(),
        cluster.replicas[1].api.clone(),
    ];
    let chat = |base: String, n: u32| {
        let (client, token) = (cluster.client.clone(), token.clone());
        async move {
            let reply = client
                .post(format!("{base}/api/llm/complete"))
                .bearer_auth(token)
                .header("cache-control", "no-cache")
                .json(&json!({
                    "model": "mock-gpt",
                    "messages": [{ "role": "user", "content": format!("outage {n}") }],
                }))
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            let body: Value = reply.json().await.unwrap_or_default();
            (
                status,
                body["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    assert_eq!(chat(closed.clone(), 0).await.0, 200);
    assert_eq!(chat(open.clone(), 0).await.0, 200);

    cluster.redis.stop();
    let (status, code) = chat(closed.clone(), 1).await;
    assert_eq!((status, code.as_str()), (503, "limits_unavailable"));
    assert_eq!(
        chat(open.clone(), 1).await.0,
        200,
        "open: this replica's own counts"
    );
    // Signing in does not need Redis; a new Ed25519 challenge does.
    let challenge = cluster
        .client
        .post(format!("{closed}/api/auth/soulfra/challenge"))
        .json(&json!({ "publicKey": "11".repeat(32) }))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 503);

    cluster.redis.resume();
    let back = within(
        Duration::from_secs(5),
        "limits are shared again",
        || async { chat(closed.clone(), 2).await.0 == 200 },
    )
    .await;
    eprintln!("recovered {back:?} after Redis returned");
    let logs = cluster.logs();
    assert!(logs.contains("Redis is unreachable"), "{logs}");
    assert!(logs.contains("Redis answers again"), "{logs}");
}
