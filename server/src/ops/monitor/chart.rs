//! The dashboard's charts, drawn on the server with plotters as SVG from the
//! last 15 minutes of one-second samples: latency p50/p95/p99 (total and TTFT)
//! and requests/s beside the error rate. The page reloads them each second.

use app::wire::{MetricsSample, Quantiles};
use plotters::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Latency,
    Errors,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "latency" => Some(Self::Latency),
            "errors" => Some(Self::Errors),
            _ => None,
        }
    }
}

const SIZE: (u32, u32) = (720, 260);

/// A labelled, coloured line of `(seconds ago, value)` points.
type Line = (&'static str, RGBColor, Vec<(f64, f64)>);

/// Seconds before the newest sample (negative: the past), and a value.
fn series(
    samples: &[MetricsSample],
    value: impl Fn(&MetricsSample) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let newest = samples.last().map_or(0, |s| s.time);
    samples
        .iter()
        .filter_map(|s| value(s).map(|v| ((s.time - newest) as f64 / 1000.0, v)))
        .collect()
}

pub fn render(kind: Kind, samples: &[MetricsSample]) -> anyhow::Result<String> {
    crate::charts::plot::ensure_font()?;
    let mut svg = String::new();
    let plotted;
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("{e}");
        root.fill(&WHITE).map_err(e)?;
        let lines: Vec<Line> = match kind {
            Kind::Latency => {
                let q = |phase: &'static str, pick: fn(&Quantiles) -> f64| {
                    move |s: &MetricsSample| s.latency.get(phase).map(pick)
                };
                vec![
                    ("total p50", BLUE, series(samples, q("total", |x| x.p50))),
                    (
                        "total p95",
                        RGBColor(230, 140, 0),
                        series(samples, q("total", |x| x.p95)),
                    ),
                    ("total p99", RED, series(samples, q("total", |x| x.p99))),
                    (
                        "TTFT p50",
                        RGBColor(0, 150, 80),
                        series(samples, q("ttft", |x| x.p50)),
                    ),
                ]
            }
            Kind::Errors => vec![
                (
                    "requests/s",
                    BLUE,
                    series(samples, |s| Some(s.requests_per_sec)),
                ),
                (
                    "errors %",
                    RED,
                    series(samples, |s| Some(100.0 * s.error_rate)),
                ),
            ],
        };
        plotted = lines.first().map_or(0, |(_, _, points)| points.len());
        let top = lines
            .iter()
            .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
            .fold(0.0_f64, f64::max)
            .max(1.0)
            * 1.1;
        let (caption, unit) = match kind {
            Kind::Latency => ("Latency (ms), last 15 minutes", "ms"),
            Kind::Errors => (
                "Requests/s and error rate (%), last 15 minutes",
                "per s / %",
            ),
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(-900.0..0.0, 0.0..top)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("seconds ago")
            .y_desc(unit)
            .draw()
            .map_err(e)?;
        for (label, color, points) in lines {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(e)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    // Say in words how much data the picture holds (screen readers, tests).
    let desc = format!("<desc>{plotted} seconds with data</desc>");
    Ok(match svg.find('>') {
        Some(end) => format!("{}{desc}{}", &svg[..=end], &svg[end + 1..]),
        None => svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_charts_render_with_and_without_samples() {
        if crate::charts::plot::ensure_font().is_err() {
            return; // no font here: `render` reports it (covered in plot's tests)
        }
        let metrics = crate::observability::metrics::Metrics::default();
        metrics.record(
            "sim",
            "sim",
            true,
            &crate::observability::timing::Breakdown {
                total: 250.0,
                ttft: Some(200.0),
                ..Default::default()
            },
            "ok",
        );
        let samples = [super::super::sample::sample(
            metrics.take_interval(),
            1.0,
            0,
            0,
        )];
        for kind in [Kind::Latency, Kind::Errors] {
            for data in [&samples[..], &[]] {
                let svg = render(kind, data).map_err(|e| e.to_string());
                assert!(
                    svg.as_deref().is_ok_and(|s| s.starts_with("<svg")),
                    "{svg:?}"
                );
                let said = format!("<desc>{} seconds with data</desc>", data.len());
                assert!(svg.as_deref().is_ok_and(|s| s.contains(&said)), "{said}");
            }
        }
        assert_eq!(Kind::parse("nope"), None);
    }
}
