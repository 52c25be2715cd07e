//! One request's trace while it runs: its ids, and the child spans the code
//! it passes through records (auth, database, queue, cache, the model call).
//!
//! The recorder travels with the request ([`TraceHandle`] in the request's
//! extensions, the chat context and the chat parameters). With tracing off
//! the handle is empty and every call on it is one branch.

use super::genai::{LlmCall, LlmEnd};
use super::propagation::{traceparent, SpanId, TraceId, TraceParent};
use super::span::{Clock, Kind, Outcome, SpanRecord, Value};
use parking_lot::Mutex;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Child spans kept per request at most: a request that loops (retries,
/// fallbacks) cannot grow its trace without end.
const MAX_CHILD_SPANS: usize = 64;

/// A request's trace, shared by the code that records into it.
#[derive(Debug)]
pub struct RequestTrace {
    pub trace_id: TraceId,
    /// The server span: every child span's parent.
    pub server_span: SpanId,
    /// The caller's span, when an incoming `traceparent` named one.
    pub remote_parent: Option<SpanId>,
    /// The upstream (model) call's span, chosen up front so that the
    /// `traceparent` sent upstream names it before it ends.
    pub llm_span: SpanId,
    /// Whether this trace is exported: always for a trace calos starts; for
    /// a caller's, as the caller's `sampled` flag says (the usual parent-based
    /// sampling: a caller that chose not to record a trace gets no spans of
    /// it from calos either, and the flag is passed on upstream).
    pub sampled: bool,
    /// Prompts and replies go on the model span (off unless configured).
    pub capture_content: bool,
    pub clock: Clock,
    pub started: Instant,
    route: OnceLock<String>,
    children: Mutex<Vec<SpanRecord>>,
    llm: Mutex<Option<LlmCall>>,
}

impl RequestTrace {
    /// A new request's trace: a child of the caller's span when `incoming`
    /// names one, else a trace of its own.
    pub fn begin(incoming: Option<TraceParent>, capture_content: bool) -> Self {
        let clock = Clock::now();
        Self {
            trace_id: incoming.map_or_else(TraceId::random, |p| p.trace_id),
            server_span: SpanId::random(),
            remote_parent: incoming.map(|p| p.parent_id),
            llm_span: SpanId::random(),
            sampled: incoming.is_none_or(|p| p.sampled()),
            capture_content,
            clock,
            started: Instant::now(),
            route: OnceLock::new(),
            children: Mutex::new(Vec::new()),
            llm: Mutex::new(None),
        }
    }

    /// The `traceparent` for the upstream call: this trace, the model
    /// call's span.
    pub fn upstream_traceparent(&self) -> String {
        traceparent(self.trace_id, self.llm_span, self.sampled)
    }

    /// The route pattern that matched (`/api/llm/complete`), set once.
    pub fn set_route(&self, route: &str) {
        let _ = self.route.set(route.to_string());
    }

    pub fn route(&self) -> Option<&str> {
        self.route.get().map(String::as_str)
    }

    /// A finished phase of the request (`auth`, `database`, `queue`,
    /// `cache`): an internal span under the server span.
    pub fn phase(&self, name: &'static str, start: Instant, end: Instant) {
        self.phase_with(name, start, end, Vec::new());
    }

    pub fn phase_with(
        &self,
        name: &'static str,
        start: Instant,
        end: Instant,
        mut attributes: Vec<(&'static str, Value)>,
    ) {
        attributes.push(("calos.phase", Value::from(name)));
        self.push(SpanRecord {
            name: name.to_string(),
            kind: Kind::Internal,
            span_id: SpanId::random(),
            parent: Some(self.server_span),
            start: self.clock.at(start),
            end: self.clock.at(end.max(start)),
            attributes,
            outcome: Outcome::Unset,
        });
    }

    fn push(&self, span: SpanRecord) {
        let mut children = self.children.lock();
        if children.len() < MAX_CHILD_SPANS {
            children.push(span);
        }
    }

    /// The model call began (its first attempt was sent at `call.sent_at`).
    pub fn llm_started(&self, call: LlmCall) {
        *self.llm.lock() = Some(call);
    }

    /// Reply text as it arrives, kept for the model span only when content
    /// capture is on.
    pub fn capture_output(&self, text: &str) {
        if !self.capture_content {
            return;
        }
        if let Some(call) = self.llm.lock().as_mut() {
            call.output.push_str(text);
        }
    }

    /// The model call ended: its span is finished with what it reported.
    pub fn llm_ended(&self, end: LlmEnd) {
        if let Some(call) = self.llm.lock().take() {
            let span = call.finish(self, end);
            self.push(span);
        }
    }

    /// Every span of the request, the server span last, its end `now`: a
    /// model call still open (the client left mid-stream) ends here too.
    pub fn finish(&self, server: SpanRecord) -> Vec<SpanRecord> {
        if let Some(call) = self.llm.lock().take() {
            let span = call.finish(self, LlmEnd::cut(Instant::now()));
            self.push(span);
        }
        let mut spans = std::mem::take(&mut *self.children.lock());
        spans.push(server);
        spans
    }
}

/// A request's trace, or nothing (tracing off, or a request made outside
/// HTTP). Cloning is one pointer copy.
///
/// Equality ignores it: the trace a request belongs to never makes two chat
/// requests different (it is not part of what is asked of a model).
#[derive(Debug, Clone, Default)]
pub struct TraceHandle(pub Option<Arc<RequestTrace>>);

impl PartialEq for TraceHandle {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl TraceHandle {
    pub fn get(&self) -> Option<&RequestTrace> {
        self.0.as_deref()
    }

    /// The request id that joins logs to this trace: the trace id in hex.
    pub fn trace_id_hex(&self) -> Option<String> {
        self.get().map(|t| t.trace_id.to_hex())
    }

    pub fn phase(&self, name: &'static str, start: Instant, end: Instant) {
        if let Some(trace) = self.get() {
            trace.phase(name, start, end);
        }
    }
}
