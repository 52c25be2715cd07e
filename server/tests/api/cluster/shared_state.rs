//! What replicas share: sign-ins and their revocation, limits and budgets,
//! the response cache, OAuth flows and Ed25519 challenges.

use super::{replica_of, tools_present, within, Cluster, Plan};
use app::wire::{CacheStatus, ChatMessageIn, CompleteRequest, CompleteResponse};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn question(text: &str) -> CompleteRequest {
    CompleteRequest {
        model: "mock-gpt".into(),
        messages: vec![ChatMessageIn {
            role: "user".into(),
            content: text.into(),
        }],
        stream: false,
        temperature: None,
        max_tokens: None,
        include_timings: true,
        conversation_id: None,
        regenerate: false,
    }
}

impl Cluster {
    async fn chat_at(&self, base: &str, token: &str, text: &str) -> reqwest::Response {
        self.client
            .post(format!("{base}/api/llm/complete"))
            .bearer_auth(token)
            .json(&question(text))
            .send()
            .await
            .expect("chat")
    }

    async fn me_at(&self, base: &str, token: &str) -> u16 {
        self.client
            .get(format!("{base}/api/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// A challenge issued by the replica at `base` for `key`, signed: the
    /// proof to send to `/api/auth/soulfra/verify`.
    async fn signed_challenge(&self, base: &str, key: &SigningKey) -> Value {
        let public = hex::encode(key.verifying_key().to_bytes());
        let issued: Value = self
            .client
            .post(format!("{base}/api/auth/soulfra/challenge"))
            .json(&json!({ "publicKey": public }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let challenge = issued["challenge"].as_str().unwrap().to_string();
        let signature = hex::encode(key.sign(challenge.as_bytes()).to_bytes());
        json!({ "publicKey": public, "challenge": challenge, "signature": signature })
    }

    async fn verify_at(&self, base: &str, proof: &Value) -> u16 {
        self.client
            .post(format!("{base}/api/auth/soulfra/verify"))
            .json(proof)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn set_limits(&self, admin: &str, user_id: &str, limits: Value) {
        let set = self
            .client
            .put(self.url(&format!("/api/admin/users/{user_id}/limits")))
            .bearer_auth(admin)
            .json(&limits)
            .send()
            .await
            .expect("limits");
        assert_eq!(set.status(), 200, "{:?}", set.text().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_through_the_balancer_holds_on_both_replicas_and_a_logout_ends_it_on_both_within_a_second(
) {
    if !tools_present() {
        return;
    }
    let cluster = Cluster::start(Plan::default()).await;
    let (_, token) = cluster.new_user("lb").await;
    let mut answered: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..20 {
        let me = cluster
            .client
            .get(cluster.url("/api/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        *answered.entry(replica_of(&me).unwrap()).or_default() += 1;
    }
    assert_eq!(answered.len(), 2, "round robin reached both: {answered:?}");

    let logout = cluster
        .client
        .post(cluster.url("/api/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    let logged_out = Instant::now();
    for replica in &cluster.replicas {
        within(
            Duration::from_secs(1),
            "the token fails on every replica",
            || async { cluster.me_at(&replica.api, &token).await == 401 },
        )
        .await;
    }
    assert!(
        logged_out.elapsed() < Duration::from_secs(1),
        "{:?}",
        logged_out.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_and_a_budget_hold_for_the_sum_of_both_replicas() {
    if !tools_present() {
        return;
    }
    let cluster = Cluster::start(Plan::default()).await;
    let (admin_name, admin) = cluster.new_user("admin").await;
    cluster.promote(&admin_name).await;
    let (_, token) = cluster.new_user("limited").await;
    let user_id = cluster.user_id(&token).await;
    cluster
        .set_limits(&admin, &user_id, json!({ "rpm": 10 }))
        .await;

    let mut outcomes: BTreeMap<u16, u32> = BTreeMap::new();
    let mut served_by = std::collections::BTreeSet::new();
    for n in 0..20 {
        let reply = cluster
            .chat_at(&cluster.balancer, &token, &format!("question {n}"))
            .await;
        if let Some(replica) = replica_of(&reply) {
            served_by.insert(replica);
        }
        *outcomes.entry(reply.status().as_u16()).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([(200, 10), (429, 10)]),
        "exactly the limit passes, whichever replica answers"
    );
    assert_eq!(served_by.len(), 2, "{served_by:?}");

    // A budget of one token: the first reply spends it, on replica 1; replica
    // 2 then refuses, having heard of that spend only through Redis.
    let (_, spender) = cluster.new_user("budget").await;
    let spender_id = cluster.user_id(&spender).await;
    cluster
        .set_limits(
            &admin,
            &spender_id,
            json!({ "budgetTokens": 1, "budgetPeriod": "day" }),
        )
        .await;
    let [one, two] = [&cluster.replicas[0].api, &cluster.replicas[1].api];
    assert_eq!(cluster.chat_at(one, &spender, "spend").await.status(), 200);
    within(
        Duration::from_secs(2),
        "replica 2 refuses the spent budget",
        || async {
            let reply = cluster.chat_at(two, &spender, "more").await;
            reply.status() == 429
                && reply
                    .json::<Value>()
                    .await
                    .is_ok_and(|b| b["error"]["code"] == "budget_exceeded")
        },
    )
    .await;
    assert_eq!(cluster.chat_at(one, &spender, "again").await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cached_by_one_replica_is_a_hit_on_the_other_and_the_shared_cache_stays_bounded()
{
    if !tools_present() {
        return;
    }
    let cluster = Cluster::start(Plan {
        env: vec![("CALOS_CACHE_CAPACITY".into(), "5".into())],
        ..Plan::default()
    })
    .await;
    let (_, alice) = cluster.new_user("alice").await;
    let (_, bob) = cluster.new_user("bob").await;
    let [one, two] = [&cluster.replicas[0].api, &cluster.replicas[1].api];
    let status = |reply: CompleteResponse| reply.timings.map(|t| t.cache_status);

    let first: CompleteResponse = cluster
        .chat_at(one, &alice, "cache me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status(first), Some(CacheStatus::Miss));
    within(
        Duration::from_secs(2),
        "replica 2 serves replica 1's answer",
        || async {
            let again: CompleteResponse = cluster
                .chat_at(two, &alice, "cache me")
                .await
                .json()
                .await
                .unwrap();
            status(again) == Some(CacheStatus::Hit)
        },
    )
    .await;
    let for_bob: CompleteResponse = cluster
        .chat_at(two, &bob, "cache me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status(for_bob),
        Some(CacheStatus::Miss),
        "keys stay per user"
    );

    // Five entries at most, whatever the replicas put.
    for n in 0..12 {
        let base = &cluster.replicas[n % 2].api;
        assert_eq!(
            cluster
                .chat_at(base, &alice, &format!("fill {n}"))
                .await
                .status(),
            200
        );
    }
    let index = "calos:cache:index";
    within(
        Duration::from_secs(2),
        "the index is trimmed to the bound",
        || async { cluster.redis.cli(&["ZCARD", index]).trim() == "5" },
    )
    .await;
    let stored = cluster.redis.cli(&["KEYS", "calos:cache:*"]);
    let entries = stored
        .lines()
        .filter(|k| !k.ends_with(":index") && !k.ends_with(":sizes") && !k.ends_with(":bytes"))
        .count();
    assert_eq!(entries, 5, "{stored}");
    let counted: u64 = cluster
        .redis
        .cli(&["GET", "calos:cache:bytes"])
        .trim()
        .parse()
        .unwrap();
    let sizes: u64 = cluster
        .redis
        .cli(&["HVALS", "calos:cache:sizes"])
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(counted, sizes, "the byte counter matches what is held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_issued_by_one_replica_is_verified_by_the_other_once_and_an_oauth_flow_moves_too(
) {
    if !tools_present() {
        return;
    }
    let idp = server::emulators::mock_oauth::spawn(&server::emulators::mock_oauth::MockOAuthArgs {
        port: 0,
        host: [127, 0, 0, 1].into(),
        client_id: "calos-test-client".into(),
        client_secret: "calos-test-secret".into(),
        apple_team_id: "TEAM123456".into(),
        apple_public_key: None,
    })
    .await
    .unwrap();
    let cluster = Cluster::start(Plan {
        env: vec![
            ("GITHUB_CLIENT_ID".into(), "calos-test-client".into()),
            ("GITHUB_CLIENT_SECRET".into(), "calos-test-secret".into()),
            ("CALOS_GITHUB_URL".into(), format!("{}/github", idp.url())),
            (
                "CALOS_GITHUB_API_URL".into(),
                format!("{}/github/api", idp.url()),
            ),
        ],
        ..Plan::default()
    })
    .await;
    let [one, two] = [&cluster.replicas[0].api, &cluster.replicas[1].api];

    // Ed25519: issued by one, proven at the other, refused on replay anywhere.
    let key = SigningKey::from_bytes(&rand::random());
    let proof = cluster.signed_challenge(one, &key).await;
    assert_eq!(cluster.verify_at(two, &proof).await, 201);
    assert_eq!(
        cluster.verify_at(one, &proof).await,
        401,
        "used up on every replica"
    );
    assert_eq!(cluster.verify_at(two, &proof).await, 401);

    // Two replicas racing for one challenge: exactly one wins.
    let proof = cluster.signed_challenge(two, &key).await;
    let race: Vec<u16> = futures::future::join_all(
        (0..6).map(|n| cluster.verify_at(&cluster.replicas[n % 2].api, &proof)),
    )
    .await;
    assert_eq!(
        race.iter().filter(|s| **s == 200 || **s == 201).count(),
        1,
        "{race:?}"
    );

    // OAuth: started at replica 1, the provider's callback lands on replica 2.
    let started = cluster
        .client
        .get(format!("{one}/api/auth/oauth/github"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303, "{:?}", started.text().await);
    let flow_cookie = crate::helpers::set_cookie_pair(&started);
    let authorize = crate::helpers::location(&started);
    let approved = cluster
        .client
        .post(&authorize)
        .form(&[
            ("sub", "4242"),
            ("email", "octo@example.com"),
            ("name", "Emulated Person"),
            ("decision", "approve"),
            ("email_verified", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 303);
    let callback = crate::helpers::location(&approved).replace(&cluster.balancer, two);
    assert!(callback.starts_with(two.as_str()), "{callback}");
    let finish = |base_callback: String| {
        let (client, cookie) = (cluster.client.clone(), flow_cookie.clone());
        async move {
            client
                .get(base_callback)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let done = finish(callback.clone()).await;
    assert_eq!(done.status(), 303, "{:?}", done.text().await);
    let signed_in = done
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with("calos_session=")));
    assert!(signed_in, "signed in on replica 2");
    let replay = finish(callback.replace(two.as_str(), one)).await;
    assert_ne!(replay.status(), 303, "the flow was used up on replica 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mission_control_on_one_replica_shows_the_others_requests_and_sees_it_go_down() {
    if !tools_present() {
        return;
    }
    let mut cluster = Cluster::start(Plan::default()).await;
    let (name, admin) = cluster.new_user("operator").await;
    cluster.promote(&name).await;
    let two = cluster.replicas[1].api.clone();
    for n in 0..6 {
        assert_eq!(
            cluster
                .chat_at(&two, &admin, &format!("seen {n}"))
                .await
                .status(),
            200
        );
    }
    let view = |client: reqwest::Client, url: String, admin: String| async move {
        client
            .get(url)
            .bearer_auth(admin)
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()
    };
    let url = format!("{}/api/monitor/cluster", cluster.replicas[0].dashboard);
    within(
        Duration::from_secs(5),
        "replica 1 shows replica 2's requests",
        || {
            let (client, url, admin) = (cluster.client.clone(), url.clone(), admin.clone());
            async move {
                let Some(seen) = view(client, url, admin).await else {
                    return false;
                };
                let tiles = seen["replicas"].as_array().cloned().unwrap_or_default();
                tiles.len() == 2
                    && tiles[0]["name"] == "r1"
                    && tiles[0]["this"] == true
                    && tiles[1]["name"] == "r2"
                    && tiles[1]["status"] == "up"
                    && tiles[1]["requests15m"].as_u64().unwrap_or(0) >= 6
                    && seen["requests15m"].as_u64().unwrap_or(0) >= 6
            }
        },
    )
    .await;

    cluster.replicas[1].kill();
    let took = within(Duration::from_secs(10), "replica 2 shows as down", || {
        let (client, url, admin) = (cluster.client.clone(), url.clone(), admin.clone());
        async move {
            view(client, url, admin).await.is_some_and(|seen| {
                seen["replicas"][1]["status"] == "down" && seen["down"] == 1 && seen["up"] == 1
            })
        }
    })
    .await;
    eprintln!("replica 2 shown down after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_through_the_balancer_is_one_trace_with_its_phases_and_genai_attributes() {
    use crate::tracing_export::{collector, int, named, text};
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    if !tools_present() {
        return;
    }
    let collector = collector().await;
    let cluster = Cluster::start(Plan {
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.base.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "20".into()),
        ],
        ..Plan::default()
    })
    .await;
    let (_, token) = cluster.new_user("traced").await;
    let trace = "5bf92f3577b34da6a3ce929d0e0e4799";
    let reply = cluster
        .client
        .post(cluster.url("/api/llm/complete"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b8-01"))
        .json(&question("trace me"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-request-id"], trace);
    let answered_by = replica_of(&reply).unwrap();

    let spans = collector.trace(trace).await;
    let server = named(&spans, "POST /api/llm/complete");
    assert_eq!(server.kind, SpanKind::Server as i32);
    for phase in ["auth", "cache", "queue", "chat mock-gpt"] {
        assert_eq!(
            named(&spans, phase).parent_span_id,
            server.span_id,
            "{phase}"
        );
    }
    let llm = named(&spans, "chat mock-gpt");
    assert_eq!(text(llm, "gen_ai.operation.name"), "chat");
    assert_eq!(text(llm, "gen_ai.provider.name"), "openai");
    assert_eq!(text(llm, "gen_ai.request.model"), "mock-gpt");
    assert!(int(llm, "gen_ai.usage.output_tokens") > 0);
    // One trace, from the replica that answered: the other sent none of it.
    let servers = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .count();
    assert_eq!(servers, 1, "{answered_by}");
}
