//! A finished span as calos records it, and its OTLP protobuf form.
//!
//! calos's spans are built after the fact from instants it measured anyway
//! (the timing breakdown's clock), so a span here is plain data: a name,
//! ids, a start and an end, attributes. Monotonic instants become wall-clock
//! times through one anchor per request ([`Clock`]), so a span's duration is
//! exactly the duration calos measured.

use super::propagation::{SpanId, TraceId};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// OTLP's span kinds, the three calos uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Server,
    Client,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Str(v)
    }
}

/// Integers that fit OTLP's `int64` without loss.
macro_rules! int_values {
    ($($int:ty),*) => {$(
        impl From<$int> for Value {
            fn from(v: $int) -> Self {
                Self::Int(i64::from(v))
            }
        }
    )*};
}
int_values!(i64, u32, u16);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// How a span ended, as OTLP says it: unset (fine) or an error with a short
/// description (an error code, never a provider's raw answer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Unset,
    Error(String),
}

/// One finished span of a request's trace.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub name: String,
    pub kind: Kind,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    pub outcome: Outcome,
}

impl SpanRecord {
    pub fn attribute(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.attributes.push((key, value.into()));
        self
    }

    /// The span as OTLP sends it, in `trace`.
    pub fn to_proto(&self, trace: TraceId) -> Span {
        Span {
            trace_id: trace.0.to_vec(),
            span_id: self.span_id.0.to_vec(),
            parent_span_id: self.parent.map(|p| p.0.to_vec()).unwrap_or_default(),
            name: self.name.clone(),
            kind: match self.kind {
                Kind::Internal => span::SpanKind::Internal,
                Kind::Server => span::SpanKind::Server,
                Kind::Client => span::SpanKind::Client,
            } as i32,
            start_time_unix_nano: unix_nanos(self.start),
            end_time_unix_nano: unix_nanos(self.end.max(self.start)),
            attributes: self
                .attributes
                .iter()
                .map(|(key, value)| key_value(key, value.clone()))
                .collect(),
            status: match &self.outcome {
                Outcome::Unset => None,
                Outcome::Error(message) => Some(Status {
                    message: message.clone(),
                    code: status::StatusCode::Error as i32,
                }),
            },
            ..Default::default()
        }
    }
}

pub fn key_value(key: &str, value: Value) -> KeyValue {
    let value = match value {
        Value::Str(s) => any_value::Value::StringValue(s),
        Value::Int(i) => any_value::Value::IntValue(i),
        Value::Float(f) => any_value::Value::DoubleValue(f),
        Value::Bool(b) => any_value::Value::BoolValue(b),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One request's wall clock: the wall time and the monotonic instant read
/// together once, so every instant measured during the request maps to a
/// wall time without reading the (adjustable) wall clock again.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    /// The wall time of `instant`, before or after the anchor.
    pub fn at(&self, instant: Instant) -> SystemTime {
        if instant >= self.mono {
            self.wall + instant.duration_since(self.mono)
        } else {
            self.wall
                .checked_sub(self.mono.duration_since(instant))
                .unwrap_or(UNIX_EPOCH)
        }
    }

    pub fn plus(&self, instant: Instant, after: Duration) -> SystemTime {
        self.at(instant) + after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_keep_their_spacing_on_the_wall_clock() {
        let clock = Clock::now();
        let before = Instant::now();
        let later = before + Duration::from_millis(250);
        let gap = clock
            .at(later)
            .duration_since(clock.at(before))
            .unwrap_or_default();
        assert_eq!(gap, Duration::from_millis(250));
    }

    #[test]
    fn a_span_becomes_an_otlp_span() {
        let clock = Clock::now();
        let start = Instant::now();
        let record = SpanRecord {
            name: "auth".into(),
            kind: Kind::Internal,
            span_id: SpanId([1; 8]),
            parent: Some(SpanId([2; 8])),
            start: clock.at(start),
            end: clock.plus(start, Duration::from_millis(3)),
            attributes: Vec::new(),
            outcome: Outcome::Error("invalid_token".into()),
        }
        .attribute("calos.phase", "auth");
        let otlp = record.to_proto(TraceId([9; 16]));
        assert_eq!(otlp.trace_id, vec![9; 16]);
        assert_eq!(otlp.parent_span_id, vec![2; 8]);
        assert_eq!(
            otlp.end_time_unix_nano - otlp.start_time_unix_nano,
            3_000_000
        );
        assert_eq!(otlp.kind, span::SpanKind::Internal as i32);
        assert_eq!(otlp.attributes.len(), 1);
        assert_eq!(
            otlp.status.map(|s| s.code),
            Some(status::StatusCode::Error as i32)
        );
    }
}
