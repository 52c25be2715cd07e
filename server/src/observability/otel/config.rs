//! Trace export settings: the standard OpenTelemetry environment variables
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_SERVICE_NAME`, `OTEL_BSP_*`), each with a flag of the same meaning.
//! No endpoint: no tracing at all.

use super::export::ExportSettings;
use crate::config::{duration, Unit, Zero};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct OtelArgs {
    /// Export traces over OTLP/HTTP (protobuf) to this collector's base URL;
    /// spans go to `{endpoint}/v1/traces`. Unset: no traces (see
    /// docs/tracing.md).
    #[arg(
        id = "otel-endpoint",
        long = "otel-endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT"
    )]
    pub endpoint: Option<String>,
    /// The full traces URL, used as given (instead of `--otel-endpoint`).
    #[arg(
        id = "otel-traces-endpoint",
        long = "otel-traces-endpoint",
        env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )]
    pub traces_endpoint: Option<String>,
    /// `service.name` of every exported span.
    #[arg(
        id = "otel-service-name",
        long = "otel-service-name",
        env = "OTEL_SERVICE_NAME",
        default_value = "calos"
    )]
    pub service_name: String,
    /// Spans waiting for export at most; past it spans are dropped and
    /// counted (a slow or down collector never holds requests or memory).
    #[arg(id = "otel-queue-size", long = "otel-queue-size", env = "OTEL_BSP_MAX_QUEUE_SIZE", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub queue_size: u32,
    /// Spans per export request at most.
    #[arg(id = "otel-batch-size", long = "otel-batch-size", env = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Milliseconds spans wait for a fuller batch before they are sent anyway.
    #[arg(id = "otel-schedule-delay-ms", long = "otel-schedule-delay-ms", env = "OTEL_BSP_SCHEDULE_DELAY", default_value = "5000", value_parser = duration(Unit::Millis, Zero::Refused))]
    pub schedule_delay: Duration,
    /// Milliseconds one export request may take.
    #[arg(id = "otel-export-timeout-ms", long = "otel-export-timeout-ms", env = "OTEL_BSP_EXPORT_TIMEOUT", default_value = "10000", value_parser = duration(Unit::Millis, Zero::Refused))]
    pub export_timeout: Duration,
    /// Record prompts and replies on the model span (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`). Off by default: they are users' private
    /// text, and the collector and everyone who reads it would see them.
    #[arg(
        id = "otel-capture-content",
        long = "otel-capture-content",
        env = "CALOS_OTEL_CAPTURE_CONTENT"
    )]
    pub capture_content: bool,
}

impl OtelArgs {
    /// The export settings, `None` when no endpoint is set; a URL that is
    /// not `http(s)://host…` is refused with the variable to fix.
    pub fn settings(&self) -> anyhow::Result<Option<ExportSettings>> {
        let url = match (given(&self.traces_endpoint), given(&self.endpoint)) {
            (Some(traces), _) => parse("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces)?,
            (None, Some(base)) => {
                let base = parse("OTEL_EXPORTER_OTLP_ENDPOINT", base)?;
                let path = format!("{}/v1/traces", base.path().trim_end_matches('/'));
                let mut url = base;
                url.set_path(&path);
                url
            }
            (None, None) => return Ok(None),
        };
        let queue_size = self.queue_size as usize;
        Ok(Some(ExportSettings {
            url,
            service_name: match self.service_name.trim() {
                "" => "calos".to_string(),
                name => name.to_string(),
            },
            queue_size,
            batch_size: (self.batch_size as usize).min(queue_size),
            schedule_delay: self.schedule_delay,
            export_timeout: self.export_timeout,
        }))
    }
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse(variable: &str, value: &str) -> anyhow::Result<reqwest::Url> {
    let shown = crate::llm::http::without_credentials(value);
    let url = reqwest::Url::parse(value).map_err(|e| {
        anyhow::anyhow!(
            "{variable} = {shown:?} is not a URL ({e}); give e.g. http://localhost:4318"
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        anyhow::bail!(
            "{variable} = {shown:?} must be an http:// or https:// URL with a host, e.g. http://localhost:4318"
        );
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        otel: OtelArgs,
    }

    fn args(argv: &[&str]) -> OtelArgs {
        let mut all = vec!["calos"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all) {
            Ok(cli) => cli.otel,
            Err(e) => panic!("{e}"),
        }
    }

    fn url(argv: &[&str]) -> String {
        match args(argv).settings() {
            Ok(Some(s)) => s.url.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_traces_path_is_added_to_the_base_endpoint_only() {
        assert_eq!(
            url(&["--otel-endpoint", "http://collector:4318"]),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            url(&["--otel-endpoint", "http://collector:4318/otlp/"]),
            "http://collector:4318/otlp/v1/traces"
        );
        assert_eq!(
            url(&[
                "--otel-endpoint",
                "http://ignored:1",
                "--otel-traces-endpoint",
                "https://c.example/custom"
            ]),
            "https://c.example/custom"
        );
    }

    #[test]
    fn no_endpoint_means_no_tracing_and_a_bad_one_says_what_to_fix() {
        assert!(matches!(args(&[]).settings(), Ok(None)));
        for bad in ["collector:4318", "ftp://c/", "not a url"] {
            let error = args(&["--otel-endpoint", bad])
                .settings()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                error.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
                "{bad}: {error}"
            );
        }
    }
}
