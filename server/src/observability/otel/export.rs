//! Sending finished spans to an OTLP/HTTP collector: a bounded queue, one
//! background task that batches and POSTs protobuf to `…/v1/traces`, and a
//! flush with a deadline at shutdown.
//!
//! Nothing here ever waits on a request's path: [`Exporter::submit`] either
//! queues a request's spans at once or drops and counts them (the queue is
//! full because the collector is slow or down). A collector that is down
//! costs failed POSTs in the background, one warning per outage, and dropped
//! spans; chat goes on as before.

use super::propagation::TraceId;
use super::span::{key_value, SpanRecord, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use parking_lot::Mutex;
use prost::Message;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where and how spans are sent.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// The full traces URL (`{endpoint}/v1/traces`).
    pub url: reqwest::Url,
    pub service_name: String,
    /// Spans waiting to be sent at most; more are dropped and counted.
    pub queue_size: usize,
    /// Spans per POST at most.
    pub batch_size: usize,
    /// How long spans wait for a fuller batch before they are sent anyway.
    pub schedule_delay: Duration,
    /// How long one POST may take.
    pub export_timeout: Duration,
}

/// What the exporter has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub exported: u64,
    pub dropped: u64,
    pub failed_posts: u64,
}

/// One request's finished spans, as queued.
struct Finished {
    trace: TraceId,
    spans: Vec<SpanRecord>,
}

#[derive(Default)]
struct Counters {
    /// Spans queued and not yet taken by the worker.
    queued: AtomicUsize,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed_posts: AtomicU64,
}

/// The queue's sending side; the worker owns the other.
pub struct Exporter {
    sender: mpsc::UnboundedSender<Finished>,
    capacity: usize,
    counters: Arc<Counters>,
    stop: CancellationToken,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Exporter {
    /// Starts the background worker (on the current tokio runtime).
    pub fn start(settings: ExportSettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.export_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("calos/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let worker = Worker {
            post: Post {
                client,
                body: Envelope::new(&settings.service_name),
                url: settings.url.clone(),
            },
            receiver,
            counters: counters.clone(),
            batch_size: settings.batch_size.max(1),
            schedule_delay: settings.schedule_delay,
        };
        let handle = tokio::spawn(worker.run(stop.clone()));
        Ok(Self {
            sender,
            capacity: settings.queue_size,
            counters,
            stop,
            worker: Mutex::new(Some(handle)),
        })
    }

    /// Queues one request's spans, or drops and counts them when the queue
    /// has no room for them all (a trace is sent whole or not at all).
    pub fn submit(&self, trace: TraceId, spans: Vec<SpanRecord>) {
        let count = spans.len();
        let before = self.counters.queued.fetch_add(count, Ordering::AcqRel);
        if before + count > self.capacity {
            self.counters.queued.fetch_sub(count, Ordering::AcqRel);
            self.counters
                .dropped
                .fetch_add(count as u64, Ordering::Relaxed);
            return;
        }
        if self.sender.send(Finished { trace, spans }).is_err() {
            // The worker has stopped (shutdown): nothing will send these.
            self.counters.queued.fetch_sub(count, Ordering::AcqRel);
            self.counters
                .dropped
                .fetch_add(count as u64, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> ExportStats {
        ExportStats {
            exported: self.counters.exported.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed_posts: self.counters.failed_posts.load(Ordering::Relaxed),
        }
    }

    /// Sends what is queued, then stops; gives up after `deadline` (a down
    /// collector must not hold calos's exit).
    pub async fn shutdown(&self, deadline: Duration) {
        self.stop.cancel();
        let worker = self.worker.lock().take();
        if let Some(worker) = worker {
            if tokio::time::timeout(deadline, worker).await.is_err() {
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "trace export: the collector did not take the last spans in time; they are lost"
                );
            }
        }
    }
}

/// The background task: batches spans and POSTs them.
struct Worker {
    post: Post,
    receiver: mpsc::UnboundedReceiver<Finished>,
    counters: Arc<Counters>,
    batch_size: usize,
    schedule_delay: Duration,
}

impl Worker {
    async fn run(mut self, stop: CancellationToken) {
        let mut batch: Vec<Finished> = Vec::new();
        let mut spans_in_batch = 0usize;
        let mut tick = tokio::time::interval(self.schedule_delay.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut health = Health::default();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                next = self.receiver.recv() => {
                    let Some(finished) = next else { break };
                    spans_in_batch += self.take(&finished);
                    batch.push(finished);
                    if spans_in_batch >= self.batch_size {
                        self.send(&mut batch, &mut health).await;
                        spans_in_batch = 0;
                    }
                }
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.send(&mut batch, &mut health).await;
                        spans_in_batch = 0;
                    }
                    health.report_drops(&self.counters);
                }
            }
        }
        // Shutdown: everything still queued, in batches (the caller bounds
        // how long this may take).
        while let Ok(finished) = self.receiver.try_recv() {
            spans_in_batch += self.take(&finished);
            batch.push(finished);
            if spans_in_batch >= self.batch_size {
                self.send(&mut batch, &mut health).await;
                spans_in_batch = 0;
            }
        }
        if !batch.is_empty() {
            self.send(&mut batch, &mut health).await;
        }
        health.report_drops(&self.counters);
    }

