//! Small text-rendering helpers shared by the toolbox reports.

/// A bar of `width` cells for a share in percent (eighth-cell resolution).
pub fn bar(percent: f64, width: usize) -> String {
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let cells = (percent.clamp(0.0, 100.0) / 100.0) * width as f64;
    let full = cells.floor() as usize;
    let eighths = ((cells - full as f64) * 8.0).floor() as usize;
    let mut out = "█".repeat(full);
    if full < width {
        out.push_str(PARTS[eighths.min(7)]);
    }
    out
}

/// Milliseconds with a precision that suits their size.
pub fn ms(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0} ms")
    } else if value >= 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.2} ms")
    }
}

/// The original guide's banner.
pub fn banner(title: &str) -> String {
    let inner = 47;
    let mut s = format!("╔{}╗\n", "═".repeat(inner));
    s.push_str(&format!("║  {title:<width$}║\n", width = inner - 2));
    s.push_str(&format!("╚{}╝\n", "═".repeat(inner)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_with_the_share() {
        assert_eq!(bar(0.0, 10), "");
        assert_eq!(bar(100.0, 10).chars().count(), 10);
        assert_eq!(bar(50.0, 10), "█████");
        assert_eq!(bar(55.0, 10), "█████▌");
    }

    #[test]
    fn milliseconds_keep_three_significant_figures_or_so() {
        assert_eq!(ms(2456.78), "2457 ms");
        assert_eq!(ms(45.234), "45.2 ms");
        assert_eq!(ms(0.154), "0.15 ms");
    }
}
