//! A `tracing` layer that copies calos's own events into the log ring
//! Mission Control shows: level, target, message, request id and the other
//! fields as `key=value`, cleaned by the ring when read (redaction, escaping).

use std::fmt::Write;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;

/// calos at info and above; everything else only when it warns.
pub fn feed_filter() -> Targets {
    Targets::new()
        .with_default(Level::WARN)
        .with_target("server", Level::INFO)
        .with_target("calos", Level::INFO)
        .with_target("app", Level::INFO)
}

pub struct FeedLayer;

#[derive(Default)]
struct Fields {
    message: String,
    request_id: Option<String>,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if field.name() == "request_id" {
            self.request_id = Some(value.to_string());
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else if field.name() == "request_id" {
            // `%id` arrives here as Display-through-Debug: no quotes to strip.
            self.request_id = Some(format!("{value:?}"));
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for FeedLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut line = fields.message;
        line.push_str(&fields.rest);
        crate::observability::logs::global().push_event(
            level_name(meta.level()),
            meta.target(),
            fields.request_id.map(String::into_boxed_str),
            line.into_boxed_str(),
        );
    }
}

/// The feed's level names are lower case; `Level::as_str` is upper case.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_keep_their_target_and_request_id_apart_from_the_text() {
        let subscriber = tracing_subscriber::registry().with(FeedLayer);
        let marker = format!("served-{}", uuid::Uuid::new_v4().simple());
        tracing::subscriber::with_default(subscriber, || {
            let id = "req-123\u{1b}[31m";
            tracing::info!(request_id = %id, model = "mock-llama", "{marker}");
        });
        let line = crate::observability::logs::global()
            .recent(0, usize::MAX)
            .into_iter()
            .find(|l| l.message.starts_with(&marker))
            .expect("the event reached the ring");
        assert_eq!(line.level, "info");
        assert_eq!(line.source, "calos");
        assert_eq!(line.target.as_deref(), Some(module_path!()));
        assert_eq!(line.message, format!("{marker} model=\"mock-llama\""));
        let id = line.request_id.expect("request id");
        assert!(
            id.starts_with("req-123") && !id.contains('\u{1b}'),
            "{id:?} is escaped"
        );
    }
}