    /// Moves a request's spans from the queue's count to the batch.
    fn take(&self, finished: &Finished) -> usize {
        let count = finished.spans.len();
        self.counters.queued.fetch_sub(count, Ordering::AcqRel);
        count
    }

    async fn send(&self, batch: &mut Vec<Finished>, health: &mut Health) {
        let spans: Vec<_> = batch
            .drain(..)
            .flat_map(|f| {
                let trace = f.trace;
                f.spans.into_iter().map(move |s| s.to_proto(trace))
            })
            .collect();
        let count = spans.len() as u64;
        match self.post.send(spans).await {
            Ok(()) => {
                self.counters.exported.fetch_add(count, Ordering::Relaxed);
                health.succeeded();
            }
            Err(why) => {
                self.counters.failed_posts.fetch_add(1, Ordering::Relaxed);
                self.counters.dropped.fetch_add(count, Ordering::Relaxed);
                health.failed(&self.post.url, &why, count);
            }
        }
    }
}

/// One POST of protobuf to the collector.
struct Post {
    client: reqwest::Client,
    body: Envelope,
    url: reqwest::Url,
}

impl Post {
    async fn send(
        &self,
        spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
    ) -> Result<(), String> {
        let body = self.body.encode(spans);
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered {status}"))
        }
    }
}

/// What every export says about its sender: the resource (`service.name`…)
/// and the instrumentation scope.
struct Envelope {
    resource: Resource,
    scope: InstrumentationScope,
}

impl Envelope {
    fn new(service_name: &str) -> Self {
        let attributes = [
            ("service.name", Value::from(service_name)),
            ("service.version", Value::from(env!("CARGO_PKG_VERSION"))),
            ("telemetry.sdk.name", Value::from("calos")),
            ("telemetry.sdk.language", Value::from("rust")),
            (
                "telemetry.sdk.version",
                Value::from(env!("CARGO_PKG_VERSION")),
            ),
        ];
        Self {
            resource: Resource {
                attributes: attributes
                    .into_iter()
                    .map(|(k, v)| key_value(k, v))
                    .collect(),
                ..Default::default()
            },
            scope: InstrumentationScope {
                name: "calos".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            },
        }
    }

    fn encode(&self, spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(self.scope.clone()),
                    spans,
                    schema_url: super::SCHEMA_URL.into(),
                }],
                schema_url: super::SCHEMA_URL.into(),
            }],
        }
        .encode_to_vec()
    }
}

/// Logs an outage once when it starts and once when it ends, and drops
/// once per schedule tick at most: a down collector must not flood the log.
#[derive(Default)]
struct Health {
    failing: bool,
    dropped_reported: u64,
}

impl Health {
    fn failed(&mut self, url: &reqwest::Url, why: &str, spans: u64) {
        if !self.failing {
            self.failing = true;
            tracing::warn!(
                collector = %crate::llm::http::without_credentials(url.as_str()),
                error = %why,
                spans,
                "trace export failed; spans are dropped until the collector answers"
            );
        }
    }

