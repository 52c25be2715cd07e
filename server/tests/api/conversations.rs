//! Stored conversations, on both databases: made, continued (whole and
//! streamed), listed, renamed, exported and deleted; history reaches the model
//! in order and is cut from the oldest when too long; a stopped stream and a
//! failed upstream are stored as far as they got; pages stay stable while
//! chats go on; every per-user limit answers a clear error; another account's
//! conversation is 404 on every route; an account takes its conversations
//! with it.

use crate::helpers::*;
use app::wire::{
    ChatMessageIn, CompleteEvent, CompleteRequest, ConversationDetail, ConversationList,
    ConversationView, MessageStatus,
};
use serde_json::{json, Value};
use server::emulators::mock_llm::Fault;
use std::time::Duration;

async fn create(app: &TestApp, token: &str, body: &Value) -> ConversationView {
    let made = app
        .request(reqwest::Method::POST, "/api/conversations", Some(token))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    made.json().await.unwrap()
}

async fn detail(app: &TestApp, token: &str, id: &str) -> ConversationDetail {
    app.get_as(&format!("/api/conversations/{id}"), token).await
}

/// `content` as the user's one new message in conversation `id`.
fn say(id: &str, content: &str, stream: bool) -> CompleteRequest {
    CompleteRequest {
        messages: vec![ChatMessageIn {
            role: "user".into(),
            content: content.into(),
        }],
        conversation_id: Some(id.into()),
        ..ask("mock-llama", stream)
    }
}

/// What the mock was last sent: `role: content` per message.
async fn upstream_saw(mock: &server::emulators::mock_llm::MockServer) -> Vec<String> {
    let last: Value = reqwest::get(format!("{}/_mock/last-request", mock.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    last["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages upstream: {last}"))
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap()
            )
        })
        .collect()
}

