//! A `tracing` layer that copies calos's own events into the log ring
//! Mission Control shows: level, target, message, request id and the other
//! fields as `key=value`, cleaned by the ring (redaction, escaping).

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
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
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
        let level = meta.level().as_str().to_ascii_lowercase();
        let line = format!("{}: {}{}", meta.target(), fields.message, fields.rest);
        crate::logs::global().push(&level, "calos", &line);
    }
}