    fn succeeded(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!("trace export: the collector answers again");
        }
    }

    fn report_drops(&mut self, counters: &Counters) {
        let dropped = counters.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_reported {
            tracing::warn!(
                dropped = dropped - self.dropped_reported,
                total_dropped = dropped,
                "trace export: spans dropped (queue full or collector unreachable)"
            );
            self.dropped_reported = dropped;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::otel::propagation::SpanId;
    use crate::observability::otel::span::{Kind, Outcome};
    use std::time::{Instant, SystemTime};

    fn spans(n: usize) -> Vec<SpanRecord> {
        (0..n)
            .map(|_| SpanRecord {
                name: "test".into(),
                kind: Kind::Internal,
                span_id: SpanId::random(),
                parent: None,
                start: SystemTime::now(),
                end: SystemTime::now(),
                attributes: Vec::new(),
                outcome: Outcome::Unset,
            })
            .collect()
    }

    /// A collector that accepts connections and never answers: the worker
    /// is stuck in its first POST while requests keep finishing.
    async fn silent_collector() -> (reqwest::Url, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let url = format!("http://{addr}/v1/traces").parse().expect("url");
        (url, held)
    }

    fn settings(url: reqwest::Url, queue_size: usize, batch_size: usize) -> ExportSettings {
        ExportSettings {
            url,
            service_name: "calos-test".into(),
            queue_size,
            batch_size,
            schedule_delay: Duration::from_millis(5),
            export_timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn a_stuck_collector_fills_the_bounded_queue_and_the_rest_is_dropped_at_once() {
        let (url, _held) = silent_collector().await;
        let exporter = Exporter::start(settings(url, 20, 5)).expect("starts");
        // The first batch goes out (and hangs); wait until the worker took it.
        exporter.submit(TraceId::random(), spans(5));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let began = Instant::now();
        for _ in 0..100 {
            exporter.submit(TraceId::random(), spans(5));
        }
        let took = began.elapsed();
        let stats = exporter.stats();
        // 20 spans fit the queue (4 requests of 5); the other 96 requests' are dropped.
        assert_eq!(stats.dropped, 96 * 5, "{stats:?}");
        assert_eq!(stats.exported, 0);
        assert!(
            took < Duration::from_millis(50),
            "submitting waited {took:?}"
        );
        // Shutdown gives up on the stuck collector within its deadline.
        let stopping = Instant::now();
        exporter.shutdown(Duration::from_millis(200)).await;
        assert!(stopping.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_still_queued() {
        use axum::body::Bytes;
        use std::sync::atomic::AtomicUsize;
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let collector = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| async move {
                if let Ok(export) = ExportTraceServiceRequest::decode(body) {
                    let spans: usize = export
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .map(|s| s.spans.len())
                        .sum();
                    counter.fetch_add(spans, Ordering::SeqCst);
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/v1/traces", listener.local_addr().expect("addr"))
            .parse()
            .expect("url");
        tokio::spawn(async move { axum::serve(listener, collector).await });
        // Neither a full batch nor a tick before shutdown: only the flush sends.
        let mut settings = settings(url, 100, 1_000);
        settings.schedule_delay = Duration::from_secs(3600);
        let exporter = Exporter::start(settings).expect("starts");
        exporter.submit(TraceId::random(), spans(3));
        exporter.submit(TraceId::random(), spans(4));
        exporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!(received.load(Ordering::SeqCst), 7);
        assert_eq!(exporter.stats().exported, 7);
    }

    #[tokio::test]
    async fn spans_of_a_request_are_kept_whole_or_dropped_whole() {
        let (url, _held) = silent_collector().await;
        // A batch the worker never fills: everything stays queued.
        let exporter = Exporter::start(settings(url, 8, 1_000)).expect("starts");
        exporter.submit(TraceId::random(), spans(6));
        exporter.submit(TraceId::random(), spans(6));
        assert_eq!(exporter.stats().dropped, 6);
        exporter.shutdown(Duration::from_millis(100)).await;
    }
}