/// Upstream calls the mock has answered so far.
async fn upstream_calls(mock: &server::emulators::mock_llm::MockServer) -> u64 {
    let stats: Value = reqwest::get(format!("{}/_mock/stats", mock.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["requests"].as_u64().unwrap()
}

/// Waits (a bounded while) until the conversation's last message is a
/// reply that is no longer being written (until then its reserved row is
/// empty and reads as stopped).
async fn settled_reply(app: &TestApp, token: &str, id: &str) -> app::wire::MessageView {
    for _ in 0..100 {
        let d = detail(app, token, id).await;
        if let Some(last) = d.messages.last().filter(|m| {
            m.role == "assistant" && !(m.status == MessageStatus::Stopped && m.content.is_empty())
        }) {
            return last.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the reply was never stored: {:?}",
        detail(app, token, id).await
    );
}

on_both_databases! {
    async fn a_conversation_is_made_continued_listed_renamed_exported_and_deleted(backend: Backend) {
        let mock = mock(0, 0.0, 4).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let made = create(&app, &user.token, &json!({ "model": "mock-llama" })).await;
        assert_eq!(made.title, "New chat");
        assert_eq!(made.message_count, 0);

        let whole = app.chat(&user.token, &say(&made.id, "Plan a trip to Lisbon\nfor three days", false)).await;
        let turn = whole.conversation.expect("the reply names its conversation");
        assert_eq!((turn.id.as_str(), turn.history_sent, turn.history_dropped), (made.id.as_str(), 1, 0));
        let streamed = app.stream(&user.token, &say(&made.id, "And Porto?", true)).await;
        let Some(CompleteEvent::Done(done)) = streamed.last().map(|r| r.event.clone()) else {
            panic!("the stream ends with done");
        };
        let turn2 = done.conversation.expect("the done event names its conversation");
        assert_eq!(turn2.history_sent, 3);

        // Stored before the last event went out: no waiting needed.
        let d = detail(&app, &user.token, &made.id).await;
        assert_eq!(d.conversation.title, "Plan a trip to Lisbon", "named by its first message");
        let roles: Vec<&str> = d.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
        assert_eq!(d.messages[1].id, turn.message_id);
        assert_eq!(d.messages[3].id, turn2.message_id);
        assert_eq!(d.messages[1].content, whole.text);
        for reply in [&d.messages[1], &d.messages[3]] {
            assert_eq!(reply.status, MessageStatus::Complete);
            assert_eq!(reply.model.as_deref(), Some("mock-llama"));
            assert_eq!(reply.provider.as_deref(), Some("ollama"));
            assert!(reply.completion_tokens.is_some());
            let timings = reply.timings.as_ref().expect("each reply keeps its breakdown");
            assert!(timings.total > 0.0 && timings.llm.is_some());
            assert!(reply.request_id.is_some());
        }
        assert_eq!(d.conversation.message_count, 4);

        let list: ConversationList = app.get_as("/api/conversations", &user.token).await;
        assert_eq!(list.conversations.len(), 1);
        assert_eq!(list.conversations[0].id, made.id);
        let found: ConversationList = app.get_as("/api/conversations?q=LISBON", &user.token).await;
        assert_eq!(found.conversations.len(), 1);
        let none: ConversationList = app.get_as("/api/conversations?q=100%25", &user.token).await;
        assert!(none.conversations.is_empty());

        let renamed = app
            .request(reqwest::Method::PATCH, &format!("/api/conversations/{}", made.id), Some(&user.token))
            .json(&json!({ "title": "  Iberia  " }))
            .send()
            .await
            .unwrap();
        assert_eq!(renamed.status(), 200);
        assert_eq!(renamed.json::<ConversationView>().await.unwrap().title, "Iberia");
        let blank = app
            .request(reqwest::Method::PATCH, &format!("/api/conversations/{}", made.id), Some(&user.token))
            .json(&json!({ "title": " " }))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(blank).await, (400, "invalid_title".into()));

        let md = app.get(&format!("/api/conversations/{}/export?format=markdown", made.id), Some(&user.token)).await;
        assert_eq!(md.status(), 200);
        assert_eq!(md.headers()["content-disposition"], "attachment; filename=\"iberia.md\"");
        assert!(md.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
        let text = md.text().await.unwrap();
        assert!(text.starts_with("# Iberia\n"), "{text}");
        assert!(text.contains("## You\n\nAnd Porto?"), "{text}");
        assert!(text.contains(&whole.text.trim_end().to_string()), "{text}");
        let js = app.get(&format!("/api/conversations/{}/export?format=json", made.id), Some(&user.token)).await;
        assert_eq!(js.status(), 200);
        let exported: ConversationDetail = js.json().await.unwrap();
        assert_eq!(exported.messages.len(), 4);
        let bad = app.get(&format!("/api/conversations/{}/export?format=pdf", made.id), Some(&user.token)).await;
        assert_eq!(error_code(bad).await, (400, "invalid_query".into()));
        // A NUL (which PostgreSQL text cannot hold) in a search or a cursor
        // is a 400, found by the contract fuzz.
        for query in ["q=a%00b", "before=x%00", "q=%16"] {
            let bad = app.get(&format!("/api/conversations?{query}"), Some(&user.token)).await;
            assert_eq!(error_code(bad).await, (400, "invalid_query".into()), "{query}");
        }

        let gone = app
            .request(reqwest::Method::DELETE, &format!("/api/conversations/{}", made.id), Some(&user.token))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 204);
        let after = app.get(&format!("/api/conversations/{}", made.id), Some(&user.token)).await;
        assert_eq!(error_code(after).await, (404, "not_found".into()));
    }

    async fn history_goes_upstream_in_order_and_regenerate_replaces_the_last_reply(backend: Backend) {
        let mock = mock(0, 0.0, 3).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let c = create(&app, &user.token, &json!({})).await;
        let first = CompleteRequest {
            messages: vec![
                ChatMessageIn { role: "system".into(), content: "Be brief.".into() },
                ChatMessageIn { role: "user".into(), content: "one".into() },
            ],
            ..say(&c.id, "", false)
        };
        let a1 = app.chat(&user.token, &first).await.text;
        app.chat(&user.token, &say(&c.id, "two", false)).await;
        assert_eq!(
            upstream_saw(&mock).await,
            ["system: Be brief.".to_string(), "user: one".into(), format!("assistant: {a1}"), "user: two".into()]
        );
        let before = detail(&app, &user.token, &c.id).await;
        let calls = upstream_calls(&mock).await;
        let regenerate = CompleteRequest { messages: vec![], regenerate: true, ..say(&c.id, "", false) };
        let again = app.chat(&user.token, &regenerate).await;
        assert_eq!(upstream_calls(&mock).await, calls + 1, "a regenerated reply is asked for, never cached");
        assert_eq!(upstream_saw(&mock).await.len(), 4, "the old reply is not sent");
        let after = detail(&app, &user.token, &c.id).await;
        assert_eq!(after.messages.len(), before.messages.len());
        assert_ne!(after.messages[4].id, before.messages[4].id);
        assert_eq!(after.messages[4].id, again.conversation.unwrap().message_id);

        let stateless = app.post_chat("/api/llm/complete", &user.token, &ask("mock-llama", false)).await;
        let body: Value = stateless.json().await.unwrap();
        assert!(body.get("conversation").is_none(), "without a conversationId, nothing changes: {body}");
        let orphan = CompleteRequest { regenerate: true, ..ask("mock-llama", false) };
        let refused = app.post_chat("/api/llm/complete", &user.token, &orphan).await;
        assert_eq!(error_code(refused).await, (400, "invalid_request".into()));
    }

    async fn a_long_history_is_cut_from_the_oldest_keeping_the_system_prompt(backend: Backend) {
        let mock = mock(0, 0.0, 1).await;
        let (app, user) = app_with(backend, &mock, &["--conversation-context-chars", "120"]).await;
        let c = create(&app, &user.token, &json!({})).await;
        let first = CompleteRequest {
            messages: vec![
                ChatMessageIn { role: "system".into(), content: "SYSTEM".into() },
                ChatMessageIn { role: "user".into(), content: "a".repeat(40) },
            ],
            ..say(&c.id, "", false)
        };
        app.chat(&user.token, &first).await;
        app.chat(&user.token, &say(&c.id, &"b".repeat(40), false)).await;
        let third = app.chat(&user.token, &say(&c.id, &"c".repeat(40), false)).await;
        let turn = third.conversation.unwrap();
        assert!(turn.history_dropped >= 1, "{turn:?}");
        let saw = upstream_saw(&mock).await;
        assert_eq!(saw[0], "system: SYSTEM");
        assert_eq!(saw.last().unwrap(), &format!("user: {}", "c".repeat(40)));
        assert!(!saw.iter().any(|m| m.contains(&"a".repeat(40))), "{saw:?}");
        assert_eq!(saw.len() as u32, turn.history_sent);
    }

    async fn a_stopped_stream_is_stored_as_far_as_it_got(backend: Backend) {
        // 20 tokens a second, 400 in all: the client leaves long before the end.
        let mock = mock(0, 20.0, 400).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let c = create(&app, &user.token, &json!({})).await;
        let response = app.post_chat("/api/llm/complete", &user.token, &say(&c.id, "count", true)).await;
        assert_eq!(response.status(), 200);
        let mut decoded = Box::pin(app::sse::decode(response.bytes_stream()));
        let mut seen = String::new();
        for _ in 0..3 {
            let data = futures::StreamExt::next(&mut decoded).await.unwrap().unwrap();
            if let CompleteEvent::Delta { delta } = CompleteEvent::parse(&data).unwrap() {
                seen.push_str(&delta);
            }
        }
        // The client leaves, as the Stop button's abort does.
        drop(decoded);
        let reply = settled_reply(&app, &user.token, &c.id).await;
        assert_eq!(reply.status, MessageStatus::Stopped);
        assert!(reply.content.starts_with(&seen), "{:?} starts with {seen:?}", reply.content);
        assert!(reply.content.len() < 400, "far from whole: {}", reply.content.len());
    }

    async fn a_reply_that_ends_late_keeps_its_place_or_gives_way_to_its_regeneration(backend: Backend) {
        // 100 tokens a second, 300 in all: a reply takes 3 s.
        let mock = mock(0, 100.0, 300).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let c = create(&app, &user.token, &json!({})).await;
        let stop_after_two_deltas = |content: &'static str| {
            let (app, token, id) = (&app, &user.token, &c.id);
            async move {
                let response = app.post_chat("/api/llm/complete", token, &say(id, content, true)).await;
                assert_eq!(response.status(), 200);
                let mut decoded = Box::pin(app::sse::decode(response.bytes_stream()));
                for _ in 0..2 {
                    futures::StreamExt::next(&mut decoded).await.unwrap().unwrap();
                }
            }
        };
        // Stopped, then a new question at once: the stopped reply stays
        // before it, however late it is written.
        stop_after_two_deltas("first").await;
        app.chat(&user.token, &say(&c.id, "second", false)).await;
        settled_reply(&app, &user.token, &c.id).await;
        let mut messages = detail(&app, &user.token, &c.id).await.messages;
        for _ in 0..100 {
            if !messages[1].content.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            messages = detail(&app, &user.token, &c.id).await.messages;
        }
        let shape: Vec<_> = messages.iter().map(|m| (m.role.as_str(), m.status)).collect();
        assert_eq!(shape, [
            ("user", MessageStatus::Complete),
            ("assistant", MessageStatus::Stopped),
            ("user", MessageStatus::Complete),
            ("assistant", MessageStatus::Complete),
        ]);
        assert!(!messages[1].content.is_empty(), "the stopped reply keeps what arrived");

        // Stopped, then regenerated at once: only the regenerated reply stays.
        stop_after_two_deltas("third").await;
        let regenerate = CompleteRequest { messages: vec![], regenerate: true, ..say(&c.id, "", false) };
        let again = app.chat(&user.token, &regenerate).await;
        // Time for the stopped reply's late write, which must find no place.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let messages = detail(&app, &user.token, &c.id).await.messages;
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert_eq!(messages[4].content, "third");
        assert_eq!(messages[5].id, again.conversation.unwrap().message_id);
        assert_eq!((messages[5].status, messages[5].content.as_str()), (MessageStatus::Complete, again.text.as_str()));
    }

    async fn a_long_reply_is_cut_in_the_history_and_the_conversation_goes_on(backend: Backend) {
        // 40 tokens of 1000 bytes: a 40,000-character reply, over the 32 KiB a
        // message sent upstream may have.
        let mock = server::emulators::mock_llm::spawn(&server::emulators::mock_llm::MockArgs {
            ttft_ms: 0,
            tokens_per_sec: 0.0,
            tokens: 40,
            token_bytes: 1000,
            ..server::emulators::mock_llm::MockArgs::default()
        })
        .await
        .unwrap();
        let (app, user) = app_with(backend, &mock, &[]).await;
        let c = create(&app, &user.token, &json!({})).await;
        let long = app.chat(&user.token, &say(&c.id, "write a lot", false)).await;
        assert!(long.text.chars().count() > app::wire::MAX_MESSAGE_CHARS, "{}", long.text.len());
        let next = app.post_chat("/api/llm/complete", &user.token, &say(&c.id, "and now?", false)).await;
        assert_eq!(next.status(), 200, "the conversation goes on");
        let saw = upstream_saw(&mock).await;
        assert_eq!(saw.len(), 3);
        assert_eq!(saw[1].chars().count(), "assistant: ".len() + app::wire::MAX_MESSAGE_CHARS);
        // Stored whole all the same.
        let stored = detail(&app, &user.token, &c.id).await;
        assert_eq!(stored.messages[1].content, long.text);
    }

    async fn regenerating_with_nothing_to_answer_deletes_nothing(backend: Backend) {
        let mock = mock(0, 0.0, 2).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let c = create(&app, &user.token, &json!({})).await;
        let system_only = CompleteRequest {
            messages: vec![ChatMessageIn { role: "system".into(), content: "Be brief.".into() }],
            ..say(&c.id, "", false)
        };
        let refused = app.post_chat("/api/llm/complete", &user.token, &system_only).await;
        assert_eq!(error_code(refused).await, (400, "nothing_to_answer".into()));
        let regenerate = CompleteRequest { messages: vec![], regenerate: true, ..say(&c.id, "", false) };
        let refused = app.post_chat("/api/llm/complete", &user.token, &regenerate).await;
        assert_eq!(error_code(refused).await, (400, "nothing_to_answer".into()));
        let stored = detail(&app, &user.token, &c.id).await;
        let kept: Vec<_> = stored.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(kept, ["Be brief."], "the system prompt stays, and no reply was reserved");
        assert_eq!(stored.conversation.message_count, 1);
        assert_eq!(upstream_calls(&mock).await, 0);
    }

    async fn a_failed_upstream_is_stored_with_its_error_code(backend: Backend) {
        // Paced, so a stream has begun when the connection drops.
        let mock = mock(5, 50.0, 10).await;
        let (app, user) = app_with(backend, &mock, &["--upstream-retries", "0"]).await;
        let c = create(&app, &user.token, &json!({})).await;
        mock.state.set_fault(Fault::Status(503));
        let refused = app.post_chat("/api/llm/complete", &user.token, &say(&c.id, "hello?", false)).await;
        let (status, code) = error_code(refused).await;
        assert!(status >= 500, "{status}");
        let stored = detail(&app, &user.token, &c.id).await;
        assert_eq!(stored.messages.len(), 2, "the question is kept, with the failed reply");
        assert_eq!(stored.messages[0].content, "hello?");
        assert_eq!(stored.messages[1].status, MessageStatus::Failed);
        assert_eq!(stored.messages[1].error_code.as_deref(), Some(code.as_str()));

        // Mid-stream: what arrived is kept, marked failed.
        mock.state.set_fault(Fault::DropAfter(2));
        let response = app.post_chat("/api/llm/complete", &user.token, &say(&c.id, "again", true)).await;
        let status = response.status();
        assert_eq!(status, 200, "{}", response.text().await.unwrap());
        let events = events(response).await;
        let Some(CompleteEvent::Error { error }) = events.last().map(|r| r.event.clone()) else {
            panic!("the stream ends with an error event");
        };
        let reply = settled_reply(&app, &user.token, &c.id).await;
        assert_eq!(reply.status, MessageStatus::Failed);
        assert_eq!(reply.error_code.as_deref(), Some(error.code.as_str()));
        assert!(!reply.content.is_empty(), "the tokens before the failure are kept");
        // A failed reply is not sent to the model again.
        mock.state.set_fault(Fault::None);
        app.chat(&user.token, &say(&c.id, "third", false)).await;
        let saw = upstream_saw(&mock).await;
        assert_eq!(saw, ["user: hello?", "user: again", "user: third"]);
    }

    async fn another_accounts_conversation_is_not_found_on_every_route(backend: Backend) {
        let mock = mock(0, 0.0, 2).await;
        let (app, alice) = app_with(backend, &mock, &[]).await;
        let bob = app.new_user("bob").await;
        let c = create(&app, &alice.token, &json!({ "title": "private" })).await;
        app.chat(&alice.token, &say(&c.id, "secret", false)).await;
        let path = format!("/api/conversations/{}", c.id);
        let attempts = [
            app.get(&path, Some(&bob.token)).await,
            app.request(reqwest::Method::PATCH, &path, Some(&bob.token)).json(&json!({ "title": "mine" })).send().await.unwrap(),
            app.request(reqwest::Method::DELETE, &path, Some(&bob.token)).send().await.unwrap(),
            app.get(&format!("{path}/export?format=json"), Some(&bob.token)).await,
            app.post_chat("/api/llm/complete", &bob.token, &say(&c.id, "let me in", false)).await,
            app.get("/api/conversations/not-a-uuid", Some(&bob.token)).await,
        ];
        for response in attempts {
            assert_eq!(error_code(response).await, (404, "not_found".into()));
        }
        let list: ConversationList = app.get_as("/api/conversations", &bob.token).await;
        assert!(list.conversations.is_empty());
        let intact = detail(&app, &alice.token, &c.id).await;
        assert_eq!((intact.conversation.title.as_str(), intact.messages.len()), ("private", 2));
        // The page too: the messages are rendered for the owner only.
        let page = app.get_with_cookie(&format!("/c/{}", c.id), &alice.token).await.text().await.unwrap();
        assert!(page.contains("secret"), "the owner's page is server-rendered with its messages");
        let other = app.get_with_cookie(&format!("/c/{}", c.id), &bob.token).await;
        assert_eq!(other.status(), 404, "another account's conversation is a 404 page");
        let other = other.text().await.unwrap();
        assert!(!other.contains("secret") && !other.contains("private"));
        let signed_out = app.get(&format!("/c/{}", c.id), None).await;
        assert_eq!(location(&signed_out), "/login");
    }

    async fn pages_neither_repeat_nor_skip_while_chats_go_on(backend: Backend) {
        let mock = mock(0, 0.0, 1).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let mut made = Vec::new();
        for i in 0..5 {
            made.push(create(&app, &user.token, &json!({ "title": format!("c{i}") })).await.id);
        }
        let first: ConversationList = app.get_as("/api/conversations?limit=2", &user.token).await;
        let mut seen: Vec<String> = first.conversations.iter().map(|c| c.id.clone()).collect();
        // Meanwhile the oldest gets a message and a new conversation starts.
        app.chat(&user.token, &say(&made[0], "bump", false)).await;
        create(&app, &user.token, &json!({ "title": "newer" })).await;
        let mut before = first.next_before;
        while let Some(cursor) = before {
            let page: ConversationList = app
                .get_as(&format!("/api/conversations?limit=2&before={cursor}"), &user.token)
                .await;
            seen.extend(page.conversations.iter().map(|c| c.id.clone()));
            before = page.next_before;
        }
        made.reverse();
        assert_eq!(seen, made, "every conversation once, newest first");
        let bad = app.get("/api/conversations?limit=0", Some(&user.token)).await;
        assert_eq!(error_code(bad).await.0, 400);
        let bad = app.get("/api/conversations?before=junk", Some(&user.token)).await;
        assert_eq!(error_code(bad).await, (400, "invalid_cursor".into()));
    }

    async fn every_per_user_limit_answers_a_clear_error(backend: Backend) {
        let mock = mock(0, 0.0, 1).await;
        let (app, user) = app_with(backend, &mock, &[
            "--conversations-per-user", "2",
            "--conversation-messages", "4",
            "--conversation-bytes-per-user", "300",
        ]).await;
        let c = create(&app, &user.token, &json!({})).await;
        create(&app, &user.token, &json!({})).await;
        let third = app.request(reqwest::Method::POST, "/api/conversations", Some(&user.token)).json(&json!({})).send().await.unwrap();
        assert_eq!(error_code(third).await, (409, "too_many_conversations".into()));

        app.chat(&user.token, &say(&c.id, "one", false)).await;
        app.chat(&user.token, &say(&c.id, "two", false)).await;
        let full = app.post_chat("/api/llm/complete", &user.token, &say(&c.id, "three", false)).await;
        assert_eq!(error_code(full).await, (409, "conversation_full".into()));
        assert_eq!(detail(&app, &user.token, &c.id).await.messages.len(), 4, "nothing stored past the limit");

        let list: ConversationList = app.get_as("/api/conversations", &user.token).await;
        let other = list.conversations.iter().find(|x| x.id != c.id).unwrap().id.clone();
        let big = app.post_chat("/api/llm/complete", &user.token, &say(&other, &"x".repeat(400), false)).await;
        assert_eq!(error_code(big).await, (409, "storage_full".into()));
        assert!(detail(&app, &user.token, &other).await.messages.is_empty());
    }

    async fn an_account_takes_its_conversations_with_it(backend: Backend) {
        let mock = mock(0, 0.0, 2).await;
        let (app, user) = app_with(backend, &mock, &[]).await;
        let me = app.me_as(&user.token).await;
        let c = create(&app, &user.token, &json!({})).await;
        app.chat(&user.token, &say(&c.id, "remember me", false)).await;
        let target = server::db::DbTarget::resolve(app.database_url.as_deref(), &app.data_dir);
        let accounts = server::db::Db::connect(&target, 1).await.unwrap();
        let store = server::conversations::store::ConversationStore::open(&target, &accounts, 1).await.unwrap();
        assert_eq!(store.footprint(&me.user_id).await.unwrap().0, 1);
        let closed = app
            .request(reqwest::Method::DELETE, "/api/auth/me", Some(&user.token))
            .json(&json!({ "password": user.password }))
            .send()
            .await
            .unwrap();
        assert_eq!(closed.status(), 200);
        assert_eq!(store.footprint(&me.user_id).await.unwrap(), (0, 0));
        assert_eq!(store.message_total().await.unwrap(), 0);
    }
}
