//! `calos load --plot FILE.svg|png`: the latency histogram and latency over time,
//! drawn with plotters. Text needs a TrueType font; DejaVu Sans (or `CALOS_FONT`)
//! is registered once with plotters' pure-Rust ab_glyph renderer.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

/// Registers a font as plotters' `sans-serif`, once per process.
pub fn ensure_font() -> anyhow::Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let candidates = std::env::var("CALOS_FONT")
                .ok()
                .into_iter()
                .chain(FONT_PATHS.iter().map(|p| p.to_string()));
            for path in candidates {
                if let Ok(bytes) = std::fs::read(&path) {
                    // plotters keeps fonts for the process's lifetime.
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                        return Ok(());
                    }
                }
            }
            Err("charts need a TrueType font: install fonts-dejavu-core or set CALOS_FONT to a .ttf file".into())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Latencies of `(seconds since start, ms, ok)` points.
pub fn draw(path: &Path, points: &[(f64, f64, bool)], title: &str) -> anyhow::Result<()> {
    ensure_font()?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("svg") => {
            let root = SVGBackend::new(path, (1000, 800)).into_drawing_area();
            charts(&root, points, title)?;
            root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Some("png") => {
            let root = BitMapBackend::new(path, (1000, 800)).into_drawing_area();
            charts(&root, points, title)?;
            root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        _ => anyhow::bail!("--plot wants a .svg or .png file name"),
    }
    Ok(())
}

fn charts<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[(f64, f64, bool)],
    title: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e}");
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
    let (top, bottom) = root.split_vertically(380);
    histogram(&top, points).map_err(e)?;
    over_time(&bottom, points).map_err(e)?;
    Ok(())
}

const BINS: usize = 50;

fn histogram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    points: &[(f64, f64, bool)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let ok: Vec<f64> = points.iter().filter(|p| p.2).map(|p| p.1).collect();
    // The range is the data's own (latencies cluster far from zero).
    let lo = ok.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ok.iter().copied().fold(0.0_f64, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo - (hi - lo) * 0.02, hi + (hi - lo) * 0.02)
    } else if lo.is_finite() {
        ((lo - 1.0).max(0.0), hi + 1.0)
    } else {
        (0.0, 1.0)
    };
    let width = (hi - lo) / BINS as f64;
    let mut counts = [0u32; BINS];
    for v in &ok {
        counts[(((v - lo) / width) as usize).min(BINS - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Latency histogram (successful requests)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(lo..hi, 0u32..top + top / 10 + 1)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("requests")
        .draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(i, &n)| {
        let x0 = lo + i as f64 * width;
        Rectangle::new([(x0, 0), (x0 + width, n)], BLUE.mix(0.6).filled())
    }))?;
    Ok(())
}

fn over_time<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    points: &[(f64, f64, bool)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let end = points
        .iter()
        .map(|p| p.0)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption("Latency over time (red: failed)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end * 1.02, 0.0..max * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start (scheduled send)")
        .y_desc("latency (ms)")
        .draw()?;
    chart.draw_series(
        points
            .iter()
            .filter(|p| p.2)
            .map(|p| Circle::new((p.0, p.1), 2, BLUE.mix(0.5).filled())),
    )?;
    chart.draw_series(
        points
            .iter()
            .filter(|p| !p.2)
            .map(|p| Circle::new((p.0, p.1), 3, RED.filled())),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_svg_chart_is_written_with_both_panels() {
        if ensure_font().is_err() {
            // No TrueType font on this machine: `draw` says so (checked below).
            assert!(draw(Path::new("x.svg"), &[], "t").is_err());
            return;
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { panic!("{dir:?}") };
        let path = dir.path().join("latency.svg");
        let points: Vec<_> = (0..200)
            .map(|i| (i as f64 * 0.01, 10.0 + (i % 17) as f64, i % 50 != 0))
            .collect();
        let drawn = draw(&path, &points, "calos load");
        assert!(drawn.is_ok(), "{drawn:?}");
        let svg = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(svg.contains("Latency histogram") && svg.contains("Latency over time"));
        assert!(draw(&dir.path().join("x.txt"), &points, "t").is_err());
    }
}
